//! Sharing a patient's reports with a peer: the patient's consent, recorded by staff, and
//! the transmission that carries the chosen signed reports.

use carebridge_protocol::PatientId;
use carebridge_protocol::ProblemType;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::{
    Consent, ConsentChange, MedicalReports, SendReports, SharedPatient, Transmission,
};
use carebridge_protocol::report::ReportStatus;

use super::error::FederationError;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::events::Audience;
use crate::node::Node;
use crate::store::federation::{consents, peers, transmissions};
use crate::store::{StoreError, WriteCtx, patients, reports};
use crate::visibility::{self, RecordKind};

/// Who is told when a consent changes: the hospital's doctors, who record consents and send
/// reports on them (an open patient page follows it live).
fn consent_audience() -> Audience {
    visibility::audience(RecordKind::Consent)
}

/// Records that the patient agrees to share with `peer` (an insurer this node peers with).
/// Recording it again keeps the first record.
pub fn record_consent(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    patient: PatientId,
    peer_name: &str,
    by: (&str, &str),
) -> Result<Consent, FederationError> {
    let p =
        patients::get(ctx, patient, node.name())?.ok_or(FederationError::NotFound("patient"))?;
    super::transfer::require_changeable(ctx, &p)?;
    if !peers::get(ctx, peer_name)?.is_some_and(|p| p.kind == NodeKind::Insurer) {
        return Err(FederationError::invalid(
            "peer",
            "is not an insurer this node is peered with",
        ));
    }
    let inserted = consents::insert(ctx, patient, peer_name, by.0, by.1)?;
    ctx.set_detail(format!("consent to share with {peer_name}"));
    let recorded = consents::get(ctx, patient, peer_name)?
        .ok_or_else(|| FederationError::Internal("the consent just recorded is missing".into()))?;
    if inserted {
        ctx.emit(
            EventKind::ConsentUpdated,
            consent_audience(),
            &ConsentChange {
                patient_id: patient,
                peer: peer_name.to_owned(),
                consent: Some(recorded.clone()),
            },
        )?;
    }
    Ok(recorded)
}

/// Withdraws a consent. What the peer already has stays there; what still waits in the
/// outbox for that peer and patient is not sent (it fails, saying why).
pub fn withdraw_consent(
    ctx: &mut WriteCtx<'_>,
    patient: PatientId,
    peer_name: &str,
) -> Result<(), FederationError> {
    if !consents::delete(ctx, patient, peer_name)? {
        return Err(FederationError::NotFound("consent"));
    }
    ctx.emit(
        EventKind::ConsentUpdated,
        consent_audience(),
        &ConsentChange {
            patient_id: patient,
            peer: peer_name.to_owned(),
            consent: None,
        },
    )?;
    let stopped = transmissions::stop_waiting(
        ctx,
        patient,
        peer_name,
        "not sent: the patient withdrew consent before delivery",
    )?;
    for id in &stopped {
        if let Some(t) = transmissions::get(ctx, *id)? {
            transmission::emit_updated(ctx, &t)?;
        }
    }
    ctx.set_detail(format!(
        "consent to share with {peer_name} withdrawn; {} waiting transmission(s) stopped",
        stopped.len()
    ));
    Ok(())
}

/// Queues one transmission of the chosen reports. All must be of one patient who consented to
/// sharing with the peer, and each `final` or `amended` (signed).
pub fn send_reports(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    sender: &str,
    req: &SendReports,
) -> Result<Transmission, FederationError> {
    if req.report_ids.is_empty() {
        return Err(FederationError::invalid(
            "report_ids",
            "choose at least one report",
        ));
    }
    if req.report_ids.len() > 50 {
        return Err(FederationError::invalid(
            "report_ids",
            "at most 50 reports at a time",
        ));
    }
    let peer = peers::get(ctx, &req.peer)?
        .filter(|p| p.kind == NodeKind::Insurer)
        .ok_or_else(|| {
            FederationError::invalid("peer", "is not an insurer this node is peered with")
        })?;
    let mut reports = Vec::new();
    for id in &req.report_ids {
        let r = reports::get(ctx, *id)?
            .ok_or_else(|| FederationError::invalid("report_ids", format!("no report {id}")))?;
        if !r.status.is_sendable() {
            return Err(FederationError::refused(
                ProblemType::InvalidTransition,
                format!(
                    "{:?} is {}: only final or amended reports can be sent",
                    r.content.title,
                    r.status.as_str()
                ),
            ));
        }
        reports.push(r);
    }
    let patient_id = reports[0].patient_id;
    if reports.iter().any(|r| r.patient_id != patient_id) {
        return Err(FederationError::invalid(
            "report_ids",
            "send one patient's reports at a time",
        ));
    }
    let p = patients::get(ctx, patient_id, node.name())?
        .ok_or_else(|| FederationError::NotFound("patient"))?;
    let consent = consents::get(ctx, patient_id, &peer.name)?.ok_or_else(|| {
        FederationError::refused(
            ProblemType::Forbidden,
            format!(
                "{} {} has not consented to sharing with {}: record the consent first",
                p.given_name, p.family_name, peer.name
            ),
        )
    })?;
    debug_assert!(
        reports
            .iter()
            .all(|r| r.status != ReportStatus::Preliminary)
    );
    let titles: Vec<&str> = reports.iter().map(|r| r.content.title.as_str()).collect();
    let summary = format!(
        "{} report{} about {} {}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        p.given_name,
        p.family_name,
        titles.join(", ")
    );
    let payload = MedicalReports {
        patient: SharedPatient {
            global_id: p.global_id.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            birth_date: p.birth_date,
        },
        reports,
        sent_by: sender.to_owned(),
        consent_recorded_at: consent.recorded_at,
        consent_recorded_by: consent.recorded_by,
    };
    let t = transmission::queue(
        ctx,
        node,
        &peer,
        Outgoing {
            message_type: MessageType::MedicalReports,
            payload: serde_json::to_vec(&payload).map_err(StoreError::from)?,
            summary: summary.clone(),
            patient_id: Some(patient_id),
            report_ids: req.report_ids.clone(),
            created_by: sender,
        },
    )?;
    ctx.set_entity(format!("transmission/{}", t.id));
    // Ids and counts only: the audit trail is read by admins, who see no patient data.
    ctx.set_detail(format!(
        "to {}: {} report(s)",
        peer.name,
        t.report_ids.len()
    ));
    Ok(t)
}

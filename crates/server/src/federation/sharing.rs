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
use rusqlite::{Connection, params};

use super::peer;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::error::ApiError;
use crate::events::{Audience, ROLE_DOCTOR};
use crate::node::Node;
use crate::store::{StoreError, WriteCtx, from_millis};
use crate::{patient, report};

/// A patient's consents, by peer.
pub fn consents(conn: &Connection, patient: PatientId) -> Result<Vec<Consent>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT peer, recorded_by_name, recorded_at FROM consents WHERE patient_id = ?1 ORDER BY peer",
    )?;
    let mut rows = st.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Consent {
            patient_id: patient,
            peer: r.get(0)?,
            recorded_by: r.get(1)?,
            recorded_at: from_millis(r.get(2)?)?,
        });
    }
    Ok(out)
}

/// Who is told when a consent changes: the hospital's doctors, who record consents and send
/// reports on them (an open patient page follows it live).
fn consent_audience() -> Audience {
    Audience {
        roles: ROLE_DOCTOR,
        practitioner: None,
        kiosk: None,
    }
}

fn consent(
    conn: &Connection,
    patient: PatientId,
    peer: &str,
) -> Result<Option<Consent>, StoreError> {
    Ok(consents(conn, patient)?
        .into_iter()
        .find(|c| c.peer == peer))
}

/// Records that the patient agrees to share with `peer` (an insurer this node peers with).
/// Recording it again keeps the first record.
pub fn record_consent(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    patient: PatientId,
    peer_name: &str,
    by: (&str, &str),
) -> Result<Consent, ApiError> {
    if patient::get(ctx.conn(), patient, node.name())?.is_none() {
        return Err(ApiError::not_found("patient"));
    }
    if !peer::get(ctx.conn(), peer_name)?.is_some_and(|p| p.kind == NodeKind::Insurer) {
        return Err(ApiError::field(
            "peer",
            "is not an insurer this node is peered with",
        ));
    }
    let inserted = ctx
        .conn()
        .execute(
            "INSERT INTO consents (patient_id, peer, recorded_by, recorded_by_name, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                patient.to_string(),
                peer_name,
                by.0,
                by.1,
                ctx.now().timestamp_millis()
            ],
        )
        .map_err(StoreError::from)?;
    ctx.set_detail(format!("consent to share with {peer_name}"));
    let recorded = consent(ctx.conn(), patient, peer_name)?
        .ok_or_else(|| ApiError::Internal("the consent just recorded is missing".into()))?;
    if inserted == 1 {
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
) -> Result<(), ApiError> {
    let n = ctx
        .conn()
        .execute(
            "DELETE FROM consents WHERE patient_id = ?1 AND peer = ?2",
            params![patient.to_string(), peer_name],
        )
        .map_err(StoreError::from)?;
    if n == 0 {
        return Err(ApiError::not_found("consent"));
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
    let now = ctx.now().timestamp_millis();
    let stopped: Vec<String> = {
        let mut st = ctx
            .conn()
            .prepare(
                "UPDATE transmissions SET state = 'failed', version = version + 1, updated_at = ?3,
                     last_error = 'not sent: the patient withdrew consent before delivery'
                 WHERE patient_id = ?1 AND peer = ?2 AND state IN ('queued', 'sent') RETURNING id",
            )
            .map_err(StoreError::from)?;
        st.query_map(params![patient.to_string(), peer_name, now], |r| r.get(0))
            .map_err(StoreError::from)?
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)?
    };
    for id in &stopped {
        if let Some(t) = transmission::get(
            ctx.conn(),
            id.parse()
                .map_err(|_| StoreError::Corrupt(format!("transmission id {id}")))?,
        )? {
            ctx.emit(EventKind::TransmissionUpdated, transmission::audience(), &t)?;
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
) -> Result<Transmission, ApiError> {
    if req.report_ids.is_empty() {
        return Err(ApiError::field("report_ids", "choose at least one report"));
    }
    if req.report_ids.len() > 50 {
        return Err(ApiError::field(
            "report_ids",
            "at most 50 reports at a time",
        ));
    }
    let peer = peer::get(ctx.conn(), &req.peer)?
        .filter(|p| p.kind == NodeKind::Insurer)
        .ok_or_else(|| ApiError::field("peer", "is not an insurer this node is peered with"))?;
    let mut reports = Vec::new();
    for id in &req.report_ids {
        let r = report::get(ctx.conn(), *id)?
            .ok_or_else(|| ApiError::field("report_ids", format!("no report {id}")))?;
        if !r.status.is_sendable() {
            return Err(ApiError::new(
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
        return Err(ApiError::field(
            "report_ids",
            "send one patient's reports at a time",
        ));
    }
    let p = patient::get(ctx.conn(), patient_id, node.name())?
        .ok_or_else(|| ApiError::not_found("patient"))?;
    let consent = consent(ctx.conn(), patient_id, &peer.name)?.ok_or_else(|| {
        ApiError::new(
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
    ctx.set_detail(format!("to {}: {summary}", peer.name));
    Ok(t)
}

//! The durable outbox of exchanges with peers: each transmission is sealed once, when its user
//! sends it, and kept until the peer acknowledges it with a signed receipt (or refuses it for
//! good). The delivery worker (`delivery`) moves it through its states.

use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::{MessageType, Sealing, seal};
use carebridge_protocol::federation::payload::{Transmission, TransmissionState};
use carebridge_protocol::{PatientId, ReportId};

use super::error::FederationError;
use super::peer::Peer;
use crate::events::{Audience, ROLE_ADMIN};
use crate::node::Node;
use crate::store::federation::transmissions;
use crate::store::{StoreError, WriteCtx};
use crate::visibility::{self, RecordKind};

/// Who sees a transmission's state: doctors (who send reports) and admins.
pub fn audience() -> Audience {
    visibility::audience(RecordKind::Transmission)
}

/// Streams a transmission's new state: whole to the doctors, without the patient's name or
/// the reports' titles to the admins.
pub fn emit_updated(ctx: &mut WriteCtx<'_>, t: &Transmission) -> Result<(), StoreError> {
    let all = audience();
    let others = Audience {
        roles: all.roles & !ROLE_ADMIN,
        ..all
    };
    if others.roles != 0 {
        ctx.emit(EventKind::TransmissionUpdated, others, t)?;
    }
    if all.roles & ROLE_ADMIN != 0 {
        let admins = Audience {
            roles: ROLE_ADMIN,
            ..all
        };
        ctx.emit(
            EventKind::TransmissionUpdated,
            admins,
            &visibility::transmission_for_admins(t.clone()),
        )?;
    }
    Ok(())
}

/// What a user sends, before sealing.
pub struct Outgoing<'a> {
    /// What it is.
    pub message_type: MessageType,
    /// The payload's JSON.
    pub payload: Vec<u8>,
    /// For people.
    pub summary: String,
    /// The patient, for reports.
    pub patient_id: Option<PatientId>,
    /// The reports, for reports.
    pub report_ids: Vec<ReportId>,
    /// Who sends it (display name).
    pub created_by: &'a str,
}

/// Seals `out` for `peer` and queues it, inside the caller's write; the delivery worker
/// sends it once the transaction commits (wake it with [`Node::wake_delivery`]).
pub fn queue(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    out: Outgoing<'_>,
) -> Result<Transmission, FederationError> {
    let now = ctx.now();
    let envelope = seal(
        &Sealing {
            message_type: out.message_type,
            source: node.name(),
            destination: &peer.name,
            created_at: now,
        },
        &out.payload,
        &node.agreement_key,
        &peer.agreement_key,
    )
    .map_err(|e| FederationError::Internal(e.to_string()))?;
    let bytes = envelope
        .to_bytes()
        .map_err(|e| FederationError::Internal(e.to_string()))?;
    let t = Transmission {
        id: envelope.header.id,
        peer: peer.name.clone(),
        message_type: out.message_type.as_str().to_owned(),
        summary: out.summary,
        patient_id: out.patient_id,
        report_ids: out.report_ids,
        state: TransmissionState::Queued,
        last_error: None,
        attempts: 0,
        overdue: false,
        created_by: out.created_by.to_owned(),
        created_at: now,
        updated_at: now,
        acknowledged_at: None,
        version: 1,
    };
    transmissions::insert(ctx, &t, &bytes)?;
    emit_updated(ctx, &t)?;
    Ok(t)
}

//! The durable outbox of exchanges with peers: each transmission is sealed once, when its user
//! sends it, and kept until the peer acknowledges it with a signed receipt (or refuses it for
//! good). The delivery worker (`delivery`) moves it through its states.

use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::{MessageType, Sealing, seal};
use carebridge_protocol::federation::payload::{Transmission, TransmissionState};
use carebridge_protocol::{PatientId, ReportId};
use rusqlite::{Connection, Row, params};

use super::peer::Peer;
use crate::error::ApiError;
use crate::events::{Audience, ROLE_ADMIN, ROLE_DOCTOR};
use crate::node::Node;
use crate::store::{StoreError, WriteCtx, from_millis};

/// The columns [`from_row`] reads, in its order.
pub const COLUMNS: &str = "id, peer, message_type, summary, patient_id, report_ids, state, last_error, attempts, \
     created_by, created_at, updated_at, acknowledged_at, version, overdue_alerted";

/// Decodes a row selected with [`COLUMNS`].
pub fn from_row(r: &Row<'_>) -> Result<Transmission, StoreError> {
    let id: String = r.get(0)?;
    let patient: Option<String> = r.get(4)?;
    let reports: String = r.get(5)?;
    let state: String = r.get(6)?;
    let acknowledged: Option<i64> = r.get(12)?;
    Ok(Transmission {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("transmission id {id}")))?,
        peer: r.get(1)?,
        message_type: r.get(2)?,
        summary: r.get(3)?,
        patient_id: patient
            .map(|p| {
                p.parse()
                    .map_err(|_| StoreError::Corrupt(format!("patient id {p}")))
            })
            .transpose()?,
        report_ids: serde_json::from_str(&reports)?,
        state: TransmissionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("transmission state {state}")))?,
        last_error: r.get(7)?,
        attempts: r.get(8)?,
        created_by: r.get(9)?,
        created_at: from_millis(r.get(10)?)?,
        updated_at: from_millis(r.get(11)?)?,
        acknowledged_at: acknowledged.map(from_millis).transpose()?,
        version: r.get(13)?,
        overdue: r.get(14)?,
    })
}

/// One transmission.
pub fn get(conn: &Connection, id: uuid::Uuid) -> Result<Option<Transmission>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transmissions WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(from_row).transpose()
}

/// Transmissions, newest first: one patient's, or all.
pub fn list(
    conn: &Connection,
    patient: Option<PatientId>,
    limit: u32,
) -> Result<Vec<Transmission>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transmissions WHERE (?1 IS NULL OR patient_id = ?1)
         ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let mut rows = st.query(params![patient.map(|p| p.to_string()), i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Who sees a transmission's state: doctors (who send reports) and admins.
pub fn audience() -> Audience {
    Audience {
        roles: ROLE_DOCTOR | ROLE_ADMIN,
        practitioner: None,
        kiosk: None,
    }
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
) -> Result<Transmission, ApiError> {
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
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let bytes = envelope
        .to_bytes()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
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
    ctx.conn()
        .execute(
            "INSERT INTO transmissions (id, peer, message_type, summary, patient_id, report_ids, envelope,
                 state, attempts, next_attempt_at, created_by, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', 0, ?8, ?9, 1, ?8, ?8)",
            params![
                t.id.to_string(),
                t.peer,
                t.message_type,
                t.summary,
                t.patient_id.map(|p| p.to_string()),
                serde_json::to_string(&t.report_ids).map_err(StoreError::from)?,
                bytes,
                now.timestamp_millis(),
                t.created_by,
            ],
        )
        .map_err(StoreError::from)?;
    ctx.emit(EventKind::TransmissionUpdated, audience(), &t)?;
    Ok(t)
}

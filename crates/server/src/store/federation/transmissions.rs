//! The outbox of transmissions to peers as stored, with what the delivery worker needs: the
//! sealed envelope, the attempts, when the next is due, the receipt.

use crate::store::sql::{OptionalExtension as _, Row, params};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::{Transmission, TransmissionState};
use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// The columns [`from_row`] reads, in its order.
pub(in crate::store) const COLUMNS: &str = "id, peer, message_type, summary, patient_id, report_ids, state, last_error, attempts, \
     created_by, created_at, updated_at, acknowledged_at, version, overdue_alerted";

/// Decodes a row selected with [`COLUMNS`].
pub(in crate::store) fn from_row(r: &Row) -> Result<Transmission, StoreError> {
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
pub fn get(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<Transmission>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transmissions WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(from_row).transpose()
}

/// Transmissions, newest first: one patient's, or all.
pub fn list(
    tx: &Tx<'_>,
    patient: Option<PatientId>,
    limit: u32,
) -> Result<Vec<Transmission>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transmissions WHERE (patient_id = ?1 OR ?1 IS NULL)
         ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let mut rows = st.query(params![patient.map(|p| p.to_string()), i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Queues a new transmission with its sealed envelope, due at once.
pub fn insert(w: &WriteCtx<'_>, t: &Transmission, envelope: &[u8]) -> Result<(), StoreError> {
    w.conn.execute(
        "INSERT INTO transmissions (id, peer, message_type, summary, patient_id, report_ids, envelope,
             state, attempts, next_attempt_at, created_by, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', 0, ?8, ?9, 1, ?8, ?8)",
        params![
            t.id.to_string(),
            t.peer,
            t.message_type,
            t.summary,
            t.patient_id.map(|p| p.to_string()),
            serde_json::to_string(&t.report_ids)?,
            envelope,
            t.created_at.timestamp_millis(),
            t.created_by,
        ],
    )?;
    Ok(())
}

/// What may be sent now (over `transmissions t`): a transfer's chunk only once its manifest was
/// acknowledged.
const SENDABLE: &str = "NOT (t.message_type = 'transfer-chunk' AND EXISTS (
    SELECT 1 FROM transmissions m WHERE m.transfer_id = t.transfer_id
        AND m.message_type = 'transfer-manifest' AND m.state != 'acknowledged'))";

/// A transmission due for an attempt.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its id (the envelope's).
    pub id: uuid::Uuid,
    /// The peer it goes to.
    pub peer: String,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
}

fn uuid(id: &str) -> Result<uuid::Uuid, StoreError> {
    id.parse()
        .map_err(|_| StoreError::Corrupt(format!("transmission id {id}")))
}

/// Up to `limit` transmissions waiting (queued, or sent and not answered) whose next attempt is
/// due at `now`, the longest-due first, and those due together in the order they were queued.
/// A transfer's chunks wait until the peer acknowledged its manifest: they are checked against
/// it on arrival.
pub fn due(tx: &Tx<'_>, now: DateTime<Utc>, limit: u32) -> Result<Vec<Due>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT id, peer, envelope, attempts FROM transmissions t
             WHERE state IN ('queued', 'sent') AND next_attempt_at <= ?1 AND {SENDABLE}
             ORDER BY next_attempt_at, rowid LIMIT ?2"
    ))?;
    let rows = st.query_map(params![now.timestamp_millis(), limit], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, peer, envelope, attempts) = row?;
        out.push(Due {
            id: uuid(&id)?,
            peer,
            envelope,
            attempts,
        });
    }
    Ok(out)
}

/// When the next waiting transmission is due, if any waits.
pub fn next_due(tx: &Tx<'_>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = tx.conn.query_row(
        &format!(
            "SELECT MIN(next_attempt_at) FROM transmissions t
             WHERE state IN ('queued', 'sent') AND {SENDABLE}"
        ),
        [],
        |r| r.get(0),
    )?;
    at.map(from_millis).transpose()
}

/// When the longest-waiting transmission (queued, or sent and not answered) was created, if
/// any waits: how far behind deliveries are.
pub fn oldest_waiting(tx: &Tx<'_>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = tx.conn.query_row(
        "SELECT MIN(created_at) FROM transmissions WHERE state IN ('queued', 'sent')",
        [],
        |r| r.get(0),
    )?;
    at.map(from_millis).transpose()
}

/// Marks a waiting transmission `sent` for an attempt, leased until `lease_until` (when it is
/// due again if no outcome was recorded). False when it no longer waits (stopped meanwhile).
pub fn take_for_attempt(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "UPDATE transmissions SET state = 'sent', version = version + 1, updated_at = ?2,
             next_attempt_at = ?3 WHERE id = ?1 AND state IN ('queued', 'sent')",
        params![
            id.to_string(),
            w.now().timestamp_millis(),
            lease_until.timestamp_millis()
        ],
    )? == 1)
}

/// Keeps the peer's receipt (as JSON) and when it says it received the transmission. The
/// sealed envelope of a message carrying a secret (a one-time code, a token) is emptied then:
/// the pair's key opens it, and it is never sent again.
pub fn record_receipt(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    receipt: &str,
    received_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let message_type: Option<String> = w
        .conn
        .query_row(
            "SELECT message_type FROM transmissions WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    let forget = message_type
        .as_deref()
        .and_then(MessageType::parse)
        .is_some_and(|t| t.unkept_field().is_some());
    w.conn.execute(
        "UPDATE transmissions SET receipt = ?2, acknowledged_at = ?3,
             envelope = CASE WHEN ?4 = 1 THEN substr(envelope, 1, 0) ELSE envelope END
         WHERE id = ?1",
        params![
            id.to_string(),
            receipt,
            received_at.timestamp_millis(),
            forget
        ],
    )?;
    Ok(())
}

/// A transmission's sealed envelope as kept (empty once a secret's was acknowledged).
pub fn envelope(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(tx
        .conn
        .query_row(
            "SELECT envelope FROM transmissions WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records an attempt's outcome: only an attempt still in flight is settled by it (a
/// transmission stopped meanwhile stays stopped), unless the peer did acknowledge it. False
/// when nothing changed.
pub fn settle(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    state: TransmissionState,
    error: Option<&str>,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "UPDATE transmissions SET state = ?2, last_error = ?3, attempts = ?4, next_attempt_at = ?5,
             version = version + 1, updated_at = ?6
         WHERE id = ?1 AND (state = 'sent' OR ?2 = 'acknowledged')",
        params![
            id.to_string(),
            state.as_str(),
            error,
            attempts,
            next_attempt_at.timestamp_millis(),
            w.now().timestamp_millis()
        ],
    )? > 0)
}

/// Marks every waiting transmission created at or before `before` and not yet alerted on as
/// overdue; returns their ids.
pub fn mark_overdue(
    w: &WriteCtx<'_>,
    before: DateTime<Utc>,
) -> Result<Vec<uuid::Uuid>, StoreError> {
    let ids: Vec<String> = w
        .conn
        .prepare_cached(
            "UPDATE transmissions SET overdue_alerted = 1, version = version + 1
             WHERE state IN ('queued', 'sent') AND overdue_alerted = 0 AND created_at <= ?1
             RETURNING id",
        )?
        .query_map([before.timestamp_millis()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|id| uuid(id)).collect()
}

/// Fails what still waits for `peer` about `patient`, saying why; returns their ids.
pub fn stop_waiting(
    w: &WriteCtx<'_>,
    patient: PatientId,
    peer: &str,
    why: &str,
) -> Result<Vec<uuid::Uuid>, StoreError> {
    let ids: Vec<String> = w
        .conn
        .prepare(
            "UPDATE transmissions SET state = 'failed', version = version + 1, updated_at = ?3,
                 last_error = ?4
             WHERE patient_id = ?1 AND peer = ?2 AND state IN ('queued', 'sent') RETURNING id",
        )?
        .query_map(
            params![patient.to_string(), peer, w.now().timestamp_millis(), why],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|id| uuid(id)).collect()
}

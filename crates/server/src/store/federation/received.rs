//! What peers sent, as stored: each accepted envelope's plaintext payload once, under
//! `<type>-<source>-<timestamp>`, with the receipt this node answered.

use std::collections::HashMap;

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::{MedicalReports, ReceivedReports};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use crate::store::federation::peers;
use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// The peers' signing keys by name: what sent reports are verified with.
fn keys(tx: &Tx<'_>) -> Result<HashMap<String, VerifyingKey>, StoreError> {
    Ok(peers::list(tx)?
        .into_iter()
        .map(|p| (p.name, p.signing_key))
        .collect())
}

fn from_row(keys: &HashMap<String, VerifyingKey>, r: &Row) -> Result<ReceivedReports, StoreError> {
    let source: String = r.get(1)?;
    let payload: Vec<u8> = r.get(3)?;
    let content: MedicalReports = serde_json::from_slice(&payload)?;
    // Verified again on every read, with the peer's key as it is now.
    let key = keys.get(&source);
    let signatures_verified =
        key.is_some_and(|key| content.reports.iter().all(|r| r.signature_verifies(key)));
    Ok(ReceivedReports {
        name: r.get(0)?,
        source,
        received_at: from_millis(r.get(2)?)?,
        signatures_verified,
        content,
    })
}

/// Received medical reports, newest first.
pub fn list(tx: &Tx<'_>, limit: u32) -> Result<Vec<ReceivedReports>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT name, source, received_at, payload FROM received
         WHERE message_type = 'medical-reports' ORDER BY received_at DESC LIMIT ?1",
    )?;
    let keys = keys(tx)?;
    let mut rows = st.query([i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(&keys, r)?);
    }
    Ok(out)
}

/// One received set of reports.
pub fn get(tx: &Tx<'_>, name: &str) -> Result<Option<ReceivedReports>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT name, source, received_at, payload FROM received
         WHERE message_type = 'medical-reports' AND name = ?1",
    )?;
    let keys = keys(tx)?;
    let mut rows = st.query([name])?;
    match rows.next()? {
        Some(r) => Ok(Some(from_row(&keys, r)?)),
        None => Ok(None),
    }
}

/// The receipt answered for `source`'s envelope `envelope_id`, if it was stored.
pub fn receipt_for(
    tx: &Tx<'_>,
    source: &str,
    envelope_id: uuid::Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(tx
        .conn
        .query_row(
            "SELECT receipt FROM received WHERE source = ?1 AND envelope_id = ?2",
            params![source, envelope_id.to_string()],
            |r| r.get(0),
        )
        .optional()?)
}

/// Whether a payload is stored under `name`.
pub fn name_taken(tx: &Tx<'_>, name: &str) -> Result<bool, StoreError> {
    Ok(tx
        .conn
        .query_row("SELECT 1 FROM received WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// An accepted envelope's payload, to store.
#[derive(Debug)]
pub struct Accepted<'a> {
    /// `<type>-<source>-<timestamp>`, free.
    pub name: &'a str,
    /// The envelope's id.
    pub envelope_id: uuid::Uuid,
    /// The peer that sent it.
    pub source: &'a str,
    /// What it is.
    pub message_type: MessageType,
    /// The opened payload.
    pub payload: &'a [u8],
    /// The receipt answered, as JSON.
    pub receipt: &'a str,
}

/// Stores an accepted payload, received now.
pub fn insert(w: &WriteCtx<'_>, a: &Accepted<'_>) -> Result<(), StoreError> {
    w.conn.execute(
        "INSERT INTO received (name, envelope_id, source, message_type, received_at, payload, receipt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            a.name,
            a.envelope_id.to_string(),
            a.source,
            a.message_type.as_str(),
            w.now().timestamp_millis(),
            w.conn.seal(a.payload)?,
            a.receipt
        ],
    )?;
    Ok(())
}

/// A stored payload's facts, without its content.
#[derive(Debug, Clone)]
pub struct StoredPayload {
    /// Its name.
    pub name: String,
    /// The peer that sent it.
    pub source: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Its message type, as sent.
    pub message_type: String,
}

/// Up to `limit` payloads received before `before`, oldest first.
pub fn older_than(
    tx: &Tx<'_>,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<StoredPayload>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT name, source, received_at, message_type FROM received
         WHERE received_at < ?1 ORDER BY received_at LIMIT ?2",
    )?;
    let rows = st.query_map(params![before.timestamp_millis(), limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, source, at, message_type) = row?;
        out.push(StoredPayload {
            name,
            source,
            received_at: from_millis(at)?,
            message_type,
        });
    }
    Ok(out)
}

/// Deletes the payload stored under `name`.
pub fn delete(w: &WriteCtx<'_>, name: &str) -> Result<(), StoreError> {
    w.conn
        .execute("DELETE FROM received WHERE name = ?1", params![name])?;
    Ok(())
}

/// Forgets nonces seen before `before` (older than any request the time window admits).
pub fn forget_nonces(w: &WriteCtx<'_>, before: DateTime<Utc>) -> Result<(), StoreError> {
    w.conn.execute(
        "DELETE FROM federation_nonces WHERE seen_at < ?1",
        [before.timestamp_millis()],
    )?;
    Ok(())
}

/// Records `peer`'s request nonce as seen now; false when it was seen already (a replay).
pub fn record_nonce(w: &WriteCtx<'_>, peer: &str, nonce: &str) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO federation_nonces (peer, nonce, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![peer, nonce, w.now().timestamp_millis()],
    )? == 1)
}

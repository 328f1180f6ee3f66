//! The audit trail in the database: appending (by the writer), reading, and verifying; and
//! the node's signed checkpoints of its head (`audit_checkpoints`), which anchor the chain's
//! end (see `protocol::audit::checkpoint`).

use carebridge_protocol::audit::checkpoint::{AuditCheckpoint, Trail, TrailError, TrailVerifier};
use carebridge_protocol::audit::{
    AuditEntry, AuditQuery, AuditRecord, ChainError, ChainVerifier, Outcome,
};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use crate::store::{StoreError, Tx, WriteCtx, genesis, keys};

pub(crate) fn insert(tx: &Tx<'_>, r: &AuditRecord, hash: &str) -> Result<(), StoreError> {
    tx.conn().prepare_cached(
        "INSERT INTO audit (seq, recorded_at, actor, action, entity, outcome, detail, source, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        r.seq,
        r.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        r.actor,
        r.action,
        r.entity,
        match r.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        },
        r.detail,
        r.source,
        r.prev_hash,
        hash,
    ])?;
    Ok(())
}

/// The last entry's sequence number and hash (genesis when empty).
pub fn head(tx: &Tx<'_>) -> Result<(i64, String), StoreError> {
    Ok(tx
        .conn()
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or_else(genesis))
}

fn entry(r: &Row<'_>) -> Result<AuditEntry, StoreError> {
    let at: String = r.get(1)?;
    let recorded_at = DateTime::parse_from_rfc3339(&at)
        .map_err(|e| StoreError::Corrupt(format!("audit time {at:?}: {e}")))?
        .with_timezone(&Utc);
    let outcome: String = r.get(5)?;
    Ok(AuditEntry {
        record: AuditRecord {
            seq: r.get(0)?,
            recorded_at,
            actor: r.get(2)?,
            action: r.get(3)?,
            entity: r.get(4)?,
            outcome: if outcome == "success" {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            detail: r.get(6)?,
            source: r.get(7)?,
            prev_hash: r.get(8)?,
        },
        hash: r.get(9)?,
    })
}

const COLUMNS: &str =
    "seq, recorded_at, actor, action, entity, outcome, detail, source, prev_hash, hash";

/// Reads entries for an admin, oldest first.
pub fn list(tx: &Tx<'_>, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = q.after.unwrap_or(0);
    // With `before`, newest first (reading back from the newest); else oldest first.
    let (before, order) = match q.before {
        Some(b) => (b, "DESC"),
        None => (i64::MAX, "ASC"),
    };
    let entity = if q.entity.is_some() {
        "AND entity = ?4"
    } else {
        "AND ?4 IS NULL"
    };
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit WHERE seq > ?1 AND seq < ?2 {entity} ORDER BY seq {order} LIMIT ?3"
    ))?;
    let mut rows = st.query(params![after, before, limit, q.entity])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(entry(r)?);
    }
    Ok(out)
}

/// The result of verifying a whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// How many entries.
    pub entries: i64,
    /// The last entry's hash.
    pub head: String,
}

/// Verifies the whole chain, streaming it from the database.
pub fn verify(tx: &Tx<'_>) -> Result<Result<Verified, ChainError>, StoreError> {
    let mut st = tx
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = st.query([])?;
    let mut v = ChainVerifier::default();
    while let Some(r) = rows.next()? {
        if let Err(e) = v.push(&entry(r)?) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(Verified {
        entries: v.verified(),
        head: v.head().to_owned(),
    }))
}

/// Stores a checkpoint (made by the node's checkpoint job).
pub fn insert_checkpoint(w: &WriteCtx<'_>, cp: &AuditCheckpoint) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO audit_checkpoints (number, seq, hash, signed_at, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        cp.number,
        cp.seq,
        cp.hash,
        cp.signed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        cp.signature,
    ])?;
    Ok(())
}

fn checkpoint(r: &Row<'_>) -> Result<AuditCheckpoint, StoreError> {
    let at: String = r.get(3)?;
    let signed_at = DateTime::parse_from_rfc3339(&at)
        .map_err(|e| StoreError::Corrupt(format!("audit checkpoint time {at:?}: {e}")))?
        .with_timezone(&Utc);
    Ok(AuditCheckpoint {
        number: r.get(0)?,
        seq: r.get(1)?,
        hash: r.get(2)?,
        signed_at,
        signature: r.get(4)?,
    })
}

/// Whether the database has checkpoints at all: a copy or database from before schema 4,
/// read without migrating it (a backup being checked, `audit verify` on a stopped node), has
/// none, and its chain is verified alone.
fn has_checkpoints(tx: &Tx<'_>) -> Result<bool, StoreError> {
    Ok(tx.conn().query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'",
        [],
        |r| r.get(0),
    )?)
}

/// The newest checkpoint, if any.
pub fn latest_checkpoint(tx: &Tx<'_>) -> Result<Option<AuditCheckpoint>, StoreError> {
    if !has_checkpoints(tx)? {
        return Ok(None);
    }
    let mut st = tx.conn().prepare_cached(
        "SELECT number, seq, hash, signed_at, signature FROM audit_checkpoints ORDER BY number DESC LIMIT 1",
    )?;
    let mut rows = st.query([])?;
    rows.next()?.map(checkpoint).transpose()
}

/// Checkpoints numbered above `after`, oldest first, at most `limit` (for export).
pub fn checkpoints(
    tx: &Tx<'_>,
    after: i64,
    limit: u32,
) -> Result<Vec<AuditCheckpoint>, StoreError> {
    if !has_checkpoints(tx)? {
        return Ok(Vec::new());
    }
    let mut st = tx.conn().prepare_cached(
        "SELECT number, seq, hash, signed_at, signature FROM audit_checkpoints
         WHERE number > ?1 ORDER BY number LIMIT ?2",
    )?;
    let mut rows = st.query(params![after, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(checkpoint(r)?);
    }
    Ok(out)
}

/// Verifies the whole chain and checks it against every checkpoint on the node and the
/// `exported` copies, with the node's own signing key.
pub fn verify_trail(
    tx: &Tx<'_>,
    exported: Vec<AuditCheckpoint>,
) -> Result<Result<Trail, TrailError>, StoreError> {
    let (key, _) = keys::public_keys(tx)?;
    let on_node = checkpoints(tx, 0, u32::MAX)?;
    let mut v = match TrailVerifier::new(on_node, exported, &key) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut st = tx
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        if let Err(e) = v.push(&entry(r)?) {
            return Ok(Err(e));
        }
    }
    Ok(v.finish())
}

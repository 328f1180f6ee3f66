//! The audit trail in the database: appending (by the writer), reading, and verifying; and
//! the node's signed checkpoints of its head (`audit_checkpoints`), which anchor the chain's
//! end (see `protocol::audit::checkpoint`).

use carebridge_protocol::audit::checkpoint::{AuditCheckpoint, Trail, TrailError, TrailVerifier};
use std::collections::HashMap;

use crate::store::sql::{Dialect, OptionalExtension, Row, params};
use carebridge_protocol::PatientId;
use carebridge_protocol::audit::{
    AuditEntry, AuditLine, AuditQuery, AuditRecord, ChainError, ChainVerifier, Outcome,
};
use chrono::{DateTime, Utc};

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
        r.outcome.as_str(),
        tx.conn().seal(&r.detail)?,
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

fn entry(r: &Row) -> Result<AuditEntry, StoreError> {
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

/// The filters of [`list`] and [`count`]: `?1`, `?2` and `?4`–`?9` as [`list`] binds them.
///
/// Each filter is present in the statement whether used or not (`(… OR ?n IS NULL)`, in that
/// order: PostgreSQL takes a placeholder's type from its first use, which `IS NULL` does not
/// give), so there is one statement to cache. Times are
/// stored as RFC 3339 in UTC with as many digits as they need ("…T12:00:00Z",
/// "…T12:00:00.25Z"), whose text order is not the time order: both sides are compared in one
/// form, to the millisecond.
fn filter(dialect: Dialect) -> String {
    // `recorded_at` in the same text form as the bounds, to the millisecond.
    let at = match dialect {
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%f', recorded_at)",
        Dialect::Postgres => {
            "to_char(recorded_at::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
        }
    };
    format!(
        "seq > ?1 AND seq < ?2
       AND (entity = ?3 OR ?3 IS NULL)
       AND (actor = ?4 OR ?4 IS NULL)
       AND (action = ?5 OR substr(action, 1, length(?5) + 1) = ?5 || '.' OR ?5 IS NULL)
       AND (entity IN (
             SELECT 'patient/' || ?6
             UNION ALL SELECT 'appointment/' || id FROM appointments WHERE patient_id = ?6
             UNION ALL SELECT 'report/' || id FROM reports WHERE patient_id = ?6
             UNION ALL SELECT 'transmission/' || id FROM transmissions WHERE patient_id = ?6) OR ?6 IS NULL)
       AND ({at} >= ?7 OR ?7 IS NULL)
       AND ({at} < ?8 OR ?8 IS NULL)"
    )
}

/// How many entries match every filter of `q` (its `limit` aside).
pub fn count(tx: &Tx<'_>, q: &AuditQuery) -> Result<u64, StoreError> {
    let (after, before, _) = bounds(q);
    let millis = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    let conn = tx.conn();
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM audit WHERE {}",
            filter(conn.dialect())
        ))?
        .query_row(
            params![
                after,
                before,
                q.entity,
                q.actor,
                q.action,
                q.patient.map(|p| p.to_string()),
                q.from.as_ref().map(millis),
                q.to.as_ref().map(millis),
            ],
            |r| r.get(0),
        )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `after`, `before` and the order `q` reads in: with `before`, newest first (reading back
/// from the newest); else oldest first.
fn bounds(q: &AuditQuery) -> (i64, i64, &'static str) {
    match q.before {
        Some(b) => (q.after.unwrap_or(0), b, "DESC"),
        None => (q.after.unwrap_or(0), i64::MAX, "ASC"),
    }
}

/// Reads entries for an admin, oldest first (newest first with `before`), through every
/// filter of `q` but `card_number`, which the caller resolves first ([`patient_of_card`]).
pub fn list(tx: &Tx<'_>, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (after, before, order) = bounds(q);
    let conn = tx.conn();
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit WHERE {} ORDER BY seq {order} LIMIT ?9",
        filter(conn.dialect())
    ))?;
    let millis = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    let mut rows = st.query(params![
        after,
        before,
        q.entity,
        q.actor,
        q.action,
        q.patient.map(|p| p.to_string()),
        q.from.as_ref().map(millis),
        q.to.as_ref().map(millis),
        limit,
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(entry(r)?);
    }
    Ok(out)
}

/// The patient who holds `card`, if anyone does.
pub fn patient_of_card(tx: &Tx<'_>, card: &str) -> Result<Option<PatientId>, StoreError> {
    let conn = tx.conn();
    let id: Option<String> = match conn.blind_index(crate::store::seal::Lookup::Card, card) {
        Some(index) => conn
            .prepare_cached("SELECT id FROM patients WHERE card_index = ?1")?
            .query_row(params![index], |r| r.get(0)),
        None => conn
            .prepare_cached("SELECT id FROM patients WHERE card_number = ?1")?
            .query_row([card], |r| r.get(0)),
    }
    .optional()?;
    id.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("patient id {s:?}")))
    })
    .transpose()
}

/// `entries` as an admin reads them: each with its actor's name and the name of what it
/// touched, looked up now (a renamed account shows its new name; a name is never part of
/// what the chain hashes).
pub fn lines(tx: &Tx<'_>, entries: Vec<AuditEntry>) -> Result<Vec<AuditLine>, StoreError> {
    let mut names = Names::new(tx);
    entries
        .into_iter()
        .map(|entry| {
            let actor_name = names.of_actor(&entry.record.actor)?;
            let (entity_name, patient) = names.of_entity(&entry.record.entity)?;
            Ok(AuditLine {
                entry,
                actor_name,
                entity_name,
                patient,
            })
        })
        .collect()
}

/// Names looked up for one page of the trail, each once.
struct Names<'t> {
    tx: &'t Tx<'t>,
    seen: HashMap<String, (Option<String>, Option<PatientId>)>,
}

impl<'t> Names<'t> {
    fn new(tx: &'t Tx<'t>) -> Self {
        Self {
            tx,
            seen: HashMap::new(),
        }
    }

    /// `staff:<id>` → the display name, `kiosk:<id>` → the label, `peer:<name>` → the name.
    fn of_actor(&mut self, actor: &str) -> Result<Option<String>, StoreError> {
        let Some((kind, id)) = actor.split_once(':') else {
            return Ok(None);
        };
        let entity = match kind {
            "staff" => format!("practitioner/{id}"),
            "kiosk" => format!("kiosk/{id}"),
            "peer" if id != "unknown" => return Ok(Some(id.to_owned())),
            _ => return Ok(None),
        };
        Ok(self.of_entity(&entity)?.0)
    }

    /// The name of what `entity` names, and the patient whose record it belongs to.
    fn of_entity(
        &mut self,
        entity: &str,
    ) -> Result<(Option<String>, Option<PatientId>), StoreError> {
        if let Some(found) = self.seen.get(entity) {
            return Ok(found.clone());
        }
        let Some((kind, id)) = entity.split_once('/') else {
            return Ok((None, None));
        };
        // Names are joined here, not in SQL: on PostgreSQL they are sealed (`seal.rs`).
        const PATIENT: &str = "SELECT p.id, p.given_name, p.family_name, NULL FROM patients p";
        let sql = match kind {
            "patient" => format!("{PATIENT} WHERE p.id = ?1"),
            "appointment" => {
                format!("{PATIENT} JOIN appointments a ON a.patient_id = p.id WHERE a.id = ?1")
            }
            "report" => format!("{PATIENT} JOIN reports r ON r.patient_id = p.id WHERE r.id = ?1"),
            "transmission" => "SELECT t.patient_id, p.given_name, p.family_name, t.peer
                 FROM transmissions t LEFT JOIN patients p ON p.id = t.patient_id WHERE t.id = ?1"
                .to_owned(),
            "practitioner" => {
                "SELECT NULL, NULL, display_name, NULL FROM practitioners WHERE id = ?1".to_owned()
            }
            "kiosk" => "SELECT NULL, NULL, label, NULL FROM kiosk_devices WHERE id = ?1".to_owned(),
            "peer" | "received" => return Ok((Some(id.to_owned()), None)),
            _ => return Ok((None, None)),
        };
        let found: Option<(Option<String>, String)> = self
            .tx
            .conn()
            .prepare_cached(&sql)?
            .query_row([id], |r| {
                let given: Option<String> = r.get(1)?;
                let family: Option<String> = r.get(2)?;
                let otherwise: Option<String> = r.get(3)?;
                let name = match (given, family) {
                    (Some(g), Some(f)) => Some(format!("{g} {f}")),
                    (None, Some(only)) => Some(only),
                    _ => otherwise,
                };
                Ok((r.get(0)?, name))
            })
            .optional()?
            .and_then(|(patient, name)| name.map(|n| (patient, n)));
        let named = match found {
            Some((patient, name)) => (
                Some(name),
                patient.and_then(|p| p.parse::<PatientId>().ok()),
            ),
            None => (None, None),
        };
        self.seen.insert(entity.to_owned(), named.clone());
        Ok(named)
    }
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

fn checkpoint(r: &Row) -> Result<AuditCheckpoint, StoreError> {
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
    let conn = tx.conn();
    Ok(conn.query_row(
        match conn.dialect() {
            Dialect::Sqlite => {
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'"
            }
            // A PostgreSQL database starts at a schema that has them.
            Dialect::Postgres => "SELECT true",
        },
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

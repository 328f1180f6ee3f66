//! Records from the node: written into the typed tables by version, from the snapshot and from
//! live events.

use carebridge_protocol::appointment::Appointment;
use carebridge_protocol::event::LiveEvent;
use carebridge_protocol::patient::{Patient, search_key};
use carebridge_protocol::practitioner::Practitioner;
use carebridge_protocol::report::Report;
use carebridge_protocol::schedule::{Absence, Schedule};
use carebridge_protocol::snapshot::SnapshotItem;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::value::RawValue;

use super::LocalStore;
use crate::error::CoreError;

/// A record as the node sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeRecord {
    /// A staff user.
    Practitioner(Practitioner),
    /// A doctor's working hours.
    Schedule(Schedule),
    /// A period a doctor is away.
    Absence(Absence),
    /// A patient.
    Patient(Patient),
    /// An appointment.
    Appointment(Appointment),
    /// A medical report.
    Report(Report),
}

impl NodeRecord {
    /// The record's kind, as the store names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Practitioner(_) => "practitioner",
            Self::Schedule(_) => "schedule",
            Self::Absence(_) => "absence",
            Self::Patient(_) => "patient",
            Self::Appointment(_) => "appointment",
            Self::Report(_) => "report",
        }
    }

    /// The record's id (a schedule is keyed by its practitioner).
    pub fn id(&self) -> String {
        match self {
            Self::Practitioner(p) => p.id.to_string(),
            Self::Schedule(s) => s.practitioner_id.to_string(),
            Self::Absence(a) => a.id.to_string(),
            Self::Patient(p) => p.id.to_string(),
            Self::Appointment(a) => a.id.to_string(),
            Self::Report(r) => r.id.to_string(),
        }
    }

    /// The record's version (an absence never changes once recorded).
    pub fn version(&self) -> i64 {
        match self {
            Self::Practitioner(p) => p.version,
            Self::Schedule(s) => s.version,
            Self::Absence(_) => 1,
            Self::Patient(p) => p.version,
            Self::Appointment(a) => a.version,
            Self::Report(r) => r.version,
        }
    }

    fn to_json(&self) -> Result<String, CoreError> {
        let r = match self {
            Self::Practitioner(p) => serde_json::to_string(p),
            Self::Schedule(s) => serde_json::to_string(s),
            Self::Absence(a) => serde_json::to_string(a),
            Self::Patient(p) => serde_json::to_string(p),
            Self::Appointment(a) => serde_json::to_string(a),
            Self::Report(r) => serde_json::to_string(r),
        };
        r.map_err(|e| CoreError::Protocol(e.to_string()))
    }

    pub(super) fn from_json(kind: &str, data: &str) -> Result<Self, CoreError> {
        let bad = |e: serde_json::Error| CoreError::Protocol(format!("stored {kind}: {e}"));
        Ok(match kind {
            "practitioner" => Self::Practitioner(serde_json::from_str(data).map_err(bad)?),
            "schedule" => Self::Schedule(serde_json::from_str(data).map_err(bad)?),
            "absence" => Self::Absence(serde_json::from_str(data).map_err(bad)?),
            "patient" => Self::Patient(serde_json::from_str(data).map_err(bad)?),
            "appointment" => Self::Appointment(serde_json::from_str(data).map_err(bad)?),
            "report" => Self::Report(serde_json::from_str(data).map_err(bad)?),
            other => return Err(CoreError::Protocol(format!("unknown record kind {other}"))),
        })
    }

    fn from_snapshot(item: SnapshotItem) -> Option<Self> {
        match item {
            SnapshotItem::Practitioner(p) => Some(Self::Practitioner(p)),
            SnapshotItem::Schedule(s) => Some(Self::Schedule(s)),
            SnapshotItem::Patient(p) => Some(Self::Patient(p)),
            SnapshotItem::Appointment(a) => Some(Self::Appointment(a)),
            SnapshotItem::Report(r) => Some(Self::Report(r)),
            SnapshotItem::Begin { .. } | SnapshotItem::End { .. } => None,
        }
    }
}

impl NodeRecord {
    /// Whether a live event carries a record the client mirrors; the others are news of
    /// exchanges with peers, which the client reads from the node when shown. Every kind is
    /// named, so a new one must be placed here.
    pub fn is_carried_by(e: &LiveEvent) -> bool {
        match e {
            LiveEvent::Appointment(_)
            | LiveEvent::Patient(_)
            | LiveEvent::Schedule(_)
            | LiveEvent::Absence(_)
            | LiveEvent::Report(_) => true,
            LiveEvent::Transmission(_)
            | LiveEvent::ReceivedReports(_)
            | LiveEvent::ReceivedDeleted(_)
            | LiveEvent::AdminUpdate(_)
            | LiveEvent::Consent(_)
            | LiveEvent::ImagingOrder(_)
            | LiveEvent::ImagingStudy(_)
            | LiveEvent::Document(_)
            | LiveEvent::RemoteAccess(_)
            | LiveEvent::IncomingAccess(_)
            | LiveEvent::Transfer(_) => false,
        }
    }

    /// The record a live event carries; `None` for other events (see [`Self::is_carried_by`]).
    pub fn from_event(e: LiveEvent) -> Option<Self> {
        Some(match e {
            LiveEvent::Appointment(a) => Self::Appointment(a),
            LiveEvent::Patient(p) => Self::Patient(p),
            LiveEvent::Schedule(s) => Self::Schedule(s),
            LiveEvent::Absence(a) => Self::Absence(a),
            LiveEvent::Report(r) => Self::Report(r),
            LiveEvent::Transmission(_)
            | LiveEvent::ReceivedReports(_)
            | LiveEvent::ReceivedDeleted(_)
            | LiveEvent::AdminUpdate(_)
            | LiveEvent::Consent(_)
            | LiveEvent::ImagingOrder(_)
            | LiveEvent::ImagingStudy(_)
            | LiveEvent::Document(_)
            | LiveEvent::RemoteAccess(_)
            | LiveEvent::IncomingAccess(_)
            | LiveEvent::Transfer(_) => {
                return None;
            }
        })
    }
}

/// A live event that changed what the user sees, with the appointment as it was before (for
/// deciding whether it is news to the user).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The event's id.
    pub event_id: i64,
    /// The record's new state.
    pub record: NodeRecord,
    /// For an appointment: its previous state here, if it was known.
    pub previous: Option<Appointment>,
}

/// The kinds of record a snapshot carries, by their tables' names.
pub(super) const SNAPSHOT_KINDS: [&str; 5] = [
    "practitioner",
    "schedule",
    "patient",
    "appointment",
    "report",
];

/// The table holding a kind of record.
pub(super) fn table(kind: &str) -> Result<&'static str, CoreError> {
    Ok(match kind {
        "practitioner" => "practitioner",
        "schedule" => "schedule",
        "absence" => "absence",
        "patient" => "patient",
        "appointment" => "appointment",
        "report" => "report",
        other => return Err(CoreError::Protocol(format!("unknown record kind {other}"))),
    })
}

/// How a record from the node landed.
pub(super) enum Landed {
    /// It is what the user now sees.
    Shown {
        /// The appointment before, when asked for.
        previous: Option<Box<Appointment>>,
    },
    /// The stored version is as new or newer.
    Stale,
    /// Local changes to it are pending: it became the state to fall back on.
    Shadowed,
}

/// Stores a record from the node unless a newer (or the same) version is already there.
pub(super) fn land(
    tx: &Transaction<'_>,
    record: &NodeRecord,
    want_previous: bool,
    shadows: bool,
) -> Result<Landed, CoreError> {
    land_as(tx, record, None, want_previous, shadows)
}

/// [`land`], with the record's JSON as the node sent it when at hand (`json`).
fn land_as(
    tx: &Transaction<'_>,
    record: &NodeRecord,
    json: Option<&str>,
    want_previous: bool,
    shadows: bool,
) -> Result<Landed, CoreError> {
    let data = |record: &NodeRecord| -> Result<std::borrow::Cow<'_, str>, CoreError> {
        Ok(match json {
            Some(j) => j.into(),
            None => record.to_json()?.into(),
        })
    };
    let kind = record.kind();
    let id = record.id();
    let version = record.version();
    if shadows {
        let shadow: Option<i64> = tx
            .prepare_cached("SELECT version FROM shadow WHERE kind = ?1 AND id = ?2")?
            .query_row(params![kind, id], |r| r.get(0))
            .optional()?;
        if let Some(shadow) = shadow {
            if version > shadow {
                tx.prepare_cached(
                    "UPDATE shadow SET version = ?3, data = ?4 WHERE kind = ?1 AND id = ?2",
                )?
                .execute(params![kind, id, version, data(record)?])?;
            }
            return Ok(Landed::Shadowed);
        }
    }
    let table = table(kind)?;
    let existing: Option<(i64, i64, String)> = tx
        .prepare_cached(&format!(
            "SELECT rowid, version, data FROM {table} WHERE id = ?1"
        ))?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((rowid, stored, old_data)) = existing else {
        write_row_as(tx, record, &data(record)?, false, None)?;
        return Ok(Landed::Shown { previous: None });
    };
    if stored >= version {
        return Ok(Landed::Stale);
    }
    let old = match kind {
        "patient" | "appointment" => Some(NodeRecord::from_json(kind, &old_data)?),
        _ => None,
    };
    write_row_as(
        tx,
        record,
        &data(record)?,
        false,
        Some((rowid, old.as_ref().and_then(fts_body))),
    )?;
    let previous = match old {
        Some(NodeRecord::Appointment(a)) if want_previous => Some(Box::new(a)),
        _ => None,
    };
    Ok(Landed::Shown { previous })
}

/// Inserts a patient or an appointment of a first sync as a new row, without looking for a
/// stored one first. `false`: not done (another kind, or the id is already stored, which
/// [`land_as`] then settles by version).
fn insert_new(
    tx: &Transaction<'_>,
    record: &NodeRecord,
    json: Option<&str>,
) -> Result<bool, CoreError> {
    if !matches!(record, NodeRecord::Patient(_) | NodeRecord::Appointment(_)) {
        return Ok(false);
    }
    let data = match json {
        Some(j) => std::borrow::Cow::Borrowed(j),
        None => record.to_json()?.into(),
    };
    match write_row_as(tx, record, &data, false, None) {
        Ok(()) => Ok(true),
        Err(CoreError::Store(rusqlite::Error::SqliteFailure(e, _)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether any record has pending local changes (when none, records from the node need no
/// shadow lookup).
fn any_shadow(tx: &Transaction<'_>) -> Result<bool, CoreError> {
    Ok(tx.query_row("SELECT EXISTS (SELECT 1 FROM shadow)", [], |r| r.get(0))?)
}

/// The text the full-text index holds for a record (patients and appointments only).
pub(super) fn fts_body(record: &NodeRecord) -> Option<String> {
    match record {
        NodeRecord::Patient(p) => Some(format!(
            "{} {} {}",
            p.given_name, p.family_name, p.card_number
        )),
        NodeRecord::Appointment(a) => Some(format!("{} {}", a.reason, a.reference)),
        _ => None,
    }
}

/// The row a record already has: its rowid, and what the full-text index holds for it.
pub(super) type Existing = Option<(i64, Option<String>)>;

/// Writes `record` as the row the user sees (`pending`: showing a local change): updates the
/// existing row in place, or inserts one, and touches the full-text index only when the
/// indexed text changed (a status change, the common event, leaves it alone).
pub(super) fn write_row(
    tx: &Transaction<'_>,
    record: &NodeRecord,
    pending: bool,
    existing: Existing,
) -> Result<(), CoreError> {
    write_row_as(tx, record, &record.to_json()?, pending, existing)
}

/// [`write_row`] with the record's JSON already at hand (`data`: the record as the node sent
/// it, kept as is rather than serialised again).
fn write_row_as(
    tx: &Transaction<'_>,
    record: &NodeRecord,
    data: &str,
    pending: bool,
    existing: Existing,
) -> Result<(), CoreError> {
    let id = record.id();
    let version = record.version();
    let rowid = existing.as_ref().map(|(r, _)| *r);
    let new_rowid: i64 = match record {
        NodeRecord::Practitioner(_) | NodeRecord::Schedule(_) => {
            let table = record.kind();
            tx.prepare_cached(&format!(
                "INSERT INTO {table} (id, version, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data"
            ))?
            .execute(params![id, version, data])?;
            return Ok(());
        }
        NodeRecord::Absence(a) => {
            tx.prepare_cached(
                "INSERT INTO absence (id, practitioner_id, start_ms, version, data) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data",
            )?
            .execute(params![id, a.practitioner_id.to_string(), a.start.timestamp_millis(), version, data])?;
            return Ok(());
        }
        NodeRecord::Patient(p) => {
            let values = params![
                rowid,
                id,
                version,
                search_key(&p.family_name),
                search_key(&p.given_name),
                p.birth_date.to_string(),
                p.card_number,
                pending,
                data
            ];
            if rowid.is_some() {
                tx.prepare_cached(
                    "UPDATE patient SET id = ?2, version = ?3, family_key = ?4, given_key = ?5, birth_date = ?6,
                     card_number = ?7, pending = ?8, data = ?9 WHERE rowid = ?1",
                )?
                .execute(values)?;
                rowid.unwrap_or_default()
            } else {
                tx.prepare_cached(
                    "INSERT INTO patient (rowid, id, version, family_key, given_key, birth_date, card_number, pending, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(values)?;
                tx.last_insert_rowid()
            }
        }
        NodeRecord::Report(r) => {
            tx.prepare_cached(
                "INSERT INTO report (id, version, patient_id, status, updated_ms, pending, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, status = excluded.status,
                     updated_ms = excluded.updated_ms, pending = excluded.pending, data = excluded.data",
            )?
            .execute(params![
                id,
                version,
                r.patient_id.to_string(),
                r.status.as_str(),
                r.updated_at.timestamp_millis(),
                pending,
                data
            ])?;
            return Ok(());
        }
        NodeRecord::Appointment(a) => {
            let values = params![
                rowid,
                id,
                version,
                a.practitioner_id.to_string(),
                a.patient_id.to_string(),
                a.start.timestamp_millis(),
                a.end.timestamp_millis(),
                a.status.as_str(),
                pending,
                data
            ];
            if rowid.is_some() {
                tx.prepare_cached(
                    "UPDATE appointment SET id = ?2, version = ?3, practitioner_id = ?4, patient_id = ?5, start_ms = ?6,
                     end_ms = ?7, status = ?8, pending = ?9, data = ?10 WHERE rowid = ?1",
                )?
                .execute(values)?;
                rowid.unwrap_or_default()
            } else {
                tx.prepare_cached(
                    "INSERT INTO appointment (rowid, id, version, practitioner_id, patient_id, start_ms, end_ms, status, pending, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(values)?;
                tx.last_insert_rowid()
            }
        }
    };
    let body = fts_body(record);
    let old_body = existing.and_then(|(_, b)| b);
    if rowid.is_some() && old_body == body {
        return Ok(());
    }
    let fts = format!("{}_text", record.kind());
    if rowid.is_some() {
        tx.prepare_cached(&format!("DELETE FROM {fts} WHERE rowid = ?1"))?
            .execute([new_rowid])?;
    }
    if let Some(body) = body {
        tx.prepare_cached(&format!("INSERT INTO {fts} (rowid, body) VALUES (?1, ?2)"))?
            .execute(params![new_rowid, body])?;
    }
    Ok(())
}

/// Removes the row the user sees for a record (a local creation the node refused), with its
/// full-text entry.
pub(super) fn delete_row(tx: &Transaction<'_>, kind: &str, id: &str) -> Result<(), CoreError> {
    let table = table(kind)?;
    let rowid: Option<i64> = tx
        .prepare_cached(&format!("SELECT rowid FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(rowid) = rowid {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE rowid = ?1"))?
            .execute([rowid])?;
        if matches!(kind, "patient" | "appointment") {
            tx.prepare_cached(&format!("DELETE FROM {kind}_text WHERE rowid = ?1"))?
                .execute([rowid])?;
        }
    }
    Ok(())
}

/// At the end of a snapshot read after a reset: removes the records it did not hold (gone from
/// what the user may see while the client was away), except those with the user's changes
/// waiting (the outbox settles them with the node).
fn remove_unconfirmed(tx: &Transaction<'_>) -> Result<(), CoreError> {
    let gone: Vec<(String, String)> = tx
        .prepare(
            "SELECT kind, id FROM unconfirmed u
             WHERE NOT EXISTS (SELECT 1 FROM shadow s WHERE s.kind = u.kind AND s.id = u.id)",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, id) in &gone {
        delete_row(tx, kind, id)?;
    }
    tx.execute("DELETE FROM unconfirmed", [])?;
    Ok(())
}

/// One line of the node's snapshot: the item, and the record's JSON exactly as the node sent
/// it, which the store keeps as is instead of serialising the record again.
#[derive(Debug, Clone)]
pub struct SnapshotLine {
    /// The line, decoded.
    pub item: SnapshotItem,
    /// The record's `data` as sent (`None`: serialise the item's record).
    pub json: Option<Box<RawValue>>,
}

impl From<SnapshotItem> for SnapshotLine {
    fn from(item: SnapshotItem) -> Self {
        Self { item, json: None }
    }
}

impl SnapshotLine {
    /// Decodes one NDJSON line of a snapshot (`{"kind": …, "data": …}`), keeping the record's
    /// JSON as it came.
    pub fn parse(line: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Parts<'a> {
            #[serde(borrow)]
            kind: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
        }
        let parts: Parts<'_> = serde_json::from_slice(line)?;
        let Some(data) = parts.data else {
            return serde_json::from_slice(line).map(SnapshotItem::into);
        };
        let json = data.get();
        let item = match parts.kind.as_ref() {
            "practitioner" => SnapshotItem::Practitioner(serde_json::from_str(json)?),
            "schedule" => SnapshotItem::Schedule(serde_json::from_str(json)?),
            "patient" => SnapshotItem::Patient(serde_json::from_str(json)?),
            "appointment" => SnapshotItem::Appointment(serde_json::from_str(json)?),
            "report" => SnapshotItem::Report(serde_json::from_str(json)?),
            // `begin`, `end`, and whatever a newer node may add: decoded whole.
            _ => return serde_json::from_slice(line).map(SnapshotItem::into),
        };
        Ok(Self {
            item,
            json: Some(data.to_owned()),
        })
    }
}

impl LocalStore {
    /// Stores a batch of snapshot lines in one transaction, with where the snapshot stands.
    ///
    /// A snapshot into a store that holds no patients or appointments (the first sync) drops
    /// their secondary indexes at its first line and builds them at its last: the indexes of a
    /// large hospital are then built by one sort each, not by a random insert per record. They
    /// are back before the sync counts as complete, also after an interrupted sync resumes, and
    /// are checked on every open of a synced store. While those indexes are away, the records go
    /// in without first looking for a stored one (a conflict falls back to the look-up, so
    /// nothing newer is overwritten).
    pub async fn apply_snapshot_batch<L: Into<SnapshotLine> + Send + 'static>(
        &self,
        lines: Vec<L>,
    ) -> Result<(), CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let shadows = any_shadow(&tx)?;
            // Re-reading after a reset: each record the snapshot holds is confirmed.
            let confirming: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM unconfirmed)", [], |r| r.get(0))?;
            let mut bulk = !shadows && !confirming && super::schema::bulk_indexes_dropped(&tx)?;
            if bulk {
                super::schema::bulk_load_cache(&tx)?;
            }
            let mut cursor = None;
            for line in lines {
                let SnapshotLine { item, json } = line.into();
                match item {
                    SnapshotItem::Begin { event_id } => {
                        // Only the first snapshot's point counts: events are followed from it.
                        tx.execute(
                            "INSERT INTO sync_state (key, value) VALUES ('snapshot_event_id', ?1) ON CONFLICT (key) DO NOTHING",
                            [event_id.to_string()],
                        )?;
                        let empty: bool = tx.query_row(
                            "SELECT NOT EXISTS (SELECT 1 FROM patient) AND NOT EXISTS (SELECT 1 FROM appointment)",
                            [],
                            |r| r.get(0),
                        )?;
                        if empty {
                            super::schema::drop_bulk_indexes(&tx)?;
                            super::schema::bulk_load_cache(&tx)?;
                            bulk = !shadows && !confirming;
                        }
                    }
                    SnapshotItem::End { .. } => {
                        if confirming {
                            remove_unconfirmed(&tx)?;
                        }
                        super::schema::ensure_bulk_indexes(&tx)?;
                        bulk = false;
                        tx.execute(
                            "INSERT INTO sync_state (key, value) VALUES ('snapshot_complete', '1') ON CONFLICT (key) DO UPDATE SET value = '1'",
                            [],
                        )?;
                    }
                    item => {
                        cursor = item.cursor();
                        if let Some(record) = NodeRecord::from_snapshot(item) {
                            if confirming {
                                tx.prepare_cached(
                                    "DELETE FROM unconfirmed WHERE kind = ?1 AND id = ?2",
                                )?
                                .execute(params![record.kind(), record.id()])?;
                            }
                            let json = json.as_deref().map(RawValue::get);
                            if !(bulk && insert_new(&tx, &record, json)?) {
                                land_as(&tx, &record, json, false, shadows)?;
                            }
                        }
                    }
                }
            }
            if let Some(cursor) = cursor {
                tx.execute(
                    "INSERT INTO sync_state (key, value) VALUES ('snapshot_cursor', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [cursor],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Applies live events in one transaction, together with the last event id, so a crash
    /// can never keep a change without its position or the position without its change.
    /// Events at or before the stored position are skipped (a replay after a reconnect), and a
    /// record older than the stored one changes nothing. Returns what changed for the user,
    /// in order: only these may be news worth a notification.
    pub async fn apply_events(
        &self,
        events: Vec<(i64, LiveEvent)>,
    ) -> Result<Vec<Applied>, CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let shadows = any_shadow(&tx)?;
            let state = super::sync_state(&tx)?;
            let last = state.last_event_id.or(state.snapshot_event_id).unwrap_or(0);
            let mut head = last;
            let mut applied = Vec::new();
            for (event_id, event) in events {
                if event_id <= head {
                    continue;
                }
                head = event_id;
                let Some(record) = NodeRecord::from_event(event) else {
                    continue;
                };
                if let Landed::Shown { previous } = land(&tx, &record, true, shadows)? {
                    applied.push(Applied {
                        event_id,
                        record,
                        previous: previous.map(|p| *p),
                    });
                }
            }
            if head > last {
                tx.execute(
                    "INSERT INTO sync_state (key, value) VALUES ('last_event_id', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [head.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(applied)
        })
        .await
    }

    /// Keeps records the node answered a question with (not from the stream), unless a newer
    /// version is already here: e.g. the appointments of a patient who identified at a kiosk,
    /// so that checking in can be queued like any other write.
    pub async fn land_records(&self, records: Vec<NodeRecord>) -> Result<(), CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let shadows = any_shadow(&tx)?;
            for record in &records {
                land(&tx, record, false, shadows)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Moves the stream position past `event_id` (an event this client cannot read), unless
    /// it is already further.
    pub async fn pass_event(&self, event_id: i64) -> Result<(), CoreError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO sync_state (key, value) VALUES ('last_event_id', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE CAST(sync_state.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                [event_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod bulk_tests {
    use carebridge_protocol::PatientId;
    use carebridge_protocol::patient::Patient;
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::store::LocalKey;

    fn patient(family: &str) -> Patient {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Patient {
            id: PatientId::new(),
            global_id: String::new(),
            family_name: family.into(),
            given_name: "Ada".into(),
            birth_date: NaiveDate::from_ymd_opt(1990, 2, 3).unwrap(),
            phone: None,
            email: None,
            card_number: format!("CARD-{family}"),
            version: 1,
            created_at: t,
            updated_at: t,
            transferred_to: None,
        }
    }

    /// A line as the node writes it, with spacing of its own, so that keeping the text as sent
    /// is told apart from serialising again.
    fn line(p: &Patient) -> Vec<u8> {
        let data = serde_json::to_string_pretty(p).unwrap();
        format!("{{\"kind\":\"patient\",\"data\":{data}}}").into_bytes()
    }

    fn begin() -> SnapshotLine {
        SnapshotLine::parse(br#"{"kind":"begin","data":{"event_id":7}}"#).unwrap()
    }

    fn end(records: u64) -> SnapshotLine {
        SnapshotLine::parse(
            format!(r#"{{"kind":"end","data":{{"records":{records}}}}}"#).as_bytes(),
        )
        .unwrap()
    }

    async fn indexes(s: &LocalStore) -> Vec<String> {
        s.with(|c| {
            let names = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
        .unwrap()
    }

    async fn bulk_present(s: &LocalStore) -> usize {
        let have = indexes(s).await;
        super::super::schema::BULK_INDEXES
            .iter()
            .filter(|(n, _)| have.iter().any(|h| h == n))
            .count()
    }

    #[test]
    fn a_line_keeps_the_record_as_sent_and_decodes_as_the_whole_line_does() {
        let p = patient("Okafor");
        let raw = line(&p);
        let parsed = SnapshotLine::parse(&raw).unwrap();
        assert_eq!(parsed.item, SnapshotItem::Patient(p.clone()));
        assert_eq!(
            parsed.item,
            serde_json::from_slice::<SnapshotItem>(&raw).unwrap()
        );
        assert_eq!(
            parsed.json.unwrap().get(),
            serde_json::to_string_pretty(&p).unwrap()
        );
        let b = begin();
        assert_eq!(b.item, SnapshotItem::Begin { event_id: 7 });
        assert!(b.json.is_none());
        assert!(SnapshotLine::parse(br#"{"kind":"patient","data":{"id":1}}"#).is_err());
        assert!(SnapshotLine::parse(b"{\"kind\":\"patient\"").is_err());
    }

    #[tokio::test]
    async fn a_first_sync_builds_its_indexes_at_its_end_even_after_an_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.db");
        let key = LocalKey::random();
        let s = LocalStore::open(&path, &key).unwrap();
        let all = super::super::schema::BULK_INDEXES.len();
        assert_eq!(bulk_present(&s).await, all);
        let first = patient("Okafor");
        s.apply_snapshot_batch(vec![begin(), SnapshotLine::parse(&line(&first)).unwrap()])
            .await
            .unwrap();
        assert_eq!(bulk_present(&s).await, 0, "dropped for the load");
        // The record is kept as the node sent it.
        let kept: String = s
            .with(move |c| {
                Ok(c.query_row(
                    "SELECT data FROM patient WHERE id = ?1",
                    [first.id.to_string()],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(kept, serde_json::to_string_pretty(&first).unwrap());
        // Cut off here; opened again, the sync is not complete and the load goes on without them.
        drop(s);
        let s = LocalStore::open(&path, &key).unwrap();
        assert_eq!(bulk_present(&s).await, 0);
        let second = patient("Nakamura");
        s.apply_snapshot_batch(vec![
            begin(),
            SnapshotLine::parse(&line(&second)).unwrap(),
            end(2),
        ])
        .await
        .unwrap();
        assert_eq!(bulk_present(&s).await, all, "built at the end");
        assert!(s.sync_state().await.unwrap().snapshot_complete);
        let found = s
            .with(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM patient INDEXED BY patient_by_family WHERE family_key >= ''",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(found, 2, "the index holds both patients");
    }

    /// Patients the full-text search finds for `text`, by family name.
    async fn found(s: &LocalStore, text: &str) -> Vec<String> {
        let mut names: Vec<String> = s
            .search(text.into(), 50)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|h| match h {
                crate::store::SearchHit::Patient(p) => Some(p.patient.family_name),
                crate::store::SearchHit::Appointment(_) => None,
            })
            .collect();
        names.sort();
        names
    }

    /// Records of a first sync go in without a look-up; one already stored is settled by
    /// version as always: the newer stays, in either order, with its full-text entry only.
    #[tokio::test]
    async fn a_first_sync_keeps_the_newer_of_two_lines_for_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&dir.path().join("local.db"), &LocalKey::random()).unwrap();
        let old = patient("Okafor");
        let mut new = old.clone();
        new.family_name = "Mensah".into();
        new.version = 2;
        let mut other = patient("Nakamura");
        let mut other_old = other.clone();
        other.version = 3;
        other_old.family_name = "Before".into();
        s.apply_snapshot_batch(vec![
            begin(),
            SnapshotLine::parse(&line(&old)).unwrap(),
            SnapshotLine::parse(&line(&new)).unwrap(),
            SnapshotLine::parse(&line(&other)).unwrap(),
            SnapshotLine::parse(&line(&other_old)).unwrap(),
            end(4),
        ])
        .await
        .unwrap();
        assert_eq!(s.count("patient").await.unwrap(), 2);
        assert_eq!(
            s.version_of("patient", old.id.to_string()).await.unwrap(),
            Some(2)
        );
        assert_eq!(
            s.version_of("patient", other.id.to_string()).await.unwrap(),
            Some(3)
        );
        assert_eq!(found(&s, "ada").await, ["Mensah", "Nakamura"]);
        // Still found by the card number, once: the old name's entry is gone.
        assert_eq!(found(&s, "Okafor").await, ["Mensah"]);
        assert!(found(&s, "Before").await.is_empty());
    }

    /// The checkpointer copies committed pages from the log into the database file on its own
    /// connection: with the writer's own copying turned off, the file grows only through it.
    #[tokio::test]
    async fn the_checkpointer_copies_the_log_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.db");
        let key = LocalKey::random();
        let s = LocalStore::open(&path, &key).unwrap();
        s.with(|c| Ok(c.pragma_update(None, "wal_autocheckpoint", 0)?))
            .await
            .unwrap();
        let file_size = || std::fs::metadata(&path).unwrap().len();
        let before = file_size();
        let mut lines = vec![begin()];
        lines.extend(
            (0..500).map(|i| SnapshotLine::parse(&line(&patient(&format!("P{i}")))).unwrap()),
        );
        lines.push(end(500));
        s.apply_snapshot_batch(lines).await.unwrap();
        assert_eq!(file_size(), before, "committed to the log only");
        let checkpoints = s.checkpointer().await.unwrap();
        tokio::task::spawn_blocking(move || checkpoints.finish())
            .await
            .unwrap();
        assert!(
            file_size() > before + 500 * 200,
            "{} bytes, {before} before",
            file_size()
        );
        drop(s);
        let s = LocalStore::open(&path, &key).unwrap();
        assert_eq!(s.count("patient").await.unwrap(), 500);
    }

    #[tokio::test]
    async fn a_snapshot_into_a_store_with_records_keeps_its_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&dir.path().join("local.db"), &LocalKey::random()).unwrap();
        s.apply_snapshot_batch(vec![SnapshotItem::Patient(patient("Okafor"))])
            .await
            .unwrap();
        s.apply_snapshot_batch(vec![
            begin(),
            SnapshotLine::parse(&line(&patient("Nakamura"))).unwrap(),
        ])
        .await
        .unwrap();
        assert_eq!(
            bulk_present(&s).await,
            super::super::schema::BULK_INDEXES.len()
        );
    }

    #[tokio::test]
    async fn a_synced_store_missing_an_index_gets_it_back_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.db");
        let key = LocalKey::random();
        let s = LocalStore::open(&path, &key).unwrap();
        s.apply_snapshot_batch(vec![begin(), end(0)]).await.unwrap();
        s.with(|c| Ok(c.execute_batch("DROP INDEX appointment_by_start")?))
            .await
            .unwrap();
        drop(s);
        let s = LocalStore::open(&path, &key).unwrap();
        assert_eq!(
            bulk_present(&s).await,
            super::super::schema::BULK_INDEXES.len()
        );
    }
}

//! Doctors' schedules and absences as stored, and the appointments that occupy their time.

use crate::store::sql::{Row, params};
use carebridge_protocol::PractitionerId;
use carebridge_protocol::schedule::{Absence, Schedule};
use chrono::{DateTime, Utc};

use carebridge_protocol::slots::{Occupied, Span};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};
use carebridge_protocol::booking::{MAX_APPOINTMENT, occupying_sql};

/// Reads a doctor's schedule.
pub fn get(tx: &Tx<'_>, who: PractitionerId) -> Result<Option<Schedule>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT slot_minutes, hours, version FROM schedules WHERE practitioner_id = ?1",
    )?;
    let mut rows = st.query([who.to_string()])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let hours: String = r.get(1)?;
    Ok(Some(Schedule {
        practitioner_id: who,
        slot_minutes: r.get(0)?,
        hours: serde_json::from_str(&hours)?,
        version: r.get(2)?,
    }))
}

/// Writes a doctor's schedule (its version already set).
pub fn put(w: &WriteCtx<'_>, s: &Schedule) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO schedules (practitioner_id, slot_minutes, hours, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (practitioner_id) DO UPDATE SET slot_minutes = excluded.slot_minutes,
             hours = excluded.hours, version = excluded.version",
    )?
    .execute(params![
        s.practitioner_id.to_string(),
        s.slot_minutes,
        serde_json::to_string(&s.hours)?,
        s.version
    ])?;
    Ok(())
}

fn absence_from_row(r: &Row) -> Result<Absence, StoreError> {
    let id: String = r.get(0)?;
    let who: String = r.get(1)?;
    Ok(Absence {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("absence id {id}")))?,
        practitioner_id: who
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("practitioner id {who}")))?,
        start: from_millis(r.get(2)?)?,
        end: from_millis(r.get(3)?)?,
        reason: r.get(4)?,
    })
}

/// A doctor's absences overlapping `[from, to)`.
pub fn absences(
    tx: &Tx<'_>,
    who: PractitionerId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Absence>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT id, practitioner_id, start_at, end_at, reason FROM absences
         WHERE practitioner_id = ?1 AND start_at < ?3 AND end_at > ?2 ORDER BY start_at",
    )?;
    let mut rows = st.query(params![
        who.to_string(),
        from.timestamp_millis(),
        to.timestamp_millis()
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(absence_from_row(r)?);
    }
    Ok(out)
}

/// Records an absence.
pub fn insert_absence(w: &WriteCtx<'_>, a: &Absence) -> Result<(), StoreError> {
    w.conn().prepare_cached("INSERT INTO absences (id, practitioner_id, start_at, end_at, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![
            a.id.to_string(),
            a.practitioner_id.to_string(),
            a.start.timestamp_millis(),
            a.end.timestamp_millis(),
            a.reason
        ])?;
    Ok(())
}

/// The live appointments of a practitioner overlapping `[from, to)`.
pub fn occupied(
    tx: &Tx<'_>,
    who: PractitionerId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occupied>, StoreError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT start_at, end_at, status FROM appointments
             WHERE practitioner_id = ?1 AND start_at >= ?2 AND start_at < ?3 AND end_at > ?4
               AND {}
             ORDER BY start_at",
            occupying_sql("status")
        )
    });
    let mut st = tx.conn().prepare_cached(&SQL)?;
    let mut rows = st.query(params![
        who.to_string(),
        (from - MAX_APPOINTMENT).timestamp_millis(),
        to.timestamp_millis(),
        from.timestamp_millis()
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Occupied {
            start: from_millis(r.get(0)?)?,
            end: from_millis(r.get(1)?)?,
            tentative: r.get::<_, String>(2)? == "pending",
        });
    }
    Ok(out)
}

/// The starts of `slots` that have a live, non-override appointment starting exactly there.
pub fn slots_taken(
    tx: &Tx<'_>,
    who: PractitionerId,
    slots: &[Span],
) -> Result<std::collections::HashSet<DateTime<Utc>>, StoreError> {
    let mut taken = std::collections::HashSet::new();
    let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
        return Ok(taken);
    };
    let grid: std::collections::HashMap<i64, DateTime<Utc>> = slots
        .iter()
        .map(|(a, _)| (a.timestamp_millis(), *a))
        .collect();
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT DISTINCT start_at FROM appointments
             WHERE practitioner_id = ?1 AND start_at >= ?2 AND start_at < ?3
               AND {} AND override_reason IS NULL",
            occupying_sql("status")
        )
    });
    let mut st = tx.conn().prepare_cached(&SQL)?;
    let mut rows = st.query(params![
        who.to_string(),
        first.0.timestamp_millis(),
        last.1.timestamp_millis()
    ])?;
    while let Some(r) = rows.next()? {
        if let Some(start) = grid.get(&r.get::<_, i64>(0)?) {
            taken.insert(*start);
        }
    }
    Ok(taken)
}

//! Schedules, absences, and the slots they give.
//!
//! Working hours are local times in the node's IANA time zone; slots are computed per local
//! date and stored (in appointments) as UTC. On a DST change a local time that does not
//! exist (spring forward) gives no slot, and one that occurs twice (fall back) gives the
//! earlier instant; a slot's length is always its real duration.

use carebridge_protocol::PractitionerId;
use carebridge_protocol::schedule::{Absence, Schedule, Slot, SlotStatus};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, Row, params};

use crate::store::{StoreError, from_millis};

pub use carebridge_protocol::slots::{
    Occupied, Span, date_bounds, local_date, slot_at, slot_status as status_of, slot_times,
};

/// The longest appointment the node accepts; also bounds overlap searches.
pub const MAX_APPOINTMENT: Duration = Duration::hours(12);

/// Reads a doctor's schedule.
pub fn get(conn: &Connection, who: PractitionerId) -> Result<Option<Schedule>, StoreError> {
    let mut st = conn.prepare_cached(
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
pub fn put(conn: &Connection, s: &Schedule) -> Result<(), StoreError> {
    conn.prepare_cached(
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

fn absence_from_row(r: &Row<'_>) -> Result<Absence, StoreError> {
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
    conn: &Connection,
    who: PractitionerId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Absence>, StoreError> {
    let mut st = conn.prepare_cached(
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
pub fn insert_absence(conn: &Connection, a: &Absence) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO absences (id, practitioner_id, start_at, end_at, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?
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
    conn: &Connection,
    who: PractitionerId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occupied>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT start_at, end_at, status FROM appointments
         WHERE practitioner_id = ?1 AND start_at >= ?2 AND start_at < ?3 AND end_at > ?4
           AND status NOT IN ('cancelled', 'noshow')
         ORDER BY start_at",
    )?;
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

/// A practitioner's slots on local dates `from..=to`, with their FHIR statuses.
pub fn slots(
    conn: &Connection,
    tz: Tz,
    s: &Schedule,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Slot>, StoreError> {
    let (lo, hi) = date_bounds(tz, from, to);
    let absent = absences(conn, s.practitioner_id, lo, hi)?;
    let busy = occupied(conn, s.practitioner_id, lo, hi)?;
    Ok(carebridge_protocol::slots::slots_between(
        tz, s, from, to, &absent, &busy,
    ))
}

/// How many of `slots` have a live, non-override appointment starting exactly at their start.
fn slots_taken(
    conn: &Connection,
    who: PractitionerId,
    slots: &[Span],
) -> Result<usize, StoreError> {
    let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
        return Ok(0);
    };
    let grid: std::collections::HashSet<i64> =
        slots.iter().map(|(a, _)| a.timestamp_millis()).collect();
    let mut st = conn.prepare_cached(
        "SELECT DISTINCT start_at FROM appointments
         WHERE practitioner_id = ?1 AND start_at >= ?2 AND start_at < ?3
           AND status NOT IN ('cancelled', 'noshow') AND override_reason IS NULL",
    )?;
    let mut rows = st.query(params![
        who.to_string(),
        first.0.timestamp_millis(),
        last.1.timestamp_millis()
    ])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        if grid.contains(&r.get::<_, i64>(0)?) {
            n += 1;
        }
    }
    Ok(n)
}

/// The first free slot starting at or after `from`, looking `horizon_days` ahead.
///
/// A day on which every slot already has an appointment starting at it is skipped after one
/// indexed read of that day's starts, without working out each slot's status, so booking
/// "the next available" stays cheap when weeks are full. Only a day with a possibly free slot
/// gets the full check, so the answer is always the first free slot.
pub fn next_free(
    conn: &Connection,
    tz: Tz,
    s: &Schedule,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> Result<Option<Span>, StoreError> {
    let mut date = local_date(tz, from);
    for _ in 0..=horizon_days {
        let times: Vec<_> = slot_times(tz, s, date, date)
            .into_iter()
            .filter(|(a, _)| *a >= from)
            .collect();
        if let (Some(first), Some(last)) = (times.first(), times.last())
            && slots_taken(conn, s.practitioner_id, &times)? < times.len()
        {
            let absent = absences(conn, s.practitioner_id, first.0, last.1)?;
            let busy = occupied(conn, s.practitioner_id, first.0, last.1)?;
            if let Some(t) = times
                .into_iter()
                .find(|(a, b)| status_of(*a, *b, &absent, &busy) == SlotStatus::Free)
            {
                return Ok(Some(t));
            }
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_triggers_bound_matches_the_longest_appointment() {
        // The schema's overlap triggers scan back this many milliseconds (migration 1).
        assert_eq!(MAX_APPOINTMENT.num_milliseconds(), 43_200_000);
    }
}

//! Schedules, absences, and the slots they give.
//!
//! Working hours are local times in the node's IANA time zone; slots are computed per local
//! date and stored (in appointments) as UTC. On a DST change a local time that does not
//! exist (spring forward) gives no slot, and one that occurs twice (fall back) gives the
//! earlier instant; a slot's length is always its real duration.

use carebridge_protocol::PractitionerId;
use carebridge_protocol::schedule::{Absence, Schedule, Slot, SlotStatus, WorkingHours};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, Row, params};

use crate::store::{StoreError, from_millis};

/// A period of time: start (inclusive) and end (exclusive).
pub type Span = (DateTime<Utc>, DateTime<Utc>);

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

/// The instant of a local date and time, or `None` in a DST gap.
fn local_instant(
    tz: Tz,
    date: NaiveDate,
    hours: &WorkingHours,
    offset_min: i64,
) -> Option<DateTime<Utc>> {
    let t = date.and_time(hours.start) + Duration::minutes(offset_min);
    match tz.from_local_datetime(&t) {
        LocalResult::Single(dt) => Some(dt.with_timezone(&Utc)),
        LocalResult::Ambiguous(early, _) => Some(early.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// The slot times of a schedule on local dates `from..=to`, in order.
pub fn slot_times(tz: Tz, s: &Schedule, from: NaiveDate, to: NaiveDate) -> Vec<Span> {
    let len = i64::from(s.slot_minutes.max(1));
    let mut out = Vec::new();
    let mut date = from;
    while date <= to {
        let mut blocks: Vec<&WorkingHours> = s
            .hours
            .iter()
            .filter(|h| h.weekday == date.weekday())
            .collect();
        blocks.sort_by_key(|h| h.start);
        for h in blocks {
            let count = (h.end - h.start).num_minutes() / len;
            if count == 0 {
                continue;
            }
            let first = local_instant(tz, date, h, 0);
            let last = local_instant(tz, date, h, (count - 1) * len);
            match (first, last) {
                // The usual case: no DST change inside the block, so one offset serves all.
                (Some(a), Some(b)) if b - a == Duration::minutes((count - 1) * len) => {
                    out.extend((0..count).map(|i| {
                        let start = a + Duration::minutes(i * len);
                        (start, start + Duration::minutes(len))
                    }));
                }
                _ => {
                    for i in 0..count {
                        if let Some(start) = local_instant(tz, date, h, i * len) {
                            out.push((start, start + Duration::minutes(len)));
                        }
                    }
                }
            }
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    out
}

/// The local date of an instant in the node's zone.
pub fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The slot that starts at `start`, if the schedule has one.
pub fn slot_at(tz: Tz, s: &Schedule, start: DateTime<Utc>) -> Option<Span> {
    let d = local_date(tz, start);
    slot_times(tz, s, d, d)
        .into_iter()
        .find(|(a, _)| *a == start)
}

/// The UTC bounds of local dates `from..=to`.
pub fn date_bounds(tz: Tz, from: NaiveDate, to: NaiveDate) -> Span {
    let start =
        |d: NaiveDate| match tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            // Midnight itself skipped by DST (rare zones): an hour later exists.
            LocalResult::None => (tz
                .from_local_datetime(&(d.and_hms_opt(1, 0, 0).unwrap_or_default())))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()),
        };
    (start(from), start(to.succ_opt().unwrap_or(to)))
}

/// A time a practitioner's live appointment occupies.
#[derive(Debug, Clone, Copy)]
pub struct Occupied {
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Only a pending (kiosk) booking holds it.
    pub tentative: bool,
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

/// The status of the slot `[start, end)` given what occupies the practitioner's time.
fn status_of(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    absent: &[Absence],
    busy: &[Occupied],
) -> SlotStatus {
    if absent.iter().any(|a| a.start < end && a.end > start) {
        return SlotStatus::BusyUnavailable;
    }
    let mut status = SlotStatus::Free;
    for o in busy.iter().filter(|o| o.start < end && o.end > start) {
        if !o.tentative {
            return SlotStatus::Busy;
        }
        status = SlotStatus::BusyTentative;
    }
    status
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
    Ok(slot_times(tz, s, from, to)
        .into_iter()
        .map(|(start, end)| Slot {
            practitioner_id: s.practitioner_id,
            start,
            end,
            status: status_of(start, end, &absent, &busy),
        })
        .collect())
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
    use chrono::{NaiveTime, Weekday};

    fn sunday_schedule(start: (u32, u32), end: (u32, u32), minutes: u32) -> Schedule {
        Schedule {
            practitioner_id: PractitionerId::new(),
            slot_minutes: minutes,
            hours: vec![WorkingHours {
                weekday: Weekday::Sun,
                start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
                end: NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
            }],
            version: 1,
        }
    }

    #[test]
    fn the_overlap_triggers_bound_matches_the_longest_appointment() {
        // The schema's overlap triggers scan back this many milliseconds (migration 1).
        assert_eq!(MAX_APPOINTMENT.num_milliseconds(), 43_200_000);
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // 2026-03-29: Amsterdam jumps from 02:00 to 03:00.
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let s = sunday_schedule((1, 0), (4, 0), 30);
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let slots = slot_times(tz, &s, d, d);
        let starts: Vec<String> = slots
            .iter()
            .map(|(a, _)| a.format("%H:%M").to_string())
            .collect();
        // Local 01:00, 01:30 (UTC+1), then 03:00, 03:30 (UTC+2); 02:00 and 02:30 do not exist.
        assert_eq!(starts, ["00:00", "00:30", "01:00", "01:30"]);
        assert!(slots.iter().all(|(a, b)| *b - *a == Duration::minutes(30)));
    }

    #[test]
    fn fall_back_takes_the_earlier_instant_once() {
        // 2026-10-25: Amsterdam goes from 03:00 back to 02:00.
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let s = sunday_schedule((2, 0), (3, 0), 30);
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        let starts: Vec<String> = slot_times(tz, &s, d, d)
            .iter()
            .map(|(a, _)| a.format("%H:%M").to_string())
            .collect();
        assert_eq!(starts, ["00:00", "00:30"]);
    }

    #[test]
    fn slot_at_finds_only_real_slot_starts() {
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let s = sunday_schedule((9, 0), (10, 0), 20);
        let d = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let all = slot_times(tz, &s, d, d);
        assert_eq!(all.len(), 3);
        assert_eq!(slot_at(tz, &s, all[1].0), Some(all[1]));
        assert_eq!(slot_at(tz, &s, all[1].0 + Duration::minutes(5)), None);
    }

    #[test]
    fn slot_status_prefers_busy_over_tentative() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = t + Duration::minutes(15);
        let tentative = Occupied {
            start: t,
            end: e,
            tentative: true,
        };
        let booked = Occupied {
            start: t,
            end: e,
            tentative: false,
        };
        assert_eq!(status_of(t, e, &[], &[]), SlotStatus::Free);
        assert_eq!(
            status_of(t, e, &[], &[tentative]),
            SlotStatus::BusyTentative
        );
        assert_eq!(status_of(t, e, &[], &[tentative, booked]), SlotStatus::Busy);
        assert_eq!(
            status_of(e, e + Duration::minutes(15), &[], &[booked]),
            SlotStatus::Free
        );
    }
}

//! The slots a schedule gives, as pure rules both the node and the client compute with.
//!
//! Working hours are local times in the node's IANA time zone; slots are computed per local
//! date and kept as UTC. On a DST change a local time that does not exist (spring forward)
//! gives no slot, and one that occurs twice (fall back) gives the earlier instant; a slot's
//! length is always its real duration.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::appointment::{Appointment, AppointmentStatus};
use crate::schedule::{Absence, Schedule, Slot, SlotStatus, WorkingHours};

/// A period of time: start (inclusive) and end (exclusive).
pub type Span = (DateTime<Utc>, DateTime<Utc>);

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

impl Occupied {
    /// The time `a` occupies, or `None` when it occupies none. Overbooked or not makes no
    /// difference ([`crate::booking`]). A pending appointment holds its time only tentatively.
    pub fn of(a: &Appointment) -> Option<Self> {
        a.occupies_time().then_some(Self {
            start: a.start,
            end: a.end,
            tentative: a.status == AppointmentStatus::Pending,
        })
    }
}

/// The status of the slot `[start, end)` given what occupies the practitioner's time.
pub fn slot_status(
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

/// A practitioner's slots on local dates `from..=to`, given their absences and what occupies
/// their time then.
pub fn slots_between(
    tz: Tz,
    s: &Schedule,
    from: NaiveDate,
    to: NaiveDate,
    absent: &[Absence],
    busy: &[Occupied],
) -> Vec<Slot> {
    slot_times(tz, s, from, to)
        .into_iter()
        .map(|(start, end)| Slot {
            practitioner_id: s.practitioner_id,
            start,
            end,
            status: slot_status(start, end, absent, busy),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PractitionerId;
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
        assert_eq!(slot_status(t, e, &[], &[]), SlotStatus::Free);
        assert_eq!(
            slot_status(t, e, &[], &[tentative]),
            SlotStatus::BusyTentative
        );
        assert_eq!(
            slot_status(t, e, &[], &[tentative, booked]),
            SlotStatus::Busy
        );
        assert_eq!(
            slot_status(e, e + Duration::minutes(15), &[], &[booked]),
            SlotStatus::Free
        );
    }
}

//! The slots a doctor's schedule gives.
//!
//! Working hours are local times in the node's IANA time zone; slots are computed per local
//! date and stored (in appointments) as UTC. On a DST change a local time that does not
//! exist (spring forward) gives no slot, and one that occurs twice (fall back) gives the
//! earlier instant; a slot's length is always its real duration.

use carebridge_protocol::schedule::{Schedule, Slot, SlotStatus};
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::store::{StoreError, Tx, schedules};

pub use carebridge_protocol::slots::{
    Occupied, Span, date_bounds, local_date, slot_at, slot_status as status_of, slot_times,
};

/// The longest appointment (the protocol's rule); also bounds overlap searches.
pub use carebridge_protocol::booking::MAX_APPOINTMENT;

/// A practitioner's slots on local dates `from..=to`, with their FHIR statuses.
pub fn slots(
    tx: &Tx<'_>,
    tz: Tz,
    s: &Schedule,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Slot>, StoreError> {
    let (lo, hi) = date_bounds(tz, from, to);
    let absent = schedules::absences(tx, s.practitioner_id, lo, hi)?;
    let busy = schedules::occupied(tx, s.practitioner_id, lo, hi)?;
    Ok(carebridge_protocol::slots::slots_between(
        tz, s, from, to, &absent, &busy,
    ))
}

/// How many days at most one read of taken starts covers in [`next_free`].
const MOST_DAYS_READ: u64 = 32;

/// The first free slot starting at or after `from`, looking `horizon_days` ahead.
///
/// A day on which every slot already has an appointment starting at it is skipped after an
/// indexed read of its starts, without working out each slot's status, so booking "the next
/// available" stays cheap when weeks are full. The first read covers one day (usually enough),
/// each next one twice as many as the last (up to [`MOST_DAYS_READ`]): on a database across a
/// network a full calendar costs a few round trips, not one per day. Only a day with a
/// possibly free slot gets the full check, so the answer is always the first free slot.
pub fn next_free(
    tx: &Tx<'_>,
    tz: Tz,
    s: &Schedule,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> Result<Option<Span>, StoreError> {
    let first_day = local_date(tz, from);
    let last_day = first_day
        .checked_add_days(Days::new(horizon_days.into()))
        .unwrap_or(NaiveDate::MAX);
    let mut date = first_day;
    let mut days_read = 1;
    loop {
        let until = date
            .checked_add_days(Days::new(days_read - 1))
            .map_or(last_day, |d| d.min(last_day));
        let days: Vec<Vec<Span>> = date
            .iter_days()
            .take_while(|d| *d <= until)
            .map(|d| {
                slot_times(tz, s, d, d)
                    .into_iter()
                    .filter(|(a, _)| *a >= from)
                    .collect()
            })
            .collect();
        let all: Vec<Span> = days.iter().flatten().copied().collect();
        let taken = schedules::slots_taken(tx, s.practitioner_id, &all)?;
        for times in days {
            let (Some(first), Some(last)) = (times.first(), times.last()) else {
                continue;
            };
            if times.iter().all(|(a, _)| taken.contains(a)) {
                continue;
            }
            let absent = schedules::absences(tx, s.practitioner_id, first.0, last.1)?;
            let busy = schedules::occupied(tx, s.practitioner_id, first.0, last.1)?;
            if let Some(t) = times
                .into_iter()
                .find(|(a, b)| status_of(*a, *b, &absent, &busy) == SlotStatus::Free)
            {
                return Ok(Some(t));
            }
        }
        let Some(next) = until.succ_opt().filter(|_| until < last_day) else {
            return Ok(None);
        };
        date = next;
        days_read = (days_read * 2).min(MOST_DAYS_READ);
    }
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

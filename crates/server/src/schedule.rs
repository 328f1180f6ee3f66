//! The slots a doctor's schedule gives.
//!
//! Working hours are local times in the node's IANA time zone; slots are computed per local
//! date and stored (in appointments) as UTC. On a DST change a local time that does not
//! exist (spring forward) gives no slot, and one that occurs twice (fall back) gives the
//! earlier instant; a slot's length is always its real duration.

use carebridge_protocol::schedule::{Schedule, Slot, SlotStatus};
use chrono::{DateTime, NaiveDate, Utc};
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

/// The first free slot starting at or after `from`, looking `horizon_days` ahead.
///
/// A day on which every slot already has an appointment starting at it is skipped after one
/// indexed read of that day's starts, without working out each slot's status, so booking
/// "the next available" stays cheap when weeks are full. Only a day with a possibly free slot
/// gets the full check, so the answer is always the first free slot.
pub fn next_free(
    tx: &Tx<'_>,
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
            && schedules::slots_taken(tx, s.practitioner_id, &times)? < times.len()
        {
            let absent = schedules::absences(tx, s.practitioner_id, first.0, last.1)?;
            let busy = schedules::occupied(tx, s.practitioner_id, first.0, last.1)?;
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

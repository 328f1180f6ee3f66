//! The booking rules, each written once: which appointments occupy their practitioner's time,
//! how long an appointment may last, the status a booking starts in, and who may overbook.
//!
//! The node enforces these rules in its handlers and, for occupancy, in its SQL and its
//! triggers. The client core checks them offline before it queues a write, so that what the
//! core refuses locally is what the node would refuse. Both call the items here instead of
//! restating them. SQL that filters by occupancy is built by [`occupying_sql`] from
//! [`OCCUPYING_STATUSES`] rather than listing the statuses again (issue 16, 2026-12-06).
//!
//! # Occupancy, and what an override changes
//!
//! An appointment occupies its practitioner's time while its status is one of
//! [`OCCUPYING_STATUSES`]: every status except `cancelled` and `noshow`. **Whether it was
//! booked with an override makes no difference.** An override lets the one booking or move
//! that carries it ignore what already occupies the time ([`needs_free_time`]). It does not
//! make the overbooked appointment transparent: once made, the overbooked appointment is live
//! like any other, so it holds the slot (`busy`, or `busy-tentative` while pending) and blocks
//! every later booking or move that has no override of its own ([`blocks`]).
//!
//! The node has always worked this way: its overlap query and its triggers never look at the
//! *existing* row's override, only at the new one's. Until 2026-12-06 the client core skipped
//! overbooked appointments in its offline check. It accepted bookings that the node then
//! refused with `slot-taken`, so they came back as refusals once the client was online again.
//!
//! The invariant this keeps: two overlapping appointments of one practitioner that both occupy
//! time always include at least one made with an override (see the property test below).

use chrono::{DateTime, Duration, Utc};

use crate::appointment::{Appointment, AppointmentStatus, BookedBy, validate_reason};
use crate::session::Principal;

/// The statuses in which an appointment occupies its practitioner's time: all but
/// `cancelled` and `noshow`. [`AppointmentStatus::occupies_time`] reads this list, and
/// [`occupying_sql`] builds SQL from it.
pub const OCCUPYING_STATUSES: [AppointmentStatus; 4] = [
    AppointmentStatus::Pending,
    AppointmentStatus::Booked,
    AppointmentStatus::Arrived,
    AppointmentStatus::Fulfilled,
];

/// The longest appointment: 12 hours, with or without an override.
///
/// The limit also bounds every overlap search. An appointment that starts more than this long
/// before a time cannot reach it, so a query scans only the index range
/// `(start - MAX_APPOINTMENT, end)` and not the practitioner's whole history.
pub const MAX_APPOINTMENT: Duration = Duration::hours(12);

/// [`MAX_APPOINTMENT`] in milliseconds, the unit both sides' databases store times in.
pub const MAX_APPOINTMENT_MS: i64 = MAX_APPOINTMENT.num_milliseconds();

/// The SQL condition that `status_column` holds a status that occupies time, e.g.
/// `status IN ('pending', 'booked', 'arrived', 'fulfilled')`. It is built from
/// [`OCCUPYING_STATUSES`], so it agrees with [`AppointmentStatus::occupies_time`] by
/// construction. It deliberately does not mention the override column: an overbooked
/// appointment occupies time (see the module documentation).
///
/// Plain standard SQL, so both SQLite and PostgreSQL accept it. `status_column` is pasted into
/// the SQL as it is: pass a column name, never user input.
pub fn occupying_sql(status_column: &str) -> String {
    let list: Vec<String> = OCCUPYING_STATUSES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("{status_column} IN ({})", list.join(", "))
}

impl Appointment {
    /// Whether this appointment occupies its practitioner's time. That depends on its status
    /// alone ([`OCCUPYING_STATUSES`]): an overbooked appointment occupies time like any other.
    pub fn occupies_time(&self) -> bool {
        self.status.occupies_time()
    }
}

/// Whether the periods `[a.0, a.1)` and `[b.0, b.1)` overlap. The periods are half-open, so
/// one that ends when the other starts does not overlap it.
pub fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Whether `existing` stops its practitioner from being booked for `[start, end)` without an
/// override. It does when it occupies time and overlaps the period, overbooked or not. The
/// caller compares only appointments of the same practitioner, leaving out the appointment
/// being moved.
pub fn blocks(existing: &Appointment, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    existing.occupies_time() && overlaps((existing.start, existing.end), (start, end))
}

/// Whether a booking or move with this override needs its time free of every appointment that
/// [`blocks`] it. It does unless it carries an override. The override covers only the booking
/// or move that carries it.
pub fn needs_free_time(override_reason: Option<&str>) -> bool {
    override_reason.is_none()
}

/// Who asks for a booking or a move, as far as the booking rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Booker {
    /// A staff user: reception or a doctor.
    Staff,
    /// A kiosk device, for the patient who identified at it.
    Kiosk,
}

impl Booker {
    /// The status a new booking starts in. Staff bookings are `booked` at once. A kiosk
    /// booking is `pending`, which holds its slot until the doctor confirms or declines it.
    pub fn initial_status(self) -> AppointmentStatus {
        match self {
            Self::Staff => AppointmentStatus::Booked,
            Self::Kiosk => AppointmentStatus::Pending,
        }
    }
}

impl From<&BookedBy> for Booker {
    fn from(b: &BookedBy) -> Self {
        match b {
            BookedBy::Staff { .. } => Self::Staff,
            BookedBy::Kiosk { .. } => Self::Kiosk,
        }
    }
}

impl From<&Principal> for Booker {
    fn from(p: &Principal) -> Self {
        match p {
            Principal::Staff { .. } => Self::Staff,
            Principal::Kiosk { .. } => Self::Kiosk,
        }
    }
}

impl BookedBy {
    /// The status a booking made by this booker starts in ([`Booker::initial_status`]).
    pub fn initial_status(&self) -> AppointmentStatus {
        Booker::from(self).initial_status()
    }
}

/// A booking rule that a request breaks. The node answers [`BookingError::KioskOverride`] with
/// `403 forbidden` and the other variants with a `422 validation` problem on
/// [`BookingError::field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// A kiosk asked to overbook. A kiosk can never override, whatever the reason.
    #[error("a kiosk can never overbook")]
    KioskOverride,
    /// The override's reason is empty or longer than 500 characters after trimming.
    #[error("override_reason: {0}")]
    OverrideReason(&'static str),
    /// The end is not after the start.
    #[error("end: must be after start")]
    EndNotAfterStart,
    /// The appointment would last longer than [`MAX_APPOINTMENT`].
    #[error("end: an appointment lasts at most 12 hours")]
    TooLong,
}

impl BookingError {
    /// The request field at fault, if the error concerns one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::KioskOverride => None,
            Self::OverrideReason(_) => Some("override_reason"),
            Self::EndNotAfterStart | Self::TooLong => Some("end"),
        }
    }

    /// What is wrong, without the field name: the text of a field error's message.
    pub fn message(&self) -> &'static str {
        match self {
            Self::KioskOverride => "a kiosk can never overbook",
            Self::OverrideReason(m) => m,
            Self::EndNotAfterStart => "must be after start",
            Self::TooLong => "an appointment lasts at most 12 hours",
        }
    }
}

/// Checks an override for a booking or move by `by`. With no override, returns `Ok(None)`.
/// Otherwise it returns the reason to record, trimmed.
///
/// Only staff may overbook, and only with a reason of 1–500 characters. A kiosk never may,
/// even with a good reason ([`BookingError::KioskOverride`]).
pub fn check_override(by: Booker, reason: Option<&str>) -> Result<Option<String>, BookingError> {
    match (by, reason) {
        (_, None) => Ok(None),
        (Booker::Kiosk, Some(_)) => Err(BookingError::KioskOverride),
        (Booker::Staff, Some(r)) => {
            validate_reason(r).map_err(BookingError::OverrideReason)?;
            Ok(Some(r.trim().to_owned()))
        }
    }
}

/// Checks an appointment's period. The end must come after the start, and the period may last
/// at most [`MAX_APPOINTMENT`] (the limit is inclusive).
pub fn check_length(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), BookingError> {
    if end <= start {
        return Err(BookingError::EndNotAfterStart);
    }
    if end - start > MAX_APPOINTMENT {
        return Err(BookingError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
    use proptest::prelude::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn appointment(
        start: i64,
        minutes: i64,
        status: AppointmentStatus,
        overbooked: bool,
    ) -> Appointment {
        let doctor = PractitionerId::new();
        Appointment {
            id: AppointmentId::new(),
            reference: String::new(),
            patient_id: PatientId::new(),
            practitioner_id: doctor,
            start: at(start),
            end: at(start + minutes),
            reason: "check-up".into(),
            status,
            booked_by: BookedBy::Staff { id: doctor },
            override_reason: overbooked.then(|| "urgent".to_owned()),
            cancellation_reason: None,
            version: 1,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    #[test]
    fn an_overbooked_appointment_occupies_its_time_and_blocks_a_later_booking() {
        for status in AppointmentStatus::ALL {
            for overbooked in [false, true] {
                let a = appointment(0, 30, status, overbooked);
                let live = !matches!(
                    status,
                    AppointmentStatus::Cancelled | AppointmentStatus::Noshow
                );
                assert_eq!(
                    a.occupies_time(),
                    live,
                    "{status:?}, overbooked {overbooked}"
                );
                assert_eq!(blocks(&a, at(15), at(45)), live, "{status:?}");
                assert!(!blocks(&a, at(30), at(45)), "half-open: {status:?}");
            }
        }
    }

    #[test]
    fn the_sql_names_exactly_the_statuses_that_occupy_time() {
        let sql = occupying_sql("a.status");
        assert_eq!(
            sql,
            "a.status IN ('pending', 'booked', 'arrived', 'fulfilled')"
        );
        for s in AppointmentStatus::ALL {
            assert_eq!(
                sql.contains(&format!("'{}'", s.as_str())),
                s.occupies_time(),
                "{s:?}"
            );
        }
        assert!(!sql.contains("override"), "overbooked ones occupy too");
    }

    #[test]
    fn staff_book_booked_and_a_kiosk_books_pending() {
        let staff = BookedBy::Staff {
            id: PractitionerId::new(),
        };
        let kiosk = BookedBy::Kiosk {
            id: KioskDeviceId::new(),
        };
        assert_eq!(staff.initial_status(), AppointmentStatus::Booked);
        assert_eq!(kiosk.initial_status(), AppointmentStatus::Pending);
        assert!(
            kiosk.initial_status().occupies_time(),
            "a pending booking holds its slot"
        );
    }

    #[test]
    fn only_staff_override_and_only_with_a_reason() {
        assert_eq!(check_override(Booker::Kiosk, None), Ok(None));
        assert_eq!(check_override(Booker::Staff, None), Ok(None));
        assert_eq!(
            check_override(Booker::Kiosk, Some("chest pain")),
            Err(BookingError::KioskOverride)
        );
        assert_eq!(
            check_override(Booker::Staff, Some("  chest pain ")),
            Ok(Some("chest pain".to_owned()))
        );
        let empty = check_override(Booker::Staff, Some("   ")).unwrap_err();
        assert_eq!(empty, BookingError::OverrideReason("must not be empty"));
        assert_eq!(empty.field(), Some("override_reason"));
        assert!(check_override(Booker::Staff, Some(&"x".repeat(501))).is_err());
        assert_eq!(BookingError::KioskOverride.field(), None);
    }

    #[test]
    fn an_appointment_lasts_at_most_twelve_hours() {
        assert_eq!(MAX_APPOINTMENT_MS, 43_200_000);
        assert_eq!(check_length(at(0), at(720)), Ok(()));
        assert_eq!(check_length(at(0), at(721)), Err(BookingError::TooLong));
        assert_eq!(
            check_length(at(0), at(0)),
            Err(BookingError::EndNotAfterStart)
        );
        assert_eq!(
            check_length(at(0), at(-5)),
            Err(BookingError::EndNotAfterStart)
        );
        assert_eq!(
            BookingError::TooLong.to_string(),
            "end: an appointment lasts at most 12 hours"
        );
        assert_eq!(BookingError::TooLong.field(), Some("end"));
    }

    /// One attempt in the property test below.
    #[derive(Debug, Clone)]
    enum Step {
        Book {
            start: i64,
            minutes: i64,
            overbook: bool,
        },
        Cancel(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0i64..600, 5i64..240, prop::bool::weighted(0.2)).prop_map(
                |(start, minutes, overbook)| Step::Book { start, minutes, overbook }
            ),
            1 => any::<usize>().prop_map(Step::Cancel),
        ]
    }

    proptest! {
        /// Decide every booking with the rules here, as the node and the core do: whatever the
        /// order, any two overlapping appointments that occupy time include an overbooked one.
        #[test]
        fn no_two_live_appointments_overlap_unless_one_was_overbooked(
            steps in prop::collection::vec(step(), 1..40),
        ) {
            let mut book: Vec<Appointment> = Vec::new();
            for s in steps {
                match s {
                    Step::Book { start, minutes, overbook } => {
                        let reason = overbook.then_some("urgent");
                        let (a, b) = (at(start), at(start + minutes));
                        prop_assert!(check_length(a, b).is_ok());
                        let taken = book.iter().any(|x| blocks(x, a, b));
                        if !needs_free_time(reason) || !taken {
                            book.push(appointment(start, minutes, Booker::Staff.initial_status(), overbook));
                        }
                    }
                    Step::Cancel(i) if !book.is_empty() => {
                        let n = book.len();
                        book[i % n].status = AppointmentStatus::Cancelled;
                    }
                    Step::Cancel(_) => {}
                }
            }
            for (i, x) in book.iter().enumerate() {
                for y in &book[i + 1..] {
                    if x.occupies_time() && y.occupies_time() && overlaps((x.start, x.end), (y.start, y.end)) {
                        prop_assert!(x.override_reason.is_some() || y.override_reason.is_some());
                    }
                }
            }
        }

        /// Overlap is symmetric, and a period never overlaps one that ends where it starts.
        #[test]
        fn overlap_is_symmetric_and_half_open(a in 0i64..100, la in 1i64..50, b in 0i64..100, lb in 1i64..50) {
            let (x, y) = ((at(a), at(a + la)), (at(b), at(b + lb)));
            prop_assert_eq!(overlaps(x, y), overlaps(y, x));
            prop_assert!(!overlaps(x, (x.1, x.1 + Duration::minutes(lb))));
        }
    }
}

//! The core's occupancy SQL agrees with `protocol::booking`. `outbox::overlapping` (built from
//! `booking::occupying_sql` and `booking::MAX_APPOINTMENT_MS`) finds an appointment exactly
//! when `booking::blocks` says one stands in the way: for every status with and without an
//! override, and (property test) for any mix of appointments and periods up to the longest
//! allowed.

use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
use carebridge_protocol::booking;
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::mirror::{NodeRecord, write_row};
use super::outbox::overlapping;
use super::{LocalKey, LocalStore};

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(&dir.path().join("local.db"), &LocalKey::random()).unwrap();
    (dir, s)
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
}

fn appointment(
    doctor: PractitionerId,
    start: i64,
    minutes: i64,
    status: AppointmentStatus,
    overbooked: bool,
) -> Appointment {
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

/// Whether the SQL finds an appointment of `doctor` among `rows` in the way of `[start, end)`.
/// The rows are written in a transaction that is rolled back.
fn sql_finds(
    s: &LocalStore,
    rows: &[Appointment],
    doctor: PractitionerId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> bool {
    let mut c = s.conn.lock().unwrap();
    let tx = c.transaction().unwrap();
    for a in rows {
        write_row(&tx, &NodeRecord::Appointment(a.clone()), false, None).unwrap();
    }
    overlapping(&tx, &doctor.to_string(), start, end, None)
        .unwrap()
        .is_some()
}

#[test]
fn the_sql_and_the_rule_agree_on_every_status_with_and_without_an_override() {
    let (_dir, s) = store();
    let doctor = PractitionerId::new();
    for status in AppointmentStatus::ALL {
        for overbooked in [false, true] {
            let a = appointment(doctor, 0, 30, status, overbooked);
            for (from, to) in [(10, 20), (-10, 5), (29, 40), (30, 45), (-20, 0), (-60, 90)] {
                assert_eq!(
                    sql_finds(&s, std::slice::from_ref(&a), doctor, at(from), at(to)),
                    booking::blocks(&a, at(from), at(to)),
                    "{status:?}, overbooked {overbooked}, [{from}, {to})"
                );
            }
            // The decision written down in `protocol::booking`: overbooked or not, only the
            // status decides.
            assert_eq!(
                sql_finds(&s, std::slice::from_ref(&a), doctor, at(10), at(20)),
                status.occupies_time()
            );
        }
    }
}

#[test]
fn the_sql_and_the_rule_agree_on_any_mix_of_appointments_and_periods() {
    let (_dir, s) = store();
    let doctor = PractitionerId::new();
    let other = PractitionerId::new();
    let row = (
        0i64..2_000,
        1i64..=booking::MAX_APPOINTMENT.num_minutes(),
        0usize..AppointmentStatus::ALL.len(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    );
    let case = (
        prop::collection::vec(row, 0..12),
        0i64..2_000,
        1i64..=booking::MAX_APPOINTMENT.num_minutes(),
    );
    TestRunner::default()
        .run(&case, |(rows, from, minutes)| {
            let rows: Vec<Appointment> = rows
                .into_iter()
                .map(|(start, len, status, overbooked, someone_else)| {
                    let who = if someone_else { other } else { doctor };
                    appointment(who, start, len, AppointmentStatus::ALL[status], overbooked)
                })
                .collect();
            let (start, end) = (at(from), at(from + minutes));
            let expected = rows
                .iter()
                .any(|a| a.practitioner_id == doctor && booking::blocks(a, start, end));
            prop_assert_eq!(sql_finds(&s, &rows, doctor, start, end), expected);
            Ok(())
        })
        .unwrap();
}

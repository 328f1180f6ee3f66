//! The booking rules of `carebridge_protocol::booking` as the core applies them offline, from
//! its mirror alone. An overbooked appointment occupies its time, as it does on the node, so
//! its slot shows busy and a booking over it without an override is refused locally, before
//! anything is queued. Staff may override with a reason; a kiosk never may. An appointment
//! lasts at most 12 hours. A booking starts `booked` from staff and `pending` from a kiosk.
//! `engine.rs` checks the same refusal against a real node.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use carebridge_core::{CoreError, LocalKey, LocalStore};
use carebridge_protocol::appointment::{
    Appointment, AppointmentStatus, BookAppointment, BookedBy, Reschedule,
};
use carebridge_protocol::patient::Patient;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::schedule::{Schedule, SlotStatus, WorkingHours};
use carebridge_protocol::session::Principal;
use carebridge_protocol::snapshot::SnapshotItem;
use carebridge_protocol::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

const TZ: Tz = chrono_tz::Europe::Amsterdam;

/// Monday 30 November 2026, the day every test here books on.
fn monday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    TZ.from_local_datetime(&monday().and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn appointment(
    doctor: PractitionerId,
    patient: PatientId,
    start: DateTime<Utc>,
    status: AppointmentStatus,
    override_reason: Option<&str>,
) -> Appointment {
    Appointment {
        id: AppointmentId::new(),
        reference: "ABC-123".into(),
        patient_id: patient,
        practitioner_id: doctor,
        start,
        end: start + Duration::minutes(30),
        reason: "check-up".into(),
        status,
        booked_by: BookedBy::Staff { id: doctor },
        override_reason: override_reason.map(str::to_owned),
        cancellation_reason: None,
        version: 1,
        created_at: start,
        updated_at: start,
    }
}

fn booking(
    doctor: PractitionerId,
    patient: PatientId,
    start: DateTime<Utc>,
    override_reason: Option<&str>,
) -> BookAppointment {
    BookAppointment {
        id: None,
        patient_id: patient,
        practitioner_id: doctor,
        start: Some(start),
        next_available_from: None,
        end: None,
        reason: "offline booking".into(),
        override_reason: override_reason.map(str::to_owned),
    }
}

/// A mirror holding a doctor with 30-minute slots from 09:00 to 12:00 on Mondays, a patient,
/// and `appointments`.
async fn mirror(
    dir: &std::path::Path,
    doctor: PractitionerId,
    patient: PatientId,
    appointments: &[Appointment],
) -> LocalStore {
    let db = dir.join("local.db");
    let s = tokio::task::spawn_blocking(move || LocalStore::open(&db, &LocalKey::random()))
        .await
        .unwrap()
        .unwrap();
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut items = vec![
        SnapshotItem::Begin { event_id: 1 },
        SnapshotItem::Schedule(Schedule {
            practitioner_id: doctor,
            slot_minutes: 30,
            hours: vec![WorkingHours {
                weekday: Weekday::Mon,
                start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            }],
            version: 1,
        }),
        SnapshotItem::Patient(Patient {
            id: patient,
            global_id: String::new(),
            family_name: "Jansen".into(),
            given_name: "Anna".into(),
            birth_date: NaiveDate::from_ymd_opt(1980, 5, 1).unwrap(),
            phone: None,
            email: None,
            card_number: "CARD0001".into(),
            version: 1,
            created_at: t,
            updated_at: t,
            transferred_to: None,
        }),
    ];
    items.extend(appointments.iter().cloned().map(SnapshotItem::Appointment));
    items.push(SnapshotItem::End {
        records: 2 + appointments.len() as u64,
    });
    s.apply_snapshot_batch(items).await.unwrap();
    s
}

fn staff(id: PractitionerId) -> Principal {
    Principal::Staff {
        id,
        role: Role::Reception,
        display_name: "Reception".into(),
    }
}

fn kiosk() -> Principal {
    Principal::Kiosk {
        id: KioskDeviceId::new(),
        label: "Entrance".into(),
    }
}

/// The text of a local refusal: a taken time (`slot-taken`, as the node would say) or another
/// invalid request.
fn refused(r: Result<Appointment, CoreError>) -> String {
    match r {
        Err(CoreError::Invalid(m) | CoreError::SlotTaken(m)) => m,
        other => panic!("not refused locally: {other:?}"),
    }
}

#[tokio::test]
async fn an_overbooked_appointment_holds_its_slot_and_an_offline_booking_over_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (doctor, patient) = (PractitionerId::new(), PatientId::new());
    let reception = staff(PractitionerId::new());
    let s = mirror(
        dir.path(),
        doctor,
        patient,
        &[
            // Overbooked, and alone in its slot: the override does not free the time.
            appointment(
                doctor,
                patient,
                at(10, 0),
                AppointmentStatus::Booked,
                Some("Urgent: squeezed in"),
            ),
            // Overbooked and pending (a kiosk booking staff moved with an override): held.
            appointment(
                doctor,
                patient,
                at(11, 0),
                AppointmentStatus::Pending,
                Some("Moved over lunch"),
            ),
            // Cancelled frees its time, overbooked or not.
            appointment(
                doctor,
                patient,
                at(9, 0),
                AppointmentStatus::Cancelled,
                Some("Urgent"),
            ),
        ],
    )
    .await;

    let slots = s.slots(doctor, monday(), monday(), TZ).await.unwrap();
    let statuses: Vec<_> = slots.iter().map(|x| (x.start, x.status)).collect();
    assert_eq!(
        statuses,
        [
            (at(9, 0), SlotStatus::Free),
            (at(9, 30), SlotStatus::Free),
            (at(10, 0), SlotStatus::Busy),
            (at(10, 30), SlotStatus::Free),
            (at(11, 0), SlotStatus::BusyTentative),
            (at(11, 30), SlotStatus::Free),
        ]
    );

    // Where the node would answer slot-taken, the core refuses before queuing anything.
    for start in [at(10, 0), at(11, 0)] {
        let m = refused(
            s.queue_booking(reception.clone(), booking(doctor, patient, start, None))
                .await,
        );
        assert!(m.contains("already has an appointment"), "{m}");
    }
    let mut across = booking(doctor, patient, at(9, 45), None);
    across.end = Some(at(10, 15));
    refused(s.queue_booking(reception.clone(), across).await);
    assert_eq!(s.pending_count().await.unwrap(), 0, "nothing was queued");

    // Staff may overbook on purpose, with a reason (recorded trimmed, as the node does).
    let over = s
        .queue_booking(
            reception.clone(),
            booking(doctor, patient, at(10, 0), Some("  Urgent: chest pain ")),
        )
        .await
        .unwrap();
    assert_eq!(over.status, AppointmentStatus::Booked);
    assert_eq!(over.override_reason.as_deref(), Some("Urgent: chest pain"));
    // The cancelled one's time is free.
    let free = s
        .queue_booking(reception.clone(), booking(doctor, patient, at(9, 0), None))
        .await
        .unwrap();
    assert_eq!(free.status, AppointmentStatus::Booked);
    assert_eq!(s.pending_count().await.unwrap(), 2);
}

#[tokio::test]
async fn only_staff_override_with_a_reason_for_at_most_twelve_hours_and_a_kiosk_books_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (doctor, patient) = (PractitionerId::new(), PatientId::new());
    let reception = staff(PractitionerId::new());
    let s = mirror(dir.path(), doctor, patient, &[]).await;

    let m = refused(
        s.queue_booking(kiosk(), booking(doctor, patient, at(9, 30), Some("I must")))
            .await,
    );
    assert_eq!(m, "a kiosk can never overbook");
    let m = refused(
        s.queue_booking(
            reception.clone(),
            booking(doctor, patient, at(9, 30), Some("   ")),
        )
        .await,
    );
    assert_eq!(m, "override_reason: must not be empty");
    let mut long = booking(doctor, patient, at(9, 0), Some("Day surgery"));
    long.end = Some(at(21, 1));
    let m = refused(s.queue_booking(reception.clone(), long.clone()).await);
    assert_eq!(m, "end: an appointment lasts at most 12 hours");
    long.end = Some(at(9, 0));
    let m = refused(s.queue_booking(reception.clone(), long.clone()).await);
    assert_eq!(m, "end: must be after start");
    assert_eq!(s.pending_count().await.unwrap(), 0);
    long.end = Some(at(21, 0));
    assert!(s.queue_booking(reception.clone(), long).await.is_ok());

    let pending = s
        .queue_booking(
            kiosk(),
            booking(doctor, patient, at(9, 0) + Duration::days(7), None),
        )
        .await
        .unwrap();
    assert_eq!(pending.status, AppointmentStatus::Pending);
    assert!(matches!(pending.booked_by, BookedBy::Kiosk { .. }));
}

#[tokio::test]
async fn a_move_replaces_the_override_and_without_one_needs_its_new_time_free() {
    let dir = tempfile::tempdir().unwrap();
    let (doctor, patient) = (PractitionerId::new(), PatientId::new());
    let reception = staff(PractitionerId::new());
    let booked = appointment(doctor, patient, at(9, 0), AppointmentStatus::Booked, None);
    let over = appointment(
        doctor,
        patient,
        at(9, 0),
        AppointmentStatus::Booked,
        Some("Urgent"),
    );
    let s = mirror(dir.path(), doctor, patient, &[booked.clone(), over.clone()]).await;
    let to = |start, override_reason: Option<&str>| Reschedule {
        start,
        end: None,
        override_reason: override_reason.map(str::to_owned),
    };

    // The plain appointment cannot move onto the overbooked one's new time without an override.
    let moved = s
        .queue_reschedule(reception.clone(), over.id, to(at(10, 0), None))
        .await
        .unwrap();
    assert_eq!(
        moved.override_reason, None,
        "a move without an override leaves it no longer overbooked, as on the node"
    );
    refused(
        s.queue_reschedule(reception.clone(), booked.id, to(at(10, 0), None))
            .await,
    );
    let m = refused(
        s.queue_reschedule(kiosk(), booked.id, to(at(10, 0), Some("please")))
            .await,
    );
    assert_eq!(m, "a kiosk can never overbook");
    let moved = s
        .queue_reschedule(reception.clone(), booked.id, to(at(10, 0), Some(" Both ")))
        .await
        .unwrap();
    assert_eq!(moved.override_reason.as_deref(), Some("Both"));
}

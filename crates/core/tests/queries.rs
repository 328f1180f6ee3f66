//! The UI's queries on the local store: a doctor's day and week in the node's time zone,
//! today's list, patient search by name prefix, birth date and card number, full-text search,
//! and local changes that are searchable (and marked pending) before the node has them.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use carebridge_core::LocalKey;
use carebridge_core::store::PatientQuery;
use carebridge_core::store::{LocalStore, SearchHit};
use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
use carebridge_protocol::patient::{NewPatient, Patient};
use carebridge_protocol::snapshot::SnapshotItem;
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

const TZ: Tz = chrono_tz::Europe::Amsterdam;

fn patient(family: &str, given: &str, born: (i32, u32, u32), card: &str) -> Patient {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Patient {
        id: PatientId::new(),
        global_id: String::new(),
        family_name: family.into(),
        given_name: given.into(),
        birth_date: NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap(),
        phone: None,
        email: None,
        card_number: card.into(),
        version: 1,
        created_at: t,
        updated_at: t,
        transferred_to: None,
    }
}

fn appointment(
    doctor: PractitionerId,
    patient: PatientId,
    start: DateTime<Utc>,
    reason: &str,
) -> Appointment {
    Appointment {
        id: AppointmentId::new(),
        reference: "ABC-123".into(),
        patient_id: patient,
        practitioner_id: doctor,
        start,
        end: start + chrono::Duration::minutes(15),
        reason: reason.into(),
        status: AppointmentStatus::Booked,
        booked_by: BookedBy::Staff { id: doctor },
        override_reason: None,
        cancellation_reason: None,
        version: 1,
        created_at: start,
        updated_at: start,
    }
}

fn local(t: (i32, u32, u32, u32, u32)) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(t.0, t.1, t.2, t.3, t.4, 0)
        .unwrap()
        .with_timezone(&Utc)
}

async fn store(dir: &std::path::Path) -> LocalStore {
    let db = dir.join("local.db");
    tokio::task::spawn_blocking(move || {
        let key = LocalKey::derive("queries", &LocalKey::salt_for(&db).unwrap()).unwrap();
        LocalStore::open(&db, &key).unwrap()
    })
    .await
    .unwrap()
}

fn names(rows: &[carebridge_core::store::PatientRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{} {}", r.patient.given_name, r.patient.family_name))
        .collect()
}

#[tokio::test]
async fn day_week_today_and_patient_search_answer_from_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let doctor = PractitionerId::new();
    let other = PractitionerId::new();
    let people = [
        patient("Jansen", "Anna", (1980, 5, 1), "CARD0001"),
        patient("Janssens", "Piet", (1975, 2, 3), "CARD0002"),
        patient("de Vries", "Anneke", (1990, 7, 9), "XY778899"),
        patient("Brontë", "Zoë", (1980, 5, 1), "CARD0003"),
    ];
    let appts = [
        // Sunday 25 October 2026 is the day Amsterdam leaves summer time: 25 hours long.
        appointment(
            doctor,
            people[0].id,
            local((2026, 10, 25, 0, 30)),
            "migraine follow-up",
        ),
        appointment(
            doctor,
            people[1].id,
            local((2026, 10, 25, 23, 45)),
            "knee pain",
        ),
        appointment(
            doctor,
            people[2].id,
            local((2026, 10, 26, 9, 0)),
            "vaccination",
        ),
        appointment(
            other,
            people[3].id,
            local((2026, 10, 25, 10, 0)),
            "Headache after a fall",
        ),
        appointment(
            doctor,
            people[3].id,
            local((2026, 11, 1, 9, 0)),
            "end of the week",
        ),
    ];
    let mut items = vec![SnapshotItem::Begin { event_id: 1 }];
    items.extend(people.iter().cloned().map(SnapshotItem::Patient));
    items.extend(appts.iter().cloned().map(SnapshotItem::Appointment));
    items.push(SnapshotItem::End { records: 9 });
    s.apply_snapshot_batch(items).await.unwrap();

    let sunday = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let day = s.doctor_day(doctor, sunday, TZ).await.unwrap();
    let reasons: Vec<_> = day.iter().map(|r| r.appointment.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["migraine follow-up", "knee pain"],
        "the whole local day, in order"
    );
    let week = s
        .doctor_week(doctor, NaiveDate::from_ymd_opt(2026, 10, 26).unwrap(), TZ)
        .await
        .unwrap();
    let reasons: Vec<_> = week.iter().map(|r| r.appointment.reason.as_str()).collect();
    assert_eq!(reasons, ["vaccination", "end of the week"]);
    let today = s.appointments_on(sunday, TZ).await.unwrap();
    assert_eq!(today.len(), 3, "every doctor's appointments that day");
    assert_eq!(s.patient_appointments(people[3].id).await.unwrap().len(), 2);

    let q = |name: &str| PatientQuery {
        name: Some(name.into()),
        ..Default::default()
    };
    assert_eq!(
        names(&s.search_patients(q("jans")).await.unwrap()),
        ["Anna Jansen", "Piet Janssens"]
    );
    assert_eq!(
        names(&s.search_patients(q("ANN")).await.unwrap()),
        ["Anneke de Vries", "Anna Jansen"]
    );
    assert_eq!(
        names(&s.search_patients(q("anna jan")).await.unwrap()),
        ["Anna Jansen"]
    );
    assert_eq!(
        names(&s.search_patients(q("jansen anna")).await.unwrap()),
        ["Anna Jansen"]
    );
    assert!(s.search_patients(q("zz")).await.unwrap().is_empty());
    let born = PatientQuery {
        birth_date: NaiveDate::from_ymd_opt(1980, 5, 1),
        ..Default::default()
    };
    assert_eq!(
        names(&s.search_patients(born.clone()).await.unwrap()),
        ["Zoë Brontë", "Anna Jansen"]
    );
    let card = PatientQuery {
        card_number: Some("card000".into()),
        birth_date: born.birth_date,
        ..Default::default()
    };
    assert_eq!(
        names(&s.search_patients(card).await.unwrap()),
        ["Zoë Brontë", "Anna Jansen"]
    );

    // Full text: accents folded, every word a prefix, reasons too.
    let hits = s.search("zoe bro".into(), 10).await.unwrap();
    assert!(
        matches!(&hits[..], [SearchHit::Patient(p)] if p.patient.id == people[3].id),
        "{hits:?}"
    );
    let hits = s.search("headache".into(), 10).await.unwrap();
    assert!(
        matches!(&hits[..], [SearchHit::Appointment(a)] if a.appointment.reason == "Headache after a fall"),
        "{hits:?}"
    );
    assert!(s.search("\"OR *".into(), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_patient_registered_offline_is_found_marked_pending_and_a_refusal_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let new = NewPatient {
        id: None,
        family_name: "Okonkwo".into(),
        given_name: "Chidi".into(),
        birth_date: NaiveDate::from_ymd_opt(1999, 1, 2).unwrap(),
        phone: None,
        email: None,
        card_number: Some("OK123456".into()),
        confirm_duplicate: false,
    };
    let p = s
        .queue_new_patient(new.clone(), "h.example".into(), today)
        .await
        .unwrap();
    let found = s
        .search_patients(PatientQuery {
            name: Some("okon".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].pending);
    let hits = s.search("chidi".into(), 5).await.unwrap();
    assert!(matches!(&hits[..], [SearchHit::Patient(r)] if r.pending && r.patient.id == p.id));

    // Bad input is refused before anything is stored.
    let bad = NewPatient {
        birth_date: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        ..new
    };
    assert!(
        s.queue_new_patient(bad, "h.example".into(), today)
            .await
            .is_err()
    );
    assert_eq!(s.pending_count().await.unwrap(), 1);

    // The node refuses (a duplicate, say): the patient disappears, the refusal stays listed.
    let item = s.next_pending().await.unwrap().unwrap();
    let problem = carebridge_protocol::Problem::new(
        carebridge_protocol::problem::ProblemType::PossibleDuplicate,
        "A patient with this name and birth date exists".to_owned(),
    );
    s.complete(item.seq, carebridge_core::store::Outcome::Refused(problem))
        .await
        .unwrap();
    assert!(s.patient(p.id).await.unwrap().is_none());
    assert!(s.search("chidi".into(), 5).await.unwrap().is_empty());
    let outbox = s.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        outbox[0].problem.as_ref().unwrap().detail.as_deref(),
        Some("A patient with this name and birth date exists")
    );
}

//! Text typed on a client offline is held to the node's rules before it is queued
//! (`carebridge_protocol::text`): control characters, over-long values and malformed e-mail
//! addresses and phones are refused naming the field, and nothing is queued; decomposed text
//! is queued and shown composed (NFC), as the node will store it.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

use carebridge_core::store::{LocalStore, Write};
use carebridge_core::{CoreError, LocalKey};
use carebridge_protocol::PractitionerId;
use carebridge_protocol::patient::NewPatient;
use carebridge_protocol::report::ReportContent;
use chrono::NaiveDate;

async fn store(dir: &std::path::Path) -> LocalStore {
    let db = dir.join("local.db");
    tokio::task::spawn_blocking(move || {
        let key = LocalKey::derive("input", &LocalKey::salt_for(&db).unwrap()).unwrap();
        LocalStore::open(&db, &key).unwrap()
    })
    .await
    .unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

fn eva() -> NewPatient {
    NewPatient {
        id: None,
        family_name: "Jansen".into(),
        given_name: "Eva".into(),
        birth_date: NaiveDate::from_ymd_opt(1980, 1, 2).unwrap(),
        phone: Some("+31 20 123 4567".into()),
        email: Some("eva@example.org".into()),
        card_number: None,
        confirm_duplicate: false,
    }
}

#[tokio::test]
async fn bad_text_is_refused_naming_the_field_before_anything_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let cases: Vec<(&str, NewPatient)> = vec![
        (
            "family_name",
            NewPatient {
                family_name: "Jan\u{1}sen".into(),
                ..eva()
            },
        ),
        (
            "given_name",
            NewPatient {
                given_name: "E\nva".into(),
                ..eva()
            },
        ),
        (
            "family_name",
            NewPatient {
                family_name: "é".repeat(101),
                ..eva()
            },
        ),
        (
            "email",
            NewPatient {
                email: Some("eva@example".into()),
                ..eva()
            },
        ),
        (
            "phone",
            NewPatient {
                phone: Some("12-34".into()),
                ..eva()
            },
        ),
    ];
    for (field, bad) in cases {
        let err = s
            .queue_new_patient(bad, "h.example".into(), today())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CoreError::Invalid(m) if m.starts_with(&format!("{field}: "))),
            "{field}: {err:?}"
        );
    }
    assert_eq!(s.pending_count().await.unwrap(), 0, "nothing queued");
}

#[tokio::test]
async fn decomposed_text_is_queued_and_shown_composed() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let p = s
        .queue_new_patient(
            NewPatient {
                family_name: "Mu\u{308}ller".into(),
                ..eva()
            },
            "h.example".into(),
            today(),
        )
        .await
        .unwrap();
    assert_eq!(p.family_name, "M\u{fc}ller", "shown composed");
    let item = s.next_pending().await.unwrap().unwrap();
    let Write::RegisterPatient { body, .. } = &item.write else {
        panic!("{:?}", item.write)
    };
    assert_eq!(body.family_name, "M\u{fc}ller", "queued composed");

    // A report's sections keep their line feeds; a bell is refused, naming the field.
    let doctor = PractitionerId::new();
    let content = |findings: &str| ReportContent {
        title: "Re\u{301}sume\u{301}".into(),
        findings: findings.into(),
        conclusion: String::new(),
        codes: vec![],
    };
    let r = s
        .queue_new_report(doctor, "Dr. A".into(), p.id, content("One\n\tTwo"))
        .await
        .unwrap();
    assert_eq!(r.content.title, "R\u{e9}sum\u{e9}");
    assert_eq!(r.content.findings, "One\n\tTwo");
    let err = s
        .queue_new_report(doctor, "Dr. A".into(), p.id, content("One\u{7}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Invalid(m) if m.starts_with("content.findings: ")),
        "{err:?}"
    );
    assert_eq!(s.pending_count().await.unwrap(), 2);
}

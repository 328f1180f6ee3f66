//! The sync engine against real `carebridge-node` processes: live notifications between
//! clients, a node killed and restarted mid-stream, writes queued offline and drained in order,
//! refusals rolled back, and sign-out.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::Duration;

use std::sync::Arc;

use carebridge_core::store::OutboxState;
use carebridge_core::{ChangeKind, Changes, Link, Notice};
use carebridge_protocol::appointment::{AppointmentAction, AppointmentStatus, BookAppointment};
use carebridge_protocol::problem::ProblemType;
use carebridge_testkit::{NodeProcess, eventually};
use support::{Client, Hospital, slot};

const WAIT: Duration = Duration::from_secs(20);

fn kiosk_booking(h: &Hospital, n: i64, reason: &str) -> BookAppointment {
    BookAppointment {
        id: None,
        patient_id: h.creds.patients[0].id,
        practitioner_id: h.creds.bench.practitioner_id,
        start: Some(slot(n)),
        next_available_from: None,
        end: None,
        reason: reason.into(),
        override_reason: None,
    }
}

async fn identify(kiosk: &Client, h: &Hospital) {
    let p = &h.creds.patients[0];
    kiosk
        .engine
        .identify_patient(p.card_number.clone(), p.birth_date)
        .await
        .unwrap();
}

async fn online(c: &Client) {
    let mut status = c.engine.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.link == Link::Online))
        .await
        .expect("the client did not come online")
        .unwrap();
}

/// A seeded hospital's node, and the bench doctor and the kiosk signed in to it and online
/// (the node and the profiles' folder live as long as the caller holds them).
async fn doctor_and_kiosk_online() -> (Hospital, NodeProcess, tempfile::TempDir, Client, Client) {
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let doctor = Client::staff(
        profiles.path(),
        &node.url,
        h.bench_doctor(),
        carebridge_server::demo::DOCTOR_PASSWORD,
    )
    .await;
    let kiosk = Client::kiosk(profiles.path(), &node.url, &h).await;
    online(&doctor).await;
    online(&kiosk).await;
    (h, node, profiles, doctor, kiosk)
}

fn kiosk_bookings(notices: &[Notice]) -> Vec<String> {
    notices
        .iter()
        .filter_map(|n| match n {
            Notice::KioskBooking { appointment, .. } => Some(appointment.id.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_booking_notifies_the_doctor_once_and_the_answer_reaches_the_kiosk_without_a_notice()
 {
    let (h, _node, _profiles, doctor, kiosk) = doctor_and_kiosk_online().await;

    identify(&kiosk, &h).await;
    let local = kiosk
        .engine
        .book(kiosk_booking(&h, 0, "sore throat"))
        .await
        .unwrap();
    assert_eq!(local.status, AppointmentStatus::Pending);
    eventually("the doctor is told of the kiosk booking", WAIT, || async {
        !doctor.notices.notices().is_empty()
    })
    .await;
    let Notice::KioskBooking {
        appointment,
        patient_name,
    } = doctor.notices.notices()[0].clone()
    else {
        panic!("not a kiosk booking: {:?}", doctor.notices.notices());
    };
    assert_eq!(appointment.reason, "sore throat");
    assert_eq!(
        patient_name.as_deref(),
        Some(h.creds.patients[0].name.as_str())
    );
    assert!(
        kiosk.notices.notices().is_empty(),
        "the kiosk is not told of its own booking"
    );

    // The doctor confirms: the kiosk's screen learns of it (its mirror), the doctor does not
    // hear of their own act, and nothing pops up at the kiosk.
    doctor
        .engine
        .act(appointment.id, AppointmentAction::Confirm, None)
        .await
        .unwrap();
    eventually("the confirmation reaches the kiosk", WAIT, || async {
        kiosk
            .engine
            .store()
            .appointment(local.id)
            .await
            .unwrap()
            .is_some_and(|r| !r.pending && r.appointment.status == AppointmentStatus::Booked)
    })
    .await;
    doctor.converges_with_node(WAIT).await;
    kiosk.converges_with_node(WAIT).await;
    assert_eq!(
        doctor.notices.notices().len(),
        1,
        "{:?}",
        doctor.notices.notices()
    );
    assert_eq!(
        kiosk.notices.notices(),
        [],
        "a kiosk is told of nothing: its screen shows the answer"
    );
    let row = kiosk
        .engine
        .store()
        .appointment(local.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.appointment.id, appointment.id,
        "the local id leads to the node's record"
    );
    assert!(!row.pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_notified_of_their_own_actions_and_a_kiosk_of_nothing() {
    use carebridge_protocol::appointment::Reschedule;
    use carebridge_protocol::report::{ReportAction, ReportContent};
    let (h, node, profiles, doctor, kiosk) = doctor_and_kiosk_online().await;
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    identify(&kiosk, &h).await;
    for (n, reason) in [(0, "first"), (1, "second"), (2, "third")] {
        kiosk
            .engine
            .book(kiosk_booking(&h, n, reason))
            .await
            .unwrap();
    }
    eventually(
        "the doctor is told of the three kiosk bookings",
        WAIT,
        || async { kiosk_bookings(&doctor.notices.notices()).len() == 3 },
    )
    .await;
    let told = doctor.notices.notices();

    // The doctor answers two, moves the third (still waiting: the doctor's own change to a
    // booking waiting for them), and writes and signs a report.
    let ids: Vec<_> = told
        .iter()
        .map(|n| match n {
            Notice::KioskBooking { appointment, .. } => appointment.clone(),
            other => panic!("not a kiosk booking: {other:?}"),
        })
        .collect();
    let by_reason = |r: &str| ids.iter().find(|a| a.reason == r).unwrap().id;
    let d = &doctor.engine;
    d.act(by_reason("first"), AppointmentAction::Confirm, None)
        .await
        .unwrap();
    d.act(
        by_reason("second"),
        AppointmentAction::Decline,
        Some("not my field".into()),
    )
    .await
    .unwrap();
    d.reschedule(
        by_reason("third"),
        Reschedule {
            start: slot(5),
            end: None,
            override_reason: None,
        },
    )
    .await
    .unwrap();
    let report = d
        .new_report(
            h.creds.patients[0].id,
            ReportContent {
                title: "Throat".into(),
                findings: "Red.".into(),
                conclusion: "Rest.".into(),
                codes: vec![],
            },
        )
        .await
        .unwrap();
    d.report_action(report.id, ReportAction::Finalise, None, None)
        .await
        .unwrap();
    // Reception books with the doctor and cancels it.
    let desk = reception
        .engine
        .book(BookAppointment {
            patient_id: h.creds.patients[1].id,
            ..kiosk_booking(&h, 8, "desk")
        })
        .await
        .unwrap();
    reception
        .engine
        .act(desk.id, AppointmentAction::Cancel, Some("moved".into()))
        .await
        .unwrap();

    for c in [&doctor, &kiosk, &reception] {
        c.converges_with_node(WAIT).await;
    }
    assert_eq!(
        doctor.notices.notices(),
        told,
        "the doctor was told of their own actions"
    );
    assert_eq!(kiosk.notices.notices(), [], "a kiosk is told of nothing");
    assert_eq!(
        reception.notices.notices(),
        [],
        "reception was told of its own actions"
    );
}

/// The first change notice `accept` takes, skipping the others.
async fn notice_where(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<Changes>>,
    what: &str,
    accept: impl Fn(&Changes) -> bool,
) -> Changes {
    tokio::time::timeout(WAIT, async {
        loop {
            let c = rx.recv().await.unwrap();
            if accept(&c) {
                return Changes::clone(&c);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no change notice: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notices_name_the_kinds_and_records_that_changed() {
    let (h, _node, _profiles, doctor, kiosk) = doctor_and_kiosk_online().await;
    identify(&kiosk, &h).await;
    let patient = h.creds.patients[0].id.to_string();
    let mut at_doctor = doctor.engine.changes();
    let mut at_kiosk = kiosk.engine.changes();

    // The kiosk's own booking: its appointment, its patient and the outbox, told at once.
    let local = kiosk
        .engine
        .book(kiosk_booking(&h, 1, "a cough"))
        .await
        .unwrap();
    let own = notice_where(&mut at_kiosk, "the kiosk's own booking", |c| {
        c.ids.contains(&local.id.to_string())
    })
    .await;
    assert!(!own.everything);
    assert!(own.kinds.contains(&ChangeKind::Appointment), "{own:?}");
    assert!(own.kinds.contains(&ChangeKind::Outbox), "{own:?}");
    assert!(own.ids.contains(&patient), "{own:?}");

    // The doctor hears of it from the node: that appointment and patient, and no other kind.
    eventually("the doctor is told of the kiosk booking", WAIT, || async {
        !doctor.notices.notices().is_empty()
    })
    .await;
    let Notice::KioskBooking { appointment, .. } = doctor.notices.notices()[0].clone() else {
        panic!("not a kiosk booking: {:?}", doctor.notices.notices());
    };
    let at_node = appointment.id.to_string();
    let theirs = notice_where(&mut at_doctor, "the kiosk booking, at the doctor", |c| {
        c.ids.contains(&at_node)
    })
    .await;
    assert!(!theirs.everything);
    assert_eq!(
        theirs.kinds.iter().copied().collect::<Vec<_>>(),
        vec![ChangeKind::Appointment]
    );
    assert!(theirs.ids.contains(&patient), "{theirs:?}");
    assert!(!theirs.touches(&[ChangeKind::Report, ChangeKind::Consent]));

    // The doctor confirms: the kiosk (caught up, listening afresh) is told that appointment
    // changed.
    kiosk.converges_with_node(WAIT).await;
    let mut at_kiosk = kiosk.engine.changes();
    doctor
        .engine
        .act(appointment.id, AppointmentAction::Confirm, None)
        .await
        .unwrap();
    let answer = notice_where(&mut at_kiosk, "the confirmation, at the kiosk", |c| {
        c.ids.contains(&at_node) && !c.kinds.contains(&ChangeKind::Outbox)
    })
    .await;
    assert!(!answer.everything);
    assert!(
        answer.kinds.contains(&ChangeKind::Appointment),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_is_followed_again_without_loss_or_repeat() {
    let (h, node, _profiles, doctor, kiosk) = doctor_and_kiosk_online().await;
    identify(&kiosk, &h).await;
    for n in 0..3 {
        kiosk
            .engine
            .book(kiosk_booking(&h, n, &format!("before {n}")))
            .await
            .unwrap();
    }
    eventually("three notices", WAIT, || async {
        doctor.notices.notices().len() == 3
    })
    .await;
    eventually("the kiosk's writes acknowledged", WAIT, || async {
        kiosk.engine.status().borrow().pending == 0
    })
    .await;

    let stopped = node.kill().await;
    eventually("the doctor sees the node gone", WAIT, || async {
        doctor.engine.status().borrow().link == Link::Offline
    })
    .await;
    // Queued while the node is down, delivered after it returns.
    kiosk
        .engine
        .book(kiosk_booking(&h, 3, "during"))
        .await
        .unwrap();
    assert_eq!(kiosk.engine.status().borrow().pending, 1);
    let _node = stopped.restart().await;
    kiosk
        .engine
        .book(kiosk_booking(&h, 4, "after"))
        .await
        .unwrap();

    eventually("five notices", WAIT, || async {
        doctor.notices.notices().len() >= 5
    })
    .await;
    doctor.converges_with_node(WAIT).await;
    kiosk.converges_with_node(WAIT).await;
    let mut ids = kiosk_bookings(&doctor.notices.notices());
    assert_eq!(ids.len(), 5);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "a notice came twice");
    online(&doctor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_offline_drain_in_order_and_a_collision_comes_back_refused() {
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    online(&reception).await;
    reception.converges_with_node(WAIT).await;
    let stopped = node.kill().await;

    // 60 bookings, then 40 cancellations of the first 40: 100 writes, all while offline.
    let booking = |n: i64| BookAppointment {
        id: None,
        patient_id: h.creds.patients[(n as usize) % h.creds.patients.len()].id,
        practitioner_id: h.creds.bench.practitioner_id,
        start: Some(slot(n)),
        next_available_from: None,
        end: None,
        reason: format!("offline {n:03}"),
        override_reason: None,
    };
    let mut local_ids = Vec::new();
    for n in 0..60 {
        local_ids.push(reception.engine.book(booking(n)).await.unwrap().id);
    }
    for id in &local_ids[..40] {
        reception
            .engine
            .act(
                *id,
                AppointmentAction::Cancel,
                Some("queued offline".into()),
            )
            .await
            .unwrap();
    }
    assert_eq!(reception.engine.status().borrow().pending, 100);
    let shown = reception
        .engine
        .store()
        .appointment(local_ids[59])
        .await
        .unwrap()
        .unwrap();
    assert!(shown.pending, "a queued booking is shown, marked pending");

    // Meanwhile another client takes the last booking's slot on the node.
    let elsewhere = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let other = reqwest::Client::new();
    let token = support::reception_token(&elsewhere.url).await;
    let r = other
        .post(format!("{}/api/v1/appointments", elsewhere.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"patient_id": h.creds.patients[1].id, "practitioner_id": h.creds.bench.practitioner_id,
                                  "start": slot(59), "reason": "taken meanwhile"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    elsewhere.kill().await;
    // A restart of the app does not lose the queue.
    let reception = reception.restart().await;
    assert_eq!(reception.engine.store().pending_count().await.unwrap(), 100);

    let _node = stopped.restart().await;
    reception.converges_with_node(Duration::from_secs(60)).await;
    let status = *reception.engine.status().borrow();
    assert_eq!((status.pending, status.refused), (0, 1), "{status:?}");
    let outbox = reception.engine.store().outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].state, OutboxState::Refused);
    let problem = outbox[0].problem.as_ref().unwrap();
    assert_eq!(problem.code, ProblemType::SlotTaken, "{problem:?}");
    assert!(
        reception
            .engine
            .store()
            .appointment(local_ids[59])
            .await
            .unwrap()
            .is_none(),
        "the refused booking is rolled back"
    );

    // On the node: each write applied once, in the order made.
    let mine: Vec<_> = reception
        .engine
        .store()
        .appointments_between(Some(h.creds.bench.practitioner_id), slot(0), slot(61))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.appointment)
        .filter(|a| a.reason.starts_with("offline "))
        .collect();
    assert_eq!(mine.len(), 59);
    let mut by_creation = mine.clone();
    by_creation.sort_by_key(|a| (a.created_at, a.id));
    let reasons: Vec<_> = by_creation.iter().map(|a| a.reason.clone()).collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(
        reasons, sorted,
        "the node received the bookings in the order they were made"
    );
    for a in &mine {
        let n: i64 = a.reason[8..].parse().unwrap();
        let expected = if n < 40 {
            AppointmentStatus::Cancelled
        } else {
            AppointmentStatus::Booked
        };
        assert_eq!(a.status, expected, "{}", a.reason);
    }
    reception
        .engine
        .dismiss_refused(outbox[0].seq)
        .await
        .unwrap();
    assert_eq!(reception.engine.status().borrow().refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_turns_into_signed_out_not_a_retry_loop() {
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    online(&reception).await;
    // Signing out elsewhere (or an admin disabling the account) ends the session.
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/sessions/current", node.url))
        .bearer_auth(&reception.signed_in.session.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut status = reception.engine.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.link == Link::SignedOut))
        .await
        .expect("the client did not notice the end of its session")
        .unwrap();
    // A write made now is kept, not lost, for after the next sign-in.
    let err = reception.engine.store().queue_booking(
        reception.signed_in.session.principal.clone(),
        BookAppointment {
            id: None,
            patient_id: h.creds.patients[0].id,
            practitioner_id: h.creds.bench.practitioner_id,
            start: Some(slot(1)),
            next_available_from: None,
            end: None,
            reason: "after sign-out".into(),
            override_reason: None,
        },
    );
    err.await.unwrap();
    assert_eq!(reception.engine.store().pending_count().await.unwrap(), 1);

    // Signing out locally wipes the token from the profile.
    let store = reception.engine.store().clone();
    carebridge_core::session::sign_out(&reqwest::Client::new(), &store)
        .await
        .unwrap();
    assert!(store.signed_in().await.unwrap().is_none());
    assert_eq!(
        store.remembered_node().await.unwrap().as_deref(),
        Some(node.url.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_edit_made_on_a_stale_version_comes_back_refused_with_the_nodes_record() {
    use carebridge_protocol::patient::PatientUpdate;
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    reception.converges_with_node(WAIT).await;
    let patient = h.creds.patients[2].id;
    let edit = |phone: &str| PatientUpdate {
        phone: Some(phone.into()),
        ..Default::default()
    };
    let first = reception
        .engine
        .update_patient(patient, edit("+31 20 555 0101"))
        .await
        .unwrap();
    reception.converges_with_node(WAIT).await;
    let on_node = reception
        .engine
        .store()
        .patient(patient)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_node.patient.phone.as_deref(), Some("+31 20 555 0101"));
    assert_eq!(on_node.patient.version, first.version);
    assert!(!on_node.pending);

    let stopped = node.kill().await;
    let queued = reception
        .engine
        .update_patient(patient, edit("+31 20 555 0202"))
        .await
        .unwrap();
    assert!(
        reception
            .engine
            .store()
            .patient(patient)
            .await
            .unwrap()
            .unwrap()
            .pending
    );

    // Meanwhile someone else edits the same patient on the node.
    let elsewhere = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let other = reqwest::Client::new();
    let token = support::reception_token(&elsewhere.url).await;
    let r = other
        .patch(format!("{}/api/v1/patients/{patient}", elsewhere.url))
        .bearer_auth(&token)
        .header("If-Match", format!("\"{}\"", first.version))
        .json(&serde_json::json!({"email": "someone@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    elsewhere.kill().await;

    let _node = stopped.restart().await;
    reception.converges_with_node(WAIT).await;
    let outbox = reception.engine.store().outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let problem = outbox[0].problem.as_ref().unwrap();
    assert_eq!(problem.code, ProblemType::PreconditionFailed, "{problem:?}");
    let now = reception
        .engine
        .store()
        .patient(patient)
        .await
        .unwrap()
        .unwrap();
    assert!(!now.pending);
    assert_eq!(
        now.patient.email.as_deref(),
        Some("someone@example.org"),
        "the node's record is shown"
    );
    assert_eq!(
        now.patient.phone.as_deref(),
        Some("+31 20 555 0101"),
        "the refused edit is rolled back"
    );
    // The same version number as the local guess had, but the node's content.
    assert_eq!(now.patient.version, queued.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_written_offline_is_signed_when_the_node_returns_and_a_stale_amendment_comes_back_refused()
 {
    use carebridge_protocol::report::{ReportAction, ReportContent, ReportStatus};
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let (u0, p0) = (
        h.creds.doctors[0].username.clone(),
        carebridge_server::demo::DOCTOR_PASSWORD,
    );
    let (u1, p1) = (
        h.bench_doctor().to_owned(),
        carebridge_server::demo::DOCTOR_PASSWORD,
    );
    let doctor = Client::staff(profiles.path(), &node.url, &u0, p0).await;
    let colleague = Client::staff(profiles.path(), &node.url, &u1, p1).await;
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    doctor.converges_with_node(WAIT).await;
    colleague.converges_with_node(WAIT).await;
    let patient = h.creds.patients[3].id;
    let content = |conclusion: &str| ReportContent {
        title: "Knee MRI".into(),
        findings: "Small joint effusion.".into(),
        conclusion: conclusion.into(),
        codes: vec!["M25.46".into()],
    };

    let stopped = node.kill().await;
    let draft = doctor
        .engine
        .new_report(patient, content("first"))
        .await
        .unwrap();
    let id = draft.id;
    doctor
        .engine
        .report_action(id, ReportAction::SaveDraft, Some(content("second")), None)
        .await
        .unwrap();
    let local = doctor
        .engine
        .report_action(id, ReportAction::Finalise, None, None)
        .await
        .unwrap();
    assert_eq!(local.status, ReportStatus::Final);
    assert!(local.signature.is_none(), "only the node signs");
    let shown = doctor.engine.store().report(id).await.unwrap().unwrap();
    assert!(shown.pending);
    assert_eq!(doctor.engine.status().borrow().pending, 3);
    // A draft's status rules hold offline too.
    let again = doctor
        .engine
        .report_action(id, ReportAction::SaveDraft, Some(content("x")), None)
        .await;
    assert!(again.is_err(), "a final report is not saved as a draft");

    let node = stopped.restart().await;
    doctor.converges_with_node(Duration::from_secs(60)).await;
    let signed = doctor.engine.store().report(id).await.unwrap().unwrap();
    assert!(!signed.pending);
    assert_eq!(signed.report.status, ReportStatus::Final);
    assert_eq!(signed.report.content.conclusion, "second");
    assert!(
        signed.report.signature.is_some(),
        "signed by the node once it had it"
    );
    colleague.converges_with_node(WAIT).await;
    let seen = colleague
        .engine
        .store()
        .patient_reports(patient)
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "the colleague received it live");
    reception.converges_with_node(WAIT).await;
    assert!(
        reception
            .engine
            .store()
            .patient_reports(patient)
            .await
            .unwrap()
            .is_empty(),
        "reception never receives reports"
    );

    // The doctor amends offline while the colleague amends on the node: the doctor's
    // amendment was made on an older version, and comes back refused with the node's state.
    let stopped = node.kill().await;
    doctor
        .engine
        .report_action(
            id,
            ReportAction::Amend,
            Some(content("doctor's amendment")),
            None,
        )
        .await
        .unwrap();
    let elsewhere = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", elsewhere.url))
        .json(&serde_json::json!({"username": u1, "password": p1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/reports/{id}/amend", elsewhere.url))
        .bearer_auth(token["token"].as_str().unwrap())
        .header("If-Match", format!("\"{}\"", signed.report.version))
        .json(&content("colleague's amendment"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    elsewhere.kill().await;
    let _node = stopped.restart().await;
    doctor.converges_with_node(Duration::from_secs(60)).await;
    let outbox = doctor.engine.store().outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(
        outbox[0].problem.as_ref().unwrap().code,
        ProblemType::PreconditionFailed
    );
    let now = doctor.engine.store().report(id).await.unwrap().unwrap();
    assert_eq!(now.report.content.conclusion, "colleague's amendment");
    assert_eq!(now.report.revision, 2);
    assert!(!now.pending);
}

/// The decision of `protocol::booking`, checked against the node itself: an appointment booked
/// with an override holds its time for later bookings without one. The node answers such a
/// booking `409 slot-taken`; the core, offline, refuses it locally and queues nothing, and its
/// slot listing shows the slot busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overbooked_appointment_is_refused_offline_exactly_where_the_node_refuses_it() {
    use carebridge_protocol::schedule::SlotStatus;
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let reception = Client::staff(
        profiles.path(),
        &node.url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await;
    reception.converges_with_node(WAIT).await;
    let doctor = h.creds.bench.practitioner_id;
    let booking = |reason: &str, override_reason: Option<&str>| BookAppointment {
        id: None,
        patient_id: h.creds.patients[0].id,
        practitioner_id: doctor,
        start: Some(slot(7)),
        next_available_from: None,
        end: None,
        reason: reason.into(),
        override_reason: override_reason.map(str::to_owned),
    };
    // Book the slot, overbook it on purpose, then cancel the first: only the overbooked
    // appointment is left in the slot.
    let first = reception.engine.book(booking("first", None)).await.unwrap();
    let over = reception
        .engine
        .book(booking("squeezed in", Some("Urgent: chest pain")))
        .await
        .unwrap();
    reception
        .engine
        .act(first.id, AppointmentAction::Cancel, Some("moved".into()))
        .await
        .unwrap();
    reception.converges_with_node(WAIT).await;
    let on_node = reception
        .engine
        .store()
        .appointment(over.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        on_node.appointment.override_reason.as_deref(),
        Some("Urgent: chest pain")
    );

    // The node refuses a booking of that time without an override.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/appointments", node.url))
        .bearer_auth(support::reception_token(&node.url).await)
        .json(
            &serde_json::json!({"patient_id": h.creds.patients[1].id, "practitioner_id": doctor,
                                  "start": slot(7), "reason": "on the node"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let problem: carebridge_protocol::Problem = r.json().await.unwrap();
    assert_eq!(problem.code, ProblemType::SlotTaken, "{problem:?}");

    // Offline, the core refuses the same booking itself, and shows the slot busy.
    node.kill().await;
    let tz: chrono_tz::Tz = reception.signed_in.session.time_zone.parse().unwrap();
    let day = carebridge_protocol::slots::local_date(tz, slot(7));
    let slots = reception
        .engine
        .store()
        .slots(doctor, day, day, tz)
        .await
        .unwrap();
    let s = slots.iter().find(|s| s.start == slot(7)).unwrap();
    assert_eq!(s.status, SlotStatus::Busy);
    let refused = reception.engine.book(booking("offline", None)).await;
    assert!(
        matches!(refused, Err(carebridge_core::CoreError::SlotTaken(_))),
        "{refused:?}"
    );
    assert_eq!(reception.engine.store().pending_count().await.unwrap(), 0);
    // The next slot, free on the node, is still bookable offline.
    let mut next = booking("next slot", None);
    next.start = Some(slot(8));
    reception.engine.book(next).await.unwrap();
    assert_eq!(reception.engine.store().pending_count().await.unwrap(), 1);
}

//! Following the live stream when it says something unusual: a `reset` (the client's
//! `Last-Event-ID` is older than the node's log) makes the client read the snapshot again and end
//! with exactly the node's state; an event the client cannot read is logged and skipped, and the
//! events after it are applied.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carebridge_core::live::{LiveEnd, LiveNews, follow};
use carebridge_core::protocol::snapshot::SnapshotItem;
use carebridge_core::{LocalKey, LocalStore};
use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookAppointment, BookedBy};
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId};
use carebridge_server::clock::SystemClock;
use carebridge_server::demo;
use carebridge_server::node::Node;
use carebridge_testkit::{CapturedLog, eventually};
use serde_json::{Value, json};
use support::{Client, Hospital, slot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// A seeded hospital served in-process (so the test can prune its event log when it likes),
/// keeping only the newest event in its log.
async fn node_with_a_short_log() -> (Hospital, Arc<Node>, String) {
    let h = Hospital::seeded().await;
    let mut config = h.config.clone();
    config.events_retained = 1;
    config.durability = carebridge_server::store::Durability::Normal;
    let node = Node::open(config, Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
    (h, node, url)
}

/// Sends a write to the node as `token`, with `If-Match` when given; panics unless it succeeds.
/// GETs `url` as `token`'s user and returns the JSON it answers.
async fn read(url: String, token: &str) -> Value {
    reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn write(
    method: reqwest::Method,
    url: String,
    token: &str,
    if_match: Option<i64>,
    body: Value,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token)
        .json(&body);
    if let Some(v) = if_match {
        req = req.header("If-Match", format!("\"{v}\""));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reset_the_mirror_holds_exactly_the_nodes_state_including_what_no_event_said() {
    let (h, node, url) = node_with_a_short_log().await;
    let profiles = tempfile::tempdir().unwrap();
    let reception =
        Client::staff(profiles.path(), &url, "reception", demo::RECEPTION_PASSWORD).await;
    // Synced first: the booking's end comes from the doctor's schedule in the mirror.
    reception.converges_with_node(WAIT).await;
    let booked = reception
        .engine
        .book(BookAppointment {
            id: None,
            patient_id: h.creds.patients[0].id,
            practitioner_id: h.creds.bench.practitioner_id,
            start: Some(slot(0)),
            next_available_from: None,
            end: None,
            reason: "follow-up".into(),
            override_reason: None,
        })
        .await
        .unwrap();
    reception.converges_with_node(WAIT).await;
    // The node's id for it (the local one leads there).
    let booked = reception
        .engine
        .store()
        .appointment(booked.id)
        .await
        .unwrap()
        .unwrap()
        .appointment;
    let before = reception.engine.store().sync_state().await.unwrap();
    let away = reception.away().await;

    // While the client is away: its booking is cancelled, a doctor is renamed and another's
    // account disabled (no event ever carries an account: only a snapshot can tell), and a
    // booking is made. Then the log keeps only the newest event.
    let desk = support::staff_token(&url, "reception", demo::RECEPTION_PASSWORD).await;
    let admin = support::staff_token(&url, "admin", demo::ADMIN_PASSWORD).await;
    let version = |v: &Value| v["version"].as_i64().unwrap();
    let a = format!("{url}/api/v1/appointments/{}", booked.id);
    let current = read(a.clone(), &desk).await;
    let cancelled = write(
        reqwest::Method::POST,
        format!("{a}/cancel"),
        &desk,
        Some(version(&current)),
        json!({"reason": "the patient called"}),
    )
    .await;
    let staff = read(format!("{url}/api/v1/practitioners"), &admin).await;
    let account = |id: PractitionerId| {
        staff
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == json!(id))
            .unwrap()
            .clone()
    };
    let bench = h.creds.bench.practitioner_id;
    let renamed = write(
        reqwest::Method::PATCH,
        format!("{url}/api/v1/practitioners/{bench}"),
        &admin,
        Some(version(&account(bench))),
        json!({"display_name": "Dr. Renamed While Away"}),
    )
    .await;
    let leaving = h.creds.doctors[0].id;
    write(
        reqwest::Method::PATCH,
        format!("{url}/api/v1/practitioners/{leaving}"),
        &admin,
        Some(version(&account(leaving))),
        json!({"disabled": true}),
    )
    .await;
    write(
        reqwest::Method::POST,
        format!("{url}/api/v1/appointments"),
        &desk,
        None,
        json!({
            "patient_id": h.creds.patients[1].id,
            "practitioner_id": bench,
            "start": slot(3),
            "reason": "new while away",
        }),
    )
    .await;
    carebridge_server::jobs::prune(&node).await.unwrap();
    let head = node.hub.head();

    let reception = away.back().await;
    reception.converges_with_node(WAIT).await;
    let store = reception.engine.store();
    let after = store.sync_state().await.unwrap();
    assert!(
        after.snapshot_event_id.unwrap() >= head && head > before.last_event_id.unwrap(),
        "the snapshot was read again: {before:?} then {after:?}, head {head}"
    );
    let row = store.appointment(booked.id).await.unwrap().unwrap();
    assert_eq!(row.appointment.status, AppointmentStatus::Cancelled);
    assert_eq!(row.appointment.version, version(&cancelled));
    let names: Vec<_> = store
        .practitioners()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.display_name, p.version))
        .collect();
    assert!(
        names.contains(&(
            bench,
            "Dr. Renamed While Away".to_owned(),
            version(&renamed)
        )),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|(id, _, _)| *id == leaving),
        "a disabled account stays: {names:?}"
    );
}

/// A node that is not a node: answers the first live stream with `script` and keeps it open,
/// and remembers the `Last-Event-ID` of every request.
async fn scripted_stream(script: String) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client hung up before its request ended");
                head.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8(head).unwrap();
            let last = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("last-event-id")
                    .then(|| value.trim().to_owned())
            });
            let first = seen.lock().unwrap().is_empty();
            seen.lock().unwrap().push(last);
            let mut answer = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n",
            );
            if first {
                answer.push_str(&script);
            }
            conn.write_all(answer.as_bytes()).await.unwrap();
            held.push(conn);
        }
    });
    (url, asked)
}

fn appointment(id: AppointmentId, version: i64, reason: &str) -> Appointment {
    let start = slot(0);
    Appointment {
        id,
        reference: "K7Q-4MZ".into(),
        patient_id: PatientId::new(),
        practitioner_id: PractitionerId::new(),
        start,
        end: start + chrono::Duration::minutes(15),
        reason: reason.into(),
        status: AppointmentStatus::Booked,
        booked_by: BookedBy::Staff {
            id: PractitionerId::new(),
        },
        override_reason: None,
        cancellation_reason: None,
        version,
        created_at: start,
        updated_at: start,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_event_the_client_cannot_read_is_logged_and_passed_and_the_events_after_it_are_applied()
{
    // The follower runs on this thread: what it logs goes to this log.
    let log = CapturedLog::default();
    let writer = log.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let (first, second) = (AppointmentId::new(), AppointmentId::new());
    let data = |a: &Appointment| serde_json::to_string(a).unwrap();
    // A status this client does not know, where a name could have been: serde's message would
    // quote it.
    let mut odd: Value = serde_json::to_value(appointment(second, 1, "check-up")).unwrap();
    odd["status"] = json!("Anna Jansen");
    let script = [
        format!(
            "id: 1\nevent: appointment.created\ndata: {}\n\n",
            data(&appointment(first, 1, "cough"))
        ),
        "id: 2\nevent: appointment.teleported\ndata: {\"id\":\"x\"}\n\n".to_owned(),
        "id: 3\nevent: appointment.updated\ndata: {\"id\": \"01\n\n".to_owned(),
        format!(
            "id: 4\nevent: appointment.updated\ndata: {}\n\n",
            data(&appointment(first, 2, "cough, worse"))
        ),
        format!("id: 5\nevent: appointment.created\ndata: {odd}\n\n"),
        format!(
            "id: 6\nevent: appointment.created\ndata: {}\n\n",
            data(&appointment(second, 1, "check-up"))
        ),
        "id: 7\nevent: report.teleported\ndata: {}\n\n".to_owned(),
    ]
    .concat();
    let (url, asked) = scripted_stream(script).await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("local.db");
    let store = tokio::task::spawn_blocking(move || LocalStore::open(&db, &LocalKey::random()))
        .await
        .unwrap()
        .unwrap();
    store
        .apply_snapshot_batch(vec![
            SnapshotItem::Begin { event_id: 0 },
            SnapshotItem::End { records: 0 },
        ])
        .await
        .unwrap();
    let (news, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let following = {
        let (store, stop, url) = (store.clone(), stop.clone(), url.clone());
        tokio::spawn(async move { follow(&url, "token", &store, stop, news).await })
    };

    eventually(
        "the stream is followed past its last event",
        WAIT,
        || async { store.sync_state().await.unwrap().last_event_id == Some(7) },
    )
    .await;
    let mut applied = Vec::new();
    while let Ok(n) = heard.try_recv() {
        if let LiveNews::Applied(a) = n {
            applied.extend(a.into_iter().map(|a| a.event_id));
        }
    }
    assert_eq!(applied, [1, 4, 6], "the readable events, each once");
    let row = store.appointment(first).await.unwrap().unwrap();
    assert_eq!(
        (row.appointment.version, row.appointment.reason.as_str()),
        (2, "cough, worse")
    );
    assert!(store.appointment(second).await.unwrap().is_some());
    assert!(!following.is_finished(), "the follower stopped");
    let logged = log.text();
    for (id, kind) in [
        (2, "appointment.teleported"),
        (3, "appointment.updated"),
        (5, "appointment.created"),
        (7, "report.teleported"),
    ] {
        assert!(
            logged.lines().any(|l| l.contains("skipping a live event")
                && l.contains(&format!("id={id}"))
                && l.contains(kind)),
            "event {id} was not logged:\n{logged}"
        );
    }
    assert!(
        !logged.contains("Anna Jansen"),
        "the log quotes an event's data:\n{logged}"
    );
    stop.cancel();
    assert_eq!(following.await.unwrap().unwrap(), LiveEnd::Stopped);

    // Followed again (the app restarted): from after the last event, unreadable ones included.
    let stop = CancellationToken::new();
    let (news, _heard) = tokio::sync::mpsc::unbounded_channel();
    let again = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move { follow(&url, "token", &store, stop, news).await })
    };
    eventually("the stream is asked for again", WAIT, || async {
        asked.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(asked.lock().unwrap()[1].as_deref(), Some("7"));
    stop.cancel();
    again.await.unwrap().unwrap();
}

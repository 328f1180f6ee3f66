//! The first sync against a real node: complete, consistent with its event id, resumable after
//! a cut, encrypted at rest, and never letting an older version win.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use carebridge_core::store::LocalStore;
use carebridge_core::sync::{SnapshotOptions, first_sync};
use carebridge_core::{CoreError, LocalKey};
use carebridge_protocol::snapshot::SnapshotItem;
use carebridge_server::clock::SystemClock;
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};
use carebridge_testkit::eventually;

struct TestNode {
    url: String,
    token: String,
    node: Arc<Node>,
    _dir: tempfile::TempDir,
}

/// How long a live change may take to reach the mirror.
const ARRIVAL: Duration = Duration::from_secs(10);

async fn node() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "core.example".into(),
        kind: NodeKind::Hospital,
        time_zone: "Europe/Amsterdam".into(),
        admin_username: "admin".into(),
        admin_password: demo::ADMIN_PASSWORD.into(),
        database_url: None,
    };
    let mut cfg = init(dir.path(), &opts, &SystemClock).unwrap();
    cfg.durability = carebridge_server::store::Durability::Normal;
    let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let size = DemoSize {
        doctors: 2,
        days: 2,
        patients: 30,
        bench: false,
        appointments: None,
    };
    demo::seed(&node, &size, &url).await.unwrap();
    tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
    let token = support::reception_token(&url).await;
    TestNode {
        url,
        token,
        node,
        _dir: dir,
    }
}

async fn local(dir: &std::path::Path, passphrase: &str) -> Result<LocalStore, CoreError> {
    let db = dir.join("local.db");
    let pass = passphrase.to_owned();
    tokio::task::spawn_blocking(move || {
        let key = LocalKey::derive(&pass, &LocalKey::salt_for(&db)?)?;
        LocalStore::open(&db, &key)
    })
    .await
    .unwrap()
}

/// A read-only connection of the test's own to the node's database.
fn node_db(n: &TestNode) -> rusqlite::Connection {
    carebridge_server::store::open_connection(
        &n.node.config.db_path(),
        &carebridge_server::node::load_key(&n.node.config).unwrap(),
        true,
    )
    .unwrap()
}

async fn node_count(n: &TestNode, sql: &'static str) -> u64 {
    node_db(n)
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// The store holds what reception may see on the node, and `stored` records came in all:
/// every appointment, the 30 patients, 2 schedules and 4 staff accounts.
async fn assert_mirrors(n: &TestNode, store: &LocalStore, stored: u64) {
    assert_eq!(store.count("patient").await.unwrap(), 30);
    assert_eq!(
        store.count("appointment").await.unwrap(),
        node_count(n, "SELECT count(*) FROM appointments").await
    );
    assert_eq!(
        stored,
        node_count(n, "SELECT (SELECT count(*) FROM appointments) + 30 + 2 + 4").await
    );
}

/// A doctor's id and the first `k` patients' ids, from the node's database.
async fn doctor_and_patients(n: &TestNode, k: usize) -> (String, Vec<String>) {
    let c = node_db(n);
    let doctor = c
        .query_row(
            "SELECT id FROM practitioners WHERE role = 'doctor' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut st = c.prepare("SELECT id FROM patients LIMIT ?1").unwrap();
    let patients = st
        .query_map([k as i64], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    (doctor, patients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_mirrors_what_the_user_may_see() {
    let n = node().await;
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), "correct horse battery staple")
        .await
        .unwrap();
    let stored = first_sync(
        &reqwest::Client::new(),
        &n.url,
        &n.token,
        &store,
        &SnapshotOptions {
            batch: 16,
            stop_after: None,
        },
    )
    .await
    .unwrap();
    assert_mirrors(&n, &store, stored).await;
    let state = store.sync_state().await.unwrap();
    assert!(state.snapshot_complete);
    assert_eq!(state.snapshot_event_id, Some(n.node.hub.head()));
    // A second call has nothing left to do.
    assert_eq!(
        first_sync(
            &reqwest::Client::new(),
            &n.url,
            &n.token,
            &store,
            &SnapshotOptions::default()
        )
        .await
        .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_first_sync_resumes_where_it_stopped() {
    let n = node().await;
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), "pass phrase for the kiosk")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut total = 0;
    for step in [7u64, 25, 40] {
        match first_sync(
            &http,
            &n.url,
            &n.token,
            &store,
            &SnapshotOptions {
                batch: 5,
                stop_after: Some(step),
            },
        )
        .await
        {
            Err(CoreError::Interrupted(k)) => total += k,
            other => panic!("expected a cut after {step}: {other:?}"),
        }
    }
    assert_eq!(total, 72);
    total += first_sync(&http, &n.url, &n.token, &store, &SnapshotOptions::default())
        .await
        .unwrap();
    assert_mirrors(&n, &store, total).await;
    assert!(store.sync_state().await.unwrap().snapshot_complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_store_is_encrypted_and_keeps_the_newest_version() {
    let n = node().await;
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), "the right passphrase").await.unwrap();
    first_sync(
        &reqwest::Client::new(),
        &n.url,
        &n.token,
        &store,
        &SnapshotOptions::default(),
    )
    .await
    .unwrap();
    // An older version of a stored record changes nothing; a newer one replaces it.
    let patient: carebridge_protocol::patient::Patient = n
        .node
        .store
        .read(|tx| {
            let q = carebridge_protocol::patient::PatientSearch {
                limit: Some(1),
                ..Default::default()
            };
            carebridge_server::store::patients::search(tx, &q, "core.example")
        })
        .await
        .unwrap()
        .remove(0);
    let mut older = patient.clone();
    older.version = 0;
    older.family_name = "Stale".into();
    store
        .apply_snapshot_batch(vec![SnapshotItem::Patient(older)])
        .await
        .unwrap();
    assert_eq!(
        store
            .version_of("patient", patient.id.to_string())
            .await
            .unwrap(),
        Some(patient.version)
    );
    let mut newer = patient.clone();
    newer.version += 1;
    store
        .apply_snapshot_batch(vec![SnapshotItem::Patient(newer)])
        .await
        .unwrap();
    assert_eq!(
        store
            .version_of("patient", patient.id.to_string())
            .await
            .unwrap(),
        Some(patient.version + 1)
    );
    drop(store);
    // No patient name in clear in any file; a wrong passphrase is a clear error.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&patient.family_name));
    }
    assert!(matches!(
        local(dir.path(), "a wrong passphrase").await,
        Err(CoreError::WrongKey)
    ));
    assert!(local(dir.path(), "the right passphrase").await.is_ok());
}

/// Reads `n` events from the node's stream after `from`, decoded, with a deadline.
async fn read_events(
    n: &TestNode,
    from: i64,
    want: usize,
) -> Vec<(i64, carebridge_protocol::event::LiveEvent)> {
    use carebridge_protocol::event::{EventKind, LiveEvent};
    use futures_util::StreamExt;
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/events", n.url))
        .bearer_auth(&n.token)
        .header("last-event-id", from.to_string())
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while out.len() < want {
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_owned)
                };
                if let (Some(id), Some(kind), Some(data)) =
                    (field("id: "), field("event: "), field("data: "))
                    && let Some(kind) = EventKind::parse(&kind)
                {
                    out.push((id.parse().unwrap(), LiveEvent::decode(kind, &data).unwrap()));
                }
            }
            if out.len() < want {
                text.push_str(&String::from_utf8_lossy(
                    &body.next().await.unwrap().unwrap(),
                ));
            }
        }
    })
    .await
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_apply_once_with_their_position() {
    let n = node().await;
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), "live events passphrase").await.unwrap();
    let http = reqwest::Client::new();
    first_sync(&http, &n.url, &n.token, &store, &SnapshotOptions::default())
        .await
        .unwrap();
    let from = store.sync_state().await.unwrap().snapshot_event_id.unwrap();
    let before = store.count("appointment").await.unwrap();
    // Changes on the node after the snapshot: two bookings, then one of them cancelled.
    let (doctor, patients) = doctor_and_patients(&n, 2).await;
    let mut booked = Vec::new();
    for patient in &patients {
        let a: serde_json::Value = http
            .post(format!("{}/api/v1/appointments", n.url))
            .bearer_auth(&n.token)
            .json(&serde_json::json!({"patient_id": patient, "practitioner_id": doctor,
                                      "next_available_from": "2000-01-01T00:00:00Z", "reason": "live"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        booked.push(a["id"].as_str().unwrap().to_owned());
    }
    let r = http
        .post(format!(
            "{}/api/v1/appointments/{}/cancel",
            n.url, booked[0]
        ))
        .bearer_auth(&n.token)
        .json(&serde_json::json!({"reason": "changed plans"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = read_events(&n, from, 3).await;
    assert_eq!(store.apply_events(events.clone()).await.unwrap().len(), 3);
    assert_eq!(store.count("appointment").await.unwrap(), before + 2);
    assert_eq!(
        store
            .version_of("appointment", booked[0].clone())
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store.sync_state().await.unwrap().last_event_id,
        Some(events[2].0)
    );
    // Replayed after a reconnect: nothing is applied twice, and the position stays.
    assert!(store.apply_events(events.clone()).await.unwrap().is_empty());
    // Out of order within a batch: the older version of the cancelled one never wins, and
    // nothing counts as a change the user sees.
    let mut reordered = vec![events[2].clone(), events[0].clone()];
    reordered[0].0 = events[2].0 + 10;
    reordered[1].0 = events[2].0 + 11;
    assert!(store.apply_events(reordered).await.unwrap().is_empty());
    assert_eq!(
        store
            .version_of("appointment", booked[0].clone())
            .await
            .unwrap(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_applies_live_changes_and_stops_when_signed_out() {
    use carebridge_core::live::{LiveEnd, follow};
    let n = node().await;
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), "follower passphrase").await.unwrap();
    let http = reqwest::Client::new();
    first_sync(&http, &n.url, &n.token, &store, &SnapshotOptions::default())
        .await
        .unwrap();
    let before = store.count("appointment").await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let follower = {
        let (url, token, store, stop) =
            (n.url.clone(), n.token.clone(), store.clone(), stop.clone());
        tokio::spawn(async move {
            let (news, _) = tokio::sync::mpsc::unbounded_channel();
            follow(&url, &token, &store, stop, news).await
        })
    };
    let (doctor, patients) = doctor_and_patients(&n, 1).await;
    let patient = patients[0].clone();
    let book = || async {
        let r = http
            .post(format!("{}/api/v1/appointments", n.url))
            .bearer_auth(&n.token)
            .json(&serde_json::json!({"patient_id": patient, "practitioner_id": doctor,
                                      "next_available_from": "2000-01-01T00:00:00Z", "reason": "followed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    book().await;
    eventually("the booking arrives", ARRIVAL, || async {
        store.count("appointment").await.unwrap() > before
    })
    .await;
    // Stopped, then started again: it resumes from the stored position.
    stop.cancel();
    assert_eq!(follower.await.unwrap().unwrap(), LiveEnd::Stopped);
    book().await;
    let follower = {
        let (url, token, store) = (n.url.clone(), n.token.clone(), store.clone());
        tokio::spawn(async move {
            let (news, _) = tokio::sync::mpsc::unbounded_channel();
            follow(
                &url,
                &token,
                &store,
                tokio_util::sync::CancellationToken::new(),
                news,
            )
            .await
        })
    };
    eventually("the second booking arrives", ARRIVAL, || async {
        store.count("appointment").await.unwrap() > before + 1
    })
    .await;
    // Signing out ends the session: the follower stops instead of retrying for ever.
    let r = http
        .delete(format!("{}/api/v1/sessions/current", n.url))
        .bearer_auth(&n.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let end = tokio::time::timeout(std::time::Duration::from_secs(20), follower)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end, LiveEnd::SignedOut);
}

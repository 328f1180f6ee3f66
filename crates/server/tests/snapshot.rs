//! The snapshot: consistent with the event id it states, only what the caller may see,
//! resumable after any record.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::Duration;

use carebridge_protocol::snapshot::SnapshotItem;
use carebridge_server::demo::DemoSize;
use serde_json::json;
use support::{Client, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

async fn snapshot(c: &Client, after: Option<&str>) -> (u16, Vec<SnapshotItem>) {
    let mut req = c
        .http
        .get(format!("{}/api/v1/snapshot", c.url))
        .bearer_auth(&c.token);
    if let Some(a) = after {
        req = req.query(&[("after", a)]);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if status != 200 {
        return (status, Vec::new());
    }
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let items = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (status, items)
}

fn records(items: &[SnapshotItem]) -> Vec<&SnapshotItem> {
    items.iter().filter(|i| i.cursor().is_some()).collect()
}

fn begin(items: &[SnapshotItem]) -> i64 {
    match items.first() {
        Some(SnapshotItem::Begin { event_id }) => *event_id,
        other => panic!("first line is not begin: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_and_the_stream_from_its_event_id_miss_nothing_and_repeat_nothing() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    for i in 0..3 {
        let r = reception
            .book_next(
                &node.doctor_id(i),
                &node.patient(i).id.to_string(),
                "before",
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let (status, items) = snapshot(&reception, None).await;
    assert_eq!(status, 200);
    let event_id = begin(&items);
    assert_eq!(event_id, node.node.hub.head());
    let n = records(&items).len() as u64;
    assert_eq!(items.last(), Some(&SnapshotItem::End { records: n }));
    let appointments: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let SnapshotItem::Appointment(a) = i {
                Some(a)
            } else {
                None
            }
        })
        .collect();
    let listed = reception.get("/api/v1/appointments?limit=1000").await;
    assert_eq!(appointments.len(), listed.body.as_array().unwrap().len());
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, SnapshotItem::Patient(_)))
            .count(),
        20
    );
    // After the snapshot: the stream from its id brings exactly what came later.
    let after = reception
        .book_next(&node.doctor_id(0), &node.patient(4).id.to_string(), "after")
        .await;
    let mut s = reception.events(Some(event_id)).await;
    let e = s.next(WAIT).await.unwrap();
    assert_eq!(e.data["id"], after.body["id"]);
    assert!(
        appointments
            .iter()
            .all(|a| a.id.to_string() != after.body["id"].as_str().unwrap())
    );
    assert!(
        s.try_next(Duration::from_millis(300)).await.is_err(),
        "nothing else may come"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_gets_only_what_they_may_see() {
    let node = TestNode::start().await;
    let kiosk = node.kiosk().await;
    let p = node.patient(2);
    let r = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": p.card_number, "birth_date": p.birth_date}),
        )
        .await;
    assert_eq!(r.status, 200);
    let booked = kiosk
        .book_next(&node.doctor_id(1), &p.id.to_string(), "kiosk")
        .await;
    assert_eq!(booked.status, 201);
    let (_, items) = snapshot(&kiosk, None).await;
    let recs = records(&items);
    assert!(
        recs.iter().all(|i| !matches!(i, SnapshotItem::Patient(_))),
        "a kiosk gets no patient records"
    );
    let mine: Vec<_> = recs
        .iter()
        .filter_map(|i| {
            if let SnapshotItem::Appointment(a) = i {
                Some(a)
            } else {
                None
            }
        })
        .collect();
    // The demo's pending bookings were made by this kiosk too.
    let me = carebridge_protocol::appointment::BookedBy::Kiosk {
        id: node.creds.kiosk.device_id,
    };
    assert!(mine.iter().all(|a| a.booked_by == me));
    assert!(
        mine.iter()
            .any(|a| a.id.to_string() == booked.body["id"].as_str().unwrap())
    );
    assert!(recs.iter().all(|i| match i {
        SnapshotItem::Practitioner(p) => p.role == carebridge_protocol::practitioner::Role::Doctor,
        _ => true,
    }));
    let doctor = node.doctor(0).await;
    let (_, items) = snapshot(&doctor, None).await;
    let me = node.creds.doctors[0].id;
    assert!(items.iter().any(|i| matches!(i, SnapshotItem::Patient(_))));
    assert!(items.iter().all(|i| match i {
        SnapshotItem::Appointment(a) => a.practitioner_id == me,
        _ => true,
    }));
    let admin = node.admin().await;
    let (_, items) = snapshot(&admin, None).await;
    assert!(
        items
            .iter()
            .all(|i| !matches!(i, SnapshotItem::Patient(_) | SnapshotItem::Appointment(_)))
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_off_anywhere_resumes_to_the_same_records() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let (_, full) = snapshot(&reception, None).await;
    let all: Vec<String> = records(&full).iter().map(|i| i.cursor().unwrap()).collect();
    assert!(all.len() > 40, "{}", all.len());
    // Cut in each kind's range, and at its very end.
    for cut in [1, 7, 12, 30, all.len() - 1] {
        let (status, rest) = snapshot(&reception, Some(&all[cut - 1])).await;
        assert_eq!(status, 200);
        let mut joined: Vec<String> = all[..cut].to_vec();
        joined.extend(records(&rest).iter().map(|i| i.cursor().unwrap()));
        assert_eq!(joined, all, "cut after {}", all[cut - 1]);
    }
    for bad in ["nonsense", "invoice:01a2", "patient:not-a-uuid"] {
        assert_eq!(snapshot(&reception, Some(bad)).await.0, 422, "{bad}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sized_demo_makes_exactly_the_appointments_asked_for() {
    use std::sync::Arc;

    use carebridge_server::demo::{self, DemoSize};
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::init_dir(dir.path());
    let node = carebridge_server::Node::open(cfg, Arc::new(carebridge_server::clock::SystemClock))
        .unwrap();
    let size = DemoSize {
        doctors: 2,
        days: 1,
        patients: 50,
        bench: false,
        appointments: Some(2_345),
    };
    demo::seed(&node, &size, "").await.unwrap();
    let db = carebridge_server::store::open_connection(
        &node.config.db_path(),
        &carebridge_server::node::load_key(&node.config).unwrap(),
        true,
    )
    .unwrap();
    let (n, statuses): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT status) FROM appointments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, 2_345);
    assert!(statuses >= 5, "{statuses} statuses");
}

/// What is left of a response on `stream`, up to its chunked body's last chunk (the response
/// ends; the connection may stay open).
async fn rest_of(stream: &mut tokio::net::TcpStream) -> String {
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT * 3, async {
        while !rest.ends_with(b"\r\n0\r\n\r\n") {
            if stream.read_buf(&mut rest).await.unwrap_or(0) == 0 {
                break;
            }
        }
    })
    .await
    .expect("the snapshot was never ended");
    String::from_utf8_lossy(&rest).into_owned()
}

/// Opens a snapshot on a raw connection and reads its status line only: a reader that then
/// stops reading.
async fn stalled_snapshot(node: &TestNode, token: &str) -> (String, tokio::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::connect(node.url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET /api/v1/snapshot HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await.unwrap();
    (String::from_utf8_lossy(&status).into_owned(), stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_snapshot_readers_are_ended_and_block_no_one_and_a_users_new_snapshot_ends_their_old_one()
 {
    // Enough patients that a snapshot outgrows every buffer between the node and a reader
    // that stopped reading.
    let size = DemoSize {
        doctors: 2,
        days: 1,
        patients: 6000,
        bench: false,
        appointments: None,
    };
    let node = TestNode::start_sized(size, |c| {
        c.snapshot_stall_seconds = 3;
        c.tcp_send_buffer = Some(4096);
    })
    .await;
    let reception = node.reception().await;
    let admin = node.admin().await;
    // A second receptionist: two users who each see every patient.
    let created = admin
        .post(
            "/api/v1/practitioners",
            json!({"username": "reception.two", "display_name": "Front Desk Two", "role": "reception", "password": "second-desk-password"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let second_desk = Client::sign_in(&node.url, "reception.two", "second-desk-password").await;

    let (status, mut first) = stalled_snapshot(&node, &reception.token).await;
    assert_eq!(status, "HTTP/1.1 200");
    let (status, mut second) = stalled_snapshot(&node, &second_desk.token).await;
    assert_eq!(status, "HTTP/1.1 200");

    // Both places are held by readers that stopped: another user is served once the node
    // has ended them, and both were ended without their `end` line (their readers resume).
    let (status, items) = tokio::time::timeout(Duration::from_secs(60), snapshot(&admin, None))
        .await
        .expect("a stalled reader blocked everyone's snapshot");
    assert_eq!(status, 200);
    assert!(
        matches!(items.last(), Some(SnapshotItem::End { .. })),
        "{:?}",
        items.last()
    );
    // Reading a stalled stream would un-stall it: first wait until the node has ended both
    // (every place free again).
    carebridge_testkit::eventually("both stalled snapshots are ended", WAIT * 3, || async {
        node.node.snapshot_permits.available_permits() == 2
    })
    .await;
    for (who, stream) in [("reception", &mut first), ("reception.two", &mut second)] {
        assert!(
            !rest_of(stream).await.contains("\"kind\":\"end\""),
            "{who}'s snapshot was sent whole"
        );
    }

    // The same user starting again while a snapshot of theirs is stalled (a client resuming
    // after a cut) is served whole; the stalled one is ended.
    let (status, mut stalled) = stalled_snapshot(&node, &reception.token).await;
    assert_eq!(status, "HTTP/1.1 200");
    let (status, items) = tokio::time::timeout(Duration::from_secs(60), snapshot(&reception, None))
        .await
        .expect("the user's new snapshot was blocked by their stalled one");
    assert_eq!(status, 200);
    assert!(
        matches!(items.last(), Some(SnapshotItem::End { .. })),
        "{:?}",
        items.last()
    );
    assert!(!rest_of(&mut stalled).await.contains("\"kind\":\"end\""));
    // And the user may read one again.
    let (status, _) = snapshot(&reception, None).await;
    assert_eq!(status, 200);
}

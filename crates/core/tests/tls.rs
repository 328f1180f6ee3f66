//! A node served over HTTPS: sign-in, first sync, the live stream and the outbox all go
//! through TLS, trusting the system's roots — here a test CA given as `SSL_CERT_FILE`, as a
//! hospital's IT would install its own CA. The environment must be set before the process
//! starts, so the test runs [`tls_child`] as a child process.

mod support;

use std::sync::Arc;
use std::time::Duration;

use carebridge_core::session::sign_in_staff;
use carebridge_core::{Link, Profiles, RecordingNotifier, SyncEngine};
use carebridge_protocol::appointment::BookAppointment;
use carebridge_server::clock::SystemClock;
use carebridge_server::config::TlsConfig;
use carebridge_server::node::Node;

#[test]
fn the_engine_syncs_follows_and_writes_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tls_child", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", dir.path().join("cert.pem"))
        .env("CAREBRIDGE_TLS_TEST_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the TLS child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_engine_syncs_follows_and_writes_over_https with SSL_CERT_FILE set"]
async fn tls_child() {
    let dir = std::path::PathBuf::from(
        std::env::var("CAREBRIDGE_TLS_TEST_DIR").expect("run by the parent test"),
    );
    let h = support::Hospital::seeded().await;
    let mut cfg = h.config.clone();
    cfg.tls = Some(TlsConfig {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    });
    let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));

    let s = sign_in_staff(
        &reqwest::Client::new(),
        &url,
        "reception",
        carebridge_server::demo::RECEPTION_PASSWORD,
    )
    .await
    .unwrap();
    let profiles = Profiles::at(dir.join("profiles"));
    let open = profiles.open("tls", &support::unlock()).await.unwrap();
    let engine = SyncEngine::start(
        open.store,
        s.clone(),
        Arc::new(RecordingNotifier::default()),
    );
    let mut status = engine.status();
    tokio::time::timeout(
        Duration::from_secs(20),
        status.wait_for(|s| s.link == Link::Online),
    )
    .await
    .expect("the live stream over TLS did not connect")
    .unwrap();
    let booked = engine
        .book(BookAppointment {
            id: None,
            patient_id: h.creds.patients[0].id,
            practitioner_id: h.creds.bench.practitioner_id,
            start: Some(support::slot(0)),
            next_available_from: None,
            end: None,
            reason: "over TLS".into(),
            override_reason: None,
        })
        .await
        .unwrap();
    carebridge_testkit::eventually(
        "the booking is acknowledged over TLS",
        Duration::from_secs(20),
        || async { engine.status().borrow().pending == 0 },
    )
    .await;
    let client = support::Client {
        profiles,
        profile: "tls".into(),
        engine,
        notices: Arc::new(RecordingNotifier::default()),
        signed_in: s,
    };
    client.converges_with_node(Duration::from_secs(20)).await;
    let row = client
        .engine
        .store()
        .appointment(booked.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.pending);
    assert!(
        !row.appointment.reference.is_empty(),
        "the node's answer replaced the local copy"
    );
}

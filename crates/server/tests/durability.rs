//! What must survive: a killed node, the encryption at rest, the audit chain, backups. These
//! tests run the real `carebridge-node` binary and kill it with SIGKILL.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use carebridge_server::clock::SystemClock;
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{Node, load_key};
use carebridge_server::store::{DbKey, StoreError, open_connection};
use carebridge_testkit::{NodeProcess, eventually, node_command};
use serde_json::json;
use support::{Client, init_dir, mt};

const WAIT: Duration = Duration::from_secs(15);

/// An initialised, seeded data directory, with no node running on it.
async fn seeded(dir: &Path) -> DemoCredentials {
    let cfg = init_dir(dir);
    let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
    let creds = demo::seed(
        &node,
        &DemoSize {
            doctors: 2,
            days: 2,
            patients: 10,
            bench: true,
            appointments: None,
        },
        "",
    )
    .await
    .unwrap();
    drop(node);
    creds
}

fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    node_command()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("CAREBRIDGE_LOG", "error")
        .output()
        .unwrap()
}

async fn book(c: &Client, creds: &DemoCredentials, reason: &str) -> reqwest::StatusCode {
    c.post(
        "/api/v1/appointments",
        json!({"patient_id": creds.patients[0].id, "practitioner_id": creds.bench.practitioner_id,
               "next_available_from": "2000-01-01T00:00:00Z", "reason": reason}),
    )
    .await
    .status
}

#[test]
fn stream_resumes_across_a_killed_node_without_loss_or_repeats() {
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let creds = seeded(dir.path()).await;
        let node = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
        let reception = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
        let mut s = reception.events(None).await;
        for i in 0..5 {
            assert_eq!(book(&reception, &creds, &format!("before {i}")).await, 201);
        }
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(s.next(WAIT).await.expect("event"));
        }
        // Acknowledged writes the client has not seen yet, then the node dies.
        for i in 0..3 {
            assert_eq!(book(&reception, &creds, &format!("unseen {i}")).await, 201);
        }
        let stopped = node.kill().await;
        // The old stream ends with the process (whatever it managed to deliver first).
        s.wait_closed(WAIT).await;
        let node = stopped.restart().await;
        // The token survived too (sessions are in the database).
        for i in 0..2 {
            assert_eq!(book(&reception, &creds, &format!("after {i}")).await, 201);
        }
        let last = seen.last().unwrap().id.unwrap();
        let mut s = reception.events(Some(last)).await;
        let mut reasons = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..5 {
            let e = s.next(WAIT).await.expect("event");
            ids.push(e.id.unwrap());
            reasons.push(e.data["reason"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            reasons,
            ["unseen 0", "unseen 1", "unseen 2", "after 0", "after 1"]
        );
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > last);
        assert!(
            s.try_next(Duration::from_millis(300)).await.is_err(),
            "nothing more may come"
        );
        node.kill().await;
    });
}

#[test]
fn the_database_holds_no_patient_name_in_clear_and_needs_its_key() {
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        seeded(dir.path()).await;
        let node = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
        let reception = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
        let name = "Quistgaardovich";
        let r = reception
            .post(
                "/api/v1/patients",
                json!({"family_name": name, "given_name": "Zebediah", "birth_date": "1961-04-05"}),
            )
            .await;
        assert_eq!(r.status, 201);
        node.kill().await;
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap().path();
            let bytes = std::fs::read(&f).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(name),
                "{} holds the name in clear",
                f.display()
            );
            assert!(
                !hay.contains("SQLite format 3"),
                "{} is a plain SQLite file",
                f.display()
            );
        }
        let db = dir.path().join("carebridge.db");
        // The right key opens it and finds the patient; a wrong key is a clear error.
        let cfg = carebridge_server::NodeConfig::load(Some(&dir.path().join("node.toml"))).unwrap();
        let key = load_key(&cfg).unwrap();
        let conn = open_connection(&db, &key, true).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM patients WHERE family_name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        match open_connection(&db, &DbKey::generate(), true) {
            Err(StoreError::WrongKey(_)) => {}
            other => panic!("expected WrongKey, got {:?}", other.map(|_| ())),
        }
        // And the binary says so in one line, with a non-zero exit.
        let out = node_command()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .env("CAREBRIDGE_DB_KEY", DbKey::generate().to_hex())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("database key does not open"), "{err}");
        // Without any key: one line naming the key file.
        std::fs::rename(dir.path().join("db.key"), dir.path().join("db.key.away")).unwrap();
        let out = cli(&["serve", "--listen", "127.0.0.1:0"], dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("no database key")
                && err.trim().lines().count() == 1,
            "{err}"
        );
    });
}

#[test]
fn serve_on_an_uninitialised_directory_names_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["serve"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("carebridge-node init"), "{err}");
}

#[test]
fn audit_verify_catches_an_edited_row() {
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let creds = seeded(dir.path()).await;
        let node = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
        let reception = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
        assert_eq!(book(&reception, &creds, "audited").await, 201);
        assert_eq!(
            reception
                .get(&format!("/api/v1/patients/{}", creds.patients[0].id))
                .await
                .status,
            200
        );
        node.kill().await;
        let ok = cli(&["audit", "verify"], dir.path());
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(String::from_utf8_lossy(&ok.stdout).contains("audit chain OK"));
        // Someone with the key edits one entry's detail.
        let cfg = carebridge_server::NodeConfig::load(Some(&dir.path().join("node.toml"))).unwrap();
        let conn = open_connection(
            &dir.path().join("carebridge.db"),
            &load_key(&cfg).unwrap(),
            false,
        )
        .unwrap();
        let seq: i64 = conn
            .query_row(
                "SELECT seq FROM audit WHERE action = 'patient.read'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // The triggers refuse the edit; someone with the key drops them first.
        conn.execute_batch("DROP TRIGGER audit_no_update").unwrap();
        conn.execute(
            "UPDATE audit SET actor = 'staff:someone-else' WHERE seq = ?1",
            [seq],
        )
        .unwrap();
        drop(conn);
        let bad = cli(&["audit", "verify"], dir.path());
        assert!(!bad.status.success());
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains(&format!("entry {seq}")), "{err}");
    });
}

#[test]
fn a_backup_taken_under_load_restores_to_a_node_that_verifies() {
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let creds = seeded(dir.path()).await;
        let node = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
        let reception = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
        // Keep booking while the backup runs.
        let stop = Arc::new(AtomicBool::new(false));
        let booked = Arc::new(AtomicUsize::new(0));
        let load = {
            let (c, creds, stop, booked) = (
                reception.clone(),
                creds.clone(),
                stop.clone(),
                booked.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(book(&c, &creds, &format!("load {i}")).await, 201);
                    booked.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        };
        eventually("20 bookings before the backup", WAIT, || async {
            booked.load(Ordering::Relaxed) >= 20
        })
        .await;
        let copy = dir.path().join("copy.cbbak");
        let out = tokio::task::spawn_blocking({
            let (d, c) = (dir.path().to_owned(), copy.clone());
            move || {
                node_command()
                    .args(["backup", "--data-dir"])
                    .arg(&d)
                    .arg("--to")
                    .arg(&c)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let during = booked.load(Ordering::Relaxed);
        eventually("10 bookings more during the backup", WAIT, || async {
            booked.load(Ordering::Relaxed) >= during + 10
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        load.await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        node.kill().await;
        // Restore into a fresh directory, with the key file kept apart.
        let fresh = tempfile::tempdir().unwrap();
        let out = node_command()
            .args(["restore", "--data-dir"])
            .arg(fresh.path())
            .arg("--from")
            .arg(&copy)
            .arg("--key-file")
            .arg(dir.path().join("db.key"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = cli(&["audit", "verify"], fresh.path());
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        // The restored node serves, and holds the bookings made before the backup began.
        let restored = NodeProcess::spawn(fresh.path(), "127.0.0.1:0").await;
        let r = Client::sign_in(&restored.url, "reception", demo::RECEPTION_PASSWORD).await;
        let list = r
            .get(&format!(
                "/api/v1/appointments?practitioner_id={}&limit=1000",
                creds.bench.practitioner_id
            ))
            .await;
        let n = list.body.as_array().unwrap().len();
        assert!(
            n >= 20 && n <= booked.load(Ordering::Relaxed),
            "{n} bookings restored"
        );
        restored.kill().await;
        // A damaged copy is refused before anything is replaced.
        let mut bytes = std::fs::read(&copy).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        let broken = dir.path().join("broken.cbbak");
        std::fs::write(&broken, bytes).unwrap();
        let before = std::fs::read(fresh.path().join("carebridge.db")).unwrap();
        let out = node_command()
            .args(["restore", "--data-dir"])
            .arg(fresh.path())
            .arg("--from")
            .arg(&broken)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert_eq!(
            std::fs::read(fresh.path().join("carebridge.db")).unwrap(),
            before
        );
    });
}

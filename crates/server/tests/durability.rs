//! What must survive: a killed node, the encryption at rest, the audit chain, backups. These
//! tests run the real `carebridge-node` binary and kill it with SIGKILL.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Runs the node binary with `args`, off the async threads.
async fn run(args: Vec<std::ffi::OsString>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        node_command()
            .args(args)
            .env("CAREBRIDGE_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn restore_args(dir: &Path, from: &Path, key_file: Option<&Path>) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![
        "restore".into(),
        "--data-dir".into(),
        dir.into(),
        "--from".into(),
        from.into(),
    ];
    if let Some(k) = key_file {
        a.extend(["--key-file".into(), k.into()]);
    }
    a
}

fn backup_args(dir: &Path, to: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "backup".into(),
        "--data-dir".into(),
        dir.into(),
        "--to".into(),
        to.into(),
    ]
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The reasons of every appointment in the database of `dir`.
fn reasons_in(dir: &Path) -> HashSet<String> {
    let cfg = carebridge_server::NodeConfig::load(Some(&dir.join("node.toml"))).unwrap();
    let db = open_connection(&dir.join("carebridge.db"), &load_key(&cfg).unwrap(), true).unwrap();
    let mut st = db.prepare("SELECT reason FROM appointments").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_backup_taken_while_three_writers_book_restores_every_booking_acknowledged_before_it_began() {
    const WRITERS: usize = 3;
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let creds = seeded(dir.path()).await;
        let node = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
        // Every acknowledged booking, by reason, with when its 201 arrived.
        let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let c = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
            let (creds, stop, acked) = (creds.clone(), stop.clone(), acked.clone());
            writers.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reason = format!("writer {w} booking {i}");
                    assert_eq!(book(&c, &creds, &reason).await, 201, "{reason}");
                    acked.lock().unwrap().push((reason, Instant::now()));
                    i += 1;
                }
            }));
        }
        let count = || acked.lock().unwrap().len();
        eventually("30 bookings before the backup", WAIT, || async { count() >= 30 }).await;

        let copy = dir.path().join("copy.cbbak");
        let began = Instant::now();
        let out = run(backup_args(dir.path(), &copy)).await;
        let ended = Instant::now();
        assert!(out.status.success(), "{}", stderr(&out));
        let after = |t: Instant| acked.lock().unwrap().iter().filter(|(_, at)| *at > t).count();
        eventually("10 bookings after the backup", WAIT, || async { after(ended) >= 10 }).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        node.kill().await;

        // The writes overlapped the copy: acknowledged before it began, while it ran, after.
        let acked = acked.lock().unwrap().clone();
        let before: Vec<&String> = acked.iter().filter(|(_, t)| *t < began).map(|(r, _)| r).collect();
        let during = acked.iter().filter(|(_, t)| *t >= began && *t <= ended).count();
        let writers_during: HashSet<&str> = acked
            .iter()
            .filter(|(_, t)| *t >= began && *t <= ended)
            .map(|(r, _)| r.split(" booking").next().unwrap())
            .collect();
        assert!(
            before.len() >= 30 && during >= 1 && after(ended) >= 10,
            "{} before the backup, {during} during it ({:?}), {} after",
            before.len(),
            ended - began,
            after(ended)
        );
        eprintln!(
            "{} bookings acknowledged before the backup, {during} while it ran ({:?}, by {} writers), {} after",
            before.len(),
            ended - began,
            writers_during.len(),
            after(ended)
        );

        // Restore into a fresh directory, with the key file kept apart.
        let fresh = tempfile::tempdir().unwrap();
        let key = dir.path().join("db.key");
        let out = run(restore_args(fresh.path(), &copy, Some(&key))).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v = cli(&["audit", "verify"], fresh.path());
        assert!(v.status.success(), "{}", stderr(&v));
        let restored = reasons_in(fresh.path());
        let missing: Vec<_> = before.iter().filter(|r| !restored.contains(r.as_str())).collect();
        assert!(missing.is_empty(), "acknowledged before the backup, not restored: {missing:?}");
        let made: HashSet<&str> = acked.iter().map(|(r, _)| r.as_str()).collect();
        assert!(
            restored
                .iter()
                .filter(|r| r.starts_with("writer "))
                .all(|r| made.contains(r.as_str())),
            "the copy holds no booking that was not made"
        );
        // And the restored node serves them.
        let node = NodeProcess::spawn(fresh.path(), "127.0.0.1:0").await;
        let r = Client::sign_in(&node.url, "reception", demo::RECEPTION_PASSWORD).await;
        let first = r
            .get(&format!(
                "/api/v1/appointments?practitioner_id={}&limit=1",
                creds.bench.practitioner_id
            ))
            .await;
        assert_eq!(first.status, 200);
        assert_eq!(first.body.as_array().unwrap().len(), 1);
        node.kill().await;
    });
}

#[test]
fn a_restore_is_refused_naming_a_wrong_key_a_broken_audit_chain_or_a_damaged_copy_and_replaces_nothing()
 {
    mt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        seeded(dir.path()).await;
        let copy = dir.path().join("copy.cbbak");
        let out = run(backup_args(dir.path(), &copy)).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let key = dir.path().join("db.key");

        // A wrong key, into a new machine's empty directory: refused, and nothing is left
        // behind (not even the wrong key), so that the right key works next.
        let wrong = dir.path().join("wrong.key");
        std::fs::write(&wrong, DbKey::generate().to_hex()).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let out = run(restore_args(fresh.path(), &copy, Some(&wrong))).await;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("key does not open"),
            "{}",
            stderr(&out)
        );
        let left: Vec<_> = std::fs::read_dir(fresh.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "a refused restore left {left:?}");
        let out = run(restore_args(fresh.path(), &copy, Some(&key))).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let db = fresh.path().join("carebridge.db");
        let restored = std::fs::read(&db).unwrap();

        // A wrong key, into a node that has its own: refused, its database untouched.
        let other = tempfile::tempdir().unwrap();
        init_dir(other.path());
        let other_db = std::fs::read(other.path().join("carebridge.db")).unwrap();
        let out = run(restore_args(other.path(), &copy, None)).await;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("key does not open"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(other.path().join("carebridge.db")).unwrap(),
            other_db
        );

        // A copy whose audit chain was edited (by someone holding the key): refused, naming
        // the entry.
        let broken = dir.path().join("edited.cbbak");
        std::fs::copy(&copy, &broken).unwrap();
        let seq: i64 = {
            let conn = open_connection(&broken, &load_key_file(&key), false).unwrap();
            let seq = conn
                .query_row("SELECT max(seq) / 2 FROM audit", [], |r| r.get(0))
                .unwrap();
            conn.execute_batch("DROP TRIGGER IF EXISTS audit_no_update")
                .unwrap();
            conn.execute(
                "UPDATE audit SET detail = 'nothing happened' WHERE seq = ?1",
                [seq],
            )
            .unwrap();
            seq
        };
        let out = run(restore_args(fresh.path(), &broken, None)).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("audit trail is broken") && err.contains(&format!("entry {seq}")),
            "{err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), restored, "nothing replaced");

        // A damaged copy (one byte flipped): refused before anything is replaced.
        let mut bytes = std::fs::read(&copy).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        let damaged = dir.path().join("damaged.cbbak");
        std::fs::write(&damaged, bytes).unwrap();
        let out = run(restore_args(fresh.path(), &damaged, None)).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
        assert_eq!(std::fs::read(&db).unwrap(), restored, "nothing replaced");
        let before_restore: Vec<_> = std::fs::read_dir(fresh.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("before-restore"))
            .collect();
        assert!(before_restore.is_empty(), "{before_restore:?}");
    });
}

/// The key in a key file.
fn load_key_file(path: &Path) -> DbKey {
    let cfg = carebridge_server::NodeConfig {
        key_file: Some(path.to_owned()),
        ..Default::default()
    };
    load_key(&cfg).unwrap()
}

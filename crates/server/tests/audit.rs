//! The audit trail's tail is anchored: the node signs checkpoints of the chain's head (at
//! start, at intervals, at shutdown), the triggers refuse changing or deleting entries, and
//! `carebridge-node audit verify` (and the backup check) name a cut tail, a rewritten chain, a
//! deleted checkpoint, and, with an exported copy, a chain and checkpoints rewritten together
//! with the node's own key. Real database files; verify runs the real binary.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::path::Path;
use std::sync::Arc;

use carebridge_protocol::audit::checkpoint::AuditCheckpoint;
use carebridge_protocol::audit::{AuditEntry, AuditQuery, chain_hash};
use carebridge_server::clock::SystemClock;
use carebridge_server::demo::{self, DemoSize};
use carebridge_server::node::{Node, load_key};
use carebridge_server::store::{Reader, audit, backup, keys, open_connection};
use carebridge_testkit::node_command;
use rusqlite::Connection;
use support::{Client, init_dir};

/// A node that was seeded, served (a patient read through the API), and stopped the way the
/// binary stops on SIGTERM. Returns the patient read's audit entry.
async fn served_and_stopped(dir: &Path) -> i64 {
    let cfg = init_dir(dir);
    let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let size = DemoSize {
        doctors: 1,
        days: 1,
        patients: 3,
        bench: false,
        appointments: None,
    };
    let creds = demo::seed(&node, &size, &url).await.unwrap();
    let served = tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
    let reception = Client::sign_in(&url, "reception", demo::RECEPTION_PASSWORD).await;
    let read = reception
        .get(&format!("/api/v1/patients/{}", creds.patients[0].id))
        .await;
    assert_eq!(read.status, 200);
    node.shutdown.cancel();
    served.await.unwrap().unwrap();
    let reader = reader(dir);
    let entries = audit::list(
        &reader.tx(),
        &AuditQuery {
            before: Some(i64::MAX),
            limit: Some(1000),
            ..AuditQuery::default()
        },
    )
    .unwrap();
    entries
        .iter()
        .find(|e| e.record.action == "patient.read")
        .map(|e| e.record.seq)
        .unwrap()
}

fn reader(dir: &Path) -> Reader {
    let cfg = carebridge_server::NodeConfig::load(Some(&dir.join("node.toml"))).unwrap();
    Reader::open(&cfg.db_path(), &load_key(&cfg).unwrap()).unwrap()
}

/// A raw read-write connection, as someone holding the database key has.
fn raw(dir: &Path) -> Connection {
    let cfg = carebridge_server::NodeConfig::load(Some(&dir.join("node.toml"))).unwrap();
    open_connection(&cfg.db_path(), &load_key(&cfg).unwrap(), false).unwrap()
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

/// `audit verify` fails; its error.
fn verify_fails(dir: &Path, extra: &[&str]) -> String {
    let out = cli(&[&["audit", "verify"], extra].concat(), dir);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "verify passed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn head(dir: &Path) -> i64 {
    audit::head(&reader(dir).tx()).unwrap().0
}

fn latest(dir: &Path) -> AuditCheckpoint {
    audit::latest_checkpoint(&reader(dir).tx())
        .unwrap()
        .unwrap()
}

/// Entries from `from` on, oldest first.
fn entries_from(dir: &Path, from: i64) -> Vec<AuditEntry> {
    audit::list(
        &reader(dir).tx(),
        &AuditQuery {
            after: Some(from - 1),
            limit: Some(1000),
            ..AuditQuery::default()
        },
    )
    .unwrap()
}

/// Edits entry `seq`'s actor and recomputes every later entry's link and hash, as someone
/// holding the key would, after dropping the trigger that refuses it.
fn rewrite_from(dir: &Path, seq: i64) {
    let mut entries = entries_from(dir, seq);
    let conn = raw(dir);
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_no_update")
        .unwrap();
    let mut prev = entries[0].record.prev_hash.clone();
    entries[0].record.actor = "staff:someone-else".into();
    for e in &mut entries {
        e.record.prev_hash = prev;
        e.hash = chain_hash(&e.record);
        prev = e.hash.clone();
        conn.execute(
            "UPDATE audit SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![e.record.actor, e.record.prev_hash, e.hash, e.record.seq],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_normally_verifies_against_checkpoints_signed_at_start_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let read = served_and_stopped(dir.path()).await;
    let cp = latest(dir.path());
    // Start anchored the seeding; shutdown anchored the patient read and all after it: the
    // chain ends with the shutdown checkpoint's own entry.
    assert_eq!(cp.number, 2);
    assert!(
        cp.seq >= read,
        "checkpoint of entry {} before read {read}",
        cp.seq
    );
    assert_eq!(head(dir.path()), cp.seq + 1);
    let out = cli(&["audit", "verify"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit chain OK"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "checked against 2 signed checkpoints; the latest, 2, signed {} for entry {}",
            cp.signed_at, cp.seq
        )),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triggers_refuse_updating_or_deleting_audit_entries_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    served_and_stopped(dir.path()).await;
    let last = head(dir.path());
    let first = entries_from(dir.path(), 1)[0].clone();
    let conn = raw(dir.path());
    for (sql, refusal) in [
        (
            "UPDATE audit SET detail = 'edited' WHERE seq = 1",
            "an entry cannot be changed",
        ),
        (
            "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
            "an entry cannot be deleted",
        ),
        (
            "UPDATE audit_checkpoints SET seq = 1",
            "a checkpoint cannot be changed",
        ),
        (
            "DELETE FROM audit_checkpoints",
            "a checkpoint cannot be deleted",
        ),
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains(refusal), "{sql}: {err}");
    }
    drop(conn);
    assert_eq!(head(dir.path()), last);
    assert_eq!(latest(dir.path()).number, 2);
    assert_eq!(entries_from(dir.path(), 1)[0], first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_tail_cut_off_with_the_trigger_dropped() {
    let dir = tempfile::tempdir().unwrap();
    served_and_stopped(dir.path()).await;
    let (last, cp) = (head(dir.path()), latest(dir.path()));
    let conn = raw(dir.path());
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit WHERE seq > ?1", [last - 3])
        .unwrap();
    drop(conn);
    // What is left is a valid chain on its own; only the checkpoint shows the loss.
    assert!(audit::verify(&reader(dir.path()).tx()).unwrap().is_ok());
    let err = verify_fails(dir.path(), &[]);
    assert!(
        err.contains(&format!(
            "the audit trail ends at entry {}, but checkpoint 2 signed {} vouches for entry {}",
            last - 3,
            cp.signed_at,
            cp.seq
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("entries from {} on were removed", last - 2)),
        "{err}"
    );
    // The backup check (and so restore) refuses the copy too.
    let cfg = carebridge_server::NodeConfig::load(Some(&dir.path().join("node.toml"))).unwrap();
    let refused = backup::check(&cfg.db_path(), &load_key(&cfg).unwrap()).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("the audit trail is broken: the audit trail ends at entry"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_chain_rewritten_from_an_edited_entry_on() {
    let dir = tempfile::tempdir().unwrap();
    let read = served_and_stopped(dir.path()).await;
    let cp = latest(dir.path());
    rewrite_from(dir.path(), read);
    // Every link holds again: the chain alone cannot tell.
    assert!(audit::verify(&reader(dir.path()).tx()).unwrap().is_ok());
    let err = verify_fails(dir.path(), &[]);
    assert!(
        err.contains(&format!(
            "audit entry {} is not the one checkpoint 2 signed {} vouches for: the chain was rewritten",
            cp.seq, cp.signed_at
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_deleted_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    served_and_stopped(dir.path()).await;
    let recorded_in = head(dir.path());
    let conn = raw(dir.path());
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_checkpoints_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_checkpoints WHERE number = 2", [])
        .unwrap();
    drop(conn);
    let err = verify_fails(dir.path(), &[]);
    assert!(
        err.contains(&format!(
            "audit checkpoint 2 is missing (deleted): audit entry {recorded_in} records that it was made"
        )),
        "{err}"
    );
    // The first one gone instead: its number is missing from the sequence.
    let dir = tempfile::tempdir().unwrap();
    served_and_stopped(dir.path()).await;
    let conn = raw(dir.path());
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_checkpoints_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_checkpoints WHERE number = 1", [])
        .unwrap();
    drop(conn);
    let err = verify_fails(dir.path(), &[]);
    assert!(
        err.contains("audit checkpoint 1 is missing (deleted)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_checkpoint_names_a_rewrite_re_signed_with_the_nodes_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let read = served_and_stopped(dir.path()).await;
    let export = dir.path().join("kept-elsewhere.jsonl");
    let out = cli(
        &[
            "audit",
            "checkpoint",
            "--export",
            "--to",
            export.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["node"], "st-marys.example");
    assert_eq!(lines[1]["number"], 2);
    // Someone with the database key, hence the node's signing key in it, rewrites the chain
    // and signs the checkpoints again to match.
    rewrite_from(dir.path(), read);
    let (signing, _) = keys::secret_keys(&reader(dir.path()).tx()).unwrap();
    let old = audit::checkpoints(&reader(dir.path()).tx(), 0, 100).unwrap();
    let conn = raw(dir.path());
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete; DELETE FROM audit_checkpoints",
    )
    .unwrap();
    for cp in &old {
        let hash: String = conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [cp.seq], |r| {
                r.get(0)
            })
            .unwrap();
        let forged = AuditCheckpoint::sign(cp.number, cp.seq, &hash, cp.signed_at, &signing);
        conn.execute(
            "INSERT INTO audit_checkpoints (number, seq, hash, signed_at, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                forged.number,
                forged.seq,
                forged.hash,
                forged.signed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                forged.signature
            ],
        )
        .unwrap();
    }
    drop(conn);
    // On the machine alone, everything agrees again.
    let alone = cli(&["audit", "verify"], dir.path());
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let err = verify_fails(dir.path(), &["--checkpoints", export.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "audit entry {} is not the one checkpoint 2 (exported copy) signed",
            old[1].seq
        )),
        "{err}"
    );
}

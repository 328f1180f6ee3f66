//! Peering a hospital and an insurer as an operator would, with nothing but the binary: `init`
//! and `keys` on both, `peer add` on one side (it prints the shared API key) and `peer add
//! --their-api-key` on the other. Both databases then hold the other node with the same key
//! and the message types its kind sends, and an admin update served through both nodes goes
//! over and its acknowledgement comes back. Bad input, and a node still serving, are refused
//! with a message naming the problem and leave the peers as they were.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use carebridge_protocol::federation::identity::NodeIdentity;
use carebridge_server::config::{CONFIG_FILE, NodeConfig, NodeKind};
use carebridge_server::federation::peer::Peer;
use carebridge_server::store::federation::peers;
use carebridge_server::store::{Reader, open_connection};
use carebridge_testkit::{NodeProcess, eventually, free_port, node_command};
use serde_json::json;
use support::Client;
use tokio::io::AsyncWriteExt;

const HOSPITAL: &str = "st-marys.example";
const INSURER: &str = "assure.example";
const ADMIN_PASSWORD: &str = "admin-peering-pass";
/// How long one command may take (init hashes a password with Argon2).
const COMMAND: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

/// Runs the node binary to completion (killed at the deadline), feeding it `stdin`.
async fn node<I, S>(args: I, stdin: Option<&[u8]>) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = tokio::process::Command::from(node_command())
        .args(args)
        .env("CAREBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CAREBRIDGE_LOG", "warn")
        .env_remove("CAREBRIDGE_DB_KEY")
        .env_remove("CAREBRIDGE_CONFIG")
        .env_remove("CAREBRIDGE_DATA_DIR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn carebridge-node");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    tokio::time::timeout(COMMAND, child.wait_with_output())
        .await
        .expect("carebridge-node did not finish in time")
        .expect("carebridge-node output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn succeeded(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(o));
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

/// Asserts a refusal whose message contains every one of `words`.
#[track_caller]
fn refused(o: &Output, words: &[&str]) {
    assert!(!o.status.success(), "accepted: {}", stderr(o));
    let text = stderr(o);
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
}

fn config(dir: &Path) -> NodeConfig {
    NodeConfig::load(Some(&dir.join(CONFIG_FILE))).expect("node.toml")
}

/// The node's peers, read from its database without taking the data directory's lock.
fn peers(dir: &Path) -> Vec<Peer> {
    let cfg = config(dir);
    let key = carebridge_server::node::load_key(&cfg).expect("db key");
    let reader = Reader::open(&cfg.db_path(), &key).expect("db");
    peers::list(&reader.tx()).expect("peers")
}

/// Every stored column of every peer, and how many `peer.add` the audit holds: what a
/// refused `peer add` must leave as it was.
fn peers_state(dir: &Path) -> (Vec<Vec<String>>, i64) {
    let cfg = config(dir);
    let key = carebridge_server::node::load_key(&cfg).expect("db key");
    let conn = open_connection(&cfg.db_path(), &key, true).expect("db");
    let mut st = conn
        .prepare(
            "SELECT name, kind, url, hex(signing_key), hex(agreement_key), api_key,
                    hex(api_key_hash), allowed_sources, allowed_types, created_at, updated_at
             FROM peers ORDER BY name",
        )
        .expect("select peers");
    let rows = st
        .query_map([], |r| {
            (0..11)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("peers")
        .collect::<Result<Vec<_>, _>>()
        .expect("peer rows");
    let audited = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'peer.add'",
            [],
            |r| r.get(0),
        )
        .expect("audit");
    (rows, audited)
}

fn types(p: &Peer) -> Vec<&'static str> {
    p.allowed_types.iter().map(|t| t.as_str()).collect()
}

fn sources(p: &Peer) -> Vec<String> {
    p.allowed_sources.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_commands_on_each_side_peer_a_hospital_and_an_insurer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (h, i) = (tmp.path().join("hospital"), tmp.path().join("insurer"));
    let path = |p: &Path| p.to_str().expect("a UTF-8 temporary path").to_owned();
    let (hd, id) = (path(&h), path(&i));
    // The URLs go into the identity documents before either node serves.
    let h_addr = format!("127.0.0.1:{}", free_port());
    let i_addr = format!("127.0.0.1:{}", free_port());
    let (h_url, i_url) = (format!("http://{h_addr}"), format!("http://{i_addr}"));

    for (dir, name, kind) in [(&hd, HOSPITAL, "hospital"), (&id, INSURER, "insurer")] {
        let init = [
            "init",
            "--data-dir",
            dir,
            "--name",
            name,
            "--kind",
            kind,
            "--time-zone",
            "Europe/Amsterdam",
        ];
        succeeded(&node(init, None).await);
    }

    // 1. Each side prints its identity.
    let h_identity = succeeded(&node(["keys", "--data-dir", &hd, "--url", &h_url], None).await);
    let i_identity = succeeded(&node(["keys", "--data-dir", &id, "--url", &i_url], None).await);
    let h_doc: NodeIdentity = serde_json::from_str(&h_identity).expect("hospital identity");
    let i_doc: NodeIdentity = serde_json::from_str(&i_identity).expect("insurer identity");
    let i_file = path(&tmp.path().join("insurer.json"));
    std::fs::write(&i_file, &i_identity).expect("write insurer identity");

    // 2. The hospital adds the insurer from its file; stdout is the new API key alone.
    let added = node(
        [
            "peer",
            "add",
            "--data-dir",
            &hd,
            "--identity",
            &i_file,
            "--allow-source",
            "127.0.0.1",
        ],
        None,
    )
    .await;
    let api_key = succeeded(&added).trim().to_owned();
    assert!(
        api_key.len() >= 32,
        "an API key alone on stdout: {api_key:?}"
    );
    assert!(!api_key.contains(char::is_whitespace), "{api_key:?}");
    assert!(
        stderr(&added).contains("--their-api-key"),
        "says what the other side does: {}",
        stderr(&added)
    );

    // 3. The insurer adds the hospital (identity on stdin) with the key it was given.
    let completed = node(
        [
            "peer",
            "add",
            "--data-dir",
            &id,
            "--identity",
            "-",
            "--allow-source",
            "127.0.0.1",
            "--their-api-key",
            &api_key,
        ],
        Some(h_identity.as_bytes()),
    )
    .await;
    assert_eq!(succeeded(&completed), "", "nothing to hand over this time");

    // Each database holds the other node, the same key, and what its kind may send.
    let [at_hospital] = peers(&h).try_into().expect("one peer at the hospital");
    let [at_insurer] = peers(&i).try_into().expect("one peer at the insurer");
    assert_eq!(at_hospital.name, INSURER);
    assert_eq!(at_hospital.kind, NodeKind::Insurer);
    assert_eq!(at_hospital.url, i_url);
    assert_eq!(at_hospital.signing_key, i_doc.signing_key().expect("key"));
    assert_eq!(
        at_hospital.agreement_key,
        i_doc.agreement_key().expect("key")
    );
    assert_eq!(sources(&at_hospital), ["127.0.0.1"]);
    assert_eq!(types(&at_hospital), ["admin-update"]);
    assert_eq!(at_insurer.name, HOSPITAL);
    assert_eq!(at_insurer.kind, NodeKind::Hospital);
    assert_eq!(at_insurer.url, h_url);
    assert_eq!(at_insurer.signing_key, h_doc.signing_key().expect("key"));
    assert_eq!(
        at_insurer.agreement_key,
        h_doc.agreement_key().expect("key")
    );
    assert_eq!(sources(&at_insurer), ["127.0.0.1"]);
    assert_eq!(types(&at_insurer), ["medical-reports", "admin-update-ack"]);
    assert_eq!(at_hospital.api_key, api_key);
    assert_eq!(at_insurer.api_key, api_key, "both sides hold one key");

    // Bad input: refused, named, and nothing written.
    let before = peers_state(&h);
    let not_json = path(&tmp.path().join("not-json.txt"));
    std::fs::write(&not_json, "signing key fingerprint: 12:34\n").expect("write");
    let h_file = path(&tmp.path().join("hospital.json"));
    std::fs::write(&h_file, &h_identity).expect("write hospital identity");
    let absent = path(&tmp.path().join("absent.json"));
    let add = |identity: &str, extra: &[&str]| {
        let mut args = vec!["peer", "add", "--data-dir", &hd, "--identity", identity];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let cases = [
        (
            "an identity that is not JSON",
            add(&not_json, &["--allow-source", "127.0.0.1"]),
            vec!["the identity is not a document `carebridge-node keys` printed"],
        ),
        (
            "an identity file that does not exist",
            add(&absent, &["--allow-source", "127.0.0.1"]),
            vec!["absent.json"],
        ),
        (
            "no --allow-source",
            add(&i_file, &[]),
            vec!["--allow-source"],
        ),
        (
            "a malformed --allow-source",
            add(&i_file, &["--allow-source", "127.0.0.300"]),
            vec!["\"127.0.0.300\" is not an IP address"],
        ),
        (
            "a prefix too long",
            add(&i_file, &["--allow-source", "10.0.0.0/40"]),
            vec!["\"10.0.0.0/40\"", "prefix length"],
        ),
        (
            "the node's own identity",
            add(&h_file, &["--allow-source", "127.0.0.1"]),
            vec!["this node's own identity"],
        ),
        (
            "an unknown message type",
            add(
                &i_file,
                &["--allow-source", "127.0.0.1", "--allow-type", "claims"],
            ),
            vec!["\"claims\" is not a message type"],
        ),
        (
            "an API key that is not one",
            add(
                &i_file,
                &["--allow-source", "127.0.0.1", "--their-api-key", "short"],
            ),
            vec!["their_api_key", "not an API key"],
        ),
    ];
    for (what, args, words) in cases {
        let o = node(args, None).await;
        assert!(!o.status.success(), "{what}: accepted");
        refused(&o, &words);
        assert_eq!(peers_state(&h), before, "{what}: the peers changed");
    }

    // Served, both nodes exchange: an insurer's admin update reaches the hospital, and the
    // hospital's acknowledgement comes back.
    let hospital = NodeProcess::spawn(&h, &h_addr).await;
    let insurer = NodeProcess::spawn(&i, &i_addr).await;
    assert_eq!(hospital.url, h_url);
    assert_eq!(insurer.url, i_url);

    // A node that serves is locked: `peer add` says to stop it, and changes nothing.
    let busy = node(add(&i_file, &["--allow-source", "127.0.0.9"]), None).await;
    refused(&busy, &["locked by a running carebridge-node", "stop it"]);
    assert_eq!(peers_state(&h), before, "a served node's peers changed");

    let i_admin = Client::sign_in(&i_url, "admin", ADMIN_PASSWORD).await;
    let h_admin = Client::sign_in(&h_url, "admin", ADMIN_PASSWORD).await;
    let sent = i_admin
        .post(
            "/api/v1/admin-updates",
            json!({"peer": HOSPITAL, "audience": "all", "title": "Peered", "body": "Over the new peering."}),
        )
        .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let update = sent.body["id"].as_str().expect("update id").to_owned();
    eventually("the hospital's admin receives the update", WAIT, || async {
        let list = h_admin.get("/api/v1/admin-updates").await;
        list.body
            .as_array()
            .is_some_and(|l| l.iter().any(|u| u["id"] == update.as_str()))
    })
    .await;
    let ack = h_admin
        .post(
            &format!("/api/v1/admin-updates/{update}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!(ack.status, 200, "{}", ack.body);
    eventually("the insurer counts the acknowledgement", WAIT, || async {
        let list = i_admin.get("/api/v1/admin-updates").await;
        list.body[0]["acknowledgements"] == 1
    })
    .await;
    let sent = i_admin.get("/api/v1/transmissions").await;
    assert_eq!(sent.body[0]["state"], "acknowledged", "{}", sent.body);

    hospital.kill().await;
    insurer.kill().await;
}

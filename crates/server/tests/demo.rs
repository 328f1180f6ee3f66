//! `carebridge-node demo --prepare-only`: the demo hospital seeded into a data directory
//! without serving it, so that it can be peered first and served later by a plain `serve
//! --data-dir`, at the address and with the credentials the preparation wrote down.

mod support;

use std::process::Stdio;
use std::time::Duration;

use carebridge_testkit::{free_port, node_command};
use serde_json::Value;
use support::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);

async fn node(args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::from(node_command())
        .args(args)
        .env("CAREBRIDGE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn carebridge-node");
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("carebridge-node did not finish in time")
        .expect("carebridge-node output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_demo_is_served_later_by_serve_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("st-marys");
    let dir_s = dir.to_str().expect("UTF-8 path");
    let listen = format!("127.0.0.1:{}", free_port());

    // The credentials name the URL: a port picked at serve time cannot be in them.
    let zero = node(&[
        "demo",
        "--prepare-only",
        "--data-dir",
        dir_s,
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert!(!zero.status.success());
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("fixed --listen port"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );
    assert!(!dir.exists(), "nothing made before the refusal");
    let nowhere = node(&["demo", "--prepare-only", "--listen", &listen]).await;
    assert!(
        !nowhere.status.success(),
        "a throw-away directory is no use"
    );
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("--data-dir"));

    let prepared = node(&[
        "demo",
        "--prepare-only",
        "--data-dir",
        dir_s,
        "--listen",
        &listen,
    ])
    .await;
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    // The file holds passwords: readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("demo-credentials.json"))
            .expect("demo-credentials.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let creds: Value = serde_json::from_slice(
        &std::fs::read(dir.join("demo-credentials.json")).expect("demo-credentials.json"),
    )
    .expect("credentials JSON");
    let url = format!("http://{listen}");
    assert_eq!(creds["url"], url.as_str());
    assert_eq!(creds["node"], "st-marys.example");
    let toml = std::fs::read_to_string(dir.join("node.toml")).expect("node.toml");
    assert!(toml.contains(&format!("listen = {listen:?}")), "{toml}");

    // Prepared once only: a second run refuses the directory, which keeps its data.
    let again = node(&[
        "demo",
        "--prepare-only",
        "--data-dir",
        dir_s,
        "--listen",
        &listen,
    ])
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // `serve` with the data directory alone: node.toml gives the address.
    let mut served = tokio::process::Command::from(node_command())
        .args(["serve", "--data-dir", dir_s])
        .env("CAREBRIDGE_LOG", "warn")
        .env_remove("CAREBRIDGE_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(served.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("serve did not start in time")
        .expect("read stdout")
        .expect("serve exited before listening");
    assert_eq!(line, format!("carebridge-node listening on {url}"));

    let doctor = &creds["doctors"][0];
    let doctor = Client::sign_in(
        &url,
        doctor["username"].as_str().expect("username"),
        doctor["password"].as_str().expect("password"),
    )
    .await;
    let patient = &creds["patients"][0];
    let record = doctor
        .get(&format!(
            "/api/v1/patients/{}",
            patient["id"].as_str().expect("patient id")
        ))
        .await;
    assert_eq!(record.status, 200, "{}", record.body);
    let name = patient["name"].as_str().expect("name");
    assert!(
        name.ends_with(record.body["family_name"].as_str().expect("family name")),
        "{name} / {}",
        record.body
    );
    served.kill().await.expect("kill serve");
}

//! The node against its own OpenAPI document. The document's shape is checked here; then
//! Schemathesis (pinned, installed by `make test`: `make schemathesis`) runs every one of its
//! checks against a demo node signed in as reception, as a doctor and as an admin, and any
//! finding fails the test. `tests/contract/schemathesis.toml` lists the few operations whose
//! rules JSON Schema cannot state; `tests/contract/hooks.py` gives each request its own
//! Idempotency-Key, as a client does.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::TestNode;

fn document() -> Value {
    serde_json::to_value(carebridge_server::api::openapi()).unwrap()
}

#[test]
fn every_operation_on_a_record_documents_404_and_the_inbox_and_candidates_are_documented() {
    let doc = document();
    let mut named = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for code in ["400", "401", "403", "422", "500", "503"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
            if path.contains('{') {
                named += 1;
                assert!(responses.contains_key("404"), "{method} {path}: no 404");
            }
            let takes_if_match = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"].as_str().unwrap().eq_ignore_ascii_case("if-match"));
            if takes_if_match {
                assert!(responses.contains_key("412"), "{method} {path}: no 412");
            }
        }
    }
    assert!(named >= 25, "only {named} operations on a record");
    let inbox = &doc["paths"]["/federation/v1/inbox"]["post"];
    for code in ["200", "201", "401", "403", "409", "413", "421", "429"] {
        assert!(
            inbox["responses"].get(code).is_some(),
            "the inbox documents no {code}: {inbox}"
        );
    }
    // A possible duplicate's `current` is the list of candidates; a stale update's is the
    // record: the schema must allow both.
    let current = &doc["components"]["schemas"]["Problem"]["properties"]["current"];
    assert!(
        current.get("type").is_none() && current.get("$ref").is_none(),
        "{current}"
    );
}

/// The Schemathesis the Makefile installed (or `SCHEMATHESIS`).
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/carebridge-schemathesis/bin/schemathesis")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: `make schemathesis` installs it (make test does)",
        path.display()
    );
    path
}

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// Runs Schemathesis with every check against the node at `url` as the holder of `token`; its
/// output.
fn run(url: &str, token: &str, operations: &[&str]) -> String {
    let examples = std::env::var("CONTRACT_EXAMPLES").unwrap_or_else(|_| "10".into());
    let seed = std::env::var("CONTRACT_SEED").unwrap_or_else(|_| "20261206".into());
    let dir = contract_dir();
    // Schemathesis keeps a cache where it runs: not in the repository.
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(schemathesis());
    cmd.current_dir(scratch.path())
        .env("SCHEMATHESIS_HOOKS", dir.join("hooks.py"))
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(["--checks", "all", "--workers", "2"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(operations);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "Schemathesis found problems:\n{text}");
    text
}

/// How many test cases a run made (its summary's "N generated").
fn generated(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no test-case count in:\n{output}"))
}

async fn check_as(who: &str) {
    // Schemathesis sends every peer request from one address; past that address's allowance of
    // refusals a minute the node would answer 429 before reading the headers under test
    // (tests/federation.rs checks the allowance).
    let node = TestNode::start_with(|c| c.inbox_refusals_per_minute = 1_000_000).await;
    let client = match who {
        "reception" => node.reception().await,
        "doctor" => node.doctor(0).await,
        "admin" => node.admin().await,
        _ => unreachable!(),
    };
    let token = client.token.clone();
    let url = node.url.clone();
    // Signing out would end the token the rest of the run uses: it has its own run below.
    let output = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run(
                &url,
                &token,
                &["--exclude-path", "/api/v1/sessions/current"],
            )
        }
    })
    .await
    .unwrap();
    assert!(
        generated(&output) >= 1000,
        "{who}: too few cases to have tried every operation:\n{output}"
    );
    let signing_out = node.reception().await;
    let output = tokio::task::spawn_blocking(move || {
        run(
            &url,
            &signing_out.token,
            &["--include-path", "/api/v1/sessions/current"],
        )
    })
    .await
    .unwrap();
    assert!(generated(&output) >= 1, "{output}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_its_documented_contract_for_reception() {
    check_as("reception").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_its_documented_contract_for_a_doctor() {
    check_as("doctor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_its_documented_contract_for_an_admin() {
    check_as("admin").await;
}

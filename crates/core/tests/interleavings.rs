//! A property test: three clients (two reception workstations and the doctor) book and cancel
//! on one doctor's few slots in random order, while clients restart and the node is killed and
//! restarted; in the end every client's mirror equals the node's state and nothing is pending.
//!
//! Every case starts real node processes, so the case count is a fraction of `PROPTEST_CASES`
//! (an eighth, at least two); `make soak` runs many more. A failing case is saved (shrunk) in
//! `interleavings.proptest-regressions` beside this file: commit it, and every later run replays
//! it before any new case.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::Duration;

use carebridge_protocol::appointment::{AppointmentAction, BookAppointment};
use carebridge_testkit::NodeProcess;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use support::{Client, Hospital, slot};

#[derive(Debug, Clone)]
enum Step {
    Book {
        client: usize,
        slot: i64,
        patient: usize,
    },
    Cancel {
        client: usize,
        pick: usize,
    },
    RestartClient {
        client: usize,
    },
    RestartNode,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..3usize, 0..6i64, 0..5usize).prop_map(|(client, slot, patient)| Step::Book { client, slot, patient }),
        3 => (0..3usize, 0..8usize).prop_map(|(client, pick)| Step::Cancel { client, pick }),
        1 => (0..3usize).prop_map(|client| Step::RestartClient { client }),
        1 => Just(Step::RestartNode),
    ]
}

fn cases() -> u32 {
    let all: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    (all / 8).max(2)
}

/// The seeds file beside this one (proptest's default looks for a `lib.rs` above the test,
/// finds none for a test in `tests/`, and comes to this file after a warning).
const SEEDS: FileFailurePersistence = FileFailurePersistence::WithSource("proptest-regressions");

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        max_shrink_iters: 8,
        failure_persistence: Some(Box::new(SEEDS)),
        ..ProptestConfig::default()
    }
}

async fn run(steps: Vec<Step>) {
    let h = Hospital::seeded().await;
    let mut node = Some(NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await);
    let url = node.as_ref().unwrap().url.clone();
    let root = tempfile::tempdir().unwrap();
    let reception = carebridge_server::demo::RECEPTION_PASSWORD;
    let mut clients = [
        Some(Client::staff_as(root.path(), &url, "reception", reception, "desk-1").await),
        Some(Client::staff_as(root.path(), &url, "reception", reception, "desk-2").await),
        Some(
            Client::staff(
                root.path(),
                &url,
                h.bench_doctor(),
                carebridge_server::demo::DOCTOR_PASSWORD,
            )
            .await,
        ),
    ];
    let doctor = h.creds.bench.practitioner_id;
    for s in steps {
        match s {
            Step::Book {
                client,
                slot: n,
                patient,
            } => {
                let c = clients[client].as_ref().unwrap();
                let body = BookAppointment {
                    id: None,
                    patient_id: h.creds.patients[patient % h.creds.patients.len()].id,
                    practitioner_id: doctor,
                    start: Some(slot(n)),
                    next_available_from: None,
                    end: None,
                    reason: format!("case booking {n}"),
                    override_reason: None,
                };
                // Refused here when this client already sees the slot taken: that is fine.
                let _ = c.engine.book(body).await;
            }
            Step::Cancel { client, pick } => {
                let c = clients[client].as_ref().unwrap();
                let live: Vec<_> = c
                    .engine
                    .store()
                    .appointments_between(Some(doctor), slot(0), slot(6))
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|r| r.appointment.status.occupies_time())
                    .collect();
                if let Some(r) = live.get(pick % live.len().max(1)) {
                    let _ = c
                        .engine
                        .act(
                            r.appointment.id,
                            AppointmentAction::Cancel,
                            Some("case".into()),
                        )
                        .await;
                }
            }
            Step::RestartClient { client } => {
                let c = clients[client].take().unwrap();
                clients[client] = Some(c.restart().await);
            }
            Step::RestartNode => {
                node = Some(node.take().unwrap().restart().await);
            }
        }
    }
    for c in clients.iter().flatten() {
        c.converges_with_node(Duration::from_secs(60)).await;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_client_ends_with_the_nodes_state(steps in prop::collection::vec(step(), 4..24)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(steps));
    }
}

/// The property test's configuration reads the committed seeds (proptest replays what it
/// loads before any new case), every one of them: none unreadable, none in another file.
#[test]
fn the_committed_failure_seeds_are_replayed() {
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interleavings.proptest-regressions"),
    )
    .unwrap();
    let seeds = committed.lines().filter(|l| l.starts_with("cc ")).count();
    assert!(seeds > 0, "no seed is committed");
    let persistence = config()
        .failure_persistence
        .expect("failures are persisted");
    let loaded = persistence.load_persisted_failures2(Some(file!()));
    assert_eq!(loaded.len(), seeds, "the seeds the test replays");
}

//! Several `carebridge-node` processes on one PostgreSQL database, each taking any request:
//! what one process commits, every other serves, and the database's constraints hold across
//! them.
//!
//! Every test gets a fresh database on the throw-away cluster `make test` starts
//! (`scripts/with-postgres.sh`), initialises and seeds a demo hospital on it in-process, and
//! serves it from real node processes with data directories of their own (the same key and
//! configuration in each, as a deployment copies them).
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::Arc;

use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};
use carebridge_testkit::NodeProcess;
use carebridge_testkit::postgres::ScratchDatabase;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Client;

/// Node processes serving one database.
struct Cluster {
    nodes: Vec<NodeProcess>,
    creds: DemoCredentials,
    // Dropped after the processes (fields drop in order): the database outlives its clients.
    _dirs: Vec<tempfile::TempDir>,
    _db: ScratchDatabase,
}

impl Cluster {
    /// A demo hospital on a fresh database, served by `n` processes.
    async fn start(n: usize) -> Self {
        let db = ScratchDatabase::create();
        let first = tempfile::tempdir().unwrap();
        let cfg = init(
            first.path(),
            &InitOptions {
                name: "st-marys.example".into(),
                kind: NodeKind::Hospital,
                time_zone: "Europe/Amsterdam".into(),
                admin_username: "admin".into(),
                admin_password: demo::ADMIN_PASSWORD.into(),
                database_url: Some(db.url().to_owned()),
            },
            &SystemClock,
        )
        .unwrap();
        let size = DemoSize {
            doctors: 2,
            days: 3,
            patients: 20,
            bench: false,
            appointments: None,
        };
        let creds = {
            let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
            let creds = demo::seed(&node, &size, "http://cluster.invalid")
                .await
                .unwrap();
            // Its writer stops and its data directory is unlocked once the last handle goes.
            tokio::task::spawn_blocking(move || drop(node))
                .await
                .unwrap();
            creds
        };
        let mut dirs = vec![first];
        for _ in 1..n {
            let dir = tempfile::tempdir().unwrap();
            for file in ["db.key", "node.toml"] {
                std::fs::copy(dirs[0].path().join(file), dir.path().join(file)).unwrap();
            }
            dirs.push(dir);
        }
        let mut nodes = Vec::new();
        for dir in &dirs {
            nodes.push(NodeProcess::spawn(dir.path(), "127.0.0.1:0").await);
        }
        Self {
            nodes,
            creds,
            _dirs: dirs,
            _db: db,
        }
    }

    /// Reception, signed in at process `i`.
    async fn reception(&self, i: usize) -> Client {
        Client::sign_in(
            &self.nodes[i].url,
            &self.creds.reception.username,
            &self.creds.reception.password,
        )
        .await
    }
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A free slot of `doctor`, at least an hour ahead, as process `c` lists it.
async fn free_slot(c: &Client, doctor: &str) -> Value {
    let now = SystemClock.now();
    let from = now.date_naive();
    let a = c
        .get(&format!(
            "/api/v1/practitioners/{doctor}/slots?from={from}&to={}",
            from + Duration::days(3)
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "free" && ts(&s["start"]) > now + Duration::hours(1))
        .cloned()
        .expect("a free slot in the next days")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_concurrent_bookings_of_one_slot_over_three_processes_yield_exactly_one() {
    let cluster = Cluster::start(3).await;
    let mut desks = Vec::new();
    for i in 0..3 {
        desks.push(cluster.reception(i).await);
    }
    let doctor = cluster.creds.doctors[0].id.to_string();
    let slot = free_slot(&desks[0], &doctor).await;
    let start = ts(&slot["start"]);

    const N: usize = 60;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let desk = desks[i % 3].clone();
        let patient = cluster.creds.patients[i % cluster.creds.patients.len()]
            .id
            .to_string();
        let body = json!({
            "patient_id": patient, "practitioner_id": doctor,
            "start": slot["start"], "reason": "Check-up"
        });
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i % 3, desk.post("/api/v1/appointments", body).await)
        }));
    }
    let mut winners = Vec::new();
    let mut refused_by = [0; 3];
    for t in tasks {
        let (process, a) = t.await.unwrap();
        if a.status == StatusCode::CREATED {
            winners.push(a);
        } else {
            assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
            assert_eq!(a.body["code"], "slot-taken", "{}", a.body);
            refused_by[process] += 1;
        }
    }
    assert_eq!(winners.len(), 1, "exactly one booking wins");
    // The losers were spread over every process: the race was across processes.
    assert!(refused_by.iter().all(|n| *n > 0), "{refused_by:?}");
    // Every process serves the one booking.
    for desk in &desks {
        let a = desk
            .get(&format!(
                "/api/v1/appointments?practitioner_id={doctor}&from={}&to={}",
                start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                (start + Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let ids: Vec<&Value> = a
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] != "cancelled")
            .map(|x| &x["id"])
            .collect();
        assert_eq!(ids, vec![&winners[0].body["id"]], "at {}", desk.url);
    }
}

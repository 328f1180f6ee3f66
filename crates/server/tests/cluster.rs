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

use std::collections::BTreeSet;
use std::sync::Arc;

use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::Node;
use carebridge_server::store::DbKey;
use carebridge_server::store::seal::Seal;
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
    /// The database's URL.
    url: String,
    // Dropped after the processes (fields drop in order): the database outlives its clients.
    dirs: Vec<tempfile::TempDir>,
    db: Option<ScratchDatabase>,
}

impl Cluster {
    /// A demo hospital on a fresh database, served by `n` processes.
    async fn start(n: usize) -> Self {
        let db = ScratchDatabase::create();
        let url = db.url().to_owned();
        Self::start_at(n, &url, Some(db)).await
    }

    /// A demo hospital on a fresh database, served by `n` processes that never listen for
    /// PostgreSQL's notifications (`database.notifications = false`): every one is lost to
    /// them, as behind a connection pooler in transaction mode.
    async fn start_polling(n: usize) -> Self {
        let db = ScratchDatabase::create();
        let url = db.url().to_owned();
        Self::start_configured(n, &url, Some(db), "database.notifications = false\n").await
    }

    /// A demo hospital on the empty database at `url`, served by `n` processes.
    async fn start_at(n: usize, url: &str, db: Option<ScratchDatabase>) -> Self {
        Self::start_configured(n, url, db, "").await
    }

    /// [`Cluster::start_at`], with `settings` (top-level TOML lines) added to every process's
    /// `node.toml`.
    async fn start_configured(
        n: usize,
        url: &str,
        db: Option<ScratchDatabase>,
        settings: &str,
    ) -> Self {
        let first = tempfile::tempdir().unwrap();
        let cfg = support::init_dir_on(first.path(), "st-marys.example", Some(url.to_owned()));
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
            // First in the file: a dotted key after a table header would land in that table.
            let toml = dir.path().join("node.toml");
            let text = std::fs::read_to_string(&toml).unwrap();
            std::fs::write(&toml, format!("{settings}{text}")).unwrap();
            nodes.push(NodeProcess::spawn(dir.path(), "127.0.0.1:0").await);
        }
        Self {
            nodes,
            creds,
            url: url.to_owned(),
            dirs,
            db,
        }
    }

    /// The keys the cluster's patient data is sealed with (the shared key file's).
    fn seal(&self) -> Arc<Seal> {
        let key = std::fs::read_to_string(self.dirs[0].path().join("db.key")).unwrap();
        Arc::new(Seal::derive(&DbKey::from_hex(&key).unwrap()))
    }

    /// Commits, beside the node, the event `{"end": true}` that reception sees: the streams'
    /// end marker.
    async fn mark_end(&self) {
        let end = sealed(&self.seal(), &json!({ "end": true }));
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.execute(
                "INSERT INTO events (kind, data, aud_roles, created_at)
                 VALUES ('patient.updated', $2, $1, 0)",
                &[&carebridge_server::events::ROLE_RECEPTION, &end],
            )
            .unwrap();
        })
        .await
        .unwrap();
    }

    /// The cluster's database as `pg_dump` writes it.
    fn dump(&self) -> String {
        self.db
            .as_ref()
            .expect("a database of the test's own")
            .dump()
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

/// `carebridge-node ARGS…`, run to its end.
fn node_cli(args: &[&str]) -> std::process::Output {
    carebridge_testkit::node_command()
        .args(args)
        .env("CAREBRIDGE_LOG", "error")
        .output()
        .unwrap()
}

/// Books `doctor`'s first free slot for demo patient `i` at process `desk`; the booking's id.
async fn book(desk: &Client, doctor: &str, patient: &str) -> String {
    let a = desk.book_next(doctor, patient, "Check-up").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The id `stream` carries the creation of appointment `id` with.
async fn created_at(stream: &mut support::EventStream, id: &str) -> i64 {
    stream
        .wait_for(WITHIN, |e| {
            e.event == "appointment.created" && e.data["id"] == id
        })
        .await
        .id
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_on_one_process_reaches_every_process_stream_and_a_resume_elsewhere_misses_nothing()
 {
    let cluster = Cluster::start(3).await;
    let mut desks = Vec::new();
    for i in 0..3 {
        desks.push(cluster.reception(i).await);
    }
    let doctor = cluster.creds.doctors[0].id.to_string();
    let patient = |i: usize| cluster.creds.patients[i].id.to_string();
    let mut streams = Vec::new();
    for d in &desks {
        let s = d.events(None).await;
        assert_eq!(s.status, 200);
        streams.push(s);
    }
    // Booked at process 0: every process's stream carries it, with one id.
    let first = book(&desks[0], &doctor, &patient(0)).await;
    let mut ids = Vec::new();
    for s in &mut streams {
        let e = s
            .wait_for(WITHIN, |e| {
                e.event == "appointment.created" && e.data["id"] == first.as_str()
            })
            .await;
        ids.push(e.id.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // The stream at process 1 goes; two bookings are made at process 2 meanwhile.
    let last_seen = ids[1];
    drop(streams.remove(1));
    let second = book(&desks[2], &doctor, &patient(1)).await;
    let third = book(&desks[2], &doctor, &patient(2)).await;
    // Resuming at process 0 from the last id seen brings exactly what was missed, in order.
    let mut resumed = desks[0].events(Some(last_seen)).await;
    assert_eq!(resumed.status, 200);
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = resumed.next(WITHIN).await.expect("the missed events");
        if e.event == "appointment.created" {
            got.push((e.id.unwrap(), e.data["id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(
        got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
        vec![second, third]
    );
    assert!(last_seen < got[0].0 && got[0].0 < got[1].0, "{got:?}");
}

/// A transaction of the test's own on the node's database, held open on a thread of its own
/// (the blocking client may not run on an async thread) until told to commit.
struct HeldTransaction {
    commit: std::sync::mpsc::Sender<()>,
    done: std::thread::JoinHandle<()>,
}

impl HeldTransaction {
    /// Begins, inserts an event every role may see, and holds the transaction open.
    fn insert_event(url: &str, seal: &Seal) -> Self {
        let (commit, wait) = std::sync::mpsc::channel::<()>();
        let (began, inserted) = std::sync::mpsc::channel::<()>();
        let url = url.to_owned();
        let data = sealed(seal, &json!({ "held": true }));
        let done = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut tx = c.transaction().unwrap();
            tx.execute(
                "INSERT INTO events (kind, data, aud_roles, created_at)
                 VALUES ('patient.updated', $2, $1, 0)",
                &[
                    &(carebridge_server::events::ROLE_RECEPTION
                        | carebridge_server::events::ROLE_DOCTOR
                        | carebridge_server::events::ROLE_ADMIN),
                    &data,
                ],
            )
            .unwrap();
            began.send(()).unwrap();
            wait.recv().unwrap();
            tx.commit().unwrap();
        });
        inserted.recv().unwrap();
        Self { commit, done }
    }

    fn commit(self) {
        self.commit.send(()).unwrap();
        self.done.join().unwrap();
    }
}

/// An event's data sealed as the node seals its log, for events written beside the node.
fn sealed(seal: &Seal, data: &Value) -> String {
    use carebridge_server::store::sql::Value as Column;
    match seal.seal(Column::Text(data.to_string()), false).unwrap() {
        Column::Text(t) => t,
        other => panic!("text seals as text, not {other:?}"),
    }
}

/// What a reader of the table sees now, on a connection of its own: `(id, position)` of every
/// committed event.
async fn committed_events(url: &str) -> Vec<(i64, Option<i64>)> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query("SELECT id, position FROM events ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committing_late_is_lost_to_a_naive_id_cursor_but_not_to_the_stream() {
    let cluster = Cluster::start(2).await;
    let url = cluster.url.clone();
    let desk = cluster.reception(0).await;
    let doctor = cluster.creds.doctors[0].id.to_string();
    let mut stream = cluster.reception(1).await.events(None).await;
    assert_eq!(stream.status, 200);

    // An event's transaction begins first and stays open; a booking commits after it.
    let held = HeldTransaction::insert_event(&url, &cluster.seal());
    let booked = book(&desk, &doctor, &cluster.creds.patients[0].id.to_string()).await;
    let before = committed_events(&url).await;
    let (booking_row, booking_place) = *before.last().unwrap();
    // A reader going on from the highest id it has seen is now past the held event's id.
    let naive_cursor = booking_row;
    // The stream does not move past the held transaction: the booking waits unplaced, for as
    // long as the relay keeps looking (several of its rounds).
    let placer_rounds = carebridge_server::store::RELAY_POLL * 5;
    assert!(
        booking_place.is_none(),
        "placed while an older transaction runs"
    );
    assert!(
        stream.try_next(placer_rounds).await.is_err(),
        "nothing is streamed while an older transaction runs"
    );
    assert!(committed_events(&url).await.last().unwrap().1.is_none());

    held.commit();
    // The naive cursor never sees the held event: its id is below the cursor.
    let after = committed_events(&url).await;
    let held_row = after.iter().map(|e| e.0).min().unwrap();
    assert!(held_row < naive_cursor);
    assert!(after.iter().filter(|e| e.0 > naive_cursor).count() == 0);
    // The stream delivers both, the held one first, each once.
    let first = stream.wait_for(WITHIN, |_| true).await;
    assert_eq!(first.data["held"], true, "{first:?}");
    let second = stream
        .wait_for(WITHIN, |e| e.event == "appointment.created")
        .await;
    assert_eq!(second.data["id"], booked.as_str());
    assert!(first.id.unwrap() < second.id.unwrap());
}

/// The node processes (by process id) holding the advisory lock `key` now.
async fn holders(url: &str, key: i64) -> Vec<u32> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid",
            &[&key],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            name.trim_start_matches("carebridge-node ").parse().unwrap()
        })
        .collect()
    })
    .await
    .unwrap()
}

/// The one process holding `key`, once exactly one does.
async fn the_holder(url: &str, key: i64, not: Option<u32>) -> u32 {
    let found = std::sync::Mutex::new(0);
    carebridge_testkit::eventually("exactly one process holds the lock", WITHIN, || async {
        let h = holders(url, key).await;
        let one = h.len() == 1 && Some(h[0]) != not;
        if one {
            *found.lock().unwrap() = h[0];
        }
        one
    })
    .await;
    found.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_and_the_once_only_work_move_to_another_process_when_theirs_is_killed() {
    // The keys of store/relay.rs: the placer's and the duty's.
    const PLACER: i64 = 0x4361_7265_4272_0003;
    const DUTY: i64 = 0x4361_7265_4272_0004;
    let mut cluster = Cluster::start(3).await;
    let url = cluster.url.clone();
    let placer = the_holder(&url, PLACER, None).await;
    let duty = the_holder(&url, DUTY, None).await;
    // Kill the placer's process (SIGKILL: no goodbye to the database).
    let i = cluster
        .nodes
        .iter()
        .position(|n| n.pid() == placer)
        .unwrap();
    let killed = cluster.nodes.remove(i);
    killed.kill().await;
    // Another process takes each lock the killed one held.
    let new_placer = the_holder(&url, PLACER, Some(placer)).await;
    assert_ne!(new_placer, placer);
    if duty == placer {
        assert_ne!(the_holder(&url, DUTY, Some(duty)).await, duty);
    } else {
        assert_eq!(the_holder(&url, DUTY, None).await, duty);
    }
    // The stream goes on: a booking at one surviving process reaches the other's stream.
    let desk = Client::sign_in(
        &cluster.nodes[0].url,
        &cluster.creds.reception.username,
        &cluster.creds.reception.password,
    )
    .await;
    let other = Client::sign_in(
        &cluster.nodes[1].url,
        &cluster.creds.reception.username,
        &cluster.creds.reception.password,
    )
    .await;
    let mut stream = other.events(None).await;
    let doctor = cluster.creds.doctors[1].id.to_string();
    let id = book(&desk, &doctor, &cluster.creds.patients[3].id.to_string()).await;
    stream
        .wait_for(WITHIN, |e| {
            e.event == "appointment.created" && e.data["id"] == id.as_str()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_moved_from_its_file_to_postgresql_keeps_its_records_its_audit_chain_and_its_event_ids()
 {
    // A hospital on its SQLCipher file, with a booking made and seen on its stream.
    let node = support::TestNode::start().await;
    let desk = node.reception().await;
    let mut stream = desk.events(None).await;
    let doctor = node.doctor_id(0);
    let first = book(&desk, &doctor, &node.patient(0).id.to_string()).await;
    let seen = created_at(&mut stream, &first).await;
    drop(stream);
    let patients_before = desk.get("/api/v1/patients?limit=1000").await.body;
    let creds = node.creds.clone();
    let (dir, _) = node.stop_keeping().await;

    let db = ScratchDatabase::create();
    let data = dir.path().to_str().unwrap();
    let moved = node_cli(&["migrate-store", "--from", data, "--to", db.url()]);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let said = String::from_utf8_lossy(&moved.stdout).to_string();
    assert!(said.contains("audit chain OK"), "{said}");
    // Moving again is refused: the node names PostgreSQL now.
    let again = node_cli(&["migrate-store", "--from", data, "--to", db.url()]);
    assert!(!again.status.success());

    // `audit verify` reads the chain from PostgreSQL now, and it holds.
    let verify = node_cli(&["audit", "verify", "--data-dir", data]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(
        verify.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(text.contains("audit chain OK"), "{text}");

    // Served from PostgreSQL: the same records, and a client resuming from the last event
    // id it saw gets what happens next, after it.
    let served = NodeProcess::spawn(dir.path(), "127.0.0.1:0").await;
    let desk = Client::sign_in(
        &served.url,
        &creds.reception.username,
        &creds.reception.password,
    )
    .await;
    assert_eq!(
        desk.get("/api/v1/patients?limit=1000").await.body,
        patients_before
    );
    let a = desk.get(&format!("/api/v1/appointments/{first}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut resumed = desk.events(Some(seen)).await;
    let second = book(&desk, &doctor, &creds.patients[1].id.to_string()).await;
    let e = resumed
        .wait_for(WITHIN, |e| e.event == "appointment.created")
        .await;
    assert_eq!(e.data["id"], second.as_str());
    assert!(e.id.unwrap() > seen);
    drop(served);
}

/// One writer of the stress test: `n` transactions on a connection of its own, each inserting
/// one event; some held open a while, some rolled back. The `(writer, n)` of those committed.
fn write_events(url: &str, seal: &Seal, writer: u64, n: u64, seed: u64) -> Vec<(u64, u64)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let roles = carebridge_server::events::ROLE_RECEPTION
        | carebridge_server::events::ROLE_DOCTOR
        | carebridge_server::events::ROLE_ADMIN;
    let mut committed = Vec::new();
    for i in 0..n {
        let mut tx = c.transaction().unwrap();
        tx.execute(
            "INSERT INTO events (kind, data, aud_roles, created_at)
             VALUES ('patient.updated', $1, $2, 0)",
            &[&sealed(seal, &json!({ "w": writer, "n": i })), &roles],
        )
        .unwrap();
        if rng.gen_bool(0.10) {
            #[expect(
                clippy::disallowed_methods,
                reason = "the workload itself, not a wait for a condition: a transaction that \
                          stays open while others commit"
            )]
            std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(1..=500)));
        }
        if rng.gen_bool(0.05) {
            tx.rollback().unwrap();
        } else {
            tx.commit().unwrap();
            committed.push((writer, i));
        }
    }
    committed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_resuming_on_other_processes_get_every_committed_event_once_and_no_rolled_back_one()
 {
    use rand::{Rng, SeedableRng};
    const WRITERS: u64 = 16;
    const EACH: u64 = 12;
    const SUBSCRIBERS: u64 = 4;
    let cluster = Cluster::start(3).await;
    let url = cluster.url.clone();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let mut desks = Vec::new();
    for i in 0..3 {
        desks.push(cluster.reception(i).await);
    }
    let token = desks[0].token.clone();

    // Subscribers: each reads a few events at one process, drops its stream, and resumes
    // from the last id it saw at another, until the end marker.
    let mut subscribers = Vec::new();
    let mut ready = Vec::new();
    for s in 0..SUBSCRIBERS {
        let (urls, token) = (urls.clone(), token.clone());
        let (subscribed, is_ready) = tokio::sync::oneshot::channel::<()>();
        ready.push(is_ready);
        subscribers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + s);
            let mut seen: Vec<(i64, Value)> = Vec::new();
            let mut last: Option<i64> = None;
            let mut at = rng.gen_range(0..urls.len());
            // The first stream is open before anything is written: it starts at the head.
            let mut first = Some(support::EventStream::open(&urls[at], &token, None).await);
            subscribed.send(()).unwrap();
            loop {
                let mut stream = match first.take() {
                    Some(s) => s,
                    None => support::EventStream::open(&urls[at], &token, last).await,
                };
                assert_eq!(stream.status, 200);
                let take = rng.gen_range(1..=8);
                for _ in 0..take {
                    let Some(e) = stream.next(WITHIN).await else {
                        break;
                    };
                    let id = e.id.unwrap();
                    last = Some(id);
                    let end = e.data["end"] == true;
                    seen.push((id, e.data));
                    if end {
                        return seen;
                    }
                }
                // Another process next time.
                at = (at + rng.gen_range(1..urls.len())) % urls.len();
            }
        }));
    }

    for r in ready {
        r.await.unwrap();
    }
    // Writers: sixteen connections of their own, and bookings through every process.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (url, seal) = (url.clone(), cluster.seal());
        writers.push(tokio::task::spawn_blocking(move || {
            write_events(&url, &seal, w, EACH, 7 + w)
        }));
    }
    let doctor = cluster.creds.doctors[1].id.to_string();
    let mut booked = Vec::new();
    for i in 0..6 {
        let patients = &cluster.creds.patients;
        let patient = patients[i % patients.len()].id.to_string();
        booked.push(book(&desks[i % 3], &doctor, &patient).await);
    }
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    // The end marker, committed after everything else.
    cluster.mark_end().await;

    let attempted = WRITERS * EACH;
    assert!(
        (committed.len() as u64) < attempted,
        "some transactions rolled back"
    );
    for s in subscribers {
        let seen = s.await.unwrap();
        let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "in order, each once: {ids:?}"
        );
        let written: BTreeSet<(u64, u64)> = seen
            .iter()
            .filter_map(|(_, d)| Some((d["w"].as_u64()?, d["n"].as_u64()?)))
            .collect();
        let written_count = seen.iter().filter(|(_, d)| d.get("w").is_some()).count();
        assert_eq!(written_count, written.len(), "no event twice");
        assert_eq!(
            written, committed,
            "every committed event, no rolled-back one"
        );
        let bookings: BTreeSet<String> = seen
            .iter()
            .filter_map(|(_, d)| d["id"].as_str().map(str::to_owned))
            .collect();
        assert!(
            booked.iter().all(|b| bookings.contains(b)),
            "every booking's event"
        );
    }
}

/// Whether `server`'s standby named `name` is streaming synchronously from it.
async fn replicating_synchronously(url: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) else {
            return false;
        };
        c.query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
            &[],
        )
        .map(|r| r.get::<_, i64>(0) == 1)
        .unwrap_or(false)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_booking_acknowledged_before_the_primary_dies_is_on_the_promoted_standby_and_the_stream_resumes()
 {
    use carebridge_testkit::postgres::Server;
    // A primary that acknowledges a commit once its synchronous standby has it.
    let (primary, standby) = tokio::task::spawn_blocking(|| {
        let primary = Server::start(&["wal_level=replica", "max_wal_senders=4"]);
        primary.execute("postgres", "CREATE DATABASE carebridge");
        let standby = Server::standby_of(&primary, "standby1");
        // Synchronous once the standby is there: until then every commit would wait for it.
        primary.execute(
            "postgres",
            "ALTER SYSTEM SET synchronous_standby_names = 'standby1'",
        );
        primary.execute("postgres", "SELECT pg_reload_conf()");
        (primary, standby)
    })
    .await
    .unwrap();
    let watch = primary.url("postgres");
    carebridge_testkit::eventually("the standby streams synchronously", WITHIN, || {
        replicating_synchronously(watch.clone())
    })
    .await;

    let mut cluster = Cluster::start_at(2, &primary.url("carebridge"), None).await;
    let desks = [cluster.reception(0).await, cluster.reception(1).await];
    let doctors: Vec<String> = cluster
        .creds
        .doctors
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    let patients: Vec<String> = cluster
        .creds
        .patients
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    // Where a client's stream stands before the bookings.
    let mut stream = desks[1].events(None).await;
    let seen = book(&desks[0], &doctors[1], &patients[1]).await;
    let before = created_at(&mut stream, &seen).await;
    drop(stream);

    // Bookings from both processes; the primary dies while they are being made.
    const N: usize = 24;
    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..N {
        let desk = desks[i % 2].clone();
        let doctor = doctors[i % doctors.len()].clone();
        let patient = patients[i % patients.len()].clone();
        let answers = answers.clone();
        tokio::spawn(async move {
            let a = desk.book_next(&doctor, &patient, "Check-up").await;
            let _ = answers.send(a);
        });
    }
    drop(answers);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut killed = false;
    while let Some(a) = answered.recv().await {
        if a.status == StatusCode::CREATED {
            acknowledged.push(a.body["id"].as_str().unwrap().to_owned());
        } else {
            assert!(a.status.is_server_error(), "{} {}", a.status, a.body);
            refused += 1;
        }
        if !killed && acknowledged.len() == N / 3 {
            let p = &primary;
            std::thread::scope(|s| {
                s.spawn(|| p.kill());
            });
            killed = true;
        }
    }
    assert!(killed, "the primary died while bookings were made");
    assert!(!acknowledged.is_empty());

    // The standby becomes the primary; the node processes are pointed at it and restarted.
    let s = &standby;
    std::thread::scope(|scope| {
        scope.spawn(|| s.promote());
    });
    for node in cluster.nodes.drain(..) {
        node.kill().await;
    }
    let new_url = standby.url("carebridge");
    for dir in &cluster.dirs {
        let toml = dir.path().join("node.toml");
        let text = std::fs::read_to_string(&toml)
            .unwrap()
            .replace(&cluster.url, &new_url);
        std::fs::write(&toml, text).unwrap();
    }
    for dir in &cluster.dirs {
        cluster
            .nodes
            .push(NodeProcess::spawn(dir.path(), "127.0.0.1:0").await);
    }
    let desks = [cluster.reception(0).await, cluster.reception(1).await];
    // Every acknowledged booking is there.
    for id in &acknowledged {
        let a = desks[0].get(&format!("/api/v1/appointments/{id}")).await;
        assert_eq!(a.status, 200, "acknowledged booking {id}: {}", a.body);
    }
    // A stream resuming from before the bookings gets each acknowledged one once, in order,
    // and what happens next.
    let mut resumed = desks[1].events(Some(before)).await;
    let after = book(&desks[0], &doctors[0], &patients[2]).await;
    let mut created: Vec<(i64, String)> = Vec::new();
    loop {
        let e = resumed
            .wait_for(WITHIN, |e| e.event == "appointment.created")
            .await;
        let id = e.data["id"].as_str().unwrap().to_owned();
        created.push((e.id.unwrap(), id.clone()));
        if id == after {
            break;
        }
    }
    let ids: Vec<i64> = created.iter().map(|c| c.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > before);
    let streamed: BTreeSet<&String> = created.iter().map(|c| &c.1).collect();
    assert_eq!(streamed.len(), created.len(), "each once");
    for id in &acknowledged {
        assert!(
            streamed.contains(id),
            "the stream carries acknowledged booking {id}"
        );
    }
    eprintln!(
        "{} acknowledged, {refused} refused while the primary was down",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_takes_writes_reads_and_streams_again_when_its_database_restarts() {
    use carebridge_testkit::postgres::Server;
    let server = tokio::task::spawn_blocking(|| {
        let s = Server::start(&[]);
        s.execute("postgres", "CREATE DATABASE carebridge");
        s
    })
    .await
    .unwrap();
    let cluster = Cluster::start_at(1, &server.url("carebridge"), None).await;
    let desk = cluster.reception(0).await;
    let doctor = cluster.creds.doctors[0].id.to_string();
    let patient = cluster.creds.patients[0].id.to_string();
    book(&desk, &doctor, &patient).await;
    let s = &server;
    std::thread::scope(|scope| {
        scope.spawn(|| s.restart());
    });
    // Every connection the node had is lost. Without restarting the node, a booking goes
    // through again (one that finds the writer's connection lost may be refused), reads answer
    // (one per pooled connection may fail first), and the stream carries the new booking.
    let booked = std::sync::Mutex::new(None);
    carebridge_testkit::eventually("a booking goes through again", WITHIN, || async {
        let a = desk.book_next(&doctor, &patient, "after the restart").await;
        if a.status == StatusCode::CREATED {
            *booked.lock().unwrap() = a.body["id"].as_str().map(str::to_owned);
            return true;
        }
        assert!(a.status.is_server_error(), "{} {}", a.status, a.body);
        false
    })
    .await;
    let booked = booked.into_inner().unwrap().unwrap();
    // A pooled connection used in the second before the restart fails its next read once (the
    // client learns of the restart only by using it): a stream cut short by that is resumed,
    // as a client's EventSource does.
    let mut found = false;
    for _ in 0..5 {
        let mut stream = desk.events(Some(0)).await;
        while let Some(e) = stream.next(WITHIN).await {
            if e.event == "appointment.created" && e.data["id"] == booked.as_str() {
                found = true;
                break;
            }
        }
        if found {
            break;
        }
    }
    assert!(
        found,
        "the stream carries the booking made after the restart"
    );
    let mut answered = false;
    for _ in 0..5 {
        let a = desk.get(&format!("/api/v1/appointments/{booked}")).await;
        if a.status == 200 {
            answered = true;
            break;
        }
        assert!(a.status.is_server_error(), "{} {}", a.status, a.body);
    }
    assert!(answered, "reads answer again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_is_never_given_twice_even_when_the_newest_events_are_deleted() {
    let cluster = Cluster::start(1).await;
    let url = cluster.url.clone();
    let desk = cluster.reception(0).await;
    let doctor = cluster.creds.doctors[0].id.to_string();
    let patients = &cluster.creds.patients;
    let mut stream = desk.events(None).await;
    let first = book(&desk, &doctor, &patients[0].id.to_string()).await;
    let seen = created_at(&mut stream, &first).await;
    // The newest events go (as pruning to nothing, or a forgotten arrival, would delete them).
    let deleted = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.execute("DELETE FROM events WHERE position >= $1", &[&seen])
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(deleted >= 1);
    // The next event is placed after every place given before: a client resuming from the
    // last id it saw gets it.
    let next = book(&desk, &doctor, &patients[1].id.to_string()).await;
    let mut resumed = desk.events(Some(seen)).await;
    let id = created_at(&mut resumed, &next).await;
    assert!(id > seen, "{id} after {seen}");
    assert_eq!(created_at(&mut stream, &next).await, id);
}

/// Patient data is sealed in PostgreSQL (`store/seal.rs`): a dump of the database, what a
/// backup or anyone with the server's files sees, holds no patient's name, contact details,
/// card number, birth date, reason for a visit, report text or document in clear, while the
/// node reads every one of them back, finds the patient by the start of a name and by card
/// number and birth date, and still refuses a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_database_shows_no_patient_data_in_clear_and_the_node_reads_it_all() {
    let cluster = Cluster::start(1).await;
    let desk = cluster.reception(0).await;
    let login = &cluster.creds.doctors[0];
    let doctor = Client::sign_in(&cluster.nodes[0].url, &login.username, &login.password).await;
    let new = json!({"family_name": "Quillfeather", "given_name": "Ottoline",
                     "birth_date": "1977-05-06", "phone": "+44 20 7946 0321",
                     "email": "ottoline.q@example.org"});
    let registered = desk.post("/api/v1/patients", new.clone()).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let patient = registered.body["id"].as_str().unwrap().to_owned();
    let card = registered.body["card_number"].as_str().unwrap().to_owned();
    let reason = "Wheezing since the snowstorm";
    let booked = desk
        .book_next(&login.id.to_string(), &patient, reason)
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let content = json!({"title": "Spirometry for Zephyrine", "findings": "Obstructive pattern, marbled",
                         "conclusion": "Asthma is likely", "codes": ["J45.9"]});
    let report = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content}),
        )
        .await;
    assert_eq!(report.status, 201, "{}", report.body);
    let report_id = report.body["id"].as_str().unwrap().to_owned();
    let finalised = doctor
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/reports/{report_id}/finalise"),
            None,
            &[("if-match", &format!("\"{}\"", report.body["version"]))],
        )
        .await;
    assert_eq!(finalised.status, 200, "{}", finalised.body);
    let letter = b"%PDF-1.4\n% A letter about Ottoline Quillfeather's lungs\n%%EOF\n";
    let filed = desk
        .http
        .post(format!("{}/api/v1/patients/{patient}/documents", desk.url))
        .bearer_auth(&desk.token)
        .query(&[("title", "Letter")])
        .header("content-type", "application/pdf")
        .body(letter.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status(), StatusCode::CREATED);

    let dump = cluster.dump();
    // It is this database's dump, rows and all: the tables and the (unsealed) ids are there.
    assert!(dump.contains("CREATE TABLE public.patients"));
    assert!(dump.contains(&patient) && dump.contains(&report_id));
    // Texts with a space or punctuation that base64 never has are looked for anywhere; single
    // words and numbers only as a whole run of letters and digits, so that a sealed value's
    // base64 that happens to hold "Anna" does not count.
    let texts = [
        "7946 0321",
        "ottoline.q@example.org",
        "1977-05-06",
        reason,
        "Obstructive pattern",
        "Asthma is likely",
        "J45.9",
    ];
    for text in texts {
        assert!(!dump.contains(text), "{text:?} is in clear in the dump");
    }
    let runs: std::collections::HashSet<&str> =
        dump.split(|c: char| !c.is_alphanumeric()).collect();
    let mut words = vec![
        "Quillfeather".to_owned(),
        "quillfeather".to_owned(),
        "Ottoline".to_owned(),
        "Zephyrine".to_owned(),
        "lungs".to_owned(),
        card.clone(),
    ];
    // Staff names are kept in clear: a patient's name shared with a doctor's is not looked for.
    let staff: Vec<&str> = cluster
        .creds
        .doctors
        .iter()
        .flat_map(|d| d.display_name.split(' '))
        .collect();
    for p in &cluster.creds.patients {
        words.extend(
            p.name
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 4 && !staff.contains(w))
                .map(str::to_owned),
        );
        words.push(p.card_number.clone());
    }
    for word in &words {
        assert!(
            !runs.contains(word.as_str()),
            "{word:?} is in clear in the dump"
        );
    }

    // The node reads it all back.
    let found = desk.get("/api/v1/patients?name=quill").await;
    assert_eq!(found.status, 200, "{}", found.body);
    let found = found.body.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["family_name"], "Quillfeather");
    assert_eq!(found[0]["email"], "ottoline.q@example.org");
    let by_card = desk
        .get(&format!(
            "/api/v1/patients?card_number={card}&birth_date=1977-05-06"
        ))
        .await;
    assert_eq!(
        by_card.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        by_card.body
    );
    let none = desk
        .get(&format!(
            "/api/v1/patients?card_number={card}&birth_date=1977-05-07"
        ))
        .await;
    assert_eq!(none.body.as_array().map(Vec::len), Some(0), "{}", none.body);
    let again = desk.post("/api/v1/patients", new).await;
    assert_eq!(
        again.status, 409,
        "a duplicate is still found: {}",
        again.body
    );
    let appointment = booked.body["id"].as_str().unwrap();
    let read = desk
        .get(&format!("/api/v1/appointments/{appointment}"))
        .await;
    assert_eq!(read.body["reason"], reason, "{}", read.body);
    let read = doctor.get(&format!("/api/v1/reports/{report_id}")).await;
    assert_eq!(read.body["content"], content, "{}", read.body);
}

/// With every notification lost (the processes never listen, as behind a transaction
/// pooler), the relay still places and every process still streams every committed event, by
/// polling alone: bookings at each process and an event written beside the node each reach
/// every stream once, with one id, in one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_every_event_still_reaches_every_stream_by_polling() {
    let cluster = Cluster::start_polling(3).await;
    let mut desks = Vec::new();
    for i in 0..3 {
        desks.push(cluster.reception(i).await);
    }
    let mut streams = Vec::new();
    for d in &desks {
        let s = d.events(None).await;
        assert_eq!(s.status, 200);
        streams.push(s);
    }
    let doctor = cluster.creds.doctors[0].id.to_string();
    let mut booked = Vec::new();
    let patients = &cluster.creds.patients;
    for i in 0..6 {
        let patient = patients[i % patients.len()].id.to_string();
        booked.push(book(&desks[i % 3], &doctor, &patient).await);
    }
    // Written beside the node: nothing notifies of it either way.
    cluster.mark_end().await;
    let mut seen: Vec<Vec<(i64, String)>> = Vec::new();
    for s in &mut streams {
        let mut got = Vec::new();
        loop {
            let e = s
                .next(WITHIN)
                .await
                .expect("every event arrives while nothing notifies");
            if e.event == "appointment.created" {
                got.push((e.id.unwrap(), e.data["id"].as_str().unwrap().to_owned()));
            }
            if e.event == "patient.updated" && e.data["end"] == true {
                break;
            }
        }
        seen.push(got);
    }
    let mut expected = booked.clone();
    expected.sort();
    for got in &seen {
        assert_eq!(
            got, &seen[0],
            "every process streams one order, one id each"
        );
        let mut ids: Vec<String> = got.iter().map(|(_, a)| a.clone()).collect();
        ids.sort();
        assert_eq!(ids, expected, "each booking once");
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
    }
}

/// A transaction that stays open 30 s (a stuck client of the database, say) holds back every
/// event committed after it began, on every process, for as long as it is open; once it
/// commits, each stream gets its event and every held-back booking, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_open_thirty_seconds_delays_the_events_after_it_and_loses_none() {
    const HOLD: std::time::Duration = std::time::Duration::from_secs(30);
    let cluster = Cluster::start(3).await;
    let mut desks = Vec::new();
    for i in 0..3 {
        desks.push(cluster.reception(i).await);
    }
    let mut streams = Vec::new();
    for d in &desks {
        let s = d.events(None).await;
        assert_eq!(s.status, 200);
        streams.push(s);
    }
    let held = HeldTransaction::insert_event(&cluster.url, &cluster.seal());
    let began = std::time::Instant::now();
    let doctor = cluster.creds.doctors[0].id.to_string();
    let mut booked = Vec::new();
    for (desk, patient) in desks.iter().zip(&cluster.creds.patients) {
        booked.push(book(desk, &doctor, &patient.id.to_string()).await);
    }
    // While it is open, no stream carries anything: the bookings committed after it began.
    for s in &mut streams {
        let left = HOLD.saturating_sub(began.elapsed());
        let early = s.try_next(left).await;
        assert!(early.is_err(), "streamed while held: {early:?}");
    }
    assert!(began.elapsed() >= HOLD);
    held.commit();
    for s in &mut streams {
        let first = s.next(WITHIN).await.expect("the held event");
        assert_eq!(first.data["held"], true, "{first:?}");
        let mut got = Vec::new();
        let mut last = first.id.unwrap();
        while got.len() < booked.len() {
            let e = s.next(WITHIN).await.expect("every booking held back");
            assert_eq!(e.event, "appointment.created", "{e:?}");
            let id = e.id.unwrap();
            assert!(id > last, "{id} after {last}");
            last = id;
            got.push(e.data["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, booked, "each once, in commit order");
    }
}

/// Transaction ids are the whole server's: a transaction held open in another database on the
/// same server (another application's) holds back nothing of the node's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_open_in_another_database_holds_back_nothing() {
    let cluster = Cluster::start(1).await;
    let elsewhere = ScratchDatabase::create();
    let (commit, wait) = std::sync::mpsc::channel::<()>();
    let (began, running) = std::sync::mpsc::channel::<()>();
    let url = elsewhere.url().to_owned();
    let other = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        // Takes a transaction id: the transaction now counts as running for every snapshot.
        tx.query_one("SELECT pg_current_xact_id()", &[]).unwrap();
        began.send(()).unwrap();
        wait.recv().unwrap();
        tx.commit().unwrap();
    });
    running.recv().unwrap();
    let desk = cluster.reception(0).await;
    let mut stream = desk.events(None).await;
    let doctor = cluster.creds.doctors[0].id.to_string();
    let id = book(&desk, &doctor, &cluster.creds.patients[0].id.to_string()).await;
    // Streamed while the other database's transaction is still open.
    created_at(&mut stream, &id).await;
    commit.send(()).unwrap();
    other.join().unwrap();
}

/// The placer's process is killed (SIGKILL) while events stream in from eight writers: another
/// process takes the placer over, and a subscriber at a surviving process gets every committed
/// event exactly once, in place order, with no gap and no repeat across the takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placer_killed_while_events_stream_in_loses_and_repeats_nothing() {
    const PLACER: i64 = 0x4361_7265_4272_0003;
    const WRITERS: u64 = 8;
    const EACH: u64 = 25;
    let mut cluster = Cluster::start(3).await;
    let url = cluster.url.clone();
    let placer = the_holder(&url, PLACER, None).await;
    let survivor = cluster
        .nodes
        .iter()
        .position(|n| n.pid() != placer)
        .unwrap();
    let desk = cluster.reception(survivor).await;
    let mut stream = desk.events(None).await;
    assert_eq!(stream.status, 200);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (url, seal) = (url.clone(), cluster.seal());
        writers.push(tokio::task::spawn_blocking(move || {
            write_events(&url, &seal, w, EACH, 70 + w)
        }));
    }
    // Mid-stream: the first events are out, most are still to come.
    let mut seen: Vec<(i64, Value)> = Vec::new();
    let first = stream.next(WITHIN).await.expect("the first event");
    seen.push((first.id.unwrap(), first.data));
    let i = cluster
        .nodes
        .iter()
        .position(|n| n.pid() == placer)
        .unwrap();
    assert!(
        writers.iter().any(|w| !w.is_finished()),
        "the kill falls while writers still write"
    );
    cluster.nodes.remove(i).kill().await;
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    assert_ne!(the_holder(&url, PLACER, Some(placer)).await, placer);
    cluster.mark_end().await;
    loop {
        let e = stream.next(WITHIN).await.expect("the stream goes on");
        let done = e.data["end"] == true;
        seen.push((e.id.unwrap(), e.data));
        if done {
            break;
        }
    }
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "places only grow");
    let got: Vec<(u64, u64)> = seen
        .iter()
        .filter_map(|(_, d)| Some((d["w"].as_u64()?, d["n"].as_u64()?)))
        .collect();
    let unique: BTreeSet<(u64, u64)> = got.iter().copied().collect();
    assert_eq!(got.len(), unique.len(), "nothing twice");
    assert_eq!(
        unique, committed,
        "every committed event, no rolled-back one"
    );
}

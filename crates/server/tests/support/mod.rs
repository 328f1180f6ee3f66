//! What the node's tests share: seeded nodes served in-process on ephemeral ports, signed-in
//! HTTP clients, and an SSE reader that waits for events with a deadline (never a bare sleep).
//! Node processes, waits on conditions and free ports come from `carebridge-testkit`.
#![allow(clippy::unwrap_used, reason = "tests panic on the unexpected")]
#![allow(dead_code, reason = "each test binary uses part of the support module")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub mod hospital;

/// A two-worker runtime, for tests that run their own (and may block in it).
pub fn mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A node served in-process on 127.0.0.1:0, seeded with the demo data. On its SQLCipher
/// file; with `TEST_NODE_BACKEND=postgres`, on a fresh PostgreSQL database of the test
/// cluster instead (`make test` runs the API suites that way too).
pub struct TestNode {
    pub url: String,
    pub node: Arc<Node>,
    pub creds: DemoCredentials,
    pub dir: tempfile::TempDir,
    served: tokio::task::JoinHandle<()>,
    _database: Option<carebridge_testkit::postgres::ScratchDatabase>,
}

/// A database for a test node when the tests run against PostgreSQL.
fn test_database() -> Option<carebridge_testkit::postgres::ScratchDatabase> {
    match std::env::var("TEST_NODE_BACKEND").as_deref() {
        Ok("postgres") => Some(carebridge_testkit::postgres::ScratchDatabase::create()),
        Ok("sqlcipher") | Err(_) => None,
        Ok(other) => panic!("TEST_NODE_BACKEND={other}: sqlcipher or postgres"),
    }
}

pub fn init_dir(dir: &Path) -> carebridge_server::NodeConfig {
    init_dir_named(dir, "st-marys.example")
}

/// A hospital node named `name`, initialised in `dir`.
pub fn init_dir_named(dir: &Path, name: &str) -> carebridge_server::NodeConfig {
    init_dir_on(dir, name, None)
}

/// A hospital node named `name`, initialised in `dir`, its records in the PostgreSQL database
/// at `database_url` when one is given.
pub fn init_dir_on(
    dir: &Path,
    name: &str,
    database_url: Option<String>,
) -> carebridge_server::NodeConfig {
    init(
        dir,
        &InitOptions {
            name: name.into(),
            kind: NodeKind::Hospital,
            time_zone: "Europe/Amsterdam".into(),
            admin_username: "admin".into(),
            admin_password: demo::ADMIN_PASSWORD.into(),
            database_url,
        },
        &SystemClock,
    )
    .expect("init")
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a node, letting the test adjust its configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut carebridge_server::NodeConfig)) -> Self {
        let size = DemoSize {
            doctors: 3,
            days: 3,
            patients: 20,
            bench: true,
            appointments: None,
        };
        Self::start_sized(size, adjust).await
    }

    /// Starts a node seeded with `size`, letting the test adjust its configuration first.
    pub async fn start_sized(
        size: DemoSize,
        adjust: impl FnOnce(&mut carebridge_server::NodeConfig),
    ) -> Self {
        Self::start_clocked(size, Arc::new(SystemClock), adjust).await
    }

    /// Starts a node seeded with `size` that tells the time by `clock` (a test's
    /// `ManualClock`), letting the test adjust its configuration first.
    pub async fn start_clocked(
        size: DemoSize,
        clock: Arc<dyn Clock>,
        adjust: impl FnOnce(&mut carebridge_server::NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = test_database();
        let mut cfg = init_dir_on(
            dir.path(),
            "st-marys.example",
            database.as_ref().map(|d| d.url().to_owned()),
        );
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut cfg);
        let node = Node::open(cfg, clock).expect("open node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let creds = demo::seed(&node, &size, &url).await.expect("seed");
        let n = node.clone();
        let served = tokio::spawn(async move {
            carebridge_server::serve::serve(n, listener)
                .await
                .expect("serve");
        });
        Self {
            url,
            node,
            creds,
            dir,
            served,
            _database: database,
        }
    }

    pub async fn stop(self) {
        self.node.shutdown.cancel();
        let _ = self.served.await;
    }

    /// Stops the node and hands back its data directory and configuration, to start it again.
    pub async fn stop_keeping(self) -> (tempfile::TempDir, carebridge_server::NodeConfig) {
        self.node.shutdown.cancel();
        let _ = self.served.await;
        // The node starts again on its database: it stays until the test cluster goes.
        std::mem::forget(self._database);
        (self.dir, self.node.config.clone())
    }

    pub async fn reception(&self) -> Client {
        Client::sign_in(
            &self.url,
            &self.creds.reception.username,
            &self.creds.reception.password,
        )
        .await
    }

    pub async fn admin(&self) -> Client {
        Client::sign_in(
            &self.url,
            &self.creds.admin.username,
            &self.creds.admin.password,
        )
        .await
    }

    /// Doctor `i` of the demo (0-based).
    pub async fn doctor(&self, i: usize) -> Client {
        let d = &self.creds.doctors[i];
        Client::sign_in(&self.url, &d.username, &d.password).await
    }

    pub async fn kiosk(&self) -> Client {
        Client::kiosk_sign_in(
            &self.url,
            &self.creds.kiosk.device_id.to_string(),
            &self.creds.kiosk.secret,
        )
        .await
    }

    pub fn doctor_id(&self, i: usize) -> String {
        self.creds.doctors[i].id.to_string()
    }

    pub fn patient(&self, i: usize) -> &demo::PatientCard {
        &self.creds.patients[i]
    }

    /// A read-only connection of the test's own to the node's database.
    pub fn db(&self) -> rusqlite::Connection {
        carebridge_server::store::open_connection(
            &self.node.config.db_path(),
            &carebridge_server::node::load_key(&self.node.config).unwrap(),
            true,
        )
        .unwrap()
    }

    /// Every table's row count, by table, read over a connection of the test's own.
    pub fn table_counts(&self) -> std::collections::BTreeMap<String, i64> {
        table_counts(&self.db())
    }
}

/// An HTTP client with a bearer token.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

/// A response: status, headers and JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem code of a problem+json answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn is_problem(&self) -> bool {
        self.headers.get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap_or("")
                .starts_with("application/problem+json")
        })
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl Client {
    pub async fn sign_in(url: &str, username: &str, password: &str) -> Self {
        let http = http();
        let r = http
            .post(format!("{url}/api/v1/sessions"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), StatusCode::CREATED, "sign in as {username}");
        let v: Value = r.json().await.unwrap();
        Self {
            url: url.into(),
            token: v["token"].as_str().unwrap().into(),
            http,
        }
    }

    pub async fn kiosk_sign_in(url: &str, device: &str, secret: &str) -> Self {
        let http = http();
        let r = http
            .post(format!("{url}/api/v1/kiosk-sessions"))
            .json(&serde_json::json!({"device_id": device, "secret": secret}))
            .send()
            .await
            .expect("kiosk sign in");
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        Self {
            url: url.into(),
            token: v["token"].as_str().unwrap().into(),
            http,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap_or_default();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    /// Books the doctor's first free slot for a patient.
    pub async fn book_next(&self, doctor: &str, patient: &str, reason: &str) -> Answer {
        self.post(
            "/api/v1/appointments",
            serde_json::json!({
                "patient_id": patient, "practitioner_id": doctor,
                "next_available_from": "2000-01-01T00:00:00Z", "reason": reason
            }),
        )
        .await
    }

    /// Opens the live stream.
    pub async fn events(&self, last_event_id: Option<i64>) -> EventStream {
        EventStream::open(&self.url, &self.token, last_event_id).await
    }
}

/// One SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// A live stream read with deadlines.
pub struct EventStream {
    pub status: StatusCode,
    body: Option<futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buf: BytesMut,
    pub comments: usize,
    pub retry: Option<u64>,
}

impl EventStream {
    pub async fn open(url: &str, token: &str, last_event_id: Option<i64>) -> Self {
        let mut req = http()
            .get(format!("{url}/api/v1/events"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let r = req.send().await.expect("open stream");
        let status = r.status();
        Self {
            status,
            body: Some(r.bytes_stream().boxed()),
            buf: BytesMut::new(),
            comments: 0,
            retry: None,
        }
    }

    /// The next event within `within`; `None` if the stream ended. Panics at the deadline.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next_inner())
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// The next event if one comes within `within`; `Err(())` if none came in time.
    pub async fn try_next(&mut self, within: Duration) -> Result<Option<SseEvent>, ()> {
        tokio::time::timeout(within, self.next_inner())
            .await
            .map_err(|_| ())
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(pos) = find_blank_line(&self.buf) {
                let block = self.buf.split_to(pos + 2);
                let text = String::from_utf8_lossy(&block).to_string();
                let mut ev = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in text.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = v.trim().parse().ok();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.trim().into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                        any = true;
                    } else if let Some(v) = line.strip_prefix("retry: ") {
                        self.retry = v.trim().parse().ok();
                    }
                }
                if any {
                    ev.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Some(ev);
                }
                continue;
            }
            let chunk = self.body.as_mut()?.next().await;
            match chunk {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                _ => {
                    self.body = None;
                    return None;
                }
            }
        }
    }

    /// Waits until at least `n` comment lines (heartbeats) have arrived, within `within`.
    pub async fn wait_comments(&mut self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.comments < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let chunk = tokio::time::timeout(left, self.body.as_mut().expect("stream open").next())
                .await
                .unwrap_or_else(|_| panic!("fewer than {n} comments within {within:?}"));
            match chunk {
                Some(Ok(b)) => {
                    self.buf.extend_from_slice(&b);
                    self.comments += String::from_utf8_lossy(&b)
                        .lines()
                        .filter(|l| l.starts_with(':'))
                        .count();
                }
                _ => panic!("stream ended while waiting for comments"),
            }
        }
    }

    /// Waits until the node closes the stream, within `within`.
    pub async fn wait_closed(&mut self, within: Duration) {
        tokio::time::timeout(within, async { while self.next_inner().await.is_some() {} })
            .await
            .unwrap_or_else(|_| panic!("stream still open after {within:?}"));
    }

    /// Waits for an event matching `pred`, skipping others, within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&SseEvent) -> bool,
    ) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_inner()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended while waiting"),
                Err(_) => panic!("no matching event within {within:?}"),
            }
        }
    }
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\n\n")
}

/// Every table's row count in `db`, by table: "nothing stored" counts them all.
pub fn table_counts(db: &rusqlite::Connection) -> std::collections::BTreeMap<String, i64> {
    let tables: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let n = db
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

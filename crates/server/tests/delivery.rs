//! The delivery worker against a fake insurer that answers what each test scripts: passing
//! faults (5xx, 408, 429) are retried with exponential backoff, never sooner than the peer's
//! `Retry-After` asks and never later than the longest wait, until a receipt delivers the
//! transmission once; any other 4xx fails it at once with the peer's reason; and one left
//! unacknowledged too long is marked overdue, audited and streamed once.
//!
//! The hospital tells the time by a test clock: the test reads when the next attempt is due
//! and moves the clock there, instead of waiting for real backoff.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::ProblemType;
use carebridge_protocol::federation::envelope::Envelope;
use carebridge_protocol::federation::identity::NodeIdentity;
use carebridge_protocol::federation::request::{INBOX_PATH, Receipt};
use carebridge_protocol::problem::Problem;
use carebridge_server::clock::{Clock, ManualClock, SystemClock};
use carebridge_server::demo::DemoSize;
use carebridge_server::federation::peer::{AddPeer, SourceRule};
use carebridge_testkit::eventually;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::json;
use support::{Client, EventStream, TestNode};
use uuid::Uuid;

const INSURER: &str = "assure.example";
const WAIT: Duration = Duration::from_secs(10);
/// How long the test watches for an attempt that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// A `Retry-After` the fake insurer sends.
#[derive(Clone, Copy, Debug)]
enum RetryAfter {
    /// Delay-seconds.
    Seconds(u64),
    /// An HTTP-date this many seconds after the hospital's clock.
    DateIn(i64),
}

/// What the fake insurer answers one attempt with.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// A status, with a problem body of that code if given, and a `Retry-After` if given.
    Status(u16, Option<ProblemType>, Option<RetryAfter>),
    /// A signed receipt: delivered.
    Receipt,
}

use Reply::Status;

/// One request that reached the fake insurer.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    envelope: Uuid,
    /// The hospital's clock when it arrived.
    at: DateTime<Utc>,
}

#[derive(Default)]
struct Script {
    /// The replies for each transmission the insurer has not seen yet, in the order they come.
    next: VecDeque<Vec<Reply>>,
    /// The replies still to give, per envelope; once they are spent, 503.
    replies: HashMap<Uuid, VecDeque<Reply>>,
    arrivals: Vec<Arrival>,
}

/// The insurer's side: its signing key, the hospital's clock (to stamp arrivals) and the
/// script.
struct Insurer {
    key: ed25519_dalek::SigningKey,
    clock: ManualClock,
    script: Mutex<Script>,
}

async fn inbox(State(ins): State<Arc<Insurer>>, body: Bytes) -> Response {
    let Ok(env) = Envelope::parse(&body) else {
        return StatusCode::IM_A_TEAPOT.into_response();
    };
    let id = env.header.id;
    let now = ins.clock.now();
    let reply = {
        let mut s = ins.script.lock();
        s.arrivals.push(Arrival {
            envelope: id,
            at: now,
        });
        if !s.replies.contains_key(&id) {
            let first = s.next.pop_front().unwrap_or_default();
            s.replies.insert(id, first.into());
        }
        s.replies.get_mut(&id).and_then(VecDeque::pop_front)
    };
    match reply.unwrap_or(Status(503, Some(ProblemType::Unavailable), None)) {
        Reply::Receipt => {
            let stored_as = format!(
                "medical-reports-{}-{}",
                env.header.source,
                now.timestamp_millis()
            );
            axum::Json(Receipt::sign(
                id,
                INSURER,
                &env.header.source,
                &stored_as,
                now,
                &ins.key,
            ))
            .into_response()
        }
        Status(status, problem, retry_after) => {
            let status = StatusCode::from_u16(status).unwrap();
            let mut res = match problem {
                Some(code) => {
                    let mut p = Problem::new(code, Some(format!("scripted {}", status.as_u16())));
                    p.status = status.as_u16();
                    (
                        status,
                        [(header::CONTENT_TYPE, carebridge_protocol::PROBLEM_JSON)],
                        serde_json::to_vec(&p).unwrap(),
                    )
                        .into_response()
                }
                None => status.into_response(),
            };
            let value = match retry_after {
                Some(RetryAfter::Seconds(s)) => Some(s.to_string()),
                Some(RetryAfter::DateIn(s)) => Some(
                    (now + chrono::Duration::seconds(s))
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                ),
                None => None,
            };
            if let Some(v) = value {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, v.parse().unwrap());
            }
            res
        }
    }
}

/// A transmission as the hospital stores it.
#[derive(Debug)]
struct Row {
    state: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    overdue: bool,
    created_at: DateTime<Utc>,
    version: i64,
}

/// A hospital on a test clock, peered with a fake insurer, and a doctor with a final report
/// of a patient who consented to sharing with the insurer.
struct Setup {
    hospital: TestNode,
    clock: ManualClock,
    insurer: Arc<Insurer>,
    doctor: Client,
    report: String,
}

impl Setup {
    async fn start() -> Self {
        // Whole milliseconds, as the store keeps times: "due" compares exactly.
        let clock = ManualClock::new(
            DateTime::from_timestamp_millis(SystemClock.now().timestamp_millis()).unwrap(),
        );
        let size = DemoSize {
            doctors: 1,
            days: 1,
            patients: 3,
            bench: false,
            appointments: None,
        };
        let hospital = TestNode::start_clocked(size, Arc::new(clock.clone()), |_| {}).await;
        let insurer = Arc::new(Insurer {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
            clock: clock.clone(),
            script: Mutex::default(),
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = Router::new()
            .route(INBOX_PATH, axum::routing::post(inbox))
            .with_state(insurer.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        let agreement = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
        carebridge_server::federation::peering::add(
            &hospital.node,
            AddPeer {
                identity: NodeIdentity::new(
                    INSURER,
                    "insurer",
                    &url,
                    &insurer.key.verifying_key(),
                    &x25519_dalek::PublicKey::from(&agreement),
                ),
                allowed_sources: vec![SourceRule::parse("127.0.0.1").unwrap()],
                allowed_types: Vec::new(),
                their_api_key: None,
            },
        )
        .await
        .unwrap();

        let doctor = hospital.doctor(0).await;
        let patient = hospital.patient(0).id;
        let r = doctor
            .post(
                "/api/v1/reports",
                json!({"patient_id": patient, "content": {"title": "Chest X-ray", "findings": "Clear.", "conclusion": "Normal.", "codes": ["Z00.0"]}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let report = r.body["id"].as_str().unwrap().to_owned();
        let f = doctor
            .call(
                Method::POST,
                &format!("/api/v1/reports/{report}/finalise"),
                None,
                &[("if-match", &format!("\"{}\"", r.body["version"]))],
            )
            .await;
        assert_eq!(f.status, 200, "{}", f.body);
        let c = doctor
            .post(
                &format!("/api/v1/patients/{patient}/consents"),
                json!({"peer": INSURER}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.body);
        Self {
            hospital,
            clock,
            insurer,
            doctor,
            report,
        }
    }

    /// Sends the report to the insurer, which will answer its attempts with `replies`.
    async fn send(&self, replies: Vec<Reply>) -> Uuid {
        self.insurer.script.lock().next.push_back(replies);
        let r = self
            .doctor
            .post(
                "/api/v1/transmissions",
                json!({"peer": INSURER, "report_ids": [self.report]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().parse().unwrap()
    }

    fn row(&self, id: Uuid) -> Row {
        let ms = |v: i64| DateTime::from_timestamp_millis(v).unwrap();
        self.hospital
            .db()
            .query_row(
                "SELECT state, attempts, next_attempt_at, last_error, overdue_alerted, created_at,
                        version
                 FROM transmissions WHERE id = ?1",
                [id.to_string()],
                |r| {
                    Ok(Row {
                        state: r.get(0)?,
                        attempts: r.get(1)?,
                        next_attempt_at: ms(r.get(2)?),
                        last_error: r.get(3)?,
                        overdue: r.get(4)?,
                        created_at: ms(r.get(5)?),
                        version: r.get(6)?,
                    })
                },
            )
            .unwrap()
    }

    /// How many transmissions still wait for an attempt.
    fn waiting(&self) -> i64 {
        self.hospital
            .db()
            .query_row(
                "SELECT count(*) FROM transmissions WHERE state IN ('queued', 'sent')",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// The audit entries of `action` about transmission `id`, as (actor, outcome, detail).
    fn audited(&self, action: &str, id: Uuid) -> Vec<(String, String, String)> {
        let db = self.hospital.db();
        let mut st = db
            .prepare(
                "SELECT actor, outcome, detail FROM audit WHERE action = ?1 AND entity = ?2
                 ORDER BY seq",
            )
            .unwrap();
        st.query_map([action, &format!("transmission/{id}")], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn arrivals(&self, id: Uuid) -> Vec<Arrival> {
        let s = self.insurer.script.lock();
        s.arrivals
            .iter()
            .filter(|a| a.envelope == id)
            .copied()
            .collect()
    }

    fn all_arrivals(&self) -> usize {
        self.insurer.script.lock().arrivals.len()
    }

    /// Sets the hospital's clock to `t` and wakes the delivery worker.
    fn set_clock(&self, t: DateTime<Utc>) {
        self.clock.advance(t - self.clock.now());
        self.hospital.node.wake_delivery();
    }

    /// Waits until the outcome of attempt `n` of `id` is recorded.
    async fn settled(&self, id: Uuid, n: i64) -> Row {
        eventually(format!("attempt {n} of {id} settled"), WAIT, || async {
            let r = self.row(id);
            r.attempts == n && r.state != "sent"
        })
        .await;
        self.row(id)
    }

    /// Asserts that no attempt of any transmission reaches the insurer for a while.
    async fn no_attempt_comes(&self, why: &str) {
        let before = self.all_arrivals();
        let came = tokio::time::timeout(QUIET, async {
            while self.all_arrivals() == before {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(came.is_err(), "an attempt came {why}");
    }
}

/// Reads the stream's `transmission.updated` events of `id` until one has `version`.
async fn updates_until(s: &mut EventStream, id: Uuid, version: i64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let e = s
            .wait_for(WAIT, |e| {
                e.event == "transmission.updated" && e.data["id"] == id.to_string()
            })
            .await;
        let v = e.data["version"].as_i64().unwrap();
        out.push(e.data);
        if v >= version {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_faults_are_retried_with_growing_backoff_and_retry_after_until_a_receipt_delivers_it_once()
 {
    let s = Setup::start().await;
    let max = i64::from(s.hospital.node.config.delivery_max_backoff_seconds) * 1000;
    assert_eq!(max, 300_000, "the default longest wait");
    // (reply, the wait it must be followed by in ms: backoff 2^n s with ±20 % jitter, or
    // what Retry-After asks, capped at the longest wait).
    let faults: [(Reply, std::ops::RangeInclusive<i64>); 6] = [
        (
            Status(503, Some(ProblemType::Unavailable), None),
            1_600..=2_400,
        ),
        (Status(408, None, None), 3_200..=4_800),
        (
            Status(500, Some(ProblemType::Internal), None),
            6_400..=9_600,
        ),
        (
            Status(
                429,
                Some(ProblemType::TooManyRequests),
                Some(RetryAfter::Seconds(120)),
            ),
            120_000..=120_000,
        ),
        (
            Status(
                503,
                Some(ProblemType::Unavailable),
                Some(RetryAfter::DateIn(200)),
            ),
            199_000..=200_000,
        ),
        (
            Status(502, None, Some(RetryAfter::Seconds(86_400))),
            max..=max,
        ),
    ];
    let mut replies: Vec<Reply> = faults.iter().map(|(r, _)| *r).collect();
    replies.push(Reply::Receipt);
    let id = s.send(replies).await;

    let mut gaps = Vec::new();
    for (n, (reply, expected)) in (1..).zip(&faults) {
        let row = s.settled(id, n).await;
        let arrivals = s.arrivals(id);
        assert_eq!(arrivals.len(), n as usize, "one request per attempt");
        assert_eq!(row.state, "queued", "{reply:?} is retried, not failed");
        let Status(code, ..) = reply else {
            unreachable!()
        };
        let why = row.last_error.unwrap_or_default();
        assert!(
            why.contains(INSURER) && why.contains(&code.to_string()),
            "{reply:?}: {why}"
        );
        let gap = (row.next_attempt_at - arrivals[n as usize - 1].at).num_milliseconds();
        assert!(
            expected.contains(&gap),
            "after {reply:?} the next attempt is due in {gap} ms, not within {expected:?}"
        );
        gaps.push(gap);
        // Not a moment before it is due…
        s.set_clock(row.next_attempt_at - chrono::Duration::milliseconds(1));
        s.no_attempt_comes(&format!("before attempt {} was due", n + 1))
            .await;
        // …and as soon as it is.
        s.set_clock(row.next_attempt_at);
        eventually(format!("attempt {}", n + 1), WAIT, || async {
            s.arrivals(id).len() > n as usize
        })
        .await;
        assert_eq!(s.arrivals(id)[n as usize].at, row.next_attempt_at);
    }
    assert!(gaps.windows(2).all(|w| w[0] < w[1]), "{gaps:?}");

    let done = s.settled(id, 7).await;
    assert_eq!(done.state, "acknowledged");
    let sends = s.audited("federation.send", id);
    assert_eq!(sends.len(), 7, "{sends:?}");
    for (actor, outcome, detail) in &sends[..6] {
        assert_eq!((actor.as_str(), outcome.as_str()), ("node", "failure"));
        assert!(detail.contains("retrying"), "{detail}");
    }
    assert_eq!(sends[6].1, "success");
    assert!(sends[6].2.starts_with("acknowledged"), "{}", sends[6].2);
    // Delivered once: nothing waits, and no attempt comes however long one waits.
    assert_eq!(s.waiting(), 0);
    s.set_clock(s.clock.now() + chrono::Duration::hours(1));
    s.no_attempt_comes("after the receipt").await;
    assert_eq!(s.arrivals(id).len(), 7);
    s.hospital.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_retrying_cannot_cure_fails_the_transmission_at_once_with_the_peers_reason() {
    let s = Setup::start().await;
    let mut doctor_stream = s.doctor.events(None).await;
    let refusals = [
        (400, Some(ProblemType::MalformedEnvelope)),
        (401, Some(ProblemType::UnknownApiKey)),
        (403, Some(ProblemType::SourceNotAllowed)),
        (404, Some(ProblemType::NotFound)),
        (409, Some(ProblemType::Conflict)),
        (410, None),
        (413, Some(ProblemType::PayloadTooLarge)),
        (422, Some(ProblemType::Validation)),
    ];
    let mut failed = Vec::new();
    for (code, problem) in refusals {
        let id = s.send(vec![Status(code, problem, None)]).await;
        let row = s.settled(id, 1).await;
        assert_eq!(row.state, "failed", "{code} is not retried");
        let why = row.last_error.unwrap_or_default();
        let reason = match problem {
            Some(p) => format!("({})", p.slug()),
            None => format!("HTTP {code}"),
        };
        assert!(
            why.contains(&format!("{INSURER} refused it")) && why.contains(&reason),
            "{code}: {why}"
        );
        let sends = s.audited("federation.send", id);
        assert_eq!(sends.len(), 1, "{sends:?}");
        assert_eq!(sends[0].1, "failure");
        assert_eq!(sends[0].2, format!("failed: {why}"));
        // The doctor's app hears of it (a failed transmission is a notice).
        let e = doctor_stream
            .wait_for(WAIT, |e| {
                e.event == "transmission.updated"
                    && e.data["id"] == id.to_string()
                    && e.data["state"] == "failed"
            })
            .await;
        assert_eq!(e.data["last_error"], why.as_str());
        failed.push(id);
    }
    // No further attempt, however long one waits.
    assert_eq!(s.waiting(), 0);
    s.set_clock(s.clock.now() + chrono::Duration::hours(1));
    s.no_attempt_comes("after a refusal").await;
    for id in failed {
        assert_eq!(s.arrivals(id).len(), 1);
        assert_eq!(s.row(id).state, "failed");
    }
    s.hospital.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmission_unacknowledged_too_long_is_marked_overdue_streamed_and_audited_once() {
    let s = Setup::start().await;
    let limit =
        chrono::Duration::minutes(i64::from(s.hospital.node.config.transmission_alert_minutes));
    let mut doctor_stream = s.doctor.events(None).await;
    let admin = s.hospital.admin().await;
    let mut admin_stream = admin.events(None).await;
    // One the insurer acknowledges at once never becomes overdue.
    let delivered = s.send(vec![Reply::Receipt]).await;
    assert_eq!(s.settled(delivered, 1).await.state, "acknowledged");
    // One the insurer keeps answering 503.
    let id = s.send(Vec::new()).await;
    let created = s.settled(id, 1).await.created_at;

    // Short of the limit: retried, not overdue.
    s.set_clock(created + limit - chrono::Duration::seconds(1));
    let row = s.settled(id, 2).await;
    assert!(!row.overdue);
    assert!(s.audited("transmission.overdue", id).is_empty());

    // Past the limit, when the next attempt is due: marked overdue, and attempted again.
    assert!(row.next_attempt_at > created + limit);
    s.set_clock(row.next_attempt_at);
    let row = s.settled(id, 3).await;
    assert!(row.overdue);
    // Three more rounds of attempts, well past the limit.
    let mut row = row;
    for n in 4..=6 {
        s.set_clock(row.next_attempt_at);
        row = s.settled(id, n).await;
        assert!(row.overdue);
    }

    // Audited once, by the node, naming the peer and how far it got.
    let alerts = s.audited("transmission.overdue", id);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (actor, outcome, detail) = &alerts[0];
    assert_eq!((actor.as_str(), outcome.as_str()), ("node", "failure"));
    assert!(
        detail.contains(INSURER) && detail.contains("2 attempts"),
        "{detail}"
    );
    assert!(!s.row(delivered).overdue);
    assert!(s.audited("transmission.overdue", delivered).is_empty());

    // The doctors' stream: the flag is raised by exactly one event that changes nothing else
    // (the alert), and stays raised; each attempt adds two (sent, then its outcome).
    let doctor_seen = updates_until(&mut doctor_stream, id, row.version).await;
    let raised: Vec<usize> = doctor_seen
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0]["overdue"] == false && w[1]["overdue"] == true)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(raised.len(), 1, "{doctor_seen:#?}");
    let alert = &doctor_seen[raised[0]];
    let before = &doctor_seen[raised[0] - 1];
    assert_eq!(
        (&alert["state"], &alert["attempts"]),
        (&before["state"], &before["attempts"])
    );
    assert!(
        doctor_seen[raised[0]..]
            .iter()
            .all(|e| e["overdue"] == true)
    );
    let alert_only = doctor_seen
        .windows(2)
        .filter(|w| w[0]["state"] == w[1]["state"] && w[0]["attempts"] == w[1]["attempts"])
        .count();
    assert_eq!(
        alert_only, 1,
        "one alert, not one per round: {doctor_seen:#?}"
    );
    assert_eq!(doctor_seen.len(), 1 + 2 * 6 + 1, "{doctor_seen:#?}");

    // The admins' stream carries the same alert, queued and overdue, without the patient.
    let admin_seen = updates_until(&mut admin_stream, id, row.version).await;
    let admin_alerts: Vec<_> = admin_seen
        .windows(2)
        .filter(|w| w[0]["overdue"] == false && w[1]["overdue"] == true)
        .map(|w| w[1].clone())
        .collect();
    assert_eq!(admin_alerts.len(), 1, "{admin_seen:#?}");
    assert_eq!(admin_alerts[0]["state"], "queued");
    let patient = &s.hospital.patient(0).name;
    assert!(
        admin_seen
            .iter()
            .all(|e| !e.to_string().contains(patient.as_str())),
        "{admin_seen:#?}"
    );
    s.hospital.stop().await;
}

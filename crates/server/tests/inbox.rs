//! The federation inbox under abuse: a request without a valid API key is refused from its
//! headers (its body is never waited for), a source refused too often is answered 429, and a
//! flood is audited in a bounded number of entries without slowing bookings.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::{Duration, Instant};

use carebridge_protocol::federation::request::{API_KEY_HEADER, INBOX_PATH};
use support::{Client, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Refused inbox requests' audit entries: (detail) in order.
fn refusals_audited(node: &TestNode) -> Vec<String> {
    let db = carebridge_server::store::open_connection(
        &node.node.config.db_path(),
        &carebridge_server::node::load_key(&node.node.config).unwrap(),
        true,
    )
    .unwrap();
    let mut st = db
        .prepare("SELECT detail FROM audit WHERE action = 'federation.refused' ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap()
}

/// How many refusals an audit entry stands for: one, or the count of a counted entry.
fn refusals_in(detail: &str) -> u64 {
    match detail.split_once(": ") {
        Some((_, rest)) if rest.contains(" more refused from this address") => rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a counted entry without its count: {detail}")),
        _ => 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_an_unknown_api_key_is_refused_before_its_body_arrives() {
    // The body may take 60 s to come: an answer sooner proves the node did not wait for it.
    let node = TestNode::start_with(|c| c.body_timeout_seconds = 60).await;
    let addr = node.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {INBOX_PATH} HTTP/1.1\r\nHost: {addr}\r\n{API_KEY_HEADER}: not-a-key-this-node-gave\r\n\
         Content-Type: application/json\r\nContent-Length: 16000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the 16 MB body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("unknown-api-key"), "{answer}");
    assert_eq!(
        refusals_audited(&node),
        vec!["unknown-api-key: the API key is not one this node gave any peer".to_owned()]
    );
    node.stop().await;
}

fn p95(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.95).ceil() as usize).min(ms.len()) - 1]
}

/// Books `n` appointments one after another (or, with `until`, at least `n` and on until it
/// is set); each booking's latency in ms.
async fn bookings(
    c: &Client,
    doctor: &str,
    patient: &str,
    n: usize,
    until: Option<&std::sync::atomic::AtomicBool>,
) -> Vec<f64> {
    let mut ms = Vec::new();
    while ms.len() < n || until.is_some_and(|u| !u.load(std::sync::atomic::Ordering::SeqCst)) {
        let t = Instant::now();
        let a = c.book_next(doctor, patient, "flood check").await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(a.status, 201, "{}", a.body);
    }
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_inbox_requests_is_cut_off_audited_in_bounded_entries_and_does_not_slow_bookings()
 {
    const FLOOD: usize = 1000;
    const ALLOWED: u32 = 30;
    let node = TestNode::start_with(|c| c.inbox_refusals_per_minute = ALLOWED).await;
    let reception = node.reception().await;
    let doctor = node.creds.bench.practitioner_id.to_string();
    let patient = node.patient(0).id.to_string();
    let baseline = bookings(&reception, &doctor, &patient, 40, None).await;
    let audit_before = node.table_counts()["audit"];

    let done = std::sync::atomic::AtomicBool::new(false);
    let url = format!("{}{INBOX_PATH}", node.url);
    let flood = async {
        let http = support::http();
        let mut statuses = Vec::with_capacity(FLOOD);
        // 20 senders at once, 50 requests each, each with a 64 KiB body and a wrong key.
        let senders = (0..20).map(|s| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let mut got = Vec::new();
                for i in 0..FLOOD / 20 {
                    let r = http
                        .post(&url)
                        .header(API_KEY_HEADER, format!("guess-{s}-{i}"))
                        .body(vec![b'x'; 64 * 1024])
                        .send()
                        .await
                        .unwrap();
                    let retry_after = r.headers().get("retry-after").is_some();
                    got.push((r.status().as_u16(), retry_after));
                }
                got
            }
        });
        for got in futures_util::future::join_all(senders).await {
            statuses.extend(got);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        statuses
    };
    let (statuses, during) = tokio::join!(
        flood,
        bookings(&reception, &doctor, &patient, 10, Some(&done))
    );

    // Every request was refused: the first ALLOWED checked (401), the rest cut off (429,
    // with Retry-After) — unless the minute turned during the flood, which allows a few more.
    assert_eq!(statuses.len(), FLOOD);
    let unauthenticated = statuses.iter().filter(|(s, _)| *s == 401).count();
    let limited = statuses.iter().filter(|(s, r)| *s == 429 && *r).count();
    assert_eq!(unauthenticated + limited, FLOOD, "{statuses:?}");
    assert!(
        unauthenticated <= 2 * ALLOWED as usize,
        "{unauthenticated} checked"
    );

    // Bookings went on at their pace.
    let (base, flooded) = (p95(baseline.clone()), p95(during.clone()));
    assert!(
        flooded <= (base * 4.0).max(base + 250.0),
        "bookings' p95 went from {base:.1} ms to {flooded:.1} ms during the flood ({} bookings)",
        during.len()
    );

    // Closing the minute writes the counted refusals: every refusal is accounted for, in at
    // most two entries per code (the first at once, the rest counted).
    carebridge_server::federation::refusals::audit_counted(&node.node)
        .await
        .unwrap();
    let audited = refusals_audited(&node);
    let accounted: u64 = audited.iter().map(|d| refusals_in(d)).sum();
    assert_eq!(accounted, FLOOD as u64, "{audited:#?}");
    let codes = ["unknown-api-key", "too-many-requests"];
    assert!(
        audited.len() <= 2 * codes.len() * 2,
        "{} entries: {audited:#?}",
        audited.len()
    );
    assert!(
        audited
            .iter()
            .all(|d| codes.iter().any(|c| d.starts_with(c))),
        "{audited:#?}"
    );
    // The audit table grew by those entries and the bookings' own, nothing more.
    let bookings_audited = during.len() as i64;
    assert_eq!(
        node.table_counts()["audit"] - audit_before,
        audited.len() as i64 + bookings_audited,
    );
    node.stop().await;
}

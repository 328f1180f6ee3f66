//! The node as its operator sees it: metrics in Prometheus' text format, served at
//! `GET /metrics` on a listener of their own (`metrics_listen`), never on the API's: the API
//! faces workstations and peers, the metrics a monitoring network.
//!
//! Counters and histograms are recorded where things happen (a request answered, a commit,
//! a delivery attempt, a refused sign-in); gauges that describe the node's state now (live
//! subscribers, the writer's queue, the database's size, the oldest waiting transmission,
//! throttled addresses) are read when scraped. The recorder is the process's: one node per
//! process, as it is deployed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::node::Node;

/// Histogram buckets, in seconds: a request or a commit from a millisecond to ten seconds.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use. `None` when another recorder was
/// installed first (a test harness's): metrics are then recorded there, not rendered here.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder, so that what happens from now on is counted.
pub fn install() {
    let _ = handle();
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "carebridge_http_requests_total",
        "Requests answered, by method, route (its pattern) and status"
    );
    describe_histogram!(
        "carebridge_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request (to the head of a streamed answer), by method and route"
    );
    describe_gauge!("carebridge_live_subscribers", "Live event streams open now");
    describe_counter!(
        "carebridge_events_published_total",
        "Changes committed and published to the live streams"
    );
    describe_gauge!(
        "carebridge_writer_queue_depth",
        "Write jobs waiting for the database's writer"
    );
    describe_histogram!(
        "carebridge_writer_commit_seconds",
        Unit::Seconds,
        "Time to commit one transaction of the writer (a batch of write jobs)"
    );
    describe_counter!(
        "carebridge_federation_deliveries_total",
        "Delivery attempts to peer nodes, by outcome (acknowledged, refused, retry)"
    );
    describe_gauge!(
        "carebridge_federation_oldest_waiting_seconds",
        Unit::Seconds,
        "Age of the oldest transmission not yet delivered (0 when none waits)"
    );
    describe_counter!(
        "carebridge_sign_in_failures_total",
        "Refused sign-ins, by who tried (staff, kiosk) and why (credentials, throttled)"
    );
    describe_gauge!(
        "carebridge_throttled_addresses",
        "Addresses refused sign-ins now for too many failures"
    );
    describe_gauge!(
        "carebridge_database_bytes",
        Unit::Bytes,
        "Size of the node's database on disk, its write-ahead log included"
    );
}

/// A request was answered.
pub fn request_answered(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!("carebridge_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("carebridge_http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
}

/// The writer committed a batch of jobs that published `events` changes.
pub fn committed(took: Duration, events: usize) {
    histogram!("carebridge_writer_commit_seconds").record(took.as_secs_f64());
    if events > 0 {
        counter!("carebridge_events_published_total").increment(events as u64);
    }
}

/// A delivery attempt to a peer ended: `acknowledged`, `refused` or `retry`.
pub fn delivery(outcome: &'static str) {
    counter!("carebridge_federation_deliveries_total", "outcome" => outcome).increment(1);
}

/// A sign-in was refused: `who` is `staff` or `kiosk`, `why` `credentials` or `throttled`.
pub fn sign_in_refused(who: &'static str, why: &'static str) {
    counter!("carebridge_sign_in_failures_total", "who" => who, "why" => why).increment(1);
}

/// Why the metrics listener did not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics listener on {addr}: {source}")]
pub struct ListenError {
    addr: std::net::SocketAddr,
    source: std::io::Error,
}

/// Serves `GET /metrics` on `metrics_listen`, when set, until the node shuts down.
pub async fn serve(node: Arc<Node>) -> Result<(), ListenError> {
    let Some(addr) = node.config.metrics_listen else {
        return Ok(());
    };
    install();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "metrics at /metrics");
    let shutdown = node.shutdown.clone();
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(node);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

async fn scrape(State(node): State<Arc<Node>>) -> Response {
    let Some(handle) = handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process",
        )
            .into_response();
    };
    let now = node.clock.now();
    gauge!("carebridge_live_subscribers").set(node.hub.subscriber_count() as f64);
    gauge!("carebridge_writer_queue_depth").set(node.store.queue_depth() as f64);
    gauge!("carebridge_throttled_addresses").set(node.throttle_sources.refusing(now) as f64);
    gauge!("carebridge_database_bytes").set(database_bytes(&node) as f64);
    let oldest = node
        .store
        .read(crate::store::federation::transmissions::oldest_waiting)
        .await;
    match oldest {
        Ok(at) => {
            gauge!("carebridge_federation_oldest_waiting_seconds").set(at.map_or(0.0, |at| {
                (now - at).num_milliseconds().max(0) as f64 / 1000.0
            }))
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the waiting transmissions were not read"),
    }
    handle.run_upkeep();
    let mut res = handle.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// The database file and its write-ahead log, in bytes.
fn database_bytes(node: &Node) -> u64 {
    let db = node.config.db_path();
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    [db.into_os_string(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

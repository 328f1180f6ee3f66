//! Every request: an id to follow it through the logs (`X-Request-Id`, taken from a proxy
//! that set one, else made here, and sent back), a span that puts the id on every line
//! logged while the request runs, one line when it is answered, and its count and duration
//! in the node's metrics. Only the route's pattern is logged or counted, never the path or
//! query as sent: they can hold a patient's id or the name someone searched for.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header that carries a request's id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route of a request no route matched, in logs and metrics.
const UNMATCHED: &str = "unmatched";

/// The middleware; see the module.
pub async fn each_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let span = span(&id, method.as_str(), &route);
    let mut res = next.run(req).instrument(span.clone()).await;
    answered(
        &span,
        method.as_str(),
        &route,
        res.status().as_u16(),
        started,
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

/// The id of a request: the one its `X-Request-Id` header gives when that is plain, else a
/// new one.
pub fn request_id(header: Option<&str>) -> String {
    header
        .filter(|v| is_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The span a request runs in: every line logged in it carries these fields.
pub fn span(id: &str, method: &str, route: &str) -> tracing::Span {
    tracing::info_span!("request", request_id = %id, method = %method, route = %route)
}

/// A request was answered with `status`: its line in the log, its count and duration in the
/// metrics. For a stream (the live events, a snapshot, an export) this is when its head is
/// sent.
pub fn answered(span: &tracing::Span, method: &str, route: &str, status: u16, started: Instant) {
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status, millis = elapsed.as_secs_f64() * 1000.0, "answered");
    });
    crate::metrics::request_answered(method, route, status, elapsed);
}

/// An id a client or proxy may choose: 1 to 64 letters, digits, `-`, `_` or `.` (what goes
/// into every log line must not be able to forge one).
fn is_request_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::is_request_id;

    #[test]
    fn a_proxys_request_id_is_kept_only_when_it_is_plain() {
        assert!(is_request_id("0193a5f2-7c1e-7000-8000-1234567890ab"));
        assert!(is_request_id("f3b2c1d0e9a8"));
        assert!(!is_request_id(""));
        assert!(!is_request_id(&"a".repeat(65)));
        assert!(!is_request_id("id\" forged=\"1"));
        assert!(!is_request_id("line\nbreak"));
    }
}

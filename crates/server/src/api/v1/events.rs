//! `GET /api/v1/events`: the live stream (Server-Sent Events).
//!
//! On connect the stream replays, from the event log, what the caller may see after their
//! `Last-Event-ID` (in pages, never all at once), then follows the hub. The subscription is
//! taken *before* the head is read and the hub moves its head before it sends, so every event
//! is either in the replayed range or arrives live: nothing falls between, nothing is sent twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use carebridge_protocol::ProblemType;
use carebridge_protocol::event::RESET_EVENT;
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::extract::Caller;
use crate::api::request;
use crate::connection::ConnectionControl;
use crate::error::ApiError;
use crate::events::Frame;
use crate::events::{Subscription, Viewer};
use crate::node::Node;
use crate::store::{events, sessions};

const PAGE: i64 = 256;

/// At most this many bytes of ready events go out in one write on the plain-HTTP path.
const BATCH_BYTES: usize = 64 * 1024;

/// How long a client should wait before reconnecting, in milliseconds.
const RETRY_MS: u32 = 2000;

struct StreamState {
    node: Arc<Node>,
    sub: Subscription,
    viewer: Viewer,
    /// The last event id dealt with (sent or skipped as not visible).
    cursor: i64,
    /// Replay from the log up to here before following the hub.
    replay_to: i64,
    /// Ends the stream when the session expires.
    expiry: std::pin::Pin<Box<tokio::time::Sleep>>,
    backlog: VecDeque<Bytes>,
    heartbeat: tokio::time::Interval,
    /// Fires when the hub closes this subscriber's connection (it fell behind, signed out, was
    /// disabled) or the node shuts down (`Hub::disconnect_all`). Made once: re-registering a
    /// fresh future on every poll would take the token's lock for every event and subscriber.
    stop: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    done: bool,
}

fn parse_last_event_id(value: Option<&[u8]>) -> Result<Option<i64>, ApiError> {
    let s = value.unwrap_or_default();
    if s.is_empty() {
        return Ok(None);
    }
    // Digits only (as the document's pattern says): a sign, spaces or other bytes are refused.
    let digits = s.len() <= 18 && s.iter().all(u8::is_ascii_digit);
    let id = digits
        .then(|| std::str::from_utf8(s).ok()?.parse::<i64>().ok())
        .flatten();
    id.map(Some).ok_or_else(|| {
        ApiError::new(
            ProblemType::Validation,
            "Last-Event-ID must be an event id this node sent",
        )
    })
}

/// Follows the changes the caller may see, live.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "An endless text/event-stream: `id:`, `event:` (appointment.created, appointment.updated, patient.created, patient.updated, schedule.updated, absence.created, report.created, report.updated, transmission.updated, received.reports, received.deleted, admin-update.updated, consent.updated, or reset), `data:` (JSON: the record's full new state, or for received.deleted and consent.updated what changed); `retry:` once; a comment line every heartbeat", content_type = "text/event-stream", body = serde_json::Value)))]
pub async fn stream_events(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    control: Option<axum::Extension<ConnectionControl>>,
) -> Result<Response, ApiError> {
    let last = parse_last_event_id(headers.get("last-event-id").map(HeaderValue::as_bytes))?;
    let kill = control.map(|c| c.0.0.clone()).unwrap_or_default();
    let state = open_stream(node, caller, last, kill).await?;
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let bytes = s.next().await?;
        Some((Ok::<_, Infallible>(bytes), s))
    });
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Subscribes `caller` and prepares their stream: the opening lines, the replay after `last`
/// (or a reset), then the live events. `kill` ends it (and closes its connection).
async fn open_stream(
    node: Arc<Node>,
    caller: Caller,
    last: Option<i64>,
    kill: CancellationToken,
) -> Result<StreamState, ApiError> {
    // Subscribe first, then read the head: see the module doc.
    let sub = node
        .hub
        .subscribe(caller.viewer.principal_id(), caller.session, kill.clone());
    let head = node.hub.head();
    // The session was looked up before subscribing: a sign-out or a disabled account in
    // between would have found no stream to close, so look again now that there is one. The
    // subscription is audited: the stream carries patient data.
    let hash = caller.session;
    let now = node.clock.now();
    let source = caller.source.clone();
    let still = node
        .store
        .write(Some(caller.audit("events.subscribe", "")), move |ctx| {
            ctx.set_detail(match last {
                Some(n) => format!("live stream from {source}, resuming after event {n}"),
                None => format!("live stream from {source}"),
            });
            sessions::lookup(ctx, &hash, now).map_err(ApiError::from)
        })
        .await?;
    if still.is_none() {
        return Err(ApiError::new(
            ProblemType::Unauthenticated,
            "the session ended; sign in again",
        ));
    }
    let (oldest, logged) = node
        .store
        .read(|tx| Ok::<_, ApiError>((events::oldest(tx)?, events::head(tx)?)))
        .await?;
    // With several processes on one database, a client resuming here may have seen further
    // at another process than this one's hub has published yet: the log says what exists.
    // What lies between is replayed from it, and skipped when the hub publishes it.
    let head = head.max(logged);
    let oldest = oldest.unwrap_or(head + 1);
    let mut backlog = VecDeque::new();
    backlog.push_back(Bytes::from(format!(
        "retry: {RETRY_MS}\n: carebridge live stream, head {head}\n\n"
    )));
    let cursor = match last {
        Some(n) if n > head || n.saturating_add(1) < oldest => {
            // Older than the retained log, or from a different history (a restored backup):
            // the client must re-read snapshots, then follow from the head.
            backlog.push_back(Bytes::from(format!(
                "id: {head}\nevent: {RESET_EVENT}\ndata: {{\"head\":{head}}}\n\n"
            )));
            head
        }
        Some(n) => n,
        None => head,
    };
    sub.position.store(cursor, Ordering::Release);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(u64::from(
        node.config.heartbeat_seconds,
    )));
    heartbeat.reset();
    let state = StreamState {
        node: node.clone(),
        sub,
        viewer: caller.viewer,
        cursor,
        replay_to: head,
        backlog,
        heartbeat,
        stop: Box::pin(kill.cancelled_owned()),
        expiry: Box::pin(tokio::time::sleep(
            (caller.expires_at - node.clock.now())
                .to_std()
                .unwrap_or_default(),
        )),
        done: false,
    };
    Ok(state)
}

impl StreamState {
    fn advance(&mut self, id: i64) {
        self.cursor = id;
        self.sub.position.store(id, Ordering::Release);
    }

    /// The next bytes to send, or `None` to end the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.backlog.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            if self.cursor < self.replay_to {
                if let Err(e) = self.replay_page().await {
                    tracing::warn!(error = %e, "live stream replay failed; closing so the client resumes");
                    self.done = true;
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = self.stop.as_mut() => {
                    self.done = true;
                }
                _ = self.expiry.as_mut() => {
                    self.done = true;
                }
                // Before `recv`: on a busy node a viewer who may see none of the traffic
                // would otherwise never get a heartbeat.
                _ = self.heartbeat.tick() => {
                    return Some(Bytes::from_static(b": heartbeat\n\n"));
                }
                r = self.sub.rx.recv() => match r {
                    Ok(frame) => {
                        if frame.id <= self.cursor {
                            continue;
                        }
                        self.advance(frame.id);
                        if frame.audience.admits(&self.viewer) {
                            tracing::trace!(target: crate::TIMELINE, mark = "node.streamed", event = frame.id, to = self.viewer.kind());
                            return Some(frame.bytes.clone());
                        }
                    }
                    // Fell out of the ring: close; the client resumes with Last-Event-ID.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => self.done = true,
                },
            }
        }
    }

    async fn replay_page(&mut self) -> Result<(), ApiError> {
        let (from, to) = (self.cursor, self.replay_to);
        let rows = self
            .node
            .store
            .read(move |tx| events::page(tx, from, to, PAGE).map_err(ApiError::from))
            .await?;
        // Committed ids have no gaps, so a gap means the log was pruned under this replay:
        // the client cannot be given what it missed and must re-read.
        if rows.first().is_none_or(|r| r.id != from + 1) {
            self.backlog.push_back(Bytes::from(format!(
                "id: {to}\nevent: {RESET_EVENT}\ndata: {{\"head\":{to}}}\n\n"
            )));
            self.advance(to);
            return Ok(());
        }
        for e in rows {
            if e.audience.admits(&self.viewer) {
                self.backlog
                    .push_back(Frame::encode(e.id, &e.kind, &e.data));
            }
            self.advance(e.id);
        }
        Ok(())
    }
}

/// The `Authorization` and `Last-Event-ID` values of a request head.
fn stream_headers(head: &[u8]) -> Option<StreamHeaders> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_vec())
    };
    let text = |name: &str| value(name).and_then(|v| String::from_utf8(v).ok());
    Some(StreamHeaders {
        authorization: text("authorization"),
        last_event_id: value("last-event-id"),
        request_id: text("x-request-id"),
    })
}

/// What the lean path reads from a request's head.
struct StreamHeaders {
    authorization: Option<String>,
    last_event_id: Option<Vec<u8>>,
    request_id: Option<String>,
}

/// The live stream's route, as the router's requests name theirs in logs and metrics.
const EVENTS_ROUTE: &str = "/api/v1/events";

/// The lean path for plain HTTP/1: the accept loop found `GET /api/v1/events` in the request
/// head it read (`head`) and hands over the socket. The stream is written straight to it, with
/// no HTTP machinery held per connection (hyper keeps 16 KiB of buffers for each): with
/// thousands of subscribers that is most of their memory. Everything that decides what is
/// sent — sign-in, audit, replay, visibility, reset — is the same code as the routed handler.
pub async fn serve_plain(
    node: Arc<Node>,
    mut stream: tokio::net::TcpStream,
    head: Vec<u8>,
    source: String,
    kill: CancellationToken,
) {
    // Parsed into owned values and the head dropped before the first await, so the stream's
    // future does not carry them for its whole life.
    let Some(StreamHeaders {
        authorization,
        last_event_id: last,
        request_id,
    }) = stream_headers(&head)
    else {
        return;
    };
    drop(head);
    // Logged and counted as the routed handler's requests are (see `api::request`).
    let started = std::time::Instant::now();
    let id = request::request_id(request_id.as_deref());
    let span = request::span(&id, "GET", EVENTS_ROUTE);
    let opened = async {
        let last = parse_last_event_id(last.as_deref())?;
        let caller = Caller::authenticate(&node, authorization.as_deref(), source).await?;
        open_stream(node.clone(), caller, last, kill.clone()).await
    }
    .instrument(span.clone())
    .await;
    let status = opened.as_ref().map_or_else(|e| e.problem().status, |_| 200);
    request::answered(&span, "GET", EVENTS_ROUTE, status, started);
    drop(span);
    let mut state = match opened {
        Ok(s) => s,
        Err(e) => {
            let p = e.problem();
            let body = serde_json::to_vec(&p).unwrap_or_default();
            let reason = axum::http::StatusCode::from_u16(p.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let head = format!(
                "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n",
                p.status,
                carebridge_protocol::PROBLEM_JSON,
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    // The body is delimited by the connection's close: no chunked framing per event.
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n\
x-accel-buffering: no\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
    );
    drop(id);
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    drop(head);
    let mut batch = bytes::BytesMut::new();
    while let Some(first) = state.next().await {
        // Under load several events are ready at once: send them in one write, as hyper
        // would, instead of one syscall per event. `next` is cancel-safe, so asking it for
        // more without waiting loses nothing.
        let bytes = if let Some(second) = state.next().now_or_never().flatten() {
            batch.clear();
            batch.extend_from_slice(&first);
            batch.extend_from_slice(&second);
            while batch.len() < BATCH_BYTES {
                match state.next().now_or_never().flatten() {
                    Some(more) => batch.extend_from_slice(&more),
                    None => break,
                }
            }
            batch.split().freeze()
        } else {
            first
        };
        tokio::select! {
            r = stream.write_all(&bytes) => if r.is_err() { return },
            // A socket that stopped taking bytes: the reaper cancels, the connection closes.
            _ = kill.cancelled() => return,
        }
    }
    let _ = stream.shutdown().await;
}

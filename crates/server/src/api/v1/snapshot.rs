//! `GET /api/v1/snapshot`: everything the caller may see, as NDJSON, consistent with one
//! event id (see `carebridge_protocol::snapshot`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use carebridge_protocol::ProblemType;
use carebridge_protocol::problem::Problem;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::extract::{Caller, Query};
use crate::error::ApiError;
use crate::node::{Node, SnapshotReaders};
use crate::store::snapshot::{self, Cursor};
use crate::visibility;
use carebridge_protocol::snapshot::SnapshotItem;
use tokio_util::sync::CancellationToken;

/// Lines are sent in chunks of about this size.
const CHUNK: usize = 64 * 1024;

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// `<kind>:<id>` of the last record received, to resume a snapshot cut off half-way.
    #[param(
        pattern = "^(practitioner|schedule|patient|appointment|report):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub after: Option<String>,
}

/// Streams the caller's snapshot as NDJSON: `begin` (with the event id to follow the live
/// stream from), the records, `end`. A snapshot without its `end` line was cut off: resume it
/// with `after`.
#[utoipa::path(get, path = "/snapshot", tag = "events", params(SnapshotQuery), security(("bearer" = [])),
    responses((status = 200, description = "One JSON object a line: {\"kind\": \"begin\" | \"practitioner\" | \"schedule\" | \"patient\" | \"appointment\" | \"end\", \"data\": …}", content_type = "application/x-ndjson", body = String),
              (status = 503, description = "Every snapshot place is taken; retry after `Retry-After`", body = Problem, content_type = "application/problem+json")))]
pub async fn get_snapshot(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<SnapshotQuery>,
) -> Result<Response, ApiError> {
    let after = q
        .after
        .as_deref()
        .map(|s| {
            Cursor::parse(s).ok_or_else(|| {
                ApiError::new(
                    ProblemType::Validation,
                    "after must be <kind>:<id> of a record from a snapshot",
                )
            })
        })
        .transpose()?;
    // One snapshot at a time per user: a new one (a client resuming after a cut) ends the
    // one still being sent, so that a user can neither hold several places nor be refused.
    let reading = ReadingNow::take(&node.snapshot_readers, caller.actor());
    // Places are few (each holds a connection and a read transaction): wait a little for one.
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        node.snapshot_permits.clone().acquire_owned(),
    )
    .await
    .map_err(|_| ApiError::Busy(5))?
    .map_err(|_| ApiError::new(ProblemType::Unavailable, "the node is shutting down"))?;
    let stall = std::time::Duration::from_secs(u64::from(node.config.snapshot_stall_seconds));
    let runtime = tokio::runtime::Handle::current();
    let detail = q
        .after
        .clone()
        .map_or_else(|| "full".to_owned(), |a| format!("resumed after {a}"));
    node.store
        .write(Some(caller.audit("snapshot.read", "")), move |ctx| {
            ctx.set_detail(detail);
            Ok::<_, ApiError>(())
        })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let (store, viewer, name) = (node.store.clone(), caller.viewer, node.name().to_owned());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // A reader that stops reading would hold its place and its read transaction for ever:
        // past the stall time its snapshot ends (without `end`, so the client resumes).
        let ended = reading.ended.clone();
        let send = |chunk: Bytes| -> bool {
            runtime.block_on(async {
                tokio::select! {
                    sent = tokio::time::timeout(stall, tx.send(chunk)) => {
                        sent.is_ok_and(|sent| sent.is_ok())
                    }
                    () = ended.cancelled() => false,
                }
            })
        };
        let conn = match store.open_reader() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "snapshot: cannot open the database");
                return;
            }
        };
        let mut buf = BytesMut::with_capacity(CHUNK + 4096);
        let mut open = true;
        let contents = visibility::snapshot_of(&viewer);
        let written = snapshot::write(&conn, &contents, &name, after.as_ref(), |item| {
            let written = match item {
                SnapshotItem::Practitioner(p) if visibility::sees_only_doctors(&viewer) => {
                    let seen = visibility::practitioner_as_seen(&viewer, p.clone());
                    serde_json::to_writer(
                        bytes::BufMut::writer(&mut buf),
                        &SnapshotItem::Practitioner(seen),
                    )
                }
                _ => serde_json::to_writer(bytes::BufMut::writer(&mut buf), item),
            };
            if written.is_err() {
                return false;
            }
            buf.extend_from_slice(b"\n");
            if buf.len() >= CHUNK {
                // The client's pace sets ours: a bounded channel, never the whole snapshot.
                open = send(buf.split().freeze());
            }
            open && !reading.ended.is_cancelled()
        });
        match written {
            Ok(()) if open && !buf.is_empty() => {
                let _ = send(buf.freeze());
            }
            Ok(()) => {}
            // The stream ends without its `end` line: the client resumes.
            Err(e) => tracing::error!(error = %e, "snapshot: read failed"),
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// A user's place among the snapshot readers, given back when dropped.
struct ReadingNow {
    readers: Arc<parking_lot::Mutex<SnapshotReaders>>,
    who: String,
    number: u64,
    /// Cancelled when the same user starts another snapshot.
    ended: CancellationToken,
}

impl ReadingNow {
    /// `who`'s place; a snapshot of theirs still being sent is ended.
    fn take(readers: &Arc<parking_lot::Mutex<SnapshotReaders>>, who: String) -> Self {
        static NUMBER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ended = CancellationToken::new();
        if let Some((_, earlier)) = readers.lock().insert(who.clone(), (number, ended.clone())) {
            earlier.cancel();
        }
        Self {
            readers: readers.clone(),
            who,
            number,
            ended,
        }
    }
}

impl Drop for ReadingNow {
    fn drop(&mut self) {
        let mut readers = self.readers.lock();
        // Only our own entry: a newer snapshot of the same user may have taken the place.
        if readers
            .get(&self.who)
            .is_some_and(|(n, _)| *n == self.number)
        {
            readers.remove(&self.who);
        }
    }
}

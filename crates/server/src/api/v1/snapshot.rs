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
use crate::node::Node;
use crate::store::snapshot::{self, Cursor};
use crate::visibility;
use carebridge_protocol::snapshot::SnapshotItem;

/// Lines are sent in chunks of about this size.
const CHUNK: usize = 64 * 1024;

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// `<kind>:<id>` of the last record received, to resume a snapshot cut off half-way.
    pub after: Option<String>,
}

/// Streams the caller's snapshot as NDJSON: `begin` (with the event id to follow the live
/// stream from), the records, `end`. A snapshot without its `end` line was cut off: resume it
/// with `after`.
#[utoipa::path(get, path = "/snapshot", tag = "events", params(SnapshotQuery), security(("bearer" = [])),
    responses((status = 200, description = "One JSON object a line: {\"kind\": \"begin\" | \"practitioner\" | \"schedule\" | \"patient\" | \"appointment\" | \"end\", \"data\": …}", content_type = "application/x-ndjson", body = String),
              (status = 429, description = "A snapshot for this user is already being sent", body = Problem, content_type = "application/problem+json"),
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
    // One snapshot at a time per user: a second one (a stuck client retrying) is told to wait.
    let reading = ReadingNow::take(&node.snapshot_readers, caller.actor()).ok_or_else(|| {
        ApiError::new(
            ProblemType::TooManyRequests,
            "a snapshot for you is already being sent; finish or close it first",
        )
    })?;
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
        let _reading = reading;
        // A reader that stops reading would hold its place and its read transaction for ever:
        // past the stall time its snapshot ends (without `end`, so the client resumes).
        let send = |chunk: Bytes| -> bool {
            runtime
                .block_on(tokio::time::timeout(stall, tx.send(chunk)))
                .is_ok_and(|sent| sent.is_ok())
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
            open
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
    readers: Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
    who: String,
}

impl ReadingNow {
    /// `who`'s place, unless they are reading one already.
    fn take(
        readers: &Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
        who: String,
    ) -> Option<Self> {
        readers.lock().insert(who.clone()).then(|| Self {
            readers: readers.clone(),
            who,
        })
    }
}

impl Drop for ReadingNow {
    fn drop(&mut self) {
        self.readers.lock().remove(&self.who);
    }
}

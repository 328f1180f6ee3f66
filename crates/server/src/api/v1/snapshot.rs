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
    responses((status = 200, description = "One JSON object a line: {\"kind\": \"begin\" | \"practitioner\" | \"schedule\" | \"patient\" | \"appointment\" | \"end\", \"data\": …}", content_type = "application/x-ndjson", body = String)))]
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
    let permit = node
        .snapshot_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(ProblemType::Unavailable, "the node is shutting down"))?;
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
                open = tx.blocking_send(buf.split().freeze()).is_ok();
            }
            open
        });
        match written {
            Ok(()) if open && !buf.is_empty() => {
                let _ = tx.blocking_send(buf.freeze());
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

//! The first sync: the node's snapshot of what this user may see, streamed into the local
//! store in batches (never held whole), resumable after a cut.

use carebridge_protocol::Problem;
use carebridge_protocol::snapshot::SnapshotItem;
use futures_util::StreamExt;

use crate::error::CoreError;
use crate::store::{LocalStore, SnapshotLine};

/// How the first sync proceeds.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Records per local transaction.
    pub batch: usize,
    /// Stop (as if cut off) after this many records: paces a sync in bounded steps.
    pub stop_after: Option<u64>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            batch: 2000,
            stop_after: None,
        }
    }
}

/// Pulls the snapshot from `base` (the node's URL) into `store`, resuming after the last
/// record stored if an earlier attempt was cut off. Returns how many records this call stored.
/// `Err(Interrupted)` means what came is kept; call again to go on.
pub async fn first_sync(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    store: &LocalStore,
    opts: &SnapshotOptions,
) -> Result<u64, CoreError> {
    let state = store.sync_state().await?;
    if state.snapshot_complete {
        return Ok(0);
    }
    let mut req = http
        .get(format!("{base}/api/v1/snapshot"))
        .bearer_auth(token);
    if let Some(c) = &state.snapshot_cursor {
        req = req.query(&[("after", c)]);
    }
    let res = req.send().await?;
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Err(CoreError::SignedOut);
    }
    if !res.status().is_success() {
        let problem: Problem = res
            .json()
            .await
            .map_err(|e| CoreError::Protocol(e.to_string()))?;
        return Err(CoreError::Rejected(Box::new(problem)));
    }
    let mut body = res.bytes_stream();
    // Parsing the next batch overlaps writing the last: a writer task takes batches in order
    // through a short queue (two batches: memory stays bounded). Copying the write-ahead log
    // into the database overlaps both, on a thread of its own; it ends with the writer.
    let checkpoints = store.checkpointer().await?;
    let (batches, mut to_write) = tokio::sync::mpsc::channel::<Vec<SnapshotLine>>(2);
    let writer = {
        let store = store.clone();
        let checkpoints = checkpoints.clone();
        tokio::spawn(async move {
            while let Some(batch) = to_write.recv().await {
                store.apply_snapshot_batch(batch).await?;
                checkpoints.committed();
            }
            Ok::<_, CoreError>(())
        })
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut batch = Vec::with_capacity(opts.batch);
    let mut stored = 0u64;
    let mut ended = false;
    let mut parse_error = None;
    'read: while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + nl];
            start += nl + 1;
            let line = match SnapshotLine::parse(line) {
                Ok(l) => l,
                Err(e) => {
                    parse_error = Some(CoreError::Protocol(e.to_string()));
                    break 'read;
                }
            };
            let is_record = !matches!(
                line.item,
                SnapshotItem::Begin { .. } | SnapshotItem::End { .. }
            );
            ended |= matches!(line.item, SnapshotItem::End { .. });
            batch.push(line);
            if is_record {
                stored += 1;
            }
            if batch.len() >= opts.batch
                && batches
                    .send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(opts.batch),
                    ))
                    .await
                    .is_err()
            {
                // The writer stopped on an error: it is reported below.
                break 'read;
            }
            if opts.stop_after.is_some_and(|n| stored >= n) && !ended {
                break 'read;
            }
        }
        pending.drain(..start);
    }
    if !batch.is_empty() && parse_error.is_none() {
        let _ = batches.send(batch).await;
    }
    drop(batches);
    let written = writer.await.map_err(|e| CoreError::Task(e.to_string()));
    // The log is copied and the checkpointer's connection closed before the sync returns.
    tokio::task::spawn_blocking(move || checkpoints.finish())
        .await
        .map_err(|e| CoreError::Task(e.to_string()))?;
    written??;
    if let Some(e) = parse_error {
        return Err(e);
    }
    if ended {
        Ok(stored)
    } else {
        Err(CoreError::Interrupted(stored))
    }
}

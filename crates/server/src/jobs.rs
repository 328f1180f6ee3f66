//! The node's background jobs: the live stream's reaper, the delivery of transmissions to
//! peers, the minute's pruning (the event log, expired sessions, old idempotency records
//! and kiosk identifications, and received payloads past their retention), and the signed
//! checkpoints of the audit chain's head, and the federation inbox's counted refusals.

use std::sync::Arc;
use std::time::Duration;

use crate::federation::received;
use crate::node::Node;
use crate::store::{StoreError, events, idempotency, kiosks, sessions};

/// Deletes payloads received from peers longer ago than `retention_days`, auditing each.
pub async fn apply_retention(node: &Node) -> Result<u64, StoreError> {
    // In batches, each its own write: a backlog (a shortened period, a node long
    // stopped) neither holds the writer nor floods the live stream in one transaction.
    const BATCH: u32 = 200;
    let days = node.config.retention_days;
    let mut total = 0;
    loop {
        let deleted = node
            .store
            .write(None, move |ctx| received::apply_retention(ctx, days, BATCH))
            .await?;
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Starts the background jobs: the live-stream reaper, the delivery of transmissions to
/// peers, pruning of the event log, expired sessions, kiosk identifications, old
/// idempotency records and received payloads past their retention, and audit checkpoints
/// every `audit_checkpoint_minutes` (the first one interval after the start, which `serve`
/// checkpoints itself).
///
/// Processes sharing one PostgreSQL database each reap their own streams, sweep their own
/// export files and audit their own inbox's refusals; the rest is the cluster's once-only
/// work, done by the process on duty ([`crate::store::Store::duty`]) and handed over when it
/// goes.
pub fn spawn(node: &Arc<Node>) {
    tokio::spawn(
        node.hub
            .clone()
            .run_reaper(Duration::from_secs(1), node.shutdown.clone()),
    );
    crate::fhir::export::Exports::spawn_sweeper(node);
    let window = crate::federation::refusals::WINDOW;
    repeat(
        node,
        node.shutdown.clone(),
        window,
        window,
        "auditing the inbox's refusals",
        |node| async move { crate::federation::refusals::audit_counted(&node).await },
    );
    tokio::spawn(while_on_duty(node.clone()));
}

/// Runs the once-only jobs while this process is on duty: started when it takes the duty,
/// stopped when it loses it, until the node shuts down.
async fn while_on_duty(node: Arc<Node>) {
    let mut duty = node.store.duty();
    let mut running: Option<tokio_util::sync::CancellationToken> = None;
    loop {
        let on = *duty.borrow_and_update();
        match (on, &running) {
            (true, None) => {
                let stop = node.shutdown.child_token();
                spawn_once_only(&node, &stop);
                running = Some(stop);
            }
            (false, Some(stop)) => {
                tracing::warn!("another process does the cluster's once-only work now");
                stop.cancel();
                running = None;
            }
            _ => {}
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            changed = duty.changed() => {
                if changed.is_err() {
                    // Nobody can change it any more (one process per database): it stays.
                    node.shutdown.cancelled().await;
                    return;
                }
            }
        }
    }
}

/// The cluster's once-only jobs, until `stop`.
fn spawn_once_only(node: &Arc<Node>, stop: &tokio_util::sync::CancellationToken) {
    tokio::spawn(crate::federation::delivery::run(node.clone(), stop.clone()));
    tokio::spawn(crate::mail_delivery::run(node.clone(), stop.clone()));
    crate::imaging::spawn(node, stop);
    let checkpoints = Duration::from_secs(u64::from(node.config.audit_checkpoint_minutes) * 60);
    repeat(
        node,
        stop.clone(),
        checkpoints,
        checkpoints,
        "audit checkpoint",
        |node| async move { crate::audit::checkpoint(&node.store).await.map(drop) },
    );
    let minute = Duration::from_secs(60);
    repeat(
        node,
        stop.clone(),
        Duration::ZERO,
        minute,
        "pruning",
        |node| async move { prune(&node).await },
    );
    repeat(
        node,
        stop.clone(),
        minute,
        minute,
        "ending access grants",
        |node| async move { crate::federation::access::end_due(&node).await },
    );
}

/// Runs `job` every `period`, the first time after `first`, until `stop`; a failure is logged
/// and the job runs again at its next turn.
fn repeat<F, Fut, E>(
    node: &Arc<Node>,
    stop: tokio_util::sync::CancellationToken,
    first: Duration,
    period: Duration,
    what: &'static str,
    job: F,
) where
    F: Fn(Arc<Node>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let node = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = job(node.clone()).await {
                        tracing::warn!(error = %e, "{what} failed; will retry");
                    }
                }
            }
        }
    });
}

/// One round of pruning, and the retention of received payloads.
pub async fn prune(node: &Node) -> Result<(), StoreError> {
    apply_retention(node).await?;
    let retained = i64::from(node.config.events_retained);
    node.store
        .write(None, move |ctx| {
            let now = ctx.now();
            events::prune(ctx, retained)?;
            sessions::prune(ctx, now)?;
            idempotency::prune(ctx, now - chrono::Duration::days(1))?;
            kiosks::prune_identifications(
                ctx,
                now - chrono::Duration::milliseconds(kiosks::IDENTIFICATION_TTL_MS),
            )?;
            Ok::<_, StoreError>(())
        })
        .await
}

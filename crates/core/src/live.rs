//! Following the node's live stream into the local store.
//!
//! eventsource-client keeps the connection: it reconnects with backoff (and jitter) and resends
//! the last event id it saw, but only while its stream is polled, so this loop keeps polling
//! through errors. The events that are ready are applied together, one local transaction with
//! their last id. A 401 means the session is over: the follower stops rather than retrying.

use std::time::Duration;

use carebridge_protocol::event::{EventKind, LiveEvent, RESET_EVENT};
use eventsource_client as es;
use futures_util::StreamExt;
use launchdarkly_sdk_transport::HyperTransport;
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::store::{Applied, LocalStore, NodeRecord};

/// What following the stream tells the sync engine as it goes.
#[derive(Debug)]
pub enum LiveNews {
    /// Syncing or connecting (at the start, and after a reset).
    Connecting,
    /// The stream is connected (and after a reconnect).
    Connected,
    /// The connection broke; the client is trying again.
    Disconnected,
    /// Events changed what the user sees, in order.
    Applied(Vec<Applied>),
    /// Exchanges with peers changed (a transmission's state, reports received, an admin
    /// update): not mirrored, read from the node when shown.
    Exchange(Vec<LiveEvent>),
}

/// Why following stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEnd {
    /// Asked to stop.
    Stopped,
    /// The node no longer accepts the token: sign in again.
    SignedOut,
    /// The node no longer has the events this client needs: run the first sync again (the
    /// store's sync state was cleared for it), then follow again.
    Reset,
}

/// Follows `base`'s live stream from where the store stands until `stop` is cancelled, the
/// session ends, or the node asks for a reset.
pub async fn follow(
    base: &str,
    token: &str,
    store: &LocalStore,
    stop: CancellationToken,
    news: tokio::sync::mpsc::UnboundedSender<LiveNews>,
) -> Result<LiveEnd, CoreError> {
    let state = store.sync_state().await?;
    let from = state
        .last_event_id
        .or(state.snapshot_event_id)
        .ok_or_else(|| CoreError::Protocol("follow the live stream after the first sync".into()))?;
    let bad = |e: es::Error| CoreError::Protocol(e.to_string());
    let builder = es::ClientBuilder::for_url(&format!("{base}/api/v1/events"))
        .map_err(bad)?
        .header("Authorization", &format!("Bearer {token}"))
        .map_err(bad)?
        .last_event_id(from.to_string())
        .reconnect(
            es::ReconnectOptions::reconnect(true)
                .retry_initial(true)
                .delay(Duration::from_millis(500))
                .backoff_factor(2)
                .delay_max(Duration::from_secs(30))
                .build(),
        );
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_secs(5))
        // Longer than the node's 15 s heartbeat: silence past it means the connection is dead.
        .read_timeout(Duration::from_secs(45));
    let task = |e: std::io::Error| CoreError::Task(format!("live stream transport: {e}"));
    // TLS trusts the system's roots (where a hospital's IT puts its own CA), as reqwest does.
    let client: Box<dyn es::Client> = if base.starts_with("https://") {
        Box::new(builder.build_with_transport(transport.build_https().map_err(task)?))
    } else {
        Box::new(builder.build_with_transport(transport.build_http().map_err(task)?))
    };
    let mut stream = client.stream().ready_chunks(256);
    // eventsource-client retries a failing connection without reporting it: a stream not
    // connected after this long is reported offline.
    let patience = Duration::from_secs(5);
    let mut connected = false;
    let mut give_up_waiting = Box::pin(tokio::time::sleep(patience));
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Ok(LiveEnd::Stopped),
            c = stream.next() => c,
            _ = &mut give_up_waiting, if !connected => {
                let _ = news.send(LiveNews::Disconnected);
                give_up_waiting.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                continue;
            }
        };
        let Some(chunk) = chunk else {
            // The client gave up (a redirect it will not follow, a request it cannot build):
            // the engine starts over after a pause.
            return Err(CoreError::Protocol("the live stream closed".into()));
        };
        let mut batch = Vec::with_capacity(chunk.len());
        // The last id of events this client cannot read (a newer node's kind of change, or data
        // it cannot decode): logged and skipped, but passed, so they are not fetched again and
        // again; the events after them are applied as usual.
        let mut unreadable: Option<i64> = None;
        let mut end = None;
        for item in chunk {
            match item {
                Ok(es::SSE::Event(ev)) if ev.event_type == RESET_EVENT => {
                    end = Some(LiveEnd::Reset);
                    break;
                }
                Ok(es::SSE::Event(ev)) => {
                    let Some(id) = ev.id.as_deref().and_then(|i| i.parse::<i64>().ok()) else {
                        tracing::warn!(kind = ev.event_type, "skipping a live event without an id");
                        continue;
                    };
                    // Why, without serde's message: it may quote the data (a patient's name).
                    let decoded = match EventKind::parse(&ev.event_type) {
                        Some(kind) => LiveEvent::decode(kind, &ev.data).map_err(|e| {
                            format!(
                                "{:?} at line {} column {}",
                                e.classify(),
                                e.line(),
                                e.column()
                            )
                        }),
                        None => Err("a kind of event this client does not know".to_owned()),
                    };
                    match decoded {
                        Ok(event) => batch.push((id, event)),
                        Err(error) => {
                            tracing::warn!(
                                id,
                                kind = ev.event_type,
                                error,
                                "skipping a live event this client cannot read"
                            );
                            unreadable = Some(id);
                        }
                    }
                }
                Ok(es::SSE::Connected(_)) => {
                    connected = true;
                    let _ = news.send(LiveNews::Connected);
                }
                Ok(es::SSE::Comment(_)) => {}
                Err(es::Error::UnexpectedResponse(r, _)) if r.status() == 401 => {
                    end = Some(LiveEnd::SignedOut);
                    break;
                }
                // A broken connection: the client reconnects on the next poll.
                Err(_) => {
                    if connected {
                        connected = false;
                        give_up_waiting
                            .as_mut()
                            .reset(tokio::time::Instant::now() + patience);
                    }
                    let _ = news.send(LiveNews::Disconnected);
                }
            }
        }
        let (records, exchange): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|(_, e)| NodeRecord::is_carried_by(e));
        if !records.is_empty() {
            let applied = store.apply_events(records).await?;
            for a in &applied {
                tracing::trace!(target: crate::TIMELINE, mark = "client.applied", event = a.event_id, id = %a.record.id());
            }
            if !applied.is_empty() {
                let _ = news.send(LiveNews::Applied(applied));
            }
        }
        if let Some(last) = exchange.iter().map(|(id, _)| *id).max() {
            store.pass_event(last).await?;
            let _ = news.send(LiveNews::Exchange(
                exchange.into_iter().map(|(_, e)| e).collect(),
            ));
        }
        if let Some(id) = unreadable {
            store.pass_event(id).await?;
        }
        match end {
            Some(LiveEnd::Reset) => {
                store.reset_sync().await?;
                return Ok(LiveEnd::Reset);
            }
            Some(e) => return Ok(e),
            None => {}
        }
    }
}

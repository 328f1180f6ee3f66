//! The delivery worker: sends queued transmissions to their peers' inboxes, signed afresh on
//! every attempt (a new nonce and time, the same sealed envelope), and records the outcome —
//! acknowledged with the peer's verified receipt, failed when the peer refuses for a reason
//! retrying cannot cure, or queued again with exponential backoff when the peer cannot be
//! reached or has a passing fault (waiting at least what its `Retry-After` asks, up to
//! `delivery_max_backoff_seconds`). Admins are alerted once when one waits too long.

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::audit::Outcome;
use carebridge_protocol::federation::payload::TransmissionState;
use carebridge_protocol::federation::request::{API_KEY_HEADER, INBOX_PATH, Receipt, sign_request};
use carebridge_protocol::problem::Problem;
use chrono::{DateTime, Utc};
use rand::Rng;

use super::peer::Peer;
use super::{transfer, transmission};
use crate::node::Node;
use crate::store::federation::peers;
use crate::store::federation::transmissions::{self, Due};
use crate::store::{AuditDraft, StoreError};

/// What an attempt came to.
enum Attempt {
    Acknowledged(Receipt),
    Refused(String),
    /// Worth another attempt; `after` is the wait the peer asked for (`Retry-After`).
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

impl Attempt {
    fn retry(why: impl Into<String>) -> Self {
        Self::Retry {
            why: why.into(),
            after: None,
        }
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

/// The HTTP client peers are reached with: from the configured source address, no redirects.
pub fn client(node: &Node) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ip) = node.config.federation_source {
        b = b.local_address(ip);
    }
    b.build().unwrap_or_default()
}

/// Runs until `stop` (the node shuts down, or another process is on duty).
pub async fn run(node: Arc<Node>, stop: tokio_util::sync::CancellationToken) {
    let http = client(&node);
    loop {
        if stop.is_cancelled() {
            break;
        }
        let wait = match round(&node, &http).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "transmission delivery failed; will retry");
                Duration::from_secs(5)
            }
        };
        // Other processes on the database queue too, and wake only their own worker: look
        // again within a second for what they queued.
        let wait = if node.store.dialect() == crate::store::sql::Dialect::Postgres {
            wait.min(Duration::from_secs(1))
        } else {
            wait
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = node.delivery_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One round: every due transmission is attempted; returns how long until the next is due.
async fn round(node: &Arc<Node>, http: &reqwest::Client) -> Result<Duration, StoreError> {
    alert_overdue(node).await?;
    let now = node.clock.now();
    let due = node
        .store
        .read(move |tx| transmissions::due(tx, now, 16))
        .await?;
    for d in due {
        deliver(node, http, d).await?;
    }
    let next = node.store.read(transmissions::next_due).await?;
    let now = node.clock.now();
    Ok(match next {
        Some(t) => (t - now)
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(30)),
        None => Duration::from_secs(30),
    })
}

async fn deliver(node: &Arc<Node>, http: &reqwest::Client, d: Due) -> Result<(), StoreError> {
    let name = d.peer.clone();
    let Some(peer) = node.store.read(move |tx| peers::get(tx, &name)).await? else {
        return finish(
            node,
            &d,
            Attempt::Refused(format!("{} is no longer a peer", d.peer)),
        )
        .await;
    };
    // Sent: in the hands of the network. If the node stops now, the lease runs out and the
    // transmission is attempted again (the peer keeps one copy per envelope id).
    let id = d.id;
    let taken = node
        .store
        .write(None, move |ctx| {
            let lease = ctx.now() + chrono::Duration::seconds(120);
            // Not when it was stopped after it was picked (consent withdrawn).
            let taken = transmissions::take_for_attempt(ctx, id, lease)?;
            if taken && let Some(t) = transmissions::get(ctx, id)? {
                transmission::emit_updated(ctx, &t)?;
            }
            Ok::<_, StoreError>(taken)
        })
        .await?;
    if !taken {
        return Ok(());
    }
    let attempt = attempt(node, http, &peer, &d).await;
    finish(node, &d, attempt).await
}

/// The authority (`host[:port]`) a request to `url` is signed for, as the receiver reads its
/// `Host` header.
pub fn authority(url: &str) -> Result<String, String> {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => Ok(format!("{h}:{p}")),
            (Some(h), None) => Ok(h.to_owned()),
            _ => Err(format!("the peer's URL {url} has no host")),
        },
        Err(e) => Err(format!("the peer's URL {url} is not valid: {e}")),
    }
}

async fn attempt(node: &Node, http: &reqwest::Client, peer: &Peer, d: &Due) -> Attempt {
    let url = format!("{}{INBOX_PATH}", peer.url);
    let authority = match authority(&url) {
        Ok(a) => a,
        Err(why) => return Attempt::Refused(why),
    };
    let signed = match sign_request(
        INBOX_PATH,
        &authority,
        &d.envelope,
        node.name(),
        &node.signing_key,
        node.clock.now(),
    ) {
        Ok(s) => s,
        Err(e) => return Attempt::Refused(e.to_string()),
    };
    let res = http
        .post(&url)
        .header("content-type", "application/json")
        .header(API_KEY_HEADER, &peer.api_key)
        .header("content-digest", signed.content_digest)
        .header("signature-input", signed.signature_input)
        .header("signature", signed.signature)
        .body(d.envelope.clone())
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => return Attempt::retry(format!("{} could not be reached: {e}", peer.name)),
    };
    let status = res.status();
    if status.is_success() {
        return match res.json::<Receipt>().await {
            Ok(r) if r.verify(d.id, &peer.name, &peer.signing_key) => Attempt::Acknowledged(r),
            Ok(_) => Attempt::retry("the peer's receipt did not verify with its key"),
            Err(e) => Attempt::retry(format!("the peer's receipt could not be read: {e}")),
        };
    }
    let after = retry_after(res.headers(), node.clock.now());
    let why = match res.json::<Problem>().await {
        Ok(p) => format!(
            "{} ({}): {}",
            p.title,
            p.code.slug(),
            p.detail.unwrap_or_default()
        ),
        Err(_) => format!("HTTP {status}"),
    };
    if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry {
            why: format!("{} answered {why}", peer.name),
            after,
        }
    } else {
        Attempt::Refused(format!("{} refused it: {why}", peer.name))
    }
}

/// Records an attempt's outcome, audited.
async fn finish(node: &Arc<Node>, d: &Due, a: Attempt) -> Result<(), StoreError> {
    let id = d.id;
    let attempts = d.attempts + 1;
    let max = f64::from(node.config.delivery_max_backoff_seconds.max(1));
    let backoff = (2f64.powi(i32::try_from(attempts.min(20)).unwrap_or(20))).min(max);
    let jitter = rand::rngs::OsRng.gen_range(0.8..1.2);
    let mut wait = backoff * jitter;
    // The peer knows its own load: never sooner than it asked, never past our longest wait.
    if let Attempt::Retry {
        after: Some(after), ..
    } = &a
    {
        wait = wait.max(after.as_secs_f64().min(max));
    }
    let delay = chrono::Duration::milliseconds((wait * 1000.0) as i64);
    crate::metrics::delivery(match &a {
        Attempt::Acknowledged(_) => "acknowledged",
        Attempt::Refused(_) => "refused",
        Attempt::Retry { .. } => "retry",
    });
    let draft = AuditDraft {
        actor: "node".into(),
        action: "federation.send".into(),
        entity: format!("transmission/{id}"),
        source: d.peer.clone(),
    };
    node.store
        .write(None, move |ctx| {
            let now = ctx.now();
            let (state, error, outcome, detail) = match &a {
                Attempt::Acknowledged(r) => {
                    transmissions::record_receipt(
                        ctx,
                        id,
                        &serde_json::to_string(r)?,
                        r.received_at,
                    )?;
                    (
                        TransmissionState::Acknowledged,
                        None,
                        Outcome::Success,
                        format!("acknowledged: stored as {}", r.stored_as),
                    )
                }
                Attempt::Refused(why) => (
                    TransmissionState::Failed,
                    Some(why.clone()),
                    Outcome::Failure,
                    format!("failed: {why}"),
                ),
                Attempt::Retry { why, .. } => (
                    TransmissionState::Queued,
                    Some(why.clone()),
                    Outcome::Failure,
                    format!("attempt {attempts} did not get through, retrying: {why}"),
                ),
            };
            // Only an attempt still in flight is settled by its outcome: a transmission stopped
            // meanwhile (consent withdrawn) stays stopped, unless the peer did receive it.
            let changed =
                transmissions::settle(ctx, id, state, error.as_deref(), attempts, now + delay)?;
            if !changed {
                return Ok(());
            }
            ctx.audit(&draft, &format!("transmission/{id}"), outcome, &detail)?;
            if let Some(t) = transmissions::get(ctx, id)? {
                transmission::emit_updated(ctx, &t)?;
            }
            match state {
                TransmissionState::Acknowledged => transfer::part_settled(ctx, id, None)?,
                TransmissionState::Failed => transfer::part_settled(ctx, id, error.as_deref())?,
                _ => {}
            }
            Ok::<_, StoreError>(())
        })
        .await
}

/// Alerts admins, once, of transmissions waiting longer than the node allows.
async fn alert_overdue(node: &Arc<Node>) -> Result<(), StoreError> {
    let limit = chrono::Duration::minutes(i64::from(node.config.transmission_alert_minutes));
    node.store
        .write(None, move |ctx| {
            let before = ctx.now() - limit;
            for id in transmissions::mark_overdue(ctx, before)? {
                let Some(t) = transmissions::get(ctx, id)? else {
                    continue;
                };
                ctx.audit(
                    &AuditDraft {
                        actor: "node".into(),
                        action: "transmission.overdue".into(),
                        entity: format!("transmission/{id}"),
                        source: t.peer.clone(),
                    },
                    &format!("transmission/{id}"),
                    Outcome::Failure,
                    &format!(
                        "not delivered to {} after {} attempts since {}: {}",
                        t.peer,
                        t.attempts,
                        t.created_at,
                        t.last_error.as_deref().unwrap_or("not attempted yet")
                    ),
                )?;
                transmission::emit_updated(ctx, &t)?;
            }
            Ok(())
        })
        .await
}

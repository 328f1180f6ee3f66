//! The mail worker: sends what the mail outbox holds (`store::mail`) through the SMTP server
//! `[mail]` names, after the transaction that queued it committed. A passing failure (the
//! server unreachable, a 4xx answer) is retried with backoff until what the message carries
//! runs out; a permanent one (a 5xx answer, an address the server refuses) fails the message
//! and forgets its text. The text is never logged: it may carry a one-time code.

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::audit::Outcome;

use crate::mail::Mailer;
use crate::node::Node;
use crate::store::mail::{self, DueMail};
use crate::store::{AuditDraft, StoreError};

/// The longest wait between two attempts at one message.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs until `stop` (the node shuts down, or another process is on duty). Without
/// `[mail]`, messages stay queued (and are discarded when what they carry expires); the node
/// says so once at start.
pub async fn run(node: Arc<Node>, stop: tokio_util::sync::CancellationToken) {
    let mailer = match node.config.mail.as_ref().map(Mailer::from_config) {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            tracing::error!(error = %e, "the mail server settings cannot be used; no e-mail will be sent");
            None
        }
        None => {
            tracing::warn!(
                "no [mail] server configured: patients' one-time codes cannot be e-mailed"
            );
            None
        }
    };
    loop {
        if stop.is_cancelled() {
            break;
        }
        let wait = match round(&node, mailer.as_ref()).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "mail delivery failed; will retry");
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
            _ = node.mail_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One round: stale messages are discarded, every due one attempted; how long until the next.
async fn round(node: &Arc<Node>, mailer: Option<&Mailer>) -> Result<Duration, StoreError> {
    node.store
        .write(None, |ctx| mail::discard_stale(ctx))
        .await?;
    let Some(mailer) = mailer else {
        return Ok(Duration::from_secs(60));
    };
    let now = node.clock.now();
    let due = node.store.read(move |tx| mail::due(tx, now, 16)).await?;
    for m in due {
        let outcome = mailer.send(&m.recipient, &m.subject, &m.body).await;
        finish(node, &m, outcome).await?;
    }
    let next = node.store.read(mail::next_due).await?;
    let now = node.clock.now();
    Ok(match next {
        Some(t) => (t - now)
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(60)),
        None => Duration::from_secs(60),
    })
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF`].
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(6)).min(MAX_BACKOFF)
}

async fn finish(
    node: &Arc<Node>,
    m: &DueMail,
    outcome: Result<(), crate::mail::MailError>,
) -> Result<(), StoreError> {
    let id = m.id;
    let attempts = m.attempts;
    let draft = AuditDraft {
        actor: "node".into(),
        action: "mail.send".into(),
        entity: format!("mail/{id}"),
        source: String::new(),
    };
    let about = m.about.clone();
    match outcome {
        Ok(()) => {
            node.store
                .write(None, move |ctx| {
                    mail::sent(ctx, id)?;
                    ctx.audit(
                        &draft,
                        &draft.entity,
                        Outcome::Success,
                        &format!("sent ({about})"),
                    )
                })
                .await
        }
        Err(e) if e.is_permanent() => {
            let why = e.to_string();
            tracing::warn!(mail = %id, error = %why, "an e-mail was refused for good");
            node.store
                .write(None, move |ctx| {
                    mail::failed(ctx, id, &why)?;
                    ctx.audit(
                        &draft,
                        &draft.entity,
                        Outcome::Failure,
                        &format!("refused for good ({about}): {why}"),
                    )
                })
                .await
        }
        Err(e) => {
            let why = e.to_string();
            tracing::info!(mail = %id, error = %why, "an e-mail could not be sent yet; will retry");
            node.store
                .write(None, move |ctx| {
                    let next = ctx.now()
                        + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default();
                    mail::retry(ctx, id, next, &why)
                })
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}

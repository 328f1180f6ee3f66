//! The durable outbox of e-mail to patients: a message is queued in the same transaction as
//! what it tells (a one-time code with its request), and sent by the mail worker after the
//! commit, retried while the server cannot take it. Its text is cleared once it is sent, failed
//! for good, or discarded because what it carries (a code) ran out first.

use crate::store::sql::params;
use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Its id.
    pub id: uuid::Uuid,
    /// The address.
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// The plain text.
    pub body: String,
    /// What it is about, for the audit and the admins: `access-code/<request id>`.
    pub about: String,
    /// Not worth sending after this (a code that has expired).
    pub discard_after: Option<DateTime<Utc>>,
}

/// A message due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMail {
    /// Its id.
    pub id: uuid::Uuid,
    /// The address.
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// The plain text.
    pub body: String,
    /// What it is about.
    pub about: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// Where a message stands, as tests and admins read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailState {
    /// `queued`, `sent`, `failed` or `discarded`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Whether its text is still kept.
    pub body_kept: bool,
}

/// Queues a message, due at once.
pub fn queue(w: &WriteCtx<'_>, m: &OutgoingMail) -> Result<(), StoreError> {
    let now = w.now().timestamp_millis();
    w.conn.execute(
        "INSERT INTO mail_outbox (id, recipient, subject, body, about, state, attempts,
             next_attempt_at, discard_after, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?6)",
        params![
            m.id.to_string(),
            w.conn.seal(&m.recipient)?,
            w.conn.seal(&m.subject)?,
            w.conn.seal(&m.body)?,
            m.about,
            now,
            m.discard_after.map(|t| t.timestamp_millis()),
        ],
    )?;
    Ok(())
}

/// Discards queued messages whose content ran out at `now`; how many.
pub fn discard_stale(w: &WriteCtx<'_>) -> Result<usize, StoreError> {
    Ok(w.conn.execute(
        "UPDATE mail_outbox SET state = 'discarded', body = NULL
         WHERE state = 'queued' AND discard_after IS NOT NULL AND discard_after <= ?1",
        [w.now().timestamp_millis()],
    )?)
}

/// Up to `limit` queued messages due at `now`, the longest-due first.
pub fn due(tx: &Tx<'_>, now: DateTime<Utc>, limit: u32) -> Result<Vec<DueMail>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT id, recipient, subject, body, about, attempts FROM mail_outbox
         WHERE state = 'queued' AND next_attempt_at <= ?1 AND body IS NOT NULL
           AND (discard_after IS NULL OR discard_after > ?1)
         ORDER BY next_attempt_at, id LIMIT ?2",
    )?;
    let mut rows = st.query(params![now.timestamp_millis(), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        out.push(DueMail {
            id: id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("mail id {id}")))?,
            recipient: r.get(1)?,
            subject: r.get(2)?,
            body: r.get(3)?,
            about: r.get(4)?,
            attempts: r.get(5)?,
        });
    }
    Ok(out)
}

/// When the next queued message is due.
pub fn next_due(tx: &Tx<'_>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = tx.conn.query_row(
        "SELECT min(next_attempt_at) FROM mail_outbox WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )?;
    at.map(from_millis).transpose()
}

/// The server took the message: its text is forgotten.
pub fn sent(w: &WriteCtx<'_>, id: uuid::Uuid) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE mail_outbox SET state = 'sent', body = NULL, sent_at = ?2,
             attempts = attempts + 1, last_error = NULL
         WHERE id = ?1 AND state = 'queued'",
        params![id.to_string(), w.now().timestamp_millis()],
    )?;
    Ok(())
}

/// An attempt failed for a passing reason: try again at `next`.
pub fn retry(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    next: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
         WHERE id = ?1 AND state = 'queued'",
        params![id.to_string(), next.timestamp_millis(), error],
    )?;
    Ok(())
}

/// The server refused the message for good: its text is forgotten.
pub fn failed(w: &WriteCtx<'_>, id: uuid::Uuid, error: &str) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE mail_outbox SET state = 'failed', body = NULL, attempts = attempts + 1,
             last_error = ?2
         WHERE id = ?1 AND state = 'queued'",
        params![id.to_string(), error],
    )?;
    Ok(())
}

/// Where a message stands.
pub fn state(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<MailState>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT state, attempts, last_error, body IS NOT NULL FROM mail_outbox WHERE id = ?1",
    )?;
    let mut rows = st.query([id.to_string()])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some(MailState {
        state: r.get(0)?,
        attempts: r.get(1)?,
        last_error: r.get(2)?,
        body_kept: r.get(3)?,
    }))
}

/// The messages about `about`, oldest first (ids only).
pub fn about(tx: &Tx<'_>, about: &str) -> Result<Vec<uuid::Uuid>, StoreError> {
    let mut st = tx
        .conn
        .prepare_cached("SELECT id FROM mail_outbox WHERE about = ?1 ORDER BY created_at, id")?;
    let mut rows = st.query([about])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        out.push(
            id.parse()
                .map_err(|_| StoreError::Corrupt(format!("mail id {id}")))?,
        );
    }
    Ok(out)
}

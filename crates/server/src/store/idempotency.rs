//! The answers kept for `Idempotency-Key`s (the rule is `api::idempotency`'s).

use crate::store::sql::{OptionalExtension, params};

use crate::store::{StoreError, Tx, WriteCtx};

/// The first answer to a key.
#[derive(Debug, Clone)]
pub struct FirstAnswer {
    /// The request's fingerprint.
    pub fingerprint: Vec<u8>,
    /// The HTTP status it got.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

/// The answer kept for `actor`'s `key`, if any.
pub fn get(tx: &Tx<'_>, actor: &str, key: &str) -> Result<Option<FirstAnswer>, StoreError> {
    Ok(tx
        .conn
        .prepare_cached(
            "SELECT fingerprint, status, body FROM idempotency WHERE actor = ?1 AND key = ?2",
        )?
        .query_row(params![actor, key], |r| {
            Ok(FirstAnswer {
                fingerprint: r.get(0)?,
                status: r.get(1)?,
                body: r.get(2)?,
            })
        })
        .optional()?)
}

/// Keeps the first answer to `actor`'s `key`, stamped with the write's time.
pub fn put(
    w: &WriteCtx<'_>,
    actor: &str,
    key: &str,
    fingerprint: &[u8],
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    w.conn
        .prepare_cached(
            "INSERT INTO idempotency (actor, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            actor,
            key,
            fingerprint,
            status,
            w.conn.seal(body)?,
            w.now().timestamp_millis()
        ])?;
    Ok(())
}

/// Forgets answers older than `before`; returns how many.
pub fn prune(w: &WriteCtx<'_>, before: chrono::DateTime<chrono::Utc>) -> Result<usize, StoreError> {
    Ok(w.conn.execute(
        "DELETE FROM idempotency WHERE created_at < ?1",
        [before.timestamp_millis()],
    )?)
}

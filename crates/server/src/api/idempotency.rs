//! `Idempotency-Key`: a write repeated with the same key returns the first answer and
//! changes nothing. The key is scoped to the caller; reusing it for a different request is
//! refused. Only successful answers are kept (for a day): a refused write changed nothing, so
//! repeating it simply asks again.

use axum::http::StatusCode;
use carebridge_protocol::ProblemType;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::api::extract::IdempotencyKey;
use crate::error::ApiError;
use crate::store::{StoreError, WriteCtx, idempotency};

/// A fingerprint of a request: its route and its parsed body.
pub fn fingerprint<R: Serialize>(route: &str, request: &R) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(request).unwrap_or_default());
    h.finalize().to_vec()
}

/// Runs `f` inside a write job unless `key` was already answered for this actor.
pub fn once<T, F>(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &IdempotencyKey,
    fingerprint: Vec<u8>,
    status: StatusCode,
    f: F,
) -> Result<(StatusCode, T), ApiError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, ApiError>,
{
    let Some(k) = &key.0 else {
        return Ok((status, f(ctx)?));
    };
    let seen = idempotency::get(ctx, actor, k)?;
    if let Some(first) = seen {
        if first.fingerprint != fingerprint {
            return Err(ApiError::new(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            ));
        }
        ctx.set_detail(format!(
            "repeat of Idempotency-Key {k:?}: first answer returned, nothing changed"
        ));
        let value = serde_json::from_str(&first.body).map_err(StoreError::from)?;
        return Ok((StatusCode::from_u16(first.status).unwrap_or(status), value));
    }
    let value = f(ctx)?;
    let body = serde_json::to_string(&value).map_err(StoreError::from)?;
    idempotency::put(ctx, actor, k, &fingerprint, status.as_u16(), &body)?;
    Ok((status, value))
}

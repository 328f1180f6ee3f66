//! Request extractors that answer bad input with problem+json instead of axum's plain text.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::text::Clean;
use carebridge_protocol::{IDEMPOTENCY_KEY, KioskDeviceId, PractitionerId, ProblemType};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::session::hash_token;
use crate::store::AuditDraft;
use crate::store::sessions;
use crate::visibility::RecordKind;

/// A JSON request body: `application/json`, within the size limit, of the right shape, its
/// free text normalised to NFC and checked ([`Clean`]).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

fn is_json(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + Clean, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(ct) {
            return Err(ApiError::new(
                ProblemType::UnsupportedMediaType,
                format!(
                    "send the body as application/json (got {:?})",
                    if ct.is_empty() { "no Content-Type" } else { ct }
                ),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ProblemType::PayloadTooLarge,
                    "the request body is larger than the node accepts",
                )
            } else {
                ApiError::new(
                    ProblemType::MalformedBody,
                    format!("the body could not be read: {e}"),
                )
            }
        })?;
        // Every body is an object: serde would also read a struct from an array of its
        // fields in order, which the document does not allow and no client means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::new(
                ProblemType::Validation,
                "the body must be a JSON object, not a list",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let mut v: T = match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => v,
            Err(e) => {
                let (path, e) = (e.path().to_string(), e.into_inner());
                return Err(if e.classify() == serde_json::error::Category::Data {
                    ApiError::new(
                        ProblemType::Validation,
                        format!("the body does not have the expected fields: {e}"),
                    )
                } else if not_unicode(&e) {
                    ApiError::field(&path, NOT_UNICODE)
                } else {
                    ApiError::new(
                        ProblemType::MalformedBody,
                        format!("the body is not valid JSON: {e}"),
                    )
                });
            }
        };
        de.end().map_err(|e| {
            ApiError::new(
                ProblemType::MalformedBody,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        // Every body's free text is normalised and checked here, so that no handler can
        // forget to (protocol::text).
        v.clean().map_err(ApiError::fields)?;
        Ok(Self(v))
    }
}

const NOT_UNICODE: &str =
    "is not valid Unicode text (a lone surrogate such as \\ud800, or bytes that are not UTF-8)";

/// Whether serde_json refused a string that is not Unicode: a lone surrogate escape (which no
/// Rust `String` can hold) or bytes that are not UTF-8. serde_json has no public error code
/// for these, so its messages are matched; the node's API tests pin them.
fn not_unicode(e: &serde_json::Error) -> bool {
    let m = e.to_string();
    m.contains("surrogate") || m.contains("hex escape") || m.contains("unicode code point")
}

/// A path parameter; one that does not parse names no record, so it is a 404.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::new(ProblemType::NotFound, format!("no such record ({e})")))
    }
}

/// Query parameters.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| {
                ApiError::new(
                    ProblemType::Validation,
                    format!("invalid query parameters: {}", e.body_text()),
                )
            })
    }
}

/// The client's address, as text for the audit trail.
pub fn source_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The client's address.
#[derive(Debug, Clone)]
pub struct Source(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(source_of(parts)))
    }
}

/// The signed-in caller: a staff user or a kiosk device, from `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub viewer: Viewer,
    /// Their display name or the device's label.
    pub name: String,
    /// The SHA-256 of their token.
    pub session: [u8; 32],
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// Their address.
    pub source: String,
}

impl FromRequestParts<Arc<Node>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Self::authenticate(node, authorization, source_of(parts)).await
    }
}

impl Caller {
    /// Finds the live session of an `Authorization: Bearer <token>` header value.
    pub async fn authenticate(
        node: &Arc<Node>,
        authorization: Option<&str>,
        source: String,
    ) -> Result<Self, ApiError> {
        let token = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ProblemType::Unauthenticated,
                    "send Authorization: Bearer <token> (sign in at POST /api/v1/sessions)",
                )
            })?;
        let hash = hash_token(token);
        let now = node.clock.now();
        let info = node
            .store
            .read(move |c| sessions::lookup(c, &hash, now).map_err(ApiError::from))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ProblemType::Unauthenticated,
                    "the token is unknown, expired or revoked; sign in again",
                )
            })?;
        Ok(Self {
            viewer: info.viewer,
            name: info.name,
            session: hash,
            expires_at: info.expires_at,
            source,
        })
    }
}

impl Caller {
    /// `staff:<id>` or `kiosk:<id>`, for the audit trail and idempotency keys.
    pub fn actor(&self) -> String {
        match self.viewer {
            Viewer::Staff { id, .. } => format!("staff:{id}"),
            Viewer::Kiosk { id } => format!("kiosk:{id}"),
        }
    }

    /// An audit draft for an action of this caller.
    pub fn audit(&self, action: &str, entity: impl Into<String>) -> AuditDraft {
        AuditDraft {
            actor: self.actor(),
            action: action.to_owned(),
            entity: entity.into(),
            source: self.source.clone(),
        }
    }

    /// Passes a permission check's answer on, and puts a refusal on the audit trail as a
    /// failed `action` on `entity`: the trail shows who tried to reach patient data their
    /// role or device may not, not only who did.
    pub async fn audit_refusal<T>(
        &self,
        node: &Node,
        check: Result<T, ApiError>,
        action: &str,
        entity: impl Into<String>,
    ) -> Result<T, ApiError> {
        let refusal = match check {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // A job that fails at once: the writer audits the failure and hands the error back.
        match node
            .store
            .write(Some(self.audit(action, entity)), move |_| {
                Err::<(), _>(refusal)
            })
            .await
        {
            Err(e) => Err(e),
            Ok(()) => Err(ApiError::Internal("a refusal was not refused".into())),
        }
    }

    /// The staff user, if the caller is one with one of `roles`.
    pub fn staff(&self, roles: &[Role]) -> Result<(PractitionerId, Role), ApiError> {
        match self.viewer {
            Viewer::Staff { id, role } if roles.contains(&role) => Ok((id, role)),
            Viewer::Staff { role, .. } => Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                role.as_str()
            ))),
            Viewer::Kiosk { .. } => Err(ApiError::forbidden("a kiosk may not do this")),
        }
    }

    /// Refuses a caller who may see no record of `kind` (the visibility policy's answer).
    pub fn may_see(&self, kind: RecordKind) -> Result<(), ApiError> {
        if crate::visibility::may_see_any(&self.viewer, kind) {
            return Ok(());
        }
        Err(match self.viewer {
            Viewer::Staff { role, .. } => {
                ApiError::forbidden(format!("the {} role may not do this", role.as_str()))
            }
            Viewer::Kiosk { .. } => ApiError::forbidden("a kiosk may not do this"),
        })
    }

    /// The kiosk device, if the caller is one.
    pub fn kiosk(&self) -> Option<KioskDeviceId> {
        match self.viewer {
            Viewer::Kiosk { id } => Some(id),
            Viewer::Staff { .. } => None,
        }
    }
}

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters).
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(Self(None));
        };
        let s = v.to_str().ok().and_then(idempotency_key).ok_or_else(|| {
            ApiError::new(
                ProblemType::Validation,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
        Ok(Self(Some(s)))
    }
}

/// The key in an `Idempotency-Key` value: 1–255 visible ASCII characters other than `"`,
/// bare or quoted (a structured-field string); `IDEMPOTENCY_KEY_PATTERN` says the same.
fn idempotency_key(value: &str) -> Option<String> {
    let key = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let visible = |b: u8| (b'!'..=b'~').contains(&b) && b != b'"';
    ((1..=255).contains(&key.len()) && key.bytes().all(visible)).then(|| key.to_owned())
}

/// What [`idempotency_key`] accepts, as an ECMA-262 pattern for the OpenAPI document.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r#"^(?:[!#-~]{1,255}|"[!#-~]{1,255}")$"#;

/// The optional `If-Match` header: the version the client last read (`"3"` or `3`).
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        // `3`, `"3"`, `W/"3"`: nothing else, so that the document's pattern is the whole rule.
        let s = v.to_str().unwrap_or("");
        let s = s.strip_prefix("W/").unwrap_or(s);
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        let digits = (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        digits
            .then(|| s.parse().ok())
            .flatten()
            .map(|n| Self(Some(n)))
            .ok_or_else(|| {
                ApiError::new(
                    ProblemType::Validation,
                    "If-Match must be the record's version, e.g. \"3\"",
                )
            })
    }
}

impl IfMatch {
    /// Checks the header against the record's current version.
    pub fn check<T: serde::Serialize>(&self, current: &T, version: i64) -> Result<(), ApiError> {
        match self.0 {
            Some(v) if v != version => Err(ApiError::stale(current, version)),
            _ => Ok(()),
        }
    }

    /// Like [`IfMatch::check`], and the header is required.
    pub fn require<T: serde::Serialize>(&self, current: &T, version: i64) -> Result<(), ApiError> {
        if self.0.is_none() {
            return Err(ApiError::new(
                ProblemType::PreconditionRequired,
                format!("send If-Match: \"{version}\" with the version you last read"),
            ));
        }
        self.check(current, version)
    }
}

/// How much of a refused body the node still reads, and for how long, before it answers.
const DISCARD_MAX: u64 = 64 << 20;
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body longer than its route accepts.
#[derive(Debug, Clone, Copy)]
pub struct BodyTooLarge;

/// Reads a whole request body of at most `limit` bytes. A longer one is refused, after the
/// rest has been read and thrown away ([`discard`]).
pub async fn body_within(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyTooLarge> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(BodyTooLarge);
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if kept.len() + data.len() > limit {
            discard(body).await;
            return Err(BodyTooLarge);
        }
        kept.extend_from_slice(&data);
    }
    Ok(kept.freeze())
}

/// Reads and drops what is left of a body the node refuses, up to [`DISCARD_MAX`] bytes or
/// [`DISCARD_TIME`]. A node that answered and closed while the client was still sending
/// would have the client's next write fail, and many clients then report the broken pipe
/// instead of the answer; past the bounds, a client that keeps sending gets exactly that.
pub async fn discard(body: axum::body::Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DISCARD_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

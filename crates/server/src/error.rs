//! The node's error: what a handler or a write job can fail with, and how it is answered.
//!
//! Each variant maps to one RFC 9457 problem. The body carries the public part only; an
//! internal error's cause is logged, never sent.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::problem::FieldError;
use carebridge_protocol::{PROBLEM_JSON, Problem, ProblemType};

use crate::booking::BookingError;
use crate::federation::error::FederationError;
use crate::store::StoreError;
use crate::throttle::Busy;

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A problem to answer as it is (the common case: a refusal the client can act on).
    #[error("{}", .0.detail.as_deref().unwrap_or(.0.title.as_str()))]
    Problem(Box<Problem>),
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts; retry in {0} s")]
    Throttled(u64),
    /// Too many requests of a costly kind under way; retry after this many seconds.
    #[error("busy; retry in {0} s")]
    Busy(u64),
    /// The database failed.
    #[error("internal error")]
    Store(#[from] StoreError),
    /// Anything else that is the node's fault.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A problem of `code` with a detail for the user.
    pub fn new(code: ProblemType, detail: impl Into<String>) -> Self {
        Self::Problem(Box::new(Problem::new(code, Some(detail.into()))))
    }

    /// A validation problem listing the wrong fields.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(ProblemType::Validation, Some(detail));
        p.errors = Some(errors);
        Self::Problem(Box::new(p))
    }

    /// A validation problem about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// No such record (or not one the caller may see: the two are answered alike).
    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemType::NotFound, format!("no such {what}"))
    }

    /// The caller's role or device may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Forbidden, detail)
    }

    /// A precondition-failed problem carrying the record's current state.
    pub fn stale<T: serde::Serialize>(current: &T, version: i64) -> Self {
        let mut p = Problem::new(
            ProblemType::PreconditionFailed,
            Some(format!(
                "the record is now at version {version}; re-read it and apply your change again"
            )),
        );
        p.current = serde_json::to_value(current).ok();
        Self::Problem(Box::new(p))
    }

    /// The public problem body.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Problem(p) => (**p).clone(),
            Self::Throttled(secs) => Problem::new(
                ProblemType::TooManyRequests,
                Some(format!(
                    "too many failed attempts; try again in {secs} seconds"
                )),
            ),
            Self::Busy(secs) => Problem::new(
                ProblemType::Unavailable,
                Some(format!(
                    "too many sign-ins at once; try again in {secs} seconds"
                )),
            ),
            Self::Store(StoreError::WriterGone) => Problem::new(
                ProblemType::Unavailable,
                Some("the node is shutting down".to_owned()),
            ),
            Self::Store(_) | Self::Internal(_) => Problem::new(
                ProblemType::Internal,
                Some("the request failed on the node; nothing was changed".to_owned()),
            ),
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Refused(p) => Self::Problem(p),
            BookingError::Stale(current) => Self::stale(&current, current.version),
            BookingError::Store(e) => Self::Store(e),
        }
    }
}

impl From<Busy> for ApiError {
    fn from(Busy(secs): Busy) -> Self {
        Self::Busy(secs)
    }
}

impl From<FederationError> for ApiError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::NotFound(what) => Self::not_found(what),
            FederationError::Invalid { field, message } => Self::field(field, message),
            FederationError::Refused { code, detail } => Self::new(code, detail),
            FederationError::Store(e) => Self::Store(e),
            FederationError::Internal(e) => Self::Internal(e),
        }
    }
}

/// Answers a problem as `application/problem+json`.
pub fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = self.problem();
        let mut res = problem_response(&p);
        if let Self::Throttled(secs) | Self::Busy(secs) = &self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, Self::Store(_) | Self::Internal(_)) {
            // The cause stays on the node: logged by the trace layer, never sent.
            res.extensions_mut()
                .insert(Arc::new(InternalCause(self.to_string_cause())));
        }
        res
    }
}

/// The private cause of an internal error, for the log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl ApiError {
    fn to_string_cause(&self) -> String {
        match self {
            Self::Store(e) => e.to_string(),
            Self::Internal(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

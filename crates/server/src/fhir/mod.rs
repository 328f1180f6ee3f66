//! `/fhir/R4`: the node's records as HL7 FHIR R4, read and searched with the same sign-in,
//! visibility policy and audit as `/api/v1`.
//!
//! Errors here are OperationOutcomes: the handlers fail with the node's [`ApiError`] or a
//! [`FhirError`], and [`outcome_for_every_error`] turns every problem+json answer under this
//! prefix (the extractors' included) into an OperationOutcome with the same status.

pub(crate) mod everything;
pub mod export;
pub mod granted;
pub mod import;
mod search;
mod transaction;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use carebridge_fhir::search::SearchError;
use carebridge_fhir::{FHIR_JSON, OperationOutcome, Resource};
use carebridge_protocol::{PROBLEM_JSON, Problem, ProblemType};

use crate::error::ApiError;
use crate::node::Node;
use crate::store::StoreError;

/// The media type of every answer, with its charset.
const FHIR_JSON_UTF8: &str = "application/fhir+json; charset=utf-8";

/// The `/fhir/R4` routes, to nest under that prefix.
pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/", axum::routing::post(transaction::post_bundle))
        .route("/metadata", get(metadata))
        .route("/Patient/{id}/$everything", get(everything::everything))
        .route("/$export", get(export::system))
        .route("/Patient/$export", get(export::patients_level))
        .route("/Patient/{id}/$export", get(export::one_patient))
        .route(
            "/$export-status/{id}",
            get(export::status).delete(export::cancel),
        )
        .route("/$export-file/{id}/{name}", get(export::file))
        .route("/{resource_type}", get(search::search))
        .route("/{resource_type}/{id}", get(search::read))
        .fallback(|| async {
            FhirError::outcome(
                StatusCode::NOT_FOUND,
                OperationOutcome::error("not-found", "no such FHIR route; see /fhir/R4/metadata"),
            )
        })
        .method_not_allowed_fallback(|| async {
            FhirError::outcome(
                StatusCode::METHOD_NOT_ALLOWED,
                OperationOutcome::error(
                    "not-supported",
                    "this FHIR route does not accept that method; see /fhir/R4/metadata",
                ),
            )
        })
        .layer(middleware::from_fn(outcome_for_every_error))
}

/// Why a FHIR request failed.
#[derive(Debug)]
pub enum FhirError {
    /// As the rest of the API would say it (turned into an OperationOutcome on the way out).
    Api(ApiError),
    /// Said in FHIR's terms.
    Outcome(StatusCode, OperationOutcome),
}

impl FhirError {
    fn outcome(status: StatusCode, o: OperationOutcome) -> Self {
        Self::Outcome(status, o)
    }

    /// A 400 with FHIR's `invalid`.
    pub fn invalid(diagnostics: impl Into<String>) -> Self {
        Self::outcome(
            StatusCode::BAD_REQUEST,
            OperationOutcome::error("invalid", diagnostics),
        )
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl From<SearchError> for FhirError {
    fn from(e: SearchError) -> Self {
        let code = match e {
            SearchError::Unsupported(_) => "not-supported",
            SearchError::Invalid { .. } => "invalid",
        };
        Self::outcome(
            StatusCode::BAD_REQUEST,
            OperationOutcome::error(code, e.to_string()),
        )
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Outcome(status, o) => fhir_json(status, &Resource::OperationOutcome(o)),
        }
    }
}

/// A FHIR JSON answer.
pub fn fhir_json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(FHIR_JSON_UTF8),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("serialising a FHIR answer: {e}")).into_response(),
    }
}

/// The base URL of this node's FHIR API as the caller reached it: the scheme the node serves
/// and the `Host` the caller sent (when it is a plain host name or address), so that links
/// in bundles work through whatever name the caller used.
pub fn base_url(node: &Node, headers: &HeaderMap) -> String {
    let scheme = if node.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let plain = |h: &&str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(plain)
        .map_or_else(|| node.config.listen.to_string(), str::to_owned);
    format!("{scheme}://{host}/fhir/R4")
}

/// `GET /fhir/R4/metadata`, without sign-in: FHIR clients read what a server offers before they
/// authenticate. It names the node and what is served, never a record.
async fn metadata(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let base = base_url(&node, &headers);
    let date = carebridge_fhir::map::instant(node.clock.now());
    let statement = carebridge_fhir::capability::capability_statement(
        node.name(),
        env!("CARGO_PKG_VERSION"),
        &base,
        &date,
    );
    fhir_json(StatusCode::OK, &statement)
}

/// FHIR's issue type for one of the node's problem types.
fn issue_code(t: ProblemType) -> &'static str {
    match t {
        ProblemType::NotFound => "not-found",
        ProblemType::Unauthenticated => "login",
        ProblemType::Forbidden => "forbidden",
        ProblemType::Validation | ProblemType::MalformedBody => "invalid",
        ProblemType::MethodNotAllowed | ProblemType::UnsupportedMediaType => "not-supported",
        ProblemType::Conflict | ProblemType::PreconditionFailed => "conflict",
        ProblemType::PayloadTooLarge => "too-costly",
        ProblemType::TooManyRequests => "throttled",
        ProblemType::Unavailable => "transient",
        _ => "exception",
    }
}

/// Turns any problem+json answer into an OperationOutcome with the same status and headers
/// (`WWW-Authenticate`, `Retry-After`); leaves every other answer alone.
async fn outcome_for_every_error(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Problem bodies are small and made by the node itself.
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let outcome = match serde_json::from_slice::<Problem>(&bytes) {
        Ok(p) => {
            let mut o = OperationOutcome::error(
                issue_code(p.code),
                p.detail.clone().unwrap_or_else(|| p.title.clone()),
            );
            for f in p.errors.iter().flatten() {
                o.issue.push(carebridge_fhir::resources::Issue {
                    severity: "error".into(),
                    code: "invalid".into(),
                    diagnostics: Some(f.message.clone()),
                    expression: vec![f.field.clone()],
                });
            }
            o
        }
        Err(_) => OperationOutcome::error("exception", "the request failed"),
    };
    let body = serde_json::to_vec(&Resource::OperationOutcome(outcome)).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FHIR_JSON_UTF8),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Whether a response is FHIR JSON (which the API's own error layer leaves alone).
pub fn is_fhir_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(FHIR_JSON.as_bytes()))
}

//! `GET /federation/v1/fhir/{type}`: where another hospital reads a patient's record under the
//! patient's grant.
//!
//! The request is checked as the inbox checks its own — the peer's API key, its source address,
//! an RFC 9421 signature by that peer's node key within the time window, a nonce used once —
//! and its signature also covers the query, the `Authorization: Bearer` token and the
//! `carebridge-practitioner` header naming the doctor. The token must be one this node granted
//! to that peer for that doctor, not revoked, within its period, with a scope that reads the
//! type asked for. Revocation takes effect here whether or not the peer has heard of it. A
//! refusal stores nothing, is audited (counted, as the inbox's are) and says no more than
//! which check failed; an allowed read is recorded and audited under the grant's id.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::ProblemType;
use carebridge_protocol::federation::access::{ScopedResource, token_hash};
use carebridge_protocol::federation::request::{
    PRACTITIONER_HEADER, ReadSignature, ReadTarget, RequestError,
};

use crate::api::extract::Source;
use crate::api::inbox::{header_text, identify, refused};
use crate::federation::access::{GrantRefusal, honour};
use crate::federation::error::FederationError;
use crate::fhir::{fhir_json, granted};
use crate::node::Node;
use crate::store::AuditDraft;
use crate::store::federation::access as stored;
use crate::store::federation::received as nonces;

/// Where the read API is served, before the resource type.
pub const READ_PREFIX: &str = "/federation/v1/fhir/";

fn refuse(code: ProblemType, detail: impl Into<String>) -> FederationError {
    FederationError::refused(code, detail)
}

/// Reads one type of a patient's record under a grant: a searchset Bundle of the grant's
/// patient's resources of that type (`Patient`, `DiagnosticReport`: signed reports only,
/// `Appointment`).
#[utoipa::path(get, path = "/federation/v1/fhir/{type}", tag = "federation",
    params(("type" = String, Path, description = "Patient, DiagnosticReport or Appointment"),
           ("carebridge-api-key" = String, Header, description = "The API key this node gave the reader"),
           ("authorization" = String, Header, description = "`Bearer <token>` from `access-granted`"),
           ("carebridge-practitioner" = String, Header, description = "The reading doctor's id at the reading node (the grant's)"),
           ("signature-input" = String, Header, description = "RFC 9421 parameters, label `cb`, covering @method @path @query @authority authorization carebridge-practitioner"),
           ("signature" = String, Header, description = "RFC 9421 Ed25519 signature by the reading node")),
    responses((status = 200, description = "A FHIR searchset Bundle", content_type = "application/fhir+json"),
              (status = 401, description = "No token, or not one this node issued", body = carebridge_protocol::Problem, content_type = "application/problem+json"),
              (status = 403, description = "The grant does not allow this read (another node or doctor, revoked, expired, out of scope)", body = carebridge_protocol::Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many refused requests from this address; retry after `Retry-After`", body = carebridge_protocol::Problem, content_type = "application/problem+json")))]
pub async fn read_granted(
    State(node): State<Arc<Node>>,
    Source(source): Source,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ip: IpAddr = source.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let draft = AuditDraft {
        actor: "peer:unknown".into(),
        action: "access.read".into(),
        entity: String::new(),
        source: source.clone(),
    };
    if let Some(secs) = node.inbox_refusals.limited(ip) {
        let e = refuse(
            ProblemType::TooManyRequests,
            format!("too many refused requests from this address; retry in {secs} s"),
        );
        return refused(&node, draft, ip, e).await;
    }
    let (peer, sig) = match identify(&node, &headers, ip, ReadSignature::read_of_read).await {
        Ok(ok) => ok,
        Err(e) => return refused(&node, draft, ip, e).await,
    };
    let draft = AuditDraft {
        actor: format!("peer:{}", peer.name),
        ..draft
    };
    match checked(
        &node,
        &headers,
        &peer,
        &sig,
        &resource_type,
        query.as_deref(),
    )
    .await
    {
        Ok((grant, resource)) => {
            let draft = AuditDraft {
                entity: format!("grant/{}", grant.id),
                ..draft
            };
            match granted::read(&node, &grant, resource, draft).await {
                Ok(resources) => {
                    let bundle = carebridge_fhir::bundle::whole_record(
                        &crate::fhir::base_url(&node, &headers),
                        uuid::Uuid::new_v4().to_string(),
                        carebridge_fhir::map::instant(node.clock.now()),
                        resources,
                    );
                    fhir_json(StatusCode::OK, &carebridge_fhir::Resource::Bundle(bundle))
                }
                Err(e) => e.into_response(),
            }
        }
        Err(e) => refused(&node, draft, ip, e).await,
    }
}

/// Every check after the peer is known: the signature, the nonce, the grant.
async fn checked(
    node: &Arc<Node>,
    headers: &HeaderMap,
    peer: &crate::federation::peer::Peer,
    sig: &ReadSignature,
    resource_type: &str,
    query: Option<&str>,
) -> Result<(stored::Grant, ScopedResource), FederationError> {
    let authorization = header_text(headers, "authorization").unwrap_or_default();
    let practitioner = header_text(headers, PRACTITIONER_HEADER).unwrap_or_default();
    let path = format!("{READ_PREFIX}{resource_type}");
    let target = ReadTarget {
        path: &path,
        query: query.unwrap_or_default(),
        authorization,
        practitioner,
    };
    sig.verify_read(
        &target,
        header_text(headers, "host").unwrap_or_default(),
        &peer.signing_key,
        node.clock.now(),
    )
    .map_err(|e| match e {
        RequestError::OutsideWindow(_) => refuse(ProblemType::SignatureExpired, e.to_string()),
        RequestError::Malformed(m) => refuse(ProblemType::BadSignature, m),
        RequestError::Digest(_) | RequestError::BadSignature => {
            refuse(ProblemType::BadSignature, e.to_string())
        }
    })?;
    let resource = ScopedResource::parse(resource_type).ok_or_else(|| {
        refuse(
            ProblemType::NotFound,
            format!("{resource_type:?} is not a type another hospital may read"),
        )
    })?;
    if !target.query.is_empty() {
        return Err(refuse(
            ProblemType::Validation,
            "a read under a grant takes no parameters: it returns the grant's patient's resources",
        ));
    }
    let token = authorization
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                ProblemType::Unauthenticated,
                "send the grant's token as `Authorization: Bearer …`",
            )
        })?;
    let hash = token_hash(token);
    let nonce = sig.nonce().to_owned();
    let name = peer.name.clone();
    let grant = node
        .store
        .write(None, move |ctx| {
            let now = ctx.now();
            nonces::forget_nonces(
                ctx,
                now - chrono::Duration::seconds(
                    2 * carebridge_protocol::federation::request::WINDOW_SECONDS,
                ),
            )?;
            if !nonces::record_nonce(ctx, &name, &nonce)? {
                return Err(refuse(
                    ProblemType::ReplayedRequest,
                    format!("nonce {nonce:?} from {name} was already used"),
                ));
            }
            Ok::<_, FederationError>(stored::grant_by_token(ctx, &hash)?)
        })
        .await?;
    let grant =
        honour(grant, &peer.name, practitioner, resource, node.clock.now()).map_err(|r| {
            let code = match r {
                GrantRefusal::UnknownToken => ProblemType::Unauthenticated,
                _ => ProblemType::Forbidden,
            };
            refuse(code, r.to_string())
        })?;
    Ok((grant, resource))
}

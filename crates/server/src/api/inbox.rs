//! `POST /federation/v1/inbox`: where peers deliver envelopes.
//!
//! Every check runs before anything is stored, in this order: API key (which peer), source
//! address, signer, time window, content digest, signature, nonce, envelope (shape, source,
//! destination, type allowed), AES-GCM tag, checksum, payload. A refusal is answered with its
//! own problem and status, stores nothing, and is audited (`federation.refused`), which is how
//! the node's admins see it. An accepted envelope is stored once per envelope id, encrypted at
//! rest (the database is), under `<type>-<source>-<timestamp>`, and answered with a receipt
//! signed by this node; a repeat of the same envelope gets the same receipt.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use carebridge_protocol::ProblemType;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::{Envelope, EnvelopeError, MessageType};
use carebridge_protocol::federation::payload::{
    AdminUpdateAck, AdminUpdateMessage, MedicalReports, ReceivedReports,
};
use carebridge_protocol::federation::request::{
    API_KEY_HEADER, INBOX_PATH, ReadSignature, Receipt, RequestError, WINDOW_SECONDS,
};
use chrono::{DateTime, Utc};

use crate::api::extract::Source;
use crate::error::ApiError;
use crate::federation::error::FederationError;
use crate::federation::peer::Peer;
use crate::federation::{received, updates};
use crate::node::Node;
use crate::store::federation::peers;
use crate::store::federation::received::{self as stored, Accepted};
use crate::store::{AuditDraft, StoreError, WriteCtx};

fn refuse(code: ProblemType, detail: impl Into<String>) -> FederationError {
    FederationError::refused(code, detail)
}

/// Checks a request up to (not including) the nonce, reading only peers.
async fn authenticate(
    node: &Arc<Node>,
    headers: &HeaderMap,
    source: IpAddr,
    body: &[u8],
) -> Result<(Peer, ReadSignature), FederationError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = text(API_KEY_HEADER)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            refuse(
                ProblemType::UnknownApiKey,
                format!("send the {API_KEY_HEADER} header this node gave you"),
            )
        })?
        .to_owned();
    let peer = node
        .store
        .read(move |tx| peers::by_api_key(tx, &key))
        .await?
        .ok_or_else(|| {
            refuse(
                ProblemType::UnknownApiKey,
                "the API key is not one this node gave any peer",
            )
        })?;
    if !peer.allowed_sources.iter().any(|r| r.contains(source)) {
        return Err(refuse(
            ProblemType::SourceNotAllowed,
            format!("{} may not send from {source}", peer.name),
        ));
    }
    let sig = ReadSignature::read(text("signature-input"), text("signature"))
        .map_err(|e| refuse(ProblemType::BadSignature, e.to_string()))?;
    if sig.params.keyid != peer.name {
        return Err(refuse(
            ProblemType::UnknownSigner,
            format!(
                "the request is signed as {:?}, but the API key is {}'s",
                sig.params.keyid, peer.name
            ),
        ));
    }
    let authority = text("host").unwrap_or_default();
    sig.verify(
        INBOX_PATH,
        authority,
        text("content-digest"),
        body,
        &peer.signing_key,
        node.clock.now(),
    )
    .map_err(|e| match e {
        RequestError::Malformed(m) => refuse(ProblemType::BadSignature, m),
        RequestError::OutsideWindow(_) => refuse(ProblemType::SignatureExpired, e.to_string()),
        RequestError::Digest(_) => refuse(ProblemType::DigestMismatch, e.to_string()),
        RequestError::BadSignature => refuse(ProblemType::BadSignature, e.to_string()),
    })?;
    Ok((peer, sig))
}

/// Opens and checks the envelope for `peer`; the payload's plaintext.
fn open(node: &Node, peer: &Peer, body: &[u8]) -> Result<(Envelope, Vec<u8>), FederationError> {
    let env =
        Envelope::parse(body).map_err(|e| refuse(ProblemType::MalformedEnvelope, e.to_string()))?;
    if env.header.source != peer.name {
        return Err(refuse(
            ProblemType::UnknownSigner,
            format!(
                "the envelope says it is from {}, but the request is {}'s",
                env.header.source, peer.name
            ),
        ));
    }
    if !peer.allowed_types.contains(&env.header.message_type) {
        return Err(refuse(
            ProblemType::MessageTypeNotAllowed,
            format!(
                "{} may not send {} messages to this node",
                peer.name,
                env.header.message_type.as_str()
            ),
        ));
    }
    let plaintext = env
        .open(node.name(), &node.agreement_key, &peer.agreement_key)
        .map_err(|e| {
            let code = match e {
                EnvelopeError::Malformed(_) | EnvelopeError::Version(_) => {
                    ProblemType::MalformedEnvelope
                }
                EnvelopeError::WrongDestination(_) => ProblemType::WrongDestination,
                EnvelopeError::TagMismatch => ProblemType::EnvelopeTagMismatch,
                EnvelopeError::ChecksumMismatch => ProblemType::ChecksumMismatch,
            };
            refuse(code, e.to_string())
        })?;
    Ok((env, plaintext))
}

/// `<type>-<source>-<timestamp>`, to the millisecond.
fn stored_name(t: MessageType, source: &str, at: DateTime<Utc>) -> String {
    format!("{}-{source}-{}", t.as_str(), at.format("%Y%m%dT%H%M%S%3fZ"))
}

/// Receives an envelope from a peer.
pub async fn receive(
    State(node): State<Arc<Node>>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let draft = AuditDraft {
        actor: "peer:unknown".into(),
        action: "federation.receive".into(),
        entity: String::new(),
        source: source.clone(),
    };
    let ip: IpAddr = source.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let checked = match authenticate(&node, &headers, ip, &body).await {
        Ok(ok) => Ok(ok),
        Err(e) => Err((draft.clone(), e)),
    };
    let (peer, sig) = match checked {
        Ok(ok) => ok,
        Err((draft, e)) => return refused(&node, draft, e).await,
    };
    let draft = AuditDraft {
        actor: format!("peer:{}", peer.name),
        ..draft
    };
    let opened = {
        let node = node.clone();
        let peer = peer.clone();
        let body = body.clone();
        tokio::task::spawn_blocking(move || open(&node, &peer, &body)).await
    };
    let (env, plaintext) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return refused(&node, draft, e).await,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    let nonce = sig.nonce().to_owned();
    let n = node.clone();
    let from = source.clone();
    let result = node
        .store
        .write(None, move |ctx| {
            store(ctx, &n, &peer, &from, &nonce, &env, &plaintext)
        })
        .await;
    match result {
        Ok((status, receipt)) => (status, axum::Json(receipt)).into_response(),
        Err(e) => refused(&node, draft, e).await,
    }
}

/// Audits a refusal (its own job: the refused request stores nothing else) and answers it.
async fn refused(node: &Arc<Node>, mut draft: AuditDraft, e: FederationError) -> Response {
    draft.action = "federation.refused".into();
    let code = e.code();
    let detail = format!("{}: {e}", code.slug());
    let audited = node
        .store
        .write(Some(draft), move |_ctx| {
            Err::<(), _>(FederationError::refused(code, detail))
        })
        .await;
    if let Err(FederationError::Store(s)) = audited {
        tracing::error!(error = %s, "a federation refusal could not be audited");
    }
    tracing::warn!(refusal = %e, "federation request refused");
    ApiError::from(e).into_response()
}

/// Stores an accepted envelope once and answers with the receipt.
fn store(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    source: &str,
    nonce: &str,
    env: &Envelope,
    plaintext: &[u8],
) -> Result<(StatusCode, Receipt), FederationError> {
    let now = ctx.now();
    stored::forget_nonces(ctx, now - chrono::Duration::seconds(2 * WINDOW_SECONDS))?;
    let fresh = stored::record_nonce(ctx, &peer.name, nonce)?;
    if !fresh {
        return Err(refuse(
            ProblemType::ReplayedRequest,
            format!("nonce {nonce:?} from {} was already used", peer.name),
        ));
    }
    let envelope_id = env.header.id;
    let seen = stored::receipt_for(ctx, &peer.name, envelope_id)?;
    if let Some(receipt) = seen {
        // The sender did not get the first answer: the same receipt, nothing stored twice.
        ctx.audit(
            &AuditDraft {
                actor: format!("peer:{}", peer.name),
                action: "federation.repeat".into(),
                entity: format!("envelope/{envelope_id}"),
                source: source.to_owned(),
            },
            &format!("envelope/{envelope_id}"),
            carebridge_protocol::audit::Outcome::Success,
            "already stored; the first receipt was returned",
        )?;
        return Ok((
            StatusCode::OK,
            serde_json::from_str(&receipt).map_err(StoreError::from)?,
        ));
    }
    let t = env.header.message_type;
    let mut at = now;
    let mut name = stored_name(t, &peer.name, at);
    while stored::name_taken(ctx, &name)? {
        at += chrono::Duration::milliseconds(1);
        name = stored_name(t, &peer.name, at);
    }
    let receipt = Receipt::sign(
        env.header.id,
        node.name(),
        &peer.name,
        &name,
        now,
        &node.signing_key,
    );
    stored::insert(
        ctx,
        &Accepted {
            name: &name,
            envelope_id,
            source: &peer.name,
            message_type: t,
            payload: plaintext,
            receipt: &serde_json::to_string(&receipt).map_err(StoreError::from)?,
        },
    )?;
    let unreadable = |e: serde_json::Error| {
        refuse(
            ProblemType::UnreadablePayload,
            format!("not a {} message: {e}", t.as_str()),
        )
    };
    let detail = match t {
        MessageType::MedicalReports => {
            let content: MedicalReports = serde_json::from_slice(plaintext).map_err(unreadable)?;
            let verified = content
                .reports
                .iter()
                .all(|r| r.signature_verifies(&peer.signing_key));
            let detail = format!(
                "{} reports about {} (signatures {})",
                content.reports.len(),
                content.patient.global_id,
                if verified { "verified" } else { "NOT verified" }
            );
            let record = ReceivedReports {
                name: name.clone(),
                source: peer.name.clone(),
                received_at: now,
                signatures_verified: verified,
                content,
            };
            ctx.emit(EventKind::ReceivedReports, received::audience(), &record)?;
            detail
        }
        MessageType::AdminUpdate => {
            let m: AdminUpdateMessage = serde_json::from_slice(plaintext).map_err(unreadable)?;
            updates::receive(ctx, &peer.name, &m)?;
            format!("admin update {:?} for {}", m.title, m.audience.as_str())
        }
        MessageType::AdminUpdateAck => {
            let m: AdminUpdateAck = serde_json::from_slice(plaintext).map_err(unreadable)?;
            updates::receive_ack(ctx, &peer.name, &m)?;
            format!(
                "acknowledgement of update {} by {}",
                m.update_id, m.acknowledged_by
            )
        }
    };
    ctx.audit(
        &AuditDraft {
            actor: format!("peer:{}", peer.name),
            action: "federation.receive".into(),
            entity: format!("received/{name}"),
            source: source.to_owned(),
        },
        &format!("received/{name}"),
        carebridge_protocol::audit::Outcome::Success,
        &detail,
    )?;
    Ok((StatusCode::CREATED, receipt))
}

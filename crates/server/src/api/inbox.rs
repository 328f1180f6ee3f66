//! `POST /federation/v1/inbox`: where peers deliver envelopes.
//!
//! Every check runs before anything is stored, in this order: the source's allowance of
//! refusals, API key (which peer), source address, signer, then (only now is the body read)
//! time window, content digest, signature, nonce, envelope (shape, source, destination, type
//! allowed), AES-GCM tag, checksum, payload. A refusal is answered with its own problem and
//! status, stores nothing, and is audited (`federation.refused`), which is how the node's
//! admins see it: the first of each source and code in a minute at once, the rest as one
//! counted entry (`federation::refusals`), so that a flood can neither fill the disk nor
//! queue the writer ahead of bookings. A source refused too often is answered 429 without a
//! look at its request. An accepted envelope is stored once per envelope id, encrypted at
//! rest (the database is), under `<type>-<source>-<timestamp>`, and answered with a receipt
//! signed by this node; a repeat of the same envelope gets the same receipt.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::{
    Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, MessageType,
};
use carebridge_protocol::federation::payload::{
    AdminUpdateAck, AdminUpdateMessage, MedicalReports, ReceivedReports,
};
use carebridge_protocol::federation::request::{
    API_KEY_HEADER, INBOX_PATH, ReadSignature, Receipt, RequestError, WINDOW_SECONDS,
};
use carebridge_protocol::{Problem, ProblemType};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;

use crate::api::extract::Source;
use crate::error::ApiError;
use crate::federation::error::FederationError;
use crate::federation::peer::Peer;
use crate::federation::refusals::Audit;
use crate::federation::{access, received, transfer, updates};
use crate::node::Node;
use crate::store::federation::peers;
use crate::store::federation::received::{self as stored, Accepted};
use crate::store::{AuditDraft, StoreError, WriteCtx};

fn refuse(code: ProblemType, detail: impl Into<String>) -> FederationError {
    FederationError::refused(code, detail)
}

/// How a request's signature headers are read: an inbox request's, or a federation read's.
pub(crate) type SignatureReader =
    fn(Option<&str>, Option<&str>) -> Result<ReadSignature, RequestError>;

/// Who sends, from the headers alone: the peer its API key names, allowed at `source`, and the
/// request's signature parameters naming that peer. Nothing of the body has been read.
pub(crate) async fn identify(
    node: &Arc<Node>,
    headers: &HeaderMap,
    source: IpAddr,
    read_signature: SignatureReader,
) -> Result<(Peer, ReadSignature), FederationError> {
    let key = header_text(headers, API_KEY_HEADER)
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
    let sig = read_signature(
        header_text(headers, "signature-input"),
        header_text(headers, "signature"),
    )
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
    if let Some(length) = header_text(headers, "content-length").and_then(|v| v.parse::<u64>().ok())
        && length > MAX_ENVELOPE_BYTES as u64
    {
        return Err(too_large());
    }
    Ok((peer, sig))
}

pub(crate) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn too_large() -> FederationError {
    refuse(
        ProblemType::PayloadTooLarge,
        format!("an envelope is at most {MAX_ENVELOPE_BYTES} bytes"),
    )
}

/// Reads the body of an identified peer's request, at most an envelope's size.
async fn read_body(body: Body) -> Result<Bytes, FederationError> {
    match http_body_util::Limited::new(body, MAX_ENVELOPE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(refuse(
            ProblemType::MalformedEnvelope,
            format!("the body could not be read: {e}"),
        )),
    }
}

/// Checks the request's signature over its body: time window, content digest, signature.
fn verify(
    node: &Node,
    headers: &HeaderMap,
    peer: &Peer,
    sig: &ReadSignature,
    body: &[u8],
) -> Result<(), FederationError> {
    sig.verify(
        INBOX_PATH,
        header_text(headers, "host").unwrap_or_default(),
        header_text(headers, "content-digest"),
        body,
        &peer.signing_key,
        node.clock.now(),
    )
    .map_err(|e| match e {
        RequestError::Malformed(m) => refuse(ProblemType::BadSignature, m),
        RequestError::OutsideWindow(_) => refuse(ProblemType::SignatureExpired, e.to_string()),
        RequestError::Digest(_) => refuse(ProblemType::DigestMismatch, e.to_string()),
        RequestError::BadSignature => refuse(ProblemType::BadSignature, e.to_string()),
    })
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

/// Receives an envelope from a peer: the sender's API key, a `Content-Digest` of the body and
/// an RFC 9421 Ed25519 signature (`Signature-Input`, `Signature`) over method, path, authority
/// and digest; the body is one sealed envelope.
#[utoipa::path(post, path = "/federation/v1/inbox", tag = "federation",
    params(("carebridge-api-key" = String, Header, description = "The API key this node gave the sender"),
           ("content-digest" = String, Header, description = "RFC 9530 `sha-256` digest of the body"),
           ("signature-input" = String, Header, description = "RFC 9421 signature parameters, label `cb`"),
           ("signature" = String, Header, description = "RFC 9421 Ed25519 signature, label `cb`")),
    request_body(content = Envelope, description = "One sealed envelope (at most 16 MiB)"),
    responses((status = 201, description = "Stored; the receiver's signed receipt", body = Receipt),
              (status = 200, description = "Already stored: the first receipt", body = Receipt),
              (status = 409, description = "The request's nonce was used before (a replay)", body = Problem, content_type = "application/problem+json"),
              (status = 421, description = "The envelope is addressed to another node", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many refused requests from this address; retry after `Retry-After`", body = Problem, content_type = "application/problem+json")))]
pub async fn receive(
    State(node): State<Arc<Node>>,
    Source(source): Source,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip: IpAddr = source.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let draft = AuditDraft {
        actor: "peer:unknown".into(),
        action: "federation.refused".into(),
        entity: String::new(),
        source: source.clone(),
    };
    if let Some(secs) = node.inbox_refusals.limited(ip) {
        let e = refuse(
            ProblemType::TooManyRequests,
            format!("too many refused requests from this address; retry in {secs} s"),
        );
        audit_refusal(&node, draft, ip, &e).await;
        return unread(ApiError::Throttled(secs).into_response(), &headers, body).await;
    }
    let (peer, sig) = match identify(&node, &headers, ip, ReadSignature::read).await {
        Ok(ok) => ok,
        Err(e) => return unread(refused(&node, draft, ip, e).await, &headers, body).await,
    };
    let draft = AuditDraft {
        actor: format!("peer:{}", peer.name),
        ..draft
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return refused(&node, draft, ip, e).await,
    };
    let opened = {
        let node = node.clone();
        let peer = peer.clone();
        let headers = headers.clone();
        // Signature, AES-GCM and checksum over up to an envelope's size: off the executor.
        tokio::task::spawn_blocking(move || {
            verify(&node, &headers, &peer, &sig, &body)?;
            let (env, plaintext) = open(&node, &peer, &body)?;
            Ok::<_, FederationError>((sig, env, plaintext))
        })
        .await
    };
    let (sig, env, plaintext) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return refused(&node, draft, ip, e).await,
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
        Ok((status, receipt)) => {
            // What the message queued in answer (an access request's code, a grant's token)
            // leaves now rather than at the workers' next turn.
            node.wake_delivery();
            node.wake_mail();
            (status, axum::Json(receipt)).into_response()
        }
        Err(e) => refused(&node, draft, ip, e).await,
    }
}

/// The answer to a request refused before its body was read. A small body (an envelope's
/// header's worth) is read and dropped, so that the connection stays usable: closing it with
/// data unread makes the kernel reset it, and the client may lose the answer. A larger one,
/// or one of unknown size, is left unread and the connection closed after the answer.
async fn unread(mut answer: Response, headers: &HeaderMap, body: Body) -> Response {
    const DISCARDED: u64 = 64 * 1024;
    let small = header_text(headers, "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= DISCARDED);
    if !small
        || http_body_util::Limited::new(body, DISCARDED as usize)
            .collect()
            .await
            .is_err()
    {
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// Audits a refusal (see the module's doc) and answers it.
pub(crate) async fn refused(
    node: &Arc<Node>,
    draft: AuditDraft,
    ip: IpAddr,
    e: FederationError,
) -> Response {
    audit_refusal(node, draft, ip, &e).await;
    tracing::warn!(refusal = %e, "federation request refused");
    ApiError::from(e).into_response()
}

/// Audits a refusal now when it is the first of its source and code in this minute; counts
/// it otherwise. Its own job: the refused request stores nothing else.
async fn audit_refusal(node: &Arc<Node>, draft: AuditDraft, ip: IpAddr, e: &FederationError) {
    let code = e.code();
    if node.inbox_refusals.note(ip, code) == Audit::Counted {
        return;
    }
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
}

/// What is kept of a payload as received: a one-time code or a token is used at once and never
/// stored where the received payloads are (the grant keeps the token for its reads).
fn kept_payload(t: MessageType, plaintext: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Some(secret) = t.unkept_field() else {
        return plaintext.into();
    };
    match serde_json::from_slice::<serde_json::Value>(plaintext) {
        Ok(mut v) => {
            if let Some(field) = v.get_mut(secret) {
                *field = serde_json::Value::String("(not kept here)".into());
            }
            serde_json::to_vec(&v).map_or(plaintext.into(), Into::into)
        }
        Err(_) => plaintext.into(),
    }
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
            payload: &kept_payload(t, plaintext),
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
        MessageType::AccessRequest => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            access::receive_request(ctx, node, peer, &m)?
        }
        MessageType::AccessApprove => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            access::receive_approve(ctx, node, peer, &m)?
        }
        MessageType::AccessGranted => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            access::receive_granted(ctx, peer, &m)?
        }
        MessageType::AccessDeclined => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            access::receive_declined(ctx, peer, &m)?
        }
        MessageType::AccessRevoked => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            access::receive_revoked(ctx, peer, &m)?
        }
        MessageType::TransferManifest => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            transfer::receive_manifest(ctx, peer, &m)?
        }
        MessageType::TransferChunk => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            transfer::receive_chunk(ctx, node, peer, &m)?
        }
        MessageType::TransferConfirmed => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            transfer::receive_confirmed(ctx, node, peer, &m)?
        }
        MessageType::TransferRefused => {
            let m = serde_json::from_slice(plaintext).map_err(unreadable)?;
            transfer::receive_refused(ctx, peer, &m)?
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

//! Access across hospitals, as staff and kiosks use it: a doctor asks another hospital to read
//! a patient's record there, passes on the patient's code and reads what the grant allows; the
//! front desk, or the patient at a kiosk, answers other hospitals' requests, revokes grants and
//! sees who read what. The rules are `federation::access`'s; these handlers translate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::access::{
    AccessDecision, AccessRead, ApproveWithCode, IncomingAccess, NewRemoteAccess, RemoteAccess,
    ScopedResource,
};
use carebridge_protocol::practitioner::Role;

use crate::api::extract::{Caller, Json, Path};
use crate::error::ApiError;
use crate::events::Viewer;
use crate::federation::access::{self, Channel};
use crate::federation::error::FederationError;
use crate::node::Node;
use crate::store::federation::access as stored;
use crate::store::{Tx, kiosks};
use crate::visibility::RecordKind;

/// How many reads "who looked at my record" lists.
const READS_LISTED: u32 = 200;

/// Asks the patient's home hospital (a peer) to read their record there: the request goes
/// sealed through the outbox, and the home hospital asks the patient (by e-mail with a code,
/// or in person). Emergency requests may be granted by its policy without the patient.
#[utoipa::path(post, path = "/patients/{id}/remote-access", tag = "access", request_body = NewRemoteAccess, security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id here")),
    responses((status = 201, description = "The request, pending", body = RemoteAccess)))]
pub async fn request_remote_access(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
    Json(req): Json<NewRemoteAccess>,
) -> Result<Response, ApiError> {
    let entity = format!("patient/{id}");
    let (me, _) = caller
        .audit_refusal(
            &node,
            caller.staff(&[Role::Doctor]),
            "access.request",
            &entity,
        )
        .await?;
    let n = node.clone();
    let name = caller.name.clone();
    let a = node
        .store
        .write(
            Some(caller.audit("access.request", format!("patient/{id}"))),
            move |ctx| access::request(ctx, &n, (me, &name), id, &req),
        )
        .await?;
    node.wake_delivery();
    Ok((StatusCode::CREATED, axum::Json(a)).into_response())
}

/// The signed-in doctor's requests to read this patient's record at other hospitals.
#[utoipa::path(get, path = "/patients/{id}/remote-access", tag = "access", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id here")),
    responses((status = 200, description = "Newest first", body = Vec<RemoteAccess>)))]
pub async fn list_remote_access(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<RemoteAccess>>, ApiError> {
    // What a grant showed of the patient (name, birth date) is patient data: read and audited.
    let entity = format!("patient/{id}");
    let check = caller
        .staff(&[Role::Doctor])
        .and_then(|(me, _)| caller.may_see(RecordKind::RemoteRecord).map(|()| me));
    let me = caller
        .audit_refusal(&node, check, "access.remote-list", &entity)
        .await?;
    let list = node
        .store
        .write(
            Some(caller.audit("access.remote-list", entity)),
            move |ctx| {
                Ok::<_, ApiError>(stored::remote_for_patient(ctx, id, Some(&me.to_string()))?)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// Passes on the one-time code the patient read out: the home hospital checks it (five wrong
/// codes lock the request) and answers with a grant or a refusal, which arrives live.
#[utoipa::path(post, path = "/remote-access/{id}/code", tag = "access", request_body = ApproveWithCode, security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 202, description = "Sent; the answer arrives as `access.updated`", body = RemoteAccess)))]
pub async fn send_access_code(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
    Json(req): Json<ApproveWithCode>,
) -> Result<Response, ApiError> {
    let (me, _) = caller.staff(&[Role::Doctor])?;
    let n = node.clone();
    let name = caller.name.clone();
    // The code itself is never audited nor logged.
    let a = node
        .store
        .write(
            Some(caller.audit("access.code", format!("remote-access/{id}"))),
            move |ctx| access::send_code(ctx, &n, (me, &name), id, &req.code),
        )
        .await?;
    node.wake_delivery();
    Ok((StatusCode::ACCEPTED, axum::Json(a)).into_response())
}

/// Reads one type of the patient's record at the home hospital under the grant (a FHIR
/// searchset Bundle, as the home hospital sends it). Refused there once revoked or expired.
#[utoipa::path(get, path = "/remote-access/{id}/records/{type}", tag = "access", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id"),
           ("type" = String, Path, description = "Patient, DiagnosticReport or Appointment")),
    responses((status = 200, description = "A FHIR searchset Bundle from the home hospital", content_type = "application/fhir+json")))]
pub async fn read_remote_records(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((id, resource_type)): Path<(uuid::Uuid, String)>,
) -> Result<Response, ApiError> {
    let (me, _) = caller.staff(&[Role::Doctor])?;
    let resource = ScopedResource::parse(&resource_type).ok_or_else(|| {
        ApiError::field(
            "type",
            "read Patient, DiagnosticReport or Appointment".to_owned(),
        )
    })?;
    let draft = caller.audit("access.read", format!("remote-access/{id}"));
    let bundle = access::read(&node, me, id, resource, draft).await?;
    Ok(axum::Json(bundle).into_response())
}

/// Whether the caller may act for `patient`: the front desk (and, to read, admins) always; a
/// kiosk only for the patient identified there.
fn may_act_for(
    tx: &Tx<'_>,
    caller: &Caller,
    patient: PatientId,
    now_ms: i64,
) -> Result<(), ApiError> {
    match caller.viewer {
        Viewer::Kiosk { id } if kiosks::is_identified(tx, id, patient, now_ms)? => Ok(()),
        Viewer::Kiosk { .. } => Err(ApiError::new(
            carebridge_protocol::ProblemType::PatientNotIdentified,
            "identify with the card number and birth date first",
        )),
        Viewer::Staff { .. } => caller.may_see(RecordKind::IncomingAccess),
    }
}

/// Other hospitals' requests to read this patient's record here, with their grants.
#[utoipa::path(get, path = "/patients/{id}/access-requests", tag = "access", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Newest first", body = Vec<IncomingAccess>)))]
pub async fn list_access_requests(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<IncomingAccess>>, ApiError> {
    let c = caller.clone();
    let list = node
        .store
        .write(
            Some(caller.audit("access.list", format!("patient/{id}"))),
            move |ctx| {
                may_act_for(ctx, &c, id, ctx.now().timestamp_millis())?;
                let mut out = Vec::new();
                for q in stored::requests_for_patient(ctx, id, false)? {
                    let grant = stored::grant_for_request(ctx, q.id)?;
                    out.extend(stored::incoming(&q, grant.as_ref()));
                }
                Ok::<_, ApiError>(out)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// Who read this patient's record from another hospital, and what: "who looked at my record".
#[utoipa::path(get, path = "/patients/{id}/access-reads", tag = "access", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Newest first", body = Vec<AccessRead>)))]
pub async fn list_access_reads(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<AccessRead>>, ApiError> {
    let c = caller.clone();
    let list = node
        .store
        .write(
            Some(caller.audit("access.reads", format!("patient/{id}"))),
            move |ctx| {
                may_act_for(ctx, &c, id, ctx.now().timestamp_millis())?;
                Ok::<_, ApiError>(stored::reads_for_patient(ctx, id, READS_LISTED)?)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// The channel a caller answers through, and the patient a kiosk answers for.
fn channel_of(caller: &Caller) -> Result<Channel, ApiError> {
    match caller.viewer {
        Viewer::Kiosk { .. } => Ok(Channel::Kiosk),
        Viewer::Staff { .. } => {
            caller.staff(&[Role::Reception])?;
            Ok(Channel::FrontDesk)
        }
    }
}

/// The patient allows (perhaps narrower or shorter) or declines another hospital's request: at
/// a kiosk once identified, or through the front desk, which checked who they are.
#[utoipa::path(post, path = "/access-requests/{id}/decision", tag = "access", request_body = AccessDecision, security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id here")),
    responses((status = 200, description = "The request, granted or declined", body = IncomingAccess)))]
pub async fn decide_access_request(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
    Json(d): Json<AccessDecision>,
) -> Result<axum::Json<IncomingAccess>, ApiError> {
    let channel = channel_of(&caller)?;
    let n = node.clone();
    let c = caller.clone();
    let answered = node
        .store
        .write(
            Some(caller.audit("access.decide", format!("access-request/{id}"))),
            move |ctx| {
                let patient = patient_of(ctx, id)?;
                may_act_for(ctx, &c, patient, ctx.now().timestamp_millis())?;
                Ok::<_, ApiError>(access::decide(ctx, &n, id, Some(patient), &d, channel)?)
            },
        )
        .await?;
    node.wake_delivery();
    Ok(axum::Json(answered))
}

/// The patient revokes a grant, at a kiosk or the front desk: refused here at once, and the
/// other hospital told through the outbox.
#[utoipa::path(post, path = "/access-requests/{id}/revoke", tag = "access", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id here")),
    responses((status = 200, description = "The request, revoked", body = IncomingAccess)))]
pub async fn revoke_access(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
) -> Result<axum::Json<IncomingAccess>, ApiError> {
    let channel = channel_of(&caller)?;
    let n = node.clone();
    let c = caller.clone();
    let revoked = node
        .store
        .write(
            Some(caller.audit("access.revoke", format!("access-request/{id}"))),
            move |ctx| {
                let patient = patient_of(ctx, id)?;
                may_act_for(ctx, &c, patient, ctx.now().timestamp_millis())?;
                Ok::<_, ApiError>(access::revoke(ctx, &n, id, Some(patient), channel)?)
            },
        )
        .await?;
    node.wake_delivery();
    Ok(axum::Json(revoked))
}

/// The patient a request here is about; not found for one that matched no patient.
fn patient_of(tx: &Tx<'_>, id: uuid::Uuid) -> Result<PatientId, ApiError> {
    stored::request(tx, id)?
        .and_then(|q| q.patient_id)
        .ok_or_else(|| FederationError::NotFound("access request").into())
}

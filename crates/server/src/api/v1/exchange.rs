//! What staff do with peers: see who they are, record patients' consent, send reports and
//! follow the transmissions; on an insurer, read the reports received; admin updates both
//! ways.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::payload::{
    AdminUpdate, Consent, NewAdminUpdate, PeerSummary, ReceivedReports, SendReports, Transmission,
};
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::{FieldError, Problem};
use carebridge_protocol::text::{Checks, Clean, PEER_NAME_MAX, TITLE_MAX, UPDATE_BODY_MAX};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::extract::{Caller, IdempotencyKey, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::config::NodeKind;
use crate::error::ApiError;
use crate::federation::{sharing, updates};
use crate::node::Node;
use crate::store::federation::{consents, peers, received, transmissions};
use crate::visibility::{self, RecordKind};

/// The peers this node exchanges with (no keys).
#[utoipa::path(get, path = "/peers", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, description = "Peers by name", body = Vec<PeerSummary>)))]
pub async fn list_peers(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<axum::Json<Vec<PeerSummary>>, ApiError> {
    // Reception picks the hospital a record moves to.
    caller.staff(&[Role::Reception, Role::Doctor, Role::Admin, Role::Reviewer])?;
    let list = node
        .store
        .read(|c| peers::list(c).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|p| PeerSummary {
                name: p.name,
                kind: p.kind.as_str().to_owned(),
                accepts_from_it: p
                    .allowed_types
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect(),
            })
            .collect(),
    ))
}

/// A patient's recorded consents to share with peers.
#[utoipa::path(get, path = "/patients/{id}/consents", tag = "exchange", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Consents by peer", body = Vec<Consent>)))]
pub async fn list_consents(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<Consent>>, ApiError> {
    caller.may_see(RecordKind::Consent)?;
    let list = node
        .store
        .write(
            Some(caller.audit("consent.list", format!("patient/{id}"))),
            move |ctx| Ok::<_, ApiError>(consents::list(ctx, id)?),
        )
        .await?;
    Ok(axum::Json(list))
}

/// Which peer a consent is for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// The insurer's node name.
    pub peer: String,
}

impl Clean for ConsentRequest {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("peer", &mut self.peer, PEER_NAME_MAX)
            .finish()
    }
}

/// Records the patient's consent to share their reports with an insurer (who and when are
/// kept and audited).
#[utoipa::path(post, path = "/patients/{id}/consents", tag = "exchange", request_body = ConsentRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 201, description = "The consent", body = Consent)))]
pub async fn record_consent(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
    Json(req): Json<ConsentRequest>,
) -> Result<Response, ApiError> {
    let (me, _) = caller.staff(&[Role::Doctor])?;
    let n = node.clone();
    let c = caller.clone();
    let consent = node
        .store
        .write(
            Some(caller.audit("consent.record", format!("patient/{id}"))),
            move |ctx| {
                let name = &c.name;
                sharing::record_consent(ctx, &n, id, &req.peer, (&me.to_string(), name))
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(consent)).into_response())
}

/// Withdraws the patient's consent to share with an insurer.
#[utoipa::path(delete, path = "/patients/{id}/consents/{peer}", tag = "exchange", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id"), ("peer" = String, Path, description = "Peer name")),
    responses((status = 204, description = "Withdrawn"),
              (status = 404, description = "No such consent", body = Problem, content_type = "application/problem+json")))]
pub async fn withdraw_consent(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((id, peer)): Path<(PatientId, String)>,
) -> Result<StatusCode, ApiError> {
    caller.staff(&[Role::Doctor])?;
    node.store
        .write(
            Some(caller.audit("consent.withdraw", format!("patient/{id}"))),
            move |ctx| sharing::withdraw_consent(ctx, id, &peer),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends final or amended reports of one patient, who consented, to an insurer: one
/// transmission, sealed and signed, in the node's durable outbox.
#[utoipa::path(post, path = "/transmissions", tag = "exchange", request_body = SendReports, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Queued", body = Transmission),
              (status = 403, description = "No consent recorded", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "A report is not final or amended", body = Problem, content_type = "application/problem+json")))]
pub async fn send_reports(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<SendReports>,
) -> Result<Response, ApiError> {
    caller.staff(&[Role::Doctor])?;
    let fp = fingerprint("transmission.reports", &req);
    let actor = caller.actor();
    let n = node.clone();
    let c = caller.clone();
    let (status, t) = node
        .store
        .write(Some(caller.audit("transmission.send", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                let name = &c.name;
                Ok(sharing::send_reports(ctx, &n, name, &req)?)
            })
        })
        .await?;
    node.wake_delivery();
    Ok((status, axum::Json(t)).into_response())
}

/// Which transmissions to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransmissionQuery {
    /// Only this patient's.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Uuid)]
    pub patient_id: Option<PatientId>,
}

/// Transmissions to peers, newest first.
#[utoipa::path(get, path = "/transmissions", tag = "exchange", params(TransmissionQuery), security(("bearer" = [])),
    responses((status = 200, description = "Transmissions", body = Vec<Transmission>)))]
pub async fn list_transmissions(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<TransmissionQuery>,
) -> Result<axum::Json<Vec<Transmission>>, ApiError> {
    caller.may_see(RecordKind::Transmission)?;
    let entity = q
        .patient_id
        .map(|p| format!("patient/{p}"))
        .unwrap_or_default();
    let list = node
        .store
        .write(
            Some(caller.audit("transmission.list", entity)),
            move |ctx| {
                let list = transmissions::list(ctx, q.patient_id, 200)?;
                ctx.set_detail(format!("{} transmission(s)", list.len()));
                Ok::<_, ApiError>(list)
            },
        )
        .await?
        .into_iter()
        .map(|t| visibility::transmission_as_seen(&caller.viewer, t))
        .collect();
    Ok(axum::Json(list))
}

/// Medical reports received from hospitals, newest first (an insurer's reviewers and admins).
#[utoipa::path(get, path = "/received", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, description = "What arrived", body = Vec<ReceivedReports>)))]
pub async fn list_received(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<axum::Json<Vec<ReceivedReports>>, ApiError> {
    caller.may_see(RecordKind::ReceivedReports)?;
    let list = node
        .store
        .write(Some(caller.audit("received.list", "")), |ctx| {
            let list = received::list(ctx, 200)?;
            ctx.set_detail(format!("{} received", list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    Ok(axum::Json(list))
}

/// One set of received reports, by the name it is stored under.
#[utoipa::path(get, path = "/received/{name}", tag = "exchange", security(("bearer" = [])),
    params(("name" = String, Path, description = "medical-reports-<source>-<timestamp>")),
    responses((status = 200, description = "What arrived", body = ReceivedReports),
              (status = 404, description = "No such payload (or deleted by retention)", body = Problem, content_type = "application/problem+json")))]
pub async fn get_received(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<ReceivedReports>, ApiError> {
    caller.may_see(RecordKind::ReceivedReports)?;
    let r = node
        .store
        .write(
            Some(caller.audit("received.read", format!("received/{name}"))),
            move |ctx| {
                received::get(ctx, &name)?.ok_or_else(|| ApiError::not_found("received payload"))
            },
        )
        .await?;
    Ok(axum::Json(r))
}

/// Admin updates: on a hospital, those for the caller's role (with whether they acknowledged
/// each); on an insurer, those its admins sent (with how many acknowledged).
#[utoipa::path(get, path = "/admin-updates", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, description = "Updates, newest first", body = Vec<AdminUpdate>)))]
pub async fn list_admin_updates(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<axum::Json<Vec<AdminUpdate>>, ApiError> {
    let (me, role) = caller.staff(&[Role::Doctor, Role::Reception, Role::Admin])?;
    let kind = node.config.kind;
    let list = node
        .store
        .read(move |c| updates::list(c, kind, me, role).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(list))
}

/// An insurer admin sends an update to a hospital's staff.
#[utoipa::path(post, path = "/admin-updates", tag = "exchange", request_body = NewAdminUpdate, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Queued for the hospital", body = AdminUpdate)))]
pub async fn send_admin_update(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<NewAdminUpdate>,
) -> Result<Response, ApiError> {
    caller.staff(&[Role::Admin])?;
    if node.config.kind != NodeKind::Insurer {
        return Err(ApiError::forbidden(
            "admin updates are sent from an insurer's node",
        ));
    }
    let title = req.title.trim().chars().count();
    if title == 0 || title > TITLE_MAX {
        return Err(ApiError::field(
            "title",
            format!("must be 1 to {TITLE_MAX} characters"),
        ));
    }
    let body = req.body.trim().chars().count();
    if body == 0 || body > UPDATE_BODY_MAX {
        return Err(ApiError::field(
            "body",
            format!("must be 1 to {UPDATE_BODY_MAX} characters"),
        ));
    }
    let fp = fingerprint("admin-update.send", &req);
    let actor = caller.actor();
    let n = node.clone();
    let c = caller.clone();
    let (status, u) = node
        .store
        .write(Some(caller.audit("admin-update.send", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                let name = &c.name;
                Ok(updates::send(ctx, &n, name, &req)?)
            })
        })
        .await?;
    node.wake_delivery();
    Ok((status, axum::Json(u)).into_response())
}

/// A hospital user acknowledges an update; the acknowledgement goes back to the insurer.
#[utoipa::path(post, path = "/admin-updates/{id}/acknowledge", tag = "exchange", security(("bearer" = [])),
    params(("id" = String, Path, description = "Update id")),
    responses((status = 200, description = "Acknowledged", body = AdminUpdate),
              (status = 404, description = "No such update for your role", body = Problem, content_type = "application/problem+json")))]
pub async fn acknowledge_admin_update(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<uuid::Uuid>,
) -> Result<axum::Json<AdminUpdate>, ApiError> {
    let (me, role) = caller.staff(&[Role::Doctor, Role::Reception, Role::Admin])?;
    if node.config.kind != NodeKind::Hospital {
        return Err(ApiError::forbidden(
            "updates are acknowledged on the hospital's node",
        ));
    }
    let n = node.clone();
    let c = caller.clone();
    let u = node
        .store
        .write(
            Some(caller.audit("admin-update.acknowledge", format!("admin-update/{id}"))),
            move |ctx| {
                let name = &c.name;
                updates::acknowledge(ctx, &n, me, name, role, id)
            },
        )
        .await?;
    node.wake_delivery();
    Ok(axum::Json(u))
}

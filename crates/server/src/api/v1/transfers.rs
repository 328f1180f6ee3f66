//! Moving a patient's record to another hospital, as the front desk does it, and reading a
//! record another hospital moved here. The rules are `federation::transfer`'s; these handlers
//! translate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::transfer::{NewTransfer, PatientTransfer, TransferredRecord};
use carebridge_protocol::practitioner::Role;

use crate::api::extract::{Caller, Json, Path};
use crate::error::ApiError;
use crate::federation::transfer;
use crate::node::Node;
use crate::store::federation::transfers as stored;
use crate::store::patients;
use crate::visibility::RecordKind;

/// Moves the patient's record to another hospital (a peer), with the patient at the front desk
/// and their identity checked there. The whole record (signed reports with their PDFs,
/// appointments, consents, studies) goes sealed in parts through the outbox; the record here
/// stays as it is until the other hospital confirms the import, and is read-only after.
#[utoipa::path(post, path = "/patients/{id}/transfers", tag = "transfers", request_body = NewTransfer, security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 202, description = "Authorised; its parts are on their way, and its progress arrives as `transfer.updated`", body = PatientTransfer),
        (status = 409, description = "A transfer is under way, or the record already moved", body = carebridge_protocol::Problem),
    ))]
pub async fn start_transfer(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<PatientId>,
    Json(req): Json<NewTransfer>,
) -> Result<Response, ApiError> {
    let entity = format!("patient/{id}");
    caller
        .audit_refusal(
            &node,
            caller.staff(&[Role::Reception]),
            "patient.transfer",
            &entity,
        )
        .await?;
    let base = crate::fhir::base_url(&node, &headers);
    let t = transfer::start(
        &node,
        caller.audit("patient.transfer", entity),
        caller.name.clone(),
        id,
        req,
        base,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(t)).into_response())
}

/// The patient's transfers to other hospitals, newest first.
#[utoipa::path(get, path = "/patients/{id}/transfers", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Newest first", body = Vec<PatientTransfer>)))]
pub async fn list_transfers(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<PatientTransfer>>, ApiError> {
    let entity = format!("patient/{id}");
    caller
        .audit_refusal(
            &node,
            caller.may_see(RecordKind::Transfer),
            "patient.transfer-list",
            &entity,
        )
        .await?;
    let name = node.name().to_owned();
    // Where a patient's record went is theirs: read and audited.
    let list = node
        .store
        .write(
            Some(caller.audit("patient.transfer-list", entity)),
            move |ctx| {
                if patients::get(ctx, id, &name)?.is_none() {
                    return Err(ApiError::not_found("patient"));
                }
                Ok(stored::out_for_patient(ctx, id)?)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// The records other hospitals moved here for this patient, as they arrived (FHIR Bundles),
/// read-only beside the record here.
#[utoipa::path(get, path = "/patients/{id}/transferred-records", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Oldest first", body = Vec<TransferredRecord>)))]
pub async fn list_transferred_records(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<Vec<TransferredRecord>>, ApiError> {
    let entity = format!("patient/{id}");
    caller
        .audit_refusal(
            &node,
            caller.may_see(RecordKind::TransferredRecord),
            "patient.transferred-records",
            &entity,
        )
        .await?;
    let name = node.name().to_owned();
    // Clinical content from another hospital: every read is audited, as a report's is.
    let list = node
        .store
        .write(
            Some(caller.audit("patient.transferred-records", entity)),
            move |ctx| {
                if patients::get(ctx, id, &name)?.is_none() {
                    return Err(ApiError::not_found("patient"));
                }
                let list = stored::records_for_patient(ctx, id)?;
                ctx.set_detail(format!("{} record(s) from other hospitals", list.len()));
                Ok(list)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

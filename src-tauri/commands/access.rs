//! Access across hospitals, through the node: a doctor's requests to read a patient's record
//! at another hospital, the patient's code, what the grant shows; other hospitals' requests as
//! the front desk (staff window) and the identified patient (kiosk window) answer them.

use carebridge_core::access::RemoteRecordView;
use carebridge_core::protocol::PatientId;
use carebridge_core::protocol::federation::access::{
    AccessDecision, AccessRead, IncomingAccess, NewRemoteAccess, RemoteAccess,
};
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// The doctor's requests for this patient's record elsewhere.
pub async fn remote_access(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<RemoteAccess>, CommandError> {
    Ok(engine(&state).await?.remote_access(patient_id).await?)
}

/// Asks another hospital to read this patient's record there.
pub async fn request_remote_access(
    state: State<'_, AppState>,
    patient_id: PatientId,
    request: NewRemoteAccess,
) -> Result<RemoteAccess, CommandError> {
    Ok(engine(&state)
        .await?
        .request_remote_access(patient_id, &request)
        .await?)
}

/// Passes on the patient's one-time code.
pub async fn send_access_code(
    state: State<'_, AppState>,
    request_id: String,
    code: String,
) -> Result<RemoteAccess, CommandError> {
    Ok(engine(&state)
        .await?
        .send_access_code(parse_id(&request_id)?, code)
        .await?)
}

/// What a grant shows of the patient's record at the other hospital, read now.
pub async fn remote_records(
    state: State<'_, AppState>,
    patient_id: PatientId,
    request_id: String,
) -> Result<RemoteRecordView, CommandError> {
    Ok(engine(&state)
        .await?
        .remote_records(patient_id, parse_id(&request_id)?)
        .await?)
}

/// Other hospitals' requests for this patient's record here.
pub async fn incoming_access(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<IncomingAccess>, CommandError> {
    Ok(engine(&state).await?.incoming_access(patient_id).await?)
}

/// Who read this patient's record from another hospital.
pub async fn access_reads(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<AccessRead>, CommandError> {
    Ok(engine(&state).await?.access_reads(patient_id).await?)
}

/// Allows (perhaps narrowed) or declines another hospital's request.
pub async fn decide_access(
    state: State<'_, AppState>,
    request_id: String,
    decision: AccessDecision,
) -> Result<IncomingAccess, CommandError> {
    Ok(engine(&state)
        .await?
        .decide_access(parse_id(&request_id)?, &decision)
        .await?)
}

/// Revokes a grant.
pub async fn revoke_access(
    state: State<'_, AppState>,
    request_id: String,
) -> Result<IncomingAccess, CommandError> {
    Ok(engine(&state)
        .await?
        .revoke_access(parse_id(&request_id)?)
        .await?)
}

fn parse_id(id: &str) -> Result<uuid::Uuid, CommandError> {
    id.parse().map_err(|_| {
        CommandError::own(
            carebridge_core::ClientCode::LocalFailure,
            "that is not a request's id",
        )
    })
}

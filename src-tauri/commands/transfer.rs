//! Moving a patient's record to another hospital, through the node: the front desk authorises
//! it and follows it; doctors read what other hospitals moved here.

use carebridge_core::access::RemoteRecordView;
use carebridge_core::protocol::PatientId;
use carebridge_core::protocol::federation::transfer::{NewTransfer, PatientTransfer};
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// The patient's transfers to other hospitals.
pub async fn transfers(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<PatientTransfer>, CommandError> {
    Ok(engine(&state).await?.transfers(patient_id).await?)
}

/// Authorises moving the patient's record to another hospital.
pub async fn start_transfer(
    state: State<'_, AppState>,
    patient_id: PatientId,
    transfer: NewTransfer,
) -> Result<PatientTransfer, CommandError> {
    Ok(engine(&state)
        .await?
        .start_transfer(patient_id, &transfer)
        .await?)
}

/// What other hospitals moved here for the patient.
pub async fn transferred_records(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<RemoteRecordView>, CommandError> {
    Ok(engine(&state)
        .await?
        .transferred_records(patient_id)
        .await?)
}

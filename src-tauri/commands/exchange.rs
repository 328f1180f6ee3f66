//! Exchanges with peer organisations, through the node: consent, sending reports and their
//! transmissions, reports received, admin updates both ways.

use carebridge_core::ClientCode;
use carebridge_core::protocol::federation::payload::{
    AdminUpdate, Consent, NewAdminUpdate, PeerSummary, ReceivedReports, Transmission,
};
use carebridge_core::protocol::{PatientId, ReportId};
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// The organisations this node exchanges with.
pub async fn peers(state: State<'_, AppState>) -> Result<Vec<PeerSummary>, CommandError> {
    Ok(engine(&state).await?.peers().await?)
}

/// A patient's consents to share.
pub async fn consents(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<Consent>, CommandError> {
    Ok(engine(&state).await?.consents(patient_id).await?)
}

/// Records the patient's consent to share with a peer.
pub async fn record_consent(
    state: State<'_, AppState>,
    patient_id: PatientId,
    peer: String,
) -> Result<Consent, CommandError> {
    Ok(engine(&state)
        .await?
        .record_consent(patient_id, peer)
        .await?)
}

/// Withdraws the patient's consent to share with a peer.
pub async fn withdraw_consent(
    state: State<'_, AppState>,
    patient_id: PatientId,
    peer: String,
) -> Result<(), CommandError> {
    Ok(engine(&state)
        .await?
        .withdraw_consent(patient_id, peer)
        .await?)
}

/// Sends signed reports of one patient to a peer.
pub async fn send_reports(
    state: State<'_, AppState>,
    peer: String,
    report_ids: Vec<ReportId>,
) -> Result<Transmission, CommandError> {
    Ok(engine(&state).await?.send_reports(peer, report_ids).await?)
}

/// Transmissions, newest first: one patient's, or all.
pub async fn transmissions(
    state: State<'_, AppState>,
    patient_id: Option<PatientId>,
) -> Result<Vec<Transmission>, CommandError> {
    Ok(engine(&state).await?.transmissions(patient_id).await?)
}

/// Reports received from hospitals.
pub async fn received_reports(
    state: State<'_, AppState>,
) -> Result<Vec<ReceivedReports>, CommandError> {
    Ok(engine(&state).await?.received().await?)
}

/// Admin updates for this user (hospital) or sent (insurer).
pub async fn admin_updates(state: State<'_, AppState>) -> Result<Vec<AdminUpdate>, CommandError> {
    Ok(engine(&state).await?.admin_updates().await?)
}

/// Sends an admin update to a hospital (an insurer's admin).
pub async fn send_admin_update(
    state: State<'_, AppState>,
    update: NewAdminUpdate,
) -> Result<AdminUpdate, CommandError> {
    Ok(engine(&state).await?.send_admin_update(update).await?)
}

/// Acknowledges an admin update.
pub async fn acknowledge_update(
    state: State<'_, AppState>,
    id: String,
) -> Result<AdminUpdate, CommandError> {
    let id = id.parse().map_err(|_| {
        CommandError::own(ClientCode::Invalid, format!("{id:?} is not an update id"))
    })?;
    Ok(engine(&state).await?.acknowledge_update(id).await?)
}

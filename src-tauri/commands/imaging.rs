//! Imaging, through the node: a patient's orders and studies, ordering a study, a study's
//! preview, the reconciliation list, and opening a study in the PACS's viewer.

use base64::Engine as _;
use carebridge_core::ClientCode;
use carebridge_core::protocol::PatientId;
use carebridge_core::protocol::imaging::{
    ImagingOrder, ImagingStudy, ImagingStudyId, NewImagingOrder, PatientImaging,
};
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// A patient's imaging orders and studies.
pub async fn patient_imaging(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<PatientImaging, CommandError> {
    Ok(engine(&state).await?.patient_imaging(patient_id).await?)
}

/// Orders an imaging study.
pub async fn order_imaging(
    state: State<'_, AppState>,
    order: NewImagingOrder,
) -> Result<ImagingOrder, CommandError> {
    Ok(engine(&state).await?.order_imaging(order).await?)
}

/// A study's preview as a `data:` URL (the app's CSP allows images from `data:` only, besides
/// its own files): nothing is written to disk.
pub async fn study_preview(
    state: State<'_, AppState>,
    study_id: ImagingStudyId,
) -> Result<String, CommandError> {
    let png = engine(&state).await?.study_preview(study_id).await?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// The studies that matched no patient.
pub async fn unmatched_studies(
    state: State<'_, AppState>,
) -> Result<Vec<ImagingStudy>, CommandError> {
    Ok(engine(&state).await?.unmatched_studies().await?)
}

/// Links a study from the reconciliation list to a patient.
pub async fn link_study(
    state: State<'_, AppState>,
    study_id: ImagingStudyId,
    patient_id: PatientId,
) -> Result<ImagingStudy, CommandError> {
    Ok(engine(&state)
        .await?
        .link_study(study_id, patient_id)
        .await?)
}

/// Opens one of a patient's studies in the PACS's viewer, at the address the node gives (the
/// UI names the study; the address is the node's, not the UI's). Answers whether a browser was
/// started.
pub async fn open_study_viewer(
    state: State<'_, AppState>,
    patient_id: PatientId,
    study_id: ImagingStudyId,
) -> Result<bool, CommandError> {
    let imaging = engine(&state).await?.patient_imaging(patient_id).await?;
    let study = imaging
        .studies
        .iter()
        .find(|s| s.id == study_id)
        .ok_or_else(|| {
            CommandError::own(ClientCode::LocalFailure, "no such study of this patient")
        })?;
    let url = study.viewer_url.clone().ok_or_else(|| {
        CommandError::own(
            ClientCode::LocalFailure,
            "the node names no viewer for studies",
        )
    })?;
    Ok(carebridge_workstation::viewer::open_externally(
        std::path::Path::new(&url),
    ))
}

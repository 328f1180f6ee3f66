//! A patient's record saved as FHIR (doctors), and records imported from another system with
//! progress (admins), through the node's FHIR API (online only: the core says why).

use carebridge_core::ClientCode;
use carebridge_core::protocol::PatientId;
use carebridge_core::records::ImportSummary;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, State};

use super::admin::SavedExport;
use super::{CommandError, engine};
use crate::AppState;

/// How far an import is, as the window hears it (event `import-progress`).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ImportProgress {
    /// Entries done.
    pub done: u32,
    /// Entries in the file.
    pub total: u32,
}

/// The user's downloads folder (their home when there is none), made if need be.
async fn downloads(app: &AppHandle) -> Result<std::path::PathBuf, CommandError> {
    let folder = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| {
            CommandError::own(
                ClientCode::LocalFailure,
                format!("no folder to save the record in: {e}"),
            )
        })?;
    tokio::fs::create_dir_all(&folder).await.map_err(|e| {
        CommandError::own(
            ClientCode::LocalFailure,
            format!("{} cannot be made: {e}", folder.display()),
        )
    })?;
    Ok(folder)
}

/// Saves the patient's whole record that the user may see as a FHIR R4 Bundle in their
/// downloads folder, in a new file named by the record's id (no name of the patient on disk)
/// and the time.
pub async fn export_patient_record(
    app: AppHandle,
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<SavedExport, CommandError> {
    let engine = engine(&state).await?;
    let folder = downloads(&app).await?;
    let stamp = engine.now_at_node().format("%Y-%m-%d-%H%M%S");
    let path = folder.join(format!("carebridge-record-{patient_id}-{stamp}.fhir.json"));
    let bytes = engine.export_patient_record(patient_id, &path).await?;
    Ok(SavedExport {
        path: path.display().to_string(),
        bytes,
    })
}

/// Imports a file of FHIR resources (a Bundle, a resource, or NDJSON) that the admin chose,
/// telling the window how far it is after each batch.
pub async fn import_records(
    app: AppHandle,
    state: State<'_, AppState>,
    contents: String,
) -> Result<ImportSummary, CommandError> {
    let engine = engine(&state).await?;
    let window = state.mode.window();
    Ok(engine
        .import_records(&contents, |done, total| {
            let _ = app.emit_to(window, "import-progress", ImportProgress { done, total });
        })
        .await?)
}

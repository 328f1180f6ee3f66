//! Patients' documents, through the node: a patient's list (doctors), filing a file chosen in
//! the app (doctors and reception), opening and printing a version.

use base64::Engine as _;
use carebridge_core::ClientCode;
use carebridge_core::protocol::PatientId;
use carebridge_core::protocol::document::{
    DocumentId, DocumentMedia, NewDocument, PatientDocument,
};
use tauri::State;

use super::workstation::{Printout, print_or_view, view};
use super::{CommandError, engine};
use crate::AppState;

/// A patient's documents, each with every version.
pub async fn patient_documents(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<PatientDocument>, CommandError> {
    Ok(engine(&state).await?.patient_documents(patient_id).await?)
}

/// Files a document the user chose (its bytes in base64, as the UI reads a file).
pub async fn add_document(
    state: State<'_, AppState>,
    patient_id: PatientId,
    document: NewDocument,
    contents: String,
) -> Result<PatientDocument, CommandError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(contents.as_bytes())
        .map_err(|_| {
            CommandError::own(ClientCode::LocalFailure, "the file did not arrive whole")
        })?;
    let media = DocumentMedia::sniff(&bytes).ok_or_else(|| {
        CommandError::own(
            ClientCode::LocalFailure,
            "a document must be a PDF, PNG, JPEG or TIFF file",
        )
    })?;
    let key = uuid::Uuid::now_v7().to_string();
    Ok(engine(&state)
        .await?
        .add_document(patient_id, &document, media, bytes, &key)
        .await?)
}

/// An image version as a `data:` URL, to show in the app (nothing written to disk).
pub async fn document_image(
    state: State<'_, AppState>,
    document_id: DocumentId,
    version: Option<u32>,
) -> Result<String, CommandError> {
    let file = engine(&state)
        .await?
        .document_file(document_id, version)
        .await?;
    if file.media_type == DocumentMedia::Pdf || file.media_type == DocumentMedia::Tiff {
        return Err(CommandError::own(
            ClientCode::LocalFailure,
            "this document is not an image the app shows",
        ));
    }
    Ok(format!(
        "data:{};base64,{}",
        file.media_type.as_str(),
        base64::engine::general_purpose::STANDARD.encode(file.bytes)
    ))
}

/// A version's file, with the name it is kept under for a viewer.
async fn named_file(
    state: &AppState,
    document_id: DocumentId,
    version: Option<u32>,
) -> Result<(String, Vec<u8>), CommandError> {
    let file = engine(state)
        .await?
        .document_file(document_id, version)
        .await?;
    let name = format!(
        "document-{document_id}-v{}.{}",
        file.version,
        file.media_type.extension()
    );
    Ok((name, file.bytes))
}

/// Opens a version in the system viewer.
pub async fn open_document(
    state: State<'_, AppState>,
    document_id: DocumentId,
    version: Option<u32>,
) -> Result<bool, CommandError> {
    let (name, bytes) = named_file(&state, document_id, version).await?;
    view(name, bytes).await
}

/// Prints a version on the workstation's printer (the system viewer where there is none).
pub async fn print_document(
    state: State<'_, AppState>,
    document_id: DocumentId,
    version: Option<u32>,
) -> Result<Printout, CommandError> {
    let (name, bytes) = named_file(&state, document_id, version).await?;
    // CUPS shows a job's title to every user of the printer: a neutral one, as for reports.
    print_or_view(name, "Patient document", bytes).await
}

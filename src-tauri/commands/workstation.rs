//! This workstation's local duties: its settings (the watched folder, the printer), the watched
//! folder's files, and printing a file (to the chosen CUPS printer, else the system viewer).

use carebridge_core::ClientCode;
use carebridge_core::protocol::practitioner::Role;
use carebridge_core::protocol::session::Principal;
use carebridge_workstation::folder::FolderImport;
use carebridge_workstation::viewer::{keep_printout, open_externally};
use carebridge_workstation::{Cups, ImportAssignment, ImportFile, WorkstationSettings};
use serde::Serialize;
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// The folder watch as the UI shows it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct FolderImportView {
    /// The folder chosen in the settings.
    pub folder: Option<String>,
    /// Whether it is being watched now.
    pub watching: bool,
    /// Why it is not, when it should be.
    pub problem: Option<String>,
    /// Its files since the watch began.
    pub files: Vec<ImportFile>,
}

/// What became of a print: sent to a printer (with CUPS's job id), or opened in the system
/// viewer (where no printer is chosen, or printing failed).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Printout {
    /// The printer it went to.
    pub printer: Option<String>,
    /// CUPS's id of the job.
    pub job: Option<String>,
    /// Why the printer did not take it (the viewer was opened instead).
    pub printer_problem: Option<String>,
    /// Whether the system viewer was started on it.
    pub opened: bool,
}

fn settings_dir() -> Result<std::path::PathBuf, CommandError> {
    Ok(carebridge_core::Profiles::in_os_data_dir()?
        .root()
        .to_owned())
}

fn failed(what: &str) -> impl Fn(std::io::Error) -> CommandError + '_ {
    move |e| CommandError::own(ClientCode::LocalFailure, format!("{what}: {e}"))
}

/// This workstation's settings.
pub async fn workstation_settings(
    _state: State<'_, AppState>,
) -> Result<WorkstationSettings, CommandError> {
    let dir = settings_dir()?;
    Ok(
        tokio::task::spawn_blocking(move || WorkstationSettings::load(&dir))
            .await
            .unwrap_or_default(),
    )
}

/// Keeps this workstation's settings and watches the folder they name from now on.
pub async fn save_workstation_settings(
    state: State<'_, AppState>,
    settings: WorkstationSettings,
) -> Result<WorkstationSettings, CommandError> {
    let settings = settings.cleaned();
    let folder = settings.import_folder.clone();
    let is_dir = tokio::task::spawn_blocking(move || {
        folder.is_none_or(|f| std::path::Path::new(&f).is_dir())
    })
    .await
    .unwrap_or(false);
    if let Some(folder) = &settings.import_folder
        && !is_dir
    {
        return Err(CommandError::own(
            ClientCode::LocalFailure,
            format!("{folder} is not a folder on this workstation"),
        ));
    }
    let dir = settings_dir()?;
    let saved = settings.clone();
    tokio::task::spawn_blocking(move || saved.save(&dir))
        .await
        .map_err(|e| CommandError::own(ClientCode::LocalFailure, e.to_string()))?
        .map_err(failed("the settings could not be saved"))?;
    if state.engine.lock().await.is_some() {
        watch_folder(&state).await;
    }
    Ok(settings)
}

/// Starts watching the settings' folder for the signed-in engine (after a sign-in, or a change
/// of the settings); ends the previous watch.
pub(crate) async fn watch_folder(state: &AppState) {
    let mut watch = state.folder_import.lock().await;
    *watch = (None, None);
    if state.mode != crate::launch::Mode::Staff {
        return;
    }
    let Some(engine) = state.engine.lock().await.clone() else {
        return;
    };
    // Files go to doctors' and reception's documents and the PACS; an admin files nothing.
    if !matches!(
        engine.principal(),
        Principal::Staff {
            role: Role::Doctor | Role::Reception,
            ..
        }
    ) {
        return;
    }
    let dir = match settings_dir() {
        Ok(d) => d,
        Err(e) => {
            watch.1 = Some(e.message);
            return;
        }
    };
    // A folder on a network share may be slow to answer: off the async threads.
    let started = tokio::task::spawn_blocking(move || {
        let folder = WorkstationSettings::load(&dir).import_folder?;
        Some(FolderImport::start(&engine, folder.into()))
    })
    .await
    .ok()
    .flatten();
    match started {
        Some(Ok(import)) => watch.0 = Some(import),
        Some(Err(e)) => watch.1 = Some(e.to_string()),
        None => {}
    }
}

/// The watched folder's files.
pub async fn import_files(state: State<'_, AppState>) -> Result<FolderImportView, CommandError> {
    engine(&state).await?;
    let folder = workstation_settings(state.clone()).await?.import_folder;
    let watch = state.folder_import.lock().await;
    Ok(FolderImportView {
        folder,
        watching: watch.0.is_some(),
        problem: watch.1.clone(),
        files: watch
            .0
            .as_ref()
            .map(FolderImport::files)
            .unwrap_or_default(),
    })
}

fn not_listed(name: &str) -> CommandError {
    CommandError::own(
        ClientCode::LocalFailure,
        format!(
            "{name:?} is not a file of the watched folder, or it changed: look at the list again"
        ),
    )
}

fn no_watch() -> CommandError {
    CommandError::own(ClientCode::LocalFailure, "no folder is being watched")
}

/// Says whose document a file of the watched folder is: it is sent now.
pub async fn assign_import(
    state: State<'_, AppState>,
    name: String,
    assignment: ImportAssignment,
) -> Result<(), CommandError> {
    engine(&state).await?;
    let watch = state.folder_import.lock().await;
    if watch
        .0
        .as_ref()
        .ok_or_else(no_watch)?
        .assign(&name, assignment)
    {
        Ok(())
    } else {
        Err(not_listed(&name))
    }
}

/// Tries a file of the watched folder again.
pub async fn retry_import(state: State<'_, AppState>, name: String) -> Result<(), CommandError> {
    engine(&state).await?;
    let watch = state.folder_import.lock().await;
    if watch.0.as_ref().ok_or_else(no_watch)?.retry(&name) {
        Ok(())
    } else {
        Err(not_listed(&name))
    }
}

/// Opens a file of the watched folder in the system viewer, for the user to see whose it is
/// (it is on this workstation's disk already: nothing is copied).
pub async fn open_import_file(
    state: State<'_, AppState>,
    name: String,
) -> Result<bool, CommandError> {
    engine(&state).await?;
    let path = {
        let watch = state.folder_import.lock().await;
        watch
            .0
            .as_ref()
            .ok_or_else(no_watch)?
            .path_of(&name)
            .ok_or_else(|| not_listed(&name))?
    };
    Ok(open_externally(&path))
}

/// The printers this workstation can print to.
pub async fn printers(_state: State<'_, AppState>) -> Result<Vec<String>, CommandError> {
    Cups::default()
        .printers()
        .await
        .map_err(|e| CommandError::own(ClientCode::LocalFailure, e.to_string()))
}

/// Prints `bytes` on the workstation's printer, or opens them in the system viewer where none
/// is chosen or it refused (kept as `name` only as long as a viewer needs).
pub(crate) async fn print_or_view(
    name: String,
    title: &str,
    bytes: Vec<u8>,
) -> Result<Printout, CommandError> {
    let dir = settings_dir()?;
    let printer = tokio::task::spawn_blocking(move || WorkstationSettings::load(&dir).printer)
        .await
        .unwrap_or_default();
    let mut printout = Printout {
        printer: printer.clone(),
        job: None,
        printer_problem: None,
        opened: false,
    };
    if let Some(printer) = &printer {
        match Cups::default().print(printer, title, &bytes).await {
            Ok(job) => {
                printout.job = Some(job.id);
                return Ok(printout);
            }
            Err(e) => printout.printer_problem = Some(e.to_string()),
        }
    }
    printout.opened = view(name, bytes).await?;
    Ok(printout)
}

/// Keeps `bytes` as the printout `name` (readable by this user only, for as long as a viewer
/// needs) and opens the system viewer on it; answers whether one started.
pub(crate) async fn view(name: String, bytes: Vec<u8>) -> Result<bool, CommandError> {
    let path = tokio::task::spawn_blocking(move || keep_printout(&name, &bytes))
        .await
        .map_err(|e| CommandError::own(ClientCode::LocalFailure, e.to_string()))?
        .map_err(failed("the file could not be kept for the viewer"))?;
    Ok(open_externally(&path))
}

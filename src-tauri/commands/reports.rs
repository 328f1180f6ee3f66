//! A doctor's reports: the patient's list from the mirror, drafts, finalising, amending and
//! entering in error through the core's outbox, the signed revisions and the PDF from the node.

use carebridge_core::ClientCode;
use carebridge_core::protocol::report::{Report, ReportAction, ReportContent, ReportRevision};
use carebridge_core::protocol::{PatientId, ReportId};
use carebridge_core::store::ReportRow;
use tauri::State;

use super::{CommandError, engine, reader};
use crate::AppState;

/// A patient's reports, most recently changed first.
pub async fn patient_reports(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Vec<ReportRow>, CommandError> {
    Ok(reader(&state)
        .await?
        .store
        .patient_reports(patient_id)
        .await?)
}

/// The reports changed most recently, newest first.
pub async fn recent_reports(state: State<'_, AppState>) -> Result<Vec<ReportRow>, CommandError> {
    Ok(reader(&state).await?.store.recent_reports(50).await?)
}

/// Starts a report: a draft.
pub async fn new_report(
    state: State<'_, AppState>,
    patient_id: PatientId,
    content: ReportContent,
) -> Result<Report, CommandError> {
    Ok(engine(&state)
        .await?
        .new_report(patient_id, content)
        .await?)
}

/// Saves a draft, finalises it, amends a final report or enters it in error.
pub async fn report_action(
    state: State<'_, AppState>,
    report_id: ReportId,
    action: ReportAction,
    content: Option<ReportContent>,
    reason: Option<String>,
) -> Result<Report, CommandError> {
    Ok(engine(&state)
        .await?
        .report_action(report_id, action, content, reason)
        .await?)
}

/// A report's signed revisions, oldest first (from the node).
pub async fn report_revisions(
    state: State<'_, AppState>,
    report_id: ReportId,
) -> Result<Vec<ReportRevision>, CommandError> {
    Ok(engine(&state).await?.report_revisions(report_id).await?)
}

/// Where a printed report was put, and whether a viewer was opened on it.
#[derive(Debug, serde::Serialize, ts_rs::TS)]
#[ts(export)]
pub struct PrintedReport {
    /// The PDF's path.
    pub path: String,
    /// Whether the system's PDF viewer was started (to print from).
    pub opened: bool,
}

/// Renders the report as a PDF on the node, keeps it in a folder only this user can read,
/// and opens it in the system's viewer to print.
pub async fn print_report(
    state: State<'_, AppState>,
    report_id: ReportId,
    revision: Option<u32>,
) -> Result<PrintedReport, CommandError> {
    let pdf = engine(&state)
        .await?
        .report_pdf(report_id, revision)
        .await?;
    let dir = std::env::temp_dir().join(format!("carebridge-print-{}", whoami()));
    let fail = |e: std::io::Error| {
        CommandError::own(
            ClientCode::LocalFailure,
            format!("the PDF could not be saved: {e}"),
        )
    };
    tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(fail)?;
    }
    let name = match revision {
        Some(n) => format!("report-{report_id}-v{n}.pdf"),
        None => format!("report-{report_id}.pdf"),
    };
    let path = dir.join(name);
    tokio::fs::write(&path, pdf).await.map_err(fail)?;
    let opened = open_in_viewer(&path);
    Ok(PrintedReport {
        path: path.display().to_string(),
        opened,
    })
}

/// The user's name, to keep one user's printouts apart from another's on a shared machine.
fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// Starts the desktop's default PDF viewer on `path`, without waiting for it.
fn open_in_viewer(path: &std::path::Path) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped off the async threads: the viewer may run for as long as it is open.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "no PDF viewer could be started");
            false
        }
    }
}

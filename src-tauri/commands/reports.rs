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
    let dir = printouts_dir();
    let fail = |e: std::io::Error| {
        CommandError::own(
            ClientCode::LocalFailure,
            format!("the PDF could not be saved: {e}"),
        )
    };
    // A printout is a report in clear: kept only while a viewer may still be opening it.
    let old = dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        clear_printouts_in(&old, PRINTOUT_KEPT, std::time::SystemTime::now())
    })
    .await;
    tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
            tokio::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .await
                .map_err(fail)?;
        }
    }
    let name = match revision {
        Some(n) => format!("report-{report_id}-v{n}.pdf"),
        None => format!("report-{report_id}.pdf"),
    };
    let path = dir.join(name);
    tokio::fs::write(&path, pdf).await.map_err(fail)?;
    let opened = open_externally(&path);
    Ok(PrintedReport {
        path: path.display().to_string(),
        opened,
    })
}

/// How long a printout is kept for its viewer.
const PRINTOUT_KEPT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// This process's printouts: under the user's folder (one user's apart from another's on a
/// shared machine), in a folder of this process's own, which is removed when the app ends.
fn printouts_dir() -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("carebridge-print-{}", whoami()))
        .join(std::process::id().to_string())
}

/// Removes the printouts this process made; run when the app ends.
pub fn remove_printouts() {
    let _ = std::fs::remove_dir_all(printouts_dir());
}

/// Removes what earlier runs that did not end cleanly left in the user's printouts folder:
/// any file older than the time a viewer needs, and the folders they leave empty.
pub fn clear_stale_printouts() {
    if let Some(user_dir) = printouts_dir().parent() {
        let _ = clear_printouts_in(user_dir, PRINTOUT_KEPT, std::time::SystemTime::now());
    }
}

/// Removes the files under `dir` last written more than `kept` before `now`, and the folders
/// that leaves empty (never `dir` itself). Returns how many files went.
fn clear_printouts_in(
    dir: &std::path::Path,
    kept: std::time::Duration,
    now: std::time::SystemTime,
) -> std::io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            removed += clear_printouts_in(&entry.path(), kept, now)?;
            // Only succeeds when it is empty.
            let _ = std::fs::remove_dir(entry.path());
        } else {
            let written = meta.modified()?;
            if now.duration_since(written).unwrap_or_default() > kept {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The user's name, to keep one user's printouts apart from another's on a shared machine.
fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// Starts the desktop's default program for `path` (a PDF viewer; a browser for an address),
/// without waiting for it.
pub(super) fn open_externally(path: &std::path::Path) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn printouts_older_than_the_viewers_time_are_removed_and_newer_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let old_run = root.path().join("1111");
        let this_run = root.path().join("2222");
        std::fs::create_dir_all(&old_run).unwrap();
        std::fs::create_dir_all(&this_run).unwrap();
        std::fs::write(old_run.join("report-a.pdf"), b"%PDF").unwrap();
        std::fs::write(this_run.join("report-b.pdf"), b"%PDF").unwrap();
        // An hour on, both are stale.
        let later = SystemTime::now() + Duration::from_secs(3600);
        let kept = Duration::from_secs(600);
        assert_eq!(
            clear_printouts_in(root.path(), kept, SystemTime::now()).unwrap(),
            0
        );
        assert!(this_run.join("report-b.pdf").exists());
        assert_eq!(clear_printouts_in(root.path(), kept, later).unwrap(), 2);
        assert!(!old_run.exists(), "an emptied run folder goes too");
        assert!(!this_run.exists());
        assert!(root.path().exists(), "the user's folder stays");
    }
}

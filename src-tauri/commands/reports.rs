//! A doctor's reports: the patient's list from the mirror, drafts, finalising, amending and
//! entering in error through the core's outbox, the signed revisions and the PDF from the node.

use carebridge_core::protocol::report::{Report, ReportAction, ReportContent, ReportRevision};
use carebridge_core::protocol::{PatientId, ReportId};
use carebridge_core::store::ReportRow;
use tauri::State;

use super::workstation::{Printout, print_or_view};
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

/// Prints a report (rendered as a PDF on the node, signed revision or the current state) on
/// the workstation's printer, or opens it in the system viewer where none is chosen.
pub async fn print_report(
    state: State<'_, AppState>,
    report_id: ReportId,
    revision: Option<u32>,
) -> Result<Printout, CommandError> {
    let pdf = engine(&state)
        .await?
        .report_pdf(report_id, revision)
        .await?;
    let name = match revision {
        Some(n) => format!("report-{report_id}-v{n}.pdf"),
        None => format!("report-{report_id}.pdf"),
    };
    print_or_view(name, "Medical report", pdf).await
}

//! A report's PDF as the node prints it: the node's organisation name and zone, the fonts
//! found once on this machine, and the revision asked for (or the report as it is now).

use carebridge_protocol::ProblemType;
use carebridge_protocol::patient::Patient;
use carebridge_protocol::report::{Report, ReportRevision};
use carebridge_report_pdf::{Fonts, ReportView, render as render_pdf};

use crate::error::ApiError;
use crate::node::Node;

/// Renders `revision` of `report` (its current state when `None`). Blocking: call it off the
/// async threads.
pub fn render(
    node: &Node,
    report: &Report,
    revisions: &[ReportRevision],
    patient: &Patient,
    revision: Option<u32>,
) -> Result<Vec<u8>, ApiError> {
    let fonts = node
        .report_fonts
        .get_or_init(|| Fonts::system().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::new(ProblemType::Unavailable, e.clone()))?;
    let patient_name = format!("{} {}", patient.given_name, patient.family_name);
    let birth = patient.birth_date.format("%Y-%m-%d").to_string();
    let total = u32::try_from(revisions.len()).unwrap_or(u32::MAX);
    let mut view = ReportView {
        organisation: node.organisation(),
        patient_name: &patient_name,
        patient_birth_date: &birth,
        patient_global_id: &patient.global_id,
        report_id: report.id,
        status: report.status,
        revision: report.revision,
        revisions: total,
        author_name: &report.author_name,
        content: &report.content,
        signature: report.signature.as_ref(),
        error_reason: report.error_reason.as_deref(),
        changed_at: report.updated_at,
        time_zone: node.tz,
    };
    if let Some(n) = revision
        && let Some(rev) = revisions.iter().find(|r| r.revision == n)
    {
        // An earlier revision prints as it was signed, with the report's withdrawal, if any,
        // still shown: a reader must never take a withdrawn text for a standing one.
        view.status = rev.status;
        view.revision = rev.revision;
        view.author_name = &rev.author_name;
        view.content = &rev.content;
        view.signature = Some(&rev.signature);
        view.changed_at = rev.signature.signed_at;
    }
    render_pdf(&view, fonts).map_err(|e| ApiError::Internal(e.to_string()))
}

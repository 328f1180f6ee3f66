//! Medical reports: drafts, finalising and amending (signed by the node for the author),
//! entering in error, and the PDF. Doctors only: reception never sees a report's content,
//! and admins see that reports exist through the audit trail.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::appointment::{WithReason, validate_reason};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::report::{
    NewReport, Report, ReportAction, ReportContent, ReportQuery, ReportRevision, ReportStatus,
    RevisionFacts,
};
use carebridge_protocol::{ProblemType, ReportId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::error::ApiError;
use crate::node::Node;
use crate::store::{patients, reports};
use crate::visibility::{self, RecordKind};

const DOCTORS: &[Role] = &[Role::Doctor];

fn validate(content: &ReportContent) -> Result<(), ApiError> {
    content
        .validate()
        .map_err(|(field, message)| ApiError::field(&format!("content.{field}"), message))
}

fn tidy(mut c: ReportContent) -> ReportContent {
    c.title = c.title.trim().to_owned();
    c.codes = c.codes.into_iter().map(|s| s.trim().to_owned()).collect();
    c
}

/// Starts a report as a `preliminary` draft.
#[utoipa::path(post, path = "/reports", tag = "reports", request_body = NewReport, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "The draft", body = Report),
              (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json")))]
pub async fn create_report(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<NewReport>,
) -> Result<Response, ApiError> {
    let may = caller.staff(DOCTORS);
    let (me, _) = caller
        .audit_refusal(&node, may, "report.create", "")
        .await?;
    validate(&req.content)?;
    let id = req.id.unwrap_or_default();
    let fp = fingerprint("report.create", &req);
    let actor = caller.actor();
    // The author's display name as the session read it: it is signed and printed.
    let my_name = caller.name.clone();
    let name = node.name().to_owned();
    let (status, r) = node
        .store
        .write(
            Some(caller.audit("report.create", format!("report/{id}"))),
            move |ctx| {
                idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                    let patient = patients::get(ctx, req.patient_id, &name)?
                        .ok_or_else(|| ApiError::field("patient_id", "no such patient"))?;
                    if let Some(why) = crate::federation::transfer::unchangeable(ctx, &patient)? {
                        return Err(ApiError::new(ProblemType::InvalidTransition, why));
                    }
                    if reports::exists(ctx, id)? {
                        return Err(ApiError::new(
                            ProblemType::Conflict,
                            "a report with that id already exists",
                        ));
                    }
                    let now = ctx.now();
                    let r = Report {
                        id,
                        patient_id: req.patient_id,
                        author_id: me,
                        author_name: my_name,
                        status: ReportStatus::Preliminary,
                        content: tidy(req.content),
                        revision: 0,
                        signature: None,
                        error_reason: None,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                    };
                    reports::put(ctx, &r)?;
                    ctx.set_detail(format!("draft for patient/{}", r.patient_id));
                    ctx.emit(
                        EventKind::ReportCreated,
                        visibility::audience(RecordKind::Report),
                        &r,
                    )?;
                    Ok(r)
                })
            },
        )
        .await?;
    Ok(with_etag(status, r.version, r))
}

/// Lists reports, most recently changed first.
#[utoipa::path(get, path = "/reports", tag = "reports", params(ReportQuery), security(("bearer" = [])),
    responses((status = 200, description = "Reports", body = Vec<Report>)))]
pub async fn list_reports(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<ReportQuery>,
) -> Result<axum::Json<Vec<Report>>, ApiError> {
    let entity = q
        .patient_id
        .map(|p| format!("patient/{p}"))
        .unwrap_or_default();
    let may = caller.may_see(RecordKind::Report);
    caller
        .audit_refusal(&node, may, "report.list", entity.clone())
        .await?;
    let list = node
        .store
        .write(Some(caller.audit("report.list", entity)), move |ctx| {
            let list = reports::list(ctx, &q)?;
            ctx.set_detail(format!("{} reports", list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    Ok(axum::Json(list))
}

/// Reads one report's current state.
#[utoipa::path(get, path = "/reports/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses((status = 200, description = "The report", body = Report),
              (status = 404, description = "No such report", body = Problem, content_type = "application/problem+json")))]
pub async fn get_report(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
) -> Result<Response, ApiError> {
    let may = caller.may_see(RecordKind::Report);
    caller
        .audit_refusal(&node, may, "report.read", format!("report/{id}"))
        .await?;
    let r = node
        .store
        .write(
            Some(caller.audit("report.read", format!("report/{id}"))),
            move |ctx| reports::get(ctx, id)?.ok_or_else(|| ApiError::not_found("report")),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, r.version, r))
}

/// Every signed revision of a report, oldest first.
#[utoipa::path(get, path = "/reports/{id}/revisions", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses((status = 200, description = "Its revisions", body = Vec<ReportRevision>),
              (status = 404, description = "No such report", body = Problem, content_type = "application/problem+json")))]
pub async fn list_report_revisions(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
) -> Result<axum::Json<Vec<ReportRevision>>, ApiError> {
    let may = caller.may_see(RecordKind::Report);
    caller
        .audit_refusal(&node, may, "report.revisions", format!("report/{id}"))
        .await?;
    let list = node
        .store
        .write(
            Some(caller.audit("report.revisions", format!("report/{id}"))),
            move |ctx| {
                if !reports::exists(ctx, id)? {
                    return Err(ApiError::not_found("report"));
                }
                Ok(reports::revisions(ctx, id)?)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// What an action brings with it.
enum Input {
    Content(ReportContent),
    Reason(String),
    None,
}

/// Saves a draft's content, replacing what it held. Needs `If-Match`; the draft's author only.
#[utoipa::path(put, path = "/reports/{id}/draft", tag = "reports", request_body = ReportContent, security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id"),
           ("If-Match" = String, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The draft's new state", body = Report),
              (status = 409, description = "The report is no longer a draft", body = Problem, content_type = "application/problem+json"),
              (status = 412, description = "Stale If-Match; `current` is the report now", body = Problem, content_type = "application/problem+json")))]
pub async fn save_report_draft(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
    if_match: IfMatch,
    key: IdempotencyKey,
    Json(content): Json<ReportContent>,
) -> Result<Response, ApiError> {
    validate(&content)?;
    act(
        node,
        caller,
        id,
        ReportAction::SaveDraft,
        if_match,
        key,
        Input::Content(content),
    )
    .await
}

/// Finalises a draft: it becomes revision 1, `final`, signed by the node for its author.
#[utoipa::path(post, path = "/reports/{id}/finalise", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id"),
           ("If-Match" = String, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The final report", body = Report),
              (status = 409, description = "Not a draft", body = Problem, content_type = "application/problem+json")))]
pub async fn finalise_report(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
    if_match: IfMatch,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    act(
        node,
        caller,
        id,
        ReportAction::Finalise,
        if_match,
        key,
        Input::None,
    )
    .await
}

/// Amends a final report: a new signed revision, `amended`; earlier ones are kept.
#[utoipa::path(post, path = "/reports/{id}/amend", tag = "reports", request_body = ReportContent, security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id"),
           ("If-Match" = String, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The amended report", body = Report),
              (status = 409, description = "Not final or amended", body = Problem, content_type = "application/problem+json")))]
pub async fn amend_report(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
    if_match: IfMatch,
    key: IdempotencyKey,
    Json(content): Json<ReportContent>,
) -> Result<Response, ApiError> {
    validate(&content)?;
    act(
        node,
        caller,
        id,
        ReportAction::Amend,
        if_match,
        key,
        Input::Content(content),
    )
    .await
}

/// Marks a report as entered in error, with a reason; its revisions stay readable.
#[utoipa::path(post, path = "/reports/{id}/entered-in-error", tag = "reports", request_body = WithReason, security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id"),
           ("If-Match" = String, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The report, entered in error", body = Report),
              (status = 409, description = "Already entered in error", body = Problem, content_type = "application/problem+json")))]
pub async fn report_entered_in_error(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
    if_match: IfMatch,
    key: IdempotencyKey,
    Json(req): Json<WithReason>,
) -> Result<Response, ApiError> {
    validate_reason(&req.reason).map_err(|m| ApiError::field("reason", m))?;
    act(
        node,
        caller,
        id,
        ReportAction::EnteredInError,
        if_match,
        key,
        Input::Reason(req.reason),
    )
    .await
}

async fn act(
    node: Arc<Node>,
    caller: Caller,
    id: ReportId,
    action: ReportAction,
    if_match: IfMatch,
    key: IdempotencyKey,
    input: Input,
) -> Result<Response, ApiError> {
    let may = caller.staff(DOCTORS);
    let (me, _) = caller
        .audit_refusal(
            &node,
            may,
            &format!("report.{}", action.as_str()),
            format!("report/{id}"),
        )
        .await?;
    let fp = fingerprint(
        action.as_str(),
        &(
            id,
            match &input {
                Input::Content(c) => serde_json::to_value(c).unwrap_or_default(),
                Input::Reason(r) => serde_json::Value::String(r.clone()),
                Input::None => serde_json::Value::Null,
            },
        ),
    );
    let actor = caller.actor();
    // Whoever finalises or amends is the author of that revision: their name as the session
    // read it is signed and printed.
    let my_name = caller.name.clone();
    let audit = caller.audit(
        &format!("report.{}", action.as_str()),
        format!("report/{id}"),
    );
    let signer = node.clone();
    let (status, r) = node
        .store
        .write(Some(audit), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::OK, |ctx| {
                let mut r = reports::get(ctx, id)?.ok_or_else(|| ApiError::not_found("report"))?;
                let drafting = matches!(action, ReportAction::SaveDraft | ReportAction::Finalise)
                    || r.status == ReportStatus::Preliminary;
                if drafting && r.author_id != me {
                    return Err(ApiError::forbidden(
                        "a draft belongs to its author until it is finalised",
                    ));
                }
                if let Some(p) = patients::get(ctx, r.patient_id, "")?
                    && let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)?
                {
                    return Err(ApiError::new(ProblemType::InvalidTransition, why));
                }
                if_match.require(&r, r.version)?;
                let Some(next) = r.status.apply(action) else {
                    let mut p = Problem::new(
                        ProblemType::InvalidTransition,
                        Some(format!(
                            "a {} report cannot be {}",
                            r.status.as_str(),
                            match action {
                                ReportAction::SaveDraft => "edited: amend it instead",
                                ReportAction::Finalise => "finalised",
                                ReportAction::Amend => "amended",
                                ReportAction::EnteredInError => "entered in error again",
                            }
                        )),
                    );
                    p.current = serde_json::to_value(&r).ok();
                    return Err(ApiError::Problem(Box::new(p)));
                };
                let now = ctx.now();
                match input {
                    Input::Content(c) => {
                        r.content = tidy(c);
                        if action == ReportAction::Amend {
                            r.author_id = me;
                            r.author_name = my_name.clone();
                        }
                    }
                    Input::Reason(reason) => {
                        let reason = reason.trim().to_owned();
                        // The reason stays with the report: the audit trail holds no free text.
                        ctx.set_detail("entered in error, with a reason");
                        r.error_reason = Some(reason);
                    }
                    Input::None => {}
                }
                if matches!(action, ReportAction::Finalise | ReportAction::Amend) {
                    // A draft is finalised by its author (checked above).
                    if action == ReportAction::Finalise {
                        r.author_name = my_name.clone();
                    }
                    let revision = r.revision + 1;
                    let signature = RevisionFacts {
                        report_id: r.id,
                        revision,
                        status: next,
                        patient_id: r.patient_id,
                        author_id: r.author_id,
                        author_name: &r.author_name,
                        content: &r.content,
                    }
                    .sign(signer.name(), &signer.signing_key, now);
                    reports::add_revision(
                        ctx,
                        r.id,
                        &ReportRevision {
                            revision,
                            status: next,
                            content: r.content.clone(),
                            author_id: r.author_id,
                            author_name: r.author_name.clone(),
                            signature: signature.clone(),
                        },
                    )?;
                    ctx.set_detail(format!(
                        "revision {revision} signed, fingerprint {}",
                        signature.fingerprint()
                    ));
                    r.revision = revision;
                    r.signature = Some(signature);
                }
                r.status = next;
                r.version += 1;
                r.updated_at = now;
                reports::put(ctx, &r)?;
                ctx.emit(
                    EventKind::ReportUpdated,
                    visibility::audience(RecordKind::Report),
                    &r,
                )?;
                Ok(r)
            })
        })
        .await?;
    Ok(with_etag(status, r.version, r))
}

/// Which revision to print.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PdfQuery {
    /// A signed revision's number; by default the report as it is now.
    #[serde(default)]
    pub revision: Option<u32>,
}

/// The report as a PDF: the organisation, the patient, the author, status and version, and
/// for a signed revision its signature's time and fingerprint.
#[utoipa::path(get, path = "/reports/{id}/pdf", tag = "reports", params(("id" = String, Path, description = "Report id"), PdfQuery), security(("bearer" = [])),
    responses((status = 200, description = "The PDF", content_type = "application/pdf"),
              (status = 404, description = "No such report or revision", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The node has no font to render with", body = Problem, content_type = "application/problem+json")))]
pub async fn get_report_pdf(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ReportId>,
    Query(q): Query<PdfQuery>,
) -> Result<Response, ApiError> {
    let may = caller.may_see(RecordKind::Report);
    caller
        .audit_refusal(&node, may, "report.export-pdf", format!("report/{id}"))
        .await?;
    let name = node.name().to_owned();
    let entity = format!("report/{id}");
    let (r, revisions, patient) = node
        .store
        .write(
            Some(caller.audit("report.export-pdf", entity)),
            move |ctx| {
                let r = reports::get(ctx, id)?.ok_or_else(|| ApiError::not_found("report"))?;
                let revisions = reports::revisions(ctx, id)?;
                let patient = patients::get(ctx, r.patient_id, &name)?
                    .ok_or_else(|| ApiError::not_found("patient"))?;
                if let Some(n) = q.revision {
                    if !revisions.iter().any(|x| x.revision == n) {
                        return Err(ApiError::not_found("revision of this report"));
                    }
                    ctx.set_detail(format!("revision {n}"));
                }
                Ok::<_, ApiError>((r, revisions, patient))
            },
        )
        .await?;
    let pdf = tokio::task::spawn_blocking(move || {
        crate::report_pdf::render(&node, &r, &revisions, &patient, q.revision)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"report-{id}.pdf\""),
            ),
        ],
        pdf,
    )
        .into_response())
}

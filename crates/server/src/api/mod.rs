//! The HTTP API: routes, the OpenAPI document generated from them, and the layers that make
//! every error an RFC 9457 problem.

pub mod contract;
pub mod extract;
pub mod granted;
pub mod idempotency;
pub mod inbox;
pub mod request;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use carebridge_protocol::problem::{FieldError, Problem};
use carebridge_protocol::{PROBLEM_JSON, ProblemType};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, InternalCause, problem_response};
use crate::node::Node;

use v1::{
    access, appointments, audit, documents, events, exchange, imaging, kiosks, patients,
    practitioners, reports, schedules, sessions, snapshot, transfers,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "CareBridge node API", description = "Appointments, patients and live updates of one CareBridge node. Errors are RFC 9457 problem+json."),
    components(schemas(Problem, FieldError, ProblemType)),
    tags((name = "sessions", description = "Signing in and out"),
         (name = "patients", description = "Patient records"),
         (name = "appointments", description = "Booking and the appointment lifecycle"),
         (name = "schedules", description = "Working hours, absences and slots"),
         (name = "practitioners", description = "Staff accounts"),
         (name = "kiosks", description = "Kiosk devices"),
         (name = "kiosk", description = "What a kiosk does for the patient at it"),
         (name = "reports", description = "Medical reports: drafts, signed revisions, PDF"),
         (name = "documents", description = "Patients' letters and scans, with every version"),
         (name = "imaging", description = "Imaging orders, studies from the PACS, reconciliation"),
         (name = "exchange", description = "Peers, consent, transmissions, received reports, admin updates"),
         (name = "access", description = "Patient-consented access across hospitals: requests, codes, grants, reads, revocation"),
         (name = "transfers", description = "Moving a patient's record to another hospital, and records moved here"),
         (name = "events", description = "The live stream"),
         (name = "audit", description = "The audit trail"),
         (name = "federation", description = "What peer nodes send (signed, sealed envelopes)"))
)]
struct ApiDoc;

/// The `/api/v1` routes with their OpenAPI description. The router reads like the API table.
fn v1_routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::new()
        .routes(routes!(sessions::create_session))
        .routes(routes!(sessions::delete_current_session))
        .routes(routes!(sessions::create_kiosk_session))
        .routes(routes!(sessions::get_me))
        .routes(routes!(
            practitioners::list_practitioners,
            practitioners::create_practitioner
        ))
        .routes(routes!(practitioners::update_practitioner))
        .routes(routes!(schedules::get_schedule, schedules::put_schedule))
        .routes(routes!(schedules::create_absence))
        .routes(routes!(schedules::list_slots))
        .routes(routes!(kiosks::list_kiosks, kiosks::register_kiosk))
        .routes(routes!(kiosks::revoke_kiosk))
        .routes(routes!(
            patients::search_patients,
            patients::register_patient
        ))
        .routes(routes!(patients::get_patient, patients::update_patient))
        .routes(routes!(
            patients::identify_kiosk_patient,
            patients::end_kiosk_identification
        ))
        .routes(routes!(
            appointments::list_appointments,
            appointments::book_appointment
        ))
        .routes(routes!(appointments::get_appointment))
        .routes(routes!(appointments::confirm_appointment))
        .routes(routes!(appointments::decline_appointment))
        .routes(routes!(appointments::reschedule_appointment))
        .routes(routes!(appointments::cancel_appointment))
        .routes(routes!(appointments::check_in_appointment))
        .routes(routes!(appointments::complete_appointment))
        .routes(routes!(appointments::no_show_appointment))
        .routes(routes!(reports::list_reports, reports::create_report))
        .routes(routes!(reports::get_report))
        .routes(routes!(reports::list_report_revisions))
        .routes(routes!(reports::save_report_draft))
        .routes(routes!(reports::finalise_report))
        .routes(routes!(reports::amend_report))
        .routes(routes!(reports::report_entered_in_error))
        .routes(routes!(reports::get_report_pdf))
        .routes(routes!(imaging::create_imaging_order))
        .routes(routes!(imaging::get_patient_imaging))
        .routes(routes!(imaging::get_study_preview))
        .routes(routes!(imaging::list_unmatched_studies))
        .routes(routes!(imaging::link_study))
        .routes(routes!(imaging::upload_dicom_instance))
        .routes(routes!(imaging::imaging_hint))
        .routes(routes!(documents::list_documents, documents::add_document))
        .routes(routes!(documents::get_document_content))
        .routes(routes!(exchange::list_peers))
        .routes(routes!(exchange::list_consents, exchange::record_consent))
        .routes(routes!(exchange::withdraw_consent))
        .routes(routes!(
            exchange::list_transmissions,
            exchange::send_reports
        ))
        .routes(routes!(exchange::list_received))
        .routes(routes!(exchange::get_received))
        .routes(routes!(
            exchange::list_admin_updates,
            exchange::send_admin_update
        ))
        .routes(routes!(exchange::acknowledge_admin_update))
        .routes(routes!(
            access::request_remote_access,
            access::list_remote_access
        ))
        .routes(routes!(access::send_access_code))
        .routes(routes!(access::read_remote_records))
        .routes(routes!(access::list_access_requests))
        .routes(routes!(access::list_access_reads))
        .routes(routes!(access::decide_access_request))
        .routes(routes!(access::revoke_access))
        .routes(routes!(
            transfers::start_transfer,
            transfers::list_transfers
        ))
        .routes(routes!(transfers::list_transferred_records))
        .routes(routes!(snapshot::get_snapshot))
        .routes(routes!(events::stream_events))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
}

/// The router and its OpenAPI 3.1 document, generated from the same handlers. The common
/// responses are added once every route is in.
fn routes_and_doc() -> (Router<Arc<Node>>, OpenApiDoc) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1_routes())
        .routes(routes!(inbox::receive))
        .routes(routes!(granted::read_granted))
        .split_for_parts();
    contract::Contract.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI 3.1 document.
pub fn openapi() -> OpenApiDoc {
    routes_and_doc().1
}

/// The node's whole HTTP application.
pub fn router(node: Arc<Node>) -> Router {
    let (api, doc) = routes_and_doc();
    let doc = Arc::new(serde_json::to_vec(&doc).unwrap_or_default());
    let body_limit = node.config.max_body_bytes;
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
        }),
    )
    .route("/healthz", get(healthz))
    .nest("/fhir/R4", crate::fhir::router())
    .fallback(|| async {
        ApiError::new(
            ProblemType::NotFound,
            "no such route; see /api/v1/openapi.json",
        )
    })
    .method_not_allowed_fallback(|| async {
        ApiError::new(
            ProblemType::MethodNotAllowed,
            "this route does not accept that method; see /api/v1/openapi.json",
        )
    })
    .layer(DefaultBodyLimit::max(body_limit))
    .layer(middleware::from_fn(problem_for_every_error))
    .layer(CatchPanicLayer::custom(|_| {
        problem_response(&Problem::new(
            ProblemType::Internal,
            Some("the request failed on the node; nothing was changed".to_owned()),
        ))
    }))
    .layer(middleware::from_fn(request::each_request))
    .with_state(node)
}

async fn healthz(State(node): State<Arc<Node>>) -> Response {
    let ok = node
        .store
        .read(|tx| crate::store::ping(tx).map_err(ApiError::from))
        .await;
    match ok {
        Ok(()) => {
            axum::Json(serde_json::json!({"status": "ok", "node": node.name()})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Turns any error response that is not yet problem+json (axum's own rejections, layers) into
/// one, and logs the private cause of internal errors.
async fn problem_for_every_error(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if let Some(cause) = res.extensions().get::<Arc<InternalCause>>() {
        tracing::error!(cause = %cause.0, "request failed");
    }
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    // FHIR's errors are OperationOutcomes (crate::fhir), already in their final form.
    if is_problem || crate::fhir::is_fhir_json(res.headers()) {
        return res;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ProblemType::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemType::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemType::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemType::UnsupportedMediaType,
        StatusCode::BAD_REQUEST => ProblemType::MalformedBody,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemType::Validation,
        StatusCode::UNAUTHORIZED => ProblemType::Unauthenticated,
        StatusCode::FORBIDDEN => ProblemType::Forbidden,
        StatusCode::SERVICE_UNAVAILABLE => ProblemType::Unavailable,
        _ => ProblemType::Internal,
    };
    let mut p = Problem::new(code, None);
    p.status = status.as_u16();
    let mut out = problem_response(&p);
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// A JSON answer with an `ETag` of the record's version.
pub fn with_etag<T: serde::Serialize>(status: StatusCode, version: i64, body: T) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

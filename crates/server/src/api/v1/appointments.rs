//! Booking appointments and moving them through their statuses.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::AppointmentId;
use carebridge_protocol::appointment::{
    Appointment, AppointmentAction, AppointmentQuery, BookAppointment, Reschedule, WithReason,
};
use carebridge_protocol::problem::Problem;

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::booking::{self, ActionInput};
use crate::error::ApiError;
use crate::node::Node;
use crate::store::appointments;
use crate::visibility;

/// Books an appointment: `booked` when staff book it, `pending` (holding the slot) when a kiosk does.
#[utoipa::path(post, path = "/appointments", tag = "appointments", request_body = BookAppointment, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Booked", body = Appointment),
              (status = 409, description = "The time is taken", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Outside the schedule, the doctor absent, or invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn book_appointment(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<BookAppointment>,
) -> Result<impl IntoResponse, ApiError> {
    let booked_by = booking::booker(&caller.viewer, req.practitioner_id)?;
    booking::check_booking(&caller.viewer, &req)?;
    let tz = node.tz;
    let fp = fingerprint("book", &req);
    let actor = caller.actor();
    let (status, a) = node
        .store
        .write(Some(caller.audit("appointment.book", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                Ok(booking::book(ctx, tz, booked_by, req)?)
            })
        })
        .await?;
    Ok(with_etag(status, a.version, a))
}

/// Lists appointments: reception sees all, a doctor their own, a kiosk the bookings it made.
#[utoipa::path(get, path = "/appointments", tag = "appointments", params(AppointmentQuery), security(("bearer" = [])),
    responses((status = 200, description = "Appointments by start time", body = Vec<Appointment>)))]
pub async fn list_appointments(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<AppointmentQuery>,
) -> Result<axum::Json<Vec<Appointment>>, ApiError> {
    let scope = visibility::appointment_scope(&caller.viewer).ok_or_else(|| {
        ApiError::forbidden("only reception, doctors and kiosks see appointments")
    })?;
    let list = node
        .store
        .write(Some(caller.audit("appointment.list", "")), move |ctx| {
            let list = appointments::list(ctx, &q, scope)?;
            ctx.set_detail(format!("{} appointments", list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    Ok(axum::Json(list))
}

/// Reads one appointment.
#[utoipa::path(get, path = "/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Appointment id")),
    responses((status = 200, description = "The appointment", body = Appointment),
              (status = 404, description = "No such appointment visible to you", body = Problem, content_type = "application/problem+json")))]
pub async fn get_appointment(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<AppointmentId>,
) -> Result<impl IntoResponse, ApiError> {
    let c = caller.clone();
    let a = node
        .store
        .write(
            Some(caller.audit("appointment.read", format!("appointment/{id}"))),
            move |ctx| match appointments::get(ctx, id)? {
                Some(a) if visibility::may_see_appointment(&c.viewer, &a) => Ok(a),
                _ => Err(ApiError::not_found("appointment")),
            },
        )
        .await?;
    Ok(with_etag(StatusCode::OK, a.version, a))
}

async fn act(
    node: Arc<Node>,
    caller: Caller,
    id: AppointmentId,
    action: AppointmentAction,
    if_match: IfMatch,
    key: IdempotencyKey,
    input: ActionInput,
) -> Result<axum::response::Response, ApiError> {
    booking::check_action(&caller.viewer, action, &input)?;
    let tz = node.tz;
    let fp = fingerprint(
        action.as_str(),
        &(
            id,
            match &input {
                ActionInput::None => serde_json::Value::Null,
                ActionInput::Reason(r) => serde_json::Value::String(r.clone()),
                ActionInput::Move(m) => serde_json::to_value(m).unwrap_or_default(),
            },
        ),
    );
    let actor = caller.actor();
    let viewer = caller.viewer;
    let audit = caller.audit(
        &format!("appointment.{}", action.as_str()),
        format!("appointment/{id}"),
    );
    let (status, a) = node
        .store
        .write(Some(audit), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::OK, |ctx| {
                Ok(booking::act(
                    ctx, tz, &viewer, id, action, input, if_match.0,
                )?)
            })
        })
        .await?;
    Ok(with_etag(status, a.version, a).into_response())
}

macro_rules! action_handler {
    ($(#[$doc:meta])* $name:ident, $path:literal, $action:expr) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "appointments", security(("bearer" = [])),
            params(("id" = String, Path, description = "Appointment id"),
                   ("If-Match" = Option<String>, Header, description = "The version you last read"),
                   ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
            responses((status = 200, description = "The appointment's new state", body = Appointment),
                      (status = 409, description = "Not allowed from the current status; `allowed` lists what is", body = Problem, content_type = "application/problem+json"),
                      (status = 412, description = "Stale If-Match; `current` is the record now", body = Problem, content_type = "application/problem+json")))]
        pub async fn $name(State(node): State<Arc<Node>>, caller: Caller, Path(id): Path<AppointmentId>, if_match: IfMatch, key: IdempotencyKey) -> Result<axum::response::Response, ApiError> {
            act(node, caller, id, $action, if_match, key, ActionInput::None).await
        }
    };
}

macro_rules! reason_handler {
    ($(#[$doc:meta])* $name:ident, $path:literal, $action:expr) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "appointments", request_body = WithReason, security(("bearer" = [])),
            params(("id" = String, Path, description = "Appointment id"),
                   ("If-Match" = Option<String>, Header, description = "The version you last read"),
                   ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
            responses((status = 200, description = "The appointment's new state", body = Appointment),
                      (status = 409, description = "Not allowed from the current status; `allowed` lists what is", body = Problem, content_type = "application/problem+json"),
                      (status = 412, description = "Stale If-Match; `current` is the record now", body = Problem, content_type = "application/problem+json")))]
        pub async fn $name(State(node): State<Arc<Node>>, caller: Caller, Path(id): Path<AppointmentId>, if_match: IfMatch, key: IdempotencyKey, Json(body): Json<WithReason>) -> Result<axum::response::Response, ApiError> {
            act(node, caller, id, $action, if_match, key, ActionInput::Reason(body.reason)).await
        }
    };
}

action_handler!(
    /// The doctor confirms a pending kiosk booking.
    confirm_appointment, "/appointments/{id}/confirm", AppointmentAction::Confirm);
action_handler!(
    /// The patient has arrived (reception, the doctor, or the kiosk the patient identified at).
    check_in_appointment, "/appointments/{id}/check-in", AppointmentAction::CheckIn);
action_handler!(
    /// The visit took place.
    complete_appointment, "/appointments/{id}/complete", AppointmentAction::Complete);
action_handler!(
    /// The patient did not come.
    no_show_appointment, "/appointments/{id}/no-show", AppointmentAction::NoShow);
reason_handler!(
    /// The doctor declines a pending kiosk booking, with a reason.
    decline_appointment, "/appointments/{id}/decline", AppointmentAction::Decline);
reason_handler!(
    /// Cancels an appointment, with a reason.
    cancel_appointment, "/appointments/{id}/cancel", AppointmentAction::Cancel);

/// Moves an appointment to another slot; its status stays. Staff may overbook with a reason.
#[utoipa::path(post, path = "/appointments/{id}/reschedule", tag = "appointments", request_body = Reschedule, security(("bearer" = [])),
    params(("id" = String, Path, description = "Appointment id"),
           ("If-Match" = Option<String>, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The appointment's new state", body = Appointment),
              (status = 409, description = "The new time is taken, or the status does not allow moving", body = Problem, content_type = "application/problem+json"),
              (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json")))]
pub async fn reschedule_appointment(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<AppointmentId>,
    if_match: IfMatch,
    key: IdempotencyKey,
    Json(body): Json<Reschedule>,
) -> Result<axum::response::Response, ApiError> {
    act(
        node,
        caller,
        id,
        AppointmentAction::Reschedule,
        if_match,
        key,
        ActionInput::Move(body),
    )
    .await
}

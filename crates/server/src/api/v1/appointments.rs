//! Booking appointments and moving them through their statuses.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::appointment::{
    Appointment, AppointmentAction, AppointmentQuery, AppointmentStatus, BookAppointment, BookedBy,
    Reschedule, WithReason, validate_reason, validate_time,
};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::{AppointmentId, PractitionerId, ProblemType};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use chrono_tz::Tz;

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::schedule;
use crate::store::appointments;
use crate::store::{Tx, WriteCtx, kiosks, patients, practitioners, schedules};
use crate::visibility;

/// How far ahead `next_available_from` looks.
const NEXT_AVAILABLE_DAYS: u32 = 366;

/// Checks that `who` is an enabled doctor.
fn require_doctor(tx: &Tx<'_>, who: PractitionerId) -> Result<(), ApiError> {
    match practitioners::get(tx, who)? {
        Some(p) if p.role == Role::Doctor && !p.disabled => Ok(()),
        _ => Err(ApiError::field(
            "practitioner_id",
            "is not an active doctor on this node",
        )),
    }
}

/// Decides the time of a booking or move, checking schedule, absence and overlap.
struct TimeRequest {
    start: Option<DateTime<Utc>>,
    next_available_from: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    override_reason: Option<String>,
}

fn decide_time(
    ctx: &WriteCtx<'_>,
    tz: Tz,
    who: PractitionerId,
    req: &TimeRequest,
    except: Option<AppointmentId>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let now = ctx.now();
    let sched = schedules::get(ctx, who)?;
    let (start, end) = match (req.start, req.next_available_from) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "start",
                "give either start or next_available_from, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::field(
                "start",
                "is required (or give next_available_from)",
            ));
        }
        (None, Some(from)) => {
            if req.override_reason.is_some() {
                return Err(ApiError::field(
                    "override_reason",
                    "cannot be combined with next_available_from",
                ));
            }
            let s = sched.ok_or_else(|| {
                ApiError::new(
                    ProblemType::OutsideSchedule,
                    "the doctor has no working hours set",
                )
            })?;
            return schedule::next_free(ctx, tz, &s, from.max(now), NEXT_AVAILABLE_DAYS)?
                .ok_or_else(|| {
                    ApiError::new(
                        ProblemType::SlotTaken,
                        "the doctor has no free slot in the next year",
                    )
                });
        }
        (Some(start), None) => match (&req.override_reason, &sched) {
            (None, None) => {
                return Err(ApiError::new(
                    ProblemType::OutsideSchedule,
                    "the doctor has no working hours set",
                ));
            }
            (None, Some(s)) => {
                let (a, b) = schedule::slot_at(tz, s, start).ok_or_else(|| {
                    ApiError::new(
                        ProblemType::OutsideSchedule,
                        "that time is not the start of one of the doctor's slots",
                    )
                })?;
                if req.end.is_some_and(|e| e != b) {
                    return Err(ApiError::field(
                        "end",
                        "must be the end of the slot (or omitted) unless overbooking with an override",
                    ));
                }
                if a < now {
                    return Err(ApiError::new(
                        ProblemType::OutsideSchedule,
                        "that slot has already begun",
                    ));
                }
                (a, b)
            }
            (Some(_), s) => {
                let len = s.as_ref().map_or(15, |s| i64::from(s.slot_minutes));
                // Times are stored to the millisecond.
                let start = start.trunc_subsecs(3);
                let end = req
                    .end
                    .map_or(start + Duration::minutes(len), |e| e.trunc_subsecs(3));
                if end <= start {
                    return Err(ApiError::field("end", "must be after start"));
                }
                if end - start > schedule::MAX_APPOINTMENT {
                    return Err(ApiError::field(
                        "end",
                        "an appointment lasts at most 12 hours",
                    ));
                }
                (start, end)
            }
        },
    };
    if let Some(a) = schedules::absences(ctx, who, start, end)?.first() {
        return Err(ApiError::new(
            ProblemType::PractitionerAbsent,
            format!(
                "the doctor is absent from {} to {} ({})",
                a.start, a.end, a.reason
            ),
        ));
    }
    if req.override_reason.is_none()
        && appointments::overlapping(ctx, who, start, end, except)?.is_some()
    {
        return Err(ApiError::new(
            ProblemType::SlotTaken,
            "the doctor already has an appointment at that time; choose another slot (staff may overbook with an override reason)",
        ));
    }
    Ok((start, end))
}

/// Refuses times outside the service years before any date arithmetic sees them.
fn check_times(times: &[(&str, Option<DateTime<Utc>>)]) -> Result<(), ApiError> {
    for (field, t) in times {
        if let Some(t) = t {
            validate_time(*t).map_err(|m| ApiError::field(field, m))?;
        }
    }
    Ok(())
}

fn check_override(caller: &Caller, reason: &Option<String>) -> Result<(), ApiError> {
    match reason {
        None => Ok(()),
        Some(_) if caller.kiosk().is_some() => {
            Err(ApiError::forbidden("a kiosk can never overbook"))
        }
        Some(r) => validate_reason(r).map_err(|m| ApiError::field("override_reason", m)),
    }
}

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
    let booked_by = match caller.viewer {
        Viewer::Staff {
            id,
            role: Role::Doctor,
        } => {
            if req.practitioner_id != id {
                return Err(ApiError::forbidden(
                    "a doctor books on their own schedule only",
                ));
            }
            BookedBy::Staff { id }
        }
        Viewer::Staff {
            id,
            role: Role::Reception,
        } => BookedBy::Staff { id },
        Viewer::Staff {
            role: Role::Admin | Role::Reviewer,
            ..
        } => {
            return Err(ApiError::forbidden(
                "only reception, doctors and kiosks book appointments",
            ));
        }
        Viewer::Kiosk { id } => BookedBy::Kiosk { id },
    };
    check_times(&[
        ("start", req.start),
        ("next_available_from", req.next_available_from),
        ("end", req.end),
    ])?;
    check_override(&caller, &req.override_reason)?;
    validate_reason(&req.reason).map_err(|m| ApiError::field("reason", m))?;
    let tz = node.tz;
    let fp = fingerprint("book", &req);
    let actor = caller.actor();
    let (status, a) = node
        .store
        .write(Some(caller.audit("appointment.book", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                let now = ctx.now();
                if let BookedBy::Kiosk { id } = booked_by
                    && !kiosks::is_identified(ctx, id, req.patient_id, now.timestamp_millis())?
                {
                    return Err(ApiError::new(
                        ProblemType::PatientNotIdentified,
                        "the patient must identify at this kiosk (card number and birth date) before booking",
                    ));
                }
                require_doctor(ctx, req.practitioner_id)?;
                if patients::get(ctx, req.patient_id, "")?.is_none() {
                    return Err(ApiError::field("patient_id", "no such patient"));
                }
                let (start, end) = decide_time(
                    ctx,
                    tz,
                    req.practitioner_id,
                    &TimeRequest {
                        start: req.start,
                        next_available_from: req.next_available_from,
                        end: req.end,
                        override_reason: req.override_reason.clone(),
                    },
                    None,
                )?;
                let id = match req.id {
                    Some(id) if appointments::get(ctx, id)?.is_some() => {
                        return Err(ApiError::new(ProblemType::Conflict, "that appointment id is already in use"));
                    }
                    Some(id) => id,
                    None => AppointmentId::new(),
                };
                let a = Appointment {
                    id,
                    reference: appointments::new_reference(ctx)?,
                    patient_id: req.patient_id,
                    practitioner_id: req.practitioner_id,
                    start,
                    end,
                    reason: req.reason.trim().to_owned(),
                    status: if matches!(booked_by, BookedBy::Kiosk { .. }) {
                        AppointmentStatus::Pending
                    } else {
                        AppointmentStatus::Booked
                    },
                    booked_by,
                    override_reason: req.override_reason.map(|r| r.trim().to_owned()),
                    cancellation_reason: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                appointments::insert(ctx, &a)?;
                ctx.set_entity(format!("appointment/{}", a.id));
                if let Some(r) = &a.override_reason {
                    ctx.set_detail(format!("OVERRIDE (overbooked on purpose): {r}"));
                }
                ctx.emit(EventKind::AppointmentCreated, visibility::appointment_audience(&a), &a)?;
                Ok(a)
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

/// What an action carries besides its name.
enum ActionInput {
    None,
    Reason(String),
    Move(Reschedule),
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
    match &input {
        ActionInput::Reason(r) => validate_reason(r).map_err(|m| ApiError::field("reason", m))?,
        ActionInput::Move(m) => {
            check_times(&[("start", Some(m.start)), ("end", m.end)])?;
            check_override(&caller, &m.override_reason)?
        }
        ActionInput::None => {}
    }
    if caller.kiosk().is_some() && action != AppointmentAction::CheckIn {
        return Err(ApiError::forbidden(format!(
            "a kiosk may not {} appointments",
            action.as_str()
        )));
    }
    if let Viewer::Staff {
        role: Role::Admin | Role::Reviewer,
        ..
    } = caller.viewer
    {
        return Err(ApiError::forbidden(
            "only reception, doctors and kiosks work on appointments",
        ));
    }
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
    let c = caller.clone();
    let audit = caller.audit(
        &format!("appointment.{}", action.as_str()),
        format!("appointment/{id}"),
    );
    let (status, a) = node
        .store
        .write(Some(audit), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::OK, |ctx| {
                let now = ctx.now();
                let mut a = appointments::get(ctx, id)?
                    .ok_or_else(|| ApiError::not_found("appointment"))?;
                match c.viewer {
                    Viewer::Staff {
                        id: me,
                        role: Role::Doctor,
                    } if a.practitioner_id != me => {
                        return Err(ApiError::forbidden(
                            "a doctor works on their own schedule only",
                        ));
                    }
                    Viewer::Staff {
                        role: Role::Reception,
                        ..
                    } if matches!(
                        action,
                        AppointmentAction::Confirm | AppointmentAction::Decline
                    ) =>
                    {
                        return Err(ApiError::forbidden(
                            "only the doctor can confirm or decline a kiosk booking",
                        ));
                    }
                    Viewer::Kiosk { id: device } => {
                        if !kiosks::is_identified(
                            ctx,
                            device,
                            a.patient_id,
                            now.timestamp_millis(),
                        )? {
                            return Err(ApiError::new(
                                ProblemType::PatientNotIdentified,
                                "the patient must identify at this kiosk before checking in",
                            ));
                        }
                        if schedule::local_date(tz, a.start) != schedule::local_date(tz, now) {
                            return Err(ApiError::forbidden(
                                "a kiosk checks in today's appointments only",
                            ));
                        }
                    }
                    _ => {}
                }
                if_match.check(&a, a.version)?;
                let Some(next) = a.status.apply(action) else {
                    let allowed: Vec<String> = a
                        .status
                        .allowed_actions()
                        .iter()
                        .map(|x| x.as_str().to_owned())
                        .collect();
                    let mut p = Problem::new(
                        ProblemType::InvalidTransition,
                        Some(format!(
                            "a {} appointment cannot {}; allowed: {}",
                            a.status.as_str(),
                            action.as_str(),
                            if allowed.is_empty() {
                                "nothing (it is final)".to_owned()
                            } else {
                                allowed.join(", ")
                            }
                        )),
                    );
                    p.allowed = Some(allowed);
                    p.current = serde_json::to_value(&a).ok();
                    return Err(ApiError::Problem(Box::new(p)));
                };
                match input {
                    ActionInput::Reason(r) => a.cancellation_reason = Some(r.trim().to_owned()),
                    ActionInput::Move(m) => {
                        let (start, end) = decide_time(
                            ctx,
                            tz,
                            a.practitioner_id,
                            &TimeRequest {
                                start: Some(m.start),
                                next_available_from: None,
                                end: m.end,
                                override_reason: m.override_reason.clone(),
                            },
                            Some(a.id),
                        )?;
                        ctx.set_detail(format!(
                            "moved from {} to {}{}",
                            a.start,
                            start,
                            m.override_reason
                                .as_deref()
                                .map(|r| format!("; OVERRIDE: {r}"))
                                .unwrap_or_default()
                        ));
                        a.start = start;
                        a.end = end;
                        a.override_reason = m.override_reason.map(|r| r.trim().to_owned());
                    }
                    ActionInput::None => {}
                }
                a.status = next;
                a.version += 1;
                a.updated_at = now;
                appointments::update(ctx, &a)?;
                ctx.emit(
                    EventKind::AppointmentUpdated,
                    visibility::appointment_audience(&a),
                    &a,
                )?;
                Ok(a)
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

//! Doctors' working hours, absences, and the slots they give.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::appointment::{
    AppointmentQuery, AppointmentStatus, SERVICE_YEARS, validate_time,
};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::schedule::{
    Absence, AbsenceRecorded, NewAbsence, Schedule, ScheduleUpdate, Slot, SlotQuery,
};
use carebridge_protocol::{PractitionerId, ProblemType};
use chrono::SubsecRound;
use uuid::Uuid;

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::schedule;
use crate::store::appointments::{self, Scope};
use crate::store::{practitioners, schedules};
use crate::visibility;

/// Admins and reception manage every doctor's schedule; a doctor their own.
fn may_manage(caller: &Caller, who: PractitionerId) -> Result<(), ApiError> {
    match caller.viewer {
        Viewer::Staff {
            role: Role::Admin | Role::Reception,
            ..
        } => Ok(()),
        Viewer::Staff {
            id,
            role: Role::Doctor,
        } if id == who => Ok(()),
        Viewer::Staff { .. } => Err(ApiError::forbidden(
            "a doctor manages their own schedule only",
        )),
        Viewer::Kiosk { .. } => Err(ApiError::forbidden("a kiosk may not change schedules")),
    }
}

/// Absences answer with the appointments they affect (patient data): reception and the doctor
/// record them, not admins.
fn may_record_absence(caller: &Caller, who: PractitionerId) -> Result<(), ApiError> {
    match caller.viewer {
        Viewer::Staff {
            role: Role::Admin, ..
        } => Err(ApiError::forbidden(
            "absences list patients' appointments: reception or the doctor records them",
        )),
        _ => may_manage(caller, who),
    }
}

/// Reads a doctor's weekly schedule.
#[utoipa::path(get, path = "/practitioners/{id}/schedule", tag = "schedules", security(("bearer" = [])),
    params(("id" = String, Path, description = "Doctor id")),
    responses((status = 200, description = "The schedule", body = Schedule),
              (status = 404, description = "No schedule set", body = Problem, content_type = "application/problem+json")))]
pub async fn get_schedule(
    State(node): State<Arc<Node>>,
    _caller: Caller,
    Path(id): Path<PractitionerId>,
) -> Result<impl IntoResponse, ApiError> {
    let s = node
        .store
        .read(move |c| schedules::get(c, id).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    Ok(with_etag(StatusCode::OK, s.version, s))
}

/// Sets a doctor's weekly hours and slot length (replacing the old ones). Existing
/// appointments stay where they are.
#[utoipa::path(put, path = "/practitioners/{id}/schedule", tag = "schedules", request_body = ScheduleUpdate, security(("bearer" = [])),
    params(("id" = String, Path, description = "Doctor id"), ("If-Match" = Option<String>, Header, description = "The version you last read")),
    responses((status = 200, description = "The new schedule", body = Schedule)))]
pub async fn put_schedule(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PractitionerId>,
    if_match: IfMatch,
    Json(req): Json<ScheduleUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    may_manage(&caller, id)?;
    req.validate()
        .map_err(|m| ApiError::new(ProblemType::Validation, m))?;
    let s = node
        .store
        .write(
            Some(caller.audit("schedule.update", format!("practitioner/{id}"))),
            move |ctx| {
                match practitioners::get(ctx, id)? {
                    Some(p) if p.role == Role::Doctor => {}
                    _ => return Err(ApiError::not_found("doctor")),
                }
                let old = schedules::get(ctx, id)?;
                let version = match &old {
                    Some(o) => {
                        if_match.check(o, o.version)?;
                        o.version + 1
                    }
                    None => 1,
                };
                let s = Schedule {
                    practitioner_id: id,
                    slot_minutes: req.slot_minutes,
                    hours: req.hours,
                    version,
                };
                schedules::put(ctx, &s)?;
                ctx.emit(
                    EventKind::ScheduleUpdated,
                    visibility::schedule_audience(id),
                    &s,
                )?;
                Ok(s)
            },
        )
        .await?;
    Ok(with_etag(StatusCode::OK, s.version, s))
}

/// Blocks a period of a doctor's schedule and lists the live appointments inside it, for
/// reception to move.
#[utoipa::path(post, path = "/practitioners/{id}/absences", tag = "schedules", request_body = NewAbsence, security(("bearer" = [])),
    params(("id" = String, Path, description = "Doctor id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Recorded, with the appointments it affects", body = AbsenceRecorded)))]
pub async fn create_absence(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PractitionerId>,
    key: IdempotencyKey,
    Json(req): Json<NewAbsence>,
) -> Result<impl IntoResponse, ApiError> {
    may_record_absence(&caller, id)?;
    for (field, t) in [("start", req.start), ("end", req.end)] {
        validate_time(t).map_err(|m| ApiError::field(field, m))?;
    }
    if req.end <= req.start {
        return Err(ApiError::field("end", "must be after start"));
    }
    if req.end - req.start > chrono::Duration::days(366) {
        return Err(ApiError::field("end", "an absence lasts at most 366 days"));
    }
    carebridge_protocol::appointment::validate_reason(&req.reason)
        .map_err(|m| ApiError::field("reason", m))?;
    let fp = fingerprint("absence.create", &(id, &req));
    let actor = caller.actor();
    let (status, recorded) = node
        .store
        .write(
            Some(caller.audit("absence.create", format!("practitioner/{id}"))),
            move |ctx| {
                idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                    match practitioners::get(ctx, id)? {
                        Some(p) if p.role == Role::Doctor => {}
                        _ => return Err(ApiError::not_found("doctor")),
                    }
                    let absence = Absence {
                        id: Uuid::now_v7(),
                        practitioner_id: id,
                        // Stored to the millisecond: answer what a later read will return.
                        start: req.start.trunc_subsecs(3),
                        end: req.end.trunc_subsecs(3),
                        reason: req.reason.trim().to_owned(),
                    };
                    schedules::insert_absence(ctx, &absence)?;
                    let affected: Vec<_> = appointments::list(
                        ctx,
                        &AppointmentQuery {
                            from: Some(req.start - schedule::MAX_APPOINTMENT),
                            to: Some(req.end),
                            limit: Some(1000),
                            ..Default::default()
                        },
                        Scope::Practitioner(id),
                    )?
                    .into_iter()
                    .filter(|a| {
                        a.end > req.start
                            && a.status.occupies_time()
                            && a.status != AppointmentStatus::Fulfilled
                    })
                    .collect();
                    ctx.set_detail(format!(
                        "{} to {}: {} appointment(s) affected",
                        absence.start,
                        absence.end,
                        affected.len()
                    ));
                    ctx.emit(
                        EventKind::AbsenceCreated,
                        visibility::schedule_audience(id),
                        &absence,
                    )?;
                    Ok(AbsenceRecorded { absence, affected })
                })
            },
        )
        .await?;
    Ok((status, axum::Json(recorded)))
}

/// A doctor's slots over local dates `from` to `to` (at most 62 days), with FHIR statuses:
/// `free`, `busy`, `busy-tentative` (held by a pending kiosk booking), `busy-unavailable`.
#[utoipa::path(get, path = "/practitioners/{id}/slots", tag = "schedules", params(("id" = String, Path, description = "Doctor id"), SlotQuery), security(("bearer" = [])),
    responses((status = 200, description = "Slots in time order", body = Vec<Slot>)))]
pub async fn list_slots(
    State(node): State<Arc<Node>>,
    _caller: Caller,
    Path(id): Path<PractitionerId>,
    Query(q): Query<SlotQuery>,
) -> Result<axum::Json<Vec<Slot>>, ApiError> {
    for (field, d) in [("from", q.from), ("to", q.to)] {
        if !SERVICE_YEARS.contains(&chrono::Datelike::year(&d)) {
            return Err(ApiError::field(
                field,
                "must be between the years 1900 and 2200",
            ));
        }
    }
    if q.to < q.from {
        return Err(ApiError::field("to", "must not be before from"));
    }
    if (q.to - q.from).num_days() > 62 {
        return Err(ApiError::field("to", "at most 62 days at a time"));
    }
    let tz = node.tz;
    let slots = node
        .store
        .read(move |c| {
            let Some(s) = schedules::get(c, id)? else {
                return Ok(Vec::new());
            };
            schedule::slots(c, tz, &s, q.from, q.to).map_err(ApiError::from)
        })
        .await?;
    Ok(axum::Json(slots))
}

//! Booking appointments and moving them through their statuses: the rules that need the
//! database (the schedule, absences, overlap, identification at a kiosk, the status machine
//! with If-Match), written once, inside the caller's write job, for every way in (the REST
//! handlers today). The pure rules are the protocol's (`carebridge_protocol::appointment`,
//! `slots`); who may see the result is `crate::visibility`'s.

use carebridge_protocol::appointment::{
    Appointment, AppointmentAction, BookAppointment, BookedBy, Reschedule, validate_reason,
    validate_time,
};
use carebridge_protocol::booking as rules;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::{FieldError, Problem};
use carebridge_protocol::{AppointmentId, PractitionerId, ProblemType};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use chrono_tz::Tz;

use crate::events::Viewer;
use crate::schedule;
use crate::store::{
    StoreError, Tx, WriteCtx, appointments, kiosks, patients, practitioners, schedules,
};
use crate::visibility;

/// Why a booking or an action on an appointment was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// Refused, with the problem the caller is answered with.
    #[error("{}", .0.detail.as_deref().unwrap_or(.0.title.as_str()))]
    Refused(Box<Problem>),
    /// The caller's version (If-Match) is not the appointment's: here is the current one.
    #[error("the appointment changed meanwhile (now version {})", .0.version)]
    Stale(Box<Appointment>),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rules::BookingError> for BookingError {
    fn from(e: rules::BookingError) -> Self {
        match e.field() {
            Some(field) => Self::field(field, e.message()),
            None => Self::forbidden(e.message()),
        }
    }
}

impl BookingError {
    fn new(code: ProblemType, detail: impl Into<String>) -> Self {
        Self::Refused(Box::new(Problem::new(code, Some(detail.into()))))
    }

    fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Problem::new(ProblemType::Validation, Some(format!("{field}: {message}")));
        p.errors = Some(vec![FieldError {
            field: field.into(),
            message,
        }]);
        Self::Refused(Box::new(p))
    }

    fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Forbidden, detail)
    }

    fn not_found(what: &str) -> Self {
        Self::new(ProblemType::NotFound, format!("no such {what}"))
    }
}

/// How far ahead `next_available_from` looks.
const NEXT_AVAILABLE_DAYS: u32 = 366;

/// Checks that `who` is an enabled doctor.
fn require_doctor(tx: &Tx<'_>, who: PractitionerId) -> Result<(), BookingError> {
    match practitioners::get(tx, who)? {
        Some(p) if p.role == Role::Doctor && !p.disabled => Ok(()),
        _ => Err(BookingError::field(
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
) -> Result<(DateTime<Utc>, DateTime<Utc>), BookingError> {
    let now = ctx.now();
    let sched = schedules::get(ctx, who)?;
    let (start, end) = match (req.start, req.next_available_from) {
        (Some(_), Some(_)) => {
            return Err(BookingError::field(
                "start",
                "give either start or next_available_from, not both",
            ));
        }
        (None, None) => {
            return Err(BookingError::field(
                "start",
                "is required (or give next_available_from)",
            ));
        }
        (None, Some(from)) => {
            if req.override_reason.is_some() {
                return Err(BookingError::field(
                    "override_reason",
                    "cannot be combined with next_available_from",
                ));
            }
            let s = sched.ok_or_else(|| {
                BookingError::new(
                    ProblemType::OutsideSchedule,
                    "the doctor has no working hours set",
                )
            })?;
            return schedule::next_free(ctx, tz, &s, from.max(now), NEXT_AVAILABLE_DAYS)?
                .ok_or_else(|| {
                    BookingError::new(
                        ProblemType::SlotTaken,
                        "the doctor has no free slot in the next year",
                    )
                });
        }
        (Some(start), None) => match (&req.override_reason, &sched) {
            (None, None) => {
                return Err(BookingError::new(
                    ProblemType::OutsideSchedule,
                    "the doctor has no working hours set",
                ));
            }
            (None, Some(s)) => {
                let (a, b) = schedule::slot_at(tz, s, start).ok_or_else(|| {
                    BookingError::new(
                        ProblemType::OutsideSchedule,
                        "that time is not the start of one of the doctor's slots",
                    )
                })?;
                if req.end.is_some_and(|e| e != b) {
                    return Err(BookingError::field(
                        "end",
                        "must be the end of the slot (or omitted) unless overbooking with an override",
                    ));
                }
                if a < now {
                    return Err(BookingError::new(
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
                rules::check_length(start, end)?;
                (start, end)
            }
        },
    };
    if let Some(a) = schedules::absences(ctx, who, start, end)?.first() {
        return Err(BookingError::new(
            ProblemType::PractitionerAbsent,
            format!(
                "the doctor is absent from {} to {} ({})",
                a.start, a.end, a.reason
            ),
        ));
    }
    if rules::needs_free_time(req.override_reason.as_deref())
        && appointments::overlapping(ctx, who, start, end, except)?.is_some()
    {
        return Err(BookingError::new(
            ProblemType::SlotTaken,
            "the doctor already has an appointment at that time; choose another slot (staff may overbook with an override reason)",
        ));
    }
    Ok((start, end))
}

/// Refuses times outside the service years before any date arithmetic sees them.
fn check_times(times: &[(&str, Option<DateTime<Utc>>)]) -> Result<(), BookingError> {
    for (field, t) in times {
        if let Some(t) = t {
            validate_time(*t).map_err(|m| BookingError::field(field, m))?;
        }
    }
    Ok(())
}

fn check_override(viewer: &Viewer, reason: &Option<String>) -> Result<(), BookingError> {
    let by = match viewer {
        Viewer::Staff { .. } => rules::Booker::Staff,
        Viewer::Kiosk { .. } => rules::Booker::Kiosk,
    };
    rules::check_override(by, reason.as_deref())?;
    Ok(())
}

/// Who books, as whom: a doctor on their own schedule, reception for anyone, a kiosk for
/// the patient who identified there. Checked before the database is asked anything.
pub fn booker(viewer: &Viewer, practitioner: PractitionerId) -> Result<BookedBy, BookingError> {
    Ok(match *viewer {
        Viewer::Staff {
            id,
            role: Role::Doctor,
        } => {
            if practitioner != id {
                return Err(BookingError::forbidden(
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
            return Err(BookingError::forbidden(
                "only reception, doctors and kiosks book appointments",
            ));
        }
        Viewer::Kiosk { id } => BookedBy::Kiosk { id },
    })
}

/// Checks what a booking request says on its own (times, the override, the reason).
pub fn check_booking(viewer: &Viewer, req: &BookAppointment) -> Result<(), BookingError> {
    check_times(&[
        ("start", req.start),
        ("next_available_from", req.next_available_from),
        ("end", req.end),
    ])?;
    check_override(viewer, &req.override_reason)?;
    validate_reason(&req.reason).map_err(|m| BookingError::field("reason", m))
}

/// Books `req` for `booked_by`: `booked` when staff book it, `pending` (holding the slot)
/// when a kiosk does. Inside the caller's write job: the checks and the change commit together.
pub fn book(
    ctx: &mut WriteCtx<'_>,
    tz: Tz,
    booked_by: BookedBy,
    req: BookAppointment,
) -> Result<Appointment, BookingError> {
    let now = ctx.now();
    if let BookedBy::Kiosk { id } = booked_by
        && !kiosks::is_identified(ctx, id, req.patient_id, now.timestamp_millis())?
    {
        return Err(BookingError::new(
            ProblemType::PatientNotIdentified,
            "the patient must identify at this kiosk (card number and birth date) before booking",
        ));
    }
    require_doctor(ctx, req.practitioner_id)?;
    match patients::get(ctx, req.patient_id, "")? {
        None => return Err(BookingError::field("patient_id", "no such patient")),
        Some(p) => {
            if let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)? {
                return Err(BookingError::new(ProblemType::InvalidTransition, why));
            }
        }
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
            return Err(BookingError::new(
                ProblemType::Conflict,
                "that appointment id is already in use",
            ));
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
        status: booked_by.initial_status(),
        booked_by,
        override_reason: req.override_reason.map(|r| r.trim().to_owned()),
        cancellation_reason: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    appointments::insert(ctx, &a)?;
    ctx.set_entity(format!("appointment/{}", a.id));
    if a.override_reason.is_some() {
        // The reason stays with the appointment: the audit trail holds no free text.
        ctx.set_detail("OVERRIDE (overbooked on purpose, with a reason)");
    }
    ctx.emit(
        EventKind::AppointmentCreated,
        visibility::appointment_audience(&a),
        &a,
    )?;
    Ok(a)
}

/// What an action carries besides its name.
pub enum ActionInput {
    /// Nothing (confirm, check in, complete, no-show).
    None,
    /// A reason (decline, cancel).
    Reason(String),
    /// A new time (reschedule).
    Move(Reschedule),
}

/// Checks an action's input and whether `viewer` may act on appointments at all, before the
/// database is asked anything.
pub fn check_action(
    viewer: &Viewer,
    action: AppointmentAction,
    input: &ActionInput,
) -> Result<(), BookingError> {
    match &input {
        ActionInput::Reason(r) => {
            validate_reason(r).map_err(|m| BookingError::field("reason", m))?
        }
        ActionInput::Move(m) => {
            check_times(&[("start", Some(m.start)), ("end", m.end)])?;
            check_override(viewer, &m.override_reason)?
        }
        ActionInput::None => {}
    }
    if matches!(viewer, Viewer::Kiosk { .. }) && action != AppointmentAction::CheckIn {
        return Err(BookingError::forbidden(format!(
            "a kiosk may not {} appointments",
            action.as_str()
        )));
    }
    if let Viewer::Staff {
        role: Role::Admin | Role::Reviewer,
        ..
    } = *viewer
    {
        return Err(BookingError::forbidden(
            "only reception, doctors and kiosks work on appointments",
        ));
    }
    Ok(())
}

/// Applies `action` to appointment `id` for `viewer`, with `input`; `if_match` is the version
/// the caller last read, if they sent one. Inside the caller's write job.
pub fn act(
    ctx: &mut WriteCtx<'_>,
    tz: Tz,
    viewer: &Viewer,
    id: AppointmentId,
    action: AppointmentAction,
    input: ActionInput,
    if_match: Option<i64>,
) -> Result<Appointment, BookingError> {
    let now = ctx.now();
    let mut a =
        appointments::get(ctx, id)?.ok_or_else(|| BookingError::not_found("appointment"))?;
    match *viewer {
        Viewer::Staff {
            id: me,
            role: Role::Doctor,
        } if a.practitioner_id != me => {
            return Err(BookingError::forbidden(
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
            return Err(BookingError::forbidden(
                "only the doctor can confirm or decline a kiosk booking",
            ));
        }
        Viewer::Kiosk { id: device } => {
            if !kiosks::is_identified(ctx, device, a.patient_id, now.timestamp_millis())? {
                return Err(BookingError::new(
                    ProblemType::PatientNotIdentified,
                    "the patient must identify at this kiosk before checking in",
                ));
            }
            if schedule::local_date(tz, a.start) != schedule::local_date(tz, now) {
                return Err(BookingError::forbidden(
                    "a kiosk checks in today's appointments only",
                ));
            }
        }
        _ => {}
    }
    // A moved record's appointments can still be cancelled here, and nothing else.
    if action != AppointmentAction::Cancel
        && let Some(p) = patients::get(ctx, a.patient_id, "")?
        && let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)?
    {
        return Err(BookingError::new(ProblemType::InvalidTransition, why));
    }
    if if_match.is_some_and(|v| v != a.version) {
        return Err(BookingError::Stale(Box::new(a)));
    }
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
        return Err(BookingError::Refused(Box::new(p)));
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
                if m.override_reason.is_some() {
                    "; OVERRIDE (with a reason)"
                } else {
                    ""
                }
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
}

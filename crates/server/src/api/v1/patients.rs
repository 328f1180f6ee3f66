//! Registering, finding and updating patients; identifying one at a kiosk.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::appointment::{AppointmentQuery, AppointmentStatus};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::patient::{
    KioskIdentify, KioskPatient, NewPatient, Patient, PatientSearch, PatientUpdate,
};
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::{PatientId, ProblemType};

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::error::ApiError;
use crate::node::Node;
use crate::schedule;
use crate::store::appointments::{self, Scope};
use crate::store::{kiosks, patients};
use crate::visibility::{self, RecordKind};

const CLINICAL: &[Role] = &[Role::Doctor, Role::Reception];

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Registers a patient. A patient with the same name and birth date is answered with the
/// candidates (409 `possible-duplicate`) unless `confirm_duplicate` is set.
#[utoipa::path(post, path = "/patients", tag = "patients", request_body = NewPatient, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Registered", body = Patient),
              (status = 409, description = "Possible duplicate (`current` lists the candidates), or the card number is taken", body = Problem, content_type = "application/problem+json")))]
pub async fn register_patient(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<NewPatient>,
) -> Result<impl IntoResponse, ApiError> {
    caller
        .audit_refusal(&node, caller.staff(CLINICAL), "patient.create", "")
        .await?;
    let today = schedule::local_date(node.tz, node.clock.now());
    req.validate(today).map_err(ApiError::fields)?;
    let fp = fingerprint("register", &req);
    let actor = caller.actor();
    let name = node.name().to_owned();
    let (status, p) = node
        .store
        .write(Some(caller.audit("patient.create", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                if !req.confirm_duplicate {
                    let same = patients::same_person(ctx, &req.family_name, &req.given_name, req.birth_date, &name)?;
                    if !same.is_empty() {
                        let mut p = Problem::new(
                            ProblemType::PossibleDuplicate,
                            Some(format!(
                                "{} patient(s) with this name and birth date exist; use one of them, or register again with confirm_duplicate: true",
                                same.len()
                            )),
                        );
                        p.current = serde_json::to_value(&same).ok();
                        return Err(ApiError::Problem(Box::new(p)));
                    }
                }
                let card = match &req.card_number {
                    Some(c) => {
                        if patients::card_taken(ctx, c, None)? {
                            return Err(ApiError::new(ProblemType::Conflict, "that card number belongs to another patient"));
                        }
                        c.clone()
                    }
                    None => patients::issue_card_number(ctx)?,
                };
                let now = ctx.now();
                let id = match req.id {
                    Some(id) if patients::get(ctx, id, &name)?.is_some() => {
                        return Err(ApiError::new(ProblemType::Conflict, "that patient id is already in use"));
                    }
                    Some(id) => id,
                    None => PatientId::new(),
                };
                let p = Patient {
                    id,
                    global_id: format!("{id}@{name}"),
                    family_name: req.family_name.trim().to_owned(),
                    given_name: req.given_name.trim().to_owned(),
                    birth_date: req.birth_date,
                    phone: clean(req.phone),
                    email: clean(req.email),
                    card_number: card,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                    transferred_to: None,
                };
                patients::insert(ctx, &p)?;
                ctx.set_entity(format!("patient/{id}"));
                if req.confirm_duplicate {
                    ctx.set_detail("registered despite a possible duplicate, confirmed by staff");
                }
                ctx.emit(EventKind::PatientCreated, visibility::audience(RecordKind::Patient), &p)?;
                Ok(p)
            })
        })
        .await?;
    Ok(with_etag(status, p.version, p))
}

/// Searches patients by name prefix, birth date and card number (all given must match).
#[utoipa::path(get, path = "/patients", tag = "patients", params(PatientSearch), security(("bearer" = [])),
    responses((status = 200, description = "Matching patients", body = Vec<Patient>)))]
pub async fn search_patients(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<PatientSearch>,
) -> Result<axum::Json<Vec<Patient>>, ApiError> {
    let may = caller.may_see(RecordKind::Patient);
    caller
        .audit_refusal(&node, may, "patient.search", "")
        .await?;
    if q.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::field(
            "name",
            "give at least one character, or leave the name out",
        ));
    }
    if q.name.is_none() && q.birth_date.is_none() && q.card_number.is_none() {
        return Err(ApiError::new(
            ProblemType::Validation,
            "give at least one of name, birth_date or card_number",
        ));
    }
    let name = node.name().to_owned();
    let list = node
        .store
        .write(Some(caller.audit("patient.search", "")), move |ctx| {
            let list = patients::search(ctx, &q, &name)?;
            // Which criteria, not their values: admins read the trail, and a card number with a
            // birth date is what identifies a patient at a kiosk.
            let by: Vec<&str> = [
                q.name.as_ref().map(|_| "name prefix"),
                q.birth_date.map(|_| "birth date"),
                q.card_number.as_ref().map(|_| "card number"),
            ]
            .into_iter()
            .flatten()
            .collect();
            ctx.set_detail(format!("by {}: {} found", by.join(", "), list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    Ok(axum::Json(list))
}

/// Reads one patient.
#[utoipa::path(get, path = "/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "The patient", body = Patient),
              (status = 404, description = "No such patient", body = Problem, content_type = "application/problem+json")))]
pub async fn get_patient(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<impl IntoResponse, ApiError> {
    let may = caller.may_see(RecordKind::Patient);
    caller
        .audit_refusal(&node, may, "patient.read", format!("patient/{id}"))
        .await?;
    let name = node.name().to_owned();
    let p = node
        .store
        .write(
            Some(caller.audit("patient.read", format!("patient/{id}"))),
            move |ctx| patients::get(ctx, id, &name)?.ok_or_else(|| ApiError::not_found("patient")),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, p.version, p))
}

/// Changes a patient record. Needs `If-Match` with the version last read.
#[utoipa::path(patch, path = "/patients/{id}", tag = "patients", request_body = PatientUpdate, security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id"),
           ("If-Match" = String, Header, description = "The version you last read"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 200, description = "The patient's new state", body = Patient),
              (status = 412, description = "Stale If-Match; `current` is the record now", body = Problem, content_type = "application/problem+json"),
              (status = 428, description = "If-Match missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_patient(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
    if_match: IfMatch,
    key: IdempotencyKey,
    Json(req): Json<PatientUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    let may = caller.staff(CLINICAL);
    caller
        .audit_refusal(&node, may, "patient.update", format!("patient/{id}"))
        .await?;
    let today = schedule::local_date(node.tz, node.clock.now());
    req.validate(today).map_err(ApiError::fields)?;
    let fp = fingerprint("patient.update", &(id, &req));
    let actor = caller.actor();
    let name = node.name().to_owned();
    let (status, p) = node
        .store
        .write(
            Some(caller.audit("patient.update", format!("patient/{id}"))),
            move |ctx| {
                idempotency::once(ctx, &actor, &key, fp, StatusCode::OK, |ctx| {
                    let mut p = patients::get(ctx, id, &name)?
                        .ok_or_else(|| ApiError::not_found("patient"))?;
                    if let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)? {
                        return Err(ApiError::new(ProblemType::InvalidTransition, why));
                    }
                    if_match.require(&p, p.version)?;
                    if let Some(c) = &req.card_number
                        && patients::card_taken(ctx, c, Some(id))?
                    {
                        return Err(ApiError::new(
                            ProblemType::Conflict,
                            "that card number belongs to another patient",
                        ));
                    }
                    let mut changed = Vec::new();
                    if let Some(v) = req.family_name {
                        p.family_name = v.trim().to_owned();
                        changed.push("family_name");
                    }
                    if let Some(v) = req.given_name {
                        p.given_name = v.trim().to_owned();
                        changed.push("given_name");
                    }
                    if let Some(v) = req.birth_date {
                        p.birth_date = v;
                        changed.push("birth_date");
                    }
                    if let Some(v) = req.phone {
                        p.phone = clean(Some(v));
                        changed.push("phone");
                    }
                    if let Some(v) = req.email {
                        p.email = clean(Some(v));
                        changed.push("email");
                    }
                    if let Some(v) = req.card_number {
                        p.card_number = v;
                        changed.push("card_number");
                    }
                    p.version += 1;
                    p.updated_at = ctx.now();
                    patients::update(ctx, &p)?;
                    ctx.set_detail(format!("changed: {}", changed.join(", ")));
                    ctx.emit(
                        EventKind::PatientUpdated,
                        visibility::audience(RecordKind::Patient),
                        &p,
                    )?;
                    Ok(p)
                })
            },
        )
        .await?;
    Ok(with_etag(status, p.version, p))
}

/// The patient is done at this kiosk ("Finish", or the kiosk going back to its welcome
/// screen): what they identified for stops holding there at once, not ten minutes later. Their
/// identification lets the kiosk book, check in, and answer other hospitals' requests for them.
#[utoipa::path(delete, path = "/kiosk/identify", tag = "kiosk", security(("bearer" = [])),
    responses((status = 204, description = "Every identification at this kiosk has ended")))]
pub async fn end_kiosk_identification(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let device = caller
        .kiosk()
        .ok_or_else(|| ApiError::forbidden("only a kiosk ends its identifications"));
    let device = caller
        .audit_refusal(&node, device, "patient.identify-end", "")
        .await?;
    node.store
        .write(Some(caller.audit("patient.identify-end", "")), move |ctx| {
            let ended = kiosks::end_identifications(ctx, device)?;
            ctx.set_detail(format!("{ended} identification(s) ended"));
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A kiosk identifies the patient at it by card number and birth date. The answer reveals
/// as little as possible: a greeting name and today's appointments.
#[utoipa::path(post, path = "/kiosk/identify", tag = "kiosk", request_body = KioskIdentify, security(("bearer" = [])),
    responses((status = 200, description = "Identified", body = KioskPatient),
              (status = 404, description = "No patient with that card and birth date", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many failed attempts at this kiosk", body = Problem, content_type = "application/problem+json")))]
pub async fn identify_kiosk_patient(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Json(req): Json<KioskIdentify>,
) -> Result<axum::Json<KioskPatient>, ApiError> {
    let device = caller.kiosk().ok_or_else(|| {
        ApiError::forbidden("only a kiosk identifies patients this way; staff search instead")
    });
    let device = caller
        .audit_refusal(&node, device, "patient.identify", "")
        .await?;
    let now = node.clock.now();
    let attempt = node
        .throttle_kiosks
        .reserve(&device.to_string(), now)
        .map_err(ApiError::Throttled)?;
    let name = node.name().to_owned();
    let tz = node.tz;
    let result = node
        .store
        .write(Some(caller.audit("patient.identify", "")), move |ctx| {
            let card = req.card_number.trim().to_uppercase();
            let p = patients::by_card(ctx, &card, req.birth_date, &name)?.ok_or_else(|| {
                ApiError::new(
                    ProblemType::NotFound,
                    "no patient matches that card number and birth date",
                )
            })?;
            ctx.set_entity(format!("patient/{}", p.id));
            if let Some(t) = &p.transferred_to {
                // The patient is told where their record is now, in words for them.
                return Err(ApiError::new(
                    ProblemType::InvalidTransition,
                    format!(
                        "your record moved to {} on {}: please ask there",
                        t.organisation,
                        t.at.format("%Y-%m-%d")
                    ),
                ));
            }
            let now = ctx.now();
            kiosks::record_identification(ctx, device, p.id, now.timestamp_millis())?;
            let (from, to) = schedule::date_bounds(
                tz,
                schedule::local_date(tz, now),
                schedule::local_date(tz, now),
            );
            let today = appointments::list(
                ctx,
                &AppointmentQuery {
                    from: Some(from),
                    to: Some(to),
                    ..Default::default()
                },
                Scope::Patient(p.id),
            )?
            .into_iter()
            .filter(|a| {
                matches!(
                    a.status,
                    AppointmentStatus::Pending
                        | AppointmentStatus::Booked
                        | AppointmentStatus::Arrived
                )
            })
            .collect();
            let initial = p
                .family_name
                .chars()
                .next()
                .map(|c| format!(" {c}."))
                .unwrap_or_default();
            Ok::<_, ApiError>(KioskPatient {
                id: p.id,
                display_name: format!("{}{}", p.given_name, initial),
                appointments_today: today,
            })
        })
        .await;
    // Only a wrong card or birth date counts against the kiosk; a success or the node's own
    // failure gives the attempt back.
    if matches!(&result, Err(ApiError::Problem(p)) if p.code == ProblemType::NotFound) {
        attempt.failed();
    } else {
        drop(attempt);
    }
    Ok(axum::Json(result?))
}

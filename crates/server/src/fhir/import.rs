//! Importing FHIR resources from another system: a `transaction` Bundle (all or nothing), a
//! `batch` (each entry on its own) and `carebridge-node import` (a migration, entry by entry).
//!
//! Each entry becomes a record through the same rules as the native API: a patient's name and
//! birth date checks, a doctor's schedule checks, no double booking, statuses the state machine
//! knows, and reports only as final documents, signed by this node for their author. An entry
//! that names a record already here (its id, its global id, or a patient with the same name and
//! birth date) is matched rather than created again, and what refers to it is pointed there.
//!
//! Entries are applied in dependency order (staff, schedules, patients, appointments, reports)
//! whatever their order in the file, and references are resolved through what the import has
//! created or matched so far: `urn:uuid:` full URLs, `Type/id`, and absolute URLs ending in one.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use carebridge_fhir::resources as fr;
use carebridge_fhir::{Resource, system};
use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy, validate_reason};
use carebridge_protocol::audit::Outcome;
use carebridge_protocol::booking::MAX_APPOINTMENT;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::patient::{NewPatient, Patient};
use carebridge_protocol::practitioner::{Practitioner, Role};
use carebridge_protocol::report::{
    Report, ReportContent, ReportRevision, ReportStatus, RevisionFacts,
};
use carebridge_protocol::schedule::{Schedule, ScheduleUpdate, WorkingHours};
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId, ReportId};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};

use std::sync::Arc;

use crate::node::Node;
use crate::store::{
    AuditDraft, StoreError, WriteCtx, appointments, patients, practitioners, reports, schedules,
};
use crate::visibility::{self, RecordKind};

/// What the node that imports is.
#[derive(Clone, Copy)]
pub struct Importer<'a> {
    /// Its name.
    pub node: &'a str,
    /// Its time zone (working hours are in it).
    pub tz: chrono_tz::Tz,
    /// The key it signs reports with.
    pub signing_key: &'a ed25519_dalek::SigningKey,
    /// Who imports: booked-by for appointments (`None`: the appointment's own doctor).
    pub by: Option<PractitionerId>,
    /// What each created record's audit entry says who did it.
    pub audit: &'a AuditDraft,
    /// Whether a patient with the same name and birth date counts as the same person (an
    /// import from another system); a transfer decides that itself, and registers otherwise.
    pub match_by_name: bool,
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A new record, at `Type/id`.
    Created(String),
    /// A record already here, at `Type/id`.
    Matched(String),
}

impl Disposition {
    /// `Type/id` of the record.
    pub fn location(&self) -> &str {
        match self {
            Self::Created(l) | Self::Matched(l) => l,
        }
    }
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry breaks a rule; nothing of it was applied.
    #[error("{0}")]
    Invalid(String),
    /// It conflicts with what is here (a double booking, an id in use for something else).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("the node could not store it")]
    Store(String),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

fn invalid(s: impl Into<String>) -> Refusal {
    Refusal::Invalid(s.into())
}

/// One entry to import: where it sits in the file, its full URL, the resource.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its position in the file (0-based), for the answer.
    pub index: usize,
    /// `Bundle.entry.fullUrl`, if any.
    pub full_url: Option<String>,
    /// The resource.
    pub resource: Resource,
}

/// A Bundle's entries read one by one from its JSON: an entry whose resource this node does
/// not read is refused by itself (with its position), the others stand.
pub fn entries_of_value(bundle: &serde_json::Value) -> (Vec<Entry>, Vec<(usize, Refusal)>) {
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for (index, e) in bundle["entry"].as_array().into_iter().flatten().enumerate() {
        let Some(r) = e.get("resource") else {
            refused.push((
                index,
                invalid(format!("Bundle.entry[{index}] has no resource")),
            ));
            continue;
        };
        match serde_json::from_value::<Resource>(r.clone()) {
            Ok(resource) => entries.push(Entry {
                index,
                full_url: e["fullUrl"].as_str().map(str::to_owned),
                resource,
            }),
            Err(err) => refused.push((
                index,
                invalid(format!(
                    "Bundle.entry[{index}]: {} is not a resource this node reads ({err})",
                    r["resourceType"].as_str().unwrap_or("the entry")
                )),
            )),
        }
    }
    (entries, refused)
}

/// Entries in the order they can be applied: what others refer to first.
pub fn in_dependency_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by_key(|e| {
        (
            carebridge_fhir::import_rank(e.resource.resource_type()),
            e.index,
        )
    });
    entries
}

/// What an import has resolved so far, and what the file says about staff before their
/// records are reached (a PractitionerRole's role and hours).
#[derive(Debug, Default)]
pub struct Resolved {
    /// A name the file uses (`urn:uuid:…`, `Type/id`) → the local `Type/id`.
    refs: HashMap<String, String>,
    /// A practitioner's name in the file → their role there.
    roles: HashMap<String, Role>,
    /// A practitioner's name in the file → their working hours there.
    hours: HashMap<String, Vec<WorkingHours>>,
}

/// The names a file may use for an entry's resource.
fn names_of(e: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = &e.full_url {
        out.push(u.clone());
    }
    if let Some(r) = e.resource.local_reference() {
        out.push(r);
    }
    out
}

/// `Type/id` at the end of a reference (relative, absolute, or `…/_history/n`).
fn tail(reference: &str) -> Option<String> {
    if reference.starts_with("urn:") {
        return None;
    }
    let parts: Vec<&str> = reference.split('/').collect();
    let parts = match parts.iter().position(|p| *p == "_history") {
        Some(i) => &parts[..i],
        None => &parts[..],
    };
    match parts {
        [.., t, id] => Some(format!("{t}/{id}")),
        _ => None,
    }
}

impl Resolved {
    /// Reads what PractitionerRoles say, before anything is applied.
    pub fn scan(&mut self, entries: &[Entry]) {
        for e in entries {
            let Resource::PractitionerRole(role) = &e.resource else {
                continue;
            };
            let Some(who) = role.practitioner.as_ref().and_then(|r| r.reference.clone()) else {
                continue;
            };
            let code = role
                .code
                .iter()
                .flat_map(|c| &c.coding)
                .find(|c| c.system.as_deref() == Some(system::ROLE))
                .and_then(|c| c.code.as_deref())
                .and_then(Role::parse);
            let hours = role
                .available_time
                .iter()
                .flat_map(|t| {
                    let start = t.available_start_time.as_deref().and_then(time);
                    let end = t.available_end_time.as_deref().and_then(time);
                    t.days_of_week.iter().filter_map(move |d| {
                        Some(WorkingHours {
                            weekday: weekday(d)?,
                            start: start?,
                            end: end?,
                        })
                    })
                })
                .collect::<Vec<_>>();
            for key in [Some(who.clone()), tail(&who)].into_iter().flatten() {
                if let Some(c) = code {
                    self.roles.insert(key.clone(), c);
                }
                if !hours.is_empty() {
                    self.hours.insert(key, hours.clone());
                }
            }
        }
    }

    fn remember(&mut self, e: &Entry, local: &str) {
        for n in names_of(e) {
            self.refs.insert(n, local.to_owned());
        }
        self.refs.insert(local.to_owned(), local.to_owned());
    }

    /// The local `Type/id` a reference names: something this import resolved, or a record
    /// already here by its id.
    fn local(&self, reference: &str) -> Option<String> {
        self.refs
            .get(reference)
            .or_else(|| tail(reference).and_then(|t| self.refs.get(&t)))
            .cloned()
            .or_else(|| tail(reference))
    }

    fn facts_for(&self, e: &Entry) -> (Option<Role>, Option<Vec<WorkingHours>>) {
        let names = names_of(e);
        let role = names.iter().find_map(|n| self.roles.get(n).copied());
        let hours = names.iter().find_map(|n| self.hours.get(n).cloned());
        (role, hours)
    }
}

fn weekday(d: &str) -> Option<Weekday> {
    Some(match d {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn time(t: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(t, "%H:%M:%S").ok()
}

fn instant(name: &str, v: Option<&str>) -> Result<DateTime<Utc>, Refusal> {
    let v = v.ok_or_else(|| invalid(format!("{name} is required")))?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(format!("{name} `{v}` is not an instant with a zone")))
}

fn id_in<T: std::str::FromStr>(local: &str, resource_type: &str) -> Option<T> {
    local
        .strip_prefix(resource_type)?
        .strip_prefix('/')?
        .parse()
        .ok()
}

/// The id a resource asks to keep, if it is a UUID.
fn own_id<T: std::str::FromStr>(id: Option<&str>) -> Option<T> {
    id.and_then(|i| i.parse().ok())
}

/// The local id named by a global-id identifier of this node.
fn global_here<T: std::str::FromStr>(
    ids: &[carebridge_fhir::datatypes::Identifier],
    node: &str,
) -> Option<T> {
    ids.iter()
        .filter(|i| i.system.as_deref() == Some(system::GLOBAL_ID))
        .filter_map(|i| i.value.as_deref()?.split_once('@'))
        .find(|(_, n)| *n == node)
        .and_then(|(id, _)| id.parse().ok())
}

fn text(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Applies one entry inside the caller's write job.
pub fn apply(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    resolved: &mut Resolved,
    e: &Entry,
) -> Result<Disposition, Refusal> {
    let d = match &e.resource {
        Resource::Patient(p) => patient(ctx, imp, p)?,
        Resource::Practitioner(p) => {
            // What a person may read follows from their role: an account is never given one
            // the file does not state.
            let (role, _) = resolved.facts_for(e);
            let role = role.ok_or_else(|| {
                invalid(format!(
                    "Practitioner: give its PractitionerRole in the same file or request, with a code of {}",
                    system::ROLE
                ))
            })?;
            practitioner(ctx, imp, p, role)?
        }
        Resource::PractitionerRole(r) => {
            let who = r
                .practitioner
                .as_ref()
                .and_then(|p| p.reference.as_deref())
                .and_then(|p| resolved.local(p))
                .ok_or_else(|| invalid("PractitionerRole.practitioner names no practitioner"))?;
            let id: PractitionerId = id_in(&who, "Practitioner")
                .ok_or_else(|| invalid("PractitionerRole.practitioner names no practitioner"))?;
            if practitioners::get(ctx, id)?.is_none() {
                return Err(invalid(format!(
                    "{who} is neither in the file nor on this node"
                )));
            }
            // Its role and hours were read before (Resolved::scan) and given to the
            // practitioner and the schedule.
            Disposition::Matched(format!("PractitionerRole/{id}"))
        }
        Resource::Schedule(s) => {
            let actor = s
                .actor
                .iter()
                .filter_map(|a| a.reference.as_deref())
                .find_map(|a| resolved.local(a))
                .ok_or_else(|| invalid("Schedule.actor names no practitioner"))?;
            let hours = resolved
                .refs
                .iter()
                .filter(|(_, local)| **local == actor)
                .find_map(|(name, _)| resolved.hours.get(name).cloned())
                .or_else(|| resolved.hours.get(&actor).cloned())
                .unwrap_or_default();
            schedule(ctx, s, &actor, hours)?
        }
        Resource::Appointment(a) => appointment(ctx, imp, resolved, a)?,
        Resource::DiagnosticReport(r) => report(ctx, imp, resolved, r)?,
        other => {
            return Err(invalid(format!(
                "{} is not imported; an import takes {:?}",
                other.resource_type(),
                carebridge_fhir::IMPORT_ORDER
            )));
        }
    };
    resolved.remember(e, d.location());
    Ok(d)
}

fn audit_created(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    action: &str,
    entity: &str,
) -> Result<(), Refusal> {
    let draft = AuditDraft {
        action: action.to_owned(),
        ..imp.audit.clone()
    };
    ctx.audit(&draft, entity, Outcome::Success, "imported (FHIR)")?;
    Ok(())
}

fn patient(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    p: &fr::Patient,
) -> Result<Disposition, Refusal> {
    let name = p
        .name
        .iter()
        .find(|n| n.family.is_some() && !n.given.is_empty())
        .ok_or_else(|| invalid("Patient.name needs a family name and a given name"))?;
    let family = text(&name.family).unwrap_or_default();
    let given = name.given.join(" ");
    let birth: NaiveDate = p
        .birth_date
        .as_deref()
        .ok_or_else(|| invalid("Patient.birthDate is required"))?
        .parse()
        .map_err(|_| invalid("Patient.birthDate is not a full date (YYYY-MM-DD)"))?;
    let telecom = |kind: &str| {
        p.telecom
            .iter()
            .find(|t| t.system.as_deref() == Some(kind))
            .and_then(|t| text(&t.value))
    };
    let card = p
        .identifier
        .iter()
        .find(|i| {
            i.system
                .as_deref()
                .is_some_and(|s| s.starts_with(&format!("{}/sid/card-number/", system::BASE)))
        })
        .and_then(|i| text(&i.value));
    let mut req = NewPatient {
        id: None,
        family_name: family.clone(),
        given_name: given.clone(),
        birth_date: birth,
        phone: telecom("phone"),
        email: telecom("email"),
        card_number: card.clone(),
        confirm_duplicate: false,
    };
    let today = crate::schedule::local_date(imp.tz, ctx.now());
    req.validate(today).map_err(|errors| {
        invalid(
            errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    // The same person, already here: by global id, by id, or by name and birth date.
    let wanted: Option<PatientId> =
        global_here(&p.identifier, imp.node).or(own_id(p.id.as_deref()));
    if let Some(id) = wanted
        && let Some(here) = patients::get(ctx, id, imp.node)?
    {
        let same = here.family_name.eq_ignore_ascii_case(&family)
            && here.given_name.eq_ignore_ascii_case(&given)
            && here.birth_date == birth;
        return if same {
            Ok(Disposition::Matched(format!("Patient/{id}")))
        } else {
            Err(Refusal::Conflict(format!(
                "Patient/{id} is another person on this node"
            )))
        };
    }
    if imp.match_by_name
        && let Some(here) = patients::same_person(ctx, &family, &given, birth, imp.node)?.first()
    {
        return Ok(Disposition::Matched(format!("Patient/{}", here.id)));
    }
    let card = match card {
        Some(c) if !patients::card_taken(ctx, &c, None)? => c,
        _ => patients::issue_card_number(ctx)?,
    };
    req.card_number = Some(card.clone());
    let id = wanted.unwrap_or_default();
    let now = ctx.now();
    let created = Patient {
        id,
        global_id: format!("{id}@{}", imp.node),
        family_name: req.family_name.trim().to_owned(),
        given_name: req.given_name.trim().to_owned(),
        birth_date: birth,
        phone: req.phone,
        email: req.email,
        card_number: card,
        version: 1,
        created_at: now,
        updated_at: now,
        transferred_to: None,
    };
    patients::insert(ctx, &created)?;
    let entity = format!("patient/{id}");
    audit_created(ctx, imp, "patient.create", &entity)?;
    ctx.emit(
        EventKind::PatientCreated,
        visibility::audience(RecordKind::Patient),
        &created,
    )?;
    Ok(Disposition::Created(format!("Patient/{id}")))
}

/// A password hash no password matches: an imported account signs in only once an admin has
/// set its password.
const NO_PASSWORD: &str = "!imported";

fn practitioner(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    p: &fr::Practitioner,
    role: Role,
) -> Result<Disposition, Refusal> {
    let display = p
        .name
        .iter()
        .find_map(|n| {
            text(&n.text).or_else(|| {
                let parts: Vec<String> = n.given.iter().cloned().chain(n.family.clone()).collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
        })
        .ok_or_else(|| invalid("Practitioner.name is required"))?;
    if display.chars().count() > 100 {
        return Err(invalid("Practitioner.name is longer than 100 characters"));
    }
    let wanted: Option<PractitionerId> =
        global_here(&p.identifier, imp.node).or(own_id(p.id.as_deref()));
    if let Some(id) = wanted
        && let Some(here) = practitioners::get(ctx, id)?
    {
        return if here.display_name.eq_ignore_ascii_case(&display) {
            Ok(Disposition::Matched(format!("Practitioner/{id}")))
        } else {
            Err(Refusal::Conflict(format!(
                "Practitioner/{id} is someone else on this node"
            )))
        };
    }
    if let Some(here) = practitioners::list(ctx, Some(role))?
        .into_iter()
        .find(|x| x.display_name.eq_ignore_ascii_case(&display))
    {
        return Ok(Disposition::Matched(format!("Practitioner/{}", here.id)));
    }
    // A username from the name, made unique: the admin tells the person theirs.
    let stem: String = display
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(".")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .take(40)
        .collect();
    let stem = if stem.len() < 3 {
        format!("staff.{stem}")
    } else {
        stem
    };
    let mut username = stem.clone();
    let mut n = 1;
    while practitioners::username_taken(ctx, &username)? {
        n += 1;
        username = format!("{stem}{n}");
    }
    let id = wanted.unwrap_or_default();
    let created = Practitioner {
        id,
        username,
        display_name: display,
        role,
        disabled: p.active == Some(false),
        version: 1,
    };
    practitioners::insert(ctx, &created, NO_PASSWORD, ctx.now().timestamp_millis())?;
    audit_created(
        ctx,
        imp,
        "practitioner.create",
        &format!("practitioner/{id}"),
    )?;
    Ok(Disposition::Created(format!("Practitioner/{id}")))
}

fn schedule(
    ctx: &mut WriteCtx<'_>,
    s: &fr::Schedule,
    actor: &str,
    hours: Vec<WorkingHours>,
) -> Result<Disposition, Refusal> {
    let id: PractitionerId = id_in(actor, "Practitioner")
        .ok_or_else(|| invalid("Schedule.actor names no practitioner"))?;
    match practitioners::get(ctx, id)? {
        Some(p) if p.role == Role::Doctor => {}
        Some(_) => {
            return Err(invalid(format!(
                "{actor} is not a doctor: only doctors have schedules"
            )));
        }
        None => {
            return Err(invalid(format!(
                "{actor} is neither in the file nor on this node"
            )));
        }
    }
    if schedules::get(ctx, id)?.is_some() {
        return Ok(Disposition::Matched(format!("Schedule/{id}")));
    }
    let slot_minutes = s
        .extension
        .iter()
        .find(|x| x.url == system::extension("slot-minutes"))
        .and_then(|x| x.value_string.as_deref()?.parse().ok())
        .unwrap_or(15);
    let update = ScheduleUpdate {
        slot_minutes,
        hours,
    };
    update.validate().map_err(invalid)?;
    let created = Schedule {
        practitioner_id: id,
        slot_minutes: update.slot_minutes,
        hours: update.hours,
        version: 1,
    };
    schedules::put(ctx, &created)?;
    ctx.emit(
        EventKind::ScheduleUpdated,
        visibility::schedule_audience(id),
        &created,
    )?;
    Ok(Disposition::Created(format!("Schedule/{id}")))
}

fn participant(resolved: &Resolved, a: &fr::Appointment, resource_type: &str) -> Option<String> {
    a.participant
        .iter()
        .filter_map(|p| p.actor.as_ref()?.reference.as_deref())
        .filter_map(|r| resolved.local(r))
        .find(|l| l.starts_with(&format!("{resource_type}/")))
}

fn appointment(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    resolved: &Resolved,
    a: &fr::Appointment,
) -> Result<Disposition, Refusal> {
    let patient: PatientId = participant(resolved, a, "Patient")
        .and_then(|l| id_in(&l, "Patient"))
        .ok_or_else(|| invalid("Appointment.participant names no patient"))?;
    let doctor: PractitionerId = participant(resolved, a, "Practitioner")
        .and_then(|l| id_in(&l, "Practitioner"))
        .ok_or_else(|| invalid("Appointment.participant names no practitioner"))?;
    let Some(subject) = patients::get(ctx, patient, imp.node)? else {
        return Err(invalid(format!(
            "Patient/{patient} is neither in the file nor on this node"
        )));
    };
    if let Some(why) = crate::federation::transfer::unchangeable(ctx, &subject)? {
        return Err(Refusal::Conflict(format!("Patient/{patient}: {why}")));
    }
    match practitioners::get(ctx, doctor)? {
        Some(p) if p.role == Role::Doctor => {}
        _ => {
            return Err(invalid(format!(
                "Practitioner/{doctor} is not a doctor on this node"
            )));
        }
    }
    let status_code = a
        .status
        .as_deref()
        .ok_or_else(|| invalid("Appointment.status is required"))?;
    let status = AppointmentStatus::parse(status_code).ok_or_else(|| {
        invalid(format!(
            "Appointment.status `{status_code}` is not one the node keeps"
        ))
    })?;
    let start = instant("Appointment.start", a.start.as_deref())?;
    let end = instant("Appointment.end", a.end.as_deref())?;
    if end <= start {
        return Err(invalid("Appointment.end must be after its start"));
    }
    if end - start > MAX_APPOINTMENT {
        return Err(invalid(format!(
            "an appointment lasts at most {} minutes",
            MAX_APPOINTMENT.num_minutes()
        )));
    }
    let reason = text(&a.description).unwrap_or_else(|| "Imported appointment".into());
    validate_reason(&reason).map_err(|m| invalid(format!("Appointment.description {m}")))?;
    let override_reason = a
        .extension
        .iter()
        .find(|x| x.url == system::extension("override-reason"))
        .and_then(|x| text(&x.value_string));
    let wanted: Option<AppointmentId> =
        global_here(&a.identifier, imp.node).or(own_id(a.id.as_deref()));
    if let Some(id) = wanted
        && let Some(here) = appointments::get(ctx, id)?
    {
        return if here.patient_id == patient
            && here.practitioner_id == doctor
            && here.start == start
        {
            Ok(Disposition::Matched(format!("Appointment/{id}")))
        } else {
            Err(Refusal::Conflict(format!(
                "Appointment/{id} is another appointment on this node"
            )))
        };
    }
    // The same booking, already here.
    let q = carebridge_protocol::appointment::AppointmentQuery {
        patient_id: Some(patient),
        practitioner_id: Some(doctor),
        from: Some(start),
        to: Some(start + chrono::Duration::milliseconds(1)),
        ..Default::default()
    };
    if let Some(here) = appointments::list(ctx, &q, appointments::Scope::All)?.first() {
        return Ok(Disposition::Matched(format!("Appointment/{}", here.id)));
    }
    // No double booking: a live appointment may not overlap another of the doctor's unless it
    // carries the override's reason, as at the desk.
    if status.occupies_time()
        && override_reason.is_none()
        && let Some(other) = appointments::overlapping(ctx, doctor, start, end, None)?
    {
        return Err(Refusal::Conflict(format!(
            "the doctor already has Appointment/{other} at that time (double booking)"
        )));
    }
    let reference = a
        .identifier
        .iter()
        .find(|i| {
            i.system.as_deref().is_some_and(|s| {
                s.starts_with(&format!("{}/sid/appointment-reference/", system::BASE))
            })
        })
        .and_then(|i| text(&i.value))
        .filter(|r| r.len() <= 20);
    let reference = match reference {
        Some(r) if !appointments::reference_taken(ctx, &r)? => r,
        _ => appointments::new_reference(ctx)?,
    };
    // Who booked it, when they are on this node too (a kiosk's booking is not: kiosks do not
    // travel); else whoever imports, else the doctor.
    let recorded: Option<PractitionerId> = a
        .extension
        .iter()
        .find(|x| x.url == system::extension("booked-by"))
        .and_then(|x| {
            x.value_string
                .as_deref()?
                .strip_prefix("staff:")?
                .parse()
                .ok()
        });
    let booker = match recorded {
        Some(p) if practitioners::get(ctx, p)?.is_some() => p,
        _ => imp.by.unwrap_or(doctor),
    };
    let id = wanted.unwrap_or_default();
    let now = ctx.now();
    let created = Appointment {
        id,
        reference,
        patient_id: patient,
        practitioner_id: doctor,
        start,
        end,
        reason,
        status,
        booked_by: BookedBy::Staff { id: booker },
        override_reason,
        cancellation_reason: a.cancelation_reason.as_ref().and_then(|c| text(&c.text)),
        version: 1,
        created_at: a
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map_or(now, |c| c.with_timezone(&Utc)),
        updated_at: now,
    };
    appointments::insert(ctx, &created)?;
    audit_created(ctx, imp, "appointment.book", &format!("appointment/{id}"))?;
    ctx.emit(
        EventKind::AppointmentCreated,
        visibility::appointment_audience(&created),
        &created,
    )?;
    Ok(Disposition::Created(format!("Appointment/{id}")))
}

fn report(
    ctx: &mut WriteCtx<'_>,
    imp: &Importer<'_>,
    resolved: &Resolved,
    r: &fr::DiagnosticReport,
) -> Result<Disposition, Refusal> {
    let status_code = r
        .status
        .as_deref()
        .ok_or_else(|| invalid("DiagnosticReport.status is required"))?;
    let status = match ReportStatus::parse(status_code) {
        Some(s @ (ReportStatus::Final | ReportStatus::Amended)) => s,
        _ => {
            return Err(invalid(format!(
                "DiagnosticReport.status `{status_code}`: only final documents (final, amended) are imported"
            )));
        }
    };
    let patient: PatientId = r
        .subject
        .as_ref()
        .and_then(|s| s.reference.as_deref())
        .and_then(|s| resolved.local(s))
        .and_then(|l| id_in(&l, "Patient"))
        .ok_or_else(|| invalid("DiagnosticReport.subject names no patient"))?;
    let Some(subject) = patients::get(ctx, patient, imp.node)? else {
        return Err(invalid(format!(
            "Patient/{patient} is neither in the file nor on this node"
        )));
    };
    if let Some(why) = crate::federation::transfer::unchangeable(ctx, &subject)? {
        return Err(Refusal::Conflict(format!("Patient/{patient}: {why}")));
    }
    let author_id: PractitionerId = r
        .performer
        .iter()
        .filter_map(|p| p.reference.as_deref())
        .filter_map(|p| resolved.local(p))
        .find_map(|l| id_in(&l, "Practitioner"))
        .ok_or_else(|| invalid("DiagnosticReport.performer names no practitioner"))?;
    let author = practitioners::get(ctx, author_id)?.ok_or_else(|| {
        invalid(format!(
            "Practitioner/{author_id} is neither in the file nor on this node"
        ))
    })?;
    let title = r
        .code
        .as_ref()
        .and_then(|c| text(&c.text).or_else(|| c.coding.iter().find_map(|x| text(&x.display))))
        .ok_or_else(|| invalid("DiagnosticReport.code needs a text (the title)"))?;
    let findings = r
        .presented_form
        .iter()
        .find(|f| {
            f.title.as_deref() == Some(carebridge_fhir::map::FINDINGS)
                && f.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("text/plain"))
        })
        .and_then(|f| f.data.as_deref())
        .map(|d| {
            BASE64
                .decode(d)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid("the findings attachment is not base64 UTF-8 text"))
        })
        .transpose()?
        .unwrap_or_default();
    let content = ReportContent {
        title,
        findings,
        conclusion: r.conclusion.clone().unwrap_or_default(),
        codes: r
            .conclusion_code
            .iter()
            .filter_map(|c| text(&c.text).or_else(|| c.coding.iter().find_map(|x| text(&x.code))))
            .collect(),
    };
    content
        .validate()
        .map_err(|(field, m)| invalid(format!("DiagnosticReport {field}: {m}")))?;
    let wanted: Option<ReportId> = global_here(&r.identifier, imp.node).or(own_id(r.id.as_deref()));
    if let Some(id) = wanted
        && let Some(here) = reports::get(ctx, id)?
    {
        return if here.patient_id == patient {
            Ok(Disposition::Matched(format!("DiagnosticReport/{id}")))
        } else {
            Err(Refusal::Conflict(format!(
                "DiagnosticReport/{id} is another patient's report on this node"
            )))
        };
    }
    let id = wanted.unwrap_or_default();
    let now = ctx.now();
    let created_at = r
        .effective_date_time
        .as_deref()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map_or(now, |c| c.with_timezone(&Utc));
    // Signed here, now, for its author: the node vouches for what it holds.
    let signature = RevisionFacts {
        report_id: id,
        revision: 1,
        status,
        patient_id: patient,
        author_id,
        author_name: &author.display_name,
        content: &content,
    }
    .sign(imp.node, imp.signing_key, now);
    let created = Report {
        id,
        patient_id: patient,
        author_id,
        author_name: author.display_name.clone(),
        status,
        content: content.clone(),
        revision: 1,
        signature: Some(signature.clone()),
        error_reason: None,
        version: 1,
        created_at,
        updated_at: now,
    };
    reports::put(ctx, &created)?;
    reports::add_revision(
        ctx,
        id,
        &ReportRevision {
            revision: 1,
            status,
            content,
            author_id,
            author_name: author.display_name,
            signature,
        },
    )?;
    audit_created(ctx, imp, "report.create", &format!("report/{id}"))?;
    ctx.emit(
        EventKind::ReportCreated,
        visibility::audience(RecordKind::Report),
        &created,
    )?;
    Ok(Disposition::Created(format!("DiagnosticReport/{id}")))
}

/// A refusal as a write job's error, so that the store rolls the entry back.
#[derive(Debug)]
struct Refused(Refusal);

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Applies each entry in its own store transaction, in dependency order, telling `progress`
/// how many are done after each; a refusal leaves the others. What became of each entry, by
/// its position in the file.
pub async fn one_by_one(
    node: &Arc<Node>,
    draft: AuditDraft,
    by: Option<PractitionerId>,
    entries: Vec<Entry>,
    mut progress: impl FnMut(usize),
) -> Vec<(usize, Result<Disposition, Refusal>)> {
    let mut scanned = Resolved::default();
    scanned.scan(&entries);
    let resolved = Arc::new(parking_lot::Mutex::new(scanned));
    let mut out = Vec::with_capacity(entries.len());
    for (done, e) in in_dependency_order(entries).into_iter().enumerate() {
        let index = e.index;
        let (n, r, d) = (node.clone(), resolved.clone(), draft.clone());
        let result = node
            .store
            .write(Some(draft.clone()), move |ctx| {
                let imp = Importer {
                    node: n.name(),
                    tz: n.tz,
                    signing_key: &n.signing_key,
                    by,
                    audit: &d,
                    match_by_name: true,
                };
                let disposition = apply(ctx, &imp, &mut r.lock(), &e).map_err(Refused)?;
                ctx.set_detail(format!("entry {index}: {}", disposition.location()));
                Ok::<_, Refused>(disposition)
            })
            .await;
        out.push((index, result.map_err(|Refused(r)| r)));
        progress(done + 1);
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

/// What an import file holds, read: its entries, and the lines that are no resource (each
/// refused, with its position).
#[derive(Debug)]
pub struct ImportFile {
    /// The resources, with their positions.
    pub entries: Vec<Entry>,
    /// The lines that could not be read.
    pub unreadable: Vec<(usize, Refusal)>,
}

/// What an import file holds: a Bundle (of any type), one resource, or NDJSON (one resource a
/// line). A line that is not a resource is refused by itself, with its line number.
pub fn read_file(text: &str) -> Result<ImportFile, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        if v["resourceType"] == "Bundle" {
            let (entries, unreadable) = entries_of_value(&v);
            return Ok(ImportFile {
                entries,
                unreadable,
            });
        }
        let r: Resource = serde_json::from_value(v).map_err(|e| {
            format!("the file is JSON but not a FHIR resource this node reads: {e}")
        })?;
        return Ok(ImportFile {
            entries: vec![Entry {
                index: 0,
                full_url: None,
                resource: r,
            }],
            unreadable: Vec::new(),
        });
    }
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Resource>(line) {
            Ok(resource) => entries.push(Entry {
                index,
                full_url: None,
                resource,
            }),
            Err(e) => refused.push((
                index,
                invalid(format!(
                    "line {}: not a FHIR resource this node reads: {e}",
                    index + 1
                )),
            )),
        }
    }
    if entries.is_empty() && refused.is_empty() {
        return Err("the file holds no resources".into());
    }
    Ok(ImportFile {
        entries,
        unreadable: refused,
    })
}

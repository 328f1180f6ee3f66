//! The user's writes: shown at once (marked pending), kept in order in a persisted outbox until
//! the node answers, and rolled back to the node's state when the node refuses them.
//!
//! While a record has pending writes, what the node says about it (its answers, other users'
//! events) goes to the record's *shadow*, the state to fall back on; the row keeps showing the
//! user's change. When the last pending write for the record is answered, the newer of the
//! shadow and the answer becomes the row.

use carebridge_protocol::appointment::{
    Appointment, AppointmentAction, BookAppointment, BookedBy, Reschedule, validate_reason,
    validate_time,
};
use carebridge_protocol::booking::{self, Booker, BookingError};
use carebridge_protocol::patient::{NewPatient, Patient, PatientUpdate};
use carebridge_protocol::report::{NewReport, Report, ReportAction, ReportContent, ReportStatus};
use carebridge_protocol::session::Principal;
use carebridge_protocol::text::{self, Clean};
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId, Problem, ReportId};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::LocalStore;
use super::mirror::{Applied, Existing, NodeRecord, delete_row, fts_body, table, write_row};
use crate::error::CoreError;

/// A write waiting for the node: what to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Write {
    /// Book an appointment; `local_id` names it until the node gives it its id.
    Book {
        /// The id the appointment has here until the node accepts it.
        local_id: AppointmentId,
        /// The request.
        body: BookAppointment,
    },
    /// Confirm, decline, cancel, check in, complete or mark a no-show.
    Act {
        /// The appointment.
        id: AppointmentId,
        /// What to do.
        action: AppointmentAction,
        /// Why (decline and cancel).
        reason: Option<String>,
        /// The version the user acted on.
        if_match: i64,
    },
    /// Move an appointment.
    Reschedule {
        /// The appointment.
        id: AppointmentId,
        /// Where to.
        body: Reschedule,
        /// The version the user acted on.
        if_match: i64,
    },
    /// Register a patient; `local_id` names them until the node gives them their id.
    RegisterPatient {
        /// The id the patient has here until the node accepts them.
        local_id: PatientId,
        /// The request.
        body: NewPatient,
    },
    /// Change a patient's details.
    UpdatePatient {
        /// The patient.
        id: PatientId,
        /// The changes.
        body: PatientUpdate,
        /// The version the user edited.
        if_match: i64,
    },
    /// Start a report (a draft); the client names it, so its id never changes.
    CreateReport {
        /// The request, with the report's id.
        body: NewReport,
    },
    /// Save a draft's content, finalise it, amend a final report or enter it in error.
    ReportAct {
        /// The report.
        id: ReportId,
        /// What to do.
        action: ReportAction,
        /// The new content (save and amend).
        content: Option<ReportContent>,
        /// Why (entered in error).
        reason: Option<String>,
        /// The version the user acted on.
        if_match: i64,
    },
}

/// Where an outbox item stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for the node.
    Pending,
    /// The node refused it; the change was rolled back. Kept until the user dismisses it.
    Refused,
}

/// One of the user's writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Its place in the queue.
    pub seq: i64,
    /// Sent as `Idempotency-Key`, the same on every attempt.
    pub idempotency_key: String,
    /// The kind of record it changes.
    pub kind: String,
    /// The record it changes (its local id until the node accepted it).
    pub record_id: String,
    /// What to send.
    pub write: Write,
    /// Where it stands.
    pub state: OutboxState,
    /// For a refused item: the node's reason.
    pub problem: Option<Problem>,
    /// How many times sending it failed for a passing reason.
    pub attempts: u32,
}

/// The node's answer to an outbox item.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Done; the record's new state.
    Accepted(NodeRecord),
    /// Refused for a reason retrying cannot cure (409, 412, 422, …).
    Refused(Problem),
}

fn now_ms() -> i64 {
    crate::clock::now().timestamp_millis()
}

fn load_row(
    tx: &Transaction<'_>,
    kind: &str,
    id: &str,
) -> Result<Option<(i64, NodeRecord)>, CoreError> {
    let table = table(kind)?;
    let row: Option<(i64, String)> = tx
        .prepare_cached(&format!("SELECT rowid, data FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(rowid, data)| Ok((rowid, NodeRecord::from_json(kind, &data)?)))
        .transpose()
}

/// The row a record has now, for [`write_row`].
fn existing(tx: &Transaction<'_>, kind: &str, id: &str) -> Result<Existing, CoreError> {
    Ok(load_row(tx, kind, id)?.map(|(rowid, r)| (rowid, fts_body(&r))))
}

/// Resolves an id the user may have seen before the node gave the record its own.
pub(super) fn resolve(c: &rusqlite::Connection, id: &str) -> Result<String, CoreError> {
    Ok(
        c.prepare_cached("SELECT node FROM local_id WHERE local = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| id.to_owned()),
    )
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, CoreError> {
    s.parse()
        .map_err(|_| CoreError::Protocol(format!("stored id {s} is not a UUID")))
}

/// Records a local change: keeps the node's state as the shadow (first change only), shows the
/// change marked pending, and queues what to send.
fn queue(
    tx: &Transaction<'_>,
    before: Option<(i64, &NodeRecord)>,
    after: &NodeRecord,
    write: &Write,
) -> Result<i64, CoreError> {
    let kind = after.kind();
    let id = after.id();
    let (version, data) = match before {
        Some((_, r)) => (r.version(), Some(serde_json::to_string(&RecordJson(r))?)),
        None => (0, None),
    };
    tx.prepare_cached(
        "INSERT INTO shadow (kind, id, version, data) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, id) DO NOTHING",
    )?
    .execute(params![kind, id, version, data])?;
    write_row(
        tx,
        after,
        true,
        before.map(|(rowid, r)| (rowid, fts_body(r))),
    )?;
    let key = uuid::Uuid::new_v4().to_string();
    tx.prepare_cached(
        "INSERT INTO outbox (idempotency_key, kind, record_id, write, state, created_ms) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
    )?
    .execute(params![key, kind, id, serde_json::to_string(write)?, now_ms()])?;
    Ok(tx.last_insert_rowid())
}

/// Serialises a record as its own JSON (not tagged by kind).
struct RecordJson<'a>(&'a NodeRecord);

impl Serialize for RecordJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            NodeRecord::Practitioner(p) => p.serialize(s),
            NodeRecord::Schedule(x) => x.serialize(s),
            NodeRecord::Absence(a) => a.serialize(s),
            NodeRecord::Patient(p) => p.serialize(s),
            NodeRecord::Appointment(a) => a.serialize(s),
            NodeRecord::Report(r) => r.serialize(s),
        }
    }
}

fn appointment(tx: &Transaction<'_>, id: AppointmentId) -> Result<(i64, Appointment), CoreError> {
    let id = resolve(tx, &id.to_string())?;
    match load_row(tx, "appointment", &id)? {
        Some((rowid, NodeRecord::Appointment(a))) => Ok((rowid, a)),
        _ => Err(CoreError::NotFound(format!("appointment {id}"))),
    }
}

fn taken(other: &Appointment) -> CoreError {
    CoreError::SlotTaken(format!(
        "the doctor already has an appointment from {} to {}: choose another slot",
        other.start.format("%Y-%m-%d %H:%M UTC"),
        other.end.format("%H:%M UTC")
    ))
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(msg.into())
}

/// A booking rule the write breaks: refused here as the node would refuse it.
fn broken(e: BookingError) -> CoreError {
    invalid(e.to_string())
}

/// What the node stores of a report's content: the title and codes trimmed.
fn tidy_content(mut c: ReportContent) -> ReportContent {
    c.title = c.title.trim().to_owned();
    c.codes = c.codes.into_iter().map(|s| s.trim().to_owned()).collect();
    c
}

impl LocalStore {
    /// Books an appointment for `by`: shown at once (pending), sent when the node can be
    /// reached. The slot must be chosen (`start`); the end defaults to the doctor's slot length.
    ///
    /// Refused here, as the node would refuse it, when it breaks a rule of
    /// [`carebridge_protocol::booking`]: a kiosk's override, an override without a reason, an
    /// end not after the start or more than 12 hours later, or (without an override) a time
    /// that an appointment in the mirror occupies, overbooked ones included.
    pub async fn queue_booking(
        &self,
        by: Principal,
        mut body: BookAppointment,
    ) -> Result<Appointment, CoreError> {
        self.with(move |c| {
            body.clean().map_err(field_errors)?;
            let start = body.start.ok_or_else(|| {
                invalid("choose a slot: a booking made here needs its start time")
            })?;
            validate_time(start).map_err(|e| invalid(format!("start: {e}")))?;
            validate_reason(&body.reason).map_err(|e| invalid(format!("reason: {e}")))?;
            let override_reason =
                booking::check_override(Booker::from(&by), body.override_reason.as_deref())
                    .map_err(broken)?;
            let tx = c.transaction()?;
            let end = match body.end {
                Some(end) => end,
                None => {
                    start + Duration::minutes(slot_minutes(&tx, &body.practitioner_id.to_string())?)
                }
            };
            booking::check_length(start, end).map_err(broken)?;
            let booked_by = match by {
                Principal::Kiosk { id, .. } => BookedBy::Kiosk { id },
                Principal::Staff { id, .. } => BookedBy::Staff { id },
            };
            let patient_id: PatientId = parse_id(&resolve(&tx, &body.patient_id.to_string())?)?;
            if booking::needs_free_time(override_reason.as_deref())
                && let Some(other) =
                    overlapping(&tx, &body.practitioner_id.to_string(), start, end, None)?
            {
                return Err(taken(&other));
            }
            let now = crate::clock::now();
            let local_id = AppointmentId::new();
            let a = Appointment {
                id: local_id,
                reference: String::new(),
                patient_id,
                practitioner_id: body.practitioner_id,
                start,
                end,
                reason: body.reason.clone(),
                status: booked_by.initial_status(),
                booked_by,
                override_reason: override_reason.clone(),
                cancellation_reason: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            let body = BookAppointment {
                id: Some(local_id),
                patient_id,
                start: Some(start),
                end: Some(end),
                next_available_from: None,
                override_reason,
                ..body
            };
            queue(
                &tx,
                None,
                &NodeRecord::Appointment(a.clone()),
                &Write::Book { local_id, body },
            )?;
            tx.commit()?;
            Ok(a)
        })
        .await
    }

    /// Confirms, declines, cancels, checks in, completes or marks a no-show; `reason` for
    /// decline and cancel. Refused at once if the appointment's status does not allow it.
    pub async fn queue_action(
        &self,
        id: AppointmentId,
        action: AppointmentAction,
        reason: Option<String>,
    ) -> Result<Appointment, CoreError> {
        let reason = reason.map(|r| text::nfc(&r));
        self.with(move |c| {
            let tx = c.transaction()?;
            let (rowid, before) = appointment(&tx, id)?;
            if action == AppointmentAction::Reschedule {
                return Err(invalid("use reschedule to move an appointment"));
            }
            let status = before.status.apply(action).ok_or_else(|| {
                invalid(format!(
                    "an appointment that is {} cannot be given {}",
                    before.status.as_str(),
                    action.as_str()
                ))
            })?;
            let needs_reason = matches!(
                action,
                AppointmentAction::Decline | AppointmentAction::Cancel
            );
            match (&reason, needs_reason) {
                (Some(r), true) => {
                    validate_reason(r).map_err(|e| invalid(format!("reason: {e}")))?
                }
                (None, true) => return Err(invalid("give a reason")),
                _ => {}
            }
            let mut after = before.clone();
            after.status = status;
            after.version += 1;
            after.updated_at = crate::clock::now();
            if needs_reason {
                after.cancellation_reason = reason.clone();
            }
            let write = Write::Act {
                id: after.id,
                action,
                reason,
                if_match: before.version,
            };
            queue(
                &tx,
                Some((rowid, &NodeRecord::Appointment(before))),
                &NodeRecord::Appointment(after.clone()),
                &write,
            )?;
            tx.commit()?;
            Ok(after)
        })
        .await
    }

    /// Moves an appointment for `by` (staff). The end defaults to the doctor's slot length.
    ///
    /// Refused here, as the node would refuse it, when it breaks a rule of
    /// [`carebridge_protocol::booking`] (see [`LocalStore::queue_booking`]). As on the node, the
    /// move replaces the appointment's override with its own: a move without one leaves the
    /// appointment no longer overbooked, and needs its new time free.
    pub async fn queue_reschedule(
        &self,
        by: Principal,
        id: AppointmentId,
        mut body: Reschedule,
    ) -> Result<Appointment, CoreError> {
        self.with(move |c| {
            body.clean().map_err(field_errors)?;
            validate_time(body.start).map_err(|e| invalid(format!("start: {e}")))?;
            let override_reason =
                booking::check_override(Booker::from(&by), body.override_reason.as_deref())
                    .map_err(broken)?;
            let tx = c.transaction()?;
            let (rowid, before) = appointment(&tx, id)?;
            if before.status.apply(AppointmentAction::Reschedule).is_none() {
                return Err(invalid(format!(
                    "an appointment that is {} cannot be moved",
                    before.status.as_str()
                )));
            }
            let end = match body.end {
                Some(end) => end,
                None => {
                    body.start
                        + Duration::minutes(slot_minutes(&tx, &before.practitioner_id.to_string())?)
                }
            };
            booking::check_length(body.start, end).map_err(broken)?;
            if booking::needs_free_time(override_reason.as_deref())
                && let Some(other) = overlapping(
                    &tx,
                    &before.practitioner_id.to_string(),
                    body.start,
                    end,
                    Some(&before.id.to_string()),
                )?
            {
                return Err(taken(&other));
            }
            let mut after = before.clone();
            after.start = body.start;
            after.end = end;
            after.version += 1;
            after.updated_at = crate::clock::now();
            after.override_reason.clone_from(&override_reason);
            let write = Write::Reschedule {
                id: after.id,
                body: Reschedule {
                    end: Some(end),
                    override_reason,
                    ..body
                },
                if_match: before.version,
            };
            queue(
                &tx,
                Some((rowid, &NodeRecord::Appointment(before))),
                &NodeRecord::Appointment(after.clone()),
                &write,
            )?;
            tx.commit()?;
            Ok(after)
        })
        .await
    }

    /// Registers a patient (staff). `today` is the node's date, for checking the birth date.
    pub async fn queue_new_patient(
        &self,
        mut body: NewPatient,
        node_name: String,
        today: chrono::NaiveDate,
    ) -> Result<Patient, CoreError> {
        self.with(move |c| {
            body.clean().map_err(field_errors)?;
            body.validate(today).map_err(field_errors)?;
            let tx = c.transaction()?;
            let now = crate::clock::now();
            let local_id = PatientId::new();
            let p = Patient {
                id: local_id,
                global_id: format!("{local_id}@{node_name}"),
                family_name: body.family_name.trim().to_owned(),
                given_name: body.given_name.trim().to_owned(),
                birth_date: body.birth_date,
                phone: body.phone.clone(),
                email: body.email.clone(),
                card_number: body.card_number.clone().unwrap_or_default(),
                version: 1,
                created_at: now,
                updated_at: now,
                transferred_to: None,
            };
            let body = NewPatient {
                id: Some(local_id),
                ..body
            };
            queue(
                &tx,
                None,
                &NodeRecord::Patient(p.clone()),
                &Write::RegisterPatient { local_id, body },
            )?;
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    /// Changes a patient's details (staff).
    pub async fn queue_patient_update(
        &self,
        id: PatientId,
        mut body: PatientUpdate,
        today: chrono::NaiveDate,
    ) -> Result<Patient, CoreError> {
        self.with(move |c| {
            body.clean().map_err(field_errors)?;
            body.validate(today).map_err(field_errors)?;
            let tx = c.transaction()?;
            let id = resolve(&tx, &id.to_string())?;
            let Some((rowid, NodeRecord::Patient(before))) = load_row(&tx, "patient", &id)? else {
                return Err(CoreError::NotFound(format!("patient {id}")));
            };
            let mut after = before.clone();
            if let Some(v) = &body.family_name {
                after.family_name = v.trim().to_owned();
            }
            if let Some(v) = &body.given_name {
                after.given_name = v.trim().to_owned();
            }
            if let Some(v) = body.birth_date {
                after.birth_date = v;
            }
            if let Some(v) = &body.phone {
                after.phone = Some(v.clone());
            }
            if let Some(v) = &body.email {
                after.email = Some(v.clone());
            }
            if let Some(v) = &body.card_number {
                after.card_number = v.clone();
            }
            after.version += 1;
            after.updated_at = crate::clock::now();
            let write = Write::UpdatePatient {
                id: after.id,
                body,
                if_match: before.version,
            };
            queue(
                &tx,
                Some((rowid, &NodeRecord::Patient(before))),
                &NodeRecord::Patient(after.clone()),
                &write,
            )?;
            tx.commit()?;
            Ok(after)
        })
        .await
    }

    /// Starts a report for `author`: a `preliminary` draft, shown at once (pending).
    pub async fn queue_new_report(
        &self,
        author: PractitionerId,
        author_name: String,
        patient_id: PatientId,
        mut content: ReportContent,
    ) -> Result<Report, CoreError> {
        self.with(move |c| {
            content.clean().map_err(field_errors)?;
            content
                .validate()
                .map_err(|(f, m)| invalid(format!("{f}: {m}")))?;
            let tx = c.transaction()?;
            let patient_id: PatientId = parse_id(&resolve(&tx, &patient_id.to_string())?)?;
            if load_row(&tx, "patient", &patient_id.to_string())?.is_none() {
                return Err(CoreError::NotFound(format!("patient {patient_id}")));
            }
            let now = crate::clock::now();
            let r = Report {
                id: ReportId::new(),
                patient_id,
                author_id: author,
                author_name,
                status: ReportStatus::Preliminary,
                content: tidy_content(content),
                revision: 0,
                signature: None,
                error_reason: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            let body = NewReport {
                id: Some(r.id),
                patient_id,
                content: r.content.clone(),
            };
            queue(
                &tx,
                None,
                &NodeRecord::Report(r.clone()),
                &Write::CreateReport { body },
            )?;
            tx.commit()?;
            Ok(r)
        })
        .await
    }

    /// Saves a draft, finalises it, amends a final report (with `content`) or enters it in
    /// error (with `reason`), as `me`. Refused at once when the report's status does not
    /// allow it; the signature comes from the node when it accepts the change.
    pub async fn queue_report_action(
        &self,
        me: PractitionerId,
        my_name: String,
        id: ReportId,
        action: ReportAction,
        content: Option<ReportContent>,
        reason: Option<String>,
    ) -> Result<Report, CoreError> {
        let reason = reason.map(|r| text::nfc(&r));
        self.with(move |c| {
            let tx = c.transaction()?;
            let Some((rowid, NodeRecord::Report(before))) =
                load_row(&tx, "report", &id.to_string())?
            else {
                return Err(CoreError::NotFound(format!("report {id}")));
            };
            let status = before.status.apply(action).ok_or_else(|| {
                invalid(format!(
                    "a {} report cannot be given {}",
                    before.status.as_str(),
                    action.as_str()
                ))
            })?;
            if before.status == ReportStatus::Preliminary && before.author_id != me {
                return Err(invalid(
                    "a draft belongs to its author until it is finalised",
                ));
            }
            let content = match (action, content) {
                (ReportAction::SaveDraft | ReportAction::Amend, Some(mut c)) => {
                    c.clean().map_err(field_errors)?;
                    c.validate()
                        .map_err(|(f, m)| invalid(format!("{f}: {m}")))?;
                    Some(tidy_content(c))
                }
                (ReportAction::SaveDraft | ReportAction::Amend, None) => {
                    return Err(invalid("give the report's content"));
                }
                _ => None,
            };
            let reason = match (action, reason) {
                (ReportAction::EnteredInError, Some(r)) => {
                    validate_reason(&r).map_err(|e| invalid(format!("reason: {e}")))?;
                    Some(r.trim().to_owned())
                }
                (ReportAction::EnteredInError, None) => return Err(invalid("give a reason")),
                _ => None,
            };
            let mut after = before.clone();
            after.status = status;
            after.version += 1;
            after.updated_at = crate::clock::now();
            if let Some(c) = &content {
                after.content = c.clone();
            }
            if action == ReportAction::Amend {
                after.author_id = me;
                after.author_name = my_name;
            }
            if matches!(action, ReportAction::Finalise | ReportAction::Amend) {
                // Signed by the node when it accepts: until then, no signature is shown.
                after.revision += 1;
                after.signature = None;
            }
            if reason.is_some() {
                after.error_reason = reason.clone();
            }
            let write = Write::ReportAct {
                id,
                action,
                content,
                reason,
                if_match: before.version,
            };
            queue(
                &tx,
                Some((rowid, &NodeRecord::Report(before))),
                &NodeRecord::Report(after.clone()),
                &write,
            )?;
            tx.commit()?;
            Ok(after)
        })
        .await
    }

    /// The first write still waiting for the node, with ids the node gave since it was queued.
    pub async fn next_pending(&self) -> Result<Option<OutboxItem>, CoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let item = items(&tx, "WHERE state = 'pending' ORDER BY seq LIMIT 1")?
                .into_iter()
                .next();
            let Some(mut item) = item else {
                return Ok(None);
            };
            let r = |id: String| resolve(&tx, &id);
            item.write = match item.write {
                Write::Book { local_id, mut body } => {
                    body.patient_id = parse_id(&r(body.patient_id.to_string())?)?;
                    Write::Book { local_id, body }
                }
                Write::Act {
                    id,
                    action,
                    reason,
                    if_match,
                } => Write::Act {
                    id: parse_id(&r(id.to_string())?)?,
                    action,
                    reason,
                    if_match,
                },
                Write::Reschedule { id, body, if_match } => Write::Reschedule {
                    id: parse_id(&r(id.to_string())?)?,
                    body,
                    if_match,
                },
                Write::UpdatePatient { id, body, if_match } => Write::UpdatePatient {
                    id: parse_id(&r(id.to_string())?)?,
                    body,
                    if_match,
                },
                w @ (Write::RegisterPatient { .. }
                | Write::CreateReport { .. }
                | Write::ReportAct { .. }) => w,
            };
            Ok(Some(item))
        })
        .await
    }

    /// Every write not yet acknowledged: pending ones in order, then refused ones.
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>, CoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            items(&tx, "ORDER BY state = 'refused', seq")
        })
        .await
    }

    /// How many writes wait for the node, and how many it refused (not yet dismissed).
    pub async fn outbox_counts(&self) -> Result<(u64, u64), CoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT state, count(*) FROM outbox GROUP BY state")?;
            let mut counts = (0, 0);
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (state, n) = row?;
                if state == "refused" {
                    counts.1 = n as u64;
                } else {
                    counts.0 = n as u64;
                }
            }
            Ok(counts)
        })
        .await
    }

    /// How many writes wait for the node.
    pub async fn pending_count(&self) -> Result<u64, CoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }

    /// Counts a failed attempt to send an item (the node was away or had a passing fault).
    pub async fn note_attempt(&self, seq: i64) -> Result<(), CoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1",
                [seq],
            )?;
            Ok(())
        })
        .await
    }

    /// The user has read a refusal: forget it.
    pub async fn dismiss_refused(&self, seq: i64) -> Result<(), CoreError> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM outbox WHERE seq = ?1 AND state = 'refused'",
                [seq],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the node's answer to item `seq`: an accepted write's record replaces the shown
    /// one once nothing else is pending for it; a refused one is rolled back, with any later
    /// writes to the same record (they were built on it).
    ///
    /// Returns the record shown when it is not the node's answer but someone else's newer
    /// change that arrived while the write was pending (with the answer as `previous`): that
    /// change is news the user has not been told about yet.
    pub async fn complete(&self, seq: i64, outcome: Outcome) -> Result<Option<Applied>, CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let Some(item) = items(&tx, &format!("WHERE seq = {seq} AND state = 'pending'"))?.into_iter().next() else {
                // Already answered (a repeat after a crash between sending and recording).
                return Ok(None);
            };
            let kind = item.kind.as_str();
            let mut news = None;
            match outcome {
                Outcome::Accepted(record) => {
                    let id = record.id();
                    if id != item.record_id {
                        // A creation. Its live event may have come first and landed under the
                        // node's id: that copy is the node's state, the shadow's job.
                        if let Some((_, landed)) = load_row(&tx, kind, &id)? {
                            delete_row(&tx, kind, &id)?;
                            tx.execute(
                                "UPDATE shadow SET version = ?3, data = ?4 WHERE kind = ?1 AND id = ?2 AND (data IS NULL OR version < ?3)",
                                params![kind, item.record_id, landed.version(), serde_json::to_string(&RecordJson(&landed))?],
                            )?;
                        }
                        // The record takes the node's id everywhere.
                        tx.execute("INSERT INTO local_id (local, node) VALUES (?1, ?2) ON CONFLICT (local) DO NOTHING", [&item.record_id, &id])?;
                        let table = table(kind)?;
                        tx.execute(&format!("UPDATE {table} SET id = ?2 WHERE id = ?1"), [&item.record_id, &id])?;
                        tx.execute("UPDATE shadow SET id = ?3 WHERE kind = ?1 AND id = ?2", [kind, &item.record_id, &id])?;
                        tx.execute("UPDATE outbox SET record_id = ?3 WHERE kind = ?1 AND record_id = ?2", [kind, &item.record_id, &id])?;
                    }
                    tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                    let remaining: i64 = tx.query_row(
                        "SELECT count(*) FROM outbox WHERE kind = ?1 AND record_id = ?2 AND state = 'pending'",
                        [kind, &id],
                        |r| r.get(0),
                    )?;
                    let json = serde_json::to_string(&RecordJson(&record))?;
                    if remaining > 0 {
                        tx.execute(
                            "UPDATE shadow SET version = ?3, data = ?4 WHERE kind = ?1 AND id = ?2 AND (data IS NULL OR version < ?3)",
                            params![kind, id, record.version(), json],
                        )?;
                        if let NodeRecord::Appointment(a) = &record {
                            // The row still shows the pending change; give it the node's id and reference.
                            tx.execute(
                                "UPDATE appointment SET data = json_set(data, '$.id', ?1, '$.reference', ?2) WHERE id = ?1",
                                params![id, a.reference],
                            )?;
                        }
                    } else {
                        let shadow = take_shadow(&tx, kind, &id)?;
                        let rowid = existing(&tx, kind, &id)?;
                        match shadow {
                            Some(newer) if newer.version() > record.version() => {
                                write_row(&tx, &newer, false, rowid)?;
                                let previous = match &record {
                                    NodeRecord::Appointment(a) => Some(a.clone()),
                                    _ => None,
                                };
                                news = Some(Applied { event_id: 0, record: newer, previous });
                            }
                            _ => write_row(&tx, &record, false, rowid)?,
                        }
                    }
                }
                Outcome::Refused(problem) => {
                    tx.execute(
                        "UPDATE outbox SET state = 'refused', problem = ?2 WHERE seq = ?1",
                        params![seq, serde_json::to_string(&problem)?],
                    )?;
                    let mut follow_on = problem.clone();
                    follow_on.title = "Not sent: an earlier change to this record was refused".into();
                    tx.execute(
                        "UPDATE outbox SET state = 'refused', problem = ?4 WHERE kind = ?1 AND record_id = ?2 AND state = 'pending' AND seq > ?3",
                        params![kind, item.record_id, seq, serde_json::to_string(&follow_on)?],
                    )?;
                    let shadow = take_shadow(&tx, kind, &item.record_id)?;
                    // A 412 carries the record as it is now on the node.
                    let current = problem
                        .current
                        .as_ref()
                        .and_then(|v| NodeRecord::from_json(kind, &v.to_string()).ok())
                        .filter(|r| r.id() == item.record_id);
                    let back = match (shadow, current) {
                        (Some(s), Some(c)) => Some(if c.version() > s.version() { c } else { s }),
                        (s, c) => s.or(c),
                    };
                    let rowid = existing(&tx, kind, &item.record_id)?;
                    match back {
                        Some(record) => write_row(&tx, &record, false, rowid)?,
                        None => delete_row(&tx, kind, &item.record_id)?,
                    }
                }
            }
            tx.commit()?;
            Ok(news)
        })
        .await
    }
}

/// Removes and returns a record's shadow (`None` when it had none, or did not exist on the node).
fn take_shadow(
    tx: &Transaction<'_>,
    kind: &str,
    id: &str,
) -> Result<Option<NodeRecord>, CoreError> {
    let data: Option<Option<String>> = tx
        .query_row(
            "DELETE FROM shadow WHERE kind = ?1 AND id = ?2 RETURNING data",
            [kind, id],
            |r| r.get(0),
        )
        .optional()?;
    data.flatten()
        .map(|d| NodeRecord::from_json(kind, &d))
        .transpose()
}

fn items(tx: &Transaction<'_>, filter: &str) -> Result<Vec<OutboxItem>, CoreError> {
    let mut stmt = tx.prepare(&format!(
        "SELECT seq, idempotency_key, kind, record_id, write, state, problem, attempts FROM outbox {filter}"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, i64>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, idempotency_key, kind, record_id, write, state, problem, attempts) = row?;
        out.push(OutboxItem {
            seq,
            idempotency_key,
            kind,
            record_id,
            write: serde_json::from_str(&write)?,
            state: if state == "refused" {
                OutboxState::Refused
            } else {
                OutboxState::Pending
            },
            problem: problem.map(|p| serde_json::from_str(&p)).transpose()?,
            attempts: attempts as u32,
        });
    }
    Ok(out)
}

/// A doctor's slot length, from their schedule (15 minutes when it is not known here).
fn slot_minutes(tx: &Transaction<'_>, practitioner: &str) -> Result<i64, CoreError> {
    let data: Option<String> = tx
        .query_row(
            "SELECT data FROM schedule WHERE id = ?1",
            [practitioner],
            |r| r.get(0),
        )
        .optional()?;
    Ok(
        match data
            .map(|d| NodeRecord::from_json("schedule", &d))
            .transpose()?
        {
            Some(NodeRecord::Schedule(s)) => i64::from(s.slot_minutes),
            _ => 15,
        },
    )
}

/// An appointment of the practitioner's that [`booking::blocks`] `[start, end)`, other than
/// `except`: one that occupies its time and overlaps the period, overbooked or not.
pub(super) fn overlapping(
    tx: &Transaction<'_>,
    practitioner: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: Option<&str>,
) -> Result<Option<Appointment>, CoreError> {
    // An appointment lasts at most `MAX_APPOINTMENT`, which bounds the index range scanned.
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT data FROM appointment WHERE practitioner_id = ?1 AND start_ms < ?3 AND start_ms > ?2 - {max}
         AND end_ms > ?2 AND {occupying} AND id IS NOT ?4 LIMIT 1",
        max = booking::MAX_APPOINTMENT_MS,
        occupying = booking::occupying_sql("status"),
    ))?;
    let data: Option<String> = stmt
        .query_row(
            params![
                practitioner,
                start.timestamp_millis(),
                end.timestamp_millis(),
                except
            ],
            |r| r.get(0),
        )
        .optional()?;
    match data
        .map(|d| NodeRecord::from_json("appointment", &d))
        .transpose()?
    {
        Some(NodeRecord::Appointment(a)) => Ok(Some(a)),
        _ => Ok(None),
    }
}

fn field_errors(errors: Vec<carebridge_protocol::problem::FieldError>) -> CoreError {
    CoreError::Invalid(
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

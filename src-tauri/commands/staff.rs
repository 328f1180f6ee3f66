//! The staff window's commands: sign-in, the day lists and calendar, patients, and the writes
//! reception and doctors make. Each is a call on the core; the core and the node decide.

use carebridge_core::protocol::appointment::{
    Appointment, AppointmentAction, BookAppointment, Reschedule,
};
use carebridge_core::protocol::patient::{NewPatient, Patient};
use carebridge_core::protocol::practitioner::Practitioner;
use carebridge_core::protocol::schedule::Slot;
use carebridge_core::protocol::session::Principal;
use carebridge_core::protocol::{AppointmentId, PatientId, PractitionerId};
use carebridge_core::session;
use carebridge_core::store::{AppointmentRow, PatientRow, SearchHit, day_bounds};
use carebridge_core::{ClientCode, Link, Profiles, Status};
use chrono::NaiveDate;
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use super::{CommandError, SignedInView, engine, reader, start_session};
use crate::AppState;

/// Signs a staff user in to a node and starts syncing their profile.
pub async fn sign_in(
    app: AppHandle,
    state: State<'_, AppState>,
    node_url: String,
    username: String,
    password: String,
) -> Result<SignedInView, CommandError> {
    let _one_at_a_time = state.signing_in.lock().await;
    let signed_in = session::sign_in_staff(&state.http, &node_url, &username, &password).await?;
    let view = start_session(app, &state, signed_in).await?;
    // So that a lock can be lifted with the same password while the node is away.
    if let Err(e) = engine(&state)
        .await?
        .store()
        .keep_unlock_password(&password)
        .await
    {
        tracing::warn!(error = %e, "the session can be unlocked only through the node");
    }
    Ok(view)
}

/// Unlocks the locked session with the signed-in user's password, checked against the
/// verifier kept at sign-in (no node needed). Refused with a clear message when it does not
/// match, or when no verifier is kept (then the UI signs in again through the node).
pub async fn unlock(
    state: State<'_, AppState>,
    password: String,
) -> Result<SignedInView, CommandError> {
    let engine = state
        .engine
        .lock()
        .await
        .clone()
        .ok_or_else(CommandError::not_signed_in)?;
    match engine.store().unlocks(&password).await? {
        Some(true) => {
            state
                .locked
                .store(false, std::sync::atomic::Ordering::SeqCst);
            Ok(super::view(engine.signed_in(), false))
        }
        Some(false) => Err(CommandError::own(
            ClientCode::WrongPassword,
            "that password does not unlock this session",
        )),
        None => Err(CommandError::own(
            ClientCode::SignedOut,
            "sign in again to unlock",
        )),
    }
}

/// Ends the session on the node and stops syncing; what is pending stays in the profile's
/// outbox for the next sign-in.
pub async fn sign_out(app: AppHandle, state: State<'_, AppState>) -> Result<(), CommandError> {
    let _one_at_a_time = state.signing_in.lock().await;
    state
        .locked
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let Some(store) = super::end_session(&state).await else {
        return Ok(());
    };
    // The indicator says so, with what still waits in this profile's outbox.
    let (pending, refused) = store.outbox_counts().await?;
    let status = Status {
        link: Link::SignedOut,
        pending,
        refused,
    };
    let _ = app.emit_to(state.mode.window(), "status", status);
    Ok(())
}

/// What the sign-in form starts with: the embedded node's address when this process hosts
/// one, else the node this window last signed in to, else the last node signed in to on this
/// machine.
pub async fn sign_in_defaults(state: State<'_, AppState>) -> Result<SignInDefaults, CommandError> {
    crate::report_interactive();
    let embedded = state.embedded_node_url().await;
    let this_window = state.last_node.lock().ok().and_then(|l| l.clone());
    Ok(SignInDefaults {
        node_url: embedded
            .or(this_window)
            .or_else(|| Profiles::in_os_data_dir().ok()?.last_node()),
    })
}

/// See [`sign_in_defaults`].
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignInDefaults {
    /// The node to offer.
    pub node_url: Option<String>,
}

/// Today's appointments (the node's date), every doctor's, by start time.
pub async fn appointments_today(
    state: State<'_, AppState>,
) -> Result<Vec<AppointmentRow>, CommandError> {
    let r = reader(&state).await?;
    Ok(r.store.appointments_on(r.today, r.time_zone).await?)
}

/// Appointments starting on local dates `from..=to`, of one doctor or of all (the calendar).
pub async fn appointments_between(
    state: State<'_, AppState>,
    practitioner_id: Option<PractitionerId>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<AppointmentRow>, CommandError> {
    let r = reader(&state).await?;
    let (start, _) = day_bounds(from, r.time_zone);
    let (_, end) = day_bounds(to, r.time_zone);
    Ok(r.store
        .appointments_between(practitioner_id, start, end)
        .await?)
}

/// A doctor's day: the signed-in doctor's own when no one is named.
pub async fn doctor_day(
    state: State<'_, AppState>,
    practitioner_id: Option<PractitionerId>,
    date: Option<NaiveDate>,
) -> Result<Vec<AppointmentRow>, CommandError> {
    let r = reader(&state).await?;
    let who = match (practitioner_id, &r.principal) {
        (Some(p), _) => p,
        (None, Principal::Staff { id, .. }) => *id,
        (None, Principal::Kiosk { .. }) => return Ok(Vec::new()),
    };
    Ok(r.store
        .doctor_day(who, date.unwrap_or(r.today), r.time_zone)
        .await?)
}

/// The kiosk bookings waiting for the signed-in doctor's answer.
pub async fn waiting_bookings(
    state: State<'_, AppState>,
) -> Result<Vec<AppointmentRow>, CommandError> {
    Ok(engine(&state).await?.waiting_bookings().await?)
}

/// Staff accounts as this client knows them (the doctors to book with).
pub async fn practitioners(state: State<'_, AppState>) -> Result<Vec<Practitioner>, CommandError> {
    Ok(reader(&state).await?.store.practitioners().await?)
}

/// A doctor's slots on local dates `from..=to`: free, held or busy.
pub async fn slots(
    state: State<'_, AppState>,
    practitioner_id: PractitionerId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Slot>, CommandError> {
    Ok(engine(&state)
        .await?
        .slots(practitioner_id, from, to)
        .await?)
}

/// Patients and appointments matching what was typed (full text, offline too).
pub async fn search(
    state: State<'_, AppState>,
    text: String,
) -> Result<Vec<SearchHit>, CommandError> {
    Ok(reader(&state).await?.store.search(text, 20).await?)
}

/// A patient's page: their details and appointments.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct PatientPage {
    /// The patient.
    pub patient: PatientRow,
    /// Their appointments, newest first.
    pub appointments: Vec<AppointmentRow>,
}

/// A patient's page.
pub async fn patient_page(
    state: State<'_, AppState>,
    patient_id: PatientId,
) -> Result<Option<PatientPage>, CommandError> {
    let r = reader(&state).await?;
    let Some(patient) = r.store.patient(patient_id).await? else {
        return Ok(None);
    };
    let appointments = r.store.patient_appointments(patient_id).await?;
    Ok(Some(PatientPage {
        patient,
        appointments,
    }))
}

/// Registers a patient.
pub async fn register_patient(
    state: State<'_, AppState>,
    patient: NewPatient,
) -> Result<Patient, CommandError> {
    Ok(engine(&state).await?.register_patient(patient).await?)
}

/// Books an appointment.
pub async fn book(
    state: State<'_, AppState>,
    booking: BookAppointment,
) -> Result<Appointment, CommandError> {
    Ok(engine(&state).await?.book(booking).await?)
}

/// Moves an appointment.
pub async fn reschedule(
    state: State<'_, AppState>,
    appointment_id: AppointmentId,
    to: Reschedule,
) -> Result<Appointment, CommandError> {
    Ok(engine(&state).await?.reschedule(appointment_id, to).await?)
}

/// Confirms, declines, cancels, checks in, completes or marks a no-show.
pub async fn act(
    state: State<'_, AppState>,
    appointment_id: AppointmentId,
    action: AppointmentAction,
    reason: Option<String>,
) -> Result<Appointment, CommandError> {
    Ok(engine(&state)
        .await?
        .act(appointment_id, action, reason)
        .await?)
}

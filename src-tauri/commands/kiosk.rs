//! The kiosk window's commands: what a patient does at a kiosk (identify with card number and
//! birth date, book a free slot, see the doctor's answer, check in). Nothing here lists or
//! searches patients; the kiosk's capability grants only these and the shared ones.

use carebridge_core::protocol::appointment::{Appointment, AppointmentAction, BookAppointment};
use carebridge_core::protocol::patient::KioskPatient;
use carebridge_core::protocol::practitioner::Practitioner;
use carebridge_core::protocol::schedule::Slot;
use carebridge_core::protocol::session::KioskSignIn;
use carebridge_core::protocol::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
use carebridge_core::session;
use carebridge_core::store::AppointmentRow;
use chrono::{DateTime, NaiveDate, Utc};
use tauri::{AppHandle, State};

use super::{CommandError, SignedInView, engine, reader, start_session};
use crate::AppState;

/// Signs this kiosk in as a registered device (done once, by staff setting the kiosk up).
pub async fn kiosk_sign_in(
    app: AppHandle,
    state: State<'_, AppState>,
    node_url: String,
    device_id: KioskDeviceId,
    secret: String,
) -> Result<SignedInView, CommandError> {
    let _one_at_a_time = state.signing_in.lock().await;
    let device = KioskSignIn { device_id, secret };
    let signed_in = session::sign_in_kiosk(&state.http, &node_url, device).await?;
    start_session(app, &state, signed_in).await
}

/// The patient identifies with card number and birth date.
pub async fn kiosk_identify(
    state: State<'_, AppState>,
    card_number: String,
    birth_date: NaiveDate,
) -> Result<KioskPatient, CommandError> {
    Ok(engine(&state)
        .await?
        .identify_patient(card_number, birth_date)
        .await?)
}

/// The patient is done at the kiosk: their identification ends at the node.
pub async fn kiosk_finish(state: State<'_, AppState>) -> Result<(), CommandError> {
    Ok(engine(&state).await?.end_identification().await?)
}

/// The doctors a patient can book with.
pub async fn kiosk_doctors(state: State<'_, AppState>) -> Result<Vec<Practitioner>, CommandError> {
    Ok(reader(&state).await?.store.doctors().await?)
}

/// A doctor's slots on one day (the node's date).
pub async fn kiosk_slots(
    state: State<'_, AppState>,
    practitioner_id: PractitionerId,
    date: NaiveDate,
) -> Result<Vec<Slot>, CommandError> {
    Ok(engine(&state)
        .await?
        .slots(practitioner_id, date, date)
        .await?)
}

/// Books the identified patient into a free slot; it waits for the doctor's confirmation.
pub async fn kiosk_book(
    state: State<'_, AppState>,
    patient_id: PatientId,
    practitioner_id: PractitionerId,
    start: DateTime<Utc>,
    reason: String,
) -> Result<Appointment, CommandError> {
    let booking = BookAppointment {
        id: None,
        patient_id,
        practitioner_id,
        start: Some(start),
        next_available_from: None,
        end: None,
        reason,
        override_reason: None,
    };
    Ok(engine(&state).await?.book(booking).await?)
}

/// A booking this kiosk made, or an appointment of today, as it stands now (the core says
/// which the kiosk may read).
pub async fn kiosk_booking(
    state: State<'_, AppState>,
    appointment_id: AppointmentId,
) -> Result<Option<AppointmentRow>, CommandError> {
    Ok(engine(&state)
        .await?
        .kiosk_appointment(appointment_id)
        .await?)
}

/// The identified patient checks in for today's appointment.
pub async fn kiosk_check_in(
    state: State<'_, AppState>,
    appointment_id: AppointmentId,
) -> Result<Appointment, CommandError> {
    Ok(engine(&state)
        .await?
        .act(appointment_id, AppointmentAction::CheckIn, None)
        .await?)
}

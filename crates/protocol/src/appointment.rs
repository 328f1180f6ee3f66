//! Appointments and their state machine (FHIR Appointment.status).
//!
//! ```text
//!   pending ──confirm──▶ booked ──check-in──▶ arrived ──complete──▶ fulfilled
//!      │                  │  │                   │
//!      └─decline/cancel─▶ cancelled ◀──cancel────┘
//!                            booked ──no-show──▶ noshow
//! ```
//! `reschedule` moves a pending or booked appointment and keeps its status.
//!
//! Which appointments occupy their time, how long one may last, the status a booking starts in
//! and who may overbook are in [`crate::booking`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::FieldError;
use crate::text::{self, Checks, Clean, REASON_MAX, Shape};
use crate::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};

/// FHIR's appointment status (the subset CareBridge uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum AppointmentStatus {
    /// Booked at a kiosk, holding its slot until the doctor confirms or declines.
    Pending,
    /// Confirmed.
    Booked,
    /// The patient has checked in.
    Arrived,
    /// The visit took place.
    Fulfilled,
    /// Cancelled or declined, with a reason.
    Cancelled,
    /// The patient did not come.
    Noshow,
}

/// Something that can be done to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum AppointmentAction {
    /// The doctor accepts a kiosk booking: pending → booked.
    Confirm,
    /// The doctor refuses a kiosk booking, with a reason: pending → cancelled.
    Decline,
    /// Move to another time; the status stays.
    Reschedule,
    /// Call it off, with a reason.
    Cancel,
    /// The patient is here: booked → arrived.
    CheckIn,
    /// The visit is over: arrived → fulfilled.
    Complete,
    /// The patient did not come: booked → noshow.
    NoShow,
}

impl AppointmentAction {
    /// Every action, in the order they are listed to users.
    pub const ALL: [Self; 7] = [
        Self::Confirm,
        Self::Decline,
        Self::Reschedule,
        Self::Cancel,
        Self::CheckIn,
        Self::Complete,
        Self::NoShow,
    ];

    /// The kebab-case name used in URLs and problem bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Decline => "decline",
            Self::Reschedule => "reschedule",
            Self::Cancel => "cancel",
            Self::CheckIn => "check-in",
            Self::Complete => "complete",
            Self::NoShow => "no-show",
        }
    }
}

impl AppointmentStatus {
    /// Every status, in the order of the state machine.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Booked,
        Self::Arrived,
        Self::Fulfilled,
        Self::Cancelled,
        Self::Noshow,
    ];

    /// The lowercase FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Booked => "booked",
            Self::Arrived => "arrived",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Noshow => "noshow",
        }
    }

    /// Parses the lowercase FHIR code.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "booked" => Self::Booked,
            "arrived" => Self::Arrived,
            "fulfilled" => Self::Fulfilled,
            "cancelled" => Self::Cancelled,
            "noshow" => Self::Noshow,
            _ => return None,
        })
    }

    /// Whether an appointment with this status occupies its practitioner's time: one of
    /// [`crate::booking::OCCUPYING_STATUSES`], so only cancelled and no-show ones free it. An
    /// overbooked appointment occupies its time like any other (see [`crate::booking`]).
    pub fn occupies_time(self) -> bool {
        crate::booking::OCCUPYING_STATUSES.contains(&self)
    }

    /// The status `action` leads to from this one, or `None` when it is not allowed.
    pub fn apply(self, action: AppointmentAction) -> Option<Self> {
        use AppointmentAction as A;
        use AppointmentStatus as S;
        match (self, action) {
            (S::Pending, A::Confirm) => Some(S::Booked),
            (S::Pending, A::Decline) => Some(S::Cancelled),
            (S::Pending | S::Booked, A::Reschedule) => Some(self),
            (S::Pending | S::Booked | S::Arrived, A::Cancel) => Some(S::Cancelled),
            (S::Booked, A::CheckIn) => Some(S::Arrived),
            (S::Arrived, A::Complete) => Some(S::Fulfilled),
            (S::Booked, A::NoShow) => Some(S::Noshow),
            _ => None,
        }
    }

    /// The actions this status allows.
    pub fn allowed_actions(self) -> Vec<AppointmentAction> {
        AppointmentAction::ALL
            .into_iter()
            .filter(|a| self.apply(*a).is_some())
            .collect()
    }
}

/// Who made a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, tag = "kind", rename_all = "lowercase")
)]
pub enum BookedBy {
    /// A staff user (reception or a doctor).
    Staff {
        /// The user.
        id: PractitionerId,
    },
    /// A kiosk device, on the identified patient's behalf.
    Kiosk {
        /// The device.
        id: KioskDeviceId,
    },
}

/// An appointment, as staff see it and as live events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Appointment {
    /// Its id.
    pub id: AppointmentId,
    /// A short code the patient can keep, e.g. `K7Q-4MZ`.
    pub reference: String,
    /// The patient.
    pub patient_id: PatientId,
    /// The doctor.
    pub practitioner_id: PractitionerId,
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
    /// Why the patient comes.
    pub reason: String,
    /// Its status.
    pub status: AppointmentStatus,
    /// Who booked it.
    pub booked_by: BookedBy,
    /// Set when staff booked over another appointment on purpose: why.
    pub override_reason: Option<String>,
    /// Why it was cancelled or declined.
    pub cancellation_reason: Option<String>,
    /// Incremented by every change; send it back in `If-Match`.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A request to book an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct BookAppointment {
    /// The id to give the appointment. A client that books offline names it itself (a UUIDv7),
    /// so that its local copy and the node's are one record; the node makes one when absent.
    /// An id already in use is `409 conflict`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<AppointmentId>,
    /// The patient (a kiosk may book only for the patient it identified).
    pub patient_id: PatientId,
    /// The doctor.
    pub practitioner_id: PractitionerId,
    /// Start of one of the doctor's slots (any time with an override). Give either this or
    /// `next_available_from`.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Instead of `start`: book the doctor's first free slot at or after this time.
    #[serde(default)]
    pub next_available_from: Option<DateTime<Utc>>,
    /// End; defaults to the end of the slot.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Why the patient comes, 1–500 characters.
    pub reason: String,
    /// Staff only: book even though the time is taken or outside the schedule, and why.
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// A request to move an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Reschedule {
    /// New start.
    pub start: DateTime<Utc>,
    /// New end; defaults to the end of the slot.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Book over another appointment on purpose, and why.
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// A reason, for cancel and decline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithReason {
    /// Why, 1–500 characters.
    pub reason: String,
}

/// Which appointments to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    /// Only this doctor's.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Uuid)]
    pub practitioner_id: Option<PractitionerId>,
    /// Only this patient's.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Uuid)]
    pub patient_id: Option<PatientId>,
    /// Starting at or after this time.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Starting before this time.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// Only with this status.
    #[serde(default)]
    #[param(value_type = Option<AppointmentStatus>)]
    pub status: Option<AppointmentStatus>,
    /// At most this many (1–1000, default 200).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

/// The years within which the node accepts times: far enough for any schedule, near enough
/// that date arithmetic can never overflow.
pub const SERVICE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

/// Checks that a time lies within [`SERVICE_YEARS`].
pub fn validate_time(t: DateTime<Utc>) -> Result<(), &'static str> {
    if SERVICE_YEARS.contains(&chrono::Datelike::year(&t)) {
        Ok(())
    } else {
        Err("must be between the years 1900 and 2200")
    }
}

/// Checks a free-text reason: 1–500 characters after trimming, no control characters
/// (see [`crate::text`]).
pub fn validate_reason(r: &str) -> Result<(), &'static str> {
    let n = r.trim().chars().count();
    if n == 0 {
        return Err("must not be empty");
    }
    match text::check(r, Shape::Line, usize::MAX) {
        Err(_) => Err("must not contain control characters"),
        Ok(()) if n > REASON_MAX => Err("must be at most 500 characters"),
        Ok(()) => Ok(()),
    }
}

impl Clean for BookAppointment {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("reason", &mut self.reason, REASON_MAX)
            .line_opt("override_reason", &mut self.override_reason, REASON_MAX)
            .finish()
    }
}

impl Clean for Reschedule {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line_opt("override_reason", &mut self.override_reason, REASON_MAX)
            .finish()
    }
}

impl Clean for WithReason {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("reason", &mut self.reason, REASON_MAX)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_allow_nothing() {
        for s in [
            AppointmentStatus::Fulfilled,
            AppointmentStatus::Cancelled,
            AppointmentStatus::Noshow,
        ] {
            assert!(s.allowed_actions().is_empty(), "{s:?}");
        }
    }

    #[test]
    fn kiosk_booking_flow() {
        let s = AppointmentStatus::Pending;
        assert_eq!(s.apply(AppointmentAction::CheckIn), None);
        let s = s.apply(AppointmentAction::Confirm).unwrap();
        assert_eq!(s, AppointmentStatus::Booked);
        let s = s.apply(AppointmentAction::CheckIn).unwrap();
        assert_eq!(
            s.apply(AppointmentAction::Complete),
            Some(AppointmentStatus::Fulfilled)
        );
    }

    #[test]
    fn all_lists_every_status_once() {
        for s in AppointmentStatus::ALL {
            // A new status fails to compile here until it is added to `ALL` (and its
            // occupancy decided in `booking::OCCUPYING_STATUSES`).
            let i = match s {
                AppointmentStatus::Pending => 0,
                AppointmentStatus::Booked => 1,
                AppointmentStatus::Arrived => 2,
                AppointmentStatus::Fulfilled => 3,
                AppointmentStatus::Cancelled => 4,
                AppointmentStatus::Noshow => 5,
            };
            assert_eq!(AppointmentStatus::ALL[i], s);
            assert_eq!(AppointmentStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn only_cancelled_and_noshow_free_the_slot() {
        let freeing: Vec<_> = AppointmentStatus::ALL
            .into_iter()
            .filter(|s| !s.occupies_time())
            .collect();
        assert_eq!(
            freeing,
            [AppointmentStatus::Cancelled, AppointmentStatus::Noshow]
        );
    }
}

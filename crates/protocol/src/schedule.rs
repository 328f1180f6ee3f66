//! Schedules, absences and the slots they give.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::PractitionerId;
use crate::appointment::Appointment;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, REASON_MAX};

/// One block of working hours on a weekday, in the node's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    /// Day of the week: `Mon` … `Sun`.
    #[schema(value_type = String, example = "Mon")]
    pub weekday: Weekday,
    /// Local start time, e.g. `08:30`.
    #[schema(value_type = String, example = "08:30")]
    pub start: NaiveTime,
    /// Local end time, after `start`, e.g. `12:00`.
    #[schema(value_type = String, example = "12:00")]
    pub end: NaiveTime,
}

/// A doctor's weekly working hours and slot length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Whose schedule.
    pub practitioner_id: PractitionerId,
    /// Length of one slot, in minutes.
    pub slot_minutes: u32,
    /// Working hours, in the node's time zone.
    pub hours: Vec<WorkingHours>,
    /// Incremented by every change.
    pub version: i64,
}

/// A new weekly schedule for a doctor (replaces the old one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    /// Slot length in minutes, 5–240.
    #[schema(minimum = 5, maximum = 240)]
    pub slot_minutes: u32,
    /// Working hours; blocks on one weekday must not overlap.
    pub hours: Vec<WorkingHours>,
}

impl ScheduleUpdate {
    /// Checks slot length and hours; returns why they are wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(5..=240).contains(&self.slot_minutes) {
            return Err("slot_minutes must be between 5 and 240".into());
        }
        if self.hours.len() > 70 {
            return Err("at most 70 blocks of working hours".into());
        }
        for (i, h) in self.hours.iter().enumerate() {
            if h.end <= h.start {
                return Err(format!("hours[{i}]: end must be after start"));
            }
            for other in &self.hours[i + 1..] {
                if other.weekday == h.weekday && other.start < h.end && h.start < other.end {
                    return Err(format!(
                        "hours[{i}] overlaps another block on {}",
                        h.weekday
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A period in which a doctor takes no appointments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Absence {
    /// Its id.
    pub id: Uuid,
    /// Who is absent.
    pub practitioner_id: PractitionerId,
    /// From (inclusive).
    pub start: DateTime<Utc>,
    /// Until (exclusive).
    pub end: DateTime<Utc>,
    /// Why, e.g. "Conference".
    pub reason: String,
}

/// A request to block a period of a doctor's schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAbsence {
    /// From (inclusive).
    pub start: DateTime<Utc>,
    /// Until (exclusive), after `start`, at most 366 days later.
    pub end: DateTime<Utc>,
    /// Why, 1–500 characters.
    pub reason: String,
}

/// The recorded absence and the live appointments inside it, for reception to move.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AbsenceRecorded {
    /// The absence.
    pub absence: Absence,
    /// Live appointments that fall in the period.
    pub affected: Vec<Appointment>,
}

/// FHIR's slot status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum SlotStatus {
    /// Bookable.
    Free,
    /// Taken by a booked (or arrived, fulfilled) appointment.
    Busy,
    /// Held by a pending kiosk booking until the doctor answers.
    BusyTentative,
    /// The doctor is absent.
    BusyUnavailable,
}

/// One bookable slot of a doctor's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Slot {
    /// Whose slot.
    pub practitioner_id: PractitionerId,
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
    /// Whether it can be booked.
    pub status: SlotStatus,
}

/// Which slots to list: local dates `from` to `to`, inclusive, at most 62 days.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlotQuery {
    /// First local date.
    #[param(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last local date (inclusive).
    #[param(value_type = String, format = Date)]
    pub to: NaiveDate,
}

/// Nothing to normalise: times and a slot length.
impl Clean for ScheduleUpdate {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

impl Clean for NewAbsence {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("reason", &mut self.reason, REASON_MAX)
            .finish()
    }
}

//! The snapshot: everything a user may see, streamed as NDJSON (one [`SnapshotItem`] a line),
//! consistent with one point of the event log.
//!
//! The first line is `begin` with `event_id`: the snapshot shows the node exactly as of that
//! event, so a client that then follows `GET /api/v1/events` with `Last-Event-ID: event_id`
//! misses nothing and needs nothing twice. Records come in kind order (practitioners,
//! schedules, patients, appointments, reports), each kind by id, and the last line is `end`.
//!
//! A snapshot cut off half-way resumes with `?after=<kind>:<id>` of the last record received.
//! The rest then comes from a newer point; the client keeps following events from the
//! *first* `begin`'s id, and because it applies records by version, events it sees twice
//! change nothing.

use serde::{Deserialize, Serialize};

use crate::appointment::Appointment;
use crate::patient::Patient;
use crate::practitioner::Practitioner;
use crate::report::Report;
use crate::schedule::Schedule;

/// One line of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
pub enum SnapshotItem {
    /// The first line: the event id the snapshot is consistent with.
    Begin {
        /// Follow the live stream from here.
        event_id: i64,
    },
    /// A staff account (doctors, for a kiosk).
    Practitioner(Practitioner),
    /// A doctor's schedule.
    Schedule(Schedule),
    /// A patient.
    Patient(Patient),
    /// An appointment.
    Appointment(Appointment),
    /// A medical report (doctors only).
    Report(Report),
    /// The last line: how many records came.
    End {
        /// Records sent (not counting `begin` and `end`).
        records: u64,
    },
}

/// The record kinds, in the order a snapshot sends them.
pub const KIND_ORDER: [&str; 5] = [
    "practitioner",
    "schedule",
    "patient",
    "appointment",
    "report",
];

impl SnapshotItem {
    /// `<kind>:<id>` of a record, for resuming after it; `None` for `begin` and `end`.
    pub fn cursor(&self) -> Option<String> {
        Some(match self {
            Self::Practitioner(p) => format!("practitioner:{}", p.id),
            Self::Schedule(s) => format!("schedule:{}", s.practitioner_id),
            Self::Patient(p) => format!("patient:{}", p.id),
            Self::Appointment(a) => format!("appointment:{}", a.id),
            Self::Report(r) => format!("report:{}", r.id),
            Self::Begin { .. } | Self::End { .. } => return None,
        })
    }
}

//! Live events, as `GET /api/v1/events` streams them (Server-Sent Events).
//!
//! Each event's SSE `id:` is its position in the node's event log (monotonic, never reused),
//! its `event:` is [`EventKind::as_str`], and its `data:` JSON on one line: the record's full
//! new state (with its `version` where it has one), or for a deletion or a consent what
//! changed.

use serde::{Deserialize, Serialize};

use crate::appointment::Appointment;
use crate::document::PatientDocument;
use crate::federation::access::{IncomingAccess, RemoteAccess};
use crate::federation::payload::{
    AdminUpdate, ConsentChange, ReceivedDeleted, ReceivedReports, Transmission,
};
use crate::federation::transfer::PatientTransfer;
use crate::imaging::{ImagingOrder, ImagingStudy};
use crate::patient::Patient;
use crate::report::Report;
use crate::schedule::{Absence, Schedule};

/// The kinds of change the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `appointment.created`: a new booking.
    AppointmentCreated,
    /// `appointment.updated`: a confirmation, move, check-in, cancellation, …
    AppointmentUpdated,
    /// `patient.created`: a registration.
    PatientCreated,
    /// `patient.updated`: a change to a patient record.
    PatientUpdated,
    /// `schedule.updated`: a doctor's working hours changed.
    ScheduleUpdated,
    /// `absence.created`: a period of a doctor's schedule was blocked.
    AbsenceCreated,
    /// `report.created`: a doctor started a report.
    ReportCreated,
    /// `report.updated`: a draft saved, finalised, amended or entered in error.
    ReportUpdated,
    /// `transmission.updated`: an exchange with a peer was queued or changed state.
    TransmissionUpdated,
    /// `received.reports`: medical reports arrived from a peer.
    ReceivedReports,
    /// `received.deleted`: received reports were deleted at the end of their retention.
    ReceivedDeleted,
    /// `admin-update.updated`: an admin update arrived, or was acknowledged.
    AdminUpdateUpdated,
    /// `consent.updated`: a patient's consent to share with a peer was recorded or withdrawn.
    ConsentUpdated,
    /// `imaging.order_created`: a doctor ordered an imaging study.
    ImagingOrderCreated,
    /// `imaging.study_available`: a study arrived at the PACS and was matched to its patient
    /// (or linked by hand from the reconciliation list).
    ImagingStudyAvailable,
    /// `imaging.reconciliation_updated`: a study joined the reconciliation list (it matched no
    /// order and no patient) or left it (linked by hand: it then names its patient).
    ImagingReconciliationUpdated,
    /// `document.added`: a patient's document was added, or a new version of it.
    DocumentAdded,
    /// `access.updated`: a doctor's request to read a patient's record at another hospital
    /// changed (granted, declined, revoked, expired); only that doctor is told.
    AccessUpdated,
    /// `access.incoming`: another hospital asked to read one of this hospital's patients, or
    /// such a request changed (approved, declined, revoked); the front desk and admins see it.
    AccessIncoming,
    /// `transfer.updated`: a patient's record moving to another hospital was authorised, a
    /// part of it delivered, or the move confirmed or refused; the front desk and admins see it.
    TransferUpdated,
}

impl EventKind {
    /// The SSE `event:` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppointmentCreated => "appointment.created",
            Self::AppointmentUpdated => "appointment.updated",
            Self::PatientCreated => "patient.created",
            Self::PatientUpdated => "patient.updated",
            Self::ScheduleUpdated => "schedule.updated",
            Self::AbsenceCreated => "absence.created",
            Self::ReportCreated => "report.created",
            Self::ReportUpdated => "report.updated",
            Self::TransmissionUpdated => "transmission.updated",
            Self::ReceivedReports => "received.reports",
            Self::ReceivedDeleted => "received.deleted",
            Self::AdminUpdateUpdated => "admin-update.updated",
            Self::ConsentUpdated => "consent.updated",
            Self::ImagingOrderCreated => "imaging.order_created",
            Self::ImagingStudyAvailable => "imaging.study_available",
            Self::ImagingReconciliationUpdated => "imaging.reconciliation_updated",
            Self::DocumentAdded => "document.added",
            Self::AccessUpdated => "access.updated",
            Self::AccessIncoming => "access.incoming",
            Self::TransferUpdated => "transfer.updated",
        }
    }

    /// Parses an SSE `event:` name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "appointment.created" => Self::AppointmentCreated,
            "appointment.updated" => Self::AppointmentUpdated,
            "patient.created" => Self::PatientCreated,
            "patient.updated" => Self::PatientUpdated,
            "schedule.updated" => Self::ScheduleUpdated,
            "absence.created" => Self::AbsenceCreated,
            "report.created" => Self::ReportCreated,
            "report.updated" => Self::ReportUpdated,
            "transmission.updated" => Self::TransmissionUpdated,
            "received.reports" => Self::ReceivedReports,
            "received.deleted" => Self::ReceivedDeleted,
            "admin-update.updated" => Self::AdminUpdateUpdated,
            "consent.updated" => Self::ConsentUpdated,
            "imaging.order_created" => Self::ImagingOrderCreated,
            "imaging.study_available" => Self::ImagingStudyAvailable,
            "imaging.reconciliation_updated" => Self::ImagingReconciliationUpdated,
            "document.added" => Self::DocumentAdded,
            "access.updated" => Self::AccessUpdated,
            "access.incoming" => Self::AccessIncoming,
            "transfer.updated" => Self::TransferUpdated,
            _ => return None,
        })
    }
}

/// The SSE event name telling a client its `Last-Event-ID` is older than the retained log:
/// it must re-read snapshots and then follow the stream from the id this event carries.
pub const RESET_EVENT: &str = "reset";

/// A decoded live event.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// An appointment's new state.
    Appointment(Appointment),
    /// A patient's new state.
    Patient(Patient),
    /// A schedule's new state.
    Schedule(Schedule),
    /// A new absence.
    Absence(Absence),
    /// A report's new state.
    Report(Report),
    /// An exchange's new state.
    Transmission(Transmission),
    /// Reports received from a peer.
    ReceivedReports(Box<ReceivedReports>),
    /// Received reports deleted by retention.
    ReceivedDeleted(ReceivedDeleted),
    /// An admin update, new or newly acknowledged.
    AdminUpdate(AdminUpdate),
    /// A consent recorded or withdrawn.
    Consent(ConsentChange),
    /// An imaging order.
    ImagingOrder(ImagingOrder),
    /// A study available for its patient, or waiting to be reconciled.
    ImagingStudy(ImagingStudy),
    /// A patient's document, added or given a new version.
    Document(PatientDocument),
    /// A doctor's request to read a record at another hospital.
    RemoteAccess(RemoteAccess),
    /// Another hospital's request to read a patient's record here.
    IncomingAccess(IncomingAccess),
    /// A patient's record moving to another hospital.
    Transfer(PatientTransfer),
}

impl LiveEvent {
    /// Decodes the `data:` of an event named `kind`.
    pub fn decode(kind: EventKind, data: &str) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            EventKind::AppointmentCreated | EventKind::AppointmentUpdated => {
                Self::Appointment(serde_json::from_str(data)?)
            }
            EventKind::PatientCreated | EventKind::PatientUpdated => {
                Self::Patient(serde_json::from_str(data)?)
            }
            EventKind::ScheduleUpdated => Self::Schedule(serde_json::from_str(data)?),
            EventKind::AbsenceCreated => Self::Absence(serde_json::from_str(data)?),
            EventKind::ReportCreated | EventKind::ReportUpdated => {
                Self::Report(serde_json::from_str(data)?)
            }
            EventKind::TransmissionUpdated => Self::Transmission(serde_json::from_str(data)?),
            EventKind::ReceivedReports => Self::ReceivedReports(serde_json::from_str(data)?),
            EventKind::ReceivedDeleted => Self::ReceivedDeleted(serde_json::from_str(data)?),
            EventKind::AdminUpdateUpdated => Self::AdminUpdate(serde_json::from_str(data)?),
            EventKind::ConsentUpdated => Self::Consent(serde_json::from_str(data)?),
            EventKind::ImagingOrderCreated => Self::ImagingOrder(serde_json::from_str(data)?),
            EventKind::ImagingStudyAvailable | EventKind::ImagingReconciliationUpdated => {
                Self::ImagingStudy(serde_json::from_str(data)?)
            }
            EventKind::DocumentAdded => Self::Document(serde_json::from_str(data)?),
            EventKind::AccessUpdated => Self::RemoteAccess(serde_json::from_str(data)?),
            EventKind::AccessIncoming => Self::IncomingAccess(serde_json::from_str(data)?),
            EventKind::TransferUpdated => Self::Transfer(serde_json::from_str(data)?),
        })
    }
}

//! What envelopes carry, by message type, and the records both sides keep of exchanges:
//! transmissions (outbound), received reports, admin updates and their acknowledgements.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::FieldError;
use crate::report::Report;
use crate::text::{Checks, Clean, PEER_NAME_MAX, Shape, TITLE_MAX, UPDATE_BODY_MAX};
use crate::{PatientId, ReportId};

/// The patient a set of reports is about, as the receiving organisation needs to know them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct SharedPatient {
    /// Unique across nodes: `<uuid>@<node>`.
    pub global_id: String,
    /// Family name.
    pub family_name: String,
    /// Given name.
    pub given_name: String,
    /// Birth date.
    pub birth_date: NaiveDate,
}

/// `medical-reports`: signed reports of one patient, sent with the patient's consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct MedicalReports {
    /// The patient.
    pub patient: SharedPatient,
    /// The reports as they stand, each with its node signature.
    pub reports: Vec<Report>,
    /// The doctor who sent them.
    pub sent_by: String,
    /// When the patient's consent to share with this receiver was recorded, and by whom.
    pub consent_recorded_at: DateTime<Utc>,
    /// Who recorded the consent.
    pub consent_recorded_by: String,
}

/// Which staff an admin update is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum UpdateAudience {
    /// Doctors.
    Doctor,
    /// Reception.
    Reception,
    /// Every staff user.
    All,
}

impl UpdateAudience {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doctor => "doctor",
            Self::Reception => "reception",
            Self::All => "all",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "doctor" => Self::Doctor,
            "reception" => Self::Reception,
            "all" => Self::All,
            _ => return None,
        })
    }
}

/// `admin-update`: a notice from an insurer's admin to a hospital's staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AdminUpdateMessage {
    /// The update's id on the sending node.
    pub id: uuid::Uuid,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Who it is for.
    pub audience: UpdateAudience,
    /// The sending organisation, as people read it.
    pub from: String,
    /// When it was written.
    pub sent_at: DateTime<Utc>,
}

/// `admin-update-ack`: one user's acknowledgement of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUpdateAck {
    /// The update's id on the node that sent it.
    pub update_id: uuid::Uuid,
    /// Who acknowledged it: their id on the acknowledging node.
    pub acknowledged_by_id: String,
    /// Who acknowledged it (display name).
    pub acknowledged_by: String,
    /// When.
    pub acknowledged_at: DateTime<Utc>,
}

/// Where an outbound exchange stands (DESIGN: queued → sent → acknowledged, or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum TransmissionState {
    /// Waiting to be delivered (retried with backoff while the peer cannot be reached).
    Queued,
    /// Being delivered now.
    Sent,
    /// The peer stored it and returned a signed receipt.
    Acknowledged,
    /// The peer refused it for a reason retrying cannot cure.
    Failed,
}

impl TransmissionState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "acknowledged" => Self::Acknowledged,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// An outbound exchange, as the sending node's users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Transmission {
    /// Its id, which is also its envelope's.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub id: uuid::Uuid,
    /// The peer node it goes to.
    pub peer: String,
    /// `medical-reports`, `admin-update` or `admin-update-ack`.
    pub message_type: String,
    /// What it carries, for people: e.g. "2 reports: Chest X-ray, Knee MRI".
    pub summary: String,
    /// The patient, for medical reports.
    pub patient_id: Option<PatientId>,
    /// The reports, for medical reports.
    pub report_ids: Vec<ReportId>,
    /// Where it stands.
    pub state: TransmissionState,
    /// Why it failed, or why the last attempt did not get through.
    pub last_error: Option<String>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// It has waited longer than the node allows, and admins were alerted.
    pub overdue: bool,
    /// Who sent it.
    pub created_by: String,
    /// When it was sent by its user.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When the peer stored it (from its signed receipt).
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Incremented by every change.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
}

/// A doctor's request to send reports of one patient to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct SendReports {
    /// The peer (an insurer's node name).
    pub peer: String,
    /// The reports (all of one patient; each final or amended).
    #[schema(min_items = 1)]
    pub report_ids: Vec<ReportId>,
}

/// Medical reports received from a peer, as an insurer's reviewers see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReceivedReports {
    /// The name it is stored under: `medical-reports-<source>-<timestamp>`.
    pub name: String,
    /// The sending node.
    pub source: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Whether every report's signature verified with the sender's public key.
    pub signatures_verified: bool,
    /// What came.
    pub content: MedicalReports,
}

/// Received reports deleted at the end of their retention period, as the live stream tells
/// the reviewers whose list still shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReceivedDeleted {
    /// The name they were stored under.
    pub name: String,
    /// The node that had sent them.
    pub source: String,
}

/// An admin update as the hospital's staff see it, or as its sender sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AdminUpdate {
    /// Its id (the sender's).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub id: uuid::Uuid,
    /// On the receiving side, the sending node; on the sending side, the peer it went to.
    pub peer: String,
    /// Who sent it, as people read it.
    pub from: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Who it is for.
    pub audience: UpdateAudience,
    /// When it was written.
    pub sent_at: DateTime<Utc>,
    /// Whether it arrived here from a peer (a hospital's view) rather than was sent from here.
    pub incoming: bool,
    /// Receiving side: whether the signed-in user acknowledged it.
    pub acknowledged: bool,
    /// Sending side: how many users acknowledged it.
    pub acknowledgements: u32,
    /// Incremented by every change.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
}

/// An insurer admin's new update for a peer's staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewAdminUpdate {
    /// The peer (a hospital's node name).
    pub peer: String,
    /// Who it is for.
    pub audience: UpdateAudience,
    /// A title (1–200 characters).
    pub title: String,
    /// The text (1–5 000 characters).
    pub body: String,
}

/// A patient's consent to share with a peer organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Consent {
    /// The patient.
    pub patient_id: PatientId,
    /// The peer node the patient agreed to share with.
    pub peer: String,
    /// Who recorded it (display name).
    pub recorded_by: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// A consent recorded or withdrawn, as the live stream tells a hospital's doctors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ConsentChange {
    /// The patient.
    pub patient_id: PatientId,
    /// The peer node it concerns.
    pub peer: String,
    /// The consent now recorded; absent once withdrawn.
    pub consent: Option<Consent>,
}

/// A peer as staff pick it (name, kind and organisation; no keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PeerSummary {
    /// Its node name.
    pub name: String,
    /// `hospital` or `insurer`.
    pub kind: String,
    /// Message types it may send this node.
    pub accepts_from_it: Vec<String>,
}

impl Clean for SendReports {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("peer", &mut self.peer, PEER_NAME_MAX)
            .finish()
    }
}

impl Clean for NewAdminUpdate {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("peer", &mut self.peer, PEER_NAME_MAX)
            .line("title", &mut self.title, TITLE_MAX)
            .text("body", &mut self.body, Shape::Lines, UPDATE_BODY_MAX)
            .finish()
    }
}

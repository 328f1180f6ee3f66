//! The FHIR R4 resources a CareBridge node serves, with the elements it fills. Unknown
//! elements in what is read are ignored; nothing here invents an element FHIR does not have.

use serde::{Deserialize, Serialize};

use crate::datatypes::{
    Attachment, CodeableConcept, Coding, ContactPoint, Extension, HumanName, Identifier, Meta,
    Narrative, Period, Reference, Signature,
};

/// Any resource CareBridge serves, tagged by `resourceType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resourceType")]
#[allow(
    clippy::large_enum_variant,
    reason = "resources are built one at a time and moved"
)]
pub enum Resource {
    /// A patient.
    Patient(Patient),
    /// A staff member.
    Practitioner(Practitioner),
    /// What a staff member does here.
    PractitionerRole(PractitionerRole),
    /// A doctor's bookable time.
    Schedule(Schedule),
    /// One bookable interval.
    Slot(Slot),
    /// An appointment.
    Appointment(Appointment),
    /// A medical report.
    DiagnosticReport(DiagnosticReport),
    /// A patient's consent to share.
    Consent(Consent),
    /// An imaging study in the PACS.
    ImagingStudy(ImagingStudy),
    /// A patient's letter or scan, with its file.
    DocumentReference(DocumentReference),
    /// An audit trail entry.
    AuditEvent(AuditEvent),
    /// Who signed which revision.
    Provenance(Provenance),
    /// A set of resources.
    Bundle(Bundle),
    /// What went wrong.
    OperationOutcome(OperationOutcome),
}

impl Resource {
    /// The `resourceType`.
    pub fn resource_type(&self) -> &'static str {
        match self {
            Self::Patient(_) => "Patient",
            Self::Practitioner(_) => "Practitioner",
            Self::PractitionerRole(_) => "PractitionerRole",
            Self::Schedule(_) => "Schedule",
            Self::Slot(_) => "Slot",
            Self::Appointment(_) => "Appointment",
            Self::DiagnosticReport(_) => "DiagnosticReport",
            Self::Consent(_) => "Consent",
            Self::ImagingStudy(_) => "ImagingStudy",
            Self::DocumentReference(_) => "DocumentReference",
            Self::AuditEvent(_) => "AuditEvent",
            Self::Provenance(_) => "Provenance",
            Self::Bundle(_) => "Bundle",
            Self::OperationOutcome(_) => "OperationOutcome",
        }
    }

    /// The logical id.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Patient(r) => r.id.as_deref(),
            Self::Practitioner(r) => r.id.as_deref(),
            Self::PractitionerRole(r) => r.id.as_deref(),
            Self::Schedule(r) => r.id.as_deref(),
            Self::Slot(r) => r.id.as_deref(),
            Self::Appointment(r) => r.id.as_deref(),
            Self::DiagnosticReport(r) => r.id.as_deref(),
            Self::Consent(r) => r.id.as_deref(),
            Self::ImagingStudy(r) => r.id.as_deref(),
            Self::DocumentReference(r) => r.id.as_deref(),
            Self::AuditEvent(r) => r.id.as_deref(),
            Self::Provenance(r) => r.id.as_deref(),
            Self::Bundle(r) => r.id.as_deref(),
            Self::OperationOutcome(_) => None,
        }
    }

    /// `Type/id`, the resource's relative URL.
    pub fn local_reference(&self) -> Option<String> {
        self.id().map(|id| format!("{}/{id}", self.resource_type()))
    }
}

/// `Patient`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// The bare UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version and last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The global id and the card number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// Whether the record is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The official name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    /// Phone and e-mail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    /// A `date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Other records of the same person: `replaced-by` the record at the hospital it was
    /// transferred to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<PatientLink>,
}

/// `Patient.link`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientLink {
    /// The other record.
    pub other: Reference,
    /// `replaced-by`, `replaces`, `refer` or `seealso`.
    pub r#type: String,
}

/// `Practitioner`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    /// The bare UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The global id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// False once the account is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The display name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
}

/// `PractitionerRole.availableTime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableTime {
    /// `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<String>,
    /// A `time` of day, local to the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_start_time: Option<String>,
    /// A `time` of day, local to the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_end_time: Option<String>,
}

/// `PractitionerRole`: one per staff account, its role at this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerRole {
    /// The practitioner's UUID (one role each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// False once the account is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<Reference>,
    /// The role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<CodeableConcept>,
    /// Working hours (doctors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_time: Vec<AvailableTime>,
}

/// `Schedule`: one per doctor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The doctor's UUID (one schedule each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Whether bookable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The doctor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor: Vec<Reference>,
    /// The slot length and the zone of the working hours, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The slot length in minutes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
}

/// `Slot`: computed from a schedule, absences and bookings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// The doctor's UUID and the start (`{uuid}-{yyyymmddhhmm}`, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Reference>,
    /// `free`, `busy`, `busy-unavailable`, `busy-tentative`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `Appointment.participant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentParticipant {
    /// Patient or practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Reference>,
    /// `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<String>,
    /// `accepted`, `needs-action`, `declined`, `tentative`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `Appointment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// The bare UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version and last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// How it was booked, and a kiosk or staff override's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The global id and the booking reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// FHIR's appointment status (the node's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelation_reason: Option<CodeableConcept>,
    /// The reason for the visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_duration: Option<u32>,
    /// When it was booked (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Patient and doctor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participant: Vec<AppointmentParticipant>,
}

/// `DiagnosticReport`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticReport {
    /// The bare UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version and last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The findings, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Narrative>,
    /// The revision and why it was entered in error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The global id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// `preliminary`, `final`, `amended`, `entered-in-error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeableConcept>,
    /// The patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Reference>,
    /// When it was written (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date_time: Option<String>,
    /// When this revision was signed or last saved (an `instant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    /// The author.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    /// The conclusion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// The diagnosis codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conclusion_code: Vec<CodeableConcept>,
    /// The findings as text and, once signed, the report as a PDF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presented_form: Vec<Attachment>,
}

/// `ImagingStudy`: a study the PACS holds, found for its patient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagingStudy {
    /// The bare UUID of the node's record of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version and last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The StudyInstanceUID (`urn:dicom:uid`) and the accession number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// `available`.
    pub status: String,
    /// The modalities of its series (DICOM's codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modality: Vec<Coding>,
    /// The patient.
    pub subject: Reference,
    /// When it was made (StudyDate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// How many series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_series: Option<i64>,
    /// How many images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_instances: Option<i64>,
    /// StudyDescription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `DocumentReference`: a patient's letter or scan, its current version's file inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReference {
    /// The bare UUID of the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its version and when it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// `current`.
    pub status: String,
    /// Its tags, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// The patient.
    pub subject: Reference,
    /// When the current version was added (an `instant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Who added it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub author: Vec<Reference>,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file.
    pub content: Vec<DocumentReferenceContent>,
}

/// `DocumentReference.content`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReferenceContent {
    /// The file, inline.
    pub attachment: Attachment,
}

/// `Consent.policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicy {
    /// The policy's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// `Consent.provision.actor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentActor {
    /// Their part (e.g. the recipient).
    pub role: CodeableConcept,
    /// Who.
    pub reference: Reference,
}

/// `Consent.provision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentProvision {
    /// `permit` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Who it concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor: Vec<ConsentActor>,
    /// What is permitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action: Vec<CodeableConcept>,
    /// When it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// What for (`TREAT`, `ETREAT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purpose: Vec<Coding>,
    /// The resource types it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<Coding>,
}

/// `Consent`: a patient's agreement that reports may be sent to a peer, or that a doctor at
/// another hospital may read their record for a while.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    /// For sharing, a UUID derived from the patient and the peer (one consent per pair); for
    /// access, the grant's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// `active` while in force; `inactive` once revoked or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `patient-privacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CodeableConcept>,
    /// The kind of consent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// The patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Reference>,
    /// When it was recorded (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    /// Who recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    /// The policy it is given under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<ConsentPolicy>,
    /// What is permitted, to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<ConsentProvision>,
}

/// `AuditEvent.agent.network`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditNetwork {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `2` (an IP address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// `AuditEvent.agent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditAgent {
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Reference>,
    /// Whether they asked for it.
    pub requestor: bool,
    /// From where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<AuditNetwork>,
}

/// `AuditEvent.source`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSource {
    /// The node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The node, as a reference.
    pub observer: Reference,
}

/// `AuditEvent.entity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntity {
    /// The record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<Reference>,
}

/// `AuditEvent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// The chain's sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The chain hash, for checking against the node's own export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// `rest` (a RESTful operation).
    pub r#type: Coding,
    /// The node's action name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtype: Vec<Coding>,
    /// `C`, `R`, `U`, `D` or `E`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// `0` success, `4` refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    /// Who did it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent: Vec<AuditAgent>,
    /// The node.
    pub source: AuditSource,
    /// Which record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<AuditEntity>,
}

/// `Provenance.agent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceAgent {
    /// `author`, `verifier`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<CodeableConcept>,
    /// Who.
    pub who: Reference,
}

/// `Provenance`: who signed one revision of a report, with the node's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// `{report uuid}-{revision}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The report (this revision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<Reference>,
    /// An `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// What was done: `CREATE` for the first revision, `UPDATE` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<CodeableConcept>,
    /// The author, and the node that signed on their behalf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent: Vec<ProvenanceAgent>,
    /// The node's Ed25519 signature over the revision's signed statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature: Vec<Signature>,
}

/// `Bundle.link`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleLink {
    /// `self`, `next`, `previous`.
    pub relation: String,
    /// The URL.
    pub url: String,
}

/// `Bundle.entry.search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntrySearch {
    /// `match` or `include`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `Bundle.entry.request`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntryRequest {
    /// `POST`, `PUT`, …
    pub method: String,
    /// The URL, relative to the base.
    pub url: String,
}

/// `Bundle.entry.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntryResponse {
    /// The HTTP status line, e.g. `201 Created`.
    pub status: String,
    /// Where the created resource is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// What went wrong with this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Box<Resource>>,
}

/// `Bundle.entry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    /// The resource's absolute URL, or its `urn:uuid:` inside a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    /// The resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Why it is in a searchset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<BundleEntrySearch>,
    /// What to do with it, in a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BundleEntryRequest>,
    /// What was done, in a transaction-response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<BundleEntryResponse>,
}

/// `Bundle`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Searchsets carry none; exports a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it was assembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// `searchset`, `transaction`, `transaction-response`, `collection`.
    pub r#type: String,
    /// When it was assembled (an `instant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// How many match the search, across every page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// This page and the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    /// The resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

/// `OperationOutcome.issue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// `fatal`, `error`, `warning`, `information`.
    pub severity: String,
    /// FHIR's issue type, e.g. `not-found`, `invalid`, `forbidden`.
    pub code: String,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    /// Where, as FHIRPath-like locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// `OperationOutcome`: the body of every error under `/fhir`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// At least one.
    pub issue: Vec<Issue>,
}

impl OperationOutcome {
    /// One error.
    pub fn error(code: &str, diagnostics: impl Into<String>) -> Self {
        Self {
            issue: vec![Issue {
                severity: "error".into(),
                code: code.into(),
                diagnostics: Some(diagnostics.into()),
                expression: Vec::new(),
            }],
        }
    }

    /// One error at `expression`.
    pub fn error_at(code: &str, diagnostics: impl Into<String>, expression: &str) -> Self {
        let mut o = Self::error(code, diagnostics);
        o.issue[0].expression.push(expression.to_owned());
        o
    }
}

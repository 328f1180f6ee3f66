//! Imaging: a doctor's orders for a study, and the studies a PACS (Orthanc) holds.
//!
//! An order gets an accession number (DICOM AccessionNumber, SH: at most 16 characters, unique
//! per node) and its patient a local medical record number (DICOM PatientID, LO: at most 64;
//! the node's name goes in IssuerOfPatientID). The global id `uuid@node` fits neither, so it
//! never travels in DICOM. A study that arrives is matched to its patient by accession, else by
//! PatientID and issuer, never by name or birth date; what matches neither waits in the
//! reconciliation list until someone links it by hand.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::id::{ImagingOrderId, ImagingStudyId};
use crate::problem::FieldError;
use crate::text::{Checks, Clean, REASON_MAX};
use crate::{PatientId, PractitionerId};

/// The longest procedure name (DICOM LO).
pub const PROCEDURE_MAX: usize = 64;
/// The longest accession number (DICOM SH).
pub const ACCESSION_MAX: usize = 16;
/// The longest DICOM PatientID (LO).
pub const DICOM_PATIENT_ID_MAX: usize = 64;

/// The modalities a doctor orders (DICOM's defined terms for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub enum Modality {
    /// Computed tomography.
    CT,
    /// Magnetic resonance.
    MR,
    /// Ultrasound.
    US,
    /// Computed radiography (X-ray).
    CR,
    /// Digital radiography (X-ray).
    DX,
    /// Mammography.
    MG,
    /// Nuclear medicine.
    NM,
    /// Positron emission tomography.
    PT,
    /// X-ray angiography.
    XA,
    /// Radio fluoroscopy.
    RF,
}

impl Modality {
    /// Every modality, in the order a form lists them.
    pub const ALL: [Self; 10] = [
        Self::CT,
        Self::MR,
        Self::US,
        Self::CR,
        Self::DX,
        Self::MG,
        Self::NM,
        Self::PT,
        Self::XA,
        Self::RF,
    ];

    /// The DICOM code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CT => "CT",
            Self::MR => "MR",
            Self::US => "US",
            Self::CR => "CR",
            Self::DX => "DX",
            Self::MG => "MG",
            Self::NM => "NM",
            Self::PT => "PT",
            Self::XA => "XA",
            Self::RF => "RF",
        }
    }

    /// Parses the DICOM code.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum OrderStatus {
    /// On the worklist, waiting for the modality.
    Scheduled,
    /// Its study arrived.
    Completed,
}

impl OrderStatus {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Completed => "completed",
        }
    }

    /// Parses the stored code.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Self::Scheduled),
            "completed" => Some(Self::Completed),
            _ => None,
        }
    }
}

/// A doctor's request for an imaging study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewImagingOrder {
    /// The order's id, chosen by the client for a safe retry (default: a new one).
    #[cfg_attr(feature = "ts", ts(optional))]
    pub id: Option<ImagingOrderId>,
    /// Who is to be imaged.
    pub patient_id: PatientId,
    /// What kind of machine.
    pub modality: Modality,
    /// The procedure, as the modality's operator reads it ("CT head without contrast").
    pub procedure: String,
    /// Why it is asked for.
    pub reason: String,
    /// When it is planned.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub scheduled_at: DateTime<Utc>,
}

impl Clean for NewImagingOrder {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("procedure", &mut self.procedure, PROCEDURE_MAX)
            .line("reason", &mut self.reason, REASON_MAX)
            .finish()
    }
}

impl NewImagingOrder {
    /// Checks what cleaning does not: the field and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.procedure.trim().is_empty() {
            return Err(("procedure", "must not be empty"));
        }
        if self.reason.trim().is_empty() {
            return Err(("reason", "must not be empty"));
        }
        Ok(())
    }
}

/// An imaging order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ImagingOrder {
    /// Its id.
    pub id: ImagingOrderId,
    /// The patient.
    pub patient_id: PatientId,
    /// DICOM AccessionNumber, unique on this node.
    pub accession: String,
    /// What kind of machine.
    pub modality: Modality,
    /// The procedure.
    pub procedure: String,
    /// Why.
    pub reason: String,
    /// When it is planned.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub scheduled_at: DateTime<Utc>,
    /// The ordering doctor.
    pub ordered_by: PractitionerId,
    /// Their name, as it was when they ordered.
    pub ordered_by_name: String,
    /// Scheduled or completed.
    pub status: OrderStatus,
    /// When it was ordered.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: DateTime<Utc>,
}

/// How a study found its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum StudyMatch {
    /// Its accession number is one of this node's orders.
    Accession,
    /// Its PatientID and IssuerOfPatientID are a patient's medical record number here.
    PatientId,
    /// Someone linked it by hand from the reconciliation list.
    Hand,
    /// Not yet: it waits in the reconciliation list.
    Unmatched,
}

impl StudyMatch {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accession => "accession",
            Self::PatientId => "patient-id",
            Self::Hand => "hand",
            Self::Unmatched => "unmatched",
        }
    }

    /// Parses the stored code.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accession" => Self::Accession,
            "patient-id" => Self::PatientId,
            "hand" => Self::Hand,
            "unmatched" => Self::Unmatched,
            _ => return None,
        })
    }
}

/// A study the PACS holds, as this node recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ImagingStudy {
    /// Its id on this node.
    pub id: ImagingStudyId,
    /// DICOM StudyInstanceUID: one record per UID, whatever the retries.
    pub study_uid: String,
    /// The patient, once matched.
    pub patient_id: Option<PatientId>,
    /// The order it fulfils, if its accession is one of ours.
    pub order_id: Option<ImagingOrderId>,
    /// The doctor who ordered it, when it fulfils an order.
    pub ordered_by: Option<PractitionerId>,
    /// How it was matched.
    pub matched_by: StudyMatch,
    /// DICOM AccessionNumber as the modality sent it.
    pub accession: String,
    /// DICOM PatientID as the modality sent it.
    pub dicom_patient_id: String,
    /// DICOM IssuerOfPatientID as the modality sent it.
    pub dicom_issuer: String,
    /// DICOM PatientName as the modality sent it (`Family^Given`), for reconciling by hand.
    pub dicom_patient_name: String,
    /// The modalities of its series ("CT", "MR", …).
    pub modalities: Vec<String>,
    /// StudyDescription.
    pub description: String,
    /// StudyDate, when the modality gave one.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    #[schema(value_type = Option<String>, format = Date)]
    pub study_date: Option<NaiveDate>,
    /// How many series.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub series_count: i64,
    /// How many images (instances).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub instance_count: i64,
    /// When this node recorded it.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub received_at: DateTime<Utc>,
    /// Incremented by every change (a link by hand).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
    /// Where the PACS's viewer opens it, when the node has a viewer (given with a patient's
    /// imaging, not kept with the study).
    pub viewer_url: Option<String>,
}

/// A patient's imaging: orders and studies, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PatientImaging {
    /// The patient's medical record number on this node (DICOM PatientID), once one was given.
    pub mrn: Option<String>,
    /// Orders.
    pub orders: Vec<ImagingOrder>,
    /// Studies.
    pub studies: Vec<ImagingStudy>,
    /// Whether the node follows a PACS, so that studies can be ordered.
    pub pacs: bool,
}

/// What became of a DICOM file sent through the node (a CD's or a folder's import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct StoredInstance {
    /// Whether the PACS had it already (a file sent twice is stored once).
    pub already_stored: bool,
}

/// The largest DICOM file the node passes on to the PACS, in bytes (a long multi-frame series
/// in one file; most images are under 1 MiB).
pub const DICOM_FILE_MAX: u64 = 1 << 30;

/// Links a study from the reconciliation list to a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct LinkStudy {
    /// The patient it belongs to.
    pub patient_id: PatientId,
}

impl Clean for LinkStudy {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// DICOM text: a backslash separates values, so it is replaced; the value is cut at `max`
/// characters (DICOM counts bytes for SH and LO in single-byte sets; in UTF-8 the node counts
/// characters, which modalities accept).
pub fn dicom_text(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .take(max)
        .collect()
}

/// A person's name in DICOM's PN form, `Family^Given`, within PN's 64 characters: `^` and `=`
/// (which separate components and groups) are replaced, and the given names give way first.
pub fn dicom_person_name(family: &str, given: &str) -> String {
    let part = |s: &str| s.replace(['^', '='], " ");
    let family = dicom_text(&part(family), 63);
    let room = 63 - family.chars().count();
    format!("{family}^{}", dicom_text(&part(given), room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_codes_round_trip() {
        for m in Modality::ALL {
            assert_eq!(Modality::parse(m.as_str()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!(Modality::parse("ct"), None);
    }

    #[test]
    fn dicom_text_has_no_separator_and_keeps_to_its_length() {
        assert_eq!(dicom_text("a\\b", 64), "a/b");
        assert_eq!(dicom_text("ééééé", 3), "ééé");
        assert_eq!(dicom_person_name("van^Dijk", "Anne"), "van Dijk^Anne");
        assert_eq!(dicom_person_name("A=B", "C"), "A B^C");
        let long = dicom_person_name(&"f".repeat(100), &"g".repeat(100));
        assert_eq!(long.chars().count(), 64);
        assert!(long.ends_with('^'));
        assert_eq!(
            dicom_person_name("Doe", &"g".repeat(100)).chars().count(),
            64
        );
    }

    #[test]
    fn an_order_needs_a_procedure_and_a_reason() {
        let mut o = NewImagingOrder {
            id: None,
            patient_id: PatientId::new(),
            modality: Modality::CT,
            procedure: " ".into(),
            reason: "headache".into(),
            scheduled_at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(o.validate(), Err(("procedure", "must not be empty")));
        o.procedure = "x".repeat(PROCEDURE_MAX + 1);
        assert!(o.clean().is_err());
        o.procedure = "CT head".into();
        assert!(o.clean().is_ok());
        assert_eq!(o.validate(), Ok(()));
    }
}

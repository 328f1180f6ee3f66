//! Patients' documents: letters, scans and photographs that arrive as files (a scanner's
//! output, a CD, a workstation's watched folder) and are kept on the node with a title and
//! tags.
//!
//! A document is known by its patient and its title: adding a file under a title the patient
//! already has makes a new version of that document, the earlier versions kept. The node keeps
//! the bytes as they came, after checking that they are what their media type says.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::id::DocumentId;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, LABEL_MAX, TITLE_MAX};
use crate::{PatientId, PractitionerId};

/// The largest document the node keeps (a multi-page scan at office resolution fits).
pub const DOCUMENT_MAX: u64 = 20 * 1024 * 1024;
/// At most this many tags on a document.
pub const TAGS_MAX: usize = 10;
/// The longest tag.
pub const TAG_MAX: usize = 40;
/// The longest file name kept with a version.
pub const FILE_NAME_MAX: usize = 255;

/// The kinds of file a document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub enum DocumentMedia {
    /// `application/pdf`.
    #[serde(rename = "application/pdf")]
    #[cfg_attr(feature = "ts", ts(rename = "application/pdf"))]
    Pdf,
    /// `image/png`.
    #[serde(rename = "image/png")]
    #[cfg_attr(feature = "ts", ts(rename = "image/png"))]
    Png,
    /// `image/jpeg`.
    #[serde(rename = "image/jpeg")]
    #[cfg_attr(feature = "ts", ts(rename = "image/jpeg"))]
    Jpeg,
    /// `image/tiff` (what many document scanners write).
    #[serde(rename = "image/tiff")]
    #[cfg_attr(feature = "ts", ts(rename = "image/tiff"))]
    Tiff,
}

impl DocumentMedia {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Pdf, Self::Png, Self::Jpeg, Self::Tiff];

    /// The media type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
        }
    }

    /// Parses a media type (parameters such as `; charset` ignored, case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        let essence = s.split(';').next().unwrap_or_default().trim();
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(essence))
    }

    /// What the file's first bytes say it is, whatever its name.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Some(Self::Tiff)
        } else {
            None
        }
    }

    /// The usual file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Tiff => "tif",
        }
    }
}

/// What describes a file sent to the node as a patient's document; the file itself is the
/// request's body, its media type the `Content-Type`. On the wire it is [`DocumentParams`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewDocument {
    /// What the document is ("Discharge letter"); a title the patient already has makes a new
    /// version of that document.
    pub title: String,
    /// Words to find it by ("cardiology", "referral").
    #[serde(default)]
    pub tags: Vec<String>,
    /// The file's name where it came from, kept for whoever opens it.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub file_name: Option<String>,
}

/// [`NewDocument`] as query parameters: the tags separated by commas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentParams {
    /// What the document is; a title the patient already has makes a new version of it.
    #[param(min_length = 1, pattern = r"\S")]
    pub title: String,
    /// Words to find it by, separated by commas ("cardiology,referral").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// The file's name where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl From<DocumentParams> for NewDocument {
    fn from(p: DocumentParams) -> Self {
        Self {
            title: p.title,
            tags: p
                .tags
                .iter()
                .flat_map(|t| t.split(','))
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            file_name: p.file_name,
        }
    }
}

impl From<&NewDocument> for DocumentParams {
    fn from(d: &NewDocument) -> Self {
        Self {
            title: d.title.clone(),
            tags: (!d.tags.is_empty()).then(|| d.tags.join(",")),
            file_name: d.file_name.clone(),
        }
    }
}

impl Clean for NewDocument {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        let mut checks = Checks::default();
        checks.line("title", &mut self.title, TITLE_MAX).line_opt(
            "file_name",
            &mut self.file_name,
            FILE_NAME_MAX,
        );
        for tag in &mut self.tags {
            checks.line("tags", tag, TAG_MAX.min(LABEL_MAX));
        }
        checks.finish()
    }
}

impl NewDocument {
    /// Checks what cleaning does not: the field and what is wrong. Tags are made lowercase
    /// and each kept once.
    pub fn validate(&mut self) -> Result<(), (&'static str, &'static str)> {
        if self.title.trim().is_empty() {
            return Err(("title", "must not be empty"));
        }
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty() {
                return Err(("tags", "a tag must not be empty"));
            }
            if tag.contains(',') {
                return Err(("tags", "a tag may not contain a comma"));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if tags.len() > TAGS_MAX {
            return Err(("tags", "at most 10 tags"));
        }
        self.tags = tags;
        Ok(())
    }
}

/// One version of a document: a file as it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct DocumentVersion {
    /// 1 for the first file, then one more for each replacement.
    pub version: u32,
    /// What kind of file.
    pub media_type: DocumentMedia,
    /// Its name where it came from.
    pub file_name: Option<String>,
    /// Its size in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Who added it.
    pub added_by: PractitionerId,
    /// Their name, as it was then.
    pub added_by_name: String,
    /// When.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub added_at: DateTime<Utc>,
}

/// A patient's document, with every version, the newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PatientDocument {
    /// Its id.
    pub id: DocumentId,
    /// Whose it is.
    pub patient_id: PatientId,
    /// What it is.
    pub title: String,
    /// Words to find it by (those of the newest version).
    pub tags: Vec<String>,
    /// Its versions, newest first (never empty).
    pub versions: Vec<DocumentVersion>,
}

impl PatientDocument {
    /// The newest version.
    pub fn current(&self) -> Option<&DocumentVersion> {
        self.versions.first()
    }
}

/// Which version of a document to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// The version (default: the newest).
    #[serde(default)]
    #[param(minimum = 1, maximum = 4294967295_u64)]
    pub version: Option<u32>,
}

/// The key a document's title is known by: trimmed, lowercase, inner spaces single.
pub fn title_key(title: &str) -> String {
    title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_known_by_their_first_bytes_not_their_names() {
        assert_eq!(
            DocumentMedia::sniff(b"%PDF-1.7\n"),
            Some(DocumentMedia::Pdf)
        );
        assert_eq!(
            DocumentMedia::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(DocumentMedia::Png)
        );
        assert_eq!(
            DocumentMedia::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(DocumentMedia::Jpeg)
        );
        assert_eq!(
            DocumentMedia::sniff(b"II*\0...."),
            Some(DocumentMedia::Tiff)
        );
        assert_eq!(DocumentMedia::sniff(b"PK\x03\x04"), None);
        assert_eq!(DocumentMedia::sniff(b""), None);
    }

    #[test]
    fn media_types_parse_without_their_parameters() {
        assert_eq!(
            DocumentMedia::parse("Application/PDF; name=x"),
            Some(DocumentMedia::Pdf)
        );
        assert_eq!(DocumentMedia::parse("text/plain"), None);
    }

    #[test]
    fn tags_are_lowercase_and_once_and_a_title_is_needed() {
        let mut d = NewDocument {
            title: "Letter".into(),
            tags: vec!["Cardiology".into(), "cardiology ".into(), "GP".into()],
            file_name: None,
        };
        d.validate().unwrap();
        assert_eq!(d.tags, vec!["cardiology", "gp"]);
        d.title = "  ".into();
        assert_eq!(d.validate(), Err(("title", "must not be empty")));
        let mut many = NewDocument {
            title: "x".into(),
            tags: (0..11).map(|i| format!("t{i}")).collect(),
            file_name: None,
        };
        assert_eq!(many.validate(), Err(("tags", "at most 10 tags")));
    }

    #[test]
    fn tags_travel_as_one_comma_separated_parameter() {
        let d = NewDocument {
            title: "Letter".into(),
            tags: vec!["a b".into(), "c".into()],
            file_name: Some("x.pdf".into()),
        };
        let p = DocumentParams::from(&d);
        assert_eq!(p.tags.as_deref(), Some("a b,c"));
        assert_eq!(NewDocument::from(p), d);
    }

    #[test]
    fn a_title_is_known_whatever_its_case_and_spacing() {
        assert_eq!(title_key("  Discharge   Letter "), "discharge letter");
    }
}

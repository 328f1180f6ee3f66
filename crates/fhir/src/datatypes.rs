//! The FHIR R4 data types CareBridge's resources use, each with the elements it fills.
//!
//! Empty elements are left out of the JSON, as FHIR requires (an element is either absent or
//! has a value; `[]` and `""` are invalid).

use serde::{Deserialize, Serialize};

/// `Meta`: the version and time of the record's last change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The record's version (the node's optimistic-concurrency counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// When it last changed: an `instant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

/// `Identifier`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identifier {
    /// `usual`, `official`, `secondary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#use: Option<String>,
    /// The namespace of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Identifier {
    /// An identifier in `system`.
    pub fn new(system: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            r#use: None,
            system: Some(system.into()),
            value: Some(value.into()),
        }
    }
}

/// `HumanName`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HumanName {
    /// `official`, `usual`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#use: Option<String>,
    /// The whole name as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
}

/// `ContactPoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPoint {
    /// `phone`, `email`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The number or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `Coding`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coding {
    /// The code system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Its words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A code in `system` with its display.
    pub fn new(system: &str, code: &str, display: &str) -> Self {
        Self {
            system: Some(system.to_owned()),
            code: Some(code.to_owned()),
            display: Some(display.to_owned()),
        }
    }
}

/// `CodeableConcept`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeableConcept {
    /// Codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// Plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// A concept given as text only.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            coding: Vec::new(),
            text: Some(text.into()),
        }
    }

    /// A concept of one code.
    pub fn code(coding: Coding) -> Self {
        Self {
            coding: vec![coding],
            text: None,
        }
    }
}

/// `Reference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// `Type/id`, or `urn:uuid:…` inside a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A logical reference where there is no resource to point at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Words for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Reference {
    /// `Type/id`.
    pub fn to(resource_type: &str, id: impl std::fmt::Display) -> Self {
        Self {
            reference: Some(format!("{resource_type}/{id}")),
            identifier: None,
            display: None,
        }
    }

    /// `Type/id` with words for people.
    pub fn named(resource_type: &str, id: impl std::fmt::Display, display: &str) -> Self {
        Self {
            display: Some(display.to_owned()),
            ..Self::to(resource_type, id)
        }
    }

    /// The id this reference names if it is `Type/id` of `resource_type`.
    pub fn id_of(&self, resource_type: &str) -> Option<&str> {
        self.reference
            .as_deref()?
            .strip_prefix(resource_type)?
            .strip_prefix('/')
    }
}

/// `Period`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Start (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `Attachment`: a document carried inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Human language (BCP 47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-1 of the data, base64 (FHIR R4 names SHA-1 here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When it was made (a `dateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation: Option<String>,
}

/// `Narrative`: the human-readable summary of a resource, as XHTML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Narrative {
    /// `generated` (from the structured data) or `additional`.
    pub status: String,
    /// A `<div>` in the XHTML namespace.
    pub div: String,
}

/// `Signature`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// Why it was signed (ASTM E1762 codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#type: Vec<Coding>,
    /// When (an `instant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Who signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Reference>,
    /// On whose behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Reference>,
    /// The signature's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig_format: Option<String>,
    /// The signature, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `Extension` with the value types CareBridge uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// What it means.
    pub url: String,
    /// A text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
}

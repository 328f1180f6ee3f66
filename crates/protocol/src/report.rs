//! Medical reports (FHIR DiagnosticReport) and how a final one is signed.
//!
//! ```text
//!   preliminary ──finalise──▶ final ──amend──▶ amended ──amend──▶ amended …
//!        │                      │                 │
//!        └──────────────────────┴─entered-in-error┴──▶ entered-in-error
//! ```
//! A `preliminary` report is a draft: one record whose saves replace its content. Finalising
//! freezes the draft as revision 1; each amendment adds a revision. Revisions are immutable
//! and all kept; each is signed by the node's Ed25519 key on its author's behalf. The signed
//! statement names the report, revision, status, patient, author and time, and a digest of
//! the content, so a change to any of them breaks the signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::problem::FieldError;
use crate::text::{Checks, Clean, REPORT_SECTION_MAX, Shape, TITLE_MAX};
use crate::{PatientId, PractitionerId, ReportId};

/// FHIR DiagnosticReport.status, the subset CareBridge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum ReportStatus {
    /// A draft: saves replace its content.
    Preliminary,
    /// Finalised and signed; immutable.
    Final,
    /// A later signed revision of a final report.
    Amended,
    /// Withdrawn as written in error, with a reason; its revisions stay readable.
    EnteredInError,
}

impl ReportStatus {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preliminary => "preliminary",
            Self::Final => "final",
            Self::Amended => "amended",
            Self::EnteredInError => "entered-in-error",
        }
    }

    /// Parses the FHIR code.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "preliminary" => Self::Preliminary,
            "final" => Self::Final,
            "amended" => Self::Amended,
            "entered-in-error" => Self::EnteredInError,
            _ => return None,
        })
    }

    /// Whether a report in this status may be sent to a peer: only signed, standing ones.
    pub fn is_sendable(self) -> bool {
        matches!(self, Self::Final | Self::Amended)
    }

    /// The status `action` leads to, or `None` when this status does not allow it.
    pub fn apply(self, action: ReportAction) -> Option<Self> {
        use ReportAction as A;
        use ReportStatus as S;
        match (self, action) {
            (S::Preliminary, A::SaveDraft) => Some(S::Preliminary),
            (S::Preliminary, A::Finalise) => Some(S::Final),
            (S::Final | S::Amended, A::Amend) => Some(S::Amended),
            (S::Preliminary | S::Final | S::Amended, A::EnteredInError) => Some(S::EnteredInError),
            _ => None,
        }
    }
}

/// Something a doctor does to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum ReportAction {
    /// Replace a draft's content.
    SaveDraft,
    /// Freeze and sign a draft.
    Finalise,
    /// Add a signed revision to a final report.
    Amend,
    /// Withdraw it, with a reason.
    EnteredInError,
}

impl ReportAction {
    /// The kebab-case name used in URLs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SaveDraft => "save-draft",
            Self::Finalise => "finalise",
            Self::Amend => "amend",
            Self::EnteredInError => "entered-in-error",
        }
    }
}

/// What a doctor writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReportContent {
    /// A title, e.g. "Chest X-ray" (1–200 characters).
    pub title: String,
    /// What was found (up to 20 000 characters).
    #[serde(default)]
    pub findings: String,
    /// The conclusion (up to 20 000 characters).
    #[serde(default)]
    pub conclusion: String,
    /// Codes, e.g. ICD-10 `J18.9` (each 1–40 characters, at most 50).
    #[serde(default)]
    pub codes: Vec<String>,
}

/// The longest findings or conclusion accepted.
pub const MAX_TEXT: usize = REPORT_SECTION_MAX;

/// The longest code.
pub const CODE_MAX: usize = 40;

/// Fields are named `content.<field>` whether the content is the whole body (a draft, an
/// amendment) or inside a [`NewReport`], as the node's other answers about content name them.
impl Clean for ReportContent {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        let mut checks = Checks::within("content");
        checks
            .line("title", &mut self.title, TITLE_MAX)
            .text("findings", &mut self.findings, Shape::Lines, MAX_TEXT)
            .text("conclusion", &mut self.conclusion, Shape::Lines, MAX_TEXT);
        for code in &mut self.codes {
            checks.line("codes", code, CODE_MAX);
        }
        checks.finish()
    }
}

impl Clean for NewReport {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        self.content.clean()
    }
}

impl ReportContent {
    /// Checks the content; the error names the field and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let title = self.title.trim().chars().count();
        if title == 0 {
            return Err(("title", "must not be empty"));
        }
        if title > TITLE_MAX {
            return Err(("title", "must be at most 200 characters"));
        }
        if self.findings.chars().count() > MAX_TEXT {
            return Err(("findings", "must be at most 20 000 characters"));
        }
        if self.conclusion.chars().count() > MAX_TEXT {
            return Err(("conclusion", "must be at most 20 000 characters"));
        }
        if self.codes.len() > 50 {
            return Err(("codes", "at most 50 codes"));
        }
        for c in &self.codes {
            let n = c.trim().chars().count();
            if n == 0 || n > CODE_MAX || c.chars().any(char::is_control) {
                return Err(("codes", "each code is 1–40 printable characters"));
            }
        }
        Ok(())
    }

    /// `sha-256=:<base64>:` of the content's JSON: what a signature covers of the text.
    pub fn digest(&self) -> String {
        // Field order is the struct's, so the same content always gives the same bytes.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("sha-256=:{}:", BASE64.encode(Sha256::digest(bytes)))
    }
}

/// The node's signature over one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReportSignature {
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The node whose key signed it.
    pub node: String,
    /// The signing key's fingerprint (as `carebridge-node keys` prints it).
    pub key_fingerprint: String,
    /// The content digest inside the signed statement.
    pub content_digest: String,
    /// The Ed25519 signature over [`SignedStatement::to_bytes`], base64.
    pub value: String,
}

impl ReportSignature {
    /// A short, readable fingerprint of the signature itself (first 8 bytes of its SHA-256,
    /// in hex groups), printed on the PDF so that a paper copy can be matched to the record.
    pub fn fingerprint(&self) -> String {
        let raw = BASE64.decode(&self.value).unwrap_or_default();
        let d = Sha256::digest(raw);
        d[..8].chunks(2).map(hex_pair).collect::<Vec<_>>().join(":")
    }
}

fn hex_pair(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// One immutable revision of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReportRevision {
    /// 1 for the finalised draft, then 2, 3, … for each amendment.
    pub revision: u32,
    /// `final` or `amended`.
    pub status: ReportStatus,
    /// What it says.
    pub content: ReportContent,
    /// Who wrote this revision.
    pub author_id: PractitionerId,
    /// Their display name when it was signed.
    pub author_name: String,
    /// The node's signature on the author's behalf.
    pub signature: ReportSignature,
}

/// A report's current state, as doctors see it and live events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Report {
    /// Its id.
    pub id: ReportId,
    /// The patient it is about.
    pub patient_id: PatientId,
    /// Who wrote the current content (the draft's author, or the latest revision's).
    pub author_id: PractitionerId,
    /// Their display name.
    pub author_name: String,
    /// Its status.
    pub status: ReportStatus,
    /// The current content: the draft's, or the latest revision's.
    pub content: ReportContent,
    /// The latest revision's number; 0 while it is a draft never finalised.
    pub revision: u32,
    /// The latest revision's signature, once finalised.
    pub signature: Option<ReportSignature>,
    /// Why it was entered in error.
    pub error_reason: Option<String>,
    /// Incremented by every change; send it back in `If-Match`.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Report {
    /// The facts of the report's latest revision, as its signature binds them.
    pub fn facts(&self) -> RevisionFacts<'_> {
        RevisionFacts {
            report_id: self.id,
            revision: self.revision,
            status: self.status,
            patient_id: self.patient_id,
            author_id: self.author_id,
            author_name: &self.author_name,
            content: &self.content,
        }
    }

    /// Whether the report carries its node's (`key`) signature over exactly what it says.
    pub fn signature_verifies(&self, key: &VerifyingKey) -> bool {
        self.signature
            .as_ref()
            .is_some_and(|sig| self.facts().verify(sig, key))
    }
}

/// A request to start a report: a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewReport {
    /// The id to give it; a client writing offline names it itself. An id in use is `409`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<ReportId>,
    /// The patient.
    pub patient_id: PatientId,
    /// The draft's content.
    pub content: ReportContent,
}

/// Which reports to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this patient's.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Uuid)]
    pub patient_id: Option<PatientId>,
    /// Only those changed at or after this time.
    #[serde(default)]
    pub changed_since: Option<DateTime<Utc>>,
    /// At most this many (1–1000, default 200), most recently changed first.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

/// What the node signs for a revision: every fact a reader relies on, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedStatement<'a> {
    /// What this is, so the bytes can never be taken for another kind of signed message.
    pub purpose: &'static str,
    /// The node.
    pub node: &'a str,
    /// The report.
    pub report_id: ReportId,
    /// The revision.
    pub revision: u32,
    /// Its status.
    pub status: ReportStatus,
    /// The patient.
    pub patient_id: PatientId,
    /// The author.
    pub author_id: PractitionerId,
    /// The author's display name.
    pub author_name: &'a str,
    /// When, RFC 3339 to the millisecond.
    pub signed_at: String,
    /// [`ReportContent::digest`].
    pub content_digest: &'a str,
}

/// The statement's purpose tag.
pub const SIGNED_PURPOSE: &str = "carebridge-report-revision-v1";

impl SignedStatement<'_> {
    /// The exact bytes signed: the statement's JSON, fields in declaration order.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The facts of one revision that a signature binds, borrowed from wherever they live.
#[derive(Debug, Clone, Copy)]
pub struct RevisionFacts<'a> {
    /// The report.
    pub report_id: ReportId,
    /// The revision number.
    pub revision: u32,
    /// `final` or `amended`.
    pub status: ReportStatus,
    /// The patient.
    pub patient_id: PatientId,
    /// The author.
    pub author_id: PractitionerId,
    /// The author's display name.
    pub author_name: &'a str,
    /// The content.
    pub content: &'a ReportContent,
}

impl<'a> RevisionFacts<'a> {
    fn statement(
        &self,
        node: &'a str,
        signed_at: DateTime<Utc>,
        digest: &'a str,
    ) -> SignedStatement<'a> {
        SignedStatement {
            purpose: SIGNED_PURPOSE,
            node,
            report_id: self.report_id,
            revision: self.revision,
            status: self.status,
            patient_id: self.patient_id,
            author_id: self.author_id,
            author_name: self.author_name,
            signed_at: signed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            content_digest: digest,
        }
    }

    /// Signs the revision with the node's key.
    pub fn sign(&self, node: &str, key: &SigningKey, signed_at: DateTime<Utc>) -> ReportSignature {
        let digest = self.content.digest();
        let bytes = self.statement(node, signed_at, &digest).to_bytes();
        let value = BASE64.encode(key.sign(&bytes).to_bytes());
        ReportSignature {
            signed_at,
            node: node.to_owned(),
            key_fingerprint: crate::federation::identity::fingerprint(&key.verifying_key()),
            content_digest: digest,
            value,
        }
    }

    /// Whether `sig` is the node's (`key`) signature over exactly these facts.
    pub fn verify(&self, sig: &ReportSignature, key: &VerifyingKey) -> bool {
        let digest = self.content.digest();
        if digest != sig.content_digest {
            return false;
        }
        let Ok(raw) = BASE64.decode(&sig.value) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice()) else {
            return false;
        };
        let bytes = self.statement(&sig.node, sig.signed_at, &digest).to_bytes();
        key.verify(&bytes, &Signature::from_bytes(&raw)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> ReportContent {
        ReportContent {
            title: "Chest X-ray".into(),
            findings: "No consolidation.".into(),
            conclusion: "Normal study.".into(),
            codes: vec!["Z01.89".into()],
        }
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use ReportAction as A;
        use ReportStatus as S;
        assert_eq!(S::Preliminary.apply(A::Finalise), Some(S::Final));
        assert_eq!(S::Final.apply(A::Amend), Some(S::Amended));
        assert_eq!(S::Amended.apply(A::Amend), Some(S::Amended));
        assert_eq!(
            S::Final.apply(A::SaveDraft),
            None,
            "a final report is immutable"
        );
        assert_eq!(S::Final.apply(A::Finalise), None);
        assert_eq!(
            S::Preliminary.apply(A::Amend),
            None,
            "a draft is saved, not amended"
        );
        for a in [A::SaveDraft, A::Finalise, A::Amend, A::EnteredInError] {
            assert_eq!(S::EnteredInError.apply(a), None, "{a:?}");
        }
        assert!(S::Final.is_sendable() && S::Amended.is_sendable());
        assert!(!S::Preliminary.is_sendable() && !S::EnteredInError.is_sendable());
    }

    #[test]
    fn a_signature_binds_every_fact() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let c = content();
        let facts = RevisionFacts {
            report_id: ReportId::new(),
            revision: 1,
            status: ReportStatus::Final,
            patient_id: PatientId::new(),
            author_id: PractitionerId::new(),
            author_name: "Dr Ada Lovelace",
            content: &c,
        };
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let sig = facts.sign("st-marys.example", &key, at);
        assert!(facts.verify(&sig, &key.verifying_key()));

        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!facts.verify(&sig, &other.verifying_key()), "another key");
        let mut changed = c.clone();
        changed.conclusion.push('!');
        assert!(
            !RevisionFacts {
                content: &changed,
                ..facts
            }
            .verify(&sig, &key.verifying_key())
        );
        assert!(
            !RevisionFacts {
                revision: 2,
                ..facts
            }
            .verify(&sig, &key.verifying_key())
        );
        assert!(
            !RevisionFacts {
                author_name: "Dr Other",
                ..facts
            }
            .verify(&sig, &key.verifying_key())
        );
        let mut later = sig.clone();
        later.signed_at = at + chrono::Duration::seconds(1);
        assert!(!facts.verify(&later, &key.verifying_key()), "another time");
        assert_eq!(
            sig.fingerprint().len(),
            19,
            "four groups of four hex digits"
        );
    }

    #[test]
    fn content_is_validated_per_field() {
        assert!(content().validate().is_ok());
        let mut c = content();
        c.title = "  ".into();
        assert_eq!(c.validate().unwrap_err().0, "title");
        let mut c = content();
        c.codes = vec!["".into()];
        assert_eq!(c.validate().unwrap_err().0, "codes");
        let mut c = content();
        c.findings = "x".repeat(MAX_TEXT + 1);
        assert_eq!(c.validate().unwrap_err().0, "findings");
    }
}

//! Patient-consented access across hospitals: what the two nodes send each other, what each
//! side's users see of it, and the pure rules both ends share (scopes, purposes, one-time codes).
//!
//! The shape follows UMA: the requesting hospital (B) sends `access-request`; the patient's
//! home hospital (A) answers every request alike and asks the patient, through a channel only A
//! controls (a one-time code by e-mail, A's kiosk, A's front desk); once the patient approves,
//! A records a FHIR Consent and sends B a reference token (`access-granted`) that A accepts only
//! on requests signed with B's node key naming the same doctor. Revocation and expiry are
//! enforced at A, whether or not B has heard of them (`access-revoked` tells B afterwards).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::PatientId;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, DISPLAY_NAME_MAX, LABEL_MAX, PEER_NAME_MAX};

/// How long a one-time code is valid, in minutes.
pub const CODE_MINUTES: i64 = 10;
/// How many wrong codes a request allows in its whole life; the next wrong one locks it.
pub const CODE_TRIES: u32 = 5;
/// The longest grant for treatment, in hours, unless the home node's policy allows less.
pub const MAX_HOURS: u32 = 24 * 30;
/// The longest emergency grant, in hours.
pub const EMERGENCY_MAX_HOURS: u32 = 4;
/// A grant's length when the doctor does not say.
pub const DEFAULT_HOURS: u32 = 24;

/// The resources a peer may ask to read (what the home node serves through its federation
/// read API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub enum ScopedResource {
    /// The patient's demographics.
    Patient,
    /// Signed reports.
    DiagnosticReport,
    /// Appointments.
    Appointment,
}

impl ScopedResource {
    /// Every resource a scope may name.
    pub const ALL: [Self; 3] = [Self::Patient, Self::DiagnosticReport, Self::Appointment];

    /// The FHIR resource type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::DiagnosticReport => "DiagnosticReport",
            Self::Appointment => "Appointment",
        }
    }

    /// Parses a FHIR resource type this exchange serves.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A SMART App Launch v2 patient scope that only reads: `patient/<Type>.<r|s|rs>`.
///
/// Writing (`c`, `u`, `d`) is never granted across hospitals: a scope asking for it is refused
/// when the request is made, not narrowed silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessScope {
    /// The resource type.
    pub resource: ScopedResource,
    /// `r`: read one resource by id.
    pub read: bool,
    /// `s`: search.
    pub search: bool,
}

/// Why a scope string is not one this exchange grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `patient/<Type>.<permissions>`.
    #[error("{0:?} is not a SMART scope of the form patient/<Type>.<permissions>")]
    Malformed(String),
    /// A resource type the exchange does not serve.
    #[error(
        "{0:?} is not a resource another hospital may read (Patient, DiagnosticReport, Appointment)"
    )]
    Resource(String),
    /// Asks to create, update or delete.
    #[error("{0:?} asks to write; access across hospitals only reads (r, s)")]
    Writes(String),
}

impl AccessScope {
    /// Parses `patient/DiagnosticReport.rs` and alike (SMART v2 permissions in `cruds` order;
    /// the v1 form `.read` is accepted as `.rs`).
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let malformed = || ScopeError::Malformed(s.to_owned());
        let rest = s.strip_prefix("patient/").ok_or_else(malformed)?;
        let (resource, perms) = rest.split_once('.').ok_or_else(malformed)?;
        let resource =
            ScopedResource::parse(resource).ok_or_else(|| ScopeError::Resource(s.to_owned()))?;
        let (read, search) = match perms {
            "read" => (true, true),
            "write" | "*" => return Err(ScopeError::Writes(s.to_owned())),
            _ => {
                // SMART v2: a non-empty subsequence of "cruds", in that order.
                let mut last = None;
                for c in perms.chars() {
                    let at = "cruds".find(c).ok_or_else(malformed)?;
                    if last.is_some_and(|l| at <= l) {
                        return Err(malformed());
                    }
                    last = Some(at);
                }
                if last.is_none() {
                    return Err(malformed());
                }
                if perms.contains(['c', 'u', 'd']) {
                    return Err(ScopeError::Writes(s.to_owned()));
                }
                (perms.contains('r'), perms.contains('s'))
            }
        };
        Ok(Self {
            resource,
            read,
            search,
        })
    }

    /// Whether this scope lets its holder read or search `resource`.
    pub fn reads(&self, resource: ScopedResource) -> bool {
        self.resource == resource && (self.read || self.search)
    }
}

impl fmt::Display for AccessScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let perms = match (self.read, self.search) {
            (true, true) => "rs",
            (true, false) => "r",
            (false, true) => "s",
            (false, false) => "",
        };
        write!(f, "patient/{}.{perms}", self.resource.as_str())
    }
}

/// Parses, deduplicates and sorts a list of scopes; at least one.
pub fn parse_scopes(scopes: &[String]) -> Result<Vec<AccessScope>, ScopeError> {
    let mut out = scopes
        .iter()
        .map(|s| AccessScope::parse(s.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// The scopes as their strings.
pub fn scope_strings(scopes: &[AccessScope]) -> Vec<String> {
    scopes.iter().map(ToString::to_string).collect()
}

/// Why a doctor asks (HL7 v3 ActReason, FHIR's `purposeOfUse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum AccessPurpose {
    /// Treatment (`TREAT`): granted only when the patient approves.
    Treatment,
    /// Emergency treatment (`ETREAT`): the home node's policy may grant it without the patient,
    /// read-only, for at most [`EMERGENCY_MAX_HOURS`], alerting its admins and telling the
    /// patient afterwards.
    Emergency,
}

impl AccessPurpose {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Emergency => "emergency",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "treatment" => Self::Treatment,
            "emergency" => Self::Emergency,
            _ => return None,
        })
    }

    /// The HL7 v3 ActReason code.
    pub fn act_reason(self) -> &'static str {
        match self {
            Self::Treatment => "TREAT",
            Self::Emergency => "ETREAT",
        }
    }

    /// The longest grant for this purpose.
    pub fn max_hours(self) -> u32 {
        match self {
            Self::Treatment => MAX_HOURS,
            Self::Emergency => EMERGENCY_MAX_HOURS,
        }
    }
}

/// `access-request`, B → A: a doctor at B asks to read a patient's record at A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequestMessage {
    /// The request's id, named by B; every later message about it carries it.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: uuid::Uuid,
    /// The doctor's id at B (the token will be bound to it).
    pub practitioner_id: String,
    /// The doctor's name, as the patient will read it.
    pub practitioner_name: String,
    /// B's organisation, as the patient will read it.
    pub organisation: String,
    /// The patient's card number at A.
    pub card_number: String,
    /// The patient's birth date.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// Why.
    pub purpose: AccessPurpose,
    /// SMART v2 scopes (`patient/DiagnosticReport.rs`, …).
    pub scopes: Vec<String>,
    /// For how long, in hours.
    pub hours: u32,
    /// When the doctor asked.
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: DateTime<Utc>,
}

/// The names a peer sends are shown to the patient and put in the e-mail: they are checked as
/// any line a user types (length, no control characters), so that a peer cannot lay out the
/// patient's screen or mail as it likes.
impl Clean for AccessRequestMessage {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("practitioner_id", &mut self.practitioner_id, LABEL_MAX)
            .line(
                "practitioner_name",
                &mut self.practitioner_name,
                DISPLAY_NAME_MAX,
            )
            .line("organisation", &mut self.organisation, DISPLAY_NAME_MAX)
            .line("card_number", &mut self.card_number, LABEL_MAX)
            .finish()
    }
}

/// `access-approve`, B → A: the one-time code the patient gave the doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessApproveMessage {
    /// The request it approves.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: uuid::Uuid,
    /// The code as typed.
    pub code: String,
}

/// The patient, as A names them to B in a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct GrantedPatient {
    /// `<uuid>@<home node>`.
    pub global_id: String,
    /// Family name.
    pub family_name: String,
    /// Given name.
    pub given_name: String,
    /// Birth date.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
}

/// `access-granted`, A → B: the reference token and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessGrantedMessage {
    /// The request it answers.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: uuid::Uuid,
    /// The grant's id at A (its Consent's id): both nodes audit reads under it.
    #[schema(value_type = String, format = Uuid)]
    pub grant_id: uuid::Uuid,
    /// The reference token: accepted only with B's node signature naming the same doctor.
    pub token: String,
    /// What it allows (perhaps narrower than asked).
    pub scopes: Vec<String>,
    /// Why it was granted.
    pub purpose: AccessPurpose,
    /// From when.
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<Utc>,
    /// Until when.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
    /// Whom it is about.
    pub patient: GrantedPatient,
    /// How the patient approved: `code`, `kiosk`, `front-desk`, or `emergency` (not asked).
    pub approved_by: String,
    /// The home hospital, as people read it.
    pub organisation: String,
}

/// Why a request ended without a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum DeclineReason {
    /// The code was wrong; more tries remain.
    WrongCode,
    /// Too many wrong codes: the request is locked for good.
    Locked,
    /// The code's time ran out before it was given.
    Expired,
    /// The patient declined.
    Declined,
    /// The home node's policy refuses it (e.g. emergency access without a matching record).
    Refused,
}

impl DeclineReason {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongCode => "wrong-code",
            Self::Locked => "locked",
            Self::Expired => "expired",
            Self::Declined => "declined",
            Self::Refused => "refused",
        }
    }
}

/// `access-declined`, A → B: an approval failed, or the patient said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessDeclinedMessage {
    /// The request.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: uuid::Uuid,
    /// Why.
    pub reason: DeclineReason,
    /// Wrong codes still allowed (for `wrong-code`).
    pub tries_left: u32,
    /// The home hospital, as people read it.
    pub organisation: String,
}

/// `access-revoked`, A → B: a grant ended before or at its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRevokedMessage {
    /// The request it answered.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: uuid::Uuid,
    /// The grant.
    #[schema(value_type = String, format = Uuid)]
    pub grant_id: uuid::Uuid,
    /// When it stopped being honoured at A.
    #[schema(value_type = String, format = DateTime)]
    pub revoked_at: DateTime<Utc>,
    /// Who ended it: `patient`, `front-desk`, `expiry`.
    pub by: String,
}

/// Where a request stands, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum AccessState {
    /// Sent, or waiting for the patient.
    Pending,
    /// Granted: the doctor may read until it expires.
    Granted,
    /// The patient declined, or the home node refused.
    Declined,
    /// Too many wrong codes.
    Locked,
    /// The request or the grant ran out of time.
    Expired,
    /// Revoked by the patient.
    Revoked,
}

impl AccessState {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Declined => "declined",
            Self::Locked => "locked",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "granted" => Self::Granted,
            "declined" => Self::Declined,
            "locked" => Self::Locked,
            "expired" => Self::Expired,
            "revoked" => Self::Revoked,
            _ => return None,
        })
    }
}

/// A doctor's request to read a patient's record at another hospital (B's REST body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewRemoteAccess {
    /// The patient's home hospital (a peer's node name).
    pub peer: String,
    /// The patient's card number there.
    pub card_number: String,
    /// The patient's birth date.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// Why.
    pub purpose: AccessPurpose,
    /// SMART v2 scopes, e.g. `patient/DiagnosticReport.rs`.
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    /// For how long, in hours (default 24).
    #[serde(default)]
    pub hours: Option<u32>,
}

impl Clean for NewRemoteAccess {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        let mut checks = Checks::default();
        checks.line("peer", &mut self.peer, PEER_NAME_MAX).line(
            "card_number",
            &mut self.card_number,
            LABEL_MAX,
        );
        let mut errors = checks.finish().err().unwrap_or_default();
        if self.scopes.is_empty() {
            errors.push(FieldError {
                field: "scopes".into(),
                message: "name at least one scope, e.g. patient/DiagnosticReport.rs".into(),
            });
        }
        if let Err(e) = parse_scopes(&self.scopes) {
            errors.push(FieldError {
                field: "scopes".into(),
                message: e.to_string(),
            });
        }
        let max = self.purpose.max_hours();
        if let Some(h) = self.hours
            && !(1..=max).contains(&h)
        {
            errors.push(FieldError {
                field: "hours".into(),
                message: format!("{} access lasts 1 to {max} hours", self.purpose.as_str()),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The code a patient gives the doctor (B's REST body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ApproveWithCode {
    /// The one-time code, as the patient read it (spaces and dashes are ignored).
    pub code: String,
}

impl Clean for ApproveWithCode {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        if normalise_code(&self.code).is_none() {
            return Err(vec![FieldError {
                field: "code".into(),
                message: "the code is 8 digits, e.g. 4821-7730".into(),
            }]);
        }
        Ok(())
    }
}

/// A request to read a patient's record at another hospital, as B's doctors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemoteAccess {
    /// The request's id.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The patient here.
    pub patient_id: PatientId,
    /// The home hospital's node name.
    pub peer: String,
    /// The home hospital as people read it.
    pub organisation: String,
    /// The doctor who asked (id here).
    pub practitioner_id: String,
    /// The doctor who asked.
    pub practitioner_name: String,
    /// Why.
    pub purpose: AccessPurpose,
    /// What was asked, or what was granted once granted.
    pub scopes: Vec<String>,
    /// For how long, in hours.
    pub hours: u32,
    /// Where it stands.
    pub state: AccessState,
    /// Wrong codes still allowed.
    pub tries_left: u32,
    /// The grant's id at the home hospital, once granted.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub grant_id: Option<uuid::Uuid>,
    /// The patient as the home hospital knows them, once granted.
    pub patient: Option<GrantedPatient>,
    /// Until when, once granted.
    pub expires_at: Option<DateTime<Utc>>,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every change.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
}

/// A request from another hospital to read one of this hospital's patients, as the patient
/// (at the kiosk) and the front desk see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct IncomingAccess {
    /// Its id here.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The patient.
    pub patient_id: PatientId,
    /// The asking hospital's node name.
    pub peer: String,
    /// The asking hospital.
    pub organisation: String,
    /// The asking doctor.
    pub practitioner_name: String,
    /// Why.
    pub purpose: AccessPurpose,
    /// What they asked for, or what was granted.
    pub scopes: Vec<String>,
    /// For how long, in hours.
    pub hours: u32,
    /// Where it stands.
    pub state: AccessState,
    /// The grant's id once granted.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub grant_id: Option<uuid::Uuid>,
    /// How it was approved, once granted.
    pub approved_by: Option<String>,
    /// From when, once granted.
    pub starts_at: Option<DateTime<Utc>>,
    /// Until when, once granted.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it arrived.
    pub created_at: DateTime<Utc>,
    /// Incremented by every change.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
}

/// The patient's or front desk's answer to a pending request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AccessDecision {
    /// Allow it (with `scopes`/`hours` to narrow it), or decline it.
    pub allow: bool,
    /// A subset of what was asked; all of it when absent.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// At most what was asked; all of it when absent.
    #[serde(default)]
    pub hours: Option<u32>,
}

impl Clean for AccessDecision {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(s) = &self.scopes
            && let Err(e) = parse_scopes(s)
        {
            errors.push(FieldError {
                field: "scopes".into(),
                message: e.to_string(),
            });
        }
        if self.hours == Some(0) {
            errors.push(FieldError {
                field: "hours".into(),
                message: "at least 1 hour".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One read of a patient's record by another hospital, as "who looked at my record" lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AccessRead {
    /// The grant it was made under.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = Uuid)]
    pub grant_id: uuid::Uuid,
    /// The reading hospital.
    pub organisation: String,
    /// The reading doctor.
    pub practitioner_name: String,
    /// What was read (a FHIR resource type).
    pub resource: String,
    /// How many resources the answer held.
    pub count: u32,
    /// When.
    pub read_at: DateTime<Utc>,
}

/// Asking for a narrower grant than was asked for is allowed; a wider one is not.
pub fn narrow(
    asked: &[AccessScope],
    asked_hours: u32,
    scopes: Option<&[AccessScope]>,
    hours: Option<u32>,
) -> Result<(Vec<AccessScope>, u32), String> {
    let scopes = match scopes {
        None => asked.to_vec(),
        Some(s) => {
            if s.is_empty() {
                return Err("allow at least one scope, or decline".into());
            }
            for scope in s {
                let covered = asked.iter().any(|a| {
                    a.resource == scope.resource
                        && (a.read || !scope.read)
                        && (a.search || !scope.search)
                });
                if !covered {
                    return Err(format!("{scope} was not asked for"));
                }
            }
            s.to_vec()
        }
    };
    let hours = match hours {
        None => asked_hours,
        Some(h) if h <= asked_hours => h,
        Some(h) => return Err(format!("{h} hours is longer than the {asked_hours} asked")),
    };
    Ok((scopes, hours))
}

/// A fresh one-time code: 8 random digits, shown as `4821-7730`.
pub fn new_code() -> String {
    use rand::Rng;
    let n: u32 = rand::rngs::OsRng.gen_range(0..100_000_000);
    format!("{:04}-{:04}", n / 10_000, n % 10_000)
}

/// The 8 digits of a code as typed (spaces and dashes dropped), or `None` if it is not one.
pub fn normalise_code(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\u{2010}'..='\u{2015}'))
        .collect();
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// What the home node keeps of a code: SHA-256 over the request id and the digits, so a code
/// is bound to its one request.
pub fn code_hash(request: uuid::Uuid, code: &str) -> Vec<u8> {
    let digits = normalise_code(code).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"carebridge access code v1\0");
    h.update(request.as_bytes());
    h.update(digits.as_bytes());
    h.finalize().to_vec()
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A fresh reference token: 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the home node keeps of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The text of the e-mail that carries a code (no patient data beyond what the patient knows).
pub fn code_mail(
    organisation: &str,
    practitioner: &str,
    scopes: &[AccessScope],
    hours: u32,
    code: &str,
    home: &str,
) -> (String, String) {
    let what = describe_scopes(scopes);
    let subject = format!("{practitioner} asks to read your {what}");
    let body = format!(
        "{practitioner}, {organisation}, asks to read your {what} for {hours} hours.\n\n\
         If you agree, give them this code: {code}\n\
         It is valid for {CODE_MINUTES} minutes and works once.\n\n\
         If you do not agree, do nothing: without the code they cannot read your record.\n\
         You can see and withdraw every permission at {home}'s front desk or kiosk.\n"
    );
    (subject, body)
}

/// "reports and appointments", for people.
pub fn describe_scopes(scopes: &[AccessScope]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for s in scopes {
        let word = match s.resource {
            ScopedResource::Patient => "personal details",
            ScopedResource::DiagnosticReport => "reports",
            ScopedResource::Appointment => "appointments",
        };
        if !parts.contains(&word) {
            parts.push(word);
        }
    }
    match parts.as_slice() {
        [] => "record".into(),
        [one] => (*one).into(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_scopes_parse_and_print_back() {
        let s = AccessScope::parse("patient/DiagnosticReport.rs").unwrap();
        assert!(s.read && s.search);
        assert_eq!(s.to_string(), "patient/DiagnosticReport.rs");
        assert_eq!(
            AccessScope::parse("patient/Patient.r").unwrap().to_string(),
            "patient/Patient.r"
        );
        assert_eq!(
            AccessScope::parse("patient/Appointment.read")
                .unwrap()
                .to_string(),
            "patient/Appointment.rs"
        );
    }

    #[test]
    fn scopes_that_write_or_name_other_things_are_refused() {
        for (s, want) in [
            ("patient/DiagnosticReport.cruds", "writes"),
            ("patient/Appointment.u", "writes"),
            ("patient/Appointment.write", "writes"),
            ("patient/Observation.rs", "resource"),
            ("user/DiagnosticReport.rs", "malformed"),
            ("patient/DiagnosticReport.sr", "malformed"),
            ("patient/DiagnosticReport.", "malformed"),
            ("patient/DiagnosticReport.rr", "malformed"),
            ("patient/DiagnosticReport", "malformed"),
        ] {
            let got = match AccessScope::parse(s) {
                Err(ScopeError::Writes(_)) => "writes",
                Err(ScopeError::Resource(_)) => "resource",
                Err(ScopeError::Malformed(_)) => "malformed",
                Ok(_) => "ok",
            };
            assert_eq!(got, want, "{s}");
        }
    }

    #[test]
    fn a_decision_may_narrow_but_never_widen() {
        let asked = parse_scopes(&[
            "patient/DiagnosticReport.rs".into(),
            "patient/Patient.r".into(),
        ])
        .unwrap();
        let only_reports = parse_scopes(&["patient/DiagnosticReport.r".into()]).unwrap();
        assert_eq!(
            narrow(&asked, 24, Some(&only_reports), Some(4)).unwrap(),
            (only_reports, 4)
        );
        let search_patient = parse_scopes(&["patient/Patient.s".into()]).unwrap();
        assert!(narrow(&asked, 24, Some(&search_patient), None).is_err());
        let appointments = parse_scopes(&["patient/Appointment.rs".into()]).unwrap();
        assert!(narrow(&asked, 24, Some(&appointments), None).is_err());
        assert!(narrow(&asked, 24, None, Some(25)).is_err());
        assert!(narrow(&asked, 24, Some(&[]), None).is_err());
        assert_eq!(narrow(&asked, 24, None, None).unwrap(), (asked, 24));
    }

    #[test]
    fn codes_are_eight_digits_bound_to_their_request() {
        let code = new_code();
        assert_eq!(code.len(), 9);
        let digits = normalise_code(&code).unwrap();
        assert_eq!(normalise_code(&format!(" {} ", &digits[..4])), None);
        assert_eq!(normalise_code("4821 7730").as_deref(), Some("48217730"));
        assert_eq!(normalise_code("4821‐7730").as_deref(), Some("48217730"));
        assert_eq!(normalise_code("4821-773a"), None);
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(same_hash(&code_hash(a, &code), &code_hash(a, &digits)));
        assert!(!same_hash(&code_hash(a, &code), &code_hash(b, &code)));
        assert!(!same_hash(
            &code_hash(a, "0000-0000"),
            &code_hash(a, "0000-0001")
        ));
    }

    #[test]
    fn the_mail_names_who_asks_for_what_and_the_code() {
        let scopes = parse_scopes(&[
            "patient/DiagnosticReport.rs".into(),
            "patient/Appointment.rs".into(),
        ])
        .unwrap();
        let (subject, body) = code_mail(
            "General Hospital",
            "Dr Ünal",
            &scopes,
            24,
            "4821-7730",
            "St Mary's Hospital",
        );
        assert_eq!(
            subject,
            "Dr Ünal asks to read your reports and appointments"
        );
        assert!(body.contains(
            "Dr Ünal, General Hospital, asks to read your reports and appointments for 24 hours."
        ));
        assert!(body.contains("4821-7730"));
    }
}

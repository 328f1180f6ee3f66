//! Patients: registration, search, and identification at a kiosk.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::PatientId;
use crate::appointment::Appointment;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, EMAIL_MAX, PERSON_NAME_MAX, PHONE_MAX};

/// A patient record as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Patient {
    /// Its id on this node.
    pub id: PatientId,
    /// `<uuid>@<node name>`: unique across nodes.
    pub global_id: String,
    /// Family name (surname).
    pub family_name: String,
    /// Given name(s).
    pub given_name: String,
    /// Date of birth.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// Telephone number, if known.
    pub phone: Option<String>,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// The number on the patient's card, used with the birth date to identify at a kiosk.
    pub card_number: String,
    /// Incremented by every change; send it back in `If-Match`.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
    /// When the record was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Where the record now lives, once it was transferred to another hospital: the record
    /// here is then read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub transferred_to: Option<crate::federation::transfer::TransferredTo>,
}

impl Patient {
    /// Why the record takes no changes here, if it moved to another hospital: where it lives
    /// now.
    pub fn moved(&self) -> Option<String> {
        self.transferred_to.as_ref().map(|t| {
            format!(
                "the record moved to {} ({}) on {}: it is read-only here",
                t.organisation,
                t.global_id,
                t.at.format("%Y-%m-%d")
            )
        })
    }
}

/// Staff's request to register a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewPatient {
    /// The id to give the patient, named by a client that registers offline (see
    /// `BookAppointment::id`); the node makes one when absent. An id in use is `409 conflict`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<PatientId>,
    /// Family name, 1–100 characters.
    pub family_name: String,
    /// Given name(s), 1–100 characters.
    pub given_name: String,
    /// Date of birth, not in the future.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    /// Telephone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Card number (6–20 digits or capital letters); the node issues one when absent.
    #[serde(default)]
    pub card_number: Option<String>,
    /// Register even though a patient with the same name and birth date exists.
    #[serde(default)]
    pub confirm_duplicate: bool,
}

/// Staff's change to a patient record (sent with `If-Match: "<version>"`). Absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientUpdate {
    /// New family name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// New given name(s).
    #[serde(default)]
    pub given_name: Option<String>,
    /// Corrected date of birth.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<NaiveDate>,
    /// New telephone number (empty string clears it).
    #[serde(default)]
    pub phone: Option<String>,
    /// New e-mail address (empty string clears it).
    #[serde(default)]
    pub email: Option<String>,
    /// New card number.
    #[serde(default)]
    pub card_number: Option<String>,
}

/// Patient search: every given criterion must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct PatientSearch {
    /// Prefix of the family or a given name, case-insensitive (at least 1 character).
    #[serde(default)]
    #[param(min_length = 1, pattern = r"\S")]
    pub name: Option<String>,
    /// Exact date of birth.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Date)]
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<NaiveDate>,
    /// Exact card number.
    #[serde(default)]
    pub card_number: Option<String>,
    /// At most this many results (1–200, default 50).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

/// A kiosk's request to identify the patient standing at it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskIdentify {
    /// The number on the patient's card.
    pub card_number: String,
    /// The patient's date of birth.
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
}

/// What a kiosk learns about an identified patient: enough to greet them, book and check in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct KioskPatient {
    /// The patient's id, to book with.
    pub id: PatientId,
    /// A greeting name that reveals little to passers-by: given name and family initial.
    pub display_name: String,
    /// The patient's live appointments today, to check in.
    pub appointments_today: Vec<Appointment>,
}

/// Normalises a name for prefix search: NFC (as names are stored), lowercase, trimmed; so
/// "Mu\u{308}l" typed with a combining mark finds "Müller".
pub fn search_key(name: &str) -> String {
    crate::text::nfc(name.trim()).to_lowercase()
}

/// Checks a card number's shape.
pub fn validate_card_number(card: &str) -> Result<(), &'static str> {
    if !(6..=20).contains(&card.len()) {
        return Err("must be 6 to 20 characters");
    }
    if !card
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err("may contain only digits and capital letters");
    }
    Ok(())
}

fn check_name(field: &str, v: &str, errors: &mut Vec<FieldError>) {
    let n = v.trim().chars().count();
    if n == 0 || n > PERSON_NAME_MAX {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be 1 to {PERSON_NAME_MAX} characters"),
        });
    }
}

fn check_optional(field: &str, v: &Option<String>, max: usize, errors: &mut Vec<FieldError>) {
    if let Some(v) = v
        && v.chars().count() > max
    {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be at most {max} characters"),
        });
    }
}

impl NewPatient {
    /// Validates the request against `today` (the node's date); lists every wrong field.
    pub fn validate(&self, today: NaiveDate) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_name("family_name", &self.family_name, &mut errors);
        check_name("given_name", &self.given_name, &mut errors);
        if self.birth_date > today || self.birth_date.year() < 1850 {
            errors.push(FieldError {
                field: "birth_date".into(),
                message: "must be a date between 1850 and today".into(),
            });
        }
        check_optional("phone", &self.phone, PHONE_MAX, &mut errors);
        check_optional("email", &self.email, EMAIL_MAX, &mut errors);
        if let Some(card) = &self.card_number
            && let Err(m) = validate_card_number(card)
        {
            errors.push(FieldError {
                field: "card_number".into(),
                message: m.into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl PatientUpdate {
    /// Validates the change against `today`; lists every wrong field.
    pub fn validate(&self, today: NaiveDate) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(v) = &self.family_name {
            check_name("family_name", v, &mut errors);
        }
        if let Some(v) = &self.given_name {
            check_name("given_name", v, &mut errors);
        }
        if let Some(d) = self.birth_date
            && (d > today || d.year() < 1850)
        {
            errors.push(FieldError {
                field: "birth_date".into(),
                message: "must be a date between 1850 and today".into(),
            });
        }
        check_optional("phone", &self.phone, PHONE_MAX, &mut errors);
        check_optional("email", &self.email, EMAIL_MAX, &mut errors);
        if let Some(card) = &self.card_number
            && let Err(m) = validate_card_number(card)
        {
            errors.push(FieldError {
                field: "card_number".into(),
                message: m.into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Clean for NewPatient {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("family_name", &mut self.family_name, PERSON_NAME_MAX)
            .line("given_name", &mut self.given_name, PERSON_NAME_MAX)
            .phone("phone", &mut self.phone)
            .email("email", &mut self.email)
            .line_opt("card_number", &mut self.card_number, 20)
            .finish()
    }
}

impl Clean for PatientUpdate {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        let mut checks = Checks::default();
        if let Some(v) = &mut self.family_name {
            checks.line("family_name", v, PERSON_NAME_MAX);
        }
        if let Some(v) = &mut self.given_name {
            checks.line("given_name", v, PERSON_NAME_MAX);
        }
        checks
            .phone("phone", &mut self.phone)
            .email("email", &mut self.email)
            .line_opt("card_number", &mut self.card_number, 20)
            .finish()
    }
}

/// Nothing to normalise: the card number is looked up, not stored, and its shape is ASCII.
impl Clean for KioskIdentify {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

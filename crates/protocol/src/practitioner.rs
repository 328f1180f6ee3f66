//! Staff users ("practitioners" in FHIR's words) and their roles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::PractitionerId;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, DISPLAY_NAME_MAX};

/// What a staff user may do on a hospital node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "lowercase")
)]
pub enum Role {
    /// Sees and works on their own schedule and appointments, and all patients.
    Doctor,
    /// Books, moves and checks in appointments on every doctor's schedule.
    Reception,
    /// Manages accounts and kiosk devices and reads the audit trail; no patient data.
    Admin,
    /// On an insurer's node: reads the medical reports hospitals send.
    Reviewer,
}

impl Role {
    /// The lowercase name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doctor => "doctor",
            Self::Reception => "reception",
            Self::Admin => "admin",
            Self::Reviewer => "reviewer",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "doctor" => Some(Self::Doctor),
            "reception" => Some(Self::Reception),
            "admin" => Some(Self::Admin),
            "reviewer" => Some(Self::Reviewer),
            _ => None,
        }
    }
}

/// A staff account as the node shows it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Practitioner {
    /// Its id.
    pub id: PractitionerId,
    /// Sign-in name, unique on the node. Left out for a kiosk, which offers doctors to
    /// patients by name and must not learn what staff sign in with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Name shown to colleagues and patients, e.g. "Dr. Ada Moreau".
    pub display_name: String,
    /// Its role.
    pub role: Role,
    /// A disabled account cannot sign in and its sessions have ended.
    pub disabled: bool,
    /// Incremented by every change.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub version: i64,
}

/// An admin's request to create a staff account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewPractitioner {
    /// Sign-in name: 3–64 characters of `a-z`, `0-9`, `.`, `-`, `_`.
    pub username: String,
    /// Name shown to others, 1–200 characters.
    pub display_name: String,
    /// The account's role.
    pub role: Role,
    /// Initial password, at least 12 characters.
    pub password: String,
}

/// An admin's change to an account: disable or enable it, or set a new password.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PractitionerUpdate {
    /// `true` disables the account and ends all its sessions; `false` enables it again.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (at least 12 characters); ends the account's sessions.
    #[serde(default)]
    pub password: Option<String>,
    /// A new display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Checks a username's shape; returns why it is wrong.
pub fn validate_username(u: &str) -> Result<(), &'static str> {
    if !(3..=64).contains(&u.len()) {
        return Err("must be 3 to 64 characters");
    }
    if !u
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("may contain only a-z, 0-9, '.', '-' and '_'");
    }
    Ok(())
}

/// The fewest characters in a password.
pub const PASSWORD_MIN: usize = 12;
/// The most characters in a password (a passphrase fits; hashing stays cheap to refuse).
pub const PASSWORD_MAX: usize = 256;

/// Checks a new password's strength; returns why it is refused.
pub fn validate_password(p: &str) -> Result<(), &'static str> {
    let n = p.chars().count();
    if n < PASSWORD_MIN {
        return Err("must be at least 12 characters");
    }
    if n > PASSWORD_MAX {
        return Err("must be at most 256 characters");
    }
    Ok(())
}

/// The password is left as typed (see `StaffSignIn`); the username's own rule
/// ([`validate_username`]) admits only ASCII letters, digits and `.-_`.
impl Clean for NewPractitioner {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("username", &mut self.username, 64)
            .line("display_name", &mut self.display_name, DISPLAY_NAME_MAX)
            .finish()
    }
}

impl Clean for PractitionerUpdate {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line_opt("display_name", &mut self.display_name, DISPLAY_NAME_MAX)
            .finish()
    }
}

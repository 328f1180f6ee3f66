//! Signing in: staff with username and password, kiosks with their device credential.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::practitioner::Role;
use crate::problem::FieldError;
use crate::text::Clean;
use crate::{KioskDeviceId, PractitionerId};

/// A staff user's sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignIn {
    /// The account's username.
    pub username: String,
    /// The account's password.
    pub password: String,
}

/// A kiosk device's sign-in with the credential it was given at registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskSignIn {
    /// The device's id.
    pub device_id: KioskDeviceId,
    /// The device's secret, shown once when an admin registered it.
    pub secret: String,
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Principal {
    /// A staff user.
    Staff {
        /// The user's id.
        id: PractitionerId,
        /// The user's role.
        role: Role,
        /// The user's name.
        display_name: String,
    },
    /// A registered kiosk device.
    Kiosk {
        /// The device's id.
        id: KioskDeviceId,
        /// The device's label, e.g. "Entrance kiosk 1".
        label: String,
    },
}

/// A new session: the bearer token to send as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// The opaque bearer token (256 random bits, base64url). The node keeps only its SHA-256.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who signed in.
    pub principal: Principal,
    /// The node's name, e.g. `st-marys.example`.
    pub node: String,
    /// The node's IANA time zone, in which slots are laid out.
    pub time_zone: String,
    /// `hospital` or `insurer` (absent from nodes older than the field: a hospital).
    #[serde(default = "hospital")]
    pub node_kind: String,
}

fn hospital() -> String {
    "hospital".into()
}

/// Left as typed: credentials are compared with what is stored, never stored from here, and
/// normalising a password would change what it is compared as.
impl Clean for StaffSignIn {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// Left as typed: a device id and its secret, compared, never stored from here.
impl Clean for KioskSignIn {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

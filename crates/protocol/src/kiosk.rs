//! Kiosk devices: self-service terminals that sign in as themselves, not as a person.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::KioskDeviceId;
use crate::problem::FieldError;
use crate::text::{Checks, Clean, LABEL_MAX};

/// A registered kiosk device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct KioskDevice {
    /// Its id.
    pub id: KioskDeviceId,
    /// Where it stands, e.g. "Entrance kiosk 1".
    pub label: String,
    /// A revoked device cannot sign in and its sessions have ended.
    pub revoked: bool,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
}

/// An admin's request to register a kiosk device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKiosk {
    /// Where it stands, 1–100 characters.
    pub label: String,
}

/// A newly registered device and its secret, which is shown only this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct KioskRegistration {
    /// The device.
    pub device: KioskDevice,
    /// The device's secret for `POST /api/v1/kiosk-sessions`. Not retrievable later.
    pub secret: String,
}

impl Clean for RegisterKiosk {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("label", &mut self.label, LABEL_MAX)
            .finish()
    }
}

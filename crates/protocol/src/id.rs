//! Record identifiers: UUIDv7 newtypes, so a patient id can never be passed where an
//! appointment id is expected. v7 sorts by creation time, which keeps B-tree inserts local.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[derive(utoipa::ToSchema)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export, type = "string"))]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (v7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A patient, unique within its node; [`crate::patient::Patient::global_id`] is unique across nodes.
    PatientId
);
uuid_id!(
    /// A staff user (doctor, reception, admin).
    PractitionerId
);
uuid_id!(
    /// An appointment.
    AppointmentId
);
uuid_id!(
    /// A registered kiosk device.
    KioskDeviceId
);
uuid_id!(
    /// A medical report (all its revisions share it).
    ReportId
);
uuid_id!(
    /// An imaging order.
    ImagingOrderId
);
uuid_id!(
    /// A study as this node recorded it (one per DICOM StudyInstanceUID).
    ImagingStudyId
);
uuid_id!(
    /// A patient's document (a letter, a scan); all its versions share it.
    DocumentId
);

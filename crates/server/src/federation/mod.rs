//! Node ↔ node federation (DESIGN "Node ↔ node federation"): peers and how they are added,
//! what peers send (checked by the inbox, `api::inbox`), the durable outbox of transmissions and
//! its delivery worker, sharing reports with a patient's consent, admin updates and their
//! acknowledgements, the retention of what was received, patient-consented access across
//! hospitals (`access`), and moving a patient's record to another hospital (`transfer`). The wire formats and the
//! cryptography are the protocol crate's (`carebridge_protocol::federation`).

pub mod access;
pub mod delivery;
pub mod error;
pub mod peer;
pub mod peering;
pub mod received;
pub mod refusals;
pub mod sharing;
pub mod transfer;
pub mod transmission;
pub mod updates;

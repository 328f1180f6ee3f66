//! What federation keeps: peers, the outbox of transmissions, what peers sent (and the
//! nonces of their requests), patients' consents to share, admin updates, consented access
//! across hospitals, and patients' records moving between hospitals.

pub mod access;
pub mod consents;
pub mod peers;
pub mod received;
pub mod transfers;
pub mod transmissions;
pub mod updates;

//! CareBridge client core: the encrypted local store and the offline-first sync engine the
//! desktop app runs on. It knows nothing of Tauri or windows.
//!
//! In place so far: the encrypted local mirror ([`store`]), the first sync from a node's
//! snapshot, in batches and resumable ([`sync`]), and following the live stream ([`live`]).
//! The outbox, the notifier and the queries come next (see the client-core issue).

pub mod error;
pub mod live;
pub mod store;
pub mod sync;

pub use carebridge_protocol as protocol;
pub use error::{CoreError, Retry};
pub use store::{LocalKey, LocalStore};

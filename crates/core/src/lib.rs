//! CareBridge client core: the encrypted local store and offline-first sync engine that the
//! desktop app runs on. It knows nothing of Tauri or windows.
//!
//! A skeleton until the client-core issue lands; the wire types it will speak are in
//! [`carebridge_protocol`], re-exported here.

pub use carebridge_protocol as protocol;

//! CareBridge client core: the encrypted local store and the offline-first sync engine the
//! desktop app runs on. It knows nothing of Tauri or windows.
//!
//! - [`profile`]: one encrypted store per signed-in user or kiosk, its key in the OS keychain
//!   (or from a passphrase where there is none).
//! - [`session`]: signing in and out; the token lives in the encrypted store.
//! - [`store`]: the local mirror, the outbox of the user's writes, and the UI's queries.
//! - [`sync`] and [`live`]: the first sync from the node's snapshot, then its live stream.
//! - [`engine`]: runs all of it for a signed-in profile and publishes the connection state.
//! - [`changes`]: what changed, for the screens that show it.
//! - [`notify`]: which live changes are news to the user.

pub mod access;
pub mod admin;
pub mod changes;
mod clock;
pub mod documents;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod imaging;
pub mod live;
pub mod notify;
pub mod profile;
pub mod records;
pub mod session;
pub mod store;
pub mod sync;
pub mod transfer;

pub use carebridge_protocol as protocol;

/// The tracing target of the marks a record leaves on its way (stored, sent, answered,
/// applied), at trace level: the live-loop benchmark reads them, with the node's and the
/// app's, to time each hop. Nothing records them unless a subscriber asks for this target.
pub const TIMELINE: &str = "carebridge::timeline";
pub use changes::{ChangeKind, Changes};
pub use engine::{Link, Status, SyncEngine};
pub use error::{ClientCode, CoreError, ErrorCode, Retry};
pub use notify::{Notice, Notifier, RecordingNotifier};
pub use profile::{KeySource, Profiles, Unlock};
pub use session::SignedIn;
pub use store::{LocalKey, LocalStore};

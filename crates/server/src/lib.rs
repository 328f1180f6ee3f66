//! The CareBridge node: an organisation's server.
//!
//! It keeps the organisation's records in an encrypted SQLite database (SQLCipher), serves
//! the HTTP API under `/api/v1` and the live event stream to its own clients, and audits
//! every read and write of patient data in a hash chain. The binary `carebridge-node` wraps
//! it with `init`, `serve`, `demo`, `audit verify`, `audit checkpoint`, `backup` and `restore`.

pub mod api;
pub mod audit;
pub mod booking;
pub mod clock;
pub mod config;
pub mod connection;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod events;
pub mod federation;
pub mod fhir;
pub mod identity;
pub mod imaging;
pub mod jobs;
pub mod mail;
pub mod mail_delivery;
pub mod metrics;
pub mod node;
pub mod practitioner;
pub mod report_pdf;
pub mod schedule;
pub mod serve;
pub mod session;
pub mod store;
pub mod throttle;
pub mod timeline;
pub mod visibility;

pub use config::NodeConfig;

/// The tracing target of the marks an event leaves on its way through the node (committed,
/// streamed to a subscriber), at trace level: the live-loop benchmark reads them to time each
/// hop. `CAREBRIDGE_TIMELINE=FILE` writes them, and nothing else, to FILE as JSON lines.
pub const TIMELINE: &str = "carebridge::timeline";
pub use node::Node;

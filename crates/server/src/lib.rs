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
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod node;
pub mod practitioner;
pub mod report_pdf;
pub mod schedule;
pub mod serve;
pub mod session;
pub mod store;
pub mod throttle;
pub mod visibility;

pub use config::NodeConfig;
pub use node::Node;

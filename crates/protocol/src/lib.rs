//! The CareBridge wire: what a node and its clients say to each other.
//!
//! Everything here is plain data and pure rules — no I/O, no runtime — so both the node
//! (`carebridge-server`) and the client core (`carebridge-core`) share one definition, and
//! the rules (the appointment state machine, the booking rules in [`booking`], the audit
//! hash chain) are testable on their own.
//!
//! The rules live here rather than in `core` because the node must enforce them too and the
//! dependency graph (`server → protocol`, `core → protocol`) gives them no other common home.

pub mod appointment;
pub mod audit;
pub mod booking;
pub mod document;
pub mod event;
pub mod federation;
pub mod id;
pub mod imaging;
pub mod kiosk;
pub mod patient;
pub mod practitioner;
pub mod problem;
pub mod report;
pub mod schedule;
pub mod session;
pub mod slots;
pub mod snapshot;
pub mod text;

pub use id::{AppointmentId, KioskDeviceId, PatientId, PractitionerId, ReportId};
pub use problem::{Problem, ProblemType};

/// The media type of RFC 9457 error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The header carrying a write's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

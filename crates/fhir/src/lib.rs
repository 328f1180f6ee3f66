//! CareBridge's records as HL7 FHIR R4 resources, for the node's `/fhir/R4` API.
//!
//! - [`resources`] and [`datatypes`]: the resources served, with the elements CareBridge fills;
//! - [`map`]: the wire types ([`carebridge_protocol`]) as resources;
//! - [`search`]: search parameters read into typed values (unknown ones refused);
//! - [`bundle`]: a search's page with its links, a patient's whole record;
//! - [`capability`]: what is served, one table for the CapabilityStatement and the tests.
//!
//! A resource's `id` is the record's bare UUID (FHIR ids cannot hold `@`); the global id
//! `uuid@node` travels in `identifier` under [`system::GLOBAL_ID`]. No I/O here: the node
//! decides who sees what and reads the store.

pub mod bundle;
pub mod capability;
pub mod datatypes;
pub mod map;
pub mod resources;
pub mod search;
pub mod system;

pub use resources::{OperationOutcome, Resource};

/// The resource types an import takes, in the order it applies them: what others refer to
/// first (staff, their roles, schedules), then patients and what is theirs.
pub const IMPORT_ORDER: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Schedule",
    "Patient",
    "Appointment",
    "DiagnosticReport",
];

/// Where a resource type comes in [`IMPORT_ORDER`]; a type an import does not take comes last.
pub fn import_rank(resource_type: &str) -> usize {
    IMPORT_ORDER
        .iter()
        .position(|t| *t == resource_type)
        .unwrap_or(IMPORT_ORDER.len())
}

/// The media type of FHIR's JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

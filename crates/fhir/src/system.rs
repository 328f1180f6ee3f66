//! The URIs of CareBridge's own identifier systems, code systems and extensions.
//!
//! FHIR names every namespace by a URI. These are CareBridge's, under one base, so that a
//! receiving system can tell a CareBridge global id from any other identifier.

/// The base every CareBridge URI starts with.
pub const BASE: &str = "https://carebridge.dev/fhir";

/// The global id of a record, `uuid@node`: unique across every CareBridge node.
pub const GLOBAL_ID: &str = "https://carebridge.dev/fhir/sid/global-id";

/// A node's name, where a reference names another organisation's node.
pub const NODE: &str = "https://carebridge.dev/fhir/sid/node";

/// A kiosk device's id.
pub const KIOSK: &str = "https://carebridge.dev/fhir/sid/kiosk";

/// Staff roles (`doctor`, `reception`, `admin`, `reviewer`).
pub const ROLE: &str = "https://carebridge.dev/fhir/CodeSystem/role";

/// The node's audit action names (`patient.read`, `appointment.book`, …).
pub const AUDIT_ACTION: &str = "https://carebridge.dev/fhir/CodeSystem/audit-action";

/// The policy a consent to send reports to a peer is given under.
pub const SHARE_REPORTS_POLICY: &str = "https://carebridge.dev/fhir/policy/share-reports";

/// The policy a doctor at another hospital reads a patient's record under, with the patient's
/// approval (or, in an emergency, the home hospital's policy).
pub const ACCESS_POLICY: &str = "https://carebridge.dev/fhir/policy/access-across-hospitals";

/// The card numbers one node issues: each organisation has its own.
pub fn card_number(node: &str) -> String {
    format!("{BASE}/sid/card-number/{node}")
}

/// The booking references one node issues.
pub fn appointment_reference(node: &str) -> String {
    format!("{BASE}/sid/appointment-reference/{node}")
}

/// The accession numbers of one node's imaging orders.
pub fn accession(node: &str) -> String {
    format!("{BASE}/sid/accession/{node}")
}

/// DICOM's identifiers (a StudyInstanceUID as `urn:oid:…`).
pub const DICOM_UID: &str = "urn:dicom:uid";

/// DICOM's codes (modalities).
pub const DICOM_CODES: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// One of CareBridge's extensions, by name.
pub fn extension(name: &str) -> String {
    format!("{BASE}/StructureDefinition/{name}")
}

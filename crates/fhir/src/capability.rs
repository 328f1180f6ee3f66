//! What the node serves at `/fhir/R4`: one table, read by the CapabilityStatement and checked
//! against the handlers by the node's tests (every parameter listed is accepted, every other
//! refused).

use serde_json::{Value, json};

/// A search parameter's FHIR type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `token`.
    Token,
    /// `string` (starts-with, case-insensitive).
    String,
    /// `date` (with `eq`, `gt`, `ge`, `lt`, `le`).
    Date,
    /// `reference`.
    Reference,
}

impl ParamType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::String => "string",
            Self::Date => "date",
            Self::Reference => "reference",
        }
    }
}

/// One search parameter a resource's search takes.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: ParamType,
    /// What it matches.
    pub doc: &'static str,
}

const fn p(name: &'static str, kind: ParamType, doc: &'static str) -> Param {
    Param { name, kind, doc }
}

/// One resource type the node serves.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// The resource type.
    pub resource_type: &'static str,
    /// Who may read it, in words.
    pub who: &'static str,
    /// Its search parameters (besides `_count`, `_offset`, `_format`).
    pub params: &'static [Param],
    /// What `_sort` takes.
    pub sorts: &'static [&'static str],
    /// What `_include` takes.
    pub includes: &'static [&'static str],
}

use ParamType::{Date, Reference, String as Str, Token};

const ID: Param = p("_id", Token, "The logical id");
const LAST_UPDATED: Param = p("_lastUpdated", Date, "When the record last changed");

/// Every resource type served, with its search.
pub const SERVED: &[Served] = &[
    Served {
        resource_type: "Patient",
        who: "reception and doctors",
        params: &[
            ID,
            LAST_UPDATED,
            p("identifier", Token, "The global id or the card number"),
            p("name", Str, "The start of the family or given name"),
            p("family", Str, "The start of the family name"),
            p("given", Str, "The start of the given name"),
            p("birthdate", Date, "The birth date"),
        ],
        sorts: &["family", "given", "birthdate", "_lastUpdated"],
        includes: &[],
    },
    Served {
        resource_type: "Practitioner",
        who: "every staff member",
        params: &[
            ID,
            p("identifier", Token, "The global id"),
            p("name", Str, "The start of any word of the name"),
            p("active", Token, "true or false"),
        ],
        sorts: &[],
        includes: &[],
    },
    Served {
        resource_type: "PractitionerRole",
        who: "every staff member",
        params: &[
            ID,
            p("practitioner", Reference, "The practitioner"),
            p("role", Token, "doctor, reception, admin or reviewer"),
            p("active", Token, "true or false"),
        ],
        sorts: &[],
        includes: &["PractitionerRole:practitioner"],
    },
    Served {
        resource_type: "Schedule",
        who: "every staff member",
        params: &[
            ID,
            p("actor", Reference, "The doctor"),
            p("active", Token, "true or false"),
        ],
        sorts: &[],
        includes: &["Schedule:actor"],
    },
    Served {
        resource_type: "Slot",
        who: "every staff member",
        params: &[
            ID,
            p("schedule", Reference, "The schedule (required)"),
            p(
                "start",
                Date,
                "The start (required: a span of at most 31 days)",
            ),
            p(
                "status",
                Token,
                "free, busy, busy-tentative, busy-unavailable",
            ),
        ],
        sorts: &[],
        includes: &[],
    },
    Served {
        resource_type: "Appointment",
        who: "reception (all), doctors (their own)",
        params: &[
            ID,
            LAST_UPDATED,
            p(
                "identifier",
                Token,
                "The global id or the booking reference",
            ),
            p("patient", Reference, "The patient"),
            p("practitioner", Reference, "The doctor"),
            p("actor", Reference, "The patient or the doctor"),
            p("date", Date, "The start"),
            p("status", Token, "The status (comma-separated: any of them)"),
        ],
        sorts: &["date", "_lastUpdated"],
        includes: &[
            "Appointment:patient",
            "Appointment:practitioner",
            "Appointment:actor",
        ],
    },
    Served {
        resource_type: "DiagnosticReport",
        who: "doctors",
        params: &[
            ID,
            LAST_UPDATED,
            p("identifier", Token, "The global id"),
            p("patient", Reference, "The patient"),
            p("subject", Reference, "The patient"),
            p("performer", Reference, "The author"),
            p("status", Token, "The status (comma-separated: any of them)"),
            p("date", Date, "When it was written"),
        ],
        sorts: &["date", "_lastUpdated"],
        includes: &["DiagnosticReport:patient", "DiagnosticReport:subject"],
    },
    Served {
        resource_type: "Consent",
        who: "doctors",
        params: &[ID, p("patient", Reference, "The patient (required)")],
        sorts: &[],
        includes: &[],
    },
    Served {
        resource_type: "ImagingStudy",
        who: "doctors",
        params: &[ID, p("patient", Reference, "The patient (required)")],
        sorts: &[],
        includes: &[],
    },
    Served {
        resource_type: "AuditEvent",
        who: "admins",
        params: &[
            ID,
            p("date", Date, "When it was recorded"),
            p("agent", Reference, "Who did it (Practitioner/id)"),
            p(
                "entity",
                Reference,
                "Which record (Patient/id, Appointment/id, DiagnosticReport/id)",
            ),
            p("patient", Reference, "Anything on the patient's record"),
            p(
                "subtype",
                Token,
                "The node's action name, or its family (`report`)",
            ),
        ],
        sorts: &[],
        includes: &[],
    },
    Served {
        resource_type: "Provenance",
        who: "doctors",
        params: &[
            ID,
            p("target", Reference, "The report (DiagnosticReport/id)"),
            p(
                "patient",
                Reference,
                "Every signature on the patient's reports",
            ),
        ],
        sorts: &[],
        includes: &[],
    },
];

/// The entry of `SERVED` for `resource_type`.
pub fn served(resource_type: &str) -> Option<&'static Served> {
    SERVED.iter().find(|s| s.resource_type == resource_type)
}

/// The CapabilityStatement: what `GET /fhir/R4/metadata` answers.
pub fn capability_statement(node: &str, software_version: &str, base: &str, date: &str) -> Value {
    let resources: Vec<Value> = SERVED
        .iter()
        .map(|s| {
            let mut params: Vec<Value> = s
                .params
                .iter()
                .map(|p| json!({"name": p.name, "type": p.kind.as_str(), "documentation": p.doc}))
                .collect();
            params.push(json!({"name": "_count", "type": "number", "documentation": format!("Entries per page, at most {}", crate::search::MAX_COUNT)}));
            params.push(json!({"name": "_offset", "type": "number", "documentation": "Entries skipped (the pages' links set it)"}));
            let mut r = json!({
                "type": s.resource_type,
                "documentation": format!("Read by {}", s.who),
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "versioned",
                "readHistory": false,
                "updateCreate": false,
                "searchParam": params,
            });
            if !s.includes.is_empty() {
                r["searchInclude"] = json!(s.includes);
            }
            if s.resource_type == "Patient" {
                r["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    "documentation": "The patient's whole record that the caller may see, as one Bundle"
                }, {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    "documentation": "Bulk Data export of every patient's compartment, or of one patient's at Patient/{id}/$export (admins)"
                }]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": node,
        "kind": "instance",
        "software": {"name": "CareBridge node", "version": software_version},
        "implementation": {"description": format!("CareBridge node {node}"), "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Sign in at /api/v1/sessions and send the token as Authorization: Bearer. Every read is audited and follows the node's visibility policy: a kiosk reads nothing here.",
            "security": {
                "cors": false,
                "description": "Bearer tokens from the node's own sign-in; TLS in production"
            },
            "resource": resources,
            "interaction": [
                {"code": "transaction", "documentation": "Admins import Practitioner, PractitionerRole, Schedule, Patient, Appointment and final DiagnosticReport entries, all or nothing, under the native API's rules"},
                {"code": "batch", "documentation": "The same import, each entry on its own"}
            ],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "Bulk Data export for admins (Prefer: respond-async; _type, _since, _outputFormat=application/fhir+ndjson), at /$export, /Patient/$export and /Patient/{id}/$export"
            }],
        }]
    })
}

//! What the OpenAPI document states beyond the Rust types: the bearer scheme, the problems any
//! operation can answer, and the rules the node checks on input (text lengths and characters,
//! header shapes), so that a client generated from the document, or Schemathesis, knows what
//! the node accepts. The text rules come from `carebridge_protocol::text`, the same constants
//! the checks use; the contract test (`tests/contract.rs`) holds the two to each other.

use carebridge_protocol::imaging::PROCEDURE_MAX;
use carebridge_protocol::text::{
    DISPLAY_NAME_MAX, EMAIL_MAX, LABEL_MAX, PEER_NAME_MAX, PERSON_NAME_MAX, PHONE_MAX, REASON_MAX,
    TITLE_MAX, UPDATE_BODY_MAX,
};
use carebridge_protocol::{IDEMPOTENCY_KEY, PROBLEM_JSON};
use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayItems, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::api::extract::IDEMPOTENCY_KEY_PATTERN;

/// One line with at least one character that is not white space, and no control character
/// (Unicode Cc: C0, DEL, C1).
const LINE_FILLED: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// Several lines: line feeds and tabs allowed, no other control character.
const LINES: &str = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$";
/// Several lines with at least one character that is not white space.
const LINES_FILLED: &str =
    r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b-\x1f\x7f-\x9f]*$";
/// `text::check_email`, or blank (which clears an optional address).
const EMAIL: &str = r"^(?: *|[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@.\x00-\x1f\x7f-\x9f]+(?:\.[^\s@.\x00-\x1f\x7f-\x9f]+)+)$";
/// `text::check_phone`: 6 to 20 digits among spaces and `+ - ( )`, or blank.
const PHONE: &str = r"^(?: *|[ +()-]*(?:[0-9][ +()-]*){6,20})$";
/// `patient::validate_card_number`.
const CARD_NUMBER: &str = r"^[0-9A-Z]{6,20}$";
/// `practitioner::validate_username`.
const USERNAME: &str = r"^[a-z0-9._-]{3,64}$";
/// `extract::IfMatch`: a version, bare or quoted, weak or not.
const IF_MATCH: &str = r#"^(?:W/)?(?:[0-9]{1,18}|"[0-9]{1,18}")$"#;
/// `Last-Event-ID`: an event id (empty: from now).
const EVENT_ID: &str = r"^[0-9]{0,18}$";

/// A rule for one string: its pattern and the lengths (in characters) it allows.
#[derive(Debug, Clone, Copy)]
struct Text {
    pattern: &'static str,
    min: Option<usize>,
    max: Option<usize>,
}

const fn text(pattern: &'static str, min: usize, max: usize) -> Text {
    Text {
        pattern,
        min: Some(min),
        max: Some(max),
    }
}

const fn shaped(pattern: &'static str) -> Text {
    Text {
        pattern,
        min: None,
        max: None,
    }
}

/// The text fields of request bodies, by schema and property.
const TEXT_FIELDS: &[(&str, &str, Text)] = &[
    (
        "BookAppointment",
        "reason",
        text(LINE_FILLED, 1, REASON_MAX),
    ),
    (
        "BookAppointment",
        "override_reason",
        text(LINE_FILLED, 1, REASON_MAX),
    ),
    (
        "Reschedule",
        "override_reason",
        text(LINE_FILLED, 1, REASON_MAX),
    ),
    ("WithReason", "reason", text(LINE_FILLED, 1, REASON_MAX)),
    ("NewAbsence", "reason", text(LINE_FILLED, 1, REASON_MAX)),
    (
        "NewImagingOrder",
        "reason",
        text(LINE_FILLED, 1, REASON_MAX),
    ),
    (
        "NewImagingOrder",
        "procedure",
        text(LINE_FILLED, 1, PROCEDURE_MAX),
    ),
    (
        "ConsentRequest",
        "peer",
        text(LINE_FILLED, 1, PEER_NAME_MAX),
    ),
    ("SendReports", "peer", text(LINE_FILLED, 1, PEER_NAME_MAX)),
    (
        "NewAdminUpdate",
        "peer",
        text(LINE_FILLED, 1, PEER_NAME_MAX),
    ),
    ("NewAdminUpdate", "title", text(LINE_FILLED, 1, TITLE_MAX)),
    (
        "NewAdminUpdate",
        "body",
        text(LINES_FILLED, 1, UPDATE_BODY_MAX),
    ),
    (
        "NewPatient",
        "family_name",
        text(LINE_FILLED, 1, PERSON_NAME_MAX),
    ),
    (
        "NewPatient",
        "given_name",
        text(LINE_FILLED, 1, PERSON_NAME_MAX),
    ),
    ("NewPatient", "phone", text(PHONE, 0, PHONE_MAX)),
    ("NewPatient", "email", text(EMAIL, 0, EMAIL_MAX)),
    ("NewPatient", "card_number", shaped(CARD_NUMBER)),
    (
        "PatientUpdate",
        "family_name",
        text(LINE_FILLED, 1, PERSON_NAME_MAX),
    ),
    (
        "PatientUpdate",
        "given_name",
        text(LINE_FILLED, 1, PERSON_NAME_MAX),
    ),
    ("PatientUpdate", "phone", text(PHONE, 0, PHONE_MAX)),
    ("PatientUpdate", "email", text(EMAIL, 0, EMAIL_MAX)),
    ("PatientUpdate", "card_number", shaped(CARD_NUMBER)),
    ("NewPractitioner", "username", shaped(USERNAME)),
    (
        "NewPractitioner",
        "display_name",
        text(LINE_FILLED, 1, DISPLAY_NAME_MAX),
    ),
    (
        "NewPractitioner",
        "password",
        text(
            ".*",
            carebridge_protocol::practitioner::PASSWORD_MIN,
            carebridge_protocol::practitioner::PASSWORD_MAX,
        ),
    ),
    (
        "PractitionerUpdate",
        "display_name",
        text(LINE_FILLED, 1, DISPLAY_NAME_MAX),
    ),
    (
        "PractitionerUpdate",
        "password",
        text(
            ".*",
            carebridge_protocol::practitioner::PASSWORD_MIN,
            carebridge_protocol::practitioner::PASSWORD_MAX,
        ),
    ),
    ("RegisterKiosk", "label", text(LINE_FILLED, 1, LABEL_MAX)),
    ("ReportContent", "title", text(LINE_FILLED, 1, TITLE_MAX)),
    (
        "ReportContent",
        "findings",
        text(LINES, 0, carebridge_protocol::report::MAX_TEXT),
    ),
    (
        "ReportContent",
        "conclusion",
        text(LINES, 0, carebridge_protocol::report::MAX_TEXT),
    ),
    (
        "ReportContent",
        "codes",
        text(LINE_FILLED, 1, carebridge_protocol::report::CODE_MAX),
    ),
];

/// Header parameters' shapes, by name (compared without case).
const HEADERS: &[(&str, &str)] = &[
    (IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_PATTERN),
    ("if-match", IF_MATCH),
    ("last-event-id", EVENT_ID),
];

/// The document's additions (see the module's doc).
pub struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from POST /api/v1/sessions or /api/v1/kiosk-sessions",
                    ))
                    .build(),
            ),
        );
        for (schema, property, rule) in TEXT_FIELDS {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*schema) else {
                panic!("the contract names schema {schema}, which the document does not have");
            };
            match object.properties.get_mut(*property) {
                Some(RefOr::T(Schema::Object(field))) => apply(field, *rule),
                Some(RefOr::T(Schema::Array(list))) => match &mut list.items {
                    ArrayItems::RefOrSchema(item) => match item.as_mut() {
                        RefOr::T(Schema::Object(field)) => apply(field, *rule),
                        _ => panic!("{schema}.{property}: items are not a string"),
                    },
                    ArrayItems::False => panic!("{schema}.{property}: no items"),
                },
                _ => panic!("the contract names {schema}.{property}, which is not a string"),
            }
        }
        for (path, item) in &mut doc.paths.paths {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(op, path);
                for p in op.parameters.iter_mut().flatten() {
                    if let Some((_, pattern)) = HEADERS
                        .iter()
                        .find(|(name, _)| p.name.eq_ignore_ascii_case(name))
                    {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some(*pattern))
                                .build()
                                .into(),
                        );
                    }
                }
            }
        }
    }
}

fn apply(field: &mut Object, rule: Text) {
    field.pattern = Some(rule.pattern.to_owned());
    if rule.min.is_some() {
        field.min_length = rule.min;
    }
    if rule.max.is_some() {
        field.max_length = rule.max;
    }
}

/// The problems an operation can answer besides its own: every one of them, 404 for a path
/// that names a record (one that does not exist, one the caller may not see, and an id that is
/// not one at all), and 412 for one that takes `If-Match` (and 428 when it requires it).
fn add_problems(op: &mut Operation, path: &str) {
    let common: [(&str, &str); 8] = [
        ("400", "The body is not valid JSON"),
        ("401", "Not signed in, or the token is no longer valid"),
        ("403", "Your role or device may not do this"),
        ("413", "The body is too large"),
        ("415", "The body is not application/json"),
        ("422", "The request is not valid; `errors` lists the fields"),
        ("500", "The node failed; nothing was changed"),
        ("503", "The node is stopping or too busy; retry later"),
    ];
    let named = path
        .contains('{')
        .then_some(("404", "No such record, or not one you may see"));
    let if_match = op
        .parameters
        .iter()
        .flatten()
        .find(|p| p.name.eq_ignore_ascii_case("if-match"));
    let versioned = if_match.map(|_| ("412", "Stale If-Match; `current` is the record now"));
    let required = if_match
        .filter(|p| p.required == utoipa::openapi::Required::True)
        .map(|_| ("428", "If-Match missing"));
    for (code, desc) in common
        .into_iter()
        .chain(named)
        .chain(versioned)
        .chain(required)
    {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(desc)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

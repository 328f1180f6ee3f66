//! RFC 9457 problem details, with a closed list of problem types shared by node and client.
//!
//! Clients switch on [`Problem::code`]; `title` and `detail` are for people.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, as a stable code. The `type` URI of a problem is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum ProblemType {
    /// The request's body or parameters failed validation.
    Validation,
    /// The body is not well-formed JSON or does not have the expected shape.
    MalformedBody,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is larger than the node accepts.
    PayloadTooLarge,
    /// No such route, or no such record visible to the caller.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// No valid bearer token, or wrong credentials.
    Unauthenticated,
    /// Signed in, but this role or device may not do this.
    Forbidden,
    /// Too many failed sign-ins; wait before trying again.
    TooManyRequests,
    /// The practitioner already has a live appointment overlapping that time.
    SlotTaken,
    /// The time is not one of the practitioner's bookable slots.
    OutsideSchedule,
    /// The practitioner is absent at that time.
    PractitionerAbsent,
    /// The appointment's current status does not allow this action.
    InvalidTransition,
    /// `If-Match` names a version that is no longer current.
    PreconditionFailed,
    /// The update needs an `If-Match` header.
    PreconditionRequired,
    /// The `Idempotency-Key` was already used for a different request.
    IdempotencyKeyReused,
    /// A patient with the same name and birth date exists; confirm to register anyway.
    PossibleDuplicate,
    /// A record with that unique value (username, card number) already exists.
    Conflict,
    /// The kiosk has not identified this patient (card number and birth date) recently.
    PatientNotIdentified,
    /// Something failed on the node; nothing was changed.
    Internal,
    /// The node is shutting down or overloaded; retry later.
    Unavailable,
    /// Federation: the API key is not one this node gave a peer.
    UnknownApiKey,
    /// Federation: the request is signed by a key this node does not know for that peer.
    UnknownSigner,
    /// Federation: the request's signature does not verify.
    BadSignature,
    /// Federation: the body is not what its `Content-Digest` says (changed after signing).
    DigestMismatch,
    /// Federation: the request was signed outside the accepted time window.
    SignatureExpired,
    /// Federation: the request's nonce was already used.
    ReplayedRequest,
    /// Federation: the peer may not send from this address.
    SourceNotAllowed,
    /// Federation: the peer may not send this type of message.
    MessageTypeNotAllowed,
    /// Federation: the envelope cannot be read (shape, version).
    MalformedEnvelope,
    /// Federation: the envelope is addressed to another node.
    WrongDestination,
    /// Federation: the sealed payload or its header was altered (AES-GCM tag mismatch).
    EnvelopeTagMismatch,
    /// Federation: the opened payload does not match its checksum.
    ChecksumMismatch,
    /// Federation: the payload opened but is not a message of its type.
    UnreadablePayload,
}

impl ProblemType {
    /// The stable `type` URI of this problem.
    pub fn uri(self) -> String {
        format!("https://carebridge.example/problems/{}", self.slug())
    }

    /// The kebab-case code, as it appears in `code`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::MalformedBody => "malformed-body",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::TooManyRequests => "too-many-requests",
            Self::SlotTaken => "slot-taken",
            Self::OutsideSchedule => "outside-schedule",
            Self::PractitionerAbsent => "practitioner-absent",
            Self::InvalidTransition => "invalid-transition",
            Self::PreconditionFailed => "precondition-failed",
            Self::PreconditionRequired => "precondition-required",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::PossibleDuplicate => "possible-duplicate",
            Self::Conflict => "conflict",
            Self::PatientNotIdentified => "patient-not-identified",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::UnknownApiKey => "unknown-api-key",
            Self::UnknownSigner => "unknown-signer",
            Self::BadSignature => "bad-signature",
            Self::DigestMismatch => "digest-mismatch",
            Self::SignatureExpired => "signature-expired",
            Self::ReplayedRequest => "replayed-request",
            Self::SourceNotAllowed => "source-not-allowed",
            Self::MessageTypeNotAllowed => "message-type-not-allowed",
            Self::MalformedEnvelope => "malformed-envelope",
            Self::WrongDestination => "wrong-destination",
            Self::EnvelopeTagMismatch => "envelope-tag-mismatch",
            Self::ChecksumMismatch => "checksum-mismatch",
            Self::UnreadablePayload => "unreadable-payload",
        }
    }

    /// The HTTP status this problem is answered with.
    pub fn status(self) -> u16 {
        match self {
            Self::Validation | Self::OutsideSchedule | Self::PractitionerAbsent => 422,
            Self::MalformedBody => 400,
            Self::UnsupportedMediaType => 415,
            Self::PayloadTooLarge => 413,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::PatientNotIdentified => 403,
            Self::TooManyRequests => 429,
            Self::SlotTaken
            | Self::InvalidTransition
            | Self::PossibleDuplicate
            | Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::PreconditionRequired => 428,
            Self::IdempotencyKeyReused => 422,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::UnknownApiKey
            | Self::UnknownSigner
            | Self::BadSignature
            | Self::SignatureExpired => 401,
            Self::SourceNotAllowed | Self::MessageTypeNotAllowed => 403,
            Self::ReplayedRequest => 409,
            Self::DigestMismatch
            | Self::MalformedEnvelope
            | Self::EnvelopeTagMismatch
            | Self::ChecksumMismatch => 400,
            Self::WrongDestination => 421,
            Self::UnreadablePayload => 422,
        }
    }

    /// A short, human title; the same for every problem of this type.
    pub fn title(self) -> &'static str {
        match self {
            Self::Validation => "The request is not valid",
            Self::MalformedBody => "The request body could not be read",
            Self::UnsupportedMediaType => "The request body must be application/json",
            Self::PayloadTooLarge => "The request body is too large",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Unauthenticated => "Sign-in required",
            Self::Forbidden => "Not permitted",
            Self::TooManyRequests => "Too many attempts",
            Self::SlotTaken => "That time is already booked",
            Self::OutsideSchedule => "That time is not a bookable slot",
            Self::PractitionerAbsent => "The practitioner is absent at that time",
            Self::InvalidTransition => "The record cannot do that in its current status",
            Self::PreconditionFailed => "The record has changed since you read it",
            Self::PreconditionRequired => "This update needs an If-Match header",
            Self::IdempotencyKeyReused => "That Idempotency-Key was used for another request",
            Self::PossibleDuplicate => "A patient with the same name and birth date exists",
            Self::Conflict => "That value is already in use",
            Self::PatientNotIdentified => "The patient has not identified at this kiosk",
            Self::Internal => "Internal error",
            Self::Unavailable => "The node is unavailable",
            Self::UnknownApiKey => "The API key is not known",
            Self::UnknownSigner => "The signing key is not known for this peer",
            Self::BadSignature => "The request signature does not verify",
            Self::DigestMismatch => "The body does not match its digest",
            Self::SignatureExpired => "The request was signed outside the accepted time window",
            Self::ReplayedRequest => "The request was already received",
            Self::SourceNotAllowed => "The peer may not send from this address",
            Self::MessageTypeNotAllowed => "The peer may not send this type of message",
            Self::MalformedEnvelope => "The envelope cannot be read",
            Self::WrongDestination => "The envelope is addressed to another node",
            Self::EnvelopeTagMismatch => "The sealed payload was altered",
            Self::ChecksumMismatch => "The payload does not match its checksum",
            Self::UnreadablePayload => "The payload is not a message of its type",
        }
    }
}

/// An RFC 9457 problem details body (`application/problem+json`).
///
/// The standard members are `type`, `title`, `status` and `detail`; `code` repeats the type
/// as a short stable code, and the optional extension members carry what the client needs to
/// act on the problem (the allowed actions, the current record, the duplicate candidates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "ts", ts(rename = "type"))]
    pub type_uri: String,
    /// Short human summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub detail: Option<String>,
    /// The stable code clients switch on.
    pub code: ProblemType,
    /// For `invalid-transition`: the actions the record's current status allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub allowed: Option<Vec<String>>,
    /// For `precondition-failed`: the current record (an object); for `possible-duplicate`:
    /// the candidates (a list of patients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    #[cfg_attr(feature = "ts", ts(optional, type = "unknown"))]
    pub current: Option<serde_json::Value>,
    /// For `validation`: which fields are wrong, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub errors: Option<Vec<FieldError>>,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct FieldError {
    /// The field's name as it appears in the request.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem of `code` with its standard title and status, and an optional detail.
    pub fn new(code: ProblemType, detail: impl Into<Option<String>>) -> Self {
        Self {
            type_uri: code.uri(),
            title: code.title().to_owned(),
            status: code.status(),
            detail: detail.into(),
            code,
            allowed: None,
            current: None,
            errors: None,
        }
    }
}

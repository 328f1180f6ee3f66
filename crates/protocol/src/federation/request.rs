//! A signed request from one node to another's inbox, and the signed receipt that answers it.
//!
//! The request carries the peer's API key, an RFC 9530 `Content-Digest` of the body, and an
//! RFC 9421 Ed25519 signature over method, path, authority and the digest, with the time it
//! was made and a single-use nonce. The receipt is the receiver's statement that it stored an
//! envelope, signed with its own key, so the sender can prove delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::digest::{content_digest, verify_content_digest};
use super::signature::{
    SignatureError, SignatureParams, parse_signature, parse_signature_input, sign, signature_base,
    signature_header, signature_input_header, verify,
};

/// The inbox's path on every node.
pub const INBOX_PATH: &str = "/federation/v1/inbox";
/// The header carrying the API key the receiving node gave the sender.
pub const API_KEY_HEADER: &str = "carebridge-api-key";
/// How far a request's `created` may be from the receiver's clock, in seconds.
pub const WINDOW_SECONDS: i64 = 300;
/// The components every inbox request signs, in order.
pub const COVERED: [&str; 4] = ["@method", "@path", "@authority", "content-digest"];
/// The header naming the doctor on whose behalf a peer reads (its id at the reading node).
pub const PRACTITIONER_HEADER: &str = "carebridge-practitioner";
/// The components every federation read (a GET under a grant) signs, in order: the token and
/// the doctor are covered, so a token is honoured only from the node it was granted to, for
/// the doctor it names.
pub const READ_COVERED: [&str; 6] = [
    "@method",
    "@path",
    "@query",
    "@authority",
    "authorization",
    PRACTITIONER_HEADER,
];
const LABEL: &str = "cb";

/// The headers a signed request carries (besides the API key and content type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// The parameters of a new signature over `covered` by `keyid`: Ed25519, created now, with a
/// fresh random nonce.
fn fresh_params(covered: &[&str], keyid: &str, created: DateTime<Utc>) -> SignatureParams {
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    SignatureParams {
        components: covered.iter().map(|c| (*c).to_owned()).collect(),
        created: created.timestamp(),
        keyid: keyid.to_owned(),
        nonce: Some(hex::encode(nonce)),
        alg: Some("ed25519".to_owned()),
    }
}

/// Signs a POST of `body` to `authority` + `path` as `keyid` (the sending node's name).
pub fn sign_request(
    path: &str,
    authority: &str,
    body: &[u8],
    keyid: &str,
    key: &SigningKey,
    created: DateTime<Utc>,
) -> Result<SignedHeaders, SignatureError> {
    let params = fresh_params(&COVERED, keyid, created);
    let digest = content_digest(body);
    let serialized = params.serialize();
    let base = signature_base(&params, &serialized, |c| {
        component(c, "POST", path, authority, &digest)
    })?;
    Ok(SignedHeaders {
        content_digest: digest,
        signature_input: signature_input_header(LABEL, &serialized),
        signature: signature_header(LABEL, &sign(&base, key)),
    })
}

fn component(c: &str, method: &str, path: &str, authority: &str, digest: &str) -> Option<String> {
    match c {
        "@method" => Some(method.to_owned()),
        "@path" => Some(path.to_owned()),
        "@authority" => Some(authority.to_ascii_lowercase()),
        "content-digest" => Some(digest.to_owned()),
        _ => None,
    }
}

/// What a signed federation read covers besides method and authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTarget<'a> {
    /// The path, without the query.
    pub path: &'a str,
    /// The query without its `?` (empty when none).
    pub query: &'a str,
    /// The `Authorization` header's value (`Bearer <token>`).
    pub authorization: &'a str,
    /// The doctor's id at the reading node.
    pub practitioner: &'a str,
}

fn read_component(c: &str, authority: &str, t: &ReadTarget<'_>) -> Option<String> {
    match c {
        "@method" => Some("GET".to_owned()),
        "@path" => Some(t.path.to_owned()),
        // RFC 9421 2.2.7: the query with its leading "?", or "?" alone when there is none.
        "@query" => Some(format!("?{}", t.query)),
        "@authority" => Some(authority.to_ascii_lowercase()),
        "authorization" => Some(t.authorization.to_owned()),
        PRACTITIONER_HEADER => Some(t.practitioner.to_owned()),
        _ => None,
    }
}

/// The signature headers of a federation read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRead {
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// Signs a GET of `target` at `authority` as `keyid` (the reading node's name).
pub fn sign_read(
    target: &ReadTarget<'_>,
    authority: &str,
    keyid: &str,
    key: &SigningKey,
    created: DateTime<Utc>,
) -> Result<SignedRead, SignatureError> {
    let params = fresh_params(&READ_COVERED, keyid, created);
    let serialized = params.serialize();
    let base = signature_base(&params, &serialized, |c| {
        read_component(c, authority, target)
    })?;
    Ok(SignedRead {
        signature_input: signature_input_header(LABEL, &serialized),
        signature: signature_header(LABEL, &sign(&base, key)),
    })
}

/// What is wrong with an inbox request, in the order the receiver checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `Signature-Input` or `Signature` missing or unreadable, or not covering what it must.
    #[error("the request's signature headers are missing or malformed: {0}")]
    Malformed(String),
    /// `created` is outside the window around the receiver's clock.
    #[error("the signature was made at {0}, outside the accepted window of {WINDOW_SECONDS} s")]
    OutsideWindow(DateTime<Utc>),
    /// The body is not what `Content-Digest` says (changed after signing).
    #[error("the body does not match its Content-Digest: {0}")]
    Digest(String),
    /// The signature does not verify with the peer's key.
    #[error("the signature does not verify with the peer's key")]
    BadSignature,
}

/// A request's signature parameters, read before the signer is known (its `keyid` names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSignature {
    /// The parameters.
    pub params: SignatureParams,
    serialized: String,
    signature: String,
}

impl ReadSignature {
    /// Reads `Signature-Input` and `Signature`.
    pub fn read(
        signature_input: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, RequestError> {
        Self::read_covering(signature_input, signature, &COVERED)
    }

    /// Reads the signature of a federation read ([`READ_COVERED`]).
    pub fn read_of_read(
        signature_input: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, RequestError> {
        Self::read_covering(signature_input, signature, &READ_COVERED)
    }

    fn read_covering(
        signature_input: Option<&str>,
        signature: Option<&str>,
        covered: &[&str],
    ) -> Result<Self, RequestError> {
        let input =
            signature_input.ok_or_else(|| RequestError::Malformed("no Signature-Input".into()))?;
        let sig = signature.ok_or_else(|| RequestError::Malformed("no Signature".into()))?;
        let (label, serialized) =
            parse_signature_input(input).map_err(|e| RequestError::Malformed(e.to_string()))?;
        let params = SignatureParams::parse(serialized)
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        if params.components != covered {
            return Err(RequestError::Malformed(format!(
                "the signature must cover {covered:?}"
            )));
        }
        if params
            .nonce
            .as_deref()
            .is_none_or(|n| n.is_empty() || n.len() > 128)
        {
            return Err(RequestError::Malformed("the signature has no nonce".into()));
        }
        if params.alg.as_deref().is_some_and(|a| a != "ed25519") {
            return Err(RequestError::Malformed(
                "the algorithm must be ed25519".into(),
            ));
        }
        let signature = parse_signature(sig, label)
            .map_err(|e| RequestError::Malformed(e.to_string()))?
            .to_owned();
        Ok(Self {
            params,
            serialized: serialized.to_owned(),
            signature,
        })
    }

    /// The nonce (present: [`Self::read`] checks it).
    pub fn nonce(&self) -> &str {
        self.params.nonce.as_deref().unwrap_or_default()
    }

    /// Checks time window, digest and signature, in that order.
    pub fn verify(
        &self,
        path: &str,
        authority: &str,
        content_digest_header: Option<&str>,
        body: &[u8],
        key: &VerifyingKey,
        now: DateTime<Utc>,
    ) -> Result<(), RequestError> {
        let created = DateTime::from_timestamp(self.params.created, 0)
            .ok_or(RequestError::OutsideWindow(DateTime::UNIX_EPOCH))?;
        if (now - created).num_seconds().abs() > WINDOW_SECONDS {
            return Err(RequestError::OutsideWindow(created));
        }
        let digest = content_digest_header
            .ok_or_else(|| RequestError::Digest("no Content-Digest".into()))?;
        verify_content_digest(digest, body).map_err(|e| RequestError::Digest(e.to_string()))?;
        let base = signature_base(&self.params, &self.serialized, |c| {
            component(c, "POST", path, authority, digest)
        })
        .map_err(|_| RequestError::BadSignature)?;
        verify(&base, &self.signature, key).map_err(|_| RequestError::BadSignature)
    }

    /// Checks a federation read's time window and signature.
    pub fn verify_read(
        &self,
        target: &ReadTarget<'_>,
        authority: &str,
        key: &VerifyingKey,
        now: DateTime<Utc>,
    ) -> Result<(), RequestError> {
        let created = DateTime::from_timestamp(self.params.created, 0)
            .ok_or(RequestError::OutsideWindow(DateTime::UNIX_EPOCH))?;
        if (now - created).num_seconds().abs() > WINDOW_SECONDS {
            return Err(RequestError::OutsideWindow(created));
        }
        let base = signature_base(&self.params, &self.serialized, |c| {
            read_component(c, authority, target)
        })
        .map_err(|_| RequestError::BadSignature)?;
        verify(&base, &self.signature, key).map_err(|_| RequestError::BadSignature)
    }
}

/// The receiver's signed statement that it stored an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// The envelope's id.
    #[schema(value_type = String, format = Uuid)]
    pub envelope_id: uuid::Uuid,
    /// The receiving node.
    pub receiver: String,
    /// The sending node.
    pub sender: String,
    /// The name the payload is stored under (`<type>-<source>-<timestamp>`).
    pub stored_as: String,
    /// When it was first stored.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: DateTime<Utc>,
    /// The receiver's Ed25519 signature over the fields above, base64.
    pub signature: String,
}

impl Receipt {
    fn statement(&self) -> Vec<u8> {
        format!(
            "carebridge-receipt-v1\n{}\n{}\n{}\n{}\n{}",
            self.envelope_id,
            self.receiver,
            self.sender,
            self.stored_as,
            self.received_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        )
        .into_bytes()
    }

    /// Makes and signs a receipt.
    pub fn sign(
        envelope_id: uuid::Uuid,
        receiver: &str,
        sender: &str,
        stored_as: &str,
        received_at: DateTime<Utc>,
        key: &SigningKey,
    ) -> Self {
        let mut r = Self {
            envelope_id,
            receiver: receiver.to_owned(),
            sender: sender.to_owned(),
            stored_as: stored_as.to_owned(),
            received_at,
            signature: String::new(),
        };
        r.signature = STANDARD.encode(key.sign(&r.statement()).to_bytes());
        r
    }

    /// Whether the receipt is `receiver`'s (key `key`) for envelope `envelope_id`.
    pub fn verify(&self, envelope_id: uuid::Uuid, receiver: &str, key: &VerifyingKey) -> bool {
        if self.envelope_id != envelope_id || self.receiver != receiver {
            return false;
        }
        let Ok(raw) = STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&raw) else {
            return false;
        };
        key.verify(&self.statement(), &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW, 0).unwrap()
    }

    #[test]
    fn a_signed_read_binds_its_token_doctor_and_query() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let other = SigningKey::from_bytes(&[6; 32]);
        let target = ReadTarget {
            path: "/federation/v1/fhir/DiagnosticReport",
            query: "_count=20",
            authorization: "Bearer tok",
            practitioner: "doctor-1",
        };
        let h = sign_read(&target, "a.example:8443", "b.example", &key, now()).unwrap();
        let read =
            ReadSignature::read_of_read(Some(&h.signature_input), Some(&h.signature)).unwrap();
        assert!(
            ReadSignature::read(Some(&h.signature_input), Some(&h.signature)).is_err(),
            "an inbox request must cover the digest"
        );
        let verify = |t: &ReadTarget<'_>, k: &SigningKey, at: DateTime<Utc>| {
            read.verify_read(t, "A.example:8443", &k.verifying_key(), at)
        };
        assert_eq!(verify(&target, &key, now()), Ok(()));
        assert_eq!(
            verify(&target, &other, now()),
            Err(RequestError::BadSignature),
            "another node's key"
        );
        for changed in [
            ReadTarget {
                practitioner: "doctor-2",
                ..target
            },
            ReadTarget {
                authorization: "Bearer other",
                ..target
            },
            ReadTarget {
                query: "_count=2000",
                ..target
            },
            ReadTarget {
                path: "/federation/v1/fhir/Appointment",
                ..target
            },
        ] {
            assert_eq!(
                verify(&changed, &key, now()),
                Err(RequestError::BadSignature),
                "{changed:?}"
            );
        }
        assert!(matches!(
            verify(
                &target,
                &key,
                now() + chrono::Duration::seconds(WINDOW_SECONDS + 1)
            ),
            Err(RequestError::OutsideWindow(_))
        ));
    }

    #[test]
    fn a_signed_request_verifies_and_every_change_is_caught() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let body = br#"{"envelope":1}"#;
        let h = sign_request(
            INBOX_PATH,
            "insurer.example:8443",
            body,
            "st-marys.example",
            &key,
            now(),
        )
        .unwrap();
        let read = ReadSignature::read(Some(&h.signature_input), Some(&h.signature)).unwrap();
        assert_eq!(read.params.keyid, "st-marys.example");
        let ok = |path: &str, authority: &str, digest: &str, body: &[u8], at: DateTime<Utc>| {
            read.verify(
                path,
                authority,
                Some(digest),
                body,
                &key.verifying_key(),
                at,
            )
        };
        assert_eq!(
            ok(
                INBOX_PATH,
                "insurer.example:8443",
                &h.content_digest,
                body,
                now()
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                INBOX_PATH,
                "INSURER.example:8443",
                &h.content_digest,
                body,
                now()
            ),
            Ok(()),
            "the authority is compared in lower case"
        );
        assert!(matches!(
            ok(
                INBOX_PATH,
                "insurer.example:8443",
                &h.content_digest,
                b"{}",
                now()
            ),
            Err(RequestError::Digest(_))
        ));
        let other_digest = content_digest(b"{}");
        assert_eq!(
            ok(
                INBOX_PATH,
                "insurer.example:8443",
                &other_digest,
                b"{}",
                now()
            ),
            Err(RequestError::BadSignature),
            "a new body with its own digest breaks the signature"
        );
        assert_eq!(
            ok(
                "/other",
                "insurer.example:8443",
                &h.content_digest,
                body,
                now()
            ),
            Err(RequestError::BadSignature)
        );
        let late = now() + chrono::Duration::seconds(WINDOW_SECONDS + 1);
        assert!(matches!(
            ok(
                INBOX_PATH,
                "insurer.example:8443",
                &h.content_digest,
                body,
                late
            ),
            Err(RequestError::OutsideWindow(_))
        ));
        let stranger = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            read.verify(
                INBOX_PATH,
                "insurer.example:8443",
                Some(&h.content_digest),
                body,
                &stranger.verifying_key(),
                now()
            ),
            Err(RequestError::BadSignature)
        );
        let again = sign_request(
            INBOX_PATH,
            "insurer.example:8443",
            body,
            "st-marys.example",
            &key,
            now(),
        )
        .unwrap();
        assert_ne!(
            ReadSignature::read(Some(&again.signature_input), Some(&again.signature))
                .unwrap()
                .nonce(),
            read.nonce(),
            "every request has its own nonce"
        );
    }

    #[test]
    fn signature_headers_that_cover_less_are_refused() {
        let params = SignatureParams {
            components: vec!["@method".into()],
            created: NOW,
            keyid: "x.example".into(),
            nonce: Some("n".into()),
            alg: None,
        };
        let input = signature_input_header(LABEL, &params.serialize());
        assert!(matches!(
            ReadSignature::read(Some(&input), Some("cb=:AAAA:")),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            ReadSignature::read(None, None),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn a_receipt_verifies_only_as_issued() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let id = uuid::Uuid::now_v7();
        let r = Receipt::sign(
            id,
            "insurer.example",
            "st-marys.example",
            "medical-reports-st-marys.example-20261124T120000Z",
            now(),
            &key,
        );
        assert!(r.verify(id, "insurer.example", &key.verifying_key()));
        assert!(!r.verify(
            uuid::Uuid::now_v7(),
            "insurer.example",
            &key.verifying_key()
        ));
        assert!(!r.verify(id, "other.example", &key.verifying_key()));
        let mut forged = r.clone();
        forged.stored_as = "elsewhere".into();
        assert!(!forged.verify(id, "insurer.example", &key.verifying_key()));
    }
}

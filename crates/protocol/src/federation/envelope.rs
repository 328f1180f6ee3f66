//! The envelope a node sends a peer: a clear header (version, type, source, destination, id,
//! created-at, nonce) and the payload sealed with AES-256-GCM under a key only the two nodes
//! can derive — HKDF-SHA256 over their X25519 shared secret, bound to the ordered pair of
//! node names — with the header as associated data, plus a SHA-256 checksum of the
//! plaintext. Opening checks all of it; bad input of any shape is an error, never a panic.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use x25519_dalek::{PublicKey, StaticSecret};

/// The envelope format this code writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// The largest envelope a node reads (before parsing): sealed reports stay far below it.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MessageType {
    /// Medical reports, hospital → insurer.
    MedicalReports,
    /// An update from an insurer's admin to a hospital's staff.
    AdminUpdate,
    /// A hospital's acknowledgement of an admin update.
    AdminUpdateAck,
    /// A doctor asks to read a patient's record at the patient's home hospital.
    AccessRequest,
    /// The one-time code the patient gave that doctor.
    AccessApprove,
    /// The home hospital grants access: a sender-constrained reference token.
    AccessGranted,
    /// The home hospital answers an approval that failed, or a patient's refusal.
    AccessDeclined,
    /// A grant ended: revoked by the patient, or expired.
    AccessRevoked,
    /// A patient's record moves here: what it is, before its chunks.
    TransferManifest,
    /// One piece of a moving record.
    TransferChunk,
    /// The record was imported: the sending hospital may mark it transferred.
    TransferConfirmed,
    /// The record did not check out and nothing was imported.
    TransferRefused,
}

impl MessageType {
    /// Every type, in the order of their names' introduction.
    pub const ALL: [Self; 12] = [
        Self::MedicalReports,
        Self::AdminUpdate,
        Self::AdminUpdateAck,
        Self::AccessRequest,
        Self::AccessApprove,
        Self::AccessGranted,
        Self::AccessDeclined,
        Self::AccessRevoked,
        Self::TransferManifest,
        Self::TransferChunk,
        Self::TransferConfirmed,
        Self::TransferRefused,
    ];

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The payload's field that is not kept with the message, if it has one: a secret (a
    /// one-time code, a token), used once, or a moving record's bytes, kept with the transfer.
    /// It is kept neither in the receiver's received payloads nor, once the receiver
    /// acknowledged it, in the sender's outbox.
    pub fn unkept_field(self) -> Option<&'static str> {
        match self {
            Self::AccessApprove => Some("code"),
            Self::AccessGranted => Some("token"),
            Self::TransferChunk => Some("data"),
            _ => None,
        }
    }

    /// The kebab-case name (in stored payload names, peers' allow-lists).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MedicalReports => "medical-reports",
            Self::AdminUpdate => "admin-update",
            Self::AdminUpdateAck => "admin-update-ack",
            Self::AccessRequest => "access-request",
            Self::AccessApprove => "access-approve",
            Self::AccessGranted => "access-granted",
            Self::AccessDeclined => "access-declined",
            Self::AccessRevoked => "access-revoked",
            Self::TransferManifest => "transfer-manifest",
            Self::TransferChunk => "transfer-chunk",
            Self::TransferConfirmed => "transfer-confirmed",
            Self::TransferRefused => "transfer-refused",
        }
    }
}

/// The envelope's clear header; all of it is authenticated as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeHeader {
    /// [`ENVELOPE_VERSION`].
    pub version: u32,
    /// What the payload is.
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// The sending node's name.
    pub source: String,
    /// The receiving node's name.
    pub destination: String,
    /// Unique per envelope: the receiver stores each id once.
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// When it was sealed.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// The AES-GCM nonce, 12 random bytes, base64.
    pub nonce: String,
}

/// A sealed envelope, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The clear, authenticated header.
    pub header: EnvelopeHeader,
    /// The sealed payload (ciphertext and tag), base64.
    pub ciphertext: String,
    /// SHA-256 of the plaintext payload, hex.
    pub checksum: String,
}

/// Why an envelope cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not an envelope: bad JSON, wrong shape, too large, bad base64.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A version this node does not read.
    #[error("envelope version {0} is not supported")]
    Version(u32),
    /// Addressed to another node.
    #[error("the envelope is addressed to {0}")]
    WrongDestination(String),
    /// The AES-GCM tag does not verify: changed in transit, or sealed for another key.
    #[error("the sealed payload or its header was altered (AES-GCM tag mismatch)")]
    TagMismatch,
    /// The payload opened but is not what the sender checksummed.
    #[error("the payload does not match its checksum")]
    ChecksumMismatch,
}

/// The AES-256 key for envelopes from `source` to `destination`: HKDF-SHA256 over the X25519
/// shared secret, with the ordered pair of names as context, so a key for one direction
/// between two nodes is never the key for another pair or the other direction.
fn envelope_key(shared: &[u8; 32], source: &str, destination: &str) -> [u8; 32] {
    let info = format!("carebridge envelope v{ENVELOPE_VERSION}\u{0}{source}\u{0}{destination}");
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit (255 × 32): expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, shared).expand(info.as_bytes(), &mut key);
    key
}

fn associated_data(header: &EnvelopeHeader) -> Result<Vec<u8>, EnvelopeError> {
    // serde_json writes the fields in declaration order: the same bytes on both sides.
    serde_json::to_vec(header).map_err(|e| EnvelopeError::Malformed(e.to_string()))
}

/// What a sender knows when it seals.
#[derive(Debug, Clone)]
pub struct Sealing<'a> {
    /// What the payload is.
    pub message_type: MessageType,
    /// This node's name.
    pub source: &'a str,
    /// The peer's name.
    pub destination: &'a str,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// Seals `payload` for the peer whose X25519 public key is `peer`.
pub fn seal(
    how: &Sealing<'_>,
    payload: &[u8],
    ours: &StaticSecret,
    peer: &PublicKey,
) -> Result<Envelope, EnvelopeError> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let header = EnvelopeHeader {
        version: ENVELOPE_VERSION,
        message_type: how.message_type,
        source: how.source.to_owned(),
        destination: how.destination.to_owned(),
        id: uuid::Uuid::now_v7(),
        created_at: how.created_at,
        nonce: STANDARD.encode(nonce),
    };
    let key = envelope_key(
        ours.diffie_hellman(peer).as_bytes(),
        how.source,
        how.destination,
    );
    let aad = associated_data(&header)?;
    let ciphertext = Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: payload,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::Malformed("the payload could not be sealed".into()))?;
    Ok(Envelope {
        header,
        ciphertext: STANDARD.encode(ciphertext),
        checksum: hex::encode(Sha256::digest(payload)),
    })
}

impl Envelope {
    /// Reads an envelope from the bytes received.
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::Malformed(format!(
                "{} bytes is over the limit of {MAX_ENVELOPE_BYTES}",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// The bytes to send.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        serde_json::to_vec(self).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// Opens an envelope addressed to `this_node`, from the peer whose X25519 public key is
    /// `peer`: version, destination, AES-GCM tag (header included), then the checksum.
    pub fn open(
        &self,
        this_node: &str,
        ours: &StaticSecret,
        peer: &PublicKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let h = &self.header;
        if h.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(h.version));
        }
        if h.destination != this_node {
            return Err(EnvelopeError::WrongDestination(h.destination.clone()));
        }
        let nonce = STANDARD
            .decode(&h.nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or_else(|| {
                EnvelopeError::Malformed("the nonce is not 12 bytes of base64".into())
            })?;
        let ciphertext = STANDARD
            .decode(&self.ciphertext)
            .map_err(|_| EnvelopeError::Malformed("the ciphertext is not base64".into()))?;
        let key = envelope_key(
            ours.diffie_hellman(peer).as_bytes(),
            &h.source,
            &h.destination,
        );
        let aad = associated_data(h)?;
        let plaintext = Aes256Gcm::new(&key.into())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::TagMismatch)?;
        if hex::encode(Sha256::digest(&plaintext)) != self.checksum.to_ascii_lowercase() {
            return Err(EnvelopeError::ChecksumMismatch);
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(seed: u8) -> (StaticSecret, PublicKey) {
        let secret = StaticSecret::from([seed; 32]);
        let public = PublicKey::from(&secret);
        (secret, public)
    }

    fn sealed(payload: &[u8]) -> Envelope {
        let (hospital, _) = keys(1);
        let (_, insurer) = keys(2);
        let how = Sealing {
            message_type: MessageType::MedicalReports,
            source: "st-marys.example",
            destination: "insurer.example",
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        };
        seal(&how, payload, &hospital, &insurer).unwrap()
    }

    #[test]
    fn the_peer_opens_what_was_sealed_for_it_and_nobody_else_does() {
        let env = sealed(b"{\"reports\":[]}");
        let bytes = env.to_bytes().unwrap();
        let received = Envelope::parse(&bytes).unwrap();
        let (insurer, _) = keys(2);
        let (_, hospital) = keys(1);
        assert_eq!(
            received
                .open("insurer.example", &insurer, &hospital)
                .unwrap(),
            b"{\"reports\":[]}"
        );
        let (stranger, _) = keys(3);
        assert_eq!(
            received.open("insurer.example", &stranger, &hospital),
            Err(EnvelopeError::TagMismatch)
        );
        assert_eq!(
            received.open("other.example", &insurer, &hospital),
            Err(EnvelopeError::WrongDestination("insurer.example".into()))
        );
    }

    #[test]
    fn an_altered_header_payload_or_checksum_is_refused() {
        let (insurer, _) = keys(2);
        let (_, hospital) = keys(1);
        let env = sealed(b"payload");
        let mut retyped = env.clone();
        retyped.header.message_type = MessageType::AdminUpdate;
        assert_eq!(
            retyped.open("insurer.example", &insurer, &hospital),
            Err(EnvelopeError::TagMismatch)
        );
        let mut flipped = env.clone();
        let mut ct = STANDARD.decode(&flipped.ciphertext).unwrap();
        ct[0] ^= 1;
        flipped.ciphertext = STANDARD.encode(ct);
        assert_eq!(
            flipped.open("insurer.example", &insurer, &hospital),
            Err(EnvelopeError::TagMismatch)
        );
        let mut wrong_sum = env.clone();
        wrong_sum.checksum = hex::encode(Sha256::digest(b"other"));
        assert_eq!(
            wrong_sum.open("insurer.example", &insurer, &hospital),
            Err(EnvelopeError::ChecksumMismatch)
        );
        let mut future = env;
        future.header.version = 2;
        assert_eq!(
            future.open("insurer.example", &insurer, &hospital),
            Err(EnvelopeError::Version(2))
        );
    }

    #[test]
    fn the_key_depends_on_the_direction() {
        let shared = [9u8; 32];
        assert_ne!(
            envelope_key(&shared, "a", "b"),
            envelope_key(&shared, "b", "a")
        );
    }

    proptest! {
        /// Whatever arrives, parsing and opening answer with a value or an error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (insurer, _) = keys(2);
            let (_, hospital) = keys(1);
            if let Ok(env) = Envelope::parse(&bytes) {
                let _ = env.open("insurer.example", &insurer, &hospital);
            }
        }

        /// A real envelope with any one field replaced by arbitrary text still never panics.
        #[test]
        fn mangled_fields_never_panic(field in 0usize..5, text in ".{0,64}") {
            let (insurer, _) = keys(2);
            let (_, hospital) = keys(1);
            let mut env = sealed(b"payload");
            match field {
                0 => env.header.nonce = text,
                1 => env.ciphertext = text,
                2 => env.checksum = text,
                3 => env.header.destination = text,
                _ => env.header.source = text,
            }
            let _ = env.open("insurer.example", &insurer, &hospital);
            let bytes = env.to_bytes().unwrap();
            if let Ok(again) = Envelope::parse(&bytes) {
                let _ = again.open("insurer.example", &insurer, &hospital);
            }
        }
    }
}

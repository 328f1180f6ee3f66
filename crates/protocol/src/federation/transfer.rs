//! Moving a patient's record to another hospital: what the two nodes send each other, and the
//! pure rules both ends share (how the record is cut into chunks and checked whole again).
//!
//! The home hospital (A) builds the record as one FHIR `collection` Bundle, cuts it into
//! chunks and sends a `transfer-manifest` (the Bundle's SHA-256, its length, and each chunk's
//! SHA-256) and one `transfer-chunk` per piece, each its own sealed envelope in A's outbox, so
//! that a node stopped between chunks resumes where it was and a chunk delivered twice is
//! stored once. The new hospital (B) checks every chunk against the manifest as it arrives,
//! assembles and checks the whole, imports it in one transaction under a new global id, and
//! answers `transfer-confirmed` with the Bundle's hash; a record that does not check out is
//! answered `transfer-refused` and nothing is imported. A marks the record transferred only on
//! the confirmation, and never deletes it then: that is a separate, audited step after the
//! retention period.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::problem::FieldError;
use crate::text::{Checks, Clean, DISPLAY_NAME_MAX, PEER_NAME_MAX, REASON_MAX};

/// A chunk's length, but the last one's: well inside an envelope once base64 and sealed.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The most chunks one record may have: a record of at most 256 MiB, which B assembles and
/// imports in one transaction (imaging stays in the PACS; letters and scans are at most 20 MiB
/// each).
pub const MAX_CHUNKS: usize = 512;

/// `transfer-manifest`, A → B: what the record is, before its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferManifest {
    /// The transfer, named by A.
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: uuid::Uuid,
    /// The patient's global id at A (`uuid@node`).
    pub patient_global_id: String,
    /// A, as people read it.
    pub organisation: String,
    /// Who authorised it at A's front desk.
    pub authorised_by: String,
    /// The Bundle's length in bytes.
    pub bytes: u64,
    /// The Bundle's SHA-256, lowercase hex.
    pub sha256: String,
    /// Each chunk's SHA-256, lowercase hex, in order.
    pub chunks: Vec<String>,
}

/// `transfer-chunk`, A → B: one piece of the Bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferChunk {
    /// The transfer.
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: uuid::Uuid,
    /// Its place, from 0.
    pub index: u32,
    /// Its bytes, base64.
    pub data: String,
}

/// `transfer-confirmed`, B → A: the record is imported at B, signed by B's node key so that A
/// keeps B's own statement of it (not only that some envelope arrived).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferConfirmed {
    /// The transfer.
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: uuid::Uuid,
    /// The SHA-256 of the Bundle B imported: A's own, or A does not take it as confirmed.
    pub sha256: String,
    /// The patient's global id at B.
    pub new_global_id: String,
    /// B, as people read it.
    pub organisation: String,
    /// B's Ed25519 signature over the transfer, the hash, the new id and the two nodes, base64.
    pub signature: String,
}

impl TransferConfirmed {
    fn statement(&self, from: &str, to: &str) -> Vec<u8> {
        format!(
            "carebridge-transfer-confirmed-v1\n{}\n{}\n{}\n{from}\n{to}",
            self.transfer_id, self.sha256, self.new_global_id
        )
        .into_bytes()
    }

    /// B (`from`, key `key`) confirms to A (`to`) that it imported the record hashed `sha256`
    /// as `new_global_id`.
    pub fn sign(
        transfer_id: uuid::Uuid,
        sha256: &str,
        new_global_id: &str,
        organisation: &str,
        (from, to): (&str, &str),
        key: &ed25519_dalek::SigningKey,
    ) -> Self {
        use ed25519_dalek::Signer as _;
        let mut c = Self {
            transfer_id,
            sha256: sha256.to_owned(),
            new_global_id: new_global_id.to_owned(),
            organisation: organisation.to_owned(),
            signature: String::new(),
        };
        c.signature = BASE64.encode(key.sign(&c.statement(from, to)).to_bytes());
        c
    }

    /// Whether `from` (key `key`) signed this confirmation for `to`.
    pub fn verify(&self, (from, to): (&str, &str), key: &ed25519_dalek::VerifyingKey) -> bool {
        let Ok(raw) = BASE64.decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&raw) else {
            return false;
        };
        key.verify_strict(&self.statement(from, to), &sig).is_ok()
    }
}

/// `transfer-refused`, B → A: the record did not check out, and nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRefused {
    /// The transfer.
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: uuid::Uuid,
    /// Why, for A's staff.
    pub reason: String,
}

/// The document the front desk saw to check the patient's identity before a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum IdentityDocument {
    /// A passport.
    Passport,
    /// A national identity card.
    IdentityCard,
    /// A driving licence.
    DrivingLicence,
    /// A residence permit.
    ResidencePermit,
}

impl IdentityDocument {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passport => "passport",
            Self::IdentityCard => "identity-card",
            Self::DrivingLicence => "driving-licence",
            Self::ResidencePermit => "residence-permit",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Passport,
            Self::IdentityCard,
            Self::DrivingLicence,
            Self::ResidencePermit,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The front desk's request to move a patient's record to another hospital (a peer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct NewTransfer {
    /// The hospital's node name.
    pub peer: String,
    /// What the front desk checked the patient's identity with.
    pub identity_document: IdentityDocument,
}

/// Where a transfer stands, at the hospital that sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum TransferState {
    /// Its parts are on their way; the record is unchanged here.
    Sending,
    /// The other hospital imported it: the record here is read-only and points there.
    Confirmed,
    /// The other hospital refused it; nothing changed here.
    Refused,
}

impl TransferState {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Confirmed => "confirmed",
            Self::Refused => "refused",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Sending, Self::Confirmed, Self::Refused]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// A patient's transfer to another hospital, as the sending hospital's front desk sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PatientTransfer {
    /// The transfer.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The patient here.
    pub patient_id: crate::PatientId,
    /// The receiving hospital's node name.
    pub peer: String,
    /// The receiving hospital as people read it, once it confirmed.
    pub organisation: Option<String>,
    /// Where it stands.
    pub state: TransferState,
    /// How many parts the record was cut into.
    pub parts: u32,
    /// How many the other hospital has acknowledged.
    pub parts_delivered: u32,
    /// The record's size in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes: u64,
    /// The record's SHA-256, lowercase hex: what the confirmation must name.
    pub sha256: String,
    /// What the front desk checked the patient's identity with.
    pub identity_document: IdentityDocument,
    /// Who authorised it.
    pub authorised_by: String,
    /// The patient's global id at the other hospital, once confirmed.
    pub new_global_id: Option<String>,
    /// Why the other hospital refused it.
    pub reason: Option<String>,
    /// When it was authorised.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Where a transferred patient's record now lives: on every read of the old record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct TransferredTo {
    /// The patient's global id at the other hospital.
    pub global_id: String,
    /// That hospital's node name.
    pub peer: String,
    /// That hospital as people read it.
    pub organisation: String,
    /// When it confirmed the import.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = DateTime)]
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A record another hospital transferred here, as this hospital's staff read it: the FHIR
/// Bundle as it arrived (the other hospital's appointments, reports and their PDFs), kept
/// read-only beside the patient's record here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct TransferredRecord {
    /// The transfer.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: uuid::Uuid,
    /// The sending hospital's node name.
    pub peer: String,
    /// The sending hospital as people read it.
    pub organisation: String,
    /// The patient's global id there.
    pub from_global_id: String,
    /// When it was imported here.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    #[schema(value_type = String, format = DateTime)]
    pub imported_at: chrono::DateTime<chrono::Utc>,
    /// The FHIR `collection` Bundle.
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    #[schema(value_type = Object)]
    pub bundle: serde_json::Value,
}

impl Clean for NewTransfer {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("peer", &mut self.peer, PEER_NAME_MAX)
            .finish()
    }
}

impl Clean for TransferManifest {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line(
                "patient_global_id",
                &mut self.patient_global_id,
                2 * PEER_NAME_MAX,
            )
            .line("organisation", &mut self.organisation, DISPLAY_NAME_MAX)
            .line("authorised_by", &mut self.authorised_by, DISPLAY_NAME_MAX)
            .finish()
    }
}

impl Clean for TransferConfirmed {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("new_global_id", &mut self.new_global_id, 2 * PEER_NAME_MAX)
            .line("organisation", &mut self.organisation, DISPLAY_NAME_MAX)
            .finish()
    }
}

impl Clean for TransferRefused {
    fn clean(&mut self) -> Result<(), Vec<FieldError>> {
        Checks::default()
            .line("reason", &mut self.reason, REASON_MAX)
            .finish()
    }
}

/// Why a chunk or a whole record does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The manifest names no chunks, too many, or lengths that do not add up.
    #[error("the manifest is not consistent: {0}")]
    Manifest(String),
    /// A chunk's place is past the manifest's last.
    #[error("chunk {index} is past the manifest's {count} chunks")]
    Index {
        /// The chunk's place.
        index: u32,
        /// How many the manifest names.
        count: usize,
    },
    /// A chunk's data is not base64.
    #[error("chunk {0} is not base64")]
    Encoding(u32),
    /// A chunk's hash is not the manifest's.
    #[error("chunk {0} does not match the manifest's hash")]
    ChunkHash(u32),
    /// A chunk is missing.
    #[error("chunk {0} has not arrived")]
    Missing(u32),
    /// The assembled record's hash or length is not the manifest's.
    #[error("the assembled record does not match the manifest")]
    Whole,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Cuts `bundle` into chunks of [`CHUNK_BYTES`]: the manifest's hashes and length, and the
/// chunks, each ready to send.
pub fn cut(
    transfer_id: uuid::Uuid,
    patient_global_id: &str,
    organisation: &str,
    authorised_by: &str,
    bundle: &[u8],
) -> Result<(TransferManifest, Vec<TransferChunk>), TransferError> {
    let pieces: Vec<&[u8]> = bundle.chunks(CHUNK_BYTES).collect();
    if pieces.is_empty() || pieces.len() > MAX_CHUNKS {
        return Err(TransferError::Manifest(format!(
            "a record is 1 to {MAX_CHUNKS} chunks, not {}",
            pieces.len()
        )));
    }
    let manifest = TransferManifest {
        transfer_id,
        patient_global_id: patient_global_id.to_owned(),
        organisation: organisation.to_owned(),
        authorised_by: authorised_by.to_owned(),
        bytes: bundle.len() as u64,
        sha256: sha256_hex(bundle),
        chunks: pieces.iter().map(|p| sha256_hex(p)).collect(),
    };
    let chunks = pieces
        .iter()
        .zip(0u32..)
        .map(|(p, index)| TransferChunk {
            transfer_id,
            index,
            data: BASE64.encode(p),
        })
        .collect();
    Ok((manifest, chunks))
}

impl TransferManifest {
    /// Checks what a receiver can check before any chunk: a sane count and length.
    pub fn check(&self) -> Result<(), TransferError> {
        let n = self.chunks.len();
        if n == 0 || n > MAX_CHUNKS {
            return Err(TransferError::Manifest(format!(
                "a record is 1 to {MAX_CHUNKS} chunks, not {n}"
            )));
        }
        let most = n as u64 * CHUNK_BYTES as u64;
        let least = (n as u64 - 1) * CHUNK_BYTES as u64 + 1;
        if !(least..=most).contains(&self.bytes) {
            return Err(TransferError::Manifest(format!(
                "{} bytes cannot be {n} chunks of at most {CHUNK_BYTES}",
                self.bytes
            )));
        }
        let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(&self.sha256) || !self.chunks.iter().all(|h| hex64(h)) {
            return Err(TransferError::Manifest("hashes are 64 hex digits".into()));
        }
        Ok(())
    }

    /// The chunk's bytes, if it is the one the manifest names at its place.
    pub fn check_chunk(&self, chunk: &TransferChunk) -> Result<Vec<u8>, TransferError> {
        let expected = self
            .chunks
            .get(chunk.index as usize)
            .ok_or(TransferError::Index {
                index: chunk.index,
                count: self.chunks.len(),
            })?;
        let bytes = BASE64
            .decode(&chunk.data)
            .map_err(|_| TransferError::Encoding(chunk.index))?;
        if bytes.len() > CHUNK_BYTES || sha256_hex(&bytes) != *expected {
            return Err(TransferError::ChunkHash(chunk.index));
        }
        Ok(bytes)
    }

    /// Puts the chunks (in order, as `check_chunk` returned them) together and checks the whole.
    pub fn assemble(&self, chunks: &[Option<Vec<u8>>]) -> Result<Vec<u8>, TransferError> {
        let mut whole = Vec::with_capacity(usize::try_from(self.bytes).unwrap_or(0));
        for (i, expected) in self.chunks.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let bytes = chunks
                .get(i)
                .and_then(Option::as_ref)
                .ok_or(TransferError::Missing(index))?;
            if sha256_hex(bytes) != *expected {
                return Err(TransferError::ChunkHash(index));
            }
            whole.extend_from_slice(bytes);
        }
        if whole.len() as u64 != self.bytes || sha256_hex(&whole) != self.sha256 {
            return Err(TransferError::Whole);
        }
        Ok(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_record_cut_into_chunks_assembles_to_itself() {
        for len in [
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            3 * CHUNK_BYTES + 7,
        ] {
            let bundle = record(len);
            let id = uuid::Uuid::now_v7();
            let (m, chunks) = cut(id, "p@a", "A", "reception", &bundle).unwrap();
            m.check().unwrap();
            assert_eq!(m.chunks.len(), len.div_ceil(CHUNK_BYTES), "{len}");
            assert_eq!(chunks.len(), m.chunks.len());
            let pieces: Vec<_> = chunks
                .iter()
                .map(|c| Some(m.check_chunk(c).unwrap()))
                .collect();
            assert_eq!(m.assemble(&pieces).unwrap(), bundle, "{len}");
        }
    }

    #[test]
    fn a_flipped_byte_a_missing_or_misplaced_chunk_is_refused() {
        let bundle = record(2 * CHUNK_BYTES + 10);
        let (m, chunks) = cut(uuid::Uuid::nil(), "p@a", "A", "r", &bundle).unwrap();
        let mut bytes = BASE64.decode(&chunks[1].data).unwrap();
        bytes[100] ^= 1;
        let flipped = TransferChunk {
            data: BASE64.encode(&bytes),
            ..chunks[1].clone()
        };
        assert_eq!(m.check_chunk(&flipped), Err(TransferError::ChunkHash(1)));
        let misplaced = TransferChunk {
            index: 0,
            ..chunks[1].clone()
        };
        assert_eq!(m.check_chunk(&misplaced), Err(TransferError::ChunkHash(0)));
        let past = TransferChunk {
            index: 3,
            ..chunks[1].clone()
        };
        assert_eq!(
            m.check_chunk(&past),
            Err(TransferError::Index { index: 3, count: 3 })
        );
        let garbled = TransferChunk {
            data: "not base64!".into(),
            ..chunks[1].clone()
        };
        assert_eq!(m.check_chunk(&garbled), Err(TransferError::Encoding(1)));
        let mut pieces: Vec<_> = chunks
            .iter()
            .map(|c| Some(m.check_chunk(c).unwrap()))
            .collect();
        pieces[2] = None;
        assert_eq!(m.assemble(&pieces), Err(TransferError::Missing(2)));
        pieces[2] = Some(bytes);
        assert_eq!(m.assemble(&pieces), Err(TransferError::ChunkHash(2)));
    }

    #[test]
    fn a_confirmation_verifies_only_as_signed_by_its_sender_for_its_receiver() {
        let b = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let c = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let id = uuid::Uuid::nil();
        let ok = TransferConfirmed::sign(id, &"ab".repeat(32), "p@b", "B", ("b", "a"), &b);
        assert!(ok.verify(("b", "a"), &b.verifying_key()));
        assert!(!ok.verify(("b", "a"), &c.verifying_key()), "another key");
        assert!(!ok.verify(("c", "a"), &b.verifying_key()), "another sender");
        assert!(
            !ok.verify(("b", "x"), &b.verifying_key()),
            "another receiver"
        );
        for changed in [
            TransferConfirmed {
                sha256: "cd".repeat(32),
                ..ok.clone()
            },
            TransferConfirmed {
                new_global_id: "q@b".into(),
                ..ok.clone()
            },
            TransferConfirmed {
                transfer_id: uuid::Uuid::max(),
                ..ok.clone()
            },
            TransferConfirmed {
                signature: "not base64!".into(),
                ..ok.clone()
            },
        ] {
            assert!(
                !changed.verify(("b", "a"), &b.verifying_key()),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn a_manifest_whose_numbers_do_not_add_up_is_refused() {
        let (m, _) = cut(uuid::Uuid::nil(), "p@a", "A", "r", &record(CHUNK_BYTES + 1)).unwrap();
        for bad in [
            TransferManifest {
                bytes: CHUNK_BYTES as u64,
                ..m.clone()
            },
            TransferManifest {
                bytes: 2 * CHUNK_BYTES as u64 + 1,
                ..m.clone()
            },
            TransferManifest {
                chunks: Vec::new(),
                ..m.clone()
            },
            TransferManifest {
                sha256: "xyz".into(),
                ..m.clone()
            },
        ] {
            assert!(
                matches!(bad.check(), Err(TransferError::Manifest(_))),
                "{bad:?}"
            );
        }
    }
}

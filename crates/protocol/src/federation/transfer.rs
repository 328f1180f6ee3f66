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

/// A chunk's length, but the last one's: well inside an envelope once base64 and sealed.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The most chunks one record may have (a record of at most 2 GiB).
pub const MAX_CHUNKS: usize = 4096;

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

/// `transfer-confirmed`, B → A: the record is imported at B.
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

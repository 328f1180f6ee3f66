//! Signed checkpoints of the audit chain's head, and the check of a chain against them.
//!
//! A hash chain alone cannot show that entries were cut off its end, or that someone holding
//! the database key rewrote it from some entry on and recomputed every later hash: both leave a
//! valid chain. So the node signs, at intervals and when it stops, "entry `seq` has hash
//! `hash`" with its Ed25519 key, keeps the checkpoints in their own table, and records each one
//! in the chain itself (the entry right after the head it signed, action
//! [`CHECKPOINT_ACTION`], entity `audit-checkpoint/<number>`). The chain and the checkpoints
//! then vouch for each other: a cut tail loses entries a checkpoint names, a rewrite changes a
//! hash a checkpoint signed, and a deleted checkpoint is named by the chain's entry for it.
//! Copies exported off the machine (`carebridge-node audit checkpoint --export`) are checked
//! the same way and cannot be reached by someone who rewrites both on the node (December 2026).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};

use super::{AuditEntry, ChainError, ChainVerifier};

/// The action of the chain entry recording a checkpoint.
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";

/// The entity prefix of the chain entry recording a checkpoint: `audit-checkpoint/<number>`.
pub const CHECKPOINT_ENTITY: &str = "audit-checkpoint/";

/// The node's signed statement that its audit chain held entry `seq` with hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    /// Position among the node's checkpoints, from 1, without gaps.
    pub number: i64,
    /// The audit entry signed for (the chain's head when the checkpoint was made).
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When the node signed it (to the millisecond).
    pub signed_at: DateTime<Utc>,
    /// Ed25519 signature (base64) over [`AuditCheckpoint::signed_text`].
    pub signature: String,
}

impl AuditCheckpoint {
    /// Signs checkpoint `number` of entry `seq` (hash `hash`) at `signed_at` with `key`.
    pub fn sign(
        number: i64,
        seq: i64,
        hash: &str,
        signed_at: DateTime<Utc>,
        key: &ed25519_dalek::SigningKey,
    ) -> Self {
        let signed_at = chrono::SubsecRound::trunc_subsecs(signed_at, 3);
        let text = signed_text(number, seq, hash, signed_at);
        Self {
            number,
            seq,
            hash: hash.to_owned(),
            signed_at,
            signature: STANDARD.encode(key.sign(text.as_bytes()).to_bytes()),
        }
    }

    /// What the signature covers: every field, under a label no other signature of the node
    /// uses, so a checkpoint's signature can never pass for anything else's.
    pub fn signed_text(&self) -> String {
        signed_text(self.number, self.seq, &self.hash, self.signed_at)
    }

    /// Whether `key` made this signature over these fields.
    pub fn verifies_with(&self, key: &ed25519_dalek::VerifyingKey) -> bool {
        let Ok(bytes) = STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(self.signed_text().as_bytes(), &sig).is_ok()
    }

    /// The entity of the chain entry recording this checkpoint.
    pub fn entity(&self) -> String {
        format!("{CHECKPOINT_ENTITY}{}", self.number)
    }
}

fn signed_text(number: i64, seq: i64, hash: &str, signed_at: DateTime<Utc>) -> String {
    format!(
        "carebridge audit checkpoint v1\n{number}\n{seq}\n{hash}\n{}",
        signed_at.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// Where a checkpoint being checked came from, for the message naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The node's own table.
    OnNode,
    /// A copy exported earlier and kept elsewhere.
    Exported,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::OnNode => "",
            Self::Exported => " (exported copy)",
        })
    }
}

/// Why an audit trail does not verify against its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    /// The chain itself is broken.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A checkpoint's signature is not the node's.
    #[error("audit checkpoint {number}{held} is not signed by this node's key (forged or altered)")]
    BadSignature {
        /// The checkpoint.
        number: i64,
        /// Where it was held.
        held: Held,
    },
    /// A checkpoint the chain or the numbering says exists is not in the table.
    #[error("audit checkpoint {number} is missing (deleted){}", recorded_in.map(|s| format!(": audit entry {s} records that it was made")).unwrap_or_default())]
    MissingCheckpoint {
        /// The missing checkpoint's number.
        number: i64,
        /// The chain entry that records it, if any.
        recorded_in: Option<i64>,
    },
    /// The chain ends before an entry a checkpoint vouches for.
    #[error(
        "the audit trail ends at entry {last}, but checkpoint {number}{held} signed {signed_at} vouches for entry {seq} and the entry recording it: entries from {} on were removed",
        last + 1
    )]
    TailCut {
        /// The checkpoint.
        number: i64,
        /// Where it was held.
        held: Held,
        /// The entry it signed for.
        seq: i64,
        /// When it was signed.
        signed_at: DateTime<Utc>,
        /// The chain's last entry.
        last: i64,
    },
    /// The chain's entry differs from the one a checkpoint signed.
    #[error(
        "audit entry {seq} is not the one checkpoint {number}{held} signed {signed_at} vouches for: the chain was rewritten at or before entry {seq}"
    )]
    Rewritten {
        /// The checkpoint.
        number: i64,
        /// Where it was held.
        held: Held,
        /// The entry it signed for.
        seq: i64,
        /// When it was signed.
        signed_at: DateTime<Utc>,
    },
    /// The entry after a checkpoint's head is not the one recording it.
    #[error(
        "audit entry {seq} should record checkpoint {number}, which signed the entry before it: entries were removed, added or changed there"
    )]
    Unrecorded {
        /// The checkpoint.
        number: i64,
        /// The entry that should record it.
        seq: i64,
    },
}

/// What a trail that verifies holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    /// How many entries.
    pub entries: i64,
    /// The last entry's hash.
    pub head: String,
    /// The newest checkpoint the chain was checked against (of those on the node).
    pub latest: Option<AuditCheckpoint>,
    /// How many checkpoints were checked, the node's and exported ones.
    pub checkpoints: usize,
}

/// Walks a chain, oldest entry first, checking it against the node's checkpoints and any
/// exported copies: each must be signed by the node's key, the chain must hold the entry it
/// signed with the hash it signed, followed by the entry recording it, and every checkpoint the
/// chain records must still exist.
#[derive(Debug)]
pub struct TrailVerifier {
    chain: ChainVerifier,
    /// Every checkpoint to check, by the entry it signed (then number), next first.
    due: Vec<(AuditCheckpoint, Held)>,
    next: usize,
    /// The node's own checkpoint numbers.
    on_node: BTreeSet<i64>,
    latest: Option<AuditCheckpoint>,
    /// The checkpoint (in `due`) whose entry was just seen: the next entry must record it.
    awaiting_record: Option<usize>,
    last_seq: i64,
}

impl TrailVerifier {
    /// Starts a walk, after checking the checkpoints' signatures with `key` and that the
    /// node's own (`on_node`, in order of number) are numbered from 1 without gaps.
    pub fn new(
        on_node: Vec<AuditCheckpoint>,
        exported: Vec<AuditCheckpoint>,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<Self, TrailError> {
        let mut numbers = BTreeSet::new();
        for (expected, cp) in (1..).zip(&on_node) {
            if cp.number != expected {
                return Err(TrailError::MissingCheckpoint {
                    number: expected,
                    recorded_in: None,
                });
            }
            numbers.insert(cp.number);
        }
        let latest = on_node.last().cloned();
        let mut due: Vec<(AuditCheckpoint, Held)> = on_node
            .into_iter()
            .map(|c| (c, Held::OnNode))
            .chain(exported.into_iter().map(|c| (c, Held::Exported)))
            .collect();
        for (cp, held) in &due {
            if !cp.verifies_with(key) {
                return Err(TrailError::BadSignature {
                    number: cp.number,
                    held: *held,
                });
            }
        }
        due.sort_by_key(|(c, _)| (c.seq, c.number));
        Ok(Self {
            chain: ChainVerifier::default(),
            due,
            next: 0,
            on_node: numbers,
            latest,
            awaiting_record: None,
            last_seq: 0,
        })
    }

    /// Checks the next entry of the chain.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), TrailError> {
        self.chain.push(entry)?;
        let r = &entry.record;
        self.last_seq = r.seq;
        let recorded = (r.action == CHECKPOINT_ACTION)
            .then(|| {
                r.entity
                    .strip_prefix(CHECKPOINT_ENTITY)?
                    .parse::<i64>()
                    .ok()
            })
            .flatten();
        if let Some(i) = self.awaiting_record.take()
            && recorded != Some(self.due[i].0.number)
        {
            return Err(TrailError::Unrecorded {
                number: self.due[i].0.number,
                seq: r.seq,
            });
        }
        if let Some(number) = recorded
            && !self.on_node.contains(&number)
        {
            return Err(TrailError::MissingCheckpoint {
                number,
                recorded_in: Some(r.seq),
            });
        }
        while let Some((cp, held)) = self.due.get(self.next) {
            if cp.seq != r.seq {
                break;
            }
            if cp.hash != entry.hash {
                return Err(TrailError::Rewritten {
                    number: cp.number,
                    held: *held,
                    seq: cp.seq,
                    signed_at: cp.signed_at,
                });
            }
            self.awaiting_record = Some(self.next);
            self.next += 1;
        }
        Ok(())
    }

    /// Ends the walk: every checkpoint's entry, and the entry recording it, must have been seen.
    pub fn finish(self) -> Result<Trail, TrailError> {
        let pending = self
            .awaiting_record
            .or((self.next < self.due.len()).then_some(self.next));
        if let Some((cp, held)) = pending.map(|i| &self.due[i]) {
            return Err(TrailError::TailCut {
                number: cp.number,
                held: *held,
                seq: cp.seq,
                signed_at: cp.signed_at,
                last: self.last_seq,
            });
        }
        Ok(Trail {
            entries: self.chain.verified(),
            head: self.chain.head().to_owned(),
            latest: self.latest,
            checkpoints: self.due.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, GENESIS_HASH, Outcome, chain_hash};

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    /// Appends an entry; `checkpoint` makes it the entry recording that checkpoint.
    fn push(chain: &mut Vec<AuditEntry>, checkpoint: Option<i64>) {
        let seq = chain.len() as i64 + 1;
        let record = AuditRecord {
            seq,
            recorded_at: t(seq),
            actor: if checkpoint.is_some() {
                "node"
            } else {
                "staff:1"
            }
            .into(),
            action: if checkpoint.is_some() {
                CHECKPOINT_ACTION
            } else {
                "patient.read"
            }
            .into(),
            entity: checkpoint
                .map_or_else(|| "patient/1".into(), |n| format!("{CHECKPOINT_ENTITY}{n}")),
            outcome: Outcome::Success,
            detail: String::new(),
            source: String::new(),
            prev_hash: chain.last().map_or(GENESIS_HASH.into(), |e| e.hash.clone()),
        };
        let hash = chain_hash(&record);
        chain.push(AuditEntry { record, hash });
    }

    /// Five entries, checkpoint 1 of entry 5 recorded in 6, two entries, checkpoint 2 of
    /// entry 8 recorded in 9, one entry more.
    fn trail() -> (Vec<AuditEntry>, Vec<AuditCheckpoint>) {
        let mut chain = Vec::new();
        let mut cps = Vec::new();
        for (n, before) in [(1, 5), (2, 2)] {
            for _ in 0..before {
                push(&mut chain, None);
            }
            let head = chain.last().unwrap();
            cps.push(AuditCheckpoint::sign(
                n,
                head.record.seq,
                &head.hash,
                t(100 + n),
                &key(),
            ));
            push(&mut chain, Some(n));
        }
        push(&mut chain, None);
        (chain, cps)
    }

    fn walk(
        chain: &[AuditEntry],
        on_node: Vec<AuditCheckpoint>,
        exported: Vec<AuditCheckpoint>,
    ) -> Result<Trail, TrailError> {
        let mut v = TrailVerifier::new(on_node, exported, &key().verifying_key())?;
        for e in chain {
            v.push(e)?;
        }
        v.finish()
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_only_unchanged() {
        let cp = AuditCheckpoint::sign(3, 41, "ab", t(0), &key());
        assert!(cp.verifies_with(&key().verifying_key()));
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(!cp.verifies_with(&other));
        for changed in [
            AuditCheckpoint {
                number: 4,
                ..cp.clone()
            },
            AuditCheckpoint {
                seq: 40,
                ..cp.clone()
            },
            AuditCheckpoint {
                hash: "ac".into(),
                ..cp.clone()
            },
            AuditCheckpoint {
                signed_at: t(1),
                ..cp.clone()
            },
        ] {
            assert!(
                !changed.verifies_with(&key().verifying_key()),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn an_intact_trail_verifies_against_its_checkpoints_and_their_copies() {
        let (chain, cps) = trail();
        let ok = walk(&chain, cps.clone(), cps.clone()).unwrap();
        assert_eq!(ok.entries, 10);
        assert_eq!(ok.latest, Some(cps[1].clone()));
        assert_eq!(ok.checkpoints, 4);
    }

    #[test]
    fn cutting_the_tail_into_a_checkpoint_is_named() {
        let (chain, cps) = trail();
        // Only the unanchored last entry: nothing on the node can tell.
        assert!(walk(&chain[..9], cps.clone(), vec![]).is_ok());
        for keep in [8, 7, 3] {
            assert_eq!(
                walk(&chain[..keep], cps.clone(), vec![]),
                Err(TrailError::TailCut {
                    number: if keep >= 6 { 2 } else { 1 },
                    held: Held::OnNode,
                    seq: if keep >= 6 { 8 } else { 5 },
                    signed_at: t(if keep >= 6 { 102 } else { 101 }),
                    last: keep as i64,
                }),
                "keeping {keep}"
            );
        }
    }

    #[test]
    fn a_rewritten_chain_is_named_at_the_checkpoint_it_contradicts() {
        let (mut chain, cps) = trail();
        chain[6].record.detail = "edited".into();
        let mut prev = chain[5].hash.clone();
        for e in &mut chain[6..] {
            e.record.prev_hash = prev;
            e.hash = chain_hash(&e.record);
            prev = e.hash.clone();
        }
        assert!(matches!(
            walk(&chain, cps, vec![]),
            Err(TrailError::Rewritten {
                number: 2,
                seq: 8,
                ..
            })
        ));
    }

    #[test]
    fn a_deleted_checkpoint_is_named_by_the_numbering_or_by_the_chain() {
        let (chain, cps) = trail();
        assert_eq!(
            walk(&chain, vec![cps[1].clone()], vec![]),
            Err(TrailError::MissingCheckpoint {
                number: 1,
                recorded_in: None
            })
        );
        assert_eq!(
            walk(&chain, vec![cps[0].clone()], vec![]),
            Err(TrailError::MissingCheckpoint {
                number: 2,
                recorded_in: Some(9)
            })
        );
    }

    #[test]
    fn a_forged_checkpoint_is_named() {
        let (chain, mut cps) = trail();
        cps[1].seq = 9;
        assert_eq!(
            walk(&chain, vec![], cps),
            Err(TrailError::BadSignature {
                number: 2,
                held: Held::Exported
            })
        );
    }
}

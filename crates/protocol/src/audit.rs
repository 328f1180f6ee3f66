//! Audit events (FHIR AuditEvent, simplified) and the hash chain that makes them tamper-evident.
//!
//! Each entry's `hash` is SHA-256 over the previous entry's hash and this entry's canonical
//! JSON (its fields in declaration order, without `hash`). Changing any field of any entry,
//! or removing or reordering entries, breaks every link after it; [`verify_chain`] names the
//! first entry whose link does not hold. Sequence numbers are contiguous from 1, so a
//! removed entry in the middle is caught even if an attacker recomputes later hashes only
//! partially. Cutting entries off the *end*, or rewriting the chain from some entry on, leaves
//! a valid chain: the node's signed [`checkpoint`]s of the head catch both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::PatientId;
use crate::problem::FieldError;

pub mod checkpoint;

/// The hash the first entry links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the audited action succeeded (FHIR AuditEvent.outcome, as words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// Its name on the wire and in storage: `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// The audited facts of one event, in the order they are hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it happened.
    pub recorded_at: DateTime<Utc>,
    /// Who: `staff:<id>`, `kiosk:<id>`, `anonymous`, or `node` for the node's own jobs.
    pub actor: String,
    /// What, e.g. `patient.read`, `appointment.book`, `session.create`.
    pub action: String,
    /// Which record: `patient/<id>`, `appointment/<id>`, … or empty.
    pub entity: String,
    /// Success or failure.
    pub outcome: Outcome,
    /// Further detail (the username tried, the override reason, the refusal).
    pub detail: String,
    /// Where the request came from.
    pub source: String,
    /// The previous entry's `hash` ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
}

/// An audit entry as stored and served: the record and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// The audited facts.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// SHA-256 (hex) over `prev_hash` and the record.
    pub hash: String,
}

/// The chain link of `record`: hex SHA-256 of its canonical JSON (which includes `prev_hash`).
pub fn chain_hash(record: &AuditRecord) -> String {
    // serde_json writes struct fields in declaration order and escapes deterministically,
    // so this is canonical for this type.
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The entry's stored hash does not match its content.
    #[error("audit entry {seq} was altered: its hash does not match its content")]
    Altered {
        /// The entry's sequence number.
        seq: i64,
    },
    /// The entry does not link to the one before it.
    #[error(
        "audit entry {seq} does not link to the entry before it (entries removed or reordered)"
    )]
    Unlinked {
        /// The entry's sequence number.
        seq: i64,
    },
    /// A sequence number is missing.
    #[error("audit entry {expected} is missing (found {found} in its place)")]
    Gap {
        /// The sequence number expected.
        expected: i64,
        /// The one found.
        found: i64,
    },
}

impl ChainError {
    /// The sequence number of the first broken entry.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Altered { seq } | Self::Unlinked { seq } => *seq,
            Self::Gap { expected, .. } => *expected,
        }
    }
}

/// Walks a chain incrementally, so a long chain is verified without holding it in memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry of the chain.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainError> {
        let r = &entry.record;
        if r.seq != self.next_seq {
            return Err(ChainError::Gap {
                expected: self.next_seq,
                found: r.seq,
            });
        }
        if chain_hash(r) != entry.hash {
            return Err(ChainError::Altered { seq: r.seq });
        }
        if r.prev_hash != self.prev_hash {
            return Err(ChainError::Unlinked { seq: r.seq });
        }
        self.next_seq += 1;
        self.prev_hash.clone_from(&entry.hash);
        Ok(())
    }

    /// How many entries verified so far.
    pub fn verified(&self) -> i64 {
        self.next_seq - 1
    }

    /// The hash of the last verified entry.
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

/// Verifies a whole chain held in memory.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<i64, ChainError> {
    let mut v = ChainVerifier::default();
    for e in entries {
        v.push(e)?;
    }
    Ok(v.verified())
}

/// Which audit entries an admin reads. Filters combine: an entry is read when it passes all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries after this sequence number (for paging forward, oldest first).
    #[serde(default)]
    pub after: Option<i64>,
    /// Only entries before this sequence number, newest first (for reading back from the
    /// newest: a number above the last entry's, e.g. 9007199254740991, gives the newest page).
    #[serde(default)]
    pub before: Option<i64>,
    /// Only this entity, e.g. `patient/<id>`.
    #[serde(default)]
    pub entity: Option<String>,
    /// Only this actor, e.g. `staff:<id>`, `kiosk:<id>`, `peer:<name>` or `node`.
    #[serde(default)]
    #[param(max_length = 300)]
    pub actor: Option<String>,
    /// Only this action (`report.read`) or family of actions (`report`: every `report.*`).
    #[serde(default)]
    #[param(max_length = 100)]
    pub action: Option<String>,
    /// Only entries on this patient's record: the patient, their appointments, reports and
    /// consents.
    #[serde(default)]
    pub patient: Option<PatientId>,
    /// The same as `patient`, the patient named by their card number (a privacy officer has
    /// the card in hand, not the record's id).
    #[serde(default)]
    #[param(max_length = 20)]
    pub card_number: Option<String>,
    /// Only entries recorded at or after this time.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Only entries recorded before this time.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// At most this many (1–1000, default 100).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// Checks that the filters can be applied; lists every wrong one (a period that ends
    /// before it starts, an action that is not an action's name, a malformed card number).
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut wrong = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            });
        };
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to <= from
        {
            wrong("to", "must be after from".into());
        }
        if let Some(a) = &self.action
            && !is_action_name(a)
        {
            wrong(
                "action",
                "must be an action such as report.read, or a family such as report".into(),
            );
        }
        for (field, value, max) in [("actor", &self.actor, 300), ("entity", &self.entity, 300)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                wrong(field, format!("must be at most {max} characters"));
            }
        }
        if let Some(card) = &self.card_number
            && let Err(why) = crate::patient::validate_card_number(card)
        {
            wrong("card_number", why.into());
        }
        if self.patient.is_some() && self.card_number.is_some() {
            wrong(
                "card_number",
                "name the patient once: by patient or by card_number".into(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// `report.read`, `report.export-pdf` or `report`: lower-case words joined by dots.
fn is_action_name(a: &str) -> bool {
    a.len() <= 100
        && a.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
        })
}

/// An audit entry as an admin reads it: the chained entry and, beside it (outside what is
/// hashed), who did it and what they touched in words, as the node knows them at reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditLine {
    /// The entry itself.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The actor's name: a staff member's display name, a kiosk's label, a peer node's name;
    /// absent for the node itself, an anonymous caller, or an account no longer known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// The name of what was touched: the patient whose record it is (for a patient, their
    /// appointment, report or consent), a staff member, a kiosk, a peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
    /// The patient whose record the entry touched, if any (to filter by them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n as i64)
            .map(|seq| {
                let record = AuditRecord {
                    seq,
                    recorded_at: DateTime::from_timestamp(1_700_000_000 + seq, 0).unwrap(),
                    actor: format!("staff:{seq}"),
                    action: "patient.read".into(),
                    entity: format!("patient/{seq}"),
                    outcome: Outcome::Success,
                    detail: String::new(),
                    source: "127.0.0.1".into(),
                    prev_hash: prev.clone(),
                };
                let hash = chain_hash(&record);
                prev.clone_from(&hash);
                AuditEntry { record, hash }
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(20)), Ok(20));
    }

    // As many cases as PROPTEST_CASES says (`make test` 64, `make soak` many more).
    proptest! {
        #[test]
        fn any_edit_is_caught_at_the_edited_entry(n in 1usize..30, at in 0usize..30, field in 0u8..4, text in "[a-z]{1,8}") {
            let mut c = chain(n);
            let at = at % n;
            let r = &mut c[at].record;
            match field {
                0 => r.actor.push_str(&text),
                1 => r.action = text,
                2 => r.detail.push_str(&text),
                _ => r.outcome = Outcome::Failure,
            }
            prop_assert_eq!(verify_chain(&c).map_err(|e| e.seq()), Err(at as i64 + 1));
        }

        #[test]
        fn a_removed_entry_is_caught(n in 2usize..30, at in 0usize..29) {
            let mut c = chain(n);
            let at = at % (n - 1);
            c.remove(at);
            prop_assert_eq!(verify_chain(&c).map_err(|e| e.seq()), Err(at as i64 + 1));
        }
    }
}

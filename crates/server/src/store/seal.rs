//! Patient data sealed column by column, for PostgreSQL.
//!
//! A SQLCipher file is encrypted whole, but a PostgreSQL server, its backups and its dumps
//! see whatever the node sends. So on PostgreSQL the node seals the columns that hold what
//! identifies or describes a patient (names, contact details, birth date, card number,
//! reasons, report text, received payloads, documents, audit details, the event log) with
//! AES-256-GCM before they leave the process, and opens them as rows are read. The lookups it
//! serves on sealed values (a card number, a birth date, the start of a name) go through blind
//! indexes: keyed hashes (HMAC-SHA-256) of the normalised value, equal for equal values and
//! meaningless without the key.
//!
//! Both keys are derived from the node's database key (its key file or `CAREBRIDGE_DB_KEY`),
//! so a PostgreSQL node keeps that key exactly as a SQLCipher node does: without it, the
//! sealed columns cannot be read.
//!
//! A sealed value carries a mark, so that rows are opened without the reader naming which
//! columns are sealed. Text is marked by a control character that no text the node stores
//! may contain (free text is refused with control characters, and JSON escapes them); bytes
//! by eight bytes that random hashes match once in 2^64. The schema checks every sealed
//! column for the mark, so a value written in clear by mistake is refused, not kept.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::Mac;
use sha2::Sha256;

use super::DbKey;
use super::sql::{DbError, Value};

/// What starts a sealed text: then base64 of nonce and ciphertext.
pub const TEXT_MARK: &str = "\u{1}cbs1:";
/// What starts sealed bytes: then nonce and ciphertext.
pub const BYTES_MARK: [u8; 8] = [0, 1, b'c', b'b', b's', b'1', 0, 1];

const NONCE: usize = 12;

/// The sealed columns, by table. Every write to one seals its value ([`super::sql::Conn::seal`]);
/// the schema refuses a value without the mark in any of them (`pg.rs` adds the checks from
/// this list), and `migrate-store` seals them as it copies.
pub const SEALED: &[(&str, &[&str])] = &[
    (
        "patients",
        &[
            "family_name",
            "given_name",
            "family_key",
            "given_key",
            "birth_date",
            "phone",
            "email",
            "card_number",
        ],
    ),
    (
        "appointments",
        &["reason", "override_reason", "cancellation_reason"],
    ),
    ("events", &["data"]),
    ("audit", &["detail"]),
    ("idempotency", &["body"]),
    (
        "reports",
        &["title", "findings", "conclusion", "codes", "error_reason"],
    ),
    (
        "report_revisions",
        &["title", "findings", "conclusion", "codes"],
    ),
    ("received", &["payload"]),
    ("mail_outbox", &["recipient", "subject", "body"]),
    ("imaging_orders", &["procedure", "reason"]),
    ("imaging_studies", &["dicom_patient_name", "description"]),
    ("document_versions", &["content", "file_name"]),
    ("transfers_in", &["bundle"]),
    ("transfer_chunks_in", &["data"]),
];

/// The sealed columns whose equal values seal equal (`Seal::seal`'s `fixed`), because the
/// database compares them.
pub const SEALED_ALIKE: &[(&str, &str)] = &[
    ("reports", "title"),
    ("reports", "findings"),
    ("reports", "conclusion"),
    ("reports", "codes"),
    ("imaging_studies", "description"),
];

/// Whether `table.column` is sealed.
pub fn is_sealed(table: &str, column: &str) -> bool {
    SEALED
        .iter()
        .any(|(t, cs)| *t == table && cs.contains(&column))
}

/// The keys that seal and index one node's patient data.
pub struct Seal {
    cipher: Aes256Gcm,
    index_key: [u8; 32],
    nonce_key: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

/// What a blind index is of: the same value indexed for two lookups gives two unrelated
/// hashes, so that equal hashes say nothing across lookups.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// A patient's card number.
    Card,
    /// A patient's birth date.
    BirthDate,
    /// The start of a patient's family or given name (normalised).
    NamePrefix,
    /// A whole name and birth date, for the duplicate check.
    SamePerson,
}

impl Lookup {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Card => b"card",
            Self::BirthDate => b"birth-date",
            Self::NamePrefix => b"name-prefix",
            Self::SamePerson => b"same-person",
        }
    }
}

impl Seal {
    /// The keys derived from the node's database key (HKDF-SHA-256, one label each).
    pub fn derive(key: &DbKey) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"carebridge postgresql"), key.bytes());
        let mut seal_key = [0u8; 32];
        let mut index_key = [0u8; 32];
        let mut nonce_key = [0u8; 32];
        for (label, out) in [
            (&b"seal v1"[..], &mut seal_key),
            (b"blind index v1", &mut index_key),
            (b"synthetic nonce v1", &mut nonce_key),
        ] {
            hk.expand(label, out)
                .expect("32 bytes is a valid HKDF-SHA-256 length");
        }
        Self {
            cipher: Aes256Gcm::new(&seal_key.into()),
            index_key,
            nonce_key,
        }
    }

    fn encrypt(&self, plain: &[u8], fixed: bool) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        if fixed {
            // A synthetic nonce, from the text itself: the same text seals the same way, and
            // different texts never share a nonce.
            let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.nonce_key)
                .expect("HMAC takes a key of any length");
            mac.update(plain);
            nonce.copy_from_slice(&mac.finalize().into_bytes()[..NONCE]);
        } else {
            rand::Rng::fill(&mut rand::rngs::OsRng, &mut nonce);
        }
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        [nonce.as_slice(), &sealed].concat()
    }

    fn decrypt(&self, sealed: &[u8]) -> Result<Vec<u8>, DbError> {
        let unreadable = || DbError::Sealed("a sealed value does not open with this node's key");
        if sealed.len() < NONCE {
            return Err(unreadable());
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| unreadable())
    }

    /// `v` sealed: text as marked text, bytes as marked bytes, NULL as it is. A fresh nonce
    /// each time, unless `fixed`: then equal values seal equal, which the database can
    /// compare (a signed report's text, which a trigger keeps from changing) at the cost of
    /// showing which values are equal.
    pub fn seal(&self, v: Value, fixed: bool) -> Result<Value, DbError> {
        Ok(match v {
            Value::Null => Value::Null,
            Value::Text(t) => Value::Text(format!(
                "{TEXT_MARK}{}",
                STANDARD_NO_PAD.encode(self.encrypt(t.as_bytes(), fixed))
            )),
            Value::Blob(b) => {
                Value::Blob([BYTES_MARK.as_slice(), &self.encrypt(&b, fixed)].concat())
            }
            Value::Integer(_) | Value::Real(_) => {
                return Err(DbError::Sealed("only text and bytes are sealed"));
            }
        })
    }

    /// `v` opened if it is sealed, else as it is.
    pub fn open(&self, v: Value) -> Result<Value, DbError> {
        Ok(match v {
            Value::Text(t) if t.starts_with(TEXT_MARK) => {
                let sealed = STANDARD_NO_PAD
                    .decode(&t[TEXT_MARK.len()..])
                    .map_err(|_| DbError::Sealed("a sealed text is not base64"))?;
                Value::Text(
                    String::from_utf8(self.decrypt(&sealed)?)
                        .map_err(|_| DbError::Sealed("a sealed text is not UTF-8"))?,
                )
            }
            Value::Blob(b) if b.starts_with(&BYTES_MARK) => {
                Value::Blob(self.decrypt(&b[BYTES_MARK.len()..])?)
            }
            v => v,
        })
    }

    /// The blind index of `value` for `lookup`.
    pub fn index(&self, lookup: Lookup, value: &str) -> Vec<u8> {
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes a key of any length");
        mac.update(lookup.label());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The prefixes of a normalised name that a name search may ask for: every start of it, up
/// to [`PREFIX_MAX`] characters (a search for a longer start asks for its first
/// [`PREFIX_MAX`] and checks the rest on the opened names).
pub fn name_prefixes(key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = key.chars().collect();
    for n in 1..=chars.len().min(PREFIX_MAX) {
        out.push(chars[..n].iter().collect());
    }
    out
}

/// The longest name prefix indexed.
pub const PREFIX_MAX: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> Seal {
        Seal::derive(&DbKey::generate())
    }

    #[test]
    fn sealed_values_open_to_what_was_sealed_and_differ_each_time() {
        let s = seal();
        let text = Value::Text("Ada Lovelace, chest pain".into());
        let a = s.seal(text.clone(), false).unwrap();
        let b = s.seal(text.clone(), false).unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        let Value::Text(shown) = &a else { panic!() };
        assert!(shown.starts_with(TEXT_MARK) && !shown.contains("Lovelace"));
        assert_eq!(s.open(a).unwrap(), text);
        let bytes = Value::Blob(b"%PDF-1.7 report".to_vec());
        assert_eq!(
            s.open(s.seal(bytes.clone(), false).unwrap()).unwrap(),
            bytes
        );
        assert_eq!(s.seal(Value::Null, false).unwrap(), Value::Null);
        let plain = Value::Text("booked".into());
        assert_eq!(s.open(plain.clone()).unwrap(), plain);
    }

    #[test]
    fn fixed_seals_are_equal_for_equal_values_only_and_open_alike() {
        let s = seal();
        let a = Value::Text("Findings: none".into());
        let b = Value::Text("Findings: some".into());
        let sa = s.seal(a.clone(), true).unwrap();
        assert_eq!(sa, s.seal(a.clone(), true).unwrap());
        assert_ne!(sa, s.seal(b, true).unwrap());
        assert_ne!(sa, s.seal(a.clone(), false).unwrap());
        assert_eq!(s.open(sa).unwrap(), a);
    }

    #[test]
    fn another_key_or_a_changed_byte_does_not_open() {
        let (s, other) = (seal(), seal());
        let sealed = s.seal(Value::Blob(vec![7; 40]), false).unwrap();
        assert!(matches!(
            other.open(sealed.clone()),
            Err(DbError::Sealed(_))
        ));
        let Value::Blob(mut b) = sealed else { panic!() };
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(s.open(Value::Blob(b)), Err(DbError::Sealed(_))));
    }

    #[test]
    fn blind_indexes_are_equal_for_equal_values_and_differ_by_lookup_and_key() {
        let (s, other) = (seal(), seal());
        assert_eq!(s.index(Lookup::Card, "1234"), s.index(Lookup::Card, "1234"));
        assert_ne!(s.index(Lookup::Card, "1234"), s.index(Lookup::Card, "1235"));
        assert_ne!(
            s.index(Lookup::Card, "1234"),
            s.index(Lookup::BirthDate, "1234")
        );
        assert_ne!(
            s.index(Lookup::Card, "1234"),
            other.index(Lookup::Card, "1234")
        );
    }

    #[test]
    fn name_prefixes_stop_at_the_longest_indexed() {
        assert_eq!(name_prefixes("lee"), ["l", "le", "lee"]);
        assert_eq!(name_prefixes("abcdefghijklmnop").len(), PREFIX_MAX);
        assert!(name_prefixes("").is_empty());
    }
}

//! A node's public identity: the small document `carebridge-node keys` prints and the other
//! side's `carebridge-node peer add` reads, so that peering never means copying keys by hand.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Who a node is and how to reach it; public keys only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIdentity {
    /// The node's name, e.g. `st-marys.example`.
    pub name: String,
    /// `hospital` or `insurer`.
    pub kind: String,
    /// Where its federation endpoint is served, e.g. `https://node.st-marys.example`.
    pub url: String,
    /// Its Ed25519 public key (signatures), base64.
    pub signing_key: String,
    /// Its X25519 public key (sealing), base64.
    pub agreement_key: String,
}

/// Why an identity document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A key is not 32 bytes of base64, or not a valid point.
    #[error("the {0} key is not a valid 32-byte public key")]
    BadKey(&'static str),
}

fn key_bytes(b64: &str, which: &'static str) -> Result<[u8; 32], IdentityError> {
    STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(IdentityError::BadKey(which))
}

impl NodeIdentity {
    /// The identity of a node with these public keys.
    pub fn new(
        name: &str,
        kind: &str,
        url: &str,
        signing: &ed25519_dalek::VerifyingKey,
        agreement: &x25519_dalek::PublicKey,
    ) -> Self {
        Self {
            name: name.to_owned(),
            kind: kind.to_owned(),
            url: url.to_owned(),
            signing_key: STANDARD.encode(signing.as_bytes()),
            agreement_key: STANDARD.encode(agreement.as_bytes()),
        }
    }

    /// The Ed25519 key its signatures verify with.
    pub fn signing_key(&self) -> Result<ed25519_dalek::VerifyingKey, IdentityError> {
        ed25519_dalek::VerifyingKey::from_bytes(&key_bytes(&self.signing_key, "signing")?)
            .map_err(|_| IdentityError::BadKey("signing"))
    }

    /// The X25519 key envelopes for it are sealed with.
    pub fn agreement_key(&self) -> Result<x25519_dalek::PublicKey, IdentityError> {
        Ok(x25519_dalek::PublicKey::from(key_bytes(
            &self.agreement_key,
            "agreement",
        )?))
    }

    /// A short fingerprint of the signing key for people to compare over the phone
    /// (see [`fingerprint`]).
    pub fn fingerprint(&self) -> Result<String, IdentityError> {
        Ok(fingerprint(&self.signing_key()?))
    }
}

/// A short fingerprint of a node's signing key: the first 16 bytes of its SHA-256, in groups
/// of four hex digits.
pub fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..16]
        .chunks(2)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_and_its_keys_are_the_nodes() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let agreement = x25519_dalek::StaticSecret::from([6; 32]);
        let id = NodeIdentity::new(
            "st-marys.example",
            "hospital",
            "https://node.st-marys.example",
            &signing.verifying_key(),
            &x25519_dalek::PublicKey::from(&agreement),
        );
        let text = serde_json::to_string_pretty(&id).unwrap();
        assert!(!text.contains("secret"));
        let back: NodeIdentity = serde_json::from_str(&text).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.signing_key().unwrap(), signing.verifying_key());
        assert_eq!(
            back.agreement_key().unwrap(),
            x25519_dalek::PublicKey::from(&agreement)
        );
        let fp = back.fingerprint().unwrap();
        assert_eq!(fp.len(), 8 * 4 + 7, "{fp}");
    }

    #[test]
    fn a_damaged_document_is_refused_with_the_key_it_concerns() {
        let mut id = NodeIdentity {
            name: "x".into(),
            kind: "insurer".into(),
            url: "https://x".into(),
            signing_key: STANDARD.encode([1u8; 31]),
            agreement_key: "not base64!".into(),
        };
        assert_eq!(id.signing_key(), Err(IdentityError::BadKey("signing")));
        assert_eq!(id.agreement_key(), Err(IdentityError::BadKey("agreement")));
        id.signing_key = STANDARD.encode([1u8; 32]);
        assert!(serde_json::from_str::<NodeIdentity>(r#"{"name":"x","extra":1}"#).is_err());
    }
}

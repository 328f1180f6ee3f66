//! Peers: the other nodes this one exchanges with — their public identity, the API key the
//! pair shares, the addresses they may send from and the message types they may send.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::identity::NodeIdentity;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::NodeKind;

/// An address or network a peer may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRule {
    net: IpAddr,
    prefix: u8,
}

impl SourceRule {
    /// Parses `127.0.0.2`, `10.0.0.0/8` or `::1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network such as 10.0.0.0/8"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0–{max}"))?,
            None => max,
        };
        Ok(Self { net, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reached over an IPv6 socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for SourceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

/// A peer node.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: NodeKind,
    /// Its base URL.
    pub url: String,
    /// Its Ed25519 key: its requests and receipts are signed with it.
    pub signing_key: ed25519_dalek::VerifyingKey,
    /// Its X25519 key: envelopes for it are sealed with it.
    pub agreement_key: x25519_dalek::PublicKey,
    /// The API key the pair shares.
    pub api_key: String,
    /// Where it may send from.
    pub allowed_sources: Vec<SourceRule>,
    /// What it may send.
    pub allowed_types: Vec<MessageType>,
}

/// What every API key this node prints starts with: a key is recognisable when pasted into
/// the wrong place (and found by secret scanners), and never starts with `-`, which a
/// command line would take for an option.
pub const API_KEY_PREFIX: &str = "cbk_";

/// A fresh API key: the prefix and 32 random bytes, URL-safe base64.
pub fn new_api_key() -> String {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(k))
}

/// The stored lookup value of an API key (a random key needs no slow hash).
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// What a node of kind `ours` accepts from a peer of kind `theirs` unless told otherwise.
pub fn default_types(ours: NodeKind, theirs: NodeKind) -> Vec<MessageType> {
    match (ours, theirs) {
        (NodeKind::Hospital, NodeKind::Insurer) => vec![MessageType::AdminUpdate],
        (NodeKind::Insurer, NodeKind::Hospital) => {
            vec![MessageType::MedicalReports, MessageType::AdminUpdateAck]
        }
        // Two hospitals: each may ask to read the other's patients (with their consent),
        // answer the other's requests, and move a patient's record to the other.
        (NodeKind::Hospital, NodeKind::Hospital) => vec![
            MessageType::AccessRequest,
            MessageType::AccessApprove,
            MessageType::AccessGranted,
            MessageType::AccessDeclined,
            MessageType::AccessRevoked,
            MessageType::TransferManifest,
            MessageType::TransferChunk,
            MessageType::TransferConfirmed,
            MessageType::TransferRefused,
        ],
        _ => Vec::new(),
    }
}

/// Parses a message type's name.
pub fn parse_type(s: &str) -> Option<MessageType> {
    MessageType::parse(s)
}

/// What `peer add` records.
#[derive(Debug, Clone)]
pub struct PeerGrant {
    /// The peer's public identity.
    pub identity: NodeIdentity,
    /// Where it may send from.
    pub allowed_sources: Vec<SourceRule>,
    /// What it may send.
    pub allowed_types: Vec<MessageType>,
    /// The pair's API key.
    pub api_key: String,
}

/// What `peer add` was asked.
#[derive(Debug, Clone)]
pub struct AddPeer {
    /// The peer's identity document.
    pub identity: NodeIdentity,
    /// Where it may send from (at least one).
    pub allowed_sources: Vec<SourceRule>,
    /// What it may send; empty: what a node of its kind sends a node of this kind.
    pub allowed_types: Vec<MessageType>,
    /// The API key the other side printed when it added this node; `None`: make one.
    pub their_api_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_prefixed_random_and_never_look_like_an_option() {
        let keys: Vec<String> = (0..256).map(|_| new_api_key()).collect();
        for k in &keys {
            assert!(k.starts_with(API_KEY_PREFIX), "{k}");
            assert!(!k.starts_with('-'), "{k}");
            // the prefix and 32 bytes of unpadded base64
            assert_eq!(k.len(), API_KEY_PREFIX.len() + 43, "{k}");
        }
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn source_rules_match_addresses_and_networks() {
        let one = SourceRule::parse("127.0.0.2").unwrap();
        assert!(one.contains("127.0.0.2".parse().unwrap()));
        assert!(!one.contains("127.0.0.3".parse().unwrap()));
        assert!(
            one.contains("::ffff:127.0.0.2".parse().unwrap()),
            "mapped IPv4"
        );
        let net = SourceRule::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.7".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            SourceRule::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(SourceRule::parse("10.0.0.0/33").is_err());
        assert!(SourceRule::parse("example.org").is_err());
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert_eq!(one.to_string(), "127.0.0.2");
    }
}

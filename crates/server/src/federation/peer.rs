//! Peers: the other nodes this one exchanges with — their public identity, the API key the
//! pair shares, the addresses they may send from and the message types they may send.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::identity::NodeIdentity;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use crate::config::NodeKind;
use crate::store::StoreError;

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
        _ => Vec::new(),
    }
}

/// Parses a message type's name.
pub fn parse_type(s: &str) -> Option<MessageType> {
    Some(match s {
        "medical-reports" => MessageType::MedicalReports,
        "admin-update" => MessageType::AdminUpdate,
        "admin-update-ack" => MessageType::AdminUpdateAck,
        _ => return None,
    })
}

const COLUMNS: &str =
    "name, kind, url, signing_key, agreement_key, api_key, allowed_sources, allowed_types";

fn from_row(r: &Row<'_>) -> Result<Peer, StoreError> {
    let kind: String = r.get(1)?;
    let signing: Vec<u8> = r.get(3)?;
    let agreement: Vec<u8> = r.get(4)?;
    let sources: String = r.get(6)?;
    let types: String = r.get(7)?;
    let bad = |what: &str| StoreError::Corrupt(format!("peer {what}"));
    let signing: [u8; 32] = signing.try_into().map_err(|_| bad("signing key"))?;
    let agreement: [u8; 32] = agreement.try_into().map_err(|_| bad("agreement key"))?;
    Ok(Peer {
        name: r.get(0)?,
        kind: if kind == "insurer" {
            NodeKind::Insurer
        } else {
            NodeKind::Hospital
        },
        url: r.get(2)?,
        signing_key: ed25519_dalek::VerifyingKey::from_bytes(&signing)
            .map_err(|_| bad("signing key"))?,
        agreement_key: x25519_dalek::PublicKey::from(agreement),
        api_key: r.get(5)?,
        allowed_sources: serde_json::from_str::<Vec<String>>(&sources)?
            .iter()
            .map(|s| SourceRule::parse(s).map_err(StoreError::Corrupt))
            .collect::<Result<_, _>>()?,
        allowed_types: serde_json::from_str::<Vec<String>>(&types)?
            .iter()
            .map(|s| parse_type(s).ok_or_else(|| bad("message type")))
            .collect::<Result<_, _>>()?,
    })
}

/// One peer by name.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Peer>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM peers WHERE name = ?1"))?;
    let mut rows = st.query([name])?;
    rows.next()?.map(from_row).transpose()
}

/// The peer that presents `key`.
pub fn by_api_key(conn: &Connection, key: &str) -> Result<Option<Peer>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM peers WHERE api_key_hash = ?1"
    ))?;
    let mut rows = st.query([hash_api_key(key)])?;
    rows.next()?.map(from_row).transpose()
}

/// Every peer, by name.
pub fn list(conn: &Connection) -> Result<Vec<Peer>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM peers ORDER BY name"))?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
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

/// Adds a peer, or replaces what is known of it.
pub fn put(conn: &Connection, grant: &PeerGrant, now_ms: i64) -> Result<(), StoreError> {
    let id = &grant.identity;
    let signing = id
        .signing_key()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let agreement = id
        .agreement_key()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sources: Vec<String> = grant
        .allowed_sources
        .iter()
        .map(ToString::to_string)
        .collect();
    let types: Vec<&str> = grant.allowed_types.iter().map(|t| t.as_str()).collect();
    conn.execute(
        "INSERT INTO peers (name, kind, url, signing_key, agreement_key, api_key, api_key_hash,
             allowed_sources, allowed_types, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url = excluded.url,
             signing_key = excluded.signing_key, agreement_key = excluded.agreement_key,
             api_key = excluded.api_key, api_key_hash = excluded.api_key_hash,
             allowed_sources = excluded.allowed_sources, allowed_types = excluded.allowed_types,
             updated_at = excluded.updated_at",
        params![
            id.name,
            id.kind,
            id.url.trim_end_matches('/'),
            signing.to_bytes().to_vec(),
            agreement.to_bytes().to_vec(),
            grant.api_key,
            hash_api_key(&grant.api_key),
            serde_json::to_string(&sources)?,
            serde_json::to_string(&types)?,
            now_ms,
        ],
    )?;
    Ok(())
}

/// Whether a peer of that name exists.
pub fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM peers WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
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

/// Adds (or updates) a peer, audited. Returns the pair's API key and whether it is new (to
/// give the other side, who records it with `--their-api-key`).
pub async fn add(
    node: &crate::node::Node,
    req: AddPeer,
) -> Result<(String, bool), crate::error::ApiError> {
    use crate::error::ApiError;
    let id = &req.identity;
    crate::config::validate_node_name(&id.name).map_err(|m| ApiError::field("name", m))?;
    if id.name == node.name() {
        return Err(ApiError::field("name", "that is this node's own identity"));
    }
    let kind = match id.kind.as_str() {
        "hospital" => NodeKind::Hospital,
        "insurer" => NodeKind::Insurer,
        other => {
            return Err(ApiError::field(
                "kind",
                format!("{other:?} is not hospital or insurer"),
            ));
        }
    };
    let url = reqwest::Url::parse(&id.url).map_err(|e| ApiError::field("url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ApiError::field("url", "must be an http(s) URL with a host"));
    }
    id.signing_key()
        .map_err(|e| ApiError::field("signing_key", e.to_string()))?;
    id.agreement_key()
        .map_err(|e| ApiError::field("agreement_key", e.to_string()))?;
    if req.allowed_sources.is_empty() {
        return Err(ApiError::field(
            "allowed_sources",
            "give at least one address the peer sends from (--allow-source)",
        ));
    }
    let types = if req.allowed_types.is_empty() {
        default_types(node.config.kind, kind)
    } else {
        req.allowed_types.clone()
    };
    let (api_key, fresh) = match &req.their_api_key {
        Some(k) if k.trim().len() >= 32 => (k.trim().to_owned(), false),
        Some(_) => {
            return Err(ApiError::field(
                "their_api_key",
                "is not an API key `peer add` printed",
            ));
        }
        None => (new_api_key(), true),
    };
    let grant = PeerGrant {
        identity: id.clone(),
        allowed_sources: req.allowed_sources.clone(),
        allowed_types: types.clone(),
        api_key: api_key.clone(),
    };
    let detail = format!(
        "{} ({}) at {}, fingerprint {}; may send {} from {}",
        id.name,
        id.kind,
        id.url,
        id.fingerprint().unwrap_or_default(),
        types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        req.allowed_sources
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let draft = crate::store::AuditDraft {
        actor: "node".into(),
        action: "peer.add".into(),
        entity: format!("peer/{}", id.name),
        source: "local".into(),
    };
    node.store
        .write(Some(draft), move |ctx| {
            put(ctx.conn(), &grant, ctx.now().timestamp_millis())?;
            ctx.set_detail(detail);
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok((api_key, fresh))
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

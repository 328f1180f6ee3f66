//! Peers as stored: identity, the pair's API key (and its hash, to find the peer by), the
//! addresses and message types allowed.

use crate::store::sql::{OptionalExtension, Row, params};

use crate::config::NodeKind;
use crate::federation::peer::{Peer, PeerGrant, SourceRule, hash_api_key, parse_type};
use crate::store::{StoreError, Tx, WriteCtx};

const COLUMNS: &str =
    "name, kind, url, signing_key, agreement_key, api_key, allowed_sources, allowed_types";

fn from_row(r: &Row) -> Result<Peer, StoreError> {
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
pub fn get(tx: &Tx<'_>, name: &str) -> Result<Option<Peer>, StoreError> {
    let mut st = tx
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM peers WHERE name = ?1"))?;
    let mut rows = st.query([name])?;
    rows.next()?.map(from_row).transpose()
}

/// The peer that presents `key`.
pub fn by_api_key(tx: &Tx<'_>, key: &str) -> Result<Option<Peer>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM peers WHERE api_key_hash = ?1"
    ))?;
    let mut rows = st.query([hash_api_key(key)])?;
    rows.next()?.map(from_row).transpose()
}

/// Every peer, by name.
pub fn list(tx: &Tx<'_>) -> Result<Vec<Peer>, StoreError> {
    let mut st = tx
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM peers ORDER BY name"))?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Adds a peer, or replaces what is known of it.
pub fn put(w: &WriteCtx<'_>, grant: &PeerGrant) -> Result<(), StoreError> {
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
    let now_ms = w.now().timestamp_millis();
    w.conn.execute(
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
pub fn exists(tx: &Tx<'_>, name: &str) -> Result<bool, StoreError> {
    Ok(tx
        .conn
        .prepare_cached("SELECT 1 FROM peers WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

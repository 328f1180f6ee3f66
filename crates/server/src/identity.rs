//! This node's public identity, from the keys `init` made (`node_keys`) and its
//! configuration: what `carebridge-node keys` prints for a peer to add.

use carebridge_protocol::federation::identity::NodeIdentity;
use rusqlite::Connection;

use crate::config::NodeConfig;
use crate::store::StoreError;

fn public_key(conn: &Connection, purpose: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = conn.query_row(
        "SELECT public FROM node_keys WHERE purpose = ?1",
        [purpose],
        |r| r.get(0),
    )?;
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        StoreError::Corrupt(format!("the node's {purpose} public key is not 32 bytes"))
    })
}

fn secret_key(conn: &Connection, purpose: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = conn.query_row(
        "SELECT secret FROM node_keys WHERE purpose = ?1",
        [purpose],
        |r| r.get(0),
    )?;
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        StoreError::Corrupt(format!("the node's {purpose} secret key is not 32 bytes"))
    })
}

/// The node's secret keys: Ed25519 for signing, X25519 for opening envelopes.
pub fn secret_keys(
    conn: &Connection,
) -> Result<(ed25519_dalek::SigningKey, x25519_dalek::StaticSecret), StoreError> {
    Ok((
        ed25519_dalek::SigningKey::from_bytes(&secret_key(conn, "ed25519")?),
        x25519_dalek::StaticSecret::from(secret_key(conn, "x25519")?),
    ))
}

/// The node's identity, reachable at `url` (its federation base URL as peers see it).
pub fn identity(
    conn: &Connection,
    config: &NodeConfig,
    url: &str,
) -> Result<NodeIdentity, StoreError> {
    let signing = ed25519_dalek::VerifyingKey::from_bytes(&public_key(conn, "ed25519")?)
        .map_err(|e| StoreError::Corrupt(format!("the node's ed25519 public key: {e}")))?;
    let agreement = x25519_dalek::PublicKey::from(public_key(conn, "x25519")?);
    let kind = config.kind.as_str();
    Ok(NodeIdentity::new(
        &config.name,
        kind,
        url,
        &signing,
        &agreement,
    ))
}

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

/// The node's identity, reachable at `url` (its federation base URL as peers see it).
pub fn identity(
    conn: &Connection,
    config: &NodeConfig,
    url: &str,
) -> Result<NodeIdentity, StoreError> {
    let signing = ed25519_dalek::VerifyingKey::from_bytes(&public_key(conn, "ed25519")?)
        .map_err(|e| StoreError::Corrupt(format!("the node's ed25519 public key: {e}")))?;
    let agreement = x25519_dalek::PublicKey::from(public_key(conn, "x25519")?);
    let kind = format!("{:?}", config.kind).to_lowercase();
    Ok(NodeIdentity::new(
        &config.name,
        &kind,
        url,
        &signing,
        &agreement,
    ))
}

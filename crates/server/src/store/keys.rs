//! The node's own keys as stored (`node_keys`), made once by `init`.

use crate::store::sql::params;

use crate::store::{StoreError, Tx, WriteCtx};

fn public_key(tx: &Tx<'_>, purpose: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = tx.conn().query_row(
        "SELECT public FROM node_keys WHERE purpose = ?1",
        [purpose],
        |r| r.get(0),
    )?;
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        StoreError::Corrupt(format!("the node's {purpose} public key is not 32 bytes"))
    })
}

fn secret_key(tx: &Tx<'_>, purpose: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = tx.conn().query_row(
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
    tx: &Tx<'_>,
) -> Result<(ed25519_dalek::SigningKey, x25519_dalek::StaticSecret), StoreError> {
    Ok((
        ed25519_dalek::SigningKey::from_bytes(&secret_key(tx, "ed25519")?),
        x25519_dalek::StaticSecret::from(secret_key(tx, "x25519")?),
    ))
}

/// The node's public keys: Ed25519 (signing) and X25519 (agreement).
pub fn public_keys(
    tx: &Tx<'_>,
) -> Result<(ed25519_dalek::VerifyingKey, x25519_dalek::PublicKey), StoreError> {
    let signing = ed25519_dalek::VerifyingKey::from_bytes(&public_key(tx, "ed25519")?)
        .map_err(|e| StoreError::Corrupt(format!("the node's ed25519 public key: {e}")))?;
    Ok((
        signing,
        x25519_dalek::PublicKey::from(public_key(tx, "x25519")?),
    ))
}

/// Stores the node's keys (`init`, once).
pub fn insert(
    w: &WriteCtx<'_>,
    signing: &ed25519_dalek::SigningKey,
    agreement: &x25519_dalek::StaticSecret,
) -> Result<(), StoreError> {
    let now_ms = w.now().timestamp_millis();
    w.conn.execute(
        "INSERT INTO node_keys (purpose, secret, public, created_at) VALUES ('ed25519', ?1, ?2, ?3)",
        params![
            signing.to_bytes().to_vec(),
            signing.verifying_key().to_bytes().to_vec(),
            now_ms
        ],
    )?;
    w.conn.execute(
        "INSERT INTO node_keys (purpose, secret, public, created_at) VALUES ('x25519', ?1, ?2, ?3)",
        params![
            agreement.to_bytes().to_vec(),
            x25519_dalek::PublicKey::from(agreement).to_bytes().to_vec(),
            now_ms
        ],
    )?;
    Ok(())
}

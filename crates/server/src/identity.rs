//! This node's public identity, from the keys `init` made and its configuration: what
//! `carebridge-node keys` prints for a peer to add.

use carebridge_protocol::federation::identity::NodeIdentity;

use crate::config::NodeConfig;
use crate::store::{StoreError, Tx, keys};

/// The node's identity, reachable at `url` (its federation base URL as peers see it).
pub fn identity(tx: &Tx<'_>, config: &NodeConfig, url: &str) -> Result<NodeIdentity, StoreError> {
    let (signing, agreement) = keys::public_keys(tx)?;
    Ok(NodeIdentity::new(
        &config.name,
        config.kind.as_str(),
        url,
        &signing,
        &agreement,
    ))
}

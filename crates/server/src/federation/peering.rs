//! `carebridge-node peer add`: recording a peer from its identity document, audited.

use super::error::FederationError;
use super::peer::{AddPeer, PeerGrant, default_types, new_api_key};
use crate::config::NodeKind;
use crate::store::federation::peers;

/// Adds (or updates) a peer, audited. Returns the pair's API key and whether it is new (to
/// give the other side, who records it with `--their-api-key`).
pub async fn add(
    node: &crate::node::Node,
    req: AddPeer,
) -> Result<(String, bool), FederationError> {
    let id = &req.identity;
    crate::config::validate_node_name(&id.name).map_err(|m| FederationError::invalid("name", m))?;
    if id.name == node.name() {
        return Err(FederationError::invalid(
            "name",
            "that is this node's own identity",
        ));
    }
    let kind = match id.kind.as_str() {
        "hospital" => NodeKind::Hospital,
        "insurer" => NodeKind::Insurer,
        other => {
            return Err(FederationError::invalid(
                "kind",
                format!("{other:?} is not hospital or insurer"),
            ));
        }
    };
    let url =
        reqwest::Url::parse(&id.url).map_err(|e| FederationError::invalid("url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(FederationError::invalid(
            "url",
            "must be an http(s) URL with a host",
        ));
    }
    id.signing_key()
        .map_err(|e| FederationError::invalid("signing_key", e.to_string()))?;
    id.agreement_key()
        .map_err(|e| FederationError::invalid("agreement_key", e.to_string()))?;
    if req.allowed_sources.is_empty() {
        return Err(FederationError::invalid(
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
            return Err(FederationError::invalid(
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
            peers::put(ctx, &grant)?;
            ctx.set_detail(detail);
            Ok::<_, FederationError>(())
        })
        .await?;
    Ok((api_key, fresh))
}

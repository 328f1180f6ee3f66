//! The audit trail, for admins.

use std::sync::Arc;

use axum::extract::State;
use carebridge_protocol::audit::{AuditEntry, AuditQuery};

use crate::api::extract::{Caller, Query};
use crate::error::ApiError;
use crate::node::Node;
use crate::visibility::RecordKind;

/// Reads audit entries, oldest first (page with `after`). Reading the trail is itself audited.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "Entries in chain order", body = Vec<AuditEntry>)))]
pub async fn list_audit(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditEntry>>, ApiError> {
    caller.may_see(RecordKind::AuditTrail)?;
    let list = node
        .store
        .write(Some(caller.audit("audit.read", "")), move |ctx| {
            crate::store::audit::list(ctx, &q).map_err(ApiError::from)
        })
        .await?;
    Ok(axum::Json(list))
}

//! What peers sent this node: medical reports for an insurer's reviewers, and the retention
//! job that deletes every received payload after the configured number of days.

use carebridge_protocol::audit::Outcome;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::ReceivedDeleted;

use crate::events::Audience;
use crate::store::federation::received;
use crate::store::{AuditDraft, StoreError, WriteCtx, events};
use crate::visibility::{self, RecordKind};

/// Who sees received reports arrive and go (the visibility policy's readers of them).
pub fn audience() -> Audience {
    visibility::audience(RecordKind::ReceivedReports)
}

/// Deletes up to `limit` of the payloads received more than `days` days ago, oldest first,
/// auditing each deletion; an open list of received reports drops deleted ones live. Returns
/// how many were deleted (fewer than `limit`: none are left).
pub fn apply_retention(ctx: &mut WriteCtx<'_>, days: u32, limit: u32) -> Result<u64, StoreError> {
    let before = ctx.now() - chrono::Duration::days(i64::from(days));
    let old = received::older_than(ctx, before, limit)?;
    for p in &old {
        let (name, source) = (&p.name, &p.source);
        received::delete(ctx, name)?;
        // Its arrival in the event log carries the whole content: it goes too.
        events::forget_received(ctx, name)?;
        ctx.audit(
            &AuditDraft {
                actor: "node".into(),
                action: "received.retention-delete".into(),
                entity: format!("received/{name}"),
                source: "retention".into(),
            },
            &format!("received/{name}"),
            Outcome::Success,
            &format!(
                "deleted after {days} days (received from {source} at {})",
                p.received_at
            ),
        )?;
        // Only reports are listed to anyone; other payloads go unannounced.
        if p.message_type == MessageType::MedicalReports.as_str() {
            ctx.emit(
                EventKind::ReceivedDeleted,
                audience(),
                &ReceivedDeleted {
                    name: name.clone(),
                    source: source.clone(),
                },
            )?;
        }
    }
    Ok(old.len() as u64)
}

//! The audit trail's checkpoints: the node signs its chain's head with its Ed25519 key, at
//! intervals (`jobs`) and when it stops (`serve`), so that a cut tail or a rewritten chain no
//! longer verifies (see `protocol::audit::checkpoint`).

use carebridge_protocol::audit::Outcome;
use carebridge_protocol::audit::checkpoint::{AuditCheckpoint, CHECKPOINT_ACTION};

use crate::store::{AuditDraft, Store, StoreError, audit, keys};

/// Signs the chain's head as the next checkpoint and records it in the chain, unless nothing
/// was audited since the last one (the chain empty, or its head the last checkpoint's own
/// entry). Returns the checkpoint made.
pub async fn checkpoint(store: &Store) -> Result<Option<AuditCheckpoint>, StoreError> {
    store
        .write(None, |ctx| {
            // Read inside the writer's transaction: the head includes every entry committed
            // with this one, and nothing can be appended between signing and recording.
            let (seq, hash) = audit::head(ctx)?;
            let latest = audit::latest_checkpoint(ctx)?;
            if seq == 0 || latest.as_ref().is_some_and(|l| seq == l.seq + 1) {
                return Ok(None);
            }
            let (signing, _) = keys::secret_keys(ctx)?;
            let number = latest.map_or(1, |l| l.number + 1);
            let cp = AuditCheckpoint::sign(number, seq, &hash, ctx.now(), &signing);
            audit::insert_checkpoint(ctx, &cp)?;
            ctx.audit(
                &AuditDraft {
                    actor: "node".into(),
                    action: CHECKPOINT_ACTION.into(),
                    entity: String::new(),
                    source: String::new(),
                },
                &cp.entity(),
                Outcome::Success,
                &format!("signed entry {seq}"),
            )?;
            Ok::<_, StoreError>(Some(cp))
        })
        .await
}

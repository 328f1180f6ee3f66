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

/// One exported checkpoint: the checkpoint, and which node's key signed it (base64, as in the
/// node's identity document), so that a copy read elsewhere says what to check it with.
#[derive(serde::Serialize)]
struct Exported<'a> {
    node: &'a str,
    signing_key: &'a str,
    #[serde(flatten)]
    checkpoint: &'a AuditCheckpoint,
}

/// `list` as exported: one JSON object a line, each naming the node and its signing key.
pub fn export(
    node: &str,
    key: &ed25519_dalek::VerifyingKey,
    list: &[AuditCheckpoint],
) -> Result<String, serde_json::Error> {
    use base64::Engine as _;
    let signing_key = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
    let mut out = String::new();
    for checkpoint in list {
        out.push_str(&serde_json::to_string(&Exported {
            node,
            signing_key: &signing_key,
            checkpoint,
        })?);
        out.push('\n');
    }
    Ok(out)
}

/// A line of an exported file that is not a checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("line {line} is not an exported audit checkpoint: {source}")]
pub struct ExportedLineError {
    /// The line, from 1.
    pub line: usize,
    /// What did not parse.
    pub source: serde_json::Error,
}

/// Reads checkpoints exported by [`export`] (blank lines skipped).
pub fn read_exported(text: &str) -> Result<Vec<AuditCheckpoint>, ExportedLineError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| ExportedLineError {
                line: i + 1,
                source,
            })
        })
        .collect()
}

//! What peers sent this node: medical reports for an insurer's reviewers, and the retention
//! job that deletes every received payload after the configured number of days.

use carebridge_protocol::audit::Outcome;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::{MedicalReports, ReceivedDeleted, ReceivedReports};
use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, Row, params};

use super::peer;
use crate::events::{Audience, ROLE_ADMIN, ROLE_REVIEWER};
use crate::store::{AuditDraft, StoreError, WriteCtx, from_millis};

/// Who sees received reports arrive and go: an insurer's reviewers and admins.
pub fn audience() -> Audience {
    Audience {
        roles: ROLE_REVIEWER | ROLE_ADMIN,
        practitioner: None,
        kiosk: None,
    }
}

/// The peers' signing keys by name: what sent reports are verified with.
fn keys(conn: &Connection) -> Result<HashMap<String, VerifyingKey>, StoreError> {
    Ok(peer::list(conn)?
        .into_iter()
        .map(|p| (p.name, p.signing_key))
        .collect())
}

fn from_row(
    keys: &HashMap<String, VerifyingKey>,
    r: &Row<'_>,
) -> Result<ReceivedReports, StoreError> {
    let source: String = r.get(1)?;
    let payload: Vec<u8> = r.get(3)?;
    let content: MedicalReports = serde_json::from_slice(&payload)?;
    // Verified again on every read, with the peer's key as it is now.
    let key = keys.get(&source);
    let signatures_verified =
        key.is_some_and(|key| content.reports.iter().all(|r| r.signature_verifies(key)));
    Ok(ReceivedReports {
        name: r.get(0)?,
        source,
        received_at: from_millis(r.get(2)?)?,
        signatures_verified,
        content,
    })
}

/// Received medical reports, newest first.
pub fn list(conn: &Connection, limit: u32) -> Result<Vec<ReceivedReports>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT name, source, received_at, payload FROM received
         WHERE message_type = 'medical-reports' ORDER BY received_at DESC LIMIT ?1",
    )?;
    let keys = keys(conn)?;
    let mut rows = st.query([i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(&keys, r)?);
    }
    Ok(out)
}

/// One received set of reports.
pub fn get(conn: &Connection, name: &str) -> Result<Option<ReceivedReports>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT name, source, received_at, payload FROM received
         WHERE message_type = 'medical-reports' AND name = ?1",
    )?;
    let keys = keys(conn)?;
    let mut rows = st.query([name])?;
    match rows.next()? {
        Some(r) => Ok(Some(from_row(&keys, r)?)),
        None => Ok(None),
    }
}

/// Deletes up to `limit` of the payloads received more than `days` days ago, oldest first,
/// auditing each deletion; an open list of received reports drops deleted ones live. Returns
/// how many were deleted (fewer than `limit`: none are left).
pub fn apply_retention(ctx: &mut WriteCtx<'_>, days: u32, limit: u32) -> Result<u64, StoreError> {
    let before = (ctx.now() - chrono::Duration::days(i64::from(days))).timestamp_millis();
    let old: Vec<(String, String, i64, String)> = {
        let mut st = ctx.conn().prepare_cached(
            "SELECT name, source, received_at, message_type FROM received
             WHERE received_at < ?1 ORDER BY received_at LIMIT ?2",
        )?;
        st.query_map(params![before, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?
    };
    for (name, source, at, message_type) in &old {
        ctx.conn()
            .execute("DELETE FROM received WHERE name = ?1", params![name])?;
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
                from_millis(*at)?
            ),
        )?;
        // Only reports are listed to anyone; other payloads go unannounced.
        if message_type == MessageType::MedicalReports.as_str() {
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

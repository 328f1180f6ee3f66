//! Bearer-token sessions as stored: only a token's SHA-256 (see `crate::session`).

use crate::store::sql::params;
use carebridge_protocol::practitioner::Role;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::Viewer;
use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// A live session, as found by its token.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Who it belongs to.
    pub viewer: Viewer,
    /// The user's display name or the device's label.
    pub name: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Stores a new session.
pub fn insert(
    w: &WriteCtx<'_>,
    hash: &[u8; 32],
    viewer: &Viewer,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<(), StoreError> {
    let kind = match viewer {
        Viewer::Staff { .. } => "staff",
        Viewer::Kiosk { .. } => "kiosk",
    };
    w.conn().prepare_cached(
        "INSERT INTO sessions (token_hash, principal_kind, principal_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &hash[..],
        kind,
        viewer.principal_id().to_string(),
        now.timestamp_millis(),
        expires.timestamp_millis()
    ])?;
    Ok(())
}

/// Finds the live session of a token: not expired, its account enabled, its device not revoked.
pub fn lookup(
    tx: &Tx<'_>,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<SessionInfo>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT s.principal_kind, s.principal_id, s.expires_at, p.role, p.display_name, k.label
         FROM sessions s
         LEFT JOIN practitioners p ON s.principal_kind = 'staff' AND p.id = s.principal_id AND p.disabled = 0
         LEFT JOIN kiosk_devices k ON s.principal_kind = 'kiosk' AND k.id = s.principal_id AND k.revoked = 0
         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )?;
    let mut rows = st.query(params![&hash[..], now.timestamp_millis()])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let kind: String = r.get(0)?;
    let id: String = r.get(1)?;
    let id: Uuid = id
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("session principal {id}")))?;
    let expires_at = from_millis(r.get(2)?)?;
    let info = match kind.as_str() {
        "staff" => {
            let (Some(role), Some(name)) = (
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ) else {
                return Ok(None);
            };
            let role =
                Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?;
            SessionInfo {
                viewer: Viewer::Staff {
                    id: carebridge_protocol::PractitionerId(id),
                    role,
                },
                name,
                expires_at,
            }
        }
        _ => {
            let Some(label) = r.get::<_, Option<String>>(5)? else {
                return Ok(None);
            };
            SessionInfo {
                viewer: Viewer::Kiosk {
                    id: carebridge_protocol::KioskDeviceId(id),
                },
                name: label,
                expires_at,
            }
        }
    };
    Ok(Some(info))
}

/// Ends one session; returns whether it existed.
pub fn delete(w: &WriteCtx<'_>, hash: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(w.conn()
        .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([&hash[..]])?
        > 0)
}

/// Ends every session of a principal; returns how many.
pub fn delete_for_principal(w: &WriteCtx<'_>, principal: Uuid) -> Result<usize, StoreError> {
    Ok(w.conn()
        .prepare_cached("DELETE FROM sessions WHERE principal_id = ?1")?
        .execute([principal.to_string()])?)
}

/// Deletes expired sessions; returns how many.
pub fn prune(w: &WriteCtx<'_>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    Ok(w.conn()
        .prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
        .execute([now.timestamp_millis()])?)
}

//! Admin updates as stored: those that arrived (`in`, on a hospital) and those sent (`out`,
//! on an insurer), and who acknowledged each.

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::federation::payload::{AdminUpdate, AdminUpdateMessage, UpdateAudience};
use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

const COLUMNS: &str = "id, peer, from_name, title, body, audience, sent_at, version, direction";

/// Which way an update went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// It arrived from a peer.
    In,
    /// This node sent it.
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

fn from_row(r: &Row) -> Result<AdminUpdate, StoreError> {
    let id: String = r.get(0)?;
    let audience: String = r.get(5)?;
    Ok(AdminUpdate {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("update id {id}")))?,
        peer: r.get(1)?,
        from: r.get(2)?,
        title: r.get(3)?,
        body: r.get(4)?,
        audience: UpdateAudience::parse(&audience)
            .ok_or_else(|| StoreError::Corrupt(format!("audience {audience}")))?,
        sent_at: from_millis(r.get(6)?)?,
        incoming: r.get::<_, String>(8)? == "in",
        acknowledged: false,
        acknowledgements: 0,
        version: r.get(7)?,
    })
}

/// One update of that direction (not whether anyone acknowledged it).
pub fn get(
    tx: &Tx<'_>,
    id: uuid::Uuid,
    direction: Direction,
) -> Result<Option<AdminUpdate>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM admin_updates WHERE id = ?1 AND direction = ?2"
    ))?;
    let mut rows = st.query(params![id.to_string(), direction.as_str()])?;
    rows.next()?.map(from_row).transpose()
}

/// Up to `limit` updates of that direction, newest first.
pub fn list(tx: &Tx<'_>, direction: Direction, limit: u32) -> Result<Vec<AdminUpdate>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM admin_updates WHERE direction = ?1 ORDER BY sent_at DESC LIMIT ?2"
    ))?;
    let mut rows = st.query(params![direction.as_str(), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Stores an update exchanged with `peer`, from `from_name` as people read it; false when one
/// with its id is already stored (a repeat changes nothing).
pub fn insert(
    w: &WriteCtx<'_>,
    direction: Direction,
    peer: &str,
    from_name: &str,
    m: &AdminUpdateMessage,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO admin_updates (id, direction, peer, from_name, title, body, audience, sent_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1) ON CONFLICT (id) DO NOTHING",
        params![
            m.id.to_string(),
            direction.as_str(),
            peer,
            from_name,
            m.title,
            m.body,
            m.audience.as_str(),
            m.sent_at.timestamp_millis()
        ],
    )? == 1)
}

/// Records that `who` acknowledged update `id`; false when they had already.
pub fn insert_ack(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    who: &str,
    who_name: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO admin_update_acks (update_id, who, who_name, acknowledged_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        params![id.to_string(), who, who_name, at.timestamp_millis()],
    )? == 1)
}

/// Bumps an update's version (its acknowledgements changed).
pub fn bump_version(w: &WriteCtx<'_>, id: uuid::Uuid) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE admin_updates SET version = version + 1 WHERE id = ?1",
        [id.to_string()],
    )?;
    Ok(())
}

/// How many acknowledged update `id`.
pub fn acks(tx: &Tx<'_>, id: uuid::Uuid) -> Result<u32, StoreError> {
    Ok(tx.conn.query_row(
        "SELECT count(*) FROM admin_update_acks WHERE update_id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )?)
}

/// Whether `who` acknowledged update `id`.
pub fn acked_by(tx: &Tx<'_>, id: uuid::Uuid, who: &str) -> Result<bool, StoreError> {
    Ok(tx
        .conn
        .query_row(
            "SELECT 1 FROM admin_update_acks WHERE update_id = ?1 AND who = ?2",
            params![id.to_string(), who],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

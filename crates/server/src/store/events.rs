//! The event log as stored: what the live stream replays and the snapshot is positioned by.
//! Rows are appended by [`super::WriteCtx::emit`], in the transaction of the change they
//! describe.

use crate::store::sql::{Dialect, params};
use carebridge_protocol::event::EventKind;

use crate::events::Audience;
use crate::store::{StoreError, Tx, WriteCtx};

/// One logged event, as the stream replays it.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Its id: the SSE `id:`.
    pub id: i64,
    /// Its kind: the SSE `event:`.
    pub kind: String,
    /// Its JSON: the SSE `data:`.
    pub data: String,
    /// Who may see it.
    pub audience: Audience,
}

/// The column holding an event's id in the stream: on SQLite, whose one writer commits in
/// the order it inserts, the row id; on PostgreSQL the place the relay gave it after its
/// transaction and every older one ended (an event not yet placed is not in the log yet).
fn place(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "id",
        Dialect::Postgres => "position",
    }
}

/// The newest event's id (0 when the log is empty).
pub fn head(tx: &Tx<'_>) -> Result<i64, StoreError> {
    let id = place(tx.conn.dialect());
    Ok(tx.conn.query_row(
        &format!("SELECT COALESCE(MAX({id}), 0) FROM events"),
        [],
        |r| r.get(0),
    )?)
}

/// The oldest retained event's id, if any is retained.
pub fn oldest(tx: &Tx<'_>) -> Result<Option<i64>, StoreError> {
    let id = place(tx.conn.dialect());
    Ok(tx
        .conn
        .query_row(&format!("SELECT MIN({id}) FROM events"), [], |r| r.get(0))?)
}

/// Up to `limit` events with ids in `(after, to]`, oldest first.
pub fn page(tx: &Tx<'_>, after: i64, to: i64, limit: i64) -> Result<Vec<LoggedEvent>, StoreError> {
    let id = place(tx.conn.dialect());
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {id}, kind, data, aud_roles, aud_practitioner, aud_kiosk FROM events
         WHERE {id} > ?1 AND {id} <= ?2 ORDER BY {id} LIMIT ?3"
    ))?;
    let mut rows = st.query(params![after, to, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let p: Option<String> = r.get(4)?;
        let k: Option<String> = r.get(5)?;
        out.push(LoggedEvent {
            id: r.get(0)?,
            kind: r.get(1)?,
            data: r.get(2)?,
            audience: Audience {
                roles: r.get(3)?,
                practitioner: p.and_then(|s| s.parse().ok()),
                kiosk: k.and_then(|s| s.parse().ok()),
            },
        });
    }
    Ok(out)
}

/// Deletes the logged arrival of the received payload `name` (a `received.reports` event
/// carries the payload's whole content): once retention deletes the payload, nobody replaying
/// the log may read it again. Returns how many events went.
pub fn forget_received(w: &WriteCtx<'_>, name: &str) -> Result<usize, StoreError> {
    // Read and matched here: on PostgreSQL the data is sealed, out of SQL's reach. Arrivals
    // are few (one per payload received).
    let mut st = w
        .conn
        .prepare_cached("SELECT id, data FROM events WHERE kind = ?1")?;
    let mut rows = st.query([EventKind::ReceivedReports.as_str()])?;
    let mut ids: Vec<i64> = Vec::new();
    while let Some(r) = rows.next()? {
        let data: serde_json::Value = serde_json::from_str(&r.get::<_, String>(1)?)?;
        if data.get("name").and_then(serde_json::Value::as_str) == Some(name) {
            ids.push(r.get(0)?);
        }
    }
    drop(rows);
    let mut forget = w.conn.prepare_cached("DELETE FROM events WHERE id = ?1")?;
    for id in &ids {
        forget.execute([*id])?;
    }
    Ok(ids.len())
}

/// Deletes all but the newest `retained` events; returns how many went.
pub fn prune(w: &WriteCtx<'_>, retained: i64) -> Result<usize, StoreError> {
    let id = place(w.conn.dialect());
    Ok(w.conn.execute(
        &format!("DELETE FROM events WHERE {id} <= (SELECT MAX({id}) FROM events) - ?1"),
        [retained],
    )?)
}

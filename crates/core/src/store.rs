//! The encrypted local mirror of what the signed-in user may see.
//!
//! SQLCipher with a 256-bit key. Until the OS keychain path lands, the key is derived with
//! Argon2id from a passphrase and a random salt kept beside the database (the salt is not
//! secret). Records are kept by kind and id with their version; applying a record never lets
//! an older version replace a newer one, so snapshots and events can arrive in any overlap.
//! All work on the connection runs on a blocking thread, never on the async executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::Argon2;
use carebridge_protocol::event::LiveEvent;
use carebridge_protocol::snapshot::SnapshotItem;
use rand::RngCore;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::CoreError;

/// A 256-bit SQLCipher key.
#[derive(Clone)]
pub struct LocalKey([u8; 32]);

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKey(..)")
    }
}

impl LocalKey {
    /// Derives a key from a passphrase with Argon2id. CPU- and memory-heavy: call it off the
    /// async threads.
    pub fn derive(passphrase: &str, salt: &[u8]) -> Result<Self, CoreError> {
        let mut k = [0u8; 32];
        Argon2::default()
            .hash_password_into(passphrase.as_bytes(), salt, &mut k)
            .map_err(|e| CoreError::Task(format!("key derivation: {e}")))?;
        Ok(Self(k))
    }

    /// The salt kept beside `db` (made on first use).
    pub fn salt_for(db: &Path) -> Result<Vec<u8>, CoreError> {
        let path = PathBuf::from(format!("{}.salt", db.display()));
        match std::fs::read(&path) {
            Ok(s) if s.len() == 16 => Ok(s),
            Ok(_) => Err(CoreError::Task(format!("{} is damaged", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut s = vec![0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut s);
                std::fs::write(&path, &s)
                    .map_err(|e| CoreError::Task(format!("{}: {e}", path.display())))?;
                Ok(s)
            }
            Err(e) => Err(CoreError::Task(format!("{}: {e}", path.display()))),
        }
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;
CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
"#;

/// Where the first sync stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The event id of the first snapshot's `begin`: follow the live stream from here.
    pub snapshot_event_id: Option<i64>,
    /// The last record stored, to resume an interrupted snapshot after.
    pub snapshot_cursor: Option<String>,
    /// The snapshot arrived whole.
    pub snapshot_complete: bool,
    /// The last live event applied (resume the stream with it as `Last-Event-ID`).
    pub last_event_id: Option<i64>,
}

/// One profile's encrypted local database.
#[derive(Clone)]
pub struct LocalStore {
    conn: Arc<std::sync::Mutex<Connection>>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalStore(..)")
    }
}

impl LocalStore {
    /// Opens (creating) the database at `path` with `key`. Blocking.
    pub fn open(path: &Path, key: &LocalKey) -> Result<Self, CoreError> {
        #[expect(
            clippy::disallowed_methods,
            reason = "this is the core's store module, which applies the key"
        )]
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key.0)))?;
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE; PRAGMA cipher_log = off;");
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                return Err(CoreError::WrongKey);
            }
            Err(e) => return Err(e.into()),
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(std::sync::Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, CoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .map_err(|_| CoreError::Task("the local database lock is poisoned".into()))?;
            f(&mut c)
        })
        .await
        .map_err(|e| CoreError::Task(e.to_string()))?
    }

    /// Stores a batch of snapshot lines in one transaction, with where the snapshot stands.
    pub async fn apply_snapshot_batch(&self, items: Vec<SnapshotItem>) -> Result<(), CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            for item in &items {
                match item {
                    SnapshotItem::Begin { event_id } => {
                        // Only the first snapshot's point counts: events are followed from it.
                        tx.execute(
                            "INSERT INTO sync_state (key, value) VALUES ('snapshot_event_id', ?1) ON CONFLICT (key) DO NOTHING",
                            [event_id.to_string()],
                        )?;
                    }
                    SnapshotItem::End { .. } => {
                        tx.execute(
                            "INSERT INTO sync_state (key, value) VALUES ('snapshot_complete', '1') ON CONFLICT (key) DO UPDATE SET value = '1'",
                            [],
                        )?;
                    }
                    record => {
                        upsert(&tx, record)?;
                        if let Some(cursor) = record.cursor() {
                            tx.execute(
                                "INSERT INTO sync_state (key, value) VALUES ('snapshot_cursor', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                [cursor],
                            )?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Applies live events in one transaction, together with the last event id, so a crash
    /// can never keep a change without its position or the position without its change.
    /// Events at or before the stored position are skipped (a replay after a reconnect), and a
    /// record older than the stored one changes nothing. Returns how many events were new.
    pub async fn apply_events(&self, events: Vec<(i64, LiveEvent)>) -> Result<usize, CoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let last: i64 = tx
                .query_row("SELECT value FROM sync_state WHERE key = 'last_event_id'", [], |r| r.get::<_, String>(0))
                .optional()?
                .and_then(|v| v.parse().ok())
                .or_else(|| {
                    tx.query_row("SELECT value FROM sync_state WHERE key = 'snapshot_event_id'", [], |r| r.get::<_, String>(0))
                        .ok()
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0);
            let mut head = last;
            let mut applied = 0;
            for (id, event) in &events {
                if *id <= head {
                    continue;
                }
                let (kind, rid, version, data) = match event {
                    LiveEvent::Appointment(a) => ("appointment", a.id.to_string(), a.version, serde_json::to_string(a)),
                    LiveEvent::Patient(p) => ("patient", p.id.to_string(), p.version, serde_json::to_string(p)),
                    LiveEvent::Schedule(s) => ("schedule", s.practitioner_id.to_string(), s.version, serde_json::to_string(s)),
                    // Absences never change once recorded.
                    LiveEvent::Absence(a) => ("absence", a.id.to_string(), 1, serde_json::to_string(a)),
                };
                let data = data.map_err(|e| CoreError::Protocol(e.to_string()))?;
                put(&tx, kind, &rid, version, &data)?;
                head = *id;
                applied += 1;
            }
            if head > last {
                tx.execute(
                    "INSERT INTO sync_state (key, value) VALUES ('last_event_id', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [head.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(applied)
        })
        .await
    }

    /// Forgets where the sync stands (after the node's `reset`), keeping the records: the next
    /// first sync refreshes them, and versions keep older data from winning.
    pub async fn reset_sync(&self) -> Result<(), CoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sync_state", [])?;
            Ok(())
        })
        .await
    }

    /// Where the first sync stands.
    pub async fn sync_state(&self) -> Result<SyncState, CoreError> {
        self.with(|c| {
            let get = |k: &str| -> Result<Option<String>, CoreError> {
                Ok(
                    c.query_row("SELECT value FROM sync_state WHERE key = ?1", [k], |r| {
                        r.get(0)
                    })
                    .optional()?,
                )
            };
            Ok(SyncState {
                snapshot_event_id: get("snapshot_event_id")?.and_then(|v| v.parse().ok()),
                snapshot_cursor: get("snapshot_cursor")?,
                snapshot_complete: get("snapshot_complete")?.is_some(),
                last_event_id: get("last_event_id")?.and_then(|v| v.parse().ok()),
            })
        })
        .await
    }

    /// How many records of a kind (`patient`, `appointment`, …) are stored.
    pub async fn count(&self, kind: &'static str) -> Result<u64, CoreError> {
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM records WHERE kind = ?1",
                [kind],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }

    /// The stored version of a record, if any.
    pub async fn version_of(
        &self,
        kind: &'static str,
        id: String,
    ) -> Result<Option<i64>, CoreError> {
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT version FROM records WHERE kind = ?1 AND id = ?2",
                params![kind, id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}

/// Stores a record unless a newer version of it is already there.
fn upsert(tx: &rusqlite::Transaction<'_>, item: &SnapshotItem) -> Result<(), CoreError> {
    let (kind, id, version, data) = match item {
        SnapshotItem::Practitioner(p) => (
            "practitioner",
            p.id.to_string(),
            p.version,
            serde_json::to_string(p),
        ),
        SnapshotItem::Schedule(s) => (
            "schedule",
            s.practitioner_id.to_string(),
            s.version,
            serde_json::to_string(s),
        ),
        SnapshotItem::Patient(p) => (
            "patient",
            p.id.to_string(),
            p.version,
            serde_json::to_string(p),
        ),
        SnapshotItem::Appointment(a) => (
            "appointment",
            a.id.to_string(),
            a.version,
            serde_json::to_string(a),
        ),
        SnapshotItem::Begin { .. } | SnapshotItem::End { .. } => return Ok(()),
    };
    let data = data.map_err(|e| CoreError::Protocol(e.to_string()))?;
    put(tx, kind, &id, version, &data)
}

/// Stores a record unless a newer (or the same) version of it is already there.
fn put(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    id: &str,
    version: i64,
    data: &str,
) -> Result<(), CoreError> {
    tx.prepare_cached(
        "INSERT INTO records (kind, id, version, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version, data = excluded.data
         WHERE excluded.version > records.version",
    )?
    .execute(params![kind, id, version, data])?;
    Ok(())
}

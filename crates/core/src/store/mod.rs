//! The encrypted local mirror of what the signed-in user may see, with the user's own writes
//! waiting for the node.
//!
//! SQLCipher with a raw 256-bit key (from the OS keychain, or derived from a passphrase: see
//! [`crate::profile`]). Records are kept in typed tables by kind, with the columns the UI's
//! queries need indexed and an FTS5 index over patients and appointment reasons, all inside the
//! encrypted file. Applying a record never lets an older version replace a newer one, so
//! snapshots and events can arrive in any overlap.
//!
//! Every call runs on a blocking thread, never on the async executor. One connection does all
//! the reading and writing; during a first sync a second one only copies the write-ahead log
//! into the file ([`LocalStore::checkpointer`]).

mod mirror;
#[cfg(test)]
mod occupancy_tests;
mod outbox;
mod query;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::Argon2;
use rand::RngCore;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::CoreError;

pub use mirror::{Applied, NodeRecord, SnapshotLine};
pub use outbox::{OutboxItem, OutboxState, Outcome, Write};
pub use query::{AppointmentRow, PatientQuery, PatientRow, ReportRow, SearchHit, day_bounds};

/// A 256-bit SQLCipher key.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalKey([u8; 32]);

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKey(..)")
    }
}

impl LocalKey {
    /// A fresh random key, for a new profile whose key the OS keychain will keep.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// The key from its 32 bytes (as the keychain returns them).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key's bytes, to hand to the keychain.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives a key from a passphrase with Argon2id. CPU- and memory-heavy: call it off the
    /// async threads.
    pub fn derive(passphrase: &str, salt: &[u8]) -> Result<Self, CoreError> {
        let mut k = [0u8; 32];
        Argon2::default()
            .hash_password_into(passphrase.as_bytes(), salt, &mut k)
            .map_err(|e| CoreError::Task(format!("key derivation: {e}")))?;
        Ok(Self(k))
    }

    /// The salt kept beside `db` (made on first use). Not secret: it only makes a passphrase's
    /// key differ between profiles.
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
    /// Where it is and its key (`None`: the benchmark's plain file), for the checkpointer's
    /// connection of its own.
    file: Arc<(PathBuf, Option<LocalKey>)>,
}

/// A thread copying the store's write-ahead log into its database file after commits (see
/// [`LocalStore::checkpointer`]). It ends when the last clone is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    poke: std::sync::mpsc::SyncSender<()>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer(..)")
    }
}

impl Checkpointer {
    /// A transaction committed: copy the log when the thread is free (never waits).
    pub fn committed(&self) {
        let _ = self.poke.try_send(());
    }

    /// Ends the thread once it has copied what was committed before this call, if this is the
    /// last clone (otherwise only asks for that copy). Blocking.
    pub fn finish(self) {
        self.committed();
        let thread = (Arc::strong_count(&self.thread) == 1)
            .then(|| self.thread.lock().ok().and_then(|mut t| t.take()))
            .flatten();
        drop(self);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalStore(..)")
    }
}

/// Opens the file and applies the key (if any); a key that does not open it is
/// [`CoreError::WrongKey`].
fn connect(path: &Path, key: Option<&LocalKey>) -> Result<Connection, CoreError> {
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the core's store module, which applies the key"
    )]
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    if let Some(key) = key {
        // 8 KiB pages: a large first sync takes a fifth less time than with the default
        // 4 KiB (fewer pages to encrypt and authenticate, shallower trees); 16 KiB gains
        // little more there and makes each small commit of live events dearer (measured,
        // docs/performance.md). HMAC-SHA256 per page
        // instead of SHA-512, which CPUs with SHA extensions compute several times faster
        // (SHA-256 HMAC is as sound for integrity). Both must be given every time the file
        // is opened.
        conn.execute_batch(&format!(
                "PRAGMA key = \"x'{}'\"; PRAGMA cipher_page_size = 8192; PRAGMA cipher_hmac_algorithm = HMAC_SHA256;",
                hex::encode(key.0)
            ))?;
        // SQLCipher would otherwise log a failed key check to stderr before we report it.
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE; PRAGMA cipher_log = off;");
    }
    if key.is_none() {
        // The same page size as the encrypted files, so the comparison is like for like.
        conn.pragma_update(None, "page_size", 8192)?;
    }
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
    Ok(conn)
}

impl LocalStore {
    /// Opens (creating) the database at `path` with `key`, bringing its schema up to date.
    /// Blocking. A key that does not open it is [`CoreError::WrongKey`].
    pub fn open(path: &Path, key: &LocalKey) -> Result<Self, CoreError> {
        Self::open_with(path, Some(key))
    }

    /// Opens an unencrypted database with the same schema: only for measuring what the
    /// encryption costs (the benchmark compares the two on the same work).
    #[doc(hidden)]
    pub fn open_plain_for_benchmark(path: &Path) -> Result<Self, CoreError> {
        Self::open_with(path, None)
    }

    fn open_with(path: &Path, key: Option<&LocalKey>) -> Result<Self, CoreError> {
        let mut conn = connect(path, key)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with NORMAL loses at most the last transactions on a power cut, never
        // consistency; what the user wrote stays in the outbox until the node acknowledged it,
        // and the mirror is re-read from the node.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -schema::CACHE_KIB)?;
        schema::migrate(&mut conn)?;
        // A first sync builds the indexes it dropped at its end; should a synced store lack
        // one all the same, it is built now rather than every query scanning without it.
        if sync_state(&conn)?.snapshot_complete {
            schema::ensure_bulk_indexes(&conn)?;
        }
        Ok(Self {
            conn: Arc::new(std::sync::Mutex::new(conn)),
            file: Arc::new((path.to_owned(), key.cloned())),
        })
    }

    /// Starts copying what each commit adds to the write-ahead log into the database file on a
    /// thread and a connection of its own, for as long as the returned [`Checkpointer`] (or a
    /// clone) lives: a first sync's writer then mostly only appends to the log, and the copying
    /// (about a sixth of a large first sync, measured) runs on the other core. The writer's own
    /// commit still copies the log once it reaches 1000 pages, should this one fall behind.
    pub async fn checkpointer(&self) -> Result<Checkpointer, CoreError> {
        let file = self.file.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, CoreError> {
            let conn = connect(&file.0, file.1.as_ref())?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        })
        .await
        .map_err(|e| CoreError::Task(e.to_string()))??;
        // One poke waiting is enough: the checkpoint it starts copies every commit before it.
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while pokes.recv().is_ok() {
                    // PASSIVE never waits for the writer; what it leaves, the next one copies.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "checkpoint skipped");
                    }
                }
            })
            .map_err(|e| CoreError::Task(format!("checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            poke,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    pub(crate) async fn with<T: Send + 'static>(
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

    /// Forgets where the sync stands (after the node's `reset`), keeping the records until the
    /// next first sync has read the snapshot again: it refreshes what it holds (versions keep
    /// older data from winning) and, once whole, removes what it does not hold, unless the user
    /// has changes to it waiting for the node.
    pub async fn reset_sync(&self) -> Result<(), CoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sync_state", [])?;
            // The kinds a snapshot carries (absences come as events only).
            for kind in mirror::SNAPSHOT_KINDS {
                tx.execute(
                    &format!(
                        "INSERT OR IGNORE INTO unconfirmed (kind, id) SELECT ?1, id FROM {kind}"
                    ),
                    [kind],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Where the first sync stands.
    pub async fn sync_state(&self) -> Result<SyncState, CoreError> {
        self.with(|c| sync_state(c)).await
    }

    /// Keeps a value of the profile's own (the signed-in session, the node's URL).
    pub async fn set_setting(
        &self,
        key: &'static str,
        value: Option<String>,
    ) -> Result<(), CoreError> {
        self.with(move |c| {
            match value {
                Some(v) => c.execute(
                    "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, v.as_str()],
                )?,
                None => c.execute("DELETE FROM setting WHERE key = ?1", [key])?,
            };
            Ok(())
        })
        .await
    }

    /// A value set with [`LocalStore::set_setting`].
    pub async fn setting(&self, key: &'static str) -> Result<Option<String>, CoreError> {
        self.with(move |c| {
            Ok(
                c.query_row("SELECT value FROM setting WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
        .await
    }

    /// How many records of a kind (`patient`, `appointment`, …) are stored.
    pub async fn count(&self, kind: &'static str) -> Result<u64, CoreError> {
        let table = mirror::table(kind)?;
        self.with(move |c| {
            Ok(
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64,
            )
        })
        .await
    }

    /// Every record here by kind and id, with its version: what a check compares with the
    /// node's snapshot to see that the mirror holds exactly the node's state.
    pub async fn versions(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, String), i64>, CoreError> {
        self.with(|c| {
            let mut out = std::collections::BTreeMap::new();
            for kind in [
                "practitioner",
                "schedule",
                "patient",
                "appointment",
                "report",
            ] {
                let mut stmt = c.prepare(&format!("SELECT id, version FROM {kind}"))?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
                for row in rows {
                    let (id, version) = row?;
                    out.insert((kind.to_owned(), id), version);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The stored version of a record, if any.
    pub async fn version_of(
        &self,
        kind: &'static str,
        id: String,
    ) -> Result<Option<i64>, CoreError> {
        let table = mirror::table(kind)?;
        self.with(move |c| {
            Ok(c.query_row(
                &format!("SELECT version FROM {table} WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}

fn sync_state(c: &Connection) -> Result<SyncState, CoreError> {
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
}

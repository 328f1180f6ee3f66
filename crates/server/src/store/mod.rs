//! The node's encrypted database, and the only place that knows SQL.
//!
//! The seam (2026-12): the rest of the node calls the typed operations of this module's
//! submodules (`appointments::insert`, `patients::search`, … one module per table group) on
//! [`Tx`] (to read) and [`WriteCtx`] (to write); neither exposes the connection outside
//! `store/`. A second backend implements the same operations and passes the same conformance
//! suite (`tests/store_conformance.rs`); see ARCHITECTURE.md, "The seams".
//!
//! SQLite through rusqlite, encrypted by SQLCipher with a raw 256-bit key (no PBKDF2 at open:
//! the key is random, so stretching it buys nothing and costs ~80 ms per connection).
//!
//! Design (2026-11): SQLite allows one writer at a time, so the node has exactly one writer
//! connection, owned by a dedicated OS thread, and a small pool of reader connections used
//! through `spawn_blocking`. Async code never touches a connection directly.
//!
//! Every write is a job sent to the writer thread. The writer takes whatever jobs are queued
//! (up to [`MAX_BATCH`]), runs each inside its own SAVEPOINT of one transaction, and commits
//! once: a group commit, so one fsync serves many bookings. A job that fails is rolled back
//! to its savepoint alone; its failure is still audited in the same commit. Only after the
//! commit succeeds are the jobs answered and their live events published, so nothing is
//! announced or acknowledged that is not durable.

pub mod appointments;
pub mod audit;
pub mod backup;
pub mod copy;
pub mod documents;
pub mod events;
pub mod federation;
pub mod idempotency;
pub mod imaging;
pub mod keys;
pub mod kiosks;
pub mod mail;
mod migrations;
pub mod patients;
mod pg;
pub mod practitioners;
mod relay;
pub mod reports;
pub mod schedules;
pub mod seal;
pub mod search;
pub mod sessions;
pub mod snapshot;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::audit::{AuditRecord, GENESIS_HASH, Outcome, chain_hash};
use carebridge_protocol::event::EventKind;
use chrono::{DateTime, Utc};
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};
use sql::{Conn, DbError, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
pub use crate::config::Durability;
use crate::events::{Audience, Frame, Hub};

pub use migrations::SCHEMA_VERSION;
/// How often, at most, the PostgreSQL relay looks for events to place and publish when no
/// notification wakes it.
pub use relay::POLL as RELAY_POLL;

/// How many queued jobs one transaction may take.
pub const MAX_BATCH: usize = 128;

/// The name of the database file inside a data directory.
pub const DB_FILE: &str = "carebridge.db";

/// A 256-bit SQLCipher key.
#[derive(Clone)]
pub struct DbKey([u8; 32]);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(..)")
    }
}

impl DbKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut k);
        Self(k)
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(s.trim()).map_err(|_| StoreError::MalformedKey)?;
        let k: [u8; 32] = bytes.try_into().map_err(|_| StoreError::MalformedKey)?;
        Ok(Self(k))
    }

    /// The key's bytes, for keys derived from it.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn pragma(&self) -> String {
        format!("PRAGMA key = \"x'{}'\";", self.to_hex())
    }
}

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not decrypt the file.
    #[error("the database key does not open {0} (wrong key, or not a CareBridge database)")]
    WrongKey(PathBuf),
    /// The key is not 64 hex digits.
    #[error("the database key must be 64 hexadecimal digits (256 bits)")]
    MalformedKey,
    /// The file was written by a newer version.
    #[error(
        "the database has schema version {found}, newer than this build's {known}: upgrade carebridge-node"
    )]
    TooNew {
        /// Found in the file.
        found: i64,
        /// Known to this build.
        known: i64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] DbError),
    /// A stored value did not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The writer thread has stopped (the node is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// A blocking task panicked or was cancelled.
    #[error("a database task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(DbError::Sqlite(e))
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        Self::Database(DbError::Postgres(e))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Opens one connection to an encrypted database and checks that the key fits.
pub fn open_connection(
    path: &Path,
    key: &DbKey,
    read_only: bool,
) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the store module, which applies the key"
    )]
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(&key.pragma())?;
    // SQLCipher logs a failed key check to stderr itself once keyed; the caller reports it
    // once, clearly, instead.
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE; PRAGMA cipher_log = off;");
    // The key is only checked when the first page is read.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(StoreError::WrongKey(path.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// An open node database: one writer thread and a pool of readers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

// Field order matters: `jobs` is dropped before `_writer`, so the writer's queue is closed and
// the thread can finish before it is joined.
struct StoreInner {
    jobs: mpsc::Sender<Job>,
    _writer: WriterThread,
    readers: Mutex<Vec<Conn>>,
    reader_free: Condvar,
    location: Location,
    /// PostgreSQL only: this process's share of the cluster's one live stream.
    _relay: Option<relay::Relay>,
    /// Whether this process does the once-only work of the processes sharing the database.
    duty: tokio::sync::watch::Receiver<bool>,
    /// A new reader in place of a lost one (PostgreSQL only).
    reconnect_reader: Option<Reconnect>,
}

/// Where the database lives, to open more connections to it.
enum Location {
    /// A SQLCipher file and its key.
    File { path: PathBuf, key: DbKey },
    /// A PostgreSQL database.
    Postgres(pg::Database),
}

/// The writer thread, joined when the last handle to the store goes. A detached writer would
/// still be closing its connection (SQLCipher freeing its OpenSSL contexts) while the process
/// exits and OpenSSL's exit handler frees the same memory: a double free at exit.
struct WriterThread(Option<std::thread::JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // A job holding the last handle is dropped on the writer itself: it cannot join
            // itself, and it is about to return anyway.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Store");
        match &self.inner.location {
            Location::File { path, .. } => d.field("path", path),
            // The URL may carry a password.
            Location::Postgres { .. } => d.field("backend", &"postgres"),
        };
        d.finish()
    }
}

type Completion = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
/// Opens a new connection in place of a lost one (PostgreSQL only).
type Reconnect = Arc<dyn Fn() -> Result<Conn, StoreError> + Send + Sync>;
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Completion + Send>;

/// Who does an audited action, and from where.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// `staff:<id>`, `kiosk:<id>`, `anonymous` or `node`.
    pub actor: String,
    /// e.g. `appointment.book`.
    pub action: String,
    /// The record, when known before the job runs.
    pub entity: String,
    /// The client's address.
    pub source: String,
}

/// An open transaction on the node's database: what every store operation takes to read.
/// A reader's (`Store::read`, [`Reader`]) sees one consistent state; the writer's (through
/// [`WriteCtx`], which derefs to it) sees its own job's changes. Outside `store/` it is opaque:
/// only the operations in this module's submodules read or write through it.
#[derive(Clone, Copy)]
pub struct Tx<'a> {
    conn: &'a Conn,
}

impl<'a> Tx<'a> {
    /// The connection, for the store's own operations.
    pub(in crate::store) fn conn(&self) -> &'a Conn {
        self.conn
    }
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx(..)")
    }
}

/// A read-only connection of its own, outside the pool: for a long read (a snapshot) that
/// should not hold one of the pool's, and for the command line's offline reads. Blocking: use
/// it off the async threads.
pub struct Reader {
    conn: Conn,
}

impl Reader {
    /// Opens the database at `path` read-only with `key`.
    pub fn open(path: &Path, key: &DbKey) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Conn::Sqlite(open_connection(path, key, true)?),
        })
    }

    /// The transaction to read through. Without [`Reader::begin`], each operation reads the
    /// latest committed state on its own.
    pub fn tx(&self) -> Tx<'_> {
        Tx { conn: &self.conn }
    }

    /// Opens a PostgreSQL database read-only, its patient data opened with keys derived from
    /// `key`.
    pub fn open_postgres(url: &str, key: &DbKey) -> Result<Self, StoreError> {
        Self::open_database(&pg::Database::new(url, key))
    }

    fn open_database(db: &pg::Database) -> Result<Self, StoreError> {
        Ok(Self {
            conn: pg::off_async(|| pg::connect(db, pg::Role::Reader))?,
        })
    }

    /// Starts a read transaction: every operation until [`Reader::end`] sees one state.
    pub fn begin(&self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(match self.conn.dialect() {
            sql::Dialect::Sqlite => "BEGIN",
            // One snapshot for the whole transaction, as SQLite's WAL readers have.
            sql::Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?)
    }

    /// Ends the read transaction [`Reader::begin`] started.
    pub fn end(&self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }
}

/// The writer's view of one job: the open transaction, the time, and what to audit and publish.
/// It derefs to [`Tx`], so every read operation works inside a write too.
pub struct WriteCtx<'a> {
    tx: Tx<'a>,
    now: DateTime<Utc>,
    frames: Vec<Frame>,
    audit_head: &'a mut (i64, String),
    entity: Option<String>,
    detail: Option<String>,
}

impl<'a> std::ops::Deref for WriteCtx<'a> {
    type Target = Tx<'a>;

    fn deref(&self) -> &Tx<'a> {
        &self.tx
    }
}

impl WriteCtx<'_> {
    /// The time of this write, the same for everything it does.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Names the record this job touched, for its audit entry.
    pub fn set_entity(&mut self, entity: impl Into<String>) {
        self.entity = Some(entity.into());
    }

    /// Adds detail to this job's audit entry.
    pub fn set_detail(&mut self, detail: impl Into<String>) {
        self.detail = Some(detail.into());
    }

    /// Appends a change to the event log, to be streamed once the transaction commits.
    /// The record is serialised here, once, and the same bytes go to every subscriber. The
    /// event's id in the stream is the one it is published with: on PostgreSQL it is given
    /// after the commit (store/relay.rs), so it is not known here.
    pub fn emit<T: serde::Serialize>(
        &mut self,
        kind: EventKind,
        audience: Audience,
        record: &T,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_string(record)?;
        let id: i64 = self.tx.conn.prepare_cached(
            "INSERT INTO events (kind, data, aud_roles, aud_practitioner, aud_kiosk, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![
                kind.as_str(),
                self.tx.conn.seal(&data)?,
                audience.roles,
                audience.practitioner.map(|p| p.to_string()),
                audience.kiosk.map(|k| k.to_string()),
                self.now.timestamp_millis(),
            ],
            |r| r.get(0),
        )?;
        self.frames
            .push(Frame::new(id, kind.as_str(), &data, audience));
        Ok(())
    }

    /// Appends an entry to the audit chain.
    pub fn audit(
        &mut self,
        draft: &AuditDraft,
        entity: &str,
        outcome: Outcome,
        detail: &str,
    ) -> Result<(), StoreError> {
        let record = AuditRecord {
            seq: self.audit_head.0 + 1,
            recorded_at: self.now,
            actor: draft.actor.clone(),
            action: draft.action.clone(),
            entity: entity.to_owned(),
            outcome,
            detail: detail.to_owned(),
            source: draft.source.clone(),
            prev_hash: self.audit_head.1.clone(),
        };
        let hash = chain_hash(&record);
        audit::insert(&self.tx, &record, &hash)?;
        // On the writer's thread, inside the span of the request the job came from. Ids and
        // the action only: the detail can hold what someone typed.
        tracing::debug!(
            seq = record.seq,
            action = %record.action,
            entity = %record.entity,
            outcome = ?record.outcome,
            "audited"
        );
        *self.audit_head = (record.seq, hash);
        Ok(())
    }
}

impl Store {
    /// Opens (creating if need be) the database at `path`, applies migrations, and starts the
    /// writer thread, which publishes committed events to `hub`.
    pub fn open(
        path: &Path,
        key: &DbKey,
        durability: Durability,
        clock: Arc<dyn Clock>,
        hub: Hub,
    ) -> Result<Self, StoreError> {
        let mut writer = open_connection(path, key, false)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        migrations::apply(&mut writer)?;
        let writer = Conn::Sqlite(writer);
        let head = audit::head(&Tx { conn: &writer })?;
        let readers = (0..4)
            .map(|_| open_connection(path, key, true).map(Conn::Sqlite))
            .collect::<Result<Vec<_>, _>>()?;
        let location = Location::File {
            path: path.to_owned(),
            key: key.clone(),
        };
        Self::start(writer, readers, head, location, clock, hub, None)
    }

    /// Opens the PostgreSQL database at `url` (`postgres://user@host/db`), applies
    /// migrations (one process at a time, under a lock, when several start together), and
    /// starts the writer thread, which publishes committed events to `hub`.
    pub fn open_postgres(
        url: &str,
        key: &DbKey,
        notifications: bool,
        durability: Durability,
        clock: Arc<dyn Clock>,
        hub: Hub,
    ) -> Result<Self, StoreError> {
        let db = pg::Database {
            listen: notifications,
            ..pg::Database::new(url, key)
        };
        let (writer, readers, head) = pg::off_async(|| {
            let writer = pg::connect(&db, pg::Role::Writer(durability))?;
            pg::migrate(&writer)?;
            let readers = (0..4)
                .map(|_| pg::connect(&db, pg::Role::Reader))
                .collect::<Result<Vec<_>, _>>()?;
            let head = audit::head(&Tx { conn: &writer })?;
            Ok((writer, readers, head))
        })?;
        let (duty, on_duty) = tokio::sync::watch::channel(false);
        let relay = relay::Relay::start(&db, hub.clone(), duty)?;
        let (w, r) = (db.clone(), db.clone());
        let location = Location::Postgres(db);
        let reconnect: [Reconnect; 2] = [
            Arc::new(move || pg::connect(&w, pg::Role::Writer(durability))),
            Arc::new(move || pg::connect(&r, pg::Role::Reader)),
        ];
        let mut store = Self::start(writer, readers, head, location, clock, hub, Some(reconnect))?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner._relay = Some(relay);
            inner.duty = on_duty;
        }
        Ok(store)
    }

    fn start(
        writer: Conn,
        readers: Vec<Conn>,
        head: (i64, String),
        location: Location,
        clock: Arc<dyn Clock>,
        hub: Hub,
        reconnect: Option<[Reconnect; 2]>,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let (reconnect_writer, reconnect_reader) = match reconnect {
            Some([w, r]) => (Some(w), Some(r)),
            None => (None, None),
        };
        let writer = std::thread::Builder::new()
            .name("carebridge-db-writer".into())
            .spawn(move || writer_loop(writer, rx, head, clock, hub, reconnect_writer))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(StoreInner {
                jobs: tx,
                _writer: WriterThread(Some(writer)),
                readers: Mutex::new(readers),
                reader_free: Condvar::new(),
                location,
                _relay: None,
                // One process per database: always on duty.
                duty: tokio::sync::watch::channel(true).1,
                reconnect_reader,
            }),
        })
    }

    /// A read-only connection of its own, for a long read (a snapshot) that should not hold
    /// one of the pool's. Blocking: call it off the async threads.
    pub fn open_reader(&self) -> Result<Reader, StoreError> {
        match &self.inner.location {
            Location::File { path, key } => Reader::open(path, key),
            Location::Postgres(db) => Reader::open_database(db),
        }
    }

    /// Whether this process does the once-only work (delivery to peers, mail, pruning,
    /// checkpoints) of the processes sharing the database, as it changes: always on SQLite;
    /// on PostgreSQL while it holds the duty lock, which another process takes over when
    /// this one dies or loses its connection.
    pub fn duty(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.duty.clone()
    }

    /// Which database the store runs on.
    pub fn dialect(&self) -> sql::Dialect {
        match self.inner.location {
            Location::File { .. } => sql::Dialect::Sqlite,
            Location::Postgres { .. } => sql::Dialect::Postgres,
        }
    }

    /// Runs `f` as one audited job of the writer's next transaction and returns its result
    /// once the transaction has committed. On error, `f`'s changes are rolled back and, when
    /// `audit` is given, the failure is audited with the error's (public) text.
    pub async fn write<T, E, F>(&self, audit: Option<AuditDraft>, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + std::fmt::Display + Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |ctx: &mut WriteCtx<'_>| {
            let _g = span.enter();
            let result = run_job(ctx, audit.as_ref(), f);
            Box::new(move |commit: Result<(), Arc<StoreError>>| {
                let answer = match commit {
                    Ok(()) => result,
                    Err(e) => Err(E::from(StoreError::Task(format!("commit failed: {e}")))),
                };
                let _ = tx.send(answer);
            })
        });
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::WriterGone))?;
        rx.await.map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// Write jobs waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.inner.jobs.max_capacity() - self.inner.jobs.capacity()
    }

    /// Runs `f` on a reader connection, off the async threads.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let lease = ReaderLease::take(&inner);
            f(&Tx { conn: lease.conn() })
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }
}

/// A reader connection borrowed from the pool; it goes back when dropped, even if the read
/// panicked, so a bad request can never drain the pool.
struct ReaderLease<'a> {
    inner: &'a StoreInner,
    conn: Option<Conn>,
}

impl<'a> ReaderLease<'a> {
    fn take(inner: &'a StoreInner) -> Self {
        let mut pool = inner.readers.lock();
        loop {
            if let Some(mut c) = pool.pop() {
                if c.is_lost()
                    && let Some(again) = &inner.reconnect_reader
                {
                    // The server came back (a restart, a failover behind the same address):
                    // a new connection, or the lost one, whose use then fails this read alone.
                    drop(pool);
                    if let Ok(fresh) = again() {
                        c = fresh;
                    }
                }
                return Self {
                    inner,
                    conn: Some(c),
                };
            }
            inner.reader_free.wait(&mut pool);
        }
    }

    fn conn(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for ReaderLease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.inner.readers.lock().push(c);
            self.inner.reader_free.notify_one();
        }
    }
}

fn run_job<T, E, F>(ctx: &mut WriteCtx<'_>, audit: Option<&AuditDraft>, f: F) -> Result<T, E>
where
    E: From<StoreError> + std::fmt::Display,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E>,
{
    ctx.tx
        .conn
        .execute_batch("SAVEPOINT job")
        .map_err(StoreError::from)?;
    let frames_before = ctx.frames.len();
    let head_before = ctx.audit_head.clone();
    ctx.entity = None;
    ctx.detail = None;
    let draft_entity = || audit.map(|a| a.entity.clone()).unwrap_or_default();
    // Everything that can fail on the way to a released savepoint goes through one error
    // path, which rolls the job back whole: nothing of a failed job is ever committed.
    let result = f(ctx).and_then(|v| {
        if let Some(draft) = audit {
            let entity = ctx.entity.take().unwrap_or_else(draft_entity);
            let detail = ctx.detail.take().unwrap_or_default();
            ctx.audit(draft, &entity, Outcome::Success, &detail)?;
        }
        ctx.tx
            .conn
            .execute_batch("RELEASE job")
            .map_err(StoreError::from)?;
        Ok(v)
    });
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            ctx.tx
                .conn
                .execute_batch("ROLLBACK TO job; RELEASE job")
                .map_err(StoreError::from)?;
            ctx.frames.truncate(frames_before);
            *ctx.audit_head = head_before;
            if let Some(draft) = audit {
                let entity = ctx.entity.take().unwrap_or_else(draft_entity);
                // What the job noted before it failed (the username a failed sign-in tried)
                // stays, after the reason.
                let detail = match ctx.detail.take() {
                    Some(noted) => format!("{e} ({noted})"),
                    None => e.to_string(),
                };
                ctx.audit(draft, &entity, Outcome::Failure, &detail)?;
            }
            Err(e)
        }
    }
}

fn writer_loop(
    mut conn: Conn,
    mut rx: mpsc::Receiver<Job>,
    mut head: (i64, String),
    clock: Arc<dyn Clock>,
    hub: Hub,
    reconnect: Option<Reconnect>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if conn.is_lost()
            && let Some(again) = &reconnect
        {
            // The batch that found the connection lost has failed; this one gets a new one
            // (the server restarted, or another took over at the same address).
            match again() {
                Ok(fresh) => {
                    tracing::warn!("the database connection was lost; reconnected");
                    conn = fresh;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the database is unreachable; the writes waiting were refused");
                    // Dropped unanswered, their callers are told the writer could not take them.
                    batch.clear();
                    continue;
                }
            }
        }
        let committed_head = head.clone();
        let mut completions = Vec::with_capacity(batch.len());
        let mut frames = Vec::new();
        let begin = match conn.dialect() {
            // Take the write lock at once, not at the first write (which could then fail busy).
            sql::Dialect::Sqlite => conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::from),
            // Other processes write to the same database: the batch appends to the one audit
            // chain after whatever they committed.
            sql::Dialect::Postgres => pg::begin_batch(&conn).map(|h| head = h),
        };
        let outcome = match begin {
            Ok(()) => {
                let mut jobs = batch.drain(..);
                let mut aborted = false;
                for job in jobs.by_ref() {
                    let frames_before = frames.len();
                    let head_before = head.clone();
                    let mut ctx = WriteCtx {
                        tx: Tx { conn: &conn },
                        // Stored to the millisecond: answer what a later read returns.
                        now: chrono::SubsecRound::trunc_subsecs(clock.now(), 3),
                        frames: std::mem::take(&mut frames),
                        audit_head: &mut head,
                        entity: None,
                        detail: None,
                    };
                    // A job that panics (a bug) is rolled back alone; its caller, whose answer
                    // channel is dropped with the job, gets an internal error.
                    let ran =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut ctx)));
                    frames = ctx.frames;
                    match ran {
                        Ok(done) => completions.push(done),
                        Err(_) => {
                            tracing::error!("a write job panicked; it was rolled back");
                            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                            frames.truncate(frames_before);
                            head = head_before;
                        }
                    }
                    if conn.transaction_ended() {
                        // The database ended the whole transaction (SQLite on a full disk or
                        // an I/O error, a lost PostgreSQL connection): nothing after this may
                        // run outside it.
                        aborted = true;
                        break;
                    }
                }
                drop(jobs);
                if aborted {
                    Err(StoreError::Task(
                        "the transaction was rolled back by the database".into(),
                    ))
                } else {
                    let committing = std::time::Instant::now();
                    let done = match conn.dialect() {
                        sql::Dialect::Sqlite => {
                            conn.execute_batch("COMMIT").map_err(StoreError::from)
                        }
                        // Wakes the placer on commit; its polling would find the events anyway.
                        sql::Dialect::Postgres => pg::commit_batch(
                            &conn,
                            (!frames.is_empty()).then_some(relay::COMMITTED),
                        ),
                    };
                    crate::metrics::committed(committing.elapsed(), frames.len());
                    done
                }
            }
            Err(e) => {
                // Jobs that never ran still need an answer.
                for job in batch.drain(..) {
                    drop(job);
                }
                Err(e)
            }
        };
        match outcome {
            Ok(()) => {
                for f in &frames {
                    tracing::trace!(target: crate::TIMELINE, mark = "node.committed", event = f.id);
                }
                // On PostgreSQL the events reach the hub once placed (store/relay.rs), as
                // those of every other process do.
                if conn.dialect() == sql::Dialect::Sqlite {
                    hub.publish(frames);
                }
                for c in completions {
                    c(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "database commit failed; the batch was rolled back");
                if !conn.transaction_ended() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                // The chain's head is whatever the database holds now.
                head = audit::head(&Tx { conn: &conn }).unwrap_or(committed_head);
                let e = Arc::new(e);
                for c in completions {
                    c(Err(e.clone()));
                }
            }
        }
    }
    tracing::debug!("database writer stopped");
}

/// Reads from the database: a health check.
pub fn ping(tx: &Tx<'_>) -> Result<(), StoreError> {
    Ok(tx.conn.query_row("SELECT 1", [], |_| Ok(()))?)
}

/// Whether the database holds a node (`init` has run): its name is recorded.
pub fn initialised(tx: &Tx<'_>) -> Result<bool, StoreError> {
    let has_table: bool = tx.conn.query_row(
        match tx.conn.dialect() {
            sql::Dialect::Sqlite => {
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'node_meta'"
            }
            sql::Dialect::Postgres => "SELECT to_regclass('node_meta') IS NOT NULL",
        },
        [],
        |r| r.get(0),
    )?;
    Ok(has_table && meta(tx, "name")?.is_some())
}

/// Reads a value of the `node_meta` table.
pub fn meta(tx: &Tx<'_>, key: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .conn
        .query_row("SELECT value FROM node_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The genesis link, re-exported for the audit module.
pub(crate) fn genesis() -> (i64, String) {
    (0, GENESIS_HASH.to_owned())
}

/// Turns a stored epoch-milliseconds value back into a time.
pub fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

/// Checks a database's schema version without changing it.
pub fn migrations_check(tx: &Tx<'_>) -> Result<i64, StoreError> {
    migrations::check(tx.conn)
}

/// Writes a value of the `node_meta` table (made once, by `init`).
pub fn insert_meta(w: &WriteCtx<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    w.conn()
        .execute(
            "INSERT INTO node_meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )
        .map(drop)
        .map_err(StoreError::from)
}

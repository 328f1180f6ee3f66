//! The PostgreSQL backend's own parts: connecting, the schema and its versions, and the lock
//! that orders the writers of several node processes.
//!
//! Everything else (every operation) is the SQL the store shares with SQLite (`sql.rs`).

use std::sync::Arc;

use super::seal::Seal;
use super::sql::{Conn, DbError, PgConn};
use super::{DbKey, Durability, StoreError};

/// A node's PostgreSQL database: where it is, and the keys its patient data is sealed with.
#[derive(Clone)]
pub struct Database {
    /// `postgres://user@host/db`.
    pub url: String,
    /// Derived from the node's database key.
    pub seal: Arc<Seal>,
    /// Whether the relay listens for notifications of new events, or only polls.
    pub listen: bool,
}

impl Database {
    /// The database at `url`, its patient data sealed under keys derived from `key`.
    pub fn new(url: &str, key: &DbKey) -> Self {
        Self {
            url: url.to_owned(),
            seal: Arc::new(Seal::derive(key)),
            listen: true,
        }
    }

    /// A plain connection, with no settings of the store's.
    pub(super) fn connection(&self) -> Result<Conn, StoreError> {
        Ok(Conn::Postgres(Box::new(PgConn::connect(
            &self.url,
            self.seal.clone(),
        )?)))
    }
}

/// The schema equal to SQLite's at version [`BASELINE`]: a new PostgreSQL database starts
/// there. Later versions are added to both backends, each in its own dialect.
const BASELINE_SQL: &str = include_str!("postgres/schema.sql");

/// The SQLite schema version the baseline equals.
const BASELINE: i64 = 9;

/// Migrations after the baseline, in order: `MIGRATIONS[0]` makes version `BASELINE + 1`.
const MIGRATIONS: &[&str] = &[];

const _: () = assert!(
    BASELINE + MIGRATIONS.len() as i64 == super::SCHEMA_VERSION,
    "a migration was added to one backend only"
);

/// The key of the advisory lock under which a process migrates the schema.
const MIGRATION_LOCK: i64 = 0x4361_7265_4272_0001;

/// The key of the advisory lock each writer's transaction takes: the audit chain has one
/// head, so the writers of several processes append to it one batch at a time.
const WRITER_LOCK: i64 = 0x4361_7265_4272_0002;

/// What a connection is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// The writer, committing as durably as configured.
    Writer(Durability),
    /// A reader: every transaction read-only.
    Reader,
}

/// Connects to `db`.
pub(super) fn connect(db: &Database, role: Role) -> Result<Conn, StoreError> {
    let conn = db.connection()?;
    let settings = match role {
        // `off` acknowledges before the commit reaches the disk; a crash loses the last
        // moments but never leaves the database inconsistent: SQLite's NORMAL in WAL mode.
        Role::Writer(Durability::Normal) => "SET synchronous_commit = off",
        Role::Writer(Durability::Full) => "SET synchronous_commit = on",
        Role::Reader => "SET default_transaction_read_only = on",
    };
    conn.execute_batch(&format!("{settings}; SET TIME ZONE 'UTC'"))?;
    Ok(conn)
}

/// Runs `f` on a thread of its own and waits for it: the blocking client must not run on an
/// async thread, and opening a store is called from both kinds.
pub(super) fn off_async<T: Send>(
    f: impl FnOnce() -> Result<T, StoreError> + Send,
) -> Result<T, StoreError> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(StoreError::Task("opening PostgreSQL panicked".into())))
    })
}

/// The checks that each sealed column (`seal::SEALED`) holds sealed values only.
fn sealed_checks() -> String {
    super::seal::SEALED
        .iter()
        .map(|(table, columns)| {
            let all = columns
                .iter()
                .map(|c| format!("carebridge_sealed({c})"))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!("ALTER TABLE {table} ADD CONSTRAINT {table}_sealed CHECK ({all});\n")
        })
        .collect()
}

/// Brings the schema up to [`super::SCHEMA_VERSION`], one process at a time.
pub(super) fn migrate(conn: &Conn) -> Result<(), StoreError> {
    conn.execute_batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = migrate_locked(conn);
    let unlocked = conn.execute_batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    result?;
    Ok(unlocked?)
}

fn migrate_locked(conn: &Conn) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > super::SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: super::SCHEMA_VERSION,
        });
    }
    let steps = std::iter::once((BASELINE, BASELINE_SQL)).chain(
        MIGRATIONS
            .iter()
            .enumerate()
            .map(|(i, sql)| (BASELINE + 1 + i as i64, *sql)),
    );
    for (version, sql) in steps.filter(|(v, _)| *v > current) {
        let applied = (|| -> Result<(), DbError> {
            conn.execute_batch("BEGIN")?;
            conn.execute_batch(sql)?;
            if version == BASELINE {
                conn.execute_batch(&sealed_checks())?;
            }
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version],
            )?;
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = applied {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Corrupt(format!(
                "PostgreSQL schema version {version} could not be applied: {e}"
            )));
        }
    }
    Ok(())
}

/// Opens a writer's transaction and reads the audit chain's head: after it, this process's
/// batch is the only one writing, and it appends after whatever the others committed. One
/// round trip (a simple query of three statements); the head's read is planned afresh each
/// time, so it never keeps a plan made when the chain was short.
pub(super) fn begin_batch(conn: &Conn) -> Result<(i64, String), StoreError> {
    let Conn::Postgres(pg) = conn else {
        return Err(StoreError::Task("not a PostgreSQL connection".into()));
    };
    let messages = pg.client().simple_query(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK}); \
         SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
    ))?;
    let mut head = None;
    for m in messages {
        // The lock's row has no such columns; the head's has both.
        if let postgres::SimpleQueryMessage::Row(row) = m
            && let (Ok(Some(seq)), Ok(Some(hash))) = (row.try_get("seq"), row.try_get("hash"))
        {
            let seq = seq
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("audit seq {seq:?}: {e}")))?;
            head = Some((seq, hash.to_owned()));
        }
    }
    Ok(head.unwrap_or_else(super::genesis))
}

/// Ends a writer's transaction: `NOTIFY`s `channel` (when given) and commits, in one round
/// trip. PostgreSQL answers a COMMIT in a transaction that an error aborted (a failure outside
/// any job's savepoint) with a rollback, not an error; the statement before it fails instead,
/// and the COMMIT after it is then not run, so nothing is acknowledged that is lost.
pub(super) fn commit_batch(conn: &Conn, channel: Option<&str>) -> Result<(), StoreError> {
    conn.execute_batch(&match channel {
        Some(channel) => format!("NOTIFY {channel}; COMMIT"),
        None => "SELECT 1; COMMIT".to_owned(),
    })?;
    Ok(())
}

//! The local database's schema, as numbered migrations applied in order. `PRAGMA user_version`
//! records how far a file has come; a file from a newer app is refused rather than guessed at.

use rusqlite::Connection;

use crate::error::CoreError;

/// Migration `n` is `MIGRATIONS[n - 1]`. Append, never edit one that has shipped. A store cut
/// off in its first sync lacks the [`BULK_INDEXES`] until that sync ends: a migration that drops
/// or redefines one of them must say `IF EXISTS`.
const MIGRATIONS: &[&str] = &[
    r#"
-- Records as the node sent them (`data`, JSON), with what the queries filter on as columns.
-- `pending` marks a record showing a local change the node has not acknowledged yet.
CREATE TABLE practitioner (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
) STRICT;
CREATE TABLE schedule (
    id TEXT PRIMARY KEY,            -- the practitioner's id
    version INTEGER NOT NULL,
    data TEXT NOT NULL
) STRICT;
CREATE TABLE absence (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
) STRICT;
CREATE INDEX absence_by_practitioner ON absence (practitioner_id, start_ms);
CREATE TABLE patient (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    family_key TEXT NOT NULL,       -- lower-cased, for prefix search
    given_key TEXT NOT NULL,
    birth_date TEXT NOT NULL,       -- ISO 8601
    card_number TEXT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
) STRICT;
CREATE INDEX patient_by_family ON patient (family_key, given_key);
CREATE INDEX patient_by_given ON patient (given_key, family_key);
CREATE INDEX patient_by_birth_date ON patient (birth_date);
CREATE INDEX patient_by_card ON patient (card_number);
CREATE TABLE appointment (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    practitioner_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
) STRICT;
CREATE INDEX appointment_by_practitioner ON appointment (practitioner_id, start_ms);
CREATE INDEX appointment_by_start ON appointment (start_ms);
CREATE INDEX appointment_by_patient ON appointment (patient_id, start_ms);

-- Full-text indexes, keyed by the record's rowid. Contentless: the text lives in the records.
-- Patients' names get prefix indexes (search as you type); appointments' reasons, five times
-- as many rows, do without (a prefix query scans the term range instead).
CREATE VIRTUAL TABLE patient_text USING fts5 (
    body, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3'
);
CREATE VIRTUAL TABLE appointment_text USING fts5 (
    body, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- The node's last known state of a record while local changes to it are pending: what the
-- record goes back to if the node refuses them. `data` NULL: the record does not exist on the
-- node (yet).
CREATE TABLE shadow (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT,
    PRIMARY KEY (kind, id)
) STRICT;

-- The user's writes, in the order made, until the node answers. Refused ones stay, with the
-- node's problem, until the user has seen them.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    write TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'refused')),
    problem TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX outbox_by_record ON outbox (kind, record_id, state);

-- Records created offline get the node's id when it accepts them.
CREATE TABLE local_id (
    local TEXT PRIMARY KEY,
    node TEXT NOT NULL
) STRICT;

CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE setting (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
"#,
    // 2: medical reports (a doctor's mirror only), newest change first per patient.
    r#"
CREATE TABLE report (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
) STRICT;
CREATE INDEX report_by_patient ON report (patient_id, updated_ms);
"#,
    // 3: after the node's reset, the records kept from before it, until the snapshot read
    // again confirms them; what it does not hold is no longer the user's to see (a disabled
    // account, say: no event ever says so).
    r#"
CREATE TABLE unconfirmed (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;
"#,
];

/// The secondary indexes of the tables a large first sync fills, as the migrations create them.
/// A first sync into an empty store drops them and builds each once at its end: one sort per
/// index instead of a random B-tree insert per record into each (see [`super::mirror`]). None is
/// unique, so nothing but speed depends on them while they are away.
pub(super) const BULK_INDEXES: &[(&str, &str)] = &[
    ("patient_by_family", "patient (family_key, given_key)"),
    ("patient_by_given", "patient (given_key, family_key)"),
    ("patient_by_birth_date", "patient (birth_date)"),
    ("patient_by_card", "patient (card_number)"),
    (
        "appointment_by_practitioner",
        "appointment (practitioner_id, start_ms)",
    ),
    ("appointment_by_start", "appointment (start_ms)"),
    (
        "appointment_by_patient",
        "appointment (patient_id, start_ms)",
    ),
];

/// Drops [`BULK_INDEXES`] (before a bulk load into empty tables).
pub(super) fn drop_bulk_indexes(conn: &Connection) -> Result<(), CoreError> {
    for (name, _) in BULK_INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// Whether a first sync dropped [`BULK_INDEXES`] and has not built them yet.
pub(super) fn bulk_indexes_dropped(conn: &Connection) -> Result<bool, CoreError> {
    let (name, _) = BULK_INDEXES[0];
    Ok(conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// The page cache of a store in use (KiB): the indexes of a large hospital's appointments stay
/// in memory while a burst of events lands (SQLite's default is 2 MiB).
pub(super) const CACHE_KIB: i64 = 32 * 1024;

/// The page cache while a first sync loads into tables without their [`BULK_INDEXES`] (KiB):
/// the rows and the full-text segments are appended, so a larger cache holds pages no one reads
/// again, and the memory is better left to the index builds at the end (measured,
/// docs/performance.md).
const BULK_LOAD_CACHE_KIB: i64 = 8 * 1024;

/// Sets the page cache for a first sync's load (see [`BULK_LOAD_CACHE_KIB`]).
pub(super) fn bulk_load_cache(conn: &Connection) -> Result<(), CoreError> {
    conn.pragma_update(None, "cache_size", -BULK_LOAD_CACHE_KIB)?;
    Ok(())
}

/// Builds those of [`BULK_INDEXES`] that are missing, then sets the cache of a store in use.
///
/// Building one sorts all its keys in memory (SQLCipher's build keeps temporary data in memory:
/// temporary files would hold them in clear; SQLite then sorts in one list, on one thread), so
/// the sort's memory grows with the records. The page cache is cut to 4 MiB meanwhile, so that
/// the two do not add up: the scan that feeds the sort needs no cache.
pub(super) fn ensure_bulk_indexes(conn: &Connection) -> Result<(), CoreError> {
    conn.pragma_update(None, "cache_size", -4096)?;
    let built = BULK_INDEXES.iter().try_for_each(|(name, on)| {
        conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))
    });
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(built?)
}

/// Brings the database up to the newest schema, each migration in its own transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), CoreError> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(CoreError::Task(format!(
            "this profile's data was written by a newer CareBridge (schema {current}, this one knows {}): update the app",
            MIGRATIONS.len()
        )));
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (n + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_changes_nothing_and_a_newer_file_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        c.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut c).unwrap_err();
        assert!(err.to_string().contains("newer CareBridge"), "{err}");
    }

    /// The indexes a first sync drops are rebuilt exactly as the migrations made them.
    #[test]
    fn the_indexes_a_bulk_load_drops_come_back_as_the_migrations_made_them() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let sql = |c: &Connection| -> Vec<(String, String)> {
            let mut st = c
                .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let migrated = sql(&c);
        for (name, _) in BULK_INDEXES {
            assert!(
                migrated.iter().any(|(n, _)| n == name),
                "{name} is not a migration's index"
            );
        }
        drop_bulk_indexes(&c).unwrap();
        let dropped = sql(&c);
        assert_eq!(
            dropped.len(),
            migrated.len() - BULK_INDEXES.len(),
            "{dropped:?}"
        );
        ensure_bulk_indexes(&c).unwrap();
        ensure_bulk_indexes(&c).unwrap();
        // SQLite keeps each index's statement as written: the same columns, the same order.
        let normalise = |v: Vec<(String, String)>| -> Vec<(String, String)> {
            v.into_iter()
                .map(|(n, s)| {
                    (
                        n,
                        s.replace("IF NOT EXISTS ", "")
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                })
                .collect()
        };
        assert_eq!(normalise(sql(&c)), normalise(migrated));
    }
}

//! The local database's schema, as numbered migrations applied in order. `PRAGMA user_version`
//! records how far a file has come; a file from a newer app is refused rather than guessed at.

use rusqlite::Connection;

use crate::error::CoreError;

/// Migration `n` is `MIGRATIONS[n - 1]`. Append, never edit one that has shipped.
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
}

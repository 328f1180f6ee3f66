//! Versioned schema migrations, applied in order at start. `PRAGMA user_version` records the
//! last one applied; each runs in its own transaction. Never edit a released migration: add one.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the node's first schema.
    r#"
CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

CREATE TABLE node_keys (
    purpose TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    public BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE practitioners (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('doctor', 'reception', 'admin')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE kiosk_devices (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    registered_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('staff', 'kiosk')),
    principal_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_principal ON sessions (principal_id);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_key TEXT NOT NULL,
    given_key TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    card_number TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX patients_family ON patients (family_key);
CREATE INDEX patients_given ON patients (given_key);
CREATE INDEX patients_birth ON patients (birth_date);

CREATE TABLE schedules (
    practitioner_id TEXT PRIMARY KEY REFERENCES practitioners (id),
    slot_minutes INTEGER NOT NULL,
    hours TEXT NOT NULL,
    version INTEGER NOT NULL
) STRICT;

CREATE TABLE absences (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES practitioners (id),
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    CHECK (end_at > start_at)
) STRICT;
CREATE INDEX absences_practitioner ON absences (practitioner_id, start_at);

CREATE TABLE appointments (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    practitioner_id TEXT NOT NULL REFERENCES practitioners (id),
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow')),
    booked_by_kind TEXT NOT NULL CHECK (booked_by_kind IN ('staff', 'kiosk')),
    booked_by_id TEXT NOT NULL,
    override_reason TEXT,
    cancellation_reason TEXT,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (end_at > start_at)
) STRICT;
CREATE INDEX appointments_practitioner ON appointments (practitioner_id, start_at);
CREATE INDEX appointments_patient ON appointments (patient_id, start_at);
CREATE INDEX appointments_kiosk ON appointments (booked_by_id, start_at) WHERE booked_by_kind = 'kiosk';

-- Defence in depth for "a practitioner never has two overlapping live appointments, except
-- through an explicit override": the node checks first and answers slot-taken; these
-- triggers make a bug in that check fail the transaction instead of double-booking.
-- An appointment lasts at most 12 hours (43 200 000 ms), which bounds the index range
-- scanned; without that bound every insert read the doctor's whole history.
CREATE TRIGGER appointments_no_overlap_insert
BEFORE INSERT ON appointments
WHEN NEW.override_reason IS NULL AND NEW.status NOT IN ('cancelled', 'noshow')
BEGIN
    SELECT RAISE(ABORT, 'overlapping live appointment') WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.practitioner_id = NEW.practitioner_id
          AND a.status NOT IN ('cancelled', 'noshow')
          AND a.start_at > NEW.start_at - 43200000
          AND a.start_at < NEW.end_at AND a.end_at > NEW.start_at);
END;
CREATE TRIGGER appointments_no_overlap_move
BEFORE UPDATE OF start_at, end_at ON appointments
WHEN NEW.override_reason IS NULL AND NEW.status NOT IN ('cancelled', 'noshow')
  AND (NEW.start_at <> OLD.start_at OR NEW.end_at <> OLD.end_at)
BEGIN
    SELECT RAISE(ABORT, 'overlapping live appointment') WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.practitioner_id = NEW.practitioner_id
          AND a.id <> NEW.id
          AND a.status NOT IN ('cancelled', 'noshow')
          AND a.start_at > NEW.start_at - 43200000
          AND a.start_at < NEW.end_at AND a.end_at > NEW.start_at);
END;

CREATE TABLE kiosk_identifications (
    device_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    identified_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, patient_id)
) STRICT;

-- The transactional outbox of live changes. AUTOINCREMENT: ids are never reused, even
-- after old events are pruned, so Last-Event-ID stays meaningful across restarts.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    aud_roles INTEGER NOT NULL,
    aud_practitioner TEXT,
    aud_kiosk TEXT,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_entity ON audit (entity) WHERE entity <> '';

CREATE TABLE idempotency (
    actor TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (actor, key)
) STRICT;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`SCHEMA_VERSION`].
pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Checks, without changing anything, that a database's schema is one this build can use.
pub fn check(conn: &Connection) -> Result<i64, StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(current)
}

//! Versioned schema migrations, applied in order at start. `PRAGMA user_version` records the
//! last one applied; each runs in its own transaction. Never edit a released migration: add one.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use super::sql::Conn;

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
    // 2: insurer nodes' `reviewer` role; medical reports and their signed revisions.
    // SQLite cannot change a CHECK constraint in place: the practitioners table is rebuilt
    // (foreign keys are off while migrating, and checked before the commit).
    r#"
CREATE TABLE practitioners_new (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('doctor', 'reception', 'admin', 'reviewer')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO practitioners_new (id, username, display_name, role, password_hash, disabled, version, created_at)
    SELECT id, username, display_name, role, password_hash, disabled, version, created_at FROM practitioners;
DROP TABLE practitioners;
ALTER TABLE practitioners_new RENAME TO practitioners;

-- A report's current state: a draft's content, or its latest signed revision's.
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    author_id TEXT NOT NULL REFERENCES practitioners (id),
    author_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('preliminary', 'final', 'amended', 'entered-in-error')),
    title TEXT NOT NULL,
    findings TEXT NOT NULL,
    conclusion TEXT NOT NULL,
    codes TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision >= 0),
    signature TEXT,
    error_reason TEXT,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX reports_patient ON reports (patient_id, updated_at);
CREATE INDEX reports_updated ON reports (updated_at);

-- Signed revisions: written once, never changed or removed.
CREATE TABLE report_revisions (
    report_id TEXT NOT NULL REFERENCES reports (id),
    revision INTEGER NOT NULL CHECK (revision >= 1),
    status TEXT NOT NULL CHECK (status IN ('final', 'amended')),
    title TEXT NOT NULL,
    findings TEXT NOT NULL,
    conclusion TEXT NOT NULL,
    codes TEXT NOT NULL,
    author_id TEXT NOT NULL REFERENCES practitioners (id),
    author_name TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (report_id, revision)
) STRICT;
CREATE TRIGGER report_revisions_no_update BEFORE UPDATE ON report_revisions
BEGIN
    SELECT RAISE(ABORT, 'a signed report revision cannot be changed');
END;
CREATE TRIGGER report_revisions_no_delete BEFORE DELETE ON report_revisions
BEGIN
    SELECT RAISE(ABORT, 'a signed report revision cannot be removed');
END;
-- Defence in depth: once signed, a report's text changes only with a new revision.
CREATE TRIGGER reports_signed_text_fixed BEFORE UPDATE OF title, findings, conclusion, codes ON reports
WHEN OLD.status <> 'preliminary' AND NEW.revision = OLD.revision
  AND (NEW.title IS NOT OLD.title OR NEW.findings IS NOT OLD.findings
       OR NEW.conclusion IS NOT OLD.conclusion OR NEW.codes IS NOT OLD.codes)
BEGIN
    SELECT RAISE(ABORT, 'a signed report changes only by amendment');
END;
"#,
    // 3: federation — peers, seen request nonces, patients' consents, the durable outbox of
    // transmissions, received payloads, and admin updates with their acknowledgements.
    r#"
CREATE TABLE peers (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('hospital', 'insurer')),
    url TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    agreement_key BLOB NOT NULL,
    -- The pair's shared API key: presented when sending, its SHA-256 looked up when receiving.
    api_key TEXT NOT NULL,
    api_key_hash BLOB NOT NULL UNIQUE,
    allowed_sources TEXT NOT NULL,
    allowed_types TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE federation_nonces (
    peer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (peer, nonce)
) STRICT;
CREATE INDEX federation_nonces_seen ON federation_nonces (seen_at);

CREATE TABLE consents (
    patient_id TEXT NOT NULL REFERENCES patients (id),
    peer TEXT NOT NULL REFERENCES peers (name),
    recorded_by TEXT NOT NULL,
    recorded_by_name TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (patient_id, peer)
) STRICT;

CREATE TABLE transmissions (
    id TEXT PRIMARY KEY,
    peer TEXT NOT NULL REFERENCES peers (name),
    message_type TEXT NOT NULL,
    summary TEXT NOT NULL,
    patient_id TEXT,
    report_ids TEXT NOT NULL,
    envelope BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acknowledged', 'failed')),
    last_error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    overdue_alerted INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    receipt TEXT,
    acknowledged_at INTEGER,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX transmissions_due ON transmissions (next_attempt_at) WHERE state IN ('queued', 'sent');
CREATE INDEX transmissions_patient ON transmissions (patient_id, created_at);

CREATE TABLE received (
    name TEXT PRIMARY KEY,
    envelope_id TEXT NOT NULL,
    source TEXT NOT NULL,
    message_type TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    payload BLOB NOT NULL,
    receipt TEXT NOT NULL,
    UNIQUE (source, envelope_id)
) STRICT;
CREATE INDEX received_at ON received (received_at);

CREATE TABLE admin_updates (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    peer TEXT NOT NULL,
    from_name TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    audience TEXT NOT NULL CHECK (audience IN ('doctor', 'reception', 'all')),
    sent_at INTEGER NOT NULL,
    version INTEGER NOT NULL
) STRICT;
CREATE TABLE admin_update_acks (
    update_id TEXT NOT NULL REFERENCES admin_updates (id),
    who TEXT NOT NULL,
    who_name TEXT NOT NULL,
    acknowledged_at INTEGER NOT NULL,
    PRIMARY KEY (update_id, who)
) STRICT;
"#,
    // 4: the audit trail is append-only, and its head is anchored by signed checkpoints
    // (store/audit.rs). Nothing in the node updates or deletes an audit entry or a checkpoint
    // (retention deletes received payloads, never their audit entries; a restore replaces
    // the whole file), so the triggers refuse both outright. A later migration that must
    // rebuild either table drops and recreates its triggers deliberately.
    r#"
CREATE TABLE audit_checkpoints (
    number INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: an entry cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: an entry cannot be deleted'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: a checkpoint cannot be changed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: a checkpoint cannot be deleted'); END;
"#,
    // Schema 6: the admin reads the trail by actor ("what did this account touch?"), which
    // would otherwise read every entry; the index is in actor, then seq (the rowid) order.
    r#"
CREATE INDEX audit_actor ON audit (actor);
"#,
    // Schema 7: imaging. A patient's medical record number is DICOM's PatientID (the global id
    // does not fit its 64 characters); an order's accession number is DICOM's (16). A study is
    // recorded once per StudyInstanceUID; `imaging_feed` is the PACS's change cursor, written in
    // the same transaction as what it recorded.
    r#"
CREATE TABLE patient_mrns (
    patient_id TEXT PRIMARY KEY REFERENCES patients (id),
    number INTEGER NOT NULL UNIQUE,
    mrn TEXT NOT NULL UNIQUE,
    assigned_at INTEGER NOT NULL
) STRICT;

CREATE TABLE imaging_orders (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    accession TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    modality TEXT NOT NULL,
    procedure TEXT NOT NULL,
    reason TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    ordered_by TEXT NOT NULL REFERENCES practitioners (id),
    ordered_by_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'completed')),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX imaging_orders_patient ON imaging_orders (patient_id, created_at);

CREATE TABLE imaging_studies (
    id TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    pacs_id TEXT NOT NULL,
    preview_instance TEXT,
    patient_id TEXT REFERENCES patients (id),
    order_id TEXT REFERENCES imaging_orders (id),
    matched_by TEXT NOT NULL CHECK (matched_by IN ('accession', 'patient-id', 'hand', 'unmatched')),
    accession TEXT NOT NULL,
    dicom_patient_id TEXT NOT NULL,
    dicom_issuer TEXT NOT NULL,
    dicom_patient_name TEXT NOT NULL,
    modalities TEXT NOT NULL,
    description TEXT NOT NULL,
    study_date TEXT,
    series_count INTEGER NOT NULL,
    instance_count INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    version INTEGER NOT NULL
) STRICT;
CREATE INDEX imaging_studies_patient ON imaging_studies (patient_id, received_at);
CREATE INDEX imaging_studies_unmatched ON imaging_studies (received_at) WHERE patient_id IS NULL;

CREATE TABLE imaging_feed (
    source TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) STRICT;
"#,
    // Schema 8: patients' documents, every version's file kept (in the encrypted database, as all
    // patient data is).
    r#"
CREATE TABLE patient_documents (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (patient_id, title_key)
) STRICT;

CREATE TABLE document_versions (
    document_id TEXT NOT NULL REFERENCES patient_documents (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    media_type TEXT NOT NULL,
    file_name TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL,
    added_by TEXT NOT NULL REFERENCES practitioners (id),
    added_by_name TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (document_id, version)
) STRICT;
"#,
    // Schema 9: consented access across hospitals (both sides), and the durable mail outbox the
    // one-time codes leave through.
    r#"
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    peer TEXT NOT NULL,
    peer_request_id TEXT NOT NULL,
    patient_id TEXT REFERENCES patients (id),
    practitioner_id TEXT NOT NULL,
    practitioner_name TEXT NOT NULL,
    organisation TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('treatment', 'emergency')),
    scopes TEXT NOT NULL,
    hours INTEGER NOT NULL CHECK (hours >= 1),
    state TEXT NOT NULL CHECK (state IN ('pending', 'granted', 'declined', 'locked', 'expired', 'revoked')),
    code_hash BLOB,
    code_expires_at INTEGER,
    wrong_codes INTEGER NOT NULL DEFAULT 0 CHECK (wrong_codes >= 0),
    approved_by TEXT,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (peer, peer_request_id)
) STRICT;
CREATE INDEX access_requests_patient ON access_requests (patient_id, created_at);
CREATE INDEX access_requests_pending ON access_requests (created_at) WHERE state = 'pending';

CREATE TABLE access_grants (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE REFERENCES access_requests (id),
    token_hash BLOB NOT NULL UNIQUE,
    peer TEXT NOT NULL,
    practitioner_id TEXT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    scopes TEXT NOT NULL,
    purpose TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    ended_told INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX access_grants_open ON access_grants (expires_at) WHERE ended_told = 0;

CREATE TABLE access_reads (
    grant_id TEXT NOT NULL REFERENCES access_grants (id),
    resource TEXT NOT NULL,
    count INTEGER NOT NULL,
    read_at INTEGER NOT NULL
) STRICT;
CREATE INDEX access_reads_grant ON access_reads (grant_id, read_at);

CREATE TABLE remote_access (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    peer TEXT NOT NULL,
    practitioner_id TEXT NOT NULL REFERENCES practitioners (id),
    practitioner_name TEXT NOT NULL,
    organisation TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('treatment', 'emergency')),
    scopes TEXT NOT NULL,
    hours INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'granted', 'declined', 'locked', 'expired', 'revoked')),
    tries_left INTEGER NOT NULL,
    grant_id TEXT,
    token TEXT,
    granted_patient TEXT,
    expires_at INTEGER,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX remote_access_patient ON remote_access (patient_id, created_at);

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT,
    about TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'discarded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    discard_after INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'queued';
"#,
    // Schema 10: moving a patient's record to another hospital. The sending side keeps what it
    // sent and where it stands (the patient is marked transferred only on the confirmation);
    // the receiving side keeps each checked chunk until the record is whole, then the record
    // as it arrived beside the patient it was imported as.
    r#"
ALTER TABLE patients ADD COLUMN transferred_to TEXT;
ALTER TABLE transmissions ADD COLUMN transfer_id TEXT;
CREATE INDEX transmissions_transfer ON transmissions (transfer_id) WHERE transfer_id IS NOT NULL;

CREATE TABLE transfers_out (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    peer TEXT NOT NULL REFERENCES peers (name),
    state TEXT NOT NULL CHECK (state IN ('sending', 'confirmed', 'refused')),
    parts INTEGER NOT NULL CHECK (parts >= 1),
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    identity_document TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    organisation TEXT,
    new_global_id TEXT,
    confirmation TEXT,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX transfers_out_patient ON transfers_out (patient_id, created_at);
-- One transfer at a time per patient, and none once one was confirmed.
CREATE UNIQUE INDEX transfers_out_live ON transfers_out (patient_id) WHERE state IN ('sending', 'confirmed');

CREATE TABLE transfers_in (
    peer TEXT NOT NULL,
    id TEXT NOT NULL,
    patient_global_id TEXT NOT NULL,
    organisation TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunk_hashes TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('receiving', 'imported', 'refused')),
    reason TEXT,
    patient_id TEXT REFERENCES patients (id),
    bundle BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (peer, id)
) STRICT;
CREATE INDEX transfers_in_patient ON transfers_in (patient_id) WHERE patient_id IS NOT NULL;

CREATE TABLE transfer_chunks_in (
    peer TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    idx INTEGER NOT NULL CHECK (idx >= 0),
    data BLOB NOT NULL,
    PRIMARY KEY (peer, transfer_id, idx),
    FOREIGN KEY (peer, transfer_id) REFERENCES transfers_in (peer, id)
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
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    // A migration may rebuild a table others refer to; SQLite's procedure for that is to
    // switch foreign keys off (outside any transaction) and check them before committing.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row(
                    "SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(table) = broken {
                return Err(StoreError::Corrupt(format!(
                    "migration {} left a broken reference in {table}",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

/// Checks, without changing anything, that a database's schema is one this build can use.
pub fn check(conn: &Conn) -> Result<i64, StoreError> {
    let current: i64 = match conn {
        Conn::Sqlite(c) => c.pragma_query_value(None, "user_version", |r| r.get(0))?,
        Conn::Postgres(_) => {
            conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?
        }
    };
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_schema_database_keeps_its_records_and_references_when_migrated() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO practitioners (id, username, display_name, role, password_hash, created_at)
                 VALUES ('d1', 'moreau', 'Dr. Moreau', 'doctor', 'h', 0);
             INSERT INTO patients (id, family_name, given_name, family_key, given_key, birth_date,
                 card_number, version, created_at, updated_at)
                 VALUES ('p1', 'Doe', 'Jane', 'doe', 'jane', '1980-01-01', 'C1', 1, 0, 0);
             INSERT INTO appointments (id, reference, patient_id, practitioner_id, start_at, end_at,
                 reason, status, booked_by_kind, booked_by_id, version, created_at, updated_at)
                 VALUES ('a1', 'R1', 'p1', 'd1', 0, 900000, 'checkup', 'booked', 'staff', 'd1', 1, 0, 0);",
        )
        .unwrap();

        apply(&mut conn).unwrap();

        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");
        let name: String = conn
            .query_row(
                "SELECT display_name FROM practitioners WHERE id = 'd1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(name, "Dr. Moreau");
        conn.execute(
            "INSERT INTO practitioners (id, username, display_name, role, password_hash, created_at)
             VALUES ('r1', 'reviewer', 'R', 'reviewer', 'h', 0)",
            [],
        )
        .unwrap();
        let dangling = conn.execute(
            "INSERT INTO appointments (id, reference, patient_id, practitioner_id, start_at, end_at,
                 reason, status, booked_by_kind, booked_by_id, version, created_at, updated_at)
             VALUES ('a2', 'R2', 'p1', 'nobody', 0, 900000, 'x', 'booked', 'staff', 'd1', 1, 0, 0)",
            [],
        );
        assert!(
            dangling.is_err(),
            "appointments still reference practitioners"
        );
        let unknown_role = conn.execute(
            "INSERT INTO practitioners (id, username, display_name, role, password_hash, created_at)
             VALUES ('x1', 'x', 'X', 'janitor', 'h', 0)",
            [],
        );
        assert!(unknown_role.is_err());
        apply(&mut conn).unwrap();
    }
}

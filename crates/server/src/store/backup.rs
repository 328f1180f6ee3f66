//! Backups: a consistent, encrypted copy taken while the node serves, and a restore that
//! checks a copy (key, integrity, schema, audit chain and its signed checkpoints) before it
//! replaces anything.
//!
//! The copy is encrypted with the same key as the database, and the key is *not* in it:
//! keep the key file somewhere else, or the backup is useless (and a thief's copy too).

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::config::NodeConfig;
use crate::node::{NodeError, load_key, lock_data_dir};
use crate::store::{DbKey, StoreError, open_connection};

/// What a checked copy holds.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// Schema version.
    pub schema: i64,
    /// Audit entries, all verified (against the copy's checkpoints too).
    pub audit_entries: i64,
    /// Patients.
    pub patients: i64,
    /// Appointments.
    pub appointments: i64,
}

/// Refuses a node on PostgreSQL, whose backups are PostgreSQL's own.
fn on_file(cfg: &NodeConfig) -> Result<(), NodeError> {
    match cfg.database.url {
        None => Ok(()),
        Some(_) => Err(NodeError::Invalid(
            "this node keeps its records in PostgreSQL: back it up and restore it with \
             PostgreSQL's own tools (pg_dump and pg_restore, or pg_basebackup and WAL archiving), \
             as docs/postgresql.md shows; keep the node's key file with it"
                .into(),
        )),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Copies the database to `to` (which must not exist) in one read transaction, so the copy
/// is consistent even while the node writes. Returns what the copy holds, checked.
pub fn backup(cfg: &NodeConfig, to: &Path) -> Result<BackupSummary, NodeError> {
    on_file(cfg)?;
    let key = load_key(cfg)?;
    let db = cfg.db_path();
    if !db.exists() {
        return Err(NodeError::NotInitialised(
            cfg.data_dir.display().to_string(),
        ));
    }
    if to.exists() {
        return Err(NodeError::Invalid(format!(
            "{} exists; refusing to overwrite it",
            to.display()
        )));
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let _ = fs::remove_file(&partial);
    let result = (|| {
        let src = open_connection(&db, &key, true)?;
        let mut dst = open_connection(&partial, &key, false)?;
        {
            let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
            // All pages in one step: one read transaction, hence one consistent snapshot.
            b.step(-1)?;
        }
        drop(dst);
        Ok::<_, StoreError>(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        return Err(e.into());
    }
    #[cfg(unix)]
    fs::set_permissions(
        &partial,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .map_err(io(&partial))?;
    let summary = match check(&partial, &key) {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, to).map_err(io(to))?;
    Ok(summary)
}

/// Opens a copy with `key` and checks it: the key fits, SQLite and SQLCipher find no damage,
/// the schema is one this build knows, and the audit chain verifies against the node's signed
/// checkpoints in it.
pub fn check(file: &Path, key: &DbKey) -> Result<BackupSummary, NodeError> {
    let conn = open_connection(file, key, true)?;
    let cipher_errors: Vec<String> = collect_strings(&conn, "PRAGMA cipher_integrity_check")?;
    if !cipher_errors.is_empty() {
        return Err(NodeError::Invalid(format!(
            "{} is damaged (page authentication failed): {}",
            file.display(),
            cipher_errors.join("; ")
        )));
    }
    let integrity = collect_strings(&conn, "PRAGMA integrity_check")?;
    if integrity != ["ok"] {
        return Err(NodeError::Invalid(format!(
            "{} is damaged: {}",
            file.display(),
            integrity.join("; ")
        )));
    }
    let conn = crate::store::sql::Conn::Sqlite(conn);
    let tx = crate::store::Tx { conn: &conn };
    let schema = crate::store::migrations_check(&tx)?;
    let verified = crate::store::audit::verify_trail(&tx, Vec::new())?.map_err(|e| {
        NodeError::Invalid(format!(
            "{}: the audit trail is broken: {e}",
            file.display()
        ))
    })?;
    let count = |t: &str| -> Result<i64, StoreError> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?)
    };
    Ok(BackupSummary {
        schema,
        audit_entries: verified.entries,
        patients: count("patients")?,
        appointments: count("appointments")?,
    })
}

fn collect_strings(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let v: rusqlite::types::Value = r.get(0)?;
        out.push(match v {
            rusqlite::types::Value::Text(s) => s,
            other => format!("{other:?}"),
        });
    }
    Ok(out)
}

/// Replaces the node's database with a checked copy. The node must be stopped. The current
/// database, if any, is kept beside it as `carebridge.db.before-restore-<time>`.
pub fn restore(cfg: &NodeConfig, from: &Path, stamp: &str) -> Result<BackupSummary, NodeError> {
    on_file(cfg)?;
    let key = load_key(cfg)?;
    let summary = check(from, &key)?;
    fs::create_dir_all(&cfg.data_dir).map_err(io(&cfg.data_dir))?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let db = cfg.db_path();
    if db.exists() {
        let aside = PathBuf::from(format!("{}.before-restore-{stamp}", db.display()));
        // Checkpoint the WAL into the old file first, so the kept copy is whole.
        if let Ok(c) = open_connection(&db, &key, false) {
            let _ = c.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        }
        fs::rename(&db, &aside).map_err(io(&db))?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let tmp = PathBuf::from(format!("{}.restoring", db.display()));
    fs::copy(from, &tmp).map_err(io(&tmp))?;
    fs::rename(&tmp, &db).map_err(io(&db))?;
    Ok(summary)
}

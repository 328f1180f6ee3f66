//! Moving a node from its SQLCipher file to PostgreSQL: every row copied as it is, so that
//! ids, the audit chain with its signed checkpoints, and the event ids clients resume from
//! stay what they were.

use std::collections::{BTreeMap, BTreeSet};

use super::seal;
use super::sql::{Conn, Value, params_from_iter};
use super::{DbKey, Reader, StoreError, Tx, pg};

/// What a copy moved, table by table, checked by counting both sides.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Rows per table.
    pub rows: BTreeMap<String, i64>,
    /// Audit entries, verified on PostgreSQL after the copy.
    pub audit_entries: i64,
}

/// Tables whose SQLite `rowid` the node reads (their order of arrival): PostgreSQL has an
/// explicit `rowid` column for them, copied too.
const WITH_ROWID: &[&str] = &["transmissions", "access_reads"];

/// Copies everything in `from` (a SQLCipher database at this build's schema) into the empty
/// PostgreSQL database at `to`, in one transaction: a failure while copying leaves nothing
/// there. The counts and the audit chain are checked after the commit; a check that fails is
/// reported, with the copy left in place to look at (move into an empty database again).
/// Blocking: call it off the async threads.
pub fn sqlite_to_postgres(from: &Reader, to: &str, key: &DbKey) -> Result<Copied, StoreError> {
    let src = from.tx();
    let version = super::migrations_check(&src)?;
    if version != super::SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the SQLCipher database has schema {version}; serve it once with this build (which \
             migrates it to {}) before moving it",
            super::SCHEMA_VERSION
        )));
    }
    let dst = pg::connect(
        &pg::Database::new(to, key),
        pg::Role::Writer(super::Durability::Full),
    )?;
    pg::migrate(&dst)?;
    let tables = tables(&src)?;
    let order = dependency_order(&dst, &tables)?;
    for t in &order {
        let n: i64 = dst.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
        if n > 0 {
            return Err(StoreError::Corrupt(format!(
                "the PostgreSQL database already holds data ({n} rows in {t}): move into an \
                 empty one"
            )));
        }
    }
    dst.execute_batch("BEGIN")?;
    let copied = (|| {
        let mut rows = BTreeMap::new();
        for t in &order {
            // The node's own triggers (append-only trails, the overlap check) would judge
            // rows already judged; foreign keys stay checked, hence the order.
            dst.execute_batch(&format!("ALTER TABLE {t} DISABLE TRIGGER USER"))?;
            rows.insert(t.clone(), copy_table(&src, &dst, t)?);
            dst.execute_batch(&format!("ALTER TABLE {t} ENABLE TRIGGER USER"))?;
        }
        restart_identities(&dst)?;
        // Places go on after the highest event id SQLite ever gave (AUTOINCREMENT's mark,
        // which outlives the deleted events): clients resume from those ids.
        let given: i64 = src
            .conn
            .query_row(
                "SELECT MAX(n) FROM (SELECT MAX(id) AS n FROM events
                                 UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'events')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .unwrap_or(0);
        dst.execute("UPDATE event_places SET last = ?1", [given])?;
        Ok::<_, StoreError>(rows)
    })();
    let rows = match copied {
        Ok(rows) => {
            dst.execute_batch("COMMIT")?;
            rows
        }
        Err(e) => {
            let _ = dst.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    // The planner's statistics of what was moved, taken now rather than at autovacuum's next
    // round: the node's first plans (kept by its prepared statements) then fit the data. Only
    // speed depends on it, and the copy is committed: a failure is told, not fatal.
    if let Err(e) = dst.execute_batch("ANALYZE") {
        tracing::warn!(error = %e, "ANALYZE after the copy failed; autovacuum will take the statistics");
    }
    let check = Tx { conn: &dst };
    for (t, n) in &rows {
        let there: i64 = dst.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
        if there != *n {
            return Err(StoreError::Corrupt(format!(
                "{t}: {n} rows read, {there} found in PostgreSQL"
            )));
        }
    }
    let verified = super::audit::verify_trail(&check, Vec::new())?
        .map_err(|e| StoreError::Corrupt(format!("the copied audit trail does not verify: {e}")))?;
    Ok(Copied {
        rows,
        audit_entries: verified.entries,
    })
}

/// The node's tables in the SQLite database.
fn tables(src: &Tx<'_>) -> Result<BTreeSet<String>, StoreError> {
    let mut st = src.conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let mut rows = st.query([])?;
    let mut out = BTreeSet::new();
    while let Some(r) = rows.next()? {
        out.insert(r.get(0)?);
    }
    Ok(out)
}

/// `tables` ordered so that every table comes after those its foreign keys refer to, as
/// PostgreSQL's catalogue says.
fn dependency_order(dst: &Conn, tables: &BTreeSet<String>) -> Result<Vec<String>, StoreError> {
    let mut st = dst.prepare(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
         FROM pg_constraint c WHERE c.contype = 'f'",
    )?;
    let mut rows = st.query([])?;
    let mut needs: BTreeMap<String, BTreeSet<String>> = tables
        .iter()
        .map(|t| (t.clone(), BTreeSet::new()))
        .collect();
    while let Some(r) = rows.next()? {
        let (child, parent): (String, String) = (r.get(0)?, r.get(1)?);
        if child != parent
            && let Some(n) = needs.get_mut(&child)
        {
            n.insert(parent);
        }
    }
    let mut order = Vec::new();
    while !needs.is_empty() {
        let ready: Vec<String> = needs
            .iter()
            .filter(|(_, n)| n.iter().all(|p| !needs.contains_key(p)))
            .map(|(t, _)| t.clone())
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Corrupt(
                "the tables' foreign keys form a cycle".into(),
            ));
        }
        for t in ready {
            needs.remove(&t);
            order.push(t);
        }
    }
    Ok(order)
}

/// Copies one table's rows in their SQLite order; how many.
fn copy_table(src: &Tx<'_>, dst: &Conn, table: &str) -> Result<i64, StoreError> {
    let mut columns: Vec<String> = Vec::new();
    {
        let mut st = src
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            columns.push(r.get(0)?);
        }
    }
    let mut read = columns.clone();
    let mut write = columns.clone();
    if WITH_ROWID.contains(&table) {
        read.push("rowid".into());
        write.push("rowid".into());
    }
    if table == "events" {
        // An event's id is its place in the stream: clients resume from it.
        read.push("id".into());
        write.push("position".into());
    }
    let marks: Vec<String> = (1..=write.len()).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        write.join(", "),
        marks.join(", ")
    );
    let mut st = src.conn.prepare(&format!(
        "SELECT {} FROM {table} ORDER BY rowid",
        read.join(", ")
    ))?;
    let mut rows = st.query([])?;
    let mut n = 0;
    let mut put = dst.prepare_cached(&insert)?;
    while let Some(r) = rows.next()? {
        let values: Vec<Value> = write
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let v = r.get::<_, Value>(i)?;
                if !seal::is_sealed(table, column) {
                    Ok(v)
                } else if seal::SEALED_ALIKE.contains(&(table, column.as_str())) {
                    dst.seal_fixed(v)
                } else {
                    dst.seal(v)
                }
            })
            .collect::<Result<_, _>>()?;
        put.execute(params_from_iter(values))?;
        n += 1;
    }
    if table == "patients" {
        // The blind indexes, which SQLite has no columns for.
        let mut st = src.conn.prepare(&format!(
            "SELECT {} FROM patients",
            super::patients::COLUMNS
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            super::patients::write_blind_indexes(dst, &super::patients::from_row(r, "")?)?;
        }
    }
    Ok(n)
}

/// Moves every identity column's sequence past the ids copied in, so that new rows get new
/// ids.
fn restart_identities(dst: &Conn) -> Result<(), StoreError> {
    let mut st = dst.prepare(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )?;
    let mut rows = st.query([])?;
    let mut identities = Vec::new();
    while let Some(r) = rows.next()? {
        identities.push((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
    }
    drop(rows);
    drop(st);
    for (t, c) in identities {
        dst.execute_batch(&format!(
            "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), \
             COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false)"
        ))?;
    }
    Ok(())
}

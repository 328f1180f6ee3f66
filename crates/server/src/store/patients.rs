//! Patient records: rows, search, and the duplicate check.
//!
//! On PostgreSQL the names, birth date, contact details and card number are sealed
//! (`seal.rs`): lookups go through blind indexes, written with every change, and what SQL
//! cannot do on sealed values (a name longer than the indexed prefixes, a range of birth
//! dates, sorting by name) is done on the opened rows ([`find_sealed`]).

use std::cmp::Ordering;

use crate::store::seal::{Lookup, PREFIX_MAX, name_prefixes};
use crate::store::sql::{Conn, OptionalExtension, Row, params};
use carebridge_protocol::PatientId;
use carebridge_protocol::patient::{Patient, PatientSearch, search_key};
use chrono::NaiveDate;
use rand::Rng;

use crate::store::sql::Value;

use crate::store::search::{self, Found, Page, Span, Where, order_by};
use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// The columns [`from_row`] reads, in its order.
pub(in crate::store) const COLUMNS: &str = "id, family_name, given_name, birth_date, phone, email, card_number, version, created_at, updated_at, transferred_to";

/// Decodes a row selected with the module's column list.
pub(in crate::store) fn from_row(r: &Row, node: &str) -> Result<Patient, StoreError> {
    let id: String = r.get(0)?;
    let birth: String = r.get(3)?;
    Ok(Patient {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("patient id {id}")))?,
        global_id: format!("{id}@{node}"),
        family_name: r.get(1)?,
        given_name: r.get(2)?,
        birth_date: birth
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("birth date {birth}")))?,
        phone: r.get(4)?,
        email: r.get(5)?,
        card_number: r.get(6)?,
        version: r.get(7)?,
        created_at: from_millis(r.get(8)?)?,
        updated_at: from_millis(r.get(9)?)?,
        transferred_to: r
            .get::<_, Option<String>>(10)?
            .map(|t| serde_json::from_str(&t))
            .transpose()?,
    })
}

/// Reads one patient.
pub fn get(tx: &Tx<'_>, id: PatientId, node: &str) -> Result<Option<Patient>, StoreError> {
    let mut st = tx
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM patients WHERE id = ?1"))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(|r| from_row(r, node)).transpose()
}

/// Finds a patient by card number and birth date (a kiosk's identification).
pub fn by_card(
    tx: &Tx<'_>,
    card: &str,
    birth: NaiveDate,
    node: &str,
) -> Result<Option<Patient>, StoreError> {
    let conn = tx.conn();
    let found = match (
        conn.blind_index(Lookup::Card, card),
        conn.blind_index(Lookup::BirthDate, &birth.to_string()),
    ) {
        (Some(card), Some(birth)) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM patients WHERE card_index = ?1 AND birth_index = ?2"
            ))?
            .query_row(params![card, birth], |r| Ok(from_row(r, node)))
            .optional()?,
        _ => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM patients WHERE card_number = ?1 AND birth_date = ?2"
            ))?
            .query_row(params![card, birth.to_string()], |r| Ok(from_row(r, node)))
            .optional()?,
    };
    found.transpose()
}

/// Patients with the same name and birth date (case-insensitive), for the duplicate check.
pub fn same_person(
    tx: &Tx<'_>,
    family: &str,
    given: &str,
    birth: NaiveDate,
    node: &str,
) -> Result<Vec<Patient>, StoreError> {
    let conn = tx.conn();
    let (family, given, birth) = (search_key(family), search_key(given), birth.to_string());
    let mut st;
    let mut rows = match conn.blind_index(Lookup::SamePerson, &person(&family, &given, &birth)) {
        Some(person) => {
            st = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM patients WHERE person_index = ?1 LIMIT 20"
            ))?;
            st.query(params![person])?
        }
        None => {
            st = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM patients WHERE family_key = ?1 AND given_key = ?2 AND birth_date = ?3 LIMIT 20"
            ))?;
            st.query(params![family, given, birth])?
        }
    };
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r, node)?);
    }
    Ok(out)
}

/// Whether a card number is in use by another patient.
pub fn card_taken(tx: &Tx<'_>, card: &str, except: Option<PatientId>) -> Result<bool, StoreError> {
    let conn = tx.conn();
    let found = match conn.blind_index(Lookup::Card, card) {
        Some(index) => conn
            .prepare_cached("SELECT id FROM patients WHERE card_index = ?1")?
            .query_row(params![index], |r| r.get::<_, String>(0)),
        None => conn
            .prepare_cached("SELECT id FROM patients WHERE card_number = ?1")?
            .query_row([card], |r| r.get::<_, String>(0)),
    };
    Ok(found
        .optional()?
        .is_some_and(|id| Some(id) != except.map(|e| e.to_string())))
}

/// A fresh card number nobody holds: 10 digits.
pub fn issue_card_number(tx: &Tx<'_>) -> Result<String, StoreError> {
    let mut rng = rand::thread_rng();
    loop {
        let card = format!("{:010}", rng.gen_range(1_000_000_000u64..10_000_000_000));
        if !card_taken(tx, &card, None)? {
            return Ok(card);
        }
    }
}

/// Inserts a new patient.
pub fn insert(w: &WriteCtx<'_>, p: &Patient) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO patients (id, family_name, given_name, family_key, given_key, birth_date, phone, email,
                               card_number, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(crate::store::sql::params_from_iter(
        [Value::Text(p.id.to_string())]
            .into_iter()
            .chain(details(w.conn(), p)?)
            .chain([
                Value::Integer(p.version),
                Value::Integer(p.created_at.timestamp_millis()),
                Value::Integer(p.updated_at.timestamp_millis()),
            ]),
    ))?;
    write_blind_indexes(w.conn(), p)
}

/// Writes a changed patient (its version already bumped).
pub fn update(w: &WriteCtx<'_>, p: &Patient) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "UPDATE patients SET family_name = ?2, given_name = ?3, family_key = ?4, given_key = ?5, birth_date = ?6,
                phone = ?7, email = ?8, card_number = ?9, version = ?10, updated_at = ?11
         WHERE id = ?1",
    )?
    .execute(crate::store::sql::params_from_iter(
        [Value::Text(p.id.to_string())]
            .into_iter()
            .chain(details(w.conn(), p)?)
            .chain([
                Value::Integer(p.version),
                Value::Integer(p.updated_at.timestamp_millis()),
            ]),
    ))?;
    write_blind_indexes(w.conn(), p)
}

/// A patient's details as the insert and the update write them, in their column order
/// (`family_name` to `card_number`): sealed on PostgreSQL.
fn details(conn: &Conn, p: &Patient) -> Result<[Value; 8], StoreError> {
    Ok([
        conn.seal(&p.family_name)?,
        conn.seal(&p.given_name)?,
        conn.seal(search_key(&p.family_name))?,
        conn.seal(search_key(&p.given_name))?,
        conn.seal(p.birth_date.to_string())?,
        conn.seal(&p.phone)?,
        conn.seal(&p.email)?,
        conn.seal(&p.card_number)?,
    ])
}

/// What the duplicate check's blind index is of.
fn person(family_key: &str, given_key: &str, birth: &str) -> String {
    format!("{family_key}\0{given_key}\0{birth}")
}

/// Writes `p`'s blind indexes (PostgreSQL; nothing on SQLite, which searches its columns):
/// its card number, birth date, name and birth date together, and each start of its names.
pub(in crate::store) fn write_blind_indexes(conn: &Conn, p: &Patient) -> Result<(), StoreError> {
    let Some(card) = conn.blind_index(Lookup::Card, &p.card_number) else {
        return Ok(());
    };
    let (family, given, birth) = (
        search_key(&p.family_name),
        search_key(&p.given_name),
        p.birth_date.to_string(),
    );
    let birth_index = conn.blind_index(Lookup::BirthDate, &birth);
    let person_index = conn.blind_index(Lookup::SamePerson, &person(&family, &given, &birth));
    conn.execute(
        "UPDATE patients SET card_index = ?2, birth_index = ?3, person_index = ?4 WHERE id = ?1",
        params![p.id.to_string(), card, birth_index, person_index],
    )?;
    conn.execute(
        "DELETE FROM patient_name_index WHERE patient_id = ?1",
        [p.id.to_string()],
    )?;
    let mut prefixes = name_prefixes(&family);
    prefixes.extend(name_prefixes(&given));
    prefixes.sort();
    prefixes.dedup();
    let mut put =
        conn.prepare_cached("INSERT INTO patient_name_index (prefix, patient_id) VALUES (?1, ?2)")?;
    for prefix in prefixes {
        put.execute(params![
            conn.blind_index(Lookup::NamePrefix, &prefix),
            p.id.to_string()
        ])?;
    }
    Ok(())
}

/// The blind index a name search for `key` looks up: of its first [`PREFIX_MAX`] characters.
fn prefix_index(conn: &Conn, key: &str) -> Option<Vec<u8>> {
    let indexed: String = key.chars().take(PREFIX_MAX).collect();
    conn.blind_index(Lookup::NamePrefix, &indexed)
}

/// The smallest string greater than every string starting with `prefix`: U+10FFFF sorts after
/// every other character in SQLite's binary (UTF-8) order.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Searches patients; every given criterion must match. Uses the name, birth-date and card
/// indexes (a name prefix is a range scan, not a LIKE).
pub fn search(tx: &Tx<'_>, q: &PatientSearch, node: &str) -> Result<Vec<Patient>, StoreError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let name = q.name.as_deref().map(search_key).filter(|n| !n.is_empty());
    if tx.conn().dialect() == crate::store::sql::Dialect::Postgres {
        let filter = PatientFilter {
            name,
            ..PatientFilter::default()
        };
        let mut w = Where::default();
        if let Some(d) = q.birth_date {
            w.and(
                "birth_index = ?",
                [blob(
                    tx.conn().blind_index(Lookup::BirthDate, &d.to_string()),
                )],
            );
        }
        if let Some(c) = &q.card_number {
            w.and(
                "card_index = ?",
                [blob(tx.conn().blind_index(Lookup::Card, c.trim()))],
            );
        }
        let page = Page {
            offset: 0,
            count: limit,
        };
        return Ok(find_sealed(tx, &filter, w, &[], page, node)?.items);
    }
    let mut sql = format!("SELECT {COLUMNS} FROM patients WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(n) = &name {
        args.push(n.clone());
        args.push(prefix_end(n));
        let (a, b) = (args.len() - 1, args.len());
        sql.push_str(&format!(
            " AND id IN (SELECT id FROM patients WHERE family_key >= ?{a} AND family_key < ?{b}
                         UNION SELECT id FROM patients WHERE given_key >= ?{a} AND given_key < ?{b})"
        ));
    }
    if let Some(d) = q.birth_date {
        args.push(d.to_string());
        sql.push_str(&format!(" AND birth_date = ?{}", args.len()));
    }
    if let Some(c) = &q.card_number {
        args.push(c.trim().to_owned());
        sql.push_str(&format!(" AND card_number = ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY family_key, given_key, id LIMIT {limit}"
    ));
    let mut st = tx.conn().prepare_cached(&sql)?;
    let mut rows = st.query(crate::store::sql::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r, node)?);
    }
    Ok(out)
}

/// What a patient search filters by; every given criterion must match.
#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    /// Only these ids (`None`: any).
    pub ids: Option<Vec<PatientId>>,
    /// Only those with one of these ids or one of these card numbers (`None`: any): an
    /// identifier search, where a value is either.
    pub identifier: Option<(Vec<PatientId>, Vec<String>)>,
    /// The start of the family or the given name.
    pub name: Option<String>,
    /// The start of the family name.
    pub family: Option<String>,
    /// The start of the given name.
    pub given: Option<String>,
    /// Born on or after.
    pub born_from: Option<NaiveDate>,
    /// Born before.
    pub born_before: Option<NaiveDate>,
    /// Last changed within.
    pub updated: Span,
}

/// What patients can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientSort {
    /// Family name (case-insensitive).
    Family,
    /// Given name (case-insensitive).
    Given,
    /// Birth date.
    BirthDate,
    /// Last change.
    LastUpdated,
}

/// One page of the patients matching `f`, sorted by `sort` (each key descending if set), then
/// by name and id.
pub fn find(
    tx: &Tx<'_>,
    f: &PatientFilter,
    sort: &[(PatientSort, bool)],
    page: Page,
    node: &str,
) -> Result<Found<Patient>, StoreError> {
    let mut w = Where::default();
    if let Some(ids) = &f.ids {
        w.any_of(
            "id",
            &ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        );
    }
    if let Some((ids, cards)) = &f.identifier {
        if tx.conn().dialect() == crate::store::sql::Dialect::Postgres {
            let cards: Vec<Value> = cards
                .iter()
                .map(|c| blob(tx.conn().blind_index(Lookup::Card, c)))
                .collect();
            let ids: Vec<Value> = ids.iter().map(|i| Value::Text(i.to_string())).collect();
            let marks = |n: usize| vec!["?"; n.max(1)].join(", ");
            let side = |col: &str, n: usize| {
                if n == 0 {
                    "1 = 0".to_owned()
                } else {
                    format!("{col} IN ({})", marks(n))
                }
            };
            let clause = format!(
                "{} OR {}",
                side("id", ids.len()),
                side("card_index", cards.len())
            );
            w.and(&clause, ids.into_iter().chain(cards));
        } else {
            search::either(
                &mut w,
                ("id", ids.iter().map(ToString::to_string).collect()),
                ("card_number", cards.clone()),
            );
        }
    }
    if tx.conn().dialect() == crate::store::sql::Dialect::Postgres {
        w.span("updated_at", f.updated);
        return find_sealed(tx, f, w, sort, page, node);
    }
    let prefix = |w: &mut Where, columns: &[&str], v: &str| {
        let key = search_key(v);
        let clause = columns
            .iter()
            .map(|c| format!("({c} >= ? AND {c} < ?)"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let args = columns
            .iter()
            .flat_map(|_| [Value::Text(key.clone()), Value::Text(prefix_end(&key))]);
        w.and(&clause, args);
    };
    if let Some(n) = &f.name {
        prefix(&mut w, &["family_key", "given_key"], n);
    }
    if let Some(n) = &f.family {
        prefix(&mut w, &["family_key"], n);
    }
    if let Some(n) = &f.given {
        prefix(&mut w, &["given_key"], n);
    }
    if let Some(d) = f.born_from {
        w.and("birth_date >= ?", [Value::Text(d.to_string())]);
    }
    if let Some(d) = f.born_before {
        w.and("birth_date < ?", [Value::Text(d.to_string())]);
    }
    w.span("updated_at", f.updated);
    let keys: Vec<(&str, bool)> = sort
        .iter()
        .map(|(k, desc)| {
            let c = match k {
                PatientSort::Family => "family_key",
                PatientSort::Given => "given_key",
                PatientSort::BirthDate => "birth_date",
                PatientSort::LastUpdated => "updated_at",
            };
            (c, *desc)
        })
        .collect();
    let order = order_by(&keys, "family_key, given_key, id");
    search::run(tx, COLUMNS, "patients", &w, &order, page, |r| {
        from_row(r, node)
    })
}

/// [`find`] on PostgreSQL, whose names and birth dates are sealed: `w` (ids, card numbers,
/// times) and the name prefixes' blind indexes choose the candidates in SQL; the rest of `f`,
/// the order and the page are applied to the opened rows.
fn find_sealed(
    tx: &Tx<'_>,
    f: &PatientFilter,
    mut w: Where,
    sort: &[(PatientSort, bool)],
    page: Page,
    node: &str,
) -> Result<Found<Patient>, StoreError> {
    let conn = tx.conn();
    let prefixes: Vec<(String, bool, bool)> = [
        (f.name.as_deref(), true, true),
        (f.family.as_deref(), true, false),
        (f.given.as_deref(), false, true),
    ]
    .into_iter()
    .filter_map(|(v, family, given)| v.map(|v| (search_key(v), family, given)))
    .filter(|(key, _, _)| !key.is_empty())
    .collect();
    for (key, _, _) in &prefixes {
        w.and(
            "id IN (SELECT patient_id FROM patient_name_index WHERE prefix = ?)",
            [blob(prefix_index(conn, key))],
        );
    }
    let mut st =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM patients WHERE {}", w.sql()))?;
    let mut rows = st.query(crate::store::sql::params_from_iter(w.args()))?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        let p = from_row(r, node)?;
        let (family, given) = (search_key(&p.family_name), search_key(&p.given_name));
        let named = prefixes.iter().all(|(key, in_family, in_given)| {
            (*in_family && family.starts_with(key.as_str()))
                || (*in_given && given.starts_with(key.as_str()))
        });
        let born = f.born_from.is_none_or(|d| p.birth_date >= d)
            && f.born_before.is_none_or(|d| p.birth_date < d);
        if named && born {
            found.push((family, given, p));
        }
    }
    found.sort_by(|a, b| {
        sort.iter()
            .map(|(key, desc)| {
                let o = match key {
                    PatientSort::Family => a.0.cmp(&b.0),
                    PatientSort::Given => a.1.cmp(&b.1),
                    PatientSort::BirthDate => a.2.birth_date.cmp(&b.2.birth_date),
                    PatientSort::LastUpdated => a.2.updated_at.cmp(&b.2.updated_at),
                };
                if *desc { o.reverse() } else { o }
            })
            .chain([
                a.0.cmp(&b.0),
                a.1.cmp(&b.1),
                a.2.id.to_string().cmp(&b.2.id.to_string()),
            ])
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    let total = found.len() as u64;
    let items = found
        .into_iter()
        .skip(page.offset as usize)
        .take(page.count as usize)
        .map(|(_, _, p)| p)
        .collect();
    Ok(Found { total, items })
}

/// The next `limit` patients by id after `after` changed within `changed` (a bulk export's
/// walk).
pub fn page_after(
    tx: &Tx<'_>,
    after: Option<PatientId>,
    changed: Span,
    limit: u32,
    node: &str,
) -> Result<Vec<Patient>, StoreError> {
    let after = after.map(|a| a.to_string());
    search::walk(tx, COLUMNS, "patients", after, changed, limit, |r| {
        from_row(r, node)
    })
}

/// Marks a patient's record transferred to another hospital (read-only here from now on): its
/// version moves on, so that clients read it again. False when it already was.
pub fn mark_transferred(
    w: &WriteCtx<'_>,
    id: PatientId,
    to: &carebridge_protocol::federation::transfer::TransferredTo,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "UPDATE patients SET transferred_to = ?2, version = version + 1, updated_at = ?3
         WHERE id = ?1 AND transferred_to IS NULL",
        params![
            id.to_string(),
            serde_json::to_string(to)?,
            w.now().timestamp_millis()
        ],
    )? == 1)
}

/// A blind index as a parameter (`None`, on SQLite, is never bound: the callers branch first).
fn blob(index: Option<Vec<u8>>) -> Value {
    index.map_or(Value::Null, Value::Blob)
}

//! What the store's searches share: a page, what it found, and the WHERE clause they build.
//!
//! The searches serve FHIR's (`/fhir/R4`): filters ANDed, sorts by named keys, a page by offset,
//! and the total across every page.

use crate::store::sql::Value;
use chrono::{DateTime, Utc};

/// Which part of the matches to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many to skip.
    pub offset: u32,
    /// How many at most (0: only the total).
    pub count: u32,
}

/// One page of matches and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    /// Every match, across pages.
    pub total: u64,
    /// This page's.
    pub items: Vec<T>,
}

/// A span of instants, `from` included, `to` not; either may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// The first instant.
    pub from: Option<DateTime<Utc>>,
    /// The first instant after.
    pub to: Option<DateTime<Utc>>,
}

/// A WHERE clause with its arguments, built one condition at a time.
#[derive(Debug, Default)]
pub(in crate::store) struct Where {
    sql: String,
    args: Vec<Value>,
}

impl Where {
    /// Adds `AND clause`, whose `?` placeholders take `values` in order.
    pub fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        let mut out = String::with_capacity(clause.len() + 8);
        let mut values = values.into_iter();
        for c in clause.chars() {
            if c == '?' {
                if let Some(v) = values.next() {
                    self.args.push(v);
                }
                out.push_str(&format!("?{}", self.args.len()));
            } else {
                out.push(c);
            }
        }
        self.sql.push_str(" AND (");
        self.sql.push_str(&out);
        self.sql.push(')');
    }

    /// `column IN (…)` over `values`; with none, nothing matches.
    pub fn any_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            self.and("1 = 0", []);
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.and(
            &format!("{column} IN ({marks})"),
            values.iter().map(|v| Value::Text(v.clone())),
        );
    }

    /// A span on a column of epoch milliseconds.
    pub fn span(&mut self, column: &str, span: Span) {
        if let Some(f) = span.from {
            self.and(
                &format!("{column} >= ?"),
                [Value::Integer(f.timestamp_millis())],
            );
        }
        if let Some(t) = span.to {
            self.and(
                &format!("{column} < ?"),
                [Value::Integer(t.timestamp_millis())],
            );
        }
    }

    /// The clause, `1 = 1 AND …`.
    pub fn sql(&self) -> String {
        format!("1 = 1{}", self.sql)
    }

    /// The arguments, in placeholder order.
    pub fn args(&self) -> &[Value] {
        &self.args
    }
}

/// `a IN (…) OR b IN (…)` over each column's values; with none at all, nothing matches.
pub(in crate::store) fn either(w: &mut Where, a: (&str, Vec<String>), b: (&str, Vec<String>)) {
    let side = |(column, values): &(&str, Vec<String>)| {
        if values.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!("{column} IN ({})", vec!["?"; values.len()].join(", "))
        }
    };
    let clause = format!("{} OR {}", side(&a), side(&b));
    let args = a.1.into_iter().chain(b.1).map(Value::Text);
    w.and(&clause, args);
}

/// Runs `SELECT COUNT(*)` and `SELECT columns … ORDER BY order LIMIT page` over `from` and
/// `filter`, decoding each row with `decode`.
pub(in crate::store) fn run<T>(
    tx: &super::Tx<'_>,
    columns: &str,
    from: &str,
    filter: &Where,
    order: &str,
    page: Page,
    decode: impl Fn(&crate::store::sql::Row) -> Result<T, super::StoreError>,
) -> Result<Found<T>, super::StoreError> {
    let conn = tx.conn();
    let where_sql = filter.sql();
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM {from} WHERE {where_sql}"))?
        .query_row(crate::store::sql::params_from_iter(filter.args()), |r| {
            r.get(0)
        })?;
    let items = if page.count > 0 {
        page_only(tx, columns, from, filter, order, page, decode)?
    } else {
        Vec::new()
    };
    Ok(Found {
        total: u64::try_from(total).unwrap_or(0),
        items,
    })
}

/// `SELECT columns … ORDER BY order LIMIT page` without the count: a walk through a table.
pub(in crate::store) fn page_only<T>(
    tx: &super::Tx<'_>,
    columns: &str,
    from: &str,
    filter: &Where,
    order: &str,
    page: Page,
    decode: impl Fn(&crate::store::sql::Row) -> Result<T, super::StoreError>,
) -> Result<Vec<T>, super::StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {columns} FROM {from} WHERE {} ORDER BY {order} LIMIT {} OFFSET {}",
        filter.sql(),
        page.count,
        page.offset
    ))?;
    let mut rows = st.query(crate::store::sql::params_from_iter(filter.args()))?;
    let mut items = Vec::new();
    while let Some(r) = rows.next()? {
        items.push(decode(r)?);
    }
    Ok(items)
}

/// The next `limit` rows of `table` by id after `after` (from the first with `None`) changed
/// within `changed` (its `updated_at`): a bulk export's walk, one bounded page at a time.
pub(in crate::store) fn walk<T>(
    tx: &super::Tx<'_>,
    columns: &str,
    table: &str,
    after: Option<String>,
    changed: Span,
    limit: u32,
    decode: impl Fn(&crate::store::sql::Row) -> Result<T, super::StoreError>,
) -> Result<Vec<T>, super::StoreError> {
    let mut w = Where::default();
    if let Some(a) = after {
        w.and("id > ?", [Value::Text(a)]);
    }
    w.span("updated_at", changed);
    let page = Page {
        offset: 0,
        count: limit,
    };
    page_only(tx, columns, table, &w, "id", page, decode)
}

/// An `ORDER BY` from sort keys (`(column, descending)`), then `tie_break` so that pages are
/// stable.
pub(in crate::store) fn order_by(keys: &[(&str, bool)], tie_break: &str) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .map(|(c, desc)| format!("{c} {}", if *desc { "DESC" } else { "ASC" }))
        .collect();
    parts.push(tie_break.to_owned());
    parts.join(", ")
}

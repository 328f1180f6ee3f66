//! The SQL both backends speak: one connection type over SQLite (SQLCipher) and PostgreSQL,
//! with the calls the store's operations use (`prepare_cached`, `query`, `query_row`, …).
//!
//! Design (2026-12): the operations are written once, in SQL both databases accept, with
//! `?N` placeholders (rewritten to PostgreSQL's `$N` once per statement, and cached). Where
//! the dialects differ (a JSON path, a text form of a time) an operation asks
//! [`Conn::dialect`] and writes each. Rows are read into owned [`Value`]s, the same for both,
//! so a row decoder is written once; a parameter is a [`Value`] too, converted to the type
//! PostgreSQL inferred for its placeholder (an integer flag bound where `BIGINT` is expected,
//! text where `TEXT` is).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::seal::{Lookup, Seal};

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// Which SQL a connection speaks, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, through SQLCipher.
    Sqlite,
    /// PostgreSQL 15 or later.
    Postgres,
}

/// What a database call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or the connection to it did).
    #[error("{}", postgres_text(.0))]
    Postgres(#[from] postgres::Error),
    /// PostgreSQL refused a statement of the store's (a dialect difference: a bug).
    #[error("{}: {sql}", postgres_text(.source))]
    Statement {
        /// The statement, as sent.
        sql: String,
        /// PostgreSQL's answer.
        source: postgres::Error,
    },
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRow,
    /// A column held a value of another type than the one read.
    #[error("column {column} holds {found}, not {wanted}")]
    Type {
        /// The column's index.
        column: usize,
        /// The Rust type read.
        wanted: &'static str,
        /// What was there.
        found: &'static str,
    },
    /// A row has fewer columns than the one read.
    #[error("no column {0} in the row")]
    NoColumn(usize),
    /// A parameter could not be converted to the type PostgreSQL expects.
    #[error("parameter does not fit {0}")]
    Parameter(String),
    /// A sealed value could not be sealed or opened (`seal.rs`).
    #[error("{0}")]
    Sealed(&'static str),
}

/// PostgreSQL's own message, with its detail, rather than the client's "db error".
fn postgres_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {d}", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

impl DbError {
    /// Whether a uniqueness or exclusion constraint refused the write: a conflict with a
    /// row that exists, which the caller may answer as such.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            Self::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == postgres::error::SqlState::UNIQUE_VIOLATION
                    || *c == postgres::error::SqlState::EXCLUSION_VIOLATION
            ),
            _ => false,
        }
    }

    /// Whether the database gave up on the transaction to let a concurrent one go on
    /// (a deadlock or a serialisation failure): the whole transaction may be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}

/// A value read from or bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL BIGINT, INTEGER, SMALLINT or BOOLEAN).
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Integer(_) => "an integer",
            Self::Real(_) => "a real number",
            Self::Text(_) => "text",
            Self::Blob(_) => "bytes",
        }
    }
}

/// What can be bound to a placeholder.
pub trait ToValue {
    /// The value bound.
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Integer(i)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Blob(b)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

macro_rules! integer_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Wider than i64 only past 2^63, which no count or time here reaches.
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_to_value!(i64, i32, i16, u8, u16, u32, u64, usize);

/// A statement's parameters, in placeholder order.
pub trait Params {
    /// The values bound, `?1` first.
    fn into_values(self) -> Vec<Value>;
}

impl Params for [Value; 0] {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn into_values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32
);

/// Parameters from an iterator of values, for a statement built at run time.
pub fn params_from_iter<I>(values: I) -> Vec<Value>
where
    I: IntoIterator,
    I::Item: ToValue,
{
    values.into_iter().map(|v| v.to_value()).collect()
}

/// Parameters of mixed types, `?1` first: `params![id.to_string(), at.timestamp_millis()]`.
#[macro_export]
#[doc(hidden)]
macro_rules! __store_params {
    () => {
        ::std::vec::Vec::<$crate::store::sql::Value>::new()
    };
    ($($x:expr),+ $(,)?) => {
        ::std::vec![$($crate::store::sql::ToValue::to_value(&$x)),+]
    };
}
pub use crate::__store_params as params;

/// What a column can be read as.
pub trait FromValue: Sized {
    /// Reads `v`, found in column `column`.
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError>;
}

fn wrong<T>(v: &Value, column: usize, wanted: &'static str) -> Result<T, DbError> {
    Err(DbError::Type {
        column,
        wanted,
        found: v.kind(),
    })
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v, column).map(Some),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            v => wrong(v, column, "text"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            v => wrong(v, column, "bytes"),
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            v => wrong(v, column, "a flag"),
        }
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Real(f) => Ok(*f),
            #[expect(
                clippy::cast_precision_loss,
                reason = "SQL's own integer-to-real reading"
            )]
            Value::Integer(i) => Ok(*i as f64),
            v => wrong(v, column, "a real number"),
        }
    }
}

impl FromValue for Value {
    fn from_value(v: &Value, _column: usize) -> Result<Self, DbError> {
        Ok(v.clone())
    }
}

macro_rules! integer_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
                match v {
                    Value::Integer(i) => <$t>::try_from(*i).or_else(|_| wrong(v, column, stringify!($t))),
                    v => wrong(v, column, stringify!($t)),
                }
            }
        }
    )*};
}
integer_from_value!(i64, i32, u8, u16, u32, u64, usize);

/// A column's position in a row (its index: the store names no columns when reading).
pub trait RowIndex {
    /// The index, from 0.
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One row read, its columns as values.
#[derive(Debug)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `i`, read as `T`. (The unused first parameter keeps rusqlite's call form,
    /// `r.get::<_, String>(0)`.)
    pub fn get<I: RowIndex, T: FromValue>(&self, i: I) -> Result<T, DbError> {
        let i = i.index();
        let v = self.values.get(i).ok_or(DbError::NoColumn(i))?;
        T::from_value(v, i)
    }

    fn from_sqlite(r: &rusqlite::Row<'_>) -> Result<Self, DbError> {
        let n = r.as_ref().column_count();
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            use rusqlite::types::ValueRef;
            values.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => {
                    Value::Text(String::from_utf8(t.to_vec()).map_err(|_| DbError::Type {
                        column: i,
                        wanted: "text",
                        found: "bytes that are not UTF-8",
                    })?)
                }
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        Ok(Self { values })
    }

    fn from_postgres(r: &postgres::Row, seal: &Seal) -> Result<Self, DbError> {
        let mut values = Vec::with_capacity(r.len());
        for (i, c) in r.columns().iter().enumerate() {
            let t = c.type_();
            let v = if *t == Type::INT8 {
                r.try_get::<_, Option<i64>>(i)?.map(Value::Integer)
            } else if *t == Type::INT4 {
                r.try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Integer(v.into()))
            } else if *t == Type::INT2 {
                r.try_get::<_, Option<i16>>(i)?
                    .map(|v| Value::Integer(v.into()))
            } else if *t == Type::BOOL {
                r.try_get::<_, Option<bool>>(i)?
                    .map(|v| Value::Integer(v.into()))
            } else if *t == Type::FLOAT8 {
                r.try_get::<_, Option<f64>>(i)?.map(Value::Real)
            } else if *t == Type::FLOAT4 {
                r.try_get::<_, Option<f32>>(i)?
                    .map(|v| Value::Real(v.into()))
            } else if *t == Type::BYTEA {
                r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
            } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) {
                r.try_get::<_, Option<String>>(i)?.map(Value::Text)
            } else {
                // A type the store never stores (NUMERIC from SUM, say): cast it in the SQL.
                return Err(DbError::Parameter(format!(
                    "column {i} of type {t} cannot be read; cast it to BIGINT, TEXT or BYTEA"
                )));
            };
            // Sealed values are opened here, whichever column they are read from.
            values.push(seal.open(v.unwrap_or(Value::Null))?);
        }
        Ok(Self { values })
    }
}

/// The rows of a query, read one at a time.
pub struct Rows<'s> {
    source: RowSource<'s>,
    current: Option<Row>,
}

enum RowSource<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<postgres::Row>, &'s Seal),
}

impl Rows<'_> {
    /// The next row, or `None` after the last.
    #[expect(
        clippy::should_implement_trait,
        reason = "a lending iterator: the row is borrowed until the next call"
    )]
    pub fn next(&mut self) -> Result<Option<&Row>, DbError> {
        self.current = match &mut self.source {
            RowSource::Sqlite(rows) => match rows.next()? {
                Some(r) => Some(Row::from_sqlite(r)?),
                None => None,
            },
            RowSource::Postgres(rows, seal) => match rows.next() {
                Some(r) => Some(Row::from_postgres(&r, seal)?),
                None => None,
            },
        };
        Ok(self.current.as_ref())
    }
}

/// A prepared statement.
pub struct Statement<'c> {
    inner: StatementInner<'c>,
}

enum StatementInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres {
        conn: &'c PgConn,
        statement: postgres::Statement,
    },
}

/// Binds values for PostgreSQL.
fn bind(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Statement<'_> {
    /// Runs the statement; the number of rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize, DbError> {
        let values = params.into_values();
        match &mut self.inner {
            StatementInner::Sqlite(st) => Ok(st.execute(rusqlite::params_from_iter(&values))?),
            StatementInner::Postgres { conn, statement } => {
                let n = conn.client().execute(&*statement, &bind(&values))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs a query; its rows.
    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>, DbError> {
        let values = params.into_values();
        let source = match &mut self.inner {
            StatementInner::Sqlite(st) => {
                RowSource::Sqlite(st.query(rusqlite::params_from_iter(values))?)
            }
            StatementInner::Postgres { conn, statement } => RowSource::Postgres(
                conn.client()
                    .query(&*statement, &bind(&values))?
                    .into_iter(),
                &conn.seal,
            ),
        };
        Ok(Rows {
            source,
            current: None,
        })
    }

    /// Runs a query and reads its first row with `f`; [`DbError::NoRow`] without one.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(r),
            None => Err(DbError::NoRow),
        }
    }

    /// Runs a query and reads every row with `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r));
        }
        Ok(out.into_iter())
    }

    /// Whether the query returns a row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool, DbError> {
        Ok(self.query(params)?.next()?.is_some())
    }
}

/// A PostgreSQL connection with its prepared statements, by the store's SQL text.
///
/// The blocking client runs a small runtime of its own, which must neither run nor be
/// dropped on an async thread: the store uses it only on its writer thread and in
/// `spawn_blocking`, and dropping it hands it to a thread of its own (see `Drop`).
pub struct PgConn {
    client: RefCell<Option<postgres::Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// When the connection last answered; one idle longer than [`IDLE_CHECK`] is checked
    /// before it is used again ([`Conn::is_lost`]).
    answered: std::cell::Cell<std::time::Instant>,
    /// Seals and opens the patient data of this node's database (`seal.rs`).
    seal: Arc<Seal>,
}

/// How long a connection may sit unused before it is checked: the server may have restarted
/// meanwhile, and the client learns of that only by using it.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl PgConn {
    /// Connects to `url`. Blocking, and not on an async thread.
    pub fn connect(url: &str, seal: Arc<Seal>) -> Result<Self, DbError> {
        let mut config: postgres::Config = url.parse()?;
        // Names the process in pg_stat_activity: which node process holds what.
        config.application_name(&format!("carebridge-node {}", std::process::id()));
        let client = config.connect(postgres::NoTls)?;
        Ok(Self {
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            answered: std::cell::Cell::new(std::time::Instant::now()),
            seal,
        })
    }

    /// The client itself, for what only PostgreSQL has (LISTEN, COPY).
    pub fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        self.answered.set(std::time::Instant::now());
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut()
                .expect("a connection keeps its client until dropped")
        })
    }

    /// Whether the connection has been lost.
    pub fn is_closed(&self) -> bool {
        self.client
            .borrow()
            .as_ref()
            .is_none_or(postgres::Client::is_closed)
    }

    fn prepare(&self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(st) = self.statements.borrow().get(sql) {
            return Ok(st.clone());
        }
        let text = to_postgres(sql);
        let st = self
            .client()
            .prepare(&text)
            .map_err(|source| DbError::Statement { sql: text, source })?;
        let mut cache = self.statements.borrow_mut();
        // Statements built at run time (searches) vary without end: keep the cache bounded.
        if cache.len() >= 512 {
            cache.clear();
        }
        cache.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.statements.get_mut().clear();
        if let Some(client) = self.client.get_mut().take() {
            // Closing says goodbye to the server and drops the client's runtime: neither may
            // happen on an async thread, where the store is often dropped. Joined, so that
            // the connection is gone when the store is.
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// A connection to either database.
pub enum Conn {
    /// A SQLCipher connection.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL connection (boxed: its client and statement cache are large, and a
    /// connection is made once and kept).
    Postgres(Box<PgConn>),
}

impl Conn {
    /// Which SQL this connection speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A prepared statement for `sql`, from the connection's cache when it was prepared before.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>, DbError> {
        Ok(Statement {
            inner: match self {
                Self::Sqlite(c) => StatementInner::Sqlite(c.prepare_cached(sql)?),
                Self::Postgres(c) => StatementInner::Postgres {
                    conn: c,
                    statement: c.prepare(sql)?,
                },
            },
        })
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize, DbError> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs a query and reads its first row with `f`; [`DbError::NoRow`] without one.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// A prepared statement for `sql` (cached as [`Conn::prepare_cached`]'s are).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>, DbError> {
        self.prepare_cached(sql)
    }

    /// `v` as stored in a column of patient data: sealed on PostgreSQL (`seal.rs`), as it is
    /// in SQLCipher's file, which is encrypted whole.
    pub fn seal(&self, v: impl ToValue) -> Result<Value, DbError> {
        match self {
            Self::Sqlite(_) => Ok(v.to_value()),
            Self::Postgres(c) => c.seal.seal(v.to_value(), false),
        }
    }

    /// [`Conn::seal`], equal values sealed equal (`Seal::seal`'s `fixed`).
    pub fn seal_fixed(&self, v: impl ToValue) -> Result<Value, DbError> {
        match self {
            Self::Sqlite(_) => Ok(v.to_value()),
            Self::Postgres(c) => c.seal.seal(v.to_value(), true),
        }
    }

    /// The blind index of `value` for `lookup` (PostgreSQL); `None` on SQLite, whose columns
    /// are searched as they are.
    pub fn blind_index(&self, lookup: Lookup, value: &str) -> Option<Vec<u8>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(c) => Some(c.seal.index(lookup, value)),
        }
    }

    /// Runs statements without parameters (transaction control, schema).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Self::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Self::Postgres(c) => Ok(c.client().batch_execute(sql)?),
        }
    }

    /// Whether the connection is lost (PostgreSQL's server went away, or the network): it
    /// must be replaced. One that sat idle is asked first (a round trip), so that a restart
    /// of the server does not fail the next use of every pooled connection. A SQLite
    /// connection is a file's: it is never lost.
    pub fn is_lost(&self) -> bool {
        match self {
            Self::Sqlite(_) => false,
            Self::Postgres(c) => {
                if c.is_closed() {
                    return true;
                }
                if c.answered.get().elapsed() < IDLE_CHECK {
                    return false;
                }
                let alive = c
                    .client()
                    .is_valid(std::time::Duration::from_secs(2))
                    .is_ok();
                !alive
            }
        }
    }

    /// Whether no transaction is open: SQLite ends one by itself on some errors (a full
    /// disk), after which nothing may run as if it were still open. PostgreSQL keeps a
    /// failed transaction open until it is rolled back; a lost connection shows as closed.
    pub fn transaction_ended(&self) -> bool {
        match self {
            Self::Sqlite(c) => c.is_autocommit(),
            Self::Postgres(c) => c.is_closed(),
        }
    }
}

/// `OptionalExtension` for the store's results: a missing row as `None`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`DbError::NoRow`].
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Rewrites `?N` (and a bare `?`, numbered in order) to PostgreSQL's `$N`, leaving quoted
/// text and identifiers alone.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next_bare = 0;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                out.push('$');
                let mut digits = false;
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                    digits = true;
                }
                if !digits {
                    next_bare += 1;
                    out.push_str(&next_bare.to_string());
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let misfit = || -> Box<dyn std::error::Error + Sync + Send> {
            Box::new(DbError::Parameter(format!("{} as {ty}", self.kind())))
        };
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Integer(i) => {
                if *ty == Type::INT8 {
                    i.to_sql(ty, out)
                } else if *ty == Type::INT4 {
                    i32::try_from(*i).map_err(|_| misfit())?.to_sql(ty, out)
                } else if *ty == Type::INT2 {
                    i16::try_from(*i).map_err(|_| misfit())?.to_sql(ty, out)
                } else if *ty == Type::BOOL {
                    (*i != 0).to_sql(ty, out)
                } else if *ty == Type::FLOAT8 {
                    #[expect(clippy::cast_precision_loss, reason = "as SQL compares them")]
                    (*i as f64).to_sql(ty, out)
                } else if [Type::TEXT, Type::VARCHAR, Type::UNKNOWN].contains(ty) {
                    i.to_string().to_sql(&Type::TEXT, out)
                } else {
                    Err(misfit())
                }
            }
            Self::Real(f) => {
                if *ty == Type::FLOAT8 {
                    f.to_sql(ty, out)
                } else {
                    Err(misfit())
                }
            }
            Self::Text(s) => {
                if [
                    Type::TEXT,
                    Type::VARCHAR,
                    Type::BPCHAR,
                    Type::NAME,
                    Type::UNKNOWN,
                ]
                .contains(ty)
                {
                    s.as_str().to_sql(&Type::TEXT, out)
                } else {
                    Err(misfit())
                }
            }
            Self::Blob(b) => {
                if *ty == Type::BYTEA {
                    b.as_slice().to_sql(ty, out)
                } else {
                    Err(misfit())
                }
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, where the value is known.
        true
    }

    to_sql_checked!();
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Integer(i) => ValueRef::Integer(*i),
            Self::Real(f) => ValueRef::Real(*f),
            Self::Text(s) => ValueRef::Text(s.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b IN (?, ?) AND c = ?12"),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b IN ($1, $2) AND c = $12"
        );
    }

    #[test]
    fn integers_read_as_the_width_asked_and_refuse_what_does_not_fit() {
        let row = Row {
            values: vec![Value::Integer(-1), Value::Null, Value::Text("x".into())],
        };
        assert_eq!(row.get::<_, i64>(0).ok(), Some(-1));
        assert!(matches!(
            row.get::<_, u32>(0),
            Err(DbError::Type { column: 0, .. })
        ));
        assert_eq!(row.get::<_, Option<i64>>(1).ok(), Some(None));
        assert!(row.get::<_, i64>(1).is_err());
        assert!(row.get::<_, i64>(2).is_err());
        assert!(matches!(row.get::<_, i64>(3), Err(DbError::NoColumn(3))));
    }
}

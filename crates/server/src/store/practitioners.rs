//! Staff accounts as stored (password hashes come from `crate::practitioner`).

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::PractitionerId;
use carebridge_protocol::practitioner::{Practitioner, Role};

use crate::store::{StoreError, Tx, WriteCtx};

/// The columns [`from_row`] reads, in its order.
pub(in crate::store) const COLUMNS: &str = "id, username, display_name, role, disabled, version";

/// Decodes a row selected with [`COLUMNS`].
pub(in crate::store) fn from_row(r: &Row) -> Result<Practitioner, StoreError> {
    let id: String = r.get(0)?;
    let role: String = r.get(3)?;
    Ok(Practitioner {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("practitioner id {id}")))?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        disabled: r.get::<_, i64>(4)? != 0,
        version: r.get(5)?,
    })
}

/// Reads one account.
pub fn get(tx: &Tx<'_>, id: PractitionerId) -> Result<Option<Practitioner>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM practitioners WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(from_row).transpose()
}

/// Lists accounts, optionally of one role, by display name.
pub fn list(tx: &Tx<'_>, role: Option<Role>) -> Result<Vec<Practitioner>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM practitioners WHERE role = ?1 OR ?1 IS NULL ORDER BY display_name, id"
    ))?;
    let mut rows = st.query([role.map(Role::as_str)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// An account with its password hash, for signing in.
pub struct Credentials {
    /// The account.
    pub practitioner: Practitioner,
    /// Its PHC-format Argon2id hash.
    pub password_hash: String,
}

/// Looks an account up by username.
pub fn by_username(tx: &Tx<'_>, username: &str) -> Result<Option<Credentials>, StoreError> {
    // No account's name holds a NUL (names are checked when accounts are made), and
    // PostgreSQL's text cannot hold one: asking would fail the sign-in with a 500, not a 401.
    if username.contains('\0') {
        return Ok(None);
    }
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {COLUMNS}, password_hash FROM practitioners WHERE username = ?1"
    ))?;
    let mut rows = st.query([username])?;
    match rows.next()? {
        Some(r) => Ok(Some(Credentials {
            practitioner: from_row(r)?,
            password_hash: r.get(6)?,
        })),
        None => Ok(None),
    }
}

/// Whether a username is taken.
pub fn username_taken(tx: &Tx<'_>, username: &str) -> Result<bool, StoreError> {
    Ok(tx
        .conn()
        .query_row(
            "SELECT 1 FROM practitioners WHERE username = ?1",
            [username],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Inserts a new account with an already-computed hash.
pub fn insert(
    w: &WriteCtx<'_>,
    p: &Practitioner,
    password_hash: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO practitioners (id, username, display_name, role, password_hash, disabled, version, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        p.id.to_string(),
        p.username,
        p.display_name,
        p.role.as_str(),
        password_hash,
        p.disabled as i64,
        p.version,
        now_ms
    ])?;
    Ok(())
}

/// Writes an account's changed fields (and, when given, a new hash) and bumps its version.
pub fn update(
    w: &WriteCtx<'_>,
    p: &Practitioner,
    password_hash: Option<&str>,
) -> Result<(), StoreError> {
    w.conn()
        .prepare_cached(
            "UPDATE practitioners SET display_name = ?2, disabled = ?3, version = ?4,
                password_hash = COALESCE(?5, password_hash)
         WHERE id = ?1",
        )?
        .execute(params![
            p.id.to_string(),
            p.display_name,
            p.disabled as i64,
            p.version,
            password_hash
        ])?;
    Ok(())
}

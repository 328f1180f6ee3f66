//! Consented access across hospitals, as stored on both sides.
//!
//! The home side (the patient's hospital, A) keeps the requests other hospitals sent
//! (`access_requests`, with the one-time code's hash and its wrong tries), the grants it issued
//! (`access_grants`, the token only as a hash) and every read made under them
//! (`access_reads`). The requesting side (B) keeps its doctors' requests and, once granted, the
//! token (`remote_access`; the database is encrypted as a whole).

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::access::{
    AccessPurpose, AccessRead, AccessState, GrantedPatient, IncomingAccess, RemoteAccess,
};
use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

fn uuid(s: &str, what: &str) -> Result<uuid::Uuid, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} id {s}")))
}

fn patient_id(s: &str) -> Result<PatientId, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("patient id {s}")))
}

fn purpose(s: &str) -> Result<AccessPurpose, StoreError> {
    AccessPurpose::parse(s).ok_or_else(|| StoreError::Corrupt(format!("access purpose {s}")))
}

fn state(s: &str) -> Result<AccessState, StoreError> {
    AccessState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("access state {s}")))
}

// ---------------------------------------------------------------------------------------------
// The home side

/// A request from another hospital, as the home node keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRequest {
    /// Its id here.
    pub id: uuid::Uuid,
    /// The asking node.
    pub peer: String,
    /// The asking node's id for it.
    pub peer_request_id: uuid::Uuid,
    /// The patient it matched; `None` when no record matched (it is answered alike).
    pub patient_id: Option<PatientId>,
    /// The asking doctor's id at the asking node.
    pub practitioner_id: String,
    /// The asking doctor.
    pub practitioner_name: String,
    /// The asking organisation.
    pub organisation: String,
    /// Why.
    pub purpose: AccessPurpose,
    /// The scopes asked for, or granted once granted.
    pub scopes: Vec<String>,
    /// Hours asked for, or granted once granted.
    pub hours: u32,
    /// Where it stands.
    pub state: AccessState,
    /// The one-time code's hash, while one was issued.
    pub code_hash: Option<Vec<u8>>,
    /// When the code stops working.
    pub code_expires_at: Option<DateTime<Utc>>,
    /// Wrong codes so far.
    pub wrong_codes: u32,
    /// How it was approved: `code`, `kiosk`, `front-desk`, `emergency`.
    pub approved_by: Option<String>,
    /// Incremented by every change.
    pub version: i64,
    /// When it arrived.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const REQUEST_COLUMNS: &str = "id, peer, peer_request_id, patient_id, practitioner_id, practitioner_name, \
     organisation, purpose, scopes, hours, state, code_hash, code_expires_at, wrong_codes, approved_by, \
     version, created_at, updated_at";

fn request_from_row(r: &Row) -> Result<HomeRequest, StoreError> {
    let id: String = r.get(0)?;
    let peer_request: String = r.get(2)?;
    let patient: Option<String> = r.get(3)?;
    let scopes: String = r.get(8)?;
    let expires: Option<i64> = r.get(12)?;
    Ok(HomeRequest {
        id: uuid(&id, "access request")?,
        peer: r.get(1)?,
        peer_request_id: uuid(&peer_request, "access request")?,
        patient_id: patient.as_deref().map(patient_id).transpose()?,
        practitioner_id: r.get(4)?,
        practitioner_name: r.get(5)?,
        organisation: r.get(6)?,
        purpose: purpose(&r.get::<_, String>(7)?)?,
        scopes: serde_json::from_str(&scopes)?,
        hours: r.get(9)?,
        state: state(&r.get::<_, String>(10)?)?,
        code_hash: r.get(11)?,
        code_expires_at: expires.map(from_millis).transpose()?,
        wrong_codes: r.get(13)?,
        approved_by: r.get(14)?,
        version: r.get(15)?,
        created_at: from_millis(r.get(16)?)?,
        updated_at: from_millis(r.get(17)?)?,
    })
}

/// Stores a request that arrived.
pub fn insert_request(w: &WriteCtx<'_>, q: &HomeRequest) -> Result<(), StoreError> {
    w.conn.execute(
        &format!(
            "INSERT INTO access_requests ({REQUEST_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        params![
            q.id.to_string(),
            q.peer,
            q.peer_request_id.to_string(),
            q.patient_id.map(|p| p.to_string()),
            q.practitioner_id,
            q.practitioner_name,
            q.organisation,
            q.purpose.as_str(),
            serde_json::to_string(&q.scopes)?,
            q.hours,
            q.state.as_str(),
            q.code_hash,
            q.code_expires_at.map(|t| t.timestamp_millis()),
            q.wrong_codes,
            q.approved_by,
            q.version,
            q.created_at.timestamp_millis(),
            q.updated_at.timestamp_millis(),
        ],
    )?;
    Ok(())
}

/// One request, by its id here.
pub fn request(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<HomeRequest>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(request_from_row).transpose()
}

/// One request, by the asking node and its id there.
pub fn request_from_peer(
    tx: &Tx<'_>,
    peer: &str,
    peer_request_id: uuid::Uuid,
) -> Result<Option<HomeRequest>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE peer = ?1 AND peer_request_id = ?2"
    ))?;
    let mut rows = st.query(params![peer, peer_request_id.to_string()])?;
    rows.next()?.map(request_from_row).transpose()
}

/// A patient's requests, newest first; only the pending ones when `pending_only`.
pub fn requests_for_patient(
    tx: &Tx<'_>,
    patient: PatientId,
    pending_only: bool,
) -> Result<Vec<HomeRequest>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests
         WHERE patient_id = ?1 AND (?2 = 0 OR state = 'pending')
         ORDER BY created_at DESC, id"
    ))?;
    let mut rows = st.query(params![patient.to_string(), pending_only])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(request_from_row(r)?);
    }
    Ok(out)
}

/// Requests still pending that arrived before `before`, oldest first, at most `limit`.
pub fn pending_before(
    tx: &Tx<'_>,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<HomeRequest>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests
         WHERE state = 'pending' AND created_at < ?1
         ORDER BY created_at, id LIMIT ?2"
    ))?;
    let mut rows = st.query(params![before.timestamp_millis(), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(request_from_row(r)?);
    }
    Ok(out)
}

/// Counts one wrong code against a pending request, in one statement, so that concurrent
/// wrong codes are each counted exactly once and never past `max`: the one that reaches `max`
/// locks the request. Returns the count after this one, or `None` when the request was not
/// pending (already locked, granted, declined or expired): nothing was counted.
pub fn count_wrong_code(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    max: u32,
) -> Result<Option<u32>, StoreError> {
    let now = w.now().timestamp_millis();
    Ok(w.conn
        .query_row(
            "UPDATE access_requests
             SET wrong_codes = wrong_codes + 1,
                 state = CASE WHEN wrong_codes + 1 >= ?2 THEN 'locked' ELSE state END,
                 code_hash = CASE WHEN wrong_codes + 1 >= ?2 THEN NULL ELSE code_hash END,
                 version = version + 1, updated_at = ?3
             WHERE id = ?1 AND state = 'pending' AND wrong_codes < ?2
             RETURNING wrong_codes",
            params![id.to_string(), max, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Moves a pending request to `to` (granted, declined, expired), with what was granted; the
/// code is forgotten. Returns false, changing nothing, when it was no longer pending: of two
/// approvals at once, one wins.
pub fn settle(
    w: &WriteCtx<'_>,
    id: uuid::Uuid,
    to: AccessState,
    approved_by: Option<&str>,
    scopes: &[String],
    hours: u32,
) -> Result<bool, StoreError> {
    let n = w.conn.execute(
        "UPDATE access_requests
         SET state = ?2, approved_by = ?3, scopes = ?4, hours = ?5, code_hash = NULL,
             version = version + 1, updated_at = ?6
         WHERE id = ?1 AND state = 'pending'",
        params![
            id.to_string(),
            to.as_str(),
            approved_by,
            serde_json::to_string(scopes)?,
            hours,
            w.now().timestamp_millis(),
        ],
    )?;
    Ok(n == 1)
}

/// Marks a granted request revoked or expired, as its grant ended.
pub fn end_granted(w: &WriteCtx<'_>, id: uuid::Uuid, to: AccessState) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE access_requests SET state = ?2, version = version + 1, updated_at = ?3
         WHERE id = ?1 AND state = 'granted'",
        params![id.to_string(), to.as_str(), w.now().timestamp_millis()],
    )?;
    Ok(())
}

/// A grant as the home node keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id (also its FHIR Consent's).
    pub id: uuid::Uuid,
    /// The request it answers (id here).
    pub request_id: uuid::Uuid,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// The node it was granted to.
    pub peer: String,
    /// The doctor it was granted to (id at that node).
    pub practitioner_id: String,
    /// The patient.
    pub patient_id: PatientId,
    /// What it allows.
    pub scopes: Vec<String>,
    /// Why.
    pub purpose: AccessPurpose,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when.
    pub expires_at: DateTime<Utc>,
    /// When revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl Grant {
    /// Whether it is honoured at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.starts_at <= now && now < self.expires_at
    }
}

const GRANT_COLUMNS: &str = "id, request_id, token_hash, peer, practitioner_id, patient_id, scopes, purpose, \
     starts_at, expires_at, revoked_at, revoked_by";

fn grant_from_row(r: &Row) -> Result<Grant, StoreError> {
    let id: String = r.get(0)?;
    let request: String = r.get(1)?;
    let patient: String = r.get(5)?;
    let scopes: String = r.get(6)?;
    let revoked: Option<i64> = r.get(10)?;
    Ok(Grant {
        id: uuid(&id, "grant")?,
        request_id: uuid(&request, "access request")?,
        token_hash: r.get(2)?,
        peer: r.get(3)?,
        practitioner_id: r.get(4)?,
        patient_id: patient_id(&patient)?,
        scopes: serde_json::from_str(&scopes)?,
        purpose: purpose(&r.get::<_, String>(7)?)?,
        starts_at: from_millis(r.get(8)?)?,
        expires_at: from_millis(r.get(9)?)?,
        revoked_at: revoked.map(from_millis).transpose()?,
        revoked_by: r.get(11)?,
    })
}

/// Stores a new grant.
pub fn insert_grant(w: &WriteCtx<'_>, g: &Grant) -> Result<(), StoreError> {
    w.conn.execute(
        &format!(
            "INSERT INTO access_grants ({GRANT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            g.id.to_string(),
            g.request_id.to_string(),
            g.token_hash,
            g.peer,
            g.practitioner_id,
            g.patient_id.to_string(),
            serde_json::to_string(&g.scopes)?,
            g.purpose.as_str(),
            g.starts_at.timestamp_millis(),
            g.expires_at.timestamp_millis(),
            g.revoked_at.map(|t| t.timestamp_millis()),
            g.revoked_by,
        ],
    )?;
    Ok(())
}

/// One grant.
pub fn grant(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<Grant>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grants WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(grant_from_row).transpose()
}

/// The grant a token's hash names.
pub fn grant_by_token(tx: &Tx<'_>, token_hash: &[u8]) -> Result<Option<Grant>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grants WHERE token_hash = ?1"
    ))?;
    let mut rows = st.query([token_hash])?;
    rows.next()?.map(grant_from_row).transpose()
}

/// The grant that answered a request.
pub fn grant_for_request(tx: &Tx<'_>, request: uuid::Uuid) -> Result<Option<Grant>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grants WHERE request_id = ?1"
    ))?;
    let mut rows = st.query([request.to_string()])?;
    rows.next()?.map(grant_from_row).transpose()
}

/// Revokes a grant; false, changing nothing, when it was already revoked.
pub fn revoke_grant(w: &WriteCtx<'_>, id: uuid::Uuid, by: &str) -> Result<bool, StoreError> {
    let n = w.conn.execute(
        "UPDATE access_grants SET revoked_at = ?2, revoked_by = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![id.to_string(), w.now().timestamp_millis(), by],
    )?;
    Ok(n == 1)
}

/// Grants that ended (revoked, or expired at `now`) whose end the other node was not yet told
/// of, the earliest first.
pub fn ended_untold(tx: &Tx<'_>, now: DateTime<Utc>, limit: u32) -> Result<Vec<Grant>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grants
         WHERE ended_told = 0 AND (revoked_at IS NOT NULL OR expires_at <= ?1)
         ORDER BY coalesce(revoked_at, expires_at), id LIMIT ?2"
    ))?;
    let mut rows = st.query(params![now.timestamp_millis(), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(grant_from_row(r)?);
    }
    Ok(out)
}

/// One grant whose asking node was not yet told it ended (it may not have ended yet).
pub fn grant_untold(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<Grant>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM access_grants WHERE id = ?1 AND ended_told = 0"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(grant_from_row).transpose()
}

/// The earliest moment a grant not yet told ended will expire.
pub fn next_expiry(tx: &Tx<'_>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = tx.conn.query_row(
        "SELECT min(expires_at) FROM access_grants WHERE ended_told = 0",
        [],
        |r| r.get(0),
    )?;
    at.map(from_millis).transpose()
}

/// Records that the other node was told a grant ended (its `access-revoked` is queued).
pub fn mark_ended_told(w: &WriteCtx<'_>, id: uuid::Uuid) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE access_grants SET ended_told = 1 WHERE id = ?1",
        [id.to_string()],
    )?;
    Ok(())
}

/// Records one read made under a grant.
pub fn record_read(
    w: &WriteCtx<'_>,
    grant: uuid::Uuid,
    resource: &str,
    count: u32,
) -> Result<(), StoreError> {
    w.conn.execute(
        "INSERT INTO access_reads (grant_id, resource, count, read_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            grant.to_string(),
            resource,
            count,
            w.now().timestamp_millis()
        ],
    )?;
    Ok(())
}

/// Who read a patient's record under a grant, newest first.
pub fn reads_for_patient(
    tx: &Tx<'_>,
    patient: PatientId,
    limit: u32,
) -> Result<Vec<AccessRead>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT r.grant_id, q.organisation, q.practitioner_name, r.resource, r.count, r.read_at
         FROM access_reads r
         JOIN access_grants g ON g.id = r.grant_id
         JOIN access_requests q ON q.id = g.request_id
         WHERE g.patient_id = ?1
         ORDER BY r.read_at DESC, r.rowid DESC LIMIT ?2",
    )?;
    let mut rows = st.query(params![patient.to_string(), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let grant: String = r.get(0)?;
        out.push(AccessRead {
            grant_id: uuid(&grant, "grant")?,
            organisation: r.get(1)?,
            practitioner_name: r.get(2)?,
            resource: r.get(3)?,
            count: r.get(4)?,
            read_at: from_millis(r.get(5)?)?,
        });
    }
    Ok(out)
}

/// A request as the patient and the front desk see it.
pub fn incoming(q: &HomeRequest, grant: Option<&Grant>) -> Option<IncomingAccess> {
    Some(IncomingAccess {
        id: q.id,
        patient_id: q.patient_id?,
        peer: q.peer.clone(),
        organisation: q.organisation.clone(),
        practitioner_name: q.practitioner_name.clone(),
        purpose: q.purpose,
        scopes: q.scopes.clone(),
        hours: q.hours,
        state: q.state,
        grant_id: grant.map(|g| g.id),
        approved_by: q.approved_by.clone(),
        starts_at: grant.map(|g| g.starts_at),
        expires_at: grant.map(|g| g.expires_at),
        revoked_at: grant.and_then(|g| g.revoked_at),
        created_at: q.created_at,
        version: q.version,
    })
}

// ---------------------------------------------------------------------------------------------
// The requesting side

const REMOTE_COLUMNS: &str = "id, patient_id, peer, practitioner_id, practitioner_name, purpose, scopes, hours, \
     state, tries_left, grant_id, granted_patient, expires_at, version, created_at, updated_at, organisation";

fn remote_from_row(r: &Row) -> Result<RemoteAccess, StoreError> {
    let id: String = r.get(0)?;
    let patient: String = r.get(1)?;
    let scopes: String = r.get(6)?;
    let grant: Option<String> = r.get(10)?;
    let granted: Option<String> = r.get(11)?;
    let expires: Option<i64> = r.get(12)?;
    Ok(RemoteAccess {
        id: uuid(&id, "remote access")?,
        patient_id: patient_id(&patient)?,
        peer: r.get(2)?,
        organisation: r.get(16)?,
        practitioner_id: r.get(3)?,
        practitioner_name: r.get(4)?,
        purpose: purpose(&r.get::<_, String>(5)?)?,
        scopes: serde_json::from_str(&scopes)?,
        hours: r.get(7)?,
        state: state(&r.get::<_, String>(8)?)?,
        tries_left: r.get(9)?,
        grant_id: grant.as_deref().map(|g| uuid(g, "grant")).transpose()?,
        patient: granted
            .as_deref()
            .map(serde_json::from_str::<GrantedPatient>)
            .transpose()?,
        expires_at: expires.map(from_millis).transpose()?,
        version: r.get(13)?,
        created_at: from_millis(r.get(14)?)?,
        updated_at: from_millis(r.get(15)?)?,
    })
}

/// Stores a doctor's new request.
pub fn insert_remote(w: &WriteCtx<'_>, a: &RemoteAccess) -> Result<(), StoreError> {
    w.conn.execute(
        &format!(
            "INSERT INTO remote_access ({REMOTE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ),
        params![
            a.id.to_string(),
            a.patient_id.to_string(),
            a.peer,
            a.practitioner_id,
            a.practitioner_name,
            a.purpose.as_str(),
            serde_json::to_string(&a.scopes)?,
            a.hours,
            a.state.as_str(),
            a.tries_left,
            a.grant_id.map(|g| g.to_string()),
            a.patient.as_ref().map(serde_json::to_string).transpose()?,
            a.expires_at.map(|t| t.timestamp_millis()),
            a.version,
            a.created_at.timestamp_millis(),
            a.updated_at.timestamp_millis(),
            a.organisation,
        ],
    )?;
    Ok(())
}

/// One request, with its token once granted.
pub fn remote(
    tx: &Tx<'_>,
    id: uuid::Uuid,
) -> Result<Option<(RemoteAccess, Option<String>)>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REMOTE_COLUMNS}, token FROM remote_access WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some((remote_from_row(r)?, r.get(17)?)))
}

/// A patient's requests to other hospitals, newest first; one doctor's only when `doctor`.
pub fn remote_for_patient(
    tx: &Tx<'_>,
    patient: PatientId,
    doctor: Option<&str>,
) -> Result<Vec<RemoteAccess>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {REMOTE_COLUMNS} FROM remote_access
         WHERE patient_id = ?1 AND (practitioner_id = ?2 OR ?2 IS NULL)
         ORDER BY created_at DESC, id"
    ))?;
    let mut rows = st.query(params![patient.to_string(), doctor])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(remote_from_row(r)?);
    }
    Ok(out)
}

/// Writes a request's new state (its version already incremented by the caller); the token
/// is set when `token` is given and cleared when the state is no longer granted.
pub fn update_remote(
    w: &WriteCtx<'_>,
    a: &RemoteAccess,
    token: Option<&str>,
) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE remote_access
         SET scopes = ?2, hours = ?3, state = ?4, tries_left = ?5, grant_id = ?6,
             granted_patient = ?7, expires_at = ?8, version = ?9, updated_at = ?10, organisation = ?12,
             token = CASE WHEN ?4 != 'granted' THEN NULL ELSE coalesce(?11, token) END
         WHERE id = ?1",
        params![
            a.id.to_string(),
            serde_json::to_string(&a.scopes)?,
            a.hours,
            a.state.as_str(),
            a.tries_left,
            a.grant_id.map(|g| g.to_string()),
            a.patient.as_ref().map(serde_json::to_string).transpose()?,
            a.expires_at.map(|t| t.timestamp_millis()),
            a.version,
            a.updated_at.timestamp_millis(),
            token,
            a.organisation,
        ],
    )?;
    Ok(())
}

/// Granted requests whose grant has expired at `now`, to be marked expired.
pub fn remote_expired(tx: &Tx<'_>, now: DateTime<Utc>) -> Result<Vec<uuid::Uuid>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT id FROM remote_access WHERE state = 'granted' AND expires_at <= ?1 ORDER BY id",
    )?;
    let mut rows = st.query([now.timestamp_millis()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(uuid(&r.get::<_, String>(0)?, "remote access")?);
    }
    Ok(out)
}

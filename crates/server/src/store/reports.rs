//! Report rows: the current state in `reports`, each signed revision in `report_revisions`
//! (which triggers keep immutable).

use crate::store::sql::Value;
use crate::store::sql::{Row, params};
use carebridge_protocol::report::{
    Report, ReportContent, ReportQuery, ReportRevision, ReportSignature, ReportStatus,
};
use carebridge_protocol::{PatientId, PractitionerId, ReportId};

use crate::store::search::{self, Found, Page, Span, Where, order_by};
use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// The columns [`from_row`] reads, in its order.
pub(in crate::store) const COLUMNS: &str = "id, patient_id, author_id, author_name, status, title, findings, conclusion, codes, \
     revision, signature, error_reason, version, created_at, updated_at";

fn parse<T: std::str::FromStr>(s: String, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} {s}")))
}

fn status(s: String) -> Result<ReportStatus, StoreError> {
    ReportStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("report status {s}")))
}

fn content(
    title: String,
    findings: String,
    conclusion: String,
    codes: String,
) -> Result<ReportContent, StoreError> {
    Ok(ReportContent {
        title,
        findings,
        conclusion,
        codes: serde_json::from_str(&codes)?,
    })
}

/// Decodes a row selected with [`COLUMNS`].
pub(in crate::store) fn from_row(r: &Row) -> Result<Report, StoreError> {
    let signature: Option<String> = r.get(10)?;
    Ok(Report {
        id: parse(r.get(0)?, "report id")?,
        patient_id: parse(r.get(1)?, "patient id")?,
        author_id: parse(r.get(2)?, "practitioner id")?,
        author_name: r.get(3)?,
        status: status(r.get(4)?)?,
        content: content(r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)?,
        revision: r.get(9)?,
        signature: signature
            .map(|s| serde_json::from_str::<ReportSignature>(&s))
            .transpose()?,
        error_reason: r.get(11)?,
        version: r.get(12)?,
        created_at: from_millis(r.get(13)?)?,
        updated_at: from_millis(r.get(14)?)?,
    })
}

/// Reads one report's current state.
pub fn get(tx: &Tx<'_>, id: ReportId) -> Result<Option<Report>, StoreError> {
    let mut st = tx
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM reports WHERE id = ?1"))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(from_row).transpose()
}

/// Whether the id is taken.
pub fn exists(tx: &Tx<'_>, id: ReportId) -> Result<bool, StoreError> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT 1 FROM reports WHERE id = ?1")?
        .exists([id.to_string()])?)
}

/// Writes a report's current state, inserting or replacing it.
pub fn put(w: &WriteCtx<'_>, r: &Report) -> Result<(), StoreError> {
    let signature = r
        .signature
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    w.conn().prepare_cached(&format!(
        "INSERT INTO reports ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (id) DO UPDATE SET author_id = excluded.author_id, author_name = excluded.author_name,
             status = excluded.status, title = excluded.title, findings = excluded.findings,
             conclusion = excluded.conclusion, codes = excluded.codes, revision = excluded.revision,
             signature = excluded.signature, error_reason = excluded.error_reason,
             version = excluded.version, updated_at = excluded.updated_at"
    ))?
    .execute(params![
        r.id.to_string(),
        r.patient_id.to_string(),
        r.author_id.to_string(),
        r.author_name,
        r.status.as_str(),
        // Sealed alike each time: the database refuses a change to a signed report's text
        // by comparing it.
        w.conn().seal_fixed(&r.content.title)?,
        w.conn().seal_fixed(&r.content.findings)?,
        w.conn().seal_fixed(&r.content.conclusion)?,
        w.conn().seal_fixed(serde_json::to_string(&r.content.codes)?)?,
        r.revision,
        signature,
        w.conn().seal(&r.error_reason)?,
        r.version,
        r.created_at.timestamp_millis(),
        r.updated_at.timestamp_millis(),
    ])?;
    Ok(())
}

/// Appends a signed revision (the table refuses changes to existing ones).
pub fn add_revision(
    w: &WriteCtx<'_>,
    id: ReportId,
    rev: &ReportRevision,
) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO report_revisions (report_id, revision, status, title, findings, conclusion, codes,
             author_id, author_name, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id.to_string(),
        rev.revision,
        rev.status.as_str(),
        w.conn().seal(&rev.content.title)?,
        w.conn().seal(&rev.content.findings)?,
        w.conn().seal(&rev.content.conclusion)?,
        w.conn().seal(serde_json::to_string(&rev.content.codes)?)?,
        rev.author_id.to_string(),
        rev.author_name,
        serde_json::to_string(&rev.signature)?,
    ])?;
    Ok(())
}

/// Every signed revision of a report, oldest first.
pub fn revisions(tx: &Tx<'_>, id: ReportId) -> Result<Vec<ReportRevision>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT revision, status, title, findings, conclusion, codes, author_id, author_name, signature
         FROM report_revisions WHERE report_id = ?1 ORDER BY revision",
    )?;
    let mut rows = st.query([id.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let sig: String = r.get(8)?;
        out.push(ReportRevision {
            revision: r.get(0)?,
            status: status(r.get(1)?)?,
            content: content(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)?,
            author_id: parse(r.get(6)?, "practitioner id")?,
            author_name: r.get(7)?,
            signature: serde_json::from_str(&sig)?,
        });
    }
    Ok(out)
}

/// Reports matching `q`, most recently changed first.
pub fn list(tx: &Tx<'_>, q: &ReportQuery) -> Result<Vec<Report>, StoreError> {
    let limit = i64::from(q.limit.unwrap_or(200).clamp(1, 1000));
    let since = q.changed_since.map_or(i64::MIN, |t| t.timestamp_millis());
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM reports
         WHERE (patient_id = ?1 OR ?1 IS NULL) AND updated_at >= ?2
         ORDER BY updated_at DESC, id DESC LIMIT ?3"
    ))?;
    let mut rows = st.query(params![q.patient_id.map(|p| p.to_string()), since, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Every report of one patient (for the snapshot a doctor's client mirrors).
pub fn of_patient(tx: &Tx<'_>, patient: PatientId) -> Result<Vec<Report>, StoreError> {
    list(
        tx,
        &ReportQuery {
            patient_id: Some(patient),
            changed_since: None,
            limit: Some(1000),
        },
    )
}

/// What a report search filters by; every given criterion must match.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only these ids (`None`: any).
    pub ids: Option<Vec<ReportId>>,
    /// This patient's.
    pub patient: Option<PatientId>,
    /// This author's.
    pub author: Option<PractitionerId>,
    /// In one of these statuses (`None`: any).
    pub statuses: Option<Vec<ReportStatus>>,
    /// Written within.
    pub created: Span,
    /// Last changed within.
    pub updated: Span,
}

/// What reports can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSort {
    /// When it was written.
    Created,
    /// Last change.
    LastUpdated,
}

/// One page of the reports matching `f`, sorted by `sort`, then most recently changed first.
pub fn find(
    tx: &Tx<'_>,
    f: &ReportFilter,
    sort: &[(ReportSort, bool)],
    page: Page,
) -> Result<Found<Report>, StoreError> {
    let mut w = Where::default();
    if let Some(ids) = &f.ids {
        w.any_of(
            "id",
            &ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        );
    }
    if let Some(p) = f.patient {
        w.and("patient_id = ?", [Value::Text(p.to_string())]);
    }
    if let Some(a) = f.author {
        w.and("author_id = ?", [Value::Text(a.to_string())]);
    }
    if let Some(st) = &f.statuses {
        w.any_of(
            "status",
            &st.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>(),
        );
    }
    w.span("created_at", f.created);
    w.span("updated_at", f.updated);
    let keys: Vec<(&str, bool)> = sort
        .iter()
        .map(|(k, desc)| {
            let c = match k {
                ReportSort::Created => "created_at",
                ReportSort::LastUpdated => "updated_at",
            };
            (c, *desc)
        })
        .collect();
    let order = order_by(&keys, "updated_at DESC, id DESC");
    search::run(tx, COLUMNS, "reports", &w, &order, page, from_row)
}

/// The next `limit` reports by id after `after` changed within `changed` (a bulk export's walk).
pub fn page_after(
    tx: &Tx<'_>,
    after: Option<ReportId>,
    changed: Span,
    limit: u32,
) -> Result<Vec<Report>, StoreError> {
    let after = after.map(|a| a.to_string());
    search::walk(tx, COLUMNS, "reports", after, changed, limit, from_row)
}

/// The next `limit` signed revisions by report and revision after `after`, of reports changed
/// within `changed` (a bulk export's walk through who signed what).
pub fn revisions_after(
    tx: &Tx<'_>,
    after: Option<(ReportId, u32)>,
    changed: Span,
    limit: u32,
) -> Result<Vec<(ReportId, ReportRevision)>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT v.report_id, v.revision, v.status, v.title, v.findings, v.conclusion, v.codes,
                v.author_id, v.author_name, v.signature
         FROM report_revisions v JOIN reports r ON r.id = v.report_id
         WHERE (v.report_id, v.revision) > (?1, ?2)
           AND (r.updated_at >= ?3 OR ?3 IS NULL) AND (r.updated_at < ?4 OR ?4 IS NULL)
         ORDER BY v.report_id, v.revision LIMIT ?5",
    )?;
    let (id, n) = after.map_or((String::new(), 0), |(r, n)| (r.to_string(), n));
    let millis = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    let mut rows = st.query(params![
        id,
        n,
        millis(changed.from),
        millis(changed.to),
        limit
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let sig: String = r.get(9)?;
        out.push((
            parse(r.get(0)?, "report id")?,
            ReportRevision {
                revision: r.get(1)?,
                status: status(r.get(2)?)?,
                content: content(r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)?,
                author_id: parse(r.get(7)?, "practitioner id")?,
                author_name: r.get(8)?,
                signature: serde_json::from_str(&sig)?,
            },
        ));
    }
    Ok(out)
}

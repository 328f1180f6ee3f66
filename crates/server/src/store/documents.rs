//! Patients' documents: one row per document (its patient, title and tags) and one per version
//! (the file as it was added, kept whole).

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::document::{
    DocumentId, DocumentMedia, DocumentVersion, PatientDocument, title_key,
};
use carebridge_protocol::{PatientId, PractitionerId};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// A file to keep as a document's next version.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// What kind of file.
    pub media_type: DocumentMedia,
    /// Its name where it came from.
    pub file_name: Option<&'a str>,
    /// SHA-256 of `bytes`, hex.
    pub sha256: &'a str,
    /// The file.
    pub bytes: &'a [u8],
    /// Who added it.
    pub added_by: PractitionerId,
    /// Their name now.
    pub added_by_name: &'a str,
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} {s}")))
}

const VERSION_COLUMNS: &str =
    "version, media_type, file_name, size, sha256, added_by, added_by_name, added_at";

fn version_from_row(r: &Row) -> Result<DocumentVersion, StoreError> {
    let media: String = r.get(1)?;
    Ok(DocumentVersion {
        version: r.get(0)?,
        media_type: DocumentMedia::parse(&media)
            .ok_or_else(|| StoreError::Corrupt(format!("media type {media}")))?,
        file_name: r.get(2)?,
        size: r.get::<_, i64>(3)?.try_into().unwrap_or_default(),
        sha256: r.get(4)?,
        added_by: parse("practitioner id", &r.get::<_, String>(5)?)?,
        added_by_name: r.get(6)?,
        added_at: from_millis(r.get(7)?)?,
    })
}

/// The document of a patient's known by `title` (whatever its case and spacing).
pub fn find_by_title(
    tx: &Tx<'_>,
    patient: PatientId,
    title: &str,
) -> Result<Option<DocumentId>, StoreError> {
    tx.conn()
        .prepare_cached(
            "SELECT id FROM patient_documents WHERE patient_id = ?1 AND title_key = ?2",
        )?
        .query_row(params![patient.to_string(), title_key(title)], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .map(|s| parse("document id", &s))
        .transpose()
}

/// Records a new document, without versions yet: [`add_version`] gives it its first. Fails
/// when the patient already has a document of that title.
pub fn insert_document(
    w: &WriteCtx<'_>,
    id: DocumentId,
    patient: PatientId,
    title: &str,
    tags: &[String],
) -> Result<(), StoreError> {
    w.conn()
        .prepare_cached(
            "INSERT INTO patient_documents (id, patient_id, title, title_key, tags, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id.to_string(),
            patient.to_string(),
            title.trim(),
            title_key(title),
            serde_json::to_string(tags)?,
            w.now().timestamp_millis(),
        ])?;
    Ok(())
}

/// Keeps `file` as the document's next version and gives the document `tags`; returns the
/// version's number.
pub fn add_version(
    w: &WriteCtx<'_>,
    id: DocumentId,
    file: NewVersion<'_>,
    tags: &[String],
) -> Result<u32, StoreError> {
    let next: u32 = w.conn().query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM document_versions WHERE document_id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )?;
    w.conn()
        .prepare_cached(
            "INSERT INTO document_versions (document_id, version, media_type, file_name, size,
                                            sha256, content, added_by, added_by_name, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            id.to_string(),
            next,
            file.media_type.as_str(),
            w.conn().seal(file.file_name)?,
            i64::try_from(file.bytes.len()).unwrap_or(i64::MAX),
            file.sha256,
            w.conn().seal(file.bytes)?,
            file.added_by.to_string(),
            file.added_by_name,
            w.now().timestamp_millis(),
        ])?;
    w.conn()
        .prepare_cached("UPDATE patient_documents SET tags = ?2 WHERE id = ?1")?
        .execute(params![id.to_string(), serde_json::to_string(tags)?])?;
    Ok(next)
}

fn versions(tx: &Tx<'_>, id: &str) -> Result<Vec<DocumentVersion>, StoreError> {
    let mut stmt = tx.conn().prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM document_versions WHERE document_id = ?1 ORDER BY version DESC"
    ))?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(version_from_row(r)?);
    }
    Ok(out)
}

fn document_from_row(tx: &Tx<'_>, r: &Row) -> Result<PatientDocument, StoreError> {
    let id: String = r.get(0)?;
    Ok(PatientDocument {
        id: parse("document id", &id)?,
        patient_id: parse("patient id", &r.get::<_, String>(1)?)?,
        title: r.get(2)?,
        tags: serde_json::from_str(&r.get::<_, String>(3)?)?,
        versions: versions(tx, &id)?,
    })
}

/// A document with every version, newest first.
pub fn document(tx: &Tx<'_>, id: DocumentId) -> Result<Option<PatientDocument>, StoreError> {
    let mut stmt = tx.conn().prepare_cached(
        "SELECT id, patient_id, title, tags FROM patient_documents WHERE id = ?1",
    )?;
    let mut rows = stmt.query([id.to_string()])?;
    rows.next()?.map(|r| document_from_row(tx, r)).transpose()
}

/// A patient's documents, the one last added to first.
pub fn documents_of(tx: &Tx<'_>, patient: PatientId) -> Result<Vec<PatientDocument>, StoreError> {
    let mut stmt = tx.conn().prepare_cached(
        "SELECT d.id, d.patient_id, d.title, d.tags FROM patient_documents d
         WHERE d.patient_id = ?1
         ORDER BY (SELECT MAX(added_at) FROM document_versions v WHERE v.document_id = d.id) DESC,
                  d.title_key",
    )?;
    let mut rows = stmt.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(document_from_row(tx, r)?);
    }
    Ok(out)
}

/// A version's file (the newest when `version` is `None`), with what describes it.
pub fn content(
    tx: &Tx<'_>,
    id: DocumentId,
    version: Option<u32>,
) -> Result<Option<(DocumentVersion, Vec<u8>)>, StoreError> {
    let mut stmt = tx.conn().prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS}, content FROM document_versions
         WHERE document_id = ?1 AND (version = ?2 OR ?2 IS NULL)
         ORDER BY version DESC LIMIT 1"
    ))?;
    let mut rows = stmt.query(params![id.to_string(), version])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some((version_from_row(r)?, r.get(8)?)))
}

//! Imaging: patients' medical record numbers, orders with their accession numbers, the studies
//! the PACS announced, and the position in the PACS's change feed.

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::imaging::{
    ImagingOrder, ImagingOrderId, ImagingStudy, ImagingStudyId, Modality, OrderStatus, StudyMatch,
};
use carebridge_protocol::{PatientId, PractitionerId};
use chrono::NaiveDate;

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// A study as the node keeps it: what users see, and where it is in the PACS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacsStudy {
    /// What users see.
    pub study: ImagingStudy,
    /// The PACS's own id of the study (Orthanc's).
    pub pacs_id: String,
    /// The image the preview shows (the PACS's id of one instance).
    pub preview_instance: Option<String>,
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} {s}")))
}

/// A patient's medical record number (DICOM PatientID), if one was given.
pub fn mrn(tx: &Tx<'_>, patient: PatientId) -> Result<Option<String>, StoreError> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT mrn FROM patient_mrns WHERE patient_id = ?1")?
        .query_row([patient.to_string()], |r| r.get(0))
        .optional()?)
}

/// The patient's medical record number, giving one (`MRN` and eight digits, in order) if the
/// patient has none yet.
pub fn assign_mrn(w: &WriteCtx<'_>, patient: PatientId) -> Result<String, StoreError> {
    if let Some(m) = mrn(w, patient)? {
        return Ok(m);
    }
    let number: i64 = w.conn().query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM patient_mrns",
        [],
        |r| r.get(0),
    )?;
    let m = format!("MRN{number:08}");
    w.conn()
        .prepare_cached(
            "INSERT INTO patient_mrns (patient_id, number, mrn, assigned_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![patient.to_string(), number, m, w.now().timestamp_millis()])?;
    Ok(m)
}

/// The patient a medical record number belongs to.
pub fn patient_by_mrn(tx: &Tx<'_>, mrn: &str) -> Result<Option<PatientId>, StoreError> {
    tx.conn()
        .prepare_cached("SELECT patient_id FROM patient_mrns WHERE mrn = ?1")?
        .query_row([mrn], |r| r.get::<_, String>(0))
        .optional()?
        .map(|s| parse("patient id", &s))
        .transpose()
}

const ORDER_COLUMNS: &str = "id, accession, patient_id, modality, procedure, reason, scheduled_at, ordered_by, ordered_by_name, status, created_at";

fn order_from_row(r: &Row) -> Result<ImagingOrder, StoreError> {
    let modality: String = r.get(3)?;
    let status: String = r.get(9)?;
    Ok(ImagingOrder {
        id: parse("order id", &r.get::<_, String>(0)?)?,
        accession: r.get(1)?,
        patient_id: parse("patient id", &r.get::<_, String>(2)?)?,
        modality: Modality::parse(&modality)
            .ok_or_else(|| StoreError::Corrupt(format!("modality {modality}")))?,
        procedure: r.get(4)?,
        reason: r.get(5)?,
        scheduled_at: from_millis(r.get(6)?)?,
        ordered_by: parse::<PractitionerId>("practitioner id", &r.get::<_, String>(7)?)?,
        ordered_by_name: r.get(8)?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("order status {status}")))?,
        created_at: from_millis(r.get(10)?)?,
    })
}

/// The next accession number: `CB` and ten digits, in order (16 characters at most).
pub fn next_accession(w: &WriteCtx<'_>) -> Result<String, StoreError> {
    let number: i64 = w.conn().query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM imaging_orders",
        [],
        |r| r.get(0),
    )?;
    Ok(format!("CB{number:010}"))
}

/// Records an order; its accession number must come from [`next_accession`] in the same write.
pub fn insert_order(w: &WriteCtx<'_>, o: &ImagingOrder) -> Result<(), StoreError> {
    let number: i64 = o
        .accession
        .strip_prefix("CB")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("accession {}", o.accession)))?;
    w.conn()
        .prepare_cached(&format!(
            "INSERT INTO imaging_orders (number, {ORDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ))?
        .execute(params![
            number,
            o.id.to_string(),
            o.accession,
            o.patient_id.to_string(),
            o.modality.as_str(),
            w.conn().seal(&o.procedure)?,
            w.conn().seal(&o.reason)?,
            o.scheduled_at.timestamp_millis(),
            o.ordered_by.to_string(),
            o.ordered_by_name,
            o.status.as_str(),
            o.created_at.timestamp_millis(),
        ])?;
    Ok(())
}

/// One order.
pub fn order(tx: &Tx<'_>, id: ImagingOrderId) -> Result<Option<ImagingOrder>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM imaging_orders WHERE id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(order_from_row).transpose()
}

/// The order with this accession number.
pub fn order_by_accession(
    tx: &Tx<'_>,
    accession: &str,
) -> Result<Option<ImagingOrder>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM imaging_orders WHERE accession = ?1"
    ))?;
    let mut rows = st.query([accession])?;
    rows.next()?.map(order_from_row).transpose()
}

/// A patient's orders, newest first.
pub fn orders_of(tx: &Tx<'_>, patient: PatientId) -> Result<Vec<ImagingOrder>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM imaging_orders WHERE patient_id = ?1 ORDER BY created_at DESC, number DESC"
    ))?;
    let mut rows = st.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(order_from_row(r)?);
    }
    Ok(out)
}

/// The orders still waiting for their study, oldest first (what the worklist publishes).
pub fn scheduled_orders(tx: &Tx<'_>) -> Result<Vec<ImagingOrder>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM imaging_orders WHERE status = 'scheduled' ORDER BY number"
    ))?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(order_from_row(r)?);
    }
    Ok(out)
}

/// Marks an order completed; returns whether it was still scheduled.
pub fn complete_order(w: &WriteCtx<'_>, id: ImagingOrderId) -> Result<bool, StoreError> {
    Ok(w.conn()
        .prepare_cached(
            "UPDATE imaging_orders SET status = 'completed' WHERE id = ?1 AND status = 'scheduled'",
        )?
        .execute([id.to_string()])?
        > 0)
}

const STUDY_COLUMNS: &str = "id, study_uid, patient_id, order_id, matched_by, accession, dicom_patient_id, dicom_issuer, dicom_patient_name, modalities, description, study_date, series_count, instance_count, received_at, version, pacs_id, preview_instance";
/// What a study is read with: its columns, and who ordered it (from its order).
const STUDY_READ: &str = "SELECT imaging_studies.id, study_uid, imaging_studies.patient_id, order_id, matched_by, imaging_studies.accession, dicom_patient_id, dicom_issuer, dicom_patient_name, modalities, description, study_date, series_count, instance_count, received_at, version, pacs_id, preview_instance, imaging_orders.ordered_by
     FROM imaging_studies LEFT JOIN imaging_orders ON imaging_orders.id = imaging_studies.order_id";

fn study_from_row(r: &Row) -> Result<PacsStudy, StoreError> {
    let matched: String = r.get(4)?;
    let modalities: String = r.get(9)?;
    let date: Option<String> = r.get(11)?;
    Ok(PacsStudy {
        study: ImagingStudy {
            id: parse("study id", &r.get::<_, String>(0)?)?,
            study_uid: r.get(1)?,
            patient_id: r
                .get::<_, Option<String>>(2)?
                .map(|s| parse("patient id", &s))
                .transpose()?,
            order_id: r
                .get::<_, Option<String>>(3)?
                .map(|s| parse("order id", &s))
                .transpose()?,
            ordered_by: r
                .get::<_, Option<String>>(18)?
                .map(|s| parse("practitioner id", &s))
                .transpose()?,
            matched_by: StudyMatch::parse(&matched)
                .ok_or_else(|| StoreError::Corrupt(format!("study match {matched}")))?,
            accession: r.get(5)?,
            dicom_patient_id: r.get(6)?,
            dicom_issuer: r.get(7)?,
            dicom_patient_name: r.get(8)?,
            modalities: serde_json::from_str(&modalities)?,
            description: r.get(10)?,
            study_date: date
                .map(|d| parse::<NaiveDate>("study date", &d))
                .transpose()?,
            series_count: r.get(12)?,
            instance_count: r.get(13)?,
            received_at: from_millis(r.get(14)?)?,
            version: r.get(15)?,
            viewer_url: None,
        },
        pacs_id: r.get(16)?,
        preview_instance: r.get(17)?,
    })
}

/// Records a study unless one with its StudyInstanceUID is already recorded; returns whether
/// it was new.
pub fn record_study(w: &WriteCtx<'_>, s: &PacsStudy) -> Result<bool, StoreError> {
    let st = &s.study;
    Ok(w.conn()
        .prepare_cached(&format!(
            "INSERT INTO imaging_studies ({STUDY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (study_uid) DO NOTHING"
        ))?
        .execute(params![
            st.id.to_string(),
            st.study_uid,
            st.patient_id.map(|p| p.to_string()),
            st.order_id.map(|o| o.to_string()),
            st.matched_by.as_str(),
            st.accession,
            st.dicom_patient_id,
            st.dicom_issuer,
            w.conn().seal(&st.dicom_patient_name)?,
            serde_json::to_string(&st.modalities)?,
            // Sealed alike each time: a rescan compares it to see whether the study changed.
            w.conn().seal_fixed(&st.description)?,
            st.study_date.map(|d| d.to_string()),
            st.series_count,
            st.instance_count,
            st.received_at.timestamp_millis(),
            st.version,
            s.pacs_id,
            s.preview_instance,
        ])?
        > 0)
}

/// One study.
pub fn study(tx: &Tx<'_>, id: ImagingStudyId) -> Result<Option<PacsStudy>, StoreError> {
    let mut st = tx
        .conn()
        .prepare_cached(&format!("{STUDY_READ} WHERE imaging_studies.id = ?1"))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(study_from_row).transpose()
}

/// The study with this StudyInstanceUID.
pub fn study_by_uid(tx: &Tx<'_>, uid: &str) -> Result<Option<PacsStudy>, StoreError> {
    let mut st = tx
        .conn()
        .prepare_cached(&format!("{STUDY_READ} WHERE study_uid = ?1"))?;
    let mut rows = st.query([uid])?;
    rows.next()?.map(study_from_row).transpose()
}

fn studies_where(
    tx: &Tx<'_>,
    filter: &str,
    arg: Option<String>,
) -> Result<Vec<PacsStudy>, StoreError> {
    let mut st = tx.conn().prepare_cached(&format!(
        "{STUDY_READ} WHERE {filter} ORDER BY received_at DESC, imaging_studies.id DESC"
    ))?;
    let mut rows = match arg {
        Some(a) => st.query([a])?,
        None => st.query([])?,
    };
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(study_from_row(r)?);
    }
    Ok(out)
}

/// A patient's studies, newest first.
pub fn studies_of(tx: &Tx<'_>, patient: PatientId) -> Result<Vec<PacsStudy>, StoreError> {
    studies_where(
        tx,
        "imaging_studies.patient_id = ?1",
        Some(patient.to_string()),
    )
}

/// Every study that has its patient, newest first (a bulk export's).
pub fn matched_studies(tx: &Tx<'_>) -> Result<Vec<PacsStudy>, StoreError> {
    studies_where(tx, "imaging_studies.patient_id IS NOT NULL", None)
}

/// The studies that matched no patient (the reconciliation list), newest first.
pub fn unmatched(tx: &Tx<'_>) -> Result<Vec<PacsStudy>, StoreError> {
    studies_where(tx, "imaging_studies.patient_id IS NULL", None)
}

/// Links a study that matched nobody to a patient, by hand. Returns its new state, or `None`
/// when there is no such study or it already belongs to a patient.
pub fn link_study(
    w: &WriteCtx<'_>,
    id: ImagingStudyId,
    patient: PatientId,
) -> Result<Option<PacsStudy>, StoreError> {
    let changed = w
        .conn()
        .prepare_cached(
            "UPDATE imaging_studies SET patient_id = ?2, matched_by = 'hand', version = version + 1
             WHERE id = ?1 AND patient_id IS NULL",
        )?
        .execute(params![id.to_string(), patient.to_string()])?;
    if changed == 0 {
        return Ok(None);
    }
    study(w, id)
}

/// How far the node has read a PACS's change feed (0 before the first change).
pub fn feed_position(tx: &Tx<'_>, source: &str) -> Result<i64, StoreError> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT position FROM imaging_feed WHERE source = ?1")?
        .query_row([source], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Moves the feed's position; it never goes back.
pub fn set_feed_position(w: &WriteCtx<'_>, source: &str, position: i64) -> Result<(), StoreError> {
    w.conn()
        .prepare_cached(
            "INSERT INTO imaging_feed (source, position) VALUES (?1, ?2)
             ON CONFLICT (source) DO UPDATE SET position = CASE
                 WHEN excluded.position > imaging_feed.position THEN excluded.position
                 ELSE imaging_feed.position END",
        )?
        .execute(params![source, position])?;
    Ok(())
}

/// Forgets a feed's position, so that it is read again from its start (the PACS's database was
/// replaced: its positions started again). Studies already recorded stay recorded once.
pub fn restart_feed(w: &WriteCtx<'_>, source: &str) -> Result<(), StoreError> {
    w.conn()
        .prepare_cached("DELETE FROM imaging_feed WHERE source = ?1")?
        .execute([source])?;
    Ok(())
}

/// What the PACS says of a study now, for [`refresh_study`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyNow<'a> {
    /// The PACS's id of it (a study changed in Orthanc gets a new one).
    pub pacs_id: &'a str,
    /// Its image to preview.
    pub preview_instance: Option<&'a str>,
    /// Its modalities.
    pub modalities: &'a [String],
    /// StudyDescription.
    pub description: &'a str,
    /// StudyDate.
    pub study_date: Option<NaiveDate>,
    /// Its series.
    pub series_count: i64,
    /// Its images.
    pub instance_count: i64,
}

/// Brings a recorded study's facts up to date (more series arrived after it was first stable);
/// its patient and how it was matched do not change. Returns its new state when anything
/// changed, `None` when nothing did or there is no such study.
pub fn refresh_study(
    w: &WriteCtx<'_>,
    uid: &str,
    now: &StudyNow<'_>,
) -> Result<Option<PacsStudy>, StoreError> {
    let changed = w
        .conn()
        .prepare_cached(
            "UPDATE imaging_studies SET pacs_id = ?2, preview_instance = ?3, modalities = ?4,
                 description = ?5, study_date = ?6, series_count = ?7, instance_count = ?8,
                 version = version + 1
             WHERE study_uid = ?1 AND (pacs_id IS DISTINCT FROM ?2 OR preview_instance IS DISTINCT FROM ?3
                 OR modalities IS DISTINCT FROM ?4 OR description IS DISTINCT FROM ?5 OR study_date IS DISTINCT FROM ?6
                 OR series_count IS DISTINCT FROM ?7 OR instance_count IS DISTINCT FROM ?8)",
        )?
        .execute(params![
            uid,
            now.pacs_id,
            now.preview_instance,
            serde_json::to_string(now.modalities)?,
            w.conn().seal_fixed(now.description)?,
            now.study_date.map(|d| d.to_string()),
            now.series_count,
            now.instance_count,
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    study_by_uid(w, uid)
}

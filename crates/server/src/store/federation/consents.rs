//! Patients' consents to share their reports with a peer, as stored.

use crate::store::sql::params;
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::payload::Consent;

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// A patient's consents, by peer.
pub fn list(tx: &Tx<'_>, patient: PatientId) -> Result<Vec<Consent>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT peer, recorded_by_name, recorded_at FROM consents WHERE patient_id = ?1 ORDER BY peer",
    )?;
    let mut rows = st.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Consent {
            patient_id: patient,
            peer: r.get(0)?,
            recorded_by: r.get(1)?,
            recorded_at: from_millis(r.get(2)?)?,
        });
    }
    Ok(out)
}

/// Every patient's consents, by patient and peer (a FHIR read names a consent by an id derived
/// from both, which cannot be turned back into them).
pub fn all(tx: &Tx<'_>) -> Result<Vec<Consent>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT patient_id, peer, recorded_by_name, recorded_at FROM consents ORDER BY patient_id, peer",
    )?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let patient: String = r.get(0)?;
        out.push(Consent {
            patient_id: patient
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("patient id {patient}")))?,
            peer: r.get(1)?,
            recorded_by: r.get(2)?,
            recorded_at: from_millis(r.get(3)?)?,
        });
    }
    Ok(out)
}

/// The patient's consent to share with `peer`, if recorded.
pub fn get(tx: &Tx<'_>, patient: PatientId, peer: &str) -> Result<Option<Consent>, StoreError> {
    Ok(list(tx, patient)?.into_iter().find(|c| c.peer == peer))
}

/// Records a consent, recorded now by `by_id` (`by_name` as people read it); false when one
/// was already recorded (the first is kept).
pub fn insert(
    w: &WriteCtx<'_>,
    patient: PatientId,
    peer: &str,
    by_id: &str,
    by_name: &str,
) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO consents (patient_id, peer, recorded_by, recorded_by_name, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![
            patient.to_string(),
            peer,
            by_id,
            by_name,
            w.now().timestamp_millis()
        ],
    )? == 1)
}

/// Deletes a consent; false when there was none.
pub fn delete(w: &WriteCtx<'_>, patient: PatientId, peer: &str) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "DELETE FROM consents WHERE patient_id = ?1 AND peer = ?2",
        params![patient.to_string(), peer],
    )? > 0)
}

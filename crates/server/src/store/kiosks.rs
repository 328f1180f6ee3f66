//! Kiosk devices and the patients who identified at them.

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::kiosk::KioskDevice;
use carebridge_protocol::{KioskDeviceId, PatientId};
use sha2::{Digest, Sha256};

use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

/// How long an identification lets a kiosk book and check in for a patient.
pub const IDENTIFICATION_TTL_MS: i64 = 10 * 60 * 1000;

fn from_row(r: &Row) -> Result<KioskDevice, StoreError> {
    let id: String = r.get(0)?;
    Ok(KioskDevice {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("kiosk id {id}")))?,
        label: r.get(1)?,
        revoked: r.get::<_, i64>(2)? != 0,
        registered_at: from_millis(r.get(3)?)?,
    })
}

/// Lists devices, newest first.
pub fn list(tx: &Tx<'_>) -> Result<Vec<KioskDevice>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT id, label, revoked, registered_at FROM kiosk_devices ORDER BY registered_at DESC",
    )?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Reads a device and its secret's hash.
pub fn get(tx: &Tx<'_>, id: KioskDeviceId) -> Result<Option<(KioskDevice, Vec<u8>)>, StoreError> {
    let mut st = tx.conn().prepare_cached(
        "SELECT id, label, revoked, registered_at, secret_hash FROM kiosk_devices WHERE id = ?1",
    )?;
    let mut rows = st.query([id.to_string()])?;
    match rows.next()? {
        Some(r) => Ok(Some((from_row(r)?, r.get(4)?))),
        None => Ok(None),
    }
}

/// Hashes a device secret (random, 256 bits: a plain SHA-256 is enough).
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Registers a device.
pub fn insert(w: &WriteCtx<'_>, d: &KioskDevice, secret: &str) -> Result<(), StoreError> {
    w.conn().prepare_cached("INSERT INTO kiosk_devices (id, label, secret_hash, revoked, registered_at) VALUES (?1, ?2, ?3, 0, ?4)")?
        .execute(params![d.id.to_string(), d.label, secret_hash(secret), d.registered_at.timestamp_millis()])?;
    Ok(())
}

/// Revokes a device; returns whether it existed.
pub fn revoke(w: &WriteCtx<'_>, id: KioskDeviceId) -> Result<bool, StoreError> {
    Ok(w.conn()
        .prepare_cached("UPDATE kiosk_devices SET revoked = 1 WHERE id = ?1")?
        .execute([id.to_string()])?
        > 0)
}

/// Records that a patient identified at a device.
pub fn record_identification(
    w: &WriteCtx<'_>,
    device: KioskDeviceId,
    patient: PatientId,
    now_ms: i64,
) -> Result<(), StoreError> {
    w.conn().prepare_cached(
        "INSERT INTO kiosk_identifications (device_id, patient_id, identified_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id, patient_id) DO UPDATE SET identified_at = excluded.identified_at",
    )?
    .execute(params![device.to_string(), patient.to_string(), now_ms])?;
    Ok(())
}

/// Whether the patient identified at the device within [`IDENTIFICATION_TTL_MS`].
pub fn is_identified(
    tx: &Tx<'_>,
    device: KioskDeviceId,
    patient: PatientId,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT 1 FROM kiosk_identifications WHERE device_id = ?1 AND patient_id = ?2 AND identified_at > ?3")?
        .query_row(params![device.to_string(), patient.to_string(), now_ms - IDENTIFICATION_TTL_MS], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Forgets every identification made at `device`: the patient there is done. Returns how many.
pub fn end_identifications(w: &WriteCtx<'_>, device: KioskDeviceId) -> Result<usize, StoreError> {
    Ok(w.conn.execute(
        "DELETE FROM kiosk_identifications WHERE device_id = ?1",
        [device.to_string()],
    )?)
}

/// Forgets identifications made before `before` (past their time to live).
pub fn prune_identifications(w: &WriteCtx<'_>, before: DateTime<Utc>) -> Result<usize, StoreError> {
    Ok(w.conn.execute(
        "DELETE FROM kiosk_identifications WHERE identified_at < ?1",
        [before.timestamp_millis()],
    )?)
}

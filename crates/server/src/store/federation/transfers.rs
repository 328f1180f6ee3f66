//! Moving a patient's record between hospitals, as stored on both sides.
//!
//! The sending side keeps each transfer it started (`transfers_out`): what it sent (the
//! record's hash, its parts) and where it stands; its parts travel as transmissions tied to it
//! (`transmissions.transfer_id`), so that how many were acknowledged is counted there. The
//! receiving side keeps each transfer announced to it (`transfers_in`) with the manifest's
//! hashes, every checked chunk until the record is whole (`transfer_chunks_in`), and then the
//! record as it arrived, beside the patient it was imported as.

use crate::store::sql::{OptionalExtension as _, Row, params};
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::transfer::{
    IdentityDocument, PatientTransfer, TransferManifest, TransferState, TransferredRecord,
};
use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, WriteCtx, from_millis};

fn uuid(s: &str) -> Result<uuid::Uuid, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("transfer id {s}")))
}

fn patient_id(s: &str) -> Result<PatientId, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("patient id {s}")))
}

// ---------------------------------------------------------------------------------------------
// The sending side

const OUT_COLUMNS: &str = "t.id, t.patient_id, t.peer, t.organisation, t.state, t.parts, t.bytes, t.sha256, \
     t.identity_document, t.authorised_by, t.new_global_id, t.reason, t.created_at, t.updated_at, \
     (SELECT COUNT(*) FROM transmissions m WHERE m.transfer_id = t.id \
         AND m.message_type = 'transfer-chunk' AND m.state = 'acknowledged')";

fn out_from_row(r: &Row) -> Result<PatientTransfer, StoreError> {
    let state: String = r.get(4)?;
    let document: String = r.get(8)?;
    Ok(PatientTransfer {
        id: uuid(&r.get::<_, String>(0)?)?,
        patient_id: patient_id(&r.get::<_, String>(1)?)?,
        peer: r.get(2)?,
        organisation: r.get(3)?,
        state: TransferState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("transfer state {state}")))?,
        parts: r.get(5)?,
        bytes: r.get(6)?,
        sha256: r.get(7)?,
        identity_document: IdentityDocument::parse(&document)
            .ok_or_else(|| StoreError::Corrupt(format!("identity document {document}")))?,
        authorised_by: r.get(9)?,
        new_global_id: r.get(10)?,
        reason: r.get(11)?,
        created_at: from_millis(r.get(12)?)?,
        updated_at: from_millis(r.get(13)?)?,
        parts_delivered: r.get(14)?,
    })
}

/// Records a transfer just started. False when the patient already has one under way or
/// confirmed (the unique index decides, whatever runs at the same time).
pub fn insert_out(w: &WriteCtx<'_>, t: &PatientTransfer) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO transfers_out (id, patient_id, peer, state, parts, bytes, sha256,
             identity_document, authorised_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT DO NOTHING",
        params![
            t.id.to_string(),
            t.patient_id.to_string(),
            t.peer,
            t.state.as_str(),
            t.parts,
            i64::try_from(t.bytes).unwrap_or(i64::MAX),
            t.sha256,
            t.identity_document.as_str(),
            t.authorised_by,
            t.created_at.timestamp_millis(),
        ],
    )? == 1)
}

/// The signed confirmation kept for a transfer, base64, once confirmed.
pub fn confirmation(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<String>, StoreError> {
    Ok(tx
        .conn
        .query_row(
            "SELECT confirmation FROM transfers_out WHERE id = ?1",
            [id.to_string()],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// One transfer this node started.
pub fn out(tx: &Tx<'_>, id: uuid::Uuid) -> Result<Option<PatientTransfer>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {OUT_COLUMNS} FROM transfers_out t WHERE t.id = ?1"
    ))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(out_from_row).transpose()
}

/// A patient's transfers, newest first.
pub fn out_for_patient(
    tx: &Tx<'_>,
    patient: PatientId,
) -> Result<Vec<PatientTransfer>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {OUT_COLUMNS} FROM transfers_out t WHERE t.patient_id = ?1
         ORDER BY t.created_at DESC, t.id DESC"
    ))?;
    let mut rows = st.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(out_from_row(r)?);
    }
    Ok(out)
}

/// The patient's transfer under way, if one is.
pub fn sending(tx: &Tx<'_>, patient: PatientId) -> Result<Option<PatientTransfer>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {OUT_COLUMNS} FROM transfers_out t WHERE t.patient_id = ?1 AND t.state = 'sending'"
    ))?;
    let mut rows = st.query([patient.to_string()])?;
    rows.next()?.map(out_from_row).transpose()
}

/// Fails every part of a transfer still waiting to be sent, saying why: a transfer that ended
/// sends nothing more. How many were stopped.
pub fn stop_parts(w: &WriteCtx<'_>, id: uuid::Uuid, why: &str) -> Result<usize, StoreError> {
    Ok(w.conn.execute(
        "UPDATE transmissions SET state = 'failed', last_error = ?2, version = version + 1,
             updated_at = ?3
         WHERE transfer_id = ?1 AND state IN ('queued', 'sent')",
        params![id.to_string(), why, w.now().timestamp_millis()],
    )?)
}

/// How a transfer under way ended.
#[derive(Debug, Clone, Copy)]
pub enum Settled<'a> {
    /// Imported there, as `new_global_id`, by `organisation`.
    Confirmed {
        /// The patient's global id there.
        new_global_id: &'a str,
        /// That hospital, as people read it.
        organisation: &'a str,
        /// Its signature over the confirmation, base64: kept as its statement.
        signature: &'a str,
    },
    /// Refused there, for `reason`.
    Refused {
        /// Why.
        reason: &'a str,
    },
}

/// Settles a transfer still under way. False when it was not under way (settled before).
pub fn settle_out(w: &WriteCtx<'_>, id: uuid::Uuid, how: Settled<'_>) -> Result<bool, StoreError> {
    let (state, organisation, new_global_id, signature, reason) = match how {
        Settled::Confirmed {
            new_global_id,
            organisation,
            signature,
        } => (
            TransferState::Confirmed,
            Some(organisation),
            Some(new_global_id),
            Some(signature),
            None,
        ),
        Settled::Refused { reason } => (TransferState::Refused, None, None, None, Some(reason)),
    };
    Ok(w.conn.execute(
        "UPDATE transfers_out SET state = ?2, organisation = ?3, new_global_id = ?4, reason = ?5,
             confirmation = ?6, updated_at = ?7
         WHERE id = ?1 AND state = 'sending'",
        params![
            id.to_string(),
            state.as_str(),
            organisation,
            new_global_id,
            reason,
            signature,
            w.now().timestamp_millis()
        ],
    )? == 1)
}

// ---------------------------------------------------------------------------------------------
// The receiving side

/// Where a transfer announced to this node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingState {
    /// Chunks are arriving.
    Receiving,
    /// The record was imported.
    Imported,
    /// The record did not check out; nothing of it is kept.
    Refused,
}

impl IncomingState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Imported => "imported",
            Self::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "receiving" => Self::Receiving,
            "imported" => Self::Imported,
            "refused" => Self::Refused,
            _ => return Err(StoreError::Corrupt(format!("incoming transfer state {s}"))),
        })
    }
}

/// A transfer announced to this node, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The sending node.
    pub peer: String,
    /// The manifest it sent.
    pub manifest: TransferManifest,
    /// Where it stands.
    pub state: IncomingState,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The patient it was imported as.
    pub patient_id: Option<PatientId>,
    /// When its manifest arrived.
    pub created_at: DateTime<Utc>,
}

const IN_COLUMNS: &str = "peer, id, patient_global_id, organisation, authorised_by, bytes, sha256, \
     chunk_hashes, state, reason, patient_id, created_at";

fn in_from_row(r: &Row) -> Result<Incoming, StoreError> {
    let hashes: String = r.get(7)?;
    Ok(Incoming {
        peer: r.get(0)?,
        manifest: TransferManifest {
            transfer_id: uuid(&r.get::<_, String>(1)?)?,
            patient_global_id: r.get(2)?,
            organisation: r.get(3)?,
            authorised_by: r.get(4)?,
            bytes: r.get(5)?,
            sha256: r.get(6)?,
            chunks: serde_json::from_str(&hashes)?,
        },
        state: IncomingState::parse(&r.get::<_, String>(8)?)?,
        reason: r.get(9)?,
        patient_id: r
            .get::<_, Option<String>>(10)?
            .map(|p| patient_id(&p))
            .transpose()?,
        created_at: from_millis(r.get(11)?)?,
    })
}

/// Keeps a manifest as it arrived. False when this peer's transfer was announced before (the
/// first announcement stands).
pub fn insert_in(w: &WriteCtx<'_>, peer: &str, m: &TransferManifest) -> Result<bool, StoreError> {
    Ok(w.conn.execute(
        "INSERT INTO transfers_in (peer, id, patient_global_id, organisation, authorised_by, bytes,
             sha256, chunk_hashes, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'receiving', ?9, ?9)
         ON CONFLICT DO NOTHING",
        params![
            peer,
            m.transfer_id.to_string(),
            m.patient_global_id,
            m.organisation,
            m.authorised_by,
            i64::try_from(m.bytes).unwrap_or(i64::MAX),
            m.sha256,
            serde_json::to_string(&m.chunks)?,
            w.now().timestamp_millis(),
        ],
    )? == 1)
}

/// A transfer `peer` announced.
pub fn incoming(tx: &Tx<'_>, peer: &str, id: uuid::Uuid) -> Result<Option<Incoming>, StoreError> {
    let mut st = tx.conn.prepare_cached(&format!(
        "SELECT {IN_COLUMNS} FROM transfers_in WHERE peer = ?1 AND id = ?2"
    ))?;
    let mut rows = st.query(params![peer, id.to_string()])?;
    rows.next()?.map(in_from_row).transpose()
}

/// Keeps one checked chunk; a chunk kept before stays as it was. How many distinct chunks the
/// transfer now has.
pub fn put_chunk(
    w: &WriteCtx<'_>,
    peer: &str,
    id: uuid::Uuid,
    index: u32,
    data: &[u8],
) -> Result<u32, StoreError> {
    w.conn.execute(
        "INSERT INTO transfer_chunks_in (peer, transfer_id, idx, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        params![peer, id.to_string(), index, w.conn.seal(data)?],
    )?;
    Ok(w.conn.query_row(
        "SELECT COUNT(*) FROM transfer_chunks_in WHERE peer = ?1 AND transfer_id = ?2",
        params![peer, id.to_string()],
        |r| r.get(0),
    )?)
}

/// A transfer's chunks kept so far, by place (`None` where one has not arrived), for at most
/// `count` places.
pub fn chunks(
    tx: &Tx<'_>,
    peer: &str,
    id: uuid::Uuid,
    count: usize,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let mut out = vec![None; count];
    let mut st = tx.conn.prepare_cached(
        "SELECT idx, data FROM transfer_chunks_in WHERE peer = ?1 AND transfer_id = ?2",
    )?;
    let mut rows = st.query(params![peer, id.to_string()])?;
    while let Some(r) = rows.next()? {
        let i: usize = r.get(0)?;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(r.get(1)?);
        }
    }
    Ok(out)
}

/// How a transfer announced here ended.
pub enum Ended<'a> {
    /// Imported as `patient`; the record as it arrived.
    Imported {
        /// The patient here.
        patient: PatientId,
        /// The record's bytes (a FHIR Bundle).
        bundle: &'a [u8],
    },
    /// Refused, for `reason`.
    Refused {
        /// Why.
        reason: &'a str,
    },
}

/// Ends a transfer still receiving, and forgets its chunks. False when it had ended before.
pub fn end_in(
    w: &WriteCtx<'_>,
    peer: &str,
    id: uuid::Uuid,
    how: Ended<'_>,
) -> Result<bool, StoreError> {
    let (state, patient, bundle, reason) = match how {
        Ended::Imported { patient, bundle } => (
            IncomingState::Imported,
            Some(patient.to_string()),
            Some(bundle),
            None,
        ),
        Ended::Refused { reason } => (IncomingState::Refused, None, None, Some(reason)),
    };
    let changed = w.conn.execute(
        "UPDATE transfers_in SET state = ?3, patient_id = ?4, bundle = ?5, reason = ?6,
             updated_at = ?7
         WHERE peer = ?1 AND id = ?2 AND state = 'receiving'",
        params![
            peer,
            id.to_string(),
            state.as_str(),
            patient,
            w.conn.seal(bundle)?,
            reason,
            w.now().timestamp_millis()
        ],
    )? == 1;
    w.conn.execute(
        "DELETE FROM transfer_chunks_in WHERE peer = ?1 AND transfer_id = ?2",
        params![peer, id.to_string()],
    )?;
    Ok(changed)
}

/// The records other hospitals transferred here for a patient, oldest first.
pub fn records_for_patient(
    tx: &Tx<'_>,
    patient: PatientId,
) -> Result<Vec<TransferredRecord>, StoreError> {
    let mut st = tx.conn.prepare_cached(
        "SELECT id, peer, organisation, patient_global_id, updated_at, bundle FROM transfers_in
         WHERE patient_id = ?1 AND state = 'imported' ORDER BY updated_at, id",
    )?;
    let mut rows = st.query([patient.to_string()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let bundle: Vec<u8> = r.get(5)?;
        out.push(TransferredRecord {
            transfer_id: uuid(&r.get::<_, String>(0)?)?,
            peer: r.get(1)?,
            organisation: r.get(2)?,
            from_global_id: r.get(3)?,
            imported_at: from_millis(r.get(4)?)?,
            bundle: serde_json::from_slice(&bundle)?,
        });
    }
    Ok(out)
}

/// The transfer a transmission carries a part of, if it does.
pub fn of_transmission(
    tx: &Tx<'_>,
    transmission: uuid::Uuid,
) -> Result<Option<uuid::Uuid>, StoreError> {
    let id: Option<Option<String>> = tx
        .conn
        .query_row(
            "SELECT transfer_id FROM transmissions WHERE id = ?1",
            [transmission.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    id.flatten().map(|i| uuid(&i)).transpose()
}

/// Ties a queued transmission to the transfer whose part it carries.
pub fn tie(
    w: &WriteCtx<'_>,
    transmission: uuid::Uuid,
    transfer: uuid::Uuid,
) -> Result<(), StoreError> {
    w.conn.execute(
        "UPDATE transmissions SET transfer_id = ?2 WHERE id = ?1",
        params![transmission.to_string(), transfer.to_string()],
    )?;
    Ok(())
}

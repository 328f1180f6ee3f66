//! Moving a patient's record to another hospital (DESIGN, "Consented access", transfer).
//!
//! The sending side (A): the front desk authorises it with the patient in front of it, having
//! checked their identity (`start`). A reads the whole record in one transaction (signed
//! reports only, with their PDFs), writes it as a FHIR `collection` Bundle, cuts it into
//! chunks and queues a `transfer-manifest` and one `transfer-chunk` per piece, each its own
//! transmission: a node stopped between chunks sends the rest when it starts again, and the
//! receiver keeps each envelope once. A marks the record transferred only when the receiver
//! confirms the very Bundle it sent (`receive_confirmed`); until then the record is A's,
//! unchanged. Nothing is deleted: that is a separate, audited step after retention.
//!
//! The receiving side (B): the manifest is checked and kept (`receive_manifest`); each chunk
//! is checked against it as it arrives (`receive_chunk`, answered 503 when it overtook its
//! manifest, so that A sends it again). The chunk that completes the record assembles and
//! checks it, and imports it in the same transaction: the patient (matched by name and birth
//! date, or registered under a new id) and, beside them, the record as it arrived, read-only.
//! A record that does not check out is refused whole: nothing of it is kept, and A is told.

use std::sync::Arc;

use carebridge_fhir::Resource;
use carebridge_fhir::map;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::transfer::{
    self as rules, NewTransfer, PatientTransfer, TransferChunk, TransferConfirmed,
    TransferManifest, TransferRefused, TransferState, TransferredTo,
};
use carebridge_protocol::patient::Patient;
use carebridge_protocol::{PatientId, ProblemType};

use super::error::{FederationError, cleaned};
use super::peer::Peer;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::error::ApiError;
use crate::fhir::everything::{self, Include, Reports};
use crate::fhir::import::{self, Importer, Resolved};
use crate::node::Node;
use crate::store::appointments::Scope;
use crate::store::federation::peers;
use crate::store::federation::transfers::{self as stored, Ended, IncomingState, Settled};
use crate::store::{AuditDraft, StoreError, Tx, WriteCtx, patients};
use crate::visibility::{self, RecordKind};

/// Streams a transfer's new state to the front desk and admins.
pub fn emit(ctx: &mut WriteCtx<'_>, t: &PatientTransfer) -> Result<(), StoreError> {
    ctx.emit(
        EventKind::TransferUpdated,
        visibility::audience(RecordKind::Transfer),
        t,
    )?;
    Ok(())
}

/// A hospital this node may move a record to: peered, and allowed to answer (a peer added
/// before transfers existed is not, until it is peered again).
fn hospital_peer(ctx: &Tx<'_>, name: &str) -> Result<Peer, FederationError> {
    let peer = peers::get(ctx, name)?
        .filter(|p| p.kind == NodeKind::Hospital)
        .ok_or_else(|| {
            FederationError::invalid("peer", "is not a hospital this node is peered with")
        })?;
    let answers = [MessageType::TransferConfirmed, MessageType::TransferRefused];
    if !answers.iter().all(|t| peer.allowed_types.contains(t)) {
        return Err(FederationError::invalid(
            "peer",
            format!(
                "{} may not answer a transfer here (it may send {}): run `carebridge-node peer add` for it again, whose defaults now allow transfer-confirmed and transfer-refused",
                peer.name,
                peer.allowed_types
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(peer)
}

/// A record that has moved answers every change with where it lives now.
pub fn moved(patient: &Patient) -> Result<(), FederationError> {
    match patient.moved() {
        None => Ok(()),
        Some(why) => Err(FederationError::refused(
            ProblemType::InvalidTransition,
            why,
        )),
    }
}

/// Why the patient's record takes no changes here now, if it does not: it moved to another
/// hospital, or it is being moved (a change made meanwhile would not travel with it). Every
/// write to a patient's record asks this first.
pub fn unchangeable(tx: &Tx<'_>, patient: &Patient) -> Result<Option<String>, StoreError> {
    if let Some(why) = patient.moved() {
        return Ok(Some(why));
    }
    Ok(stored::sending(tx, patient.id)?.map(|t| {
        format!(
            "the record is being moved to {} (authorised on {}): it takes no changes until {} confirms it, or the move is refused",
            t.peer,
            t.created_at.format("%Y-%m-%d"),
            t.peer
        )
    }))
}

/// Refuses a change to `patient`'s record when [`unchangeable`] says why.
pub fn require_changeable(tx: &Tx<'_>, patient: &Patient) -> Result<(), FederationError> {
    match unchangeable(tx, patient)? {
        None => Ok(()),
        Some(why) => Err(FederationError::refused(
            ProblemType::InvalidTransition,
            why,
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The sending side

/// Everything of the patient's record that moves: all appointments, signed reports with their
/// PDFs and revisions, consents, imaging studies, letters and scans with their current files,
/// and the staff they name.
const WHOLE_RECORD: Include = Include {
    appointments: Some(Scope::All),
    reports: Reports::Signed,
    consents: true,
    imaging: true,
    documents: true,
};

/// Authorises moving `patient`'s record to `req.peer`: reads and writes the record, then
/// queues its manifest and chunks. `base` is the FHIR base its entries' full URLs use.
pub async fn start(
    node: &Arc<Node>,
    draft: AuditDraft,
    authorised_by: String,
    patient: PatientId,
    req: NewTransfer,
    base: String,
) -> Result<PatientTransfer, ApiError> {
    // Refuse early what would be refused at the end, before the record is read.
    let name = node.name().to_owned();
    let peer_name = req.peer.clone();
    let early = node
        .store
        .read(move |tx| {
            let p =
                patients::get(tx, patient, &name)?.ok_or(FederationError::NotFound("patient"))?;
            moved(&p)?;
            hospital_peer(tx, &peer_name)?;
            if let Some(t) = stored::sending(tx, patient)? {
                return Err(under_way(&t));
            }
            Ok::<_, FederationError>(())
        })
        .await;
    if let Err(e) = early {
        // Refused before anything was read: audited as a refusal all the same.
        return Err(node
            .store
            .write(Some(draft), move |_| Err::<(), _>(e))
            .await
            .map_or_else(ApiError::from, |()| {
                ApiError::Internal("a refusal was not refused".into())
            }));
    }

    let name = node.name().to_owned();
    let record = node
        .store
        .read(move |tx| everything::gather(tx, patient, &name, &WHOLE_RECORD))
        .await?
        .ok_or(FederationError::NotFound("patient"))?;
    let counts = record.counts();
    let resources = everything::resources(node, record).await.map_err(|e| {
        ApiError::Internal(format!("the record could not be written as FHIR: {e:?}"))
    })?;
    let bundle = carebridge_fhir::bundle::collection(
        &base,
        uuid::Uuid::new_v4().to_string(),
        map::instant(node.clock.now()),
        resources,
    );
    let bytes = serde_json::to_vec(&Resource::Bundle(bundle)).map_err(StoreError::from)?;

    let id = uuid::Uuid::now_v7();
    let global_id = format!("{patient}@{}", node.name());
    let (manifest, chunks) =
        rules::cut(id, &global_id, node.organisation(), &authorised_by, &bytes)
            .map_err(|e| FederationError::invalid("record", e.to_string()))?;
    let n = node.clone();
    let t = node
        .store
        .write(Some(draft), move |ctx| {
            let p = patients::get(ctx, patient, n.name())?
                .ok_or(FederationError::NotFound("patient"))?;
            moved(&p)?;
            let peer = hospital_peer(ctx, &req.peer)?;
            let now = ctx.now();
            let t = PatientTransfer {
                id,
                patient_id: patient,
                peer: peer.name.clone(),
                organisation: None,
                state: TransferState::Sending,
                parts: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                parts_delivered: 0,
                bytes: manifest.bytes,
                sha256: manifest.sha256.clone(),
                identity_document: req.identity_document,
                authorised_by: authorised_by.clone(),
                new_global_id: None,
                reason: None,
                created_at: now,
                updated_at: now,
            };
            if !stored::insert_out(ctx, &t)? {
                let other = stored::out_for_patient(ctx, patient)?
                    .into_iter()
                    .find(|o| o.state != TransferState::Refused);
                return Err(match other {
                    Some(o) => under_way(&o),
                    None => FederationError::Internal("the transfer was not recorded".into()),
                });
            }
            let parts = chunks.len();
            send(ctx, &n, &peer, MessageType::TransferManifest, &manifest, &t, "manifest")?;
            for c in &chunks {
                let what = format!("part {} of {parts}", c.index + 1);
                send(ctx, &n, &peer, MessageType::TransferChunk, c, &t, &what)?;
            }
            emit(ctx, &t)?;
            ctx.set_entity(format!("patient/{patient}"));
            ctx.set_detail(format!(
                "transfer {id} to {} authorised (identity checked with a {}): {counts}, {} bytes in {parts} part(s), SHA-256 {}",
                peer.name,
                req.identity_document.as_str(),
                t.bytes,
                t.sha256
            ));
            Ok::<_, FederationError>(t)
        })
        .await?;
    node.wake_delivery();
    Ok(t)
}

fn under_way(t: &PatientTransfer) -> FederationError {
    FederationError::refused(
        ProblemType::Conflict,
        match t.state {
            TransferState::Confirmed => format!("the record already moved to {}", t.peer),
            _ => format!(
                "a transfer to {} is under way ({} of {} parts delivered)",
                t.peer, t.parts_delivered, t.parts
            ),
        },
    )
}

fn send<T: serde::Serialize>(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    message_type: MessageType,
    payload: &T,
    t: &PatientTransfer,
    what: &str,
) -> Result<(), FederationError> {
    let queued = transmission::queue(
        ctx,
        node,
        peer,
        Outgoing {
            message_type,
            payload: serde_json::to_vec(payload).map_err(StoreError::from)?,
            summary: format!("patient record transfer to {}: {what}", peer.name),
            patient_id: Some(t.patient_id),
            report_ids: Vec::new(),
            created_by: &t.authorised_by,
        },
    )?;
    stored::tie(ctx, queued.id, t.id)?;
    Ok(())
}

/// A part of a transfer was settled: acknowledged (the front desk sees how far it got), or
/// refused for good (`failed`: the transfer cannot complete, and the record stays here as it
/// is).
pub fn part_settled(
    ctx: &mut WriteCtx<'_>,
    transmission: uuid::Uuid,
    failed: Option<&str>,
) -> Result<(), StoreError> {
    let Some(id) = stored::of_transmission(ctx, transmission)? else {
        return Ok(());
    };
    if let Some(why) = failed {
        let reason = format!("a part could not be delivered: {why}");
        if stored::settle_out(ctx, id, Settled::Refused { reason: &reason })? {
            stored::stop_parts(
                ctx,
                id,
                "another part of the transfer could not be delivered",
            )?;
        }
    }
    if let Some(t) = stored::out(ctx, id)? {
        emit(ctx, &t)?;
    }
    Ok(())
}

fn out_of_peer(
    ctx: &WriteCtx<'_>,
    peer: &Peer,
    id: uuid::Uuid,
) -> Result<PatientTransfer, FederationError> {
    stored::out(ctx, id)?
        .filter(|t| t.peer == peer.name)
        .ok_or_else(|| {
            FederationError::refused(
                ProblemType::UnreadablePayload,
                format!("no transfer {id} was sent to {}", peer.name),
            )
        })
}

/// `transfer-confirmed` arrived: if it names the record A sent, the record here becomes
/// read-only and points at its new home.
pub fn receive_confirmed(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    m: &TransferConfirmed,
) -> Result<String, FederationError> {
    // The signature is over the message as B sent it, before any cleaning here.
    let signed = m.verify((&peer.name, node.name()), &peer.signing_key);
    let m = &cleaned(m)?;
    let t = out_of_peer(ctx, peer, m.transfer_id)?;
    if t.state != TransferState::Sending {
        return Ok(format!("transfer {} is already {}", t.id, t.state.as_str()));
    }
    if !signed {
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!(
                "the confirmation of transfer {} is not signed by {}",
                t.id, peer.name
            ),
        ));
    }
    if m.sha256 != t.sha256 {
        // Not the record A sent: A stays as it is, and says so.
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!(
                "the confirmation of transfer {} names SHA-256 {}, not the record sent ({})",
                t.id, m.sha256, t.sha256
            ),
        ));
    }
    let new_global_id = m.new_global_id.trim();
    if new_global_id
        .split_once('@')
        .is_none_or(|(_, n)| n != peer.name)
    {
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!("{new_global_id:?} is not a global id at {}", peer.name),
        ));
    }
    let organisation = if m.organisation.is_empty() {
        peer.name.clone()
    } else {
        m.organisation.clone()
    };
    stored::settle_out(
        ctx,
        t.id,
        Settled::Confirmed {
            new_global_id,
            organisation: &organisation,
            signature: &m.signature,
        },
    )?;
    let to = TransferredTo {
        global_id: new_global_id.to_owned(),
        peer: peer.name.clone(),
        organisation: organisation.clone(),
        at: ctx.now(),
    };
    patients::mark_transferred(ctx, t.patient_id, &to)?;
    ctx.audit(
        &AuditDraft {
            actor: format!("peer:{}", peer.name),
            action: "patient.transferred".into(),
            entity: format!("patient/{}", t.patient_id),
            source: String::new(),
        },
        &format!("patient/{}", t.patient_id),
        carebridge_protocol::audit::Outcome::Success,
        &format!(
            "{} confirmed transfer {} (SHA-256 {}), signed {}: the record lives there as {new_global_id}; read-only here",
            peer.name, t.id, t.sha256, m.signature
        ),
    )?;
    if let Some(p) = patients::get(ctx, t.patient_id, node.name())? {
        ctx.emit(
            EventKind::PatientUpdated,
            visibility::audience(RecordKind::Patient),
            &p,
        )?;
    }
    if let Some(t) = stored::out(ctx, t.id)? {
        emit(ctx, &t)?;
    }
    Ok(format!(
        "transfer {} confirmed: patient/{} now lives at {} as {new_global_id}",
        t.id, t.patient_id, peer.name
    ))
}

/// `transfer-refused` arrived: nothing changes here but the transfer's state.
pub fn receive_refused(
    ctx: &mut WriteCtx<'_>,
    peer: &Peer,
    m: &TransferRefused,
) -> Result<String, FederationError> {
    let m = cleaned(m)?;
    let t = out_of_peer(ctx, peer, m.transfer_id)?;
    let reason = m.reason;
    if !stored::settle_out(ctx, t.id, Settled::Refused { reason: &reason })? {
        return Ok(format!("transfer {} is already {}", t.id, t.state.as_str()));
    }
    stored::stop_parts(ctx, t.id, &format!("{} refused the transfer", peer.name))?;
    ctx.audit(
        &AuditDraft {
            actor: format!("peer:{}", peer.name),
            action: "patient.transfer-refused".into(),
            entity: format!("patient/{}", t.patient_id),
            source: String::new(),
        },
        &format!("patient/{}", t.patient_id),
        carebridge_protocol::audit::Outcome::Failure,
        &format!(
            "{} refused transfer {}: {reason}; the record stays here as it was",
            peer.name, t.id
        ),
    )?;
    if let Some(t) = stored::out(ctx, t.id)? {
        emit(ctx, &t)?;
    }
    Ok(format!(
        "transfer {} refused by {}: {reason}",
        t.id, peer.name
    ))
}

// ---------------------------------------------------------------------------------------------
// The receiving side

/// `transfer-manifest` arrived: kept, for the chunks to be checked against.
pub fn receive_manifest(
    ctx: &mut WriteCtx<'_>,
    peer: &Peer,
    m: &TransferManifest,
) -> Result<String, FederationError> {
    let m = &cleaned(m)?;
    m.check()
        .map_err(|e| FederationError::refused(ProblemType::UnreadablePayload, e.to_string()))?;
    if m.patient_global_id
        .split_once('@')
        .is_none_or(|(_, n)| n != peer.name)
    {
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!(
                "{:?} is not a patient of {}",
                m.patient_global_id, peer.name
            ),
        ));
    }
    let fresh = stored::insert_in(ctx, &peer.name, m)?;
    Ok(format!(
        "transfer {} of {} announced{}: {} bytes in {} part(s)",
        m.transfer_id,
        m.patient_global_id,
        if fresh { "" } else { " again" },
        m.bytes,
        m.chunks.len()
    ))
}

/// `transfer-chunk` arrived: checked and kept; the last one imports the record.
pub fn receive_chunk(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    c: &TransferChunk,
) -> Result<String, FederationError> {
    let Some(incoming) = stored::incoming(ctx, &peer.name, c.transfer_id)? else {
        // Overtook its manifest: not stored, so that the sender tries again.
        return Err(FederationError::refused(
            ProblemType::Unavailable,
            format!(
                "transfer {} has not been announced yet: send its manifest first",
                c.transfer_id
            ),
        ));
    };
    let m = &incoming.manifest;
    if incoming.state != IncomingState::Receiving {
        return Ok(format!(
            "part {} of transfer {} again: it was already {}",
            c.index + 1,
            m.transfer_id,
            match incoming.state {
                IncomingState::Imported => "imported",
                _ => "refused",
            }
        ));
    }
    let bytes = match m.check_chunk(c) {
        Ok(b) => b,
        Err(e) => return refuse(ctx, node, peer, m, &e.to_string()),
    };
    let have = stored::put_chunk(ctx, &peer.name, m.transfer_id, c.index, &bytes)?;
    let count = m.chunks.len();
    if (have as usize) < count {
        return Ok(format!(
            "part {} of transfer {} ({have} of {count} here)",
            c.index + 1,
            m.transfer_id
        ));
    }
    let pieces = stored::chunks(ctx, &peer.name, m.transfer_id, count)?;
    let whole = match m.assemble(&pieces) {
        Ok(w) => w,
        Err(e) => return refuse(ctx, node, peer, m, &e.to_string()),
    };
    import_record(ctx, node, peer, m, &whole)
}

/// Refuses a transfer whole: its chunks are forgotten, and the sender is told.
fn refuse(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    m: &TransferManifest,
    reason: &str,
) -> Result<String, FederationError> {
    stored::end_in(ctx, &peer.name, m.transfer_id, Ended::Refused { reason })?;
    ctx.audit(
        &AuditDraft {
            actor: format!("peer:{}", peer.name),
            action: "patient.transfer-refused".into(),
            entity: format!("transfer/{}", m.transfer_id),
            source: String::new(),
        },
        &format!("transfer/{}", m.transfer_id),
        carebridge_protocol::audit::Outcome::Failure,
        &format!(
            "record of {} from {} refused, nothing of it kept: {reason}",
            m.patient_global_id, peer.name
        ),
    )?;
    let refusal = TransferRefused {
        transfer_id: m.transfer_id,
        reason: reason.to_owned(),
    };
    transmission::queue(
        ctx,
        node,
        peer,
        Outgoing {
            message_type: MessageType::TransferRefused,
            payload: serde_json::to_vec(&refusal).map_err(StoreError::from)?,
            summary: format!("patient record transfer from {} refused", peer.name),
            patient_id: None,
            report_ids: Vec::new(),
            created_by: "node",
        },
    )?;
    Ok(format!(
        "transfer {} of {} refused: {reason}",
        m.transfer_id, m.patient_global_id
    ))
}

/// The whole record checked out: import it (all or nothing, inside the caller's write) and
/// confirm it, or refuse it.
fn import_record(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    m: &TransferManifest,
    whole: &[u8],
) -> Result<String, FederationError> {
    let patient = match checked_patient(whole, m) {
        Ok(p) => p,
        Err(why) => return refuse(ctx, node, peer, m, &why),
    };
    let draft = AuditDraft {
        actor: format!("peer:{}", peer.name),
        action: "patient.transfer-in".into(),
        entity: format!("transfer/{}", m.transfer_id),
        source: String::new(),
    };
    // The same person already registered here, and only one such, whose record is here to
    // stay: the record joins theirs. Never a record that moved away (a patient coming back
    // is registered afresh), never a guess between two.
    let name = patient.name.first();
    let family = name.and_then(|n| n.family.clone()).unwrap_or_default();
    let given = name.map(|n| n.given.join(" ")).unwrap_or_default();
    let birth = patient
        .birth_date
        .as_deref()
        .and_then(|b| b.parse::<chrono::NaiveDate>().ok());
    let mut same = Vec::new();
    if let Some(birth) = birth {
        for p in patients::same_person(ctx, family.trim(), given.trim(), birth, node.name())? {
            if unchangeable(ctx, &p)?.is_none() {
                same.push(p.id);
            }
        }
    }
    let (patient_id, matched) = if let [one] = same[..] {
        (one, true)
    } else {
        let importer = Importer {
            node: node.name(),
            tz: node.tz,
            signing_key: &node.signing_key,
            by: None,
            audit: &draft,
            match_by_name: false,
        };
        let entry = import::Entry {
            index: 0,
            full_url: None,
            resource: Resource::Patient(patient),
        };
        // A patient the import refuses (a name this node's rules do not take) refuses the
        // whole record; a store failure rolls back the chunk's receipt, and the sender tries
        // again.
        let local = match import::apply(ctx, &importer, &mut Resolved::default(), &entry) {
            Ok(d) => d,
            Err(import::Refusal::Store(e)) => return Err(FederationError::Internal(e)),
            Err(e) => return refuse(ctx, node, peer, m, &format!("the patient: {e}")),
        };
        let id: PatientId = local
            .location()
            .strip_prefix("Patient/")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| {
                FederationError::Internal(format!("imported as {}", local.location()))
            })?;
        (id, false)
    };
    stored::end_in(
        ctx,
        &peer.name,
        m.transfer_id,
        Ended::Imported {
            patient: patient_id,
            bundle: whole,
        },
    )?;
    let here = patients::get(ctx, patient_id, node.name())?
        .ok_or_else(|| FederationError::Internal(format!("patient/{patient_id} is missing")))?;
    ctx.audit(
        &draft,
        &format!("patient/{patient_id}"),
        carebridge_protocol::audit::Outcome::Success,
        &format!(
            "record of {} moved here from {} (transfer {}, {} bytes, SHA-256 {}): {}",
            m.patient_global_id,
            peer.name,
            m.transfer_id,
            whole.len(),
            m.sha256,
            if matched {
                "joined to the same person registered here"
            } else {
                "registered under a new id"
            }
        ),
    )?;
    // The patient's page shows the record that arrived: tell whoever has it open.
    ctx.emit(
        EventKind::PatientUpdated,
        visibility::audience(RecordKind::Patient),
        &here,
    )?;
    let confirmed = TransferConfirmed::sign(
        m.transfer_id,
        &m.sha256,
        &here.global_id,
        node.organisation(),
        (node.name(), &peer.name),
        &node.signing_key,
    );
    transmission::queue(
        ctx,
        node,
        peer,
        Outgoing {
            message_type: MessageType::TransferConfirmed,
            payload: serde_json::to_vec(&confirmed).map_err(StoreError::from)?,
            summary: format!("patient record transfer from {} imported", peer.name),
            patient_id: Some(patient_id),
            report_ids: Vec::new(),
            created_by: "node",
        },
    )?;
    Ok(format!(
        "transfer {} of {} imported as {} ({}), {} bytes",
        m.transfer_id,
        m.patient_global_id,
        here.global_id,
        if matched {
            "the same person was already registered here"
        } else {
            "registered"
        },
        whole.len()
    ))
}

/// The record's patient, if the record is a `collection` Bundle that this node reads whole and
/// that is about the patient the manifest names, made ready to register here: their own id
/// and card number stay at the other hospital.
fn checked_patient(
    whole: &[u8],
    m: &TransferManifest,
) -> Result<carebridge_fhir::resources::Patient, String> {
    let value: serde_json::Value =
        serde_json::from_slice(whole).map_err(|e| format!("the record is not JSON: {e}"))?;
    if value["resourceType"] != "Bundle" || value["type"] != "collection" {
        return Err("the record is not a FHIR collection Bundle".into());
    }
    let (entries, refused) = import::entries_of_value(&value);
    if let Some((i, why)) = refused.first() {
        return Err(format!("entry {i}: {why}"));
    }
    let mut patients = entries.into_iter().filter_map(|e| match e.resource {
        Resource::Patient(p) => Some(p),
        _ => None,
    });
    let (Some(mut p), None) = (patients.next(), patients.next()) else {
        return Err("the record holds no patient, or more than one".into());
    };
    let named = p.identifier.iter().any(|i| {
        i.system.as_deref() == Some(carebridge_fhir::system::GLOBAL_ID)
            && i.value.as_deref() == Some(m.patient_global_id.as_str())
    });
    if !named {
        return Err(format!(
            "the record's patient is not {}, as the manifest says",
            m.patient_global_id
        ));
    }
    p.id = None;
    p.meta = None;
    p.identifier.clear();
    p.link.clear();
    p.active = None;
    Ok(p)
}

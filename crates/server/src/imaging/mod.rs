//! Imaging with a PACS (Orthanc): the worklist the modalities read, and the studies that
//! arrive, matched to their patients and announced live.
//!
//! Design (2026-12): Orthanc's change feed (`/changes`) is the ingest. The node reads it from
//! the position it stored, and records each stable study together with the feed's new
//! position in one transaction, so nothing is lost or recorded twice when either side
//! restarts: a study is recorded once per StudyInstanceUID whatever the retries. Orthanc's
//! `OnStableStudy` script only wakes the node early (`POST /api/v1/imaging/hint`); its calls
//! are not retried, so a lost one costs nothing but the wait for the next poll.
//!
//! Matching, never by name or birth date: the accession number names an order, and so its
//! patient, when the study's PatientID (issued here or without an issuer) is that patient's
//! number or absent; else a PatientID issued by this node (IssuerOfPatientID = the node's name)
//! is a patient's medical record number; else the study waits in the reconciliation list. A
//! study from another issuer is never matched by accession (its numbers may look like ours),
//! and an accession and a PatientID that disagree are a conflict that waits there too.

pub mod orthanc;
pub mod worklist;

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::PractitionerId;
use carebridge_protocol::audit::Outcome;
use carebridge_protocol::event::EventKind;
use carebridge_protocol::imaging::{
    ImagingOrder, ImagingOrderId, ImagingStudy, ImagingStudyId, NewImagingOrder, OrderStatus,
    StudyMatch, dicom_text,
};

use crate::config::ImagingConfig;
use crate::node::Node;
use crate::store::imaging::{self as store, PacsStudy};
use crate::store::{AuditDraft, StoreError, WriteCtx, patients};
use crate::visibility::{self, RecordKind};
use orthanc::{Orthanc, PacsError, StudyFacts};

/// How many changes one read of the feed asks for.
const FEED_PAGE: u32 = 100;

/// A node's PACS, when `node.toml` configures one.
#[derive(Debug)]
pub struct Imaging {
    /// What `node.toml` says.
    pub config: ImagingConfig,
    /// The client of Orthanc's REST API.
    pub pacs: Orthanc,
    /// Wakes the feed's reader (a hint from Orthanc).
    pub wake: tokio::sync::Notify,
    /// Failed reads of a study, by its position in the feed.
    failures: parking_lot::Mutex<std::collections::HashMap<i64, u32>>,
}

impl Imaging {
    /// The node's PACS as `cfg` describes it.
    pub fn new(cfg: &ImagingConfig) -> Self {
        Self {
            pacs: Orthanc::new(cfg),
            config: cfg.clone(),
            wake: tokio::sync::Notify::new(),
            failures: parking_lot::Mutex::default(),
        }
    }

    /// Where the viewer opens a study: the configured address with the study's
    /// StudyInstanceUID and Orthanc id in it.
    pub fn viewer_url(&self, study: &PacsStudy) -> Option<String> {
        // The UID comes from whatever sent the study: encoded, it stays one value of the URL.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        self.config.viewer_url.as_ref().map(|v| {
            v.replace("{study_uid}", &encode(&study.study.study_uid))
                .replace("{pacs_id}", &encode(&study.pacs_id))
        })
    }
}

/// Why the feed could not be followed this time.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Orthanc could not be read.
    #[error(transparent)]
    Pacs(#[from] PacsError),
    /// The node's database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The worklist folder could not be written.
    #[error("the worklist entry {accession} was not written: {reason}")]
    Worklist {
        /// The order's accession number.
        accession: String,
        /// Why.
        reason: String,
    },
}

/// Starts following the PACS, if the node has one: the worklist is written again for every
/// scheduled order (a folder emptied by hand fills up again), then the feed is read at once,
/// whenever Orthanc hints, and every `poll_seconds` anyway, until `stop`.
pub fn spawn(node: &Arc<Node>, stop: &tokio_util::sync::CancellationToken) {
    let Some(imaging) = &node.imaging else {
        return;
    };
    let poll = Duration::from_secs(u64::from(imaging.config.poll_seconds));
    let node = node.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = republish_worklist(&node).await {
            tracing::warn!(error = %e, "could not write the imaging worklist");
        }
        loop {
            match catch_up(&node).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(studies = n, "imaging studies recorded"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the PACS's changes; will retry")
                }
            }
            let Some(imaging) = &node.imaging else { return };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = imaging.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}

/// How many times a study Orthanc answers for but cannot give (an error, an answer this node
/// cannot read) is tried, at each poll, before the follower skips it and says so: one bad study
/// must not hold up every later one.
const STUDY_TRIES: u32 = 5;

/// Reads the feed from the stored position to its end, recording each stable study with the
/// position after it. Returns how many studies were new.
pub async fn catch_up(node: &Arc<Node>) -> Result<u64, FeedError> {
    let Some(imaging) = &node.imaging else {
        return Ok(0);
    };
    let source = imaging.pacs.source().to_owned();
    let mut since = {
        let source = source.clone();
        node.store
            .read(move |tx| store::feed_position(tx, &source))
            .await?
    };
    let mut recorded = 0;
    loop {
        let page = imaging.pacs.changes(since, FEED_PAGE).await?;
        if page.changes.is_empty() && page.last < since {
            // Orthanc's positions started again: its database was replaced. Read it all again;
            // what is recorded stays recorded once.
            tracing::error!(
                stored = since,
                pacs = page.last,
                "the PACS's change feed is behind the position this node kept; reading it again from the start"
            );
            let source = source.clone();
            node.store
                .write(None, move |ctx| store::restart_feed(ctx, &source))
                .await?;
            since = 0;
            continue;
        }
        for change in &page.changes {
            if change.change_type != "StableStudy" {
                continue;
            }
            let facts = match imaging.pacs.study(&change.id).await {
                Ok(f) => f,
                Err(e @ PacsError::Unreachable { .. }) => return Err(e.into()),
                Err(e) => {
                    let tries = {
                        let mut failures = imaging.failures.lock();
                        let n = failures.entry(change.seq).or_insert(0);
                        *n += 1;
                        *n
                    };
                    if tries < STUDY_TRIES {
                        return Err(e.into());
                    }
                    skip(node, &source, change, &e).await?;
                    imaging.failures.lock().remove(&change.seq);
                    continue;
                }
            };
            // A study deleted since its change is skipped with the change.
            if record(node, &source, change.seq, facts).await? {
                recorded += 1;
            }
        }
        if page.last > since {
            let source = source.clone();
            let last = page.last;
            node.store
                .write(None, move |ctx| {
                    store::set_feed_position(ctx, &source, last)
                })
                .await?;
        }
        since = page.last.max(since);
        if page.done || page.changes.is_empty() {
            return Ok(recorded);
        }
    }
}

/// Moves the feed past a study that could not be read after [`STUDY_TRIES`], and puts it on the
/// audit trail (an admin reads why, and can send the study again).
async fn skip(
    node: &Arc<Node>,
    source: &str,
    change: &orthanc::Change,
    error: &PacsError,
) -> Result<(), FeedError> {
    tracing::error!(study = %change.id, %error, "skipping a study the PACS could not give");
    let source = source.to_owned();
    let position = change.seq;
    let draft = AuditDraft {
        actor: "node".into(),
        action: "imaging.study-unreadable".into(),
        entity: String::new(),
        source: "pacs".into(),
    };
    let detail = format!(
        "Orthanc study {} skipped after {STUDY_TRIES} tries: {error}",
        change.id
    );
    node.store
        .write(None, move |ctx| {
            store::set_feed_position(ctx, &source, position)?;
            ctx.audit(&draft, "", Outcome::Failure, &detail)
        })
        .await?;
    Ok(())
}

/// Records one study (if it is new) with the feed's position after it, in one transaction;
/// announces it, and takes its order off the worklist. Returns whether it was new.
async fn record(
    node: &Arc<Node>,
    source: &str,
    position: i64,
    facts: Option<StudyFacts>,
) -> Result<bool, FeedError> {
    let source = source.to_owned();
    let name = node.name().to_owned();
    let draft = AuditDraft {
        actor: "node".into(),
        action: "imaging.study-received".into(),
        entity: String::new(),
        source: "pacs".into(),
    };
    let outcome = node
        .store
        .write(None, move |ctx| {
            store::set_feed_position(ctx, &source, position)?;
            let Some(facts) = facts else {
                return Ok::<_, StoreError>(None);
            };
            if store::study_by_uid(ctx, &facts.study_uid)?.is_some() {
                // Stable again: more images came. Its facts follow; its patient does not.
                let now = store::StudyNow {
                    pacs_id: &facts.pacs_id,
                    preview_instance: facts.preview_instance.as_deref(),
                    modalities: &facts.modalities,
                    description: &facts.description,
                    study_date: facts.study_date,
                    series_count: facts.series_count,
                    instance_count: facts.instance_count,
                };
                if let Some(updated) = store::refresh_study(ctx, &facts.study_uid, &now)? {
                    announce(ctx, &updated.study, None)?;
                }
                return Ok(None);
            }
            let (study, order) = matched(ctx, &name, facts)?;
            let s = &study.study;
            store::record_study(ctx, &study)?;
            if let Some(o) = &order {
                store::complete_order(ctx, o.id)?;
            }
            let entity = match s.patient_id {
                Some(p) => format!("patient/{p}"),
                None => format!("imaging-study/{}", s.id),
            };
            let detail = format!(
                "study {} ({}), {} images, matched by {}",
                s.study_uid,
                s.modalities.join("/"),
                s.instance_count,
                s.matched_by.as_str()
            );
            ctx.audit(&draft, &entity, Outcome::Success, &detail)?;
            announce(ctx, &study.study, order.as_ref())?;
            Ok(Some((study, order)))
        })
        .await?;
    let Some((_, order)) = outcome else {
        return Ok(false);
    };
    if let Some(o) = order
        && let Some(dir) = node
            .imaging
            .as_ref()
            .and_then(|i| i.config.worklist_dir.clone())
    {
        let withdrawn = tokio::task::spawn_blocking(move || worklist::withdraw(&dir, &o)).await;
        if let Ok(Err(e)) = withdrawn {
            tracing::warn!(error = %e, "could not take a completed order off the worklist");
        }
    }
    Ok(true)
}

/// Finds a study's patient (see the module's documentation) and builds its record.
fn matched(
    ctx: &WriteCtx<'_>,
    node_name: &str,
    f: StudyFacts,
) -> Result<(PacsStudy, Option<ImagingOrder>), StoreError> {
    // The issuer as the worklist wrote it (DICOM LO: 64 characters).
    let issuer = dicom_text(node_name, 64);
    // Ours: issued here. Foreign: another organisation's numbers, which may look like ours.
    let (ours, foreign) = match f.issuer.as_str() {
        "" => (false, false),
        i => (i == issuer, i != issuer),
    };
    let number = if f.patient_id.is_empty() || foreign {
        None
    } else {
        Some(store::patient_by_mrn(ctx, &f.patient_id)?)
    };
    let order = if f.accession.is_empty() || foreign {
        None
    } else {
        store::order_by_accession(ctx, &f.accession)?
    };
    let (patient, order, how) = match (order, number) {
        // The accession names an order and the PatientID (ours, or without an issuer) agrees,
        // or there is none.
        (Some(o), None) if f.patient_id.is_empty() => {
            (Some(o.patient_id), Some(o), StudyMatch::Accession)
        }
        (Some(o), Some(Some(p))) if o.patient_id == p => (Some(p), Some(o), StudyMatch::Accession),
        // An order, and a PatientID that is another patient's or nobody's here: a conflict to
        // resolve by hand (a typed accession, another organisation's numbers).
        (Some(_), _) => (None, None, StudyMatch::Unmatched),
        (None, Some(Some(p))) if ours => (Some(p), None, StudyMatch::PatientId),
        (None, _) => (None, None, StudyMatch::Unmatched),
    };
    let study = ImagingStudy {
        id: ImagingStudyId::new(),
        study_uid: f.study_uid,
        patient_id: patient,
        order_id: order.as_ref().map(|o| o.id),
        ordered_by: order.as_ref().map(|o| o.ordered_by),
        matched_by: how,
        accession: f.accession,
        dicom_patient_id: f.patient_id,
        dicom_issuer: f.issuer,
        dicom_patient_name: f.patient_name,
        modalities: f.modalities,
        description: f.description,
        study_date: f.study_date,
        series_count: f.series_count,
        instance_count: f.instance_count,
        received_at: ctx.now(),
        version: 1,
        viewer_url: None,
    };
    Ok((
        PacsStudy {
            study,
            pacs_id: f.pacs_id,
            preview_instance: f.preview_instance,
        },
        order,
    ))
}

/// Records a doctor's order: the patient gets a medical record number if they had none, the
/// order the next accession number; doctors hear of it. The caller has checked that the patient
/// exists and the id is free; the worklist entry is written after the commit ([`publish`]).
pub fn place_order(
    ctx: &mut WriteCtx<'_>,
    id: ImagingOrderId,
    req: &NewImagingOrder,
    by: PractitionerId,
    by_name: &str,
) -> Result<ImagingOrder, StoreError> {
    let mrn = store::assign_mrn(ctx, req.patient_id)?;
    let order = ImagingOrder {
        id,
        patient_id: req.patient_id,
        accession: store::next_accession(ctx)?,
        modality: req.modality,
        procedure: req.procedure.trim().to_owned(),
        reason: req.reason.trim().to_owned(),
        scheduled_at: req.scheduled_at,
        ordered_by: by,
        ordered_by_name: by_name.to_owned(),
        status: OrderStatus::Scheduled,
        created_at: ctx.now(),
    };
    store::insert_order(ctx, &order)?;
    // What was ordered stays on the order: the trail says which, not why.
    ctx.set_detail(format!(
        "{} accession {} for {mrn}",
        order.modality.as_str(),
        order.accession
    ));
    ctx.emit(
        EventKind::ImagingOrderCreated,
        visibility::audience(RecordKind::Imaging),
        &order,
    )?;
    Ok(order)
}

/// Tells who may see it: a matched study to doctors (the ordering one by name), one that
/// matched nobody to those who reconcile.
pub fn announce(
    ctx: &mut WriteCtx<'_>,
    study: &ImagingStudy,
    order: Option<&ImagingOrder>,
) -> Result<(), StoreError> {
    if study.patient_id.is_some() {
        let mut audience = visibility::audience(RecordKind::Imaging);
        audience.practitioner = order.map(|o| o.ordered_by);
        ctx.emit(EventKind::ImagingStudyAvailable, audience, study)?;
    }
    if study.patient_id.is_none() || study.matched_by == StudyMatch::Hand {
        ctx.emit(
            EventKind::ImagingReconciliationUpdated,
            visibility::audience(RecordKind::Reconciliation),
            study,
        )?;
    }
    Ok(())
}

/// Writes an order's worklist entry (when the node has a worklist folder). Blocking work runs
/// off the async threads.
pub async fn publish(node: &Arc<Node>, order: ImagingOrder) -> Result<(), FeedError> {
    let Some(dir) = node
        .imaging
        .as_ref()
        .and_then(|i| i.config.worklist_dir.clone())
    else {
        return Ok(());
    };
    let name = node.name().to_owned();
    let tz = node.tz;
    let facts = node
        .store
        .read(move |tx| {
            let patient = patients::get(tx, order.patient_id, &name)?;
            let mrn = store::mrn(tx, order.patient_id)?;
            Ok::<_, StoreError>(patient.zip(mrn).map(|(p, m)| (order, p, m)))
        })
        .await?;
    let Some((order, patient, mrn)) = facts else {
        return Ok(());
    };
    let issuer = node.name().to_owned();
    let accession = order.accession.clone();
    let failed = |reason: String| FeedError::Worklist {
        accession: accession.clone(),
        reason,
    };
    tokio::task::spawn_blocking(move || {
        worklist::publish(
            &dir,
            &worklist::Entry {
                order: &order,
                patient: &patient,
                mrn: &mrn,
                issuer: &issuer,
                tz,
            },
        )
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| failed(e.to_string()))
}

/// Writes the worklist entry of every scheduled order again, and removes the entries of orders
/// no longer scheduled; an entry that cannot be written is logged and the others still are.
async fn republish_worklist(node: &Arc<Node>) -> Result<(), FeedError> {
    let orders = node.store.read(store::scheduled_orders).await?;
    if let Some(dir) = node
        .imaging
        .as_ref()
        .and_then(|i| i.config.worklist_dir.clone())
    {
        let keep: std::collections::HashSet<std::path::PathBuf> =
            orders.iter().map(|o| worklist::path(&dir, o)).collect();
        let removed = tokio::task::spawn_blocking(move || worklist::remove_others(&dir, &keep))
            .await
            .map_err(|e| FeedError::Worklist {
                accession: String::new(),
                reason: e.to_string(),
            })?;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "could not tidy the imaging worklist");
        }
    }
    for o in orders {
        if let Err(e) = publish(node, o).await {
            tracing::warn!(error = %e, "an imaging order's worklist entry was not written");
        }
    }
    Ok(())
}

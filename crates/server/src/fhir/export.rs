//! FHIR Bulk Data export (`$export`), the asynchronous request pattern: a kick-off answered
//! 202 with a status URL; the status answered 202 with `X-Progress` and `Retry-After` until
//! the manifest is ready; one NDJSON file per resource type; `DELETE` on the status URL
//! cancels and forgets the job.
//!
//! A job walks each table by id in bounded pages on a reader thread and appends each page's
//! lines to its file as it goes, so an export of any size holds one page in memory. The files
//! hold patient data outside the encrypted database, so they are sealed: AES-256-GCM frames
//! under a key that lives only in this process. A restart forgets the jobs and their keys,
//! and clears what files are left.

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_fhir::map;
use carebridge_fhir::search::{SearchParams, date_param};
use carebridge_fhir::{OperationOutcome, Resource};
use carebridge_protocol::PatientId;
use carebridge_protocol::audit::AuditQuery;
use carebridge_protocol::practitioner::Role;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::RngCore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{FhirError, base_url};
use crate::api::extract::Caller;
use crate::error::ApiError;
use crate::node::Node;
use crate::store::appointments::{self, AppointmentFilter, Scope};
use crate::store::federation::consents;
use crate::store::imaging;
use crate::store::search::{Page, Span};
use crate::store::{Tx, audit, patients, practitioners, reports, schedules};

/// Rows read per page of a job's walk.
const PAGE: u32 = 2000;
/// Plaintext bytes per sealed frame.
const FRAME: usize = 256 * 1024;
/// Jobs running at once; more are told to come back.
const MAX_RUNNING: usize = 2;
/// How long a finished export's files are kept for its client to fetch.
const KEPT_FOR: chrono::Duration = chrono::Duration::hours(24);

/// The NDJSON media type of the files.
const NDJSON: &str = "application/fhir+ndjson";

/// What a system-level export carries unless `_type` says otherwise (the audit trail only
/// when asked for: it is the admins' own record, and the largest).
const SYSTEM_TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Schedule",
    "Appointment",
    "DiagnosticReport",
    "Provenance",
    "Consent",
    "ImagingStudy",
];
/// What `_type` may name.
const EXPORTABLE: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Schedule",
    "Appointment",
    "DiagnosticReport",
    "Provenance",
    "Consent",
    "ImagingStudy",
    "AuditEvent",
];
/// The patient compartment: what a Patient-level export carries.
const PATIENT_TYPES: &[&str] = &[
    "Patient",
    "Appointment",
    "DiagnosticReport",
    "Provenance",
    "Consent",
    "ImagingStudy",
];

/// Whose records a job exports.
#[derive(Debug, Clone, Copy)]
enum Extent {
    /// Everything (`/$export`).
    System,
    /// Every patient's compartment (`/Patient/$export`).
    Patients,
    /// One patient's (`/Patient/{id}/$export`).
    Patient(PatientId),
}

/// One finished file.
#[derive(Debug)]
struct Output {
    resource_type: &'static str,
    path: PathBuf,
    key: [u8; 32],
    count: u64,
}

#[derive(Debug)]
enum Progress {
    Running,
    Done(Vec<Output>),
    Failed(String),
}

/// One export job.
#[derive(Debug)]
struct Job {
    request: String,
    transaction_time: DateTime<Utc>,
    dir: PathBuf,
    cancel: CancellationToken,
    written: AtomicU64,
    current: Mutex<&'static str>,
    state: Mutex<Progress>,
}

/// The node's export jobs, in memory.
#[derive(Debug)]
pub struct Exports {
    dir: PathBuf,
    jobs: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Exports {
    /// Jobs whose files go under `dir`, which is cleared: files of a previous run are sealed
    /// with keys that died with it.
    pub fn new(dir: PathBuf) -> Self {
        if let Err(e) = fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not clear old export files");
        }
        Self {
            dir,
            jobs: Mutex::default(),
        }
    }

    fn running(&self) -> usize {
        self.jobs
            .lock()
            .values()
            .filter(|j| matches!(*j.state.lock(), Progress::Running))
            .count()
    }

    fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        self.jobs.lock().get(&id).cloned()
    }

    /// Forgets finished jobs older than [`KEPT_FOR`] and deletes their files.
    fn forget_old(&self, now: DateTime<Utc>) {
        let old: Vec<Uuid> = self
            .jobs
            .lock()
            .iter()
            .filter(|(_, j)| {
                !matches!(*j.state.lock(), Progress::Running) && now - j.transaction_time > KEPT_FOR
            })
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.forget(id);
        }
    }

    fn forget(&self, id: Uuid) -> Option<Arc<Job>> {
        let job = self.jobs.lock().remove(&id)?;
        job.cancel.cancel();
        // Hundreds of megabytes may go: off the async threads.
        let dir = job.dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not delete an export's files");
            }
        });
        Some(job)
    }

    /// Forgets, every hour, the finished exports older than [`KEPT_FOR`], until the node stops.
    pub fn spawn_sweeper(node: &Arc<Node>) {
        let node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = node.shutdown.cancelled() => break,
                    _ = tick.tick() => node.exports.forget_old(node.clock.now()),
                }
            }
        });
    }
}

/// A file being written: NDJSON lines sealed in frames of `[u32 length][ciphertext]`, frame
/// `n` under nonce `n` (the key is fresh for each file, so the counter never repeats under it).
struct SealedWriter {
    file: BufWriter<fs::File>,
    cipher: Aes256Gcm,
    buf: Vec<u8>,
    frame: u64,
    count: u64,
}

fn nonce(frame: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&frame.to_be_bytes());
    n
}

impl SealedWriter {
    fn create(path: &Path, key: &[u8; 32]) -> std::io::Result<Self> {
        Ok(Self {
            file: BufWriter::new(fs::File::create(path)?),
            cipher: Aes256Gcm::new(key.into()),
            buf: Vec::with_capacity(FRAME + 4096),
            frame: 0,
            count: 0,
        })
    }

    fn line(&mut self, r: &Resource) -> Result<(), ApiError> {
        serde_json::to_writer(&mut self.buf, r)
            .map_err(|e| ApiError::Internal(format!("serialising an export line: {e}")))?;
        self.buf.push(b'\n');
        self.count += 1;
        if self.buf.len() >= FRAME {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> Result<(), ApiError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = nonce(self.frame);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&n), self.buf.as_slice())
            .map_err(|_| ApiError::Internal("sealing an export frame".into()))?;
        let len = u32::try_from(sealed.len())
            .map_err(|_| ApiError::Internal("an export frame is too large".into()))?;
        self.file
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.file.write_all(&sealed))
            .map_err(|e| ApiError::Internal(format!("writing an export file: {e}")))?;
        self.frame += 1;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<u64, ApiError> {
        self.seal()?;
        self.file
            .flush()
            .map_err(|e| ApiError::Internal(format!("writing an export file: {e}")))?;
        Ok(self.count)
    }
}

/// Reads a sealed file back frame by frame, as plaintext chunks.
struct SealedReader {
    file: std::io::BufReader<fs::File>,
    cipher: Aes256Gcm,
    frame: u64,
}

impl SealedReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut len = [0u8; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
        let mut sealed = vec![0u8; u32::from_be_bytes(len) as usize];
        self.file
            .read_exact(&mut sealed)
            .map_err(|e| e.to_string())?;
        let n = nonce(self.frame);
        self.frame += 1;
        self.cipher
            .decrypt(Nonce::from_slice(&n), sealed.as_slice())
            .map(Some)
            .map_err(|_| "an export frame does not open".to_owned())
    }
}

fn outcome(status: StatusCode, code: &str, text: impl Into<String>) -> FhirError {
    FhirError::Outcome(status, OperationOutcome::error(code, text))
}

/// `GET /$export`.
pub(super) async fn system(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    kick_off(node, caller, headers, raw, Extent::System, "$export").await
}

/// `GET /Patient/$export`.
pub(super) async fn patients_level(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    kick_off(
        node,
        caller,
        headers,
        raw,
        Extent::Patients,
        "Patient/$export",
    )
    .await
}

/// `GET /Patient/{id}/$export`.
pub(super) async fn one_patient(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let Ok(patient) = id.parse::<PatientId>() else {
        return Err(outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no Patient with id {id}"),
        ));
    };
    let path = format!("Patient/{id}/$export");
    kick_off(node, caller, headers, raw, Extent::Patient(patient), &path).await
}

async fn kick_off(
    node: Arc<Node>,
    caller: Caller,
    headers: HeaderMap,
    raw: Option<String>,
    extent: Extent,
    path: &str,
) -> Result<Response, FhirError> {
    let may = if crate::visibility::may_bulk_export(&caller.viewer) {
        Ok(())
    } else {
        Err(ApiError::forbidden("bulk export is for admins"))
    };
    caller.audit_refusal(&node, may, "fhir.export", "").await?;
    let prefers_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("respond-async"));
    if !prefers_async {
        return Err(FhirError::invalid(
            "a bulk export needs `Prefer: respond-async`",
        ));
    }
    let base = base_url(&node, &headers);
    let mut params = SearchParams::new(
        raw.as_deref()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    match params.take_one("_outputFormat")?.as_deref() {
        None | Some("application/fhir+ndjson" | "application/ndjson" | "ndjson") => {}
        Some(other) => {
            return Err(FhirError::invalid(format!(
                "`_outputFormat`: `{other}` is not served; the node writes application/fhir+ndjson"
            )));
        }
    }
    let allowed: &[&str] = match extent {
        Extent::System => EXPORTABLE,
        Extent::Patients | Extent::Patient(_) => PATIENT_TYPES,
    };
    let asked = params.take_any_of("_type")?;
    let types: Vec<&'static str> = if asked.is_empty() {
        match extent {
            Extent::System => SYSTEM_TYPES.to_vec(),
            _ => PATIENT_TYPES.to_vec(),
        }
    } else {
        let mut out = Vec::new();
        for t in &asked {
            let Some(known) = allowed.iter().find(|a| **a == t.as_str()) else {
                return Err(FhirError::invalid(format!(
                    "`_type`: {t} is not exported here; choose from {allowed:?}"
                )));
            };
            if !out.contains(known) {
                out.push(*known);
            }
        }
        out
    };
    let since = params
        .take_one("_since")?
        .map(|s| {
            // An instant, as the Bulk Data spec says: no prefix (`lt…` would export everything).
            if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) || !s.contains('T') {
                return Err(FhirError::invalid(
                    "`_since` is an instant: YYYY-MM-DDThh:mm:ss with a zone",
                ));
            }
            Ok(date_param("_since", &s, node.tz)?.from)
        })
        .transpose()?
        .flatten();
    params.format()?;
    params.finish()?;
    node.exports.forget_old(node.clock.now());
    if node.exports.running() >= MAX_RUNNING {
        let mut res = FhirError::Outcome(
            StatusCode::TOO_MANY_REQUESTS,
            OperationOutcome::error(
                "throttled",
                format!("{MAX_RUNNING} exports are running; try again shortly"),
            ),
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return Ok(res);
    }
    let id = Uuid::new_v4();
    let now = node.clock.now();
    let request = match &raw {
        Some(q) if !q.is_empty() => format!("{base}/{path}?{q}"),
        _ => format!("{base}/{path}"),
    };
    let job = Arc::new(Job {
        request,
        transaction_time: now,
        dir: node.exports.dir.join(id.to_string()),
        cancel: node.shutdown.child_token(),
        written: AtomicU64::new(0),
        current: Mutex::new(""),
        state: Mutex::new(Progress::Running),
    });
    fs::create_dir_all(&job.dir)
        .map_err(|e| ApiError::Internal(format!("creating an export folder: {e}")))?;
    node.exports.jobs.lock().insert(id, job.clone());
    let detail = format!(
        "bulk export {id}: {}{}",
        types.join(", "),
        since
            .map(|s| format!(" since {}", map::instant(s)))
            .unwrap_or_default()
    );
    let entity = match extent {
        Extent::Patient(p) => format!("patient/{p}"),
        _ => String::new(),
    };
    node.store
        .write(Some(caller.audit("fhir.export", entity)), move |ctx| {
            ctx.set_detail(detail);
            Ok::<_, ApiError>(())
        })
        .await?;
    let span = Span {
        from: since,
        // Nothing changed after the transaction time: a later `_since` export brings it.
        to: Some(now + chrono::Duration::milliseconds(1)),
    };
    let worker_node = node.clone();
    tokio::spawn(async move {
        let result = run(&worker_node, &job, extent, &types, span).await;
        let mut state = job.state.lock();
        *state = match result {
            Ok(outputs) => Progress::Done(outputs),
            Err(e) => {
                tracing::error!(error = ?e, "bulk export failed");
                Progress::Failed("the export failed on the node".into())
            }
        };
    });
    let location = format!("{base}/$export-status/{id}");
    let mut res = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
        serde_json::to_vec(&Resource::OperationOutcome(OperationOutcome {
            issue: vec![carebridge_fhir::resources::Issue {
                severity: "information".into(),
                code: "informational".into(),
                diagnostics: Some(format!("export started; poll {location}")),
                expression: Vec::new(),
            }],
        }))
        .unwrap_or_default(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(res)
}

/// Writes every type's file in turn; a cancelled job stops between pages.
async fn run(
    node: &Arc<Node>,
    job: &Arc<Job>,
    extent: Extent,
    types: &[&'static str],
    span: Span,
) -> Result<Vec<Output>, ApiError> {
    let mut outputs = Vec::new();
    for &t in types {
        *job.current.lock() = t;
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let path = job.dir.join(format!("{t}.ndjson"));
        let writer = SealedWriter::create(&path, &key)
            .map_err(|e| ApiError::Internal(format!("creating an export file: {e}")))?;
        let writer = Arc::new(Mutex::new(Some(writer)));
        let mut cursor = Cursor::Start;
        loop {
            if job.cancel.is_cancelled() {
                return Ok(outputs);
            }
            let (w, j, n) = (writer.clone(), job.clone(), node.clone());
            let before = cursor.clone();
            cursor = node
                .store
                .read(move |tx| {
                    let mut guard = w.lock();
                    let writer = guard
                        .as_mut()
                        .ok_or_else(|| ApiError::Internal("export writer gone".into()))?;
                    let (next, lines) = page(tx, &n, t, extent, span, before, writer)?;
                    j.written.fetch_add(lines, Ordering::Relaxed);
                    Ok::<_, ApiError>(next)
                })
                .await?;
            if matches!(cursor, Cursor::Done) {
                break;
            }
        }
        let writer = writer
            .lock()
            .take()
            .ok_or_else(|| ApiError::Internal("export writer gone".into()))?;
        let count = tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        outputs.push(Output {
            resource_type: t,
            path,
            key,
            count,
        });
    }
    Ok(outputs)
}

/// Where a type's walk stands.
#[derive(Debug, Clone)]
enum Cursor {
    Start,
    After(String),
    Done,
}

fn parse_after<T: std::str::FromStr>(c: &Cursor) -> Option<T> {
    match c {
        Cursor::After(s) => s.parse().ok(),
        _ => None,
    }
}

/// Writes the next page of type `t` and says where to go on.
fn page(
    tx: &Tx<'_>,
    node: &Node,
    t: &'static str,
    extent: Extent,
    span: Span,
    cursor: Cursor,
    w: &mut SealedWriter,
) -> Result<(Cursor, u64), ApiError> {
    let name = node.name();
    let start = w.count;
    let only = match extent {
        Extent::Patient(p) => Some(p),
        _ => None,
    };
    // Kinds that are small (staff, schedules, consents) and one patient's records are
    // written in one go; the big tables are walked by id.
    let next = match (t, only) {
        ("Patient", Some(p)) => {
            if let Some(x) = patients::get(tx, p, name)?.filter(|x| within(span, x.updated_at)) {
                w.line(&Resource::Patient(map::patient(&x, name)))?;
            }
            Cursor::Done
        }
        ("Patient", None) => {
            let rows = patients::page_after(tx, parse_after(&cursor), span, PAGE, name)?;
            for x in &rows {
                w.line(&Resource::Patient(map::patient(x, name)))?;
            }
            last(&rows, PAGE, |x| x.id.to_string())
        }
        ("Appointment", Some(p)) => {
            // One patient's, a page at a time like the others.
            let filter = AppointmentFilter {
                patient: Some(p),
                updated: span,
                ..AppointmentFilter::default()
            };
            let offset = parse_after::<u32>(&cursor).unwrap_or(0);
            let page = Page {
                offset,
                count: PAGE,
            };
            let staff = practitioners::list(tx, None)?;
            let rows = appointments::find(tx, &filter, Scope::All, &[], page)?.items;
            for a in &rows {
                w.line(&Resource::Appointment(map::appointment(
                    a,
                    name,
                    names(&staff, a),
                )))?;
            }
            last(&rows, PAGE, |_| (offset + PAGE).to_string())
        }
        ("Appointment", None) => {
            let staff = practitioners::list(tx, None)?;
            let rows = appointments::page_after(tx, parse_after(&cursor), span, PAGE)?;
            for a in &rows {
                w.line(&Resource::Appointment(map::appointment(
                    a,
                    name,
                    names(&staff, a),
                )))?;
            }
            last(&rows, PAGE, |x| x.id.to_string())
        }
        ("DiagnosticReport", Some(p)) => {
            for r in reports::of_patient(tx, p)?
                .iter()
                .filter(|r| within(span, r.updated_at))
            {
                w.line(&Resource::DiagnosticReport(map::diagnostic_report(
                    r, name, None,
                )))?;
            }
            Cursor::Done
        }
        ("DiagnosticReport", None) => {
            let rows = reports::page_after(tx, parse_after(&cursor), span, PAGE)?;
            for r in &rows {
                w.line(&Resource::DiagnosticReport(map::diagnostic_report(
                    r, name, None,
                )))?;
            }
            last(&rows, PAGE, |x| x.id.to_string())
        }
        ("Provenance", Some(p)) => {
            for r in reports::of_patient(tx, p)?
                .iter()
                .filter(|r| within(span, r.updated_at))
            {
                for rev in reports::revisions(tx, r.id)? {
                    w.line(&Resource::Provenance(map::provenance(r.id, &rev)))?;
                }
            }
            Cursor::Done
        }
        ("Provenance", None) => {
            let after = match &cursor {
                Cursor::After(s) => s
                    .split_once('/')
                    .and_then(|(r, n)| Some((r.parse().ok()?, n.parse().ok()?))),
                _ => None,
            };
            let rows = reports::revisions_after(tx, after, span, PAGE)?;
            for (r, rev) in &rows {
                w.line(&Resource::Provenance(map::provenance(*r, rev)))?;
            }
            last(&rows, PAGE, |(r, rev)| format!("{r}/{}", rev.revision))
        }
        ("Consent", only) => {
            let all = match only {
                Some(p) => consents::list(tx, p)?,
                None => consents::all(tx)?,
            };
            for c in all.iter().filter(|c| within(span, c.recorded_at)) {
                w.line(&Resource::Consent(map::consent(c)))?;
            }
            Cursor::Done
        }
        ("ImagingStudy", only) => {
            let all = match only {
                Some(p) => imaging::studies_of(tx, p)?,
                None => imaging::matched_studies(tx)?,
            };
            for s in all.iter().filter(|s| within(span, s.study.received_at)) {
                if let Some(r) = map::imaging_study(&s.study, name) {
                    w.line(&Resource::ImagingStudy(r))?;
                }
            }
            Cursor::Done
        }
        ("Practitioner" | "PractitionerRole" | "Schedule", _) => {
            let zone = node.tz.name();
            for d in practitioners::list(tx, None)? {
                let schedule = if d.role == Role::Doctor {
                    schedules::get(tx, d.id)?
                } else {
                    None
                };
                let r = match t {
                    "Practitioner" => Resource::Practitioner(map::practitioner(&d, name)),
                    "PractitionerRole" => {
                        Resource::PractitionerRole(map::practitioner_role(&d, schedule.as_ref()))
                    }
                    _ => match &schedule {
                        Some(s) => Resource::Schedule(map::schedule(s, &d, zone)),
                        None => continue,
                    },
                };
                w.line(&r)?;
            }
            Cursor::Done
        }
        ("AuditEvent", _) => {
            let after = parse_after::<i64>(&cursor);
            // The audit reader's pages are at most 1000.
            const AUDIT_PAGE: u32 = 1000;
            let q = AuditQuery {
                after,
                from: span.from,
                to: span.to,
                limit: Some(AUDIT_PAGE),
                ..AuditQuery::default()
            };
            let rows = audit::list(tx, &q)?;
            for e in &rows {
                w.line(&Resource::AuditEvent(map::audit_event(e, name)))?;
            }
            last(&rows, AUDIT_PAGE, |e| e.record.seq.to_string())
        }
        _ => Cursor::Done,
    };
    Ok((next, w.count - start))
}

fn within(span: Span, t: DateTime<Utc>) -> bool {
    span.from.is_none_or(|f| t >= f) && span.to.is_none_or(|e| t < e)
}

fn names<'a>(
    staff: &'a [carebridge_protocol::practitioner::Practitioner],
    a: &carebridge_protocol::appointment::Appointment,
) -> map::Names<'a> {
    map::Names {
        patient: None,
        practitioner: staff
            .iter()
            .find(|d| d.id == a.practitioner_id)
            .map(|d| d.display_name.as_str()),
    }
}

/// Where to go on after a page of `size` rows: a short page is the last.
fn last<T>(rows: &[T], size: u32, key: impl Fn(&T) -> String) -> Cursor {
    match rows.last() {
        Some(x) if rows.len() == size as usize => Cursor::After(key(x)),
        _ => Cursor::Done,
    }
}

fn job_of(node: &Node, caller: &Caller, id: &str) -> Result<(Uuid, Arc<Job>), FhirError> {
    let gone = || {
        outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such export (it was cancelled, deleted, or the node restarted)",
        )
    };
    if !crate::visibility::may_bulk_export(&caller.viewer) {
        return Err(ApiError::forbidden("bulk export is for admins").into());
    }
    let id: Uuid = id.parse().map_err(|_| gone())?;
    let job = node.exports.get(id).ok_or_else(gone)?;
    Ok((id, job))
}

/// `GET /$export-status/{id}`: 202 with progress while running, 200 with the manifest.
pub(super) async fn status(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, FhirError> {
    node.exports.forget_old(node.clock.now());
    let (id, job) = job_of(&node, &caller, &id)?;
    let base = base_url(&node, &headers);
    let state = job.state.lock();
    match &*state {
        Progress::Running => {
            let progress = format!(
                "{} resources written; now {}",
                job.written.load(Ordering::Relaxed),
                *job.current.lock()
            );
            let mut res = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&progress) {
                res.headers_mut().insert("x-progress", v);
            }
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(res)
        }
        Progress::Failed(why) => Err(outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            why.clone(),
        )),
        Progress::Done(outputs) => {
            let output: Vec<_> = outputs
                .iter()
                .filter(|o| o.count > 0)
                .map(|o| {
                    serde_json::json!({
                        "type": o.resource_type,
                        "url": format!("{base}/$export-file/{id}/{}.ndjson", o.resource_type),
                        "count": o.count,
                    })
                })
                .collect();
            let manifest = serde_json::json!({
                "transactionTime": map::instant(job.transaction_time),
                "request": job.request,
                "requiresAccessToken": true,
                "output": output,
                "error": [],
            });
            let mut res = (StatusCode::OK, axum::Json(manifest)).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(res)
        }
    }
}

/// `DELETE /$export-status/{id}`: stops the job and deletes its files.
pub(super) async fn cancel(
    State(node): State<Arc<Node>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, FhirError> {
    let (id, _) = job_of(&node, &caller, &id)?;
    node.exports.forget(id);
    node.store
        .write(Some(caller.audit("fhir.export-delete", "")), move |ctx| {
            ctx.set_detail(format!("bulk export {id} cancelled or deleted"));
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /$export-file/{id}/{Type}.ndjson`: one file, opened frame by frame as it is sent.
pub(super) async fn file(
    State(node): State<Arc<Node>>,
    caller: Caller,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> Result<Response, FhirError> {
    node.exports.forget_old(node.clock.now());
    let (_, job) = job_of(&node, &caller, &id)?;
    let found = match &*job.state.lock() {
        Progress::Done(outputs) => outputs
            .iter()
            .find(|o| format!("{}.ndjson", o.resource_type) == name)
            .map(|o| (o.path.clone(), o.key, o.resource_type, o.count)),
        _ => None,
    };
    let Some((path, key, resource_type, count)) = found else {
        return Err(outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no file {name} in this export"),
        ));
    };
    let file = fs::File::open(&path)
        .map_err(|e| ApiError::Internal(format!("opening an export file: {e}")))?;
    let mut reader = SealedReader {
        file: std::io::BufReader::new(file),
        cipher: Aes256Gcm::new((&key).into()),
        frame: 0,
    };
    let entity = format!("export/{id}");
    node.store
        .write(Some(caller.audit("fhir.export-file", entity)), move |ctx| {
            ctx.set_detail(format!("{resource_type}: {count} resource(s)"));
            Ok::<_, ApiError>(())
        })
        .await?;
    // Frames are opened on a blocking thread and handed over a short queue, so a slow
    // download holds a few frames, not the file.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let chunk = reader.next_chunk().map_err(std::io::Error::other);
            let end = matches!(chunk, Ok(None) | Err(_));
            let item = match chunk {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.blocking_send(item).is_err() || end {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(res)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on the unexpected")]
    use super::*;

    #[test]
    fn a_sealed_file_reads_back_line_for_line_and_is_not_plain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Patient.ndjson");
        let key = [7u8; 32];
        let mut w = SealedWriter::create(&path, &key).unwrap();
        let mut expected = Vec::new();
        for i in 0..5000 {
            let p = carebridge_fhir::resources::Patient {
                id: Some(format!("p{i}")),
                birth_date: Some("1980-01-01".into()),
                ..Default::default()
            };
            let r = Resource::Patient(p);
            expected.extend(serde_json::to_vec(&r).unwrap());
            expected.push(b'\n');
            w.line(&r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 5000);
        let on_disk = fs::read(&path).unwrap();
        assert!(
            !on_disk.windows(8).any(|w| w == b"Patient\""),
            "the file holds plain JSON"
        );
        let mut r = SealedReader {
            file: std::io::BufReader::new(fs::File::open(&path).unwrap()),
            cipher: Aes256Gcm::new((&key).into()),
            frame: 0,
        };
        let mut back = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            back.extend(c);
        }
        assert!(r.frame > 1, "several frames");
        assert_eq!(back, expected);
        // Another key opens nothing.
        let mut wrong = SealedReader {
            file: std::io::BufReader::new(fs::File::open(&path).unwrap()),
            cipher: Aes256Gcm::new((&[8u8; 32]).into()),
            frame: 0,
        };
        assert!(wrong.next_chunk().is_err());
    }
}

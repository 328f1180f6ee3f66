//! The watched folder: a scanner's output, a CD copied in. Each file that is complete (written
//! and closed, or moved in) goes to the node: a DICOM file to the PACS, where it arrives as a
//! modality's would; a PDF or an image to the documents of the patient its name gives (a card
//! number first: `0012345678 Discharge letter #gp.pdf`), or of the patient the user picks.
//!
//! A file is moved aside (into `imported/`) only once the node acknowledged it. One the node
//! refused stays where it is, with the reason; one that could not be sent (the node cannot be
//! reached) waits and goes when the node answers again. Nothing is kept here between runs: the
//! folder is the queue, and a file sent twice (its answer lost) is one version on the node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use carebridge_core::protocol::PatientId;
use carebridge_core::protocol::document::{DOCUMENT_MAX, DocumentMedia, NewDocument};
use carebridge_core::protocol::imaging::DICOM_FILE_MAX;
use carebridge_core::protocol::patient::validate_card_number;
use carebridge_core::protocol::problem::ProblemType;
use carebridge_core::{ChangeKind, Changes, CoreError, Link, SyncEngine};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Where files go once the node has them.
pub const IMPORTED: &str = "imported";

/// How often files that wait for the node are tried again, besides when it comes back.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum FileKind {
    /// A DICOM file, for the PACS.
    Dicom,
    /// A PDF or an image, for a patient's documents.
    Document,
    /// Neither: it stays in the folder.
    Other,
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
pub enum ImportState {
    /// Being read or sent.
    Sending,
    /// The node cannot be reached: it goes when the node answers.
    Waiting,
    /// A document whose patient the file name does not give: the user picks them.
    NeedsPatient,
    /// The node has it; the file was moved aside.
    Imported,
    /// Refused (by the node, or not a file it takes): it stays in the folder.
    Failed,
}

/// A file of the watched folder, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ImportFile {
    /// Its name in the folder.
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Where it stands.
    pub state: ImportState,
    /// Why, or what happened, in words.
    pub detail: String,
    /// The document's title (from the name, or as the user gave it).
    pub title: Option<String>,
    /// The patient it went, or goes, to.
    pub patient_id: Option<PatientId>,
}

/// What the user says a document is and whose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ImportAssignment {
    /// Whose document it is.
    pub patient_id: PatientId,
    /// Its title.
    pub title: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// What a document's file name says: `<card number> <title> #tag #tag`, words separated by
/// spaces or underscores; without a card number, the whole name is the title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedDocument {
    /// The card number it starts with.
    pub card_number: Option<String>,
    /// The title.
    pub title: String,
    /// The tags.
    pub tags: Vec<String>,
}

impl NamedDocument {
    /// Reads a file's name (its extension ignored).
    pub fn parse(file_name: &str) -> Self {
        let stem = Path::new(file_name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut words: Vec<&str> = stem
            .split(|c: char| c.is_whitespace() || c == '_')
            .filter(|w| !w.is_empty())
            .collect();
        let card_number = words
            .first()
            .filter(|w| validate_card_number(w).is_ok() && w.bytes().any(|b| b.is_ascii_digit()))
            .map(|w| (*w).to_owned());
        if card_number.is_some() {
            words.remove(0);
        }
        let tags = words
            .iter()
            .filter_map(|w| w.strip_prefix('#'))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let title = words
            .iter()
            .filter(|w| !w.starts_with('#'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            card_number,
            title: if title.is_empty() { stem } else { title },
            tags,
        }
    }
}

/// What a file's first bytes say it is.
pub fn kind_of(bytes: &[u8]) -> (FileKind, Option<DocumentMedia>) {
    // A DICOM Part 10 file: a 128-byte preamble, then "DICM".
    if bytes.get(128..132) == Some(b"DICM".as_slice()) {
        return (FileKind::Dicom, None);
    }
    match DocumentMedia::sniff(bytes) {
        Some(m) => (FileKind::Document, Some(m)),
        None => (FileKind::Other, None),
    }
}

#[derive(Default)]
struct Files {
    /// By name.
    list: BTreeMap<String, ImportFile>,
    /// What the user said of documents, by name, with the SHA-256 of the file they were shown.
    assigned: BTreeMap<String, (ImportAssignment, String)>,
    /// The SHA-256 of each document as last read, by name.
    hashes: BTreeMap<String, String>,
    /// Files to look at now.
    due: Vec<String>,
}

struct Shared {
    folder: PathBuf,
    files: Mutex<Files>,
    wake: Notify,
}

impl Shared {
    fn files(&self) -> std::sync::MutexGuard<'_, Files> {
        // A panic elsewhere while holding it leaves only a list behind; keep going.
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn make_due(&self, name: String) {
        let mut files = self.files();
        if !files.due.contains(&name) {
            files.due.push(name);
        }
    }
}

/// Why a folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// It is not a folder this user can read.
    #[error("{0} is not a folder that can be read")]
    NotAFolder(String),
    /// The system refused to watch it.
    #[error("the folder cannot be watched: {0}")]
    Watch(#[from] notify::Error),
}

/// A folder being watched; the watch ends when this is dropped or [`Self::stop`]ped.
pub struct FolderImport {
    shared: Arc<Shared>,
    stop: CancellationToken,
    // Dropping the watcher ends the watch.
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FolderImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderImport")
            .field("folder", &self.shared.folder)
            .finish_non_exhaustive()
    }
}

impl FolderImport {
    /// Watches `folder` and sends its files through `engine`: those already there, then each
    /// that arrives. The watch does not keep the engine alive: it ends with it (a sign-out).
    /// Call within a Tokio runtime.
    pub fn start(engine: &Arc<SyncEngine>, folder: PathBuf) -> Result<Self, WatchError> {
        if !folder.is_dir() || std::fs::read_dir(&folder).is_err() {
            return Err(WatchError::NotAFolder(folder.display().to_string()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                // Only a file that is whole: closed after writing, or moved in. A file being
                // copied is not read half-way.
                let whole = matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                );
                if whole {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        let shared = Arc::new(Shared {
            folder,
            files: Mutex::new(Files::default()),
            wake: Notify::new(),
        });
        let stop = CancellationToken::new();
        let status = engine.status();
        tokio::spawn(run(
            Arc::downgrade(engine),
            status,
            shared.clone(),
            rx,
            stop.clone(),
        ));
        Ok(Self {
            shared,
            stop,
            _watcher: watcher,
        })
    }

    /// The folder watched.
    pub fn folder(&self) -> &Path {
        &self.shared.folder
    }

    /// The files seen since the watch began, by name.
    pub fn files(&self) -> Vec<ImportFile> {
        self.shared.files().list.values().cloned().collect()
    }

    /// Says whose document a file is, and what: it is sent now.
    /// Says whose document a file waiting for its patient is, and what: it is sent now. Only
    /// for a file of the list that is the same as when it was read; answers whether it was.
    pub fn assign(&self, name: &str, assignment: ImportAssignment) -> bool {
        {
            let mut files = self.shared.files();
            if !self.is_listed(&files, name) {
                return false;
            }
            let Some(sha) = files.hashes.get(name).cloned() else {
                return false;
            };
            files.assigned.insert(name.to_owned(), (assignment, sha));
        }
        self.shared.make_due(name.to_owned());
        self.shared.wake.notify_one();
        true
    }

    /// Tries a file of the list again now; answers whether it is one.
    pub fn retry(&self, name: &str) -> bool {
        if !self.is_listed(&self.shared.files(), name) {
            return false;
        }
        self.shared.make_due(name.to_owned());
        self.shared.wake.notify_one();
        true
    }

    /// A file of the folder itself (no path leads elsewhere) that the list shows.
    fn is_listed(&self, files: &Files, name: &str) -> bool {
        files.list.contains_key(name)
            && name_in(&self.shared.folder, &self.shared.folder.join(name)).as_deref() == Some(name)
    }

    /// The path of a file of the list, to show it to the user before they say whose it is.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.is_listed(&self.shared.files(), name)
            .then(|| self.shared.folder.join(name))
    }

    /// Ends the watch.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for FolderImport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether a file in the folder is one to import: not hidden, not a download or copy still
/// being written under a temporary name.
fn importable(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || [".part", ".tmp", ".crdownload", ".partial"]
            .iter()
            .any(|s| name.to_ascii_lowercase().ends_with(s)))
}

fn name_in(folder: &Path, path: &Path) -> Option<String> {
    (path.parent() == Some(folder))
        .then(|| path.file_name())
        .flatten()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| importable(n))
}

async fn run(
    engine: Weak<SyncEngine>,
    mut status: tokio::sync::watch::Receiver<carebridge_core::Status>,
    shared: Arc<Shared>,
    mut arrived: mpsc::UnboundedReceiver<PathBuf>,
    stop: CancellationToken,
) {
    // What was there before the watch began.
    let folder = shared.folder.clone();
    let present = tokio::task::spawn_blocking(move || {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| name_in(&folder, &e.path()))
            .collect();
        names.sort();
        names
    })
    .await
    .unwrap_or_default();
    for name in present {
        shared.make_due(name);
    }
    // A fixed beat, whatever else wakes the loop meanwhile.
    let mut retries = tokio::time::interval(RETRY_EVERY);
    retries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        loop {
            let next = {
                let mut files = shared.files();
                (!files.due.is_empty()).then(|| files.due.remove(0))
            };
            let Some(name) = next else { break };
            // Held for one file at a time: a signed-out engine is not kept alive by the watch.
            let Some(engine) = engine.upgrade() else {
                return;
            };
            if stop.is_cancelled() {
                return;
            }
            import(&engine, &shared, &name).await;
            engine.tell(Changes::of(ChangeKind::FolderImport));
        }
        tokio::select! {
            () = stop.cancelled() => return,
            Some(path) = arrived.recv() => {
                if let Some(name) = name_in(&shared.folder, &path) {
                    shared.make_due(name);
                }
            }
            () = shared.wake.notified() => {}
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                if status.borrow_and_update().link == Link::Online {
                    retry_waiting(&shared);
                }
            }
            _ = retries.tick() => retry_waiting(&shared),
        }
    }
}

fn retry_waiting(shared: &Shared) {
    let names: Vec<String> = shared
        .files()
        .list
        .values()
        .filter(|f| f.state == ImportState::Waiting)
        .map(|f| f.name.clone())
        .collect();
    for name in names {
        shared.make_due(name);
    }
}

/// What became of one attempt.
struct Outcome {
    /// Look at the file again at once (it changed while it was sent).
    again: bool,
    state: ImportState,
    detail: String,
    title: Option<String>,
    patient_id: Option<PatientId>,
}

impl Outcome {
    fn new(state: ImportState, detail: impl Into<String>) -> Self {
        Self {
            again: false,
            state,
            detail: detail.into(),
            title: None,
            patient_id: None,
        }
    }
}

/// How a failure to send stands: the node out of reach waits, a refusal fails.
fn sending_failed(e: &CoreError) -> Outcome {
    match e {
        CoreError::Offline(_) | CoreError::SignedOut => Outcome::new(
            ImportState::Waiting,
            "the node cannot be reached: the file goes when it answers",
        ),
        CoreError::Rejected(p) if p.status == ProblemType::Unavailable.status() => Outcome::new(
            ImportState::Waiting,
            format!(
                "{}: tried again shortly",
                p.detail.as_deref().unwrap_or(p.title.as_str())
            ),
        ),
        other => Outcome::new(ImportState::Failed, other.to_string()),
    }
}

/// What a file was when it was read: if it is not that any more when the node answers, it was
/// replaced meanwhile (a scanner writing the same name again) and is not moved aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

async fn import(engine: &SyncEngine, shared: &Shared, name: &str) {
    let path = shared.folder.join(name);
    // Gone already (moved aside after an earlier look, or taken away by someone): what the list
    // says of it stands.
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    let seen = Seen::of(&meta);
    {
        let mut files = shared.files();
        let entry = files
            .list
            .entry(name.to_owned())
            .or_insert_with(|| ImportFile {
                name: name.to_owned(),
                kind: FileKind::Other,
                state: ImportState::Sending,
                detail: String::new(),
                title: None,
                patient_id: None,
            });
        entry.state = ImportState::Sending;
        entry.detail = "sending".into();
    }
    engine.tell(Changes::of(ChangeKind::FolderImport));
    let (kind, outcome) = send(engine, shared, name, &path, seen).await;
    let mut files = shared.files();
    if let Some(entry) = files.list.get_mut(name) {
        entry.kind = kind;
        entry.state = outcome.state;
        entry.detail = outcome.detail;
        entry.title = outcome.title.or(entry.title.take());
        entry.patient_id = outcome.patient_id.or(entry.patient_id);
    }
    if outcome.state == ImportState::Imported {
        files.assigned.remove(name);
        files.hashes.remove(name);
    }
    if outcome.again {
        files.due.push(name.to_owned());
    }
}

/// Reads what the file is from its first bytes.
async fn first_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(132);
    tokio::fs::File::open(path)
        .await?
        .take(132)
        .read_to_end(&mut head)
        .await?;
    Ok(head)
}

async fn send(
    engine: &SyncEngine,
    shared: &Shared,
    name: &str,
    path: &Path,
    seen: Seen,
) -> (FileKind, Outcome) {
    let head = match first_bytes(path).await {
        Ok(h) => h,
        Err(e) => {
            return (
                FileKind::Other,
                Outcome::new(ImportState::Failed, format!("the file cannot be read: {e}")),
            );
        }
    };
    let (kind, media) = kind_of(&head);
    let outcome = match (kind, media) {
        (FileKind::Dicom, _) => send_dicom(engine, shared, path, seen).await,
        (FileKind::Document, Some(media)) => {
            send_document(engine, shared, name, path, media, seen).await
        }
        _ => Outcome::new(
            ImportState::Failed,
            "not a DICOM file, PDF or image (PNG, JPEG, TIFF): it stays in the folder",
        ),
    };
    (kind, outcome)
}

/// A DICOM file goes to the PACS as it is read from the disk, never whole in memory.
async fn send_dicom(engine: &SyncEngine, shared: &Shared, path: &Path, seen: Seen) -> Outcome {
    if seen.len > DICOM_FILE_MAX {
        return Outcome::new(
            ImportState::Failed,
            format!("a DICOM file may be at most {} MiB", DICOM_FILE_MAX >> 20),
        );
    }
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            return Outcome::new(ImportState::Failed, format!("the file cannot be read: {e}"));
        }
    };
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    match engine.send_dicom(body, seen.len).await {
        Ok(stored) => {
            let what = if stored.already_stored {
                "the PACS had it already"
            } else {
                "sent to the PACS"
            };
            moved_aside(shared, path, seen, what).await
        }
        Err(e) => sending_failed(&e),
    }
}

/// The key of a filing: the same file, for the same patient, described the same way, is the
/// same request however often it is sent (each part length-prefixed, so no two differ only in
/// where one ends).
fn filing_key(bytes_sha: &str, patient: PatientId, document: &NewDocument) -> String {
    let mut key = Sha256::new();
    let mut part = |p: &[u8]| {
        key.update((p.len() as u64).to_be_bytes());
        key.update(p);
    };
    part(bytes_sha.as_bytes());
    part(patient.to_string().as_bytes());
    part(document.title.as_bytes());
    for tag in &document.tags {
        part(tag.as_bytes());
    }
    part(document.file_name.as_deref().unwrap_or_default().as_bytes());
    format!("folder-{}", hex::encode(key.finalize()))
}

async fn send_document(
    engine: &SyncEngine,
    shared: &Shared,
    name: &str,
    path: &Path,
    media: DocumentMedia,
    seen: Seen,
) -> Outcome {
    if seen.len > DOCUMENT_MAX {
        return Outcome::new(
            ImportState::Failed,
            format!("a document may be at most {} MiB", DOCUMENT_MAX >> 20),
        );
    }
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) => {
            return Outcome::new(ImportState::Failed, format!("the file cannot be read: {e}"));
        }
    };
    let (bytes, sha) = tokio::task::spawn_blocking(move || {
        let sha = hex::encode(Sha256::digest(&bytes));
        (bytes, sha)
    })
    .await
    .unwrap_or_default();
    // The patient the user chose goes with the file they were shown, not with a new one
    // written under its name since.
    let assigned = {
        let mut files = shared.files();
        files.hashes.insert(name.to_owned(), sha.clone());
        match files.assigned.get(name) {
            Some((a, for_sha)) if *for_sha == sha => Some(a.clone()),
            Some(_) => {
                files.assigned.remove(name);
                None
            }
            None => None,
        }
    };
    let (patient, document) = match assigned {
        Some(a) => (
            a.patient_id,
            NewDocument {
                title: a.title,
                tags: a.tags,
                file_name: Some(name.to_owned()),
            },
        ),
        None => {
            let named = NamedDocument::parse(name);
            let needs = |detail: String| Outcome {
                title: Some(named.title.clone()),
                ..Outcome::new(ImportState::NeedsPatient, detail)
            };
            let Some(card) = &named.card_number else {
                return needs("the file's name gives no card number: choose the patient".into());
            };
            match engine.patient_by_card(card).await {
                Ok(Some(p)) => (
                    p.id,
                    NewDocument {
                        title: named.title.clone(),
                        tags: named.tags.clone(),
                        file_name: Some(name.to_owned()),
                    },
                ),
                Ok(None) => {
                    return needs(format!("no patient has card {card}: choose the patient"));
                }
                Err(e) => return sending_failed(&e),
            }
        }
    };
    let key = filing_key(&sha, patient, &document);
    let title = document.title.clone();
    match engine
        .add_document(patient, &document, media, bytes, &key)
        .await
    {
        Ok(doc) => {
            let mut changes = Changes::of(ChangeKind::Document);
            changes.ids.insert(patient.to_string());
            engine.tell(changes);
            let version = doc.current().map_or(1, |v| v.version);
            Outcome {
                title: Some(title),
                patient_id: Some(patient),
                ..moved_aside(shared, path, seen, &format!("filed as version {version}")).await
            }
        }
        Err(e) => Outcome {
            title: Some(title),
            patient_id: Some(patient),
            ..sending_failed(&e)
        },
    }
}

/// Moves an acknowledged file into `imported/` (under a free name), unless it was replaced
/// while it was sent: then the new one is sent, and the old one is the node's already.
async fn moved_aside(shared: &Shared, path: &Path, seen: Seen, what: &str) -> Outcome {
    let folder = shared.folder.clone();
    let path = path.to_owned();
    let moved = tokio::task::spawn_blocking(move || {
        let now = std::fs::metadata(&path).map(|m| Seen::of(&m))?;
        if now != seen {
            return Ok(None);
        }
        move_aside(&folder, &path).map(Some)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    match moved {
        Ok(Some(to)) => Outcome::new(
            ImportState::Imported,
            format!("{what}; moved to {IMPORTED}/{to}"),
        ),
        Ok(None) => Outcome {
            again: true,
            ..Outcome::new(
                ImportState::Sending,
                format!("{what}, but the file changed meanwhile: sending the new one"),
            )
        },
        // The node has it; a second sending changes nothing there.
        Err(e) => Outcome::new(
            ImportState::Imported,
            format!("{what}, but it could not be moved aside: {e}"),
        ),
    }
}

fn move_aside(folder: &Path, path: &Path) -> std::io::Result<String> {
    let aside = folder.join(IMPORTED);
    std::fs::create_dir_all(&aside)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    for n in 1.. {
        let candidate = if n == 1 {
            name.clone()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let to = aside.join(&candidate);
        // A link fails where the name is taken, so nothing there is ever overwritten (two
        // workstations may watch one folder); a file system without links gets a rename.
        match std::fs::hard_link(path, &to) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !to.exists() => {
                std::fs::rename(path, &to)?;
                return Ok(candidate);
            }
            Err(_) => continue,
        }
    }
    unreachable!("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_gives_card_title_and_tags() {
        let n = NamedDocument::parse("0012345678 Discharge letter #GP #cardiology.pdf");
        assert_eq!(n.card_number.as_deref(), Some("0012345678"));
        assert_eq!(n.title, "Discharge letter");
        assert_eq!(n.tags, vec!["GP", "cardiology"]);
        let n = NamedDocument::parse("0012345678_Referral_letter.png");
        assert_eq!(n.card_number.as_deref(), Some("0012345678"));
        assert_eq!(n.title, "Referral letter");
        // A name without a card number is all title; a word of capitals alone is no card.
        let n = NamedDocument::parse("scan 0001.pdf");
        assert_eq!(n.card_number, None);
        assert_eq!(n.title, "scan 0001");
        let n = NamedDocument::parse("REFERRAL.pdf");
        assert_eq!(n.card_number, None);
        assert_eq!(n.title, "REFERRAL");
        // A card number alone: the title is the name.
        let n = NamedDocument::parse("0012345678.pdf");
        assert_eq!(n.card_number.as_deref(), Some("0012345678"));
        assert_eq!(n.title, "0012345678");
    }

    #[test]
    fn files_are_known_by_their_bytes() {
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM\x02\x00");
        assert_eq!(kind_of(&dicom).0, FileKind::Dicom);
        assert_eq!(
            kind_of(b"%PDF-1.7"),
            (FileKind::Document, Some(DocumentMedia::Pdf))
        );
        assert_eq!(kind_of(b"hello").0, FileKind::Other);
    }

    #[test]
    fn temporary_and_hidden_files_wait_for_their_real_name() {
        assert!(importable("scan.pdf"));
        assert!(!importable(".scan.pdf.swp"));
        assert!(!importable("scan.pdf.part"));
        assert!(!importable("scan.PDF.crdownload"));
        assert!(!importable("scan.pdf~"));
    }

    #[test]
    fn a_file_moved_aside_never_overwrites_one_there() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            std::fs::write(dir.path().join("a.pdf"), b"%PDF").unwrap();
            move_aside(dir.path(), &dir.path().join("a.pdf")).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join(IMPORTED))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["a (2).pdf", "a (3).pdf", "a.pdf"]);
        assert!(!dir.path().join("a.pdf").exists());
    }
}

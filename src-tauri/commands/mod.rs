//! The commands the web UI calls. Each translates its arguments into a call on the client
//! core and the core's answer (or error) into what the UI shows; none decides anything.
//! `staff` and `kiosk` hold each window's own commands; the capabilities in
//! `src-tauri/capabilities` say which window may call which.

#[macro_use]
mod registry;

pub mod access;
pub mod admin;
pub mod documents;
pub mod exchange;
pub mod imaging;
pub mod ipc;
pub mod kiosk;
pub mod records;
pub mod reports;
pub mod staff;
pub mod status;
pub mod transfer;
pub mod workstation;

use carebridge_core::protocol::Problem;
use carebridge_core::protocol::appointment::BookAppointment;
use carebridge_core::protocol::patient::{NewPatient, Patient};
use carebridge_core::protocol::practitioner::Role;
use carebridge_core::protocol::session::Principal;
use carebridge_core::session::{self, SignedIn};
use carebridge_core::store::LocalStore;
use carebridge_core::{Changes, ClientCode, CoreError, ErrorCode, Profiles, SyncEngine, Unlock};
use chrono_tz::Tz;
use serde::Serialize;
use tauri::{AppHandle, Emitter};

use crate::AppState;

/// Why a command failed: a stable code the UI switches on (and shows its own text for), a
/// sentence to fall back on, and the node's problem when the node refused.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct CommandError {
    /// What went wrong: the node's problem code, or the client's own (see `ErrorCode`).
    pub code: ErrorCode,
    /// A sentence for the user, in English, for a code the UI has no text of its own for.
    pub message: String,
    /// The node's problem when the node refused: its `detail`, and what it carries to act on
    /// (a possible duplicate's candidates, a 412's current state, the allowed actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problem: Option<Box<Problem>>,
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            problem: e.problem().cloned().map(Box::new),
        }
    }
}

impl CommandError {
    /// A failure of the app's own (not the core's or the node's).
    pub(crate) fn own(code: ClientCode, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            problem: None,
        }
    }

    fn not_signed_in() -> Self {
        CoreError::SignedOut.into()
    }

    fn locked() -> Self {
        Self::own(
            ClientCode::Locked,
            "the session is locked: sign in again to continue",
        )
    }
}

/// Who is signed in, for the UI's header and to pick the views.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignedInView {
    /// The user's or the kiosk's name.
    pub display_name: String,
    /// A staff user's role; `null` for a kiosk.
    pub role: Option<Role>,
    /// A staff user's id (a doctor's own schedule); `null` for a kiosk.
    pub user_id: Option<String>,
    /// The node's name.
    pub node: String,
    /// The node's time zone.
    pub time_zone: String,
    /// `hospital` or `insurer`: which views a role gets.
    pub node_kind: String,
    /// Locked after inactivity (or by the user): nothing is shown until they sign in again.
    pub locked: bool,
}

pub(crate) fn view(s: &SignedIn, locked: bool) -> SignedInView {
    let (display_name, role, user_id) = match s.principal() {
        Principal::Staff {
            display_name,
            role,
            id,
        } => (display_name.clone(), Some(*role), Some(id.to_string())),
        Principal::Kiosk { label, .. } => (label.clone(), None, None),
    };
    SignedInView {
        display_name,
        role,
        user_id,
        node: s.session.node.clone(),
        // The zone the core computes in (UTC for a name it does not know), so the UI agrees.
        time_zone: s.time_zone().name().to_owned(),
        node_kind: s.session.node_kind.clone(),
        locked,
    }
}

/// A write the node refused, with its reason, until the user dismisses it.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct RefusedWrite {
    /// Its place in the outbox (to dismiss it).
    #[ts(type = "number")]
    pub seq: i64,
    /// The kind of record: `appointment` or `patient`.
    pub kind: String,
    /// The record's id.
    pub record_id: String,
    /// Why: the node's problem code (the UI shows its own text for it).
    pub code: ErrorCode,
    /// The node's reason, in its words (to fall back on).
    pub reason: String,
    /// The node's problem, when it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problem: Option<Problem>,
    /// For a refused booking: what was asked, to offer it again at another time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub booking: Option<BookAppointment>,
    /// For a refused registration: what was asked, to register again once confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub registration: Option<NewPatient>,
    /// For a `possible-duplicate`: the patients it may be.
    pub candidates: Vec<Patient>,
}

/// Tells this process's window whenever the connection state or what the user sees changes.
/// Only that window: the staff and kiosk processes never share one.
fn forward(
    app: AppHandle,
    window: &'static str,
    engine: &SyncEngine,
) -> Vec<tauri::async_runtime::JoinHandle<()>> {
    let mut status = engine.status();
    let to_status = app.clone();
    let statuses = tauri::async_runtime::spawn(async move {
        loop {
            let now = *status.borrow_and_update();
            let _ = to_status.emit_to(window, "status", now);
            if status.changed().await.is_err() {
                return;
            }
        }
    });
    let mut notices = engine.changes();
    let changes = tauri::async_runtime::spawn(async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        loop {
            let mut changes = match notices.recv().await {
                Ok(c) => Changes::clone(&c),
                Err(RecvError::Lagged(_)) => Changes::everything(),
                Err(RecvError::Closed) => return,
            };
            // What else is already waiting goes in the same event: one re-read for a burst.
            loop {
                match notices.try_recv() {
                    Ok(c) => changes.merge(Changes::clone(&c)),
                    Err(TryRecvError::Lagged(_)) => changes = Changes::everything(),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if tracing::enabled!(target: carebridge_core::TIMELINE, tracing::Level::TRACE) {
                for id in &changes.ids {
                    tracing::trace!(target: carebridge_core::TIMELINE, mark = "app.changed", id = %id);
                }
            }
            let _ = app.emit_to(window, "changed", changes);
        }
    });
    vec![statuses, changes]
}

/// After the node said yes: stops the previous session's engine (two engines never share a
/// profile), opens the signed-in profile and starts syncing it. The caller holds
/// `state.signing_in`, so sign-ins happen one at a time.
pub(crate) async fn start_session(
    app: AppHandle,
    state: &AppState,
    signed_in: SignedIn,
) -> Result<SignedInView, CommandError> {
    end_session(state).await;
    let profiles = Profiles::in_os_data_dir()?;
    if state.mode == crate::launch::Mode::Staff {
        if let Ok(mut last) = state.last_node.lock() {
            *last = Some(signed_in.node_url.clone());
        }
        if let Err(e) = profiles.remember_node(&signed_in.node_url) {
            tracing::warn!(error = %e, "the node could not be remembered for the next sign-in");
        }
    }
    // A kiosk shows the doctor's answer on its own screen; a desktop notification there would
    // show it to whoever stands at the kiosk next.
    let notices: std::sync::Arc<dyn carebridge_core::Notifier> = match state.mode {
        crate::launch::Mode::Staff => std::sync::Arc::new(crate::notices::DesktopNotices::new(
            signed_in.time_zone(),
            state.language.clone(),
            state.locked.clone(),
        )),
        crate::launch::Mode::Kiosk { .. } => std::sync::Arc::new(crate::notices::NoNotices),
    };
    let engine = session::start(&profiles, &Unlock::from_env(), signed_in.clone(), notices).await?;
    *state.forwarders.lock().await = forward(app, state.mode.window(), &engine);
    *state.engine.lock().await = Some(std::sync::Arc::new(engine));
    workstation::watch_folder(state).await;
    state
        .locked
        .store(false, std::sync::atomic::Ordering::SeqCst);
    Ok(view(&signed_in, false))
}

/// Stops the current session's engine, if any, and ends its token on the node (best effort).
/// Returns its store, for the caller to wipe or keep.
pub(crate) async fn end_session(state: &AppState) -> Option<LocalStore> {
    // The watch ends first: its files wait in the folder for the next session.
    *state.folder_import.lock().await = (None, None);
    let old = state.engine.lock().await.take();
    for task in std::mem::take(&mut *state.forwarders.lock().await) {
        task.abort();
    }
    let old = old?;
    let store = old.store().clone();
    // Stopped at once even while a command still holds it; awaited when this is the last hold,
    // so two engines never share a profile.
    old.stop();
    if let Ok(old) = std::sync::Arc::try_unwrap(old) {
        old.shutdown().await;
    }
    if let Err(e) = session::sign_out(&state.http, &store).await {
        tracing::warn!(error = %e, "the previous session could not be ended");
    }
    Some(store)
}

/// What a query needs from the engine, taken without holding the engine's lock while it runs.
struct Reader {
    store: LocalStore,
    time_zone: Tz,
    today: chrono::NaiveDate,
    principal: Principal,
}

async fn reader(state: &AppState) -> Result<Reader, CommandError> {
    unlocked(state)?;
    let guard = state.engine.lock().await;
    let engine = guard.as_ref().ok_or_else(CommandError::not_signed_in)?;
    Ok(Reader {
        store: engine.store().clone(),
        time_zone: engine.time_zone(),
        today: engine.today(),
        principal: engine.principal().clone(),
    })
}

/// The signed-in engine, for writes and questions to the node; the app's lock is not held
/// while they run.
async fn engine(state: &AppState) -> Result<std::sync::Arc<SyncEngine>, CommandError> {
    unlocked(state)?;
    state
        .engine
        .lock()
        .await
        .clone()
        .ok_or_else(CommandError::not_signed_in)
}

/// Refuses while the session is locked: a locked screen shows and changes nothing.
fn unlocked(state: &AppState) -> Result<(), CommandError> {
    if state.locked.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(CommandError::locked());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use carebridge_core::protocol::problem::ProblemType;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_node_refusal_reaches_the_ui_with_its_code_and_problem() {
        let mut p = Problem::new(ProblemType::SlotTaken, Some("Dr. X is busy then".into()));
        p.current = Some(json!({ "id": "a" }));
        let e = CommandError::from(CoreError::Rejected(Box::new(p)));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "slot-taken");
        assert_eq!(v["problem"]["code"], "slot-taken");
        assert_eq!(v["problem"]["detail"], "Dr. X is busy then");
        assert_eq!(v["problem"]["current"], json!({ "id": "a" }));
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("Dr. X is busy then")
        );
    }

    fn app_state(locked: bool) -> AppState {
        AppState {
            mode: crate::launch::Mode::Staff,
            engine: tokio::sync::Mutex::new(None),
            forwarders: tokio::sync::Mutex::new(Vec::new()),
            folder_import: tokio::sync::Mutex::new((None, None)),
            signing_in: tokio::sync::Mutex::new(()),
            http: carebridge_core::session::Http::new(),
            embedded: tokio::sync::watch::channel(crate::Embedded::None).1,
            locked: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(locked)),
            language: std::sync::Arc::new(crate::messages::SharedLanguage::new(
                crate::messages::Language::English,
            )),
            last_node: std::sync::Mutex::new(None),
        }
    }

    fn code_of<T>(r: Result<T, CommandError>) -> serde_json::Value {
        match r {
            Ok(_) => serde_json::Value::Null,
            Err(e) => serde_json::to_value(&e).unwrap()["code"].clone(),
        }
    }

    /// Every command that reads or changes records takes the store through `reader` or the
    /// engine through `engine`: while the session is locked both refuse, before anything else.
    #[tokio::test]
    async fn a_locked_session_refuses_reads_and_writes_until_it_is_unlocked() {
        let state = app_state(true);
        assert_eq!(code_of(reader(&state).await), "locked");
        assert_eq!(code_of(engine(&state).await), "locked");
        // Unlocked, the same calls get past the lock (and find no one signed in here).
        state
            .locked
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(code_of(reader(&state).await), "signed-out");
        assert_eq!(code_of(engine(&state).await), "signed-out");
    }

    #[test]
    fn the_apps_own_failures_have_their_codes_and_no_problem() {
        let v = serde_json::to_value(CommandError::locked()).unwrap();
        assert_eq!(
            v,
            json!({ "code": "locked", "message": "the session is locked: sign in again to continue" })
        );
        let v = serde_json::to_value(CommandError::not_signed_in()).unwrap();
        assert_eq!(v["code"], "signed-out");
        assert!(v.get("problem").is_none());
    }
}

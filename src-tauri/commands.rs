//! The commands the web UI calls. Each translates its arguments into a call on the client
//! core and the core's answer (or error) into what the UI shows; none decides anything.

use carebridge_core::session::{self, SignedIn};
use carebridge_core::store::AppointmentRow;
use carebridge_core::{CoreError, Profiles, Status, SyncEngine, Unlock};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use crate::AppState;

/// An error as the UI shows it: one sentence, from the core or the node.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct CommandError {
    /// What went wrong, for the user.
    pub message: String,
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        Self {
            message: e.to_string(),
        }
    }
}

/// Who is signed in, for the UI's header.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignedInView {
    /// The user's or the kiosk's name.
    pub display_name: String,
    /// The node's name.
    pub node: String,
    /// The node's time zone.
    pub time_zone: String,
}

fn view(s: &SignedIn) -> SignedInView {
    let display_name = match s.principal() {
        carebridge_core::protocol::session::Principal::Staff { display_name, .. } => {
            display_name.clone()
        }
        carebridge_core::protocol::session::Principal::Kiosk { label, .. } => label.clone(),
    };
    SignedInView {
        display_name,
        node: s.session.node.clone(),
        // The zone the core computes in (UTC for a name it does not know), so the UI agrees.
        time_zone: s.time_zone().name().to_owned(),
    }
}

/// Tells the staff window whenever the connection state or what the user sees changes. Only
/// that window: a kiosk window must never hear of a staff session.
fn forward(app: AppHandle, engine: &SyncEngine) -> Vec<tauri::async_runtime::JoinHandle<()>> {
    let mut status = engine.status();
    let to_status = app.clone();
    let statuses = tauri::async_runtime::spawn(async move {
        loop {
            let now = *status.borrow_and_update();
            let _ = to_status.emit_to("main", "status", now);
            if status.changed().await.is_err() {
                return;
            }
        }
    });
    let mut revision = engine.revision();
    let changes = tauri::async_runtime::spawn(async move {
        while revision.changed().await.is_ok() {
            let _ = app.emit_to("main", "changed", ());
        }
    });
    vec![statuses, changes]
}

/// Signs a staff user in to a node and starts syncing their profile. One sign-in at a time;
/// the previous session's engine is stopped before the new one starts, so two engines never
/// share a profile.
#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    state: State<'_, AppState>,
    node_url: String,
    username: String,
    password: String,
) -> Result<SignedInView, CommandError> {
    let _one_at_a_time = state.signing_in.lock().await;
    let signed_in = session::sign_in_staff(&state.http, &node_url, &username, &password).await?;
    let old = state.engine.lock().await.take();
    for task in std::mem::take(&mut *state.forwarders.lock().await) {
        task.abort();
    }
    if let Some(old) = old {
        old.shutdown().await;
    }
    let profiles = Profiles::in_os_data_dir()?;
    let notices = std::sync::Arc::new(crate::notices::DesktopNotices::new(signed_in.time_zone()));
    let engine = session::start(&profiles, &Unlock::from_env(), signed_in.clone(), notices).await?;
    *state.forwarders.lock().await = forward(app, &engine);
    *state.engine.lock().await = Some(engine);
    Ok(view(&signed_in))
}

/// Who is signed in, if anyone (the window asks when it loads, e.g. after a reload).
#[tauri::command]
pub async fn current_session(
    state: State<'_, AppState>,
) -> Result<Option<SignedInView>, CommandError> {
    Ok(state
        .engine
        .lock()
        .await
        .as_ref()
        .filter(|e| e.status().borrow().link != carebridge_core::Link::SignedOut)
        .map(|e| view(e.signed_in())))
}

/// The connection state and the outbox's counts.
#[tauri::command]
pub async fn connection_status(state: State<'_, AppState>) -> Result<Option<Status>, CommandError> {
    Ok(state
        .engine
        .lock()
        .await
        .as_ref()
        .map(|e| *e.status().borrow()))
}

/// Today's appointments (the node's date), every doctor's, by start time.
#[tauri::command]
pub async fn appointments_today(
    state: State<'_, AppState>,
) -> Result<Vec<AppointmentRow>, CommandError> {
    // The query runs without holding the engine's lock.
    let (store, today, tz) = {
        let guard = state.engine.lock().await;
        let Some(engine) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        (engine.store().clone(), engine.today(), engine.time_zone())
    };
    Ok(store.appointments_on(today, tz).await?)
}

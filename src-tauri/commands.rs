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
        time_zone: s.session.time_zone.clone(),
    }
}

/// Tells the window whenever the connection state or what the user sees changes.
fn forward(app: AppHandle, engine: &SyncEngine) {
    let mut status = engine.status();
    let to_status = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let now = *status.borrow_and_update();
            let _ = to_status.emit("status", now);
            if status.changed().await.is_err() {
                return;
            }
        }
    });
    let mut revision = engine.revision();
    tauri::async_runtime::spawn(async move {
        while revision.changed().await.is_ok() {
            let _ = app.emit("changed", ());
        }
    });
}

/// Signs a staff user in to a node and starts syncing their profile.
#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    state: State<'_, AppState>,
    node_url: String,
    username: String,
    password: String,
) -> Result<SignedInView, CommandError> {
    let signed_in = session::sign_in_staff(&state.http, &node_url, &username, &password).await?;
    let profiles = Profiles::in_os_data_dir()?;
    let notices = std::sync::Arc::new(crate::notices::DesktopNotices::new(signed_in.time_zone()));
    let engine = session::start(&profiles, &Unlock::from_env(), signed_in.clone(), notices).await?;
    forward(app, &engine);
    if let Some(old) = state.engine.lock().await.replace(engine) {
        old.shutdown().await;
    }
    Ok(view(&signed_in))
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
    let guard = state.engine.lock().await;
    let Some(engine) = guard.as_ref() else {
        return Ok(Vec::new());
    };
    Ok(engine
        .store()
        .appointments_on(engine.today(), engine.time_zone())
        .await?)
}

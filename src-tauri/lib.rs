//! The CareBridge desktop app: the Tauri shell around the client core. The commands
//! ([`commands`]) translate between the web UI and the core; the core decides.

pub mod commands;
pub mod notices;

use carebridge_core::SyncEngine;

/// What the app keeps while it runs.
pub struct AppState {
    /// The signed-in profile's engine, once someone signed in.
    pub engine: tokio::sync::Mutex<Option<SyncEngine>>,
    /// The tasks passing the engine's state on to the window.
    pub forwarders: tokio::sync::Mutex<Vec<tauri::async_runtime::JoinHandle<()>>>,
    /// Held for the whole of a sign-in.
    pub signing_in: tokio::sync::Mutex<()>,
    /// For sign-in.
    pub http: carebridge_core::session::Http,
}

/// Starts the app.
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAREBRIDGE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let state = AppState {
        engine: tokio::sync::Mutex::new(None),
        forwarders: tokio::sync::Mutex::new(Vec::new()),
        signing_in: tokio::sync::Mutex::new(()),
        http: carebridge_core::session::Http::default(),
    };
    let app = tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::sign_in,
            commands::current_session,
            commands::connection_status,
            commands::appointments_today
        ])
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("error: the app could not start: {e}");
        std::process::exit(1);
    }
}

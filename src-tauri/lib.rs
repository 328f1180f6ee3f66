//! The CareBridge desktop app: the Tauri shell around the client core. The commands
//! ([`commands`]) translate between the web UI and the core; the core decides. One program,
//! two modes ([`launch::Mode`]): the staff app, and the patient kiosk.

pub mod commands;
pub mod launch;
pub mod messages;
pub mod notices;

use std::sync::Arc;

use carebridge_core::SyncEngine;
use launch::{Launch, Mode};
use tauri::{Emitter, Manager};
use tokio::sync::watch;

/// The embedded demo node, when this process hosts one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Embedded {
    /// This process hosts none.
    None,
    /// Initialising and seeding.
    Starting,
    /// Listening at this URL.
    Ready(String),
    /// It did not start: why.
    Failed(String),
}

/// What the app keeps while it runs.
pub struct AppState {
    /// Staff or kiosk.
    pub mode: Mode,
    /// The signed-in profile's engine, once someone signed in.
    pub engine: tokio::sync::Mutex<Option<Arc<SyncEngine>>>,
    /// The tasks passing the engine's state on to the window.
    pub forwarders: tokio::sync::Mutex<Vec<tauri::async_runtime::JoinHandle<()>>>,
    /// Held for the whole of a sign-in.
    pub signing_in: tokio::sync::Mutex<()>,
    /// For sign-in.
    pub http: carebridge_core::session::Http,
    /// The embedded node's state.
    pub embedded: watch::Receiver<Embedded>,
    /// The staff session is locked (after inactivity, or by the user).
    pub locked: Arc<std::sync::atomic::AtomicBool>,
    /// The language the UI speaks, for the desktop notifications (the OS locale's at start).
    pub language: Arc<messages::SharedLanguage>,
    /// The watched folder of this workstation (staff only), or why it is not watched.
    pub folder_import:
        tokio::sync::Mutex<(Option<carebridge_workstation::FolderImport>, Option<String>)>,
    /// The node this window last signed in to: after a sign-out its form offers that one,
    /// not whichever node another window on this machine signed in to since.
    pub last_node: std::sync::Mutex<Option<String>>,
}

impl AppState {
    /// The embedded node's URL once it listens (waiting while it starts); `None` if this
    /// process hosts no node or it failed to start.
    pub async fn embedded_node_url(&self) -> Option<String> {
        let mut rx = self.embedded.clone();
        let state = rx
            .wait_for(|e| *e != Embedded::Starting)
            .await
            .map(|e| e.clone())
            .ok()?;
        match state {
            Embedded::Ready(url) => Some(url),
            _ => None,
        }
    }
}

/// The kiosk overlay, applied over `tauri.conf.json` in kiosk mode as a JSON merge patch
/// (RFC 7396), the way Tauri's CLI applies `--config`.
const KIOSK_OVERLAY: &str = include_str!("../tauri.kiosk.conf.json");

fn apply_kiosk_overlay(config: &mut tauri::Config, windowed: bool) -> Result<(), String> {
    let bad = |e: serde_json::Error| format!("tauri.kiosk.conf.json: {e}");
    let overlay: serde_json::Value = serde_json::from_str(KIOSK_OVERLAY).map_err(bad)?;
    let mut merged = serde_json::to_value(&*config).map_err(bad)?;
    json_patch::merge(&mut merged, &overlay);
    if windowed {
        // The demo shows the kiosk beside the staff window.
        if let Some(w) = merged.pointer_mut("/app/windows/0") {
            w["fullscreen"] = false.into();
            w["decorations"] = true.into();
            w["resizable"] = true.into();
            w["x"] = 0.into();
            w["y"] = 0.into();
        }
    }
    *config = serde_json::from_value(merged).map_err(bad)?;
    Ok(())
}

/// The first screen asked for its data: it is on screen and can be used. With
/// `CAREBRIDGE_REPORT_INTERACTIVE` set, says when, once (the start-up benchmark reads it).
pub fn report_interactive() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("CAREBRIDGE_REPORT_INTERACTIVE").is_none() {
        return;
    }
    ONCE.call_once(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        println!("interactive at {ms}");
    });
}

/// Starts the app with the process's arguments.
pub fn run() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer().with_filter(
                tracing_subscriber::EnvFilter::try_from_env("CAREBRIDGE_LOG")
                    .unwrap_or_else(|_| "info".into()),
            ),
        )
        // The core's marks and the embedded node's, for the live-loop benchmark.
        .with(carebridge_server::timeline::layer(&[
            carebridge_core::TIMELINE,
            carebridge_server::TIMELINE,
        ]))
        .try_init();
    let launch = match Launch::parse(std::env::args().skip(1)) {
        Ok(l) => l,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mut context = tauri::generate_context!();
    if let Mode::Kiosk { windowed } = launch.mode
        && let Err(e) = apply_kiosk_overlay(context.config_mut(), windowed)
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let (embedded_tx, embedded) = watch::channel(if launch.demo_dir.is_some() {
        Embedded::Starting
    } else {
        Embedded::None
    });
    let state = AppState {
        mode: launch.mode,
        engine: tokio::sync::Mutex::new(None),
        forwarders: tokio::sync::Mutex::new(Vec::new()),
        folder_import: tokio::sync::Mutex::new((None, None)),
        signing_in: tokio::sync::Mutex::new(()),
        // A node that does not answer must not hold a sign-in or a sign-out for minutes.
        http: carebridge_core::session::Http::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap_or_default(),
        embedded,
        locked: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        language: Arc::new(messages::SharedLanguage::new(messages::Language::from_env())),
        last_node: std::sync::Mutex::new(None),
    };
    let app = tauri::Builder::default()
        .manage(state)
        .setup(move |app| {
            if let Some(half) = launch.half {
                on_half(app.handle(), launch.mode, half);
            } else if launch.demo_dir.is_some() || launch.mode == (Mode::Kiosk { windowed: true }) {
                side_by_side(app.handle(), launch.mode);
            }
            if let Some(dir) = launch.demo_dir.clone() {
                tauri::async_runtime::spawn(host_demo_node(dir, launch.listen, embedded_tx));
            }
            if let Some(file) = launch.kiosk_credentials.clone() {
                tauri::async_runtime::spawn(sign_kiosk_in(app.handle().clone(), file));
            }
            if let Some(file) = launch.staff_credentials.clone() {
                tauri::async_runtime::spawn(sign_staff_in(app.handle().clone(), file));
            }
            Ok(())
        })
        .invoke_handler(commands::ipc::handler())
        .build(context)
        .map(|app| {
            carebridge_workstation::viewer::clear_stale_printouts();
            app.run(|_, event| {
                if let tauri::RunEvent::Exit = event {
                    carebridge_workstation::viewer::remove_printouts();
                }
            });
        });
    if let Err(e) = app {
        eprintln!("error: the app could not start: {e}");
        std::process::exit(1);
    }
}

/// A window on one half of the screen (the exchange demo's two staff windows).
fn on_half(app: &tauri::AppHandle, mode: Mode, half: launch::Half) {
    let Some(window) = app.get_webview_window(mode.window()) else {
        return;
    };
    let Ok(Some(monitor)) = window.primary_monitor() else {
        return;
    };
    let screen = monitor.size();
    let width = screen.width / 2;
    let x = match half {
        launch::Half::Left => 0,
        launch::Half::Right => width,
    };
    let _ = window.set_position(tauri::PhysicalPosition::new(x, 0));
    let _ = window.set_size(tauri::PhysicalSize::new(
        width,
        screen.height.saturating_sub(60),
    ));
}

/// The demo's two windows share the screen: the staff app on the left, the kiosk on the right.
fn side_by_side(app: &tauri::AppHandle, mode: Mode) {
    let Some(window) = app.get_webview_window(mode.window()) else {
        return;
    };
    let Ok(Some(monitor)) = window.primary_monitor() else {
        return;
    };
    let screen = monitor.size();
    let staff_width = screen.width * 3 / 5;
    let (x, width) = match mode {
        Mode::Staff => (0, staff_width),
        Mode::Kiosk { .. } => (staff_width, screen.width - staff_width),
    };
    let _ = window.set_position(tauri::PhysicalPosition::new(x, 0));
    let _ = window.set_size(tauri::PhysicalSize::new(
        width,
        screen.height.saturating_sub(60),
    ));
}

/// Hosts a fresh demo node in this process (the staff app of `make run`).
async fn host_demo_node(
    dir: std::path::PathBuf,
    listen: std::net::SocketAddr,
    tx: watch::Sender<Embedded>,
) {
    let size = carebridge_server::demo::DemoSize {
        doctors: 4,
        days: 14,
        patients: 200,
        bench: false,
        appointments: None,
    };
    let zone = std::env::var("CAREBRIDGE_DEMO_TZ").unwrap_or_else(|_| "Europe/Amsterdam".into());
    match carebridge_server::demo::serve_embedded(&dir, listen, &zone, &size).await {
        Ok(demo) => {
            tracing::info!(
                url = %demo.credentials.url,
                credentials = %demo.credentials_path.display(),
                "the embedded demo node is ready"
            );
            // The same line the standalone node prints: scripts wait for it.
            println!("carebridge-node listening on {}", demo.credentials.url);
            // The node lives on in its serving task for as long as the app runs.
            let _ = tx.send(Embedded::Ready(demo.credentials.url));
        }
        Err(e) => {
            tracing::error!(error = %e, "the embedded demo node did not start");
            let _ = tx.send(Embedded::Failed(e.to_string()));
        }
    }
}

/// The device in a demo's credentials file.
#[derive(serde::Deserialize)]
struct DemoKiosk {
    url: String,
    kiosk: DemoDevice,
}

#[derive(serde::Deserialize)]
struct DemoDevice {
    device_id: carebridge_core::protocol::KioskDeviceId,
    secret: String,
}

/// Reads a demo's credentials file and signs in with it, retrying while the file or the node
/// is not there yet (a demo starts the nodes and the windows at the same time), then tells the
/// window. `sign_in` does one attempt with the file's text.
async fn sign_in_from_file<F, Fut>(
    app: tauri::AppHandle,
    mode: Mode,
    file: std::path::PathBuf,
    sign_in: F,
) where
    F: Fn(tauri::AppHandle, String) -> Fut,
    Fut: std::future::Future<Output = Result<commands::SignedInView, String>>,
{
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        let attempt = async {
            let text = tokio::fs::read_to_string(&file)
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            sign_in(app.clone(), text).await
        };
        match attempt.await {
            Ok(view) => {
                let _ = app.emit_to(mode.window(), "session", view);
                return;
            }
            Err(e) if tokio::time::Instant::now() < give_up => {
                tracing::debug!(error = %e, "cannot sign in yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not sign in");
                return;
            }
        }
    }
}

/// Signs the kiosk in with the device in a demo's credentials file.
async fn sign_kiosk_in(app: tauri::AppHandle, file: std::path::PathBuf) {
    let mode = Mode::Kiosk { windowed: false };
    sign_in_from_file(app, mode, file, |app, text| async move {
        let demo: DemoKiosk = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let state = app.state::<AppState>();
        let _one_at_a_time = state.signing_in.lock().await;
        let device = carebridge_core::protocol::session::KioskSignIn {
            device_id: demo.kiosk.device_id,
            secret: demo.kiosk.secret,
        };
        let signed_in = carebridge_core::session::sign_in_kiosk(&state.http, &demo.url, device)
            .await
            .map_err(|e| e.to_string())?;
        commands::start_session(app.clone(), &state, signed_in)
            .await
            .map_err(|e| e.message)
    })
    .await;
}

/// A staff sign-in file (`--staff-credentials`): a demo's doctor or reviewer.
#[derive(serde::Deserialize)]
struct StaffCredentials {
    url: String,
    username: String,
    password: String,
}

/// Signs the staff app in with a credentials file (`--staff-credentials`).
async fn sign_staff_in(app: tauri::AppHandle, file: std::path::PathBuf) {
    sign_in_from_file(app, Mode::Staff, file, |app, text| async move {
        let creds: StaffCredentials = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let state = app.state::<AppState>();
        let _one_at_a_time = state.signing_in.lock().await;
        let signed_in = carebridge_core::session::sign_in_staff(
            &state.http,
            &creds.url,
            &creds.username,
            &creds.password,
        )
        .await
        .map_err(|e| e.to_string())?;
        let view = commands::start_session(app.clone(), &state, signed_in)
            .await
            .map_err(|e| e.message)?;
        if let Some(engine) = state.engine.lock().await.clone()
            && let Err(e) = engine.store().keep_unlock_password(&creds.password).await
        {
            tracing::warn!(error = %e, "the session can be unlocked only through the node");
        }
        Ok(view)
    })
    .await;
}

//! Tauri's build step, with the app's commands declared so that only the capabilities that name
//! them can call them (without the list, every window could call every command).

/// Every command the app registers. A window can call one only if its capability allows it.
const COMMANDS: &[&str] = &[
    "sign_in",
    "current_session",
    "connection_status",
    "appointments_today",
];

fn main() {
    // tauri-build watches its default capabilities folder only: say what ours is.
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}

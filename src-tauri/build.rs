//! Tauri's build step, with the app's commands declared so that only the capabilities that name
//! them can call them (without the list, every window could call every command).

/// Every command the app registers. A window can call one only if its capability allows it.
const COMMANDS: &[&str] = &["sign_in", "connection_status", "appointments_today"];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}

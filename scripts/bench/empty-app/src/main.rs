//! An empty one-window Tauri app: the page calls `ready` once loaded, which prints the time,
//! so the benchmark can compare the CareBridge app's start-up and memory with this floor.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The page is loaded and has called its first command.
#[tauri::command]
fn ready() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    println!("interactive at {ms}");
}

fn main() {
    let app = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![ready])
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

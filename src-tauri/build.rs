//! Tauri's build step. The app's commands come from `commands/registry.rs`: they are declared
//! to Tauri (without the list, every window could call every command), and each window's
//! capability file must allow exactly the commands the registry gives that window.

use std::collections::BTreeSet;
use std::path::Path;

include!("commands/registry.rs");

/// The registry read for the build: each command's name and the windows that may call it.
macro_rules! manifest {
    ($( $module:ident :: $name:ident [$($window:ident),+] $(with $app:ident)? ( $($arg:ident : $ty:ty),* ) -> $ret:ty ; )*) => {
        /// Every command's name.
        const COMMAND_NAMES: &[&str] = &[ $( stringify!($name) ),* ];
        /// Every command, with the windows that may call it.
        const COMMANDS: &[(&str, &[&str])] = &[ $( (stringify!($name), &[$(stringify!($window)),+]) ),* ];
    };
}

with_commands!(manifest);

const CAPABILITIES: &str = "src-tauri/capabilities";

fn main() {
    // tauri-build watches its default capabilities folder only: say what ours is.
    println!("cargo:rerun-if-changed={CAPABILITIES}");
    println!("cargo:rerun-if-changed=src-tauri/commands/registry.rs");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    println!("cargo:rerun-if-changed=tauri.kiosk.conf.json");
    if let Err(e) = check_capabilities(Path::new(CAPABILITIES)) {
        println!("cargo:warning={e}");
        std::process::exit(1);
    }
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMAND_NAMES));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}

/// Each capability file allows its windows exactly the registry's commands for them (Tauri's
/// `allow-<command>` permissions; other plugins' permissions are the file's own business).
fn check_capabilities(dir: &Path) -> Result<(), String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut windows_seen = BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let strings = |key: &str| -> BTreeSet<String> {
            json[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let windows = strings("windows");
        let allowed: BTreeSet<String> = strings("permissions")
            .into_iter()
            .filter(|p| p.starts_with("allow-"))
            .collect();
        let wanted: BTreeSet<String> = COMMANDS
            .iter()
            .filter(|(_, ws)| ws.iter().any(|w| windows.contains(*w)))
            .map(|(name, _)| format!("allow-{}", name.replace('_', "-")))
            .collect();
        if allowed != wanted {
            let missing: Vec<_> = wanted.difference(&allowed).collect();
            let extra: Vec<_> = allowed.difference(&wanted).collect();
            return Err(format!(
                "{} does not match src-tauri/commands/registry.rs for its windows {windows:?}: \
                 missing {missing:?}, not in the registry for these windows {extra:?}",
                file.display()
            ));
        }
        windows_seen.extend(windows);
    }
    for (name, ws) in COMMANDS {
        if let Some(w) = ws.iter().find(|w| !windows_seen.contains(**w)) {
            return Err(format!(
                "the command {name} is given to the window {w}, which no capability file names"
            ));
        }
    }
    Ok(())
}

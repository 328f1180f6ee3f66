//! The system viewer, where no printer is chosen: the file is kept in a folder only this user
//! can read, for as long as a viewer needs to open it, and the viewer is started on it. Such a
//! printout is a record in clear, so it is removed after [`PRINTOUT_KEPT`], when the app ends,
//! and at the next start if the app did not end cleanly.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a printout is kept for its viewer.
pub const PRINTOUT_KEPT: Duration = Duration::from_secs(10 * 60);

/// This process's printouts: under the user's folder (one user's apart from another's on a
/// shared machine), in a folder of this process's own, which is removed when the app ends.
pub fn printouts_dir() -> PathBuf {
    std::env::temp_dir()
        .join(format!("carebridge-print-{}", whoami()))
        .join(std::process::id().to_string())
}

/// Removes the printouts this process made; run when the app ends.
pub fn remove_printouts() {
    let _ = std::fs::remove_dir_all(printouts_dir());
}

/// Removes what earlier runs that did not end cleanly left in the user's printouts folder:
/// any file older than the time a viewer needs, and the folders they leave empty.
pub fn clear_stale_printouts() {
    if let Some(user_dir) = printouts_dir().parent() {
        let _ = clear_printouts_in(user_dir, PRINTOUT_KEPT, SystemTime::now());
    }
}

/// Keeps `bytes` as the printout `name` (in this process's folder, readable by this user
/// only), after removing this process's printouts older than [`PRINTOUT_KEPT`]; returns its
/// path. Blocking: run it off the async threads.
pub fn keep_printout(name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = printouts_dir();
    let _ = clear_printouts_in(&dir, PRINTOUT_KEPT, SystemTime::now());
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    // Only the name's last part: a name never leads out of the folder.
    let name = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "printout".into());
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Removes the files under `dir` last written more than `kept` before `now`, and the folders
/// that leaves empty (never `dir` itself). Returns how many files went.
pub fn clear_printouts_in(dir: &Path, kept: Duration, now: SystemTime) -> std::io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            removed += clear_printouts_in(&entry.path(), kept, now)?;
            // Only succeeds when it is empty.
            let _ = std::fs::remove_dir(entry.path());
        } else {
            let written = meta.modified()?;
            if now.duration_since(written).unwrap_or_default() > kept {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The user's name, to keep one user's printouts apart from another's on a shared machine.
fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// Starts the desktop's default program for `target` (a PDF viewer for a file; a browser for
/// an address), without waiting for it. Answers whether one started.
pub fn open_externally(target: &Path) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped off the async threads: the viewer may run for as long as it is open.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "no viewer could be started");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printouts_older_than_the_viewers_time_are_removed_and_newer_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let old_run = root.path().join("1111");
        let this_run = root.path().join("2222");
        std::fs::create_dir_all(&old_run).unwrap();
        std::fs::create_dir_all(&this_run).unwrap();
        std::fs::write(old_run.join("report-a.pdf"), b"%PDF").unwrap();
        std::fs::write(this_run.join("report-b.pdf"), b"%PDF").unwrap();
        // An hour on, both are stale.
        let later = SystemTime::now() + Duration::from_secs(3600);
        let kept = Duration::from_secs(600);
        assert_eq!(
            clear_printouts_in(root.path(), kept, SystemTime::now()).unwrap(),
            0
        );
        assert!(this_run.join("report-b.pdf").exists());
        assert_eq!(clear_printouts_in(root.path(), kept, later).unwrap(), 2);
        assert!(!old_run.exists(), "an emptied run folder goes too");
        assert!(!this_run.exists());
        assert!(root.path().exists(), "the user's folder stays");
    }

    #[test]
    fn a_printout_name_never_leads_out_of_its_folder() {
        let path = keep_printout("../../etc/evil.pdf", b"%PDF").unwrap();
        assert_eq!(path.parent().unwrap(), printouts_dir());
        assert_eq!(path.file_name().unwrap(), "evil.pdf");
        std::fs::remove_file(path).unwrap();
    }
}

//! This workstation's settings (the folder it watches, the printer it prints to), whoever
//! signs in at it: a small JSON file beside the profiles. No patient data is in it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the profiles' folder.
const FILE: &str = "workstation.json";

/// How this workstation imports and prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct WorkstationSettings {
    /// The folder whose files go to the node (none: no import).
    #[cfg_attr(feature = "ts", ts(optional))]
    pub import_folder: Option<String>,
    /// The CUPS printer reports and documents go to (none: the system viewer).
    #[cfg_attr(feature = "ts", ts(optional))]
    pub printer: Option<String>,
}

impl WorkstationSettings {
    fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The settings kept in `dir`; the defaults where there are none (or they do not read).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Keeps the settings in `dir`, whole or not at all (written aside, then renamed).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, Self::path(dir))
    }

    /// Blank entries as none.
    pub fn cleaned(mut self) -> Self {
        for v in [&mut self.import_folder, &mut self.printer] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            } else if let Some(s) = v {
                *s = s.trim().to_owned();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_kept_and_read_back_and_default_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            WorkstationSettings::load(dir.path()),
            WorkstationSettings::default()
        );
        let s = WorkstationSettings {
            import_folder: Some("/srv/scans".into()),
            printer: Some("ward-printer".into()),
        };
        s.save(dir.path()).unwrap();
        assert_eq!(WorkstationSettings::load(dir.path()), s);
        let blank = WorkstationSettings {
            import_folder: Some("  ".into()),
            printer: Some(" ward ".into()),
        }
        .cleaned();
        assert_eq!(blank.import_folder, None);
        assert_eq!(blank.printer.as_deref(), Some("ward"));
    }
}

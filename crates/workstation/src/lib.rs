//! A CareBridge workstation's local duties, beside the client core: a watched folder whose
//! files go to the node ([`folder`]), printing through CUPS ([`printing`]) with the system
//! viewer as the fallback ([`viewer`]), and this workstation's settings for them
//! ([`settings`]). Nothing here knows of Tauri.

pub mod folder;
pub mod printing;
pub mod settings;
pub mod viewer;

pub use folder::{FolderImport, ImportAssignment, ImportFile, ImportState};
pub use printing::{Cups, PrintError, PrintJob};
pub use settings::WorkstationSettings;

//! The CareBridge desktop app (staff and kiosk builds).
//!
//! A skeleton for now: the app, its Tauri shell and its web UI arrive with the desktop-app
//! issue. It already links the client core so that the dependency direction
//! (`app → core → protocol`) is fixed from the start.

pub use carebridge_core as core;

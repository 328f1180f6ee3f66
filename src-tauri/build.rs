//! Tauri's build step, with the app's commands declared so that only the capabilities that name
//! them can call them (without the list, every window could call every command).

/// Every command the app registers. A window can call one only if its capability allows it.
const COMMANDS: &[&str] = &[
    // Both windows.
    "current_session",
    "lock",
    "connection_status",
    "refused_writes",
    "dismiss_refused",
    // Staff.
    "sign_in",
    "sign_out",
    "unlock",
    "sign_in_defaults",
    "appointments_today",
    "appointments_between",
    "doctor_day",
    "waiting_bookings",
    "practitioners",
    "slots",
    "search",
    "patient_page",
    "register_patient",
    "book",
    "reschedule",
    "act",
    // Admin (staff window).
    "staff_accounts",
    "create_staff_account",
    "update_staff_account",
    "kiosk_devices",
    "register_kiosk",
    "revoke_kiosk",
    "audit_trail",
    // Reports (doctors).
    "patient_reports",
    "recent_reports",
    "new_report",
    "report_action",
    "report_revisions",
    "print_report",
    // Exchanges with peers (doctors, admins, reviewers, every staff role for updates).
    "peers",
    "consents",
    "record_consent",
    "withdraw_consent",
    "send_reports",
    "transmissions",
    "received_reports",
    "admin_updates",
    "send_admin_update",
    "acknowledge_update",
    // Kiosk.
    "kiosk_sign_in",
    "kiosk_identify",
    "kiosk_doctors",
    "kiosk_slots",
    "kiosk_book",
    "kiosk_booking",
    "kiosk_check_in",
];

fn main() {
    // tauri-build watches its default capabilities folder only: say what ours is.
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    println!("cargo:rerun-if-changed=tauri.kiosk.conf.json");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}

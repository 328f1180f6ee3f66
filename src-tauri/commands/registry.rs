// The one list of the app's commands. Read three ways, so that nothing about a command is
// written twice:
// - `build.rs` reads the names and windows: the app manifest (a command not listed cannot be
//   called at all) and a check that each window's capability file allows exactly its commands;
// - `commands::ipc` reads everything: the invoke handler and one IPC entry point per command,
//   which the compiler checks against the command's implementation (argument and result types);
// - a test of `commands::ipc` writes the UI's typed wrappers (`ui/src/bindings/commands.ts`),
//   which `make test` requires to be committed as generated.
//
// One entry: `module::name [windows] with app (argument: Type, …) -> Answer;` where `module` is
// under `commands`, the windows are `main` (staff) and `kiosk`, the optional `with app` hands the
// command the app handle too, and `Answer` is what it answers on success (it fails with a
// `CommandError`). The implementation takes (the app handle,) the app's state, then the
// arguments in order; the UI sends the arguments by name, in camelCase.
//
// Plain comments only: build.rs includes this file.

/// Hands the list of commands to `$then`, a macro that makes something of it.
macro_rules! with_commands {
    ($then:ident) => {
        $then! {
            // Both windows.
            status::current_session [main, kiosk] () -> Option<SignedInView>;
            status::lock [main] () -> ();
            status::set_language [main] (language: String) -> ();
            status::connection_status [main, kiosk] () -> Option<Status>;
            status::refused_writes [main, kiosk] () -> Vec<RefusedWrite>;
            status::dismiss_refused [main, kiosk] (seq: i64) -> ();

            // Staff.
            staff::sign_in [main] with app (node_url: String, username: String, password: String) -> SignedInView;
            staff::sign_out [main] with app () -> ();
            staff::unlock [main] (password: String) -> SignedInView;
            staff::sign_in_defaults [main] () -> SignInDefaults;
            staff::appointments_today [main] () -> Vec<AppointmentRow>;
            staff::appointments_between [main] (practitioner_id: Option<PractitionerId>, from: NaiveDate, to: NaiveDate) -> Vec<AppointmentRow>;
            staff::doctor_day [main] (practitioner_id: Option<PractitionerId>, date: Option<NaiveDate>) -> Vec<AppointmentRow>;
            staff::waiting_bookings [main] () -> Vec<AppointmentRow>;
            staff::practitioners [main] () -> Vec<Practitioner>;
            staff::slots [main] (practitioner_id: PractitionerId, from: NaiveDate, to: NaiveDate) -> Vec<Slot>;
            staff::search [main] (text: String) -> Vec<SearchHit>;
            staff::patient_page [main] (patient_id: PatientId) -> Option<PatientPage>;
            staff::register_patient [main] (patient: NewPatient) -> Patient;
            staff::book [main] (booking: BookAppointment) -> Appointment;
            staff::reschedule [main] (appointment_id: AppointmentId, to: Reschedule) -> Appointment;
            staff::act [main] (appointment_id: AppointmentId, action: AppointmentAction, reason: Option<String>) -> Appointment;

            // Admin (staff window).
            admin::staff_accounts [main] () -> Vec<Practitioner>;
            admin::create_staff_account [main] (account: NewPractitioner) -> Practitioner;
            admin::update_staff_account [main] (id: PractitionerId, version: i64, change: PractitionerUpdate) -> Practitioner;
            admin::kiosk_devices [main] () -> Vec<KioskDevice>;
            admin::register_kiosk [main] (label: String) -> KioskRegistration;
            admin::revoke_kiosk [main] (id: KioskDeviceId) -> ();
            admin::audit_trail [main] (filter: AuditFilter, before: Option<i64>, limit: Option<u32>) -> Vec<AuditRow>;
            admin::export_audit_trail [main] with app (filter: AuditFilter) -> SavedExport;

            // Records in FHIR: a patient's saved (doctors), a file imported (admins).
            records::export_patient_record [main] with app (patient_id: PatientId) -> SavedExport;
            records::import_records [main] with app (contents: String) -> ImportSummary;

            // Reports (doctors).
            reports::patient_reports [main] (patient_id: PatientId) -> Vec<ReportRow>;
            reports::recent_reports [main] () -> Vec<ReportRow>;
            reports::new_report [main] (patient_id: PatientId, content: ReportContent) -> Report;
            reports::report_action [main] (report_id: ReportId, action: ReportAction, content: Option<ReportContent>, reason: Option<String>) -> Report;
            reports::report_revisions [main] (report_id: ReportId) -> Vec<ReportRevision>;
            reports::print_report [main] (report_id: ReportId, revision: Option<u32>) -> Printout;

            // Patients' documents: filed by doctors and reception, read by doctors.
            documents::patient_documents [main] (patient_id: PatientId) -> Vec<PatientDocument>;
            documents::add_document [main] (patient_id: PatientId, document: NewDocument, contents: String) -> PatientDocument;
            documents::document_image [main] (document_id: DocumentId, version: Option<u32>) -> String;
            documents::open_document [main] (document_id: DocumentId, version: Option<u32>) -> bool;
            documents::print_document [main] (document_id: DocumentId, version: Option<u32>) -> Printout;

            // This workstation: its watched folder and its printer.
            workstation::workstation_settings [main] () -> WorkstationSettings;
            workstation::save_workstation_settings [main] (settings: WorkstationSettings) -> WorkstationSettings;
            workstation::import_files [main] () -> FolderImportView;
            workstation::assign_import [main] (name: String, assignment: ImportAssignment) -> ();
            workstation::retry_import [main] (name: String) -> ();
            workstation::open_import_file [main] (name: String) -> bool;
            workstation::printers [main] () -> Vec<String>;

            // Imaging: a patient's orders and studies (doctors), the reconciliation list
            // (reception and doctors).
            imaging::patient_imaging [main] (patient_id: PatientId) -> PatientImaging;
            imaging::order_imaging [main] (order: NewImagingOrder) -> ImagingOrder;
            imaging::study_preview [main] (study_id: ImagingStudyId) -> String;
            imaging::unmatched_studies [main] () -> Vec<ImagingStudy>;
            imaging::link_study [main] (study_id: ImagingStudyId, patient_id: PatientId) -> ImagingStudy;
            imaging::open_study_viewer [main] (patient_id: PatientId, study_id: ImagingStudyId) -> bool;

            // Exchanges with peers (doctors, admins, reviewers; every staff role for updates).
            exchange::peers [main] () -> Vec<PeerSummary>;
            exchange::consents [main] (patient_id: PatientId) -> Vec<Consent>;
            exchange::record_consent [main] (patient_id: PatientId, peer: String) -> Consent;
            exchange::withdraw_consent [main] (patient_id: PatientId, peer: String) -> ();
            exchange::send_reports [main] (peer: String, report_ids: Vec<ReportId>) -> Transmission;
            exchange::transmissions [main] (patient_id: Option<PatientId>) -> Vec<Transmission>;
            exchange::received_reports [main] () -> Vec<ReceivedReports>;
            exchange::admin_updates [main] () -> Vec<AdminUpdate>;
            exchange::send_admin_update [main] (update: NewAdminUpdate) -> AdminUpdate;
            exchange::acknowledge_update [main] (id: String) -> AdminUpdate;

            // Access across hospitals: a doctor's requests elsewhere (doctors); other
            // hospitals' requests here, answered and revoked by the front desk or by the
            // patient identified at a kiosk.
            access::remote_access [main] (patient_id: PatientId) -> Vec<RemoteAccess>;
            access::request_remote_access [main] (patient_id: PatientId, request: NewRemoteAccess) -> RemoteAccess;
            access::send_access_code [main] (request_id: String, code: String) -> RemoteAccess;
            access::remote_records [main] (patient_id: PatientId, request_id: String) -> RemoteRecordView;
            access::incoming_access [main, kiosk] (patient_id: PatientId) -> Vec<IncomingAccess>;
            access::access_reads [main, kiosk] (patient_id: PatientId) -> Vec<AccessRead>;
            access::decide_access [main, kiosk] (request_id: String, decision: AccessDecision) -> IncomingAccess;
            access::revoke_access [main, kiosk] (request_id: String) -> IncomingAccess;

            // Moving a patient's record to another hospital (the front desk), and what other
            // hospitals moved here (doctors).
            transfer::transfers [main] (patient_id: PatientId) -> Vec<PatientTransfer>;
            transfer::start_transfer [main] (patient_id: PatientId, transfer: NewTransfer) -> PatientTransfer;
            transfer::transferred_records [main] (patient_id: PatientId) -> Vec<RemoteRecordView>;

            // Kiosk.
            kiosk::kiosk_sign_in [kiosk] with app (node_url: String, device_id: KioskDeviceId, secret: String) -> SignedInView;
            kiosk::kiosk_identify [kiosk] (card_number: String, birth_date: NaiveDate) -> KioskPatient;
            kiosk::kiosk_finish [kiosk] () -> ();
            kiosk::kiosk_doctors [kiosk] () -> Vec<Practitioner>;
            kiosk::kiosk_slots [kiosk] (practitioner_id: PractitionerId, date: NaiveDate) -> Vec<Slot>;
            kiosk::kiosk_book [kiosk] (patient_id: PatientId, practitioner_id: PractitionerId, start: DateTime<Utc>, reason: String) -> Appointment;
            kiosk::kiosk_booking [kiosk] (appointment_id: AppointmentId) -> Option<AppointmentRow>;
            kiosk::kiosk_check_in [kiosk] (appointment_id: AppointmentId) -> Appointment;
        }
    };
}

// Generated from src-tauri/commands/registry.rs by `cargo test` (commands::ipc): do not edit.
import { invoke } from "@tauri-apps/api/core";
import type { AccessDecision } from "./AccessDecision";
import type { AccessRead } from "./AccessRead";
import type { AdminUpdate } from "./AdminUpdate";
import type { Appointment } from "./Appointment";
import type { AppointmentAction } from "./AppointmentAction";
import type { AppointmentId } from "./AppointmentId";
import type { AppointmentRow } from "./AppointmentRow";
import type { AuditFilter } from "./AuditFilter";
import type { AuditRow } from "./AuditRow";
import type { BookAppointment } from "./BookAppointment";
import type { Consent } from "./Consent";
import type { DocumentId } from "./DocumentId";
import type { FolderImportView } from "./FolderImportView";
import type { ImagingOrder } from "./ImagingOrder";
import type { ImagingStudy } from "./ImagingStudy";
import type { ImagingStudyId } from "./ImagingStudyId";
import type { ImportAssignment } from "./ImportAssignment";
import type { ImportSummary } from "./ImportSummary";
import type { IncomingAccess } from "./IncomingAccess";
import type { KioskDevice } from "./KioskDevice";
import type { KioskDeviceId } from "./KioskDeviceId";
import type { KioskPatient } from "./KioskPatient";
import type { KioskRegistration } from "./KioskRegistration";
import type { NewAdminUpdate } from "./NewAdminUpdate";
import type { NewDocument } from "./NewDocument";
import type { NewImagingOrder } from "./NewImagingOrder";
import type { NewPatient } from "./NewPatient";
import type { NewPractitioner } from "./NewPractitioner";
import type { NewRemoteAccess } from "./NewRemoteAccess";
import type { NewTransfer } from "./NewTransfer";
import type { Patient } from "./Patient";
import type { PatientDocument } from "./PatientDocument";
import type { PatientId } from "./PatientId";
import type { PatientImaging } from "./PatientImaging";
import type { PatientPage } from "./PatientPage";
import type { PatientTransfer } from "./PatientTransfer";
import type { PeerSummary } from "./PeerSummary";
import type { Practitioner } from "./Practitioner";
import type { PractitionerId } from "./PractitionerId";
import type { PractitionerUpdate } from "./PractitionerUpdate";
import type { Printout } from "./Printout";
import type { ReceivedReports } from "./ReceivedReports";
import type { RefusedWrite } from "./RefusedWrite";
import type { RemoteAccess } from "./RemoteAccess";
import type { RemoteRecordView } from "./RemoteRecordView";
import type { Report } from "./Report";
import type { ReportAction } from "./ReportAction";
import type { ReportContent } from "./ReportContent";
import type { ReportId } from "./ReportId";
import type { ReportRevision } from "./ReportRevision";
import type { ReportRow } from "./ReportRow";
import type { Reschedule } from "./Reschedule";
import type { SavedExport } from "./SavedExport";
import type { SearchHit } from "./SearchHit";
import type { SignInDefaults } from "./SignInDefaults";
import type { SignedInView } from "./SignedInView";
import type { Slot } from "./Slot";
import type { Status } from "./Status";
import type { Transmission } from "./Transmission";
import type { WorkstationSettings } from "./WorkstationSettings";
export const currentSession = (): Promise<SignedInView | null> =>
  invoke("current_session");
export const lock = (): Promise<void> =>
  invoke("lock");
export const setLanguage = (language: string): Promise<void> =>
  invoke("set_language", { language });
export const connectionStatus = (): Promise<Status | null> =>
  invoke("connection_status");
export const refusedWrites = (): Promise<Array<RefusedWrite>> =>
  invoke("refused_writes");
export const dismissRefused = (seq: number): Promise<void> =>
  invoke("dismiss_refused", { seq });
export const signIn = (nodeUrl: string, username: string, password: string): Promise<SignedInView> =>
  invoke("sign_in", { nodeUrl, username, password });
export const signOut = (): Promise<void> =>
  invoke("sign_out");
export const unlock = (password: string): Promise<SignedInView> =>
  invoke("unlock", { password });
export const signInDefaults = (): Promise<SignInDefaults> =>
  invoke("sign_in_defaults");
export const appointmentsToday = (): Promise<Array<AppointmentRow>> =>
  invoke("appointments_today");
export const appointmentsBetween = (practitionerId: PractitionerId | null, from: string, to: string): Promise<Array<AppointmentRow>> =>
  invoke("appointments_between", { practitionerId, from, to });
export const doctorDay = (practitionerId: PractitionerId | null = null, date: string | null = null): Promise<Array<AppointmentRow>> =>
  invoke("doctor_day", { practitionerId, date });
export const waitingBookings = (): Promise<Array<AppointmentRow>> =>
  invoke("waiting_bookings");
export const practitioners = (): Promise<Array<Practitioner>> =>
  invoke("practitioners");
export const slots = (practitionerId: PractitionerId, from: string, to: string): Promise<Array<Slot>> =>
  invoke("slots", { practitionerId, from, to });
export const search = (text: string): Promise<Array<SearchHit>> =>
  invoke("search", { text });
export const patientPage = (patientId: PatientId): Promise<PatientPage | null> =>
  invoke("patient_page", { patientId });
export const registerPatient = (patient: NewPatient): Promise<Patient> =>
  invoke("register_patient", { patient });
export const book = (booking: BookAppointment): Promise<Appointment> =>
  invoke("book", { booking });
export const reschedule = (appointmentId: AppointmentId, to: Reschedule): Promise<Appointment> =>
  invoke("reschedule", { appointmentId, to });
export const act = (appointmentId: AppointmentId, action: AppointmentAction, reason: string | null = null): Promise<Appointment> =>
  invoke("act", { appointmentId, action, reason });
export const staffAccounts = (): Promise<Array<Practitioner>> =>
  invoke("staff_accounts");
export const createStaffAccount = (account: NewPractitioner): Promise<Practitioner> =>
  invoke("create_staff_account", { account });
export const updateStaffAccount = (id: PractitionerId, version: number, change: PractitionerUpdate): Promise<Practitioner> =>
  invoke("update_staff_account", { id, version, change });
export const kioskDevices = (): Promise<Array<KioskDevice>> =>
  invoke("kiosk_devices");
export const registerKiosk = (label: string): Promise<KioskRegistration> =>
  invoke("register_kiosk", { label });
export const revokeKiosk = (id: KioskDeviceId): Promise<void> =>
  invoke("revoke_kiosk", { id });
export const auditTrail = (filter: AuditFilter, before: number | null = null, limit: number | null = null): Promise<Array<AuditRow>> =>
  invoke("audit_trail", { filter, before, limit });
export const exportAuditTrail = (filter: AuditFilter): Promise<SavedExport> =>
  invoke("export_audit_trail", { filter });
export const exportPatientRecord = (patientId: PatientId): Promise<SavedExport> =>
  invoke("export_patient_record", { patientId });
export const importRecords = (contents: string): Promise<ImportSummary> =>
  invoke("import_records", { contents });
export const patientReports = (patientId: PatientId): Promise<Array<ReportRow>> =>
  invoke("patient_reports", { patientId });
export const recentReports = (): Promise<Array<ReportRow>> =>
  invoke("recent_reports");
export const newReport = (patientId: PatientId, content: ReportContent): Promise<Report> =>
  invoke("new_report", { patientId, content });
export const reportAction = (reportId: ReportId, action: ReportAction, content: ReportContent | null = null, reason: string | null = null): Promise<Report> =>
  invoke("report_action", { reportId, action, content, reason });
export const reportRevisions = (reportId: ReportId): Promise<Array<ReportRevision>> =>
  invoke("report_revisions", { reportId });
export const printReport = (reportId: ReportId, revision: number | null = null): Promise<Printout> =>
  invoke("print_report", { reportId, revision });
export const patientDocuments = (patientId: PatientId): Promise<Array<PatientDocument>> =>
  invoke("patient_documents", { patientId });
export const addDocument = (patientId: PatientId, document: NewDocument, contents: string): Promise<PatientDocument> =>
  invoke("add_document", { patientId, document, contents });
export const documentImage = (documentId: DocumentId, version: number | null = null): Promise<string> =>
  invoke("document_image", { documentId, version });
export const openDocument = (documentId: DocumentId, version: number | null = null): Promise<boolean> =>
  invoke("open_document", { documentId, version });
export const printDocument = (documentId: DocumentId, version: number | null = null): Promise<Printout> =>
  invoke("print_document", { documentId, version });
export const workstationSettings = (): Promise<WorkstationSettings> =>
  invoke("workstation_settings");
export const saveWorkstationSettings = (settings: WorkstationSettings): Promise<WorkstationSettings> =>
  invoke("save_workstation_settings", { settings });
export const importFiles = (): Promise<FolderImportView> =>
  invoke("import_files");
export const assignImport = (name: string, assignment: ImportAssignment): Promise<void> =>
  invoke("assign_import", { name, assignment });
export const retryImport = (name: string): Promise<void> =>
  invoke("retry_import", { name });
export const openImportFile = (name: string): Promise<boolean> =>
  invoke("open_import_file", { name });
export const printers = (): Promise<Array<string>> =>
  invoke("printers");
export const patientImaging = (patientId: PatientId): Promise<PatientImaging> =>
  invoke("patient_imaging", { patientId });
export const orderImaging = (order: NewImagingOrder): Promise<ImagingOrder> =>
  invoke("order_imaging", { order });
export const studyPreview = (studyId: ImagingStudyId): Promise<string> =>
  invoke("study_preview", { studyId });
export const unmatchedStudies = (): Promise<Array<ImagingStudy>> =>
  invoke("unmatched_studies");
export const linkStudy = (studyId: ImagingStudyId, patientId: PatientId): Promise<ImagingStudy> =>
  invoke("link_study", { studyId, patientId });
export const openStudyViewer = (patientId: PatientId, studyId: ImagingStudyId): Promise<boolean> =>
  invoke("open_study_viewer", { patientId, studyId });
export const peers = (): Promise<Array<PeerSummary>> =>
  invoke("peers");
export const consents = (patientId: PatientId): Promise<Array<Consent>> =>
  invoke("consents", { patientId });
export const recordConsent = (patientId: PatientId, peer: string): Promise<Consent> =>
  invoke("record_consent", { patientId, peer });
export const withdrawConsent = (patientId: PatientId, peer: string): Promise<void> =>
  invoke("withdraw_consent", { patientId, peer });
export const sendReports = (peer: string, reportIds: Array<ReportId>): Promise<Transmission> =>
  invoke("send_reports", { peer, reportIds });
export const transmissions = (patientId: PatientId | null = null): Promise<Array<Transmission>> =>
  invoke("transmissions", { patientId });
export const receivedReports = (): Promise<Array<ReceivedReports>> =>
  invoke("received_reports");
export const adminUpdates = (): Promise<Array<AdminUpdate>> =>
  invoke("admin_updates");
export const sendAdminUpdate = (update: NewAdminUpdate): Promise<AdminUpdate> =>
  invoke("send_admin_update", { update });
export const acknowledgeUpdate = (id: string): Promise<AdminUpdate> =>
  invoke("acknowledge_update", { id });
export const remoteAccess = (patientId: PatientId): Promise<Array<RemoteAccess>> =>
  invoke("remote_access", { patientId });
export const requestRemoteAccess = (patientId: PatientId, request: NewRemoteAccess): Promise<RemoteAccess> =>
  invoke("request_remote_access", { patientId, request });
export const sendAccessCode = (requestId: string, code: string): Promise<RemoteAccess> =>
  invoke("send_access_code", { requestId, code });
export const remoteRecords = (patientId: PatientId, requestId: string): Promise<RemoteRecordView> =>
  invoke("remote_records", { patientId, requestId });
export const incomingAccess = (patientId: PatientId): Promise<Array<IncomingAccess>> =>
  invoke("incoming_access", { patientId });
export const accessReads = (patientId: PatientId): Promise<Array<AccessRead>> =>
  invoke("access_reads", { patientId });
export const decideAccess = (requestId: string, decision: AccessDecision): Promise<IncomingAccess> =>
  invoke("decide_access", { requestId, decision });
export const revokeAccess = (requestId: string): Promise<IncomingAccess> =>
  invoke("revoke_access", { requestId });
export const transfers = (patientId: PatientId): Promise<Array<PatientTransfer>> =>
  invoke("transfers", { patientId });
export const startTransfer = (patientId: PatientId, transfer: NewTransfer): Promise<PatientTransfer> =>
  invoke("start_transfer", { patientId, transfer });
export const transferredRecords = (patientId: PatientId): Promise<Array<RemoteRecordView>> =>
  invoke("transferred_records", { patientId });
export const kioskSignIn = (nodeUrl: string, deviceId: KioskDeviceId, secret: string): Promise<SignedInView> =>
  invoke("kiosk_sign_in", { nodeUrl, deviceId, secret });
export const kioskIdentify = (cardNumber: string, birthDate: string): Promise<KioskPatient> =>
  invoke("kiosk_identify", { cardNumber, birthDate });
export const kioskFinish = (): Promise<void> =>
  invoke("kiosk_finish");
export const kioskDoctors = (): Promise<Array<Practitioner>> =>
  invoke("kiosk_doctors");
export const kioskSlots = (practitionerId: PractitionerId, date: string): Promise<Array<Slot>> =>
  invoke("kiosk_slots", { practitionerId, date });
export const kioskBook = (patientId: PatientId, practitionerId: PractitionerId, start: string, reason: string): Promise<Appointment> =>
  invoke("kiosk_book", { patientId, practitionerId, start, reason });
export const kioskBooking = (appointmentId: AppointmentId): Promise<AppointmentRow | null> =>
  invoke("kiosk_booking", { appointmentId });
export const kioskCheckIn = (appointmentId: AppointmentId): Promise<Appointment> =>
  invoke("kiosk_check_in", { appointmentId });

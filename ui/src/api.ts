// The app's commands and events, typed with the declarations generated from the Rust code
// (ui/src/bindings, written by `cargo test`; CI fails when they are stale).
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Appointment } from "./bindings/Appointment";
import type { AuditRow } from "./bindings/AuditRow";
import type { KioskDevice } from "./bindings/KioskDevice";
import type { KioskRegistration } from "./bindings/KioskRegistration";
import type { NewPractitioner } from "./bindings/NewPractitioner";
import type { PractitionerUpdate } from "./bindings/PractitionerUpdate";
import type { AppointmentAction } from "./bindings/AppointmentAction";
import type { AppointmentRow } from "./bindings/AppointmentRow";
import type { BookAppointment } from "./bindings/BookAppointment";
import type { KioskPatient } from "./bindings/KioskPatient";
import type { NewPatient } from "./bindings/NewPatient";
import type { Patient } from "./bindings/Patient";
import type { PatientPage } from "./bindings/PatientPage";
import type { Practitioner } from "./bindings/Practitioner";
import type { RefusedWrite } from "./bindings/RefusedWrite";
import type { Reschedule } from "./bindings/Reschedule";
import type { SearchHit } from "./bindings/SearchHit";
import type { SignInDefaults } from "./bindings/SignInDefaults";
import type { SignedInView } from "./bindings/SignedInView";
import type { Slot } from "./bindings/Slot";
import type { Status } from "./bindings/Status";
import type { AdminUpdate } from "./bindings/AdminUpdate";
import type { Consent } from "./bindings/Consent";
import type { NewAdminUpdate } from "./bindings/NewAdminUpdate";
import type { PeerSummary } from "./bindings/PeerSummary";
import type { PrintedReport } from "./bindings/PrintedReport";
import type { ReceivedReports } from "./bindings/ReceivedReports";
import type { Report } from "./bindings/Report";
import type { ReportAction } from "./bindings/ReportAction";
import type { ReportContent } from "./bindings/ReportContent";
import type { ReportRevision } from "./bindings/ReportRevision";
import type { ReportRow } from "./bindings/ReportRow";
import type { Transmission } from "./bindings/Transmission";
import { type Audience, errorText, isCommandError } from "./errors";

// Both windows.
export const currentSession = (): Promise<SignedInView | null> => invoke("current_session");
export const lock = (): Promise<void> => invoke("lock");
export const connectionStatus = (): Promise<Status | null> => invoke("connection_status");
export const refusedWrites = (): Promise<RefusedWrite[]> => invoke("refused_writes");
export const dismissRefused = (seq: number): Promise<void> => invoke("dismiss_refused", { seq });

// Staff.
export const signIn = (nodeUrl: string, username: string, password: string): Promise<SignedInView> =>
  invoke("sign_in", { nodeUrl, username, password });
export const signOut = (): Promise<void> => invoke("sign_out");
export const unlock = (password: string): Promise<SignedInView> => invoke("unlock", { password });
export const signInDefaults = (): Promise<SignInDefaults> => invoke("sign_in_defaults");
export const appointmentsToday = (): Promise<AppointmentRow[]> => invoke("appointments_today");
export const appointmentsBetween = (practitionerId: string | null, from: string, to: string): Promise<AppointmentRow[]> =>
  invoke("appointments_between", { practitionerId, from, to });
export const doctorDay = (practitionerId: string | null, date: string | null): Promise<AppointmentRow[]> =>
  invoke("doctor_day", { practitionerId, date });
export const waitingBookings = (): Promise<AppointmentRow[]> => invoke("waiting_bookings");
export const practitioners = (): Promise<Practitioner[]> => invoke("practitioners");
export const slots = (practitionerId: string, from: string, to: string): Promise<Slot[]> =>
  invoke("slots", { practitionerId, from, to });
export const search = (text: string): Promise<SearchHit[]> => invoke("search", { text });
export const patientPage = (patientId: string): Promise<PatientPage | null> => invoke("patient_page", { patientId });
export const registerPatient = (patient: NewPatient): Promise<Patient> => invoke("register_patient", { patient });
export const book = (booking: BookAppointment): Promise<Appointment> => invoke("book", { booking });
export const reschedule = (appointmentId: string, to: Reschedule): Promise<Appointment> =>
  invoke("reschedule", { appointmentId, to });
export const act = (appointmentId: string, action: AppointmentAction, reason: string | null = null): Promise<Appointment> =>
  invoke("act", { appointmentId, action, reason });

// Reports (doctors).
export const patientReports = (patientId: string): Promise<ReportRow[]> => invoke("patient_reports", { patientId });
export const recentReports = (): Promise<ReportRow[]> => invoke("recent_reports");
export const newReport = (patientId: string, content: ReportContent): Promise<Report> =>
  invoke("new_report", { patientId, content });
export const reportAction = (
  reportId: string,
  action: ReportAction,
  content: ReportContent | null = null,
  reason: string | null = null,
): Promise<Report> => invoke("report_action", { reportId, action, content, reason });
export const reportRevisions = (reportId: string): Promise<ReportRevision[]> => invoke("report_revisions", { reportId });
export const printReport = (reportId: string, revision: number | null = null): Promise<PrintedReport> =>
  invoke("print_report", { reportId, revision });

// Exchanges with peers.
export const peers = (): Promise<PeerSummary[]> => invoke("peers");
export const consents = (patientId: string): Promise<Consent[]> => invoke("consents", { patientId });
export const recordConsent = (patientId: string, peer: string): Promise<Consent> =>
  invoke("record_consent", { patientId, peer });
export const withdrawConsent = (patientId: string, peer: string): Promise<void> =>
  invoke("withdraw_consent", { patientId, peer });
export const sendReports = (peer: string, reportIds: string[]): Promise<Transmission> =>
  invoke("send_reports", { peer, reportIds });
export const transmissions = (patientId: string | null): Promise<Transmission[]> => invoke("transmissions", { patientId });
export const receivedReports = (): Promise<ReceivedReports[]> => invoke("received_reports");
export const adminUpdates = (): Promise<AdminUpdate[]> => invoke("admin_updates");
export const sendAdminUpdate = (update: NewAdminUpdate): Promise<AdminUpdate> => invoke("send_admin_update", { update });
export const acknowledgeUpdate = (id: string): Promise<AdminUpdate> => invoke("acknowledge_update", { id });

// Admin.
export const staffAccounts = (): Promise<Practitioner[]> => invoke("staff_accounts");
export const createStaffAccount = (account: NewPractitioner): Promise<Practitioner> =>
  invoke("create_staff_account", { account });
export const updateStaffAccount = (id: string, version: number, change: PractitionerUpdate): Promise<Practitioner> =>
  invoke("update_staff_account", { id, version, change });
export const kioskDevices = (): Promise<KioskDevice[]> => invoke("kiosk_devices");
export const registerKiosk = (label: string): Promise<KioskRegistration> => invoke("register_kiosk", { label });
export const revokeKiosk = (id: string): Promise<void> => invoke("revoke_kiosk", { id });
export const auditTrail = (before: number | null, limit: number): Promise<AuditRow[]> => invoke("audit_trail", { before, limit });

// Kiosk.
export const kioskSignIn = (nodeUrl: string, deviceId: string, secret: string): Promise<SignedInView> =>
  invoke("kiosk_sign_in", { nodeUrl, deviceId, secret });
export const kioskIdentify = (cardNumber: string, birthDate: string): Promise<KioskPatient> =>
  invoke("kiosk_identify", { cardNumber, birthDate });
export const kioskDoctors = (): Promise<Practitioner[]> => invoke("kiosk_doctors");
export const kioskSlots = (practitionerId: string, date: string): Promise<Slot[]> =>
  invoke("kiosk_slots", { practitionerId, date });
export const kioskBook = (patientId: string, practitionerId: string, start: string, reason: string): Promise<Appointment> =>
  invoke("kiosk_book", { patientId, practitionerId, start, reason });
export const kioskBooking = (appointmentId: string): Promise<AppointmentRow | null> =>
  invoke("kiosk_booking", { appointmentId });
export const kioskCheckIn = (appointmentId: string): Promise<Appointment> => invoke("kiosk_check_in", { appointmentId });

// Events.
export function onStatus(f: (s: Status) => void): Promise<UnlistenFn> {
  return listen<Status>("status", (e) => f(e.payload));
}
export function onChanged(f: () => void): Promise<UnlistenFn> {
  return listen("changed", () => f());
}
export function onSession(f: (v: SignedInView) => void): Promise<UnlistenFn> {
  return listen<SignedInView>("session", (e) => f(e.payload));
}

/** The text of a command's error, for staff screens (see `errors.ts`). A rejection that is not
 *  a `CommandError` (e.g. the ACL's) shows its own words. */
export function messageOf(e: unknown, audience: Audience = "staff"): string {
  return isCommandError(e) ? errorText(e, audience) : String(e);
}

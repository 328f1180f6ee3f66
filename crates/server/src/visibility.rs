//! Who may see which record: one policy, applied alike by the REST handlers (what a read
//! returns), the live stream (each event's [`Audience`]), the snapshot (what a first sync
//! carries) and the audit reader.
//!
//! The policy is a table of [`Reach`] by who is asking and what kind of record it is
//! ([`reach`]); everything else here is derived from it, so that a new kind of record, or a
//! change of who sees one, is one row of the table and every path follows (DESIGN, "One home
//! per rule"). Patient data never reaches an admin or an insurer's reviewer, apart from the
//! received reports a reviewer exists to read.

use carebridge_protocol::PractitionerId;
use carebridge_protocol::appointment::{Appointment, BookedBy};
use carebridge_protocol::federation::payload::Transmission;
use carebridge_protocol::practitioner::{Practitioner, Role};

use crate::events::Viewer;
use crate::events::{Audience, ROLE_ADMIN, ROLE_DOCTOR, ROLE_KIOSK, ROLE_RECEPTION, ROLE_REVIEWER};
use crate::store::appointments::Scope;
use crate::store::snapshot::Contents;

/// The kinds of record the node shows its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Staff accounts (what the snapshot and `GET /practitioners` list).
    Practitioner,
    /// Doctors' working hours and absences.
    Schedule,
    /// Patient records.
    Patient,
    /// Appointments.
    Appointment,
    /// Medical reports.
    Report,
    /// Patients' consents to share with a peer.
    Consent,
    /// Exchanges sent to peers (their state).
    Transmission,
    /// Medical reports received from peers.
    ReceivedReports,
    /// The audit trail.
    AuditTrail,
    /// Imaging orders, the studies matched to patients, and their previews.
    Imaging,
    /// Studies that matched no patient, waiting to be linked by hand (they show the name and
    /// PatientID the modality sent).
    Reconciliation,
    /// Patients' documents (letters, scans) and their files.
    Document,
    /// A doctor's requests to read patients' records at other hospitals, and what was read
    /// there under the grants: the token is bound to that one doctor.
    RemoteRecord,
    /// Other hospitals' requests to read patients' records here, their grants, and the reads
    /// made under them.
    IncomingAccess,
    /// Patients' records moving to other hospitals: where each transfer stands.
    Transfer,
    /// Records other hospitals transferred here (their reports, their appointments).
    TransferredRecord,
}

impl RecordKind {
    /// Every kind, for tests that cover them all.
    pub const ALL: [Self; 16] = [
        Self::Practitioner,
        Self::Schedule,
        Self::Patient,
        Self::Appointment,
        Self::Report,
        Self::Consent,
        Self::Transmission,
        Self::ReceivedReports,
        Self::AuditTrail,
        Self::Imaging,
        Self::Reconciliation,
        Self::Document,
        Self::RemoteRecord,
        Self::IncomingAccess,
        Self::Transfer,
        Self::TransferredRecord,
    ];
}

/// Who is asking, as the policy tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Asker {
    /// A staff user of this role.
    Staff(Role),
    /// A kiosk device.
    Kiosk,
}

impl Asker {
    /// Every kind of asker, for tests that cover them all.
    pub const ALL: [Self; 5] = [
        Self::Staff(Role::Reception),
        Self::Staff(Role::Doctor),
        Self::Staff(Role::Admin),
        Self::Staff(Role::Reviewer),
        Self::Kiosk,
    ];

    /// The asker a viewer is.
    pub fn of(viewer: &Viewer) -> Self {
        match viewer {
            Viewer::Staff { role, .. } => Self::Staff(*role),
            Viewer::Kiosk { .. } => Self::Kiosk,
        }
    }

    /// The audience bit of this asker.
    fn bit(self) -> i64 {
        match self {
            Self::Staff(Role::Doctor) => ROLE_DOCTOR,
            Self::Staff(Role::Reception) => ROLE_RECEPTION,
            Self::Staff(Role::Admin) => ROLE_ADMIN,
            Self::Staff(Role::Reviewer) => ROLE_REVIEWER,
            Self::Kiosk => ROLE_KIOSK,
        }
    }
}

/// How much of a kind of record an asker may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// None of them.
    Nothing,
    /// Those that concern them: a doctor's own appointments; the bookings a kiosk made; for
    /// staff accounts at a kiosk, the doctors it offers.
    Own,
    /// All of them.
    Everything,
}

/// The policy: how much of `kind` an `asker` may see.
pub fn reach(asker: Asker, kind: RecordKind) -> Reach {
    use Reach::{Everything, Nothing, Own};
    use RecordKind as K;
    let (reception, doctor, admin, reviewer, kiosk) = match kind {
        // A kiosk offers the doctors; staff see every active account.
        K::Practitioner => (Everything, Everything, Everything, Everything, Own),
        // Working hours are no patient data: everyone books or shows against them.
        K::Schedule => (Everything, Everything, Everything, Everything, Everything),
        // A kiosk reads a patient only once they identified there, through its own path
        // (card number and birth date), never by listing.
        K::Patient => (Everything, Everything, Nothing, Nothing, Nothing),
        K::Appointment => (Everything, Own, Nothing, Nothing, Own),
        // DESIGN: reports are for doctors, not reception; admins see that they exist only
        // through the audit trail.
        K::Report => (Nothing, Everything, Nothing, Nothing, Nothing),
        K::Consent => (Nothing, Everything, Nothing, Nothing, Nothing),
        // Doctors follow what they sent; admins are alerted when one waits too long.
        K::Transmission => (Nothing, Everything, Everything, Nothing, Nothing),
        K::ReceivedReports => (Nothing, Nothing, Everything, Everything, Nothing),
        K::AuditTrail => (Nothing, Nothing, Everything, Nothing, Nothing),
        // Studies and orders are clinical, as reports are.
        K::Imaging => (Nothing, Everything, Nothing, Nothing, Nothing),
        // Reception or a doctor resolves a study that found no patient by hand.
        K::Reconciliation => (Everything, Everything, Nothing, Nothing, Nothing),
        // Letters and scans are clinical, as reports are. Reception files them (a front-desk
        // scanner, a CD brought in) without reading them back: adding is not seeing.
        K::Document => (Nothing, Everything, Nothing, Nothing, Nothing),
        // Granted to one doctor, by the patient: not to their colleagues.
        K::RemoteRecord => (Nothing, Own, Nothing, Nothing, Nothing),
        // The front desk answers and revokes them with the patient; admins are alerted to
        // emergency access (the requests name the patient by id only). A kiosk shows an
        // identified patient theirs through its own path, never by listing.
        K::IncomingAccess => (Everything, Nothing, Everything, Nothing, Nothing),
        // The front desk moves a record with the patient in front of it; admins follow what
        // leaves. A transfer's state names the patient by id only.
        K::Transfer => (Everything, Nothing, Everything, Nothing, Nothing),
        // What arrived is clinical, as reports are.
        K::TransferredRecord => (Nothing, Everything, Nothing, Nothing, Nothing),
    };
    match asker {
        Asker::Staff(Role::Reception) => reception,
        Asker::Staff(Role::Doctor) => doctor,
        Asker::Staff(Role::Admin) => admin,
        Asker::Staff(Role::Reviewer) => reviewer,
        Asker::Kiosk => kiosk,
    }
}

/// Whether `viewer` may see any record of `kind`.
pub fn may_see_any(viewer: &Viewer, kind: RecordKind) -> bool {
    reach(Asker::of(viewer), kind) != Reach::Nothing
}

/// The role (and kiosk) bits of everyone who sees every record of `kind`.
fn everyone_who_sees_all(kind: RecordKind) -> i64 {
    Asker::ALL
        .iter()
        .filter(|a| reach(**a, kind) == Reach::Everything)
        .fold(0, |bits, a| bits | a.bit())
}

/// Who is told of a change to a record of `kind` that concerns no one in particular.
pub fn audience(kind: RecordKind) -> Audience {
    Audience {
        roles: everyone_who_sees_all(kind),
        practitioner: None,
        kiosk: None,
    }
}

/// Who is told of a change to a doctor's request to read a record elsewhere: that doctor.
pub fn remote_record_audience(doctor: PractitionerId) -> Audience {
    Audience {
        roles: everyone_who_sees_all(RecordKind::RemoteRecord),
        practitioner: Some(doctor),
        kiosk: None,
    }
}

/// Who is told of a change to an appointment: those who see every appointment, its doctor,
/// and the kiosk that booked it (each where the policy gives them their own).
pub fn appointment_audience(a: &Appointment) -> Audience {
    let own = |asker| reach(asker, RecordKind::Appointment) == Reach::Own;
    Audience {
        roles: everyone_who_sees_all(RecordKind::Appointment),
        practitioner: own(Asker::Staff(Role::Doctor)).then_some(a.practitioner_id),
        kiosk: match a.booked_by {
            BookedBy::Kiosk { id } if own(Asker::Kiosk) => Some(id),
            _ => None,
        },
    }
}

/// Which appointments `viewer` may list; `None` when none.
pub fn appointment_scope(viewer: &Viewer) -> Option<Scope> {
    match (reach(Asker::of(viewer), RecordKind::Appointment), viewer) {
        (Reach::Nothing, _) => None,
        (Reach::Everything, _) => Some(Scope::All),
        (Reach::Own, Viewer::Staff { id, .. }) => Some(Scope::Practitioner(*id)),
        (Reach::Own, Viewer::Kiosk { id }) => Some(Scope::Kiosk(*id)),
    }
}

/// Whether `viewer` may see appointment `a`.
pub fn may_see_appointment(viewer: &Viewer, a: &Appointment) -> bool {
    match appointment_scope(viewer) {
        None => false,
        Some(Scope::All) => true,
        Some(Scope::Practitioner(p)) => a.practitioner_id == p,
        Some(Scope::Kiosk(k)) => a.booked_by == BookedBy::Kiosk { id: k },
        Some(Scope::Patient(p)) => a.patient_id == p,
    }
}

/// Whether the staff accounts `viewer` sees are only the doctors (a kiosk's offer).
pub fn sees_only_doctors(viewer: &Viewer) -> bool {
    reach(Asker::of(viewer), RecordKind::Practitioner) == Reach::Own
}

/// A staff account as `viewer` may see it: a kiosk gets the doctors' ids and names, never
/// their usernames.
pub fn practitioner_as_seen(viewer: &Viewer, mut p: Practitioner) -> Practitioner {
    if sees_only_doctors(viewer) {
        p.username.clear();
    }
    p
}

/// A transmission as admins see it: to whom, its state and how many reports, never the
/// patient's name or the reports' titles (admins see no patient data).
pub fn transmission_for_admins(mut t: Transmission) -> Transmission {
    if t.patient_id.is_some() || !t.report_ids.is_empty() {
        t.summary = format!("{} report(s)", t.report_ids.len());
    }
    t
}

/// A transmission as `viewer` may see it.
pub fn transmission_as_seen(viewer: &Viewer, t: Transmission) -> Transmission {
    match viewer {
        Viewer::Staff {
            role: Role::Admin, ..
        } => transmission_for_admins(t),
        _ => t,
    }
}

/// What `viewer`'s snapshot holds.
pub fn snapshot_of(viewer: &Viewer) -> Contents {
    let asker = Asker::of(viewer);
    let any = |kind| reach(asker, kind) != Reach::Nothing;
    Contents {
        practitioners: any(RecordKind::Practitioner).then(|| sees_only_doctors(viewer)),
        schedules: any(RecordKind::Schedule),
        patients: reach(asker, RecordKind::Patient) == Reach::Everything,
        appointments: appointment_scope(viewer),
        reports: reach(asker, RecordKind::Report) == Reach::Everything,
    }
}

/// Whether `viewer` may run a FHIR bulk export of the node's records: admins, whose job is
/// moving records between systems. The one exception to "patient data never reaches an
/// admin", asked for by the FHIR issue; every export is audited with what it carried.
pub fn may_bulk_export(viewer: &Viewer) -> bool {
    matches!(
        viewer,
        Viewer::Staff {
            role: Role::Admin,
            ..
        }
    )
}

/// Who hears of a change to one doctor's schedule or absences.
pub fn schedule_audience(_doctor: PractitionerId) -> Audience {
    audience(RecordKind::Schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carebridge_protocol::appointment::AppointmentStatus;
    use carebridge_protocol::{AppointmentId, KioskDeviceId, PatientId};

    use Reach::{Everything as E, Nothing as N, Own as O};
    use RecordKind as K;

    /// The whole policy, written out once more by hand: a change to the table must be made
    /// here too, on purpose. Columns: reception, doctor, admin, reviewer, kiosk.
    const EXPECTED: [(RecordKind, [Reach; 5]); 16] = [
        (K::Practitioner, [E, E, E, E, O]),
        (K::Schedule, [E, E, E, E, E]),
        (K::Patient, [E, E, N, N, N]),
        (K::Appointment, [E, O, N, N, O]),
        (K::Report, [N, E, N, N, N]),
        (K::Consent, [N, E, N, N, N]),
        (K::Transmission, [N, E, E, N, N]),
        (K::ReceivedReports, [N, N, E, E, N]),
        (K::AuditTrail, [N, N, E, N, N]),
        (K::Imaging, [N, E, N, N, N]),
        (K::Reconciliation, [E, E, N, N, N]),
        (K::Document, [N, E, N, N, N]),
        (K::RemoteRecord, [N, O, N, N, N]),
        (K::IncomingAccess, [E, N, E, N, N]),
        (K::Transfer, [E, N, E, N, N]),
        (K::TransferredRecord, [N, E, N, N, N]),
    ];

    fn viewer(asker: Asker, id: uuid::Uuid) -> Viewer {
        match asker {
            Asker::Staff(role) => Viewer::Staff {
                id: PractitionerId(id),
                role,
            },
            Asker::Kiosk => Viewer::Kiosk {
                id: KioskDeviceId(id),
            },
        }
    }

    #[test]
    fn every_role_and_kind_is_as_written() {
        assert_eq!(EXPECTED.len(), RecordKind::ALL.len());
        for (kind, row) in EXPECTED {
            for (asker, want) in Asker::ALL.iter().zip(row) {
                assert_eq!(reach(*asker, kind), want, "{asker:?} × {kind:?}");
            }
        }
    }

    #[test]
    fn an_audience_admits_exactly_who_may_see_the_kind() {
        for kind in RecordKind::ALL {
            for asker in Asker::ALL {
                let v = viewer(asker, uuid::Uuid::now_v7());
                assert_eq!(
                    audience(kind).admits(&v),
                    reach(asker, kind) == Reach::Everything,
                    "{asker:?} × {kind:?}"
                );
            }
        }
    }

    /// For appointments the REST read, the list scope and the live stream's audience agree
    /// for every asker, about their own appointments and someone else's.
    #[test]
    fn appointments_are_seen_alike_by_read_list_and_stream() {
        let doctor = PractitionerId::new();
        let kiosk = KioskDeviceId(uuid::Uuid::now_v7());
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a time");
        let appointment = |practitioner_id, booked_by| Appointment {
            id: AppointmentId::new(),
            reference: "ABC-DEF".into(),
            patient_id: PatientId::new(),
            practitioner_id,
            start: now,
            end: now,
            reason: "check".into(),
            status: AppointmentStatus::Booked,
            booked_by,
            override_reason: None,
            cancellation_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let theirs = appointment(doctor, BookedBy::Kiosk { id: kiosk });
        let others = appointment(
            PractitionerId::new(),
            BookedBy::Staff {
                id: PractitionerId::new(),
            },
        );
        for asker in Asker::ALL {
            // The doctor and the kiosk asking are those of `theirs`; anyone else is themselves
            // (an appointment's practitioner is always a doctor).
            let id = match asker {
                Asker::Kiosk => kiosk.0,
                Asker::Staff(Role::Doctor) => doctor.0,
                Asker::Staff(_) => uuid::Uuid::now_v7(),
            };
            let v = viewer(asker, id);
            for a in [&theirs, &others] {
                let read = may_see_appointment(&v, a);
                let streamed = appointment_audience(a).admits(&v);
                let listed = match appointment_scope(&v) {
                    None => false,
                    Some(Scope::All) => true,
                    Some(Scope::Practitioner(p)) => a.practitioner_id == p,
                    Some(Scope::Kiosk(k)) => a.booked_by == BookedBy::Kiosk { id: k },
                    Some(Scope::Patient(p)) => a.patient_id == p,
                };
                assert_eq!(read, streamed, "{asker:?}: read vs stream");
                assert_eq!(read, listed, "{asker:?}: read vs list");
                let expected = match reach(asker, K::Appointment) {
                    Reach::Nothing => false,
                    Reach::Everything => true,
                    Reach::Own => std::ptr::eq(a, &theirs),
                };
                assert_eq!(read, expected, "{asker:?} × {:?}", a.practitioner_id);
            }
        }
    }
}

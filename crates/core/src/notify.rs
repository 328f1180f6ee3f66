//! Telling the user about live changes that concern them: a kiosk booking waiting for this
//! doctor, news of exchanges with peers.
//!
//! Only events that changed what the user sees can be news, so a replay after a reconnect (its
//! ids are already applied), a snapshot after a reset (never notified) or the echo of the user's
//! own write (it lands in the record's shadow while the write is pending, and is no newer than
//! the node's answer after) never notifies. A kiosk is never notified: its screen shows the
//! doctor's answer to the patient who booked, and a notification would show it to whoever
//! stands at the kiosk next.

use std::sync::Mutex;

use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
use carebridge_protocol::event::LiveEvent;
use carebridge_protocol::federation::access::{AccessPurpose, AccessState, IncomingAccess};
use carebridge_protocol::federation::payload::{AdminUpdate, Transmission, TransmissionState};
use carebridge_protocol::imaging::ImagingStudy;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::session::Principal;
use serde::{Deserialize, Serialize};

use crate::store::{Applied, NodeRecord};

/// Something worth interrupting the user for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Notice {
    /// For a doctor: a patient booked with them at a kiosk; it waits for their answer.
    KioskBooking {
        /// The booking.
        appointment: Appointment,
        /// The patient's name, when this user may see it.
        patient_name: Option<String>,
    },
    /// For hospital staff: an admin update arrived from a peer; it waits for acknowledgement.
    AdminUpdate {
        /// The update.
        update: AdminUpdate,
    },
    /// For doctors and admins: a transmission to a peer failed for good.
    TransmissionFailed {
        /// The transmission.
        transmission: Transmission,
    },
    /// For admins: a transmission has waited longer than the node allows.
    TransmissionOverdue {
        /// The transmission.
        transmission: Transmission,
    },
    /// For an insurer's reviewers: reports arrived from a hospital.
    ReportsReceived {
        /// The sending node.
        source: String,
        /// How many reports.
        reports: usize,
    },
    /// For the doctor who ordered it: an imaging study arrived for their patient.
    StudyAvailable {
        /// The study.
        study: ImagingStudy,
        /// The patient's name, when this user may see it.
        patient_name: Option<String>,
    },
    /// For admins: the node's policy granted a doctor at another hospital emergency access to
    /// a patient's record, without the patient.
    EmergencyAccess {
        /// The request, as granted.
        access: IncomingAccess,
    },
}

impl Notice {
    /// What kind of notice, for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KioskBooking { .. } => "kiosk-booking",
            Self::AdminUpdate { .. } => "admin-update",
            Self::TransmissionFailed { .. } => "transmission-failed",
            Self::TransmissionOverdue { .. } => "transmission-overdue",
            Self::ReportsReceived { .. } => "reports-received",
            Self::StudyAvailable { .. } => "study-available",
            Self::EmergencyAccess { .. } => "emergency-access",
        }
    }

    /// The id of the record it is about (the sending node for received reports), for the log:
    /// never a name or a reason.
    pub fn record_id(&self) -> String {
        match self {
            Self::KioskBooking { appointment, .. } => appointment.id.to_string(),
            Self::AdminUpdate { update } => update.id.to_string(),
            Self::TransmissionFailed { transmission }
            | Self::TransmissionOverdue { transmission } => transmission.id.to_string(),
            Self::ReportsReceived { source, .. } => source.clone(),
            Self::StudyAvailable { study, .. } => study.id.to_string(),
            Self::EmergencyAccess { access } => access.id.to_string(),
        }
    }
}

/// The notice an exchange event is for this user, if any (never for a kiosk).
pub fn notice_for_exchange(me: &Principal, event: &LiveEvent) -> Option<Notice> {
    let Principal::Staff { role, id, .. } = me else {
        return None;
    };
    match event {
        LiveEvent::AdminUpdate(u) if u.incoming && !u.acknowledged && u.version == 1 => {
            Some(Notice::AdminUpdate { update: u.clone() })
        }
        LiveEvent::Transmission(t) if t.state == TransmissionState::Failed => {
            Some(Notice::TransmissionFailed {
                transmission: t.clone(),
            })
        }
        LiveEvent::Transmission(t)
            if t.overdue && t.state == TransmissionState::Queued && *role == Role::Admin =>
        {
            Some(Notice::TransmissionOverdue {
                transmission: t.clone(),
            })
        }
        LiveEvent::ReceivedReports(r) => Some(Notice::ReportsReceived {
            source: r.source.clone(),
            reports: r.content.reports.len(),
        }),
        // Every doctor sees the study live on the patient's page; the one who ordered it is
        // interrupted. The reconciliation list's news (no patient yet) interrupts nobody.
        LiveEvent::ImagingStudy(s) if s.patient_id.is_some() && s.ordered_by == Some(*id) => {
            Some(Notice::StudyAvailable {
                study: s.clone(),
                patient_name: None,
            })
        }
        LiveEvent::IncomingAccess(a)
            if *role == Role::Admin
                && a.purpose == AccessPurpose::Emergency
                && a.state == AccessState::Granted
                && a.approved_by.as_deref() == Some("emergency") =>
        {
            Some(Notice::EmergencyAccess { access: a.clone() })
        }
        _ => None,
    }
}

/// Exchange news for one signed-in user, each told once. The node alerts an overdue
/// transmission once, but every later delivery attempt streams it again, still overdue and
/// queued: without this the admin would be interrupted at every retry.
#[derive(Debug, Default)]
pub struct ExchangeNotices {
    overdue_told: std::collections::HashSet<uuid::Uuid>,
    emergencies_told: std::collections::HashSet<uuid::Uuid>,
}

impl ExchangeNotices {
    /// The notice an exchange event is for this user ([`notice_for_exchange`]), unless it
    /// was already given.
    pub fn notice(&mut self, me: &Principal, event: &LiveEvent) -> Option<Notice> {
        let notice = notice_for_exchange(me, event)?;
        let first = match &notice {
            Notice::TransmissionOverdue { transmission } => {
                self.overdue_told.insert(transmission.id)
            }
            // The same grant streams again as the front desk looks at it or it ends.
            Notice::EmergencyAccess { access } => self.emergencies_told.insert(access.id),
            _ => true,
        };
        first.then_some(notice)
    }
}

/// Shows notices to the user: the app's desktop notifications, or a recording in tests.
/// Called from the sync engine's task: it must not block for long.
pub trait Notifier: Send + Sync + 'static {
    /// Shows one notice.
    fn notify(&self, notice: Notice);
}

/// A notifier that keeps what it was given, for tests and for a UI's own list.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    notices: Mutex<Vec<Notice>>,
}

impl RecordingNotifier {
    /// Everything notified so far, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.notices.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

impl Notifier for RecordingNotifier {
    fn notify(&self, notice: Notice) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(notice);
        }
    }
}

/// Whether a change the user now sees is news to them, and which (never for a kiosk). The
/// patient's name is left for the caller to look up.
pub fn notice_for(me: &Principal, applied: &Applied) -> Option<Notice> {
    let NodeRecord::Appointment(a) = &applied.record else {
        return None;
    };
    let Principal::Staff { id, .. } = me else {
        return None;
    };
    let was = applied.previous.as_ref().map(|p| p.status);
    let new_kiosk_booking = a.practitioner_id == *id
        && a.status == AppointmentStatus::Pending
        && matches!(a.booked_by, BookedBy::Kiosk { .. })
        && was != Some(AppointmentStatus::Pending);
    new_kiosk_booking.then(|| Notice::KioskBooking {
        appointment: a.clone(),
        patient_name: None,
    })
}

#[cfg(test)]
mod tests {
    use carebridge_protocol::federation::payload::UpdateAudience;
    use carebridge_protocol::{KioskDeviceId, PractitionerId};
    use chrono::{DateTime, Utc};

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
    }

    fn staff(role: Role) -> Principal {
        Principal::Staff {
            id: PractitionerId::new(),
            role,
            display_name: "Someone".into(),
        }
    }

    fn update(incoming: bool, acknowledged: bool, version: i64) -> LiveEvent {
        LiveEvent::AdminUpdate(AdminUpdate {
            id: uuid::Uuid::now_v7(),
            peer: "assure.example".into(),
            from: "Assure".into(),
            title: "New form".into(),
            body: "Use form B-12.".into(),
            audience: UpdateAudience::Doctor,
            sent_at: at(),
            incoming,
            acknowledged,
            acknowledgements: 0,
            version,
        })
    }

    fn transmission(state: TransmissionState, overdue: bool) -> LiveEvent {
        LiveEvent::Transmission(Transmission {
            id: uuid::Uuid::now_v7(),
            peer: "assure.example".into(),
            message_type: "medical-reports".into(),
            summary: "1 report".into(),
            patient_id: None,
            report_ids: Vec::new(),
            state,
            last_error: Some("refused".into()),
            attempts: 3,
            overdue,
            created_by: "Dr".into(),
            created_at: at(),
            updated_at: at(),
            acknowledged_at: None,
            version: 2,
        })
    }

    fn kiosk_booking(
        practitioner: PractitionerId,
        kiosk: KioskDeviceId,
        status: AppointmentStatus,
        version: i64,
    ) -> Appointment {
        Appointment {
            id: carebridge_protocol::AppointmentId::new(),
            reference: "K7Q-4MZ".into(),
            patient_id: carebridge_protocol::PatientId::new(),
            practitioner_id: practitioner,
            start: at(),
            end: at() + chrono::Duration::minutes(15),
            reason: "Sore throat".into(),
            status,
            booked_by: BookedBy::Kiosk { id: kiosk },
            override_reason: None,
            cancellation_reason: (status == AppointmentStatus::Cancelled).then(|| "away".into()),
            version,
            created_at: at(),
            updated_at: at(),
        }
    }

    /// `to` as it lands after `from` (`None`: a record new to this client).
    fn applied(from: Option<AppointmentStatus>, to: &Appointment) -> Applied {
        Applied {
            event_id: 7,
            record: NodeRecord::Appointment(to.clone()),
            previous: from.map(|status| Appointment {
                status,
                version: to.version - 1,
                ..to.clone()
            }),
        }
    }

    #[test]
    fn a_kiosk_is_never_notified_not_even_of_the_answer_to_its_own_booking() {
        use AppointmentStatus::*;
        let device = KioskDeviceId::new();
        let kiosk = Principal::Kiosk {
            id: device,
            label: "Entrance".into(),
        };
        let doctor = PractitionerId::new();
        for (from, to) in [
            (None, Pending),
            (Some(Pending), Booked),
            (Some(Pending), Cancelled),
            (Some(Booked), Arrived),
            (Some(Booked), Cancelled),
            (Some(Arrived), Fulfilled),
            (None, Booked),
        ] {
            let a = kiosk_booking(doctor, device, to, 2);
            assert_eq!(
                notice_for(&kiosk, &applied(from, &a)),
                None,
                "{from:?} to {to:?}"
            );
        }
        for event in [
            update(true, false, 1),
            transmission(TransmissionState::Failed, false),
            transmission(TransmissionState::Queued, true),
        ] {
            assert_eq!(notice_for_exchange(&kiosk, &event), None, "{event:?}");
        }
    }

    #[test]
    fn a_doctor_is_told_of_a_new_kiosk_booking_with_them_and_of_nothing_else_about_it() {
        use AppointmentStatus::*;
        let me = PractitionerId::new();
        let doctor = Principal::Staff {
            id: me,
            role: Role::Doctor,
            display_name: "Dr. Moreau".into(),
        };
        let device = KioskDeviceId::new();
        let new = kiosk_booking(me, device, Pending, 1);
        assert!(matches!(
            notice_for(&doctor, &applied(None, &new)),
            Some(Notice::KioskBooking { appointment, .. }) if appointment.id == new.id
        ));
        // Known already (a newer version of a booking still waiting), the doctor's own answers,
        // and later steps: nothing new to tell.
        for (from, to) in [
            (Some(Pending), Pending),
            (Some(Pending), Booked),
            (Some(Pending), Cancelled),
            (Some(Booked), Arrived),
        ] {
            let a = kiosk_booking(me, device, to, 2);
            assert_eq!(
                notice_for(&doctor, &applied(from, &a)),
                None,
                "{from:?} to {to:?}"
            );
        }
        // Another doctor's booking.
        let theirs = kiosk_booking(PractitionerId::new(), device, Pending, 1);
        assert_eq!(notice_for(&doctor, &applied(None, &theirs)), None);
    }

    #[test]
    fn an_arriving_update_is_news_once_and_only_where_it_arrived() {
        let doctor = staff(Role::Doctor);
        assert!(matches!(
            notice_for_exchange(&doctor, &update(true, false, 1)),
            Some(Notice::AdminUpdate { .. })
        ));
        // The user's own acknowledgement, a later count, or the sender's own copy: no notice.
        assert_eq!(notice_for_exchange(&doctor, &update(true, true, 1)), None);
        assert_eq!(notice_for_exchange(&doctor, &update(true, false, 2)), None);
        assert_eq!(
            notice_for_exchange(&staff(Role::Admin), &update(false, false, 1)),
            None
        );
    }

    #[test]
    fn an_overdue_transmission_is_told_once_however_often_it_is_attempted_again() {
        let admin = staff(Role::Admin);
        let mut notices = ExchangeNotices::default();
        let LiveEvent::Transmission(first) = transmission(TransmissionState::Queued, true) else {
            unreachable!()
        };
        let again = |attempts: u32| {
            LiveEvent::Transmission(Transmission {
                attempts,
                version: i64::from(attempts),
                ..first.clone()
            })
        };
        assert!(matches!(
            notices.notice(&admin, &again(3)),
            Some(Notice::TransmissionOverdue { .. })
        ));
        for attempts in 4..10 {
            assert_eq!(notices.notice(&admin, &again(attempts)), None, "{attempts}");
        }
        // Another overdue transmission is news; this one failing at last is too.
        assert!(
            notices
                .notice(&admin, &transmission(TransmissionState::Queued, true))
                .is_some()
        );
        let failed = LiveEvent::Transmission(Transmission {
            state: TransmissionState::Failed,
            ..first.clone()
        });
        assert!(matches!(
            notices.notice(&admin, &failed),
            Some(Notice::TransmissionFailed { .. })
        ));
    }

    #[test]
    fn a_failed_transmission_is_news_and_an_overdue_one_only_to_admins() {
        let doctor = staff(Role::Doctor);
        let admin = staff(Role::Admin);
        assert!(matches!(
            notice_for_exchange(&doctor, &transmission(TransmissionState::Failed, false)),
            Some(Notice::TransmissionFailed { .. })
        ));
        let overdue = transmission(TransmissionState::Queued, true);
        assert!(matches!(
            notice_for_exchange(&admin, &overdue),
            Some(Notice::TransmissionOverdue { .. })
        ));
        assert_eq!(notice_for_exchange(&doctor, &overdue), None);
        assert_eq!(
            notice_for_exchange(&admin, &transmission(TransmissionState::Acknowledged, true)),
            None,
            "delivered after all"
        );
        assert_eq!(
            notice_for_exchange(&doctor, &transmission(TransmissionState::Queued, false)),
            None
        );
    }

    fn incoming(purpose: AccessPurpose, state: AccessState, approved_by: &str) -> LiveEvent {
        let now = chrono::DateTime::UNIX_EPOCH;
        LiveEvent::IncomingAccess(IncomingAccess {
            id: uuid::Uuid::nil(),
            patient_id: carebridge_protocol::PatientId::new(),
            peer: "general.example".into(),
            organisation: "General Hospital".into(),
            practitioner_name: "Dr. Amara Mensah".into(),
            purpose,
            scopes: vec!["patient/DiagnosticReport.rs".into()],
            hours: 4,
            state,
            grant_id: Some(uuid::Uuid::nil()),
            approved_by: Some(approved_by.into()),
            starts_at: Some(now),
            expires_at: Some(now + chrono::Duration::hours(4)),
            revoked_at: None,
            created_at: now,
            version: 2,
        })
    }

    #[test]
    fn emergency_access_interrupts_the_admins_once_and_nobody_else() {
        use AccessPurpose::{Emergency, Treatment};
        use AccessState::{Granted, Pending, Revoked};
        let granted = incoming(Emergency, Granted, "emergency");
        let mut notices = ExchangeNotices::default();
        let admin = staff(Role::Admin);
        assert!(matches!(
            notices.notice(&admin, &granted),
            Some(Notice::EmergencyAccess { .. })
        ));
        assert_eq!(notices.notice(&admin, &granted), None, "told once");
        for role in [Role::Reception, Role::Doctor, Role::Reviewer] {
            assert_eq!(
                notice_for_exchange(&staff(role), &granted),
                None,
                "{role:?}"
            );
        }
        // What the patient answered, or what is not (yet, or any longer) a grant: no alert.
        for event in [
            incoming(Emergency, Granted, "kiosk"),
            incoming(Treatment, Granted, "code"),
            incoming(Emergency, Pending, "emergency"),
            incoming(Emergency, Revoked, "emergency"),
        ] {
            assert_eq!(notice_for_exchange(&admin, &event), None, "{event:?}");
        }
    }
}

//! The core's notices as desktop notifications (notify-rust). Without a notification daemon the
//! notice is logged and the app goes on: a notification is a courtesy, never a failure.

use carebridge_core::{Notice, Notifier};
use chrono_tz::Tz;

use crate::messages::{self, Language, SharedLanguage};

/// Shows notices on the desktop, times in the node's time zone, in the UI's language.
pub struct DesktopNotices {
    time_zone: Tz,
    language: std::sync::Arc<SharedLanguage>,
    /// While the session is locked a notification says that something came, not who or why.
    locked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// To the one thread that talks to the notification daemon (D-Bus calls block, and with no
    /// daemon each waits for its timeout: one thread, not one per notice).
    shown: std::sync::Mutex<std::sync::mpsc::Sender<(String, String)>>,
}

impl DesktopNotices {
    /// Notices for a session on a node in `time_zone`, in `language` as it stands at each
    /// notice.
    pub fn new(
        time_zone: Tz,
        language: std::sync::Arc<SharedLanguage>,
        locked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let (shown, to_show) = std::sync::mpsc::channel::<(String, String)>();
        std::thread::spawn(move || {
            for (summary, body) in to_show {
                let shown = notify_rust::Notification::new()
                    .appname("CareBridge")
                    .summary(&summary)
                    .body(&body)
                    .show();
                if let Err(e) = shown {
                    tracing::warn!(error = %e, "no desktop notification (is a notification daemon running?)");
                }
            }
        });
        Self {
            time_zone,
            language,
            locked,
            shown: std::sync::Mutex::new(shown),
        }
    }
}

/// The notification's title and text, in `language`, times in the node's zone; `private`
/// leaves out the patient and the reason (a locked screen).
pub fn text(notice: &Notice, tz: Tz, language: Language, private: bool) -> (String, String) {
    let t = |key: &str, values: &[(&str, &str)]| messages::text(language, key, values);
    let at = |s: chrono::DateTime<chrono::Utc>| {
        s.with_timezone(&tz)
            .format(&t("format.time", &[]))
            .to_string()
    };
    let day = |s: chrono::DateTime<chrono::Utc>| {
        messages::day(language, s.with_timezone(&tz).date_naive())
    };
    match notice {
        Notice::KioskBooking {
            appointment,
            patient_name,
        } => {
            let someone = t("notice.a-patient", &[]);
            let patient = match patient_name {
                Some(name) if !private => name.as_str(),
                _ => &someone,
            };
            let (time, on) = (at(appointment.start), day(appointment.start));
            (
                t(
                    "notice.kiosk-booking.title",
                    &[("patient", patient), ("time", &time)],
                ),
                if private {
                    t("notice.kiosk-booking.body-private", &[("day", &on)])
                } else {
                    t(
                        "notice.kiosk-booking.body",
                        &[("day", &on), ("reason", &appointment.reason)],
                    )
                },
            )
        }
        Notice::AdminUpdate { update } => (
            t(
                "notice.admin-update.title",
                &[("from", &update.from), ("title", &update.title)],
            ),
            t("notice.admin-update.body", &[]),
        ),
        Notice::TransmissionFailed { transmission: x } => (
            t("notice.transmission-failed.title", &[("peer", &x.peer)]),
            if private {
                t("notice.transmission-failed.body-private", &[])
            } else {
                t(
                    "notice.transmission-failed.body",
                    &[
                        ("summary", &x.summary),
                        ("error", x.last_error.as_deref().unwrap_or_default()),
                    ],
                )
            },
        ),
        Notice::TransmissionOverdue { transmission: x } => (
            t("notice.transmission-overdue.title", &[("peer", &x.peer)]),
            t(
                "notice.transmission-overdue.body",
                &[
                    (
                        "time",
                        &format!("{} {}", day(x.created_at), at(x.created_at)),
                    ),
                    ("attempts", &x.attempts.to_string()),
                    ("error", x.last_error.as_deref().unwrap_or_default()),
                ],
            ),
        ),
        Notice::ReportsReceived { source, reports } => (
            t("notice.reports-received.title", &[("source", source)]),
            t(
                "notice.reports-received.body",
                &[("count", &reports.to_string())],
            ),
        ),
        Notice::StudyAvailable {
            study,
            patient_name,
        } => {
            let someone = t("notice.a-patient", &[]);
            let patient = match patient_name {
                Some(name) if !private => name.as_str(),
                _ => &someone,
            };
            let what = if private {
                String::new()
            } else {
                study.description.clone()
            };
            (
                t("notice.study-available.title", &[("patient", patient)]),
                t(
                    "notice.study-available.body",
                    &[
                        ("modality", &study.modalities.join("/")),
                        ("images", &study.instance_count.to_string()),
                        ("description", &what),
                    ],
                ),
            )
        }
        Notice::EmergencyAccess { access } => {
            let until = access
                .expires_at
                .map(|e| format!("{} {}", day(e), at(e)))
                .unwrap_or_default();
            (
                t(
                    "notice.emergency-access.title",
                    &[("organisation", &access.organisation)],
                ),
                if private {
                    t("notice.emergency-access.body-private", &[("until", &until)])
                } else {
                    t(
                        "notice.emergency-access.body",
                        &[("doctor", &access.practitioner_name), ("until", &until)],
                    )
                },
            )
        }
    }
}

/// For the kiosk: its screen shows the doctor's answer; nothing pops up for the next person.
/// (The core tells a kiosk of nothing; this keeps a notice from ever reaching its desktop.)
pub struct NoNotices;

impl Notifier for NoNotices {
    fn notify(&self, notice: Notice) {
        tracing::debug!(kind = notice.kind(), record = %notice.record_id(), "not shown at a kiosk");
    }
}

impl Notifier for DesktopNotices {
    fn notify(&self, notice: Notice) {
        let private = self.locked.load(std::sync::atomic::Ordering::SeqCst);
        // The log holds what kind of notice and the record's id: never a patient's name.
        tracing::info!(kind = notice.kind(), record = %notice.record_id(), "notice");
        let (summary, body) = text(&notice, self.time_zone, self.language.get(), private);
        if let Ok(shown) = self.shown.lock() {
            let _ = shown.send((summary, body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carebridge_core::protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
    use carebridge_core::protocol::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
    use chrono::TimeZone;

    /// A kiosk booking for a sore throat, Tuesday 24 November 2026 at 09:30 UTC.
    fn kiosk_booking() -> Appointment {
        let start = chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 9, 30, 0)
            .single()
            .expect("a valid time");
        Appointment {
            id: AppointmentId::new(),
            reference: "K7Q-4MZ".into(),
            patient_id: PatientId::new(),
            practitioner_id: PractitionerId::new(),
            start,
            end: start + chrono::Duration::minutes(15),
            reason: "Sore throat".into(),
            status: AppointmentStatus::Pending,
            booked_by: BookedBy::Kiosk {
                id: KioskDeviceId::new(),
            },
            override_reason: None,
            cancellation_reason: None,
            version: 1,
            created_at: start,
            updated_at: start,
        }
    }

    /// Anna Jansen's kiosk booking as a notification reads in `language`, on an open screen or
    /// a locked (`private`) one.
    fn annas_booking(language: Language, private: bool) -> (String, String) {
        let notice = Notice::KioskBooking {
            appointment: kiosk_booking(),
            patient_name: Some("Anna Jansen".into()),
        };
        text(&notice, chrono_tz::Europe::Amsterdam, language, private)
    }

    #[test]
    fn a_kiosk_booking_reads_with_the_patient_and_the_local_time() {
        let (title, body) = annas_booking(Language::English, false);
        assert_eq!(title, "New kiosk booking: Anna Jansen, 10:30");
        assert!(body.starts_with("Tuesday 24 November"), "{body}");
        assert!(body.contains("Sore throat"), "{body}");
        // On a locked screen: that a booking came and when, not who or why.
        let (title, body) = annas_booking(Language::English, true);
        assert_eq!(title, "New kiosk booking: a patient, 10:30");
        assert!(!body.contains("Sore throat"), "{body}");
    }

    #[test]
    fn a_kiosk_booking_reads_in_dutch_when_the_app_speaks_dutch() {
        let (title, body) = annas_booking(Language::Dutch, false);
        assert_eq!(title, "Nieuwe boeking via de zuil: Anna Jansen, 10:30");
        assert_eq!(
            body,
            "dinsdag 24 november — wacht op uw bevestiging. Sore throat"
        );
        let (title, body) = annas_booking(Language::Dutch, true);
        assert_eq!(title, "Nieuwe boeking via de zuil: een patiënt, 10:30");
        assert!(!body.contains("Sore throat"), "{body}");
    }

    /// The notifier as the app makes it, in `language`, but its desktop side is a channel.
    fn desktop(
        language: std::sync::Arc<SharedLanguage>,
    ) -> (DesktopNotices, std::sync::mpsc::Receiver<(String, String)>) {
        let (shown, to_show) = std::sync::mpsc::channel();
        let notices = DesktopNotices {
            time_zone: chrono_tz::Europe::Amsterdam,
            language,
            locked: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            shown: std::sync::Mutex::new(shown),
        };
        (notices, to_show)
    }

    #[test]
    fn a_switch_of_language_reaches_the_next_notice() {
        let language = std::sync::Arc::new(SharedLanguage::new(Language::English));
        let (notices, to_show) = desktop(language.clone());
        let booking = || Notice::KioskBooking {
            appointment: kiosk_booking(),
            patient_name: Some("Anna Jansen".into()),
        };
        notices.notify(booking());
        language.set(Language::Dutch);
        notices.notify(booking());
        let (first, _) = to_show.try_recv().expect("the first notice");
        let (second, _) = to_show.try_recv().expect("the second notice");
        assert!(first.starts_with("New kiosk booking"), "{first}");
        assert!(second.starts_with("Nieuwe boeking"), "{second}");
    }

    #[test]
    fn a_notice_is_logged_by_kind_and_id_never_with_the_patient_or_the_reason() {
        let appointment = kiosk_booking();
        let id = appointment.id.to_string();
        let (notices, to_show) =
            desktop(std::sync::Arc::new(SharedLanguage::new(Language::English)));
        let log = carebridge_testkit::CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            notices.notify(Notice::KioskBooking {
                appointment,
                patient_name: Some("Anna Jansen".into()),
            });
        });
        let logged = log.text();
        assert!(
            logged.contains("kiosk-booking") && logged.contains(&id),
            "{logged}"
        );
        assert!(!logged.contains("Anna Jansen"), "{logged}");
        assert!(!logged.contains("Sore throat"), "{logged}");
        // The desktop still shows who and why.
        let (title, _) = to_show.try_recv().unwrap();
        assert!(title.contains("Anna Jansen"), "{title}");
    }
}

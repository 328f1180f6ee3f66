//! What changed, for the screens that show it: the kinds of record and the records' ids, and
//! the exchanges' new states as the node sent them (they are not mirrored, so a screen showing
//! them takes them from here instead of asking the node again).

use std::collections::BTreeSet;

use carebridge_protocol::appointment::Appointment;
use carebridge_protocol::event::LiveEvent;
use carebridge_protocol::federation::payload::{AdminUpdate, ReceivedReports, Transmission};
use carebridge_protocol::patient::Patient;
use carebridge_protocol::report::Report;
use serde::Serialize;

use crate::store::{Applied, NodeRecord};

/// Past this many ids in one notice, screens are told that everything changed: one re-read
/// each is cheaper than matching a long list.
const MAX_IDS: usize = 1000;

/// A kind of record a screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "kebab-case")
)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Appointments (and so the slots they take).
    Appointment,
    /// Patients' details.
    Patient,
    /// Staff users.
    Practitioner,
    /// Doctors' working hours and absences (and so the slots).
    Schedule,
    /// Medical reports.
    Report,
    /// The user's own writes waiting for the node, or refused by it.
    Outbox,
    /// Reports received from peers (read again when some were deleted; arrivals come as
    /// [`Changes::received`]).
    Received,
    /// Patients' consents to share.
    Consent,
    /// Imaging orders and studies (not mirrored: a patient's page reads them again), and the
    /// reconciliation list.
    Imaging,
    /// Patients' documents (not mirrored: a patient's page reads them again).
    Document,
    /// The watched folder's files (this workstation's import).
    FolderImport,
    /// Access across hospitals: a doctor's requests to read records elsewhere, and other
    /// hospitals' requests to read patients here (not mirrored: a patient's page reads them
    /// again).
    Access,
}

impl ChangeKind {
    /// The kind of an outbox item's record (`appointment`, `patient`, `report`).
    pub fn of_record(kind: &str) -> Option<Self> {
        Some(match kind {
            "appointment" => Self::Appointment,
            "patient" => Self::Patient,
            "practitioner" => Self::Practitioner,
            "schedule" | "absence" => Self::Schedule,
            "report" => Self::Report,
            _ => return None,
        })
    }
}

/// What changed since the last notice.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Changes {
    /// Anything may have changed (a first sync, a reset, a listener that fell behind): every
    /// screen reads again.
    pub everything: bool,
    /// The kinds of record that changed, each once: a screen showing one reads it again.
    pub kinds: BTreeSet<ChangeKind>,
    /// The ids of the records that changed, and of the patients whose appointments or
    /// reports changed.
    pub ids: BTreeSet<String>,
    /// Exchanges' new states, as the node streamed them, for a screen to merge into what it
    /// shows (their kind is not in `kinds`: there is nothing to read again).
    pub transmissions: Vec<Transmission>,
    /// Reports that arrived from peers.
    pub received: Vec<ReceivedReports>,
    /// Admin updates, new or newly acknowledged.
    pub admin_updates: Vec<AdminUpdate>,
}

impl Changes {
    /// Everything may have changed.
    pub fn everything() -> Self {
        Self {
            everything: true,
            ..Self::default()
        }
    }

    /// Records of one kind changed, ids unknown or beside the point.
    pub fn of(kind: ChangeKind) -> Self {
        let mut c = Self::default();
        c.kinds.insert(kind);
        c
    }

    /// One record changed.
    pub fn record(kind: ChangeKind, id: impl ToString) -> Self {
        let mut c = Self::of(kind);
        c.ids.insert(id.to_string());
        c
    }

    /// Whether a screen showing `kinds` has anything to read again.
    pub fn touches(&self, kinds: &[ChangeKind]) -> bool {
        self.everything || kinds.iter().any(|k| self.kinds.contains(k))
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.kinds.is_empty()
            && self.transmissions.is_empty()
            && self.received.is_empty()
            && self.admin_updates.is_empty()
    }

    /// Adds `other`'s changes to these.
    pub fn merge(&mut self, other: Changes) {
        if self.everything {
            return;
        }
        if other.everything || self.ids.len() + other.ids.len() > MAX_IDS {
            *self = Self::everything();
            return;
        }
        self.kinds.extend(other.kinds);
        self.ids.extend(other.ids);
        self.transmissions.extend(other.transmissions);
        self.received.extend(other.received);
        self.admin_updates.extend(other.admin_updates);
    }

    /// What records from the node, applied here, changed.
    pub fn applied(applied: &[Applied]) -> Self {
        let mut c = Self::default();
        for a in applied {
            c.merge(Self::node_record(&a.record));
        }
        c
    }

    /// What one record from the node changed.
    pub fn node_record(record: &NodeRecord) -> Self {
        match record {
            NodeRecord::Practitioner(p) => Self::record(ChangeKind::Practitioner, p.id),
            NodeRecord::Schedule(s) => Self::record(ChangeKind::Schedule, s.practitioner_id),
            NodeRecord::Absence(a) => Self::record(ChangeKind::Schedule, a.practitioner_id),
            NodeRecord::Patient(p) => p.changes(),
            NodeRecord::Appointment(a) => a.changes(),
            NodeRecord::Report(r) => r.changes(),
        }
    }

    /// What exchange events changed; the new states go along.
    pub fn exchange(events: &[LiveEvent]) -> Self {
        let mut c = Self::default();
        for e in events {
            let more = match e {
                // New states to merge: nothing to read again.
                LiveEvent::Transmission(t) => Self {
                    transmissions: vec![t.clone()],
                    ..Self::default()
                },
                LiveEvent::ReceivedReports(r) => Self {
                    received: vec![(**r).clone()],
                    ..Self::default()
                },
                LiveEvent::AdminUpdate(u) => Self {
                    admin_updates: vec![u.clone()],
                    ..Self::default()
                },
                // Gone: read the list again.
                LiveEvent::ReceivedDeleted(_) => Self::of(ChangeKind::Received),
                LiveEvent::Consent(_) => Self::of(ChangeKind::Consent),
                LiveEvent::ImagingOrder(o) => Self::record(ChangeKind::Imaging, o.patient_id),
                LiveEvent::ImagingStudy(s) => {
                    let mut c = Self::record(ChangeKind::Imaging, s.id);
                    c.ids.extend(s.patient_id.map(|p| p.to_string()));
                    c
                }
                LiveEvent::Document(d) => {
                    let mut c = Self::record(ChangeKind::Document, d.id);
                    c.ids.insert(d.patient_id.to_string());
                    c
                }
                LiveEvent::RemoteAccess(a) => {
                    let mut c = Self::record(ChangeKind::Access, a.id);
                    c.ids.insert(a.patient_id.to_string());
                    c
                }
                LiveEvent::IncomingAccess(a) => {
                    let mut c = Self::record(ChangeKind::Access, a.id);
                    c.ids.insert(a.patient_id.to_string());
                    c
                }
                // A transfer is shown on its patient's page.
                LiveEvent::Transfer(t) => {
                    let mut c = Self::record(ChangeKind::Patient, t.patient_id);
                    c.ids.insert(t.id.to_string());
                    c
                }
                LiveEvent::Appointment(a) => a.changes(),
                LiveEvent::Patient(p) => p.changes(),
                LiveEvent::Report(r) => r.changes(),
                LiveEvent::Schedule(_) | LiveEvent::Absence(_) => Self::of(ChangeKind::Schedule),
            };
            c.merge(more);
        }
        c
    }
}

/// A record whose change screens are told of.
pub trait Changed {
    /// What changing it changed.
    fn changes(&self) -> Changes;
}

impl Changed for Appointment {
    fn changes(&self) -> Changes {
        // A booking changes its patient's page too.
        let mut c = Changes::record(ChangeKind::Appointment, self.id);
        c.ids.insert(self.patient_id.to_string());
        c
    }
}

impl Changed for Patient {
    fn changes(&self) -> Changes {
        Changes::record(ChangeKind::Patient, self.id)
    }
}

impl Changed for Report {
    fn changes(&self) -> Changes {
        let mut c = Changes::record(ChangeKind::Report, self.id);
        c.ids.insert(self.patient_id.to_string());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_each_kind_and_id_once() {
        let mut c = Changes::record(ChangeKind::Appointment, "a");
        c.merge(Changes::record(ChangeKind::Appointment, "a"));
        c.merge(Changes::record(ChangeKind::Patient, "p"));
        assert_eq!(
            c.kinds.iter().copied().collect::<Vec<_>>(),
            vec![ChangeKind::Appointment, ChangeKind::Patient]
        );
        assert_eq!(c.ids.len(), 2);
        assert!(c.touches(&[ChangeKind::Patient, ChangeKind::Report]));
        assert!(!c.touches(&[ChangeKind::Report]));
    }

    #[test]
    fn everything_absorbs_what_is_merged_into_it_and_a_long_list_becomes_everything() {
        let mut c = Changes::everything();
        c.merge(Changes::record(ChangeKind::Report, "r"));
        assert_eq!(c, Changes::everything());
        assert!(c.touches(&[ChangeKind::Consent]));

        let mut long = Changes::default();
        for i in 0..MAX_IDS {
            long.merge(Changes::record(ChangeKind::Appointment, i));
        }
        assert!(!long.everything);
        long.merge(Changes::record(ChangeKind::Appointment, "one more"));
        assert!(long.everything);
    }

    #[test]
    fn an_empty_notice_touches_nothing() {
        let c = Changes::default();
        assert!(c.is_empty());
        assert!(!c.touches(&[ChangeKind::Appointment]));
    }
}

//! CareBridge's records as FHIR resources. Every function here is pure: what a caller may see
//! is decided before (the node's visibility policy), and what is mapped is all of it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use carebridge_protocol::appointment::{Appointment, AppointmentStatus, BookedBy};
use carebridge_protocol::audit::{AuditEntry, Outcome};
use carebridge_protocol::document::{DocumentVersion, PatientDocument};
use carebridge_protocol::federation::access::{
    AccessPurpose, AccessScope, AccessState, IncomingAccess,
};
use carebridge_protocol::federation::payload::Consent;
use carebridge_protocol::imaging::ImagingStudy;
use carebridge_protocol::patient::Patient;
use carebridge_protocol::practitioner::Practitioner;
use carebridge_protocol::report::{Report, ReportRevision};
use carebridge_protocol::schedule::{Schedule, Slot, SlotStatus};
use carebridge_protocol::{PatientId, ReportId};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::datatypes::{
    Attachment, CodeableConcept, Coding, ContactPoint, Extension, HumanName, Identifier, Meta,
    Period, Reference, Signature,
};
use crate::resources as r;
use crate::system;

/// An `instant`: UTC, to the millisecond the node stores.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn meta(version: i64, updated: DateTime<Utc>) -> Option<Meta> {
    Some(Meta {
        version_id: Some(version.to_string()),
        last_updated: Some(instant(updated)),
    })
}

fn string_extension(url: String, value: impl Into<String>) -> Extension {
    Extension {
        url,
        value_string: Some(value.into()),
    }
}

/// A reference to another node by its name (no resource of ours stands for a node).
pub fn node_reference(node: &str) -> Reference {
    Reference {
        reference: None,
        identifier: Some(Identifier::new(system::NODE, node)),
        display: Some(node.to_owned()),
    }
}

/// A patient.
pub fn patient(p: &Patient, node: &str) -> r::Patient {
    let mut telecom = Vec::new();
    if let Some(phone) = &p.phone {
        telecom.push(ContactPoint {
            system: Some("phone".into()),
            value: Some(phone.clone()),
        });
    }
    if let Some(email) = &p.email {
        telecom.push(ContactPoint {
            system: Some("email".into()),
            value: Some(email.clone()),
        });
    }
    // A record transferred elsewhere stays readable here, inactive, pointing at its successor.
    let link = p
        .transferred_to
        .iter()
        .map(|t| r::PatientLink {
            other: Reference {
                reference: None,
                identifier: Some(Identifier::new(system::GLOBAL_ID, &t.global_id)),
                display: Some(t.organisation.clone()),
            },
            r#type: "replaced-by".into(),
        })
        .collect();
    r::Patient {
        id: Some(p.id.to_string()),
        meta: meta(p.version, p.updated_at),
        identifier: vec![
            Identifier::new(system::GLOBAL_ID, &p.global_id),
            Identifier {
                r#use: Some("usual".into()),
                ..Identifier::new(system::card_number(node), &p.card_number)
            },
        ],
        active: Some(p.transferred_to.is_none()),
        name: vec![HumanName {
            r#use: Some("official".into()),
            text: None,
            family: Some(p.family_name.clone()),
            given: vec![p.given_name.clone()],
        }],
        telecom,
        birth_date: Some(p.birth_date.to_string()),
        link,
    }
}

/// A staff account (never its username: that is a sign-in credential, not a name).
pub fn practitioner(p: &Practitioner, node: &str) -> r::Practitioner {
    r::Practitioner {
        id: Some(p.id.to_string()),
        meta: Some(Meta {
            version_id: Some(p.version.to_string()),
            last_updated: None,
        }),
        identifier: vec![Identifier::new(
            system::GLOBAL_ID,
            format!("{}@{node}", p.id),
        )],
        active: Some(!p.disabled),
        name: vec![HumanName {
            r#use: Some("usual".into()),
            text: Some(p.display_name.clone()),
            family: None,
            given: Vec::new(),
        }],
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn time_of_day(t: chrono::NaiveTime) -> String {
    t.format("%H:%M:%S").to_string()
}

/// A staff account's role here, with a doctor's working hours.
pub fn practitioner_role(p: &Practitioner, schedule: Option<&Schedule>) -> r::PractitionerRole {
    let available_time = schedule
        .map(|s| {
            s.hours
                .iter()
                .map(|h| r::AvailableTime {
                    days_of_week: vec![
                        WEEKDAYS[h.weekday.num_days_from_monday() as usize].to_owned(),
                    ],
                    available_start_time: Some(time_of_day(h.start)),
                    available_end_time: Some(time_of_day(h.end)),
                })
                .collect()
        })
        .unwrap_or_default();
    r::PractitionerRole {
        id: Some(p.id.to_string()),
        meta: Some(Meta {
            version_id: Some(p.version.to_string()),
            last_updated: None,
        }),
        active: Some(!p.disabled),
        practitioner: Some(Reference::named("Practitioner", p.id, &p.display_name)),
        code: vec![CodeableConcept::code(Coding::new(
            system::ROLE,
            p.role.as_str(),
            p.role.as_str(),
        ))],
        available_time,
    }
}

/// A doctor's schedule; `zone` is the node's time zone, which the working hours are in.
pub fn schedule(s: &Schedule, doctor: &Practitioner, zone: &str) -> r::Schedule {
    r::Schedule {
        id: Some(s.practitioner_id.to_string()),
        meta: Some(Meta {
            version_id: Some(s.version.to_string()),
            last_updated: None,
        }),
        active: Some(!doctor.disabled && !s.hours.is_empty()),
        actor: vec![Reference::named(
            "Practitioner",
            s.practitioner_id,
            &doctor.display_name,
        )],
        comment: Some(format!(
            "{}-minute slots; working hours in {zone}",
            s.slot_minutes
        )),
        extension: vec![string_extension(
            system::extension("slot-minutes"),
            s.slot_minutes.to_string(),
        )],
    }
}

/// A slot's id: the doctor's UUID and the start in UTC to the minute (slots start on minutes).
pub fn slot_id(s: &Slot) -> String {
    format!("{}-{}", s.practitioner_id, s.start.format("%Y%m%d%H%M"))
}

/// One slot.
pub fn slot(s: &Slot) -> r::Slot {
    let status = match s.status {
        SlotStatus::Free => "free",
        SlotStatus::Busy => "busy",
        SlotStatus::BusyTentative => "busy-tentative",
        SlotStatus::BusyUnavailable => "busy-unavailable",
    };
    r::Slot {
        id: Some(slot_id(s)),
        schedule: Some(Reference::to("Schedule", s.practitioner_id)),
        status: Some(status.into()),
        start: Some(instant(s.start)),
        end: Some(instant(s.end)),
    }
}

/// What a booking's participants are called, for `display`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    /// The patient's name.
    pub patient: Option<&'a str>,
    /// The doctor's name.
    pub practitioner: Option<&'a str>,
}

fn maybe_named(resource_type: &str, id: impl std::fmt::Display, name: Option<&str>) -> Reference {
    match name {
        Some(n) => Reference::named(resource_type, id, n),
        None => Reference::to(resource_type, id),
    }
}

/// An appointment.
pub fn appointment(a: &Appointment, node: &str, names: Names<'_>) -> r::Appointment {
    let booked_by = match a.booked_by {
        BookedBy::Staff { id } => format!("staff:{id}"),
        BookedBy::Kiosk { id } => format!("kiosk:{id}"),
    };
    let mut extension = vec![string_extension(system::extension("booked-by"), booked_by)];
    if let Some(o) = &a.override_reason {
        extension.push(string_extension(system::extension("override-reason"), o));
    }
    // The doctor has not answered a kiosk's request yet.
    let doctor_status = if a.status == AppointmentStatus::Pending {
        "needs-action"
    } else {
        "accepted"
    };
    let minutes = (a.end - a.start).num_minutes();
    r::Appointment {
        id: Some(a.id.to_string()),
        meta: meta(a.version, a.updated_at),
        extension,
        identifier: vec![
            Identifier::new(system::GLOBAL_ID, format!("{}@{node}", a.id)),
            Identifier {
                r#use: Some("usual".into()),
                ..Identifier::new(system::appointment_reference(node), &a.reference)
            },
        ],
        status: Some(a.status.as_str().into()),
        cancelation_reason: a
            .cancellation_reason
            .as_ref()
            .map(|c| CodeableConcept::text(c.clone())),
        description: (!a.reason.is_empty()).then(|| a.reason.clone()),
        start: Some(instant(a.start)),
        end: Some(instant(a.end)),
        minutes_duration: u32::try_from(minutes).ok().filter(|m| *m > 0),
        created: Some(instant(a.created_at)),
        participant: vec![
            r::AppointmentParticipant {
                actor: Some(maybe_named("Patient", a.patient_id, names.patient)),
                required: Some("required".into()),
                status: Some("accepted".into()),
            },
            r::AppointmentParticipant {
                actor: Some(maybe_named(
                    "Practitioner",
                    a.practitioner_id,
                    names.practitioner,
                )),
                required: Some("required".into()),
                status: Some(doctor_status.into()),
            },
        ],
    }
}

/// A report. `pdf` is its rendered PDF once signed; the findings travel as plain text, so that
/// the report reads back whole.
pub fn diagnostic_report(rep: &Report, node: &str, pdf: Option<&[u8]>) -> r::DiagnosticReport {
    let mut extension = vec![string_extension(
        system::extension("report-revision"),
        rep.revision.to_string(),
    )];
    if let Some(why) = &rep.error_reason {
        extension.push(string_extension(system::extension("error-reason"), why));
    }
    let mut presented_form = Vec::new();
    if !rep.content.findings.is_empty() {
        presented_form.push(Attachment {
            content_type: Some("text/plain; charset=utf-8".into()),
            data: Some(BASE64.encode(rep.content.findings.as_bytes())),
            size: Some(rep.content.findings.len() as u64),
            title: Some(FINDINGS.into()),
            ..Attachment::default()
        });
    }
    if let Some(pdf) = pdf {
        presented_form.push(Attachment {
            content_type: Some("application/pdf".into()),
            data: Some(BASE64.encode(pdf)),
            size: Some(pdf.len() as u64),
            title: Some(format!("{} (revision {})", rep.content.title, rep.revision)),
            creation: rep.signature.as_ref().map(|s| instant(s.signed_at)),
            ..Attachment::default()
        });
    }
    let issued = rep
        .signature
        .as_ref()
        .map_or(rep.updated_at, |s| s.signed_at);
    r::DiagnosticReport {
        id: Some(rep.id.to_string()),
        meta: meta(rep.version, rep.updated_at),
        text: None,
        extension,
        identifier: vec![Identifier::new(
            system::GLOBAL_ID,
            format!("{}@{node}", rep.id),
        )],
        status: Some(rep.status.as_str().into()),
        code: Some(CodeableConcept::text(rep.content.title.clone())),
        subject: Some(Reference::to("Patient", rep.patient_id)),
        effective_date_time: Some(instant(rep.created_at)),
        issued: Some(instant(issued)),
        performer: vec![Reference::named(
            "Practitioner",
            rep.author_id,
            &rep.author_name,
        )],
        conclusion: (!rep.content.conclusion.is_empty()).then(|| rep.content.conclusion.clone()),
        conclusion_code: rep
            .content
            .codes
            .iter()
            .map(|c| CodeableConcept::text(c.clone()))
            .collect(),
        presented_form,
    }
}

/// The title of the attachment that carries a report's findings as text.
pub const FINDINGS: &str = "Findings";

/// A Provenance's id: the report's UUID and the revision.
pub fn provenance_id(report: ReportId, revision: u32) -> String {
    format!("{report}-{revision}")
}

/// Who signed one revision of a report: its author, and the node on their behalf.
pub fn provenance(report: ReportId, rev: &ReportRevision) -> r::Provenance {
    let participant = |code: &str, display: &str| {
        Some(CodeableConcept::code(Coding::new(
            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            code,
            display,
        )))
    };
    let (code, display) = if rev.revision <= 1 {
        ("CREATE", "create")
    } else {
        ("UPDATE", "revise")
    };
    let author = Reference::named("Practitioner", rev.author_id, &rev.author_name);
    r::Provenance {
        id: Some(provenance_id(report, rev.revision)),
        target: vec![Reference::named(
            "DiagnosticReport",
            report,
            &format!("revision {}", rev.revision),
        )],
        recorded: Some(instant(rev.signature.signed_at)),
        activity: Some(CodeableConcept::code(Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            code,
            display,
        ))),
        agent: vec![
            r::ProvenanceAgent {
                r#type: participant("author", "Author"),
                who: author.clone(),
            },
            r::ProvenanceAgent {
                r#type: participant("verifier", "Verifier"),
                who: node_reference(&rev.signature.node),
            },
        ],
        signature: vec![Signature {
            r#type: vec![Coding::new(
                "urn:iso-astm:E1762-95:2013",
                "1.2.840.10065.1.12.1.1",
                "Author's Signature",
            )],
            when: Some(instant(rev.signature.signed_at)),
            who: Some(author),
            on_behalf_of: None,
            sig_format: None,
            data: Some(rev.signature.value.clone()),
        }],
    }
}

/// A consent's id: one per patient and peer, the same on every export.
pub fn consent_id(patient: PatientId, peer: &str) -> String {
    uuid::Uuid::new_v5(&patient.0, peer.as_bytes()).to_string()
}

/// A patient's document as FHIR's DocumentReference, its current version's file inline (the
/// SHA-256 stays out of `attachment.hash`, which FHIR defines as SHA-1).
pub fn document_reference(
    d: &PatientDocument,
    current: &DocumentVersion,
    file: &[u8],
) -> r::DocumentReference {
    r::DocumentReference {
        id: Some(d.id.to_string()),
        meta: meta(i64::from(current.version), current.added_at),
        status: "current".into(),
        category: d
            .tags
            .iter()
            .map(|t| CodeableConcept {
                coding: Vec::new(),
                text: Some(t.clone()),
            })
            .collect(),
        subject: Reference::to("Patient", d.patient_id),
        date: Some(instant(current.added_at)),
        author: vec![Reference {
            display: Some(current.added_by_name.clone()),
            ..Reference::to("Practitioner", current.added_by)
        }],
        description: Some(d.title.clone()),
        content: vec![r::DocumentReferenceContent {
            attachment: Attachment {
                content_type: Some(current.media_type.as_str().to_owned()),
                data: Some(BASE64.encode(file)),
                size: Some(current.size),
                title: current.file_name.clone().or_else(|| Some(d.title.clone())),
                creation: Some(instant(current.added_at)),
                ..Attachment::default()
            },
        }],
    }
}

/// A study the PACS holds, as FHIR's ImagingStudy; `None` while it has no patient (FHIR's
/// ImagingStudy needs its subject: a study on the reconciliation list is not one yet).
pub fn imaging_study(s: &ImagingStudy, node: &str) -> Option<r::ImagingStudy> {
    let patient = s.patient_id?;
    let mut identifier = vec![Identifier::new(
        system::DICOM_UID,
        format!("urn:oid:{}", s.study_uid),
    )];
    if !s.accession.is_empty() && s.order_id.is_some() {
        identifier.push(Identifier::new(
            system::accession(node),
            s.accession.clone(),
        ));
    }
    Some(r::ImagingStudy {
        id: Some(s.id.to_string()),
        meta: Some(Meta {
            version_id: Some(s.version.to_string()),
            last_updated: Some(instant(s.received_at)),
        }),
        identifier,
        status: "available".into(),
        modality: s
            .modalities
            .iter()
            .map(|m| Coding {
                system: Some(system::DICOM_CODES.into()),
                code: Some(m.clone()),
                display: None,
            })
            .collect(),
        subject: Reference::to("Patient", patient),
        started: s.study_date.map(|d| d.to_string()),
        number_of_series: Some(s.series_count),
        number_of_instances: Some(s.instance_count),
        description: (!s.description.is_empty()).then(|| s.description.clone()),
    })
}

/// Every consent of ours is about a patient's privacy (`Consent.scope`)…
fn privacy_scope() -> CodeableConcept {
    CodeableConcept::code(Coding::new(
        "http://terminology.hl7.org/CodeSystem/consentscope",
        "patient-privacy",
        "Privacy Consent",
    ))
}

/// …and the patient's own (`Consent.category`, LOINC).
fn patient_consent_category() -> CodeableConcept {
    CodeableConcept::code(Coding::new(
        "http://loinc.org",
        "59284-0",
        "Patient Consent",
    ))
}

/// A patient's consent that their reports may be sent to `peer`.
pub fn consent(c: &Consent) -> r::Consent {
    r::Consent {
        id: Some(consent_id(c.patient_id, &c.peer)),
        meta: Some(Meta {
            version_id: None,
            last_updated: Some(instant(c.recorded_at)),
        }),
        status: Some("active".into()),
        scope: Some(privacy_scope()),
        category: vec![patient_consent_category()],
        patient: Some(Reference::to("Patient", c.patient_id)),
        date_time: Some(instant(c.recorded_at)),
        performer: vec![Reference {
            display: Some(c.recorded_by.clone()),
            ..Reference::default()
        }],
        policy: vec![r::ConsentPolicy {
            uri: Some(system::SHARE_REPORTS_POLICY.into()),
        }],
        provision: Some(r::ConsentProvision {
            r#type: Some("permit".into()),
            actor: vec![r::ConsentActor {
                role: CodeableConcept::code(Coding::new(
                    PARTICIPATION,
                    "IRCP",
                    "information recipient",
                )),
                reference: node_reference(&c.peer),
            }],
            action: vec![CodeableConcept::code(Coding::new(
                "http://terminology.hl7.org/CodeSystem/consentaction",
                "disclose",
                "Disclose",
            ))],
            ..r::ConsentProvision::default()
        }),
    }
}

const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/// A grant of access to a doctor at another hospital, as the Consent the patient gave (or, for
/// emergency access, the home hospital's policy gave for them): permit, for its period, to the
/// doctor and their organisation, for the scopes' resource types and the purpose; `inactive`
/// once revoked or past its period at `now`. `None` while the request has no grant.
pub fn access_consent(a: &IncomingAccess, node: &str, now: DateTime<Utc>) -> Option<r::Consent> {
    let grant = a.grant_id?;
    let (starts, expires) = (a.starts_at?, a.expires_at?);
    let in_force = a.state == AccessState::Granted && a.revoked_at.is_none() && now < expires;
    let performer = match a.approved_by.as_deref() {
        Some("emergency") => node_reference(node),
        Some("front-desk") => Reference {
            display: Some(format!("the patient, at the front desk of {node}")),
            ..Reference::to("Patient", a.patient_id)
        },
        _ => Reference::to("Patient", a.patient_id),
    };
    let purpose = match a.purpose {
        AccessPurpose::Treatment => Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "TREAT",
            "treatment",
        ),
        AccessPurpose::Emergency => Coding::new(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "ETREAT",
            "Emergency Treatment",
        ),
    };
    let mut class: Vec<Coding> = a
        .scopes
        .iter()
        .filter_map(|s| AccessScope::parse(s).ok())
        .map(|s| Coding {
            system: Some("http://hl7.org/fhir/resource-types".into()),
            code: Some(s.resource.as_str().into()),
            display: None,
        })
        .collect();
    class.dedup();
    Some(r::Consent {
        id: Some(grant.to_string()),
        meta: Some(Meta {
            version_id: Some(a.version.to_string()),
            last_updated: Some(instant(a.revoked_at.unwrap_or(starts))),
        }),
        status: Some(if in_force { "active" } else { "inactive" }.into()),
        scope: Some(privacy_scope()),
        category: vec![patient_consent_category()],
        patient: Some(Reference::to("Patient", a.patient_id)),
        date_time: Some(instant(starts)),
        performer: vec![performer],
        policy: vec![r::ConsentPolicy {
            uri: Some(system::ACCESS_POLICY.into()),
        }],
        provision: Some(r::ConsentProvision {
            r#type: Some("permit".into()),
            actor: vec![
                r::ConsentActor {
                    role: CodeableConcept::code(Coding::new(
                        PARTICIPATION,
                        "PRCP",
                        "primary information recipient",
                    )),
                    reference: Reference {
                        display: Some(a.practitioner_name.clone()),
                        ..Reference::default()
                    },
                },
                r::ConsentActor {
                    role: CodeableConcept::code(Coding::new(
                        PARTICIPATION,
                        "IRCP",
                        "information recipient",
                    )),
                    reference: Reference {
                        display: Some(a.organisation.clone()),
                        ..node_reference(&a.peer)
                    },
                },
            ],
            action: vec![CodeableConcept::code(Coding::new(
                "http://terminology.hl7.org/CodeSystem/consentaction",
                "access",
                "Access",
            ))],
            period: Some(Period {
                start: Some(instant(starts)),
                end: Some(instant(a.revoked_at.unwrap_or(expires).min(expires))),
            }),
            purpose: vec![purpose],
            class,
        }),
    })
}

/// FHIR's AuditEvent.action for one of the node's action names, by its verb.
fn audit_action(action: &str) -> &'static str {
    let verb = action.rsplit('.').next().unwrap_or(action);
    match verb {
        "create" | "register" | "book" | "record" | "send" | "import" => "C",
        "read" | "search" | "list" | "export" | "snapshot" | "pdf" | "everything" => "R",
        "delete" | "revoke" | "withdraw" => "D",
        "update" | "save" | "amend" | "finalise" | "confirm" | "decline" | "reschedule"
        | "cancel" | "check-in" | "complete" | "no-show" | "entered-in-error" => "U",
        _ => "E",
    }
}

fn actor_reference(actor: &str) -> Reference {
    match actor.split_once(':') {
        Some(("staff", id)) => Reference::to("Practitioner", id),
        Some(("kiosk", id)) => Reference {
            identifier: Some(Identifier::new(system::KIOSK, id)),
            display: Some(format!("kiosk {id}")),
            ..Reference::default()
        },
        Some(("peer", name)) => node_reference(name),
        _ => Reference {
            display: Some(actor.to_owned()),
            ..Reference::default()
        },
    }
}

fn entity_reference(entity: &str) -> Reference {
    let to = |t: &str, id: &str| Reference::to(t, id);
    match entity.split_once('/') {
        Some(("patient", id)) => to("Patient", id),
        Some(("appointment", id)) => to("Appointment", id),
        Some(("report", id)) => to("DiagnosticReport", id),
        Some(("practitioner", id)) => to("Practitioner", id),
        _ => Reference {
            display: Some(entity.to_owned()),
            ..Reference::default()
        },
    }
}

/// One entry of the audit trail.
pub fn audit_event(e: &AuditEntry, node: &str) -> r::AuditEvent {
    let rec = &e.record;
    r::AuditEvent {
        id: Some(rec.seq.to_string()),
        extension: vec![string_extension(system::extension("audit-hash"), &e.hash)],
        r#type: Coding::new(
            "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "rest",
            "RESTful Operation",
        ),
        subtype: vec![Coding {
            system: Some(system::AUDIT_ACTION.into()),
            code: Some(rec.action.clone()),
            display: None,
        }],
        action: Some(audit_action(&rec.action).into()),
        recorded: Some(instant(rec.recorded_at)),
        outcome: Some(match rec.outcome {
            Outcome::Success => "0".into(),
            Outcome::Failure => "4".into(),
        }),
        outcome_desc: (!rec.detail.is_empty()).then(|| rec.detail.clone()),
        agent: vec![r::AuditAgent {
            who: Some(actor_reference(&rec.actor)),
            requestor: true,
            network: (!rec.source.is_empty()).then(|| r::AuditNetwork {
                address: Some(rec.source.clone()),
                r#type: Some("2".into()),
            }),
        }],
        source: r::AuditSource {
            site: Some(node.to_owned()),
            observer: node_reference(node),
        },
        entity: (!rec.entity.is_empty())
            .then(|| r::AuditEntity {
                what: Some(entity_reference(&rec.entity)),
            })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_map_by_verb() {
        assert_eq!(audit_action("patient.read"), "R");
        assert_eq!(audit_action("appointment.book"), "C");
        assert_eq!(audit_action("appointment.check-in"), "U");
        assert_eq!(audit_action("kiosk.revoke"), "D");
        assert_eq!(audit_action("session.create"), "C");
        assert_eq!(audit_action("audit.checkpoint"), "E");
    }

    #[test]
    fn a_consent_id_is_stable_per_patient_and_peer() {
        let p = PatientId::new();
        assert_eq!(consent_id(p, "a.example"), consent_id(p, "a.example"));
        assert_ne!(consent_id(p, "a.example"), consent_id(p, "b.example"));
        assert_ne!(
            consent_id(p, "a.example"),
            consent_id(PatientId::new(), "a.example")
        );
    }
}

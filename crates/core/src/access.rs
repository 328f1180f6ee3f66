//! Access across hospitals, through the node and only while it answers: a doctor's requests to
//! read a patient's record at another hospital, the code the patient gives them, and what the
//! grant lets them read there (the home hospital's FHIR resources, turned here into what the
//! patient page shows); and, at the home hospital, other hospitals' requests as the front desk
//! and the patient at a kiosk answer them, and who read what. Nothing is mirrored or queued:
//! records read elsewhere are shown while the grant lasts and never stored on this computer.

use base64::Engine as _;
use carebridge_fhir::Resource;
use carebridge_protocol::PatientId;
use carebridge_protocol::federation::access::{
    AccessDecision, AccessRead, AccessScope, IncomingAccess, NewRemoteAccess, RemoteAccess,
    ScopedResource,
};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Serialize;

use crate::SyncEngine;
use crate::error::CoreError;

/// A patient as the home hospital knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemotePatientView {
    /// Name as people read it.
    pub name: String,
    /// Birth date (`YYYY-MM-DD`).
    pub birth_date: Option<String>,
}

/// A signed report read at another hospital.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemoteReportView {
    /// Its title.
    pub title: String,
    /// `final` or `amended`.
    pub status: String,
    /// When it was signed.
    pub issued: Option<String>,
    /// Who signed it.
    pub author: Option<String>,
    /// The findings.
    pub findings: Option<String>,
    /// The conclusion.
    pub conclusion: Option<String>,
}

/// An appointment read at another hospital.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemoteAppointmentView {
    /// When it starts.
    pub start: Option<String>,
    /// Its FHIR status.
    pub status: String,
    /// Why.
    pub description: Option<String>,
    /// With whom.
    pub practitioner: Option<String>,
}

/// A letter or scan from another hospital.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemoteDocumentView {
    /// Its title.
    pub title: String,
    /// When its current version was added.
    pub date: Option<String>,
    /// What kind of file.
    pub content_type: Option<String>,
    /// Its size in bytes.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub size: Option<u64>,
}

/// What a grant let the doctor read at the home hospital, just now; or what another hospital
/// moved here with the patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct RemoteRecordView {
    /// The home hospital.
    pub organisation: String,
    /// When it was read.
    pub read_at: DateTime<Utc>,
    /// The patient, when the grant allows reading them.
    pub patient: Option<RemotePatientView>,
    /// Signed reports, when allowed.
    pub reports: Vec<RemoteReportView>,
    /// Appointments, when allowed.
    pub appointments: Vec<RemoteAppointmentView>,
    /// Letters and scans (a record moved here carries them).
    pub documents: Vec<RemoteDocumentView>,
}

fn text_attachment(a: &carebridge_fhir::datatypes::Attachment) -> Option<String> {
    let plain = a
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/plain"));
    let data = a.data.as_deref().filter(|_| plain)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl RemoteRecordView {
    /// Adds what one Bundle from the other hospital holds (a searchset read under a grant, or
    /// the collection a transfer brought).
    pub(crate) fn add(&mut self, bundle: &serde_json::Value) -> Result<(), CoreError> {
        let resource: Resource = serde_json::from_value(bundle.clone()).map_err(|e| {
            CoreError::Protocol(format!("the other hospital sent no FHIR Bundle: {e}"))
        })?;
        let Resource::Bundle(b) = resource else {
            return Err(CoreError::Protocol(
                "the other hospital sent no Bundle".into(),
            ));
        };
        for r in b.entry.into_iter().filter_map(|e| e.resource) {
            match r {
                Resource::Patient(p) => {
                    let name = p.name.first().map(|n| {
                        n.text.clone().unwrap_or_else(|| {
                            format!(
                                "{} {}",
                                n.given.join(" "),
                                n.family.clone().unwrap_or_default()
                            )
                        })
                    });
                    self.patient = Some(RemotePatientView {
                        name: name.unwrap_or_default().trim().to_owned(),
                        birth_date: p.birth_date,
                    });
                }
                Resource::DiagnosticReport(d) => self.reports.push(RemoteReportView {
                    title: d
                        .code
                        .and_then(|c| c.text)
                        .unwrap_or_else(|| "Report".into()),
                    status: d.status.unwrap_or_default(),
                    issued: d.issued,
                    author: d.performer.first().and_then(|p| p.display.clone()),
                    findings: d.presented_form.iter().find_map(text_attachment),
                    conclusion: d.conclusion,
                }),
                Resource::Appointment(a) => self.appointments.push(RemoteAppointmentView {
                    start: a.start,
                    status: a.status.unwrap_or_default(),
                    description: a.description,
                    practitioner: a
                        .participant
                        .iter()
                        .filter_map(|p| p.actor.as_ref())
                        .find(|r| {
                            r.reference
                                .as_deref()
                                .is_some_and(|x| x.starts_with("Practitioner/"))
                        })
                        .and_then(|r| r.display.clone()),
                }),
                Resource::DocumentReference(d) => {
                    let file = d.content.first().map(|c| &c.attachment);
                    self.documents.push(RemoteDocumentView {
                        title: d.description.unwrap_or_else(|| "Document".into()),
                        date: d.date,
                        content_type: file.and_then(|f| f.content_type.clone()),
                        size: file.and_then(|f| f.size),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl SyncEngine {
    /// The signed-in doctor's requests to read this patient's record elsewhere, newest first.
    pub async fn remote_access(&self, patient: PatientId) -> Result<Vec<RemoteAccess>, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/remote-access")))
            .await
    }

    /// Asks the patient's home hospital to read their record there.
    pub async fn request_remote_access(
        &self,
        patient: PatientId,
        request: &NewRemoteAccess,
    ) -> Result<RemoteAccess, CoreError> {
        let req = self.node_request(Method::POST, &format!("patients/{patient}/remote-access"));
        self.ask_node(req.json(request)).await
    }

    /// Passes on the one-time code the patient read out.
    pub async fn send_access_code(
        &self,
        request: uuid::Uuid,
        code: String,
    ) -> Result<RemoteAccess, CoreError> {
        let req = self.node_request(Method::POST, &format!("remote-access/{request}/code"));
        self.ask_node(req.json(&serde_json::json!({ "code": code })))
            .await
    }

    /// Reads what the grant of `request` (one of `patient`'s) allows, at the home hospital,
    /// now: every type its scopes name.
    pub async fn remote_records(
        &self,
        patient: PatientId,
        request: uuid::Uuid,
    ) -> Result<RemoteRecordView, CoreError> {
        let a = self
            .remote_access(patient)
            .await?
            .into_iter()
            .find(|a| a.id == request)
            .ok_or_else(|| CoreError::Protocol("no such request for this patient".into()))?;
        let mut types: Vec<ScopedResource> = a
            .scopes
            .iter()
            .filter_map(|s| AccessScope::parse(s).ok())
            .map(|s| s.resource)
            .collect();
        types.dedup();
        let mut view = RemoteRecordView {
            organisation: a.organisation.clone(),
            read_at: crate::clock::now(),
            patient: None,
            reports: Vec::new(),
            appointments: Vec::new(),
            documents: Vec::new(),
        };
        for t in types {
            let bundle: serde_json::Value = self
                .ask_node(self.node_request(
                    Method::GET,
                    &format!("remote-access/{request}/records/{}", t.as_str()),
                ))
                .await?;
            view.add(&bundle)?;
        }
        Ok(view)
    }

    /// Other hospitals' requests to read this patient's record here, newest first.
    pub async fn incoming_access(
        &self,
        patient: PatientId,
    ) -> Result<Vec<IncomingAccess>, CoreError> {
        self.ask_node(
            self.node_request(Method::GET, &format!("patients/{patient}/access-requests")),
        )
        .await
    }

    /// Who read this patient's record from another hospital, newest first.
    pub async fn access_reads(&self, patient: PatientId) -> Result<Vec<AccessRead>, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/access-reads")))
            .await
    }

    /// Allows (perhaps narrowed) or declines another hospital's request.
    pub async fn decide_access(
        &self,
        request: uuid::Uuid,
        decision: &AccessDecision,
    ) -> Result<IncomingAccess, CoreError> {
        let req = self.node_request(Method::POST, &format!("access-requests/{request}/decision"));
        self.ask_node(req.json(decision)).await
    }

    /// Revokes the grant that answered a request.
    pub async fn revoke_access(&self, request: uuid::Uuid) -> Result<IncomingAccess, CoreError> {
        let req = self.node_request(Method::POST, &format!("access-requests/{request}/revoke"));
        self.ask_node(req.json(&serde_json::json!({}))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_becomes_the_patient_their_signed_reports_appointments_and_documents() {
        let findings = base64::engine::general_purpose::STANDARD.encode("Meniscal tear.");
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "searchset", "total": 3,
            "entry": [
                {"resource": {"resourceType": "Patient", "name": [{"family": "Lovelace", "given": ["Ada"]}], "birthDate": "1980-12-10"}},
                {"resource": {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "Knee MRI"},
                    "issued": "2026-12-01T10:00:00Z", "performer": [{"display": "Dr Moreau"}], "conclusion": "Refer.",
                    "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": findings}, {"contentType": "application/pdf", "data": "JVBERg=="}]}},
                {"resource": {"resourceType": "Appointment", "status": "booked", "start": "2026-12-08T09:00:00Z", "description": "Follow-up",
                    "participant": [{"actor": {"reference": "Patient/1"}}, {"actor": {"reference": "Practitioner/2", "display": "Dr Moreau"}}]}},
                {"resource": {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": "Patient/1"},
                    "date": "2026-11-30T08:00:00Z", "description": "Referral letter",
                    "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERg==", "size": 5}}]}}
            ]
        });
        let mut view = RemoteRecordView {
            organisation: "St Mary's Hospital".into(),
            read_at: DateTime::UNIX_EPOCH,
            patient: None,
            reports: Vec::new(),
            appointments: Vec::new(),
            documents: Vec::new(),
        };
        view.add(&bundle).unwrap();
        assert_eq!(
            view.patient,
            Some(RemotePatientView {
                name: "Ada Lovelace".into(),
                birth_date: Some("1980-12-10".into())
            })
        );
        assert_eq!(view.reports.len(), 1);
        assert_eq!(view.reports[0].title, "Knee MRI");
        assert_eq!(view.reports[0].findings.as_deref(), Some("Meniscal tear."));
        assert_eq!(view.reports[0].author.as_deref(), Some("Dr Moreau"));
        assert_eq!(
            view.appointments[0].practitioner.as_deref(),
            Some("Dr Moreau")
        );
        assert_eq!(
            view.documents,
            vec![RemoteDocumentView {
                title: "Referral letter".into(),
                date: Some("2026-11-30T08:00:00Z".into()),
                content_type: Some("application/pdf".into()),
                size: Some(5),
            }]
        );
        assert!(
            view.add(&serde_json::json!({"resourceType": "Patient"}))
                .is_err()
        );
    }
}

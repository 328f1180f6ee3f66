//! `Patient/{id}/$everything`: the patient's whole record that the caller may see, as one
//! searchset Bundle: the patient, their appointments, reports with who signed each revision,
//! consents, and the practitioners these name.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carebridge_fhir::map::{self, Names};
use carebridge_fhir::{OperationOutcome, Resource};
use carebridge_protocol::appointment::Appointment;
use carebridge_protocol::document::{DocumentVersion, PatientDocument};
use carebridge_protocol::federation::payload::Consent;

use carebridge_protocol::patient::Patient;
use carebridge_protocol::practitioner::Practitioner;
use carebridge_protocol::report::{Report, ReportRevision, ReportStatus};
use carebridge_protocol::{PatientId, PractitionerId, ReportId};

use super::search::{ToRender, report_pdf_inputs, reports_as_resources};
use super::{FhirError, base_url, fhir_json};
use crate::api::extract::Caller;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::store::appointments::{self, AppointmentFilter, Scope};
use crate::store::federation::consents;
use crate::store::imaging::{self, PacsStudy};
use crate::store::search::Page;
use crate::store::{Tx, documents, patients, practitioners, reports};
use crate::visibility::{self, RecordKind};

/// Appointments read per page of a patient's record.
const PAGE: u32 = 1000;

pub(super) async fn everything(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    if raw
        .as_deref()
        .is_some_and(|q| !q.is_empty() && !q.starts_with("_format=json"))
    {
        return Err(FhirError::invalid("$everything takes no parameters here"));
    }
    let base = base_url(&node, &headers);
    let kiosk = matches!(caller.viewer, Viewer::Kiosk { .. });
    let may = if kiosk {
        Err(ApiError::forbidden("a kiosk may not use the FHIR API"))
    } else {
        caller.may_see(RecordKind::Patient)
    };
    let entity = format!("patient/{id}");
    caller
        .audit_refusal(&node, may, "patient.everything", entity.clone())
        .await?;
    let Ok(patient_id) = id.parse::<PatientId>() else {
        return Err(not_found(&id));
    };
    let viewer = caller.viewer;
    let include = Include {
        appointments: visibility::appointment_scope(&viewer),
        reports: if visibility::may_see_any(&viewer, RecordKind::Report) {
            Reports::All
        } else {
            Reports::None
        },
        consents: visibility::may_see_any(&viewer, RecordKind::Consent),
        imaging: visibility::may_see_any(&viewer, RecordKind::Imaging),
        documents: visibility::may_see_any(&viewer, RecordKind::Document),
    };
    let name = node.name().to_owned();
    let record = node
        .store
        .write(
            Some(caller.audit("patient.everything", entity)),
            move |ctx| {
                let record = gather(ctx, patient_id, &name, &include)?;
                if let Some(r) = &record {
                    ctx.set_detail(format!("FHIR $everything: {}", r.counts()));
                }
                Ok::<_, ApiError>(record)
            },
        )
        .await?;
    let Some(record) = record else {
        return Err(not_found(&id));
    };
    let out = resources(&node, record).await?;
    let bundle = carebridge_fhir::bundle::whole_record(
        &base,
        uuid::Uuid::new_v4().to_string(),
        map::instant(node.clock.now()),
        out,
    );
    Ok(fhir_json(StatusCode::OK, &Resource::Bundle(bundle)))
}

/// Which of a patient's reports go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reports {
    /// None.
    None,
    /// Every one the caller may see, drafts too.
    All,
    /// Only signed documents (final, amended): what leaves the hospital.
    Signed,
}

/// What of a patient's record goes in: what a caller may see, or what a transfer sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Include {
    /// Which appointments; `None`: none.
    pub appointments: Option<Scope>,
    /// Which reports.
    pub reports: Reports,
    /// The patient's consents to share.
    pub consents: bool,
    /// Their imaging studies.
    pub imaging: bool,
    /// Their letters and scans, each with its current file.
    pub documents: bool,
}

/// A patient's record as read in one transaction, before it is rendered as FHIR.
pub(crate) struct Gathered {
    patient: Patient,
    appointments: Vec<Appointment>,
    reports: Vec<Report>,
    pdf_inputs: Vec<Option<ToRender>>,
    revisions: Vec<(ReportId, ReportRevision)>,
    consents: Vec<Consent>,
    studies: Vec<PacsStudy>,
    documents: Vec<(PatientDocument, DocumentVersion, Vec<u8>)>,
    staff: Vec<Practitioner>,
}

impl Gathered {
    /// How much it holds, for the audit trail.
    pub fn counts(&self) -> String {
        format!(
            "{} appointment(s), {} report(s), {} consent(s), {} imaging study(ies), {} document(s)",
            self.appointments.len(),
            self.reports.len(),
            self.consents.len(),
            self.studies.len(),
            self.documents.len()
        )
    }
}

/// Reads a patient's record as `include` says; `None` when there is no such patient.
pub(crate) fn gather(
    tx: &Tx<'_>,
    patient_id: PatientId,
    node: &str,
    include: &Include,
) -> Result<Option<Gathered>, ApiError> {
    let Some(patient) = patients::get(tx, patient_id, node)? else {
        return Ok(None);
    };
    // Every appointment of theirs the caller may see, page by page.
    let mut appts = Vec::new();
    if let Some(scope) = include.appointments {
        let filter = AppointmentFilter {
            patient: Some(patient_id),
            ..AppointmentFilter::default()
        };
        loop {
            let page = Page {
                offset: u32::try_from(appts.len()).unwrap_or(u32::MAX),
                count: PAGE,
            };
            let found = appointments::find(tx, &filter, scope, &[], page)?;
            let last = found.items.len() < PAGE as usize;
            appts.extend(found.items);
            if last {
                break;
            }
        }
    }
    let (reps, inputs, revisions) = if include.reports == Reports::None {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let mut reps = reports::of_patient(tx, patient_id)?;
        if include.reports == Reports::Signed {
            reps.retain(|r| matches!(r.status, ReportStatus::Final | ReportStatus::Amended));
        }
        let inputs = report_pdf_inputs(tx, &reps, node)?;
        let mut revisions = Vec::new();
        for r in &reps {
            for rev in reports::revisions(tx, r.id)? {
                revisions.push((r.id, rev));
            }
        }
        (reps, inputs, revisions)
    };
    let cons = if include.consents {
        consents::list(tx, patient_id)?
    } else {
        Vec::new()
    };
    let studies = if include.imaging {
        imaging::studies_of(tx, patient_id)?
    } else {
        Vec::new()
    };
    let mut files = Vec::new();
    if include.documents {
        for d in documents::documents_of(tx, patient_id)? {
            if let Some((current, file)) = documents::content(tx, d.id, None)? {
                files.push((d, current, file));
            }
        }
    }
    let staff = practitioners::list(tx, None)?;
    Ok(Some(Gathered {
        patient,
        appointments: appts,
        reports: reps,
        pdf_inputs: inputs,
        revisions,
        consents: cons,
        studies,
        documents: files,
        staff,
    }))
}

/// The record as FHIR resources: the patient first, then what refers to them, then the staff
/// named. Signed reports' PDFs are rendered off the executor.
pub(crate) async fn resources(node: &Arc<Node>, g: Gathered) -> Result<Vec<Resource>, FhirError> {
    let node_name = node.name().to_owned();
    let mut named: BTreeSet<PractitionerId> =
        g.appointments.iter().map(|a| a.practitioner_id).collect();
    named.extend(g.reports.iter().map(|r| r.author_id));
    named.extend(g.documents.iter().map(|(_, v, _)| v.added_by));
    let mut out = vec![Resource::Patient(map::patient(&g.patient, &node_name))];
    for a in &g.appointments {
        let doctor = g.staff.iter().find(|d| d.id == a.practitioner_id);
        let names = Names {
            patient: None,
            practitioner: doctor.map(|d| d.display_name.as_str()),
        };
        out.push(Resource::Appointment(map::appointment(
            a, &node_name, names,
        )));
    }
    out.extend(reports_as_resources(node, g.reports, g.pdf_inputs).await?);
    out.extend(
        g.revisions
            .iter()
            .map(|(r, rev)| Resource::Provenance(map::provenance(*r, rev))),
    );
    out.extend(
        g.consents
            .iter()
            .map(|c| Resource::Consent(map::consent(c))),
    );
    out.extend(
        g.studies
            .iter()
            .filter_map(|s| map::imaging_study(&s.study, &node_name))
            .map(Resource::ImagingStudy),
    );
    out.extend(g.documents.iter().map(|(d, current, file)| {
        Resource::DocumentReference(map::document_reference(d, current, file))
    }));
    out.extend(
        g.staff
            .iter()
            .filter(|d| named.contains(&d.id))
            .map(|d| Resource::Practitioner(map::practitioner(d, &node_name))),
    );
    Ok(out)
}

fn not_found(id: &str) -> FhirError {
    FhirError::Outcome(
        StatusCode::NOT_FOUND,
        OperationOutcome::error("not-found", format!("no Patient with id {id}")),
    )
}

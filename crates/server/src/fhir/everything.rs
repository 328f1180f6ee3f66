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
use carebridge_protocol::{PatientId, PractitionerId};

use super::search::{report_pdf_inputs, reports_as_resources};
use super::{FhirError, base_url, fhir_json};
use crate::api::extract::Caller;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::store::appointments::{self, AppointmentFilter};
use crate::store::federation::consents;
use crate::store::imaging;
use crate::store::search::Page;
use crate::store::{patients, practitioners, reports};
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
    let scope = visibility::appointment_scope(&viewer);
    let sees_reports = visibility::may_see_any(&viewer, RecordKind::Report);
    let sees_consents = visibility::may_see_any(&viewer, RecordKind::Consent);
    let sees_imaging = visibility::may_see_any(&viewer, RecordKind::Imaging);
    let name = node.name().to_owned();
    let record = node
        .store
        .write(
            Some(caller.audit("patient.everything", entity)),
            move |ctx| {
                let Some(patient) = patients::get(ctx, patient_id, &name)? else {
                    return Ok(None);
                };
                // Every appointment of theirs the caller may see, page by page.
                let mut appts = Vec::new();
                if let Some(scope) = scope {
                    let filter = AppointmentFilter {
                        patient: Some(patient_id),
                        ..AppointmentFilter::default()
                    };
                    loop {
                        let page = Page {
                            offset: u32::try_from(appts.len()).unwrap_or(u32::MAX),
                            count: PAGE,
                        };
                        let found = appointments::find(ctx, &filter, scope, &[], page)?;
                        let last = found.items.len() < PAGE as usize;
                        appts.extend(found.items);
                        if last {
                            break;
                        }
                    }
                }
                let (reps, inputs, revisions) = if sees_reports {
                    let reps = reports::of_patient(ctx, patient_id)?;
                    let inputs = report_pdf_inputs(ctx, &reps, &name)?;
                    let mut revisions = Vec::new();
                    for r in &reps {
                        for rev in reports::revisions(ctx, r.id)? {
                            revisions.push((r.id, rev));
                        }
                    }
                    (reps, inputs, revisions)
                } else {
                    (Vec::new(), Vec::new(), Vec::new())
                };
                let cons = if sees_consents {
                    consents::list(ctx, patient_id)?
                } else {
                    Vec::new()
                };
                let studies = if sees_imaging {
                    imaging::studies_of(ctx, patient_id)?
                } else {
                    Vec::new()
                };
                let staff = practitioners::list(ctx, None)?;
                ctx.set_detail(format!(
                    "FHIR $everything: {} appointment(s), {} report(s), {} consent(s), {} imaging study(ies)",
                    appts.len(),
                    reps.len(),
                    cons.len(),
                    studies.len()
                ));
                Ok::<_, ApiError>(Some((
                    patient, appts, reps, inputs, revisions, cons, studies, staff,
                )))
            },
        )
        .await?;
    let Some((patient, appts, reps, inputs, revisions, cons, studies, staff)) = record else {
        return Err(not_found(&id));
    };
    let node_name = node.name().to_owned();
    let mut named: BTreeSet<PractitionerId> = appts.iter().map(|a| a.practitioner_id).collect();
    named.extend(reps.iter().map(|r| r.author_id));
    let mut out = vec![Resource::Patient(map::patient(&patient, &node_name))];
    for a in &appts {
        let doctor = staff.iter().find(|d| d.id == a.practitioner_id);
        let names = Names {
            patient: None,
            practitioner: doctor.map(|d| d.display_name.as_str()),
        };
        out.push(Resource::Appointment(map::appointment(
            a, &node_name, names,
        )));
    }
    out.extend(reports_as_resources(&node, reps, inputs).await?);
    out.extend(
        revisions
            .iter()
            .map(|(r, rev)| Resource::Provenance(map::provenance(*r, rev))),
    );
    out.extend(cons.iter().map(|c| Resource::Consent(map::consent(c))));
    out.extend(
        studies
            .iter()
            .filter_map(|s| map::imaging_study(&s.study, &node_name))
            .map(Resource::ImagingStudy),
    );
    out.extend(
        staff
            .iter()
            .filter(|d| named.contains(&d.id))
            .map(|d| Resource::Practitioner(map::practitioner(d, &node_name))),
    );
    let bundle = carebridge_fhir::bundle::whole_record(
        &base,
        uuid::Uuid::new_v4().to_string(),
        map::instant(node.clock.now()),
        out,
    );
    Ok(fhir_json(StatusCode::OK, &Resource::Bundle(bundle)))
}

fn not_found(id: &str) -> FhirError {
    FhirError::Outcome(
        StatusCode::NOT_FOUND,
        OperationOutcome::error("not-found", format!("no Patient with id {id}")),
    )
}

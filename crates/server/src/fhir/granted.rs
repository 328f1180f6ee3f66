//! What another hospital reads under a patient's grant: the patient, their signed reports or
//! their appointments, as FHIR resources in one searchset Bundle. Drafts never leave the
//! hospital; the read is recorded for the patient's "who looked at my record" and audited
//! under the grant's id, in the same transaction as it is made.

use std::sync::Arc;

use carebridge_fhir::Resource;
use carebridge_fhir::map::{self, Names};
use carebridge_protocol::federation::access::ScopedResource;

use super::FhirError;
use super::search::{report_pdf_inputs, reports_as_resources};
use crate::error::ApiError;
use crate::node::Node;
use crate::store::appointments::{self, AppointmentFilter, Scope};
use crate::store::federation::access::{self as stored, Grant};
use crate::store::search::Page;
use crate::store::{AuditDraft, patients, practitioners, reports};

/// Appointments read per page.
const PAGE: u32 = 1000;

/// Reads `resource` of the grant's patient for `peer`, records the read and audits it (`draft`
/// names the peer and its address); the Bundle's resources.
pub async fn read(
    node: &Arc<Node>,
    grant: &Grant,
    resource: ScopedResource,
    draft: AuditDraft,
) -> Result<Vec<Resource>, FhirError> {
    let name = node.name().to_owned();
    let patient_id = grant.patient_id;
    let grant_id = grant.id;
    let practitioner = grant.practitioner_id.clone();
    let found = node
        .store
        .write(Some(draft), move |ctx| {
            // Again in the transaction that reads: a revocation committed since the grant was
            // honoured is honoured here, not after one more read.
            if !stored::grant(ctx, grant_id)?.is_some_and(|g| g.active(ctx.now())) {
                return Err(ApiError::forbidden(
                    crate::federation::access::GrantRefusal::Ended.to_string(),
                ));
            }
            let patient = patients::get(ctx, patient_id, &name)?
                .ok_or_else(|| ApiError::not_found("patient"))?;
            let mut appts = Vec::new();
            let mut reps = Vec::new();
            let mut inputs = Vec::new();
            match resource {
                ScopedResource::Patient => {}
                ScopedResource::DiagnosticReport => {
                    reps = reports::of_patient(ctx, patient_id)?
                        .into_iter()
                        .filter(|r| r.status.is_sendable())
                        .collect();
                    inputs = report_pdf_inputs(ctx, &reps, &name)?;
                }
                ScopedResource::Appointment => {
                    let filter = AppointmentFilter {
                        patient: Some(patient_id),
                        ..AppointmentFilter::default()
                    };
                    loop {
                        let page = Page {
                            offset: u32::try_from(appts.len()).unwrap_or(u32::MAX),
                            count: PAGE,
                        };
                        let found = appointments::find(ctx, &filter, Scope::All, &[], page)?;
                        let last = found.items.len() < PAGE as usize;
                        appts.extend(found.items);
                        if last {
                            break;
                        }
                    }
                }
            }
            let count = match resource {
                ScopedResource::Patient => 1,
                ScopedResource::DiagnosticReport => reps.len(),
                ScopedResource::Appointment => appts.len(),
            };
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            stored::record_read(ctx, grant_id, resource.as_str(), count)?;
            ctx.set_entity(format!("grant/{grant_id}"));
            ctx.set_detail(format!(
                "read {} ×{count} of patient/{patient_id} for practitioner {practitioner}",
                resource.as_str()
            ));
            let staff = practitioners::list(ctx, None)?;
            Ok::<_, ApiError>((patient, appts, reps, inputs, staff))
        })
        .await?;
    let (patient, appts, reps, inputs, staff) = found;
    let node_name = node.name().to_owned();
    Ok(match resource {
        ScopedResource::Patient => vec![Resource::Patient(map::patient(&patient, &node_name))],
        ScopedResource::Appointment => appts
            .iter()
            .map(|a| {
                let doctor = staff.iter().find(|d| d.id == a.practitioner_id);
                Resource::Appointment(map::appointment(
                    a,
                    &node_name,
                    Names {
                        patient: None,
                        practitioner: doctor.map(|d| d.display_name.as_str()),
                    },
                ))
            })
            .collect(),
        ScopedResource::DiagnosticReport => reports_as_resources(node, reps, inputs).await?,
    })
}

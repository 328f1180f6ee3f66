//! Imaging: doctors order studies (each published on the PACS's worklist), read a patient's
//! orders and studies and a study's preview; reception or a doctor links a study that matched
//! nobody; Orthanc's script hints that a study is stable.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::imaging::{
    DICOM_FILE_MAX, ImagingOrder, ImagingStudy, ImagingStudyId, LinkStudy, NewImagingOrder,
    PatientImaging, StoredInstance,
};
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::{PatientId, ProblemType};
use sha2::{Digest, Sha256};

use crate::api::extract::{Caller, IdempotencyKey, Json, Path};
use crate::api::idempotency::{self, fingerprint};
use crate::error::ApiError;
use crate::imaging::{self, Imaging};
use crate::node::Node;
use crate::store::imaging as store;
use crate::store::patients;
use crate::visibility::RecordKind;

/// The node's PACS. A node without one has no imaging to order, store or show: a 404, as for
/// any record that is not there (a 5xx would say the node failed).
fn pacs(node: &Node) -> Result<&Imaging, ApiError> {
    node.imaging.as_ref().ok_or_else(|| {
        ApiError::new(
            ProblemType::NotFound,
            "this node has no PACS: set [imaging] in node.toml",
        )
    })
}

/// Orders an imaging study: the patient gets a medical record number if they had none, the
/// order an accession number, and the modality's worklist an entry.
#[utoipa::path(post, path = "/imaging/orders", tag = "imaging", request_body = NewImagingOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "The order", body = ImagingOrder),
              (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "The node has no PACS", body = Problem, content_type = "application/problem+json")))]
pub async fn create_imaging_order(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<NewImagingOrder>,
) -> Result<Response, ApiError> {
    let may = caller.staff(&[Role::Doctor]);
    let (me, _) = caller
        .audit_refusal(
            &node,
            may,
            "imaging.order",
            format!("patient/{}", req.patient_id),
        )
        .await?;
    pacs(&node)?;
    req.validate()
        .map_err(|(field, message)| ApiError::field(field, message))?;
    let id = req.id.unwrap_or_default();
    let fp = fingerprint("imaging.order", &req);
    let actor = caller.actor();
    let my_name = caller.name.clone();
    let name = node.name().to_owned();
    let (status, order) = node
        .store
        .write(
            Some(caller.audit("imaging.order", format!("patient/{}", req.patient_id))),
            move |ctx| {
                idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                    let p = patients::get(ctx, req.patient_id, &name)?
                        .ok_or_else(|| ApiError::field("patient_id", "no such patient"))?;
                    if let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)? {
                        return Err(ApiError::new(ProblemType::InvalidTransition, why));
                    }
                    if store::order(ctx, id)?.is_some() {
                        return Err(ApiError::new(
                            ProblemType::Conflict,
                            "an imaging order with that id already exists",
                        ));
                    }
                    let order = imaging::place_order(ctx, id, &req, me, &my_name)?;
                    Ok(order)
                })
            },
        )
        .await?;
    // The order is kept whatever happens to its worklist entry; the node writes every
    // scheduled order's entry again when it starts.
    if let Err(e) = imaging::publish(&node, order.clone()).await {
        tracing::warn!(error = %e, "an imaging order's worklist entry was not written");
    }
    Ok((status, axum::Json(order)).into_response())
}

/// A patient's imaging: their medical record number, orders and studies, newest first.
#[utoipa::path(get, path = "/patients/{id}/imaging", tag = "imaging", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "Orders and studies", body = PatientImaging),
              (status = 404, description = "No such patient", body = Problem, content_type = "application/problem+json")))]
pub async fn get_patient_imaging(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PatientId>,
) -> Result<axum::Json<PatientImaging>, ApiError> {
    let entity = format!("patient/{id}");
    let may = caller.may_see(RecordKind::Imaging);
    caller
        .audit_refusal(&node, may, "imaging.list", entity.clone())
        .await?;
    let name = node.name().to_owned();
    let pacs = node.imaging.is_some();
    let node2 = node.clone();
    let imaging = node
        .store
        .write(Some(caller.audit("imaging.list", entity)), move |ctx| {
            if patients::get(ctx, id, &name)?.is_none() {
                return Err(ApiError::not_found("patient"));
            }
            let orders = store::orders_of(ctx, id)?;
            let studies: Vec<ImagingStudy> = store::studies_of(ctx, id)?
                .into_iter()
                .map(|s| ImagingStudy {
                    viewer_url: node2.imaging.as_ref().and_then(|i| i.viewer_url(&s)),
                    ..s.study
                })
                .collect();
            ctx.set_detail(format!(
                "{} orders, {} studies",
                orders.len(),
                studies.len()
            ));
            Ok::<_, ApiError>(PatientImaging {
                mrn: store::mrn(ctx, id)?,
                orders,
                studies,
                pacs,
            })
        })
        .await?;
    Ok(axum::Json(imaging))
}

/// A study's preview image (a PNG Orthanc renders of one of its images). Images are clinical:
/// doctors only, whether or not the study has found its patient (reception reconciles by the
/// name, number and accession the modality sent).
#[utoipa::path(get, path = "/imaging/studies/{id}/preview", tag = "imaging", security(("bearer" = [])),
    params(("id" = String, Path, description = "Study id")),
    responses((status = 200, description = "The image", content_type = "image/png"),
              (status = 404, description = "No such study, or no image", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The PACS did not answer", body = Problem, content_type = "application/problem+json")))]
pub async fn get_study_preview(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ImagingStudyId>,
) -> Result<Response, ApiError> {
    let entity = format!("imaging-study/{id}");
    let may = caller.may_see(RecordKind::Imaging);
    caller
        .audit_refusal(&node, may, "imaging.preview", entity.clone())
        .await?;
    let imaging = pacs(&node)?;
    let instance = node
        .store
        .write(Some(caller.audit("imaging.preview", entity)), move |ctx| {
            let s = store::study(ctx, id)?.ok_or_else(|| ApiError::not_found("study"))?;
            if let Some(p) = s.study.patient_id {
                ctx.set_entity(format!("patient/{p}"));
            }
            ctx.set_detail(format!("study {}", s.study.study_uid));
            s.preview_instance
                .ok_or_else(|| ApiError::not_found("image in this study"))
        })
        .await?;
    let png = imaging
        .pacs
        .preview(&instance)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a study's preview could not be read");
            ApiError::new(
                ProblemType::Unavailable,
                "the PACS did not answer; try again",
            )
        })?
        .ok_or_else(|| ApiError::not_found("image in the PACS"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        png,
    )
        .into_response())
}

/// The studies that matched no patient, newest first.
#[utoipa::path(get, path = "/imaging/reconciliation", tag = "imaging", security(("bearer" = [])),
    responses((status = 200, description = "Studies waiting for their patient", body = Vec<ImagingStudy>)))]
pub async fn list_unmatched_studies(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<axum::Json<Vec<ImagingStudy>>, ApiError> {
    let may = caller.may_see(RecordKind::Reconciliation);
    caller
        .audit_refusal(&node, may, "imaging.reconciliation", "")
        .await?;
    let list = node
        .store
        .write(
            Some(caller.audit("imaging.reconciliation", "")),
            move |ctx| {
                let list: Vec<ImagingStudy> = store::unmatched(ctx)?
                    .into_iter()
                    .map(|s| s.study)
                    .collect();
                ctx.set_detail(format!("{} studies", list.len()));
                Ok::<_, ApiError>(list)
            },
        )
        .await?;
    Ok(axum::Json(list))
}

/// Links a study that matched nobody to its patient, by hand.
#[utoipa::path(post, path = "/imaging/studies/{id}/link", tag = "imaging", request_body = LinkStudy, security(("bearer" = [])),
    params(("id" = String, Path, description = "Study id")),
    responses((status = 200, description = "The study, now the patient's", body = ImagingStudy),
              (status = 404, description = "No such study or patient", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The study already belongs to a patient", body = Problem, content_type = "application/problem+json")))]
pub async fn link_study(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<ImagingStudyId>,
    Json(req): Json<LinkStudy>,
) -> Result<axum::Json<ImagingStudy>, ApiError> {
    let entity = format!("imaging-study/{id}");
    let may = caller.may_see(RecordKind::Reconciliation);
    caller
        .audit_refusal(&node, may, "imaging.link", entity.clone())
        .await?;
    let name = node.name().to_owned();
    let study = node
        .store
        .write(Some(caller.audit("imaging.link", entity)), move |ctx| {
            let p = patients::get(ctx, req.patient_id, &name)?
                .ok_or_else(|| ApiError::field("patient_id", "no such patient"))?;
            if let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)? {
                return Err(ApiError::new(ProblemType::InvalidTransition, why));
            }
            let Some(linked) = store::link_study(ctx, id, req.patient_id)? else {
                return Err(match store::study(ctx, id)? {
                    None => ApiError::not_found("study"),
                    Some(_) => ApiError::new(
                        ProblemType::Conflict,
                        "this study already belongs to a patient",
                    ),
                });
            };
            ctx.set_detail(format!(
                "study {} linked to patient/{}",
                linked.study.study_uid, req.patient_id
            ));
            imaging::announce(ctx, &linked.study, None)?;
            Ok::<_, ApiError>(linked.study)
        })
        .await?;
    Ok(axum::Json(study))
}

/// A DICOM file for the PACS, from a workstation's import (a CD, a scanner's folder): the node
/// passes it on, streamed, so that it arrives like a modality's and is matched as they are.
/// Doctors and reception import.
#[utoipa::path(post, path = "/imaging/instances", tag = "imaging", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/dicom", description = "A DICOM Part 10 file"),
    responses((status = 201, description = "Stored (or already stored) in the PACS", body = StoredInstance),
              (status = 413, description = "Larger than the node passes on", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "The node has no PACS", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The PACS did not answer", body = Problem, content_type = "application/problem+json")))]
pub async fn upload_dicom_instance(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, axum::Json<StoredInstance>), ApiError> {
    let may = caller.staff(&[Role::Doctor, Role::Reception]);
    caller
        .audit_refusal(&node, may, "imaging.upload", "")
        .await?;
    let imaging = pacs(&node)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DICOM_FILE_MAX) {
        crate::api::extract::discard(body).await;
        return Err(ApiError::new(
            ProblemType::PayloadTooLarge,
            format!("a DICOM file may be at most {DICOM_FILE_MAX} bytes"),
        ));
    }
    // Streamed: the file is never held whole in the node's memory. The count stops a body
    // without a length that runs on.
    let mut sent = 0u64;
    let stream = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        sent += chunk.len() as u64;
        if sent > DICOM_FILE_MAX {
            return Err(std::io::Error::other("the DICOM file is too large"));
        }
        Ok::<_, std::io::Error>(chunk)
    });
    let stored = imaging
        .pacs
        .store_instance(reqwest::Body::wrap_stream(stream))
        .await;
    let (outcome, answer) = match stored {
        Ok(Some(s)) => (
            Ok(format!("{} (study {})", s.status, s.study)),
            Ok(StoredInstance {
                already_stored: s.status == "AlreadyStored",
            }),
        ),
        Ok(None) => (
            Err("not a DICOM file".to_owned()),
            Err(ApiError::field(
                "body",
                "is not a DICOM file the PACS can read",
            )),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "a DICOM file was not passed on to the PACS");
            (
                Err("the PACS did not take it".to_owned()),
                Err(ApiError::new(
                    ProblemType::Unavailable,
                    "the PACS did not take the file; it can be sent again",
                )),
            )
        }
    };
    // The upload is audited either way (what it was, not who it shows: the PACS matches it).
    node.store
        .write(None, {
            let draft = caller.audit("imaging.upload", "");
            move |ctx| {
                let (result, detail) = match &outcome {
                    Ok(d) => (carebridge_protocol::audit::Outcome::Success, d.as_str()),
                    Err(d) => (carebridge_protocol::audit::Outcome::Failure, d.as_str()),
                };
                ctx.audit(&draft, "", result, detail)
            }
        })
        .await?;
    answer.map(|a| (StatusCode::CREATED, axum::Json(a)))
}

/// Orthanc's `OnStableStudy` script: wakes the node to read the change feed now. It carries no
/// data the node trusts; it needs the hint token of `node.toml`.
#[utoipa::path(post, path = "/imaging/hint", tag = "imaging",
    responses((status = 202, description = "The node reads the PACS's changes now"),
              (status = 401, description = "Not the hint token (or the node has no PACS)", body = Problem, content_type = "application/problem+json")))]
pub async fn imaging_hint(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared as digests, so the comparison's time says nothing about the token. A node
    // without a PACS answers as to a wrong token: nothing is told before the token is right.
    let imaging = node.imaging.as_ref().filter(|i| {
        i.config.hint_token.as_deref().is_some_and(|t| {
            let (a, b) = (
                Sha256::digest(t.as_bytes()),
                Sha256::digest(given.as_bytes()),
            );
            a.iter()
                .zip(b.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
        })
    });
    let Some(imaging) = imaging else {
        return Err(ApiError::new(
            ProblemType::Unauthenticated,
            "send the hint token of node.toml as Authorization: Bearer <token>",
        ));
    };
    imaging.wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

//! Patients' documents: staff file a letter or a scan for a patient (the file is the body, what
//! describes it the query); doctors list a patient's documents and read any version's file.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carebridge_protocol::document::{
    DOCUMENT_MAX, DocumentId, DocumentMedia, DocumentParams, NewDocument, PatientDocument,
    VersionQuery,
};
use carebridge_protocol::event::EventKind;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::text::Clean;
use carebridge_protocol::{PatientId, ProblemType};
use sha2::{Digest, Sha256};

use crate::api::extract::{self, Caller, IdempotencyKey, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::error::ApiError;
use crate::node::Node;
use crate::store::documents::{self as store, NewVersion};
use crate::store::patients;
use crate::visibility::{self, RecordKind};

/// What kind of file the body is: its first bytes decide, and a declared type that says
/// otherwise is refused rather than believed.
fn media_of(headers: &HeaderMap, bytes: &[u8]) -> Result<DocumentMedia, ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let sniffed = DocumentMedia::sniff(bytes).ok_or_else(|| {
        ApiError::new(
            ProblemType::UnsupportedMediaType,
            "a document must be a PDF, PNG, JPEG or TIFF file",
        )
    })?;
    match DocumentMedia::parse(declared) {
        Some(d) if d != sniffed => Err(ApiError::new(
            ProblemType::UnsupportedMediaType,
            format!(
                "the file was sent as {} but is {}",
                d.as_str(),
                sniffed.as_str()
            ),
        )),
        _ => Ok(sniffed),
    }
}

/// Files a document for a patient. A title the patient already has makes a new version of that
/// document (the earlier ones kept); the same file as its newest version again changes nothing.
/// Doctors and reception file documents; only doctors read them.
#[utoipa::path(post, path = "/patients/{id}/documents", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id"), DocumentParams,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "The file: a PDF, PNG, JPEG or TIFF"),
    responses((status = 201, description = "The document, with the new version first", body = PatientDocument),
              (status = 200, description = "The same file was already its newest version", body = PatientDocument),
              (status = 404, description = "No such patient", body = Problem, content_type = "application/problem+json"),
              (status = 413, description = "Larger than a document may be", body = Problem, content_type = "application/problem+json"),
              (status = 415, description = "Not a PDF or an image", body = Problem, content_type = "application/problem+json")))]
pub async fn add_document(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Path(patient): Path<PatientId>,
    Query(params): Query<DocumentParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let entity = format!("patient/{patient}");
    let may = caller.staff(&[Role::Doctor, Role::Reception]);
    let (me, _) = caller
        .audit_refusal(&node, may, "document.add", entity.clone())
        .await?;
    let mut doc = NewDocument::from(params);
    doc.clean().map_err(ApiError::fields)?;
    doc.validate()
        .map_err(|(field, message)| ApiError::field(field, message))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            ProblemType::PayloadTooLarge,
            format!("a document may be at most {} MiB", DOCUMENT_MAX >> 20),
        )
    };
    if declared.is_some_and(|n| n > DOCUMENT_MAX) {
        extract::discard(body).await;
        return Err(too_large());
    }
    let limit = usize::try_from(DOCUMENT_MAX).unwrap_or(usize::MAX);
    let bytes = extract::body_within(body, limit)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Err(ApiError::field("body", "the file is empty"));
    }
    let media = media_of(&headers, &bytes)?;
    // 20 MiB take a while to digest: off the async threads.
    let (bytes, sha) = tokio::task::spawn_blocking(move || {
        let sha = hex::encode(Sha256::digest(&bytes));
        (bytes, sha)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let fp = fingerprint("document.add", &(patient, &doc, &sha));
    let actor = caller.actor();
    let my_name = caller.name.clone();
    let name = node.name().to_owned();
    let (status, (made, document)) = node
        .store
        .write(Some(caller.audit("document.add", entity)), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                let p = patients::get(ctx, patient, &name)?
                    .ok_or_else(|| ApiError::not_found("patient"))?;
                if let Some(why) = crate::federation::transfer::unchangeable(ctx, &p)? {
                    return Err(ApiError::new(ProblemType::InvalidTransition, why));
                }
                let existing = store::find_by_title(ctx, patient, &doc.title)?;
                let id = match existing {
                    Some(id) => {
                        let same = store::document(ctx, id)?
                            .and_then(|d| d.versions.first().map(|v| v.sha256 == sha))
                            .unwrap_or(false);
                        if same {
                            ctx.set_detail(format!("document/{id}: the same file again"));
                            let document = store::document(ctx, id)?
                                .ok_or_else(|| ApiError::not_found("document"))?;
                            return Ok((false, document));
                        }
                        id
                    }
                    None => {
                        let id = DocumentId::new();
                        store::insert_document(ctx, id, patient, &doc.title, &doc.tags)?;
                        id
                    }
                };
                let version = store::add_version(
                    ctx,
                    id,
                    NewVersion {
                        media_type: media,
                        file_name: doc.file_name.as_deref(),
                        sha256: &sha,
                        bytes: &bytes,
                        added_by: me,
                        added_by_name: &my_name,
                    },
                    &doc.tags,
                )?;
                let document =
                    store::document(ctx, id)?.ok_or_else(|| ApiError::not_found("document"))?;
                ctx.set_detail(format!(
                    "document/{id} version {version} ({}, {} bytes)",
                    media.as_str(),
                    bytes.len()
                ));
                ctx.emit(
                    EventKind::DocumentAdded,
                    visibility::audience(RecordKind::Document),
                    &document,
                )?;
                Ok((true, document))
            })
        })
        .await?;
    // A file already kept is answered 200: nothing new was made.
    let status = if made { status } else { StatusCode::OK };
    // Reception files without reading back: it learns of the version it filed, not of the
    // document's others (their file names and who added them).
    let document = if caller.may_see(RecordKind::Document).is_ok() {
        document
    } else {
        PatientDocument {
            versions: document.versions.into_iter().take(1).collect(),
            ..document
        }
    };
    Ok((status, axum::Json(document)).into_response())
}

/// A patient's documents with every version (what describes the files, not the files), the
/// one last added to first.
#[utoipa::path(get, path = "/patients/{id}/documents", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, description = "The documents", body = Vec<PatientDocument>),
              (status = 404, description = "No such patient", body = Problem, content_type = "application/problem+json")))]
pub async fn list_documents(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(patient): Path<PatientId>,
) -> Result<axum::Json<Vec<PatientDocument>>, ApiError> {
    let entity = format!("patient/{patient}");
    let may = caller.may_see(RecordKind::Document);
    caller
        .audit_refusal(&node, may, "document.list", entity.clone())
        .await?;
    let name = node.name().to_owned();
    let list = node
        .store
        .write(Some(caller.audit("document.list", entity)), move |ctx| {
            if patients::get(ctx, patient, &name)?.is_none() {
                return Err(ApiError::not_found("patient"));
            }
            let list = store::documents_of(ctx, patient)?;
            ctx.set_detail(format!("{} documents", list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    Ok(axum::Json(list))
}

/// A document's file: the newest version, or the one asked for. Every read is audited.
#[utoipa::path(get, path = "/documents/{id}/content", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Document id"), VersionQuery),
    responses((status = 200, description = "The file, as it was filed", content(
                  (Vec<u8> = "application/pdf"), (Vec<u8> = "image/png"),
                  (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/tiff"))),
              (status = 404, description = "No such document or version", body = Problem, content_type = "application/problem+json")))]
pub async fn get_document_content(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<DocumentId>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let entity = format!("document/{id}");
    let may = caller.may_see(RecordKind::Document);
    caller
        .audit_refusal(&node, may, "document.read", entity.clone())
        .await?;
    let (version, bytes) = node
        .store
        .write(Some(caller.audit("document.read", entity)), move |ctx| {
            let doc = store::document(ctx, id)?.ok_or_else(|| ApiError::not_found("document"))?;
            ctx.set_entity(format!("patient/{}", doc.patient_id));
            let found = store::content(ctx, id, q.version)?
                .ok_or_else(|| ApiError::not_found("version of this document"))?;
            ctx.set_detail(format!("document/{id} version {}", found.0.version));
            Ok::<_, ApiError>(found)
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, version.media_type.as_str().to_owned()),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (
                header::HeaderName::from_static("x-document-version"),
                version.version.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

//! `POST /fhir/R4` with a Bundle: a `transaction` applies every entry or none, in one store
//! transaction; a `batch` applies each entry on its own and says what became of each.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use carebridge_fhir::resources::{Bundle, BundleEntry, BundleEntryResponse};
use carebridge_fhir::{OperationOutcome, Resource};
use carebridge_protocol::practitioner::Role;

use super::import::{self, Disposition, Entry, Importer, Refusal, Resolved};
use super::{FhirError, base_url, fhir_json};
use crate::api::extract::Caller;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;

/// What became of each entry, by its position in the Bundle.
type Outcomes = Vec<(usize, Result<Disposition, Refusal>)>;

fn status_of(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Conflict(_) => StatusCode::CONFLICT,
        Refusal::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn issue_of(r: &Refusal, index: usize) -> OperationOutcome {
    let code = match r {
        Refusal::Invalid(_) => "business-rule",
        Refusal::Conflict(_) => "conflict",
        Refusal::Store(_) => "exception",
    };
    OperationOutcome::error_at(code, r.to_string(), &format!("Bundle.entry[{index}]"))
}

/// `POST /fhir/R4`: imports a transaction or batch Bundle. Admins import: moving records in
/// from another system is theirs to do.
pub(super) async fn post_bundle(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, FhirError> {
    let admin = match caller.viewer {
        Viewer::Staff {
            id,
            role: Role::Admin,
        } => Ok(id),
        _ => Err(ApiError::forbidden("importing is for admins")),
    };
    let me = caller
        .audit_refusal(&node, admin, "fhir.import", "")
        .await?;
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence == "application/fhir+json" || essence == "application/json"
        });
    if !json_body {
        return Err(FhirError::Outcome(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OperationOutcome::error("not-supported", "send the Bundle as application/fhir+json"),
        ));
    }
    let bundle: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| FhirError::invalid(format!("the body is not JSON: {e}")))?;
    if bundle["resourceType"] != "Bundle" {
        return Err(FhirError::invalid(
            "POST /fhir/R4 takes a Bundle of type transaction or batch",
        ));
    }
    let kind = bundle["type"].as_str().unwrap_or("").to_owned();
    if kind != "transaction" && kind != "batch" {
        return Err(FhirError::invalid(format!(
            "a Bundle of type `{kind}` is not processed here; send a transaction or a batch"
        )));
    }
    for (i, e) in bundle["entry"].as_array().into_iter().flatten().enumerate() {
        let method = e["request"]["method"].as_str().unwrap_or("POST");
        if !(method == "POST" || method == "PUT") {
            return Err(FhirError::Outcome(
                StatusCode::BAD_REQUEST,
                OperationOutcome::error_at(
                    "not-supported",
                    format!("{method} is not supported in an import; create with POST"),
                    &format!("Bundle.entry[{i}].request"),
                ),
            ));
        }
    }
    // Each entry is read on its own: one this node cannot read is refused by itself in a
    // batch, and fails the whole of a transaction.
    let (entries, unreadable) = import::entries_of_value(&bundle);
    if kind == "transaction"
        && let Some((index, refusal)) = unreadable.first()
    {
        return Err(FhirError::Outcome(
            StatusCode::BAD_REQUEST,
            issue_of(refusal, *index),
        ));
    }
    let count = entries.len();
    let base = base_url(&node, &headers);
    let mut outcomes = if kind == "transaction" {
        all_or_nothing(&node, &caller, me, entries).await?
    } else {
        each_alone(&node, &caller, me, entries).await?
    };
    outcomes.extend(unreadable.into_iter().map(|(i, r)| (i, Err(r))));
    outcomes.sort_by_key(|(i, _)| *i);
    let answer = Bundle {
        r#type: format!("{kind}-response"),
        entry: outcomes
            .into_iter()
            .map(|(index, r)| {
                let response = match r {
                    Ok(d) => BundleEntryResponse {
                        status: match d {
                            Disposition::Created(_) => "201 Created".into(),
                            Disposition::Matched(_) => "200 OK".into(),
                        },
                        location: Some(d.location().to_owned()),
                        etag: None,
                        outcome: None,
                    },
                    Err(refusal) => BundleEntryResponse {
                        status: format!("{}", status_of(&refusal)),
                        location: None,
                        etag: None,
                        outcome: Some(Box::new(Resource::OperationOutcome(issue_of(
                            &refusal, index,
                        )))),
                    },
                };
                BundleEntry {
                    full_url: response.location.as_ref().map(|l| format!("{base}/{l}")),
                    response: Some(response),
                    ..BundleEntry::default()
                }
            })
            .collect(),
        ..Bundle::default()
    };
    tracing::debug!(entries = count, kind = %kind, "FHIR import answered");
    Ok(fhir_json(StatusCode::OK, &Resource::Bundle(answer)))
}

/// Every entry in one store transaction; the first refusal rolls all of it back.
async fn all_or_nothing(
    node: &Arc<Node>,
    caller: &Caller,
    me: carebridge_protocol::PractitionerId,
    entries: Vec<Entry>,
) -> Result<Outcomes, FhirError> {
    let draft = caller.audit("fhir.import", "");
    let n = node.clone();
    let result = node
        .store
        .write(Some(draft.clone()), move |ctx| {
            let mut resolved = Resolved::default();
            resolved.scan(&entries);
            let imp = Importer {
                node: n.name(),
                tz: n.tz,
                signing_key: &n.signing_key,
                by: Some(me),
                audit: &draft,
                match_by_name: true,
            };
            let mut out = Vec::with_capacity(entries.len());
            for e in import::in_dependency_order(entries) {
                // The first refusal fails the job, so that the store rolls every entry back.
                let d = import::apply(ctx, &imp, &mut resolved, &e)
                    .map_err(|r| EntryRefused(e.index, r))?;
                out.push((e.index, Ok(d)));
            }
            let created = out
                .iter()
                .filter(|(_, d)| matches!(d, Ok(Disposition::Created(_))))
                .count();
            ctx.set_detail(format!(
                "transaction: {} entries, {created} created, {} matched",
                out.len(),
                out.len() - created
            ));
            out.sort_by_key(|(i, _)| *i);
            Ok::<_, EntryRefused>(out)
        })
        .await;
    result.map_err(|EntryRefused(index, refusal)| {
        FhirError::Outcome(status_of(&refusal), issue_of(&refusal, index))
    })
}

/// An entry's refusal as a write job's error: the store rolls the job back.
#[derive(Debug)]
struct EntryRefused(usize, Refusal);

impl From<crate::store::StoreError> for EntryRefused {
    fn from(e: crate::store::StoreError) -> Self {
        Self(0, e.into())
    }
}

impl std::fmt::Display for EntryRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bundle.entry[{}]: {}", self.0, self.1)
    }
}

/// Each entry in its own store transaction: a refusal leaves the others.
async fn each_alone(
    node: &Arc<Node>,
    caller: &Caller,
    me: carebridge_protocol::PractitionerId,
    entries: Vec<Entry>,
) -> Result<Outcomes, FhirError> {
    let draft = caller.audit("fhir.import", "");
    Ok(import::one_by_one(node, draft, Some(me), entries, |_| {}).await)
}

//! Records in HL7 FHIR R4, through the node's `/fhir/R4`: a patient's whole record saved to a
//! file (`$everything`), and records from another system imported with progress.
//!
//! An import is sent in batches (each entry applied on its own at the node, so one refused
//! entry leaves the rest), in the order records refer to each other: staff, schedules,
//! patients, appointments, reports. References to an entry of an earlier batch by its
//! `urn:uuid:` are rewritten to where the node put it, so a file that links its entries that
//! way imports whole across batches.

use std::collections::HashMap;
use std::path::Path;

use carebridge_protocol::PatientId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::engine::SyncEngine;
use crate::error::CoreError;

/// Entries per batch: a batch is one request, and progress moves once per batch.
const BATCH: usize = 100;

/// How long one batch may take at the node.
const BATCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "camelCase")
)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Entries in the file.
    pub entries: u32,
    /// New records.
    pub created: u32,
    /// Entries that were records the node already had (the same patient, say).
    pub matched: u32,
    /// Entries refused, each with why; nothing of them was applied.
    pub refused: Vec<RefusedEntry>,
}

/// One refused entry of an import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, rename_all = "camelCase")
)]
#[serde(rename_all = "camelCase")]
pub struct RefusedEntry {
    /// Its position in the file, from 1 (a Bundle's entry, or an NDJSON line).
    pub position: u32,
    /// Its resource type, when it had one.
    pub resource_type: Option<String>,
    /// Why, as the node said it.
    pub reason: String,
}

/// One entry of the file: its position, full URL and resource.
struct Entry {
    position: u32,
    full_url: Option<String>,
    resource: Value,
}

/// Reads a file: a Bundle's entries, one resource, or NDJSON lines. What is not a resource is
/// refused on the spot.
fn read(contents: &str) -> (Vec<Entry>, Vec<RefusedEntry>) {
    let refuse = |position, reason: String| RefusedEntry {
        position,
        resource_type: None,
        reason,
    };
    let trimmed = contents.trim_start();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(trimmed)
    {
        if v["resourceType"] == "Bundle" {
            let entries = v["entry"].as_array().cloned().unwrap_or_default();
            let mut out = Vec::new();
            let mut refused = Vec::new();
            for (i, e) in entries.into_iter().enumerate() {
                let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
                match e.get("resource") {
                    Some(r) if r.is_object() => out.push(Entry {
                        position,
                        full_url: e["fullUrl"].as_str().map(str::to_owned),
                        resource: r.clone(),
                    }),
                    _ => refused.push(refuse(position, "the entry has no resource".into())),
                }
            }
            return (out, refused);
        }
        return (
            vec![Entry {
                position: 1,
                full_url: None,
                resource: v,
            }],
            Vec::new(),
        );
    }
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => out.push(Entry {
                position,
                full_url: None,
                resource: v,
            }),
            _ => refused.push(refuse(
                position,
                format!("line {position} is not a FHIR resource"),
            )),
        }
    }
    (out, refused)
}

/// Points every `reference` that names an entry already imported at where the node put it.
fn rewrite_references(v: &mut Value, placed: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = child
                    && let Some(to) = placed.get(s.as_str())
                {
                    *s = to.clone();
                } else {
                    rewrite_references(child, placed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, placed)),
        _ => {}
    }
}

impl SyncEngine {
    /// Saves the patient's whole record that this user may see, as a FHIR Bundle, into a new
    /// file at `to`, and says how many bytes it holds (whole or not at all, as the audit export).
    pub async fn export_patient_record(
        &self,
        patient: PatientId,
        to: &Path,
    ) -> Result<u64, CoreError> {
        let req = self
            .fhir_request(Method::GET, &format!("Patient/{patient}/$everything"))
            .timeout(BATCH_TIMEOUT);
        let res = self.node_answer(req).await?;
        crate::admin::save_whole(res, to).await
    }

    /// Imports `contents` (a FHIR Bundle or resource, or NDJSON), telling `progress` how many
    /// entries are done of how many after each batch.
    pub async fn import_records(
        &self,
        contents: &str,
        mut progress: impl FnMut(u32, u32),
    ) -> Result<ImportSummary, CoreError> {
        let (mut entries, mut refused) = read(contents);
        entries.sort_by_key(|e| {
            (
                carebridge_fhir::import_rank(e.resource["resourceType"].as_str().unwrap_or("")),
                e.position,
            )
        });
        let total = u32::try_from(entries.len() + refused.len()).unwrap_or(u32::MAX);
        let mut summary = ImportSummary {
            entries: total,
            ..ImportSummary::default()
        };
        let mut done = u32::try_from(refused.len()).unwrap_or(0);
        progress(done, total);
        let mut placed: HashMap<String, String> = HashMap::new();
        // Staff, their roles and schedules go together in the first batch, whatever their
        // number: the node reads a practitioner's role and hours from the entries beside it.
        let staff = entries
            .iter()
            .take_while(|e| {
                let t = e.resource["resourceType"].as_str().unwrap_or("");
                carebridge_fhir::import_rank(t) < carebridge_fhir::import_rank("Patient")
            })
            .count();
        let (first, rest) = entries.split_at_mut(staff);
        let batches = std::iter::once(first)
            .filter(|b| !b.is_empty())
            .chain(rest.chunks_mut(BATCH));
        for batch in batches {
            let bundle = json!({
                "resourceType": "Bundle",
                "type": "batch",
                "entry": batch.iter_mut().map(|e| {
                    rewrite_references(&mut e.resource, &placed);
                    let t = e.resource["resourceType"].clone();
                    let mut entry = json!({"resource": e.resource, "request": {"method": "POST", "url": t}});
                    if let Some(u) = &e.full_url {
                        entry["fullUrl"] = Value::String(u.clone());
                    }
                    entry
                }).collect::<Vec<_>>(),
            });
            let req = self
                .fhir_request(Method::POST, "")
                .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
                .timeout(BATCH_TIMEOUT)
                .body(bundle.to_string());
            let answer: Value = self.node_answer(req).await?.json().await?;
            let results = answer["entry"].as_array().cloned().unwrap_or_default();
            for (e, r) in batch.iter().zip(results.iter().map(|r| &r["response"])) {
                let status = r["status"].as_str().unwrap_or("");
                if status.starts_with("201") || status.starts_with("200") {
                    if status.starts_with("201") {
                        summary.created += 1;
                    } else {
                        summary.matched += 1;
                    }
                    if let (Some(u), Some(at)) = (&e.full_url, r["location"].as_str()) {
                        placed.insert(u.clone(), at.to_owned());
                    }
                } else {
                    refused.push(RefusedEntry {
                        position: e.position,
                        resource_type: e.resource["resourceType"].as_str().map(str::to_owned),
                        reason: r["outcome"]["issue"][0]["diagnostics"]
                            .as_str()
                            .unwrap_or(status)
                            .to_owned(),
                    });
                }
            }
            done += u32::try_from(batch.len()).unwrap_or(0);
            progress(done, total);
        }
        refused.sort_by_key(|r| r.position);
        summary.refused = refused;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_to_imported_entries_point_where_the_node_put_them() {
        let mut v = json!({"participant": [{"actor": {"reference": "urn:uuid:a"}}, {"actor": {"reference": "Practitioner/x"}}]});
        let placed = HashMap::from([("urn:uuid:a".to_owned(), "Patient/1".to_owned())]);
        rewrite_references(&mut v, &placed);
        assert_eq!(v["participant"][0]["actor"]["reference"], "Patient/1");
        assert_eq!(v["participant"][1]["actor"]["reference"], "Practitioner/x");
    }

    #[test]
    fn a_file_is_a_bundle_a_resource_or_ndjson_and_bad_lines_are_refused_alone() {
        let (e, r) = read(
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"}},{}]}"#,
        );
        assert_eq!((e.len(), r.len()), (1, 1));
        assert_eq!(e[0].full_url.as_deref(), Some("urn:uuid:a"));
        assert_eq!(r[0].position, 2);
        let (e, r) = read(
            "{\"resourceType\":\"Patient\"}\nnot json\n\n{\"resourceType\":\"Practitioner\"}\n",
        );
        assert_eq!((e.len(), r.len()), (2, 1));
        assert_eq!(r[0].position, 2);
        assert!(
            carebridge_fhir::import_rank("Practitioner")
                < carebridge_fhir::import_rank("Appointment")
        );
        assert!(
            carebridge_fhir::import_rank("Appointment")
                < carebridge_fhir::import_rank("Observation")
        );
    }
}

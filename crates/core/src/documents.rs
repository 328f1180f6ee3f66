//! Patients' documents and files for the PACS, through the node and only while it answers:
//! filing a letter or a scan for a patient (a new version when the title is the patient's
//! already), listing a patient's documents and reading one's file; passing a DICOM file on to
//! the PACS. Nothing is mirrored or queued: a watched folder keeps its files until the node
//! acknowledged them.

use carebridge_protocol::PatientId;
use carebridge_protocol::document::{
    DocumentId, DocumentMedia, DocumentParams, NewDocument, PatientDocument,
};
use carebridge_protocol::imaging::StoredInstance;
use carebridge_protocol::patient::Patient;
use reqwest::Method;

use crate::SyncEngine;
use crate::error::CoreError;

/// A file as the node gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFile {
    /// Which version it is.
    pub version: u32,
    /// What kind of file.
    pub media_type: DocumentMedia,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// How long an upload of `len` bytes may take: the usual answer time, and a second for each MiB
/// (a slow link's pace), so a large file is not cut off as if the node had gone.
fn upload_time(len: u64) -> std::time::Duration {
    std::time::Duration::from_secs(30 + len / (1024 * 1024))
}

impl SyncEngine {
    /// Files `bytes` as a document of `patient`'s. `key` makes a repeat (after a lost answer)
    /// return the first answer; a file the document already has as its newest version is not
    /// kept twice either way.
    pub async fn add_document(
        &self,
        patient: PatientId,
        document: &NewDocument,
        media_type: DocumentMedia,
        bytes: Vec<u8>,
        key: &str,
    ) -> Result<PatientDocument, CoreError> {
        let req = self
            .node_request(Method::POST, &format!("patients/{patient}/documents"))
            .query(&DocumentParams::from(document))
            .timeout(upload_time(bytes.len() as u64))
            .header(reqwest::header::CONTENT_TYPE, media_type.as_str())
            .header(carebridge_protocol::IDEMPOTENCY_KEY, key)
            .body(bytes);
        self.ask_node(req).await
    }

    /// A patient's documents, each with every version, the one last added to first.
    pub async fn patient_documents(
        &self,
        patient: PatientId,
    ) -> Result<Vec<PatientDocument>, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/documents")))
            .await
    }

    /// A document's file: the newest version, or `version`.
    pub async fn document_file(
        &self,
        id: DocumentId,
        version: Option<u32>,
    ) -> Result<DocumentFile, CoreError> {
        let mut req = self.node_request(Method::GET, &format!("documents/{id}/content"));
        if let Some(v) = version {
            req = req.query(&[("version", v)]);
        }
        let res = self.node_answer(req).await?;
        let media_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(DocumentMedia::parse)
            .ok_or_else(|| CoreError::Protocol("a document of an unknown media type".into()))?;
        let version = res
            .headers()
            .get("x-document-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| CoreError::Protocol("a document without its version".into()))?;
        Ok(DocumentFile {
            version,
            media_type,
            bytes: res.bytes().await?.to_vec(),
        })
    }

    /// Passes a DICOM file of `len` bytes on to the node's PACS, where it arrives as a
    /// modality's would (and is matched to its patient the same way). The body may be a stream
    /// read from the disk.
    pub async fn send_dicom(
        &self,
        body: impl Into<reqwest::Body>,
        len: u64,
    ) -> Result<StoredInstance, CoreError> {
        let req = self
            .node_request(Method::POST, "imaging/instances")
            .timeout(upload_time(len))
            .header(reqwest::header::CONTENT_TYPE, "application/dicom")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.ask_node(req).await
    }

    /// The patient whose card carries `card_number`, as the node knows them.
    pub async fn patient_by_card(&self, card_number: &str) -> Result<Option<Patient>, CoreError> {
        let req = self
            .node_request(Method::GET, "patients")
            .query(&[("card_number", card_number)]);
        let found: Vec<Patient> = self.ask_node(req).await?;
        Ok(found.into_iter().next())
    }
}

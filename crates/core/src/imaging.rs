//! Imaging, through the node and only while it answers: a doctor orders a study (the node puts
//! it on the PACS's worklist), reads a patient's orders and studies and a study's preview;
//! reception or a doctor links a study that matched nobody. Nothing is mirrored or queued: the
//! PACS is the node's, and the live stream says when to read again ([`crate::changes`]).

use carebridge_protocol::PatientId;
use carebridge_protocol::imaging::{
    ImagingOrder, ImagingStudy, ImagingStudyId, LinkStudy, NewImagingOrder, PatientImaging,
};
use reqwest::Method;

use crate::SyncEngine;
use crate::admin::with_idempotency_key;
use crate::error::CoreError;

impl SyncEngine {
    /// Orders an imaging study for a patient.
    pub async fn order_imaging(&self, order: NewImagingOrder) -> Result<ImagingOrder, CoreError> {
        let req = self.node_request(Method::POST, "imaging/orders");
        self.ask_node(with_idempotency_key(req).json(&order)).await
    }

    /// A patient's imaging orders and studies, newest first.
    pub async fn patient_imaging(&self, patient: PatientId) -> Result<PatientImaging, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/imaging")))
            .await
    }

    /// A study's preview image (PNG), rendered by the PACS and passed on by the node.
    pub async fn study_preview(&self, study: ImagingStudyId) -> Result<Vec<u8>, CoreError> {
        let req = self.node_request(Method::GET, &format!("imaging/studies/{study}/preview"));
        let res = self.node_answer(req).await?;
        Ok(res.bytes().await?.to_vec())
    }

    /// The studies that matched no patient, newest first.
    pub async fn unmatched_studies(&self) -> Result<Vec<ImagingStudy>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "imaging/reconciliation"))
            .await
    }

    /// Links a study that matched nobody to its patient.
    pub async fn link_study(
        &self,
        study: ImagingStudyId,
        patient: PatientId,
    ) -> Result<ImagingStudy, CoreError> {
        let req = self.node_request(Method::POST, &format!("imaging/studies/{study}/link"));
        self.ask_node(req.json(&LinkStudy {
            patient_id: patient,
        }))
        .await
    }
}

//! Exchanges with peer organisations, through the node and only while it answers: the peers,
//! patients' consent to share, sending reports and following their transmissions, reports
//! received (an insurer's reviewers), and admin updates both ways. Nothing here is queued
//! offline: what crosses to another organisation is sealed and signed by the node, which
//! must have it before the user is told it is on its way.

use carebridge_protocol::federation::payload::{
    AdminUpdate, Consent, NewAdminUpdate, PeerSummary, ReceivedReports, SendReports, Transmission,
};
use carebridge_protocol::{PatientId, ReportId};
use reqwest::Method;

use crate::SyncEngine;
use crate::admin::with_idempotency_key;
use crate::error::CoreError;

impl SyncEngine {
    /// The organisations this node exchanges with.
    pub async fn peers(&self) -> Result<Vec<PeerSummary>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "peers")).await
    }

    /// A patient's recorded consents to share.
    pub async fn consents(&self, patient: PatientId) -> Result<Vec<Consent>, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/consents")))
            .await
    }

    /// Records that the patient agrees to share their reports with `peer`.
    pub async fn record_consent(
        &self,
        patient: PatientId,
        peer: String,
    ) -> Result<Consent, CoreError> {
        let req = self.node_request(Method::POST, &format!("patients/{patient}/consents"));
        self.ask_node(req.json(&serde_json::json!({ "peer": peer })))
            .await
    }

    /// Withdraws the patient's consent to share with `peer`.
    pub async fn withdraw_consent(
        &self,
        patient: PatientId,
        peer: String,
    ) -> Result<(), CoreError> {
        let req = self.node_request(
            Method::DELETE,
            &format!("patients/{patient}/consents/{peer}"),
        );
        self.tell_node(req).await
    }

    /// Sends signed reports of one consenting patient to `peer`: one transmission.
    pub async fn send_reports(
        &self,
        peer: String,
        report_ids: Vec<ReportId>,
    ) -> Result<Transmission, CoreError> {
        let req = self.node_request(Method::POST, "transmissions");
        self.ask_node(with_idempotency_key(req).json(&SendReports { peer, report_ids }))
            .await
    }

    /// Transmissions to peers, newest first: one patient's, or all.
    pub async fn transmissions(
        &self,
        patient: Option<PatientId>,
    ) -> Result<Vec<Transmission>, CoreError> {
        let mut req = self.node_request(Method::GET, "transmissions");
        if let Some(p) = patient {
            req = req.query(&[("patient_id", p.to_string())]);
        }
        self.ask_node(req).await
    }

    /// Reports received from hospitals (an insurer's reviewers), newest first.
    pub async fn received(&self) -> Result<Vec<ReceivedReports>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "received"))
            .await
    }

    /// Admin updates: those for this user's role (a hospital) or those sent (an insurer).
    pub async fn admin_updates(&self) -> Result<Vec<AdminUpdate>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "admin-updates"))
            .await
    }

    /// An insurer admin sends an update to a hospital.
    pub async fn send_admin_update(
        &self,
        update: NewAdminUpdate,
    ) -> Result<AdminUpdate, CoreError> {
        let req = self.node_request(Method::POST, "admin-updates");
        self.ask_node(with_idempotency_key(req).json(&update)).await
    }

    /// Acknowledges an update; the acknowledgement goes back to its sender.
    pub async fn acknowledge_update(&self, id: uuid::Uuid) -> Result<AdminUpdate, CoreError> {
        let req = self.node_request(Method::POST, &format!("admin-updates/{id}/acknowledge"));
        self.ask_node(req.json(&serde_json::json!({}))).await
    }
}

//! Moving a patient's record to another hospital, through the node and only while it answers:
//! the front desk authorises it with the patient in front of it and follows it until the other
//! hospital confirms; a doctor reads what other hospitals moved here. Nothing is queued offline:
//! a transfer needs the patient present and the node to answer at once.

use carebridge_protocol::PatientId;
use carebridge_protocol::federation::transfer::{NewTransfer, PatientTransfer, TransferredRecord};
use reqwest::Method;

use crate::SyncEngine;
use crate::access::RemoteRecordView;
use crate::error::CoreError;

impl SyncEngine {
    /// The patient's transfers to other hospitals, newest first.
    pub async fn transfers(&self, patient: PatientId) -> Result<Vec<PatientTransfer>, CoreError> {
        self.ask_node(self.node_request(Method::GET, &format!("patients/{patient}/transfers")))
            .await
    }

    /// Authorises moving the patient's record to another hospital.
    pub async fn start_transfer(
        &self,
        patient: PatientId,
        transfer: &NewTransfer,
    ) -> Result<PatientTransfer, CoreError> {
        let req = self.node_request(Method::POST, &format!("patients/{patient}/transfers"));
        self.ask_node(req.json(transfer)).await
    }

    /// What other hospitals moved here for the patient, oldest first, as the patient page
    /// shows it.
    pub async fn transferred_records(
        &self,
        patient: PatientId,
    ) -> Result<Vec<RemoteRecordView>, CoreError> {
        let records: Vec<TransferredRecord> = self
            .ask_node(self.node_request(
                Method::GET,
                &format!("patients/{patient}/transferred-records"),
            ))
            .await?;
        records
            .into_iter()
            .map(|r| {
                let mut view = RemoteRecordView {
                    organisation: r.organisation,
                    read_at: r.imported_at,
                    patient: None,
                    reports: Vec::new(),
                    appointments: Vec::new(),
                    documents: Vec::new(),
                };
                view.add(&r.bundle)?;
                Ok(view)
            })
            .collect()
    }
}

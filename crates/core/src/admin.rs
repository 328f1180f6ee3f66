//! What an admin does, through the node and only while it answers: staff accounts, kiosk
//! devices and the audit trail. None of it is queued offline: an account or a device secret
//! must exist on the node before anyone relies on it, and the admin sees the answer at once.

use std::path::Path;

use carebridge_protocol::audit::{AuditLine, AuditQuery};
use carebridge_protocol::kiosk::{KioskDevice, KioskRegistration, RegisterKiosk};
use carebridge_protocol::practitioner::{NewPractitioner, Practitioner, PractitionerUpdate};
use carebridge_protocol::{KioskDeviceId, PractitionerId};
use reqwest::Method;

use crate::SyncEngine;
use crate::error::CoreError;

impl SyncEngine {
    /// Every staff account, disabled ones included.
    pub async fn staff_accounts(&self) -> Result<Vec<Practitioner>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "practitioners"))
            .await
    }

    /// Creates a staff account.
    pub async fn create_staff_account(
        &self,
        account: NewPractitioner,
    ) -> Result<Practitioner, CoreError> {
        let req = self.node_request(Method::POST, "practitioners");
        self.ask_node(with_idempotency_key(req).json(&account))
            .await
    }

    /// Disables or enables an account, resets its password or renames it. `version` is the
    /// one the admin saw: a change made meanwhile by someone else is refused, not overwritten.
    pub async fn update_staff_account(
        &self,
        id: PractitionerId,
        version: i64,
        change: PractitionerUpdate,
    ) -> Result<Practitioner, CoreError> {
        let req = self
            .node_request(Method::PATCH, &format!("practitioners/{id}"))
            .header(reqwest::header::IF_MATCH, format!("\"{version}\""));
        self.ask_node(with_idempotency_key(req).json(&change)).await
    }

    /// Every registered kiosk device.
    pub async fn kiosk_devices(&self) -> Result<Vec<KioskDevice>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "kiosks"))
            .await
    }

    /// Registers a kiosk device; its secret is in the answer and nowhere else.
    pub async fn register_kiosk(&self, label: String) -> Result<KioskRegistration, CoreError> {
        let req = self.node_request(Method::POST, "kiosks");
        self.ask_node(with_idempotency_key(req).json(&RegisterKiosk { label }))
            .await
    }

    /// Revokes a kiosk device: it cannot sign in again and its sessions end.
    pub async fn revoke_kiosk(&self, id: KioskDeviceId) -> Result<(), CoreError> {
        let req = self.node_request(Method::DELETE, &format!("kiosks/{id}"));
        self.tell_node(with_idempotency_key(req)).await
    }

    /// Audit entries through `query`'s filters: oldest first after `query.after`, or newest
    /// first before `query.before`; at most `query.limit`; each with the names of who and what.
    pub async fn audit_trail(&self, query: AuditQuery) -> Result<Vec<AuditLine>, CoreError> {
        self.ask_node(self.node_request(Method::GET, "audit").query(&query))
            .await
    }

    /// Exports the entries through `query`'s filters as CSV into a new file at `to`, and
    /// says how many bytes it holds. The file appears whole or not at all: the node's answer
    /// is written beside it and renamed once complete (a cut transfer leaves nothing).
    pub async fn export_audit_trail(&self, query: AuditQuery, to: &Path) -> Result<u64, CoreError> {
        let req = self
            .node_request(Method::GET, "audit/export")
            .query(&query)
            // A whole trail takes longer than one answer's usual deadline.
            .timeout(EXPORT_TIMEOUT);
        let res = self.node_answer(req).await?;
        save_whole(res, to).await
    }
}

/// Writes an answer's body into a new file at `to` and says how many bytes it holds. The file
/// appears whole or not at all: the body is written beside it and linked into place once
/// complete (a cut transfer leaves nothing).
pub(crate) async fn save_whole(res: reqwest::Response, to: &Path) -> Result<u64, CoreError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .await
        .map_err(CoreError::File)?;
    let written = async {
        let mut body = res.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            // A cut transfer is the network's failure, not this computer's.
            let chunk = chunk.map_err(CoreError::Offline)?;
            file.write_all(&chunk).await.map_err(CoreError::File)?;
            n += chunk.len() as u64;
        }
        file.sync_all().await.map_err(CoreError::File)?;
        // Never over a file that exists: a hard link fails where a rename would replace.
        tokio::fs::hard_link(&part, to)
            .await
            .map_err(CoreError::File)?;
        Ok::<_, CoreError>(n)
    }
    .await;
    drop(file);
    let _ = tokio::fs::remove_file(&part).await;
    written
}

/// How long an export of the audit trail may take.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// A write sent once per user action: a retry of the same request cannot act twice.
pub(crate) fn with_idempotency_key(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
}

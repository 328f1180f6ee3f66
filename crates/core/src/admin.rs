//! What an admin does, through the node and only while it answers: staff accounts, kiosk
//! devices and the audit trail. None of it is queued offline: an account or a device secret
//! must exist on the node before anyone relies on it, and the admin sees the answer at once.

use carebridge_protocol::audit::{AuditEntry, AuditQuery};
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

    /// Audit entries: oldest first after `query.after`, or newest first before
    /// `query.before`; at most `query.limit`.
    pub async fn audit_trail(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, CoreError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(a) = query.after {
            params.push(("after", a.to_string()));
        }
        if let Some(b) = query.before {
            params.push(("before", b.to_string()));
        }
        if let Some(e) = query.entity {
            params.push(("entity", e));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        self.ask_node(self.node_request(Method::GET, "audit").query(&params))
            .await
    }
}

/// A write sent once per user action: a retry of the same request cannot act twice.
pub(crate) fn with_idempotency_key(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
}

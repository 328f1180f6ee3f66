//! The admin's commands: staff accounts, kiosk devices and the audit trail, through the node
//! (online only: the core says why).

use carebridge_core::protocol::audit::AuditQuery;
use carebridge_core::protocol::kiosk::{KioskDevice, KioskRegistration};
use carebridge_core::protocol::practitioner::{NewPractitioner, Practitioner, PractitionerUpdate};
use carebridge_core::protocol::{KioskDeviceId, PractitionerId};
use serde::Serialize;
use tauri::State;

use super::{CommandError, engine};
use crate::AppState;

/// Every staff account.
pub async fn staff_accounts(state: State<'_, AppState>) -> Result<Vec<Practitioner>, CommandError> {
    Ok(engine(&state).await?.staff_accounts().await?)
}

/// Creates a staff account.
pub async fn create_staff_account(
    state: State<'_, AppState>,
    account: NewPractitioner,
) -> Result<Practitioner, CommandError> {
    Ok(engine(&state).await?.create_staff_account(account).await?)
}

/// Disables or enables an account, resets its password or renames it.
pub async fn update_staff_account(
    state: State<'_, AppState>,
    id: PractitionerId,
    version: i64,
    change: PractitionerUpdate,
) -> Result<Practitioner, CommandError> {
    Ok(engine(&state)
        .await?
        .update_staff_account(id, version, change)
        .await?)
}

/// Every registered kiosk device.
pub async fn kiosk_devices(state: State<'_, AppState>) -> Result<Vec<KioskDevice>, CommandError> {
    Ok(engine(&state).await?.kiosk_devices().await?)
}

/// Registers a kiosk device; the answer holds its secret, shown once.
pub async fn register_kiosk(
    state: State<'_, AppState>,
    label: String,
) -> Result<KioskRegistration, CommandError> {
    Ok(engine(&state).await?.register_kiosk(label).await?)
}

/// Revokes a kiosk device.
pub async fn revoke_kiosk(
    state: State<'_, AppState>,
    id: KioskDeviceId,
) -> Result<(), CommandError> {
    Ok(engine(&state).await?.revoke_kiosk(id).await?)
}

/// One audit entry as the admin reads it.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    /// Its place in the chain.
    #[ts(type = "number")]
    pub seq: i64,
    /// When (ISO 8601, UTC).
    pub recorded_at: String,
    /// Who.
    pub actor: String,
    /// What, e.g. `appointment.create`.
    pub action: String,
    /// On which record.
    pub entity: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Details.
    pub detail: String,
    /// From where.
    pub source: String,
}

/// Audit entries newest first: the `limit` before entry `before` (from the newest when
/// absent).
pub async fn audit_trail(
    state: State<'_, AppState>,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<Vec<AuditRow>, CommandError> {
    let query = AuditQuery {
        after: None,
        // Above any sequence number: the newest page.
        before: Some(before.unwrap_or(i64::MAX)),
        entity: None,
        limit,
    };
    let entries = engine(&state).await?.audit_trail(query).await?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let r = e.record;
            AuditRow {
                seq: r.seq,
                recorded_at: r.recorded_at.to_rfc3339(),
                actor: r.actor,
                action: r.action,
                entity: r.entity,
                outcome: serde_json::to_value(r.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                detail: r.detail,
                source: r.source,
            }
        })
        .collect())
}

//! The admin's commands: staff accounts, kiosk devices and the audit trail, through the node
//! (online only: the core says why).

use carebridge_core::ClientCode;
use carebridge_core::protocol::audit::AuditQuery;
use carebridge_core::protocol::kiosk::{KioskDevice, KioskRegistration};
use carebridge_core::protocol::practitioner::{NewPractitioner, Practitioner, PractitionerUpdate};
use carebridge_core::protocol::{KioskDeviceId, PatientId, PractitionerId};
use carebridge_core::store::day_bounds;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, State};

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

/// One audit entry as the admin reads it: the chained facts, and who and what in words.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    /// Its place in the chain.
    #[ts(type = "number")]
    pub seq: i64,
    /// When (ISO 8601, UTC).
    pub recorded_at: String,
    /// Who: `staff:<id>`, `kiosk:<id>`, `peer:<name>`, `anonymous` or `node`.
    pub actor: String,
    /// The actor's name (a person's, a kiosk's label, a peer's), when the node knows it.
    pub actor_name: Option<String>,
    /// What, e.g. `appointment.book`: the UI words it through its catalogue.
    pub action: String,
    /// On which record, e.g. `appointment/<id>`, or empty.
    pub entity: String,
    /// The name of what was touched: the patient whose record it is, a staff member, a kiosk.
    pub entity_name: Option<String>,
    /// The patient whose record it touched, to filter by.
    pub patient: Option<PatientId>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Details.
    pub detail: String,
    /// From where.
    pub source: String,
}

/// What the admin filters the trail by. Days are the node's, inclusive at both ends.
#[derive(Debug, Default, Deserialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase", default)]
pub struct AuditFilter {
    /// Only this actor (`staff:<id>`, `kiosk:<id>`, …).
    pub actor: Option<String>,
    /// Only this action, or family of actions (`report`).
    pub action: Option<String>,
    /// Only entries on this patient's record.
    pub patient: Option<PatientId>,
    /// Only entries on the record of the patient with this card number.
    pub card_number: Option<String>,
    /// From this day on.
    pub from: Option<NaiveDate>,
    /// Up to and including this day.
    pub to: Option<NaiveDate>,
}

impl AuditFilter {
    fn query(self, time_zone: Tz) -> AuditQuery {
        AuditQuery {
            actor: self.actor,
            action: self.action,
            patient: self.patient,
            card_number: self.card_number,
            from: self.from.map(|d| day_bounds(d, time_zone).0),
            to: self.to.map(|d| day_bounds(d, time_zone).1),
            ..AuditQuery::default()
        }
    }
}

/// Audit entries through `filter`, newest first: the `limit` before entry `before` (from the
/// newest when absent).
pub async fn audit_trail(
    state: State<'_, AppState>,
    filter: AuditFilter,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<Vec<AuditRow>, CommandError> {
    let engine = engine(&state).await?;
    let query = AuditQuery {
        // Above any sequence number: the newest page.
        before: Some(before.unwrap_or(i64::MAX)),
        limit,
        ..filter.query(engine.time_zone())
    };
    let lines = engine.audit_trail(query).await?;
    Ok(lines
        .into_iter()
        .map(|l| {
            let r = l.entry.record;
            AuditRow {
                seq: r.seq,
                recorded_at: r.recorded_at.to_rfc3339(),
                actor: r.actor,
                actor_name: l.actor_name,
                action: r.action,
                entity: r.entity,
                entity_name: l.entity_name,
                patient: l.patient,
                outcome: r.outcome.as_str().to_owned(),
                detail: r.detail,
                source: r.source,
            }
        })
        .collect())
}

/// Where an export was saved.
#[derive(Debug, Serialize, ts_rs::TS)]
#[ts(export, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SavedExport {
    /// The file's full path.
    pub path: String,
    /// Its size in bytes.
    #[ts(type = "number")]
    pub bytes: u64,
}

/// Exports the trail through `filter` as CSV into the user's downloads folder (their home
/// when there is none), in a new file named after the node and the time.
pub async fn export_audit_trail(
    app: AppHandle,
    state: State<'_, AppState>,
    filter: AuditFilter,
) -> Result<SavedExport, CommandError> {
    let engine = engine(&state).await?;
    let folder = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| {
            CommandError::own(
                ClientCode::LocalFailure,
                format!("no folder to save the export in: {e}"),
            )
        })?;
    // A downloads folder the desktop names may not have been made yet.
    tokio::fs::create_dir_all(&folder).await.map_err(|e| {
        CommandError::own(
            ClientCode::LocalFailure,
            format!("{} cannot be made: {e}", folder.display()),
        )
    })?;
    let stamp = engine.now_at_node().format("%Y-%m-%d-%H%M%S");
    // The node's name is a DNS name; anything else in it is kept out of the file name.
    let node: String = engine
        .signed_in()
        .session
        .node
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let path = folder.join(format!("carebridge-audit-{node}-{stamp}.csv"));
    let bytes = engine
        .export_audit_trail(filter.query(engine.time_zone()), &path)
        .await?;
    Ok(SavedExport {
        path: path.display().to_string(),
        bytes,
    })
}

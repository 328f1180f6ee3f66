//! Kiosk devices, registered and revoked by admins.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carebridge_protocol::KioskDeviceId;
use carebridge_protocol::kiosk::{KioskDevice, KioskRegistration, RegisterKiosk};
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::text::LABEL_MAX;
use rand::RngCore;

use crate::api::extract::{Caller, IdempotencyKey, Json, Path};
use crate::api::idempotency::{self, fingerprint};
use crate::error::ApiError;
use crate::node::Node;
use crate::store::{kiosks, sessions};

/// Lists kiosk devices (admins only).
#[utoipa::path(get, path = "/kiosks", tag = "kiosks", security(("bearer" = [])),
    responses((status = 200, description = "Devices, newest first", body = Vec<KioskDevice>)))]
pub async fn list_kiosks(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<axum::Json<Vec<KioskDevice>>, ApiError> {
    caller.staff(&[Role::Admin])?;
    Ok(axum::Json(
        node.store
            .read(|c| kiosks::list(c).map_err(ApiError::from))
            .await?,
    ))
}

/// Registers a kiosk device; its secret is shown only in this answer.
#[utoipa::path(post, path = "/kiosks", tag = "kiosks", request_body = RegisterKiosk, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Registered", body = KioskRegistration)))]
pub async fn register_kiosk(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<RegisterKiosk>,
) -> Result<impl IntoResponse, ApiError> {
    caller.staff(&[Role::Admin])?;
    let label = req.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > LABEL_MAX {
        return Err(ApiError::field(
            "label",
            format!("must be 1 to {LABEL_MAX} characters"),
        ));
    }
    let fp = fingerprint("kiosk.register", &label);
    let actor = caller.actor();
    let (status, reg) = node
        .store
        .write(Some(caller.audit("kiosk.register", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                let secret = URL_SAFE_NO_PAD.encode(raw);
                let device = KioskDevice {
                    id: KioskDeviceId::new(),
                    label,
                    revoked: false,
                    registered_at: ctx.now(),
                };
                kiosks::insert(ctx, &device, &secret)?;
                ctx.set_entity(format!("kiosk/{}", device.id));
                ctx.set_detail(device.label.clone());
                Ok(KioskRegistration { device, secret })
            })
        })
        .await?;
    Ok((status, axum::Json(reg)))
}

/// Revokes a kiosk device: it cannot sign in again, and its sessions and streams end.
#[utoipa::path(delete, path = "/kiosks/{id}", tag = "kiosks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_kiosk(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<KioskDeviceId>,
) -> Result<StatusCode, ApiError> {
    caller.staff(&[Role::Admin])?;
    node.store
        .write(
            Some(caller.audit("kiosk.revoke", format!("kiosk/{id}"))),
            move |ctx| {
                if !kiosks::revoke(ctx, id)? {
                    return Err(ApiError::not_found("kiosk device"));
                }
                let n = sessions::delete_for_principal(ctx, id.0)?;
                ctx.set_detail(format!("{n} session(s) ended"));
                Ok(())
            },
        )
        .await?;
    node.hub.disconnect_principal(id.0);
    Ok(StatusCode::NO_CONTENT)
}

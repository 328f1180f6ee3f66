//! Staff accounts, managed by admins.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::practitioner::{
    NewPractitioner, Practitioner, PractitionerUpdate, Role, validate_password, validate_username,
};
use carebridge_protocol::problem::Problem;
use carebridge_protocol::text::DISPLAY_NAME_MAX;
use carebridge_protocol::{PractitionerId, ProblemType};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::extract::{Caller, IdempotencyKey, IfMatch, Json, Path, Query};
use crate::api::idempotency::{self, fingerprint};
use crate::api::with_etag;
use crate::config::NodeKind;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::practitioner;
use crate::store::{practitioners, sessions};
use crate::visibility;

/// Which accounts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PractitionerFilter {
    /// Only this role.
    #[param(value_type = Option<Role>)]
    pub role: Option<Role>,
}

/// Lists staff. Everyone signed in may list doctors (a kiosk shows them to patients); only
/// staff see the other roles, and only admins see disabled accounts.
#[utoipa::path(get, path = "/practitioners", tag = "practitioners", params(PractitionerFilter), security(("bearer" = [])),
    responses((status = 200, description = "Accounts by display name", body = Vec<Practitioner>)))]
pub async fn list_practitioners(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(f): Query<PractitionerFilter>,
) -> Result<axum::Json<Vec<Practitioner>>, ApiError> {
    let viewer = caller.viewer;
    let role = if visibility::sees_only_doctors(&viewer) {
        Some(Role::Doctor)
    } else {
        f.role
    };
    let admin = matches!(
        viewer,
        Viewer::Staff {
            role: Role::Admin,
            ..
        }
    );
    let list = node
        .store
        .read(move |c| practitioners::list(c, role).map_err(ApiError::from))
        .await?
        .into_iter()
        .filter(|p| admin || !p.disabled)
        .map(|p| visibility::practitioner_as_seen(&viewer, p))
        .collect();
    Ok(axum::Json(list))
}

/// Creates a staff account (admins only).
#[utoipa::path(post, path = "/practitioners", tag = "practitioners", request_body = NewPractitioner, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a repeat return the first answer")),
    responses((status = 201, description = "Created", body = Practitioner),
              (status = 409, description = "The username is taken", body = Problem, content_type = "application/problem+json")))]
pub async fn create_practitioner(
    State(node): State<Arc<Node>>,
    caller: Caller,
    key: IdempotencyKey,
    Json(req): Json<NewPractitioner>,
) -> Result<impl IntoResponse, ApiError> {
    caller.staff(&[Role::Admin])?;
    let username = req.username.trim().to_owned();
    validate_username(&username).map_err(|m| ApiError::field("username", m))?;
    validate_password(&req.password).map_err(|m| ApiError::field("password", m))?;
    let display = req.display_name.trim().to_owned();
    if display.is_empty() || display.chars().count() > DISPLAY_NAME_MAX {
        return Err(ApiError::field(
            "display_name",
            format!("must be 1 to {DISPLAY_NAME_MAX} characters"),
        ));
    }
    let allowed: &[Role] = match node.config.kind {
        NodeKind::Hospital => &[Role::Doctor, Role::Reception, Role::Admin],
        NodeKind::Insurer => &[Role::Reviewer, Role::Admin],
    };
    if !allowed.contains(&req.role) {
        return Err(ApiError::field(
            "role",
            format!(
                "a {} node has the roles {}",
                node.config.kind.as_str(),
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let password = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || practitioner::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let fp = fingerprint("practitioner.create", &(&username, &display, req.role));
    let actor = caller.actor();
    let role = req.role;
    let (status, p) = node
        .store
        .write(Some(caller.audit("practitioner.create", "")), move |ctx| {
            idempotency::once(ctx, &actor, &key, fp, StatusCode::CREATED, |ctx| {
                if practitioners::username_taken(ctx, &username)? {
                    return Err(ApiError::new(
                        ProblemType::Conflict,
                        format!("the username {username:?} is taken"),
                    ));
                }
                let p = Practitioner {
                    id: PractitionerId::new(),
                    username,
                    display_name: display,
                    role,
                    disabled: false,
                    version: 1,
                };
                practitioners::insert(ctx, &p, &hash, ctx.now().timestamp_millis())?;
                ctx.set_entity(format!("practitioner/{}", p.id));
                ctx.set_detail(format!("{} as {}", p.username, p.role.as_str()));
                Ok(p)
            })
        })
        .await?;
    Ok(with_etag(status, p.version, p))
}

/// Disables or enables an account, resets its password or renames it (admins only).
/// Disabling or resetting ends every session of the account, and its live streams.
#[utoipa::path(patch, path = "/practitioners/{id}", tag = "practitioners", request_body = PractitionerUpdate, security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id"), ("If-Match" = Option<String>, Header, description = "The version you last read")),
    responses((status = 200, description = "The account's new state", body = Practitioner),
              (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json")))]
pub async fn update_practitioner(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<PractitionerId>,
    if_match: IfMatch,
    Json(req): Json<PractitionerUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    let (me, _) = caller.staff(&[Role::Admin])?;
    if let Some(p) = &req.password {
        validate_password(p).map_err(|m| ApiError::field("password", m))?;
    }
    if req.disabled == Some(true) && id == me {
        return Err(ApiError::new(
            ProblemType::Validation,
            "you cannot disable your own account",
        ));
    }
    if let Some(d) = &req.display_name
        && (d.trim().is_empty() || d.chars().count() > DISPLAY_NAME_MAX)
    {
        return Err(ApiError::field(
            "display_name",
            format!("must be 1 to {DISPLAY_NAME_MAX} characters"),
        ));
    }
    let hash = match req.password.clone() {
        Some(pw) => Some(
            tokio::task::spawn_blocking(move || practitioner::hash_password(&pw))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??,
        ),
        None => None,
    };
    let (p, ended) = node
        .store
        .write(
            Some(caller.audit("practitioner.update", format!("practitioner/{id}"))),
            move |ctx| {
                let mut p =
                    practitioners::get(ctx, id)?.ok_or_else(|| ApiError::not_found("account"))?;
                if_match.check(&p, p.version)?;
                let mut what = Vec::new();
                if let Some(d) = req.disabled {
                    p.disabled = d;
                    what.push(if d { "disabled" } else { "enabled" });
                }
                if let Some(d) = req.display_name {
                    p.display_name = d.trim().to_owned();
                    what.push("renamed");
                }
                if hash.is_some() {
                    what.push("password reset");
                }
                p.version += 1;
                practitioners::update(ctx, &p, hash.as_deref())?;
                let ended = if p.disabled || hash.is_some() {
                    sessions::delete_for_principal(ctx, id.0)?
                } else {
                    0
                };
                ctx.set_detail(format!("{}; {ended} session(s) ended", what.join(", ")));
                Ok::<_, ApiError>((p, ended > 0 || req.disabled == Some(true)))
            },
        )
        .await?;
    if ended {
        node.hub.disconnect_principal(id.0);
    }
    Ok(with_etag(StatusCode::OK, p.version, p))
}

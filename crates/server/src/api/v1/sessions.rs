//! Signing in and out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use carebridge_protocol::ProblemType;
use carebridge_protocol::problem::Problem;
use carebridge_protocol::session::{KioskSignIn, Principal, Session, StaffSignIn};
use chrono::{DateTime, Utc};

use crate::api::extract::{Caller, Json, Source};
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::store::AuditDraft;
use crate::store::{kiosks, practitioners, sessions};
use crate::throttle::Attempt;
use crate::{practitioner, session};

fn refused() -> ApiError {
    ApiError::new(ProblemType::Unauthenticated, "wrong username or password")
}

/// Reserves a sign-in attempt for `account` at `source`, and one for `source` unless the
/// account signed in there lately (someone guessing from a shared address must not keep the
/// staff who work there out).
fn reserve<'n>(
    node: &'n Node,
    who: &'static str,
    account: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(Attempt<'n>, Option<Attempt<'n>>), ApiError> {
    let for_account = node
        .throttle_accounts
        .reserve(&format!("{account}|{source}"), now)
        .map_err(|wait| throttled(who, wait))?;
    let for_source = if node.known_sign_ins.is_known(account, source, now) {
        None
    } else {
        Some(
            node.throttle_sources
                .reserve(source, now)
                .map_err(|wait| throttled(who, wait))?,
        )
    };
    Ok((for_account, for_source))
}

fn throttled(who: &'static str, wait: u64) -> ApiError {
    crate::metrics::sign_in_refused(who, "throttled");
    ApiError::Throttled(wait)
}

/// Counts a decided sign-in: a failure against both; a success clears the account's count at
/// this address (never the address's: one good account must not reset a guesser's count)
/// and remembers the account there.
fn settle(
    node: &Node,
    accepted: bool,
    account: &str,
    source: &str,
    now: DateTime<Utc>,
    for_account: Attempt<'_>,
    for_source: Option<Attempt<'_>>,
) {
    if accepted {
        for_account.succeeded();
        drop(for_source);
        node.known_sign_ins.remember(account, source, now);
    } else {
        for_account.failed();
        if let Some(a) = for_source {
            a.failed();
        }
    }
}

/// Signs a staff user in and returns a bearer token.
#[utoipa::path(post, path = "/sessions", tag = "sessions", request_body = StaffSignIn,
    responses((status = 201, description = "Signed in", body = Session),
              (status = 401, description = "Wrong username or password, or the account is disabled", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many failed attempts for this account from this address, or from this address", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "Too many sign-ins at once; retry after `Retry-After`", body = Problem, content_type = "application/problem+json")))]
pub async fn create_session(
    State(node): State<Arc<Node>>,
    Source(source): Source,
    Json(req): Json<StaffSignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let now = node.clock.now();
    let account_key = req.username.trim().to_lowercase();
    // Both attempts are reserved before the password is checked, so that parallel guesses
    // cannot all pass the throttle before the first failure is recorded.
    let (for_account, for_source) = reserve(&node, "staff", &account_key, &source, now)?;
    let username = account_key.clone();
    let creds = node
        .store
        .read(move |c| practitioners::by_username(c, &username).map_err(ApiError::from))
        .await?;
    let password = req.password;
    let (creds, ok) = node
        .password_checks
        .run(move || {
            let hash = creds
                .as_ref()
                .map_or(practitioner::decoy_hash(), |c| c.password_hash.as_str());
            let ok = practitioner::verify_password(&password, hash);
            (creds, ok)
        })
        .await?;
    let draft = AuditDraft {
        actor: creds.as_ref().map_or("anonymous".into(), |c| {
            format!("staff:{}", c.practitioner.id)
        }),
        action: "session.create".into(),
        entity: creds.as_ref().map_or(String::new(), |c| {
            format!("practitioner/{}", c.practitioner.id)
        }),
        source: source.clone(),
    };
    let accepted = match creds {
        Some(c) if ok && !c.practitioner.disabled => Some(c.practitioner),
        _ => None,
    };
    if accepted.is_none() {
        crate::metrics::sign_in_refused("staff", "credentials");
    }
    settle(
        &node,
        accepted.is_some(),
        &account_key,
        &source,
        now,
        for_account,
        for_source,
    );
    let hours = i64::from(node.config.session_hours);
    let tried = account_key.clone();
    let session = node
        .store
        .write(Some(draft), move |ctx| {
            let Some(p) = accepted else {
                ctx.set_detail(format!("username {tried:?}"));
                return Err(refused());
            };
            let (token, hash) = session::new_token();
            let now = ctx.now();
            let expires_at = now + chrono::Duration::hours(hours);
            let viewer = Viewer::Staff {
                id: p.id,
                role: p.role,
            };
            sessions::insert(ctx, &hash, &viewer, now, expires_at)?;
            Ok((token, expires_at, p))
        })
        .await?;
    let (token, expires_at, p) = session;
    Ok((
        StatusCode::CREATED,
        axum::Json(Session {
            token,
            expires_at,
            principal: Principal::Staff {
                id: p.id,
                role: p.role,
                display_name: p.display_name,
            },
            node: node.name().to_owned(),
            time_zone: node.config.time_zone.clone(),
            node_kind: node.config.kind.as_str().to_owned(),
        }),
    ))
}

/// Signs a kiosk device in with its credential.
#[utoipa::path(post, path = "/kiosk-sessions", tag = "sessions", request_body = KioskSignIn,
    responses((status = 201, description = "Signed in", body = Session),
              (status = 401, description = "Unknown or revoked device, or wrong secret", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json")))]
pub async fn create_kiosk_session(
    State(node): State<Arc<Node>>,
    Source(source): Source,
    Json(req): Json<KioskSignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let now = node.clock.now();
    let key = format!("kiosk:{}", req.device_id);
    let (for_account, for_source) = reserve(&node, "kiosk", &key, &source, now)?;
    let id = req.device_id;
    let device = node
        .store
        .read(move |c| kiosks::get(c, id).map_err(ApiError::from))
        .await?;
    let accepted = match device {
        Some((d, hash)) if !d.revoked && hash == kiosks::secret_hash(&req.secret) => Some(d),
        _ => None,
    };
    if accepted.is_none() {
        crate::metrics::sign_in_refused("kiosk", "credentials");
    }
    settle(
        &node,
        accepted.is_some(),
        &key,
        &source,
        now,
        for_account,
        for_source,
    );
    let draft = AuditDraft {
        actor: format!("kiosk:{id}"),
        action: "session.create".into(),
        entity: format!("kiosk/{id}"),
        source,
    };
    let days = i64::from(node.config.kiosk_session_days);
    let (token, expires_at, d) = node
        .store
        .write(Some(draft), move |ctx| {
            let Some(d) = accepted else {
                return Err(ApiError::new(
                    ProblemType::Unauthenticated,
                    "unknown or revoked kiosk device, or wrong secret",
                ));
            };
            let (token, hash) = session::new_token();
            let now = ctx.now();
            let expires_at = now + chrono::Duration::days(days);
            sessions::insert(ctx, &hash, &Viewer::Kiosk { id: d.id }, now, expires_at)?;
            Ok((token, expires_at, d))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Session {
            token,
            expires_at,
            principal: Principal::Kiosk {
                id: d.id,
                label: d.label,
            },
            node: node.name().to_owned(),
            time_zone: node.config.time_zone.clone(),
            node_kind: node.config.kind.as_str().to_owned(),
        }),
    ))
}

/// Signs out: the token stops working and its live streams close.
#[utoipa::path(delete, path = "/sessions/current", tag = "sessions", security(("bearer" = [])),
    responses((status = 204, description = "Signed out")))]
pub async fn delete_current_session(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let hash = caller.session;
    node.store
        .write(Some(caller.audit("session.delete", "")), move |ctx| {
            sessions::delete(ctx, &hash)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    node.hub.disconnect_session(&hash);
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/me", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, description = "The signed-in principal", body = Principal)))]
pub async fn get_me(caller: Caller) -> axum::Json<Principal> {
    axum::Json(match caller.viewer {
        Viewer::Staff { id, role } => Principal::Staff {
            id,
            role,
            display_name: caller.name,
        },
        Viewer::Kiosk { id } => Principal::Kiosk {
            id,
            label: caller.name,
        },
    })
}

//! What both windows ask: who is signed in, the connection, locking, and the writes the node
//! refused.

use carebridge_core::error::duplicate_candidates;
use carebridge_core::store::{OutboxState, Write};
use carebridge_core::{ErrorCode, Status};

use tauri::State;

use super::{CommandError, RefusedWrite, SignedInView, engine, reader, view};
use crate::AppState;

/// Locks the session: until the user signs in again, every command that reads or changes
/// records is refused, and notifications leave out who and why.
pub async fn lock(state: State<'_, AppState>) -> Result<(), CommandError> {
    state
        .locked
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// The language the UI speaks (a BCP 47 tag, `en` or `nl`), for the desktop notifications to
/// speak it too.
pub async fn set_language(
    state: State<'_, AppState>,
    language: String,
) -> Result<(), CommandError> {
    let language = crate::messages::Language::from_tag(&language).ok_or_else(|| {
        CommandError::own(
            carebridge_core::ClientCode::Invalid,
            format!("language: {language:?} is not one the app speaks (en, nl)"),
        )
    })?;
    state.language.set(language);
    Ok(())
}

/// Who is signed in, if anyone (the window asks when it loads, e.g. after a reload).
pub async fn current_session(
    state: State<'_, AppState>,
) -> Result<Option<SignedInView>, CommandError> {
    Ok(state
        .engine
        .lock()
        .await
        .as_ref()
        .filter(|e| e.status().borrow().link != carebridge_core::Link::SignedOut)
        .map(|e| {
            let locked = state.locked.load(std::sync::atomic::Ordering::SeqCst);
            view(e.signed_in(), locked)
        }))
}

/// The connection state and the outbox's counts.
pub async fn connection_status(state: State<'_, AppState>) -> Result<Option<Status>, CommandError> {
    Ok(state
        .engine
        .lock()
        .await
        .as_ref()
        .map(|e| *e.status().borrow()))
}

/// The writes the node refused, with its reasons.
pub async fn refused_writes(state: State<'_, AppState>) -> Result<Vec<RefusedWrite>, CommandError> {
    let r = reader(&state).await?;
    Ok(r.store
        .outbox()
        .await?
        .into_iter()
        .filter(|i| i.state == OutboxState::Refused)
        .map(|i| {
            let (booking, registration) = match i.write {
                Write::Book { body, .. } => (Some(body), None),
                Write::RegisterPatient { body, .. } => (None, Some(body)),
                _ => (None, None),
            };
            RefusedWrite {
                seq: i.seq,
                kind: i.kind,
                record_id: i.record_id,
                code: ErrorCode::of_refusal(i.problem.as_ref()),
                reason: i
                    .problem
                    .as_ref()
                    .map(|p| p.detail.clone().unwrap_or_else(|| p.title.clone()))
                    .unwrap_or_default(),
                candidates: i
                    .problem
                    .as_ref()
                    .map(duplicate_candidates)
                    .unwrap_or_default(),
                problem: i.problem,
                booking,
                registration,
            }
        })
        .collect())
}

/// The user has read a refusal.
pub async fn dismiss_refused(state: State<'_, AppState>, seq: i64) -> Result<(), CommandError> {
    Ok(engine(&state).await?.dismiss_refused(seq).await?)
}

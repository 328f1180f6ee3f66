//! Signing in to a node and out again. The session (its bearer token) is kept in the profile's
//! encrypted store, never elsewhere.

use carebridge_protocol::session::{KioskSignIn, Principal, Session, StaffSignIn};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, problem_of};
use crate::store::LocalStore;

/// The HTTP client sign-in takes (one per app, reused).
pub use reqwest::Client as Http;

const SESSION_SETTING: &str = "session";
const NODE_SETTING: &str = "node_url";
/// A salted Argon2id hash of the signed-in user's password (PHC string), to unlock a locked
/// session while the node cannot be reached.
const UNLOCK_SETTING: &str = "unlock_verifier";

/// A signed-in session with the node it belongs to.
#[derive(Clone, Serialize, Deserialize)]
pub struct SignedIn {
    /// The node's base URL, e.g. `https://node.st-marys.example`.
    pub node_url: String,
    /// What the node answered to the sign-in.
    pub session: Session,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("node_url", &self.node_url)
            .field("principal", &self.session.principal)
            .finish_non_exhaustive()
    }
}

impl SignedIn {
    /// The node's time zone (UTC if the node named one this build does not know).
    pub fn time_zone(&self) -> Tz {
        self.session.time_zone.parse().unwrap_or(Tz::UTC)
    }

    /// Who is signed in.
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }
}

/// Trims the node URL the user typed to the form requests are built on.
pub fn normalise_node_url(url: &str) -> Result<String, CoreError> {
    let url = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CoreError::Invalid(format!("node address {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(CoreError::Invalid(format!(
            "node address {url:?}: give it as https://host[:port]"
        )));
    }
    Ok(url.to_owned())
}

async fn create(
    http: &reqwest::Client,
    node_url: &str,
    path: &str,
    body: &impl Serialize,
) -> Result<SignedIn, CoreError> {
    let node_url = normalise_node_url(node_url)?;
    let res = http
        .post(format!("{node_url}/api/v1/{path}"))
        .json(body)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(CoreError::Rejected(Box::new(problem_of(res).await)));
    }
    let session: Session = res.json().await?;
    Ok(SignedIn { node_url, session })
}

/// Signs a staff user in. A wrong password is [`CoreError::Rejected`] with the node's reason.
pub async fn sign_in_staff(
    http: &reqwest::Client,
    node_url: &str,
    username: &str,
    password: &str,
) -> Result<SignedIn, CoreError> {
    let body = StaffSignIn {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    create(http, node_url, "sessions", &body).await
}

/// Signs a registered kiosk device in.
pub async fn sign_in_kiosk(
    http: &reqwest::Client,
    node_url: &str,
    device: KioskSignIn,
) -> Result<SignedIn, CoreError> {
    create(http, node_url, "kiosk-sessions", &device).await
}

/// After a sign-in: opens (or creates) the profile for who signed in where, keeps the session
/// in it, and starts syncing. What the app does after the node said yes.
pub async fn start(
    profiles: &crate::Profiles,
    unlock: &crate::Unlock,
    signed_in: SignedIn,
    notifier: std::sync::Arc<dyn crate::Notifier>,
) -> Result<crate::SyncEngine, CoreError> {
    let who = match signed_in.principal() {
        carebridge_protocol::session::Principal::Staff { id, .. } => id.to_string(),
        carebridge_protocol::session::Principal::Kiosk { id, .. } => format!("kiosk-{id}"),
    };
    let profile = profiles
        .open(
            &crate::Profiles::name_for(&signed_in.node_url, &who),
            unlock,
        )
        .await?;
    profile.store.save_session(&signed_in).await?;
    Ok(crate::SyncEngine::start(profile.store, signed_in, notifier))
}

/// Ends the session on the node (best effort: an unreachable node lets the token expire) and
/// wipes it from the profile.
pub async fn sign_out(http: &reqwest::Client, store: &LocalStore) -> Result<(), CoreError> {
    if let Some(s) = store.signed_in().await? {
        let _ = http
            .delete(format!("{}/api/v1/sessions/current", s.node_url))
            .bearer_auth(&s.session.token)
            .send()
            .await;
    }
    store.set_setting(UNLOCK_SETTING, None).await?;
    store.set_setting(SESSION_SETTING, None).await
}

impl LocalStore {
    /// Keeps the session (and remembers the node) in the encrypted store.
    pub async fn save_session(&self, s: &SignedIn) -> Result<(), CoreError> {
        self.set_setting(NODE_SETTING, Some(s.node_url.clone()))
            .await?;
        self.set_setting(SESSION_SETTING, Some(serde_json::to_string(s)?))
            .await
    }

    /// The kept session, if signed in.
    pub async fn signed_in(&self) -> Result<Option<SignedIn>, CoreError> {
        Ok(self
            .setting(SESSION_SETTING)
            .await?
            .map(|s| serde_json::from_str(&s))
            .transpose()?)
    }

    /// The node this profile last signed in to.
    pub async fn remembered_node(&self) -> Result<Option<String>, CoreError> {
        self.setting(NODE_SETTING).await
    }

    /// Forgets the session (the node said it is over).
    pub async fn clear_session(&self) -> Result<(), CoreError> {
        self.set_setting(UNLOCK_SETTING, None).await?;
        self.set_setting(SESSION_SETTING, None).await
    }

    /// Keeps a verifier of the password the user just signed in with (salted Argon2id, in the
    /// encrypted store), so that their locked session can be unlocked without the node.
    pub async fn keep_unlock_password(&self, password: &str) -> Result<(), CoreError> {
        let password = password.to_owned();
        let phc = tokio::task::spawn_blocking(move || {
            use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
                .map_err(|e| CoreError::Task(format!("hashing the unlock password: {e}")))
        })
        .await
        .map_err(|e| CoreError::Task(e.to_string()))??;
        self.set_setting(UNLOCK_SETTING, Some(phc)).await
    }

    /// Whether `password` unlocks this profile's locked session; `None` when no verifier is
    /// kept (the node must be asked).
    pub async fn unlocks(&self, password: &str) -> Result<Option<bool>, CoreError> {
        let Some(phc) = self.setting(UNLOCK_SETTING).await? else {
            return Ok(None);
        };
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            let hash = PasswordHash::new(&phc)
                .map_err(|e| CoreError::Protocol(format!("stored unlock verifier: {e}")))?;
            Ok(Some(
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok(),
            ))
        })
        .await
        .map_err(|e| CoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{LocalKey, LocalStore};

    #[tokio::test]
    async fn the_kept_password_unlocks_and_no_other_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(&dir.path().join("p.db"), &LocalKey::random()).expect("store");
        assert_eq!(store.unlocks("anything").await.expect("read"), None);
        store
            .keep_unlock_password("correct horse")
            .await
            .expect("keep");
        assert_eq!(
            store.unlocks("correct horse").await.expect("read"),
            Some(true)
        );
        assert_eq!(
            store.unlocks("Correct horse").await.expect("read"),
            Some(false)
        );
        store.clear_session().await.expect("clear");
        assert_eq!(store.unlocks("correct horse").await.expect("read"), None);
    }
}

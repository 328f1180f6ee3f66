//! Profiles: one encrypted store per signed-in user or kiosk device, under the OS data
//! directory, each with its own key.
//!
//! The key is 256 random bits kept in the OS keychain (Secret Service, Keychain, Credential
//! Manager) through `keyring`. Where no keychain answers (a kiosk, CI, a headless box) it is
//! derived with Argon2id from a passphrase the caller gives. Which of the two a profile uses is
//! recorded beside it, so a profile made with the keychain never silently falls back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::CoreError;
use crate::store::{LocalKey, LocalStore};

/// The keychain service name profiles' keys are stored under.
const KEYCHAIN_SERVICE: &str = "carebridge";
/// How long to wait for the keychain before treating it as absent (a D-Bus activation that
/// never comes would otherwise hang sign-in).
const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a profile's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The OS keychain holds a random key.
    Keychain,
    /// Derived from a passphrase.
    Passphrase,
}

/// How to unlock profiles.
#[derive(Clone, Default)]
pub struct Unlock {
    /// Try the OS keychain first (off for kiosks and tests that must not touch it).
    pub use_keychain: bool,
    /// The passphrase for when there is no keychain (e.g. from `CAREBRIDGE_PASSPHRASE`).
    pub passphrase: Option<String>,
}

impl Unlock {
    /// The keychain first, then the passphrase in `CAREBRIDGE_PASSPHRASE` if it is set: what
    /// the app does.
    pub fn from_env() -> Self {
        Self {
            use_keychain: true,
            passphrase: std::env::var("CAREBRIDGE_PASSPHRASE")
                .ok()
                .filter(|p| !p.is_empty()),
        }
    }
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock")
            .field("use_keychain", &self.use_keychain)
            .field("passphrase", &self.passphrase.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The file beside the profiles naming the node last signed in to.
const LAST_NODE_FILE: &str = "last-node";

/// The profiles on this workstation.
#[derive(Debug, Clone)]
pub struct Profiles {
    root: PathBuf,
}

/// An opened profile.
#[derive(Debug, Clone)]
pub struct OpenProfile {
    /// Its name.
    pub name: String,
    /// Its store.
    pub store: LocalStore,
    /// Where its key came from.
    pub key_source: KeySource,
}

impl Profiles {
    /// Profiles kept under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder the profiles are kept in (the workstation's own settings go beside them).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Profiles under the OS data directory (`~/.local/share/carebridge/profiles` on Linux).
    pub fn in_os_data_dir() -> Result<Self, CoreError> {
        let base = dirs::data_dir()
            .ok_or_else(|| CoreError::Task("this system names no data directory".into()))?;
        Ok(Self::at(base.join("carebridge").join("profiles")))
    }

    /// Remembers the node last signed in to on this machine, for the next sign-in form. Only
    /// the address, beside the profiles: it names no one.
    pub fn remember_node(&self, node_url: &str) -> Result<(), CoreError> {
        let path = self.root.join(LAST_NODE_FILE);
        let tmp = path.with_extension("tmp");
        std::fs::create_dir_all(&self.root)
            .and_then(|()| std::fs::write(&tmp, node_url))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| CoreError::Task(format!("{}: {e}", path.display())))
    }

    /// The node last signed in to on this machine, if any.
    pub fn last_node(&self) -> Option<String> {
        let url = std::fs::read_to_string(self.root.join(LAST_NODE_FILE)).ok()?;
        let url = url.trim();
        (!url.is_empty()).then(|| url.to_owned())
    }

    /// The profile name for `who` (a username, or a kiosk device id) on a node: readable, and
    /// safe as a file name.
    pub fn name_for(node_url: &str, who: &str) -> String {
        let host = node_url
            .split("://")
            .nth(1)
            .unwrap_or(node_url)
            .trim_end_matches('/');
        format!("{host}--{who}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The names of the profiles on this workstation.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("local.db").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    /// The profile's database file.
    pub fn database(&self, name: &str) -> PathBuf {
        self.root.join(name).join("local.db")
    }

    /// Opens (creating) a profile. Blocking work (the keychain, Argon2, SQLCipher) runs on a
    /// blocking thread.
    pub async fn open(&self, name: &str, unlock: &Unlock) -> Result<OpenProfile, CoreError> {
        let dir = self.root.join(name);
        let name = name.to_owned();
        let unlock = unlock.clone();
        tokio::task::spawn_blocking(move || open_blocking(&dir, &name, &unlock))
            .await
            .map_err(|e| CoreError::Task(e.to_string()))?
    }

    /// *Sign out and forget this workstation*: deletes the profile's store and its key. The
    /// profile must not be open.
    pub async fn forget(&self, name: &str) -> Result<(), CoreError> {
        let dir = self.root.join(name);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            if read_source(&dir) == Some(KeySource::Keychain) {
                keychain(&name, KeychainOp::Delete)?;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(CoreError::Task(format!("{}: {e}", dir.display()))),
            }
        })
        .await
        .map_err(|e| CoreError::Task(e.to_string()))?
    }
}

fn read_source(dir: &Path) -> Option<KeySource> {
    match std::fs::read_to_string(dir.join("key-source")).ok()?.trim() {
        "keychain" => Some(KeySource::Keychain),
        "passphrase" => Some(KeySource::Passphrase),
        _ => None,
    }
}

fn write_source(dir: &Path, source: KeySource) -> Result<(), CoreError> {
    let s = match source {
        KeySource::Keychain => "keychain",
        KeySource::Passphrase => "passphrase",
    };
    std::fs::write(dir.join("key-source"), s)
        .map_err(|e| CoreError::Task(format!("{}: {e}", dir.display())))
}

fn open_blocking(dir: &Path, name: &str, unlock: &Unlock) -> Result<OpenProfile, CoreError> {
    std::fs::create_dir_all(dir).map_err(|e| CoreError::Task(format!("{}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let db = dir.join("local.db");
    let recorded = read_source(dir);
    let new = recorded.is_none() || !db.exists();
    let from_passphrase =
        |p: &str| -> Result<LocalKey, CoreError> { LocalKey::derive(p, &LocalKey::salt_for(&db)?) };
    let (key, source) = match (recorded, unlock.use_keychain) {
        (Some(KeySource::Passphrase), _) | (None, false) => {
            let p = unlock.passphrase.as_deref().ok_or_else(|| {
                CoreError::NoKey(
                    "this profile is unlocked with a passphrase: set CAREBRIDGE_PASSPHRASE".into(),
                )
            })?;
            (from_passphrase(p)?, KeySource::Passphrase)
        }
        (Some(KeySource::Keychain), _) => match keychain(name, KeychainOp::Get)? {
            Some(k) => (k, KeySource::Keychain),
            None => {
                return Err(CoreError::NoKey(
                    "the OS keychain no longer holds this profile's key: forget the profile and sign in again".into(),
                ));
            }
        },
        (None, true) => match keychain(name, KeychainOp::Get).and_then(|found| match found {
            Some(k) => Ok(k),
            // A keychain that answers but cannot store (a locked collection with no one to
            // unlock it) is as good as none for a new profile.
            None => {
                let k = LocalKey::random();
                keychain(name, KeychainOp::Set(k.clone())).map(|_| k)
            }
        }) {
            Ok(k) => (k, KeySource::Keychain),
            Err(e) => {
                // keyring picks its store once per process: its status says why it is absent.
                tracing::info!(error = %e, store_status = ?keyring::Entry::store_status(), "no OS keychain answered; using the passphrase");
                let p = unlock.passphrase.as_deref().ok_or_else(|| {
                    CoreError::NoKey(format!(
                        "no OS keychain answered ({e}) and no passphrase was given: set CAREBRIDGE_PASSPHRASE"
                    ))
                })?;
                (from_passphrase(p)?, KeySource::Passphrase)
            }
        },
    };
    let store = LocalStore::open(&db, &key)?;
    if new {
        write_source(dir, source)?;
    }
    tracing::info!(profile = name, key_source = ?source, "profile opened");
    Ok(OpenProfile {
        name: name.to_owned(),
        store,
        key_source: source,
    })
}

enum KeychainOp {
    Get,
    Set(LocalKey),
    Delete,
}

/// Talks to the OS keychain on a thread of its own, giving up after [`KEYCHAIN_TIMEOUT`].
/// `Ok(None)`: the keychain answered and holds no key for this profile.
fn keychain(profile: &str, op: KeychainOp) -> Result<Option<LocalKey>, CoreError> {
    let profile = profile.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| -> Result<Option<LocalKey>, keyring::Error> {
            let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &profile)?;
            match op {
                KeychainOp::Get => match entry.get_secret() {
                    Ok(bytes) => Ok(LocalKey::from_bytes(&bytes)),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(e),
                },
                KeychainOp::Set(k) => entry.set_secret(k.as_bytes()).map(|()| None),
                KeychainOp::Delete => match entry.delete_credential() {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(e),
                },
            }
        })();
        let _ = tx.send(r);
    });
    match rx.recv_timeout(KEYCHAIN_TIMEOUT) {
        Ok(Ok(k)) => Ok(k),
        Ok(Err(e)) => Err(CoreError::NoKey(format!("OS keychain: {e}"))),
        Err(_) => Err(CoreError::NoKey("the OS keychain did not answer".into())),
    }
}

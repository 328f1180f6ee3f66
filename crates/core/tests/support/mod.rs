//! What the sync engine's tests share: a seeded hospital node (run as a real `carebridge-node`
//! process by `carebridge-testkit`, so it can be SIGKILLed and restarted on its address),
//! clients with their own profiles, and the check that a mirror converged with the node.

#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test support: panics on the unexpected"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carebridge_core::protocol::snapshot::SnapshotItem;
use carebridge_core::session::{SignedIn, sign_in_kiosk, sign_in_staff};
use carebridge_core::{Profiles, RecordingNotifier, SyncEngine, Unlock};
use carebridge_protocol::session::KioskSignIn;
use carebridge_server::clock::SystemClock;
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};

/// A hospital node's data directory, initialised and seeded with demo data (with the
/// round-the-clock benchmark doctor, so any 5-minute slot is bookable).
pub struct Hospital {
    pub dir: tempfile::TempDir,
    pub creds: DemoCredentials,
    /// The node's configuration as `init` made it (to serve it in-process).
    pub config: carebridge_server::NodeConfig,
}

impl Hospital {
    pub async fn seeded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            name: "engine.example".into(),
            kind: NodeKind::Hospital,
            time_zone: "Europe/Amsterdam".into(),
            admin_username: "admin".into(),
            admin_password: demo::ADMIN_PASSWORD.into(),
            database_url: None,
        };
        let config = init(dir.path(), &opts, &SystemClock).unwrap();
        let node = Node::open(config.clone(), Arc::new(SystemClock)).unwrap();
        let size = DemoSize {
            doctors: 1,
            days: 2,
            patients: 20,
            bench: true,
            appointments: None,
        };
        let creds = demo::seed(&node, &size, "http://127.0.0.1").await.unwrap();
        drop(node);
        Self { dir, creds, config }
    }

    /// The benchmark doctor's username.
    pub fn bench_doctor(&self) -> &str {
        "dr.bench"
    }
}

/// A signed-in client: its own profile (passphrase-keyed: no keychain in tests), its engine,
/// and what its notifier was given.
pub struct Client {
    pub profiles: Profiles,
    pub profile: String,
    pub engine: SyncEngine,
    pub notices: Arc<RecordingNotifier>,
    pub signed_in: SignedIn,
}

pub fn unlock() -> Unlock {
    Unlock {
        use_keychain: false,
        passphrase: Some("engine test passphrase".into()),
    }
}

impl Client {
    pub async fn staff(root: &Path, url: &str, username: &str, password: &str) -> Self {
        Self::staff_as(root, url, username, password, "").await
    }

    /// A staff client whose profile name carries `workstation`, so one user can be signed in on
    /// several workstations in one test.
    pub async fn staff_as(
        root: &Path,
        url: &str,
        username: &str,
        password: &str,
        workstation: &str,
    ) -> Self {
        let s = sign_in_staff(&reqwest::Client::new(), url, username, password)
            .await
            .unwrap();
        let profile = format!("{}{workstation}", Profiles::name_for(url, username));
        Self::start(root, profile, s).await
    }

    pub async fn kiosk(root: &Path, url: &str, h: &Hospital) -> Self {
        let device = KioskSignIn {
            device_id: h.creds.kiosk.device_id,
            secret: h.creds.kiosk.secret.clone(),
        };
        let s = sign_in_kiosk(&reqwest::Client::new(), url, device)
            .await
            .unwrap();
        Self::start(root, Profiles::name_for(url, "kiosk"), s).await
    }

    async fn start(root: &Path, profile: String, signed_in: SignedIn) -> Self {
        let profiles = Profiles::at(root);
        let open = profiles.open(&profile, &unlock()).await.unwrap();
        open.store.save_session(&signed_in).await.unwrap();
        let notices = Arc::new(RecordingNotifier::default());
        let engine = SyncEngine::start(open.store, signed_in.clone(), notices.clone());
        Self {
            profiles,
            profile,
            engine,
            notices,
            signed_in,
        }
    }

    /// Stops the engine and starts it again from the profile on disk, as an app restart does.
    pub async fn restart(self) -> Self {
        self.away().await.back().await
    }

    /// Stops the engine, as closing the app does; the profile stays on disk.
    pub async fn away(self) -> Away {
        let Self {
            profiles,
            profile,
            engine,
            notices,
            signed_in,
        } = self;
        engine.shutdown().await;
        Away {
            profiles,
            profile,
            notices,
            signed_in,
        }
    }

    /// Waits until the engine has nothing pending and its mirror holds exactly what the node
    /// says this user may see.
    pub async fn converges_with_node(&self, within: Duration) {
        let mut last = (BTreeMap::new(), BTreeMap::new());
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = *self.engine.status().borrow();
            if status.pending == 0 {
                let node = node_versions(&self.signed_in).await;
                let local = self.engine.store().versions().await.unwrap();
                if node.is_some_and(|n| {
                    let same = n == local;
                    last = (n, local);
                    same
                }) {
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let (n, l) = &last;
                let only_node: Vec<_> = n
                    .iter()
                    .filter(|(k, v)| l.get(*k) != Some(v))
                    .take(5)
                    .collect();
                let only_local: Vec<_> = l
                    .iter()
                    .filter(|(k, v)| n.get(*k) != Some(v))
                    .take(5)
                    .collect();
                panic!(
                    "the mirror did not converge within {within:?}: status {status:?}; node has {only_node:?}, mirror has {only_local:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A client whose engine is stopped (the app closed), its profile kept.
pub struct Away {
    profiles: Profiles,
    profile: String,
    notices: Arc<RecordingNotifier>,
    signed_in: SignedIn,
}

impl Away {
    /// Starts the engine again from the profile on disk, as opening the app does.
    pub async fn back(self) -> Client {
        let Self {
            profiles,
            profile,
            notices,
            signed_in,
        } = self;
        let open = profiles.open(&profile, &unlock()).await.unwrap();
        let kept = open.store.signed_in().await.unwrap().unwrap();
        assert_eq!(kept.session.token, signed_in.session.token);
        let engine = SyncEngine::start(open.store, kept, notices.clone());
        Client {
            profiles,
            profile,
            engine,
            notices,
            signed_in,
        }
    }
}

/// Another client's bearer token on the node at `url`, signed in as reception (straight over
/// HTTP, no profile).
pub async fn reception_token(url: &str) -> String {
    staff_token(url, "reception", demo::RECEPTION_PASSWORD).await
}

/// A staff user's bearer token on the node at `url` (straight over HTTP, no profile).
pub async fn staff_token(url: &str, username: &str, password: &str) -> String {
    let session: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/sessions"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["token"].as_str().unwrap().to_owned()
}

/// What the node's snapshot holds for this session, by kind and id with versions (`None` when
/// the node cannot be reached).
pub async fn node_versions(s: &SignedIn) -> Option<BTreeMap<(String, String), i64>> {
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/snapshot", s.node_url))
        .bearer_auth(&s.session.token)
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let body = res.text().await.ok()?;
    let mut out = BTreeMap::new();
    let mut whole = false;
    for line in body.lines() {
        let item: SnapshotItem = serde_json::from_str(line).unwrap();
        let (kind, id, version) = match item {
            // This read ends the user's own snapshot still being sent (one at a time per user),
            // and the client's next one ends this: only a snapshot read to its end is the
            // node's state.
            SnapshotItem::End { .. } => {
                whole = true;
                continue;
            }
            SnapshotItem::Practitioner(p) => ("practitioner", p.id.to_string(), p.version),
            SnapshotItem::Schedule(x) => ("schedule", x.practitioner_id.to_string(), x.version),
            SnapshotItem::Patient(p) => ("patient", p.id.to_string(), p.version),
            SnapshotItem::Appointment(a) => ("appointment", a.id.to_string(), a.version),
            SnapshotItem::Report(r) => ("report", r.id.to_string(), r.version),
            _ => continue,
        };
        out.insert((kind.to_owned(), id), version);
    }
    whole.then_some(out)
}

/// The start of the benchmark doctor's `n`th 5-minute slot (`n` < 250) on the day after
/// tomorrow (UTC), so tests never book in the past.
///
/// The doctor's slots run from 00:00 to 23:55 local time: the five minutes before local
/// midnight are no slot (21:55 UTC in the hospital's summer, 22:55 in its winter). Counting
/// from a fixed hour keeps every test's slots clear of that gap, whatever the hour the test
/// runs; counting from the time of the run put them across it in the evening.
pub fn slot(n: i64) -> chrono::DateTime<chrono::Utc> {
    assert!(
        (0..250).contains(&n),
        "slot {n} is past the benchmark doctor's day"
    );
    let now = carebridge_server::clock::Clock::now(&SystemClock);
    let base = (now.timestamp() / 86_400 + 2) * 86_400;
    chrono::DateTime::from_timestamp(base + n * 300, 0).unwrap()
}

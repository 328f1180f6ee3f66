//! A node: its configuration, database, live hub and clock (its background jobs are `jobs`).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use carebridge_protocol::PractitionerId;
use carebridge_protocol::practitioner::{Practitioner, Role};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{CONFIG_FILE, ConfigError, NodeConfig, NodeKind, validate_node_name};
use crate::events::Hub;
use crate::federation::refusals::InboxRefusals;
use crate::practitioner;
use crate::store::{AuditDraft, DbKey, Store, StoreError};
use crate::store::{events, keys, practitioners};
use crate::throttle::{KnownSignIns, PasswordChecks, Throttle};

/// The snapshots being sent, by user: each with its number and what ends it.
pub type SnapshotReaders = std::collections::HashMap<String, (u64, CancellationToken)>;

/// Why a node could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed or did not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key anywhere.
    #[error("no database key: {0} does not exist and CAREBRIDGE_DB_KEY is not set")]
    NoKey(String),
    /// The data directory has no database.
    #[error("{0} holds no CareBridge database: run `carebridge-node init --data-dir {0}` first")]
    NotInitialised(String),
    /// `init` on a directory that already has one.
    #[error("{0} already holds a CareBridge database; refusing to overwrite it")]
    AlreadyInitialised(String),
    /// Another process serves this data directory.
    #[error("another carebridge-node is using {0}")]
    Locked(String),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The database key: `CAREBRIDGE_DB_KEY` if set, else the key file.
pub fn load_key(cfg: &NodeConfig) -> Result<DbKey, NodeError> {
    if let Ok(k) = std::env::var("CAREBRIDGE_DB_KEY") {
        return Ok(DbKey::from_hex(&k)?);
    }
    let path = cfg.key_path();
    match fs::read_to_string(&path) {
        Ok(s) => Ok(DbKey::from_hex(&s)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(NodeError::NoKey(path.display().to_string()))
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// Makes a file readable by its owner only: a node.toml that names the database (its URL may
/// carry the password).
fn owner_only(path: &Path) -> Result<(), NodeError> {
    #[cfg(unix)]
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io(path))?;
    Ok(())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The node's name.
    pub name: String,
    /// Its kind.
    pub kind: NodeKind,
    /// Its IANA time zone.
    pub time_zone: String,
    /// The first admin's username.
    pub admin_username: String,
    /// The first admin's password.
    pub admin_password: String,
    /// A PostgreSQL database to keep the records in, instead of the data directory's file.
    pub database_url: Option<String>,
}

/// A running node's shared state.
pub struct Node {
    /// Its configuration.
    pub config: NodeConfig,
    /// Its time zone.
    pub tz: Tz,
    /// Its database.
    pub store: Store,
    /// Its live hub.
    pub hub: Hub,
    /// Its clock.
    pub clock: Arc<dyn Clock>,
    /// Failed sign-ins per account at an address (an attacker elsewhere cannot keep a doctor
    /// out at her own workstation).
    pub throttle_accounts: Throttle,
    /// Failed sign-ins per address, across accounts (except accounts known there).
    pub throttle_sources: Throttle,
    /// Accounts that signed in from an address lately.
    pub known_sign_ins: KnownSignIns,
    /// Password checks running at once (each holds 19 MiB while it runs).
    pub password_checks: PasswordChecks,
    /// Failed kiosk identifications per device.
    pub throttle_kiosks: Throttle,
    /// The federation inbox's refusals per source in the current minute.
    pub inbox_refusals: InboxRefusals,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// Snapshots streaming at once (each holds a connection and a read transaction).
    pub snapshot_permits: Arc<tokio::sync::Semaphore>,
    /// Who is reading a snapshot now: one at a time each (a new one ends the old), so that one
    /// user cannot take every place.
    pub snapshot_readers: Arc<parking_lot::Mutex<SnapshotReaders>>,
    /// The node's Ed25519 key: it signs reports for their authors and federation requests.
    pub signing_key: ed25519_dalek::SigningKey,
    /// The node's X25519 key: envelopes from peers are opened with it.
    pub agreement_key: x25519_dalek::StaticSecret,
    /// Wakes the delivery worker when a transmission is queued.
    pub delivery_wake: tokio::sync::Notify,
    /// Wakes the mail worker when a message is queued.
    pub mail_wake: tokio::sync::Notify,
    /// The fonts reports are printed in, found on first use.
    pub report_fonts: std::sync::OnceLock<Result<carebridge_report_pdf::Fonts, String>>,
    /// FHIR bulk export jobs and their sealed files.
    pub exports: crate::fhir::export::Exports,
    /// The PACS the node follows, when `node.toml` configures one.
    pub imaging: Option<crate::imaging::Imaging>,
    _lock: fs::File,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .finish()
    }
}

/// Takes the data directory's lock, so two nodes never serve one database.
pub fn lock_data_dir(dir: &Path) -> Result<fs::File, NodeError> {
    let path = dir.join(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(NodeError::Locked(dir.display().to_string())),
        Err(fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

/// Opens the node's database, whichever it is, and starts its writer.
fn open_store(
    cfg: &NodeConfig,
    key: &DbKey,
    clock: Arc<dyn Clock>,
    hub: Hub,
) -> Result<Store, NodeError> {
    Ok(match &cfg.database.url {
        Some(url) => Store::open_postgres(
            url,
            key,
            cfg.database.notifications,
            cfg.durability,
            clock,
            hub,
        )?,
        None => Store::open(&cfg.db_path(), key, cfg.durability, clock, hub)?,
    })
}

/// A reader of the node's database, whichever it is, for the command line's offline reads.
pub fn open_reader(cfg: &NodeConfig) -> Result<crate::store::Reader, NodeError> {
    Ok(match &cfg.database.url {
        Some(url) => crate::store::Reader::open_postgres(url, &load_key(cfg)?)?,
        None => {
            let db = cfg.db_path();
            if !db.exists() {
                return Err(NodeError::NotInitialised(
                    cfg.data_dir.display().to_string(),
                ));
            }
            crate::store::Reader::open(&db, &load_key(cfg)?)?
        }
    })
}

/// Runs blocking database work on a thread of its own: `init` and `Node::open` are called
/// from async code too, where PostgreSQL's blocking client must not run.
fn off_async<T: Send>(f: impl FnOnce() -> Result<T, NodeError> + Send) -> Result<T, NodeError> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(NodeError::Invalid("opening the database panicked".into())))
    })
}

/// Whether the node's database already holds a node.
fn initialised(cfg: &NodeConfig) -> Result<bool, NodeError> {
    match &cfg.database.url {
        None => Ok(cfg.db_path().exists()),
        Some(url) => off_async(|| {
            // Reads only the node's name, which is not sealed: any key will do, and a node
            // being initialised has none yet.
            let reader = crate::store::Reader::open_postgres(url, &DbKey::generate())?;
            // A database never migrated has no tables yet.
            Ok(crate::store::initialised(&reader.tx())?)
        }),
    }
}

/// Moves a stopped node's records from its SQLCipher file to the empty PostgreSQL database at
/// `url`, every row as it is (ids, the audit chain and its checkpoints, event ids), and points
/// its `node.toml` at PostgreSQL. The file stays where it was, untouched but for migrations,
/// to go back to.
pub fn migrate_store(cfg: &NodeConfig, url: &str) -> Result<crate::store::copy::Copied, NodeError> {
    if cfg.database.url.is_some() {
        return Err(NodeError::Invalid(
            "this node's records are in PostgreSQL already ([database] url in node.toml)".into(),
        ));
    }
    if !cfg.db_path().exists() {
        return Err(NodeError::NotInitialised(
            cfg.data_dir.display().to_string(),
        ));
    }
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let key = load_key(cfg)?;
    let copied = off_async(|| {
        // Brings an older file to this build's schema first, as serving it would.
        drop(Store::open(
            &cfg.db_path(),
            &key,
            cfg.durability,
            Arc::new(crate::clock::SystemClock),
            Hub::new(16, 0),
        )?);
        let reader = crate::store::Reader::open(&cfg.db_path(), &key)?;
        Ok(crate::store::copy::sqlite_to_postgres(&reader, url, &key)?)
    })?;
    let toml = cfg.data_dir.join(CONFIG_FILE);
    let mut text = fs::read_to_string(&toml).map_err(io(&toml))?;
    text.push_str(&format!(
        "\n# Moved from {} by migrate-store.\n[database]\nurl = {url:?}\n",
        crate::store::DB_FILE
    ));
    fs::write(&toml, text).map_err(io(&toml))?;
    owner_only(&toml)?;
    Ok(copied)
}

/// Creates a node in `dir`: its key file, encrypted database, signing keys and first admin,
/// and a `node.toml` naming it.
pub fn init(dir: &Path, opts: &InitOptions, clock: &dyn Clock) -> Result<NodeConfig, NodeError> {
    validate_node_name(&opts.name).map_err(NodeError::Invalid)?;
    opts.time_zone.parse::<Tz>().map_err(|_| {
        NodeError::Invalid(format!(
            "{:?} is not an IANA time zone such as Europe/Amsterdam",
            opts.time_zone
        ))
    })?;
    carebridge_protocol::practitioner::validate_username(&opts.admin_username)
        .map_err(|m| NodeError::Invalid(format!("admin username {m}")))?;
    carebridge_protocol::practitioner::validate_password(&opts.admin_password)
        .map_err(|m| NodeError::Invalid(format!("admin password {m}")))?;
    fs::create_dir_all(dir).map_err(io(dir))?;
    let _lock = lock_data_dir(dir)?;
    let mut cfg = NodeConfig {
        name: opts.name.clone(),
        kind: opts.kind,
        time_zone: opts.time_zone.clone(),
        data_dir: dir.to_owned(),
        database: crate::config::DatabaseConfig {
            url: opts.database_url.clone(),
            ..crate::config::DatabaseConfig::default()
        },
        ..NodeConfig::default()
    };
    if initialised(&cfg)? {
        return Err(NodeError::AlreadyInitialised(match cfg.database.url {
            Some(_) => "the PostgreSQL database".into(),
            None => dir.display().to_string(),
        }));
    }
    let key = match std::env::var("CAREBRIDGE_DB_KEY") {
        Ok(k) => DbKey::from_hex(&k)?,
        Err(_) => {
            let key = DbKey::generate();
            write_private(&cfg.key_path(), format!("{}\n", key.to_hex()).as_bytes())?;
            key
        }
    };
    let hub = Hub::new(16, 0);
    let store = open_store(&cfg, &key, Arc::new(crate::clock::SystemClock), hub)?;
    let now = clock.now();
    let hash = practitioner::hash_password(&opts.admin_password)?;
    let admin = Practitioner {
        id: PractitionerId::new(),
        username: opts.admin_username.clone(),
        display_name: "Administrator".into(),
        role: Role::Admin,
        disabled: false,
        version: 1,
    };
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let agreement = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let meta = [
        ("name", opts.name.clone()),
        ("kind", opts.kind.as_str().to_owned()),
        ("time_zone", opts.time_zone.clone()),
    ];
    let draft = AuditDraft {
        actor: "node".into(),
        action: "node.init".into(),
        entity: format!("practitioner/{}", admin.id),
        source: "local".into(),
    };
    // init is synchronous and may be called from async code (tests, `demo`): run the one
    // write on a thread of its own with a runtime of its own.
    let write = store.write(Some(draft), move |ctx| {
        for (k, v) in &meta {
            crate::store::insert_meta(ctx, k, v)?;
        }
        keys::insert(ctx, &signing, &agreement)?;
        practitioners::insert(ctx, &admin, &hash, now.timestamp_millis())?;
        ctx.set_detail(format!(
            "node {} initialised; first admin {}",
            meta[0].1, admin.username
        ));
        Ok::<_, StoreError>(())
    });
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| NodeError::Invalid(e.to_string()))?
                    .block_on(write)
                    .map_err(NodeError::from)
            })
            .join()
            .map_err(|_| NodeError::Invalid("initialisation panicked".into()))?
    })?;
    drop(store);
    cfg.key_file = None;
    let mut toml = format!(
        "# CareBridge node configuration. Every option can also be set as CAREBRIDGE_<OPTION>.\n\
         name = {:?}\nkind = {:?}\ntime_zone = {:?}\nlisten = {:?}\n",
        cfg.name,
        cfg.kind.as_str(),
        cfg.time_zone,
        cfg.listen.to_string()
    );
    if let Some(url) = &cfg.database.url {
        // A dotted key, not a [database] table: options appended later stay top-level.
        toml.push_str(&format!("database.url = {url:?}\n"));
    }
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.exists() {
        fs::write(&cfg_path, toml).map_err(io(&cfg_path))?;
        if cfg.database.url.is_some() {
            owner_only(&cfg_path)?;
        }
    }
    Ok(cfg)
}

impl Node {
    /// Opens an initialised node's database and starts its writer; serving is separate.
    pub fn open(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>, NodeError> {
        config.validate()?;
        let tz = config.tz()?;
        if !initialised(&config)? {
            return Err(NodeError::NotInitialised(match config.database.url {
                Some(_) => "the PostgreSQL database".into(),
                None => config.data_dir.display().to_string(),
            }));
        }
        let lock = lock_data_dir(&config.data_dir)?;
        let key = load_key(&config)?;
        let hub = Hub::new(config.live_buffer as usize, 0);
        let store = open_store(&config, &key, clock.clone(), hub.clone())?;
        let (head, signing_key, agreement_key) = off_async(|| {
            let reader = store.open_reader()?;
            let tx = reader.tx();
            let (signing, agreement) = keys::secret_keys(&tx)?;
            Ok((events::head(&tx)?, signing, agreement))
        })?;
        hub.set_head(head);
        let window = chrono::Duration::minutes(15);
        let max = config.max_failed_sign_ins.max(1);
        Ok(Arc::new(Self {
            tz,
            store,
            hub,
            clock,
            throttle_accounts: Throttle::new(max, window),
            throttle_sources: Throttle::new(max * 4, window),
            throttle_kiosks: Throttle::new(10, window),
            inbox_refusals: InboxRefusals::new(config.inbox_refusals_per_minute),
            known_sign_ins: KnownSignIns::new(chrono::Duration::days(30)),
            // One check per core keeps the CPU busy; a burst waits up to 2 s, then is told to
            // come back.
            password_checks: PasswordChecks::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
                std::time::Duration::from_secs(2),
            ),
            shutdown: CancellationToken::new(),
            snapshot_permits: Arc::new(tokio::sync::Semaphore::new(2)),
            snapshot_readers: Arc::default(),
            signing_key,
            agreement_key,
            report_fonts: std::sync::OnceLock::new(),
            exports: crate::fhir::export::Exports::new(config.data_dir.join("exports")),
            imaging: config.imaging.as_ref().map(crate::imaging::Imaging::new),
            delivery_wake: tokio::sync::Notify::new(),
            mail_wake: tokio::sync::Notify::new(),
            config,
            _lock: lock,
        }))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Tells the delivery worker that a transmission was queued.
    pub fn wake_delivery(&self) {
        self.delivery_wake.notify_one();
    }

    /// Tells the mail worker that a message was queued.
    pub fn wake_mail(&self) {
        self.mail_wake.notify_one();
    }

    /// The organisation's name as people read it.
    pub fn organisation(&self) -> &str {
        self.config
            .organisation
            .as_deref()
            .unwrap_or(&self.config.name)
    }
}

//! Node configuration: TOML with documented defaults, every option also settable from the
//! environment as `CAREBRIDGE_<OPTION>` (nested ones with `__`, e.g. `CAREBRIDGE_TLS__CERT`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync the WAL at every commit: an acknowledged write survives power loss.
    Full,
    /// fsync at checkpoints only: survives a crash of the node, not of the machine.
    Normal,
}

/// The name of the configuration file `init` writes into a data directory.
pub const CONFIG_FILE: &str = "node.toml";
/// The name of the key file `init` writes into a data directory.
pub const KEY_FILE: &str = "db.key";

/// What kind of organisation a node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A hospital: doctors, reception, kiosks.
    Hospital,
    /// An insurer: reviewers and admins.
    Insurer,
}

impl NodeKind {
    /// The lowercase name used in configuration and identities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hospital => "hospital",
            Self::Insurer => "insurer",
        }
    }
}

/// HTTPS: PEM files of the certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything a node needs to serve. Every field has a default but `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name, an FQDN such as `st-marys.example`; part of every patient's global id.
    pub name: String,
    /// `hospital` (default) or `insurer`.
    pub kind: NodeKind,
    /// The organisation's name as people read it, printed on reports (default: `name`).
    pub organisation: Option<String>,
    /// IANA time zone in which schedules are laid out (default `UTC`).
    pub time_zone: String,
    /// Address to listen on (default `127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory holding the database (default: the directory of the config file, or `.`).
    pub data_dir: PathBuf,
    /// File holding the database key as 64 hex digits (default `<data_dir>/db.key`).
    /// `CAREBRIDGE_DB_KEY` (the key itself) takes precedence over the file.
    pub key_file: Option<PathBuf>,
    /// `full` (default): every acknowledged write survives power loss. `normal`: survives a
    /// crash of the node only, for faster writes.
    pub durability: Durability,
    /// How long a staff session lasts, in hours (default 12).
    pub session_hours: u32,
    /// How long a kiosk session lasts, in days (default 30).
    pub kiosk_session_days: u32,
    /// How many events the log keeps for `Last-Event-ID` resume (default 100000).
    pub events_retained: u32,
    /// How many events the live ring holds before a subscriber that does not keep up is
    /// disconnected (default 4096).
    pub live_buffer: u32,
    /// Seconds between heartbeat comments on live streams (default 15).
    pub heartbeat_seconds: u32,
    /// Largest request body accepted, in bytes (default 1 MiB).
    pub max_body_bytes: usize,
    /// Failed sign-ins allowed per account or address in 15 minutes (default 5 per account,
    /// 4× that per address).
    pub max_failed_sign_ins: u32,
    /// Kernel send buffer per connection, in bytes (default: the kernel's autotuning). A
    /// small value bounds what a client that stopped reading can hold in the kernel, and
    /// makes the node notice it sooner.
    pub tcp_send_buffer: Option<u32>,
    /// Connections served at once (default 4096; each live stream holds one). Beyond it new
    /// connections wait in the kernel's queue until one closes.
    pub max_connections: u32,
    /// Seconds a client has to send a request's head (default 10): a client trickling its
    /// headers (slowloris) is cut off.
    pub header_timeout_seconds: u32,
    /// Seconds a client has to send a request's whole body once its head arrived (default 30).
    pub body_timeout_seconds: u32,
    /// Seconds a snapshot's reader may stop reading before the node ends its snapshot and
    /// frees its place (default 30); it resumes with `after`.
    pub snapshot_stall_seconds: u32,
    /// HTTPS; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Days a payload received from a peer is kept before the retention job deletes it
    /// (default 90).
    pub retention_days: u32,
    /// Minutes a transmission may wait undelivered before the node's admins are alerted
    /// (default 30).
    pub transmission_alert_minutes: u32,
    /// The longest wait between two delivery attempts of a transmission, in seconds
    /// (default 300); attempts back off exponentially up to it, and a peer's `Retry-After`
    /// is honoured up to it too.
    pub delivery_max_backoff_seconds: u32,
    /// The local address this node sends to peers from (default: the system's choice). Peers
    /// allow-list the addresses they accept.
    pub federation_source: Option<std::net::IpAddr>,
    /// Minutes between signed checkpoints of the audit chain's head (default 5); the node
    /// also signs one when it starts and when it stops. A shorter interval leaves fewer
    /// recent entries that could be cut off unnoticed.
    pub audit_checkpoint_minutes: u32,
    /// Requests from one address the federation inbox refuses in a minute before it answers
    /// that address 429 without looking at its requests (default 30). Peers in good standing
    /// are refused rarely; a flood is cut off cheaply.
    pub inbox_refusals_per_minute: u32,
    /// Where to serve the node's metrics (`GET /metrics`, Prometheus' text format), on a
    /// listener of their own for the monitoring network, e.g. `127.0.0.1:9464`. Off when
    /// absent.
    pub metrics_listen: Option<SocketAddr>,
    /// Logging (the level is `CAREBRIDGE_LOG`, an `EnvFilter` directive).
    pub log: LogConfig,
    /// The database: the encrypted SQLite file in `data_dir` (default), or PostgreSQL.
    pub database: DatabaseConfig,
    /// Imaging: the PACS (Orthanc) whose studies the node follows. Off when absent.
    pub imaging: Option<ImagingConfig>,
    /// E-mail: the SMTP server the node sends through (a patient's one-time codes). Off when
    /// absent.
    pub mail: Option<MailConfig>,
    /// What other hospitals may read of this hospital's patients, with their consent.
    pub access: AccessPolicy,
}

/// What other hospitals may read of this hospital's patients (`[access]`): always with the
/// patient's approval, except emergency access where the policy allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessPolicy {
    /// The longest grant for treatment, in hours (default 72; at most 720).
    pub max_hours: u32,
    /// Whether a request for emergency treatment is granted without the patient (read-only, at
    /// most 4 hours, admins alerted, the patient e-mailed afterwards). Default true.
    pub emergency: bool,
    /// How long a request waits for the patient, in hours (default 24; at most 168): past it,
    /// the request expires and the asking hospital is told, as for a decline.
    pub pending_hours: u32,
}

/// The longest a request may wait for the patient, in hours (a week).
pub const MAX_PENDING_HOURS: u32 = 168;

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            max_hours: 72,
            emergency: true,
            pending_hours: 24,
        }
    }
}

impl AccessPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=carebridge_protocol::federation::access::MAX_HOURS).contains(&self.max_hours) {
            return Err(ConfigError::Invalid(format!(
                "`access.max_hours` must be 1 to {}",
                carebridge_protocol::federation::access::MAX_HOURS
            )));
        }
        if !(1..=MAX_PENDING_HOURS).contains(&self.pending_hours) {
            return Err(ConfigError::Invalid(format!(
                "`access.pending_hours` must be 1 to {MAX_PENDING_HOURS}"
            )));
        }
        Ok(())
    }
}

/// The PACS the node follows: Orthanc's REST API, on loopback or a private network (the app
/// never reaches it: previews go through the node, which checks who may see them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagingConfig {
    /// Orthanc's REST API, e.g. `http://127.0.0.1:8042`.
    pub orthanc_url: String,
    /// The account the node signs in to Orthanc with (HTTP basic).
    pub username: String,
    /// Its password.
    pub password: String,
    /// The folder Orthanc's worklist plugin serves: the node writes one `.wl` file per
    /// scheduled order there, and removes it when the study arrives. No worklist when absent.
    #[serde(default)]
    pub worklist_dir: Option<PathBuf>,
    /// The secret Orthanc's `OnStableStudy` script sends as `Authorization: Bearer …` to
    /// wake the node early (`POST /api/v1/imaging/hint`). Hints are refused when absent.
    #[serde(default)]
    pub hint_token: Option<String>,
    /// Seconds between reads of Orthanc's change feed when no hint comes (default 5).
    #[serde(default = "default_imaging_poll")]
    pub poll_seconds: u32,
    /// Where a study opens in a viewer, with `{study_uid}` for its StudyInstanceUID or
    /// `{pacs_id}` for Orthanc's id of it (e.g. Orthanc Explorer's
    /// `http://pacs:8042/app/explorer.html#study?uuid={pacs_id}`). No viewer when absent.
    #[serde(default)]
    pub viewer_url: Option<String>,
}

fn default_imaging_poll() -> u32 {
    5
}

impl ImagingConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.orthanc_url).map_err(|e| {
            ConfigError::Invalid(format!(
                "`imaging.orthanc_url` {:?} is not a URL: {e}",
                self.orthanc_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid(
                "`imaging.orthanc_url` must be http:// or https://".into(),
            ));
        }
        if self.poll_seconds == 0 {
            return Err(ConfigError::Invalid(
                "`imaging.poll_seconds` must be at least 1".into(),
            ));
        }
        if self.hint_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "`imaging.hint_token` must be at least 16 characters".into(),
            ));
        }
        if let Some(v) = &self.viewer_url
            && (!v.contains("{study_uid}") && !v.contains("{pacs_id}")
                || !(v.starts_with("http://") || v.starts_with("https://")))
        {
            return Err(ConfigError::Invalid(
                "`imaging.viewer_url` must be an http(s) address with {study_uid} or {pacs_id}"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The SMTP server the node sends e-mail through (`crate::mail::Mailer`): the organisation's
/// relay or submission server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The server's host name, e.g. `smtp.st-marys.example`; with TLS, the name its
    /// certificate must carry.
    pub host: String,
    /// Its port (default: 587 with `starttls`, 465 with `tls`, 25 with `none`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default): plain connection upgraded to TLS, which must succeed. `tls`: TLS
    /// from the first byte (SMTPS). `none`: no encryption, for a relay on the same machine.
    #[serde(default)]
    pub security: MailSecurity,
    /// The account the node signs in with (SMTP AUTH); no sign-in when absent. Needs
    /// `password`, and TLS.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub password: Option<String>,
    /// The sender, e.g. `St Mary's Hospital <no-reply@st-marys.example>`.
    pub from: String,
    /// Seconds a message may take to send, connecting included (default 20); past it the
    /// attempt counts as a transient failure.
    #[serde(default = "default_mail_timeout")]
    pub timeout_seconds: u32,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// No encryption.
    None,
    /// STARTTLS, required: a server that does not offer it is not sent to.
    #[default]
    Starttls,
    /// TLS from the start (SMTPS).
    Tls,
}

fn default_mail_timeout() -> u32 {
    20
}

impl MailConfig {
    /// The port: the configured one, or the usual one for `security`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            MailSecurity::None => 25,
            MailSecurity::Starttls => 587,
            MailSecurity::Tls => 465,
        })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.host.trim().is_empty() {
            return invalid("`mail.host` is empty");
        }
        if self.port == Some(0) {
            return invalid("`mail.port` must be a port number, not 0");
        }
        if self.timeout_seconds == 0 {
            return invalid("`mail.timeout_seconds` must be at least 1");
        }
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            return Err(ConfigError::Invalid(format!(
                "`mail.from` {:?} is not an address such as \
                 \"St Mary's Hospital <no-reply@st-marys.example>\": {e}",
                self.from
            )));
        }
        match (&self.username, &self.password) {
            (Some(_), None) | (None, Some(_)) => {
                return invalid("`mail.username` and `mail.password` go together");
            }
            (Some(_), Some(_)) if self.security == MailSecurity::None => {
                return invalid(
                    "`mail.username` with `mail.security = \"none\"` would send the password \
                     in the clear: use \"starttls\" or \"tls\"",
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// Where the node keeps its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A PostgreSQL database, `postgres://user:password@host/db` (or
    /// `CAREBRIDGE_DATABASE__URL`): for several node processes on one database. Absent: the
    /// encrypted SQLite file `carebridge.db` in `data_dir`, for a node of one process.
    pub url: Option<String>,
    /// Whether the node listens for PostgreSQL's notifications (`LISTEN`) to learn of new
    /// events at once (default true). False behind a connection pooler in transaction mode,
    /// where a `LISTEN` never hears anything: the node then looks for new events every
    /// 200 ms, and the live stream is that much later.
    pub notifications: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            notifications: true,
        }
    }
}

/// How the node logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default): lines for people. `json`: one JSON object a line for a log
    /// collector, each line of a request carrying its `request_id`.
    pub format: LogFormat,
}

/// The form of the node's log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: NodeKind::Hospital,
            organisation: None,
            time_zone: "UTC".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("."),
            key_file: None,
            durability: Durability::Full,
            session_hours: 12,
            kiosk_session_days: 30,
            events_retained: 100_000,
            live_buffer: 4096,
            heartbeat_seconds: 15,
            max_body_bytes: 1024 * 1024,
            max_failed_sign_ins: 5,
            tcp_send_buffer: None,
            max_connections: 4096,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            snapshot_stall_seconds: 30,
            tls: None,
            retention_days: 90,
            transmission_alert_minutes: 30,
            delivery_max_backoff_seconds: 300,
            federation_source: None,
            audit_checkpoint_minutes: 5,
            inbox_refusals_per_minute: 30,
            metrics_listen: None,
            log: LogConfig::default(),
            database: DatabaseConfig::default(),
            imaging: None,
            mail: None,
            access: AccessPolicy::default(),
        }
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment did not parse.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A value is invalid.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Loads defaults, then `file` (if given), then the environment; `data_dir` defaults to
    /// the file's directory.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut defaults = Self::default();
        if let Some(dir) = file.and_then(Path::parent) {
            defaults.data_dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_owned()
            };
        }
        let mut fig = Figment::from(Serialized::defaults(defaults));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "{} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        let cfg: Self = fig
            .merge(Env::prefixed("CAREBRIDGE_").split("__").filter(|k| {
                // Variables read elsewhere, not configuration options (`passphrase` is the
                // desktop app's, often set in the same shell as a demo's nodes).
                !matches!(
                    k.as_str().to_ascii_lowercase().as_str(),
                    "db_key" | "admin_password" | "log" | "config" | "passphrase" | "timeline"
                )
            }))
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Invalid(
                "`name` is not set (run `carebridge-node init`)".into(),
            ));
        }
        self.tz()?;
        for (name, value) in [
            ("max_connections", self.max_connections),
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            ("snapshot_stall_seconds", self.snapshot_stall_seconds),
            ("inbox_refusals_per_minute", self.inbox_refusals_per_minute),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("`{name}` must be at least 1")));
            }
        }
        if self.live_buffer < 16 {
            return Err(ConfigError::Invalid(
                "`live_buffer` must be at least 16".into(),
            ));
        }
        if self.audit_checkpoint_minutes == 0 {
            return Err(ConfigError::Invalid(
                "`audit_checkpoint_minutes` must be at least 1".into(),
            ));
        }
        if self.heartbeat_seconds == 0 {
            return Err(ConfigError::Invalid(
                "`heartbeat_seconds` must be at least 1".into(),
            ));
        }
        if let Some(i) = &self.imaging {
            i.validate()?;
        }
        if let Some(m) = &self.mail {
            m.validate()?;
        }
        self.access.validate()?;
        Ok(())
    }

    /// The time zone.
    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.time_zone.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "`time_zone` {:?} is not an IANA time zone",
                self.time_zone
            ))
        })
    }

    /// The key file's path.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(KEY_FILE))
    }

    /// The database's path.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(crate::store::DB_FILE)
    }
}

/// Checks a node name: a lowercase DNS name with at least one dot.
pub fn validate_node_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a lowercase DNS name such as st-marys.example"
        ))
    }
}

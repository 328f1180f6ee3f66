//! `carebridge-node`: run and look after a CareBridge node.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::config::{CONFIG_FILE, KEY_FILE, LogFormat, NodeConfig, NodeKind};
#[cfg(feature = "demo")]
use carebridge_server::demo;
use carebridge_server::node::{InitOptions, Node, NodeError, init, load_key};
use carebridge_server::serve;
#[cfg(feature = "demo")]
use carebridge_server::store::Durability;
use carebridge_server::store::Reader;
use carebridge_server::store::backup;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

// mimalloc returns freed memory to the system far more readily than glibc's malloc, whose
// arenas kept the ~19 MiB of each Argon2 hash resident; it is also faster for the many small
// allocations of request handling. Its defaults still keep what it freed committed for a while
// and commit arenas eagerly: see `ALLOCATOR_SETTINGS`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings for the node: commit memory as it is used and give back what is freed at
/// once. With its defaults the node idled at 60 MiB, about 20 MiB of it an Argon2id check's
/// memory kept after the sign-in that used it, and held 100–184 MiB with 5,000 live streams;
/// with these, 23 MiB idle and 49–61 MiB with 5,000 streams, at the same booking rate and
/// latency (docs/performance.md, "The allocator's settings").
const ALLOCATOR_SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "0"),
];

/// mimalloc reads its settings from the environment once, before `main` runs, and the
/// workspace forbids the unsafe call that would change them later; so the node executes itself
/// again (same process id, same arguments) with [`ALLOCATOR_SETTINGS`] added to its
/// environment, once: the new image finds them all set. A setting the operator gave is kept.
/// If the new image cannot be executed, the node goes on with the defaults and says so.
fn with_allocator_settings() {
    if ALLOCATOR_SETTINGS
        .iter()
        .all(|(name, _)| std::env::var_os(name).is_some())
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1));
    for (name, value) in ALLOCATOR_SETTINGS {
        if std::env::var_os(name).is_none() {
            again.env(name, value);
        }
    }
    let failed = std::os::unix::process::CommandExt::exec(&mut again);
    eprintln!(
        "carebridge-node: could not restart with the allocator's settings ({failed}); going on with its defaults"
    );
}

/// An organisation's CareBridge server.
#[derive(Debug, Parser)]
#[command(name = "carebridge-node", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: its keys, its encrypted database, its first admin and node.toml.
    Init(InitArgs),
    /// Serve an initialised node.
    Serve(ServeArgs),
    /// Serve a throw-away node full of demo data, and print how to sign in.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Inspect the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print this node's public identity (name, kind, URL, Ed25519 and X25519 public keys) as
    /// the JSON document a peer's `peer add` reads.
    Keys(KeysArgs),
    /// Manage the peer nodes this node exchanges with.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Write a consistent encrypted copy of the database, while the node serves.
    Backup(BackupArgs),
    /// Check a backup, then make it the node's database (the node must be stopped).
    Restore(RestoreArgs),
    /// Move a stopped node's records from its encrypted file to an empty PostgreSQL database
    /// (ids, audit chain and event ids kept), and point its node.toml there.
    MigrateStore(MigrateStoreArgs),
    /// Import FHIR R4 resources from another system (a Bundle, one resource, or NDJSON), entry
    /// by entry, and summarise what was created, matched and refused (the node must be stopped).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct Location {
    /// The node's configuration file (TOML).
    #[arg(long, env = "CAREBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The node's data directory (reads DIR/node.toml).
    #[arg(long, env = "CAREBRIDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl Location {
    fn load(&self) -> anyhow::Result<NodeConfig> {
        let file = match (&self.config, &self.data_dir) {
            (Some(f), _) => f.clone(),
            (None, Some(d)) => {
                let f = d.join(CONFIG_FILE);
                if !f.exists() {
                    bail!(
                        "{} holds no CareBridge node (no {CONFIG_FILE}): run `carebridge-node init --data-dir {}` first",
                        d.display(),
                        d.display()
                    );
                }
                f
            }
            (None, None) => bail!("say which node: --config FILE or --data-dir DIR"),
        };
        let mut cfg = NodeConfig::load(Some(&file))?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Where the node keeps its database, key file and node.toml.
    #[arg(long, env = "CAREBRIDGE_DATA_DIR")]
    data_dir: PathBuf,
    /// The node's name, a DNS name such as st-marys.example.
    #[arg(long)]
    name: String,
    /// IANA time zone in which schedules are laid out, e.g. Europe/Amsterdam.
    #[arg(long)]
    time_zone: String,
    /// hospital or insurer.
    #[arg(long, default_value = "hospital", value_parser = parse_kind)]
    kind: NodeKind,
    /// The first admin's username.
    #[arg(long, default_value = "admin")]
    admin_username: String,
    /// Keep the records in this PostgreSQL database (`postgres://user:password@host/db`)
    /// rather than an encrypted file in the data directory; written to node.toml.
    #[arg(long, env = "CAREBRIDGE_DATABASE__URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct KeysArgs {
    #[command(flatten)]
    location: Location,
    /// The URL peers reach this node at (its public address, not the listen address).
    #[arg(long)]
    url: String,
}

fn parse_kind(s: &str) -> Result<NodeKind, String> {
    match s {
        "hospital" => Ok(NodeKind::Hospital),
        "insurer" => Ok(NodeKind::Insurer),
        _ => Err("hospital or insurer".into()),
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    location: Location,
    /// Address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long, env = "CAREBRIDGE_LISTEN")]
    listen: Option<SocketAddr>,
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
struct DemoArgs {
    /// Where to keep the demo node (must be empty or absent; default: a fresh temporary
    /// directory, removed on exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the demo's records in this (empty) PostgreSQL database rather than an encrypted
    /// file in the data directory.
    #[arg(long, env = "CAREBRIDGE_DATABASE__URL")]
    database_url: Option<String>,
    /// Doctors.
    #[arg(long, default_value_t = 3)]
    doctors: u32,
    /// Days ahead with appointments.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Patients.
    #[arg(long, default_value_t = 20)]
    patients: u32,
    /// Make exactly this many appointments, filling every doctor's slots from 30 days ago
    /// onwards (e.g. `--doctors 50 --patients 100000 --appointments 500000` for a large
    /// hospital), instead of a few a day.
    #[arg(long)]
    appointments: Option<u32>,
    /// Add a doctor with round-the-clock 5-minute slots, for load tests.
    #[arg(long)]
    bench: bool,
    /// IANA time zone.
    #[arg(long, default_value = "Europe/Amsterdam")]
    time_zone: String,
    /// `normal` (the demo's default: fast, survives a crash of the node) or `full` (every
    /// acknowledged write survives power loss, as a production node does; benchmarks use it).
    #[arg(long, default_value = "normal", value_parser = parse_durability)]
    durability: Durability,
    /// Seed --data-dir, write demo-credentials.json and a node.toml listening on --listen,
    /// then exit instead of serving (`carebridge-node serve --data-dir DIR` serves it later,
    /// e.g. after `peer add`).
    #[arg(long, requires = "data_dir")]
    prepare_only: bool,
}

#[cfg(feature = "demo")]
fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err("full or normal".into()),
    }
}

#[derive(Debug, Subcommand)]
enum PeerCommand {
    /// Add a peer from the document its `carebridge-node keys` printed (or update it). Prints
    /// the API key the pair shares: give it to the other side, who runs `peer add` with
    /// `--their-api-key`. The node must be stopped.
    Add(PeerAddArgs),
}

#[derive(Debug, Args)]
struct PeerAddArgs {
    #[command(flatten)]
    location: Location,
    /// The peer's identity document (JSON from its `carebridge-node keys`); `-` reads stdin.
    #[arg(long)]
    identity: PathBuf,
    /// An address or network the peer sends from (repeat for several).
    #[arg(long = "allow-source", required = true)]
    allow_source: Vec<String>,
    /// A message type the peer may send (repeat; default: what its kind sends this kind: an
    /// insurer sends a hospital admin-update; a hospital sends an insurer medical-reports and
    /// admin-update-ack, and another hospital the access-* and transfer-* types).
    #[arg(long = "allow-type")]
    allow_type: Vec<String>,
    /// The API key the other side printed when it added this node. Keys printed by earlier
    /// versions may start with `-`; they are taken as the value, not as an option.
    #[arg(long, allow_hyphen_values = true)]
    their_api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain, and check it against the node's signed checkpoints (and
    /// exported copies); name what is wrong.
    Verify(VerifyArgs),
    /// Print the node's signed checkpoints of its audit chain, one JSON object a line, to keep
    /// off the machine: `audit verify --checkpoints FILE` checks the chain against them.
    Checkpoint(CheckpointArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    location: Location,
    /// Checkpoints exported earlier (`audit checkpoint --export`, JSON lines), checked too.
    #[arg(long)]
    checkpoints: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckpointArgs {
    #[command(flatten)]
    location: Location,
    /// Export the checkpoints (required: nothing else is done here; the node makes them).
    #[arg(long, required = true)]
    export: bool,
    /// Only checkpoints numbered above this (the last one already exported).
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Only the newest N of them.
    #[arg(long)]
    latest: Option<usize>,
    /// Append to FILE instead of printing.
    #[arg(long)]
    to: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BackupArgs {
    #[command(flatten)]
    location: Location,
    /// The file to write (must not exist).
    #[arg(long)]
    to: PathBuf,
}

#[derive(Debug, Args)]
struct MigrateStoreArgs {
    /// The node's data directory (its node.toml, key and carebridge.db).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to move into, `postgres://user:password@host/db` (empty).
    #[arg(long)]
    to: String,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    #[command(flatten)]
    location: Location,
    /// The backup to check and restore.
    #[arg(long)]
    from: PathBuf,
    /// The key file that belongs to the backup, when the data directory has none yet.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ImportArgs {
    #[command(flatten)]
    location: Location,
    /// The file: a FHIR Bundle or resource (JSON), or NDJSON (one resource a line).
    file: PathBuf,
}

fn main() -> ExitCode {
    with_allocator_settings();
    let cli = Cli::parse();
    start_logging(log_format(&cli));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The form of the log: the served node's configuration (`log.format`, or
/// `CAREBRIDGE_LOG__FORMAT`) decides; the other commands talk to a person at a terminal.
fn log_format(cli: &Cli) -> LogFormat {
    match &cli.command {
        // A configuration that does not load is reported by the command itself.
        Command::Serve(a) => a.location.load().map(|c| c.log.format).unwrap_or_default(),
        #[cfg(feature = "demo")]
        Command::Demo(_) => match std::env::var("CAREBRIDGE_LOG__FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        },
        _ => LogFormat::Text,
    }
}

/// Logs to stderr at the level `CAREBRIDGE_LOG` sets (default: the node's info, others'
/// warnings). In JSON, each line carries the fields of the spans it was logged in: a
/// request's `request_id`, method and route.
fn start_logging(format: LogFormat) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAREBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("carebridge_server=info,warn"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines.with_filter(filter).boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(carebridge_server::timeline::layer(&[
            carebridge_server::TIMELINE,
        ]))
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(a) => {
            let password = admin_password()?;
            let opts = InitOptions {
                name: a.name,
                kind: a.kind,
                time_zone: a.time_zone,
                admin_username: a.admin_username,
                admin_password: password,
                database_url: a.database_url,
            };
            let cfg = init(&a.data_dir, &opts, &SystemClock)?;
            println!("Initialised node {} in {}", cfg.name, a.data_dir.display());
            match &cfg.database.url {
                Some(_) => println!("  database: PostgreSQL (named in node.toml)"),
                None => println!("  database: {} (encrypted)", cfg.db_path().display()),
            }
            println!(
                "  key file: {} — back it up separately; without it no backup can be read",
                cfg.key_path().display()
            );
            println!("  first admin: {}", opts.admin_username);
            println!(
                "Serve it with: carebridge-node serve --data-dir {}",
                a.data_dir.display()
            );
            Ok(())
        }
        Command::Serve(a) => {
            let mut cfg = a.location.load()?;
            if let Some(l) = a.listen {
                cfg.listen = l;
            }
            runtime()?.block_on(async move {
                let node = Node::open(cfg, Arc::new(SystemClock))?;
                serve_until_signal(node, None).await
            })
        }
        #[cfg(feature = "demo")]
        Command::Demo(a) => run_demo(a),
        Command::Audit {
            command: AuditCommand::Verify(a),
        } => audit_verify(&a),
        Command::Audit {
            command: AuditCommand::Checkpoint(a),
        } => audit_checkpoint_export(&a),
        Command::Keys(a) => {
            let cfg = a.location.load()?;
            let reader = carebridge_server::node::open_reader(&cfg)?;
            let id = carebridge_server::identity::identity(&reader.tx(), &cfg, &a.url)?;
            println!("{}", serde_json::to_string_pretty(&id)?);
            // For people to compare over the phone; stderr keeps stdout the document alone.
            eprintln!("signing key fingerprint: {}", id.fingerprint()?);
            Ok(())
        }
        Command::Peer {
            command: PeerCommand::Add(a),
        } => peer_add(a),
        Command::Backup(a) => {
            let cfg = a.location.load()?;
            let s = backup::backup(&cfg, &a.to)?;
            println!(
                "backup written to {}: schema {}, {} patients, {} appointments, audit chain OK ({} entries)",
                a.to.display(),
                s.schema,
                s.patients,
                s.appointments,
                s.audit_entries
            );
            println!(
                "It is encrypted with the node's key, which is NOT in the backup: keep {} safe, separately.",
                cfg.key_path().display()
            );
            Ok(())
        }
        Command::Restore(a) => restore(a),
        Command::MigrateStore(a) => {
            let cfg = NodeConfig::load(Some(&a.from.join(CONFIG_FILE)))?;
            let copied = carebridge_server::node::migrate_store(&cfg, &a.to)?;
            let total: i64 = copied.rows.values().sum();
            println!(
                "moved {total} rows in {} tables to PostgreSQL; audit chain OK ({} entries)",
                copied.rows.len(),
                copied.audit_entries
            );
            println!(
                "{} now names the database; {} is kept, unchanged, to go back to.",
                a.from.join(CONFIG_FILE).display(),
                a.from.join(carebridge_server::store::DB_FILE).display()
            );
            Ok(())
        }
        Command::Import(a) => import(a),
    }
}

/// `carebridge-node import FILE`: each entry applied on its own, progress on stderr, the
/// summary (and every refusal with its reason) on stdout. Fails when anything was refused, so
/// that a migration script notices.
fn import(a: ImportArgs) -> anyhow::Result<()> {
    use carebridge_server::fhir::import::{self, Disposition};
    use carebridge_server::store::AuditDraft;
    let cfg = a.location.load()?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let import::ImportFile {
        entries,
        unreadable,
    } = import::read_file(&text).map_err(anyhow::Error::msg)?;
    let total = entries.len() + unreadable.len();
    runtime()?.block_on(async move {
        let node = Node::open(cfg, Arc::new(SystemClock)).map_err(|e| match e {
            NodeError::Locked(dir) => anyhow::anyhow!(
                "{dir} is locked by a running carebridge-node: stop it, run `import`, then serve it again (or POST the file to /fhir/R4 as a batch)"
            ),
            e => e.into(),
        })?;
        let draft = AuditDraft {
            actor: "node".into(),
            action: "fhir.import".into(),
            entity: String::new(),
            source: format!("carebridge-node import {}", a.file.display()),
        };
        let step = (entries.len() / 100).max(1);
        let count = entries.len();
        let results = import::one_by_one(&node, draft, None, entries, |done| {
            if done % step == 0 || done == count {
                eprint!("\rimported {done}/{count}");
            }
        })
        .await;
        eprintln!();
        let created = results.iter().filter(|(_, r)| matches!(r, Ok(Disposition::Created(_)))).count();
        let matched = results.iter().filter(|(_, r)| matches!(r, Ok(Disposition::Matched(_)))).count();
        let mut refused: Vec<(usize, String)> = results
            .into_iter()
            .filter_map(|(i, r)| r.err().map(|e| (i, e.to_string())))
            .chain(unreadable.into_iter().map(|(i, e)| (i, e.to_string())))
            .collect();
        refused.sort();
        println!(
            "{total} entries: {created} created, {matched} matched as duplicates, {} refused",
            refused.len()
        );
        for (i, why) in &refused {
            println!("  refused entry {i}: {why}");
        }
        if refused.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{} of {total} entries were refused; nothing of them was applied", refused.len())
        }
    })
}

fn peer_add(a: PeerAddArgs) -> anyhow::Result<()> {
    use carebridge_server::federation::peer::{self, AddPeer, SourceRule};
    use carebridge_server::federation::peering;
    let cfg = a.location.load()?;
    let text = if a.identity.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the identity from stdin")?
    } else {
        std::fs::read_to_string(&a.identity)
            .with_context(|| format!("reading {}", a.identity.display()))?
    };
    let identity = serde_json::from_str(&text)
        .context("the identity is not a document `carebridge-node keys` printed")?;
    let allowed_sources = a
        .allow_source
        .iter()
        .map(|s| SourceRule::parse(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let allowed_types = a
        .allow_type
        .iter()
        .map(|t| {
            peer::parse_type(t).with_context(|| {
                format!(
                    "{t:?} is not a message type (medical-reports, admin-update, admin-update-ack)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    runtime()?.block_on(async move {
        let node = Node::open(cfg, Arc::new(SystemClock)).map_err(|e| match e {
            // The lock keeps two processes from writing one database: say what to do.
            NodeError::Locked(dir) => anyhow::anyhow!(
                "{dir} is locked by a running carebridge-node: stop it, run `peer add`, then serve it again"
            ),
            e => e.into(),
        })?;
        let req = AddPeer {
            identity,
            allowed_sources,
            allowed_types,
            their_api_key: a.their_api_key,
        };
        let name = req.identity.name.clone();
        let (key, fresh) = peering::add(&node, req).await?;
        if fresh {
            // stdout: the key alone, for scripts; the explanation on stderr.
            println!("{key}");
            eprintln!(
                "Peer {name} added. Give it the API key above: it runs `carebridge-node peer add --their-api-key <key>` with this node's identity."
            );
        } else {
            eprintln!("Peer {name} added with the API key it gave; the peering is complete on this side.");
        }
        Ok(())
    })
}

fn audit_verify(a: &VerifyArgs) -> anyhow::Result<()> {
    use carebridge_protocol::audit::checkpoint::TrailError;
    let cfg = a.location.load()?;
    let exported = match &a.checkpoints {
        None => Vec::new(),
        Some(f) => carebridge_server::audit::read_exported(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("reading {}", f.display()))?,
    };
    let reader = carebridge_server::node::open_reader(&cfg)?;
    match carebridge_server::store::audit::verify_trail(&reader.tx(), exported)? {
        Ok(t) => {
            println!("audit chain OK: {} entries, head {}", t.entries, t.head);
            match &t.latest {
                Some(cp) => println!(
                    "checked against {} signed checkpoints; the latest, {}, signed {} for entry {}",
                    t.checkpoints, cp.number, cp.signed_at, cp.seq
                ),
                None => {
                    println!("no signed checkpoint yet: entries could be cut off the end unnoticed")
                }
            }
            Ok(())
        }
        Err(TrailError::Chain(e)) => bail!("audit chain BROKEN at entry {}: {e}", e.seq()),
        Err(e) => bail!("audit trail BROKEN: {e}"),
    }
}

fn audit_checkpoint_export(a: &CheckpointArgs) -> anyhow::Result<()> {
    if !a.export {
        bail!("say what to do: --export");
    }
    let cfg = a.location.load()?;
    let reader = carebridge_server::node::open_reader(&cfg)?;
    let tx = reader.tx();
    let (signing, _) = carebridge_server::store::keys::public_keys(&tx)?;
    let mut list = carebridge_server::store::audit::checkpoints(&tx, a.after, u32::MAX)?;
    if let Some(n) = a.latest {
        list.drain(..list.len().saturating_sub(n));
    }
    let out = carebridge_server::audit::export(&cfg.name, &signing, &list)?;
    match &a.to {
        None => print!("{out}"),
        Some(f) => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .and_then(|mut file| file.write_all(out.as_bytes()))
                .with_context(|| format!("writing {}", f.display()))?;
            eprintln!("{} checkpoints appended to {}", list.len(), f.display());
        }
    }
    Ok(())
}

fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let dir = a
        .location
        .data_dir
        .clone()
        .or_else(|| {
            a.location
                .config
                .as_ref()
                .and_then(|c| c.parent().map(Path::to_path_buf))
        })
        .context("say which node: --config FILE or --data-dir DIR")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // The key and configuration written for a backup that is then refused are taken away
    // again: a wrong key left behind would be used by the next attempt, with the right one.
    let mut written = Vec::new();
    let restored = restore_into(&a, dir, &mut written);
    if restored.is_err() {
        for f in written {
            let _ = std::fs::remove_file(f);
        }
    }
    restored
}

fn restore_into(a: &RestoreArgs, dir: PathBuf, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if let Some(k) = &a.key_file {
        let dest = dir.join(KEY_FILE);
        if !dest.exists() {
            let key = std::fs::read(k).with_context(|| format!("reading {}", k.display()))?;
            carebridge_server::node::write_private(&dest, &key)?;
            written.push(dest);
        }
    }
    let cfg_file = a
        .location
        .config
        .clone()
        .unwrap_or_else(|| dir.join(CONFIG_FILE));
    if !cfg_file.exists() {
        // A bare directory: take the node's identity from the backup itself.
        let probe = NodeConfig {
            name: "restore.invalid".into(),
            data_dir: dir.clone(),
            ..NodeConfig::default()
        };
        let key = load_key(&probe)?;
        let reader = Reader::open(&a.from, &key)?;
        let get = |k: &str| {
            carebridge_server::store::meta(&reader.tx(), k).map(Option::unwrap_or_default)
        };
        let toml = format!(
            "name = {:?}\nkind = {:?}\ntime_zone = {:?}\n",
            get("name")?,
            get("kind")?,
            get("time_zone")?
        );
        std::fs::write(&cfg_file, toml)
            .with_context(|| format!("writing {}", cfg_file.display()))?;
        written.push(cfg_file.clone());
    }
    let mut cfg = NodeConfig::load(Some(&cfg_file))?;
    cfg.data_dir = dir;
    let stamp = SystemClock.now().format("%Y%m%dT%H%M%SZ").to_string();
    let s = backup::restore(&cfg, &a.from, &stamp)?;
    println!(
        "restored {} into {}: schema {}, {} patients, {} appointments, audit chain OK ({} entries)",
        a.from.display(),
        cfg.data_dir.display(),
        s.schema,
        s.patients,
        s.appointments,
        s.audit_entries
    );
    Ok(())
}

fn admin_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CAREBRIDGE_ADMIN_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "set CAREBRIDGE_ADMIN_PASSWORD, or run init in a terminal to be asked for the first admin's password"
        );
    }
    let p = rpassword::prompt_password("First admin's password (at least 12 characters): ")?;
    let again = rpassword::prompt_password("Again: ")?;
    if p != again {
        bail!("the two passwords differ");
    }
    Ok(p)
}

/// Runs once the node listens, with its URL.
type Banner = Box<dyn FnOnce(&str) + Send>;

async fn serve_until_signal(node: Arc<Node>, banner: Option<Banner>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(node.config.listen)
        .await
        .with_context(|| format!("listening on {}", node.config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if node.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{addr}");
    // The banner (the demo's seeding and help) comes first: whoever waits for this line can
    // rely on everything being ready when it appears.
    if let Some(b) = banner {
        b(&url);
    }
    println!("carebridge-node listening on {url}");
    let _ = std::io::stdout().flush();
    let stop = node.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    serve::serve(node, listener).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(feature = "demo")]
fn run_demo(a: DemoArgs) -> anyhow::Result<()> {
    let (dir, temporary) = match &a.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("carebridge-demo-{}", std::process::id())),
            true,
        ),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty; the demo needs an empty or absent directory",
            dir.display()
        );
    }
    if a.prepare_only && a.listen.port() == 0 {
        // The credentials name the URL the node will be served at: it must be known now.
        bail!("--prepare-only needs a fixed --listen port, not 0");
    }
    let mut opts = demo::init_options(&a.time_zone);
    opts.database_url = a.database_url.clone();
    let mut cfg = init(&dir, &opts, &SystemClock)?;
    let tmp_dir = dir.clone();
    cfg.listen = a.listen;
    cfg.durability = a.durability;
    let size = demo::DemoSize {
        doctors: a.doctors,
        days: a.days,
        patients: a.patients,
        bench: a.bench,
        appointments: a.appointments,
    };
    if a.prepare_only {
        return prepare_demo(cfg, &size);
    }
    let result = runtime()?.block_on(async move {
        let node = Node::open(cfg, Arc::new(SystemClock))?;
        let seeded = node.clone();
        let dir2 = dir.clone();
        let banner: Banner = Box::new(move |url: &str| {
            let rt = tokio::runtime::Handle::current();
            let creds =
                tokio::task::block_in_place(|| rt.block_on(demo::seed(&seeded, &size, url)));
            match creds.map_err(anyhow::Error::from).and_then(|c| {
                let path = demo::write_credentials(&dir2, &c)?;
                Ok((c, path))
            }) {
                Ok((c, path)) => print_demo_help(&c, &path),
                Err(e) => {
                    eprintln!("error: seeding the demo failed: {e:#}");
                    seeded.shutdown.cancel();
                }
            }
        });
        serve_until_signal(node, Some(banner)).await
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&tmp_dir);
    }
    result
}

#[cfg(feature = "demo")]
/// Seeds an initialised demo node without serving it, and makes its node.toml say what
/// `demo` would have served it with, so that a later `serve --data-dir` serves the same node.
fn prepare_demo(cfg: NodeConfig, size: &demo::DemoSize) -> anyhow::Result<()> {
    let dir = cfg.data_dir.clone();
    let toml_path = dir.join(CONFIG_FILE);
    let written = std::fs::read_to_string(&toml_path)
        .with_context(|| format!("reading {}", toml_path.display()))?;
    let mut toml: String = written
        .lines()
        .filter(|l| !l.starts_with("listen ="))
        .map(|l| format!("{l}\n"))
        .collect();
    toml.push_str(&format!(
        "listen = {:?}\ndurability = {:?}\n",
        cfg.listen.to_string(),
        match cfg.durability {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    ));
    std::fs::write(&toml_path, toml).with_context(|| format!("writing {}", toml_path.display()))?;
    let url = format!("http://{}", cfg.listen);
    let creds = runtime()?.block_on(async {
        let node = Node::open(cfg, Arc::new(SystemClock))?;
        anyhow::Ok(demo::seed(&node, size, &url).await?)
    })?;
    let path = demo::write_credentials(&dir, &creds)
        .with_context(|| format!("writing the credentials into {}", dir.display()))?;
    println!(
        "Demo node {} prepared in {}. Credentials: {}",
        creds.node,
        dir.display(),
        path.display()
    );
    println!(
        "Serve it with: carebridge-node serve --data-dir {}   (at {url})",
        dir.display()
    );
    Ok(())
}

#[cfg(feature = "demo")]
fn print_demo_help(c: &demo::DemoCredentials, path: &Path) {
    let url = &c.url;
    let doctor = &c.doctors[0];
    let patient = &c.patients[0];
    println!(
        r#"
CareBridge demo node "{node}" is ready. Credentials: {path}
  admin      {au} / {ap}
  reception  {ru} / {rp}
  doctors    {doctors} / {dp}
  kiosk      device {kid} / secret {ks}

Sign in as reception and keep the token:
  TOKEN=$(curl -s {url}/api/v1/sessions -H 'Content-Type: application/json' \
    -d '{{"username":"{ru}","password":"{rp}"}}' | jq -r .token)

Watch the live stream (in a second terminal, with the same TOKEN):
  curl -N {url}/api/v1/events -H "Authorization: Bearer $TOKEN"

Book {pname} with {dname} at the first free slot, and watch it arrive on the stream:
  curl -s {url}/api/v1/appointments -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
    -d '{{"patient_id":"{pid}","practitioner_id":"{did}","next_available_from":"{now}","reason":"Check-up"}}'

API description: {url}/api/v1/openapi.json   Stop with Ctrl-C."#,
        node = c.node,
        path = path.display(),
        au = c.admin.username,
        ap = c.admin.password,
        ru = c.reception.username,
        rp = c.reception.password,
        doctors = c
            .doctors
            .iter()
            .map(|d| d.username.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        dp = doctor.password,
        kid = c.kiosk.device_id,
        ks = c.kiosk.secret,
        pname = patient.name,
        dname = doctor.display_name,
        pid = patient.id,
        did = doctor.id,
        now = SystemClock.now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_their_api_key_starting_with_a_hyphen_is_taken_as_the_value() {
        // Keys printed before they had a prefix could start with `-` (base64url).
        let cli = Cli::try_parse_from([
            "carebridge-node",
            "peer",
            "add",
            "--identity",
            "peer.json",
            "--allow-source",
            "127.0.0.1",
            "--their-api-key",
            "-7kQ2bN0x",
        ])
        .expect("parses");
        let Command::Peer {
            command: PeerCommand::Add(args),
        } = cli.command
        else {
            panic!("not peer add: {cli:?}");
        };
        assert_eq!(args.their_api_key.as_deref(), Some("-7kQ2bN0x"));
    }
}

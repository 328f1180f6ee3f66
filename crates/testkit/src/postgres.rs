//! A PostgreSQL database of a test's own, on the throw-away cluster that `make test` starts
//! (`scripts/with-postgres.sh`, which names it in `TEST_POSTGRES_URL`).
//!
//! Each [`ScratchDatabase`] is a new, empty database, dropped (its connections ended) when the
//! value is: tests running together never see each other's rows.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the test cluster: a URL of a user that may create databases.
pub const CLUSTER_VARIABLE: &str = "TEST_POSTGRES_URL";

/// The test cluster's URL. Panics, saying how to get one, when it is not set: a test that
/// needs PostgreSQL and silently passed without it would prove nothing.
pub fn cluster_url() -> String {
    std::env::var(CLUSTER_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{CLUSTER_VARIABLE} is not set: run the tests through `make test`, or wrap the \
             command in scripts/with-postgres.sh, which starts a throw-away PostgreSQL cluster"
        )
    })
}

/// A fresh database on the test cluster, dropped with this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    name: String,
    url: String,
    admin: String,
}

impl ScratchDatabase {
    /// Creates an empty database. Blocking (a thread of its own runs the client, so it may be
    /// called from an async test).
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = cluster_url();
        let name = format!(
            "carebridge_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let sql = format!("CREATE DATABASE {name}");
        run(&admin, sql);
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the cluster URL ends with a database name");
        let url = format!("{base}/{name}");
        Self { name, url, admin }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything in the database as `pg_dump` writes it (plain SQL, data included): what a
    /// backup of it, or anyone with the server's files, would see.
    pub fn dump(&self) -> String {
        let out = std::process::Command::new(server_bin().join("pg_dump"))
            .arg("--dbname")
            .arg(&self.url)
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("pg_dump writes UTF-8")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        run(
            &self.admin,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `sql` on the cluster, on a thread of its own (the blocking client may not run on an
/// async thread).
fn run(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test PostgreSQL cluster does not answer: {e}"));
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("the PostgreSQL test thread panicked");
}

/// A PostgreSQL server of a test's own (not the shared test cluster): for what needs a server
/// to itself, such as a primary and its standby that a test kills and promotes. It lives in a
/// temporary directory, listens on a Unix socket there only, and is stopped (immediately) and
/// removed when dropped.
///
/// initdb and pg_ctl refuse to run as root: as root, the server runs as the `postgres` user.
#[derive(Debug)]
pub struct Server {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    settings: Vec<String>,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A PostgreSQL program, to be run as the server's owner.
fn as_owner(program: &std::path::Path) -> std::process::Command {
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}

/// Runs a PostgreSQL program as the server's owner, failing the test with its output.
fn run_as_owner(program: &std::path::Path, args: &[&str]) {
    let out = as_owner(program)
        .args(args)
        .output()
        .expect("a PostgreSQL program runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A path as a program argument (the test's temporary paths are UTF-8).
fn arg(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The newest PostgreSQL server programs installed (Debian's layout).
fn server_bin() -> std::path::PathBuf {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed under /usr/lib/postgresql")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("a PostgreSQL server")
}

impl Server {
    fn new_dir() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("carebridge-pg-server.")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        if is_root() {
            let ok = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        dir
    }

    /// A new server, with `settings` (`name=value`) on its command line.
    pub fn start(settings: &[&str]) -> Self {
        let dir = Self::new_dir();
        let bin = server_bin();
        let data = dir.path().join("data");
        run_as_owner(
            &bin.join("initdb"),
            &[
                "-D",
                arg(&data),
                "-A",
                "trust",
                "-U",
                "carebridge",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let server = Self {
            dir,
            bin,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.pg_ctl_start();
        server
    }

    /// A hot standby of `primary`, streaming from it as `name` (which `primary`'s
    /// `synchronous_standby_names` may list).
    pub fn standby_of(primary: &Server, name: &str) -> Self {
        let dir = Self::new_dir();
        let bin = primary.bin.clone();
        let data = dir.path().join("data");
        let from = format!(
            "host={} user=carebridge application_name={name}",
            primary.dir.path().display()
        );
        run_as_owner(
            &bin.join("pg_basebackup"),
            &[
                "-d",
                &from,
                "-D",
                arg(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        let server = Self {
            dir,
            bin,
            settings: Vec::new(),
        };
        server.pg_ctl_start();
        server
    }

    fn pg_ctl_start(&self) {
        let mut opts = format!("-c listen_addresses='' -k {}", self.dir.path().display());
        for s in &self.settings {
            opts.push_str(" -c ");
            opts.push_str(s);
        }
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        run_as_owner(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                arg(&data),
                "-l",
                arg(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
    }

    /// The URL of database `db` on this server, for the superuser `carebridge`.
    pub fn url(&self, db: &str) -> String {
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgres://carebridge@{host}/{db}")
    }

    /// Runs `sql` on database `db` (blocking: call it off the async threads).
    pub fn execute(&self, db: &str, sql: &str) {
        let mut c = postgres::Client::connect(&self.url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("{}: {e}", self.url(db)));
        c.batch_execute(sql).unwrap_or_else(|e| {
            panic!(
                "{sql}: {}",
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_owned())
            )
        });
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&self) {
        let data = self.dir.path().join("data");
        run_as_owner(
            &self.bin.join("pg_ctl"),
            &["-D", arg(&data), "-m", "immediate", "stop"],
        );
    }

    /// Crashes the server (as [`Server::kill`]) and starts it again on its data: a restart
    /// that every client connection sees as lost.
    pub fn restart(&self) {
        self.kill();
        self.pg_ctl_start();
    }

    /// Promotes a standby to a primary, and waits until it takes writes.
    pub fn promote(&self) {
        let data = self.dir.path().join("data");
        run_as_owner(
            &self.bin.join("pg_ctl"),
            &["-D", arg(&data), "-w", "promote"],
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", arg(&data), "-m", "immediate", "stop"])
            .output();
    }
}

//! `carebridge-node` as a child process: found beside the test that runs it, started on a data
//! dir and an address (`127.0.0.1:0` for a port of its own), SIGKILLed, and restarted on the same
//! data dir and address, as a crash and a restart would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a node may take to say it listens (it opens its SQLCipher database first).
const START: Duration = Duration::from_secs(30);

/// What `carebridge-node serve` prints once it listens, before its URL.
const LISTENING: &str = "carebridge-node listening on ";

/// The `carebridge-node` binary of this build.
///
/// nextest names it (`NEXTEST_BIN_EXE_carebridge-node`) to `carebridge-server`'s own tests;
/// everywhere else it is where cargo put it for this build: beside the test's `deps/` folder
/// (`$CARGO_TARGET_DIR/<profile>/carebridge-node`), which cargo fills when it builds the
/// workspace's tests or `carebridge-server`'s. `cargo test -p carebridge-core` alone does not
/// build it: the panic says so.
pub fn node_binary() -> PathBuf {
    for var in [
        "NEXTEST_BIN_EXE_carebridge-node",
        "NEXTEST_BIN_EXE_carebridge_node",
    ] {
        if let Some(bin) = std::env::var_os(var) {
            return PathBuf::from(bin);
        }
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // <target>/<profile>/deps/<test>-<hash>, or <target>/<profile>/examples|benches/…
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from a cargo target directory");
    let bin = profile.join(format!("carebridge-node{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the workspace's tests (make test), or `cargo build -p carebridge-server --bin carebridge-node` first",
        bin.display()
    );
    bin
}

/// A command running the node binary (see [`node_binary`]) with none of the test's own
/// `CAREBRIDGE_*` variables: the node reads them as its configuration, and a test's environment
/// (the app's passphrase, a developer's listen address) is not the node's. Add the arguments and
/// the variables the test means.
pub fn node_command() -> std::process::Command {
    command(&node_binary())
}

fn command(bin: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CAREBRIDGE_") {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// A `carebridge-node serve` child process, killed when dropped.
pub struct NodeProcess {
    child: tokio::process::Child,
    /// `http://` and the address it bound.
    pub url: String,
    /// The address it bound (`127.0.0.1:PORT`): where a restart serves again.
    pub addr: String,
    bin: PathBuf,
    dir: PathBuf,
}

impl NodeProcess {
    /// Serves the initialised data dir `dir` on `listen` (`127.0.0.1:0` for a port of its own),
    /// and returns once the node says where it listens; panics if it has not within 30 s.
    pub async fn spawn(dir: &Path, listen: &str) -> Self {
        Self::spawn_binary(&node_binary(), dir, listen).await
    }

    /// [`spawn`](Self::spawn) with another build of the node (a release binary, for a benchmark).
    pub async fn spawn_binary(bin: &Path, dir: &Path, listen: &str) -> Self {
        Self::spawn_binary_with(bin, dir, listen, &[]).await
    }

    /// [`spawn_binary`](Self::spawn_binary), with `env` added to the node's environment (which
    /// otherwise holds none of the caller's `CAREBRIDGE_` variables).
    pub async fn spawn_binary_with(
        bin: &Path,
        dir: &Path,
        listen: &str,
        env: &[(&str, &OsStr)],
    ) -> Self {
        let mut cmd = tokio::process::Command::from(command(bin));
        cmd.args([
            OsStr::new("serve"),
            OsStr::new("--data-dir"),
            dir.as_os_str(),
        ])
        .args(["--listen", listen])
        .env("CAREBRIDGE_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("the node's stdout")).lines();
        let url = tokio::time::timeout(START, async {
            while let Some(line) = lines.next_line().await.expect("the node's stdout") {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    return url.to_owned();
                }
            }
            panic!("carebridge-node exited before listening on {listen}");
        })
        .await
        .unwrap_or_else(|_| panic!("carebridge-node did not listen on {listen} within {START:?}"));
        // Keep reading, so that a chatty node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = url.trim_start_matches("http://").to_owned();
        Self {
            child,
            url,
            addr,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running node has a process id")
    }

    /// SIGKILL, and wait until the process is gone. The stopped node can be started again on its
    /// data dir and address.
    pub async fn kill(mut self) -> StoppedNode {
        self.child.kill().await.expect("SIGKILL the node");
        StoppedNode {
            url: self.url,
            addr: self.addr,
            bin: self.bin,
            dir: self.dir,
        }
    }

    /// SIGKILL, then serve the same data dir on the same address.
    pub async fn restart(self) -> Self {
        self.kill().await.restart().await
    }
}

/// A node killed by [`NodeProcess::kill`]: its data dir and the address it served.
#[derive(Debug, Clone)]
pub struct StoppedNode {
    /// `http://` and the address it served.
    pub url: String,
    /// The address it served.
    pub addr: String,
    bin: PathBuf,
    dir: PathBuf,
}

impl StoppedNode {
    /// Serves its data dir again on its address, with the same binary.
    pub async fn restart(&self) -> NodeProcess {
        let node = NodeProcess::spawn_binary(&self.bin, &self.dir, &self.addr).await;
        assert_eq!(node.addr, self.addr, "restarted on its address");
        node
    }
}

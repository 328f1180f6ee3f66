//! What the end-to-end test and the live-loop benchmark share: a seeded hospital node served by
//! the real `carebridge-node`, a tauri-driver per app process, free ports, and a time zone that
//! puts the working day ahead whenever they run.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{Node, init};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a process may take to start.
const START: Duration = Duration::from_secs(30);

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// A fixed-offset zone (`Etc/GMT±n`) where the local hour is now `hour` (or the one after, at
/// the edges of the offsets that exist), so that the demo's schedules lie ahead whenever the
/// caller runs.
pub fn zone_where_the_hour_is(hour: i64) -> String {
    use chrono::Timelike;
    let now = i64::from(SystemClock.now().hour());
    let mut offset = hour - now;
    if offset < -12 {
        offset += 24;
    }
    if offset > 14 {
        offset -= 24;
    }
    // POSIX-style names: Etc/GMT-2 is two hours ahead of UTC.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Initialises a hospital node in `dir`, in `zone`, seeded with demo data of `size`.
pub async fn seeded_hospital(dir: &Path, zone: &str, size: &DemoSize) -> DemoCredentials {
    let config = init(dir, &demo::init_options(zone), &SystemClock).expect("init");
    let node = Node::open(config, Arc::new(SystemClock)).expect("open");
    demo::seed(&node, size, "http://127.0.0.1")
        .await
        .expect("seed")
}

/// A `carebridge-node serve` child process.
pub struct NodeProcess(tokio::process::Child);

impl NodeProcess {
    /// Serves `dir` on `listen` with the node binary `bin`, once it says it listens.
    pub async fn start(bin: &Path, dir: &Path, listen: &str) -> Self {
        let mut child = tokio::process::Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen])
            .env("CAREBRIDGE_LOG", "warn")
            // The node reads CAREBRIDGE_* as its configuration: the apps' settings are not its.
            .env_remove("CAREBRIDGE_PASSPHRASE")
            .env_remove("CAREBRIDGE_REPORT_INTERACTIVE")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("carebridge-node starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::time::timeout(START, async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.starts_with("carebridge-node listening on ") {
                    return;
                }
            }
            panic!("carebridge-node exited before listening");
        })
        .await
        .expect("the node did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self(child)
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn stop(mut self) {
        self.0.kill().await.expect("the node stops");
    }
}

/// A tauri-driver (from `E2E_TAURI_DRIVER`) on `port`, with its WebKitWebDriver on a port of
/// its own; its URL once it listens.
pub async fn tauri_driver_on(port: u16) -> (tokio::process::Child, String) {
    let native = free_port();
    let child = tokio::process::Command::new(
        std::env::var_os("E2E_TAURI_DRIVER").expect("E2E_TAURI_DRIVER names tauri-driver"),
    )
    .args([
        "--port",
        &port.to_string(),
        "--native-port",
        &native.to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("tauri-driver starts");
    let deadline = tokio::time::Instant::now() + START;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tauri-driver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

//! What the end-to-end test and the live-loop benchmark share: a seeded hospital node's data
//! dir, a tauri-driver per app process, and a time zone that puts the working day ahead whenever
//! they run. The node process and free ports come from `carebridge-testkit`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::node::{Node, init};
use carebridge_testkit::{eventually, free_port};

/// How long a process may take to start.
const START: Duration = Duration::from_secs(30);

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

/// A tauri-driver (from `E2E_TAURI_DRIVER`) on `port`, with its WebKitWebDriver on a port of
/// its own; its URL once it listens.
/// `env`: variables added to the environment of the driver, and so of the apps it starts.
pub async fn tauri_driver_on(
    port: u16,
    env: &[(&str, &std::path::Path)],
) -> (tokio::process::Child, String) {
    let native = free_port();
    let child = tokio::process::Command::new(
        std::env::var_os("E2E_TAURI_DRIVER").expect("E2E_TAURI_DRIVER names tauri-driver"),
    )
    .envs(env.iter().copied())
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
    eventually(format!("tauri-driver listens on {port}"), START, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    (child, format!("http://127.0.0.1:{port}"))
}

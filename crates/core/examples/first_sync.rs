//! Measures a first sync: `cargo run --release -p carebridge-core --example first_sync --
//! URL USERNAME PASSWORD DIR`. Signs in, pulls the whole snapshot into a fresh encrypted store
//! in DIR, and prints how long it took and the process's peak memory (VmHWM).

use std::time::Instant;

use carebridge_core::sync::{SnapshotOptions, first_sync};
use carebridge_core::{LocalKey, LocalStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, user, pass, dir] = args.as_slice() else {
        return Err("usage: first_sync URL USERNAME PASSWORD DIR".into());
    };
    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{url}/api/v1/sessions"))
        .json(&serde_json::json!({"username": user, "password": pass}))
        .send()
        .await?
        .json()
        .await?;
    let token = session["token"]
        .as_str()
        .ok_or("sign-in failed")?
        .to_owned();
    std::fs::create_dir_all(dir)?;
    let db = std::path::Path::new(dir).join("local.db");
    let store =
        tokio::task::spawn_blocking(move || -> Result<LocalStore, carebridge_core::CoreError> {
            let key = LocalKey::derive("benchmark passphrase", &LocalKey::salt_for(&db)?)?;
            LocalStore::open(&db, &key)
        })
        .await??;
    let started = Instant::now();
    let records = first_sync(&http, url, &token, &store, &SnapshotOptions::default()).await?;
    let secs = started.elapsed().as_secs_f64();
    let hwm = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(str::to_owned)
        .unwrap_or_default();
    println!(
        "{records} records in {secs:.2} s ({:.0} records/s); {hwm}",
        records as f64 / secs
    );
    Ok(())
}

//! The client core's benchmark (run by `scripts/bench/core-bench.sh`, from `make bench`).
//! Each measurement runs on the encrypted store and, with `--plain`, on the same schema in a
//! plain SQLite file, so the cost of the encryption is measured on the same work.
//!
//! ```text
//! local_store_bench first-sync URL USERNAME PASSWORD DIR [--plain]
//! local_store_bench local DIR [--plain]
//! ```
//!
//! `first-sync` signs in and pulls the node's whole snapshot into a fresh store in DIR: time,
//! records and the process's peak memory (VmHWM). `local` works on the store a first sync left
//! in DIR: applying 10,000 live events (in the follower's batches of up to 256, and one per
//! transaction), then patient search by name prefix and full-text search, 2,000 queries each.
//! Every result is one JSON line on stdout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carebridge_core::protocol::appointment::AppointmentStatus;
use carebridge_core::protocol::event::LiveEvent;
use carebridge_core::store::{PatientQuery, SearchHit};
use carebridge_core::sync::{SnapshotOptions, first_sync};
use carebridge_core::{CoreError, LocalKey, LocalStore};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

type Error = Box<dyn std::error::Error>;

async fn open(dir: &Path, plain: bool) -> Result<LocalStore, Error> {
    let db = dir.join(if plain { "plain.db" } else { "local.db" });
    Ok(
        tokio::task::spawn_blocking(move || -> Result<LocalStore, CoreError> {
            if plain {
                LocalStore::open_plain_for_benchmark(&db)
            } else {
                let key = LocalKey::derive("benchmark passphrase", &LocalKey::salt_for(&db)?)?;
                LocalStore::open(&db, &key)
            }
        })
        .await??,
    )
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn variant(plain: bool) -> &'static str {
    if plain { "plain SQLite" } else { "SQLCipher" }
}

async fn sync(url: &str, user: &str, pass: &str, dir: &Path, plain: bool) -> Result<(), Error> {
    let http = reqwest::Client::new();
    let s = carebridge_core::session::sign_in_staff(&http, url, user, pass).await?;
    std::fs::create_dir_all(dir)?;
    let store = open(dir, plain).await?;
    let started = Instant::now();
    let records = first_sync(
        &http,
        url,
        &s.session.token,
        &store,
        &SnapshotOptions::default(),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "first-sync", "variant": variant(plain), "records": records,
                           "secs": secs, "peak_rss_mib": peak_rss_mib()})
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn local(dir: &Path, plain: bool) -> Result<(), Error> {
    let store = open(dir, plain).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let state = store.sync_state().await?;
    let start = state.last_event_id.or(state.snapshot_event_id).unwrap_or(0);

    // 20,000 appointments' next versions: confirmed, or cancelled with a reason.
    let mut pool: Vec<_> = store
        .appointments_between(
            None,
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )
        .await?
        .into_iter()
        .take(20_000)
        .map(|row| row.appointment)
        .collect();
    if pool.len() < 20_000 {
        return Err(format!(
            "the store holds {} appointments; the benchmark needs 20,000",
            pool.len()
        )
        .into());
    }
    pool.shuffle(&mut rng);
    let mut next_id = start;
    let mut events =
        |slice: &[carebridge_core::protocol::appointment::Appointment]| -> Vec<(i64, LiveEvent)> {
            slice
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.version += 1;
                    a.status = if rng.gen_bool(0.5) {
                        AppointmentStatus::Cancelled
                    } else {
                        AppointmentStatus::Booked
                    };
                    a.cancellation_reason =
                        (a.status == AppointmentStatus::Cancelled).then(|| "benchmark".into());
                    next_id += 1;
                    (next_id, LiveEvent::Appointment(a))
                })
                .collect()
        };
    let batched = events(&pool[..10_000]);
    let single = events(&pool[10_000..20_000]);
    let t = Instant::now();
    for chunk in batched.chunks(256) {
        store.apply_events(chunk.to_vec()).await?;
    }
    let per_s = 10_000.0 / t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "apply-events", "variant": variant(plain), "batch": 256, "events_per_s": per_s})
    );
    let t = Instant::now();
    for e in single {
        store.apply_events(vec![e]).await?;
    }
    let per_s = 10_000.0 / t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "apply-events", "variant": variant(plain), "batch": 1, "events_per_s": per_s})
    );

    // What reception types: the first 1 to 4 letters of a real family or given name.
    let patients = store
        .search_patients(PatientQuery {
            limit: Some(500),
            ..Default::default()
        })
        .await?;
    let names: Vec<String> = patients
        .iter()
        .flat_map(|p| {
            [
                p.patient.family_name.to_lowercase(),
                p.patient.given_name.to_lowercase(),
            ]
        })
        .collect();
    let prefixes: Vec<String> = (0..2000)
        .map(|_| {
            let n = names.choose(&mut rng).cloned().unwrap_or_default();
            let len = rng.gen_range(1..=4).min(n.chars().count().max(1));
            n.chars().take(len).collect()
        })
        .collect();
    let mut found = 0usize;
    let mut prefix_times = Vec::with_capacity(prefixes.len());
    for p in &prefixes {
        let t = Instant::now();
        found += store
            .search_patients(PatientQuery {
                name: Some(p.clone()),
                limit: Some(20),
                ..Default::default()
            })
            .await?
            .len();
        prefix_times.push(t.elapsed());
    }
    prefix_times.sort();
    let mut fts_times = Vec::with_capacity(prefixes.len());
    let mut fts_found = 0usize;
    for p in &prefixes {
        let t = Instant::now();
        let hits = store.search(p.clone(), 20).await?;
        fts_found += hits
            .iter()
            .filter(|h| matches!(h, SearchHit::Patient(_)))
            .count();
        fts_times.push(t.elapsed());
    }
    fts_times.sort();
    let patients_total = store.count("patient").await?;
    for (name, times, hits) in [
        ("name-prefix", &prefix_times, found),
        ("full-text", &fts_times, fts_found),
    ] {
        println!(
            "{}",
            serde_json::json!({"bench": "search", "kind": name, "variant": variant(plain), "patients": patients_total,
                               "queries": times.len(), "hits": hits,
                               "p50_ms": percentile(times, 0.50), "p99_ms": percentile(times, 0.99)})
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let plain = args.iter().any(|a| a == "--plain");
    args.retain(|a| a != "--plain");
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["first-sync", url, user, pass, dir] => sync(url, user, pass, &PathBuf::from(dir), plain).await,
        ["local", dir] => local(&PathBuf::from(dir), plain).await,
        _ => Err("usage: local_store_bench first-sync URL USERNAME PASSWORD DIR [--plain] | local DIR [--plain]".into()),
    }
}

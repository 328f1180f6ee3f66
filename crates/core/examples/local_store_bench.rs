//! The client core's benchmark (run by `scripts/bench/core-bench.sh`, from `make bench`).
//! Each measurement runs on the encrypted store and, with `--plain`, on the same schema in a
//! plain SQLite file, so the cost of the encryption is measured on the same work.
//!
//! ```text
//! local_store_bench first-sync URL USERNAME PASSWORD DIR [--plain]
//! local_store_bench search DIR [--plain]
//! local_store_bench live URL CREDENTIALS DIR [--plain] [--bookings N] [--rate R] [--burst E]
//! ```
//!
//! `first-sync` signs in and pulls the node's whole snapshot into a fresh store in DIR: time,
//! records and the process's peak memory (VmHWM).
//!
//! `search` works on the store a first sync left in DIR: patient search by name prefix and
//! full-text search, 2,000 queries each. Each query is the first 1 to 4 letters of the family or
//! the given name of a patient drawn uniformly from every patient in the store (found by the
//! demo's card numbers, which run from 1000000001 upwards).
//!
//! `live` measures live events the way they reach a user: through the node's stream. On the
//! demo node at URL (CREDENTIALS: its `demo-credentials.json`, seeded with `--bench`), it signs
//! in as the benchmark doctor, first-syncs the doctor's view into a fresh store in DIR and starts
//! the client's sync engine on it, with a notifier that notes when each notice arrives. The
//! kiosk then books with that doctor through the node's API:
//! - `--bookings N` (default 1,000) at `--rate R` a second (default 50), one at a time: for each,
//!   the time from the booking's response (and from its request) to the change notice the engine
//!   emits once it applied the event (network, SSE, JSON, the local transaction with its
//!   full-text update), and to the notifier's "kiosk booking" notice (which reads the patient's
//!   name from the store);
//! - then, with the engine stopped, `--burst E` more (default 10,000; 4 at a time); the engine is
//!   started again and catches up from its last event id: events per second from its start to
//!   the change notice of the last booking.
//!
//! Every booking must be noticed exactly once: a missing or repeated change notice or notice is
//! reported and makes the exit status 1. A p99 needs at least 100 samples; with fewer, only the
//! maximum is reported (`p99_ms` is null). Every result is one JSON line on stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carebridge_core::engine::Link;
use carebridge_core::protocol::appointment::{Appointment, BookAppointment};
use carebridge_core::protocol::patient::KioskIdentify;
use carebridge_core::protocol::session::KioskSignIn;
use carebridge_core::store::{PatientQuery, SearchHit};
use carebridge_core::sync::{SnapshotOptions, first_sync};
use carebridge_core::{Changes, CoreError, LocalKey, LocalStore, Notice, Notifier, SyncEngine};
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast;

type Error = Box<dyn std::error::Error>;

/// The demo's card numbers: patient i (0-based) holds card 1000000001 + i.
const FIRST_CARD: u64 = 1_000_000_001;
/// Fewer samples than this have no meaningful 99th percentile: the maximum is shown instead.
const MIN_SAMPLES_FOR_P99: usize = 100;
/// How long to wait for the last notices after the last booking.
const SETTLE: Duration = Duration::from_secs(60);

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

/// p50, p99 (only from [`MIN_SAMPLES_FOR_P99`] samples on) and the maximum, in ms.
fn summary(times: &mut [Duration]) -> serde_json::Value {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        ms(times[i])
    };
    if times.is_empty() {
        return serde_json::json!({"n": 0, "p50_ms": null, "p99_ms": null, "max_ms": null});
    }
    let p99 = (times.len() >= MIN_SAMPLES_FOR_P99).then(|| at(0.99));
    serde_json::json!({"n": times.len(), "p50_ms": at(0.50), "p99_ms": p99,
                       "max_ms": ms(times[times.len() - 1])})
}

async fn search(dir: &Path, plain: bool) -> Result<(), Error> {
    let store = open(dir, plain).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let patients_total = store.count("patient").await?;
    if patients_total == 0 {
        return Err("the store holds no patients".into());
    }

    // What reception types: the first 1 to 4 letters of the family or given name of a patient
    // drawn uniformly from all of them (not from the first page of an alphabetical list).
    let mut prefixes = Vec::with_capacity(2000);
    while prefixes.len() < 2000 {
        let card = FIRST_CARD + rng.gen_range(0..patients_total);
        let found = store
            .search_patients(PatientQuery {
                card_number: Some(card.to_string()),
                limit: Some(2),
                ..Default::default()
            })
            .await?;
        let [row] = found.as_slice() else {
            return Err(format!(
                "card {card}: {} patients; the benchmark needs the demo's numbered cards",
                found.len()
            )
            .into());
        };
        let name = if rng.gen_bool(0.5) {
            &row.patient.family_name
        } else {
            &row.patient.given_name
        };
        let len = rng.gen_range(1..=4).min(name.chars().count().max(1));
        prefixes.push(name.to_lowercase().chars().take(len).collect::<String>());
    }
    let distinct = prefixes
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();

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
    for (name, times, hits) in [
        ("name-prefix", &mut prefix_times, found),
        ("full-text", &mut fts_times, fts_found),
    ] {
        let queries = times.len();
        let mut line = serde_json::json!({"bench": "search", "kind": name, "variant": variant(plain),
                                          "patients": patients_total, "queries": queries,
                                          "distinct_prefixes": distinct, "hits": hits});
        if let (Some(o), serde_json::Value::Object(s)) = (line.as_object_mut(), summary(times)) {
            o.extend(s);
        }
        println!("{line}");
    }
    Ok(())
}

/// Notes when each kiosk booking's notice reached the notifier.
#[derive(Default)]
struct TimingNotifier {
    seen: Mutex<NoticeTimes>,
}

#[derive(Default)]
struct NoticeTimes {
    /// The first notice per appointment id.
    first: HashMap<String, Instant>,
    repeated: u64,
    /// Notices that came without the patient's name (the store lookup found nobody).
    unnamed: u64,
    other: u64,
}

impl Notifier for TimingNotifier {
    fn notify(&self, notice: Notice) {
        let at = Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        match notice {
            Notice::KioskBooking {
                appointment,
                patient_name,
            } => {
                if patient_name.is_none() {
                    seen.unnamed += 1;
                }
                if seen.first.insert(appointment.id.to_string(), at).is_some() {
                    seen.repeated += 1;
                }
            }
            _ => seen.other += 1,
        }
    }
}

/// When the engine's change notices named each id.
#[derive(Default)]
struct ChangeTimes {
    /// The first notice naming each id, and how many named it (a patient's id comes with each
    /// of their bookings; a booking's id must come once).
    first: HashMap<String, (Instant, u32)>,
    /// Notices that said "everything changed" (no ids): they stand for every id not yet seen.
    everything: Vec<Instant>,
    lagged: u64,
}

impl ChangeTimes {
    /// When a change notice first covered `id` (sent at `sent`).
    fn of(&self, id: &str, sent: Instant) -> Option<Instant> {
        let everything = self.everything.iter().copied().find(|t| *t >= sent);
        match (self.first.get(id).map(|(t, _)| *t), everything) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Listens to an engine's change notices until the engine stops.
fn listen(mut rx: broadcast::Receiver<Arc<Changes>>) -> Arc<Mutex<ChangeTimes>> {
    let times = Arc::new(Mutex::new(ChangeTimes::default()));
    let out = times.clone();
    tokio::spawn(async move {
        loop {
            let got = rx.recv().await;
            let at = Instant::now();
            let Ok(mut t) = times.lock() else { return };
            match got {
                Ok(c) => {
                    if c.everything {
                        t.everything.push(at);
                    }
                    for id in &c.ids {
                        t.first.entry(id.clone()).or_insert((at, 0)).1 += 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => t.lagged += n,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    out
}

async fn online(engine: &SyncEngine) -> Result<(), Error> {
    let mut status = engine.status();
    tokio::time::timeout(
        Duration::from_secs(600),
        status.wait_for(|s| s.link == Link::Online),
    )
    .await
    .map_err(|_| "the engine did not come online")??;
    Ok(())
}

/// One booking made by the kiosk through the node's API.
struct Booked {
    id: String,
    sent: Instant,
    answered: Instant,
}

struct Kiosk {
    http: reqwest::Client,
    url: String,
    token: String,
    doctor: String,
    patients: Vec<String>,
}

impl Kiosk {
    async fn book(&self, i: usize) -> Result<Booked, Error> {
        const REASONS: &[&str] = &["Follow-up", "Knee pain", "Headaches", "Skin rash"];
        let body = BookAppointment {
            id: None,
            patient_id: self.patients[i % self.patients.len()].parse()?,
            practitioner_id: self.doctor.parse()?,
            start: None,
            // The node books the first free slot from the later of this and its own clock:
            // any past time means "the next free slot from now".
            next_available_from: chrono::DateTime::from_timestamp(946_684_800, 0),
            end: None,
            reason: format!("{} (live bench {i})", REASONS[i % REASONS.len()]),
            override_reason: None,
        };
        let req = self
            .http
            .post(format!("{}/api/v1/appointments", self.url))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body);
        let sent = Instant::now();
        let res = req.send().await?;
        if !res.status().is_success() {
            let status = res.status();
            return Err(format!("booking {i}: {status} {}", res.text().await?).into());
        }
        let a: Appointment = res.json().await?;
        Ok(Booked {
            id: a.id.to_string(),
            sent,
            answered: Instant::now(),
        })
    }
}

/// Waits until every booking was noticed by both the engine and the notifier, or `SETTLE` passed.
async fn settle(booked: &[Booked], changes: &Mutex<ChangeTimes>, notices: &TimingNotifier) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let all = {
            let c = changes
                .lock()
                .map(|c| booked.iter().all(|b| c.of(&b.id, b.sent).is_some()));
            let n = notices
                .seen
                .lock()
                .map(|n| booked.iter().all(|b| n.first.contains_key(&b.id)));
            matches!((c, n), (Ok(true), Ok(true)))
        };
        if all || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What went wrong with the notices of `booked`, as counts (all zero when every booking was
/// noticed exactly once).
fn faults(booked: &[Booked], changes: &ChangeTimes, notices: &NoticeTimes) -> serde_json::Value {
    let missing_changes = booked
        .iter()
        .filter(|b| changes.of(&b.id, b.sent).is_none())
        .count();
    let repeated_changes = booked
        .iter()
        .filter(|b| changes.first.get(&b.id).is_some_and(|(_, n)| *n > 1))
        .count();
    let missing_notices = booked
        .iter()
        .filter(|b| !notices.first.contains_key(&b.id))
        .count();
    serde_json::json!({"missing_change_notices": missing_changes, "repeated_change_notices": repeated_changes,
                       "lagged_change_notices": changes.lagged, "missing_notices": missing_notices,
                       "repeated_notices": notices.repeated, "notices_without_name": notices.unnamed})
}

fn has_faults(f: &serde_json::Value) -> bool {
    f.as_object()
        .is_some_and(|o| o.values().any(|v| v.as_u64().is_some_and(|n| n > 0)))
}

struct LiveOptions {
    bookings: usize,
    rate: f64,
    burst: usize,
}

async fn live(
    url: &str,
    creds: &Path,
    dir: &Path,
    plain: bool,
    opts: LiveOptions,
) -> Result<bool, Error> {
    let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(creds)?)?;
    let text = |v: &serde_json::Value| -> Result<String, Error> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("demo credentials: {v} is not text").into())
    };
    let http = reqwest::Client::new();

    // The doctor: the demo's benchmark doctor ("dr.bench", seeded with --bench), whose password
    // is every demo doctor's.
    let password = text(&creds["doctors"][0]["password"])?;
    let doctor = carebridge_core::session::sign_in_staff(&http, url, "dr.bench", &password).await?;
    std::fs::create_dir_all(dir)?;
    let store = open(dir, plain).await?;
    let t = Instant::now();
    let records = first_sync(
        &http,
        url,
        &doctor.session.token,
        &store,
        &SnapshotOptions::default(),
    )
    .await?;
    let first_sync_s = t.elapsed().as_secs_f64();
    let patients_total = store.count("patient").await?;

    // The kiosk: signed in, the demo's first patients identified at it.
    let kiosk_session = carebridge_core::session::sign_in_kiosk(
        &http,
        url,
        KioskSignIn {
            device_id: text(&creds["kiosk"]["device_id"])?.parse()?,
            secret: text(&creds["kiosk"]["secret"])?,
        },
    )
    .await?;
    let kiosk = Kiosk {
        http: http.clone(),
        url: url.to_owned(),
        token: kiosk_session.session.token.clone(),
        doctor: text(&creds["bench"]["practitioner_id"])?,
        patients: creds["patients"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if kiosk.patients.is_empty() {
        return Err("demo credentials: no patients".into());
    }
    let identify = || async {
        for p in creds["patients"].as_array().into_iter().flatten() {
            let body = KioskIdentify {
                card_number: text(&p["card_number"])?,
                birth_date: text(&p["birth_date"])?.parse()?,
            };
            let res = http
                .post(format!("{url}/api/v1/kiosk/identify"))
                .bearer_auth(&kiosk.token)
                .json(&body)
                .send()
                .await?;
            if !res.status().is_success() {
                return Err::<(), Error>(format!("identify: {}", res.status()).into());
            }
        }
        Ok(())
    };
    identify().await?;

    let mut ok = true;

    // 1. One booking at a time at the given rate, the engine online.
    let notifier = Arc::new(TimingNotifier::default());
    let engine = SyncEngine::start(store.clone(), doctor.clone(), notifier.clone());
    let changes = listen(engine.changes());
    online(&engine).await?;
    let mut booked = Vec::with_capacity(opts.bookings);
    let t0 = tokio::time::Instant::now();
    let started = Instant::now();
    for i in 0..opts.bookings {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / opts.rate)).await;
        booked.push(kiosk.book(i).await?);
    }
    let booking_s = started.elapsed().as_secs_f64();
    settle(&booked, &changes, &notifier).await;
    {
        let c = changes.lock().map_err(|_| "poisoned")?;
        let n = notifier.seen.lock().map_err(|_| "poisoned")?;
        let mut after_response = Vec::new();
        let mut from_request = Vec::new();
        let mut notified = Vec::new();
        let mut before_response = 0;
        for b in &booked {
            if let Some(at) = c.of(&b.id, b.sent) {
                if at < b.answered {
                    before_response += 1;
                }
                after_response.push(at.saturating_duration_since(b.answered));
                from_request.push(at.saturating_duration_since(b.sent));
            }
            if let Some(at) = n.first.get(&b.id) {
                notified.push(at.saturating_duration_since(b.answered));
            }
        }
        let f = faults(&booked, &c, &n);
        ok &= !has_faults(&f);
        println!(
            "{}",
            serde_json::json!({"bench": "live-events", "variant": variant(plain), "patients": patients_total,
                               "doctor_first_sync_records": records, "doctor_first_sync_s": first_sync_s,
                               "bookings": booked.len(), "rate_asked": opts.rate,
                               "rate_per_s": booked.len() as f64 / booking_s,
                               "response_to_change_ms": summary(&mut after_response),
                               "request_to_change_ms": summary(&mut from_request),
                               "response_to_notice_ms": summary(&mut notified),
                               "changes_before_response": before_response, "faults": f})
        );
    }
    engine.shutdown().await;

    // 2. A burst while the engine is stopped; then it catches up through the stream.
    if opts.burst > 0 {
        identify().await?;
        let t = Instant::now();
        let burst: Vec<Result<Booked, Error>> =
            futures_util::stream::iter(opts.bookings..opts.bookings + opts.burst)
                .map(|i| kiosk.book(i))
                .buffer_unordered(4)
                .collect()
                .await;
        let burst_booking_s = t.elapsed().as_secs_f64();
        let booked = burst.into_iter().collect::<Result<Vec<_>, _>>()?;
        let notifier = Arc::new(TimingNotifier::default());
        let started = Instant::now();
        let engine = SyncEngine::start(store.clone(), doctor.clone(), notifier.clone());
        let changes = listen(engine.changes());
        settle(&booked, &changes, &notifier).await;
        {
            let c = changes.lock().map_err(|_| "poisoned")?;
            let n = notifier.seen.lock().map_err(|_| "poisoned")?;
            let last_change = booked
                .iter()
                .filter_map(|b| c.of(&b.id, started))
                .max()
                .map(|t| t.duration_since(started).as_secs_f64());
            let last_notice = n
                .first
                .values()
                .max()
                .map(|t| t.duration_since(started).as_secs_f64());
            let f = faults(&booked, &c, &n);
            ok &= !has_faults(&f);
            println!(
                "{}",
                serde_json::json!({"bench": "live-catch-up", "variant": variant(plain), "patients": patients_total,
                               "events": booked.len(), "booked_per_s": booked.len() as f64 / burst_booking_s,
                               "secs": last_change,
                               "events_per_s": last_change.map(|s| booked.len() as f64 / s),
                               "secs_to_last_notice": last_notice, "faults": f})
            );
        }
        engine.shutdown().await;
    }
    Ok(ok)
}

/// The value of `--flag V` in `args` (removed from them), or `default`.
fn flag<T: std::str::FromStr>(args: &mut Vec<String>, name: &str, default: T) -> Result<T, Error> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(default);
    };
    if i + 1 >= args.len() {
        return Err(format!("{name} needs a value").into());
    }
    let v = args.remove(i + 1);
    args.remove(i);
    v.parse()
        .map_err(|_| format!("{name}: not a valid value: {v}").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let plain = args.iter().any(|a| a == "--plain");
    args.retain(|a| a != "--plain");
    let opts = LiveOptions {
        bookings: flag(&mut args, "--bookings", 1000)?,
        rate: flag(&mut args, "--rate", 50.0)?,
        burst: flag(&mut args, "--burst", 10_000)?,
    };
    if opts.rate.is_nan() || opts.rate <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["first-sync", url, user, pass, dir] => sync(url, user, pass, &PathBuf::from(dir), plain).await,
        ["search", dir] => search(&PathBuf::from(dir), plain).await,
        ["live", url, creds, dir] => {
            if live(url, &PathBuf::from(creds), &PathBuf::from(dir), plain, opts).await? {
                Ok(())
            } else {
                Err("some bookings were not noticed exactly once (see the faults above)".into())
            }
        }
        _ => Err("usage: local_store_bench first-sync URL USERNAME PASSWORD DIR [--plain] | search DIR [--plain] | live URL CREDENTIALS DIR [--plain] [--bookings N] [--rate R] [--burst E]".into()),
    }
}

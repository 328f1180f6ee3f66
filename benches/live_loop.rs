//! The live loop as a person sees it: from the kiosk's click on *Book* to the booking drawn in
//! the doctor's window, over `LOOP_BOOKINGS` bookings (200 unless set); p50 and p99. Both ends
//! are timed on the machine's clock inside the windows: the click's time from a listener in the
//! kiosk window, the drawing from a MutationObserver (and the next animation frame) in the
//! doctor's.
//!
//! Each hop on the way is timed too, from the marks the processes leave on the machine's clock
//! (`CAREBRIDGE_TIMELINE`, see `carebridge_server::timeline`, and `ui/src/timeline.ts`): the
//! kiosk's click → its core stores the booking in the outbox → the node commits it → the node
//! streams it to the doctor → the doctor's core applies it → the app emits `changed` → the
//! window hears it → the window's read is answered → the row is drawn.
//!
//! Run by `scripts/bench/app-bench.sh` inside Xvfb and a private session bus, with
//! `E2E_TAURI_DRIVER` naming tauri-driver, `BENCH_NODE` the `carebridge-node` binary and
//! `CAREBRIDGE_TIMELINE` the file the node writes its marks to (the apps write theirs beside
//! it). Prints `live-loop n=200 p50_ms=… p99_ms=… max_ms=…`, then one `live-loop-hop` line per
//! hop (`hop=… n=… p50_ms=… p99_ms=… max_ms=…`).

#![expect(clippy::unwrap_used, reason = "a benchmark stops on the unexpected")]

// The end-to-end test's WebDriver client and harness; the bench uses part of them.
#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "../tests/e2e/webdriver.rs"]
#[allow(dead_code)]
mod webdriver;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carebridge_server::demo::{self, DemoSize};
use carebridge_testkit::{NodeProcess, free_port};
use harness::tauri_driver_on;
use webdriver::Session;

const WAIT: Duration = Duration::from_secs(30);
/// Enough for a 99th percentile that is not the maximum under another name, and within one
/// day of the bench doctor's 5-minute slots (288).
const DEFAULT_BOOKINGS: usize = 200;

fn bookings() -> usize {
    std::env::var("LOOP_BOOKINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=250).contains(n))
        .unwrap_or(DEFAULT_BOOKINGS)
}

/// `n=… p50_ms=… p99_ms=… max_ms=…` of `ms` (only `n=0` when empty).
fn summary(mut ms: Vec<f64>) -> String {
    let Some(max) = ms.iter().copied().reduce(f64::max) else {
        return "n=0".into();
    };
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "n={} p50_ms={:.1} p99_ms={:.1} max_ms={max:.1}",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0)
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("node");
        // The round-the-clock benchmark doctor (a free 5-minute slot at any hour), in a zone
        // where the day has just begun, so the whole day's slots lie ahead whenever it runs.
        let size = DemoSize {
            doctors: 1,
            days: 2,
            patients: 20,
            bench: true,
            appointments: None,
        };
        let zone = harness::zone_where_the_hour_is(0);
        let creds = harness::seeded_hospital(&dir, &zone, &size).await;
        let listen = format!("127.0.0.1:{}", free_port());
        let url = format!("http://{listen}");
        let bin = PathBuf::from(std::env::var_os("BENCH_NODE").unwrap());
        // The node's marks go where `CAREBRIDGE_TIMELINE` says; each app's beside them.
        let timeline = std::env::var_os("CAREBRIDGE_TIMELINE").map(PathBuf::from);
        let node_env: Vec<(&str, &std::ffi::OsStr)> = timeline
            .iter()
            .map(|t| ("CAREBRIDGE_TIMELINE", t.as_os_str()))
            .collect();
        let node = NodeProcess::spawn_binary_with(&bin, &dir, &listen, &node_env).await;

        let app = PathBuf::from(env!("CARGO_BIN_EXE_carebridge-app"));
        let app_timeline = |who: &str| {
            let f = timeline.as_deref().map_or_else(
                || scratch.path().join(format!("timeline.{who}.jsonl")),
                |t| t.with_extension(format!("{who}.jsonl")),
            );
            let _ = std::fs::remove_file(&f);
            f
        };
        let (staff_marks, kiosk_marks) = (app_timeline("staff"), app_timeline("kiosk"));
        let (_d1, staff_driver) =
            tauri_driver_on(free_port(), &[("CAREBRIDGE_TIMELINE", &staff_marks)]).await;
        let (_d2, kiosk_driver) =
            tauri_driver_on(free_port(), &[("CAREBRIDGE_TIMELINE", &kiosk_marks)]).await;
        let staff = Session::start(&staff_driver, "staff", &app, &[])
            .await
            .unwrap();
        let kiosk = Session::start(&kiosk_driver, "kiosk", &app, &["--kiosk"])
            .await
            .unwrap();
        let result = run(&staff, &kiosk, &creds, &url).await;
        if result.is_err() {
            // What each window showed when it failed.
            for s in [&staff, &kiosk] {
                if let Ok(text) = s.execute("return document.body.innerText;", vec![]).await {
                    eprintln!("{} window:\n{}", s.name, text.as_str().unwrap_or_default());
                }
            }
        }
        staff.end().await;
        kiosk.end().await;
        node.kill().await;
        match result {
            Ok(run) => {
                let ms = run.bookings.iter().map(|b| b.drawn - b.clicked).collect();
                println!("live-loop {}", summary(ms));
                let marks =
                    Marks::read(&[timeline.as_deref(), Some(&staff_marks), Some(&kiosk_marks)]);
                for (hop, ms) in hops(&run, &marks) {
                    println!("live-loop-hop hop={hop} {}", summary(ms));
                }
            }
            Err(e) => {
                eprintln!("live loop failed: {e}");
                std::process::exit(1);
            }
        }
    });
}

async fn run(
    staff: &Session,
    kiosk: &Session,
    creds: &demo::DemoCredentials,
    url: &str,
) -> Result<Run, String> {
    // The bench doctor signs in; the kiosk is set up.
    let node = staff.wait_for("#sign-in-node", WAIT).await?;
    staff.replace_text(&node, url).await?;
    let user = staff.wait_for("#sign-in-username", WAIT).await?;
    staff
        .type_into(
            &user,
            &format!("dr.bench\u{E004}{}\u{E007}", demo::DOCTOR_PASSWORD),
        )
        .await?;
    staff.wait_for("#waiting-heading", WAIT).await?;
    // Every row that appears in the waiting list: when it was drawn (the frame after the
    // change), by reference.
    staff
        .execute(
            "window.__drawn = {};
             window.__timeline = [];
             new MutationObserver(() => {
               // The frame that shows the change: timed when it is drawn, not when the DOM moved.
               requestAnimationFrame(() => {
                 const now = performance.timeOrigin + performance.now();
                 for (const tr of document.querySelectorAll('#waiting tr[data-reference]')) {
                   const r = tr.getAttribute('data-reference');
                   if (!(r in window.__drawn)) window.__drawn[r] = now;
                 }
               });
             }).observe(document.body, { childList: true, subtree: true });",
            vec![],
        )
        .await?;
    let device = creds.kiosk.device_id.to_string();
    for (css, value) in [
        ("#kiosk-node", url),
        ("#kiosk-device", device.as_str()),
        ("#kiosk-secret", creds.kiosk.secret.as_str()),
    ] {
        let e = kiosk.wait_for(css, WAIT).await?;
        kiosk.replace_text(&e, value).await?;
    }
    kiosk.click_button("form", "Sign in", WAIT).await?;
    kiosk.wait_for("#welcome-heading", WAIT).await?;
    kiosk
        .execute(
            "document.addEventListener('pointerdown', e => {
               if (e.target.closest('#kiosk-book')) window.__clickedAt = performance.timeOrigin + performance.now();
             }, true);",
            vec![],
        )
        .await?;
    let patient = &creds.patients[0];
    // The doctor's window is read only at the end: polling it during the loop would take the
    // CPU the loop is measured on.
    let bookings = bookings();
    let mut clicks = Vec::with_capacity(bookings);
    for i in 0..bookings {
        // Identify, the bench doctor, the next free slot, a reason, Book.
        let card = kiosk.wait_for("#kiosk-card", WAIT).await?;
        kiosk.type_into(&card, &patient.card_number).await?;
        for (kind, value) in [
            (
                "month",
                format!("{:02}", chrono::Datelike::month(&patient.birth_date)),
            ),
            (
                "day",
                format!("{:02}", chrono::Datelike::day(&patient.birth_date)),
            ),
            (
                "year",
                format!("{:04}", chrono::Datelike::year(&patient.birth_date)),
            ),
        ] {
            let e = kiosk
                .wait_for(&format!("#kiosk-birth [data-type={kind}]"), WAIT)
                .await?;
            kiosk.type_into(&e, &value).await?;
        }
        kiosk.click_button("form", "Continue", WAIT).await?;
        kiosk
            .click_button("section", "Book an appointment", WAIT)
            .await?;
        // The demo's round-the-clock doctor, by the name the kiosk shows.
        kiosk
            .click_button(".grid", "Dr. Bench (load tests)", WAIT)
            .await?;
        kiosk.click_first(".grid.times button", WAIT).await?;
        let reason = kiosk.wait_for("#kiosk-reason", WAIT).await?;
        kiosk.type_into(&reason, &format!("Live loop {i}")).await?;
        kiosk.click_first("#kiosk-book", WAIT).await?;
        let (reference, id) = {
            let e = kiosk.wait_for("#kiosk-reference", WAIT).await?;
            let id = kiosk
                .execute(
                    "return document.querySelector('#kiosk-reference').dataset.appointment;",
                    vec![],
                )
                .await?;
            (
                kiosk.text(&e).await?.trim().to_owned(),
                id.as_str().unwrap_or_default().to_owned(),
            )
        };
        let clicked = kiosk
            .execute("return window.__clickedAt ?? null;", vec![])
            .await?;
        let clicked = clicked
            .as_f64()
            .ok_or_else(|| format!("no click time for booking {i}: {clicked}"))?;
        clicks.push((reference, id, clicked));
        kiosk.click_button("section", "Done", WAIT).await?;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let drawn = loop {
        let drawn = staff.execute("return window.__drawn;", vec![]).await?;
        if clicks
            .iter()
            .all(|(r, _, _)| drawn.get(r).is_some_and(|v| v.is_number()))
        {
            break drawn;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not every booking reached the doctor's window: {drawn}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let window = staff.execute("return window.__timeline;", vec![]).await?;
    let window = window
        .as_array()
        .map(|marks| {
            marks
                .iter()
                .filter_map(|m| {
                    Some((
                        m["mark"].as_str()?.to_owned(),
                        m["id"].as_str()?.to_owned(),
                        m["at"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        bookings: clicks
            .into_iter()
            .map(|(r, id, clicked)| Booking {
                id,
                clicked,
                drawn: drawn[r.as_str()].as_f64().unwrap_or_default(),
            })
            .collect(),
        window,
    })
}

/// One booking as the windows saw it: ms on the machine's clock.
struct Booking {
    /// The appointment's id.
    id: String,
    clicked: f64,
    drawn: f64,
}

/// What the loop measured: the bookings, and the doctor's window's own marks.
struct Run {
    bookings: Vec<Booking>,
    /// `ui.heard` and `ui.read` marks from the doctor's window: (mark, id, ms).
    window: Vec<(String, String, f64)>,
}

/// The processes' marks, by what they name.
#[derive(Default)]
struct Marks {
    /// (mark, appointment id) → the first time it was made.
    by_id: HashMap<(String, String), f64>,
    /// (mark, event id, `to`) → the first time it was made.
    by_event: HashMap<(String, i64, String), f64>,
    /// The doctor's core: appointment id → event id it applied.
    applied_event: HashMap<String, i64>,
}

impl Marks {
    /// Reads the JSON lines the node and the apps wrote. The staff file comes second, so the
    /// `client.*` marks keyed by the file are told apart: a mark's file decides whose it is.
    fn read(files: &[Option<&Path>]) -> Self {
        let mut m = Self::default();
        for (n, file) in files.iter().enumerate() {
            let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
                continue;
            };
            let who = ["node", "staff", "kiosk"][n];
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let (Some(mark), Some(at)) = (
                    v["mark"].as_str(),
                    v["timestamp"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
                ) else {
                    continue;
                };
                let ms = at.timestamp_micros() as f64 / 1000.0;
                let name = format!("{who}:{mark}");
                if let Some(id) = v["id"].as_str() {
                    m.by_id.entry((name, id.to_owned())).or_insert(ms);
                    if who == "staff"
                        && mark == "client.applied"
                        && let Some(e) = v["event"].as_i64()
                    {
                        // The first event applied for it is the one that drew its row.
                        m.applied_event.entry(id.to_owned()).or_insert(e);
                    }
                } else if let Some(e) = v["event"].as_i64() {
                    let to = v["to"].as_str().unwrap_or_default().to_owned();
                    m.by_event.entry((name, e, to)).or_insert(ms);
                }
            }
        }
        m
    }

    fn first(&self, mark: &str, id: &str) -> Option<f64> {
        self.by_id.get(&(mark.to_owned(), id.to_owned())).copied()
    }
}

/// Each hop's durations over the bookings whose both ends were marked, in the order of the way.
fn hops(run: &Run, marks: &Marks) -> Vec<(&'static str, Vec<f64>)> {
    let mut out: Vec<(&'static str, Vec<f64>)> = [
        "click→stored",
        "stored→node-committed",
        "node-committed→streamed",
        "streamed→applied",
        "applied→changed",
        "changed→heard",
        "heard→read",
        "read→drawn",
    ]
    .into_iter()
    .map(|h| (h, Vec::new()))
    .collect();
    for b in &run.bookings {
        let event = marks.applied_event.get(&b.id).copied();
        let at_event = |mark: &str, to: &str| {
            event.and_then(|e| {
                marks
                    .by_event
                    .get(&(mark.to_owned(), e, to.to_owned()))
                    .copied()
            })
        };
        let window = |mark: &str, last_before: Option<f64>| {
            let times = run
                .window
                .iter()
                .filter(|(m, id, _)| m == mark && *id == b.id)
                .map(|(_, _, t)| *t);
            match last_before {
                // The read the drawn row waited for: the last answered before it was drawn.
                Some(limit) => times.filter(|t| *t <= limit).reduce(f64::max),
                None => times.reduce(f64::min),
            }
        };
        let points = [
            Some(b.clicked),
            marks.first("kiosk:client.stored", &b.id),
            at_event("node:node.committed", ""),
            at_event("node:node.streamed", "staff"),
            marks.first("staff:client.applied", &b.id),
            marks.first("staff:app.changed", &b.id),
            window("ui.heard", None),
            window("ui.read", Some(b.drawn)),
            Some(b.drawn),
        ];
        for (i, pair) in points.windows(2).enumerate() {
            if let [Some(from), Some(to)] = pair {
                out[i].1.push(to - from);
            }
        }
    }
    out
}

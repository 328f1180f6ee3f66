//! The live loop as a person sees it: from the kiosk's click on *Book* to the booking drawn in
//! the doctor's window, over `LOOP_BOOKINGS` bookings (200 unless set); p50 and p99. Both ends
//! are timed on the machine's clock inside the windows: the click's time from a listener in the
//! kiosk window, the drawing from a MutationObserver (and the next animation frame) in the
//! doctor's.
//!
//! Run by `scripts/bench/app-bench.sh` inside Xvfb and a private session bus, with
//! `E2E_TAURI_DRIVER` naming tauri-driver and `BENCH_NODE` the `carebridge-node` binary.
//! Prints one line: `live-loop n=200 p50_ms=… p99_ms=… max_ms=…`.

#![expect(clippy::unwrap_used, reason = "a benchmark stops on the unexpected")]

// The end-to-end test's WebDriver client and harness; the bench uses part of them.
#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "../tests/e2e/webdriver.rs"]
#[allow(dead_code)]
mod webdriver;

use std::path::PathBuf;
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
        let node = NodeProcess::spawn_binary(&bin, &dir, &listen).await;

        let app = PathBuf::from(env!("CARGO_BIN_EXE_carebridge-app"));
        let (_d1, staff_driver) = tauri_driver_on(free_port()).await;
        let (_d2, kiosk_driver) = tauri_driver_on(free_port()).await;
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
            Ok(mut ms) => {
                ms.sort_by(|a, b| a.total_cmp(b));
                println!(
                    "live-loop n={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
                    ms.len(),
                    percentile(&ms, 50.0),
                    percentile(&ms, 99.0),
                    ms[ms.len() - 1]
                );
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
) -> Result<Vec<f64>, String> {
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
             new MutationObserver(() => {
               // The frame that shows the change: timed when it is drawn, not when the DOM moved.
               requestAnimationFrame(() => {
                 const now = Date.now();
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
               if (e.target.closest('#kiosk-book')) window.__clickedAt = Date.now();
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
        let reference = {
            let e = kiosk.wait_for("#kiosk-reference", WAIT).await?;
            kiosk.text(&e).await?.trim().to_owned()
        };
        let clicked = kiosk
            .execute("return window.__clickedAt ?? null;", vec![])
            .await?;
        let clicked = clicked
            .as_f64()
            .ok_or_else(|| format!("no click time for booking {i}: {clicked}"))?;
        clicks.push((reference, clicked));
        kiosk.click_button("section", "Done", WAIT).await?;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let drawn = loop {
        let drawn = staff.execute("return window.__drawn;", vec![]).await?;
        if clicks
            .iter()
            .all(|(r, _)| drawn.get(r).is_some_and(|v| v.is_number()))
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
    Ok(clicks
        .iter()
        .map(|(r, clicked)| drawn[r.as_str()].as_f64().unwrap_or_default() - clicked)
        .collect())
}

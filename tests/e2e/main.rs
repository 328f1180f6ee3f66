//! End to end, as people use it: the real app, built by cargo, in three processes (a
//! hospital's staff window, a patient kiosk, and an insurer's staff window) under Xvfb, driven
//! through tauri-driver and WebKitWebDriver, against two real `carebridge-node`s peered with
//! each other; with dunst receiving the desktop notifications and gnome-keyring serving the
//! Secret Service on the test's own session bus.
//!
//! The kiosk books; the doctor's window shows it live and the doctor confirms; the kiosk
//! shows the confirmation. A booking the node refuses shows the node's reason. With the node
//! stopped a booking shows as pending and is delivered when the node returns. A staff command
//! called from the kiosk window is refused by the capability. The doctor signs a report and
//! sends it, with the patient's consent, to the insurer, whose window shows it arrive; the
//! insurer's update comes back and the doctor acknowledges it. axe-core runs on every screen.
//! Screenshots of each step go to `target/e2e/`.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod harness;
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;

use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::config::{CONFIG_FILE, NodeConfig, NodeKind};
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::federation::peer::{AddPeer, SourceRule};
use carebridge_server::federation::peering;
use carebridge_server::node::{InitOptions, Node, init};
use carebridge_testkit::{NodeProcess, free_port};
use harness::tauri_driver_on;
use serde_json::{Value, json};
use webdriver::Session;

const WAIT: Duration = Duration::from_secs(30);
/// A live change must reach the other window well within this.
const LIVE: Duration = Duration::from_secs(15);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `tauri-driver`, on PATH or where `cargo install` puts it.
fn tauri_driver() -> PathBuf {
    if have("tauri-driver") {
        return PathBuf::from("tauri-driver");
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin").join("tauri-driver")
}

/// Starts Xvfb on a free display, then runs [`inside`] in `dbus-run-session` with dunst
/// logging every notification it receives and gnome-keyring unlocked, all private to the
/// test.
#[test]
fn the_kiosk_and_the_doctor_see_each_other_live() {
    for tool in [
        "Xvfb",
        "dbus-run-session",
        "dunst",
        "gnome-keyring-daemon",
        "WebKitWebDriver",
    ] {
        assert!(have(tool), "{tool} is missing: run `make deps`");
    }
    assert!(
        tauri_driver().exists() || have("tauri-driver"),
        "tauri-driver is missing: run `make deps`"
    );
    let scratch = tempfile::tempdir().unwrap();
    let display = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display");
    let mut xvfb = std::process::Command::new("Xvfb")
        .arg(format!(":{display}"))
        .args(["-screen", "0", "1440x900x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "Xvfb did not start");
        std::thread::yield_now();
    }
    let notifications = scratch.path().join("notifications.log");
    let dunstrc = scratch.path().join("dunstrc");
    let logger = scratch.path().join("log-notification.sh");
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$2\" \"$3\" >> '{}'\n",
            notifications.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &dunstrc,
        format!(
            "[global]\n    timeout = 0\n[log]\n    summary = \"*\"\n    script = {}\n",
            logger.display()
        ),
    )
    .unwrap();
    let script = r#"chmod +x "$LOGGER" &&
        printf 'e2e-keyring' | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
        gnome-keyring-daemon --start --components=secrets >/dev/null &&
        { dunst -config "$DUNSTRC" >/dev/null 2>&1 & } &&
        exec "$0" --exact inside --ignored --nocapture"#;
    let out = std::process::Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .arg(std::env::current_exe().unwrap())
        .env("DISPLAY", format!(":{display}"))
        .env("HOME", scratch.path())
        .env("XDG_DATA_HOME", scratch.path().join("data"))
        .env("XDG_RUNTIME_DIR", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path().join("config"))
        .env("LOGGER", &logger)
        .env("DUNSTRC", &dunstrc)
        .env("E2E_NOTIFICATIONS", &notifications)
        .env("E2E_SCRATCH", scratch.path())
        .env("E2E_TAURI_DRIVER", tauri_driver())
        .env_remove("CAREBRIDGE_PASSPHRASE")
        .output()
        .unwrap();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    // The child must have run the scenario, exactly once: a filter that matched nothing would
    // also exit 0 having driven nothing.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "the end-to-end run failed or did not run exactly one test:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The e2e's hospital: two doctors, a fortnight of appointments, in a zone where it is now
/// about 09:00, so the working day (08:00–18:00) lies ahead whenever the test runs.
async fn seeded_hospital(dir: &Path) -> DemoCredentials {
    let size = DemoSize {
        doctors: 2,
        days: 14,
        patients: 20,
        bench: false,
        appointments: None,
    };
    harness::seeded_hospital(dir, &harness::zone_where_the_hour_is(9), &size).await
}

/// Where the screenshots go.
fn shots() -> PathBuf {
    let dir = repo().join("target").join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs axe-core in the window and fails on any serious or critical WCAG 2.1 A/AA violation.
async fn accessible(s: &Session, screen: &str) -> Result<(), String> {
    let axe = std::fs::read_to_string(repo().join("ui/node_modules/axe-core/axe.min.js"))
        .map_err(|e| format!("axe-core (npm install in ui/): {e}"))?;
    // The driver runs its script outside the page's CSP; `eval` inside the page may not.
    let loaded = s
        .execute(
            &format!("if (!window.axe) {{ {axe}\n }} return typeof window.axe;"),
            vec![],
        )
        .await?;
    if loaded != json!("object") {
        return Err(format!("{screen}: axe-core did not load ({loaded})"));
    }
    let result = s
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await?;
    let found: Vec<String> = serde_json::from_value(result).unwrap_or_default();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{screen} ({}): accessibility violations:\n  {}",
            s.name,
            found.join("\n  ")
        ))
    }
}

/// A screen reached: screenshot and accessibility check.
async fn step(s: &Session, n: u32, name: &str) -> Result<(), String> {
    s.screenshot(&shots().join(format!("{n:02}-{name}.png")))
        .await?;
    accessible(s, name).await
}

/// Fills a React Aria date field (its segments, in the locale's order) by typing.
async fn type_date(s: &Session, field: &str, date: chrono::NaiveDate) -> Result<(), String> {
    use chrono::Datelike;
    let segments = s
        .execute(
            "return [...document.querySelectorAll(arguments[0] + ' [data-type]')]
                .map(e => e.getAttribute('data-type')).filter(t => t !== 'literal');",
            vec![json!(field)],
        )
        .await?;
    for kind in segments.as_array().cloned().unwrap_or_default() {
        let kind = kind.as_str().unwrap_or_default().to_owned();
        let value = match kind.as_str() {
            "year" => format!("{:04}", date.year()),
            "month" => format!("{:02}", date.month()),
            "day" => format!("{:02}", date.day()),
            other => return Err(format!("unexpected date segment {other}")),
        };
        let e = s
            .wait_for(&format!("{field} [data-type={kind}]"), WAIT)
            .await?;
        s.type_into(&e, &value).await?;
    }
    Ok(())
}

/// The kiosk's buttons that the steps below press, by their text in one language.
struct KioskButtons {
    continue_: &'static str,
    book_new: &'static str,
    book: &'static str,
}

const ENGLISH_KIOSK: KioskButtons = KioskButtons {
    continue_: "Continue",
    book_new: "Book an appointment",
    book: "Book",
};

const DUTCH_KIOSK: KioskButtons = KioskButtons {
    continue_: "Verder",
    book_new: "Een afspraak maken",
    book: "Boeken",
};

/// At the staff window's sign-in form (the node already filled in): signs in as `username`.
async fn sign_in_as(staff: &Session, username: &str, password: &str) -> Result<(), String> {
    let user = staff.wait_for("#sign-in-username", WAIT).await?;
    staff.replace_text(&user, username).await?;
    let field = staff.wait_for("#sign-in-password", WAIT).await?;
    staff
        .type_into(&field, &format!("{password}\u{E007}"))
        .await
}

/// At the kiosk's welcome screen: identify as the demo patient.
async fn identify(kiosk: &Session, creds: &DemoCredentials) -> Result<(), String> {
    identify_in(kiosk, creds, &ENGLISH_KIOSK).await
}

async fn identify_in(
    kiosk: &Session,
    creds: &DemoCredentials,
    buttons: &KioskButtons,
) -> Result<(), String> {
    let patient = &creds.patients[0];
    let card = kiosk.wait_for("#kiosk-card", WAIT).await?;
    kiosk.type_into(&card, &patient.card_number).await?;
    type_date(kiosk, "#kiosk-birth", patient.birth_date).await?;
    kiosk.click_button("form", buttons.continue_, WAIT).await?;
    let first = patient.name.split(' ').next().unwrap_or_default();
    kiosk.wait_for_text("#hello-heading", first, WAIT).await?;
    Ok(())
}

/// From the patient's home screen: the doctor, then the first day with a free slot; returns
/// the chosen slot's start (as the page shows it, and as the node's ISO time).
async fn choose_slot(kiosk: &Session, doctor: &str, skip: usize) -> Result<String, String> {
    choose_slot_in(kiosk, doctor, skip, &ENGLISH_KIOSK).await
}

async fn choose_slot_in(
    kiosk: &Session,
    doctor: &str,
    skip: usize,
    buttons: &KioskButtons,
) -> Result<String, String> {
    kiosk
        .click_button("section", buttons.book_new, WAIT)
        .await?;
    kiosk.click_button(".grid", doctor, WAIT).await?;
    for day in 0..14 {
        kiosk
            .execute(
                "const b = document.querySelectorAll('.days button')[arguments[0]]; b && b.click();",
                vec![json!(day)],
            )
            .await?;
        // The day's slots have loaded once the "no free times" line or a time shows.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let state = kiosk
                .execute(
                    "const chosen = document.querySelectorAll('.days button')[arguments[0]];
                     if (!chosen || chosen.getAttribute('aria-pressed') !== 'true') return 'loading';
                     const times = [...document.querySelectorAll('.grid.times button')];
                     if (times.length > arguments[1]) return 'times';
                     return document.getElementById('no-slots') ? 'none' : 'loading';",
                    vec![json!(day), json!(skip)],
                )
                .await?;
            match state.as_str() {
                Some("times") => {
                    let label = kiosk
                        .execute(
                            "const b = document.querySelectorAll('.grid.times button')[arguments[0]];
                             const t = b.textContent; b.click(); return t;",
                            vec![json!(skip)],
                        )
                        .await?;
                    kiosk.wait_for("#kiosk-reason", WAIT).await?;
                    return Ok(label.as_str().unwrap_or_default().to_owned());
                }
                Some("none") => break,
                _ if tokio::time::Instant::now() > deadline => {
                    return Err("the slots did not load".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Err(format!("no free slot with {doctor} in 14 days"))
}

async fn give_reason_and_book(kiosk: &Session, reason: &str) -> Result<(), String> {
    give_reason_and_book_in(kiosk, reason, &ENGLISH_KIOSK).await
}

async fn give_reason_and_book_in(
    kiosk: &Session,
    reason: &str,
    buttons: &KioskButtons,
) -> Result<(), String> {
    let field = kiosk.wait_for("#kiosk-reason", WAIT).await?;
    kiosk.type_into(&field, reason).await?;
    kiosk.click_button("form", buttons.book, WAIT).await?;
    kiosk.wait_for("#kiosk-answer", WAIT).await?;
    Ok(())
}

/// The reference the kiosk shows for its booking (once the node gave it one).
async fn reference(kiosk: &Session) -> Result<String, String> {
    let e = kiosk.wait_for("#kiosk-reference", LIVE).await?;
    let r = kiosk.text(&e).await?;
    if r.trim().is_empty() {
        return Err("the kiosk shows an empty reference".into());
    }
    Ok(r.trim().to_owned())
}

/// Books `start` with `doctor` for a patient through the node's API, as reception.
async fn book_as_reception(
    url: &str,
    creds: &DemoCredentials,
    doctor: &str,
    start: &str,
) -> Result<(), String> {
    let body = json!({
        "patient_id": creds.patients[1].id,
        "practitioner_id": doctor,
        "start": start,
        "reason": "Booked at the front desk meanwhile",
    });
    reception_books(url, creds, body).await
}

/// Books through the node's API as reception.
async fn reception_books(url: &str, creds: &DemoCredentials, body: Value) -> Result<(), String> {
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("{url}/api/v1/sessions"))
        .json(
            &json!({ "username": creds.reception.username, "password": creds.reception.password }),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = session["token"].as_str().ok_or("no token")?;
    let res = http
        .post(format!("{url}/api/v1/appointments"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!(
            "reception's booking: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}

/// The start of the slot the kiosk is about to book, as the node names it.
async fn chosen_slot_start(kiosk: &Session) -> Result<String, String> {
    let v = kiosk
        .execute("return document.querySelector('form[data-start]')?.getAttribute('data-start') ?? null;", vec![])
        .await?;
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the booking form names no slot".into())
}

#[test]
#[ignore = "run by the_kiosk_and_the_doctor_see_each_other_live, inside its own bus and display"]
fn inside() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let scratch = PathBuf::from(std::env::var_os("E2E_SCRATCH").unwrap());
        let node_dir = scratch.join("node");
        let creds = seeded_hospital(&node_dir).await;
        let listen = format!("127.0.0.1:{}", free_port());
        let url = format!("http://{listen}");
        let insurer_dir = scratch.join("insurer");
        let insurer_listen = format!("127.0.0.1:{}", free_port());
        let insurer_url = format!("http://{insurer_listen}");
        let names = peered_insurer(&node_dir, &url, &insurer_dir, &insurer_url).await;
        let general_dir = scratch.join("general");
        let general_listen = format!("127.0.0.1:{}", free_port());
        let general_url = format!("http://{general_listen}");
        let (_, general_name) = peered(
            &node_dir,
            &url,
            &general_dir,
            &general_url,
            "general.example",
            NodeKind::Hospital,
        )
        .await;
        let pacs = DemoPacs::start(&scratch.join("pacs"), &url).await;
        pacs.configure(&node_dir);
        let node = NodeProcess::spawn(&node_dir, &listen).await;
        let _insurer_node = NodeProcess::spawn(&insurer_dir, &insurer_listen).await;
        let _general_node = NodeProcess::spawn(&general_dir, &general_listen).await;
        let (_staff_driver, staff_url) = tauri_driver_on(free_port(), &[]).await;
        let (_kiosk_driver, kiosk_url) = tauri_driver_on(free_port(), &[]).await;
        let (_insurer_driver, insurer_driver_url) = tauri_driver_on(free_port(), &[]).await;
        let app = PathBuf::from(env!("CARGO_BIN_EXE_carebridge-app"));
        let staff = Session::start(&staff_url, "staff", &app, &[])
            .await
            .unwrap();
        let kiosk = match Session::start(&kiosk_url, "kiosk", &app, &["--kiosk"]).await {
            Ok(k) => k,
            Err(e) => {
                staff.end().await;
                panic!("{e}");
            }
        };
        let insurer = match Session::start(&insurer_driver_url, "insurer", &app, &[]).await {
            Ok(i) => i,
            Err(e) => {
                staff.end().await;
                kiosk.end().await;
                panic!("{e}");
            }
        };
        let hospital = Hospital {
            creds,
            url,
            pacs_dicom_port: pacs.dicom_port,
        };
        let insurer_side = Insurer {
            window: &insurer,
            url: insurer_url,
            names,
        };
        let general = General {
            url: general_url,
            name: general_name,
        };
        let result = scenario(&staff, &kiosk, &hospital, &insurer_side, &general, node).await;
        if result.is_err() {
            // What each window showed when it failed.
            for s in [&staff, &kiosk, &insurer] {
                let _ = s
                    .screenshot(&shots().join(format!("failed-{}.png", s.name)))
                    .await;
                if let Ok(html) = s
                    .execute("return document.body.innerHTML.slice(0, 3000);", vec![])
                    .await
                {
                    eprintln!(
                        "{} window at the failure:\n{}",
                        s.name,
                        html.as_str().unwrap_or_default()
                    );
                }
            }
        }
        staff.end().await;
        kiosk.end().await;
        insurer.end().await;
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

/// The hospital's node: who may sign in, and where it serves (the process, which the scenario
/// kills and restarts on its data dir and address, is passed beside it).
struct Hospital {
    creds: DemoCredentials,
    url: String,
    /// Where its PACS takes studies (DICOM).
    pacs_dicom_port: u16,
}

/// The demo's Orthanc (`scripts/demo-pacs.sh`), on ports of its own, killed when dropped.
struct DemoPacs {
    child: std::process::Child,
    dir: PathBuf,
    http_port: u16,
    dicom_port: u16,
}

impl DemoPacs {
    /// Starts it for the node at `node_url`, and waits until it answers a DICOM echo.
    async fn start(dir: &Path, node_url: &str) -> Self {
        let (http_port, dicom_port) = (free_port(), free_port());
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
        let child = std::process::Command::new(repo().join("scripts/demo-pacs.sh"))
            .arg(dir)
            .arg(node_url)
            .env("PACS_HTTP_PORT", http_port.to_string())
            .env("PACS_DICOM_PORT", dicom_port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scripts/demo-pacs.sh");
        carebridge_testkit::eventually("the demo PACS answers a DICOM echo", WAIT, || async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("echoscu")
                    .args(["-aec", "CAREBRIDGE", "127.0.0.1", &dicom_port.to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .await
            .unwrap()
        })
        .await;
        Self {
            child,
            dir: dir.to_owned(),
            http_port,
            dicom_port,
        }
    }

    /// Points the node in `node_dir` at it, as `make run` does through the environment.
    fn configure(&self, node_dir: &Path) {
        use std::io::Write;
        let mut toml = std::fs::OpenOptions::new()
            .append(true)
            .open(node_dir.join(CONFIG_FILE))
            .unwrap();
        let url = format!("http://127.0.0.1:{}", self.http_port);
        write!(
            toml,
            "\n[imaging]\northanc_url = {url:?}\nusername = \"carebridge\"\npassword = \"demo-pacs-password\"\n\
             hint_token = \"demo-hint-token-0123456789\"\nworklist_dir = {:?}\n\
             viewer_url = \"{url}/app/explorer.html#study?uuid={{pacs_id}}\"\n",
            self.dir.join("worklists").display().to_string(),
        )
        .unwrap();
    }
}

impl Drop for DemoPacs {
    fn drop(&mut self) {
        // The script execs Orthanc: this is Orthanc.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The insurer: its admin's window, its node's address, and the two organisations' names.
struct Insurer<'a> {
    window: &'a Session,
    url: String,
    names: PeerNames,
}

/// A second hospital, peered with the first for consented access; serving.
struct General {
    url: String,
    name: String,
}

/// General Hospital's doctor (created by [`access_across_hospitals`]).
const GENERAL_DOCTOR: (&str, &str) = ("dr.mensah", "doctor-demo-pass");

/// Signs in to `url` as `username` over the API; the session token.
async fn api_sign_in(
    http: &reqwest::Client,
    url: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let session: Value = http
        .post(format!("{url}/api/v1/sessions"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    session["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no session for {username} at {url}: {session}"))
}

/// `POST url` with `token` and `body`; the answer, or an error naming it.
async fn api_post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
    if_match: Option<i64>,
) -> Result<Value, String> {
    let mut req = http.post(url).bearer_auth(token).json(&body);
    if let Some(v) = if_match {
        req = req.header("If-Match", format!("\"{v}\""));
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(answer)
    } else {
        Err(format!("POST {url}: {status} {answer}"))
    }
}

/// Consented access across hospitals, as its people use it. Over the API first: St Mary's
/// doctor signs a report for the first demo patient, and General Hospital gets a doctor and the
/// same patient, just arrived. Then General's doctor (in the window the insurer's admin used)
/// asks St Mary's to read the patient's reports and details; at St Mary's kiosk the patient
/// identifies and allows it; General's window shows the records "From" St Mary's, live; the
/// patient withdraws the permission at the kiosk, sees who read the record, and General's window
/// hides the records, live.
async fn access_across_hospitals(
    kiosk: &Session,
    window: &Session,
    hospital: &Hospital,
    general: &General,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let creds = &hospital.creds;
    let patient = &creds.patients[0];
    let (given, family) = patient
        .name
        .split_once(' ')
        .ok_or_else(|| format!("no family name in {}", patient.name))?;
    let title = "Knee MRI (St Mary's)";
    let doctor = &creds.doctors[0];
    let token = api_sign_in(&http, &hospital.url, &doctor.username, &doctor.password).await?;
    let draft = api_post(
        &http,
        &format!("{}/api/v1/reports", hospital.url),
        &token,
        json!({"patient_id": patient.id, "content": {"title": title,
            "findings": "Meniscal tear, medial.", "conclusion": "Refer to orthopaedics.", "codes": ["S83.2"]}}),
        None,
    )
    .await?;
    api_post(
        &http,
        &format!(
            "{}/api/v1/reports/{}/finalise",
            hospital.url,
            draft["id"].as_str().unwrap_or_default()
        ),
        &token,
        Value::Null,
        draft["version"].as_i64(),
    )
    .await?;
    let admin = api_sign_in(&http, &general.url, "admin", demo::ADMIN_PASSWORD).await?;
    api_post(
        &http,
        &format!("{}/api/v1/practitioners", general.url),
        &admin,
        json!({"username": GENERAL_DOCTOR.0, "display_name": "Dr. Amara Mensah", "role": "doctor",
               "password": GENERAL_DOCTOR.1}),
        None,
    )
    .await?;
    let mensah = api_sign_in(&http, &general.url, GENERAL_DOCTOR.0, GENERAL_DOCTOR.1).await?;
    api_post(
        &http,
        &format!("{}/api/v1/patients", general.url),
        &mensah,
        json!({"given_name": given, "family_name": family, "birth_date": patient.birth_date}),
        None,
    )
    .await?;

    // General's doctor signs in where the insurer's admin was, and asks St Mary's.
    window.click_button("header", "Sign out", WAIT).await?;
    let node_field = window.wait_for("#sign-in-node", WAIT).await?;
    window.replace_text(&node_field, &general.url).await?;
    sign_in_as(window, GENERAL_DOCTOR.0, GENERAL_DOCTOR.1).await?;
    window.wait_for_text("#connection", "Online", WAIT).await?;
    window.click_tab("Patients", WAIT).await?;
    let search = window.wait_for("#patient-search", WAIT).await?;
    window.type_into(&search, family).await?;
    window.click_first(".hits button.link", WAIT).await?;
    window
        .wait_for_text("#remote-heading", "Records at other hospitals", WAIT)
        .await?;
    // Once the list has loaded: a click while it lays out can land beside the button.
    window
        .wait_for_text(
            ".remote-access",
            "No requests to other hospitals for this patient.",
            WAIT,
        )
        .await?;
    window.click_first("#ask-open", WAIT).await?;
    let card = window.wait_for("#ask-card", WAIT).await?;
    window.type_into(&card, &patient.card_number).await?;
    type_date(window, "#ask-birth", patient.birth_date).await?;
    // Reports are asked for by default; the personal details too.
    window.click_first("#ask-scope-Patient", WAIT).await?;
    step(window, 60, "doctor-asks-other-hospital").await?;
    window.click_first("#ask-submit", WAIT).await?;
    let request = ".remote-access .access-list li.access";
    window
        .wait_for_text(request, "Waiting for the patient", LIVE)
        .await?;
    step(window, 61, "doctor-request-pending").await?;

    // At St Mary's kiosk the patient identifies, sees who asks for what, and allows it.
    if kiosk.find("#welcome-heading").await?.is_none() {
        // Back to the welcome screen, unless the kiosk went back by itself meanwhile.
        let _ = kiosk
            .click_button("section", "Finish", Duration::from_secs(2))
            .await;
    }
    kiosk.wait_for("#welcome-heading", WAIT).await?;
    identify(kiosk, creds).await?;
    kiosk.click_first("#kiosk-permissions", WAIT).await?;
    let asked = kiosk
        .wait_for_text(".permissions .access-list", "Dr. Amara Mensah", LIVE)
        .await?;
    let what =
        asked.contains("Reports, Personal details") || asked.contains("Personal details, Reports");
    if !what || !asked.contains(&general.name) {
        return Err(format!("the kiosk does not say who asks for what: {asked}"));
    }
    step(kiosk, 62, "kiosk-permission-asked").await?;
    kiosk
        .click_first(".permissions button[id^=allow-]", WAIT)
        .await?;
    kiosk
        .wait_for_text(".permissions .access-list", "Granted", LIVE)
        .await?;

    // General's window shows St Mary's records, marked as theirs, without a reload.
    let from = format!("From {}", creds.node);
    window.wait_for_text(".remote-records", &from, LIVE).await?;
    window.wait_for_text(".remote-records", title, LIVE).await?;
    window
        .wait_for_text(".remote-records", "Meniscal tear", LIVE)
        .await?;
    step(window, 63, "doctor-sees-other-hospital").await?;

    // The patient sees who read the record (the screen opened again: a kiosk hears no live
    // news of other hospitals' reads), and withdraws the permission; General's window hides St
    // Mary's records at once.
    kiosk.click_button("section", "Back", WAIT).await?;
    kiosk.click_first("#kiosk-permissions", WAIT).await?;
    kiosk
        .wait_for_text(
            "table[aria-labelledby=reads-heading]",
            "Dr. Amara Mensah",
            LIVE,
        )
        .await?;
    // One read of each part the doctor was allowed: the page read once, not again and again.
    let rows = kiosk
        .execute(
            "return document.querySelectorAll('table[aria-labelledby=reads-heading] tbody tr').length;",
            vec![],
        )
        .await?;
    if rows != json!(2) {
        return Err(format!(
            "the patient sees {rows} reads, not one of each of two parts"
        ));
    }
    step(kiosk, 64, "kiosk-permission-granted").await?;
    kiosk
        .click_first(".permissions button[id^=revoke-]", WAIT)
        .await?;
    kiosk
        .wait_for_text(".permissions .access-list", "Revoked", LIVE)
        .await?;
    window.wait_gone(".remote-records", LIVE).await?;
    window
        .wait_for_text(request, "Revoked by the patient", LIVE)
        .await?;
    step(window, 65, "doctor-after-revocation").await?;
    kiosk.click_button("section", "Finish", WAIT).await?;
    kiosk.wait_for("#welcome-heading", WAIT).await?;
    Ok(())
}

/// Moving a record, as the front desk and the other hospital's doctor see it: on the patient's
/// page at St Mary's (the third demo patient, open there), reception moves the record to General
/// once the patient asked and their identity was checked; the page follows it live until General
/// confirms, then says where the record lives and offers no second move. General's doctor (in
/// the window left at General) finds the patient registered there, with St Mary's record marked
/// as St Mary's. The reports stay St Mary's signed documents; the record at St Mary's stays,
/// read-only.
async fn transfer_to_general(
    staff: &Session,
    window: &Session,
    creds: &DemoCredentials,
    general: &General,
    family: &str,
) -> Result<(), String> {
    staff
        .execute(
            "document.querySelector('#transfer-heading').scrollIntoView();",
            vec![],
        )
        .await?;
    staff.click_first("#transfer-open", WAIT).await?;
    // Once the hospitals are listed.
    staff.wait_for("#transfer-peer option", WAIT).await?;
    let options = staff
        .execute(
            "return [...document.querySelectorAll('#transfer-peer option')].map(o => o.value);",
            vec![],
        )
        .await?;
    if options != json!([general.name]) {
        return Err(format!(
            "the hospitals offered are {options}, not General alone"
        ));
    }
    // The front desk says what it checked the identity with: there is no default.
    staff
        .execute(
            "const s = document.querySelector('#transfer-document'); s.value = 'identity-card'; \
             s.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![],
        )
        .await?;
    staff
        .click_matching(
            ".transfers .checkbox",
            &format!(
                "The patient is here and asked to move their record to {}",
                general.name
            ),
            WAIT,
        )
        .await?;
    staff
        .execute(
            "document.querySelector('#transfer-submit').scrollIntoView({block: 'center'});",
            vec![],
        )
        .await?;
    step(staff, 67, "reception-transfer-form").await?;
    staff.click_first("#transfer-submit", WAIT).await?;
    staff
        .wait_for_text(".transfers .transfer-list", "Moved to", LIVE)
        .await?;
    staff
        .wait_for_text(".patient-page .moved-notice", "This record moved to", LIVE)
        .await?;
    staff.wait_gone("#transfer-open", WAIT).await?;
    staff
        .execute(
            "document.querySelector('.moved-notice').scrollIntoView({block: 'center'});",
            vec![],
        )
        .await?;
    step(staff, 68, "reception-record-moved").await?;

    // From the page of the patient the access step left open, back to the search.
    window.click_button(".patient-page", "Back", WAIT).await?;
    let search = window.wait_for("#patient-search", WAIT).await?;
    window.replace_text(&search, family).await?;
    window.click_first(".hits button.link", WAIT).await?;
    let from = format!("From {}", creds.node);
    window
        .wait_for_text(".transferred .remote-records", &from, LIVE)
        .await?;
    window
        .wait_for_text(".transferred .remote-records", "Appointments", WAIT)
        .await?;
    window
        .execute(
            "document.querySelector('#transferred-heading').scrollIntoView();",
            vec![],
        )
        .await?;
    step(window, 69, "doctor-record-moved-here").await?;
    Ok(())
}

/// The doctor's workstation watches an import folder: a scanned letter named by the patient's
/// card number, dropped there, is filed on that patient's page and moved aside. Starts and ends
/// on the patient's page.
async fn import_folder(staff: &Session) -> Result<(), String> {
    let card = staff
        .execute(
            "return (document.querySelector('.patient-page').textContent.match(/Card ([0-9A-Z]+)/) || [])[1] || null;",
            vec![],
        )
        .await?;
    let card = card
        .as_str()
        .ok_or("no card number on the patient's page")?
        .to_owned();
    let folder = std::env::temp_dir().join(format!("carebridge-e2e-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
    staff.click_tab("Import folder", WAIT).await?;
    let field = staff.wait_for("#import-folder", WAIT).await?;
    staff
        .replace_text(&field, &folder.display().to_string())
        .await?;
    staff
        .click_button("form[aria-labelledby=workstation-heading]", "Save", WAIT)
        .await?;
    let panel = "section[aria-labelledby=folder-heading]";
    staff.wait_for_text(panel, "Watching", WAIT).await?;
    // As a scanner does: written aside, then renamed in.
    let name = format!("{card} Referral letter #gp.pdf");
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let part = folder.join(format!("{name}.part"));
    std::fs::write(&part, pdf).map_err(|e| e.to_string())?;
    std::fs::rename(&part, folder.join(&name)).map_err(|e| e.to_string())?;
    staff.wait_for_text(panel, "Imported", LIVE).await?;
    if !folder.join("imported").join(&name).exists() {
        return Err(format!("{name} was not moved aside"));
    }
    step(staff, 53, "doctor-import-folder").await?;
    staff.click_tab("My day", WAIT).await?;
    staff
        .click_first("table.appointments button.link", WAIT)
        .await?;
    // Titled and tagged by the file's name (the name itself is shown too: its parts are
    // checked where they are shown as title and tag).
    staff
        .wait_for_text(".documents li.document > strong", "Referral letter", LIVE)
        .await?;
    staff.wait_for_text(".documents .tag", "gp", WAIT).await?;
    // The sections below load after it; once they are in, the page stays where it is put.
    staff.wait_for("#imaging-heading", WAIT).await?;
    staff.wait_for(".reports button", WAIT).await?;
    staff
        .execute(
            "document.querySelector('.documents').scrollIntoView({block: 'start'});",
            vec![],
        )
        .await?;
    step(staff, 54, "doctor-patient-documents").await?;
    let _ = std::fs::remove_dir_all(&folder);
    Ok(())
}

async fn scenario(
    staff: &Session,
    kiosk: &Session,
    hospital: &Hospital,
    insurer: &Insurer<'_>,
    general: &General,
    node: NodeProcess,
) -> Result<(), String> {
    let (creds, url) = (&hospital.creds, hospital.url.as_str());
    let doctor = &creds.doctors[0];
    let notifications = PathBuf::from(std::env::var_os("E2E_NOTIFICATIONS").unwrap());

    // The doctor signs in with the keyboard alone: type, Tab, Enter.
    let node_field = staff.wait_for("#sign-in-node", WAIT).await?;
    step(staff, 1, "staff-sign-in").await?;
    staff.replace_text(&node_field, url).await?;
    let user = staff.wait_for("#sign-in-username", WAIT).await?;
    staff
        .type_into(
            &user,
            &format!("{}\u{E004}{}\u{E007}", doctor.username, doctor.password),
        )
        .await?;
    staff
        .wait_for_text("#waiting-heading", "Kiosk bookings", WAIT)
        .await?;
    staff.wait_for_text("#connection", "Online", WAIT).await?;
    step(staff, 2, "doctor-waiting-empty").await?;

    // The kiosk is set up once by staff with its device id and secret.
    kiosk.wait_for("#setup-heading", WAIT).await?;
    step(kiosk, 3, "kiosk-setup").await?;
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
    kiosk
        .wait_for_text("#welcome-heading", "Welcome", WAIT)
        .await?;
    step(kiosk, 4, "kiosk-welcome").await?;

    // The kiosk window may not call a staff command: the capability refuses it.
    let refused = kiosk
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.__TAURI_INTERNALS__.invoke('appointments_today')
               .then(() => done('allowed'), e => done('refused: ' + e));",
            vec![],
        )
        .await?;
    let refused = refused.as_str().unwrap_or_default();
    if !(refused.starts_with("refused") && refused.contains("not allowed")) {
        return Err(format!(
            "a staff command from the kiosk window was not refused: {refused}"
        ));
    }

    // The patient identifies, picks the doctor and a free slot, and books.
    identify(kiosk, creds).await?;
    step(kiosk, 5, "kiosk-patient").await?;
    choose_slot(kiosk, &doctor.display_name, 0).await?;
    step(kiosk, 6, "kiosk-reason").await?;
    give_reason_and_book(kiosk, "Persistent cough").await?;
    kiosk
        .wait_for_text("#kiosk-answer", "Waiting for your doctor to confirm", LIVE)
        .await?;
    let reference_1 = reference(kiosk).await?;
    step(kiosk, 7, "kiosk-waiting").await?;

    // The doctor's window shows it live, without a reload, and a notification was delivered.
    let row = format!("#waiting tr[data-reference='{reference_1}']");
    staff.wait_for(&row, LIVE).await?;
    step(staff, 8, "doctor-sees-kiosk-booking").await?;
    wait_for_notification(&notifications, "New kiosk booking", "Persistent cough").await?;

    // The doctor confirms; the kiosk shows it live.
    staff.click_button(&row, "Confirm", WAIT).await?;
    kiosk
        .wait_for_text(
            "#kiosk-answer",
            "Your doctor confirmed your appointment",
            LIVE,
        )
        .await?;
    step(kiosk, 9, "kiosk-confirmed").await?;

    // The doctor declines a booking, with a reason; the kiosk shows it.
    kiosk.click_button("section", "Done", WAIT).await?;
    identify(kiosk, creds).await?;
    choose_slot(kiosk, &doctor.display_name, 0).await?;
    give_reason_and_book(kiosk, "Back pain").await?;
    kiosk
        .wait_for_text("#kiosk-answer", "Waiting for your doctor to confirm", LIVE)
        .await?;
    let reference_2 = reference(kiosk).await?;
    let row = format!("#waiting tr[data-reference='{reference_2}']");
    staff.wait_for(&row, LIVE).await?;
    staff.click_button(&row, "Decline", WAIT).await?;
    let why = staff.wait_for(".dialog .reason-input", WAIT).await?;
    staff
        .type_into(&why, "Please see Dr. Okafor, who treats back pain")
        .await?;
    step(staff, 28, "doctor-declines").await?;
    staff.click_button(".dialog", "Decline", WAIT).await?;
    kiosk
        .wait_for_text("#kiosk-answer", "Please see Dr. Okafor", LIVE)
        .await?;
    step(kiosk, 29, "kiosk-declined").await?;

    // A booking the node refuses as `slot-taken` shows the kiosk's own text for that code,
    // not the node's words, and offers the doctor's times again: reception takes the slot the
    // patient is about to book.
    kiosk.click_button("section", "Done", WAIT).await?;
    identify(kiosk, creds).await?;
    choose_slot(kiosk, &doctor.display_name, 0).await?;
    let start = chosen_slot_start(kiosk).await?;
    book_as_reception(url, creds, &doctor.id.to_string(), &start).await?;
    give_reason_and_book(kiosk, "Knee pain").await?;
    let shown = kiosk
        .wait_for_text("#kiosk-answer", "someone has just booked this time", LIVE)
        .await?;
    if shown.contains("refused") || shown.contains("already has") {
        return Err(format!("the kiosk shows the node's words: {shown:?}"));
    }
    step(kiosk, 10, "kiosk-refused").await?;
    kiosk
        .click_button("section", "Choose another time", WAIT)
        .await?;
    kiosk.wait_for("#time-heading", WAIT).await?;
    kiosk
        .wait_for_text("#slot-heading", &doctor.display_name, WAIT)
        .await?;
    kiosk.click_button("section", "Back", WAIT).await?;
    kiosk.wait_for("#doctor-heading", WAIT).await?;
    // The doctors load after the heading and push Back down: a click aimed before they are
    // drawn can land on a doctor instead.
    kiosk
        .wait_for_text(".grid", &doctor.display_name, WAIT)
        .await?;
    kiosk.click_button("section", "Back", WAIT).await?;
    kiosk.click_button("section", "Finish", WAIT).await?;

    // With the node stopped, a booking waits as pending and is delivered when it returns.
    identify(kiosk, creds).await?;
    choose_slot(kiosk, &doctor.display_name, 1).await?;
    let stopped = node.kill().await;
    kiosk.wait_for_text("#connection", "Offline", LIVE).await?;
    give_reason_and_book(kiosk, "Medication review").await?;
    kiosk
        .wait_for_text("#kiosk-answer", "Sending your booking", WAIT)
        .await?;
    kiosk
        .wait_for_text("#connection", "1 waiting to send", WAIT)
        .await?;
    step(kiosk, 11, "kiosk-offline-pending").await?;
    let node = stopped.restart().await;
    kiosk
        .wait_for_text(
            "#kiosk-answer",
            "Waiting for your doctor to confirm",
            Duration::from_secs(60),
        )
        .await?;
    let reference_3 = reference(kiosk).await?;
    let row = format!("#waiting tr[data-reference='{reference_3}']");
    staff.wait_for(&row, Duration::from_secs(60)).await?;
    staff.click_button(&row, "Confirm", WAIT).await?;
    kiosk
        .wait_for_text(
            "#kiosk-answer",
            "Your doctor confirmed your appointment",
            LIVE,
        )
        .await?;
    step(kiosk, 12, "kiosk-delivered-and-confirmed").await?;

    // The patient checks in at the kiosk for an appointment later today (booked at the front
    // desk, on purpose at whatever time it is now).
    let soon = (SystemClock.now() + chrono::Duration::minutes(2))
        .format("%Y-%m-%dT%H:%M:00Z")
        .to_string();
    reception_books(
        url,
        creds,
        json!({
            "patient_id": creds.patients[0].id,
            "practitioner_id": creds.doctors[1].id,
            "start": soon,
            "reason": "Dressing change",
            "override_reason": "End-to-end test: an appointment today",
        }),
    )
    .await?;
    kiosk.click_button("section", "Done", WAIT).await?;
    identify(kiosk, creds).await?;
    kiosk.click_in(".choices li", "", "Check in", WAIT).await?;
    kiosk
        .wait_for_text(".choices", "You are checked in", LIVE)
        .await?;
    step(kiosk, 27, "kiosk-checked-in").await?;
    // And the node has it: nothing waits to be sent.
    let deadline = tokio::time::Instant::now() + LIVE;
    loop {
        let e = kiosk.wait_for("#connection", WAIT).await?;
        let shown = kiosk.text(&e).await?;
        if shown.trim() == "Online" {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the check-in was not delivered: the kiosk shows {shown:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    step(staff, 13, "doctor-after").await?;

    // The doctor's day and a patient's page.
    staff.click_tab("My day", WAIT).await?;
    staff.wait_for("#my-day-heading", WAIT).await?;
    step(staff, 14, "doctor-my-day").await?;
    staff
        .click_first("table.appointments button.link", WAIT)
        .await?;
    staff.wait_for("#patient-appointments", WAIT).await?;
    step(staff, 15, "doctor-patient-page").await?;
    // The patient's whole record, saved as FHIR: a Bundle whose first entry is this patient.
    staff
        .click_button(".patient-page", "Save record (FHIR)", WAIT)
        .await?;
    let saved = staff
        .wait_for_text(
            ".patient-page [role=status]",
            "The record is saved as",
            WAIT,
        )
        .await?;
    let path = saved
        .strip_prefix("The record is saved as ")
        .and_then(|s| s.strip_suffix('.'))
        .ok_or_else(|| format!("no path in {saved:?}"))?;
    let record: Value =
        serde_json::from_slice(&std::fs::read(path).map_err(|e| format!("{path}: {e}"))?)
            .map_err(|e| format!("{path}: {e}"))?;
    if record["resourceType"] != "Bundle"
        || record["entry"][0]["resource"]["resourceType"] != "Patient"
    {
        return Err(format!("{path} is not the patient's record: {record:.300}"));
    }
    step(staff, 47, "doctor-record-saved").await?;
    import_folder(staff).await?;
    imaging(staff, hospital, &notifications).await?;

    // On the patient's page the doctor writes a report, saves the draft (kept here first,
    // then sent), and finalises it: the node signs it.
    staff.click_button(".reports", "New report", WAIT).await?;
    let title = staff.wait_for(".report-editor input", WAIT).await?;
    staff.type_into(&title, "Chest X-ray (e2e)").await?;
    let findings = staff.wait_for(".report-editor textarea", WAIT).await?;
    staff.type_into(&findings, "Lungs clear.").await?;
    // The study that just arrived, cited by its accession number and UID.
    staff.click_first("#cite-study-add", WAIT).await?;
    staff
        .click_button(".report-editor", "Save draft", WAIT)
        .await?;
    staff
        .click_in(
            "article.report-card",
            "Chest X-ray (e2e)",
            "Finalise and sign",
            LIVE,
        )
        .await?;
    staff
        .wait_for_text("article.report-card", "Signed", LIVE)
        .await?;
    staff
        .wait_for_text("article.report-card", "StudyInstanceUID", WAIT)
        .await?;
    step(staff, 30, "doctor-report-signed").await?;
    exchange(staff, insurer, "Chest X-ray (e2e)", &notifications).await?;
    access_across_hospitals(kiosk, insurer.window, hospital, general).await?;

    // The session locks; a reload does not unlock it; with the node away, a wrong password
    // is refused and the user's own unlocks it.
    staff.click_button("header", "Lock", WAIT).await?;
    staff.wait_for("#sign-in-password", WAIT).await?;
    staff
        .execute("window.__beforeReload = true; location.reload();", vec![])
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while staff
        .execute("return window.__beforeReload === true;", vec![])
        .await
        .unwrap_or(json!(true))
        == json!(true)
    {
        if tokio::time::Instant::now() > deadline {
            return Err("the staff window did not reload".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    staff
        .wait_for_text("#sign-in-heading", "Locked", WAIT)
        .await?;
    let password = staff.wait_for("#sign-in-password", WAIT).await?;
    step(staff, 16, "locked").await?;
    let stopped = node.kill().await;
    staff
        .type_into(&password, "not-the-password\u{E007}")
        .await?;
    staff.wait_for(".sign-in .error", LIVE).await?;
    if staff.find("#waiting-heading").await?.is_some() {
        return Err("a wrong password unlocked the session".into());
    }
    staff.replace_text(&password, &doctor.password).await?;
    staff.type_into(&password, "\u{E007}").await?;
    staff.wait_for("#waiting-heading", WAIT).await?;
    let node = stopped.restart().await;
    staff
        .wait_for_text("#connection", "Online", Duration::from_secs(60))
        .await?;

    // Reception: today's list, the calendar, booking a free slot, patients. The form offers
    // the node this window last signed in to, though the insurer's window signed in since.
    staff.click_button("header", "Sign out", WAIT).await?;
    sign_in_as(staff, &creds.reception.username, &creds.reception.password).await?;
    staff.wait_for("#today-heading", WAIT).await?;
    step(staff, 17, "reception-today").await?;
    // Check one patient in and cancel another's appointment, with a reason.
    let count = |status: &'static str| {
        format!(
            "return document.querySelectorAll('table.appointments tr[data-status={status}]').length;"
        )
    };
    let arrived = staff.execute(&count("arrived"), vec![]).await?;
    staff
        .click_in(
            "table.appointments tr[data-status=booked]",
            "",
            "Check in",
            WAIT,
        )
        .await?;
    let deadline = tokio::time::Instant::now() + LIVE;
    while staff.execute(&count("arrived"), vec![]).await? == arrived {
        if tokio::time::Instant::now() > deadline {
            return Err("checking in from today's list changed nothing".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = staff.execute(&count("cancelled"), vec![]).await?;
    staff
        .click_in(
            "table.appointments tr[data-status=booked]",
            "",
            "Cancel appointment",
            WAIT,
        )
        .await?;
    let why = staff.wait_for(".dialog .reason-input", WAIT).await?;
    staff
        .type_into(&why, "The patient phoned to cancel")
        .await?;
    staff
        .click_button(".dialog", "Cancel appointment", WAIT)
        .await?;
    let deadline = tokio::time::Instant::now() + LIVE;
    while staff.execute(&count("cancelled"), vec![]).await? == cancelled {
        if tokio::time::Instant::now() > deadline {
            return Err("cancelling from today's list changed nothing".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    staff
        .wait_for_text("table.appointments", "The patient phoned to cancel", LIVE)
        .await?;
    staff.click_tab("Calendar", WAIT).await?;
    staff.wait_for(".calendar .slot-free", WAIT).await?;
    staff
        .wait_for(".free-times .slot-buttons button", WAIT)
        .await?;
    step(staff, 18, "reception-calendar").await?;
    staff
        .click_first(".free-times .slot-buttons button", WAIT)
        .await?;
    let search = staff.wait_for("#book-patient", WAIT).await?;
    let family = creds.patients[2]
        .name
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    staff.type_into(&search, &family).await?;
    staff.click_first(".dialog .hits button.link", WAIT).await?;
    let reason = staff.wait_for("#book-reason", WAIT).await?;
    staff.type_into(&reason, "Blood pressure check").await?;
    step(staff, 19, "reception-book").await?;
    // Meanwhile someone else takes that time: once this window knows, booking it is refused
    // as `slot-taken` and the dialog offers the doctor's next free times, one click each.
    let taken = staff
        .execute("return document.querySelector('.dialog form[data-start]')?.getAttribute('data-start') ?? null;", vec![])
        .await?;
    let taken = taken
        .as_str()
        .ok_or("the booking dialog names no slot")?
        .to_owned();
    let shown_doctor = staff
        .execute(
            "return document.querySelector('#calendar-doctor').value;",
            vec![],
        )
        .await?;
    reception_books(
        url,
        creds,
        json!({
            "patient_id": creds.patients[1].id,
            "practitioner_id": shown_doctor,
            "start": taken,
            "reason": "Taken by a colleague meanwhile",
        }),
    )
    .await?;
    staff
        .wait_for_text(".day-appointments", "Taken by a colleague meanwhile", LIVE)
        .await?;
    staff.click_button(".dialog", "Book", WAIT).await?;
    staff
        .wait_for_text(".dialog [role=alert]", "That time is already taken", WAIT)
        .await?;
    staff.wait_for(".dialog .next-free button", WAIT).await?;
    step(staff, 35, "reception-slot-taken").await?;
    let offered = staff
        .execute("return document.querySelector('.dialog .next-free button').getAttribute('data-start');", vec![])
        .await?;
    if offered.as_str() == Some(taken.as_str()) || offered.as_str().is_none() {
        return Err(format!("the taken time is offered again: {offered}"));
    }
    staff.click_first(".dialog .next-free button", WAIT).await?;
    staff.wait_gone(".dialog", WAIT).await?;
    step(staff, 20, "reception-booked").await?;

    // Moved to another free time with the keyboard's path: Move, then the new time.
    let before = staff
        .wait_for_text(".day-appointments", "Blood pressure check", LIVE)
        .await?;
    staff
        .click_in(".day-appointments li", "Blood pressure check", "Move", WAIT)
        .await?;
    staff.wait_for_text("#free-heading", "Move", WAIT).await?;
    let new_time = staff
        .execute(
            "const b = [...document.querySelectorAll('.free-times .slot-buttons button')].pop();
             const t = b.textContent; b.click(); return t;",
            vec![],
        )
        .await?;
    let new_time = new_time.as_str().unwrap_or_default().to_owned();
    let moved = staff
        .wait_for_text(".day-appointments", &format!("{new_time} · "), LIVE)
        .await?;
    if !moved.contains("Blood pressure check") || moved == before {
        return Err(format!(
            "the appointment was not moved to {new_time}: {moved}"
        ));
    }

    // Overbooking a taken time needs the explicit override and its reason.
    staff
        .click_matching(
            ".free-times .checkbox",
            "Also offer taken times (overbook, with a reason)",
            WAIT,
        )
        .await?;
    staff
        .click_first(".free-times .slot-buttons button[data-status=busy]", WAIT)
        .await?;
    let search = staff.wait_for("#book-patient", WAIT).await?;
    staff.type_into(&search, &family).await?;
    staff.click_first(".dialog .hits button.link", WAIT).await?;
    let reason = staff.wait_for("#book-reason", WAIT).await?;
    staff.type_into(&reason, "Urgent dressing change").await?;
    let why = staff.wait_for("#book-override", WAIT).await?;
    staff.type_into(&why, "Doctor agreed to squeeze in").await?;
    step(staff, 26, "reception-overbook").await?;
    staff.click_button(".dialog", "Book", WAIT).await?;
    staff.wait_gone(".dialog", WAIT).await?;
    staff
        .wait_for_text(".day-appointments", "Urgent dressing change", LIVE)
        .await?;

    // A study from elsewhere (no order of this hospital, another one's patient number) waits on
    // reception's "Unmatched studies"; reception links it to the patient it belongs to.
    send_study(hospital, None).await?;
    staff.click_tab("Unmatched studies", WAIT).await?;
    staff
        .wait_for_text("ul.studies", "Unknown Patient", LIVE)
        .await?;
    step(staff, 51, "reception-unmatched-study").await?;
    staff
        .click_button("ul.studies", "Link to a patient", WAIT)
        .await?;
    let find = staff.wait_for("#reconcile-search", WAIT).await?;
    staff.type_into(&find, &family).await?;
    staff
        .click_first(".link-to .hits button.link", WAIT)
        .await?;
    // Nothing is linked before reception confirms who is who.
    staff
        .wait_for_text(".link-to.confirm", "It will show on their record", WAIT)
        .await?;
    staff
        .click_button(".link-to.confirm", "Link the study", WAIT)
        .await?;
    let list = "section[aria-labelledby=reconcile-heading]";
    staff
        .wait_for_text(list, "The study is linked", WAIT)
        .await?;
    staff
        .wait_for_text(list, "Every study has its patient.", LIVE)
        .await?;
    step(staff, 52, "reception-study-linked").await?;
    staff.click_tab("Patients", WAIT).await?;
    let search = staff.wait_for("#patient-search", WAIT).await?;
    staff.type_into(&search, &family).await?;
    staff.wait_for(".hits button.link", WAIT).await?;
    step(staff, 21, "reception-patients").await?;
    staff.click_first(".hits button.link", WAIT).await?;
    staff
        .wait_for_text("#patient-appointments", "Appointments", WAIT)
        .await?;
    staff
        .wait_for_text(".patient-page", "Blood pressure check", LIVE)
        .await?;
    step(staff, 22, "reception-patient-page").await?;
    // Further down the same page: other hospitals' requests and who read the record, as the
    // front desk answers them with the patient (none for this patient).
    staff
        .wait_for_text(
            ".patient-page #permissions-heading",
            "Other hospitals' requests",
            WAIT,
        )
        .await?;
    staff
        .execute(
            "document.querySelector('#permissions-heading').scrollIntoView();",
            vec![],
        )
        .await?;
    staff
        .wait_for_text(
            ".permissions",
            "No other hospital has read this record.",
            WAIT,
        )
        .await?;
    step(staff, 66, "reception-permissions").await?;
    transfer_to_general(staff, insurer.window, creds, general, &family).await?;

    // Registering someone with the same name and birth date as a known patient: the node
    // refuses it as `possible-duplicate`, and the dialog shows who it may be; registering
    // anyway sends it again, confirmed.
    let known = &creds.patients[2];
    let given = known
        .name
        .strip_suffix(family.as_str())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let same = format!(
        "return [...document.querySelectorAll('.hits li')].filter(li => li.textContent.includes({:?}) && !li.textContent.includes('waiting to send')).length;",
        known.name
    );
    staff.click_button(".patient-page", "Back", WAIT).await?;
    staff.wait_for(".hits li", WAIT).await?;
    let before = staff.execute(&same, vec![]).await?.as_u64().unwrap_or(0);
    let e = staff.wait_for("#register-family", WAIT).await?;
    staff.type_into(&e, &family).await?;
    let e = staff.wait_for("#register-given", WAIT).await?;
    staff.type_into(&e, &given).await?;
    type_date(staff, "#register-birth", known.birth_date).await?;
    staff
        .click_button("form", "Register a patient", WAIT)
        .await?;
    staff
        .wait_for_text(".duplicate-dialog", &known.card_number, LIVE)
        .await?;
    staff
        .wait_for_text(".refused", "already registered", WAIT)
        .await?;
    step(staff, 36, "reception-possible-duplicate").await?;
    staff
        .click_button(
            ".duplicate-dialog",
            "Register as a new patient anyway",
            WAIT,
        )
        .await?;
    staff.wait_gone(".duplicate-dialog", WAIT).await?;
    staff.wait_gone(".refused", LIVE).await?;
    staff.click_button(".patient-page", "Back", WAIT).await?;
    let search = staff.wait_for("#patient-search", WAIT).await?;
    staff.replace_text(&search, &family).await?;
    let deadline = tokio::time::Instant::now() + LIVE;
    while staff.execute(&same, vec![]).await? != json!(before + 1) {
        if tokio::time::Instant::now() > deadline {
            return Err("the confirmed registration did not reach the node".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin: staff accounts, registering a kiosk (its secret shown once), the audit trail.
    staff.click_button("header", "Sign out", WAIT).await?;
    sign_in_as(staff, &creds.admin.username, &creds.admin.password).await?;
    staff
        .wait_for_text("#accounts-heading", "Staff accounts", WAIT)
        .await?;
    staff
        .wait_for_text("table", &creds.reception.username, WAIT)
        .await?;
    step(staff, 23, "admin-staff").await?;
    staff.click_tab("Kiosks", WAIT).await?;
    let label = staff.wait_for("#kiosks-heading ~ form input", WAIT).await?;
    staff.type_into(&label, "Entrance kiosk 2").await?;
    staff.click_button("form", "Register", WAIT).await?;
    staff
        .wait_for_text("#kiosk-registered", "Entrance kiosk 2 is registered", WAIT)
        .await?;
    step(staff, 24, "admin-kiosks").await?;
    staff.click_tab("Audit trail", WAIT).await?;
    staff.wait_for_text("table.audit", "kiosk", WAIT).await?;
    step(staff, 25, "admin-audit").await?;
    // Whose record: pressing a patient's name keeps that record's entries, by name; the
    // export of that view is a CSV file whose path the screen gives.
    let patient = staff
        .wait_for("table.audit button[title^='Show only the record of']", WAIT)
        .await?;
    let label = staff.text(&patient).await?;
    let name = label.split(" · ").nth(1).unwrap_or(&label).to_owned();
    // Scrolled to the middle first: a row at the window's edge may take the click elsewhere.
    staff.click_button("table.audit", &label, WAIT).await?;
    staff
        .wait_for_text(".filter-chip", &format!("Only the record of {name}"), WAIT)
        .await?;
    staff.wait_gone("table.audit[aria-busy=true]", WAIT).await?;
    step(staff, 46, "admin-audit-patient").await?;
    staff.click_button("form", "Export as CSV", WAIT).await?;
    let saved = staff
        .wait_for_text(
            "section[aria-labelledby=audit-heading] > [role=status]",
            "The export is saved as",
            WAIT,
        )
        .await?;
    let path = saved
        .strip_prefix("The export is saved as ")
        .and_then(|s| s.split(".csv").next())
        .map(|p| format!("{p}.csv"))
        .ok_or_else(|| format!("no path in {saved:?}"))?;
    let csv = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = csv.lines();
    if !lines
        .next()
        .is_some_and(|h| h.starts_with("seq,recorded_at,actor,actor_name"))
    {
        return Err(format!("{path} has no CSV header: {csv:.300}"));
    }
    let rows: Vec<&str> = lines.collect();
    if rows.is_empty() || !rows.iter().all(|r| r.contains(&name)) {
        return Err(format!(
            "the export is not {name}'s record alone: {csv:.2000}"
        ));
    }

    // Records from another system: a file of two patients and a line that is none. The bar
    // reaches the end and the summary names the refused line.
    let file = shots().join("import.ndjson");
    std::fs::write(
        &file,
        [
            json!({"resourceType": "Patient", "name": [{"family": "Imported", "given": ["Ines"]}], "birthDate": "1961-07-04"}).to_string(),
            "not a resource".to_owned(),
            json!({"resourceType": "Patient", "name": [{"family": "Imported", "given": ["Otto"]}], "birthDate": "1958-02-11"}).to_string(),
        ]
        .join("\n"),
    )
    .map_err(|e| e.to_string())?;
    staff.click_tab("Import", WAIT).await?;
    let input = staff
        .wait_for("#import-heading ~ form input[type=file]", WAIT)
        .await?;
    staff.type_into(&input, &file.display().to_string()).await?;
    staff
        .click_button("#import-heading ~ form", "Import", WAIT)
        .await?;
    staff
        .wait_for_text(
            "[aria-labelledby=import-summary-heading]",
            "3 entries: 2 created, 0 matched to records already here, 1 refused.",
            LIVE,
        )
        .await?;
    let bar = staff
        .execute(
            "const p = document.querySelector('progress'); return p && [p.value, p.max];",
            vec![],
        )
        .await?;
    if bar != json!([3, 3]) {
        return Err(format!("the import's progress bar stopped at {bar}"));
    }
    step(staff, 48, "admin-import").await?;
    // The Dutch tour starts where the admin left the audit trail.
    staff.click_tab("Audit trail", WAIT).await?;
    staff.wait_for("table.audit", WAIT).await?;

    in_dutch(staff, kiosk, creds, &notifications).await?;

    // Every profile's key is in the real Secret Service (gnome-keyring on this bus), none
    // derived from a passphrase: the test gave none.
    let profiles =
        PathBuf::from(std::env::var_os("E2E_SCRATCH").unwrap()).join("data/carebridge/profiles");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&profiles).map_err(|e| format!("{}: {e}", profiles.display()))? {
        let dir = entry.map_err(|e| e.to_string())?.path();
        if dir.is_dir() {
            let source = std::fs::read_to_string(dir.join("key-source")).unwrap_or_default();
            sources.push((
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                source,
            ));
        }
    }
    // The doctor's, reception's, the admin's and the kiosk's.
    if sources.len() < 4 || sources.iter().any(|(_, s)| s.trim() != "keychain") {
        return Err(format!("profiles not keyed from the keychain: {sources:?}"));
    }
    node.kill().await;
    Ok(())
}

/// The same app in Dutch, one screen per role, switched with the app's own control: the admin's
/// (where the switch is pressed), sign-in, reception's day and patients, the doctor's waiting
/// list, and the kiosk from welcome to a booking, whose desktop notification reaches the doctor
/// in Dutch too. Each screen is checked by axe like the English ones.
async fn in_dutch(
    staff: &Session,
    kiosk: &Session,
    creds: &DemoCredentials,
    notifications: &Path,
) -> Result<(), String> {
    // The admin, on the audit trail: the whole window turns Dutch at once, nothing reloaded.
    staff.click_button("header", "Nederlands", WAIT).await?;
    staff
        .wait_for_text("[role=tab][aria-selected=true]", "Auditlog", WAIT)
        .await?;
    let lang = staff
        .execute("return document.documentElement.lang;", vec![])
        .await?;
    if lang.as_str() != Some("nl") {
        return Err(format!("the document's language is {lang}, not nl"));
    }
    step(staff, 37, "nl-admin-audit").await?;
    staff.click_tab("Medewerkers", WAIT).await?;
    staff
        .wait_for_text("#accounts-heading", "Accounts van medewerkers", WAIT)
        .await?;
    step(staff, 38, "nl-admin-staff").await?;

    // Signed out, the sign-in form speaks Dutch; reception signs in.
    staff.click_button("header", "Afmelden", WAIT).await?;
    staff
        .wait_for_text("#sign-in-heading", "Aanmelden", WAIT)
        .await?;
    step(staff, 39, "nl-sign-in").await?;
    sign_in_as(staff, &creds.reception.username, &creds.reception.password).await?;
    staff
        .wait_for_text("#today-heading", "Vandaag", WAIT)
        .await?;
    step(staff, 40, "nl-reception-today").await?;
    staff.click_tab("Patiënten", WAIT).await?;
    staff.wait_for("#patients-heading", WAIT).await?;
    step(staff, 41, "nl-reception-patients").await?;

    // The doctor's waiting list, and a kiosk booking in Dutch reaching it.
    let doctor = &creds.doctors[0];
    staff.click_button("header", "Afmelden", WAIT).await?;
    sign_in_as(staff, &doctor.username, &doctor.password).await?;
    staff
        .wait_for_text("#waiting-heading", "Boekingen via de zuil", WAIT)
        .await?;
    step(staff, 42, "nl-doctor-waiting").await?;

    // The kiosk is wherever the English walk left it (a patient's screen): back to welcome
    // through its own Done or Finish, as the patient would leave it.
    kiosk
        .execute(
            "for (const b of document.querySelectorAll('section button')) {
               if (['Done', 'Finish'].includes(b.textContent.trim())) { b.click(); break; }
             }",
            vec![],
        )
        .await?;
    kiosk.wait_for("#welcome-heading", WAIT).await?;
    kiosk.click_button("header", "Nederlands", WAIT).await?;
    kiosk
        .wait_for_text("#welcome-heading", "Welkom", WAIT)
        .await?;
    step(kiosk, 43, "nl-kiosk-welcome").await?;
    identify_in(kiosk, creds, &DUTCH_KIOSK).await?;
    step(kiosk, 44, "nl-kiosk-patient").await?;
    choose_slot_in(kiosk, &doctor.display_name, 2, &DUTCH_KIOSK).await?;
    give_reason_and_book_in(kiosk, "Controle na griep", &DUTCH_KIOSK).await?;
    kiosk
        .wait_for_text("#kiosk-answer", "Wacht op bevestiging door uw arts", LIVE)
        .await?;
    step(kiosk, 45, "nl-kiosk-waiting").await?;
    wait_for_notification(
        notifications,
        "Nieuwe boeking via de zuil",
        "Controle na griep",
    )
    .await?;
    Ok(())
}

/// The two organisations' node names, as each shows the other (neither sets an
/// `organisation`, so the insurer's updates come from its node name).
struct PeerNames {
    hospital: String,
    insurer: String,
}

/// Initialises an insurer node in `insurer_dir` (admin / the demo's admin password) and peers
/// it with the hospital in `hospital_dir` both ways, as `peer add` on each side does; both
/// accept the other from 127.0.0.1. Neither node is serving yet.
async fn peered_insurer(
    hospital_dir: &Path,
    hospital_url: &str,
    insurer_dir: &Path,
    insurer_url: &str,
) -> PeerNames {
    let (hospital, insurer) = peered(
        hospital_dir,
        hospital_url,
        insurer_dir,
        insurer_url,
        "assure.example",
        NodeKind::Insurer,
    )
    .await;
    PeerNames { hospital, insurer }
}

/// Initialises a node `name` of `kind` in `dir` (admin / the demo's admin password) and peers
/// it with the hospital in `hospital_dir` both ways, each with the message types their kinds
/// exchange by default, from 127.0.0.1; neither is serving yet. The hospital's node name and
/// the new node's.
async fn peered(
    hospital_dir: &Path,
    hospital_url: &str,
    dir: &Path,
    url: &str,
    name: &str,
    kind: NodeKind,
) -> (String, String) {
    let options = InitOptions {
        name: name.into(),
        kind,
        time_zone: "Europe/Amsterdam".into(),
        admin_username: "admin".into(),
        admin_password: demo::ADMIN_PASSWORD.into(),
        database_url: None,
    };
    let other_config = init(dir, &options, &SystemClock).unwrap();
    let mut hospital_config = NodeConfig::load(Some(&hospital_dir.join(CONFIG_FILE))).unwrap();
    hospital_config.data_dir = hospital_dir.to_path_buf();
    let hospital = Node::open(hospital_config, Arc::new(SystemClock)).unwrap();
    let other = Node::open(other_config, Arc::new(SystemClock)).unwrap();
    let identity = |node: &Arc<Node>, url: &str| {
        let (node, url) = (node.clone(), url.to_owned());
        async move {
            let config = node.config.clone();
            node.store
                .read(move |c| carebridge_server::identity::identity(c, &config, &url))
                .await
                .unwrap()
        }
    };
    let localhost = || vec![SourceRule::parse("127.0.0.1").unwrap()];
    let other_identity = identity(&other, url).await;
    let hospital_identity = identity(&hospital, hospital_url).await;
    let names = (hospital_identity.name.clone(), other_identity.name.clone());
    let (api_key, _) = peering::add(
        &hospital,
        AddPeer {
            identity: other_identity,
            allowed_sources: localhost(),
            allowed_types: Vec::new(),
            their_api_key: None,
        },
    )
    .await
    .unwrap();
    peering::add(
        &other,
        AddPeer {
            identity: hospital_identity,
            allowed_sources: localhost(),
            allowed_types: Vec::new(),
            their_api_key: Some(api_key),
        },
    )
    .await
    .unwrap();
    names
}

/// The doctor, on the patient's page with the signed report `title`, records the patient's
/// consent and sends the report; the insurer admin's window, open on its received reports,
/// shows it arrive with its signatures verified and a desktop notification, while the
/// doctor's transmission turns acknowledged, live. The admin sends an update back to all
/// staff; the doctor's Updates tab counts it, a notification says so, the doctor
/// acknowledges it, and the admin's count turns to one.
async fn exchange(
    staff: &Session,
    insurer: &Insurer<'_>,
    title: &str,
    notifications: &Path,
) -> Result<(), String> {
    let window = insurer.window;
    let node_field = window.wait_for("#sign-in-node", WAIT).await?;
    window.replace_text(&node_field, &insurer.url).await?;
    let user = window.wait_for("#sign-in-username", WAIT).await?;
    window.replace_text(&user, "admin").await?;
    let password = window.wait_for("#sign-in-password", WAIT).await?;
    window
        .type_into(&password, &format!("{}\u{E007}", demo::ADMIN_PASSWORD))
        .await?;
    window.click_tab("Received reports", WAIT).await?;
    window
        .wait_for_text("#received-heading + p", "No reports received", WAIT)
        .await?;

    staff
        .click_button("section.share", "Record the patient's consent", WAIT)
        .await?;
    staff
        .wait_for_text("section.share", "Consent recorded by", LIVE)
        .await?;
    staff
        .click_first(
            &format!("input[aria-label=\"Select {title} to send\"]"),
            WAIT,
        )
        .await?;
    staff
        .click_button("section.share", "Send selected reports (1)", WAIT)
        .await?;
    staff
        .wait_for_text("section.share tr.transmission", "Acknowledged", LIVE)
        .await?;
    step(staff, 31, "doctor-report-sent").await?;

    window
        .wait_for_text("article.received", "Signatures verified", LIVE)
        .await?;
    window
        .wait_for_text("article.received", title, LIVE)
        .await?;
    wait_for_notification(
        notifications,
        &format!("Reports received from {}", insurer.names.hospital),
        "1 report(s) waiting for review",
    )
    .await?;
    step(window, 32, "insurer-received").await?;

    let update = "Prior authorisation forms change on 1 December";
    window.click_tab("Updates", WAIT).await?;
    let form = "form[aria-labelledby=new-update-heading]";
    let field = window.wait_for(&format!("{form} input"), WAIT).await?;
    window.type_into(&field, update).await?;
    let text = window.wait_for(&format!("{form} textarea"), WAIT).await?;
    window
        .type_into(
            &text,
            "Use form PA-7 from that day; PA-6 is no longer accepted.",
        )
        .await?;
    window.click_button(form, "Send update", WAIT).await?;
    window
        .wait_for_text("p.acks", "0 acknowledged", LIVE)
        .await?;

    wait_for_notification(
        notifications,
        &format!("Update from {}: {update}", insurer.names.insurer),
        "acknowledge",
    )
    .await?;
    staff.click_tab("Updates (1 new)", LIVE).await?;
    staff
        .click_in("article.update", update, "Acknowledge", WAIT)
        .await?;
    staff
        .wait_for_text("article.update", "Acknowledged", LIVE)
        .await?;
    staff.click_tab("Updates", LIVE).await?;
    step(staff, 33, "doctor-update-acknowledged").await?;
    window
        .wait_for_text("p.acks", "1 acknowledged", LIVE)
        .await?;
    window
        .execute(
            "document.querySelector('p.acks').scrollIntoView({block: 'center'});",
            vec![],
        )
        .await?;
    step(window, 34, "insurer-update-acknowledged").await
}

/// On the patient's page the doctor orders a CT; the scanner (`scripts/demo-send-study.sh`,
/// dcmtk) reads the order from the worklist and sends its images to Orthanc; the study appears
/// on the page, live, with its preview, and the doctor is notified.
async fn imaging(staff: &Session, hospital: &Hospital, notifications: &Path) -> Result<(), String> {
    staff.click_first("#order-open", WAIT).await?;
    let procedure = staff.wait_for("#order-procedure", WAIT).await?;
    staff.type_into(&procedure, "CT head (e2e)").await?;
    let reason = staff.wait_for("#order-reason", WAIT).await?;
    staff.type_into(&reason, "Headache after a fall").await?;
    step(staff, 49, "doctor-orders-imaging").await?;
    staff.click_first("#order-submit", WAIT).await?;
    let ordered = staff
        .wait_for_text(".imaging [role=status]", "accession", WAIT)
        .await?;
    let accession = ordered
        .split_whitespace()
        .find(|w| w.starts_with("CB"))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        .ok_or_else(|| format!("no accession in {ordered:?}"))?;
    send_study(hospital, Some(&accession)).await?;
    // Stable after the demo PACS's 3 s, then on the page without a reload.
    staff
        .wait_for_text(".imaging .studies", "CT head (e2e)", LIVE)
        .await?;
    staff.wait_for(".imaging img.study-preview", WAIT).await?;
    staff
        .wait_for_text(".imaging table", "Images received", WAIT)
        .await?;
    staff.wait_for(".imaging img.study-preview", WAIT).await?;
    step(staff, 50, "doctor-study-arrived").await?;
    wait_for_notification(notifications, "Imaging study ready", "3 image(s)").await
}

/// The scanner (`scripts/demo-send-study.sh`) sends a study for the order with `accession`, or
/// with none, one from elsewhere that names no order (`UNKNOWN=1`).
async fn send_study(hospital: &Hospital, accession: Option<&str>) -> Result<(), String> {
    let port = hospital.pacs_dicom_port.to_string();
    let accession = accession.map(str::to_owned);
    let sent = tokio::task::spawn_blocking(move || {
        let mut scanner = std::process::Command::new(repo().join("scripts/demo-send-study.sh"));
        scanner.env("PACS_DICOM_PORT", port);
        match accession {
            Some(a) => scanner.arg(a),
            None => scanner.env("UNKNOWN", "1"),
        };
        scanner.output()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("scripts/demo-send-study.sh: {e}"))?;
    if !sent.status.success() {
        return Err(format!(
            "the scanner did not send the study:\n{}{}",
            String::from_utf8_lossy(&sent.stdout),
            String::from_utf8_lossy(&sent.stderr)
        ));
    }
    Ok(())
}

/// Waits until dunst logged a notification whose summary contains `summary` and whose body
/// contains `body`.
async fn wait_for_notification(log: &Path, summary: &str, body: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + LIVE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| {
            l.split_once('|')
                .is_some_and(|(s, b)| s.contains(summary) && b.contains(body))
        }) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "no notification {summary:?} with {body:?} reached dunst; it logged:\n{text}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

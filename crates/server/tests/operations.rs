//! The node as its operator sees it, from a served process: `/metrics` on its own listener,
//! read with a Prometheus text parser while the node works; and its log in JSON at the most
//! verbose level, every line an object, every line of a request carrying that request's id,
//! and not one patient's name or card number in it.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::Duration;

use carebridge_testkit::{eventually, free_port, node_command};
use serde_json::{Value, json};
use support::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);

/// A new patient registered during the run: their name must not reach the log either.
const FAMILY: &str = "Zeldenrust";
const GIVEN: &str = "Wubbina";

/// One scrape, as a Prometheus text parser reads it: each sample's name, labels and value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    /// The samples named `name` whose labels include `labels`.
    fn all(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with `labels` (0 when there is none, as for a counter that
    /// never counted).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.all(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?}: {found:#?}");
        found.first().map_or(0.0, |s| s.2)
    }
}

async fn scrape(metrics: &str) -> Scrape {
    let res = support::http().get(metrics).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        res.headers()
    );
    // The format ignores empty lines (the exporter separates families with one); this parser
    // does not, so they are left out first.
    let text: String = res
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let (_, families) = nom_openmetrics::parser::prometheus(&text)
        .unwrap_or_else(|e| panic!("not Prometheus' text format ({e}):\n{text}"));
    Scrape(
        families
            .iter()
            .flat_map(|f| &f.samples)
            .map(|s| {
                let labels = s
                    .labels()
                    .iter()
                    .map(|l| (l.name.to_owned(), l.value.clone()))
                    .collect();
                (s.name().to_owned(), labels, s.number())
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_json_logs_tell_the_operator_how_the_node_does_without_patient_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("st-marys");
    let dir_s = dir.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics_at = format!("127.0.0.1:{}", free_port());
    let prepared = tokio::process::Command::from(node_command())
        .args([
            "demo",
            "--prepare-only",
            "--data-dir",
            dir_s,
            "--listen",
            &listen,
        ])
        .env("CAREBRIDGE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(prepared.status.success(), "{prepared:?}");
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();

    // Everything at the most verbose level, as JSON, into a file.
    let log_path = tmp.path().join("node.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut node = tokio::process::Command::from(node_command())
        .args(["serve", "--data-dir", dir_s])
        .env("CAREBRIDGE_LOG", "trace")
        .env("CAREBRIDGE_LOG__FORMAT", "json")
        .env("CAREBRIDGE_METRICS_LISTEN", &metrics_at)
        // A closed stream is noticed at the next heartbeat's write.
        .env("CAREBRIDGE_HEARTBEAT_SECONDS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(node.stdout.take().unwrap()).lines();
    let url = format!("http://{listen}");
    let first = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, format!("carebridge-node listening on {url}"));
    let metrics = format!("http://{metrics_at}/metrics");

    // The API does not serve the metrics: they are for the monitoring network.
    let on_api = support::http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    let idle = scrape(&metrics).await;

    // A day's work: a wrong password, a search by name, a registration, a booking, a live
    // stream, a report with the patient's name in it, a kiosk identification.
    let wrong = support::http()
        .post(format!("{url}/api/v1/sessions"))
        .json(&json!({"username": creds["reception"]["username"], "password": "not-it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let login = |who: &Value| {
        let (u, p) = (
            who["username"].as_str().unwrap().to_owned(),
            who["password"].as_str().unwrap().to_owned(),
        );
        let url = url.clone();
        async move { Client::sign_in(&url, &u, &p).await }
    };
    let reception = login(&creds["reception"]).await;
    let doctor = login(&creds["doctors"][0]).await;
    let demo_patient = &creds["patients"][0];
    // Demo names are "<given> <family>": searched by the given name.
    let given = demo_patient["name"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let found = reception
        .get(&format!("/api/v1/patients?name={given}"))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let registered = reception
        .post(
            "/api/v1/patients",
            json!({"family_name": FAMILY, "given_name": GIVEN, "birth_date": "1961-04-12",
                   "phone": "+31 20 555 0199"}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let new_id = registered.body["id"].as_str().unwrap().to_owned();
    let new_card = registered.body["card_number"].as_str().unwrap().to_owned();
    let mut live = doctor.events(None).await;
    let booked = reception
        .book_next(
            creds["doctors"][0]["id"].as_str().unwrap(),
            &new_id,
            &format!("Follow-up for {GIVEN} {FAMILY}"),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let booking_request = booked.headers["x-request-id"].to_str().unwrap().to_owned();
    live.wait_for(WAIT, |e| e.event == "appointment.created")
        .await;
    let report = doctor
        .call(
            reqwest::Method::POST,
            "/api/v1/reports",
            Some(json!({"patient_id": new_id, "content": {
                "title": "Consultation", "findings": format!("{GIVEN} {FAMILY} reports pain"),
                "conclusion": "Rest", "codes": []}})),
            &[("x-request-id", "operator-trace-42")],
        )
        .await;
    assert_eq!(report.status, 201, "{}", report.body);
    assert_eq!(report.headers["x-request-id"], "operator-trace-42");
    // An id that could forge log fields is replaced, not echoed.
    let forged = doctor
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/patients/{new_id}"),
            None,
            &[("x-request-id", "a\"b")],
        )
        .await;
    assert_eq!(forged.status, 200);
    assert_ne!(forged.headers["x-request-id"], "a\"b");

    // What the operator sees meanwhile.
    let busy = scrape(&metrics).await;
    let requests = |s: &Scrape, route: &str, method: &str, status: &str| {
        s.value(
            "carebridge_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    let counted = busy.all("carebridge_http_requests_total", &[]);
    for (route, method, status, times) in [
        ("/api/v1/patients", "POST", "201", 1.0),
        ("/api/v1/patients", "GET", "200", 1.0),
        ("/api/v1/patients/{id}", "GET", "200", 1.0),
        ("/api/v1/events", "GET", "200", 1.0),
        ("/api/v1/sessions", "POST", "401", 1.0),
        ("/api/v1/sessions", "POST", "201", 2.0),
    ] {
        assert_eq!(
            requests(&busy, route, method, status),
            times,
            "{method} {route} {status}: {counted:?}"
        );
    }
    assert!(
        counted
            .iter()
            .all(|(_, l, _)| !l["route"].contains(&new_id)),
        "a route label holds a record's id: {counted:?}"
    );
    // The booking's latency: one answer, in the histogram's last bucket and its count.
    let booking = [("route", "/api/v1/appointments"), ("method", "POST")];
    let duration = "carebridge_http_request_duration_seconds";
    assert_eq!(busy.value(&format!("{duration}_count"), &booking), 1.0);
    let inf = [booking[0], booking[1], ("le", "+Inf")];
    assert_eq!(busy.value(&format!("{duration}_bucket"), &inf), 1.0);
    assert!(
        busy.all(&format!("{duration}_bucket"), &booking).len() > 10,
        "too few buckets"
    );
    assert_eq!(busy.value("carebridge_live_subscribers", &[]), 1.0);
    assert_eq!(idle.value("carebridge_live_subscribers", &[]), 0.0);
    // The registration, the booking and the report each published a change.
    let published = busy.value("carebridge_events_published_total", &[])
        - idle.value("carebridge_events_published_total", &[]);
    assert!(published >= 3.0, "{published} events published");
    let commits = busy.value("carebridge_writer_commit_seconds_count", &[])
        - idle.value("carebridge_writer_commit_seconds_count", &[]);
    assert!(commits >= 3.0, "{commits} commits timed");
    assert_eq!(busy.value("carebridge_writer_queue_depth", &[]), 0.0);
    let refused = [("who", "staff"), ("why", "credentials")];
    assert_eq!(
        busy.value("carebridge_sign_in_failures_total", &refused),
        1.0
    );
    assert_eq!(busy.value("carebridge_throttled_addresses", &[]), 0.0);
    assert_eq!(
        busy.value("carebridge_federation_oldest_waiting_seconds", &[]),
        0.0
    );
    assert!(busy.value("carebridge_database_bytes", &[]) > 100_000.0);
    drop(live);
    eventually("the closed stream leaves the gauge", WAIT, || async {
        scrape(&metrics)
            .await
            .value("carebridge_live_subscribers", &[])
            == 0.0
    })
    .await;

    // The kiosk, then stop the node and read what it logged.
    let kiosk = Client::kiosk_sign_in(
        &url,
        creds["kiosk"]["device_id"].as_str().unwrap(),
        creds["kiosk"]["secret"].as_str().unwrap(),
    )
    .await;
    let identified = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": new_card, "birth_date": "1961-04-12"}),
        )
        .await;
    assert_eq!(identified.status, 200, "{}", identified.body);
    node.start_kill().unwrap();
    node.wait().await.unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 50, "{} lines", lines.len());
    // Every line of a request carries its id: the booking's, and the one the client chose.
    let of_request = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    // The audit line is logged by the database's writer thread: the id crosses to it.
    for (id, action) in [
        (booking_request.as_str(), "appointment.book"),
        ("operator-trace-42", "report.create"),
    ] {
        let mine = of_request(id);
        assert!(
            mine.iter()
                .any(|l| l["message"] == "audited" && l["action"] == action),
            "request {id} has no audited line: {mine:#?}"
        );
        assert!(
            mine.iter()
                .any(|l| l["message"] == "answered" && l["status"] == 201),
            "request {id} has no answered line: {mine:#?}"
        );
        assert!(
            mine.iter()
                .all(|l| l["span"]["route"].is_string() && l["span"]["method"].is_string()),
            "{mine:#?}"
        );
    }
    let answered = lines.iter().filter(|l| l["message"] == "answered").count();
    let with_id = lines
        .iter()
        .filter(|l| l["message"] == "answered" && l["span"]["request_id"].is_string())
        .count();
    assert_eq!(answered, with_id, "an answered line without its request id");

    // No patient's name or card number, at any level.
    let mut secrets: HashMap<String, String> = HashMap::new();
    for p in creds["patients"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        secrets.insert(name.to_owned(), "a demo patient's name".into());
        for part in name.split(' ').filter(|w| w.len() > 3) {
            secrets.insert(part.to_owned(), format!("part of {name}"));
        }
        secrets.insert(
            p["card_number"].as_str().unwrap().to_owned(),
            "a card number".into(),
        );
    }
    secrets.insert(FAMILY.into(), "the new patient's family name".into());
    secrets.insert(GIVEN.into(), "the new patient's given name".into());
    secrets.insert(new_card.clone(), "the new patient's card number".into());
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(s, _)| log.contains(s.as_str()))
        .map(|(s, what)| {
            let line = log.lines().find(|l| l.contains(s.as_str())).unwrap_or("");
            format!("{what} {s:?} in: {line:.400}")
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "patient data in the log:\n{}",
        leaks.join("\n")
    );
}

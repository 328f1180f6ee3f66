//! Text that people type, over real connections: every write that takes free text refuses
//! control characters, over-long values, malformed e-mail addresses and telephone numbers
//! and strings that are not Unicode with `422 validation` naming the field, and stores
//! nothing in any table; text is stored in NFC. The rules are `carebridge_protocol::text`.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Client, TestNode};

/// One refused write: who sends it, where, and the field the answer must name.
struct Case {
    what: String,
    who: Who,
    method: Method,
    path: String,
    body: Value,
    headers: Vec<(&'static str, String)>,
    field: String,
}

#[derive(Clone, Copy)]
enum Who {
    Reception,
    Doctor,
    Admin,
}

struct Clients {
    reception: Client,
    doctor: Client,
    admin: Client,
}

impl Clients {
    async fn of(node: &TestNode) -> Self {
        Self {
            reception: node.reception().await,
            doctor: node.doctor(0).await,
            admin: node.admin().await,
        }
    }

    fn get(&self, who: Who) -> &Client {
        match who {
            Who::Reception => &self.reception,
            Who::Doctor => &self.doctor,
            Who::Admin => &self.admin,
        }
    }
}

/// The records the refused writes aim at, made before anything is counted.
struct Targets {
    patient: String,
    patient_version: i64,
    doctor: String,
    appointment: String,
    appointment_version: i64,
    report: String,
    report_version: i64,
}

async fn targets(node: &TestNode, c: &Clients) -> Targets {
    let patient = node.patient(0).id.to_string();
    let p = c
        .reception
        .get(&format!("/api/v1/patients/{patient}"))
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let doctor = node.doctor_id(0);
    let a = c.reception.book_next(&doctor, &patient, "Check-up").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let r = c
        .doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": {"title": "Chest X-ray"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    Targets {
        patient,
        patient_version: p.body["version"].as_i64().unwrap(),
        doctor,
        appointment: a.body["id"].as_str().unwrap().to_owned(),
        appointment_version: a.body["version"].as_i64().unwrap(),
        report: r.body["id"].as_str().unwrap().to_owned(),
        report_version: r.body["version"].as_i64().unwrap(),
    }
}

/// A write that takes text: who sends it, method, path, a valid body, headers, and the
/// fields to spoil.
type Write = (
    Who,
    Method,
    String,
    Value,
    Vec<(&'static str, String)>,
    Vec<&'static str>,
);

/// Each write that takes text, once per field, with the field set to what `bad` gives
/// (fields it gives nothing for are left out).
fn cases_with(t: &Targets, bad: &dyn Fn(&'static str) -> Option<Value>) -> Vec<Case> {
    let p = &t.patient;
    let d = &t.doctor;
    let a = &t.appointment;
    let r = &t.report;
    let if_match = |v: i64| vec![("if-match", format!("\"{v}\""))];
    let writes: Vec<Write> = vec![
        (
            Who::Reception,
            Method::POST,
            "/api/v1/patients".into(),
            json!({"family_name": "Jansen", "given_name": "Eva", "birth_date": "1980-01-02",
                   "phone": "+31 20 123 4567", "email": "eva@example.org"}),
            vec![],
            vec!["family_name", "given_name", "phone", "email"],
        ),
        (
            Who::Reception,
            Method::PATCH,
            format!("/api/v1/patients/{p}"),
            json!({"family_name": "Jansen", "given_name": "Eva", "phone": "+31 20 123 4567",
                   "email": "eva@example.org"}),
            if_match(t.patient_version),
            vec!["family_name", "given_name", "phone", "email"],
        ),
        (
            Who::Reception,
            Method::POST,
            "/api/v1/appointments".into(),
            json!({"patient_id": p, "practitioner_id": d, "next_available_from":
                   "2000-01-01T00:00:00Z", "reason": "Check-up", "override_reason": "Urgent"}),
            vec![],
            vec!["reason", "override_reason"],
        ),
        (
            Who::Reception,
            Method::POST,
            format!("/api/v1/appointments/{a}/reschedule"),
            json!({"start": "2030-01-07T09:00:00Z", "override_reason": "Urgent"}),
            if_match(t.appointment_version),
            vec!["override_reason"],
        ),
        (
            Who::Reception,
            Method::POST,
            format!("/api/v1/appointments/{a}/cancel"),
            json!({"reason": "Patient called"}),
            if_match(t.appointment_version),
            vec!["reason"],
        ),
        (
            Who::Doctor,
            Method::POST,
            format!("/api/v1/appointments/{a}/decline"),
            json!({"reason": "Not my patient"}),
            if_match(t.appointment_version),
            vec!["reason"],
        ),
        (
            Who::Doctor,
            Method::POST,
            "/api/v1/reports".into(),
            json!({"patient_id": p, "content": {"title": "X-ray", "findings": "Clear",
                   "conclusion": "Healthy", "codes": ["J18.9"]}}),
            vec![],
            vec!["title", "findings", "conclusion", "codes"],
        ),
        (
            Who::Doctor,
            Method::PUT,
            format!("/api/v1/reports/{r}/draft"),
            json!({"title": "X-ray", "findings": "Clear", "conclusion": "Healthy"}),
            if_match(t.report_version),
            vec!["title", "findings", "conclusion"],
        ),
        (
            Who::Doctor,
            Method::POST,
            format!("/api/v1/reports/{r}/entered-in-error"),
            json!({"reason": "Wrong patient"}),
            if_match(t.report_version),
            vec!["reason"],
        ),
        (
            Who::Reception,
            Method::POST,
            format!("/api/v1/practitioners/{d}/absences"),
            json!({"start": "2030-01-07T00:00:00Z", "end": "2030-01-08T00:00:00Z",
                   "reason": "Conference"}),
            vec![],
            vec!["reason"],
        ),
        (
            Who::Admin,
            Method::POST,
            "/api/v1/practitioners".into(),
            json!({"username": "new.doctor", "display_name": "Dr. New", "role": "doctor",
                   "password": "a long enough password"}),
            vec![],
            vec!["display_name"],
        ),
        (
            Who::Admin,
            Method::PATCH,
            format!("/api/v1/practitioners/{d}"),
            json!({"display_name": "Dr. Renamed"}),
            vec![],
            vec!["display_name"],
        ),
        (
            Who::Admin,
            Method::POST,
            "/api/v1/kiosks".into(),
            json!({"label": "Entrance kiosk 2"}),
            vec![],
            vec!["label"],
        ),
        (
            Who::Admin,
            Method::POST,
            "/api/v1/admin-updates".into(),
            json!({"peer": "st-marys.example", "audience": "all", "title": "Forms",
                   "body": "New forms\nfrom May"}),
            vec![],
            vec!["peer", "title", "body"],
        ),
        (
            Who::Doctor,
            Method::POST,
            format!("/api/v1/patients/{p}/consents"),
            json!({"peer": "assure.example"}),
            vec![],
            vec!["peer"],
        ),
        (
            Who::Doctor,
            Method::POST,
            "/api/v1/transmissions".into(),
            json!({"peer": "assure.example", "report_ids": [r]}),
            vec![],
            vec!["peer"],
        ),
    ];
    let mut cases = Vec::new();
    for (who, method, path, body, headers, fields) in writes {
        for field in fields {
            let Some(value) = bad(field) else { continue };
            let mut body = body.clone();
            // Report content is named `content.<field>`, in a new report and as a draft's body.
            let (target, name) = if path == "/api/v1/reports" {
                (&mut body["content"], format!("content.{field}"))
            } else if path.ends_with("/draft") {
                (&mut body, format!("content.{field}"))
            } else {
                (&mut body, field.to_owned())
            };
            target[field] = if field == "codes" {
                json!([value])
            } else {
                value
            };
            cases.push(Case {
                what: format!("{method} {path} {field}"),
                who,
                method: method.clone(),
                path: path.clone(),
                body,
                headers: headers.clone(),
                field: name,
            });
        }
    }
    cases
}

/// Sends each case and checks it is a 422 `validation` problem naming its field; then
/// checks that no table gained or lost a row and that the targets did not change.
async fn assert_refused_storing_nothing(node: &TestNode, c: &Clients, t: &Targets, cases: &[Case]) {
    assert!(!cases.is_empty());
    // Read first: reading a patient's records is itself audited.
    let records_before = records(c, t).await;
    let before = node.table_counts();
    assert!(before.len() > 10, "{before:?}");
    for case in cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = c
            .get(case.who)
            .call(
                case.method.clone(),
                &case.path,
                Some(case.body.clone()),
                &headers,
            )
            .await;
        assert_names_field(&a, &case.field, &case.what);
    }
    assert_eq!(
        node.table_counts(),
        before,
        "a refused write stored nothing"
    );
    assert_eq!(records(c, t).await, records_before, "nor changed a record");
}

#[track_caller]
fn assert_names_field(a: &Answer, field: &str, what: &str) {
    assert_eq!(a.status.as_u16(), 422, "{what}: {}", a.body);
    assert!(a.is_problem(), "{what}");
    assert_eq!(a.code(), "validation", "{what}: {}", a.body);
    let fields: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors member in {}", a.body))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, [field], "{what}: {}", a.body);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{field}: ")),
        "{what}: {detail}"
    );
}

/// The target records as read back (their versions move with any change).
async fn records(c: &Clients, t: &Targets) -> BTreeMap<&'static str, Value> {
    let mut m = BTreeMap::new();
    for (k, path) in [
        ("patient", format!("/api/v1/patients/{}", t.patient)),
        (
            "appointment",
            format!("/api/v1/appointments/{}", t.appointment),
        ),
        ("report", format!("/api/v1/reports/{}", t.report)),
        ("practitioners", "/api/v1/practitioners".to_owned()),
    ] {
        let who = match k {
            "report" => &c.doctor,
            "practitioners" => &c.admin,
            _ => &c.reception,
        };
        let a = who.get(&path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        m.insert(k, a.body);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_character_in_any_text_field_is_a_422_naming_it_and_stores_nothing() {
    let node = TestNode::start().await;
    let c = Clients::of(&node).await;
    let t = targets(&node, &c).await;
    let mut cases = Vec::new();
    // The U+0001 seen in a family name, and a line feed, which only multi-line fields (report
    // findings and conclusion, an update's body) may hold; there, a bell and a carriage return.
    for (line, lines) in [("\u{1}", "\u{7}"), ("\n", "\r")] {
        cases.extend(cases_with(&t, &|field| {
            Some(json!(match field {
                "findings" | "conclusion" | "body" => format!("Line one\n{lines}"),
                "phone" => format!("+31 20 123{line}4567"),
                "email" => format!("eva@example.org{line}"),
                _ => format!("Jan{line}sen"),
            }))
        }));
    }
    assert_eq!(cases.len(), 2 * 30);
    assert_refused_storing_nothing(&node, &c, &t, &cases).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_longer_than_its_field_allows_is_a_422_naming_it_and_stores_nothing() {
    let node = TestNode::start().await;
    let c = Clients::of(&node).await;
    let t = targets(&node, &c).await;
    let cases = cases_with(&t, &|field| {
        let max = match field {
            "family_name" | "given_name" | "label" | "peer" => 100,
            "reason" | "override_reason" => 500,
            "title" | "display_name" => 200,
            "findings" | "conclusion" => 20_000,
            "body" => 5_000,
            "codes" => 40,
            _ => return None,
        };
        // Characters, not bytes: one more "é" than allowed.
        Some(json!("é".repeat(max + 1)))
    });
    assert_eq!(cases.len(), 26);
    assert_refused_storing_nothing(&node, &c, &t, &cases).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_emails_and_phone_numbers_are_a_422_naming_them_and_store_nothing() {
    let node = TestNode::start().await;
    let c = Clients::of(&node).await;
    let t = targets(&node, &c).await;
    let mut cases = Vec::new();
    for (email, phone) in [
        ("eva@example", "12-34"),
        ("eva at example.org", "call me"),
        ("eva@exam ple.org", "123456789012345678901"),
        ("@example.org", "0612.345.678"),
    ] {
        cases.extend(cases_with(&t, &|field| match field {
            "email" => Some(json!(email)),
            "phone" => Some(json!(phone)),
            _ => None,
        }));
    }
    assert_eq!(cases.len(), 16);
    assert_refused_storing_nothing(&node, &c, &t, &cases).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_surrogate_or_bytes_not_utf8_are_a_422_naming_the_field_and_store_nothing() {
    let node = TestNode::start().await;
    let c = Clients::of(&node).await;
    let before = node.table_counts();
    let http = support::http();
    let bodies: [(&str, &[u8]); 4] = [
        (
            "family_name",
            br#"{"family_name": "\ud800", "given_name": "Eva", "birth_date": "1980-01-02"}"#,
        ),
        (
            "given_name",
            br#"{"family_name": "Jansen", "given_name": "Ev\udc00a", "birth_date": "1980-01-02"}"#,
        ),
        (
            "email",
            br#"{"family_name": "Jansen", "given_name": "Eva", "birth_date": "1980-01-02", "email": "\ud800\u0041@x.org"}"#,
        ),
        (
            "family_name",
            b"{\"family_name\": \"Jan\xed\xa0\x80sen\", \"given_name\": \"Eva\", \"birth_date\": \"1980-01-02\"}",
        ),
    ];
    for (field, body) in bodies {
        let r = http
            .post(format!("{}/api/v1/patients", node.url))
            .bearer_auth(&c.reception.token)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body: Value = r.json().await.unwrap();
        let a = Answer {
            status,
            headers,
            body,
        };
        assert_names_field(&a, field, &format!("{field} not Unicode"));
    }
    assert_eq!(node.table_counts(), before, "nothing stored");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decomposed_text_is_stored_composed_and_found_typed_either_way() {
    let node = TestNode::start().await;
    let c = Clients::of(&node).await;
    // "Müller" and "José" typed as base letters with combining marks (NFD).
    let p = c
        .reception
        .post(
            "/api/v1/patients",
            json!({"family_name": "Mu\u{308}ller", "given_name": "Jose\u{301}",
                   "birth_date": "1975-03-04", "email": "jose\u{301}@example.org"}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    assert_eq!(p.body["family_name"], "M\u{fc}ller");
    assert_eq!(p.body["given_name"], "Jos\u{e9}");
    assert_eq!(p.body["email"], "jos\u{e9}@example.org");
    let id = p.body["id"].as_str().unwrap();
    let read = c.reception.get(&format!("/api/v1/patients/{id}")).await;
    assert_eq!(read.body["family_name"], "M\u{fc}ller", "as stored");
    // "mül" composed, and decomposed ("mu" + U+0308 + "l").
    for prefix in ["m%C3%BCl", "mu%CC%88l"] {
        let found = c
            .reception
            .get(&format!("/api/v1/patients?name={prefix}"))
            .await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert!(
            found.body.as_array().unwrap().iter().any(|f| f["id"] == id),
            "{prefix} finds it: {}",
            found.body
        );
    }

    // A report's multi-line text keeps its line feeds and tabs, composed.
    let r = c
        .doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": id, "content": {"title": "Re\u{301}sume\u{301}",
                   "findings": "Line one\n\tIndented e\u{301}"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["content"]["title"], "R\u{e9}sum\u{e9}");
    assert_eq!(r.body["content"]["findings"], "Line one\n\tIndented \u{e9}");
    node.stop().await;
}

//! FHIR R4 at `/fhir/R4` over real HTTP: every resource type served, validated by two offline
//! validators (Medplum's and HL7's JSON schema, `tests/fhir/validate.mjs`); who reads what;
//! paging that walks every match once; errors as OperationOutcomes; every search parameter the
//! CapabilityStatement lists accepted.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use carebridge_fhir::capability::{ParamType, SERVED};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Client, TestNode};

/// Where the validators and their node_modules are (`make test` installs them).
const VALIDATORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir");

#[track_caller]
fn ok(a: &Answer) -> &Value {
    assert_eq!(a.status.as_u16(), 200, "{}", a.body);
    let ct = a.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/fhir+json"), "{ct}");
    &a.body
}

#[track_caller]
fn outcome(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    let ct = a.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/fhir+json"), "{ct}: {}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome", "{}", a.body);
    assert_eq!(a.body["issue"][0]["code"], code, "{}", a.body);
    assert_eq!(a.body["issue"][0]["severity"], "error");
}

fn entries<'a>(bundle: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| &x["resource"])
                .filter(|r| r["resourceType"] == resource_type)
                .collect()
        })
        .unwrap_or_default()
}

/// A node with a signed report (amended once), a draft, and a consent to share with a peer.
struct Seeded {
    node: TestNode,
    doctor: Client,
    patient: String,
    report: String,
}

async fn seeded() -> Seeded {
    let node = TestNode::start().await;
    let doctor = node.doctor(0).await;
    let patient = node.patient(0).id.to_string();
    let content = |title: &str| json!({"title": title, "findings": "Lungs clear.\nNo effusion.", "conclusion": "Normal study.", "codes": ["Z01.89"]});
    let r = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content("Chest X-ray")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let report = r.body["id"].as_str().unwrap().to_owned();
    let f = doctor
        .call(
            Method::POST,
            &format!("/api/v1/reports/{report}/finalise"),
            None,
            &[("if-match", &format!("\"{}\"", r.body["version"]))],
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    let a = doctor
        .call(
            Method::POST,
            &format!("/api/v1/reports/{report}/amend"),
            Some(content("Chest X-ray (amended)")),
            &[("if-match", &format!("\"{}\"", f.body["version"]))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let draft = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content("Follow-up")}),
        )
        .await;
    assert_eq!(draft.status, 201, "{}", draft.body);
    // A peer as `peer add` records one (its keys are never used here), so that a consent can
    // name it.
    // The test's own writable connection (TestNode::db is read-only).
    carebridge_server::store::open_connection(
        &node.node.config.db_path(),
        &carebridge_server::node::load_key(&node.node.config).unwrap(),
        false,
    )
    .unwrap()
    .execute(
        "INSERT INTO peers (name, kind, url, signing_key, agreement_key, api_key, api_key_hash,
                 allowed_sources, allowed_types, created_at, updated_at)
             VALUES ('insurer.example', 'insurer', 'https://insurer.example', zeroblob(32),
                 zeroblob(32), 'key', randomblob(32), '[]', '[]', 0, 0)",
        [],
    )
    .unwrap();
    let c = doctor
        .post(
            &format!("/api/v1/patients/{patient}/consents"),
            json!({"peer": "insurer.example"}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.body);
    Seeded {
        node,
        doctor,
        patient,
        report,
    }
}

/// Runs the validators over `path`: (file name, path in the file, resource type, validator) →
/// errors.
fn validate(path: &Path) -> Vec<(String, String, String, String, Vec<String>)> {
    assert!(
        Path::new(VALIDATORS)
            .join("node_modules/@medplum/core")
            .is_dir(),
        "the FHIR validators are not installed: `make test` installs them (npm ci in {VALIDATORS})"
    );
    let out = std::process::Command::new("node")
        .arg(Path::new(VALIDATORS).join("validate.mjs"))
        .arg(path)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the validators failed to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let file = Path::new(v["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let errors = v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect();
            (
                file,
                v["path"].as_str().unwrap().to_owned(),
                v["resourceType"].as_str().unwrap_or("").to_owned(),
                v["validator"].as_str().unwrap().to_owned(),
                errors,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_type_served_passes_both_validators() {
    let s = seeded().await;
    let admin = s.node.admin().await;
    let doctor_id = s.node.doctor_id(0);
    let today = carebridge_server::schedule::local_date(s.node.node.tz, s.node.node.clock.now());
    let week = today + chrono::Duration::days(7);
    let p = &s.patient;
    let reads: Vec<(&str, &Client, String)> = vec![
        ("metadata", &s.doctor, "/fhir/R4/metadata".into()),
        ("patients", &s.doctor, "/fhir/R4/Patient?_count=5".into()),
        ("patient", &s.doctor, format!("/fhir/R4/Patient/{p}")),
        ("practitioners", &s.doctor, "/fhir/R4/Practitioner".into()),
        ("roles", &s.doctor, "/fhir/R4/PractitionerRole?_include=PractitionerRole:practitioner".into()),
        ("schedules", &s.doctor, "/fhir/R4/Schedule".into()),
        ("slots", &s.doctor, format!("/fhir/R4/Slot?schedule=Schedule/{doctor_id}&start=ge{today}&start=lt{week}&_count=20")),
        ("appointments", &s.doctor, "/fhir/R4/Appointment?_count=5&_include=Appointment:patient&_include=Appointment:practitioner".into()),
        ("reports", &s.doctor, format!("/fhir/R4/DiagnosticReport?patient=Patient/{p}")),
        ("report", &s.doctor, format!("/fhir/R4/DiagnosticReport/{}", s.report)),
        ("consents", &s.doctor, format!("/fhir/R4/Consent?patient={p}")),
        ("provenance", &s.doctor, format!("/fhir/R4/Provenance?target=DiagnosticReport/{}", s.report)),
        ("audit", &admin, "/fhir/R4/AuditEvent?_count=30".into()),
        ("everything", &s.doctor, format!("/fhir/R4/Patient/{p}/$everything")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut seen_types = BTreeSet::new();
    for (name, client, path) in &reads {
        let a = client.get(path).await;
        let body = ok(&a);
        seen_types.insert(body["resourceType"].as_str().unwrap().to_owned());
        for e in body["entry"].as_array().into_iter().flatten() {
            seen_types.insert(e["resource"]["resourceType"].as_str().unwrap().to_owned());
        }
        std::fs::write(
            dir.path().join(format!("{name}.json")),
            serde_json::to_vec_pretty(body).unwrap(),
        )
        .unwrap();
    }
    // Every type served was exported at least once, so that no type is validated vacuously.
    for s in SERVED {
        assert!(
            seen_types.contains(s.resource_type),
            "no {} exported: {seen_types:?}",
            s.resource_type
        );
    }
    // The signed report carries its PDF, the findings as text, and two signed revisions.
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let forms: Vec<&str> = report["presentedForm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["contentType"].as_str().unwrap())
        .collect();
    assert!(forms.contains(&"application/pdf"), "{forms:?}");
    assert_eq!(report["status"], "amended");
    let prov: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(prov["total"], 2, "{prov}");

    let results = validate(dir.path());
    let failures: Vec<_> = results.iter().filter(|r| !r.4.is_empty()).collect();
    assert!(failures.is_empty(), "validation errors: {failures:#?}");
    // Both validators ran over every resource of every file.
    for v in ["medplum", "json-schema"] {
        let types: BTreeSet<&str> = results
            .iter()
            .filter(|r| r.3 == v)
            .map(|r| r.2.as_str())
            .collect();
        for t in &seen_types {
            assert!(types.contains(t.as_str()), "{v} never saw a {t}");
        }
    }
}

/// Each invalid fixture, and which validator must refuse it. Neither validator catches every
/// kind: HL7's JSON schema cannot state FHIR's invariants (app-2, ppc-1) nor that a primitive
/// is required (Slot.status may come as `_status`), and Medplum does not check a resource id's
/// pattern. Together they refuse all six; each refusal below is asserted, so a validator that
/// accepts everything fails this test.
#[test]
fn the_validators_refuse_each_invalid_fixture() {
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("appointment-start-without-end.json", &["medplum"][..]),
        (
            "auditevent-without-source.json",
            &["medplum", "json-schema"][..],
        ),
        ("consent-without-policy.json", &["medplum"][..]),
        ("instant-without-zone.json", &["medplum", "json-schema"][..]),
        ("patient-id-with-at.json", &["json-schema"][..]),
        ("slot-without-status.json", &["medplum"][..]),
    ]);
    let results = validate(&Path::new(VALIDATORS).join("invalid"));
    let mut refused: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, _, _, validator, errors) in &results {
        let e = refused.entry(file.clone()).or_default();
        if !errors.is_empty() {
            e.insert(validator.clone());
        }
    }
    assert_eq!(refused.len(), expected.len(), "{refused:?}");
    for (file, validators) in expected {
        let got = &refused[file];
        let want: BTreeSet<String> = validators.iter().map(|v| (*v).to_owned()).collect();
        assert!(
            want.is_subset(got),
            "{file}: refused by {got:?}, expected {want:?}"
        );
        assert!(!got.is_empty(), "{file} was accepted by both validators");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reads_only_what_the_policy_gives_it() {
    let s = seeded().await;
    let reception = s.node.reception().await;
    let admin = s.node.admin().await;
    let kiosk = s.node.kiosk().await;
    let p = &s.patient;
    let searches = [
        ("Patient", "/fhir/R4/Patient"),
        ("Appointment", "/fhir/R4/Appointment"),
        ("DiagnosticReport", "/fhir/R4/DiagnosticReport"),
        ("Consent", &*format!("/fhir/R4/Consent?patient={p}")),
        ("Provenance", &*format!("/fhir/R4/Provenance?patient={p}")),
        ("AuditEvent", "/fhir/R4/AuditEvent"),
        ("Practitioner", "/fhir/R4/Practitioner"),
        ("Schedule", "/fhir/R4/Schedule"),
    ];
    // (reception, doctor, admin) may search; a kiosk may search nothing.
    let allowed: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::from([
        ("Patient", (true, true, false)),
        ("Appointment", (true, true, false)),
        ("DiagnosticReport", (false, true, false)),
        ("Consent", (false, true, false)),
        ("Provenance", (false, true, false)),
        ("AuditEvent", (false, false, true)),
        ("Practitioner", (true, true, true)),
        ("Schedule", (true, true, true)),
    ]);
    for (t, path) in searches {
        let (r, d, a) = allowed[t];
        for (who, client, may) in [
            ("reception", &reception, r),
            ("doctor", &s.doctor, d),
            ("admin", &admin, a),
            ("kiosk", &kiosk, false),
        ] {
            let answer = client.get(path).await;
            if may {
                ok(&answer);
            } else {
                outcome(&answer, 403, "forbidden");
            }
            assert!(
                may == (answer.status == 200),
                "{who} {t}: {}",
                answer.status
            );
        }
    }
    // A doctor sees their own appointments only, by search and by read.
    let mine = s.doctor.get("/fhir/R4/Appointment?_count=1000").await;
    let me = format!("Practitioner/{}", s.node.doctor_id(0));
    let own = entries(ok(&mine), "Appointment");
    assert!(!own.is_empty());
    for a in &own {
        assert_eq!(
            a["participant"][1]["actor"]["reference"],
            me.as_str(),
            "{a}"
        );
    }
    let all = reception.get("/fhir/R4/Appointment?_count=1000").await;
    let other = entries(ok(&all), "Appointment")
        .into_iter()
        .find(|a| a["participant"][1]["actor"]["reference"] != me.as_str())
        .expect("another doctor's appointment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    outcome(
        &s.doctor.get(&format!("/fhir/R4/Appointment/{other}")).await,
        404,
        "not-found",
    );
    ok(&reception
        .get(&format!("/fhir/R4/Appointment/{other}"))
        .await);
    // Reception never sees a report's content, not even through the patient's whole record.
    let record = reception
        .get(&format!("/fhir/R4/Patient/{p}/$everything"))
        .await;
    assert!(entries(ok(&record), "DiagnosticReport").is_empty());
    assert!(entries(&record.body, "Provenance").is_empty());
    let doctors_view = s
        .doctor
        .get(&format!("/fhir/R4/Patient/{p}/$everything"))
        .await;
    assert_eq!(entries(ok(&doctors_view), "DiagnosticReport").len(), 2);
    outcome(
        &admin
            .get(&format!("/fhir/R4/Patient/{p}/$everything"))
            .await,
        403,
        "forbidden",
    );
    // Every FHIR read of patient data is audited like the native API's.
    let trail = admin
        .get("/api/v1/audit?action=patient.everything&limit=100")
        .await;
    assert!(trail.body.as_array().unwrap().len() >= 3, "{}", trail.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_walks_every_match_once_and_totals_agree_with_the_data() {
    let s = seeded().await;
    let reception = s.node.reception().await;
    let db = s.node.db();
    let patients: i64 = db
        .query_row("SELECT COUNT(*) FROM patients", [], |r| r.get(0))
        .unwrap();
    let mut url = "/fhir/R4/Patient?_count=7&_sort=family".to_owned();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let a = reception.get(&url).await;
        let b = ok(&a).clone();
        assert_eq!(b["total"], patients, "{b}");
        ids.extend(
            entries(&b, "Patient")
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        let next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next");
        match next {
            Some(l) => {
                let full = l["url"].as_str().unwrap();
                url = full[full.find("/fhir/R4").unwrap()..].to_owned();
            }
            None => break,
        }
    }
    assert_eq!(ids.len() as i64, patients);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "a patient on two pages"
    );
    assert_eq!(pages, (patients + 6) / 7);

    // A date search counts what the table holds in that span, and paging agrees.
    let today = carebridge_server::schedule::local_date(s.node.node.tz, s.node.node.clock.now());
    let from = today + chrono::Duration::days(1);
    let to = today + chrono::Duration::days(3);
    let (lo, hi) = carebridge_protocol::slots::date_bounds(
        s.node.node.tz,
        from,
        to - chrono::Duration::days(1),
    );
    let in_span: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM appointments WHERE start_at >= ?1 AND start_at < ?2",
            [lo.timestamp_millis(), hi.timestamp_millis()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(in_span > 0, "the demo books appointments in the next days");
    let a = reception
        .get(&format!(
            "/fhir/R4/Appointment?date=ge{from}&date=lt{to}&_count=0"
        ))
        .await;
    assert_eq!(ok(&a)["total"], in_span, "{}", a.body);
    assert!(
        entries(&a.body, "Appointment").is_empty(),
        "_count=0 gives the total alone"
    );
    // By the card number's identifier, and by the global id.
    let card = &s.node.patient(0).card_number;
    let by_card = reception
        .get(&format!("/fhir/R4/Patient?identifier={card}"))
        .await;
    assert_eq!(ok(&by_card)["total"], 1);
    let global = format!("{}@{}", s.patient, s.node.node.name());
    let by_global = reception
        .get(&format!(
            "/fhir/R4/Patient?identifier=https://carebridge.dev/fhir/sid/global-id|{}",
            global.replace('@', "%40")
        ))
        .await;
    assert_eq!(
        ok(&by_global)["entry"][0]["resource"]["id"],
        s.patient.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_operation_outcomes_with_fhirs_statuses() {
    let s = seeded().await;
    let d = &s.doctor;
    outcome(
        &d.get("/fhir/R4/Patient?colour=blue").await,
        400,
        "not-supported",
    );
    outcome(
        &d.get("/fhir/R4/Patient?birthdate=1980-13").await,
        400,
        "invalid",
    );
    outcome(
        &d.get("/fhir/R4/Appointment?date=ne2026").await,
        400,
        "invalid",
    );
    outcome(
        &d.get("/fhir/R4/Appointment?_sort=reason").await,
        400,
        "invalid",
    );
    outcome(&d.get("/fhir/R4/Slot").await, 400, "invalid");
    outcome(&d.get("/fhir/R4/Observation").await, 404, "not-supported");
    outcome(
        &d.get(&format!("/fhir/R4/Patient/{}", uuid::Uuid::new_v4()))
            .await,
        404,
        "not-found",
    );
    outcome(
        &d.get("/fhir/R4/Patient/not-a-uuid").await,
        404,
        "not-found",
    );
    outcome(&d.get("/fhir/R4/Patient?_format=xml").await, 400, "invalid");
    outcome(
        &d.call(Method::DELETE, "/fhir/R4/metadata", None, &[]).await,
        405,
        "not-supported",
    );
    let anonymous = Client {
        url: d.url.clone(),
        token: "nope".into(),
        http: d.http.clone(),
    };
    outcome(&anonymous.get("/fhir/R4/Patient").await, 401, "login");
    // The rest of the API keeps problem+json.
    assert!(d.get("/api/v1/nowhere").await.is_problem());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_search_parameter_the_capability_statement_lists_is_accepted() {
    let s = seeded().await;
    let admin = s.node.admin().await;
    let meta = s.doctor.get("/fhir/R4/metadata").await;
    let listed = ok(&meta)["rest"][0]["resource"].as_array().unwrap().clone();
    assert_eq!(listed.len(), SERVED.len());
    let doctor_id = s.node.doctor_id(0);
    for served in SERVED {
        let client = if served.resource_type == "AuditEvent" {
            &admin
        } else {
            &s.doctor
        };
        for p in served.params {
            let value = match (p.kind, p.name) {
                (_, "schedule") => {
                    format!("Schedule/{doctor_id}&start=ge2026-01-01&start=lt2026-01-08")
                }
                (_, "start") => {
                    format!("ge2026-01-01&start=lt2026-01-08&schedule=Schedule/{doctor_id}")
                }
                (ParamType::Reference, "target") => format!("DiagnosticReport/{}", s.report),
                (ParamType::Reference, "actor" | "practitioner" | "performer" | "agent") => {
                    format!("Practitioner/{doctor_id}")
                }
                (ParamType::Reference, _) => format!("Patient/{}", s.patient),
                (ParamType::Date, _) => "ge2026-01-01".into(),
                (ParamType::String, _) => "a".into(),
                (ParamType::Token, "_id") => s.patient.clone(),
                (ParamType::Token, "active") => "true".into(),
                (ParamType::Token, "status") if served.resource_type == "Appointment" => {
                    "booked".into()
                }
                (ParamType::Token, "status") if served.resource_type == "DiagnosticReport" => {
                    "final".into()
                }
                (ParamType::Token, _) => "x".into(),
            };
            let mut path = format!("/fhir/R4/{}?{}={value}", served.resource_type, p.name);
            if served.resource_type == "Slot" && !matches!(p.name, "schedule" | "start" | "_id") {
                path.push_str(&format!(
                    "&schedule=Schedule/{doctor_id}&start=ge2026-01-01&start=lt2026-01-08"
                ));
            }
            if served.resource_type == "Consent" && p.name != "patient" {
                path.push_str(&format!("&patient={}", s.patient));
            }
            if served.resource_type == "Provenance" && p.name == "_id" {
                path = format!("/fhir/R4/Provenance?_id={}-1", s.report);
            }
            let a = client.get(&path).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
        }
    }
}

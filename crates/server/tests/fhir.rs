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
    seed_studies(&node).await;
    Seeded {
        node,
        doctor,
        patient,
        report,
    }
}

/// A study of patient 0 that arrived for a doctor's order, and one that matched nobody (which
/// FHIR does not serve: an ImagingStudy needs its subject). Recorded as the node's follower of
/// the PACS records them; the PACS itself is `tests/imaging.rs`'s.
async fn seed_studies(node: &TestNode) {
    use carebridge_protocol::imaging::{
        ImagingOrderId, ImagingStudy, ImagingStudyId, Modality, NewImagingOrder, StudyMatch,
    };
    use carebridge_server::store::imaging::{self, PacsStudy};
    let patient = node.patient(0).id;
    let doctor: carebridge_protocol::PractitionerId = node.doctor_id(0).parse().unwrap();
    node.node
        .store
        .write(None, move |ctx| {
            let order = carebridge_server::imaging::place_order(
                ctx,
                ImagingOrderId::new(),
                &NewImagingOrder {
                    id: None,
                    patient_id: patient,
                    modality: Modality::CT,
                    procedure: "CT head".into(),
                    reason: "Headache".into(),
                    scheduled_at: ctx.now(),
                },
                doctor,
                "Dr. Test",
            )?;
            let study = |uid: &str, matched: bool| PacsStudy {
                study: ImagingStudy {
                    id: ImagingStudyId::new(),
                    study_uid: uid.into(),
                    patient_id: matched.then_some(patient),
                    order_id: matched.then_some(order.id),
                    ordered_by: None,
                    matched_by: if matched {
                        StudyMatch::Accession
                    } else {
                        StudyMatch::Unmatched
                    },
                    accession: if matched {
                        order.accession.clone()
                    } else {
                        String::new()
                    },
                    dicom_patient_id: "MRN00000001".into(),
                    dicom_issuer: "st-marys.example".into(),
                    dicom_patient_name: "Doe^Jane".into(),
                    modalities: vec!["CT".into(), "SR".into()],
                    description: "CT head".into(),
                    study_date: Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()),
                    series_count: 2,
                    instance_count: 41,
                    received_at: ctx.now(),
                    version: 1,
                    viewer_url: None,
                },
                pacs_id: format!("pacs-{uid}"),
                preview_instance: None,
            };
            imaging::record_study(ctx, &study("2.25.1001", true))?;
            imaging::record_study(ctx, &study("2.25.1002", false))?;
            Ok::<_, carebridge_server::store::StoreError>(())
        })
        .await
        .unwrap();
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
        ("studies", &s.doctor, format!("/fhir/R4/ImagingStudy?patient={p}")),
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

    // A grant of access to a doctor at another hospital, as the front desk's Consent search
    // serves it (crates/server/tests/access.rs serves one from two real nodes): emergency and
    // revoked, so that every optional part is present.
    let now = s.node.node.clock.now();
    let grant = carebridge_protocol::federation::access::IncomingAccess {
        id: uuid::Uuid::now_v7(),
        patient_id: serde_json::from_value(json!(p)).unwrap(),
        peer: "general.example".into(),
        organisation: "General Hospital".into(),
        practitioner_name: "Dr. Amara Mensah".into(),
        purpose: carebridge_protocol::federation::access::AccessPurpose::Emergency,
        scopes: vec![
            "patient/DiagnosticReport.rs".into(),
            "patient/Patient.r".into(),
        ],
        hours: 4,
        state: carebridge_protocol::federation::access::AccessState::Revoked,
        grant_id: Some(uuid::Uuid::now_v7()),
        approved_by: Some("emergency".into()),
        starts_at: Some(now),
        expires_at: Some(now + chrono::Duration::hours(4)),
        revoked_at: Some(now + chrono::Duration::hours(1)),
        created_at: now,
        version: 3,
    };
    let consent = carebridge_fhir::map::access_consent(&grant, "st-marys.example", now).unwrap();
    assert_eq!(consent.status.as_deref(), Some("inactive"));
    std::fs::write(
        dir.path().join("access-consent.json"),
        serde_json::to_vec_pretty(&carebridge_fhir::Resource::Consent(consent)).unwrap(),
    )
    .unwrap();

    let results = validate(dir.path());
    let failures: Vec<_> = results.iter().filter(|r| !r.4.is_empty()).collect();
    assert!(failures.is_empty(), "validation errors: {failures:#?}");
    assert!(
        results
            .iter()
            .filter(|r| r.0 == "access-consent.json")
            .count()
            >= 2,
        "both validators read the access Consent: {results:#?}"
    );
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
    let slots = format!(
        "/fhir/R4/Slot?schedule=Schedule/{}&start=ge2030-01-07&start=lt2030-01-08",
        s.node.doctor_id(0)
    );
    let searches = [
        ("Patient", "/fhir/R4/Patient"),
        ("Appointment", "/fhir/R4/Appointment"),
        ("DiagnosticReport", "/fhir/R4/DiagnosticReport"),
        ("Consent", &*format!("/fhir/R4/Consent?patient={p}")),
        (
            "ImagingStudy",
            &*format!("/fhir/R4/ImagingStudy?patient={p}"),
        ),
        ("Provenance", &*format!("/fhir/R4/Provenance?patient={p}")),
        ("AuditEvent", "/fhir/R4/AuditEvent"),
        ("Practitioner", "/fhir/R4/Practitioner"),
        ("PractitionerRole", "/fhir/R4/PractitionerRole"),
        ("Schedule", "/fhir/R4/Schedule"),
        ("Slot", &*slots),
    ];
    // (reception, doctor, admin) may search; a kiosk may search nothing.
    let allowed: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::from([
        ("Patient", (true, true, false)),
        ("Appointment", (true, true, false)),
        ("DiagnosticReport", (false, true, false)),
        // Doctors: consents to send reports; the front desk and admins: grants of access to
        // other hospitals' doctors (none here, so an empty Bundle).
        ("Consent", (true, true, true)),
        ("ImagingStudy", (false, true, false)),
        ("Provenance", (false, true, false)),
        ("AuditEvent", (false, false, true)),
        ("Practitioner", (true, true, true)),
        ("PractitionerRole", (true, true, true)),
        ("Schedule", (true, true, true)),
        ("Slot", (true, true, true)),
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
            if matches!(served.resource_type, "Consent" | "ImagingStudy") && p.name != "patient" {
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

/// Polls a bulk export's status URL as a client does, honouring `Retry-After`, until it
/// answers something other than 202 (within a deadline).
async fn finished(client: &Client, status_url: &str) -> Answer {
    let path = &status_url[status_url.find("/fhir/R4").unwrap()..];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let a = client.get(path).await;
        if a.status != 202 {
            return a;
        }
        assert!(
            a.headers.contains_key("x-progress"),
            "a running export says how far it is"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the export did not finish within 60 s"
        );
        let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(wait.min(1) * 200)).await;
    }
}

async fn kick_off(client: &Client, path: &str) -> Answer {
    client
        .call(Method::GET, path, None, &[("prefer", "respond-async")])
        .await
}

/// Downloads one output file and returns its lines.
async fn download(client: &Client, url: &str) -> Vec<Value> {
    let r = client
        .http
        .get(url)
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
    let text = r.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_export_writes_every_type_and_its_files_validate_line_by_line() {
    let s = seeded().await;
    let admin = s.node.admin().await;
    // Only admins, and only asynchronously.
    outcome(
        &kick_off(&s.doctor, "/fhir/R4/$export").await,
        403,
        "forbidden",
    );
    outcome(&admin.get("/fhir/R4/$export").await, 400, "invalid");
    outcome(
        &kick_off(&admin, "/fhir/R4/$export?_type=Slot").await,
        400,
        "invalid",
    );

    let started = kick_off(&admin, "/fhir/R4/$export").await;
    assert_eq!(started.status, 202, "{}", started.body);
    let status_url = started.headers["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    let done = finished(&admin, &status_url).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let manifest = &done.body;
    assert_eq!(manifest["requiresAccessToken"], true);
    assert!(manifest["transactionTime"].as_str().unwrap().ends_with('Z'));

    let db = s.node.db();
    let rows = |table: &str| -> i64 {
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let doctors: i64 = db
        .query_row("SELECT COUNT(*) FROM schedules", [], |r| r.get(0))
        .unwrap();
    let expected: BTreeMap<&str, i64> = BTreeMap::from([
        ("Patient", rows("patients")),
        ("Practitioner", rows("practitioners")),
        ("PractitionerRole", rows("practitioners")),
        ("Schedule", doctors),
        ("Appointment", rows("appointments")),
        ("DiagnosticReport", rows("reports")),
        ("Provenance", rows("report_revisions")),
        ("Consent", rows("consents")),
        (
            "ImagingStudy",
            db.query_row(
                "SELECT COUNT(*) FROM imaging_studies WHERE patient_id IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut got = BTreeMap::new();
    for o in manifest["output"].as_array().unwrap() {
        let t = o["type"].as_str().unwrap().to_owned();
        let lines = download(&admin, o["url"].as_str().unwrap()).await;
        assert_eq!(
            o["count"],
            lines.len() as i64,
            "{t}: manifest count and lines"
        );
        assert!(lines.iter().all(|l| l["resourceType"] == t.as_str()), "{t}");
        let ids: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), lines.len(), "{t}: a resource twice");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join(format!("{t}.ndjson")), text).unwrap();
        got.insert(t, lines.len() as i64);
    }
    let got: BTreeMap<&str, i64> = got.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, expected, "every row of every exported table, once");
    let results = validate(dir.path());
    assert_eq!(
        results.len() as i64,
        2 * expected.values().sum::<i64>(),
        "both validators read every line"
    );
    let failures: Vec<_> = results.iter().filter(|r| !r.4.is_empty()).collect();
    assert!(failures.is_empty(), "validation errors: {failures:#?}");

    // The export is audited with what it carried; its files are gone once it is deleted.
    let trail = admin.get("/api/v1/audit?action=fhir.export&limit=10").await;
    assert!(
        trail.body.as_array().unwrap().iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("Patient, Practitioner")),
        "{}",
        trail.body
    );
    let status_path = &status_url[status_url.find("/fhir/R4").unwrap()..];
    assert_eq!(
        admin
            .call(Method::DELETE, status_path, None, &[])
            .await
            .status,
        202
    );
    outcome(&admin.get(status_path).await, 404, "not-found");
    let file = manifest["output"][0]["url"].as_str().unwrap();
    let gone = admin.get(&file[file.find("/fhir/R4").unwrap()..]).await;
    outcome(&gone, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_export_since_is_inclusive_at_its_boundary_and_a_cancelled_export_is_gone() {
    let s = seeded().await;
    let admin = s.node.admin().await;
    // The patient changed last: their change time is the boundary.
    let reception = s.node.reception().await;
    let p = reception
        .get(&format!("/api/v1/patients/{}", s.patient))
        .await;
    let version = p.body["version"].to_string();
    let changed = reception
        .call(
            Method::PATCH,
            &format!("/api/v1/patients/{}", s.patient),
            Some(json!({"phone": "+31 20 555 0101"})),
            &[("if-match", &format!("\"{version}\""))],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let read = s
        .doctor
        .get(&format!("/fhir/R4/Patient/{}", s.patient))
        .await;
    let boundary = ok(&read)["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&boundary).unwrap();
    let later = (at + chrono::Duration::milliseconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let db = s.node.db();
    for (since, includes_patient) in [(&boundary, true), (&later, false)] {
        let q = since.replace('+', "%2B");
        let started = kick_off(
            &admin,
            &format!("/fhir/R4/$export?_type=Patient&_since={q}"),
        )
        .await;
        assert_eq!(started.status, 202, "{}", started.body);
        let url = started.headers["content-location"]
            .to_str()
            .unwrap()
            .to_owned();
        let done = finished(&admin, &url).await;
        let millis = chrono::DateTime::parse_from_rfc3339(since)
            .unwrap()
            .timestamp_millis();
        let in_db: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM patients WHERE updated_at >= ?1",
                [millis],
                |r| r.get(0),
            )
            .unwrap();
        let outputs = done.body["output"].as_array().unwrap();
        let lines = match outputs.first() {
            Some(o) => download(&admin, o["url"].as_str().unwrap()).await,
            None => Vec::new(),
        };
        assert_eq!(lines.len() as i64, in_db, "_since={since}");
        assert_eq!(
            lines.iter().any(|l| l["id"] == s.patient.as_str()),
            includes_patient,
            "_since={since}"
        );
    }
    // Cancelled: the status URL is 404 from then on.
    let started = kick_off(&admin, "/fhir/R4/$export").await;
    let url = started.headers["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    let path = &url[url.find("/fhir/R4").unwrap()..];
    assert_eq!(
        admin.call(Method::DELETE, path, None, &[]).await.status,
        202
    );
    outcome(&admin.get(path).await, 404, "not-found");
    outcome(
        &admin.call(Method::DELETE, path, None, &[]).await,
        404,
        "not-found",
    );
}

/// A node as `init` leaves it (its first admin, no records), served in-process.
struct EmptyNode {
    node: std::sync::Arc<carebridge_server::node::Node>,
    admin: Client,
    _dir: tempfile::TempDir,
}

async fn fresh_node() -> EmptyNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::init_dir(dir.path());
    cfg.max_body_bytes = 64 << 20;
    let node = carebridge_server::node::Node::open(
        cfg,
        std::sync::Arc::new(carebridge_server::clock::SystemClock),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let n = node.clone();
    tokio::spawn(async move { carebridge_server::serve::serve(n, listener).await });
    let admin = Client::sign_in(&url, "admin", carebridge_server::demo::ADMIN_PASSWORD).await;
    EmptyNode {
        node,
        admin,
        _dir: dir,
    }
}

fn transaction(kind: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": kind,
        "entry": entries.into_iter().map(|r| {
            let full = r.get("fullUrl").cloned();
            let resource = r.get("resource").cloned().unwrap_or(r);
            let mut e = json!({"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}});
            if let Some(f) = full { e["fullUrl"] = f; }
            e
        }).collect::<Vec<_>>()
    })
}

async fn post_bundle(client: &Client, bundle: &Value) -> Answer {
    client
        .call(
            Method::POST,
            "/fhir/R4",
            Some(bundle.clone()),
            &[("content-type", "application/fhir+json")],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_commits_all_or_nothing_and_what_it_creates_is_audited_and_streamed() {
    let node = TestNode::start().await;
    let admin = node.admin().await;
    let doctor = node.doctor_id(0);
    let start = "2031-03-03T09:00:00.000Z";
    let patient = json!({"fullUrl": "urn:uuid:5b1e8f0a-4f7e-4c1e-9a65-0d3f9c1b2a01", "resource": {
        "resourceType": "Patient", "name": [{"family": "Vermeulen", "given": ["Anouk"]}],
        "birthDate": "1984-02-29", "telecom": [{"system": "phone", "value": "+31 6 1234 5678"}]}});
    let appointment = json!({"resourceType": "Appointment", "status": "booked",
        "start": start, "end": "2031-03-03T09:15:00.000Z", "description": "Imported follow-up",
        "participant": [
            {"actor": {"reference": "urn:uuid:5b1e8f0a-4f7e-4c1e-9a65-0d3f9c1b2a01"}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{doctor}")}, "status": "accepted"}]});
    let draft_report = json!({"resourceType": "DiagnosticReport", "status": "preliminary",
        "code": {"text": "Draft"}, "subject": {"reference": "urn:uuid:5b1e8f0a-4f7e-4c1e-9a65-0d3f9c1b2a01"},
        "performer": [{"reference": format!("Practitioner/{doctor}")}]});

    // One entry breaks a rule: nothing at all is stored.
    let before = node.table_counts();
    let refused = post_bundle(
        &admin,
        &transaction(
            "transaction",
            vec![patient.clone(), appointment.clone(), draft_report],
        ),
    )
    .await;
    outcome(&refused, 422, "business-rule");
    assert_eq!(refused.body["issue"][0]["expression"][0], "Bundle.entry[2]");
    let mut after = node.table_counts();
    // The refusal itself is audited, once.
    assert_eq!(after.remove("audit"), before.get("audit").map(|n| n + 1));
    let mut before = before;
    before.remove("audit");
    assert_eq!(after, before, "a refused transaction stores nothing");

    // Without it, everything, in one go; reception hears of the patient and the booking.
    let reception = node.reception().await;
    let mut events = reception.events(None).await;
    let done = post_bundle(
        &admin,
        &transaction("transaction", vec![patient.clone(), appointment.clone()]),
    )
    .await;
    let body = ok(&done);
    assert_eq!(body["type"], "transaction-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created"]);
    let patient_at = body["entry"][0]["response"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let appt_at = body["entry"][1]["response"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = reception.get(&format!("/fhir/R4/{appt_at}")).await;
    assert_eq!(
        ok(&booked)["participant"][0]["actor"]["reference"],
        patient_at.as_str(),
        "the urn:uuid reference was resolved"
    );
    let mut heard = BTreeSet::new();
    while heard.len() < 2 {
        let e = events
            .next(std::time::Duration::from_secs(10))
            .await
            .expect("a live event for each created record");
        heard.insert(e.event.clone());
    }
    assert!(
        heard.contains("patient.created") && heard.contains("appointment.created"),
        "{heard:?}"
    );
    let trail = admin
        .get("/api/v1/audit?action=patient.create&limit=100")
        .await;
    assert!(
        trail.body.as_array().unwrap().iter().any(|e| e["entity"]
            == format!("patient/{}", patient_at.trim_start_matches("Patient/"))
            && e["detail"] == "imported (FHIR)"),
        "{}",
        trail.body
    );

    // Again: matched, not created twice.
    let again = post_bundle(
        &admin,
        &transaction("transaction", vec![patient.clone(), appointment.clone()]),
    )
    .await;
    let statuses: Vec<&str> = ok(&again)["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["200 OK", "200 OK"]);

    // A double booking is refused, as at the desk; in a batch the other entries stand.
    let other = json!({"resourceType": "Patient", "name": [{"family": "Bakker", "given": ["Sem"]}], "birthDate": "1990-01-01"});
    let clash = json!({"resourceType": "Appointment", "status": "booked", "start": start, "end": "2031-03-03T09:15:00.000Z",
        "participant": [{"actor": {"reference": patient_at}, "status": "accepted"},
                        {"actor": {"reference": format!("Practitioner/{doctor}")}, "status": "accepted"}],
        "description": "Second booking at the same time"});
    let mut clash_other_patient = clash.clone();
    clash_other_patient["participant"][0]["actor"]["reference"] =
        json!("urn:uuid:0d1b7e0e-6a3c-4a41-bb6b-5e8d3a2c1f00");
    let other_entry =
        json!({"fullUrl": "urn:uuid:0d1b7e0e-6a3c-4a41-bb6b-5e8d3a2c1f00", "resource": other});
    let before = node.table_counts();
    let refused = post_bundle(
        &admin,
        &transaction(
            "transaction",
            vec![other_entry.clone(), clash_other_patient.clone()],
        ),
    )
    .await;
    outcome(&refused, 409, "conflict");
    let mut after = node.table_counts();
    after.remove("audit");
    let mut before = before;
    before.remove("audit");
    assert_eq!(after, before, "a refused transaction stores nothing");
    let batch = post_bundle(
        &admin,
        &transaction("batch", vec![other_entry, clash_other_patient]),
    )
    .await;
    let b = ok(&batch);
    assert_eq!(b["type"], "batch-response");
    assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
    assert!(
        b["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("409"),
        "{b}"
    );
    assert_eq!(
        b["entry"][1]["response"]["outcome"]["issue"][0]["code"],
        "conflict"
    );
    // Only admins import.
    outcome(
        &post_bundle(&node.doctor(0).await, &transaction("batch", vec![])).await,
        403,
        "forbidden",
    );
}

/// Normalises what an import does not carry over: when a record last changed and its version
/// (it is new on the other node), and a report's signing (the importing node signs it afresh,
/// as revision 1).
fn comparable(mut r: Value) -> Value {
    let o = r.as_object_mut().unwrap();
    o.remove("meta");
    if o["resourceType"] == "DiagnosticReport" {
        o.remove("issued");
        o.remove("extension");
    }
    r
}

async fn export_all(admin: &Client) -> BTreeMap<String, Vec<Value>> {
    let started = kick_off(admin, "/fhir/R4/$export").await;
    assert_eq!(started.status, 202, "{}", started.body);
    let url = started.headers["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    let done = finished(admin, &url).await;
    let mut out = BTreeMap::new();
    for o in done.body["output"].as_array().unwrap() {
        out.insert(
            o["type"].as_str().unwrap().to_owned(),
            download(admin, o["url"].as_str().unwrap()).await,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_export_round_trips_field_by_field() {
    let s = seeded().await;
    let admin_a = s.node.admin().await;
    let first = export_all(&admin_a).await;
    let b = fresh_node().await;
    let admin_b = &b.admin;
    // The records the import takes, as final documents: drafts stay behind.
    let mut entries = Vec::new();
    for t in [
        "Practitioner",
        "PractitionerRole",
        "Schedule",
        "Patient",
        "Appointment",
        "DiagnosticReport",
    ] {
        for r in first.get(t).into_iter().flatten() {
            if t == "DiagnosticReport" && r["status"] == "preliminary" {
                continue;
            }
            entries.push(r.clone());
        }
    }
    let answer = post_bundle(admin_b, &transaction("transaction", entries.clone())).await;
    let body = ok(&answer);
    assert_eq!(body["entry"].as_array().unwrap().len(), entries.len());
    let second = export_all(admin_b).await;
    let by_id = |list: Option<&Vec<Value>>| -> BTreeMap<String, Value> {
        list.into_iter()
            .flatten()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), comparable(r.clone())))
            .collect()
    };
    let mut compared = 0;
    for t in [
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Schedule",
        "Appointment",
        "DiagnosticReport",
    ] {
        let a = by_id(first.get(t));
        let b_now = by_id(second.get(t));
        for (id, ra) in &a {
            if t == "DiagnosticReport" && ra["status"] == "preliminary" {
                continue;
            }
            match b_now.get(id) {
                Some(rb) => {
                    // Kiosk devices do not travel: what a kiosk booked is booked by whoever
                    // imports it.
                    let by = |r: &Value| {
                        r["extension"][0]["valueString"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned()
                    };
                    let (ra, rb) = if t == "Appointment" && by(ra).starts_with("kiosk:") {
                        assert!(by(rb).starts_with("staff:"), "{rb}");
                        let strip = |r: &Value| {
                            let mut r = r.clone();
                            r.as_object_mut().unwrap().remove("extension");
                            r
                        };
                        (strip(ra), strip(rb))
                    } else {
                        (ra.clone(), rb.clone())
                    };
                    assert_eq!(rb, ra, "{t}/{id} differs after the round trip");
                    compared += 1;
                }
                // A record the fresh node already had a match for (its own admin, say) keeps
                // that record's id.
                None => assert!(
                    body["entry"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["response"]["status"] == "200 OK"),
                    "{t}/{id} is missing after the import"
                ),
            }
        }
    }
    assert!(compared > 20, "only {compared} records compared");
    drop(b.node);
}

#[test]
fn the_import_command_applies_each_entry_alone_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::init_dir(dir.path());
    let doctor = uuid::Uuid::new_v4();
    let patient = uuid::Uuid::new_v4();
    let appt = |start: &str, end: &str| {
        json!({"resourceType": "Appointment", "status": "booked", "start": start, "end": end,
            "participant": [{"actor": {"reference": format!("Patient/{patient}")}}, {"actor": {"reference": format!("Practitioner/{doctor}")}}]})
        .to_string()
    };
    let lines = [
        json!({"resourceType": "Patient", "id": patient.to_string(), "name": [{"family": "De Wit", "given": ["Lotte"]}], "birthDate": "1979-11-30"}).to_string(),
        "this line is not JSON".to_owned(),
        appt("2031-04-01T08:00:00.000Z", "2031-04-01T08:15:00.000Z"),
        appt("2031-04-01T08:05:00.000Z", "2031-04-01T08:20:00.000Z"),
        json!({"resourceType": "Patient", "name": [{"family": "De Wit", "given": ["Lotte"]}], "birthDate": "1979-11-30"}).to_string(),
        json!({"resourceType": "Practitioner", "id": doctor.to_string(), "name": [{"text": "Dr. Noor Hendriks"}]}).to_string(),
        json!({"resourceType": "PractitionerRole", "practitioner": {"reference": format!("Practitioner/{doctor}")},
            "code": [{"coding": [{"system": "https://carebridge.dev/fhir/CodeSystem/role", "code": "doctor"}]}]}).to_string(),
        // Staff without a stated role are refused: an account never gets a role by default.
        json!({"resourceType": "Practitioner", "name": [{"text": "Sam Unknown"}]}).to_string(),
    ];
    let file = dir.path().join("migration.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carebridge-node"))
        .args(["import", "--data-dir"])
        .arg(dir.path())
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refusals make the command fail: {stdout}"
    );
    assert!(stderr.contains("imported 7/7"), "progress: {stderr}");
    assert!(
        stdout.contains("refused entry 7: Practitioner: give its PractitionerRole"),
        "{stdout}"
    );
    assert!(
        stdout.contains("8 entries: 3 created, 2 matched as duplicates, 3 refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused entry 1: line 2: not a FHIR resource"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused entry 3:") && stdout.contains("double booking"),
        "{stdout}"
    );
    // What was created is there, once; the double booking is not.
    let db = carebridge_server::store::open_connection(
        &cfg.db_path(),
        &carebridge_server::node::load_key(&cfg).unwrap(),
        true,
    )
    .unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM patients"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM appointments"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM practitioners WHERE role = 'doctor'"),
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM practitioners WHERE display_name = 'Sam Unknown'"),
        0
    );
}

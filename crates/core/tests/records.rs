//! Records in FHIR through the core, against a real node process: an admin's import in batches
//! (a reference to an entry of an earlier batch by its `urn:uuid:` still lands, progress moves
//! to the end, a broken entry is refused alone), and a doctor's patient record saved whole.

mod support;

use carebridge_core::CoreError;
use carebridge_protocol::ProblemType;
use carebridge_testkit::NodeProcess;
use serde_json::{Value, json};
use support::{Client, Hospital, slot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_goes_in_batches_and_a_record_is_saved_whole() {
    let h = Hospital::seeded().await;
    let node = NodeProcess::spawn(h.dir.path(), "127.0.0.1:0").await;
    let profiles = tempfile::tempdir().unwrap();
    let admin = Client::staff(
        profiles.path(),
        &node.url,
        "admin",
        carebridge_server::demo::ADMIN_PASSWORD,
    )
    .await;

    // 130 patients (more than one batch), an appointment for the first, named by its urn:uuid
    // and so sent in the second batch, and an entry without a resource.
    let mut entries: Vec<Value> = (0..130)
        .map(|i| {
            json!({"fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{i:012}"), "resource": {
                "resourceType": "Patient", "name": [{"family": format!("Batchfamily{i}"), "given": ["Import"]}],
                "birthDate": "1970-01-01"}})
        })
        .collect();
    entries.insert(0, json!({"resource": {"resourceType": "Appointment", "status": "booked",
        "start": slot(10).to_rfc3339(), "end": (slot(10) + chrono::Duration::minutes(5)).to_rfc3339(),
        "description": "Imported visit",
        "participant": [{"actor": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}},
                        {"actor": {"reference": format!("Practitioner/{}", h.creds.bench.practitioner_id)}}]}}));
    entries.push(json!({"fullUrl": "urn:uuid:broken"}));
    // 60 receptionists and their roles: 120 staff entries, more than a batch, which go to the
    // node together so that each account gets the role its PractitionerRole states.
    for i in 0..60 {
        let url = format!("urn:uuid:00000000-0000-4000-9000-{i:012}");
        entries.push(json!({"fullUrl": url, "resource": {"resourceType": "Practitioner", "name": [{"text": format!("Desk Person {i}")}]}}));
        entries.push(json!({"resource": {"resourceType": "PractitionerRole", "practitioner": {"reference": url},
            "code": [{"coding": [{"system": "https://carebridge.dev/fhir/CodeSystem/role", "code": "reception"}]}]}}));
    }
    let file =
        json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string();
    let mut seen = Vec::new();
    let summary = admin
        .engine
        .import_records(&file, |done, total| seen.push((done, total)))
        .await
        .unwrap();
    assert_eq!(summary.entries, 252);
    // The roles are matched to the accounts their practitioners became.
    assert_eq!((summary.created, summary.matched), (191, 60), "{summary:?}");
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    assert_eq!(summary.refused[0].position, 132);
    assert!(
        seen.len() >= 3,
        "progress once at the start and after each batch: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last(), Some(&(252, 252)));

    // The accounts have the roles their file gave; the appointment is the first patient's.
    let reception = support::reception_token(&node.url).await;
    let get = |path: String| {
        let (url, token) = (format!("{}{path}", node.url), reception.clone());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let accounts = get("/api/v1/practitioners".into()).await;
    let desk = accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["display_name"]
                .as_str()
                .unwrap_or("")
                .starts_with("Desk Person")
        })
        .collect::<Vec<_>>();
    assert_eq!(desk.len(), 60);
    assert!(desk.iter().all(|p| p["role"] == "reception"), "{desk:?}");
    let found = get("/fhir/R4/Patient?family=Batchfamily0&_count=5".into()).await;
    let first = found["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = get(format!("/fhir/R4/Appointment?patient={first}")).await;
    assert_eq!(booked["total"], 1, "{booked}");

    // Only admins import: the node's OperationOutcome reaches the app as a refusal it words.
    let doctor = Client::staff(
        profiles.path(),
        &node.url,
        h.bench_doctor(),
        carebridge_server::demo::DOCTOR_PASSWORD,
    )
    .await;
    match doctor.engine.import_records(&file, |_, _| {}).await {
        Err(CoreError::Rejected(p)) => assert_eq!(p.code, ProblemType::Forbidden, "{p:?}"),
        other => panic!("a doctor imported: {other:?}"),
    }

    // A doctor saves the patient's record: one Bundle with the patient, whole, in a new file.
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("record.fhir.json");
    let patient = first.parse().unwrap();
    let bytes = doctor
        .engine
        .export_patient_record(patient, &path)
        .await
        .unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(saved["resourceType"], "Bundle");
    assert_eq!(saved["entry"][0]["resource"]["id"], first.as_str());
    assert!(
        saved["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["resourceType"] == "Appointment")
    );
    // Never over a file that exists.
    assert!(
        doctor
            .engine
            .export_patient_record(patient, &path)
            .await
            .is_err()
    );
    assert_eq!(std::fs::read(&path).unwrap().len() as u64, bytes);
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no partial file left behind");
}

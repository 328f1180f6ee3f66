//! Medical reports over real HTTP: the draft → final → amended → entered-in-error lifecycle,
//! signatures that verify with the node's public key, immutability, who may see what, live
//! events for doctors only, and the PDF read back with pdftotext.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::Duration;

use carebridge_protocol::report::{Report, ReportRevision};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Client, TestNode};

fn content(title: &str, conclusion: &str) -> Value {
    json!({"title": title, "findings": "Lungs clear. No effusion.", "conclusion": conclusion, "codes": ["J18.9", "Z01.89"]})
}

#[track_caller]
fn assert_status(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    if !code.is_empty() {
        assert_eq!(a.code(), code, "{}", a.body);
    }
}

fn version(a: &Answer) -> String {
    format!("\"{}\"", a.body["version"])
}

async fn put_draft(c: &Client, id: &str, v: &str, body: Value) -> Answer {
    c.call(
        Method::PUT,
        &format!("/api/v1/reports/{id}/draft"),
        Some(body),
        &[("if-match", v)],
    )
    .await
}

async fn act(c: &Client, id: &str, action: &str, v: &str, body: Option<Value>) -> Answer {
    c.call(
        Method::POST,
        &format!("/api/v1/reports/{id}/{action}"),
        Some(body.unwrap_or(json!({}))),
        &[("if-match", v)],
    )
    .await
}

fn verifies(node: &TestNode, report: &Report) -> bool {
    report.signature_verifies(&node.node.signing_key.verifying_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_goes_from_draft_to_signed_revisions_and_none_is_ever_lost() {
    let node = TestNode::start().await;
    let doctor = node.doctor(0).await;
    let colleague = node.doctor(1).await;
    let patient = node.patient(0).id.to_string();

    let created = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content("Chest X-ray", "Draft")}),
        )
        .await;
    assert_status(&created, 201, "");
    assert_eq!(created.body["status"], "preliminary");
    assert_eq!(created.body["revision"], 0);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // A draft is one record that saves replace; each save needs the version last read.
    let no_if_match = doctor
        .call(
            Method::PUT,
            &format!("/api/v1/reports/{id}/draft"),
            Some(content("Chest X-ray", "x")),
            &[],
        )
        .await;
    assert_status(&no_if_match, 428, "precondition-required");
    let saved = put_draft(
        &doctor,
        &id,
        &version(&created),
        content("Chest X-ray", "Second"),
    )
    .await;
    assert_status(&saved, 200, "");
    assert_eq!(saved.body["content"]["conclusion"], "Second");
    let stale = put_draft(
        &doctor,
        &id,
        &version(&created),
        content("Chest X-ray", "Lost?"),
    )
    .await;
    assert_status(&stale, 412, "precondition-failed");
    let by_colleague = put_draft(&colleague, &id, &version(&saved), content("Mine", "x")).await;
    assert_status(&by_colleague, 403, "forbidden");
    let early_amend = act(
        &doctor,
        &id,
        "amend",
        &version(&saved),
        Some(content("A", "B")),
    )
    .await;
    assert_status(&early_amend, 409, "invalid-transition");

    let fin = act(&doctor, &id, "finalise", &version(&saved), None).await;
    assert_status(&fin, 200, "");
    let fin_report: Report = serde_json::from_value(fin.body.clone()).unwrap();
    assert_eq!(fin.body["status"], "final");
    assert_eq!(fin_report.revision, 1);
    assert_eq!(fin_report.content.conclusion, "Second");
    assert!(
        verifies(&node, &fin_report),
        "the signature verifies with the node's key"
    );
    let mut forged = fin_report.clone();
    forged.content.conclusion = "Something else".into();
    assert!(!verifies(&node, &forged), "and not for other content");

    // Final is immutable: saving refuses and changes nothing.
    let edit = put_draft(
        &doctor,
        &id,
        &version(&fin),
        content("Chest X-ray", "Edited"),
    )
    .await;
    assert_status(&edit, 409, "invalid-transition");
    let again = doctor.get(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(again.body["content"]["conclusion"], "Second");
    assert_eq!(again.body["version"], fin.body["version"]);

    // Any doctor may amend; the amendment is signed for them.
    let amended = act(
        &colleague,
        &id,
        "amend",
        &version(&fin),
        Some(content("Chest X-ray", "Amended: small effusion")),
    )
    .await;
    assert_status(&amended, 200, "");
    let amended_report: Report = serde_json::from_value(amended.body.clone()).unwrap();
    assert_eq!(amended.body["status"], "amended");
    assert_eq!(amended_report.revision, 2);
    assert_eq!(amended_report.author_id, node.creds.doctors[1].id);
    assert!(verifies(&node, &amended_report));

    let revisions = doctor.get(&format!("/api/v1/reports/{id}/revisions")).await;
    let revisions: Vec<ReportRevision> = serde_json::from_value(revisions.body).unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(
        revisions[0].content.conclusion, "Second",
        "revision 1 kept as signed"
    );
    assert_eq!(revisions[0].signature, fin_report.signature.unwrap());
    assert_eq!(revisions[1].content.conclusion, "Amended: small effusion");

    let no_reason = act(
        &doctor,
        &id,
        "entered-in-error",
        &version(&amended),
        Some(json!({"reason": " "})),
    )
    .await;
    assert_status(&no_reason, 422, "validation");
    let eie = act(
        &doctor,
        &id,
        "entered-in-error",
        &version(&amended),
        Some(json!({"reason": "Wrong patient"})),
    )
    .await;
    assert_status(&eie, 200, "");
    assert_eq!(eie.body["status"], "entered-in-error");
    assert_eq!(eie.body["error_reason"], "Wrong patient");
    let after = act(
        &doctor,
        &id,
        "amend",
        &version(&eie),
        Some(content("A", "B")),
    )
    .await;
    assert_status(&after, 409, "invalid-transition");
    let still = doctor.get(&format!("/api/v1/reports/{id}/revisions")).await;
    assert_eq!(
        still.body.as_array().unwrap().len(),
        2,
        "revisions stay readable"
    );

    // Beneath the API, the database itself refuses to change a signed revision.
    let db = carebridge_server::store::open_connection(
        &node.node.config.db_path(),
        &carebridge_server::node::load_key(&node.node.config).unwrap(),
        false,
    )
    .unwrap();
    let tampered = db.execute("UPDATE report_revisions SET conclusion = 'forged'", []);
    assert!(tampered.is_err(), "a trigger refuses it");
    let rewritten = db.execute(
        "UPDATE reports SET conclusion = 'forged' WHERE id = ?1",
        [&id],
    );
    assert!(
        rewritten.is_err(),
        "a signed report's text changes only by amendment"
    );
    let audit = node.admin().await.get("/api/v1/audit?limit=1000").await;
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity"] == format!("report/{}", eie.body["id"].as_str().unwrap()))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "report.create",
        "report.save-draft",
        "report.finalise",
        "report.amend",
        "report.entered-in-error",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_refused_and_store_nothing_and_only_doctors_read_them() {
    let node = TestNode::start().await;
    let doctor = node.doctor(0).await;
    let reception = node.reception().await;
    let admin = node.admin().await;
    let patient = node.patient(0).id.to_string();

    for (body, field) in [
        (
            json!({"patient_id": patient, "content": {"title": "  "}}),
            "content.title",
        ),
        (
            json!({"patient_id": patient, "content": {"title": "T", "codes": [""]}}),
            "content.codes",
        ),
        (
            json!({"patient_id": "0193a1b2-0000-7000-8000-000000000000", "content": {"title": "T"}}),
            "patient_id",
        ),
    ] {
        let a = doctor.post("/api/v1/reports", body).await;
        assert_status(&a, 422, "validation");
        assert_eq!(a.body["errors"][0]["field"], field, "{}", a.body);
    }
    let list = doctor.get("/api/v1/reports").await;
    assert_eq!(list.body.as_array().unwrap().len(), 0, "nothing was stored");

    let created = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content("Note", "x")}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    for c in [&reception, &admin] {
        assert_status(
            &c.get(&format!("/api/v1/reports/{id}")).await,
            403,
            "forbidden",
        );
        assert_status(&c.get("/api/v1/reports").await, 403, "forbidden");
        assert_status(
            &c.post(
                "/api/v1/reports",
                json!({"patient_id": patient, "content": content("T", "x")}),
            )
            .await,
            403,
            "forbidden",
        );
    }
    let dup = doctor
        .post(
            "/api/v1/reports",
            json!({"id": id, "patient_id": patient, "content": content("Again", "x")}),
        )
        .await;
    assert_status(&dup, 409, "conflict");
    let listed = doctor
        .get(&format!("/api/v1/reports?patient_id={patient}"))
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctors_see_reports_live_and_reception_does_not() {
    let node = TestNode::start().await;
    let doctor = node.doctor(0).await;
    let colleague = node.doctor(1).await;
    let reception = node.reception().await;
    let mut colleague_stream = colleague.events(None).await;
    let mut reception_stream = reception.events(None).await;
    let patient = node.patient(0).id.to_string();

    let created = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": patient, "content": content("Live", "x")}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let fin = act(&doctor, &id, "finalise", &version(&created), None).await;
    assert_status(&fin, 200, "");
    let e = colleague_stream
        .wait_for(Duration::from_secs(10), |e| e.event == "report.updated")
        .await;
    assert_eq!(e.data["id"], id.as_str());
    assert_eq!(e.data["status"], "final");

    // Something reception does see, made after the report: it must arrive with nothing of
    // the report before it.
    let registered = reception
        .post(
            "/api/v1/patients",
            json!({"family_name": "Marker", "given_name": "Live", "birth_date": "1990-01-01"}),
        )
        .await;
    assert_status(&registered, 201, "");
    let first = reception_stream
        .wait_for(Duration::from_secs(10), |e| {
            e.event.starts_with("report.") || e.event == "patient.created"
        })
        .await;
    assert_eq!(
        first.event, "patient.created",
        "reception never receives a report"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_prints_as_a_pdf_with_who_what_and_the_signature() {
    let node = TestNode::start_with(|c| c.organisation = Some("St Mary's Hospital".into())).await;
    let doctor = node.doctor(0).await;
    let card = node.patient(0).clone();
    let created = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": card.id, "content": {
                "title": "Échographie abdominale",
                "findings": "Liver normal in size. ".repeat(200),
                "conclusion": "No abnormality détectée.",
                "codes": ["R10.4"]}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let draft_pdf = pdf_text(&doctor, &id, "").await;
    assert!(
        draft_pdf.contains("Preliminary (draft, not signed)"),
        "{draft_pdf}"
    );

    let fin = act(&doctor, &id, "finalise", &version(&created), None).await;
    let report: Report = serde_json::from_value(fin.body.clone()).unwrap();
    let text = pdf_text(&doctor, &id, "").await;
    let fingerprint = report.signature.as_ref().unwrap().fingerprint();
    for expected in [
        "St Mary's Hospital",
        &card.name,
        &card.birth_date.to_string(),
        &report.author_name,
        "Échographie abdominale",
        "No abnormality détectée.",
        "Status: Final · version 1 of 1",
        &fingerprint,
        "R10.4",
        "page 2 of",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the PDF:\n{text}"
        );
    }

    let amended = act(
        &doctor,
        &id,
        "amend",
        &version(&fin),
        Some(json!({"title": "Échographie abdominale", "conclusion": "Revised."})),
    )
    .await;
    assert_status(&amended, 200, "");
    let first = pdf_text(&doctor, &id, "?revision=1").await;
    assert!(
        first.contains("version 1 of 2") && first.contains("No abnormality"),
        "{first}"
    );
    assert!(first.contains("SUPERSEDED: version 2"), "{first}");
    let now = pdf_text(&doctor, &id, "").await;
    assert!(
        now.contains("Status: Amended · version 2 of 2") && now.contains("Revised."),
        "{now}"
    );
    let missing = doctor
        .get(&format!("/api/v1/reports/{id}/pdf?revision=9"))
        .await;
    assert_status(&missing, 404, "not-found");
    let reception = node.reception().await;
    assert_status(
        &reception.get(&format!("/api/v1/reports/{id}/pdf")).await,
        403,
        "forbidden",
    );
    node.stop().await;
}

/// Fetches a report's PDF and returns its text as pdftotext reads it.
async fn pdf_text(c: &Client, id: &str, query: &str) -> String {
    let r = c
        .http
        .get(format!("{}/api/v1/reports/{id}/pdf{query}", c.url))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; `make deps` installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

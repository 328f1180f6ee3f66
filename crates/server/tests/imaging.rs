//! Imaging against a real Orthanc (Debian's `orthanc`, started here on its own loopback ports
//! with its worklist plugin and a hint script) and dcmtk playing the modality: an order on the
//! worklist that `findscu` reads, a DICOM file made here (ImageMagick → `img2dcm` →
//! `dcmodify`) and sent with `storescu`, the study arriving live for its doctor, its preview
//! through the node, the reconciliation list, and a node that was down while a study came.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::imaging::StudyMatch;
use carebridge_server::clock::SystemClock;
use carebridge_server::config::ImagingConfig;
use carebridge_server::node::Node;
use carebridge_server::store::imaging as store;
use carebridge_testkit::eventually;
use carebridge_testkit::free_port;
use carebridge_testkit::pacs::{
    HINT_TOKEN, ORTHANC_PASSWORD, ORTHANC_USER, Pacs, STABLE_AGE, answered, dicom_file,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, TestNode};

/// What the node's `[imaging]` section says for this Orthanc.
fn imaging_config(pacs: &Pacs, poll_seconds: u32) -> ImagingConfig {
    ImagingConfig {
        orthanc_url: pacs.url(),
        username: ORTHANC_USER.into(),
        password: ORTHANC_PASSWORD.into(),
        worklist_dir: Some(pacs.worklists()),
        hint_token: Some(HINT_TOKEN.into()),
        poll_seconds,
        viewer_url: Some(format!(
            "{}/app/explorer.html#study?uuid={{pacs_id}}",
            pacs.url()
        )),
    }
}

async fn order(doctor: &Client, patient: &str) -> Value {
    let r = doctor
        .post(
            "/api/v1/imaging/orders",
            json!({
                "patient_id": patient,
                "modality": "CT",
                "procedure": "CT head without contrast",
                "reason": "Headache after a fall",
                "scheduled_at": "2026-12-07T09:30:00Z",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// Waits until the node has read Orthanc's feed to its end.
async fn caught_up(node: &Arc<Node>, pacs: &Pacs) {
    let last = pacs.last_change().await;
    let source = pacs.url();
    eventually(
        "the node read the PACS's feed to its end",
        Duration::from_secs(20),
        || {
            let (node, source) = (node.clone(), source.clone());
            async move {
                node.store
                    .read(move |tx| store::feed_position(tx, &source))
                    .await
                    .unwrap()
                    >= last
            }
        },
    )
    .await;
}

fn studies_in(node: &TestNode) -> i64 {
    node.db()
        .query_row("SELECT count(*) FROM imaging_studies", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_study_arrives_live_for_its_doctor_with_its_preview() {
    // An hour between polls: what brings the study within seconds is Orthanc's hint.
    let mut pacs = Pacs::new();
    let node = TestNode::start_with(|c| c.imaging = Some(imaging_config(&pacs, 3600))).await;
    pacs.start(&node.url, HINT_TOKEN).await;
    let doctor = node.doctor(0).await;
    // Patient 0 has the demo's order; this one has none yet.
    let patient = node.patient(2).clone();
    let mut live = doctor.events(None).await;

    let order = order(&doctor, &patient.id.to_string()).await;
    let accession = order["accession"].as_str().unwrap().to_owned();
    assert!(accession.len() <= 16, "{accession}");
    assert_eq!(order["status"], "scheduled");
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", patient.id))
        .await;
    let mrn = imaging.body["mrn"].as_str().unwrap().to_owned();
    assert!(mrn.len() <= 64);

    // The modality reads the worklist: the patient's number, the issuer and the accession.
    let found = pacs.find_worklist(&accession).await;
    assert_eq!(answered(&found, "(0008,0050)"), accession, "{found}");
    assert_eq!(answered(&found, "(0010,0020)"), mrn);
    assert_eq!(answered(&found, "(0010,0021)"), "st-marys.example");
    let study_uid = answered(&found, "(0020,000d)");
    let (family, given) = patient
        .name
        .rsplit_once(' ')
        .map_or((patient.name.as_str(), ""), |(g, f)| (f, g));
    let pn = answered(&found, "(0010,0010)");
    assert!(
        pn.contains(family) && pn.contains(given),
        "{pn} for {}",
        patient.name
    );
    assert_eq!(answered(&found, "(0008,0060)"), "CT");

    // It scans and sends what the worklist said.
    let files = tempfile::tempdir().unwrap();
    let slice = dicom_file(
        files.path(),
        "slice1",
        &[
            ("(0010,0020)", &mrn),
            ("(0010,0021)", "st-marys.example"),
            ("(0010,0010)", &pn),
            ("(0008,0050)", &accession),
            ("(0020,000d)", &study_uid),
            ("(0008,0060)", "CT"),
            ("(0008,1030)", "CT head"),
            ("(0008,0020)", "20261207"),
        ],
    );
    let sent = std::time::Instant::now();
    pacs.store(&slice).await;
    let ev = live
        .wait_for(Duration::from_secs(STABLE_AGE + 5), |e| {
            e.event == "imaging.study_available"
        })
        .await;
    let waited = sent.elapsed();
    assert_eq!(ev.data["patient_id"], patient.id.to_string().as_str());
    assert_eq!(ev.data["order_id"], order["id"]);
    assert_eq!(ev.data["matched_by"], "accession");
    assert_eq!(ev.data["study_uid"], study_uid.as_str());
    assert_eq!(ev.data["modalities"], json!(["CT"]));
    assert_eq!(ev.data["instance_count"], 1);
    assert_eq!(ev.data["description"], "CT head");
    assert_eq!(ev.data["study_date"], "2026-12-07");
    eprintln!("the study reached the doctor {waited:?} after it was sent");

    // The patient's page: the order completed, the study, the viewer's address; the order
    // left the worklist.
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", patient.id))
        .await;
    assert_eq!(imaging.body["orders"][0]["status"], "completed");
    assert_eq!(imaging.body["studies"].as_array().unwrap().len(), 1);
    let pacs_id = pacs.get("/studies").await[0].as_str().unwrap().to_owned();
    assert_eq!(
        imaging.body["studies"][0]["viewer_url"],
        format!("{}/app/explorer.html#study?uuid={pacs_id}", pacs.url()).as_str()
    );
    assert!(!pacs.worklists().join(format!("{accession}.wl")).exists());
    let after = pacs.find_worklist(&accession).await;
    assert!(!after.contains("Find Response: 1"), "{after}");

    // The preview, rendered by Orthanc, through the node, audited.
    let study_id = ev.data["id"].as_str().unwrap().to_owned();
    let png = doctor
        .http
        .get(format!(
            "{}/api/v1/imaging/studies/{study_id}/preview",
            node.url
        ))
        .bearer_auth(&doctor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let viewed: i64 = node
        .db()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'imaging.preview' AND outcome = 'success' AND entity = ?1",
            [format!("patient/{}", patient.id)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(viewed, 1);

    // Reception and a kiosk see no study and no preview; each refusal is audited.
    let reception = node.reception().await;
    let kiosk = node.kiosk().await;
    for who in [&reception, &kiosk] {
        let r = who
            .get(&format!("/api/v1/patients/{}/imaging", patient.id))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = who
            .get(&format!("/api/v1/imaging/studies/{study_id}/preview"))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    let r = reception.get("/api/v1/imaging/reconciliation").await;
    assert_eq!(
        r.body,
        json!([]),
        "a matched study is not for reconciliation"
    );

    // A second image of the same study (the modality retries, or sends one more slice): the
    // study becomes stable again, and is still recorded once.
    let again = dicom_file(
        files.path(),
        "slice2",
        &[
            ("(0010,0020)", &mrn),
            ("(0010,0021)", "st-marys.example"),
            ("(0008,0050)", &accession),
            ("(0020,000d)", &study_uid),
            ("(0008,0060)", "CT"),
        ],
    );
    pacs.store(&again).await;
    pacs.store(&slice).await;
    eventually(
        "Orthanc calls the study stable again",
        Duration::from_secs(20),
        || async {
            let changes = pacs.get("/changes?limit=1000").await;
            changes["Changes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["ChangeType"] == "StableStudy")
                .count()
                >= 2
        },
    )
    .await;
    // The hint is the only wake-up here: poll until the node has read everything.
    carebridge_server::imaging::catch_up(&node.node)
        .await
        .unwrap();
    caught_up(&node.node, &pacs).await;
    assert_eq!(studies_in(&node), 1, "one study per StudyInstanceUID");
    // Its facts follow the PACS: two images now, in a newer version of the record.
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", patient.id))
        .await;
    assert_eq!(imaging.body["studies"][0]["instance_count"], 2);
    assert_eq!(imaging.body["studies"][0]["version"], 2);
    assert_eq!(imaging.body["studies"][0]["matched_by"], "accession");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_that_matches_nobody_waits_for_reconciliation_and_is_linked_by_hand() {
    // No hint reaches this node (a wrong token): the poll alone brings the study.
    let mut pacs = Pacs::new();
    let node = TestNode::start_with(|c| c.imaging = Some(imaging_config(&pacs, 1))).await;
    pacs.start(&node.url, "not-the-token-of-this-node").await;
    let reception = node.reception().await;
    let doctor = node.doctor(0).await;
    let mut reception_live = reception.events(None).await;
    let mut doctor_live = doctor.events(None).await;
    let patient = node.patient(1).clone();

    // Same name and birth date as a patient here, but an accession and PatientID this node
    // never gave: never matched on name or birth date.
    let files = tempfile::tempdir().unwrap();
    let stray = dicom_file(
        files.path(),
        "stray",
        &[
            ("(0010,0020)", "EXT-4711"),
            ("(0010,0021)", "elsewhere.example"),
            ("(0010,0010)", &patient.name.replace(' ', "^")),
            (
                "(0010,0030)",
                &patient.birth_date.format("%Y%m%d").to_string(),
            ),
            ("(0008,0050)", "X99"),
            ("(0008,0060)", "MR"),
        ],
    );
    pacs.store(&stray).await;
    let ev = reception_live
        .wait_for(Duration::from_secs(STABLE_AGE + 10), |e| {
            e.event == "imaging.reconciliation_updated"
        })
        .await;
    assert_eq!(ev.data["patient_id"], Value::Null);
    assert_eq!(ev.data["matched_by"], "unmatched");
    assert_eq!(ev.data["dicom_patient_id"], "EXT-4711");
    let list = reception.get("/api/v1/imaging/reconciliation").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.body);
    let study_id = list.body[0]["id"].as_str().unwrap().to_owned();
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", patient.id))
        .await;
    assert_eq!(imaging.body["studies"], json!([]), "linked to nothing");
    // Reception decides by the name, number and accession sent; the images are for doctors.
    let r = reception
        .get(&format!("/api/v1/imaging/studies/{study_id}/preview"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = doctor
        .http
        .get(format!(
            "{}/api/v1/imaging/studies/{study_id}/preview",
            node.url
        ))
        .bearer_auth(&doctor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let kiosk = node.kiosk().await;
    assert_eq!(
        kiosk.get("/api/v1/imaging/reconciliation").await.status,
        StatusCode::FORBIDDEN
    );

    // Reception links it; the doctors hear of it, and it leaves the list.
    let linked = reception
        .post(
            &format!("/api/v1/imaging/studies/{study_id}/link"),
            json!({"patient_id": patient.id}),
        )
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
    assert_eq!(linked.body["matched_by"], "hand");
    let ev = doctor_live
        .wait_for(Duration::from_secs(5), |e| {
            e.event == "imaging.study_available"
        })
        .await;
    assert_eq!(ev.data["id"], study_id.as_str());
    assert_eq!(ev.data["patient_id"], patient.id.to_string().as_str());
    let ev = reception_live
        .wait_for(Duration::from_secs(5), |e| {
            e.event == "imaging.reconciliation_updated"
        })
        .await;
    assert_eq!(ev.data["patient_id"], patient.id.to_string().as_str());
    assert_eq!(
        reception.get("/api/v1/imaging/reconciliation").await.body,
        json!([])
    );
    // Linked once: a second link is refused and changes nothing.
    let again = reception
        .post(
            &format!("/api/v1/imaging/studies/{study_id}/link"),
            json!({"patient_id": node.patient(2).id}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", patient.id))
        .await;
    assert_eq!(imaging.body["studies"][0]["id"], study_id.as_str());
    // Now it is clinical: reception no longer sees its preview.
    let r = reception
        .get(&format!("/api/v1/imaging/studies/{study_id}/preview"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_sent_while_the_node_is_down_arrives_once_when_it_returns() {
    let mut pacs = Pacs::new();
    let node = TestNode::start_with(|c| c.imaging = Some(imaging_config(&pacs, 1))).await;
    pacs.start(&node.url, HINT_TOKEN).await;
    let doctor = node.doctor(0).await;
    let patient = node.patient(0).clone();
    let order = order(&doctor, &patient.id.to_string()).await;
    let accession = order["accession"].as_str().unwrap().to_owned();
    let (keep, config) = node.stop_keeping().await;

    let files = tempfile::tempdir().unwrap();
    let slice = dicom_file(
        files.path(),
        "while-down",
        &[("(0008,0050)", &accession), ("(0008,0060)", "CT")],
    );
    pacs.store(&slice).await;
    eventually(
        "Orthanc calls the study stable",
        Duration::from_secs(20),
        || async {
            let changes = pacs.get("/changes?limit=1000").await;
            changes["Changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["ChangeType"] == "StableStudy")
        },
    )
    .await;

    // The node returns on the same data: it reads the feed from where it stopped.
    let node = {
        let mut tries = 0;
        loop {
            match Node::open(config.clone(), Arc::new(SystemClock)) {
                Ok(n) => break n,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
    caught_up(&node, &pacs).await;
    // And a second time from zero, as after the PACS's database was replaced: the feed is read
    // again, and nothing is recorded twice.
    let source = pacs.url();
    let position = |node: &Arc<Node>| {
        let (node, source) = (node.clone(), source.clone());
        async move {
            node.store
                .read(move |tx| store::feed_position(tx, &source))
                .await
                .unwrap()
        }
    };
    let read_to = position(&node).await;
    assert!(read_to > 0);
    let forget = source.clone();
    node.store
        .write(None, move |ctx| store::restart_feed(ctx, &forget))
        .await
        .unwrap();
    assert_eq!(position(&node).await, 0);
    carebridge_server::imaging::catch_up(&node).await.unwrap();
    assert_eq!(position(&node).await, read_to, "read again to its end");
    let (mine, unmatched) = node
        .store
        .read(move |tx| {
            Ok::<_, carebridge_server::store::StoreError>((
                store::studies_of(tx, patient.id)?,
                store::unmatched(tx)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "recorded once");
    assert!(unmatched.is_empty());
    assert_eq!(mine[0].study.accession, accession);
    assert_eq!(mine[0].study.matched_by, StudyMatch::Accession);
    node.shutdown.cancel();
    let _ = served.await;
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_needs_the_token_and_a_node_without_a_pacs_says_so() {
    let plain = TestNode::start().await;
    let doctor = plain.doctor(0).await;
    let r = doctor
        .post(
            "/api/v1/imaging/orders",
            json!({
                "patient_id": plain.patient(0).id,
                "modality": "CT",
                "procedure": "CT head",
                "reason": "Fall",
                "scheduled_at": "2026-12-07T09:30:00Z",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let counts = plain.table_counts();
    assert_eq!(counts["imaging_orders"], 0);
    assert_eq!(counts["patient_mrns"], 0);
    // A node without a PACS answers a hint as a wrong token: it tells nothing.
    let hinted = support::http()
        .post(format!("{}/api/v1/imaging/hint", plain.url))
        .bearer_auth(HINT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(hinted.status(), StatusCode::UNAUTHORIZED);
    plain.stop().await;

    let pacs_dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(|c| {
        c.imaging = Some(ImagingConfig {
            orthanc_url: format!("http://127.0.0.1:{}", free_port()),
            username: ORTHANC_USER.into(),
            password: ORTHANC_PASSWORD.into(),
            worklist_dir: Some(pacs_dir.path().to_owned()),
            hint_token: Some(HINT_TOKEN.into()),
            poll_seconds: 3600,
            viewer_url: None,
        })
    })
    .await;
    let http = support::http();
    let hint = |token: Option<&'static str>| {
        let mut req = http.post(format!("{}/api/v1/imaging/hint", node.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(hint(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hint(Some("hint-token-for-the-tests-0123456788"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hint(Some(HINT_TOKEN)).await.unwrap().status(),
        StatusCode::ACCEPTED
    );

    // A bad order changes nothing: every table counted (but the audit trail, which records the
    // refusals).
    let doctor = node.doctor(0).await;
    let reception = node.reception().await;
    let before = node.table_counts();
    let entries = || std::fs::read_dir(pacs_dir.path()).unwrap().count();
    let entries_before = entries();
    assert_eq!(entries_before, 1, "the demo's order is on the worklist");
    for bad in [
        json!({"patient_id": node.patient(0).id, "modality": "XX", "procedure": "CT", "reason": "r", "scheduled_at": "2026-12-07T09:30:00Z"}),
        json!({"patient_id": node.patient(0).id, "modality": "CT", "procedure": " ", "reason": "r", "scheduled_at": "2026-12-07T09:30:00Z"}),
        json!({"patient_id": node.patient(0).id, "modality": "CT", "procedure": "x".repeat(65), "reason": "r", "scheduled_at": "2026-12-07T09:30:00Z"}),
        json!({"patient_id": uuid::Uuid::now_v7(), "modality": "CT", "procedure": "CT", "reason": "r", "scheduled_at": "2026-12-07T09:30:00Z"}),
    ] {
        let r = doctor.post("/api/v1/imaging/orders", bad.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
    }
    let r = reception
        .post(
            "/api/v1/imaging/orders",
            json!({"patient_id": node.patient(0).id, "modality": "CT", "procedure": "CT", "reason": "r", "scheduled_at": "2026-12-07T09:30:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only doctors order");
    let (mut before, mut after) = (before, node.table_counts());
    before.remove("audit");
    after.remove("audit");
    assert_eq!(before, after);
    assert_eq!(entries(), entries_before, "no worklist entry was written");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_imported_at_a_workstation_reaches_the_pacs_once_through_the_node() {
    let mut pacs = Pacs::new();
    let node = TestNode::start_with(|c| c.imaging = Some(imaging_config(&pacs, 1))).await;
    pacs.start(&node.url, HINT_TOKEN).await;
    let reception = node.reception().await;
    let files = tempfile::tempdir().unwrap();
    let cd = dicom_file(
        files.path(),
        "from-a-cd",
        &[("(0010,0020)", "EXT-1"), ("(0008,0060)", "CT")],
    );
    let bytes = std::fs::read(&cd).unwrap();
    let upload = |who: &Client, body: Vec<u8>| {
        who.http
            .post(format!("{}/api/v1/imaging/instances", node.url))
            .bearer_auth(&who.token)
            .header("content-type", "application/dicom")
            .body(body)
            .send()
    };
    let first = upload(&reception, bytes.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        first.json::<Value>().await.unwrap()["already_stored"],
        false
    );
    let again = upload(&reception, bytes.clone()).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["already_stored"], true);
    assert_eq!(pacs.get("/instances").await.as_array().unwrap().len(), 1);
    // Not DICOM: refused, and the PACS holds what it held.
    let junk = upload(&reception, b"%PDF-1.7 not an image".to_vec())
        .await
        .unwrap();
    assert_eq!(junk.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let kiosk = node.kiosk().await;
    let refused = upload(&kiosk, bytes).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(pacs.get("/instances").await.as_array().unwrap().len(), 1);
    // It arrives as a modality's would: here, matching nobody.
    eventually(
        "the imported study is recorded",
        Duration::from_secs(20),
        || async {
            !reception
                .get("/api/v1/imaging/reconciliation")
                .await
                .body
                .as_array()
                .unwrap()
                .is_empty()
        },
    )
    .await;
    let audited: i64 = node
        .db()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'imaging.upload'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        audited, 4,
        "two stored, one refused as not DICOM, one refused to a kiosk"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accession_is_trusted_only_with_the_patient_it_names() {
    let mut pacs = Pacs::new();
    let node = TestNode::start_with(|c| c.imaging = Some(imaging_config(&pacs, 1))).await;
    pacs.start(&node.url, HINT_TOKEN).await;
    let doctor = node.doctor(0).await;
    let (a, b) = (node.patient(1).clone(), node.patient(2).clone());
    let order_a = order(&doctor, &a.id.to_string()).await;
    order(&doctor, &b.id.to_string()).await;
    let mrn = |p: carebridge_protocol::PatientId| {
        let node = node.node.clone();
        async move {
            node.store
                .read(move |tx| store::mrn(tx, p))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (mrn_a, mrn_b) = (mrn(a.id).await, mrn(b.id).await);
    let accession = order_a["accession"].as_str().unwrap();
    let files = tempfile::tempdir().unwrap();
    let cases: [(&str, &[(&str, &str)]); 4] = [
        // A's order, B's number: a typed accession; never A's, never B's.
        (
            "conflict",
            &[
                ("(0010,0020)", &mrn_b),
                ("(0010,0021)", "st-marys.example"),
                ("(0008,0050)", accession),
            ],
        ),
        // Another organisation's numbers, which look like ours.
        (
            "foreign",
            &[
                ("(0010,0020)", &mrn_a),
                ("(0010,0021)", "elsewhere.example"),
                ("(0008,0050)", accession),
            ],
        ),
        // Our accession and a number that is nobody's here.
        (
            "unknown",
            &[
                ("(0010,0020)", "MRN99999999"),
                ("(0010,0021)", "st-marys.example"),
                ("(0008,0050)", accession),
            ],
        ),
        // A's order and A's number: matched.
        (
            "agreed",
            &[
                ("(0010,0020)", &mrn_a),
                ("(0010,0021)", "st-marys.example"),
                ("(0008,0050)", accession),
            ],
        ),
    ];
    for (name, tags) in cases {
        pacs.store(&dicom_file(files.path(), name, tags)).await;
    }
    eventually(
        "the four studies are recorded",
        Duration::from_secs(30),
        || async { studies_in(&node) == 4 },
    )
    .await;
    let reception = node.reception().await;
    let unmatched = reception.get("/api/v1/imaging/reconciliation").await.body;
    let mut sent_as: Vec<&str> = unmatched
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dicom_patient_id"].as_str().unwrap())
        .collect();
    sent_as.sort_unstable();
    let mut expected = vec![mrn_b.as_str(), mrn_a.as_str(), "MRN99999999"];
    expected.sort_unstable();
    assert_eq!(sent_as, expected);
    for (p, n) in [(&a, 1), (&b, 0)] {
        let imaging = doctor
            .get(&format!("/api/v1/patients/{}/imaging", p.id))
            .await;
        assert_eq!(
            imaging.body["studies"].as_array().unwrap().len(),
            n,
            "{}",
            p.name
        );
    }
    let imaging = doctor
        .get(&format!("/api/v1/patients/{}/imaging", a.id))
        .await;
    assert_eq!(
        imaging.body["studies"][0]["dicom_patient_id"],
        mrn_a.as_str()
    );
    assert_eq!(imaging.body["studies"][0]["order_id"], order_a["id"]);
    node.stop().await;
}

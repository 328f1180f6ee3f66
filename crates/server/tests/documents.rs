//! Patients' documents over HTTP: filed by reception or a doctor, versioned by title, read back
//! by doctors only (every read audited), announced live; and files that are not what they say,
//! too large, or for nobody, refused with nothing kept.

#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::{Answer, Client, TestNode};

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

/// Files `bytes` for `patient` as `media` with the query `query`.
async fn file(
    who: &Client,
    patient: &str,
    query: &[(&str, &str)],
    media: &str,
    bytes: &[u8],
    key: Option<&str>,
) -> Answer {
    let mut req = who
        .http
        .post(format!("{}/api/v1/patients/{patient}/documents", who.url))
        .bearer_auth(&who.token)
        .query(query)
        .header("content-type", media)
        .body(bytes.to_vec());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A document's file as the node gives it: status, media type, bytes.
async fn read(who: &Client, path: &str) -> (StatusCode, String, Vec<u8>) {
    let r = who
        .http
        .get(format!("{}/api/v1{path}", who.url))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    let media = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), media, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_is_filed_versioned_by_title_and_read_by_doctors_only() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doctor = node.doctor(0).await;
    let patient = node.patient(0).id.to_string();
    let mut doctor_live = doctor.events(None).await;

    // Reception files a scanned letter.
    let first = file(
        &reception,
        &patient,
        &[
            ("title", "Referral letter"),
            ("tags", "Cardiology, GP"),
            ("file_name", "scan-0001.pdf"),
        ],
        "application/pdf",
        PDF,
        None,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let doc_id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(first.body["title"], "Referral letter");
    assert_eq!(first.body["tags"], serde_json::json!(["cardiology", "gp"]));
    assert_eq!(first.body["versions"][0]["version"], 1);
    assert_eq!(first.body["versions"][0]["size"], PDF.len());
    assert_eq!(first.body["versions"][0]["file_name"], "scan-0001.pdf");

    // The doctor hears of it live.
    let ev = doctor_live
        .wait_for(Duration::from_secs(10), |e| e.event == "document.added")
        .await;
    let data = ev.data;
    assert_eq!(data["id"], doc_id.as_str());
    assert_eq!(data["patient_id"], patient.as_str());

    // The same title, however written, is a new version of the same document.
    let second = file(
        &doctor,
        &patient,
        &[("title", "  referral   LETTER ")],
        "image/png",
        PNG,
        None,
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(second.body["id"], doc_id.as_str());
    let versions = second.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["media_type"], "image/png");
    assert_eq!(versions[1]["version"], 1);

    // The same file as the newest version again: nothing new.
    let again = file(
        &doctor,
        &patient,
        &[("title", "Referral letter")],
        "image/png",
        PNG,
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["versions"].as_array().unwrap().len(), 2);
    assert_eq!(node.table_counts()["document_versions"], 2);

    // Doctors list and read every version.
    let list = doctor
        .get(&format!("/api/v1/patients/{patient}/documents"))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let (s, media, bytes) = read(&doctor, &format!("/documents/{doc_id}/content")).await;
    assert_eq!(
        (s, media.as_str(), bytes.as_slice()),
        (StatusCode::OK, "image/png", PNG)
    );
    let (s, media, bytes) = read(&doctor, &format!("/documents/{doc_id}/content?version=1")).await;
    assert_eq!(
        (s, media.as_str(), bytes.as_slice()),
        (StatusCode::OK, "application/pdf", PDF)
    );
    let (s, _, _) = read(&doctor, &format!("/documents/{doc_id}/content?version=3")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Reception files but does not read back; a kiosk does neither.
    let r = reception
        .get(&format!("/api/v1/patients/{patient}/documents"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (s, _, _) = read(&reception, &format!("/documents/{doc_id}/content")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let kiosk = node.kiosk().await;
    let k = file(
        &kiosk,
        &patient,
        &[("title", "x")],
        "application/pdf",
        PDF,
        None,
    )
    .await;
    assert_eq!(k.status, StatusCode::FORBIDDEN);
    let (s, _, _) = read(&kiosk, &format!("/documents/{doc_id}/content")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Each read is in the audit trail, under the patient.
    let db = node.db();
    let reads: Vec<(String, String)> = db
        .prepare("SELECT entity, detail FROM audit WHERE action = 'document.read' AND outcome = 'success' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        reads,
        vec![
            (
                format!("patient/{patient}"),
                format!("document/{doc_id} version 2")
            ),
            (
                format!("patient/{patient}"),
                format!("document/{doc_id} version 1")
            ),
        ]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_filing_with_its_key_is_answered_once() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let patient = node.patient(0).id.to_string();
    let q = [("title", "Insurance card")];
    let a = file(&reception, &patient, &q, "image/png", PNG, Some("scan-42")).await;
    let b = file(&reception, &patient, &q, "image/png", PNG, Some("scan-42")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(b.status, StatusCode::CREATED);
    assert_eq!(a.body, b.body);
    // The same key with another file is a conflict, not a silent answer.
    let c = file(
        &reception,
        &patient,
        &q,
        "application/pdf",
        PDF,
        Some("scan-42"),
    )
    .await;
    assert_eq!(c.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", c.body);
    assert_eq!(node.table_counts()["document_versions"], 1);
    // Reception's answer to a new version names that version only: it does not read the
    // document's others back.
    let d = file(
        &reception,
        &patient,
        &q,
        "application/pdf",
        PDF,
        Some("scan-43"),
    )
    .await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
    let versions = d.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(node.table_counts()["document_versions"], 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_documents_or_for_nobody_change_nothing() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let patient = node.patient(0).id.to_string();
    let mut before = node.table_counts();
    let title = [("title", "Letter")];
    let cases: Vec<(&str, Answer, StatusCode)> = vec![
        (
            "text is no document",
            file(&reception, &patient, &title, "text/plain", b"hello", None).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a PDF sent as a PNG",
            file(&reception, &patient, &title, "image/png", PDF, None).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "an empty file",
            file(&reception, &patient, &title, "application/pdf", b"", None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no title",
            file(
                &reception,
                &patient,
                &[("title", " ")],
                "application/pdf",
                PDF,
                None,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "eleven tags",
            file(
                &reception,
                &patient,
                &[("title", "Letter"), ("tags", "a,b,c,d,e,f,g,h,i,j,k")],
                "application/pdf",
                PDF,
                None,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "nobody's",
            file(
                &reception,
                &uuid::Uuid::now_v7().to_string(),
                &title,
                "application/pdf",
                PDF,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "larger than 20 MiB",
            file(
                &reception,
                &patient,
                &title,
                "application/pdf",
                &[PDF, &vec![b' '; 20 * 1024 * 1024]].concat(),
                None,
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, answer, status) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert!(answer.is_problem(), "{what}");
    }
    // Every table but the audit trail (which records the refusals) is as it was.
    let mut after = node.table_counts();
    before.remove("audit");
    after.remove("audit");
    assert_eq!(before, after);
    node.stop().await;
}

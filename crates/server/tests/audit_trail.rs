//! Every sign-in (accepted or not) and every read and write of patient data leaves exactly
//! one audit entry naming what was done, by whom, to which record, and how it ended. The walk
//! covers every patient, report, consent and transmission route the OpenAPI document lists,
//! so a new route without its entry fails here.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::collections::BTreeSet;

use carebridge_protocol::federation::identity::NodeIdentity;
use carebridge_server::clock::{Clock, SystemClock};
use carebridge_server::federation::peer::{AddPeer, SourceRule};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Client, TestNode};

const PEER: &str = "assure.example";

/// One audit entry.
#[derive(Debug)]
struct Entry {
    actor: String,
    action: String,
    entity: String,
    outcome: String,
    detail: String,
    source: String,
}

/// Reads the trail as the test walks: what each call added.
struct Trail<'a> {
    node: &'a TestNode,
    /// The last entry already looked at.
    seen: i64,
    /// The routes walked, as (method, path) in the OpenAPI document's terms.
    covered: BTreeSet<(String, String)>,
}

impl<'a> Trail<'a> {
    fn new(node: &'a TestNode) -> Self {
        let seen = node
            .db()
            .query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))
            .unwrap();
        Self {
            node,
            seen,
            covered: BTreeSet::new(),
        }
    }

    /// The entries added since the last look, but the node's own (deliveries, checkpoints),
    /// which run in the background.
    fn added(&mut self) -> Vec<Entry> {
        let db = self.node.db();
        let mut st = db
            .prepare(
                "SELECT seq, actor, action, entity, outcome, detail, source FROM audit
                 WHERE seq > ?1 ORDER BY seq",
            )
            .unwrap();
        let rows: Vec<(i64, Entry)> = st
            .query_map([self.seen], |r| {
                Ok((
                    r.get(0)?,
                    Entry {
                        actor: r.get(1)?,
                        action: r.get(2)?,
                        entity: r.get(3)?,
                        outcome: r.get(4)?,
                        detail: r.get(5)?,
                        source: r.get(6)?,
                    },
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if let Some((seq, _)) = rows.last() {
            self.seen = *seq;
        }
        rows.into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.actor != "node")
            .collect()
    }

    /// The call to `route` that answered `answer` left exactly one entry, and it says this.
    #[track_caller]
    fn one(
        &mut self,
        route: (&str, &str),
        answer: StatusCode,
        (action, actor, entity, outcome): (&str, &str, &str, &str),
    ) -> Entry {
        self.covered
            .insert((route.0.to_owned(), route.1.to_owned()));
        let mut added = self.added();
        assert_eq!(
            added.len(),
            1,
            "{} {} ({answer}) left one entry: {added:#?}",
            route.0,
            route.1
        );
        let e = added.remove(0);
        assert_eq!(
            (
                e.action.as_str(),
                e.actor.as_str(),
                e.entity.as_str(),
                e.outcome.as_str()
            ),
            (action, actor, entity, outcome),
            "{} {} ({answer}): {e:#?}",
            route.0,
            route.1
        );
        assert_eq!(e.source, "127.0.0.1", "{e:#?}");
        e
    }
}

async fn put(c: &Client, path: &str, body: Value, version: &Value) -> Answer {
    c.call(
        Method::PUT,
        path,
        Some(body),
        &[("if-match", &format!("\"{version}\""))],
    )
    .await
}

async fn post_if(c: &Client, path: &str, body: Option<Value>, version: &Value) -> Answer {
    c.call(
        Method::POST,
        path,
        body,
        &[("if-match", &format!("\"{version}\""))],
    )
    .await
}

async fn sign_in(url: &str, body: Value) -> StatusCode {
    support::http()
        .post(format!("{url}/api/v1/sessions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn staff_id(c: &Client) -> String {
    let me = c.get("/api/v1/me").await;
    format!("staff:{}", me.body["id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_in_and_every_read_and_write_of_patient_data_is_audited_once() {
    let node = TestNode::start().await;
    // A peer to record consent for and send reports to; it is never reached.
    carebridge_server::federation::peering::add(
        &node.node,
        AddPeer {
            identity: NodeIdentity::new(
                PEER,
                "insurer",
                "http://127.0.0.1:9",
                &ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng).verifying_key(),
                &x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(
                    rand::rngs::OsRng,
                )),
            ),
            allowed_sources: vec![SourceRule::parse("127.0.0.1").unwrap()],
            allowed_types: Vec::new(),
            their_api_key: None,
        },
    )
    .await
    .unwrap();
    let reception = node.reception().await;
    let admin = node.admin().await;
    let reception_actor = staff_id(&reception).await;
    let admin_actor = staff_id(&admin).await;
    let mut t = Trail::new(&node);

    // Sign-ins: accepted, a wrong password, an unknown user, a disabled account; a kiosk's.
    let sessions = ("post", "/api/v1/sessions");
    let d = &node.creds.doctors[0];
    let doctor = Client::sign_in(&node.url, &d.username, &d.password).await;
    let doctor_actor = format!("staff:{}", d.id);
    let doctor_entity = format!("practitioner/{}", d.id);
    t.one(
        sessions,
        StatusCode::CREATED,
        ("session.create", &doctor_actor, &doctor_entity, "success"),
    );
    let s = sign_in(
        &node.url,
        json!({"username": d.username, "password": "not-the-password"}),
    )
    .await;
    assert_eq!(s, 401);
    let wrong = t.one(
        sessions,
        s,
        ("session.create", &doctor_actor, &doctor_entity, "failure"),
    );
    // Which account was tried, for the admin reading the trail.
    assert!(
        wrong.detail.contains(&format!("username {:?}", d.username)),
        "{wrong:#?}"
    );
    let s = sign_in(
        &node.url,
        json!({"username": "nobody", "password": "whatever-it-is"}),
    )
    .await;
    assert_eq!(s, 401);
    let unknown = t.one(sessions, s, ("session.create", "anonymous", "", "failure"));
    assert!(
        unknown.detail.contains("username \"nobody\""),
        "{unknown:#?}"
    );
    let gone = &node.creds.doctors[2];
    let r = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/practitioners/{}", gone.id),
            Some(json!({"disabled": true})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.added();
    let s = sign_in(
        &node.url,
        json!({"username": gone.username, "password": gone.password}),
    )
    .await;
    assert_eq!(s, 401);
    t.one(
        sessions,
        s,
        (
            "session.create",
            &format!("staff:{}", gone.id),
            &format!("practitioner/{}", gone.id),
            "failure",
        ),
    );
    let device = node.creds.kiosk.device_id;
    let kiosk_actor = format!("kiosk:{device}");
    let kiosk = node.kiosk().await;
    t.one(
        ("post", "/api/v1/kiosk-sessions"),
        StatusCode::CREATED,
        (
            "session.create",
            &kiosk_actor,
            &format!("kiosk/{device}"),
            "success",
        ),
    );
    let s = support::http()
        .post(format!("{}/api/v1/kiosk-sessions", node.url))
        .json(&json!({"device_id": device, "secret": "not-the-secret"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 401);
    t.one(
        ("post", "/api/v1/kiosk-sessions"),
        s,
        (
            "session.create",
            &kiosk_actor,
            &format!("kiosk/{device}"),
            "failure",
        ),
    );

    // Patients: register, search, read, update (and a stale update), an unknown one; a kiosk
    // identifying one (and failing to).
    let r = reception
        .post(
            "/api/v1/patients",
            json!({"family_name": "Auditson", "given_name": "Ann", "birth_date": "1980-02-03"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let new = r.body["id"].as_str().unwrap().to_owned();
    let new_entity = format!("patient/{new}");
    t.one(
        ("post", "/api/v1/patients"),
        r.status,
        ("patient.create", &reception_actor, &new_entity, "success"),
    );
    let r = reception.get("/api/v1/patients?name=Auditso").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let e = t.one(
        ("get", "/api/v1/patients"),
        r.status,
        ("patient.search", &reception_actor, "", "success"),
    );
    assert!(e.detail.contains("1 found"), "{e:#?}");
    let r = reception.get(&format!("/api/v1/patients/{new}")).await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/patients/{id}"),
        r.status,
        ("patient.read", &reception_actor, &new_entity, "success"),
    );
    let r = reception
        .call(
            Method::PATCH,
            &format!("/api/v1/patients/{new}"),
            Some(json!({"email": "ann@example.org"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("patch", "/api/v1/patients/{id}"),
        r.status,
        ("patient.update", &reception_actor, &new_entity, "success"),
    );
    let r = reception
        .call(
            Method::PATCH,
            &format!("/api/v1/patients/{new}"),
            Some(json!({"email": "ann@example.com"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    t.one(
        ("patch", "/api/v1/patients/{id}"),
        r.status,
        ("patient.update", &reception_actor, &new_entity, "failure"),
    );
    let unknown = "0193a1b2-0000-7000-8000-000000000000";
    let r = doctor.get(&format!("/api/v1/patients/{unknown}")).await;
    assert_eq!(r.status, 404);
    t.one(
        ("get", "/api/v1/patients/{id}"),
        r.status,
        (
            "patient.read",
            &doctor_actor,
            &format!("patient/{unknown}"),
            "failure",
        ),
    );
    let p0 = node.patient(0).clone();
    let p0_entity = format!("patient/{}", p0.id);
    let r = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": p0.card_number, "birth_date": p0.birth_date}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("post", "/api/v1/kiosk/identify"),
        r.status,
        ("patient.identify", &kiosk_actor, &p0_entity, "success"),
    );
    let r = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": p0.card_number, "birth_date": "1901-01-01"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    t.one(
        ("post", "/api/v1/kiosk/identify"),
        r.status,
        ("patient.identify", &kiosk_actor, "", "failure"),
    );

    // A patient's imaging (this node follows no PACS: the list is empty, the read audited).
    let r = doctor
        .get(&format!("/api/v1/patients/{}/imaging", p0.id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/imaging"),
        r.status,
        ("imaging.list", &doctor_actor, &p0_entity, "success"),
    );

    // A patient's documents: reception files one (without reading it back), the doctor lists
    // them and reads the file; reception's attempt to list is refused, and audited as such.
    let filed = reception
        .http
        .post(format!("{}/api/v1/patients/{}/documents", node.url, p0.id))
        .bearer_auth(&reception.token)
        .query(&[("title", "Referral letter")])
        .header("content-type", "application/pdf")
        .body(&b"%PDF-1.4\n%%EOF\n"[..])
        .send()
        .await
        .unwrap();
    let status = filed.status();
    assert_eq!(status, 201);
    let document: Value = filed.json().await.unwrap();
    t.one(
        ("post", "/api/v1/patients/{id}/documents"),
        status,
        ("document.add", &reception_actor, &p0_entity, "success"),
    );
    let r = doctor
        .get(&format!("/api/v1/patients/{}/documents", p0.id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/documents"),
        r.status,
        ("document.list", &doctor_actor, &p0_entity, "success"),
    );
    let r = reception
        .get(&format!("/api/v1/patients/{}/documents", p0.id))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/documents"),
        r.status,
        ("document.list", &reception_actor, &p0_entity, "failure"),
    );
    let r = doctor
        .get(&format!(
            "/api/v1/documents/{}/content",
            document["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/documents/{id}/content"),
        r.status,
        ("document.read", &doctor_actor, &p0_entity, "success"),
    );

    // Consent to share with the peer.
    let consents = format!("/api/v1/patients/{}/consents", p0.id);
    let r = doctor.get(&consents).await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/patients/{id}/consents"),
        r.status,
        ("consent.list", &doctor_actor, &p0_entity, "success"),
    );
    let r = doctor.post(&consents, json!({"peer": PEER})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    t.one(
        ("post", "/api/v1/patients/{id}/consents"),
        r.status,
        ("consent.record", &doctor_actor, &p0_entity, "success"),
    );

    // Reports: create, list, read, save, finalise, revisions, amend, PDF, an unknown one.
    let content = json!({"title": "Chest X-ray", "findings": "Clear.", "conclusion": "Normal.", "codes": ["Z00.0"]});
    let r = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": p0.id, "content": content}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let report = r.body["id"].as_str().unwrap().to_owned();
    let report_entity = format!("report/{report}");
    t.one(
        ("post", "/api/v1/reports"),
        r.status,
        ("report.create", &doctor_actor, &report_entity, "success"),
    );
    let r = doctor
        .get(&format!("/api/v1/reports?patient_id={}", p0.id))
        .await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/reports"),
        r.status,
        ("report.list", &doctor_actor, &p0_entity, "success"),
    );
    let r = doctor.get(&format!("/api/v1/reports/{report}")).await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/reports/{id}"),
        r.status,
        ("report.read", &doctor_actor, &report_entity, "success"),
    );
    let r = put(
        &doctor,
        &format!("/api/v1/reports/{report}/draft"),
        content.clone(),
        &r.body["version"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("put", "/api/v1/reports/{id}/draft"),
        r.status,
        (
            "report.save-draft",
            &doctor_actor,
            &report_entity,
            "success",
        ),
    );
    let r = post_if(
        &doctor,
        &format!("/api/v1/reports/{report}/finalise"),
        None,
        &r.body["version"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("post", "/api/v1/reports/{id}/finalise"),
        r.status,
        ("report.finalise", &doctor_actor, &report_entity, "success"),
    );
    let version = r.body["version"].clone();
    let r = doctor
        .get(&format!("/api/v1/reports/{report}/revisions"))
        .await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/reports/{id}/revisions"),
        r.status,
        ("report.revisions", &doctor_actor, &report_entity, "success"),
    );
    let r = post_if(
        &doctor,
        &format!("/api/v1/reports/{report}/amend"),
        Some(json!({"title": "Chest X-ray", "findings": "Clear.", "conclusion": "Normal, reviewed.", "codes": ["Z00.0"]})),
        &version,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("post", "/api/v1/reports/{id}/amend"),
        r.status,
        ("report.amend", &doctor_actor, &report_entity, "success"),
    );
    let version = r.body["version"].clone();
    let pdf = doctor
        .http
        .get(format!("{}/api/v1/reports/{report}/pdf", node.url))
        .bearer_auth(&doctor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    t.one(
        ("get", "/api/v1/reports/{id}/pdf"),
        StatusCode::OK,
        (
            "report.export-pdf",
            &doctor_actor,
            &report_entity,
            "success",
        ),
    );
    let r = doctor.get(&format!("/api/v1/reports/{unknown}")).await;
    assert_eq!(r.status, 404);
    t.one(
        ("get", "/api/v1/reports/{id}"),
        r.status,
        (
            "report.read",
            &doctor_actor,
            &format!("report/{unknown}"),
            "failure",
        ),
    );

    // Sending the report to the peer, listing what was sent, withdrawing the consent.
    let r = doctor
        .post(
            "/api/v1/transmissions",
            json!({"peer": PEER, "report_ids": [report]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sent = r.body["id"].as_str().unwrap().to_owned();
    t.one(
        ("post", "/api/v1/transmissions"),
        r.status,
        (
            "transmission.send",
            &doctor_actor,
            &format!("transmission/{sent}"),
            "success",
        ),
    );
    let r = doctor
        .get(&format!("/api/v1/transmissions?patient_id={}", p0.id))
        .await;
    assert_eq!(r.status, 200);
    t.one(
        ("get", "/api/v1/transmissions"),
        r.status,
        ("transmission.list", &doctor_actor, &p0_entity, "success"),
    );
    let r = doctor
        .call(Method::DELETE, &format!("{consents}/{PEER}"), None, &[])
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    t.one(
        ("delete", "/api/v1/patients/{id}/consents/{peer}"),
        r.status,
        ("consent.withdraw", &doctor_actor, &p0_entity, "success"),
    );
    let r = post_if(
        &doctor,
        &format!("/api/v1/reports/{report}/entered-in-error"),
        Some(json!({"reason": "wrong patient"})),
        &version,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("post", "/api/v1/reports/{id}/entered-in-error"),
        r.status,
        (
            "report.entered-in-error",
            &doctor_actor,
            &report_entity,
            "success",
        ),
    );

    // Other hospitals' requests for this patient, at the front desk; a doctor's own requests
    // elsewhere, and one to a peer that is no hospital, refused.
    for (path, action) in [
        ("access-requests", "access.list"),
        ("access-reads", "access.reads"),
    ] {
        let r = reception
            .get(&format!("/api/v1/patients/{}/{path}", p0.id))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        t.one(
            ("get", &format!("/api/v1/patients/{{id}}/{path}")),
            r.status,
            (action, &reception_actor, &p0_entity, "success"),
        );
    }
    let remote = format!("/api/v1/patients/{}/remote-access", p0.id);
    let r = doctor.get(&remote).await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/remote-access"),
        r.status,
        ("access.remote-list", &doctor_actor, &p0_entity, "success"),
    );
    let r = doctor
        .post(
            &remote,
            json!({"peer": PEER, "card_number": "123456", "birth_date": "1970-01-01",
                   "purpose": "treatment", "scopes": ["patient/Patient.r"]}),
        )
        .await;
    assert!(
        (400..500).contains(&r.status.as_u16()),
        "{} {}",
        r.status,
        r.body
    );
    t.one(
        ("post", "/api/v1/patients/{id}/remote-access"),
        r.status,
        ("access.request", &doctor_actor, &p0_entity, "failure"),
    );

    // Moving the record: where it went, a move to a peer that is no hospital (refused), and
    // what other hospitals moved here.
    let transfers = format!("/api/v1/patients/{}/transfers", p0.id);
    let r = reception.get(&transfers).await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/transfers"),
        r.status,
        (
            "patient.transfer-list",
            &reception_actor,
            &p0_entity,
            "success",
        ),
    );
    let r = reception
        .post(
            &transfers,
            json!({"peer": PEER, "identity_document": "passport"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    t.one(
        ("post", "/api/v1/patients/{id}/transfers"),
        r.status,
        ("patient.transfer", &reception_actor, &p0_entity, "failure"),
    );
    let r = doctor
        .get(&format!("/api/v1/patients/{}/transferred-records", p0.id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.one(
        ("get", "/api/v1/patients/{id}/transferred-records"),
        r.status,
        (
            "patient.transferred-records",
            &doctor_actor,
            &p0_entity,
            "success",
        ),
    );

    // Patient data leaves by the snapshot and the live stream too.
    let snap = doctor
        .http
        .get(format!("{}/api/v1/snapshot", node.url))
        .bearer_auth(&doctor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(snap.status(), 200);
    let _ = snap.bytes().await.unwrap();
    t.one(
        ("get", "/api/v1/snapshot"),
        StatusCode::OK,
        ("snapshot.read", &doctor_actor, "", "success"),
    );
    let stream = doctor.events(None).await;
    assert_eq!(stream.status, 200);
    t.one(
        ("get", "/api/v1/events"),
        stream.status,
        ("events.subscribe", &doctor_actor, "", "success"),
    );
    drop(stream);

    // Roles that may not read patient data are refused, and the refusal is on the trail.
    let r = reception.get(&format!("/api/v1/reports/{report}")).await;
    assert_eq!(r.status, 403);
    t.one(
        ("get", "/api/v1/reports/{id}"),
        r.status,
        ("report.read", &reception_actor, &report_entity, "failure"),
    );
    let r = admin.get(&format!("/api/v1/patients/{new}")).await;
    assert_eq!(r.status, 403);
    t.one(
        ("get", "/api/v1/patients/{id}"),
        r.status,
        ("patient.read", &admin_actor, &new_entity, "failure"),
    );
    let r = kiosk.get("/api/v1/patients?name=Aud").await;
    assert_eq!(r.status, 403);
    t.one(
        ("get", "/api/v1/patients"),
        r.status,
        ("patient.search", &kiosk_actor, "", "failure"),
    );

    // The patient is done at the kiosk.
    let r = kiosk
        .call(Method::DELETE, "/api/v1/kiosk/identify", None, &[])
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    t.one(
        ("delete", "/api/v1/kiosk/identify"),
        r.status,
        ("patient.identify-end", &kiosk_actor, "", "success"),
    );

    // Signing out.
    let r = reception
        .call(Method::DELETE, "/api/v1/sessions/current", None, &[])
        .await;
    assert_eq!(r.status, 204);
    t.one(
        ("delete", "/api/v1/sessions/current"),
        r.status,
        ("session.delete", &reception_actor, "", "success"),
    );

    // Every route of patients, reports, consents, transmissions and sessions was walked.
    let doc = support::http()
        .get(format!("{}/api/v1/openapi.json", node.url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut listed = BTreeSet::new();
    for (full, item) in doc["paths"].as_object().unwrap() {
        let walked = [
            "/api/v1/patients",
            "/api/v1/documents",
            "/api/v1/kiosk/identify",
            "/api/v1/reports",
            "/api/v1/transmissions",
            "/api/v1/sessions",
            "/api/v1/kiosk-sessions",
        ];
        if !walked.iter().any(|p| full.starts_with(p)) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                listed.insert((method.clone(), full.clone()));
            }
        }
    }
    let missed: Vec<_> = listed.difference(&t.covered).collect();
    assert!(missed.is_empty(), "routes not walked: {missed:?}");
    node.stop().await;
}

/// Splits RFC 4180 CSV (CRLF lines, quoted fields with doubled quotes) into records.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the CSV does not end with a line break"
    );
    records
}

/// Every entry's `field`, from a list answer.
fn all<'a>(answer: &'a Answer, field: &str) -> Vec<&'a Value> {
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {answer:?}"))
        .iter()
        .map(|e| &e[field])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reads_the_trail_in_names_filters_it_and_exports_it_as_csv() {
    let node = TestNode::start().await;
    let admin = node.admin().await;
    let reception = node.reception().await;
    let (ana, bram) = (node.doctor(0).await, node.doctor(1).await);
    let (p0, p1) = (node.patient(0).clone(), node.patient(1).clone());
    let ana_actor = format!("staff:{}", node.doctor_id(0));
    let started = SystemClock.now() - chrono::Duration::seconds(2);

    assert_eq!(
        ana.get(&format!("/api/v1/patients/{}", p0.id)).await.status,
        200
    );
    assert_eq!(
        bram.get(&format!("/api/v1/patients/{}", p1.id))
            .await
            .status,
        200
    );
    let booked = reception
        .book_next(&node.doctor_id(0), &p0.id.to_string(), "Check-up")
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let appointment = format!("appointment/{}", booked.body["id"].as_str().unwrap());

    // By patient: their record and everything on it, named; nobody else's.
    let on_p0 = admin
        .get(&format!("/api/v1/audit?patient={}&limit=1000", p0.id))
        .await;
    assert_eq!(on_p0.status, 200, "{}", on_p0.body);
    let entries = on_p0.body.as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["patient"] == p0.id.to_string() && e["entity_name"] == p0.name.as_str()),
        "{entries:#?}"
    );
    let read = entries
        .iter()
        .find(|e| e["action"] == "patient.read" && e["actor"] == ana_actor.as_str())
        .unwrap_or_else(|| panic!("no read by the doctor: {entries:#?}"));
    assert_eq!(
        read["actor_name"],
        node.creds.doctors[0].display_name.as_str()
    );
    assert_eq!(read["entity"], format!("patient/{}", p0.id));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "appointment.book" && e["entity"] == appointment.as_str()),
        "the booking is on the patient's record: {entries:#?}"
    );
    assert!(
        !on_p0.body.to_string().contains(&p1.id.to_string()),
        "another patient's entry: {entries:#?}"
    );
    // The card number names the same patient.
    let by_card = admin
        .get(&format!(
            "/api/v1/audit?card_number={}&limit=1000",
            p0.card_number
        ))
        .await;
    assert_eq!(all(&by_card, "seq"), all(&on_p0, "seq"));

    // By person, and by action or family of actions.
    let by_ana = admin
        .get(&format!("/api/v1/audit?actor={ana_actor}&limit=1000"))
        .await;
    assert!(!all(&by_ana, "seq").is_empty());
    assert!(
        all(&by_ana, "actor")
            .iter()
            .all(|a| *a == ana_actor.as_str())
    );
    let patient_family = admin.get("/api/v1/audit?action=patient&limit=1000").await;
    let actions = all(&patient_family, "action");
    assert!(actions.iter().any(|a| *a == "patient.read"), "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| a.as_str().is_some_and(|a| a.starts_with("patient."))),
        "{actions:?}"
    );
    let reads = admin
        .get("/api/v1/audit?action=patient.read&limit=1000")
        .await;
    assert_eq!(
        all(&reads, "action").len(),
        2,
        "one read by each doctor: {}",
        reads.body
    );

    // By period: from is inclusive, to exclusive.
    let q = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "/api/v1/audit?action=patient.read&from={}&to={}",
            urlencode(&from.to_rfc3339()),
            urlencode(&to.to_rfc3339())
        )
    };
    let now = SystemClock.now();
    let hour = chrono::Duration::hours(1);
    assert_eq!(
        all(&admin.get(&q(started, now + hour)).await, "seq").len(),
        2
    );
    assert!(all(&admin.get(&q(now + hour, now + hour * 2)).await, "seq").is_empty());
    assert!(all(&admin.get(&q(started - hour, started)).await, "seq").is_empty());

    // Filters that cannot be applied are refused and leave nothing behind; a card number no
    // patient holds is refused too, and that lookup is on the trail.
    let before = node.table_counts();
    for (query, field) in [
        (q(now, now - hour), "to"),
        ("/api/v1/audit?action=Patient!".to_owned(), "action"),
        ("/api/v1/audit?card_number=ab".to_owned(), "card_number"),
        (
            format!(
                "/api/v1/audit?card_number={}&patient={}",
                p0.card_number, p0.id
            ),
            "card_number",
        ),
    ] {
        let refused = admin.get(&query).await;
        assert_eq!(refused.status, 422, "{query}: {}", refused.body);
        assert_eq!(refused.code(), "validation", "{query}");
        assert_eq!(
            refused.body["errors"][0]["field"], field,
            "{query}: {}",
            refused.body
        );
    }
    assert_eq!(
        node.table_counts(),
        before,
        "a refused filter changed something"
    );
    let unknown = admin.get("/api/v1/audit?card_number=ZZ999999").await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert_eq!(unknown.body["errors"][0]["field"], "card_number");
    let db = node.db();
    let (action, outcome, detail): (String, String, String) = db
        .query_row(
            "SELECT action, outcome, detail FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (action.as_str(), outcome.as_str()),
        ("audit.read", "failure"),
        "{detail}"
    );

    // Export: the same entries as the list, oldest first, names beside the ids; and the export
    // is itself on the trail with its filter.
    let reception_tries = reception
        .get(&format!("/api/v1/audit/export?patient={}", p0.id))
        .await;
    assert_eq!(reception_tries.status, 403);
    let res = admin
        .http
        .get(format!(
            "{}/api/v1/audit/export?patient={}",
            node.url, p0.id
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        res.headers()
    );
    let csv = csv_records(&res.text().await.unwrap());
    assert_eq!(
        csv[0],
        [
            "seq",
            "recorded_at",
            "actor",
            "actor_name",
            "action",
            "entity",
            "entity_name",
            "patient",
            "outcome",
            "detail",
            "source",
            "hash"
        ]
    );
    let listed: Vec<String> = all(&on_p0, "seq").iter().map(|s| s.to_string()).collect();
    let exported: Vec<String> = csv[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(exported.len(), listed.len(), "{csv:#?}");
    assert!(
        exported
            .windows(2)
            .all(|w| w[0].parse::<i64>().unwrap() < w[1].parse::<i64>().unwrap()),
        "not oldest first: {exported:?}"
    );
    assert_eq!(
        exported.iter().collect::<BTreeSet<_>>(),
        listed.iter().collect::<BTreeSet<_>>()
    );
    let row = csv
        .iter()
        .find(|r| r[4] == "patient.read" && r[2] == ana_actor)
        .expect("the doctor's read in the export");
    assert_eq!(row[3], node.creds.doctors[0].display_name);
    assert_eq!(row[6], p0.name);
    assert_eq!(row[7], p0.id.to_string());
    let (action, actor, detail): (String, String, String) = db
        .query_row(
            "SELECT action, actor, detail FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(action, "audit.export");
    assert_eq!(actor, staff_id(&admin).await);
    assert_eq!(detail, format!("patient={}", p0.id));

    // A name typed into CareBridge cannot become a formula in the admin's spreadsheet.
    let created = admin
        .post(
            "/api/v1/practitioners",
            json!({"username": "formula", "display_name": "=HYPERLINK(\"http://x\")",
                   "role": "reception", "password": "a-long-enough-password"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let text = admin
        .http
        .get(format!(
            "{}/api/v1/audit/export?action=practitioner.create",
            node.url
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records = csv_records(&text);
    let named = records
        .iter()
        .find(|r| r[6].contains("HYPERLINK"))
        .unwrap_or_else(|| panic!("no named entry: {text}"));
    assert_eq!(named[6], "'=HYPERLINK(\"http://x\")");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

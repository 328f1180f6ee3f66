//! Patient-consented access across hospitals, end to end between real nodes over HTTP, with a
//! real SMTP server (aiosmtpd) taking the one-time codes: St Mary's (the patient's home
//! hospital) and General (the hospital whose doctor asks), peered as `peer add` peers them, and
//! a third hospital for the sender constraint. Every message travels through the outbox and the
//! inbox; every read through the signed federation read API.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::federation::envelope::{MessageType, Sealing, seal};
use carebridge_protocol::federation::request::{
    API_KEY_HEADER, INBOX_PATH, PRACTITIONER_HEADER, ReadTarget, sign_read, sign_request,
};
use carebridge_server::clock::{Clock, ManualClock, SystemClock};
use carebridge_server::node::Node;
use carebridge_testkit::eventually;
use carebridge_testkit::smtp::SmtpServer;
use reqwest::Method;
use serde_json::{Value, json};
use support::hospital::{Side, peer, serve};
use support::{Answer, Client};

const HOME: &str = "st-marys.example";
const ASKING: &str = "general.example";
const THIRD: &str = "third.example";
const WAIT: Duration = Duration::from_secs(30);
const PATIENT_EMAIL: &str = "ada.patient@mail.example";
const REPORTS_AND_PATIENT: [&str; 2] = ["patient/DiagnosticReport.rs", "patient/Patient.r"];

/// St Mary's (with mail), General, and a third hospital peered with St Mary's; St Mary's first
/// patient has an e-mail address on file and a final report.
struct Network {
    home: Side,
    asking: Side,
    third: Side,
    smtp: SmtpServer,
    /// The key St Mary's and General share.
    asking_key: String,
    /// The key St Mary's and the third hospital share.
    third_key: String,
    report_title: String,
}

impl Network {
    async fn start(clock: Arc<dyn Clock>) -> Self {
        let smtp = SmtpServer::start().await;
        let home = Side::start(
            HOME,
            "St Mary's Hospital",
            clock.clone(),
            Some(smtp.port()),
            None,
        )
        .await;
        let asking = Side::start(ASKING, "General Hospital", clock.clone(), None, None).await;
        let third = Side::start(THIRD, "Third Hospital", clock, None, None).await;
        let asking_key = peer(&home, &asking).await;
        let third_key = peer(&home, &third).await;

        // The patient's e-mail address, as reception records it.
        let reception = home.reception().await;
        let p = home.creds.patients[0].id;
        let current = reception.get(&format!("/api/v1/patients/{p}")).await;
        let r = reception
            .call(
                Method::PATCH,
                &format!("/api/v1/patients/{p}"),
                Some(json!({"email": PATIENT_EMAIL})),
                &[("if-match", &format!("\"{}\"", current.body["version"]))],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);

        // A final report, and a draft that must never leave.
        let report_title = "Knee MRI".to_owned();
        home.signed_report_and_a_draft(p, &report_title).await;
        Self {
            home,
            asking,
            third,
            smtp,
            asking_key,
            third_key,
            report_title,
        }
    }

    /// General's doctor `i` asks for St Mary's patient `p`; the request's id.
    async fn ask(&self, doctor: &Client, p: usize, scopes: &[&str], purpose: &str) -> String {
        let card = &self.home.creds.patients[p];
        let local = self.asking.creds.patients[p].id;
        let r = doctor
            .post(
                &format!("/api/v1/patients/{local}/remote-access"),
                json!({"peer": HOME, "card_number": card.card_number, "birth_date": card.birth_date,
                       "purpose": purpose, "scopes": scopes, "hours": 24}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["state"], "pending");
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// The codes e-mailed to the patient so far, oldest first.
    fn codes(&self) -> Vec<String> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| m.envelope_to.iter().any(|t| t == PATIENT_EMAIL))
            .filter_map(|m| code_in(&m.body))
            .collect()
    }

    /// Waits for the `n`th code e-mailed to the patient.
    async fn code(&self, n: usize) -> String {
        eventually(format!("code e-mail #{n} arrives"), WAIT, || async {
            self.codes().len() >= n
        })
        .await;
        self.codes()[n - 1].clone()
    }

    /// The doctor's view of a request at General.
    async fn remote(&self, doctor: &Client, id: &str) -> Value {
        let local = self.asking.creds.patients[0].id;
        let list = doctor
            .get(&format!("/api/v1/patients/{local}/remote-access"))
            .await;
        assert_eq!(list.status, 200, "{}", list.body);
        list.body
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn wait_state(&self, doctor: &Client, id: &str, state: &str) -> Value {
        eventually(format!("request {id} becomes {state}"), WAIT, || async {
            self.remote(doctor, id).await["state"] == state
        })
        .await;
        self.remote(doctor, id).await
    }
}

/// `4821-7730` in a mail's text.
fn code_in(body: &str) -> Option<String> {
    body.split(|c: char| c.is_whitespace())
        .find(|w| {
            w.len() == 9
                && w.as_bytes()[4] == b'-'
                && w.chars().filter(char::is_ascii_digit).count() == 8
        })
        .map(str::to_owned)
}

/// A read of St Mary's federation read API signed with `key` as `signer`, presenting `api_key`,
/// `token` and `practitioner`.
async fn signed_read(
    home: &Side,
    signer: &str,
    key: &ed25519_dalek::SigningKey,
    api_key: &str,
    token: &str,
    practitioner: &str,
    resource: &str,
) -> Answer {
    let path = format!("/federation/v1/fhir/{resource}");
    let authority = home.url.trim_start_matches("http://").to_owned();
    let authorization = format!("Bearer {token}");
    let s = sign_read(
        &ReadTarget {
            path: &path,
            query: "",
            authorization: &authorization,
            practitioner,
        },
        &authority,
        signer,
        key,
        SystemClock.now(),
    )
    .unwrap();
    let r = support::http()
        .get(format!("{}{path}", home.url))
        .header(API_KEY_HEADER, api_key)
        .header("authorization", authorization)
        .header(PRACTITIONER_HEADER, practitioner)
        .header("signature-input", s.signature_input)
        .header("signature", s.signature)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// The token General holds for a request.
fn token_of(asking: &Side, id: &str) -> String {
    asking
        .db()
        .query_row("SELECT token FROM remote_access WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

fn report_titles(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["resource"]["resourceType"] == "DiagnosticReport")
                .map(|e| {
                    e["resource"]["code"]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patient_approves_by_emailed_code_and_the_doctor_reads_their_signed_reports() {
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let id = net.ask(&doctor, 0, &REPORTS_AND_PATIENT, "treatment").await;

    let mail = net.smtp.wait_for_message(PATIENT_EMAIL, WAIT).await;
    assert_eq!(
        mail.subject,
        format!(
            "{} asks to read your personal details and reports",
            net.asking.creds.doctors[0].display_name
        )
    );
    assert!(mail.body.contains("General Hospital"), "{}", mail.body);
    let code = code_in(&mail.body).expect("the mail carries a code");
    // The code's text is forgotten once sent, and never audited.
    eventually("the mail is marked sent", WAIT, || async {
        net.home.count(
            "SELECT count(*) FROM mail_outbox WHERE state = 'sent' AND body IS NULL",
            &[],
        ) == 1
    })
    .await;
    assert_eq!(
        net.home.count(
            "SELECT count(*) FROM audit WHERE detail LIKE '%' || ?1 || '%'",
            &[&code.replace('-', "")]
        ),
        0
    );

    // The front desk sees the request pending, live.
    let reception = net.home.reception().await;
    let p = net.home.creds.patients[0].id;
    let pending = reception
        .get(&format!("/api/v1/patients/{p}/access-requests"))
        .await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    assert_eq!(pending.body[0]["state"], "pending");
    assert_eq!(pending.body[0]["organisation"], "General Hospital");

    let r = doctor
        .post(
            &format!("/api/v1/remote-access/{id}/code"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let granted = net.wait_state(&doctor, &id, "granted").await;
    assert_eq!(granted["organisation"], "St Mary's Hospital");
    assert_eq!(
        granted["patient"]["global_id"],
        format!("{p}@{HOME}"),
        "{granted}"
    );
    let grant_id = granted["grant_id"].as_str().unwrap().to_owned();

    // The doctor reads the signed reports, and only those: the draft stays at St Mary's.
    let reports = doctor
        .get(&format!(
            "/api/v1/remote-access/{id}/records/DiagnosticReport"
        ))
        .await;
    assert_eq!(reports.status, 200, "{}", reports.body);
    assert_eq!(reports.body["resourceType"], "Bundle");
    assert_eq!(report_titles(&reports.body), vec![net.report_title.clone()]);
    let me = doctor
        .get(&format!("/api/v1/remote-access/{id}/records/Patient"))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["entry"][0]["resource"]["resourceType"], "Patient");
    // Appointments were not asked for, so not granted.
    let appts = doctor
        .get(&format!("/api/v1/remote-access/{id}/records/Appointment"))
        .await;
    assert_eq!(appts.status, 403, "{}", appts.body);
    // Another doctor at General does not see the request, nor read under it.
    let colleague = net.asking.doctor(1).await;
    assert_eq!(net.remote(&colleague, &id).await, Value::Null);
    let theirs = colleague
        .get(&format!(
            "/api/v1/remote-access/{id}/records/DiagnosticReport"
        ))
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);

    // "Who looked at my record", at the front desk.
    let reads = reception
        .get(&format!("/api/v1/patients/{p}/access-reads"))
        .await;
    assert_eq!(reads.status, 200, "{}", reads.body);
    let reads = reads.body.as_array().unwrap().clone();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().all(|r| r["grant_id"] == grant_id.as_str()));
    assert!(
        reads
            .iter()
            .all(|r| r["organisation"] == "General Hospital")
    );

    // St Mary's records the grant as the patient's FHIR Consent: permit, to the doctor and
    // their hospital, for the scopes' resource types, the purpose and the period.
    let consents = reception
        .get(&format!("/fhir/R4/Consent?patient=Patient/{p}"))
        .await;
    assert_eq!(consents.status, 200, "{}", consents.body);
    assert_eq!(consents.body["total"], 1, "{}", consents.body);
    let consent = &consents.body["entry"][0]["resource"];
    assert_eq!(consent["id"], grant_id.as_str());
    assert_eq!(consent["status"], "active");
    assert_eq!(consent["patient"]["reference"], format!("Patient/{p}"));
    assert_eq!(
        consent["performer"][0]["reference"],
        format!("Patient/{p}"),
        "approved by the patient, with the code"
    );
    let provision = &consent["provision"];
    assert_eq!(provision["type"], "permit");
    assert_eq!(provision["purpose"][0]["code"], "TREAT");
    assert_eq!(
        provision["actor"][0]["reference"]["display"],
        net.asking.creds.doctors[0].display_name.as_str()
    );
    assert_eq!(
        provision["actor"][1]["reference"]["identifier"]["value"],
        ASKING
    );
    let mut classes: Vec<&str> = provision["class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    classes.sort_unstable();
    assert_eq!(classes, ["DiagnosticReport", "Patient"]);
    let start =
        chrono::DateTime::parse_from_rfc3339(provision["period"]["start"].as_str().unwrap())
            .unwrap();
    let end =
        chrono::DateTime::parse_from_rfc3339(provision["period"]["end"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, chrono::Duration::hours(24));
    // The same by its id; a doctor at St Mary's does not see other hospitals' grants.
    let by_id = reception
        .get(&format!("/fhir/R4/Consent?_id={grant_id}"))
        .await;
    assert_eq!(by_id.body["total"], 1, "{}", by_id.body);
    let home_doctor = net.home.doctor(0).await;
    let theirs = home_doctor
        .get(&format!("/fhir/R4/Consent?patient=Patient/{p}"))
        .await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(theirs.body["total"], 0, "{}", theirs.body);

    // Both audit trails name the grant: an auditor joins them on it.
    let entity = format!("grant/{grant_id}");
    let at_home = net.home.audited("access.read", &entity);
    let at_asking = net.asking.audited("access.read", &entity);
    assert_eq!(
        at_home
            .iter()
            .filter(|(_, outcome, _)| outcome == "success")
            .count(),
        2,
        "{at_home:?}"
    );
    assert!(
        at_home
            .iter()
            .all(|(actor, _, _)| actor == &format!("peer:{ASKING}"))
    );
    assert_eq!(
        at_asking.len(),
        3,
        "two reads and one refusal: {at_asking:?}"
    );
    net.home.verify_audit();
    net.asking.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_wrong_codes_count_exactly_five_and_then_the_right_one_is_refused() {
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let id = net.ask(&doctor, 0, &REPORTS_AND_PATIENT, "treatment").await;
    let code = net.code(1).await;
    let wrong = if code == "0000-0000" {
        "0000-0001"
    } else {
        "0000-0000"
    };
    let request: uuid::Uuid = id.parse().unwrap();

    // 200 sealed, signed access-approve envelopes from General, all sent at once.
    let home_pub = x25519_dalek::PublicKey::from(&net.home.node.agreement_key);
    let authority = net.home.url.trim_start_matches("http://").to_owned();
    let mut sends = Vec::new();
    for _ in 0..200 {
        let payload = serde_json::to_vec(&json!({"request_id": request, "code": wrong})).unwrap();
        let env = seal(
            &Sealing {
                message_type: MessageType::AccessApprove,
                source: ASKING,
                destination: HOME,
                created_at: SystemClock.now(),
            },
            &payload,
            &net.asking.node.agreement_key,
            &home_pub,
        )
        .unwrap();
        let body = env.to_bytes().unwrap();
        let signed = sign_request(
            INBOX_PATH,
            &authority,
            &body,
            ASKING,
            &net.asking.node.signing_key,
            SystemClock.now(),
        )
        .unwrap();
        let req = support::http()
            .post(format!("{}{INBOX_PATH}", net.home.url))
            .header("content-type", "application/json")
            .header(API_KEY_HEADER, &net.asking_key)
            .header("content-digest", signed.content_digest)
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature)
            .body(body);
        sends.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    let started = futures_util::future::join_all(sends).await;
    let accepted = started
        .into_iter()
        .filter(|s| s.as_ref().unwrap().is_success())
        .count();
    assert_eq!(accepted, 200, "every envelope is valid and stored");

    let (wrong_codes, state): (i64, String) = net
        .home
        .db()
        .query_row(
            "SELECT wrong_codes, state FROM access_requests WHERE peer_request_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((wrong_codes, state.as_str()), (5, "locked"));
    let locked = net.wait_state(&doctor, &id, "locked").await;
    assert_eq!(locked["tries_left"], 0);

    // The right code, afterwards, through General: refused at General, which knows it is locked.
    let r = doctor
        .post(
            &format!("/api/v1/remote-access/{id}/code"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // And sent straight to St Mary's inbox: stored, counted nothing, granted nothing.
    let payload = serde_json::to_vec(&json!({"request_id": request, "code": code})).unwrap();
    let env = seal(
        &Sealing {
            message_type: MessageType::AccessApprove,
            source: ASKING,
            destination: HOME,
            created_at: SystemClock.now(),
        },
        &payload,
        &net.asking.node.agreement_key,
        &home_pub,
    )
    .unwrap();
    let body = env.to_bytes().unwrap();
    let signed = sign_request(
        INBOX_PATH,
        &authority,
        &body,
        ASKING,
        &net.asking.node.signing_key,
        SystemClock.now(),
    )
    .unwrap();
    let r = support::http()
        .post(format!("{}{INBOX_PATH}", net.home.url))
        .header("content-type", "application/json")
        .header(API_KEY_HEADER, &net.asking_key)
        .header("content-digest", signed.content_digest)
        .header("signature-input", signed.signature_input)
        .header("signature", signed.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(net.home.count("SELECT count(*) FROM access_grants", &[]), 0);
    assert_eq!(
        net.home.count(
            "SELECT wrong_codes FROM access_requests WHERE peer_request_id = ?1",
            &[&id]
        ),
        5
    );
    // The received payloads keep no code.
    assert_eq!(
        net.home.count(
            "SELECT count(*) FROM received WHERE CAST(payload AS TEXT) LIKE '%' || ?1 || '%'",
            &[&code]
        ),
        0
    );
    net.home.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_works_only_for_its_request_once_and_within_ten_minutes_and_a_request_waits_a_day() {
    let clock = ManualClock::new(SystemClock.now());
    let net = Network::start(Arc::new(clock.clone())).await;
    let doctor = net.asking.doctor(0).await;
    let first = net.ask(&doctor, 0, &REPORTS_AND_PATIENT, "treatment").await;
    let first_code = net.code(1).await;
    let second = net
        .ask(&doctor, 0, &["patient/Patient.r"], "treatment")
        .await;
    let second_code = net.code(2).await;

    // Request 1's code on request 2: a wrong code there.
    let r = doctor
        .post(
            &format!("/api/v1/remote-access/{second}/code"),
            json!({"code": first_code}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the wrong code is counted", WAIT, || async {
        net.remote(&doctor, &second).await["tries_left"] == 4
    })
    .await;
    // Its own code grants it.
    doctor
        .post(
            &format!("/api/v1/remote-access/{second}/code"),
            json!({"code": second_code}),
        )
        .await;
    net.wait_state(&doctor, &second, "granted").await;
    // Used again: General refuses to pass it on; St Mary's would not grant twice.
    let again = doctor
        .post(
            &format!("/api/v1/remote-access/{second}/code"),
            json!({"code": second_code}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(net.home.count("SELECT count(*) FROM access_grants", &[]), 1);

    // Eleven minutes later, request 1's own code has expired.
    clock.advance(chrono::Duration::minutes(11));
    let late = doctor
        .post(
            &format!("/api/v1/remote-access/{first}/code"),
            json!({"code": first_code}),
        )
        .await;
    assert_eq!(late.status, 202, "{}", late.body);
    net.wait_state(&doctor, &first, "expired").await;
    assert_eq!(net.home.count("SELECT count(*) FROM access_grants", &[]), 1);

    // A request nobody answers waits the policy's 24 hours, then expires: St Mary's minute job
    // tells General, and neither a kiosk nor a code can grant it afterwards.
    let waiting = net
        .ask(&doctor, 0, &["patient/Patient.r"], "treatment")
        .await;
    let waiting_code = net.code(3).await;
    eventually("St Mary's holds the waiting request", WAIT, || async {
        net.home.count(
            "SELECT count(*) FROM access_requests WHERE state = 'pending'",
            &[],
        ) == 1
    })
    .await;
    clock.advance(chrono::Duration::hours(23));
    carebridge_server::federation::access::end_due(&net.home.node)
        .await
        .unwrap();
    assert_eq!(
        net.home.count(
            "SELECT count(*) FROM access_requests WHERE state = 'pending'",
            &[]
        ),
        1,
        "still within its 24 hours"
    );
    clock.advance(chrono::Duration::hours(2));
    carebridge_server::federation::access::end_due(&net.home.node)
        .await
        .unwrap();
    // A day on, the doctor's session has lapsed: they sign in again.
    let doctor = net.asking.doctor(0).await;
    assert_eq!(
        net.home.count(
            "SELECT count(*) FROM access_requests WHERE state = 'pending'",
            &[]
        ),
        0
    );
    net.wait_state(&doctor, &waiting, "expired").await;
    let late = doctor
        .post(
            &format!("/api/v1/remote-access/{waiting}/code"),
            json!({"code": waiting_code}),
        )
        .await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(net.home.count("SELECT count(*) FROM access_grants", &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_is_honoured_only_from_its_node_for_its_doctor_and_its_scopes() {
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let id = net
        .ask(&doctor, 0, &["patient/DiagnosticReport.rs"], "treatment")
        .await;
    let code = net.code(1).await;
    doctor
        .post(
            &format!("/api/v1/remote-access/{id}/code"),
            json!({"code": code}),
        )
        .await;
    net.wait_state(&doctor, &id, "granted").await;
    let token = token_of(&net.asking, &id);
    let me = net.asking.doctor_id(0);

    // General, for its doctor, within scope: allowed.
    let ok = signed_read(
        &net.home,
        ASKING,
        &net.asking.node.signing_key,
        &net.asking_key,
        &token,
        &me,
        "DiagnosticReport",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The third hospital, with its own valid key and API key, presenting General's token.
    let stolen = signed_read(
        &net.home,
        THIRD,
        &net.third.node.signing_key,
        &net.third_key,
        &token,
        &me,
        "DiagnosticReport",
    )
    .await;
    assert_eq!(stolen.status, 403, "{}", stolen.body);
    // General, naming another of its doctors.
    let other = net.asking.doctor_id(1);
    let colleague = signed_read(
        &net.home,
        ASKING,
        &net.asking.node.signing_key,
        &net.asking_key,
        &token,
        &other,
        "DiagnosticReport",
    )
    .await;
    assert_eq!(colleague.status, 403, "{}", colleague.body);
    // Another type than the scope's.
    for resource in ["Appointment", "Patient"] {
        let out = signed_read(
            &net.home,
            ASKING,
            &net.asking.node.signing_key,
            &net.asking_key,
            &token,
            &me,
            resource,
        )
        .await;
        assert_eq!(out.status, 403, "{resource}: {}", out.body);
    }
    // Signed by General's key but sent with the third hospital's API key.
    let mixed = signed_read(
        &net.home,
        ASKING,
        &net.asking.node.signing_key,
        &net.third_key,
        &token,
        &me,
        "DiagnosticReport",
    )
    .await;
    assert_eq!(mixed.status, 401, "{}", mixed.body);
    // Nothing is written through the read API.
    let write = support::http()
        .post(format!(
            "{}/federation/v1/fhir/DiagnosticReport",
            net.home.url
        ))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({"resourceType": "DiagnosticReport"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 405);
    // Only the one allowed read was recorded.
    assert_eq!(net.home.count("SELECT count(*) FROM access_reads", &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_is_refused_at_once_and_told_to_the_reader_once_it_is_back() {
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let id = net.ask(&doctor, 0, &REPORTS_AND_PATIENT, "treatment").await;
    let code = net.code(1).await;
    doctor
        .post(
            &format!("/api/v1/remote-access/{id}/code"),
            json!({"code": code}),
        )
        .await;
    net.wait_state(&doctor, &id, "granted").await;
    let token = token_of(&net.asking, &id);
    let me = net.asking.doctor_id(0);
    let key = net.asking.node.signing_key.clone();

    // General goes down.
    let Network {
        home,
        asking,
        third,
        smtp: _smtp,
        asking_key,
        ..
    } = net;
    let (asking_dir, asking_url, cfg) = asking.stop().await;

    // The patient revokes at St Mary's front desk.
    let reception = home.reception().await;
    let p = home.creds.patients[0].id;
    let list = reception
        .get(&format!("/api/v1/patients/{p}/access-requests"))
        .await;
    let here = list.body[0]["id"].as_str().unwrap().to_owned();
    let r = reception
        .post(&format!("/api/v1/access-requests/{here}/revoke"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "revoked");

    // General's next read is refused at once, though General has not heard.
    let refused = signed_read(
        &home,
        ASKING,
        &key,
        &asking_key,
        &token,
        &me,
        "DiagnosticReport",
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        home.count(
            "SELECT count(*) FROM transmissions WHERE message_type = 'access-revoked' AND state != 'acknowledged'",
            &[]
        ),
        1,
        "the revocation waits in the outbox"
    );

    // General comes back on its address; the revocation is delivered and acknowledged.
    let addr = asking_url.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
    let served = serve(node.clone(), listener);
    eventually("the revocation is acknowledged", WAIT, || async {
        home.count(
            "SELECT count(*) FROM transmissions WHERE message_type = 'access-revoked' AND state = 'acknowledged'",
            &[],
        ) == 1
    })
    .await;
    let db = carebridge_server::store::open_connection(
        &node.config.db_path(),
        &carebridge_server::node::load_key(&node.config).unwrap(),
        true,
    )
    .unwrap();
    let (state, token_kept): (String, Option<String>) = db
        .query_row(
            "SELECT state, token FROM remote_access WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), token_kept), ("revoked", None));
    node.shutdown.cancel();
    let _ = served.await;
    drop(third);
    drop(asking_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_patient_allows_a_narrower_grant_at_the_kiosk_and_unknown_patients_are_answered_alike()
{
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let id = net
        .ask(
            &doctor,
            0,
            &["patient/DiagnosticReport.rs", "patient/Appointment.rs"],
            "treatment",
        )
        .await;
    net.code(1).await;

    // At St Mary's kiosk, the patient identifies and sees the request.
    let kiosk = net.home.kiosk().await;
    let card = &net.home.creds.patients[0];
    let p = card.id;
    let who = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": card.card_number, "birth_date": card.birth_date}),
        )
        .await;
    assert_eq!(who.status, 200, "{}", who.body);
    let list = kiosk
        .get(&format!("/api/v1/patients/{p}/access-requests"))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let here = list.body[0]["id"].as_str().unwrap().to_owned();
    // Widening is refused; narrowing is allowed.
    let wider = kiosk
        .post(
            &format!("/api/v1/access-requests/{here}/decision"),
            json!({"allow": true, "scopes": ["patient/Patient.r"]}),
        )
        .await;
    assert_eq!(wider.status, 422, "{}", wider.body);
    let r = kiosk
        .post(
            &format!("/api/v1/access-requests/{here}/decision"),
            json!({"allow": true, "scopes": ["patient/DiagnosticReport.rs"], "hours": 4}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["approved_by"], "kiosk");
    let granted = net.wait_state(&doctor, &id, "granted").await;
    assert_eq!(granted["scopes"], json!(["patient/DiagnosticReport.rs"]));
    let appts = doctor
        .get(&format!("/api/v1/remote-access/{id}/records/Appointment"))
        .await;
    assert_eq!(appts.status, 403, "{}", appts.body);
    // A kiosk cannot answer for a patient who did not identify there.
    let other = net.home.creds.patients[1].id;
    let theirs = kiosk
        .get(&format!("/api/v1/patients/{other}/access-requests"))
        .await;
    assert_eq!(theirs.status, 403, "{}", theirs.body);
    // The patient finishes: the kiosk answers for them no longer, at once.
    let done = kiosk
        .call(Method::DELETE, "/api/v1/kiosk/identify", None, &[])
        .await;
    assert_eq!(done.status, 204, "{}", done.body);
    let after = kiosk
        .get(&format!("/api/v1/patients/{p}/access-requests"))
        .await;
    assert_eq!(after.status, 403, "{}", after.body);
    let revoke = kiosk
        .post(&format!("/api/v1/access-requests/{here}/revoke"), json!({}))
        .await;
    assert_eq!(revoke.status, 403, "{}", revoke.body);
    assert_eq!(
        net.home.count(
            "SELECT count(*) FROM access_grants WHERE revoked_at IS NULL",
            &[]
        ),
        1,
        "still granted"
    );

    // A card number nobody has: the request is accepted just the same, no mail leaves.
    let local = net.asking.creds.patients[1].id;
    let r = doctor
        .post(
            &format!("/api/v1/patients/{local}/remote-access"),
            json!({"peer": HOME, "card_number": "NO-SUCH-CARD", "birth_date": "1970-01-01",
                   "purpose": "treatment", "scopes": ["patient/Patient.r"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let unknown = r.body["id"].as_str().unwrap().to_owned();
    eventually("the unknown patient's request is acknowledged", WAIT, || async {
        net.asking.count(
            "SELECT count(*) FROM transmissions WHERE message_type = 'access-request' AND state = 'acknowledged'",
            &[],
        ) == 2
    })
    .await;
    assert_eq!(net.codes().len(), 1, "no mail for an unknown patient");
    // Any code is simply wrong there.
    doctor
        .post(
            &format!("/api/v1/remote-access/{unknown}/code"),
            json!({"code": "1234-5678"}),
        )
        .await;
    eventually("the code is refused as wrong", WAIT, || async {
        let list = doctor
            .get(&format!("/api/v1/patients/{local}/remote-access"))
            .await;
        list.body
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == unknown.as_str() && a["tries_left"] == 4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emergency_access_is_granted_without_the_patient_for_four_hours_and_told_to_them() {
    let net = Network::start(Arc::new(SystemClock)).await;
    let doctor = net.asking.doctor(0).await;
    let card = &net.home.creds.patients[0];
    let local = net.asking.creds.patients[0].id;
    let too_long = doctor
        .post(
            &format!("/api/v1/patients/{local}/remote-access"),
            json!({"peer": HOME, "card_number": card.card_number, "birth_date": card.birth_date,
                   "purpose": "emergency", "scopes": REPORTS_AND_PATIENT, "hours": 24}),
        )
        .await;
    assert_eq!(too_long.status, 422, "{}", too_long.body);
    let r = doctor
        .post(
            &format!("/api/v1/patients/{local}/remote-access"),
            json!({"peer": HOME, "card_number": card.card_number, "birth_date": card.birth_date,
                   "purpose": "emergency", "scopes": REPORTS_AND_PATIENT, "hours": 4}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let granted = net.wait_state(&doctor, &id, "granted").await;
    let grant_id = granted["grant_id"].as_str().unwrap();
    let reports = doctor
        .get(&format!(
            "/api/v1/remote-access/{id}/records/DiagnosticReport"
        ))
        .await;
    assert_eq!(reports.status, 200, "{}", reports.body);
    // At most four hours.
    let (starts, expires): (i64, i64) = net
        .home
        .db()
        .query_row(
            "SELECT starts_at, expires_at FROM access_grants WHERE id = ?1",
            [grant_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(expires - starts, 4 * 3_600_000);
    // The admins' audit says it plainly, and the patient is told afterwards.
    let received: Vec<String> = {
        let c = net.home.db();
        let mut st = c
            .prepare("SELECT detail FROM audit WHERE action = 'federation.receive' ORDER BY seq")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(
        received
            .iter()
            .any(|d| d.starts_with("EMERGENCY access granted")),
        "{received:?}"
    );
    let told = net.smtp.wait_for_message(PATIENT_EMAIL, WAIT).await;
    assert!(
        told.subject.contains("emergency access"),
        "{}",
        told.subject
    );
    assert!(
        code_in(&told.body).is_none(),
        "no code in an emergency notice"
    );
}

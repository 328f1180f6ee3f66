//! Two real nodes, a hospital and an insurer, peered as `peer add` peers them: reports sent
//! with consent arrive sealed, signed and stored once; admin updates go the other way and
//! their acknowledgements come back; every forged, altered, replayed, late or misdirected
//! request is refused with its status, stores nothing and is audited; the receiver down
//! keeps the transmission queued until it returns; retention deletes and audits; and both
//! audit chains verify afterwards (and break when a row is edited).
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::federation::envelope::{Envelope, MessageType, Sealing, seal};
use carebridge_protocol::federation::request::{API_KEY_HEADER, INBOX_PATH, sign_request};
use carebridge_server::clock::{Clock, ManualClock, SystemClock};
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoCredentials, DemoSize};
use carebridge_server::federation::peer::{AddPeer, SourceRule};
use carebridge_server::node::{InitOptions, Node, init};
use carebridge_testkit::eventually;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Client};

const HOSPITAL: &str = "st-marys.example";
const INSURER: &str = "assure.example";
const HOSPITAL_SOURCE: &str = "127.0.0.2";
const WAIT: Duration = Duration::from_secs(20);

/// A node served in-process.
struct Side {
    node: Arc<Node>,
    url: String,
    addr: String,
    _dir: tempfile::TempDir,
    served: tokio::task::JoinHandle<()>,
}

impl Side {
    async fn stop(self) {
        self.node.shutdown.cancel();
        let _ = self.served.await;
    }

    async fn sign_in(&self, username: &str, password: &str) -> Client {
        Client::sign_in(&self.url, username, password).await
    }

    /// A connection of the test's own to the node's database, to count and tamper with.
    fn db(&self, read_only: bool) -> rusqlite::Connection {
        carebridge_server::store::open_connection(
            &self.node.config.db_path(),
            &carebridge_server::node::load_key(&self.node.config).unwrap(),
            read_only,
        )
        .unwrap()
    }

    /// Every table's row count, by table.
    fn table_counts(&self) -> std::collections::BTreeMap<String, i64> {
        support::table_counts(&self.db(true))
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.db(true).query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The audit entries of `action`, as (outcome, detail).
    async fn audited(&self, action: &'static str) -> Vec<(String, String)> {
        let c = self.db(true);
        let mut st = c
            .prepare("SELECT outcome, detail FROM audit WHERE action = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn verify_audit(&self) -> Result<(), String> {
        let reader = carebridge_server::store::Reader::open(
            &self.node.config.db_path(),
            &carebridge_server::node::load_key(&self.node.config).unwrap(),
        )
        .unwrap();
        match carebridge_server::store::audit::verify(&reader.tx()).unwrap() {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

struct Pair {
    hospital: Side,
    insurer: Side,
    creds: DemoCredentials,
    /// The API key the pair shares.
    api_key: String,
    insurer_clock: ManualClock,
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

async fn identity(
    node: &Arc<Node>,
    url: &str,
) -> carebridge_protocol::federation::identity::NodeIdentity {
    let cfg = node.config.clone();
    let url = url.to_owned();
    node.store
        .read(move |c| carebridge_server::identity::identity(c, &cfg, &url))
        .await
        .unwrap()
}

fn serve(node: Arc<Node>, l: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        carebridge_server::serve::serve(node, l).await.unwrap();
    })
}

/// A seeded hospital and an insurer with a reviewer, peered both ways; the hospital sends
/// from 127.0.0.2, which is all the insurer accepts it from.
async fn pair() -> Pair {
    let (hl, haddr) = listener().await;
    let (il, iaddr) = listener().await;
    let (hurl, iurl) = (format!("http://{haddr}"), format!("http://{iaddr}"));

    let hdir = tempfile::tempdir().unwrap();
    let mut hcfg = support::init_dir(hdir.path());
    hcfg.federation_source = Some(HOSPITAL_SOURCE.parse().unwrap());
    hcfg.delivery_max_backoff_seconds = 1;
    hcfg.organisation = Some("St Mary's Hospital".into());
    let hospital = Node::open(hcfg, Arc::new(SystemClock)).unwrap();
    let size = DemoSize {
        doctors: 2,
        days: 1,
        patients: 5,
        bench: false,
        appointments: None,
    };
    let creds = demo::seed(&hospital, &size, &hurl).await.unwrap();

    let idir = tempfile::tempdir().unwrap();
    let mut icfg = init(
        idir.path(),
        &InitOptions {
            name: INSURER.into(),
            kind: NodeKind::Insurer,
            time_zone: "Europe/Amsterdam".into(),
            admin_username: "admin".into(),
            admin_password: demo::ADMIN_PASSWORD.into(),
            database_url: None,
        },
        &SystemClock,
    )
    .unwrap();
    icfg.organisation = Some("Assure Health Insurance".into());
    icfg.retention_days = 30;
    let insurer_clock = ManualClock::new(SystemClock.now());
    let insurer = Node::open(icfg, Arc::new(insurer_clock.clone())).unwrap();

    let (api_key, fresh) = carebridge_server::federation::peering::add(
        &hospital,
        AddPeer {
            identity: identity(&insurer, &iurl).await,
            allowed_sources: vec![SourceRule::parse("127.0.0.1").unwrap()],
            allowed_types: Vec::new(),
            their_api_key: None,
        },
    )
    .await
    .unwrap();
    assert!(fresh);
    let (same, fresh) = carebridge_server::federation::peering::add(
        &insurer,
        AddPeer {
            identity: identity(&hospital, &hurl).await,
            allowed_sources: vec![SourceRule::parse(HOSPITAL_SOURCE).unwrap()],
            allowed_types: Vec::new(),
            their_api_key: Some(api_key.clone()),
        },
    )
    .await
    .unwrap();
    assert!(!fresh && same == api_key);

    let pair = Pair {
        hospital: Side {
            served: serve(hospital.clone(), hl),
            node: hospital,
            url: hurl,
            addr: haddr,
            _dir: hdir,
        },
        insurer: Side {
            served: serve(insurer.clone(), il),
            node: insurer,
            url: iurl,
            addr: iaddr,
            _dir: idir,
        },
        creds,
        api_key,
        insurer_clock,
    };
    let admin = pair.insurer.sign_in("admin", demo::ADMIN_PASSWORD).await;
    let r = admin
        .post(
            "/api/v1/practitioners",
            json!({"username": "reviewer", "display_name": "Rita Reviewer", "role": "reviewer", "password": "reviewer-demo-pass"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let wrong = admin
        .post(
            "/api/v1/practitioners",
            json!({"username": "doc", "display_name": "D", "role": "doctor", "password": "doctor-demo-pass"}),
        )
        .await;
    assert_eq!(
        wrong.status, 422,
        "an insurer has no doctors: {}",
        wrong.body
    );
    pair
}

impl Pair {
    async fn doctor(&self) -> Client {
        let d = &self.creds.doctors[0];
        self.hospital.sign_in(&d.username, &d.password).await
    }

    async fn reviewer(&self) -> Client {
        self.insurer.sign_in("reviewer", "reviewer-demo-pass").await
    }

    /// A final report about patient `i`, and the patient's consent to share with the insurer.
    async fn final_report(&self, doctor: &Client, i: usize, title: &str) -> String {
        let patient = self.creds.patients[i].id;
        let r = doctor
            .post(
                "/api/v1/reports",
                json!({"patient_id": patient, "content": {"title": title, "findings": "Findings.", "conclusion": "Conclusion.", "codes": ["Z00.0"]}}),
            )
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let f = doctor
            .call(
                Method::POST,
                &format!("/api/v1/reports/{id}/finalise"),
                None,
                &[("if-match", &format!("\"{}\"", r.body["version"]))],
            )
            .await;
        assert_eq!(f.status, 200, "{}", f.body);
        id
    }

    async fn consent(&self, doctor: &Client, i: usize) {
        let patient = self.creds.patients[i].id;
        let c = doctor
            .post(
                &format!("/api/v1/patients/{patient}/consents"),
                json!({"peer": INSURER}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.body);
    }

    /// A request to the insurer's inbox as the hospital would make it, with changes.
    fn envelope(&self, t: MessageType, payload: &[u8]) -> Envelope {
        seal(
            &Sealing {
                message_type: t,
                source: HOSPITAL,
                destination: INSURER,
                created_at: SystemClock.now(),
            },
            payload,
            &self.hospital.node.agreement_key,
            &x25519_dalek::PublicKey::from(&self.insurer.node.agreement_key),
        )
        .unwrap()
    }
}

/// Posts `body` to the insurer's inbox from `from`, signed by `key` as `keyid` at `created`.
struct Forge<'a> {
    from: &'a str,
    api_key: &'a str,
    keyid: &'a str,
    key: &'a ed25519_dalek::SigningKey,
    created: chrono::DateTime<chrono::Utc>,
    /// What is signed (the digest covers it).
    signed_body: Vec<u8>,
    /// What is sent (differs when testing a body changed after signing).
    sent_body: Vec<u8>,
}

impl Forge<'_> {
    fn headers(&self, authority: &str) -> Vec<(String, String)> {
        let h = sign_request(
            INBOX_PATH,
            authority,
            &self.signed_body,
            self.keyid,
            self.key,
            self.created,
        )
        .unwrap();
        vec![
            ("content-type".into(), "application/json".into()),
            (API_KEY_HEADER.into(), self.api_key.into()),
            ("content-digest".into(), h.content_digest),
            ("signature-input".into(), h.signature_input),
            ("signature".into(), h.signature),
        ]
    }
}

async fn post(url: &str, from: &str, headers: &[(String, String)], body: Vec<u8>) -> Answer {
    let http = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut req = http.post(format!("{url}{INBOX_PATH}")).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forged_altered_replayed_late_or_misdirected_request_is_refused_stores_nothing_and_is_audited()
 {
    let p = pair().await;
    let payload = br#"{"not": "checked before the envelope opens"}"#;
    let good = p
        .envelope(MessageType::MedicalReports, payload)
        .to_bytes()
        .unwrap();
    let hospital_key = p.hospital.node.signing_key.clone();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let now = SystemClock.now();
    let base = |body: &[u8]| Forge {
        from: HOSPITAL_SOURCE,
        api_key: &p.api_key,
        keyid: HOSPITAL,
        key: &hospital_key,
        created: now,
        signed_body: body.to_vec(),
        sent_body: body.to_vec(),
    };
    let mut bad_checksum = p.envelope(MessageType::MedicalReports, payload);
    bad_checksum.checksum = "00".repeat(32);
    let mut bad_tag = p.envelope(MessageType::MedicalReports, payload);
    let mut raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &bad_tag.ciphertext,
    )
    .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    bad_tag.ciphertext = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
    let not_allowed = p
        .envelope(MessageType::AdminUpdate, payload)
        .to_bytes()
        .unwrap();

    let cases: Vec<(&str, Forge<'_>, u16, &str)> = vec![
        (
            "wrong API key",
            Forge {
                api_key: "not-the-key-not-the-key-not-the-key",
                ..base(&good)
            },
            401,
            "unknown-api-key",
        ),
        (
            "unknown signer",
            Forge {
                keyid: "stranger.example",
                key: &stranger,
                ..base(&good)
            },
            401,
            "unknown-signer",
        ),
        (
            "bad signature",
            Forge {
                key: &stranger,
                ..base(&good)
            },
            401,
            "bad-signature",
        ),
        (
            "body changed after signing",
            Forge {
                sent_body: not_allowed.clone(),
                ..base(&good)
            },
            400,
            "digest-mismatch",
        ),
        (
            "checksum mismatch",
            base(&bad_checksum.to_bytes().unwrap()),
            400,
            "checksum-mismatch",
        ),
        (
            "AES-GCM tag mismatch",
            base(&bad_tag.to_bytes().unwrap()),
            400,
            "envelope-tag-mismatch",
        ),
        (
            "timestamp outside the window",
            Forge {
                created: now - chrono::Duration::minutes(6),
                ..base(&good)
            },
            401,
            "signature-expired",
        ),
        (
            "source address not allowed",
            Forge {
                from: "127.0.0.3",
                ..base(&good)
            },
            403,
            "source-not-allowed",
        ),
        (
            "message type not allowed",
            base(&not_allowed),
            403,
            "message-type-not-allowed",
        ),
    ];
    let tables_before = p.insurer.table_counts();
    assert!(tables_before.len() > 10, "{tables_before:?}");
    for (what, forge, status, code) in &cases {
        let a = post(
            &p.insurer.url,
            forge.from,
            &forge.headers(&p.insurer.addr),
            forge.sent_body.clone(),
        )
        .await;
        assert_eq!(a.status.as_u16(), *status, "{what}: {}", a.body);
        assert_eq!(a.body["code"], *code, "{what}: {}", a.body);
        assert!(a.is_problem(), "{what}");
    }
    // Nothing stored in any table: only the refusals' audit entries were added.
    let mut expected = tables_before.clone();
    *expected.get_mut("audit").unwrap() += cases.len() as i64;
    assert_eq!(p.insurer.table_counts(), expected, "nothing stored");
    let refused = p.insurer.audited("federation.refused").await;
    assert_eq!(
        refused.len(),
        cases.len(),
        "each refusal audited: {refused:?}"
    );
    for ((what, _, _, code), (outcome, detail)) in cases.iter().zip(&refused) {
        assert_eq!(outcome, "failure", "{what}");
        assert!(detail.starts_with(code), "{what}: {detail}");
    }

    // A well-formed request is stored once; replaying it is refused; the sender's retry of
    // the same envelope (a new signature) gets the first receipt and stores nothing new.
    let valid = base(&good);
    let headers = valid.headers(&p.insurer.addr);
    let first = post(&p.insurer.url, HOSPITAL_SOURCE, &headers, good.clone()).await;
    // The payload is not a medical-reports message: refused after opening, nothing kept.
    assert_eq!(first.status, 422, "{}", first.body);
    assert_eq!(first.body["code"], "unreadable-payload");
    assert_eq!(p.insurer.count("SELECT count(*) FROM received").await, 0);

    let doctor = p.doctor().await;
    let report = p.final_report(&doctor, 0, "Chest X-ray").await;
    let full: carebridge_protocol::report::Report =
        serde_json::from_value(doctor.get(&format!("/api/v1/reports/{report}")).await.body)
            .unwrap();
    let patient = &p.creds.patients[0];
    let message = json!({
        "patient": {"global_id": format!("{}@{HOSPITAL}", patient.id), "family_name": "X", "given_name": "Y", "birth_date": patient.birth_date},
        "reports": [full], "sent_by": "Dr", "consent_recorded_at": now, "consent_recorded_by": "Dr"
    });
    let sealed = p
        .envelope(
            MessageType::MedicalReports,
            &serde_json::to_vec(&message).unwrap(),
        )
        .to_bytes()
        .unwrap();
    let sealed_id = Envelope::parse(&sealed).unwrap().header.id;
    let headers = base(&sealed).headers(&p.insurer.addr);
    let stored = post(&p.insurer.url, HOSPITAL_SOURCE, &headers, sealed.clone()).await;
    assert_eq!(stored.status, 201, "{}", stored.body);
    let tables_before = p.insurer.table_counts();
    let replay = post(&p.insurer.url, HOSPITAL_SOURCE, &headers, sealed.clone()).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert_eq!(replay.body["code"], "replayed-request");
    // The replay stored nothing anywhere and was audited as a refusal naming its code.
    let mut expected = tables_before;
    *expected.get_mut("audit").unwrap() += 1;
    assert_eq!(
        p.insurer.table_counts(),
        expected,
        "a replay stores nothing"
    );
    let refused = p.insurer.audited("federation.refused").await;
    let (outcome, detail) = refused.last().expect("the replay's audit entry");
    assert_eq!(outcome, "failure");
    assert!(detail.starts_with("replayed-request"), "{detail}");
    let retry = post(
        &p.insurer.url,
        HOSPITAL_SOURCE,
        &base(&sealed).headers(&p.insurer.addr),
        sealed,
    )
    .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body, stored.body, "the same receipt");
    assert_eq!(
        p.insurer.count("SELECT count(*) FROM received").await,
        1,
        "stored exactly once"
    );
    let receipt: carebridge_protocol::federation::request::Receipt =
        serde_json::from_value(stored.body).unwrap();
    assert!(
        receipt
            .stored_as
            .starts_with(&format!("medical-reports-{HOSPITAL}-")),
        "{}",
        receipt.stored_as
    );
    assert!(receipt.verify(
        sealed_id,
        INSURER,
        &p.insurer.node.signing_key.verifying_key()
    ));

    assert_eq!(p.insurer.verify_audit(), Ok(()));
    p.hospital.stop().await;
    p.insurer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_go_to_the_insurer_with_consent_and_admin_updates_come_back_acknowledged() {
    let p = pair().await;
    let doctor = p.doctor().await;
    let reviewer = p.reviewer().await;
    let mut reviewer_stream = reviewer.events(None).await;
    let mut doctor_stream = doctor.events(None).await;
    // Reception follows along: nothing of reports, consents, transmissions or doctors'
    // updates may reach it (checked at the end).
    let reception = p
        .hospital
        .sign_in(&p.creds.reception.username, &p.creds.reception.password)
        .await;
    let mut reception_stream = reception.events(None).await;
    // The hospital's admin follows the transmissions: their states, never whom or what about.
    let hospital_admin = p.hospital.sign_in("admin", demo::ADMIN_PASSWORD).await;
    let mut admin_stream = hospital_admin.events(None).await;

    let peers = doctor.get("/api/v1/peers").await;
    assert_eq!(peers.body[0]["name"], INSURER, "{}", peers.body);
    let xray = p.final_report(&doctor, 1, "Chest X-ray").await;
    let mri = p.final_report(&doctor, 1, "Knee MRI").await;

    // Without consent: refused, nothing queued.
    let send = |ids: Vec<&str>| json!({"peer": INSURER, "report_ids": ids});
    let refused = doctor
        .post("/api/v1/transmissions", send(vec![&xray]))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    p.consent(&doctor, 1).await;
    // Doctors' open patient pages follow the consent live.
    let recorded = doctor_stream
        .wait_for(WAIT, |e| e.event == "consent.updated")
        .await;
    assert_eq!(recorded.data["patient_id"], json!(p.creds.patients[1].id));
    assert_eq!(
        recorded.data["consent"]["peer"], INSURER,
        "{}",
        recorded.data
    );
    // A draft cannot be sent.
    let draft = doctor
        .post(
            "/api/v1/reports",
            json!({"patient_id": p.creds.patients[1].id, "content": {"title": "Draft"}}),
        )
        .await;
    let not_final = doctor
        .post(
            "/api/v1/transmissions",
            send(vec![&xray, draft.body["id"].as_str().unwrap()]),
        )
        .await;
    assert_eq!(not_final.status, 409, "{}", not_final.body);
    assert_eq!(
        p.hospital.count("SELECT count(*) FROM transmissions").await,
        0
    );

    let queued = doctor
        .post("/api/v1/transmissions", send(vec![&xray, &mri]))
        .await;
    assert_eq!(queued.status, 201, "{}", queued.body);
    let id = queued.body["id"].as_str().unwrap().to_owned();
    let acked = doctor_stream
        .wait_for(WAIT, |e| {
            e.event == "transmission.updated"
                && e.data["id"] == id.as_str()
                && e.data["state"] == "acknowledged"
        })
        .await;
    assert!(acked.data["acknowledged_at"].is_string());
    let arrived = reviewer_stream
        .wait_for(WAIT, |e| e.event == "received.reports")
        .await;
    assert_eq!(
        arrived.data["signatures_verified"], true,
        "{}",
        arrived.data
    );
    assert_eq!(
        arrived.data["content"]["reports"].as_array().unwrap().len(),
        2
    );
    let name = arrived.data["name"].as_str().unwrap();
    assert!(name.starts_with(&format!("medical-reports-{HOSPITAL}-")));
    let one = reviewer.get(&format!("/api/v1/received/{name}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.body["content"]["patient"]["family_name"],
        p.creds.patients[1].name.split(' ').next_back().unwrap()
    );
    let list = doctor
        .get(&format!(
            "/api/v1/transmissions?patient_id={}",
            p.creds.patients[1].id
        ))
        .await;
    assert_eq!(list.body[0]["state"], "acknowledged");
    assert!(
        list.body[0]["summary"]
            .as_str()
            .unwrap()
            .contains("Chest X-ray")
    );

    // Admins see who it went to, its state and how many reports: no patient, no titles, in
    // the stream as in the list; and each list read is audited, with ids and counts only.
    let patient_name = p.creds.patients[1].name.clone();
    let seen = admin_stream
        .wait_for(WAIT, |e| {
            e.event == "transmission.updated"
                && e.data["id"] == id.as_str()
                && e.data["state"] == "acknowledged"
        })
        .await;
    assert_eq!(seen.data["summary"], "2 report(s)", "{}", seen.data);
    let admins_list = hospital_admin.get("/api/v1/transmissions").await;
    assert_eq!(admins_list.status, 200);
    for t in admins_list.body.as_array().unwrap() {
        let text = t.to_string();
        assert!(
            !text.contains(&patient_name) && !text.contains("Chest X-ray"),
            "{text}"
        );
    }
    let reads = p.hospital.audited("transmission.list").await;
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads.iter().all(|(outcome, _)| outcome == "success"),
        "{reads:?}"
    );
    assert_eq!(
        p.hospital
            .count("SELECT count(*) FROM audit WHERE detail LIKE '%Chest X-ray%' OR detail LIKE '%Knee MRI%'")
            .await,
        0,
        "report titles in the audit trail"
    );

    // The insurer's admins see what arrived too; a hospital's doctor has no such list.
    let admin = p.insurer.sign_in("admin", demo::ADMIN_PASSWORD).await;
    assert_eq!(
        admin
            .get("/api/v1/received")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(doctor.get("/api/v1/received").await.status, 403);

    // Admin update to the hospital's doctors: doctors see it live, reception does not.
    let u = admin
        .post(
            "/api/v1/admin-updates",
            json!({"peer": HOSPITAL, "audience": "doctor", "title": "New claim form", "body": "From 1 December, use form B-12."}),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.body);
    let update_id = u.body["id"].as_str().unwrap().to_owned();
    let seen = doctor_stream
        .wait_for(WAIT, |e| {
            e.event == "admin-update.updated" && e.data["id"] == update_id.as_str()
        })
        .await;
    assert_eq!(seen.data["title"], "New claim form");
    assert_eq!(seen.data["from"], "Assure Health Insurance");
    let ack = doctor
        .post(
            &format!("/api/v1/admin-updates/{update_id}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!(ack.status, 200, "{}", ack.body);
    assert_eq!(ack.body["acknowledged"], true);
    let twice = doctor
        .post(
            &format!("/api/v1/admin-updates/{update_id}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!(twice.status, 200);
    let not_for_reception = reception
        .post(
            &format!("/api/v1/admin-updates/{update_id}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!(not_for_reception.status, 404);
    eventually("the insurer counts the acknowledgement", WAIT, || async {
        let list = admin.get("/api/v1/admin-updates").await;
        list.body[0]["acknowledgements"] == 1
    })
    .await;
    // Reception received nothing of all that: the first thing it sees is a patient it
    // registers.
    reception
        .post(
            "/api/v1/patients",
            json!({"family_name": "Marker", "given_name": "M", "birth_date": "1990-01-01"}),
        )
        .await;
    let first = reception_stream.wait_for(WAIT, |_| true).await;
    assert_eq!(first.event, "patient.created", "{}", first.data);

    // Both audit chains hold after the exchange; editing one row breaks the chain.
    assert_eq!(p.hospital.verify_audit(), Ok(()));
    assert_eq!(p.insurer.verify_audit(), Ok(()));
    let insurer = p.insurer;
    // The triggers refuse the edit; someone with the key drops them first.
    let db = insurer.db(false);
    db.execute_batch("DROP TRIGGER audit_no_update").unwrap();
    db.execute(
        "UPDATE audit SET detail = 'edited' WHERE action = 'federation.receive'",
        [],
    )
    .unwrap();
    drop(db);
    assert!(
        insurer.verify_audit().is_err(),
        "an edited row breaks the chain"
    );
    p.hospital.stop().await;
    insurer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_payloads_are_deleted_after_the_retention_period_and_each_deletion_is_audited() {
    let p = pair().await;
    let doctor = p.doctor().await;
    let report = p.final_report(&doctor, 2, "Blood panel").await;
    p.consent(&doctor, 2).await;
    let queued = doctor
        .post(
            "/api/v1/transmissions",
            json!({"peer": INSURER, "report_ids": [report]}),
        )
        .await;
    assert_eq!(queued.status, 201);
    eventually("the insurer receives the reports", WAIT, || async {
        p.insurer.count("SELECT count(*) FROM received").await == 1
    })
    .await;
    assert_eq!(
        carebridge_server::jobs::apply_retention(&p.insurer.node)
            .await
            .unwrap(),
        0,
        "within the period"
    );
    // A reviewer's open list hears of the deletion.
    let before = p.reviewer().await;
    let mut reviewer_stream = before.events(None).await;
    let listed = before.get("/api/v1/received").await;
    let name = listed.body[0]["name"].as_str().unwrap().to_owned();
    p.insurer_clock.advance(chrono::Duration::days(31));
    assert_eq!(
        carebridge_server::jobs::apply_retention(&p.insurer.node)
            .await
            .unwrap(),
        1
    );
    assert_eq!(p.insurer.count("SELECT count(*) FROM received").await, 0);
    let gone = reviewer_stream
        .wait_for(WAIT, |e| e.event == "received.deleted")
        .await;
    assert_eq!(gone.data["name"], name.as_str(), "{}", gone.data);
    assert_eq!(gone.data["source"], HOSPITAL);
    let deletions = p.insurer.audited("received.retention-delete").await;
    assert_eq!(deletions.len(), 1);
    assert!(deletions[0].1.contains(HOSPITAL), "{deletions:?}");
    let reviewer = p.reviewer().await;
    assert_eq!(
        reviewer
            .get("/api/v1/received")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Replaying the whole log never finds the content: its arrival went too.
    let mut replay = reviewer.events(Some(0)).await;
    let mut replayed = Vec::new();
    loop {
        let e = replay.next(WAIT).await.expect("the replay stopped early");
        // The end of the replay: the deletion, or a reset when the forgotten arrival was the
        // oldest event (the log then starts after what the client asked for).
        let end = e.event == "received.deleted" || e.event == "reset";
        replayed.push(e);
        if end {
            break;
        }
    }
    assert!(
        replayed.iter().all(|e| e.event != "received.reports"),
        "{:?}",
        replayed.iter().map(|e| &e.event).collect::<Vec<_>>()
    );
    assert_eq!(
        p.insurer
            .count("SELECT count(*) FROM events WHERE data LIKE '%Blood panel%'")
            .await,
        0,
        "the report's content is still in the event log"
    );
    assert_eq!(p.insurer.verify_audit(), Ok(()));
    p.hospital.stop().await;
    p.insurer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmission_waits_while_the_insurer_is_down_and_arrives_once_when_it_returns() {
    let p = pair().await;
    let doctor = p.doctor().await;
    let report = p.final_report(&doctor, 3, "Ultrasound").await;
    p.consent(&doctor, 3).await;
    // Another patient's report will wait too, until that patient withdraws consent.
    let withdrawn_report = p.final_report(&doctor, 4, "Withdrawn").await;
    p.consent(&doctor, 4).await;
    let patient4 = p.creds.patients[4].id;
    // The insurer goes away; its address stays reserved for its return.
    let Pair {
        hospital, insurer, ..
    } = p;
    let dir = insurer._dir;
    let addr = insurer.addr.clone();
    let config = insurer.node.config.clone();
    insurer.node.shutdown.cancel();
    let _ = insurer.served.await;
    drop(insurer.node);

    let withdrawn = doctor
        .post(
            "/api/v1/transmissions",
            json!({"peer": INSURER, "report_ids": [withdrawn_report]}),
        )
        .await;
    assert_eq!(withdrawn.status, 201);
    let queued = doctor
        .post(
            "/api/v1/transmissions",
            json!({"peer": INSURER, "report_ids": [report]}),
        )
        .await;
    assert_eq!(queued.status, 201);
    let id = queued.body["id"].as_str().unwrap().to_owned();
    eventually(
        "the transmission is retried while the insurer is away",
        WAIT,
        || async {
            let t = doctor.get("/api/v1/transmissions").await;
            t.body[0]["attempts"].as_u64().unwrap_or(0) >= 2 && t.body[0]["state"] != "acknowledged"
        },
    )
    .await;
    let mut doctor_stream = doctor.events(None).await;
    let w = doctor
        .call(
            Method::DELETE,
            &format!("/api/v1/patients/{patient4}/consents/{INSURER}"),
            None,
            &[],
        )
        .await;
    assert_eq!(w.status, 204, "{}", w.body);
    // The withdrawal reaches the doctors' open pages too.
    doctor_stream
        .wait_for(WAIT, |e| {
            e.event == "consent.updated"
                && e.data["patient_id"] == json!(patient4)
                && e.data["consent"].is_null()
        })
        .await;
    let stopped = doctor
        .get(&format!("/api/v1/transmissions?patient_id={patient4}"))
        .await;
    assert_eq!(stopped.body[0]["state"], "failed", "{}", stopped.body);
    assert!(
        stopped.body[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("withdrew consent")
    );
    let waiting = doctor.get("/api/v1/transmissions").await;
    assert!(
        waiting.body[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{}",
        waiting.body
    );
    assert_ne!(
        waiting.body[0]["state"], "failed",
        "a network error is retried, not failed"
    );

    // The insurer comes back on the same address.
    let node = {
        let mut tries = 0;
        loop {
            match Node::open(config.clone(), Arc::new(SystemClock)) {
                Ok(n) => break n,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let l = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let back = Side {
        served: serve(node.clone(), l),
        node,
        url: format!("http://{addr}"),
        addr,
        _dir: dir,
    };
    eventually(
        "the transmission is acknowledged",
        Duration::from_secs(30),
        || async {
            let t = doctor.get("/api/v1/transmissions").await;
            t.body[0]["id"] == id.as_str() && t.body[0]["state"] == "acknowledged"
        },
    )
    .await;
    assert_eq!(
        back.count("SELECT count(*) FROM received").await,
        1,
        "stored exactly once"
    );
    let sends = hospital.audited("federation.send").await;
    assert!(
        sends
            .iter()
            .any(|(o, d)| o == "failure" && d.contains("retrying")),
        "{sends:?}"
    );
    assert!(
        sends
            .iter()
            .any(|(o, d)| o == "success" && d.contains("acknowledged")),
        "{sends:?}"
    );
    hospital.stop().await;
    back.stop().await;
}

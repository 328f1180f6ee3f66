//! Moving a patient's record from St Mary's to General, end to end between real nodes over
//! HTTP: the front desk authorises it, the record travels as a manifest and chunks through the
//! outbox and the inbox, General imports it whole and confirms it, and only then is St Mary's
//! record read-only and pointing at the new one.
#![expect(clippy::unwrap_used, reason = "tests panic on the unexpected")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use carebridge_protocol::federation::envelope::{Envelope, MessageType, Sealing, seal};
use carebridge_protocol::federation::request::{API_KEY_HEADER, INBOX_PATH, sign_request};
use carebridge_protocol::federation::transfer::{TransferChunk, TransferConfirmed};
use carebridge_server::clock::{Clock as _, SystemClock};
use carebridge_testkit::eventually;
use reqwest::Method;
use serde_json::{Value, json};
use support::Client;
use support::hospital::{Side, peer};

const HOME: &str = "st-marys.example";
const NEW: &str = "general.example";
const WAIT: Duration = Duration::from_secs(30);

/// St Mary's and General, peered; the key the pair shares.
async fn hospitals() -> (Side, Side, String) {
    let clock = Arc::new(SystemClock);
    let home = Side::start(HOME, "St Mary's Hospital", clock.clone(), None, None).await;
    let new = Side::start(NEW, "General Hospital", clock, None, None).await;
    let key = peer(&home, &new).await;
    (home, new, key)
}

/// Changes patient `p`'s details at the version last read; the answer.
async fn change(reception: &Client, p: &str, details: Value) -> support::Answer {
    let current = reception.get(&format!("/api/v1/patients/{p}")).await;
    reception
        .call(
            Method::PATCH,
            &format!("/api/v1/patients/{p}"),
            Some(details),
            &[("if-match", &format!("\"{}\"", current.body["version"]))],
        )
        .await
}

/// Renames St Mary's patient `p` (the demo registers the same people at both hospitals), so
/// that General registers the record under a new id rather than finding the same person.
async fn rename(reception: &Client, p: &str) {
    let renamed = change(reception, p, json!({"family_name": "Okonkwo-Lindqvist"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
}

/// A final report and a draft for St Mary's first patient; the final one's title.
async fn reports(home: &Side) -> String {
    let title = "Knee MRI".to_owned();
    home.signed_report_and_a_draft(home.creds.patients[0].id, &title)
        .await;
    title
}

async fn authorise(reception: &Client, patient: &str) -> Value {
    let r = reception
        .post(
            &format!("/api/v1/patients/{patient}/transfers"),
            json!({"peer": NEW, "identity_document": "passport"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["state"], "sending");
    r.body
}

async fn transfer_state(reception: &Client, patient: &str, id: &str) -> Value {
    let list = reception
        .get(&format!("/api/v1/patients/{patient}/transfers"))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap()
}

fn titles(bundle: &Value, resource_type: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == resource_type)
        .map(|r| r["code"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_moves_whole_and_once_confirmed_the_old_record_is_read_only_and_names_the_new() {
    let (home, new, _) = hospitals().await;
    let title = reports(&home).await;
    let p = home.creds.patients[0].id.to_string();
    let reception = home.reception().await;
    rename(&reception, &p).await;
    let booked = reception
        .book_next(&home.doctor_id(0), &p, "Check-up")
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let booked = booked.body["id"].as_str().unwrap().to_owned();
    let appointments = home.count(
        "SELECT count(*) FROM appointments WHERE patient_id = ?1",
        &[&p],
    );
    assert!(appointments > 0, "the demo books the patient");
    let patients_at_new = new.count("SELECT count(*) FROM patients", &[]);

    let t = authorise(&reception, &p).await;
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(t["sha256"].as_str().unwrap().len(), 64);
    assert!(t["parts"].as_u64().unwrap() >= 1);
    eventually("General confirms the transfer", WAIT, || async {
        transfer_state(&reception, &p, &id).await["state"] == "confirmed"
    })
    .await;
    // The last part's receipt may reach St Mary's after General's confirmation does.
    eventually("every part's receipt is recorded", WAIT, || async {
        let t = transfer_state(&reception, &p, &id).await;
        t["parts_delivered"] == t["parts"]
    })
    .await;
    let t = transfer_state(&reception, &p, &id).await;
    assert_eq!(t["organisation"], "General Hospital");

    // General: one transfer, imported as one new patient, its chunks gone, the record kept
    // byte for byte as St Mary's hashed it.
    let (imported, bundle): (String, Vec<u8>) = new
        .db()
        .query_row(
            "SELECT patient_id, bundle FROM transfers_in WHERE id = ?1 AND state = 'imported'",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        carebridge_protocol::federation::transfer::sha256_hex(&bundle),
        t["sha256"].as_str().unwrap()
    );
    assert_eq!(new.count("SELECT count(*) FROM transfers_in", &[]), 1);
    assert_eq!(new.count("SELECT count(*) FROM transfer_chunks_in", &[]), 0);
    assert_eq!(
        new.count("SELECT count(*) FROM patients", &[]),
        patients_at_new + 1
    );
    let new_global = format!("{imported}@{NEW}");
    assert_eq!(t["new_global_id"], new_global.as_str());

    // General's doctor reads what arrived: signed reports with their PDFs, never the draft,
    // and St Mary's appointments; General's front desk does not read clinical records.
    let doctor = new.doctor(0).await;
    let records = doctor
        .get(&format!("/api/v1/patients/{imported}/transferred-records"))
        .await;
    assert_eq!(records.status, 200, "{}", records.body);
    let records = records.body.as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["organisation"], "St Mary's Hospital");
    assert_eq!(records[0]["from_global_id"], format!("{p}@{HOME}").as_str());
    let bundle = &records[0]["bundle"];
    assert_eq!(bundle["type"], "collection");
    assert_eq!(titles(bundle, "DiagnosticReport"), vec![title.clone()]);
    let report = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "DiagnosticReport")
        .unwrap();
    assert!(
        report["presentedForm"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["contentType"] == "application/pdf"),
        "the signed PDF travels with the report"
    );
    assert_eq!(
        titles(bundle, "Appointment").len() as i64,
        appointments,
        "every appointment travels"
    );
    let front_desk = new.reception().await;
    let refused = front_desk
        .get(&format!("/api/v1/patients/{imported}/transferred-records"))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // St Mary's: the old id answers with the new one, in the API and in FHIR.
    let old = reception.get(&format!("/api/v1/patients/{p}")).await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body["transferred_to"]["global_id"], new_global.as_str());
    assert_eq!(
        old.body["transferred_to"]["organisation"],
        "General Hospital"
    );
    let fhir = reception.get(&format!("/fhir/R4/Patient/{p}")).await;
    assert_eq!(fhir.status, 200, "{}", fhir.body);
    assert_eq!(fhir.body["active"], false);
    assert_eq!(fhir.body["link"][0]["type"], "replaced-by");
    assert_eq!(
        fhir.body["link"][0]["other"]["identifier"]["value"],
        new_global.as_str()
    );

    // … and takes no more changes: details, reports, bookings, letters, appointments but their
    // cancellation, a second transfer, the kiosk.
    let patch = change(&reception, &p, json!({"phone": "+31 6 11111111"})).await;
    assert_eq!(patch.status, 409, "{}", patch.body);
    assert!(
        patch.body["detail"]
            .as_str()
            .unwrap()
            .contains("General Hospital"),
        "{}",
        patch.body
    );
    let report = home
        .doctor(0)
        .await
        .post(
            "/api/v1/reports",
            json!({"patient_id": p, "content": {"title": "Late", "findings": "…", "conclusion": "…", "codes": []}}),
        )
        .await;
    assert_eq!(report.status, 409, "{}", report.body);
    let booking = reception
        .book_next(&home.doctor_id(0), &p, "Follow-up")
        .await;
    assert_eq!(booking.status, 409, "{}", booking.body);
    let again = reception
        .post(
            &format!("/api/v1/patients/{p}/transfers"),
            json!({"peer": NEW, "identity_document": "passport"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let filed = reception
        .http
        .post(format!("{}/api/v1/patients/{p}/documents", reception.url))
        .bearer_auth(&reception.token)
        .query(&[("title", "Late letter")])
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4\n%%EOF\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status().as_u16(), 409);
    // Its booked appointments can no longer be checked in here, only cancelled.
    let check_in = reception
        .call(
            Method::POST,
            &format!("/api/v1/appointments/{booked}/check-in"),
            None,
            &[],
        )
        .await;
    assert_eq!(check_in.status, 409, "{}", check_in.body);
    assert!(
        check_in.body["detail"]
            .as_str()
            .unwrap()
            .contains("read-only here"),
        "{}",
        check_in.body
    );
    let cancel = reception
        .post(
            &format!("/api/v1/appointments/{booked}/cancel"),
            json!({"reason": "Moved to General"}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let card = &home.creds.patients[0];
    let kiosk = home.kiosk().await;
    let identify = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": card.card_number, "birth_date": card.birth_date}),
        )
        .await;
    assert_eq!(identify.status, 409, "{}", identify.body);
    assert!(
        identify.body["detail"]
            .as_str()
            .unwrap()
            .contains("General Hospital"),
        "{}",
        identify.body
    );

    // Both trails: who authorised it and how identity was checked; who imported it.
    let authorised = home.audited("patient.transfer", &format!("patient/{p}"));
    assert_eq!(authorised.len(), 2, "{authorised:?}");
    assert_eq!(authorised[0].1, "success");
    assert!(authorised[0].2.contains("passport"), "{authorised:?}");
    assert_eq!(authorised[1].1, "failure", "the second transfer is refused");
    home.verify_audit();
    new.verify_audit();
}

/// The envelope St Mary's keeps for a transfer's chunk `index`, opened, with one byte of its
/// data flipped, and sealed again under a new envelope id (as St Mary's would have sealed a
/// chunk read from a damaged disk). `new_secret` is General's key agreement secret.
fn flip_a_byte_of_chunk(
    home: &Side,
    new_secret: &x25519_dalek::StaticSecret,
    transfer: &str,
    index: u32,
) {
    let db = carebridge_server::store::open_connection(
        &home.node.config.db_path(),
        &carebridge_server::node::load_key(&home.node.config).unwrap(),
        false,
    )
    .unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let (id, sealed): (String, Vec<u8>) = db
        .query_row(
            "SELECT id, envelope FROM transmissions WHERE transfer_id = ?1
                 AND message_type = 'transfer-chunk' ORDER BY rowid LIMIT 1 OFFSET ?2",
            rusqlite::params![transfer, index],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let home_public = x25519_dalek::PublicKey::from(&home.node.agreement_key);
    let plain = Envelope::parse(&sealed)
        .unwrap()
        .open(NEW, new_secret, &home_public)
        .unwrap();
    let mut chunk: TransferChunk = serde_json::from_slice(&plain).unwrap();
    assert_eq!(chunk.index, index);
    let mut data = BASE64.decode(&chunk.data).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    chunk.data = BASE64.encode(&data);
    let resealed = seal(
        &Sealing {
            message_type: MessageType::TransferChunk,
            source: HOME,
            destination: NEW,
            created_at: SystemClock.now(),
        },
        &serde_json::to_vec(&chunk).unwrap(),
        &home.node.agreement_key,
        &x25519_dalek::PublicKey::from(new_secret),
    )
    .unwrap();
    let changed = db
        .execute(
            "UPDATE transmissions SET id = ?2, envelope = ?3, state = 'queued', next_attempt_at = 0
             WHERE id = ?1",
            rusqlite::params![
                id,
                resealed.header.id.to_string(),
                resealed.to_bytes().unwrap()
            ],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_points_elsewhere_before_the_confirmation_and_a_flipped_byte_is_refused_leaving_the_home_record_as_it_was()
 {
    let (home, new, _) = hospitals().await;
    reports(&home).await;
    let p = home.creds.patients[0].id.to_string();
    // General is down while St Mary's sends.
    let new_secret = new.node.agreement_key.clone();
    let new = new.down().await;

    let reception = home.reception().await;
    let t = authorise(&reception, &p).await;
    let id = t["id"].as_str().unwrap().to_owned();

    // Until General confirms, the record is St Mary's: it points nowhere else, and takes no
    // changes (they would not travel with it).
    let before = reception.get(&format!("/api/v1/patients/{p}")).await;
    assert!(
        before.body.get("transferred_to").is_none(),
        "{}",
        before.body
    );
    let fhir = reception.get(&format!("/fhir/R4/Patient/{p}")).await;
    assert_eq!(fhir.body["active"], true);
    assert!(fhir.body.get("link").is_none(), "{}", fhir.body);
    let patch = change(&reception, &p, json!({"phone": "+31 6 22222222"})).await;
    assert_eq!(patch.status, 409, "{}", patch.body);
    assert!(
        patch.body["detail"]
            .as_str()
            .unwrap()
            .contains("being moved to general.example"),
        "{}",
        patch.body
    );

    // One chunk is damaged before it leaves (General is down: nothing was delivered), and
    // General comes back.
    flip_a_byte_of_chunk(&home, &new_secret, &id, 0);
    let new = new.up().await;
    let counts_before = support::table_counts(&new.db());

    eventually("General refuses the transfer", WAIT, || async {
        transfer_state(&reception, &p, &id).await["state"] == "refused"
    })
    .await;
    let t = transfer_state(&reception, &p, &id).await;
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("chunk 0 does not match"),
        "{t}"
    );

    // General imported nothing and keeps no part of the record.
    let counts_after = support::table_counts(&new.db());
    for (table, n) in &counts_after {
        let was = counts_before.get(table).copied().unwrap_or(0);
        match table.as_str() {
            // What any delivery leaves: the envelopes as received (the chunk's data not
            // kept), their nonces, the audit trail, the live events, and the refusal queued
            // back to St Mary's.
            "received" | "federation_nonces" | "audit" | "events" | "transmissions"
            | "transfers_in" => {}
            _ => assert_eq!(*n, was, "{table} changed at General"),
        }
    }
    let (state, bundle): (String, Option<Vec<u8>>) = new
        .db()
        .query_row(
            "SELECT state, bundle FROM transfers_in WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "refused");
    assert!(bundle.is_none());
    assert_eq!(new.count("SELECT count(*) FROM transfer_chunks_in", &[]), 0);
    let kept: Vec<String> = {
        let db = new.db();
        let mut st = db
            .prepare("SELECT payload FROM received WHERE message_type = 'transfer-chunk'")
            .unwrap();
        st.query_map([], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|b| String::from_utf8(b.unwrap()).unwrap())
            .collect()
    };
    assert!(
        kept.iter().all(|k| k.contains("(not kept here)")),
        "a chunk's data is kept with the transfer, never with the envelope"
    );

    // St Mary's record is as it was: pointing nowhere, writable again; its other parts are not
    // sent; a new transfer may start.
    let after = reception.get(&format!("/api/v1/patients/{p}")).await;
    assert!(after.body.get("transferred_to").is_none(), "{}", after.body);
    assert_eq!(after.body["version"], before.body["version"]);
    let patch = change(&reception, &p, json!({"phone": "+31 6 22222222"})).await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    assert_eq!(
        home.count(
            "SELECT count(*) FROM transmissions WHERE transfer_id = ?1 AND state IN ('queued', 'sent')",
            &[&id]
        ),
        0
    );
    let refused = home.audited("patient.transfer-refused", &format!("patient/{p}"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    let again = authorise(&reception, &p).await;
    assert_ne!(again["id"], id.as_str());
    home.verify_audit();
    new.verify_audit();
}

/// Posts an envelope `from` sealed to the inbox at `to_url`, signed with `from`'s key, as its
/// delivery worker does; the status.
async fn deliver_as(
    from: &str,
    signing: &ed25519_dalek::SigningKey,
    to_url: &str,
    key: &str,
    envelope: &[u8],
) -> u16 {
    let authority = carebridge_server::federation::delivery::authority(to_url).unwrap();
    let signed = sign_request(
        INBOX_PATH,
        &authority,
        envelope,
        from,
        signing,
        SystemClock.now(),
    )
    .unwrap();
    support::http()
        .post(format!("{to_url}{INBOX_PATH}"))
        .header("content-type", "application/json")
        .header(API_KEY_HEADER, key)
        .header("content-digest", signed.content_digest)
        .header("signature-input", signed.signature_input)
        .header("signature", signed.signature)
        .body(envelope.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_between_chunks_and_started_again_the_record_is_imported_exactly_once() {
    let (home, new, key) = hospitals().await;
    let p = home.creds.patients[0].id.to_string();
    let reception = home.reception().await;
    rename(&reception, &p).await;
    // A scanned letter of 1.5 MB: the record is several chunks.
    let mut scan = b"%PDF-1.4\n".to_vec();
    let mut x: u32 = 0x9e37_79b9;
    scan.extend((0..1_500_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x.to_le_bytes()[0]
    }));
    scan.extend_from_slice(b"\n%%EOF\n");
    let filed = reception
        .http
        .post(format!("{}/api/v1/patients/{p}/documents", reception.url))
        .bearer_auth(&reception.token)
        .query(&[("title", "Scanned referral letter")])
        .header("content-type", "application/pdf")
        .body(scan)
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status().as_u16(), 201);
    let patients_at_new = new.count("SELECT count(*) FROM patients", &[]);

    // General is down while St Mary's queues the record.
    let new_secret = new.node.agreement_key.clone();
    let new = new.down().await;
    let t = authorise(&reception, &p).await;
    let id = t["id"].as_str().unwrap().to_owned();
    let parts = t["parts"].as_u64().unwrap();
    assert!(parts >= 3, "{t}");

    // St Mary's stops as if killed just after sending the manifest and the first two chunks,
    // before it recorded their receipts: General has them, St Mary's still has them queued.
    let sent: Vec<Vec<u8>> = {
        let db = home.db();
        let mut st = db
            .prepare(
                "SELECT envelope FROM transmissions WHERE transfer_id = ?1 ORDER BY rowid LIMIT 3",
            )
            .unwrap();
        st.query_map([&id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let signing = home.node.signing_key.clone();
    let home_secret = home.node.agreement_key.clone();
    let home = home.down().await;
    let new = new.up().await;
    for envelope in &sent {
        assert_eq!(
            deliver_as(HOME, &signing, &new.url, &key, envelope).await,
            201
        );
    }
    // A chunk sent twice is stored once: the same receipt again.
    assert_eq!(
        deliver_as(HOME, &signing, &new.url, &key, &sent[2]).await,
        200
    );
    assert_eq!(new.count("SELECT count(*) FROM transfer_chunks_in", &[]), 2);
    assert_eq!(
        new.count(
            "SELECT count(*) FROM transfers_in WHERE state = 'receiving'",
            &[]
        ),
        1
    );

    // St Mary's starts again and sends what it has no receipt for, the three again included.
    let home = home.up().await;
    let reception = home.reception().await;
    eventually("General confirms the transfer", WAIT, || async {
        transfer_state(&reception, &p, &id).await["state"] == "confirmed"
    })
    .await;
    // The last part's receipt may reach St Mary's after General's confirmation does.
    eventually("every part's receipt is recorded", WAIT, || async {
        transfer_state(&reception, &p, &id).await["parts_delivered"].as_u64() == Some(parts)
    })
    .await;

    // Exactly one import: one transfer, one new patient, one confirmation, each chunk once.
    assert_eq!(
        new.count(
            "SELECT count(*) FROM transfers_in WHERE state = 'imported'",
            &[]
        ),
        1
    );
    assert_eq!(
        new.count("SELECT count(*) FROM patients", &[]),
        patients_at_new + 1
    );
    assert_eq!(
        new.count(
            "SELECT count(*) FROM transmissions WHERE message_type = 'transfer-confirmed'",
            &[]
        ),
        1
    );
    assert_eq!(
        new.count(
            "SELECT count(*) FROM received WHERE message_type = 'transfer-chunk'",
            &[]
        ),
        i64::try_from(parts).unwrap()
    );
    assert_eq!(new.count("SELECT count(*) FROM transfer_chunks_in", &[]), 0);
    // The letter arrived whole.
    let doctor = new.doctor(0).await;
    let imported: String = new
        .db()
        .query_row(
            "SELECT patient_id FROM transfers_in WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let records = doctor
        .get(&format!("/api/v1/patients/{imported}/transferred-records"))
        .await;
    let letter = records.body[0]["bundle"]["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "DocumentReference")
        .cloned()
        .unwrap();
    assert_eq!(letter["description"], "Scanned referral letter");
    let data = BASE64
        .decode(letter["content"][0]["attachment"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data.len(), 1_500_000 + 16);

    // A chunk sent again in an envelope of its own, after the import: kept nowhere, imported
    // nothing again.
    let plain = Envelope::parse(&sent[1])
        .unwrap()
        .open(
            NEW,
            &new_secret,
            &x25519_dalek::PublicKey::from(&home_secret),
        )
        .unwrap();
    let again = seal(
        &Sealing {
            message_type: MessageType::TransferChunk,
            source: HOME,
            destination: NEW,
            created_at: SystemClock.now(),
        },
        &plain,
        &home_secret,
        &x25519_dalek::PublicKey::from(&new_secret),
    )
    .unwrap();
    assert_eq!(
        deliver_as(HOME, &signing, &new.url, &key, &again.to_bytes().unwrap()).await,
        201
    );
    assert_eq!(
        new.count(
            "SELECT count(*) FROM transfers_in WHERE state = 'imported'",
            &[]
        ),
        1
    );
    assert_eq!(new.count("SELECT count(*) FROM transfer_chunks_in", &[]), 0);
    assert_eq!(
        new.count("SELECT count(*) FROM patients", &[]),
        patients_at_new + 1
    );
    home.verify_audit();
    new.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_receiving_hospital_confirms_and_only_the_record_that_was_sent() {
    let (home, new, key) = hospitals().await;
    let clock = Arc::new(SystemClock);
    let third = Side::start("third.example", "Third Hospital", clock, None, None).await;
    let third_key = peer(&home, &third).await;
    let p = home.creds.patients[0].id.to_string();
    let reception = home.reception().await;
    // General is down: the transfer waits, and others speak in its name.
    let new_secret = new.node.agreement_key.clone();
    let new_signing = new.node.signing_key.clone();
    let new = new.down().await;
    let t = authorise(&reception, &p).await;
    let id: uuid::Uuid = t["id"].as_str().unwrap().parse().unwrap();
    let home_public = x25519_dalek::PublicKey::from(&home.node.agreement_key);
    // A confirmation `from` sealed with `secret` and signed with `signing`.
    let confirm = |from: &str,
                   secret: &x25519_dalek::StaticSecret,
                   signing: &ed25519_dalek::SigningKey,
                   sha256: &str,
                   new_global_id: &str| {
        let c = TransferConfirmed::sign(id, sha256, new_global_id, "Anyone", (from, HOME), signing);
        seal(
            &Sealing {
                message_type: MessageType::TransferConfirmed,
                source: from,
                destination: HOME,
                created_at: SystemClock.now(),
            },
            &serde_json::to_vec(&c).unwrap(),
            secret,
            &home_public,
        )
        .unwrap()
        .to_bytes()
        .unwrap()
    };
    let sha = t["sha256"].as_str().unwrap().to_owned();
    // The third hospital confirms a transfer it was never sent, with the right hash.
    let third_says = confirm(
        "third.example",
        &third.node.agreement_key,
        &third.node.signing_key,
        &sha,
        "x@third.example",
    );
    let status = deliver_as(
        "third.example",
        &third.node.signing_key,
        &home.url,
        &third_key,
        &third_says,
    )
    .await;
    assert_eq!(status, 422);
    // General's envelope: another record; a patient at another node; a statement General did
    // not sign.
    let third_signing = third.node.signing_key.clone();
    for (signing, sha256, global) in [
        (&new_signing, "00".repeat(32), format!("x@{NEW}")),
        (&new_signing, sha.clone(), "x@third.example".to_owned()),
        (&third_signing, sha.clone(), format!("x@{NEW}")),
    ] {
        let wrong = confirm(NEW, &new_secret, signing, &sha256, &global);
        assert_eq!(
            deliver_as(NEW, &new_signing, &home.url, &key, &wrong).await,
            422
        );
    }
    // St Mary's is as it was: the transfer under way, the record pointing nowhere.
    assert_eq!(
        transfer_state(&reception, &p, &id.to_string()).await["state"],
        "sending"
    );
    let record = reception.get(&format!("/api/v1/patients/{p}")).await;
    assert!(
        record.body.get("transferred_to").is_none(),
        "{}",
        record.body
    );
    assert_eq!(
        home.count(
            "SELECT count(*) FROM audit WHERE action = 'patient.transferred'",
            &[]
        ),
        0
    );

    // General comes back; the record arrives and is confirmed by General alone.
    let new = new.up().await;
    eventually("General confirms the transfer", WAIT, || async {
        transfer_state(&reception, &p, &id.to_string()).await["state"] == "confirmed"
    })
    .await;
    let record = reception.get(&format!("/api/v1/patients/{p}")).await;
    assert!(
        record.body["transferred_to"]["global_id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{NEW}"))
    );
    // The demo registers the same people at both hospitals: the record joined General's.
    let joined: String = new
        .db()
        .query_row("SELECT patient_id FROM transfers_in", [], |r| r.get(0))
        .unwrap();
    assert_eq!(joined, new.creds.patients[0].id.to_string());
    // St Mary's keeps General's signed statement of it.
    let kept = carebridge_server::store::federation::transfers::confirmation(
        &carebridge_server::store::Reader::open(
            &home.node.config.db_path(),
            &carebridge_server::node::load_key(&home.node.config).unwrap(),
        )
        .unwrap()
        .tx(),
        id,
    )
    .unwrap()
    .unwrap();
    assert!(!kept.is_empty());
    let joined_audit = new.audited("patient.transfer-in", &format!("patient/{joined}"));
    assert_eq!(joined_audit.len(), 1, "{joined_audit:?}");
    assert!(joined_audit[0].2.contains("joined to the same person"));
    home.verify_audit();
    new.verify_audit();
    third.stop().await;
}

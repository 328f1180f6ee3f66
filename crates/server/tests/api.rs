//! The HTTP API over real connections: concurrent booking, overbooking, idempotency,
//! optimistic concurrency, the appointment state machine, roles, the kiosk flow, patients,
//! problem+json for bad input, accounts, absences and the OpenAPI document.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use carebridge_protocol::appointment::{AppointmentAction, AppointmentStatus};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Client, TestNode};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Amsterdam;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now(node: &TestNode) -> DateTime<Utc> {
    node.node.clock.now()
}

fn today(node: &TestNode) -> NaiveDate {
    now(node).with_timezone(&TZ).date_naive()
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .expect("a time string")
        .parse()
        .expect("RFC 3339 time")
}

/// A time as a query-string value.
fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn id_of(a: &Answer) -> String {
    a.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {:?} {}", a.status, a.body))
        .to_owned()
}

/// Asserts an answer is the problem `code` with `status`, well-formed per RFC 9457.
#[track_caller]
fn assert_problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        a.status.as_u16(),
        status,
        "expected {status} {code}, got {} {}",
        a.status,
        a.body
    );
    assert!(
        a.is_problem(),
        "not problem+json: {:?} {}",
        a.headers.get("content-type"),
        a.body
    );
    assert_eq!(a.code(), code, "{}", a.body);
    assert!(
        a.body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "no type: {}",
        a.body
    );
    assert!(
        a.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "no title: {}",
        a.body
    );
    assert_eq!(
        a.body["status"].as_u64(),
        Some(u64::from(status)),
        "{}",
        a.body
    );
    assert!(!a.status.is_server_error());
}

/// The doctor's slots from today to `days` ahead that start after `after`.
async fn slots_after(
    node: &TestNode,
    c: &Client,
    doctor: &str,
    days: i64,
    after: DateTime<Utc>,
) -> Vec<Value> {
    let d = today(node);
    let a = c
        .get(&format!(
            "/api/v1/practitioners/{doctor}/slots?from={d}&to={}",
            d + Duration::days(days)
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
        .as_array()
        .expect("slot list")
        .iter()
        .filter(|s| ts(&s["start"]) > after)
        .cloned()
        .collect()
}

/// The doctor's slots from today to three days ahead that start at least an hour from now.
async fn future_slots(node: &TestNode, c: &Client, doctor: &str) -> Vec<Value> {
    slots_after(node, c, doctor, 3, now(node) + Duration::hours(1)).await
}

/// A free slot of the doctor, at least an hour ahead.
async fn free_slot(node: &TestNode, c: &Client, doctor: &str) -> Value {
    future_slots(node, c, doctor)
        .await
        .into_iter()
        .find(|s| s["status"] == "free")
        .expect("a free slot in the next days")
}

/// The status of the doctor's slot starting at `start`.
async fn slot_status(c: &Client, doctor: &str, start: DateTime<Utc>) -> String {
    let d = start.with_timezone(&TZ).date_naive();
    let a = c
        .get(&format!(
            "/api/v1/practitioners/{doctor}/slots?from={d}&to={d}"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let slot = a
        .body
        .as_array()
        .expect("slot list")
        .iter()
        .find(|s| ts(&s["start"]) == start)
        .unwrap_or_else(|| panic!("no slot at {start}"))
        .clone();
    slot["status"].as_str().expect("slot status").to_owned()
}

/// Reception's view of the doctor's appointments starting exactly at `start`.
async fn appointments_at(reception: &Client, doctor: &str, start: DateTime<Utc>) -> Vec<Value> {
    let a = reception
        .get(&format!(
            "/api/v1/appointments?practitioner_id={doctor}&from={}&to={}",
            q(start),
            q(start + Duration::seconds(1))
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body.as_array().expect("appointment list").clone()
}

fn live(list: &[Value]) -> Vec<Value> {
    list.iter()
        .filter(|a| {
            AppointmentStatus::parse(a["status"].as_str().unwrap_or(""))
                .is_some_and(AppointmentStatus::occupies_time)
        })
        .cloned()
        .collect()
}

/// How many appointments reception sees for the doctor (all statuses).
async fn count_appointments(reception: &Client, doctor: &str) -> usize {
    let a = reception
        .get(&format!(
            "/api/v1/appointments?practitioner_id={doctor}&limit=1000"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body.as_array().expect("appointment list").len()
}

/// The kiosk identifies demo patient `i`.
async fn identify(node: &TestNode, kiosk: &Client, i: usize) {
    let p = node.patient(i);
    let a = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": p.card_number, "birth_date": p.birth_date}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["id"], p.id.to_string());
}

fn booking(patient: &str, doctor: &str, start: &Value) -> Value {
    json!({"patient_id": patient, "practitioner_id": doctor, "start": start, "reason": "Check-up"})
}

/// A request without the support client's JSON encoding: any content type, any bytes.
async fn raw(
    url: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut req = support::http().request(method, format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.body(body).send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn sign_in(url: &str, username: &str, password: &str) -> Answer {
    raw(
        url,
        None,
        Method::POST,
        "/api/v1/sessions",
        Some("application/json"),
        serde_json::to_vec(&json!({"username": username, "password": password})).expect("json"),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. Concurrent booking
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_concurrent_bookings_of_one_slot_yield_exactly_one() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let kiosk = node.kiosk().await;
    for i in 0..5 {
        identify(&node, &kiosk, i).await;
    }
    let doctor = node.doctor_id(0);
    let slot = free_slot(&node, &reception, &doctor).await;
    let start = ts(&slot["start"]);

    const N: usize = 60;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = if i % 2 == 0 {
            reception.clone()
        } else {
            kiosk.clone()
        };
        let body = booking(&node.patient(i % 5).id.to_string(), &doctor, &slot["start"]);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i % 2 == 1, client.post("/api/v1/appointments", body).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (by_kiosk, a) = t.await.expect("task");
        if a.status == StatusCode::CREATED {
            winners.push((by_kiosk, a));
        } else {
            assert_problem(&a, 409, "slot-taken");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one booking wins");
    let (by_kiosk, won) = winners.pop().expect("one winner");

    let at = live(&appointments_at(&reception, &doctor, start).await);
    assert_eq!(at.len(), 1, "one live appointment at {start}: {at:?}");
    assert_eq!(at[0]["id"], won.body["id"]);

    let status = slot_status(&reception, &doctor, start).await;
    if by_kiosk {
        assert_eq!(won.body["status"], "pending");
        assert_eq!(won.body["booked_by"]["kind"], "kiosk");
        assert_eq!(status, "busy-tentative");
    } else {
        assert_eq!(won.body["status"], "booked");
        assert_eq!(won.body["booked_by"]["kind"], "staff");
        assert_eq!(status, "busy");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Override
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reception_may_overbook_with_a_reason_and_it_is_audited_but_a_kiosk_may_not() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let kiosk = node.kiosk().await;
    let admin = node.admin().await;
    let doctor = node.doctor_id(1);
    let slot = free_slot(&node, &reception, &doctor).await;
    let start = ts(&slot["start"]);
    let p0 = node.patient(0).id.to_string();
    let p1 = node.patient(1).id.to_string();

    let first = reception
        .post(
            "/api/v1/appointments",
            booking(&p0, &doctor, &slot["start"]),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = reception
        .post(
            "/api/v1/appointments",
            booking(&p1, &doctor, &slot["start"]),
        )
        .await;
    assert_problem(&again, 409, "slot-taken");

    let mut body = booking(&p1, &doctor, &slot["start"]);
    body["override_reason"] = json!("Urgent: chest pain");
    let over = reception.post("/api/v1/appointments", body).await;
    assert_eq!(over.status, 201, "{}", over.body);
    assert_eq!(over.body["override_reason"], "Urgent: chest pain");
    assert_eq!(ts(&over.body["start"]), start);
    let over_id = id_of(&over);

    let audit = admin
        .get(&format!(
            "/api/v1/audit?entity=appointment/{over_id}&limit=1000"
        ))
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let entries = audit.body.as_array().expect("audit list");
    assert!(
        entries.iter().any(|e| e["action"] == "appointment.book"
            && e["outcome"] == "success"
            && e["detail"].as_str().is_some_and(|d| d.contains("OVERRIDE"))),
        "no OVERRIDE entry for the booking: {entries:?}"
    );
    // The reason is the appointment's; the trail admins read holds no free text.
    assert!(
        !audit.body.to_string().contains("chest pain"),
        "the override's reason is in the audit trail: {entries:?}"
    );
    // Read back from the newest: newest first, and the next page starts below the last seq.
    let newest = admin
        .get("/api/v1/audit?before=9007199254740991&limit=5")
        .await;
    assert_eq!(newest.status, 200, "{}", newest.body);
    let seqs: Vec<i64> = newest
        .body
        .as_array()
        .expect("audit list")
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(seqs.len(), 5, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {seqs:?}"
    );
    let older = admin
        .get(&format!("/api/v1/audit?before={}&limit=5", seqs[4]))
        .await;
    let next: Vec<i64> = older
        .body
        .as_array()
        .expect("audit list")
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(next.first().copied(), Some(seqs[4] - 1), "{next:?}");

    identify(&node, &kiosk, 2).await;
    let before = appointments_at(&reception, &doctor, start).await.len();
    let mut body = booking(&node.patient(2).id.to_string(), &doctor, &slot["start"]);
    body["override_reason"] = json!("I really need it");
    let refused = kiosk.post("/api/v1/appointments", body).await;
    assert_problem(&refused, 403, "forbidden");
    let after = appointments_at(&reception, &doctor, start).await;
    assert_eq!(
        after.len(),
        before,
        "a refused kiosk override created something: {after:?}"
    );
    assert_eq!(live(&after).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_first_answer_and_books_once() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doctor = node.doctor_id(0);
    let slot = free_slot(&node, &reception, &doctor).await;
    let start = ts(&slot["start"]);
    let body = booking(&node.patient(0).id.to_string(), &doctor, &slot["start"]);
    let key = [("Idempotency-Key", "book-once-1")];

    let first = reception
        .call(
            Method::POST,
            "/api/v1/appointments",
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = reception
        .call(
            Method::POST,
            "/api/v1/appointments",
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(id_of(&second), id_of(&first));
    assert_eq!(second.body, first.body);
    assert_eq!(appointments_at(&reception, &doctor, start).await.len(), 1);

    let mut other = body.clone();
    other["reason"] = json!("Something else");
    let reused = reception
        .call(Method::POST, "/api/v1/appointments", Some(other), &key)
        .await;
    assert_problem(&reused, 422, "idempotency-key-reused");
    assert_eq!(appointments_at(&reception, &doctor, start).await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. If-Match
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_updates_need_the_current_version() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let id = node.patient(0).id.to_string();
    let path = format!("/api/v1/patients/{id}");

    let read = reception.get(&path).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let v = read.body["version"].as_i64().expect("version");
    assert_eq!(
        read.headers["etag"].to_str().expect("etag"),
        format!("\"{v}\"")
    );

    let change = json!({"phone": "+31 20 555 0101"});
    let none = reception
        .call(Method::PATCH, &path, Some(change.clone()), &[])
        .await;
    assert_problem(&none, 428, "precondition-required");

    let stale = format!("\"{}\"", v - 1);
    let old = reception
        .call(
            Method::PATCH,
            &path,
            Some(change.clone()),
            &[("If-Match", &stale)],
        )
        .await;
    assert_problem(&old, 412, "precondition-failed");
    assert_eq!(
        old.body["current"], read.body,
        "`current` is the record as it is"
    );

    let unchanged = reception.get(&path).await;
    assert_eq!(unchanged.body, read.body, "refused updates change nothing");

    let right = format!("\"{v}\"");
    let ok = reception
        .call(Method::PATCH, &path, Some(change), &[("If-Match", &right)])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["version"].as_i64(), Some(v + 1));
    assert_eq!(ok.body["phone"], "+31 20 555 0101");
    assert_eq!(
        ok.headers["etag"].to_str().expect("etag"),
        format!("\"{}\"", v + 1)
    );
    let reread = reception.get(&path).await;
    assert_eq!(reread.body, ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_action_with_a_stale_if_match_is_refused() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let a = reception
        .book_next(&node.doctor_id(0), &node.patient(0).id.to_string(), "Knee")
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = id_of(&a);
    let v = a.body["version"].as_i64().expect("version");
    let stale = format!("\"{}\"", v + 7);
    let r = reception
        .call(
            Method::POST,
            &format!("/api/v1/appointments/{id}/check-in"),
            None,
            &[("If-Match", &stale)],
        )
        .await;
    assert_problem(&r, 412, "precondition-failed");
    assert_eq!(r.body["current"], a.body);
    let now = reception.get(&format!("/api/v1/appointments/{id}")).await;
    assert_eq!(now.body, a.body, "nothing changed");

    let right = format!("\"{v}\"");
    let ok = reception
        .call(
            Method::POST,
            &format!("/api/v1/appointments/{id}/check-in"),
            None,
            &[("If-Match", &right)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["status"], "arrived");
}

// ---------------------------------------------------------------------------------------------
// 5. Every refused transition
// ---------------------------------------------------------------------------------------------

/// Takes an action as the right actor (the doctor confirms and declines; reception the rest).
async fn act(
    doctor: &Client,
    reception: &Client,
    id: &str,
    action: AppointmentAction,
    start: &Value,
) -> Answer {
    let path = format!("/api/v1/appointments/{id}/{}", action.as_str());
    match action {
        AppointmentAction::Confirm => doctor.call(Method::POST, &path, None, &[]).await,
        AppointmentAction::Decline => doctor.post(&path, json!({"reason": "Not needed"})).await,
        AppointmentAction::Cancel => {
            reception
                .post(&path, json!({"reason": "Patient called"}))
                .await
        }
        AppointmentAction::Reschedule => reception.post(&path, json!({"start": start})).await,
        AppointmentAction::CheckIn | AppointmentAction::Complete | AppointmentAction::NoShow => {
            reception.call(Method::POST, &path, None, &[]).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_a_status_does_not_allow_is_refused_and_changes_nothing() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doctor = node.doctor(0).await;
    let kiosk = node.kiosk().await;
    let doc = node.doctor_id(0);
    let patient = node.patient(0).id.to_string();
    identify(&node, &kiosk, 0).await;

    let pending = kiosk.book_next(&doc, &patient, "Kiosk booking").await;
    assert_eq!(pending.status, 201, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending");

    let mut made: Vec<(AppointmentStatus, String)> =
        vec![(AppointmentStatus::Pending, id_of(&pending))];
    let paths: [(AppointmentStatus, &[AppointmentAction]); 5] = [
        (AppointmentStatus::Booked, &[]),
        (AppointmentStatus::Arrived, &[AppointmentAction::CheckIn]),
        (
            AppointmentStatus::Fulfilled,
            &[AppointmentAction::CheckIn, AppointmentAction::Complete],
        ),
        (AppointmentStatus::Cancelled, &[AppointmentAction::Cancel]),
        (AppointmentStatus::Noshow, &[AppointmentAction::NoShow]),
    ];
    for (status, steps) in paths {
        let a = reception.book_next(&doc, &patient, status.as_str()).await;
        assert_eq!(a.status, 201, "{}", a.body);
        let id = id_of(&a);
        for step in steps {
            let r = act(&doctor, &reception, &id, *step, &a.body["start"]).await;
            assert_eq!(
                r.status,
                200,
                "{} on the way to {}: {}",
                step.as_str(),
                status.as_str(),
                r.body
            );
        }
        let now = reception.get(&format!("/api/v1/appointments/{id}")).await;
        assert_eq!(now.body["status"], status.as_str());
        made.push((status, id));
    }

    let mut refused = 0;
    for (status, id) in &made {
        let before = reception.get(&format!("/api/v1/appointments/{id}")).await;
        assert_eq!(before.status, 200, "{}", before.body);
        let expected: Vec<&str> = status
            .allowed_actions()
            .into_iter()
            .map(AppointmentAction::as_str)
            .collect();
        for action in AppointmentAction::ALL {
            if status.apply(action).is_some() {
                continue;
            }
            let r = act(&doctor, &reception, id, action, &before.body["start"]).await;
            assert_problem(&r, 409, "invalid-transition");
            let allowed: Vec<&str> = r.body["allowed"]
                .as_array()
                .unwrap_or_else(|| panic!("no `allowed` in {}", r.body))
                .iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect();
            assert_eq!(
                allowed,
                expected,
                "{} from {}",
                action.as_str(),
                status.as_str()
            );
            let after = reception.get(&format!("/api/v1/appointments/{id}")).await;
            assert_eq!(
                after.body,
                before.body,
                "{} from {} changed the appointment",
                action.as_str(),
                status.as_str()
            );
            refused += 1;
        }
    }
    // pending 3, booked 3, arrived 5, and 7 each for the three final statuses.
    assert_eq!(refused, 3 + 3 + 5 + 7 * 3);
}

// ---------------------------------------------------------------------------------------------
// 6. Roles
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_devices_are_held_to_what_they_may_do() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let kiosk = node.kiosk().await;
    let admin = node.admin().await;
    let doctor0 = node.doctor(0).await;
    let doctor1 = node.doctor(1).await;
    let doc0 = node.doctor_id(0);
    let doc1 = node.doctor_id(1);
    let p0 = node.patient(0).id.to_string();

    identify(&node, &kiosk, 0).await;
    let pending = kiosk.book_next(&doc0, &p0, "Kiosk").await;
    assert_eq!(pending.status, 201, "{}", pending.body);
    let pid = id_of(&pending);
    let confirm = format!("/api/v1/appointments/{pid}/confirm");

    assert_problem(
        &kiosk.call(Method::POST, &confirm, None, &[]).await,
        403,
        "forbidden",
    );
    assert_problem(
        &kiosk.get("/api/v1/patients?name=a").await,
        403,
        "forbidden",
    );
    assert_problem(&kiosk.get("/api/v1/patients").await, 403, "forbidden");
    assert_problem(
        &kiosk.get(&format!("/api/v1/patients/{p0}")).await,
        403,
        "forbidden",
    );

    let before = count_appointments(&reception, &doc1).await;
    assert_problem(
        &doctor0.book_next(&doc1, &p0, "Not mine").await,
        403,
        "forbidden",
    );
    assert_eq!(count_appointments(&reception, &doc1).await, before);

    assert_problem(
        &doctor1.call(Method::POST, &confirm, None, &[]).await,
        403,
        "forbidden",
    );
    assert_problem(
        &reception.call(Method::POST, &confirm, None, &[]).await,
        403,
        "forbidden",
    );
    let still = reception.get(&format!("/api/v1/appointments/{pid}")).await;
    assert_eq!(
        still.body, pending.body,
        "refused confirmations changed the booking"
    );

    assert_problem(
        &admin.get(&format!("/api/v1/patients/{p0}")).await,
        403,
        "forbidden",
    );
    assert_problem(
        &admin.get("/api/v1/patients?name=a").await,
        403,
        "forbidden",
    );

    let p3 = node.patient(3).id.to_string();
    let before = count_appointments(&reception, &doc0).await;
    assert_problem(
        &kiosk.book_next(&doc0, &p3, "Not identified").await,
        403,
        "patient-not-identified",
    );
    assert_eq!(count_appointments(&reception, &doc0).await, before);

    let p = node.patient(4);
    let wrong = p.birth_date.succ_opt().expect("a next day");
    let r = kiosk
        .post(
            "/api/v1/kiosk/identify",
            json!({"card_number": p.card_number, "birth_date": wrong}),
        )
        .await;
    assert_problem(&r, 404, "not-found");
    assert_problem(
        &kiosk
            .book_next(&doc0, &p.id.to_string(), "Wrong birth date")
            .await,
        403,
        "patient-not-identified",
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Kiosk flow
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_booking_waits_for_the_doctor_to_confirm_or_decline() {
    let node = TestNode::start().await;
    let kiosk = node.kiosk().await;
    let doctor = node.doctor(2).await;
    let reception = node.reception().await;
    let doc = node.doctor_id(2);
    let p = node.patient(1).id.to_string();
    identify(&node, &kiosk, 1).await;

    let slot = free_slot(&node, &reception, &doc).await;
    let a = kiosk
        .post("/api/v1/appointments", booking(&p, &doc, &slot["start"]))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["status"], "pending");
    assert_eq!(
        a.body["booked_by"],
        json!({"kind": "kiosk", "id": node.creds.kiosk.device_id.to_string()})
    );
    assert_eq!(
        slot_status(&reception, &doc, ts(&slot["start"])).await,
        "busy-tentative"
    );
    let mine = kiosk.get("/api/v1/appointments").await;
    assert!(
        mine.body
            .as_array()
            .expect("list")
            .iter()
            .any(|x| x["id"] == a.body["id"]),
        "the kiosk sees its booking"
    );

    let id = id_of(&a);
    let c = doctor
        .call(
            Method::POST,
            &format!("/api/v1/appointments/{id}/confirm"),
            None,
            &[],
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.body["status"], "booked");
    assert_eq!(
        c.body["version"].as_i64(),
        Some(a.body["version"].as_i64().expect("version") + 1)
    );
    assert_eq!(
        slot_status(&reception, &doc, ts(&slot["start"])).await,
        "busy"
    );

    let b = kiosk.book_next(&doc, &p, "Second").await;
    assert_eq!(b.status, 201, "{}", b.body);
    assert_eq!(b.body["status"], "pending");
    let bid = id_of(&b);
    let d = doctor
        .post(
            &format!("/api/v1/appointments/{bid}/decline"),
            json!({"reason": "Please see the nurse instead"}),
        )
        .await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.body["status"], "cancelled");
    assert_eq!(
        d.body["cancellation_reason"],
        "Please see the nurse instead"
    );
    assert_eq!(
        slot_status(&reception, &doc, ts(&b.body["start"])).await,
        "free",
        "a declined booking frees its slot"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Patients
// ---------------------------------------------------------------------------------------------

fn ids(a: &Answer) -> BTreeSet<String> {
    a.body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {} {}", a.status, a.body))
        .iter()
        .map(|p| p["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_registered_with_duplicate_checks_and_found_by_name_birth_date_and_card() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let new = json!({"family_name": "Zwanenburg", "given_name": "Maartje", "birth_date": "1981-02-03", "phone": "+31 6 1234 5678"});

    let first = reception.post("/api/v1/patients", new.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["family_name"], "Zwanenburg");
    assert_eq!(first.body["version"], 1);
    let card = first.body["card_number"]
        .as_str()
        .expect("an issued card number")
        .to_owned();
    assert!(!card.is_empty());
    let id1 = id_of(&first);

    let dup = reception.post("/api/v1/patients", new.clone()).await;
    assert_problem(&dup, 409, "possible-duplicate");
    let candidates = dup.body["current"]
        .as_array()
        .unwrap_or_else(|| panic!("no candidates in {}", dup.body));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0]["id"], id1.as_str());

    let mut confirmed = new.clone();
    confirmed["confirm_duplicate"] = json!(true);
    let second = reception.post("/api/v1/patients", confirmed).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let id2 = id_of(&second);
    assert_ne!(id1, id2);
    assert_ne!(second.body["card_number"], card.as_str());

    let both: BTreeSet<String> = [id1.clone(), id2.clone()].into();
    for name in ["zwanen", "ZWANEN", "Zwanenburg", "maar"] {
        let found = ids(&reception
            .get(&format!("/api/v1/patients?name={name}"))
            .await);
        assert!(found.is_superset(&both), "name={name}: {found:?}");
    }
    let none = ids(&reception.get("/api/v1/patients?name=wanenburg").await);
    assert!(none.is_disjoint(&both), "not a prefix, yet found: {none:?}");

    let by_birth = ids(&reception
        .get("/api/v1/patients?birth_date=1981-02-03")
        .await);
    assert!(by_birth.is_superset(&both), "{by_birth:?}");
    let other_birth = ids(&reception
        .get("/api/v1/patients?birth_date=1981-02-04")
        .await);
    assert!(other_birth.is_disjoint(&both));

    let by_card = ids(&reception
        .get(&format!("/api/v1/patients?card_number={card}"))
        .await);
    assert_eq!(by_card, [id1.clone()].into());

    let combined = ids(&reception
        .get(&format!(
            "/api/v1/patients?name=zwa&birth_date=1981-02-03&card_number={card}"
        ))
        .await);
    assert_eq!(combined, [id1].into());

    assert_problem(&reception.get("/api/v1/patients").await, 422, "validation");
}

// ---------------------------------------------------------------------------------------------
// 9. problem+json for bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_is_answered_with_a_problem_and_changes_nothing() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let url = node.url.clone();
    let token = Some(reception.token.as_str());
    let json_ct = Some("application/json");
    let doc = node.doctor_id(0);
    let count_before = count_appointments(&reception, &doc).await;

    assert_problem(
        &reception.get("/api/v1/no-such-thing").await,
        404,
        "not-found",
    );
    assert_problem(
        &raw(&url, None, Method::GET, "/nowhere", None, vec![]).await,
        404,
        "not-found",
    );

    let wrong_method = reception
        .call(Method::DELETE, "/api/v1/patients", None, &[])
        .await;
    assert_problem(&wrong_method, 405, "method-not-allowed");
    assert_problem(
        &reception
            .call(Method::PUT, "/api/v1/appointments", None, &[])
            .await,
        405,
        "method-not-allowed",
    );

    let plain = raw(
        &url,
        token,
        Method::POST,
        "/api/v1/appointments",
        Some("text/plain"),
        b"hello".to_vec(),
    )
    .await;
    assert_problem(&plain, 415, "unsupported-media-type");
    let no_ct = raw(
        &url,
        token,
        Method::POST,
        "/api/v1/patients",
        None,
        b"{}".to_vec(),
    )
    .await;
    assert_problem(&no_ct, 415, "unsupported-media-type");

    let broken = raw(
        &url,
        token,
        Method::POST,
        "/api/v1/appointments",
        json_ct,
        br#"{"patient_id": "#.to_vec(),
    )
    .await;
    assert_problem(&broken, 400, "malformed-body");

    let missing = reception
        .post(
            "/api/v1/appointments",
            json!({"practitioner_id": doc, "reason": "No patient"}),
        )
        .await;
    assert_problem(&missing, 422, "validation");
    let wrong_type = reception
        .post(
            "/api/v1/patients",
            json!({"family_name": 7, "given_name": "X", "birth_date": "2000-01-01"}),
        )
        .await;
    assert_problem(&wrong_type, 422, "validation");
    let unknown_field = reception
        .post("/api/v1/patients", json!({"family_name": "X", "given_name": "Y", "birth_date": "2000-01-01", "shoe_size": 44}))
        .await;
    assert_problem(&unknown_field, 422, "validation");

    assert_problem(
        &raw(
            &url,
            None,
            Method::GET,
            "/api/v1/patients?name=a",
            None,
            vec![],
        )
        .await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &raw(
            &url,
            Some("not-a-real-token"),
            Method::GET,
            "/api/v1/me",
            None,
            vec![],
        )
        .await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &raw(
            &url,
            None,
            Method::POST,
            "/api/v1/appointments",
            json_ct,
            b"{}".to_vec(),
        )
        .await,
        401,
        "unauthenticated",
    );

    assert_problem(
        &reception.get("/api/v1/patients/not-a-uuid").await,
        404,
        "not-found",
    );
    assert_problem(
        &reception.get("/api/v1/appointments/12345").await,
        404,
        "not-found",
    );
    assert_problem(
        &reception
            .call(Method::POST, "/api/v1/appointments/xyz/check-in", None, &[])
            .await,
        404,
        "not-found",
    );
    let unknown = uuid::Uuid::now_v7();
    assert_problem(
        &reception
            .get(&format!("/api/v1/appointments/{unknown}"))
            .await,
        404,
        "not-found",
    );

    // Refused bookings: taken, outside the schedule, in the past, for no such patient.
    let taken = reception
        .book_next(&doc, &node.patient(0).id.to_string(), "First")
        .await;
    assert_eq!(taken.status, 201, "{}", taken.body);
    let count_mid = count_appointments(&reception, &doc).await;
    assert_eq!(count_mid, count_before + 1);
    let p1 = node.patient(1).id.to_string();
    assert_problem(
        &reception
            .post(
                "/api/v1/appointments",
                booking(&p1, &doc, &taken.body["start"]),
            )
            .await,
        409,
        "slot-taken",
    );
    let odd = ts(&taken.body["start"]) + Duration::minutes(7);
    assert_problem(
        &reception
            .post("/api/v1/appointments", booking(&p1, &doc, &json!(odd)))
            .await,
        422,
        "outside-schedule",
    );
    let no_one = uuid::Uuid::now_v7().to_string();
    assert_problem(
        &reception
            .post("/api/v1/appointments", booking(&no_one, &doc, &json!(odd)))
            .await,
        422,
        "validation",
    );
    let empty_reason = json!({"patient_id": p1, "practitioner_id": doc, "next_available_from": "2000-01-01T00:00:00Z", "reason": "  "});
    assert_problem(
        &reception.post("/api/v1/appointments", empty_reason).await,
        422,
        "validation",
    );
    assert_eq!(
        count_appointments(&reception, &doc).await,
        count_mid,
        "refused bookings created something"
    );

    // Body over the limit, on a node that accepts 1 KiB.
    let small = TestNode::start_with(|c| c.max_body_bytes = 1024).await;
    let r = small.reception().await;
    let big =
        json!({"family_name": "x".repeat(4096), "given_name": "Big", "birth_date": "1990-01-01"});
    let too_large = raw(
        &small.url,
        Some(&r.token),
        Method::POST,
        "/api/v1/patients",
        json_ct,
        serde_json::to_vec(&big).expect("json"),
    )
    .await;
    assert_problem(&too_large, 413, "payload-too-large");
    let found = r.get("/api/v1/patients?name=Big").await;
    assert_eq!(
        found.body,
        json!([]),
        "the oversized registration was not stored"
    );
    small.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. Accounts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_disable_and_reset_accounts_and_sign_ins_are_throttled() {
    let node = TestNode::start().await;
    let admin = node.admin().await;
    let url = node.url.clone();

    let created = admin
        .post(
            "/api/v1/practitioners",
            json!({"username": "dr.new", "display_name": "Dr. New", "role": "doctor", "password": "first-password-123"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let did = id_of(&created);
    let doctor = Client::sign_in(&url, "dr.new", "first-password-123").await;
    let me = doctor.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["id"], did.as_str());

    let dup = admin
        .post("/api/v1/practitioners", json!({"username": "dr.new", "display_name": "Again", "role": "doctor", "password": "first-password-123"}))
        .await;
    assert_problem(&dup, 409, "conflict");

    let off = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/practitioners/{did}"),
            Some(json!({"disabled": true})),
            &[],
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["disabled"], true);
    assert_problem(&doctor.get("/api/v1/me").await, 401, "unauthenticated");
    assert_problem(
        &sign_in(&url, "dr.new", "first-password-123").await,
        401,
        "unauthenticated",
    );
    // A name no account can have is refused like a wrong one, on either database.
    assert_problem(
        &sign_in(&url, "dr.new\u{0}", "first-password-123").await,
        401,
        "unauthenticated",
    );

    let on = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/practitioners/{did}"),
            Some(json!({"disabled": false})),
            &[],
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.body);
    let doctor = Client::sign_in(&url, "dr.new", "first-password-123").await;
    let reset = admin
        .call(
            Method::PATCH,
            &format!("/api/v1/practitioners/{did}"),
            Some(json!({"password": "second-password-456"})),
            &[],
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_problem(&doctor.get("/api/v1/me").await, 401, "unauthenticated");
    assert_problem(
        &sign_in(&url, "dr.new", "first-password-123").await,
        401,
        "unauthenticated",
    );
    let doctor = Client::sign_in(&url, "dr.new", "second-password-456").await;
    assert_eq!(doctor.get("/api/v1/me").await.status, 200);

    // Five failures for one account, then 429 with Retry-After, even with the right password.
    for i in 0..5 {
        let r = sign_in(&url, "reception", "wrong-password-here").await;
        assert_problem(&r, 401, "unauthenticated");
        assert!(r.headers.get("retry-after").is_none(), "attempt {i}");
    }
    let r = sign_in(&url, "reception", "wrong-password-here").await;
    assert_problem(&r, 429, "too-many-requests");
    let wait: u64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1, "{wait}");
    assert_problem(
        &sign_in(&url, "reception", support_reception_password()).await,
        429,
        "too-many-requests",
    );
    // Other accounts are not locked out by it.
    assert_eq!(
        sign_in(&url, "dr.new", "second-password-456").await.status,
        201
    );

    // Kiosk devices: register, sign in, revoke.
    let reg = admin
        .post("/api/v1/kiosks", json!({"label": "Lobby kiosk 2"}))
        .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let device = reg.body["device"]["id"]
        .as_str()
        .expect("device id")
        .to_owned();
    let secret = reg.body["secret"].as_str().expect("secret").to_owned();
    let kiosk = Client::kiosk_sign_in(&url, &device, &secret).await;
    let me = kiosk.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let revoked = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/kiosks/{device}"),
            None,
            &[],
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_problem(&kiosk.get("/api/v1/me").await, 401, "unauthenticated");
    let again = raw(
        &url,
        None,
        Method::POST,
        "/api/v1/kiosk-sessions",
        Some("application/json"),
        serde_json::to_vec(&json!({"device_id": device, "secret": secret})).expect("json"),
    )
    .await;
    assert_problem(&again, 401, "unauthenticated");
    let list = admin.get("/api/v1/kiosks").await;
    assert!(
        list.body
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["id"] == device.as_str() && d["revoked"] == true)
    );
}

/// A sign-in from `from` (a loopback address: the node sees it as the caller's address).
async fn sign_in_from(
    url: &str,
    from: [u8; 4],
    username: &str,
    password: &str,
) -> reqwest::StatusCode {
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client");
    http.post(format!("{url}/api/v1/sessions"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("sign in")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_get_five_password_checks_and_lock_no_one_out_elsewhere() {
    let node = TestNode::start().await;
    let url = node.url.clone();
    let attacker = [127, 0, 0, 2];
    let workstation = [127, 0, 0, 1];

    // Sixty wrong passwords for one account, sent together from one address: five are
    // checked (401); the rest are refused before any check (429), or told the node is busy
    // (503) when checks were queued too long.
    let guesses = (0..60).map(|_| sign_in_from(&url, attacker, "reception", "wrong-password-here"));
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| s.as_u16() == 401).count();
    let throttled = answers.iter().filter(|s| s.as_u16() == 429).count();
    let busy = answers.iter().filter(|s| s.as_u16() == 503).count();
    assert_eq!(checked, 5, "{answers:?}");
    assert_eq!(checked + throttled + busy, 60, "{answers:?}");
    assert!(throttled > 0, "{answers:?}");

    // The attacker's address is locked for that account, even with the right password...
    assert_eq!(
        sign_in_from(&url, attacker, "reception", support_reception_password()).await,
        429
    );
    // ...but the receptionist at her own workstation is not.
    assert_eq!(
        sign_in_from(&url, workstation, "reception", support_reception_password()).await,
        201
    );

    // Guessing across accounts from a shared address (a hospital's NAT) locks the address
    // for accounts not known there, but not for one that signed in from there lately.
    let shared = [127, 0, 0, 3];
    assert_eq!(
        sign_in_from(
            &url,
            shared,
            "admin",
            carebridge_server::demo::ADMIN_PASSWORD
        )
        .await,
        201
    );
    for i in 0..20 {
        let status = sign_in_from(&url, shared, &format!("nobody-{i}"), "guess-guess-guess").await;
        assert_eq!(status, 401, "guess {i}");
    }
    assert_eq!(
        sign_in_from(&url, shared, "nobody-else", "guess-guess-guess").await,
        429,
        "the address has used up its failures"
    );
    assert_eq!(
        sign_in_from(
            &url,
            shared,
            node.creds.doctors[0].username.as_str(),
            carebridge_server::demo::DOCTOR_PASSWORD
        )
        .await,
        429,
        "an account never signed in from there is throttled with the address"
    );
    assert_eq!(
        sign_in_from(
            &url,
            shared,
            "admin",
            carebridge_server::demo::ADMIN_PASSWORD
        )
        .await,
        201,
        "the admin signed in from there before"
    );
}

/// The practitioner lines of `who`'s snapshot.
async fn snapshot_practitioners(who: &Client) -> Vec<Value> {
    let r = who
        .http
        .get(format!("{}/api/v1/snapshot", who.url))
        .bearer_auth(&who.token)
        .send()
        .await
        .expect("snapshot");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|v| v["kind"] == "practitioner")
        .map(|v| v["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_learns_the_doctors_ids_and_names_but_not_what_they_sign_in_with() {
    let node = TestNode::start().await;
    let kiosk = node.kiosk().await;
    let reception = node.reception().await;
    let doctor_names: BTreeSet<String> = node
        .creds
        .doctors
        .iter()
        .map(|d| d.username.clone())
        .collect();

    for (what, list) in [
        ("the list", kiosk.get("/api/v1/practitioners").await.body),
        (
            "the snapshot",
            Value::Array(snapshot_practitioners(&kiosk).await),
        ),
    ] {
        let list = list.as_array().expect("a list").clone();
        assert!(!list.is_empty(), "{what}: the kiosk offers doctors");
        for p in &list {
            assert_eq!(p["role"], "doctor", "{what}: {p}");
            assert!(
                p["id"].is_string() && p["display_name"].is_string(),
                "{what}: {p}"
            );
            assert!(p.get("username").is_none(), "{what} names a username: {p}");
        }
        let text = Value::Array(list).to_string();
        for u in &doctor_names {
            assert!(!text.contains(&format!("\"{u}\"")), "{what} carries {u}");
        }
    }
    // Staff still see usernames.
    let staff = snapshot_practitioners(&reception).await;
    assert!(staff.iter().all(|p| p["username"].is_string()), "{staff:?}");
    let listed = reception.get("/api/v1/practitioners").await.body;
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p["username"].is_string())
    );
}

fn support_reception_password() -> &'static str {
    carebridge_server::demo::RECEPTION_PASSWORD
}

/// The doctor's first free slot from now on, as the slot list shows it (20 days ahead).
async fn first_free(node: &TestNode, c: &Client, doctor: &str) -> Value {
    slots_after(node, c, doctor, 20, now(node))
        .await
        .into_iter()
        .find(|s| s["status"] == "free")
        .expect("a free slot in the next 20 days")
}

/// "The next available" is the first free slot however many full days come before it: it is
/// looked for a day, then two, four, eight… days at a time, and every one of those reads must
/// still give the first free slot, past an absence and an overbooked slot, and back to a slot
/// a cancellation freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_the_next_available_gives_the_first_free_slot_across_full_days() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let admin = node.admin().await;
    let doc = node.doctor_id(2);
    // Two 15-minute slots a day, every day but today's weekday (so that no slot begins
    // between reading the slot list and booking): a few bookings fill many days.
    let today_weekday = today(&node).weekday();
    let hours: Vec<Value> = std::iter::successors(Some(Weekday::Mon), |d| Some(d.succ()))
        .take(7)
        .filter(|d| *d != today_weekday)
        .map(|d| json!({"weekday": d, "start": "09:00:00", "end": "09:30:00"}))
        .collect();
    let put = admin
        .call(
            Method::PUT,
            &format!("/api/v1/practitioners/{doc}/schedule"),
            Some(json!({"slot_minutes": 15, "hours": hours})),
            &[],
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let day = |n: i64, h: u32, m: u32| {
        (today(&node) + Duration::days(n))
            .and_hms_opt(h, m, 0)
            .expect("a time")
            .and_local_timezone(TZ)
            .earliest()
            .expect("a local time")
            .with_timezone(&Utc)
    };
    // The whole of day 3 away, and day 6's first slot overbooked with an override (busy,
    // yet not "taken" by a booking on the grid: only the full check sees it).
    let absent = reception
        .post(
            &format!("/api/v1/practitioners/{doc}/absences"),
            json!({"start": day(3, 9, 0), "end": day(3, 9, 30), "reason": "Course"}),
        )
        .await;
    assert_eq!(absent.status, 201, "{}", absent.body);
    let mut over = booking(&node.patient(1).id.to_string(), &doc, &json!(day(6, 9, 0)));
    over["end"] = json!(day(6, 9, 15));
    over["override_reason"] = json!("Urgent");
    let over = reception.post("/api/v1/appointments", over).await;
    assert_eq!(over.status, 201, "{}", over.body);

    let patient = node.patient(0).id.to_string();
    let mut booked = Vec::new();
    for i in 0..24 {
        let expected = first_free(&node, &reception, &doc).await;
        let b = reception
            .book_next(&doc, &patient, &format!("Visit {i}"))
            .await;
        assert_eq!(b.status, 201, "booking {i}: {}", b.body);
        assert_eq!(
            (&b.body["start"], &b.body["end"]),
            (&expected["start"], &expected["end"]),
            "booking {i} is not the first free slot"
        );
        booked.push(b);
    }
    let last = ts(&booked[23].body["start"]);
    assert!(
        last >= day(12, 9, 0),
        "24 bookings at two slots on six days a week, less the absence and the overbooked slot, reach day 12 or later (got {last})"
    );
    for b in &booked {
        let start = ts(&b.body["start"]);
        assert_ne!(
            start.with_timezone(&TZ).date_naive(),
            today(&node) + Duration::days(3),
            "a booking on the day away"
        );
        assert_ne!(start, day(6, 9, 0), "a booking on the overbooked slot");
    }

    // A cancellation frees a slot well before the last booking: the next booking takes it.
    let freed = &booked[5];
    let cancel = reception
        .post(
            &format!("/api/v1/appointments/{}/cancel", id_of(freed)),
            json!({"reason": "Patient called"}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let again = reception.book_next(&doc, &patient, "Visit again").await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["start"], freed.body["start"]);
    node.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. Absence
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_lists_what_it_affects_and_blocks_its_slots() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doc = node.doctor_id(2);
    let slots = future_slots(&node, &reception, &doc).await;
    // A free slot directly followed by another one, so the absence covers two slots.
    let (first, second) = slots
        .windows(2)
        .find(|w| w[0]["status"] == "free" && w[0]["end"] == w[1]["start"])
        .map(|w| (w[0].clone(), w[1].clone()))
        .expect("two adjacent slots");
    let booked = reception
        .post(
            "/api/v1/appointments",
            booking(&node.patient(0).id.to_string(), &doc, &first["start"]),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);

    let r = reception
        .post(
            &format!("/api/v1/practitioners/{doc}/absences"),
            json!({"start": first["start"], "end": second["end"], "reason": "Conference"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let affected = r.body["affected"].as_array().expect("affected");
    assert!(
        affected.iter().any(|a| a["id"] == booked.body["id"]),
        "{affected:?}"
    );
    assert!(
        affected
            .iter()
            .all(|a| ts(&a["start"]) < ts(&second["end"]) && ts(&a["end"]) > ts(&first["start"]))
    );
    assert_eq!(r.body["absence"]["reason"], "Conference");

    let before = count_appointments(&reception, &doc).await;
    let in_absence = reception
        .post(
            "/api/v1/appointments",
            booking(&node.patient(1).id.to_string(), &doc, &second["start"]),
        )
        .await;
    assert_problem(&in_absence, 422, "practitioner-absent");
    let mut over = booking(&node.patient(1).id.to_string(), &doc, &second["start"]);
    over["override_reason"] = json!("Urgent");
    assert_problem(
        &reception.post("/api/v1/appointments", over).await,
        422,
        "practitioner-absent",
    );
    assert_eq!(count_appointments(&reception, &doc).await, before);

    for s in [&first, &second] {
        assert_eq!(
            slot_status(&reception, &doc, ts(&s["start"])).await,
            "busy-unavailable"
        );
    }
    let after = slots.iter().find(|s| ts(&s["start"]) >= ts(&second["end"]));
    if let Some(s) = after {
        assert_ne!(
            slot_status(&reception, &doc, ts(&s["start"])).await,
            "busy-unavailable",
            "the absence ends at its end"
        );
    }

    let kiosk = node.kiosk().await;
    let refused = kiosk
        .post(
            &format!("/api/v1/practitioners/{doc}/absences"),
            json!({"start": first["start"], "end": second["end"], "reason": "x"}),
        )
        .await;
    assert_problem(&refused, 403, "forbidden");
    let other_doctor = node.doctor(0).await;
    let refused = other_doctor
        .post(
            &format!("/api/v1/practitioners/{doc}/absences"),
            json!({"start": first["start"], "end": second["end"], "reason": "x"}),
        )
        .await;
    assert_problem(&refused, 403, "forbidden");
}

// ---------------------------------------------------------------------------------------------
// 12. OpenAPI
// ---------------------------------------------------------------------------------------------

/// Every route the API serves (besides `/api/v1/openapi.json` itself and `/healthz`).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/sessions"),
    ("post", "/federation/v1/inbox"),
    ("get", "/federation/v1/fhir/{type}"),
    ("get", "/api/v1/patients/{id}/remote-access"),
    ("post", "/api/v1/patients/{id}/remote-access"),
    ("get", "/api/v1/patients/{id}/transfers"),
    ("post", "/api/v1/patients/{id}/transfers"),
    ("get", "/api/v1/patients/{id}/transferred-records"),
    ("post", "/api/v1/remote-access/{id}/code"),
    ("get", "/api/v1/remote-access/{id}/records/{type}"),
    ("get", "/api/v1/patients/{id}/access-requests"),
    ("get", "/api/v1/patients/{id}/access-reads"),
    ("post", "/api/v1/access-requests/{id}/decision"),
    ("post", "/api/v1/access-requests/{id}/revoke"),
    ("delete", "/api/v1/sessions/current"),
    ("post", "/api/v1/kiosk-sessions"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/practitioners"),
    ("post", "/api/v1/practitioners"),
    ("patch", "/api/v1/practitioners/{id}"),
    ("get", "/api/v1/practitioners/{id}/schedule"),
    ("put", "/api/v1/practitioners/{id}/schedule"),
    ("post", "/api/v1/practitioners/{id}/absences"),
    ("get", "/api/v1/practitioners/{id}/slots"),
    ("get", "/api/v1/kiosks"),
    ("post", "/api/v1/kiosks"),
    ("delete", "/api/v1/kiosks/{id}"),
    ("get", "/api/v1/patients"),
    ("post", "/api/v1/patients"),
    ("get", "/api/v1/patients/{id}"),
    ("patch", "/api/v1/patients/{id}"),
    ("post", "/api/v1/kiosk/identify"),
    ("delete", "/api/v1/kiosk/identify"),
    ("get", "/api/v1/appointments"),
    ("post", "/api/v1/appointments"),
    ("get", "/api/v1/appointments/{id}"),
    ("post", "/api/v1/appointments/{id}/confirm"),
    ("post", "/api/v1/appointments/{id}/decline"),
    ("post", "/api/v1/appointments/{id}/reschedule"),
    ("post", "/api/v1/appointments/{id}/cancel"),
    ("post", "/api/v1/appointments/{id}/check-in"),
    ("post", "/api/v1/appointments/{id}/complete"),
    ("post", "/api/v1/appointments/{id}/no-show"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/reports"),
    ("post", "/api/v1/reports"),
    ("get", "/api/v1/reports/{id}"),
    ("get", "/api/v1/reports/{id}/revisions"),
    ("put", "/api/v1/reports/{id}/draft"),
    ("post", "/api/v1/reports/{id}/finalise"),
    ("post", "/api/v1/reports/{id}/amend"),
    ("post", "/api/v1/reports/{id}/entered-in-error"),
    ("get", "/api/v1/reports/{id}/pdf"),
    ("get", "/api/v1/peers"),
    ("post", "/api/v1/imaging/orders"),
    ("get", "/api/v1/patients/{id}/imaging"),
    ("get", "/api/v1/imaging/studies/{id}/preview"),
    ("get", "/api/v1/imaging/reconciliation"),
    ("post", "/api/v1/imaging/studies/{id}/link"),
    ("post", "/api/v1/imaging/instances"),
    ("post", "/api/v1/imaging/hint"),
    ("get", "/api/v1/patients/{id}/documents"),
    ("post", "/api/v1/patients/{id}/documents"),
    ("get", "/api/v1/documents/{id}/content"),
    ("get", "/api/v1/patients/{id}/consents"),
    ("post", "/api/v1/patients/{id}/consents"),
    ("delete", "/api/v1/patients/{id}/consents/{peer}"),
    ("get", "/api/v1/transmissions"),
    ("post", "/api/v1/transmissions"),
    ("get", "/api/v1/received"),
    ("get", "/api/v1/received/{name}"),
    ("get", "/api/v1/admin-updates"),
    ("post", "/api/v1/admin-updates"),
    ("post", "/api/v1/admin-updates/{id}/acknowledge"),
    ("get", "/api/v1/snapshot"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/export"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_3_1_and_describes_every_route() {
    let node = TestNode::start().await;
    let doc = raw(
        &node.url,
        None,
        Method::GET,
        "/api/v1/openapi.json",
        None,
        vec![],
    )
    .await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let version = doc.body["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");

    let paths = doc.body["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    let mut without_4xx = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if ![
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            if !responses.keys().any(|k| k.starts_with('4')) {
                without_4xx.push(format!("{method} {path}"));
            }
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path} documents no success"
            );
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented routes not in the test's list: {extra:?}"
    );

    // And the router really serves each of them: without a token every one is refused with
    // something other than "no such route" or "wrong method".
    for (method, path) in ROUTES {
        let path = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let a = raw(&node.url, None, m, &path, None, vec![]).await;
        assert!(
            a.status != StatusCode::NOT_FOUND && a.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        assert!(a.status.is_client_error(), "{method} {path}: {}", a.status);
        assert!(a.is_problem(), "{method} {path}");
    }
    assert!(
        without_4xx.is_empty(),
        "operations that document no 4xx answer: {without_4xx:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overbooked_slots_original_appointment_still_moves_through_its_statuses() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doctor = node.doctor_id(0);
    let slot = free_slot(&node, &reception, &doctor).await;
    let first = reception
        .post(
            "/api/v1/appointments",
            booking(&node.patient(0).id.to_string(), &doctor, &slot["start"]),
        )
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let mut over = booking(&node.patient(1).id.to_string(), &doctor, &slot["start"]);
    over["override_reason"] = json!("Urgent: squeeze in");
    let second = reception.post("/api/v1/appointments", over).await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    // The original, overlapped on purpose, can still be checked in and completed.
    for action in ["check-in", "complete"] {
        let r = reception
            .post(
                &format!("/api/v1/appointments/{}/{action}", id_of(&first)),
                json!(null),
            )
            .await;
        assert_eq!(r.status, 200, "{action}: {:?}", r.body);
    }
    let r = reception
        .post(
            &format!("/api/v1/appointments/{}/check-in", id_of(&second)),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_far_outside_service_are_refused_and_the_node_stays_healthy() {
    let node = TestNode::start().await;
    let reception = node.reception().await;
    let doctor = node.doctor_id(0);
    for (from, to) in [
        ("-262143-01-01", "-262143-01-01"),
        ("+262142-12-30", "+262142-12-31"),
        ("1066-10-14", "1066-10-14"),
    ] {
        let r = reception
            .get(&format!(
                "/api/v1/practitioners/{doctor}/slots?from={from}&to={to}"
            ))
            .await;
        assert_eq!(r.status, 422, "{from}: {:?}", r.body);
    }
    let mut over = booking(
        &node.patient(0).id.to_string(),
        &doctor,
        &json!("+262142-12-31T23:59:00Z"),
    );
    over["override_reason"] = json!("far future");
    assert_eq!(
        reception.post("/api/v1/appointments", over).await.status,
        422
    );
    let absence = json!({"start": "-262143-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z", "reason": "forever"});
    let r = reception
        .post(&format!("/api/v1/practitioners/{doctor}/absences"), absence)
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = reception
        .post(
            "/api/v1/patients",
            json!({"family_name": "Old", "given_name": "Very", "birth_date": "0001-01-01"}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    // Reads and writes still work.
    assert_eq!(reception.get("/healthz").await.status, 200);
    assert_eq!(
        reception
            .book_next(&doctor, &node.patient(0).id.to_string(), "still fine")
            .await
            .status,
        201
    );
    node.stop().await;
}

//! The wire, end to end: what a real node sends decodes into `carebridge-protocol`'s types,
//! which is what the client core will rely on.

use std::sync::Arc;
use std::time::Duration;

use carebridge_protocol::Problem;
use carebridge_protocol::appointment::{Appointment, AppointmentStatus};
use carebridge_protocol::event::{EventKind, LiveEvent};
use carebridge_protocol::session::{Principal, Session};
use carebridge_server::clock::SystemClock;
use carebridge_server::config::NodeKind;
use carebridge_server::demo::{self, DemoSize};
use carebridge_server::node::{InitOptions, Node, init};
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_answers_and_events_decode_into_protocol_types()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut cfg = init(
        dir.path(),
        &InitOptions {
            name: "wire.example".into(),
            kind: NodeKind::Hospital,
            time_zone: "Europe/Amsterdam".into(),
            admin_username: "admin".into(),
            admin_password: demo::ADMIN_PASSWORD.into(),
            database_url: None,
        },
        &SystemClock,
    )?;
    cfg.durability = carebridge_server::store::Durability::Normal;
    let node = Node::open(cfg, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let creds = demo::seed(
        &node,
        &DemoSize {
            doctors: 1,
            days: 1,
            patients: 3,
            bench: false,
            appointments: None,
        },
        &url,
    )
    .await?;
    let served = tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
    let http = reqwest::Client::new();

    let session: Session = http
        .post(format!("{url}/api/v1/sessions"))
        .json(&json!({"username": "reception", "password": demo::RECEPTION_PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    assert!(matches!(session.principal, Principal::Staff { .. }));
    assert_eq!(session.node, "wire.example");

    let mut stream = http
        .get(format!("{url}/api/v1/events"))
        .bearer_auth(&session.token)
        .send()
        .await?
        .bytes_stream();
    let booked: Appointment = http
        .post(format!("{url}/api/v1/appointments"))
        .bearer_auth(&session.token)
        .json(
            &json!({"patient_id": creds.patients[0].id, "practitioner_id": creds.doctors[0].id,
                      "next_available_from": "2000-01-01T00:00:00Z", "reason": "wire"}),
        )
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(booked.status, AppointmentStatus::Booked);

    // Read frames until the booking's event, with a deadline.
    let mut text = String::new();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(frame) = text
                .split("\n\n")
                .find(|f| f.contains("event: appointment.created"))
            {
                return frame.to_owned();
            }
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await?;
    let kind = event
        .lines()
        .find_map(|l| l.strip_prefix("event: "))
        .and_then(EventKind::parse);
    let data = event
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_default();
    let decoded = LiveEvent::decode(kind.ok_or("no event kind")?, data)?;
    assert_eq!(decoded, LiveEvent::Appointment(booked.clone()));

    // Problems decode too, with their stable code.
    let again = http
        .post(format!("{url}/api/v1/appointments"))
        .bearer_auth(&session.token)
        .json(
            &json!({"patient_id": creds.patients[1].id, "practitioner_id": creds.doctors[0].id,
                      "start": booked.start, "reason": "same slot"}),
        )
        .send()
        .await?;
    assert_eq!(again.status(), 409);
    let problem: Problem = again.json().await?;
    assert_eq!(problem.code, carebridge_protocol::ProblemType::SlotTaken);

    node.shutdown.cancel();
    served.await??;
    Ok(())
}

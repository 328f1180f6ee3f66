//! Configuration: the documented example parses to the defaults, bad options are refused,
//! and with a certificate configured the node speaks HTTPS.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use carebridge_server::NodeConfig;
use carebridge_server::clock::SystemClock;
use carebridge_server::config::{MailConfig, MailSecurity, TlsConfig};
use carebridge_server::node::Node;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/node.example.toml")
}

#[test]
fn the_documented_example_is_the_defaults() {
    let cfg = NodeConfig::load(Some(&example())).unwrap();
    let d = NodeConfig::default();
    assert_eq!(cfg.name, "st-marys.example");
    assert_eq!(cfg.time_zone, "Europe/Amsterdam");
    assert_eq!(
        (
            cfg.listen,
            cfg.durability,
            cfg.session_hours,
            cfg.kiosk_session_days
        ),
        (
            d.listen,
            d.durability,
            d.session_hours,
            d.kiosk_session_days
        )
    );
    assert_eq!(
        (
            cfg.events_retained,
            cfg.live_buffer,
            cfg.heartbeat_seconds,
            cfg.max_body_bytes,
            cfg.max_failed_sign_ins
        ),
        (
            d.events_retained,
            d.live_buffer,
            d.heartbeat_seconds,
            d.max_body_bytes,
            d.max_failed_sign_ins
        )
    );
    assert_eq!(
        (cfg.tls, cfg.tcp_send_buffer, cfg.key_file),
        (None, None, None)
    );
}

#[test]
fn unknown_options_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.toml");
    std::fs::write(&f, "name = \"a.example\"\nlisten_on = \"x\"\n").unwrap();
    let e = NodeConfig::load(Some(&f)).unwrap_err().to_string();
    assert!(e.contains("listen_on"), "{e}");
    std::fs::write(&f, "name = \"a.example\"\ntime_zone = \"Mars/Olympus\"\n").unwrap();
    let e = NodeConfig::load(Some(&f)).unwrap_err().to_string();
    assert!(e.contains("Mars/Olympus"), "{e}");
}

#[test]
fn a_mail_section_parses_with_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.toml");
    std::fs::write(
        &f,
        "name = \"a.example\"\n\
         [mail]\n\
         host = \"smtp.st-marys.example\"\n\
         from = \"St Mary's Hospital <no-reply@st-marys.example>\"\n",
    )
    .unwrap();
    let mail = NodeConfig::load(Some(&f)).unwrap().mail.unwrap();
    assert_eq!(
        mail,
        MailConfig {
            host: "smtp.st-marys.example".into(),
            port: None,
            security: MailSecurity::Starttls,
            username: None,
            password: None,
            from: "St Mary's Hospital <no-reply@st-marys.example>".into(),
            timeout_seconds: 20,
        }
    );
    assert_eq!(mail.port(), 587);

    std::fs::write(
        &f,
        "name = \"a.example\"\n\
         [mail]\n\
         host = \"smtp.st-marys.example\"\n\
         security = \"tls\"\n\
         username = \"node\"\n\
         password = \"secret\"\n\
         from = \"no-reply@st-marys.example\"\n\
         timeout_seconds = 5\n",
    )
    .unwrap();
    let mail = NodeConfig::load(Some(&f)).unwrap().mail.unwrap();
    assert_eq!(
        (
            mail.security,
            mail.port(),
            mail.username.as_deref(),
            mail.timeout_seconds
        ),
        (MailSecurity::Tls, 465, Some("node"), 5)
    );
    assert_eq!(NodeConfig::load(Some(&example())).unwrap().mail, None);
}

#[test]
fn bad_mail_settings_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.toml");
    let load = |mail: &str| {
        std::fs::write(&f, format!("name = \"a.example\"\n[mail]\n{mail}")).unwrap();
        NodeConfig::load(Some(&f)).unwrap_err().to_string()
    };
    let e = load("host = \"smtp.example\"\nfrom = \"a@b.example\"\nsecurity = \"ssl\"\n");
    assert!(
        e.contains("security") && e.contains("ssl") && e.contains("starttls"),
        "{e}"
    );
    let e = load("host = \"smtp.example\"\nfrom = \"the hospital\"\n");
    assert!(e.contains("mail.from"), "{e}");
    let e = load("host = \"smtp.example\"\n");
    assert!(e.contains("from"), "{e}");
    let e = load("host = \"smtp.example\"\nfrom = \"a@b.example\"\nusername = \"node\"\n");
    assert!(e.contains("mail.password"), "{e}");
    let e = load("host = \"smtp.example\"\nfrom = \"a@b.example\"\ntimeout_seconds = 0\n");
    assert!(e.contains("mail.timeout_seconds"), "{e}");
    let e = load("host = \"smtp.example\"\nfrom = \"a@b.example\"\nsender = \"x\"\n");
    assert!(e.contains("sender"), "{e}");
}

#[test]
fn the_node_serves_https_with_a_configured_certificate() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let data = dir.path().join("node");
        let mut cfg = support::init_dir(&data);
        cfg.tls = Some(TlsConfig {
            cert: cert_path,
            key: key_path,
        });
        let node = Node::open(cfg, Arc::new(SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(carebridge_server::serve::serve(node.clone(), listener));
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", ([127, 0, 0, 1], port).into())
            .build()
            .unwrap();
        let r = client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["node"],
            "st-marys.example"
        );
        // The live stream over TLS (served by the routed handler, not the plain-HTTP path).
        let session: serde_json::Value = client
            .post(format!("https://localhost:{port}/api/v1/sessions"))
            .json(&serde_json::json!({"username": "admin", "password": carebridge_server::demo::ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut events = client
            .get(format!("https://localhost:{port}/api/v1/events"))
            .bearer_auth(session["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), events.chunk()).await.unwrap().unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).starts_with("retry: "), "{first:?}");
        drop(events);
        // Plain HTTP on the TLS port gets nowhere.
        let plain = support::http()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        assert!(plain.is_err() || plain.unwrap().status() != 200);
        node.shutdown.cancel();
        served.await.unwrap().unwrap();
    });
}

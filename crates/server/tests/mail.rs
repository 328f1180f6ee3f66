//! E-mail: the mailer sends through a real SMTP server (the test kit's aiosmtpd) what a person
//! then reads, and says of each failure whether trying again can help.

use std::time::{Duration, Instant};

use carebridge_server::config::{MailConfig, MailSecurity};
use carebridge_server::mail::{MailError, Mailer};
use carebridge_testkit::free_port;
use carebridge_testkit::smtp::{BUSY_DOMAIN, REFUSED_DOMAIN, SmtpServer};

const FROM: &str = "St Mary's Hospital <no-reply@st-marys.example>";

fn config(port: u16) -> MailConfig {
    MailConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        security: MailSecurity::None,
        username: None,
        password: None,
        from: FROM.into(),
        timeout_seconds: 10,
    }
}

#[tokio::test]
async fn a_message_arrives_as_written() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::from_config(&config(server.port())).unwrap();
    // Non-ASCII, a line longer than quoted-printable's 76 characters, a line that SMTP must
    // dot-stuff and one an mbox would mangle: all must arrive as they were.
    let body = "Dr Ünal, St Mary's Hospital asks… Code 4821-7730\n\
        \n\
        Give this code to Dr Ünal only if you agree that they may read your records for 30 days.\n\
        .\n\
        From the records office — Ça va, Zoë?\n";
    mailer
        .send(
            "Ada Patient <ada@patients.example>",
            "Dr Ünal asks to see your records — Code 4821-7730",
            body,
        )
        .await
        .unwrap();

    let m = server
        .wait_for_message("ada@patients.example", Duration::from_secs(10))
        .await;
    assert_eq!(m.envelope_to, ["ada@patients.example"]);
    assert_eq!(m.to, "\"Ada Patient\" <ada@patients.example>");
    assert!(
        m.from.contains("St Mary's Hospital") && m.from.contains("<no-reply@st-marys.example>"),
        "{}",
        m.from
    );
    assert_eq!(
        m.subject,
        "Dr Ünal asks to see your records — Code 4821-7730"
    );
    assert_eq!(m.body, body);
    let raw = String::from_utf8_lossy(&m.raw);
    assert!(
        raw.lines()
            .any(|l| l.starts_with("Message-ID: <") && l.ends_with("@st-marys.example>")),
        "{raw}"
    );
    assert!(
        m.content_type
            .to_ascii_lowercase()
            .contains("charset=utf-8"),
        "{}",
        m.content_type
    );
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_line_break_in_the_subject_adds_no_header() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::from_config(&config(server.port())).unwrap();
    mailer
        .send(
            "ada@patients.example",
            "Your code\r\nBcc: eve@attacker.example",
            "Code 4821-7730\n",
        )
        .await
        .unwrap();
    let m = server
        .wait_for_message("ada@patients.example", Duration::from_secs(10))
        .await;
    assert_eq!(m.envelope_to, ["ada@patients.example"]);
    assert!(m.subject.starts_with("Your code"), "{}", m.subject);
    assert_eq!(m.body, "Code 4821-7730\n");
    let raw = String::from_utf8_lossy(&m.raw);
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        !head.lines().any(|l| l.starts_with("Bcc:")),
        "a header was injected:\n{head}"
    );
}

#[tokio::test]
async fn a_server_nobody_runs_is_a_transient_failure() {
    let mailer = Mailer::from_config(&config(free_port())).unwrap();
    let e = mailer
        .send("ada@patients.example", "Code", "Code 4821-7730\n")
        .await
        .unwrap_err();
    assert!(matches!(e, MailError::Transient(_)), "{e:?}");
    assert!(!e.is_permanent());
    assert!(!e.to_string().contains("4821"), "the body leaked: {e}");
}

#[tokio::test]
async fn a_malformed_address_is_a_permanent_failure() {
    // Refused before any connection: no server is needed.
    let mailer = Mailer::from_config(&config(free_port())).unwrap();
    for address in [
        "ada.patients.example",
        "ada@",
        "Ada <ada@patients.example",
        "",
    ] {
        let e = mailer
            .send(address, "Code", "Code 4821-7730\n")
            .await
            .unwrap_err();
        assert!(
            matches!(e, MailError::InvalidAddress { .. }),
            "{address:?}: {e:?}"
        );
        assert!(e.is_permanent(), "{address:?}");
    }
}

#[tokio::test]
async fn a_5xx_refusal_is_permanent_and_a_4xx_is_not() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::from_config(&config(server.port())).unwrap();

    let e = mailer
        .send(&format!("ada@{REFUSED_DOMAIN}"), "Code", "Code 4821-7730\n")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MailError::Rejected { code: 550, reply } if reply.contains("No such mailbox")),
        "{e:?}"
    );
    assert!(e.is_permanent());
    // The server repeated the address; what is logged and stored of the refusal does not.
    assert!(!e.to_string().contains(REFUSED_DOMAIN), "{e}");
    assert!(!format!("{e:?}").contains(REFUSED_DOMAIN), "{e:?}");

    let e = mailer
        .send(&format!("ada@{BUSY_DOMAIN}"), "Code", "Code 4821-7730\n")
        .await
        .unwrap_err();
    assert!(matches!(e, MailError::Transient(_)), "{e:?}");
    assert!(!e.is_permanent());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_fails_transiently_in_time() {
    // Accepts the connection and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            open.push(c);
        }
    });
    let mailer = Mailer::from_config(&MailConfig {
        timeout_seconds: 1,
        ..config(port)
    })
    .unwrap();
    let started = Instant::now();
    let e = mailer
        .send("ada@patients.example", "Code", "Code 4821-7730\n")
        .await
        .unwrap_err();
    assert!(!e.is_permanent(), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn tls_that_the_server_cannot_do_sends_nothing_in_the_clear() {
    let server = SmtpServer::start().await;
    for security in [MailSecurity::Starttls, MailSecurity::Tls] {
        let mailer = Mailer::from_config(&MailConfig {
            security,
            ..config(server.port())
        })
        .unwrap();
        let e = mailer
            .send("ada@patients.example", "Code", "Code 4821-7730\n")
            .await
            .unwrap_err();
        // The settings or the server must change: it may go through then.
        assert!(matches!(e, MailError::Transient(_)), "{security:?}: {e:?}");
    }
    assert!(server.messages().is_empty());
}

#[test]
fn settings_that_cannot_work_make_no_mailer() {
    let bad_from = MailConfig {
        from: "St Mary's Hospital".into(),
        ..config(2525)
    };
    let e = Mailer::from_config(&bad_from).unwrap_err();
    assert!(matches!(e, MailError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("mail.from"), "{e}");

    let password_in_clear = MailConfig {
        username: Some("node".into()),
        password: Some("secret".into()),
        ..config(2525)
    };
    let e = Mailer::from_config(&password_in_clear).unwrap_err();
    assert!(e.to_string().contains("in the clear"), "{e}");
}

//! A real SMTP server of a test's own: aiosmtpd (pinned in `crates/testkit/smtp-requirements.txt`,
//! installed by `make aiosmtpd`, which `make test` runs) on 127.0.0.1, keeping every message it
//! accepts in a scratch folder, where the test reads it back as a person's mail program would:
//! headers and body decoded.
//!
//! Its handler (`smtp_server.py`) refuses recipients at `refused.invalid` for good (550) and
//! those at `busy.invalid` for now (451), so that a test can meet both kinds of refusal.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use mailparse::MailHeaderMap;
use tokio::io::AsyncReadExt;

/// The handler aiosmtpd runs, written into the server's scratch folder.
const SERVER_SCRIPT: &str = include_str!("smtp_server.py");
/// How long the server may take to start.
const START_WITHIN: Duration = Duration::from_secs(30);
/// How often the mail folder is read again while waiting for a message.
const POLL: Duration = Duration::from_millis(20);

/// A recipient domain the server refuses for good: `550` to `RCPT TO`.
pub const REFUSED_DOMAIN: &str = "refused.invalid";
/// A recipient domain the server refuses for now: `451` to `RCPT TO`.
pub const BUSY_DOMAIN: &str = "busy.invalid";

/// A message the server accepted, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope's recipients (`RCPT TO`), whom it was delivered to.
    pub envelope_to: Vec<String>,
    /// The `From` header, decoded (e.g. `"St Mary's Hospital" <no-reply@st-marys.example>`).
    pub from: String,
    /// The `To` header, decoded.
    pub to: String,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The `Content-Type` header as sent (e.g. `text/plain; charset=utf-8`).
    pub content_type: String,
    /// The text body, its transfer encoding (quoted-printable, base64) and charset decoded, its
    /// line ends `\n`. The first `text/plain` part of a multipart message.
    pub body: String,
    /// The message as it arrived, after the server's `X-RcptTo:` lines.
    pub raw: Vec<u8>,
}

/// An aiosmtpd of the test's own, killed when dropped (and gone by itself once the test process
/// is: it exits when its standard input closes).
pub struct SmtpServer {
    child: Child,
    /// Held open: the server exits when it closes.
    _stdin: ChildStdin,
    dir: tempfile::TempDir,
    port: u16,
}

/// The Python that has aiosmtpd: `AIOSMTPD_PYTHON`, as the Makefile exports it, or the
/// Makefile's virtualenv.
fn python() -> PathBuf {
    let path = std::env::var_os("AIOSMTPD_PYTHON").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/carebridge-smtp/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing, so aiosmtpd, the tests' SMTP server, is not installed: run `make test`, \
         which installs it (`make aiosmtpd` installs it alone)",
        path.display()
    );
    path
}

impl SmtpServer {
    /// Starts the server on a port the system picks, and waits until it greets on it.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a scratch folder for the SMTP server");
        let script = dir.path().join("smtp_server.py");
        std::fs::write(&script, SERVER_SCRIPT).expect("the SMTP server's script");
        let log_path = dir.path().join("smtp.log");
        let log = std::fs::File::create(&log_path).expect("the SMTP server's log");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(dir.path().join("mail"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the SMTP server starts (aiosmtpd's Python)");
        let stdin = child.stdin.take().expect("its standard input");
        let stdout = child.stdout.take().expect("its standard output");
        // It prints its port once it listens.
        let line = tokio::time::timeout(
            START_WITHIN,
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                line
            }),
        )
        .await;
        let port = match line {
            Ok(Ok(line)) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        let mut server = Self {
            child,
            _stdin: stdin,
            dir,
            port: 0,
        };
        let Some(port) = port else {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!(
                "the SMTP server did not start within {START_WITHIN:?} (is aiosmtpd installed? \
                 `make test` installs it): {}",
                read_log(&log_path)
            );
        };
        server.port = port;
        server.wait_for_greeting().await;
        server
    }

    /// Waits until the port accepts a connection and the server greets with `220`.
    async fn wait_for_greeting(&self) {
        let deadline = tokio::time::Instant::now() + START_WITHIN;
        loop {
            if let Ok(Ok(mut c)) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::TcpStream::connect(("127.0.0.1", self.port)),
            )
            .await
            {
                let mut greeting = [0u8; 4];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut greeting)).await
                    && &greeting == b"220 "
                {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the SMTP server on port {} did not greet within {START_WITHIN:?}: {}",
                self.port,
                read_log(&self.dir.path().join("smtp.log"))
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Its port on 127.0.0.1 (plain SMTP: no TLS, no sign-in).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder the messages are written to (`new/`, one file each).
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message accepted so far, in the order they arrived.
    pub fn messages(&self) -> Vec<Message> {
        let new = self.mail_dir().join("new");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&new) {
            Ok(entries) => entries
                .map(|e| e.expect("an entry of the mail folder").path())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", new.display()),
        };
        // Named by a counter, zero-padded: the names sort in the order of arrival.
        files.sort();
        files
            .iter()
            .map(|f| {
                let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            })
            .collect()
    }

    /// The first message delivered to `to` (an envelope recipient, compared without case);
    /// panics, listing what did arrive, once `within` has passed without one.
    pub async fn wait_for_message(&self, to: &str, within: Duration) -> Message {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let messages = self.messages();
            if let Some(m) = messages
                .iter()
                .find(|m| m.envelope_to.iter().any(|r| r.eq_ignore_ascii_case(to)))
            {
                return m.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let arrived: Vec<_> = messages
                    .iter()
                    .map(|m| format!("to {:?}: {:?}", m.envelope_to, m.subject))
                    .collect();
                panic!(
                    "no message to {to} within {within:?}; arrived: {arrived:?}; server log: {}",
                    read_log(&self.dir.path().join("smtp.log"))
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message as the server wrote it: its `X-RcptTo:` lines, then the message as it arrived.
fn parse(bytes: &[u8]) -> Result<Message, mailparse::MailParseError> {
    let mail = mailparse::parse_mail(bytes)?;
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    let text = if mail.ctype.mimetype.starts_with("multipart/") {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == "text/plain")
            .map(mailparse::ParsedMail::get_body)
            .transpose()?
            .unwrap_or_default()
    } else {
        mail.get_body()?
    };
    let mut raw = bytes;
    while raw.starts_with(b"X-RcptTo:") {
        let end = raw
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| i + 1);
        raw = &raw[end..];
    }
    Ok(Message {
        envelope_to: mail.headers.get_all_values("X-RcptTo"),
        from: header("From"),
        to: header("To"),
        subject: header("Subject"),
        content_type: header("Content-Type"),
        body: text.replace("\r\n", "\n"),
        raw: raw.to_vec(),
    })
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    if text.is_empty() {
        format!("{} is empty", path.display())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_printable_message_is_decoded() {
        let raw = b"X-RcptTo: pat@example.org\r\n\
            From: \"St Mary's\" <no-reply@st-marys.example>\r\n\
            To: pat@example.org\r\n\
            Subject: =?utf-8?b?w5xuYWw=?=\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            Dr =C3=9Cnal,\r\n\
            a soft=\r\n\
            break\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.envelope_to, ["pat@example.org"]);
        assert_eq!(m.to, "pat@example.org");
        assert_eq!(m.subject, "Ünal");
        assert_eq!(m.body, "Dr Ünal,\na softbreak\n");
        assert!(m.raw.starts_with(b"From: "));
    }
}

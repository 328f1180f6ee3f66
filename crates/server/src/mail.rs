//! E-mail: plain-text messages through the organisation's SMTP server (`[mail]` in the
//! configuration), first of all a patient's one-time approval codes.
//!
//! One connection per message (no pool): messages are few, and a fresh connection makes each
//! failure belong to one message. A failure says whether trying again can help
//! ([`MailError::is_permanent`]), so that a durable outbox retries transient failures only.
//! TLS is rustls with the node's provider (ring) and webpki's roots, as the node's other
//! outgoing connections (2026-12-07).
//!
//! A message's body is never logged, nor put into an error: it carries one-time codes. (lettre's
//! `tracing` feature stays off for the same reason: it logs the whole SMTP exchange.)

use std::fmt;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncTransport, Tokio1Executor};

use crate::config::{MailConfig, MailSecurity};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The `[mail]` settings cannot make a mailer (e.g. `from` is not an address). Permanent.
    #[error("mail configuration: {0}")]
    Config(String),
    /// The recipient is not an e-mail address. Permanent: the same address fails again. The
    /// address is not repeated: this error is logged and stored, and the address is a patient's.
    #[error("the recipient is not an e-mail address: {reason}")]
    InvalidAddress {
        /// What is wrong with it.
        reason: String,
    },
    /// The mail server refused the message for good: a 5xx reply about this message or its
    /// recipient (550, 551, 552, 553). Permanent: sending it again would be refused again.
    #[error("the mail server refused the message ({code}): {reply}")]
    Rejected {
        /// The reply's code, e.g. 550.
        code: u16,
        /// The server's words, any e-mail address in them replaced (servers repeat the
        /// recipient's).
        reply: String,
    },
    /// Not sent now, may be later: the server could not be reached, TLS failed, it answered
    /// 4xx (busy, greylisting) or not in time.
    #[error("mail not sent, to be tried again: {0}")]
    Transient(String),
}

impl MailError {
    /// Whether sending the same message again is bound to fail the same way; a durable outbox
    /// gives such a message up and retries the others.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Config(_) | Self::InvalidAddress { .. } | Self::Rejected { .. } => true,
            Self::Transient(_) => false,
        }
    }

    /// What lettre's error means for the message.
    fn from_smtp(e: &lettre::transport::smtp::Error) -> Self {
        let reply = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string());
        let reply = without_addresses(&reply);
        let code: Option<u16> = e.status().and_then(|c| c.to_string().parse().ok());
        match code {
            // The message's or its recipient's own fault: no mailbox, not local, too big, a
            // mailbox name not allowed.
            Some(code @ 550..=553) if e.is_permanent() => Self::Rejected { code, reply },
            // Any other 5xx (a failed sign-in, relaying or the sender refused) is the
            // settings' fault, not the message's: kept, and sent once an operator fixed them.
            // 4xx, connection, network, TLS, a reply that did not parse: none is the message's
            // fault either.
            Some(code) => Self::Transient(format!("{code} {reply}")),
            None => Self::Transient(reply),
        }
    }
}

/// `text` with every word that holds an `@` replaced: what is logged and stored of an error
/// must not carry a patient's address.
fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends e-mail through the configured SMTP server. Cheap to share (`Arc`) between tasks;
/// each [`Mailer::send`] opens a connection of its own.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    /// For `Debug`: where it sends, without the credentials.
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for these settings. Connects to nothing yet: a server that is down shows at
    /// the first [`Self::send`], as a transient error.
    pub fn from_config(config: &MailConfig) -> Result<Self, MailError> {
        config
            .validate()
            .map_err(|e| MailError::Config(e.to_string()))?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("`mail.from` {:?}: {e}", config.from)))?;
        let tls = match config.security {
            MailSecurity::None => Tls::None,
            MailSecurity::Starttls => Tls::Required(tls_parameters(&config.host)?),
            MailSecurity::Tls => Tls::Wrapper(tls_parameters(&config.host)?),
        };
        let timeout = Duration::from_secs(config.timeout_seconds.into());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port())
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
            server: format!("{}:{} ({:?})", config.host, config.port(), config.security),
        })
    }

    /// Sends `body` as plain UTF-8 text to `to` (`someone@example.org` or
    /// `Name <someone@example.org>`); `Ok` once the server accepted it. Takes at most the
    /// configured `timeout_seconds`, connecting included.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let recipient: Mailbox = to.parse().map_err(|e| MailError::InvalidAddress {
            reason: without_addresses(&format!("{e}")),
        })?;
        // A subject is one line: a line break could start a header of its own.
        let subject = subject.replace(char::is_control, " ");
        let message = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(subject)
            // Some relays add none, and spam filters count its absence against a message.
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::new_v4().simple(),
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(text_body(body))
            .map_err(|e| MailError::InvalidAddress {
                reason: without_addresses(&e.to_string()),
            })?;
        // lettre's timeout bounds each step; this bounds the whole exchange.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => {
                tracing::debug!(server = %self.server, "mail accepted by the server");
                Ok(())
            }
            Ok(Err(e)) => Err(MailError::from_smtp(&e)),
            Err(_) => Err(MailError::Transient(format!(
                "{} did not finish within {:?}",
                self.server, self.timeout
            ))),
        }
    }
}

/// `body` as it goes on the wire: 7bit when it is ASCII in short lines, else quoted-printable,
/// which keeps its lines (base64 would not), so that its last line end can be left to SMTP:
/// the data's terminator (CRLF . CRLF) ends the last line, and a line end of the body's own
/// would arrive as an extra empty line.
fn text_body(body: &str) -> Body {
    let text = body
        .strip_suffix("\r\n")
        .or_else(|| body.strip_suffix('\n'))
        .unwrap_or(body);
    Body::new_with_encoding(text.to_owned(), ContentTransferEncoding::SevenBit)
        .or_else(|_| {
            Body::new_with_encoding(text.to_owned(), ContentTransferEncoding::QuotedPrintable)
        })
        // Quoted-printable takes any text: never reached.
        .unwrap_or_else(|_| Body::new(text.to_owned()))
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailError> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| MailError::Config(format!("TLS for `mail.host` {host:?}: {e}")))
}

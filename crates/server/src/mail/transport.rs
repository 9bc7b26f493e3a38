//! Where mail goes: the [`Transport`] trait the outbox worker sends through, an SMTP transport
//! on `lettre` configured by `USHER_SMTP_URL`, and a file transport that writes `.eml` files
//! (and logs each link) when no SMTP server is configured, so that a newcomer can follow an
//! invitation on a laptop.
//!
//! Both build the same RFC 5322 message: `From` is `USHER_MAIL_FROM`, the body is
//! multipart/alternative (plain text, then HTML), and the `Message-ID` is derived from the
//! outbox row, so that a message sent again after a lost acknowledgement carries the same id
//! and receiving systems can tell the copies apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use usher_core::clock::to_millis;
use usher_core::mail::OutboxMessage;

use crate::config::Config;

/// How long one SMTP conversation may take before it counts as failed. The worker's lease is
/// sized from it (see `worker`).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivers one message at a time.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Hands the message over. `Ok` means it was accepted (by the SMTP server, or written);
    /// an error means it was not, or may not have been, and the worker will try again.
    async fn send(&self, message: &OutboxMessage) -> Result<(), TransportError>;

    /// Where mail goes, for the logs; never shows a password.
    fn describe(&self) -> String;
}

/// Why a message was not delivered. The text is what the outbox records and the detail page
/// shows, so it names the cause without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    message: String,
    permanent: bool,
}

impl TransportError {
    /// A failure that may pass: the server is down, busy, or refused for now.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that retrying cannot fix, such as a recipient that is not an address.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// The transport the configuration asks for: SMTP when `smtp_url` is set, else `.eml` files in
/// `data_dir/mail`. Fails at start on a malformed URL or sender, rather than at the first
/// message.
pub fn transport_from_config(
    config: &Config,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn Transport>> {
    let from = parse_from(&config.mail_from)?;
    match &config.smtp_url {
        Some(url) => {
            let settings = SmtpSettings::parse(url)?;
            if settings.credentials.is_some() && settings.security == Security::None {
                tracing::warn!(
                    "USHER_SMTP_URL sends a password without TLS; use smtps:// or ?tls=starttls \
                     unless the relay is on this machine"
                );
            }
            let hello = hello_name(&config.public_url);
            Ok(Arc::new(SmtpTransport::new(settings, from, hello)?))
        }
        None => Ok(Arc::new(FileTransport::new(data_dir.join("mail"), from))),
    }
}

/// The folder that holds the SQLite store (`usher-data` by default), where mail files go too.
/// With PostgreSQL there is no such folder, so `./usher-data` is used.
pub fn default_data_dir(config: &Config) -> PathBuf {
    let fallback = PathBuf::from("usher-data");
    let Some(rest) = config.database_url.strip_prefix("sqlite:") else {
        return fallback;
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return fallback;
    }
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn parse_from(mail_from: &str) -> anyhow::Result<Mailbox> {
    mail_from
        .parse()
        .map_err(|e| anyhow!("USHER_MAIL_FROM: {e}, got {mail_from:?}"))
}

/// The EHLO name: the host people reach this server by. Without one lettre says `[127.0.0.1]`,
/// which some relays refuse.
fn hello_name(public_url: &str) -> ClientId {
    match url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => ClientId::Domain(d),
        Some(url::Host::Ipv4(ip)) => ClientId::Ipv4(ip),
        Some(url::Host::Ipv6(ip)) => ClientId::Ipv6(ip),
        None => ClientId::default(),
    }
}

/// The RFC 5322 message for an outbox row, as both transports write it.
pub fn build_message(from: &Mailbox, message: &OutboxMessage) -> Result<Message, TransportError> {
    let to: Mailbox = message.recipient.parse().map_err(|e| {
        TransportError::permanent(format!(
            "the recipient {:?} is not an address: {e}",
            message.recipient
        ))
    })?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(format!(
            "<usher.outbox.{}.{}@{domain}>",
            message.id,
            to_millis(message.created_at)
        )))
        // RFC 3834: no vacation replies or bounces-to-sender loops for machine mail.
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|e| TransportError::permanent(format!("cannot build the message: {e}")))
}

/// The message id [`build_message`] gives an outbox row, read back (tests, logs).
pub fn outbox_id_of_message_id(message_id: &str) -> Option<i64> {
    let rest = message_id
        .trim_start_matches('<')
        .strip_prefix("usher.outbox.")?;
    rest.split('.').next()?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text: for a relay on this machine or in tests.
    None,
    /// Plain connect, then STARTTLS, which must succeed (no silent downgrade).
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465).
    Tls,
}

/// `USHER_SMTP_URL`, understood.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// User and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SmtpSettings {
    /// `smtp://host[:port]` (plain, port 25), `smtp://user:pass@host[:port]?tls=starttls`
    /// (port 587), `smtps://user:pass@host[:port]` (port 465). Anything else is refused, so
    /// that a typo never turns encryption off.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let bad = |what: &str| anyhow!("USHER_SMTP_URL: {what}, got {:?}", redact_url(url));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let mut tls = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "tls" => tls = Some(value.into_owned()),
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?} (only tls=starttls)"
                    )))
                }
            }
        }
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None | Some("none")) => (Security::None, 25),
            ("smtp", Some("starttls" | "required")) => (Security::StartTls, 587),
            ("smtps", None) => (Security::Tls, 465),
            ("smtp" | "smtps", Some(other)) => {
                return Err(bad(&format!(
                    "tls={other} is not understood (smtp://…?tls=starttls, or smtps://)"
                )))
            }
            (scheme, _) => return Err(bad(&format!("unknown scheme {scheme:?} (smtp or smtps)"))),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("no host")),
        };
        if !matches!(parsed.path(), "" | "/") {
            return Err(bad("a path means nothing here"));
        }
        let decode = |s: &str| {
            urlencoding::decode(s)
                .map(|c| c.into_owned())
                .map_err(|_| bad("the credentials are not valid percent-encoded UTF-8"))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, Some(password)) if !user.is_empty() => Some((decode(user)?, decode(password)?)),
            _ => {
                return Err(bad(
                    "credentials need both a user and a password (user:pass@host)",
                ))
            }
        };
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(default_port),
            security,
            credentials,
        })
    }

    /// The URL again, without the password.
    pub fn describe(&self) -> String {
        let scheme = if self.security == Security::Tls {
            "smtps"
        } else {
            "smtp"
        };
        let user = match &self.credentials {
            Some((user, _)) => format!("{}@", urlencoding::encode(user)),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let query = if self.security == Security::StartTls {
            "?tls=starttls"
        } else {
            ""
        };
        format!("{scheme}://{user}{host}:{}{query}", self.port)
    }
}

/// A URL with any password replaced, for error messages.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Sends over SMTP, one connection per message: the outbox sends little, and a fresh
/// connection has no stale state to notice after an outage.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    description: String,
}

impl SmtpTransport {
    pub fn new(settings: SmtpSettings, from: Mailbox, hello: ClientId) -> anyhow::Result<Self> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .hello_name(hello)
                .timeout(Some(SMTP_TIMEOUT));
        match settings.security {
            Security::None => {}
            Security::StartTls | Security::Tls => {
                let parameters = TlsParameters::new(settings.host.clone())
                    .with_context(|| format!("TLS for {}", settings.host))?;
                builder = builder.tls(if settings.security == Security::Tls {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                });
            }
        }
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            inner: builder.build(),
            from,
            description: settings.describe(),
        })
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &OutboxMessage) -> Result<(), TransportError> {
        let email = build_message(&self.from, message)?;
        match self.inner.send(email).await {
            Ok(_) => Ok(()),
            Err(e) => Err(TransportError::temporary(smtp_error_text(&e))),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// lettre's error with its causes ("network error: Connection refused (os error 111)"), so
/// the detail page says what went wrong.
fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Writes each message as `<dir>/<created>-<id>-<template>.eml` and logs where, with the link
/// it holds: for machines without an SMTP server. A message written again (after a lost
/// acknowledgement) replaces its own file.
pub struct FileTransport {
    dir: PathBuf,
    from: Mailbox,
}

impl FileTransport {
    pub fn new(dir: PathBuf, from: Mailbox) -> Self {
        Self { dir, from }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a message goes.
    pub fn path_of(&self, message: &OutboxMessage) -> PathBuf {
        let created = message
            .created_at
            .to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_default();
        let template: String = message
            .template
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        self.dir
            .join(format!("{created}-{:06}-{template}.eml", message.id))
    }
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &OutboxMessage) -> Result<(), TransportError> {
        let email = build_message(&self.from, message)?;
        let path = self.path_of(message);
        let failed = |what: &str, e: std::io::Error| {
            TransportError::temporary(format!("cannot {what} {}: {e}", self.dir.display()))
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| failed("create", e))?;
        // Write beside, then rename: whoever watches the folder never sees half a message.
        let partial = path.with_extension("eml.partial");
        tokio::fs::write(&partial, email.formatted())
            .await
            .map_err(|e| failed("write to", e))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| failed("write to", e))?;
        match first_link(&message.text) {
            Some(link) => tracing::info!(
                to = %message.recipient,
                file = %path.display(),
                link,
                "mail: {}", message.subject
            ),
            None => tracing::info!(
                to = %message.recipient,
                file = %path.display(),
                "mail: {}", message.subject
            ),
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("files in {} (no USHER_SMTP_URL)", self.dir.display())
    }
}

/// The first `http://` or `https://` address in a text.
fn first_link(text: &str) -> Option<&str> {
    let start = text.find("https://").or_else(|| text.find("http://"))?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> SmtpSettings {
        SmtpSettings::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn smtp_urls_of_the_interface_are_understood() {
        let plain = parse("smtp://127.0.0.1:2525");
        assert_eq!(
            (
                plain.host.as_str(),
                plain.port,
                plain.security,
                plain.credentials
            ),
            ("127.0.0.1", 2525, Security::None, None)
        );
        let starttls = parse("smtp://user:p%40ss@mail.example.org:587?tls=starttls");
        assert_eq!(starttls.security, Security::StartTls);
        assert_eq!(starttls.port, 587);
        assert_eq!(
            starttls.credentials,
            Some(("user".to_owned(), "p@ss".to_owned()))
        );
        let tls = parse("smtps://user:pass@mail.example.org");
        assert_eq!((tls.security, tls.port), (Security::Tls, 465));
        assert_eq!(parse("smtp://relay").port, 25);
        assert_eq!(parse("smtp://relay?tls=starttls").port, 587);
        assert_eq!(parse("smtp://[::1]:25").host, "::1");
    }

    #[test]
    fn doubtful_smtp_urls_are_refused_without_showing_the_password() {
        for url in [
            "http://host",
            "smtp://host?tls=opportunistic",
            "smtps://host?tls=starttls",
            "smtp://host?tsl=starttls",
            "smtp://user@host",
            "smtp://host/path",
            "smtp://",
        ] {
            assert!(SmtpSettings::parse(url).is_err(), "{url} should be refused");
        }
        let e = SmtpSettings::parse("smtp://u:secret@host?tls=maybe").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let s = parse("smtp://user:secret@mail.example.org?tls=starttls");
        assert_eq!(
            s.describe(),
            "smtp://user@mail.example.org:587?tls=starttls"
        );
        assert!(!format!("{s:?}").contains("secret"));
        assert_eq!(parse("smtps://h").describe(), "smtps://h:465");
    }

    #[test]
    fn mail_files_go_beside_the_sqlite_store() {
        let with = |url: &str| Config {
            database_url: url.to_owned(),
            ..Config::default()
        };
        assert_eq!(
            default_data_dir(&Config::default()),
            PathBuf::from("./usher-data")
        );
        assert_eq!(
            default_data_dir(&with("sqlite:///var/lib/usher/usher.db?mode=rwc")),
            PathBuf::from("/var/lib/usher")
        );
        assert_eq!(
            default_data_dir(&with("sqlite://usher.db")),
            PathBuf::from(".")
        );
        assert_eq!(
            default_data_dir(&with("postgres://db/usher")),
            PathBuf::from("usher-data")
        );
    }

    #[test]
    fn links_are_found_in_text_bodies() {
        assert_eq!(
            first_link("Open\n\nhttp://127.0.0.1:8080/join/abc\n\nThanks"),
            Some("http://127.0.0.1:8080/join/abc")
        );
        assert_eq!(first_link("no link"), None);
    }

    #[test]
    fn outbox_ids_are_read_back_from_message_ids() {
        assert_eq!(
            outbox_id_of_message_id("<usher.outbox.42.1700000000000@localhost>"),
            Some(42)
        );
        assert_eq!(outbox_id_of_message_id("<other@localhost>"), None);
    }

    #[test]
    fn the_default_sender_is_an_address() {
        let from = parse_from(&Config::default().mail_from).expect("default sender");
        assert_eq!(from.email.to_string(), "no-reply@localhost");
    }
}

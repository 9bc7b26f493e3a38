//! Email from template to mailbox: every template renders (subject, text, escaped HTML); the
//! SMTP transport delivers to the in-process sink with the right envelope and both parts; the
//! file transport writes a readable `.eml`; and the outbox worker, on a real store of each
//! backend, delivers, retries through an outage without losing or doubling a message, gives up
//! after a day, and shares one outbox between two workers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::sync::Notify;
use usher_core::clock::{Clock, ManualClock};
use usher_core::mail::{
    ComposedMail, Composer, DeliveryState, MailContext, NewOutboxMessage, OutboxMessage, Template,
};
use usher_core::store::Store;
use usher_server::mail::transport::outbox_id_of_message_id;
use usher_server::mail::{
    spawn_worker, transport_from_config, AskamaComposer, Transport, WorkerHandle, WorkerOptions,
};
use usher_server::Config;
use usher_testkit::smtp::{Received, SmtpSink};
use usher_testkit::{on_both_backends, TestBackend, TestDb};

/// Every wait in these tests is bounded by this (generous: CI machines are small).
const PATIENCE: Duration = Duration::from_secs(60);

const START: OffsetDateTime = datetime!(2026-11-24 09:00 UTC);
const LINK: &str = "http://127.0.0.1:8080/join/tok3n-With_Safe-Chars";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

fn context(first: &str, last: &str) -> MailContext {
    MailContext {
        platform_name: String::new(),
        first_name: first.into(),
        last_name: last.into(),
        username: "elodie.naf".into(),
        link: Some(LINK.into()),
        expires_at: Some(START + time::Duration::hours(24)),
        new_email: Some("new.address@example.org".into()),
        space_name: Some("Gardening".into()),
    }
}

fn compose(template: Template, context: &MailContext) -> ComposedMail {
    AskamaComposer::new("Acme Portal", clock()).compose(template, context)
}

// ---------------------------------------------------------------- templates

#[test]
fn every_template_renders_a_subject_and_both_bodies_with_the_name() {
    let ctx = context("Élodie", "Näf");
    for &template in Template::ALL {
        let mail = compose(template, &ctx);
        let name = template.as_str();
        assert!(!mail.subject.is_empty(), "{name}: empty subject");
        assert!(!mail.subject.contains('\n'), "{name}: {:?}", mail.subject);
        assert!(
            mail.subject.contains("Acme Portal"),
            "{name}: {:?}",
            mail.subject
        );
        for (part, body) in [("text", &mail.text), ("html", &mail.html)] {
            assert!(
                body.contains("Élodie Näf"),
                "{name} {part} lacks the name:\n{body}"
            );
            assert!(
                body.contains("Acme Portal"),
                "{name} {part} lacks the platform"
            );
            assert!(!body.contains("{{"), "{name} {part} has an unrendered tag");
            let with_link = matches!(
                template,
                Template::Invitation | Template::Registration | Template::PasswordReset
            );
            assert_eq!(
                body.contains(LINK),
                with_link,
                "{name} {part}: the link\n{body}"
            );
        }
        assert!(
            mail.html.starts_with("<!DOCTYPE html>"),
            "{name}: {}",
            mail.html
        );
        assert!(
            !mail.text.contains('<'),
            "{name}: markup in the text part\n{}",
            mail.text
        );
    }
    let changed = compose(Template::EmailChanged, &ctx);
    assert!(changed.text.contains("new.address@example.org"));
    assert!(changed.html.contains("new.address@example.org"));
    let registration = compose(Template::Registration, &ctx);
    assert_eq!(registration.subject, "Join Gardening on Acme Portal");
}

#[test]
fn the_invitation_says_join_the_platform_and_when_the_link_expires() {
    let mail = compose(Template::Invitation, &context("Élodie", "Näf"));
    assert_eq!(mail.subject, "Join Acme Portal");
    assert!(
        mail.text.starts_with("Hello Élodie Näf,\n"),
        "{}",
        mail.text
    );
    for body in [&mail.text, &mail.html] {
        assert!(body.contains("elodie.naf"), "{body}");
        assert!(body.contains("24 hours"), "{body}");
        assert!(
            body.contains("Wednesday 25 November 2026, 09:00 UTC"),
            "{body}"
        );
    }
    assert!(
        mail.html.contains(&format!("href=\"{LINK}\"")),
        "{}",
        mail.html
    );
    // The text part reads well: no runs of blank lines left by template tags.
    assert!(!mail.text.contains("\n\n\n"), "{}", mail.text);
}

#[test]
fn a_platform_named_by_the_context_wins_over_the_configured_one() {
    let mut ctx = context("Élodie", "Näf");
    ctx.platform_name = "Other".into();
    assert_eq!(compose(Template::Invitation, &ctx).subject, "Join Other");
}

#[test]
fn html_escapes_what_people_typed_and_text_keeps_it() {
    let mut ctx = context("<script>alert(1)</script>", "O'Brien & Co");
    ctx.link = Some("http://x.test/join/a?b=1&c=\"2\"".into());
    for &template in Template::ALL {
        let mail = compose(template, &ctx);
        assert!(
            !mail.html.contains("<script>"),
            "{}: {}",
            template.as_str(),
            mail.html
        );
        // askama writes numeric entities (`&#60;`); either form is correct HTML.
        let html = unescape(&mail.html);
        assert!(
            html.contains("<script>alert(1)</script> O'Brien & Co"),
            "{}",
            template.as_str()
        );
        assert!(mail.text.contains("<script>alert(1)</script> O'Brien & Co"));
    }
    let invitation = compose(Template::Invitation, &ctx);
    assert!(!invitation.html.contains("c=\"2\""), "{}", invitation.html);
    assert!(unescape(&invitation.html).contains("href=\"http://x.test/join/a?b=1&c=\"2\"\""));
}

/// The entities an HTML escaper may write, back to characters.
fn unescape(html: &str) -> String {
    [
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |text, (entity, c)| text.replace(entity, c))
}

#[test]
fn registration_without_a_name_or_space_greets_plainly() {
    let mut ctx = context("", "");
    ctx.space_name = None;
    let mail = compose(Template::Registration, &ctx);
    assert_eq!(mail.subject, "Join Acme Portal");
    assert!(mail.text.starts_with("Hello,\n"), "{}", mail.text);
    assert!(mail.html.contains(">Hello,</p>"), "{}", mail.html);
}

// ---------------------------------------------------------------- transports

/// The parts of a received message a test looks at.
#[derive(Debug)]
struct Parsed {
    subject: String,
    from: String,
    to: Vec<String>,
    message_id: String,
    content_type: String,
    auto_submitted: Option<String>,
    text: String,
    html: String,
}

fn parse(raw: &[u8]) -> Parsed {
    let message = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("not a message:\n{}", String::from_utf8_lossy(raw)));
    let root_type = message
        .root_part()
        .content_type()
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
        .unwrap_or_default();
    Parsed {
        subject: message.subject().unwrap_or_default().to_owned(),
        from: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned(),
        to: message
            .to()
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.address())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        content_type: root_type,
        auto_submitted: message
            .header_raw("Auto-Submitted")
            .map(|v| v.trim().to_owned()),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        html: message.body_html(0).unwrap_or_default().into_owned(),
    }
}

fn outbox_message(id: i64, recipient: &str, mail: &ComposedMail) -> OutboxMessage {
    OutboxMessage {
        id,
        recipient: recipient.into(),
        template: "invitation".into(),
        subject: mail.subject.clone(),
        text: mail.text.clone(),
        html: mail.html.clone(),
        attempts: 0,
        created_at: START,
    }
}

fn config_with_smtp(smtp_url: Option<String>) -> Config {
    Config {
        smtp_url,
        mail_from: "Acme Portal <no-reply@acme.test>".into(),
        platform_name: "Acme Portal".into(),
        ..Config::default()
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("usher-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn smtp_transport_delivers_both_parts_with_the_right_envelope() {
    let sink = SmtpSink::start().await;
    let data = TempDir::new("smtp");
    let transport = transport_from_config(&config_with_smtp(Some(sink.url())), data.path())
        .expect("SMTP transport");
    assert!(
        transport.describe().starts_with("smtp://127.0.0.1:"),
        "{}",
        transport.describe()
    );
    let mut ctx = context("Élodie", "Näf");
    // A subject outside ASCII travels encoded and comes back whole.
    ctx.platform_name = "Ünïcode Café".into();
    let mail = compose(Template::Invitation, &ctx);
    transport
        .send(&outbox_message(42, "elodie@example.org", &mail))
        .await
        .expect("delivered");

    let received = sink.wait_for(1, PATIENCE).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].from, "no-reply@acme.test");
    assert_eq!(received[0].recipients, ["elodie@example.org"]);
    let parsed = parse(&received[0].data);
    assert_eq!(parsed.subject, "Join Ünïcode Café");
    assert_eq!(parsed.from, "no-reply@acme.test");
    assert_eq!(parsed.to, ["elodie@example.org"]);
    assert_eq!(parsed.content_type, "multipart/alternative");
    assert_eq!(
        outbox_id_of_message_id(&parsed.message_id),
        Some(42),
        "{}",
        parsed.message_id
    );
    assert_eq!(parsed.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(parsed.text.contains(LINK), "{}", parsed.text);
    assert!(parsed.text.contains("Hello Élodie Näf,"), "{}", parsed.text);
    assert!(
        parsed.html.contains(&format!("href=\"{LINK}\"")),
        "{}",
        parsed.html
    );
    // Lines travel with CRLF endings; the words arrive unchanged.
    assert_eq!(
        parsed.text.replace("\r\n", "\n").trim_end(),
        mail.text.trim_end()
    );
}

#[tokio::test]
async fn smtp_transport_reports_a_refused_connection_as_temporary() {
    let sink = SmtpSink::start().await;
    sink.stop().await;
    let data = TempDir::new("smtp-refused");
    let transport = transport_from_config(&config_with_smtp(Some(sink.url())), data.path())
        .expect("SMTP transport");
    let mail = compose(Template::Invitation, &context("Élodie", "Näf"));
    let error = transport
        .send(&outbox_message(1, "elodie@example.org", &mail))
        .await
        .expect_err("nobody listens");
    assert!(!error.is_permanent());
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );

    sink.restart().await;
    transport
        .send(&outbox_message(1, "elodie@example.org", &mail))
        .await
        .expect("delivered once the server is back");
    assert_eq!(sink.wait_for(1, PATIENCE).await.len(), 1);
}

#[tokio::test]
async fn a_malformed_recipient_fails_for_good() {
    let sink = SmtpSink::start().await;
    let data = TempDir::new("smtp-bad");
    let transport = transport_from_config(&config_with_smtp(Some(sink.url())), data.path())
        .expect("SMTP transport");
    let mail = compose(Template::Invitation, &context("Élodie", "Näf"));
    let error = transport
        .send(&outbox_message(1, "not an address", &mail))
        .await
        .expect_err("refused");
    assert!(error.is_permanent(), "{error}");
}

#[test]
fn malformed_mail_settings_are_refused_at_start() {
    let data = TempDir::new("config");
    for url in ["smtp://host?tls=maybe", "imap://host", "smtp://user@host"] {
        assert!(
            transport_from_config(&config_with_smtp(Some(url.into())), data.path()).is_err(),
            "{url}"
        );
    }
    let mut config = config_with_smtp(None);
    config.mail_from = "not an address".into();
    assert!(transport_from_config(&config, data.path()).is_err());
}

#[tokio::test]
async fn without_smtp_each_message_is_a_readable_eml_file() {
    let data = TempDir::new("eml");
    let transport =
        transport_from_config(&config_with_smtp(None), data.path()).expect("file transport");
    assert!(
        transport.describe().contains("mail"),
        "{}",
        transport.describe()
    );
    let mail = compose(Template::Invitation, &context("Élodie", "Näf"));
    let message = outbox_message(7, "elodie@example.org", &mail);
    transport.send(&message).await.expect("written");
    // Written again (a lost acknowledgement): the same file, not a second one.
    transport.send(&message).await.expect("written again");

    let dir = data.path().join("mail");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("mail directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(file_name, "20261124T090000Z-000007-invitation.eml");
    let raw = std::fs::read(file).expect("eml");
    assert!(
        raw.windows(2).any(|w| w == b"\r\n"),
        "RFC 5322 lines end in CRLF"
    );
    let parsed = parse(&raw);
    assert_eq!(parsed.subject, "Join Acme Portal");
    assert_eq!(parsed.to, ["elodie@example.org"]);
    assert_eq!(parsed.from, "no-reply@acme.test");
    assert_eq!(parsed.content_type, "multipart/alternative");
    assert!(parsed.text.contains(LINK));
    assert!(parsed.html.contains(LINK));
}

// ---------------------------------------------------------------- the worker, on a real store

/// Polls `check` until it holds; panics with `what` after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast_options() -> WorkerOptions {
    WorkerOptions {
        // Short, so that tests do not wait for the idle poll; correctness never depends on it.
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    }
}

struct Running {
    worker: WorkerHandle,
    wake: Arc<Notify>,
}

fn start_worker(
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Arc<ManualClock>,
) -> Running {
    let wake = Arc::new(Notify::new());
    let worker = spawn_worker(store, transport, clock, wake.clone(), fast_options());
    Running { worker, wake }
}

async fn queue(store: &dyn Store, clock: &ManualClock, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mail = compose(Template::Invitation, &context("Élodie", "Näf"));
        let id = store
            .queue_message(&NewOutboxMessage {
                recipient: format!("person{i}@example.org"),
                template: Template::Invitation,
                mail,
                person_id: None,
                created_at: clock.now(),
            })
            .await
            .expect("queued");
        ids.push(id);
    }
    ids
}

async fn state_of(store: &dyn Store, id: i64) -> (DeliveryState, u32, Option<String>) {
    let d = store
        .message_delivery(id)
        .await
        .expect("delivery")
        .expect("message exists");
    (d.state, d.attempts, d.last_error)
}

async fn all_in_state(store: &dyn Store, ids: &[i64], state: DeliveryState) -> bool {
    for &id in ids {
        if state_of(store, id).await.0 != state {
            return false;
        }
    }
    true
}

/// How many times each outbox message arrived, by the id in its `Message-ID`.
fn arrivals(received: &[Received]) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for r in received {
        let parsed = parse(&r.data);
        let id = outbox_id_of_message_id(&parsed.message_id)
            .unwrap_or_else(|| panic!("no outbox id in {:?}", parsed.message_id));
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// The stored bodies of a message, read behind the store's back to see that they are gone.
async fn stored_bodies(db: &TestDb, id: i64) -> (Option<String>, Option<String>) {
    const SQL: &str = "SELECT body_text, body_html FROM outbox WHERE id = $1";
    match db.backend {
        TestBackend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
            let row = sqlx::query_as(SQL)
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("row");
            pool.close().await;
            row
        }
        TestBackend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("postgres");
            let row = sqlx::query_as(SQL)
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("row");
            pool.close().await;
            row
        }
    }
}

fn smtp_transport(sink: &SmtpSink, data: &TempDir) -> Arc<dyn Transport> {
    transport_from_config(&config_with_smtp(Some(sink.url())), data.path()).expect("transport")
}

on_both_backends! {
    async fn the_worker_delivers_queued_mail_and_forgets_the_bodies(db) {
        let store: Arc<dyn Store> = db.store().await;
        let clock = clock();
        let sink = SmtpSink::start().await;
        let data = TempDir::new("worker");
        let ids = queue(store.as_ref(), &clock, 3).await;
        let running = start_worker(store.clone(), smtp_transport(&sink, &data), clock.clone());
        running.wake.notify_one();

        let received = sink.wait_for(3, PATIENCE).await;
        let (s, i) = (store.as_ref(), ids.as_slice());
        eventually("every message is marked sent", move || all_in_state(s, i, DeliveryState::Sent))
            .await;
        running.worker.shutdown().await;

        let mut recipients: Vec<_> = received.iter().flat_map(|r| r.recipients.clone()).collect();
        recipients.sort();
        assert_eq!(recipients, ["person0@example.org", "person1@example.org", "person2@example.org"]);
        assert!(arrivals(&sink.received()).values().all(|&n| n == 1));
        for &id in &ids {
            let delivery = store.message_delivery(id).await.unwrap().unwrap();
            assert_eq!(delivery.attempts, 1);
            assert_eq!(delivery.sent_at, Some(START));
            assert_eq!(delivery.last_error, None);
            assert_eq!(stored_bodies(&db, id).await, (None, None), "message {id} keeps its link");
        }
    }

    async fn an_outage_delays_mail_and_loses_none(db) {
        let store: Arc<dyn Store> = db.store().await;
        let clock = clock();
        let sink = SmtpSink::start().await;
        sink.stop().await;
        let data = TempDir::new("outage");
        let ids = queue(store.as_ref(), &clock, 5).await;
        let running = start_worker(store.clone(), smtp_transport(&sink, &data), clock.clone());
        running.wake.notify_one();

        let (s, i) = (store.as_ref(), ids.as_slice());
        eventually("every message has failed once", move || async move {
            for &id in i {
                if state_of(s, id).await.1 < 1 {
                    return false;
                }
            }
            true
        })
        .await;
        for &id in &ids {
            let (state, attempts, error) = state_of(store.as_ref(), id).await;
            assert_eq!((state, attempts), (DeliveryState::Queued, 1));
            assert!(error.unwrap_or_default().to_lowercase().contains("refused"));
        }
        sink.restart().await;
        // The first retry comes within a minute.
        clock.advance(time::Duration::seconds(59));
        running.wake.notify_one();

        sink.wait_for(ids.len(), PATIENCE).await;
        let (s, i) = (store.as_ref(), ids.as_slice());
        eventually("every message is marked sent", move || all_in_state(s, i, DeliveryState::Sent))
            .await;
        running.worker.shutdown().await;

        let counts = arrivals(&sink.received());
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), ids);
        assert!(counts.values().all(|&n| n == 1), "{counts:?}");
        for &id in &ids {
            assert_eq!(state_of(store.as_ref(), id).await.1, 2, "one failure, one success");
        }
    }

    async fn a_message_failing_for_a_day_ends_failed_with_its_attempts_and_error(db) {
        let store: Arc<dyn Store> = db.store().await;
        let clock = clock();
        let sink = SmtpSink::start().await;
        sink.stop().await;
        let data = TempDir::new("give-up");
        let ids = queue(store.as_ref(), &clock, 1).await;
        let id = ids[0];
        let running = start_worker(store.clone(), smtp_transport(&sink, &data), clock.clone());
        running.wake.notify_one();

        // Each round: wait for the attempt, then move past the longest delay (an hour).
        let mut seen = 0;
        for _ in 0..40 {
            let s = store.as_ref();
            eventually("the next attempt is recorded", move || async move {
                state_of(s, id).await.1 > seen
            })
            .await;
            let (state, attempts, _) = state_of(store.as_ref(), id).await;
            seen = attempts;
            if state == DeliveryState::Failed {
                break;
            }
            clock.advance(time::Duration::hours(1));
            running.wake.notify_one();
        }
        running.worker.shutdown().await;

        let (state, attempts, error) = state_of(store.as_ref(), id).await;
        assert_eq!(state, DeliveryState::Failed);
        // Tried over a whole day on the schedule: quickly at first, then hourly.
        assert!(attempts > 24, "{attempts} attempts");
        assert!(error.unwrap_or_default().to_lowercase().contains("refused"));
        assert!(clock.now() - START >= time::Duration::hours(24));
        assert_eq!(stored_bodies(&db, id).await, (None, None));
        assert!(sink.received().is_empty());
    }

    async fn two_workers_on_one_database_send_each_of_500_messages_once(db) {
        let first: Arc<dyn Store> = db.store().await;
        let second: Arc<dyn Store> = db.store().await;
        let clock = clock();
        let sink = SmtpSink::start().await;
        let data = TempDir::new("two-workers");
        let ids = queue(first.as_ref(), &clock, 500).await;
        let a = start_worker(first.clone(), smtp_transport(&sink, &data), clock.clone());
        let b = start_worker(second.clone(), smtp_transport(&sink, &data), clock.clone());
        a.wake.notify_one();
        b.wake.notify_one();

        // Each message has its own recipient: wait until every one has arrived at least once.
        let sink_ref = &sink;
        eventually("every message arrived", move || async move {
            let received = sink_ref.received();
            let distinct: std::collections::BTreeSet<_> =
                received.iter().flat_map(|r| r.recipients.iter()).collect();
            distinct.len() == 500
        })
        .await;
        // A stopped worker has recorded the message it had in flight, and none is left
        // claimed and unsent: nothing can arrive later.
        a.worker.shutdown().await;
        b.worker.shutdown().await;

        let counts = arrivals(&sink.received());
        let doubles: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
        assert!(doubles.is_empty(), "{} sent more than once: {doubles:?}", doubles.len());
        assert!(all_in_state(second.as_ref(), &ids, DeliveryState::Sent).await);
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), ids);
    }
}

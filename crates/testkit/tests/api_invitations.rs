//! Invitations, joining and password resets through a real SMTP conversation (an in-process
//! sink), on SQLite and PostgreSQL; expiry by moving the injected clock; an SMTP outage that
//! loses nothing.

use std::time::Duration;

use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use usher_testkit::smtp::{Received, SmtpSink};
use usher_testkit::{browser_client, hidden_field, on_both_backends, Api, TestApp, TestDb};

const WAIT: Duration = Duration::from_secs(20);

struct Mail {
    subject: String,
    to: Vec<String>,
    text: String,
}

fn read(received: &Received) -> Mail {
    let message = MessageParser::default()
        .parse(&received.data)
        .expect("a message");
    Mail {
        subject: message.subject().unwrap_or_default().to_owned(),
        to: received.recipients.clone(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
    }
}

/// The first link in a message that goes to `path` (`/join/`, `/reset/`).
fn link(mail: &Mail, path: &str) -> String {
    let start = mail
        .text
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in:\n{}", mail.text));
    let before = mail.text[..start].rfind("http").expect("an absolute link");
    mail.text[before..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ',', '>', ')'])
        .to_owned()
}

async fn app_with_sink(db: TestDb) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(db, |c| c.smtp_url = Some(url)).await;
    (app, sink)
}

/// Submits the password form of a join or reset link.
async fn submit_link(
    client: &reqwest::Client,
    url: &str,
    password: &str,
    confirmation: &str,
) -> reqwest::Response {
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&page, "csrf_token").expect("a form on the link page");
    client
        .post(url)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", password),
            ("password_confirmation", confirmation),
        ])
        .send()
        .await
        .unwrap()
}

on_both_backends! {
    async fn an_invited_person_follows_the_link_chooses_a_password_and_is_logged_in(db) {
        let (app, sink) = app_with_sink(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        let api = app.admin_api().await;
        let (status, body) = api.post("/api/v1/users/jane.doe/invitation", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["enrollment"], "reinvite");
        assert_eq!(body["invitation_delivery"], "queued");
        assert_eq!(body["invited_at"], "2026-11-24T09:00:00Z");

        let mail = read(&sink.wait_for(1, WAIT).await[0]);
        assert_eq!(mail.subject, "Join Usher");
        assert_eq!(mail.to, ["jane.doe@example.org"]);
        assert!(mail.text.contains("Jane"), "{}", mail.text);
        let url = link(&mail, "/join/");
        assert!(url.starts_with(&format!("{}/join/", app.base_url)), "{url}");

        // Opening the link (as a mail scanner would) changes nothing.
        let client = browser_client();
        let page = client.get(&url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains("jane.doe") && page.contains("readonly"), "{page}");
        let (_, user) = api.get("/api/v1/users/jane.doe").await;
        assert_eq!(user["joined_at"], Value::Null);

        // The policy applies; the link survives a refused attempt.
        let r = submit_link(&client, &url, "short", "short").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = submit_link(&client, &url, "jane-chose-this-one", "jane-chose-another").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        app.advance(time::Duration::minutes(5));
        let r = submit_link(&client, &url, "jane-chose-this-one", "jane-chose-this-one").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let me = Api::with_client(&app.base_url, client.clone());
        let (status, session) = me.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::OK, "logged in after joining");
        assert_eq!(session["username"], "jane.doe");
        assert_eq!(session["password_change_required"], false);

        let (_, user) = api.get("/api/v1/users/jane.doe").await;
        assert_eq!(user["joined_at"], "2026-11-24T09:05:00Z");
        assert_eq!(user["last_login_at"], "2026-11-24T09:05:00Z");
        assert_eq!(user["enrollment"], "accepted");
        assert_eq!(user["invitation_delivery"], "sent");

        // The link is used up; a resend is refused now.
        let again = browser_client().get(&url).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::GONE);
        assert!(again.text().await.unwrap().contains("This link has expired — ask your administrator for a new one"));
        let (status, body) = api.post("/api/v1/users/jane.doe/invitation", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "already_joined");
        let (status, _) = app.login(&browser_client(), "jane.doe", "jane-chose-this-one").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    async fn a_resend_voids_the_older_link_and_links_expire(db) {
        let (app, sink) = app_with_sink(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        let api = app.admin_api().await;
        api.post("/api/v1/users/jane.doe/invitation", json!({})).await;
        let first = link(&read(&sink.wait_for(1, WAIT).await[0]), "/join/");
        app.advance(time::Duration::hours(1));
        let (status, body) = api.post("/api/v1/users/jane.doe/invitation", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["invited_at"], "2026-11-24T10:00:00Z");
        let second = link(&read(&sink.wait_for(2, WAIT).await[1]), "/join/");
        assert_ne!(first, second);
        let client = browser_client();
        assert_eq!(client.get(&first).send().await.unwrap().status(), StatusCode::GONE);
        assert_eq!(client.get(&second).send().await.unwrap().status(), StatusCode::OK);
        // 24 hours after the resend, the newest link has expired too.
        app.advance(time::Duration::hours(24));
        assert_eq!(client.get(&second).send().await.unwrap().status(), StatusCode::GONE);
        // Unknown links look the same.
        let unknown = client.get(app.url("/join/0123456789abcdef")).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::GONE);
    }

    async fn only_people_who_can_still_join_are_invited(db) {
        let (app, _sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        app.create_person("off.person", "Off", "Person").await;
        api.patch("/api/v1/users/off.person", json!({"enabled": false})).await;
        let (status, body) = api.post("/api/v1/users/off.person/invitation", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "not_invitable");
        // The super user has connected (logged in once): already joined.
        let _ = app.logged_in_client("admin", usher_testkit::ADMIN_PASSWORD).await;
        let (status, body) = api.post("/api/v1/users/admin/invitation", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "already_joined");
        let (status, _) = api.post("/api/v1/users/nobody.here/invitation", json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Filters follow enrollment.
        let (_, never) = api.get("/api/v1/users?enrollment=never_enrolled").await;
        assert_eq!(never["total"], 1, "{never}");
        app.create_person("new.person", "New", "Person").await;
        api.post("/api/v1/users/new.person/invitation", json!({})).await;
        let (_, enrolled) = api.get("/api/v1/users?enrollment=enrolled").await;
        assert_eq!(enrolled["users"][0]["username"], "new.person");
        let (_, audit) = api.get("/api/v1/audit?action=user.invite").await;
        assert_eq!(audit["total"], 1);
    }

    async fn creating_with_invite_sends_at_once(db) {
        let (app, sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        let (status, body) = api.post("/api/v1/users", json!({
            "username": "ivy.invited", "first_name": "Ivy", "last_name": "Invited",
            "email": "ivy@example.org", "invite": true
        })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["enrollment"], "reinvite");
        let mail = read(&sink.wait_for(1, WAIT).await[0]);
        assert_eq!(mail.to, ["ivy@example.org"]);
    }

    async fn an_smtp_outage_delays_invitations_and_loses_none(db) {
        let (app, sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        sink.stop().await;
        for name in ["anna.one", "bert.two", "cleo.three"] {
            app.create_person(name, "Some", "Body").await;
            let (status, _) = api.post(&format!("/api/v1/users/{name}/invitation"), json!({})).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        // Wait until every message has failed once and is waiting for its retry.
        let mut tries = 0;
        loop {
            let mut attempts = Vec::new();
            for name in ["anna.one", "bert.two", "cleo.three"] {
                let person = app.usher.store.person_by_username(name).await.unwrap().unwrap();
                let delivery = person.invitation_delivery.expect("an invitation message");
                assert_eq!(delivery.state, usher_core::mail::DeliveryState::Queued);
                attempts.push((delivery.attempts, delivery.last_error));
            }
            if attempts.iter().all(|(n, error)| *n >= 1 && error.is_some()) {
                break;
            }
            tries += 1;
            assert!(tries < 200, "the worker should have tried by now: {attempts:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, body) = api.get("/api/v1/users/anna.one").await;
        assert_eq!(body["invitation_delivery"], "queued", "still queued during the outage");
        sink.restart().await;
        app.advance(time::Duration::minutes(2));
        let received = sink.wait_for(3, WAIT).await;
        let mut recipients: Vec<String> = received.iter().flat_map(|r| r.recipients.clone()).collect();
        recipients.sort();
        assert_eq!(recipients, ["anna.one@example.org", "bert.two@example.org", "cleo.three@example.org"]);
        // None twice, even after more time passes.
        app.advance(time::Duration::hours(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sink.received().len(), 3);
    }

    async fn a_forgotten_password_is_reset_through_a_link_that_works_once(db) {
        let (app, sink) = app_with_sink(db).await;
        let member = Api::with_client(&app.base_url, app.member_client("rita.reset").await);
        let forgot = |email: &'static str| {
            let app = &app;
            async move {
                let client = browser_client();
                let page = client.get(app.url("/forgot")).send().await.unwrap().text().await.unwrap();
                let csrf = hidden_field(&page, "csrf_token").unwrap();
                let r = client.post(app.url("/forgot")).form(&[("csrf_token", csrf.as_str()), ("email", email)]).send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (s1, known) = forgot("RITA.RESET@example.org").await;
        let (s2, unknown) = forgot("nobody@example.org").await;
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
        let said = |page: &str| page.contains("If an account uses this address");
        assert!(said(&known) && said(&unknown));
        let mail = read(&sink.wait_for(1, WAIT).await[0]);
        assert_eq!(mail.to, ["rita.reset@example.org"]);
        let url = link(&mail, "/reset/");
        let client = browser_client();
        let r = submit_link(&client, &url, "rita-new-passphrase", "rita-new-passphrase").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/login?notice=password_changed");
        // Her open session ended; the new password works; the link is spent.
        let (status, _) = member.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = app.login(&browser_client(), "rita.reset", "rita-new-passphrase").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(browser_client().get(&url).send().await.unwrap().status(), StatusCode::GONE);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.received().len(), 1, "nothing was sent for the unknown address");
    }

    async fn people_are_told_when_an_admin_changes_their_email_or_password(db) {
        let (app, sink) = app_with_sink(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        let api = app.admin_api().await;
        let (status, _) = api.patch("/api/v1/users/jane.doe", json!({"email": "jane.new@example.org"})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.patch("/api/v1/users/jane.doe", json!({"password": "admin-set-password"})).await;
        assert_eq!(status, StatusCode::OK);
        let received = sink.wait_for(2, WAIT).await;
        let mails: Vec<Mail> = received.iter().map(read).collect();
        let email_notice = mails.iter().find(|m| m.text.contains("jane.new@example.org")).expect("email notice");
        assert_eq!(email_notice.to, ["jane.doe@example.org"], "sent to the old address");
        let password_notice = mails.iter().find(|m| !std::ptr::eq(*m, email_notice)).unwrap();
        assert_eq!(password_notice.to, ["jane.new@example.org"]);
    }
}

#[tokio::test]
async fn reset_requests_are_throttled_per_client() {
    let Some(db) = TestDb::create(usher_testkit::TestBackend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(db).await;
    let client = browser_client();
    let page = client
        .get(app.url("/forgot"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token").unwrap();
    let mut statuses = Vec::new();
    for n in 0..11 {
        let r = client
            .post(app.url("/forgot"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", &format!("someone{n}@example.org")),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert!(statuses[..10].iter().all(|s| *s == StatusCode::OK));
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
}

//! Access rules on SQLite and PostgreSQL: who may call what, sessions and CSRF, temporary
//! passwords, throttled logins without account enumeration, sessions ended on disable, the
//! audit log, health checks and security headers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use usher_testkit::{
    browser_client, on_both_backends, Api, TestApp, ADMIN_PASSWORD, MEMBER_PASSWORD,
};

on_both_backends! {
    async fn anonymous_callers_get_401_and_members_get_403(db) {
        let app = TestApp::spawn(db).await;
        let anonymous = app.anonymous_api();
        for path in ["/api/v1/users", "/api/v1/users/admin", "/api/v1/audit", "/api/v1/session"] {
            let (status, body) = anonymous.get(path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(body["error"]["code"], "unauthenticated");
        }
        let (status, _) = anonymous
            .send(anonymous.request(Method::GET, "/api/v1/users").bearer_auth("not-a-token"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let member = Api::with_client(&app.base_url, app.member_client("mia.member").await);
        let (status, body) = member.get("/api/v1/users").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = member.get("/api/v1/audit").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = member.get("/api/v1/users/admin").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A person may read their own record and roles.
        let (status, body) = member.get("/api/v1/users/mia.member").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = member.get("/api/v1/users/mia.member/roles").await;
        assert_eq!(status, StatusCode::OK);
        // Admin pages are closed to them too.
        let client = app.logged_in_client("mia.member", MEMBER_PASSWORD).await;
        let response = client.get(app.url("/admin/users")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    async fn session_callers_must_send_the_csrf_token_on_changes(db) {
        let app = TestApp::spawn(db).await;
        let client = app.logged_in_client("admin", ADMIN_PASSWORD).await;
        let api = Api::with_client(&app.base_url, client);
        let (status, session) = api.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(session["username"], "admin");
        let csrf = session["csrf_token"].as_str().unwrap().to_owned();
        let body = json!({"username": "jane.doe", "first_name": "Jane", "last_name": "Doe", "email": "jane@example.org"});
        let (status, answer) = api.send(api.request(Method::POST, "/api/v1/users").json(&body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(answer["error"]["code"], "csrf_failed");
        let (status, _) = api
            .send(api.request(Method::POST, "/api/v1/users").header("x-csrf-token", "wrong").json(&body))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, answer) = api
            .send(api.request(Method::POST, "/api/v1/users").header("x-csrf-token", &csrf).json(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    async fn a_password_set_by_an_admin_must_be_replaced_at_first_login(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.admin_api().await;
        let (status, _) = admin.post("/api/v1/users", json!({
            "username": "tom.temp", "first_name": "Tom", "last_name": "Temp",
            "email": "tom@example.org", "password": "temporary-password-1"
        })).await;
        assert_eq!(status, StatusCode::CREATED);
        let client = browser_client();
        let (status, location) = app.login(&client, "tom@example.org", "temporary-password-1").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/me/password"));
        // Every page leads to the password page, and the API refuses.
        let response = client.get(app.url("/me")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()["location"], "/me/password");
        let api = Api::with_client(&app.base_url, client.clone());
        let (status, body) = api.get("/api/v1/users/tom.temp").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "password_change_required");
        let (_, session) = api.get("/api/v1/session").await;
        assert_eq!(session["password_change_required"], true);
        // A weak choice is refused with the rule; a good one frees the person.
        assert_eq!(app.choose_password(&client, None, "short").await, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.choose_password(&client, None, "tom-chose-this-one").await, StatusCode::SEE_OTHER);
        let (status, body) = api.get("/api/v1/users/tom.temp").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Changing it again at will asks for the current one.
        assert_eq!(
            app.choose_password(&client, Some("wrong-current-password"), "another-choice-here").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.choose_password(&client, Some("tom-chose-this-one"), "another-choice-here").await,
            StatusCode::SEE_OTHER
        );
        let (status, _) = app.login(&browser_client(), "tom.temp", "another-choice-here").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        // The change was audited.
        let (_, audit) = admin.get("/api/v1/audit?target=tom.temp&action=user.password_set").await;
        assert_eq!(audit["total"], 2);
    }

    async fn logins_record_the_time_and_accept_username_or_email(db) {
        let app = TestApp::spawn(db).await;
        let (status, location) = app.login(&browser_client(), "ADMIN@localhost", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/"));
        let api = app.admin_api().await;
        let (_, admin) = api.get("/api/v1/users/admin").await;
        assert_eq!(admin["last_login_at"], "2026-11-24T09:00:00Z");
        assert_eq!(admin["enrollment"], "connected");
    }

    async fn failed_logins_are_throttled_alike_for_known_and_unknown_accounts(db) {
        let app = TestApp::spawn(db).await;
        for login in ["admin", "nobody.here"] {
            let client = browser_client();
            for attempt in 1..=5 {
                let (status, _) = app.login(&client, login, "wrong-password-x").await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{login} attempt {attempt}");
            }
            // The sixth must wait a second, even with the right password.
            let (status, _) = app.login(&client, login, ADMIN_PASSWORD).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{login}");
            app.clock.advance(time::Duration::seconds(1));
            let (status, _) = app.login(&client, login, "wrong-password-x").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{login} after waiting");
            // The wait doubles.
            app.clock.advance(time::Duration::seconds(1));
            let (status, _) = app.login(&client, login, "wrong-password-x").await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{login} waits 2 s now");
            app.clock.advance(time::Duration::seconds(2));
        }
        // The right password after waiting logs in and resets the count.
        let (status, _) = app.login(&browser_client(), "admin", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    async fn one_client_gets_429_after_thirty_failures_in_a_minute(db) {
        let app = TestApp::spawn(db).await;
        let client = browser_client();
        for n in 0..30 {
            // Different names, so that the per-account throttle never triggers.
            let (status, _) = app.login(&client, &format!("someone{n}"), "wrong-password-x").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {n}");
        }
        let (status, _) = app.login(&client, "admin", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        app.clock.advance(time::Duration::seconds(61));
        let (status, _) = app.login(&client, "admin", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    async fn messages_never_reveal_whether_an_account_exists(db) {
        let app = TestApp::spawn(db).await;
        let text = |client: reqwest::Client, login: &'static str, password: &'static str| {
            let app = &app;
            async move {
                let page = client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
                let csrf = usher_testkit::hidden_field(&page, "csrf_token").unwrap();
                let r = client.post(app.url("/login"))
                    .form(&[("csrf_token", csrf.as_str()), ("login", login), ("password", password), ("next", "/")])
                    .send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (s1, known) = text(browser_client(), "admin", "wrong-password-x").await;
        let (s2, unknown) = text(browser_client(), "ghost", "wrong-password-x").await;
        assert_eq!(s1, s2);
        assert!(known.contains("Wrong username or password."));
        assert!(unknown.contains("Wrong username or password."));
    }

    async fn disabling_a_person_ends_their_sessions_at_once(db) {
        let app = TestApp::spawn(db).await;
        let member_client = app.member_client("dan.disabled").await;
        let member = Api::with_client(&app.base_url, member_client.clone());
        let (status, _) = member.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::OK);
        let admin = app.admin_api().await;
        let (status, body) = admin.patch("/api/v1/users/dan.disabled", json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["enabled"], false);
        let (status, _) = member.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let response = member_client.get(app.url("/me")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        // The right password now says the account is disabled; a wrong one says nothing.
        let (status, _) = app.login(&browser_client(), "dan.disabled", MEMBER_PASSWORD).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app.login(&browser_client(), "dan.disabled", "wrong-password-x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Enabling restores access with the memberships intact.
        let (status, _) = admin.patch("/api/v1/users/dan.disabled", json!({"enabled": true})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.login(&browser_client(), "dan.disabled", MEMBER_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, roles) = admin.get("/api/v1/users/dan.disabled/roles").await;
        assert_eq!(roles["roles"].as_array().unwrap().len(), 1);
    }

    async fn an_admin_setting_a_password_ends_that_persons_sessions(db) {
        let app = TestApp::spawn(db).await;
        let member = Api::with_client(&app.base_url, app.member_client("pat.reset").await);
        let admin = app.admin_api().await;
        let (status, body) = admin.patch("/api/v1/users/pat.reset", json!({"password": "admin-chosen-password"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = member.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, location) = app.login(&browser_client(), "pat.reset", "admin-chosen-password").await;
        assert_eq!(location.as_deref(), Some("/me/password"), "an admin-set password is temporary");
    }

    async fn logging_out_ends_the_session(db) {
        let app = TestApp::spawn(db).await;
        let client = app.logged_in_client("admin", ADMIN_PASSWORD).await;
        let page = client.get(app.url("/me")).send().await.unwrap().text().await.unwrap();
        let csrf = usher_testkit::hidden_field(&page, "csrf_token").unwrap();
        let response = client.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let response = client.get(app.url("/me")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(response.headers()["location"].to_str().unwrap().starts_with("/login"));
    }

    async fn forms_without_the_csrf_token_are_refused(db) {
        let app = TestApp::spawn(db).await;
        let client = app.logged_in_client("admin", ADMIN_PASSWORD).await;
        let response = client.post(app.url("/logout")).form(&[("csrf_token", "forged")]).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        // The login form needs its double-submit cookie.
        let response = browser_client()
            .post(app.url("/login"))
            .form(&[("csrf_token", "x"), ("login", "admin"), ("password", ADMIN_PASSWORD), ("next", "/")])
            .send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()["location"], "/login");
        assert!(response.headers().get("set-cookie").is_none(), "no session was opened");
    }

    async fn sessions_expire(db) {
        let app = TestApp::spawn(db).await;
        let api = Api::with_client(&app.base_url, app.logged_in_client("admin", ADMIN_PASSWORD).await);
        let (status, _) = api.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::OK);
        app.clock.advance(time::Duration::hours(13));
        let (status, _) = api.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn every_admin_action_is_audited_and_filterable(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        app.clock.advance(time::Duration::days(1));
        api.patch("/api/v1/users/jane.doe", json!({"last_name": "Smith"})).await;
        api.patch("/api/v1/users/jane.doe", json!({"enabled": false})).await;
        api.delete("/api/v1/users/jane.doe").await;
        let (status, body) = api.get("/api/v1/audit?target=jane.doe").await;
        assert_eq!(status, StatusCode::OK);
        let actions: Vec<&str> = body["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["user.delete", "user.disable", "user.update", "user.create"]);
        assert_eq!(body["total"], 4);
        let update = &body["entries"][2];
        assert_eq!(update["actor"], "admin");
        assert_eq!(update["details"]["before"]["last_name"], "Doe");
        assert_eq!(update["details"]["after"]["last_name"], "Smith");
        assert_eq!(update["at"], "2026-11-25T09:00:00Z");
        let (_, body) = api.get("/api/v1/audit?action=user.create&since=2026-11-24&until=2026-11-25").await;
        let targets: Vec<&str> = body["entries"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
        assert_eq!(targets, ["jane.doe", "admin"]);
        let (_, body) = api.get("/api/v1/audit?actor=admin&limit=1&offset=1").await;
        assert_eq!(body["entries"].as_array().unwrap().len(), 1);
        // Creating jane, two changes and the deletion; the super user was made by the system.
        assert_eq!(body["total"], 4);
        let (status, _) = api.get("/api/v1/audit?since=yesterday").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn health_checks_and_security_headers(db) {
        let app = TestApp::spawn(db).await;
        let client = reqwest::Client::new();
        let r = client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = client.get(app.url("/login")).send().await.unwrap();
        let h = r.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.contains_key("referrer-policy"));
        let cookie = h["set-cookie"].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"));
    }
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let Some(db) = usher_testkit::TestDb::create(usher_testkit::TestBackend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn_with(db, |c| c.public_url = "https://usher.example.org".into()).await;
    let r = reqwest::Client::new()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn api_tokens_of_disabled_people_stop_working() {
    let Some(db) = usher_testkit::TestDb::create(usher_testkit::TestBackend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(db).await;
    app.usher
        .create_admin_from_shell(
            "ops.admin",
            "ops@example.org",
            "Ops",
            "Admin",
            "ops-long-passphrase",
        )
        .await
        .unwrap();
    let token = app
        .usher
        .create_api_token("ops.admin", "automation")
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let r = client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let admin = app.admin_api().await;
    let (status, _) = admin
        .patch("/api/v1/users/ops.admin", json!({"enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
}

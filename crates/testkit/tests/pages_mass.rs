//! The invitation and mass-action pages as plain HTML forms, without JavaScript (a client that
//! posts forms and reads pages, one step at a time): what a browser without the script gets.
//! The browser tests (`browser_mass.rs`) cover the same pages with it.

use reqwest::StatusCode;
use serde_json::json;
use usher_testkit::{hidden_field, TestApp, TestBackend, TestDb, ADMIN_PASSWORD};

async fn app() -> TestApp {
    let db = TestDb::create(TestBackend::Sqlite)
        .await
        .expect("an SQLite test database");
    TestApp::spawn(db).await
}

struct Admin<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    csrf: String,
}

impl<'a> Admin<'a> {
    async fn log_in(app: &'a TestApp) -> Self {
        let client = app.logged_in_client("admin", ADMIN_PASSWORD).await;
        let list = client
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = hidden_field(&list, "csrf_token").expect("a form on the list");
        Self { app, client, csrf }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.client.get(self.app.url(path)).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts a form (the CSRF token added); the status, `Location` and page.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let mut fields = vec![("csrf_token", self.csrf.as_str())];
        fields.extend_from_slice(form);
        let r = self
            .client
            .post(self.app.url(path))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (r.status(), location, r.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_list_carries_a_mass_action_form_that_works_without_the_script() {
    let app = app().await;
    app.create_person("jane.doe", "Jane", "Doe").await;
    app.create_person("john.doe", "John", "Doe").await;
    let admin = Admin::log_in(&app).await;

    let (_, list) = admin.get("/admin/users?q=doe&enabled=true").await;
    // One form for the bar; the row boxes belong to it from afar, so the rows' own forms stay.
    assert!(list.contains(r#"<form method="post" action="/admin/users/bulk" id="bulk-form""#));
    assert!(list.contains(r#"name="usernames" value="jane.doe" form="bulk-form""#));
    assert!(list.contains(r#"name="scope" value="all""#));
    assert!(list.contains("All <strong id=\"bulk-total\">2 people</strong> matching this search"));
    assert_eq!(hidden_field(&list, "q").as_deref(), Some("doe"));
    assert_eq!(hidden_field(&list, "enabled").as_deref(), Some("true"));
    // The envelope of each person who can be invited.
    assert!(list.contains(r#"action="/admin/users/jane.doe/invite""#));
    assert!(list.contains(r#"title="Send invitation""#));

    // Nobody ticked: said, nothing done.
    let (status, _, page) = admin
        .post(
            "/admin/users/bulk",
            &[("action", "disable"), ("scope", "selected")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Nobody selected"), "{page}");

    // No action chosen.
    let (status, _, page) = admin
        .post("/admin/users/bulk", &[("usernames", "jane.doe")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Choose an action"), "{page}");

    // Everyone matching, confirmed: the result, and a way back to the same search.
    let back = "/admin/users?q=doe&enabled=true";
    let form = [
        ("action", "disable"),
        ("scope", "all"),
        ("q", "doe"),
        ("enabled", "true"),
        ("return_to", back),
    ];
    let (status, _, page) = admin.post("/admin/users/bulk", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Disable all 2 people?"), "{page}");
    assert!(page.contains("Their sessions end at once."));
    assert!(page.contains(r#"name="confirmed" value="1""#));
    let (_, jane) = admin.get("/admin/users/jane.doe").await;
    assert!(jane.contains(r#"id="enabled-badge">Enabled"#), "not yet");

    let mut confirmed = form.to_vec();
    confirmed.push(("confirmed", "1"));
    let (status, _, page) = admin.post("/admin/users/bulk", &confirmed).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("2 people disabled"), "{page}");
    assert!(page.contains(r#"href="/admin/users?q=doe&#38;enabled=true""#));

    // A `return_to` elsewhere is not followed.
    let (_, _, page) = admin
        .post(
            "/admin/users/bulk",
            &[
                ("action", "enable"),
                ("usernames", "jane.doe"),
                ("return_to", "https://elsewhere.example/"),
            ],
        )
        .await;
    assert!(!page.contains("elsewhere.example"));
}

#[tokio::test]
async fn an_invitation_the_server_refuses_is_said_on_the_page_it_came_from() {
    let app = app().await;
    app.create_person("jane.doe", "Jane", "Doe").await;
    let admin = Admin::log_in(&app).await;

    // From the list: back to it, with a notice naming the person (from the store, not the URL).
    let (status, location, _) = admin
        .post(
            "/admin/users/jane.doe/invite",
            &[("return_to", "/admin/users?q=jane")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/admin/users?q=jane&notice=invited&who=jane.doe");
    let (_, list) = admin.get(&location).await;
    assert!(list.contains("Invitation sent to Jane Doe (jane.doe@example.org)."));
    assert!(list.contains("Resend invitation (invited on 2026-11-24)"));
    let (_, list) = admin
        .get("/admin/users?notice=invited&who=%3Cscript%3E")
        .await;
    assert!(
        !list.contains("<script>"),
        "nothing of the address is shown"
    );

    // Disabled meanwhile: the list again, 409, with the reason.
    let api = app.admin_api().await;
    let (s, _) = api
        .patch("/api/v1/users/jane.doe", json!({ "enabled": false }))
        .await;
    assert!(s.is_success());
    let (status, _, page) = admin
        .post(
            "/admin/users/jane.doe/invite",
            &[("return_to", "/admin/users?q=jane")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        page.contains("No invitation was sent to Jane Doe."),
        "{page}"
    );
    assert!(page.contains(r#"value="jane""#), "the search is kept");
    assert!(page.contains(r#"data-username="jane.doe""#));

    // From the detail page (no `return_to`): the person's page, 409, with the reason.
    let (status, _, page) = admin.post("/admin/users/jane.doe/invite", &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("No invitation was sent to Jane Doe."));
    assert!(page.contains("Enable the account to invite them."));
}

#[tokio::test]
async fn a_job_page_refreshes_itself_without_the_script_while_it_runs() {
    let app = app().await;
    let admin = Admin::log_in(&app).await;
    let job = usher_core::store::JobRecord {
        id: 0,
        kind: "bulk_disable".into(),
        state: "running".into(),
        total: 2000,
        processed: 250,
        result: None,
        created_by: Some("admin".into()),
        created_at: time::OffsetDateTime::now_utc(),
        finished_at: None,
    };
    let id = app.usher.store.insert_job(&job).await.unwrap();
    let (status, page) = admin.get(&format!("/admin/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#));
    assert!(page.contains(r#"<progress id="job-progress" max="2000" value="250""#));
    assert!(page.contains("Disabling 250 of 2,000 people…"));
    let (status, _) = admin.get("/admin/jobs/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin.get("/admin/jobs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

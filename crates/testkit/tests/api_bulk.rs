//! Mass actions (`POST /api/v1/users/bulk`) on SQLite and PostgreSQL: every skip reason, self
//! and super-user protection, memberships kept across disable and enable, sessions ended, and
//! the filter path as a background job at 100,000 people, and a job resumed by another run
//! after its own stopped.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use usher_core::store::{JobLease, JobRecord, StoreError};
use usher_store::Pool;
use usher_testkit::{on_both_backends, Api, TestApp, MEMBER_PASSWORD};

fn skipped(body: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = body["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["username"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn changed(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Inserts `n` people `bulk.N` straight into the store, fast, for the scale tests.
async fn insert_many(app: &TestApp, n: i64) {
    let store = app.db.store().await;
    let sql = format!(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
         INSERT INTO people (username, first_name, last_name, email, email_key, first_name_key, \
         last_name_key, search_text, enabled, kind, source, super_user, created_at) \
         SELECT 'bulk.' || i, 'Bulk', 'Person', 'bulk.' || i || '@example.org', \
         'bulk.' || i || '@example.org', 'bulk', 'person', \
         'bulk.' || i || ' bulk person bulk.' || i || '@example.org', TRUE, 'internal', \
         'internal', FALSE, 0 FROM seq"
    );
    match store.pool() {
        Pool::Sqlite(p) => {
            sqlx::query(&sql).execute(p).await.unwrap();
        }
        Pool::Postgres(p) => {
            sqlx::query(&sql).execute(p).await.unwrap();
        }
    }
}

/// Polls job `id` until it ends (bounded); its last state.
async fn finished_job(api: &Api, id: i64) -> Value {
    for _ in 0..600 {
        let (_, j) = api.get(&format!("/api/v1/jobs/{id}")).await;
        if j["state"] == "done" || j["state"] == "failed" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {id} did not end within 2 minutes");
}

on_both_backends! {
    async fn disable_and_enable_report_every_skip_with_its_reason(db) {
        let app = TestApp::spawn(db).await;
        for name in ["anna.one", "bert.two", "cleo.three"] {
            app.create_person(name, "Some", "Body").await;
        }
        let api = app.admin_api().await;
        api.patch("/api/v1/users/cleo.three", json!({"enabled": false})).await;
        let (status, body) = api.post("/api/v1/users/bulk", json!({
            "action": "disable",
            "usernames": ["anna.one", "bert.two", "cleo.three", "admin", "ghost.person", "ANNA.ONE"]
        })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(changed(&body), ["anna.one", "bert.two"]);
        assert_eq!(skipped(&body), [
            ("admin".into(), "self".into()),
            ("cleo.three".into(), "already_disabled".into()),
            ("ghost.person".into(), "not_found".into()),
        ]);
        let (_, body) = api.post("/api/v1/users/bulk", json!({
            "action": "enable", "usernames": ["anna.one", "admin"]
        })).await;
        assert_eq!(changed(&body), ["anna.one"]);
        assert_eq!(skipped(&body), [("admin".into(), "already_enabled".into())]);
        let (_, audit) = api.get("/api/v1/audit?action=user.disable").await;
        assert_eq!(audit["total"], 3, "two by the mass action, one by the PATCH");
    }

    async fn another_admin_cannot_disable_the_super_user(db) {
        let app = TestApp::spawn(db).await;
        app.usher
            .create_admin_from_shell("second.admin", "second@example.org", "Second", "Admin", "another-long-passphrase")
            .await
            .unwrap();
        let token = app.usher.create_api_token("second.admin", "t").await.unwrap();
        let r = reqwest::Client::new()
            .post(app.url("/api/v1/users/bulk"))
            .bearer_auth(token)
            .json(&json!({"action": "disable", "usernames": ["admin", "second.admin"]}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(skipped(&body), [("admin".into(), "super_user".into()), ("second.admin".into(), "self".into())]);
    }

    async fn disabling_ends_sessions_and_enabling_restores_every_membership(db) {
        let app = TestApp::spawn(db).await;
        let member = Api::with_client(&app.base_url, app.member_client("mia.member").await);
        let api = app.admin_api().await;
        let (_, before) = api.get("/api/v1/users/mia.member/roles").await;
        let (_, body) = api.post("/api/v1/users/bulk", json!({"action": "disable", "usernames": ["mia.member"]})).await;
        assert_eq!(changed(&body), ["mia.member"]);
        let (status, _) = member.get("/api/v1/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, body) = api.post("/api/v1/users/bulk", json!({"action": "enable", "usernames": ["mia.member"]})).await;
        assert_eq!(changed(&body), ["mia.member"]);
        let (_, after) = api.get("/api/v1/users/mia.member/roles").await;
        assert_eq!(before, after);
        let (status, _) = app.login(&usher_testkit::browser_client(), "mia.member", MEMBER_PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    async fn invite_sends_to_those_who_can_still_join_and_skips_the_rest(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        app.create_person("new.one", "New", "One").await;
        app.create_person("invited.one", "Invited", "One").await;
        app.create_person("off.one", "Off", "One").await;
        api.post("/api/v1/users/invited.one/invitation", json!({})).await;
        api.patch("/api/v1/users/off.one", json!({"enabled": false})).await;
        let _ = app.logged_in_client("admin", usher_testkit::ADMIN_PASSWORD).await;
        let (status, body) = api.post("/api/v1/users/bulk", json!({
            "action": "invite", "filter": {"type": "internal"}
        })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(changed(&body), ["invited.one", "new.one"], "a resend for the one already invited");
        assert_eq!(skipped(&body), [
            ("admin".into(), "already_joined".into()),
            ("off.one".into(), "not_invitable".into()),
        ]);
    }

    async fn bad_mass_action_requests_get_422(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        for body in [
            json!({"action": "explode", "usernames": []}),
            json!({"action": "disable"}),
            json!({"action": "disable", "usernames": [], "filter": {}}),
            json!({"action": "disable", "filter": {"type": "robot"}}),
        ] {
            let (status, answer) = api.post("/api/v1/users/bulk", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        }
        let member = Api::with_client(&app.base_url, app.member_client("mia.member").await);
        let (_, session) = member.get("/api/v1/session").await;
        let csrf = session["csrf_token"].as_str().unwrap().to_owned();
        let (status, _) = member
            .send(member.request(reqwest::Method::POST, "/api/v1/users/bulk").header("x-csrf-token", csrf)
                .json(&json!({"action": "disable", "usernames": ["admin"]})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    async fn a_filter_matching_100000_people_is_disabled_as_a_job(db) {
        let app = TestApp::spawn(db).await;
        insert_many(&app, 100_000).await;
        let api = app.admin_api().await;
        let (status, job) = api.post("/api/v1/users/bulk", json!({
            "action": "disable", "filter": {"q": "bulk", "enabled": true}
        })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        assert_eq!(job["total"], 100_000);
        let id = job["id"].as_i64().unwrap();
        let done = finished_job(&api, id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["processed"], 100_000);
        assert_eq!(done["result"]["changed"].as_array().unwrap().len(), 100_000);
        let (_, left) = api.get("/api/v1/users?q=bulk&enabled=true").await;
        assert_eq!(left["total"], 0);
        let (_, disabled) = api.get("/api/v1/users?enabled=false").await;
        assert_eq!(disabled["total"], 100_000);
    }

    async fn a_job_whose_node_stopped_is_taken_over_and_finished_from_its_first_unrecorded_chunk(db) {
        let app = TestApp::spawn(db).await;
        insert_many(&app, 2_500).await;
        let api = app.admin_api().await;
        let store = app.usher.store.clone();
        let admin = store.person_by_username("admin").await.unwrap().unwrap();
        // What a node that stopped after its first chunk leaves behind: the job, its first
        // 500 people disabled, that chunk's outcome recorded, and a lease it no longer renews.
        let mut chosen = Vec::new();
        for i in 1..=2_500 {
            let p = store.person_by_username(&format!("bulk.{i}")).await.unwrap().unwrap();
            chosen.push((p.id, p.username));
        }
        let now = usher_core::clock::Clock::now(app.clock.as_ref());
        let dead = JobLease { token: "the-stopped-run".into(), until: now + time::Duration::seconds(60) };
        let job = JobRecord {
            id: 0,
            kind: "bulk_disable".into(),
            state: "running".into(),
            total: 2_501,
            processed: 0,
            result: None,
            created_by: Some("admin".into()),
            created_at: now,
            finished_at: None,
        };
        let spec = json!({
            "action": "disable", "actor_id": admin.id, "people": chosen, "missing": ["ghost.person"]
        });
        let id = store.insert_resumable_job(&job, &spec, &dead).await.unwrap();
        let first: Vec<i64> = chosen[..500].iter().map(|(id, _)| *id).collect();
        store.set_enabled_many(&first, false, &[]).await.unwrap();
        let first_names: Vec<&str> = chosen[..500].iter().map(|(_, u)| u.as_str()).collect();
        store
            .record_job_part(id, 0, 501, &json!({"changed": first_names, "skipped": []}), &dead)
            .await
            .unwrap();

        assert_eq!(
            app.usher.resume_stalled_jobs().await.unwrap(),
            0,
            "not taken while its lease may still be renewed"
        );
        app.clock.advance(time::Duration::seconds(61));
        assert_eq!(app.usher.resume_stalled_jobs().await.unwrap(), 1);
        assert_eq!(app.usher.resume_stalled_jobs().await.unwrap(), 0, "taken once");

        let done = finished_job(&api, id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["processed"], 2_501);
        // Had the first chunk been done again, its 500 would be skipped as already disabled.
        assert_eq!(changed(&done["result"]).len(), 2_500);
        assert_eq!(
            skipped(&done["result"]),
            [("ghost.person".to_owned(), "not_found".to_owned())]
        );
        let (_, left) = api.get("/api/v1/users?q=bulk&enabled=true").await;
        assert_eq!(left["total"], 0);
        // The stopped run, had it come back, is fenced out.
        let late = store
            .record_job_part(id, 1, 1_001, &json!({"changed": [], "skipped": []}), &dead)
            .await;
        assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");
    }
}

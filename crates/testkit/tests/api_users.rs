//! The people API (`/api/v1/users`) on SQLite and PostgreSQL: creation rules, conflicts,
//! search, filters, sorting, paging, export, changes, deletion, roles and bad input.

use reqwest::StatusCode;
use serde_json::{json, Value};
use usher_testkit::{on_both_backends, TestApp};

fn person(username: &str, first: &str, last: &str) -> Value {
    json!({
        "username": username, "first_name": first, "last_name": last,
        "email": format!("{username}@example.org"),
    })
}

fn codes(body: &Value, field: &str) -> Vec<String> {
    body["error"]["fields"][field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn usernames(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

on_both_backends! {
    async fn creating_a_person_returns_the_user_json(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let (status, body) = api
            .post("/api/v1/users", json!({
                "username": "  Jane.Doe ", "first_name": "Jane", "last_name": "Doe",
                "email": "Jane.Doe@Example.org", "profile": {"position": "Engineer"}
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["username"], "jane.doe");
        assert_eq!(body["email"], "Jane.Doe@Example.org");
        assert_eq!(body["enabled"], true);
        assert_eq!(body["type"], "internal");
        assert_eq!(body["source"], "internal");
        assert_eq!(body["enrollment"], "invite");
        assert_eq!(body["invitation_delivery"], Value::Null);
        assert_eq!(body["last_login_at"], Value::Null);
        assert_eq!(body["created_at"], "2026-11-24T09:00:00Z");
        assert_eq!(body["profile"]["position"], "Engineer");
        assert_eq!(body["profile"]["department"], Value::Null);
        let (status, roles) = api.get("/api/v1/users/jane.doe/roles").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(roles["roles"][0]["group"], "/platform/users");
        assert_eq!(roles["roles"][0]["role"], "member");
        assert!(roles["roles"][0]["summary"].as_str().unwrap().len() > 10);
    }

    async fn every_invalid_field_is_reported_at_once(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let (status, body) = api
            .post("/api/v1/users", json!({
                "username": "a..b", "first_name": "Jo3", "last_name": "X",
                "email": "not-an-email", "password": "Zq7-kp"
            }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(codes(&body, "username"), ["invalid_format"]);
        assert_eq!(codes(&body, "first_name"), ["invalid_characters"]);
        assert_eq!(codes(&body, "last_name"), ["too_short"]);
        assert_eq!(codes(&body, "email"), ["invalid_email"]);
        assert_eq!(codes(&body, "password"), ["too_short"]);
    }

    async fn validation_comes_before_uniqueness(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        let api = app.admin_api().await;
        let mut body = person("jane.doe", "Jane", "D");
        body["email"] = json!("jane.doe@example.org");
        let (status, answer) = api.post("/api/v1/users", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(codes(&answer, "last_name"), ["too_short"]);
    }

    async fn conflicts_name_the_clashing_fields(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        let api = app.admin_api().await;
        let mut same_both = person("JANE.DOE", "Jane", "Doe");
        same_both["email"] = json!("JANE.DOE@EXAMPLE.ORG");
        let (status, body) = api.post("/api/v1/users", same_both).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(codes(&body, "username"), ["username_taken"]);
        assert_eq!(codes(&body, "email"), ["email_taken"]);
        // With a password the clash is found before hashing, by another path: the same answer.
        let mut with_password = person("JANE.DOE", "Jane", "Doe");
        with_password["email"] = json!("JANE.DOE@EXAMPLE.ORG");
        with_password["password"] = json!("Correct-Horse-7-Battery");
        let (status, body) = api.post("/api/v1/users", with_password).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(codes(&body, "username"), ["username_taken"]);
        assert_eq!(codes(&body, "email"), ["email_taken"]);

        let (status, body) = api.post("/api/v1/users", person("admin", "Some", "Body")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(codes(&body, "username"), ["username_reserved"]);
        assert_eq!(body["error"]["code"], "username_reserved");
    }

    async fn a_deleted_persons_username_stays_reserved_but_the_email_is_freed(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("gone.person", "Gone", "Person").await;
        let api = app.admin_api().await;
        let (status, _) = api.delete("/api/v1/users/gone.person").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api.get("/api/v1/users/gone.person").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = api.post("/api/v1/users", person("gone.person", "Gone", "Again")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(codes(&body, "username"), ["username_reserved"]);
        let mut other = person("new.person", "New", "Person");
        other["email"] = json!("gone.person@example.org");
        let (status, body) = api.post("/api/v1/users", other).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn only_the_super_user_deletes_and_never_themselves(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        // Make a second administrator through the shell path.
        app.usher
            .create_admin_from_shell("second.admin", "second@example.org", "Second", "Admin", "another-long-passphrase")
            .await
            .unwrap();
        let token = app.usher.create_api_token("second.admin", "t").await.unwrap();
        let client = reqwest::Client::new();
        let response = client
            .delete(app.url("/api/v1/users/jane.doe"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let api = app.admin_api().await;
        let (status, body) = api.delete("/api/v1/users/admin").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = api.get("/api/v1/users/admin").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn search_is_contains_case_and_accent_insensitive_and_needs_every_word(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("elodie.naf", "Élodie", "Näf").await;
        app.create_person("eloise.martin", "Eloïse", "Martin").await;
        app.create_person("paul.martin", "Paul", "Martin").await;
        let api = app.admin_api().await;
        let (_, body) = api.get("/api/v1/users?q=ELO").await;
        assert_eq!(usernames(&body), ["eloise.martin", "elodie.naf"]);
        assert_eq!(body["total"], 2);
        let (_, body) = api.get("/api/v1/users?q=n%C3%A4f").await;
        assert_eq!(usernames(&body), ["elodie.naf"]);
        let (_, body) = api.get("/api/v1/users?q=martin%20elo").await;
        assert_eq!(usernames(&body), ["eloise.martin"]);
        let (_, body) = api.get("/api/v1/users?q=odi").await;
        assert_eq!(usernames(&body), ["elodie.naf"]);
        let (_, body) = api.get("/api/v1/users?q=example.org%20paul").await;
        assert_eq!(usernames(&body), ["paul.martin"]);
        let (_, body) = api.get("/api/v1/users?q=zzz").await;
        assert_eq!(body["total"], 0);
        let (_, body) = api.get("/api/v1/users?q=%25").await;
        assert_eq!(body["total"], 0, "a % in the query is a literal");
    }

    async fn filters_combine_and_each_one_selects_exactly(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("never.seen", "Never", "Seen").await;
        app.create_person("off.person", "Off", "Person").await;
        let api = app.admin_api().await;
        let (status, _) = api.patch("/api/v1/users/off.person", json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::OK);
        // `admin` has connected? Not yet: log in once so that it has.
        let _client = app.logged_in_client("admin", usher_testkit::ADMIN_PASSWORD).await;

        let (_, body) = api.get("/api/v1/users?enabled=false").await;
        assert_eq!(usernames(&body), ["off.person"]);
        let (_, body) = api.get("/api/v1/users?connected=true").await;
        assert_eq!(usernames(&body), ["admin"]);
        let (_, body) = api.get("/api/v1/users?connected=false&sort=username").await;
        assert_eq!(usernames(&body), ["never.seen", "off.person"]);
        let (_, body) = api.get("/api/v1/users?enrollment=never_enrolled&enabled=true").await;
        assert_eq!(usernames(&body), ["never.seen"]);
        let (_, body) = api.get("/api/v1/users?enrollment=not_possible").await;
        assert_eq!(usernames(&body), ["admin"], "connected without invitation");
        let (_, body) = api.get("/api/v1/users?enrollment=enrolled").await;
        assert_eq!(body["total"], 0);
        let (_, body) = api.get("/api/v1/users?type=internal&source=internal&enabled=true&connected=false").await;
        assert_eq!(usernames(&body), ["never.seen"]);
        let (_, body) = api.get("/api/v1/users?type=external").await;
        assert_eq!(body["total"], 0);
        let (_, body) = api.get("/api/v1/users?source=ldap").await;
        assert_eq!(body["total"], 0);
        let (_, body) = api.get("/api/v1/users?q=person&enabled=true").await;
        assert_eq!(body["total"], 0);
    }

    async fn sorting_and_paging_are_stable_and_total_is_exact(db) {
        let app = TestApp::spawn(db).await;
        for (u, f, l) in [
            ("anna.zed", "Anna", "Zed"), ("bob.young", "Bob", "Young"),
            ("carl.xavier", "Carl", "Xavier"), ("dora.young", "Dora", "Young"),
        ] {
            app.create_person(u, f, l).await;
            app.clock.advance(time::Duration::minutes(1));
        }
        let api = app.admin_api().await;
        let (_, body) = api.get("/api/v1/users").await;
        assert_eq!(
            usernames(&body),
            ["admin", "carl.xavier", "bob.young", "dora.young", "anna.zed"],
            "last name by default, username breaking ties"
        );
        let (_, body) = api.get("/api/v1/users?sort=-last_name").await;
        assert_eq!(usernames(&body), ["anna.zed", "dora.young", "bob.young", "carl.xavier", "admin"]);
        let (_, body) = api.get("/api/v1/users?sort=first_name&limit=2&offset=1").await;
        assert_eq!(usernames(&body), ["bob.young", "carl.xavier"]);
        assert_eq!(body["total"], 5);
        assert_eq!(body["limit"], 2);
        assert_eq!(body["offset"], 1);
        let (_, body) = api.get("/api/v1/users?sort=-created_at&limit=1").await;
        assert_eq!(usernames(&body), ["dora.young"]);
        let (_, body) = api.get("/api/v1/users?sort=email").await;
        assert_eq!(usernames(&body)[0], "admin");
        let (_, body) = api.get("/api/v1/users?offset=100").await;
        assert_eq!(usernames(&body).len(), 0);
        assert_eq!(body["total"], 5);
        // Never-connected people come last whichever the direction.
        let _client = app.logged_in_client("admin", usher_testkit::ADMIN_PASSWORD).await;
        for sort in ["last_login_at", "-last_login_at"] {
            let (_, body) = api.get(&format!("/api/v1/users?sort={sort}")).await;
            assert_eq!(usernames(&body)[0], "admin", "{sort}");
        }
    }

    async fn out_of_range_paging_and_unknown_values_get_422(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        for query in ["limit=0", "limit=501", "limit=abc", "offset=-1", "sort=password",
                      "enabled=yes", "enrollment=maybe", "type=robot", "source=ad"] {
            let (status, body) = api.get(&format!("/api/v1/users?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_query");
        }
        let (status, _) = api.get("/api/v1/users?limit=500").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn bad_bodies_get_clear_4xx_errors(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let send_raw = |body: &'static str, content_type: &'static str| {
            api.request(reqwest::Method::POST, "/api/v1/users")
                .header("content-type", content_type)
                .body(body)
        };
        let (status, body) = api.send(send_raw("{not json", "application/json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "malformed_json");
        let (status, body) = api.send(send_raw("{}", "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        let (status, body) = api.post("/api/v1/users", json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "jane@example.org", "is_admin": true
        })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("is_admin"));
        let (status, body) = api.post("/api/v1/users", json!({"username": 42})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let big = "x".repeat(1024 * 1024 + 10);
        let (status, body) = api
            .send(api.request(reqwest::Method::POST, "/api/v1/users")
                .header("content-type", "application/json")
                .body(format!("{{\"username\": \"{big}\"}}")))
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let (status, body) = api.patch("/api/v1/users/admin", json!({"username": "x"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = api.get("/api/v1/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }

    async fn patching_changes_fields_and_keeps_emails_unique(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        app.create_person("john.roe", "John", "Roe").await;
        let api = app.admin_api().await;
        let (status, body) = api.patch("/api/v1/users/jane.doe", json!({
            "first_name": "Janet", "email": "janet@example.org",
            "profile": {"department": "Sales", "position": "Lead"}
        })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["first_name"], "Janet");
        assert_eq!(body["last_name"], "Doe");
        assert_eq!(body["profile"]["department"], "Sales");
        let (_, body) = api.patch("/api/v1/users/jane.doe", json!({"profile": {"position": ""}})).await;
        assert_eq!(body["profile"]["position"], Value::Null, "an empty string clears");
        assert_eq!(body["profile"]["department"], "Sales", "others stay");
        let (_, found) = api.get("/api/v1/users?q=janet").await;
        assert_eq!(usernames(&found), ["jane.doe"]);
        let (status, body) = api.patch("/api/v1/users/jane.doe", json!({"email": "JOHN.ROE@example.org"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(codes(&body, "email"), ["email_taken"]);
        let (status, body) = api.patch("/api/v1/users/jane.doe", json!({"last_name": "D0e"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, _) = api.patch("/api/v1/users/nobody.here", json!({"first_name": "Nobody"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn nobody_disables_themselves_or_the_super_user(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let (status, body) = api.patch("/api/v1/users/admin", json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "self");
        app.usher
            .create_admin_from_shell("second.admin", "second@example.org", "Second", "Admin", "another-long-passphrase")
            .await
            .unwrap();
        let token = app.usher.create_api_token("second.admin", "t").await.unwrap();
        let response = reqwest::Client::new()
            .patch(app.url("/api/v1/users/admin"))
            .bearer_auth(token)
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "super_user");
    }

    async fn the_csv_export_holds_the_same_selection(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        app.create_person("john.roe", "John", "Roe").await;
        let api = app.admin_api().await;
        let response = api.request(reqwest::Method::GET, "/api/v1/users.csv?q=doe").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "username,first_name,last_name,email,enabled,type,source,created_at,last_login_at,invited_at,enrollment");
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].starts_with("jane.doe,Jane,Doe,jane.doe@example.org,true,internal,internal,2026-11-24T09:00:00Z,,,invite"));
    }
}

#[test]
fn csv_cells_that_look_like_formulas_are_neutralised() {
    let line = usher_server::http::api::csv_line(&["=cmd()", "+1", "-2", "@x", "plain", "a,b"]);
    assert_eq!(line, "'=cmd(),'+1,'-2,'@x,plain,\"a,b\"\r\n");
}

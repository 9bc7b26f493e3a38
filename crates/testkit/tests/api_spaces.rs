//! Spaces and external people on SQLite and PostgreSQL: creating spaces, members and roles,
//! inviting an outside address through a real SMTP conversation and registering, inviting an
//! existing person, resend and revoke, and what external people may and may not see.

use std::time::Duration;

use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::json;
use usher_testkit::smtp::SmtpSink;
use usher_testkit::{browser_client, hidden_field, on_both_backends, Api, TestApp, TestDb};

const WAIT: Duration = Duration::from_secs(20);

async fn app_with_sink(db: TestDb) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(db, |c| c.smtp_url = Some(url)).await;
    (app, sink)
}

fn register_link(data: &[u8]) -> String {
    let message = MessageParser::default().parse(data).expect("a message");
    let text = message.body_text(0).unwrap_or_default().into_owned();
    let start = text.find("/register/").expect("a registration link");
    let from = text[..start].rfind("http").unwrap();
    text[from..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ',', '>', ')'])
        .to_owned()
}

async fn register(
    app: &TestApp,
    url: &str,
    fields: &[(&str, &str)],
) -> (reqwest::Client, reqwest::Response) {
    let client = browser_client();
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let csrf = hidden_field(&page, "csrf_token").unwrap();
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let _ = app;
    let r = client.post(url).form(&form).send().await.unwrap();
    (client, r)
}

async fn csrf_of(api: &Api) -> String {
    let (_, s) = api.get("/api/v1/session").await;
    s["csrf_token"].as_str().unwrap().to_owned()
}

on_both_backends! {
    async fn admins_create_spaces_and_manage_members_and_roles(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let (status, body) = api.post("/api/v1/spaces", json!({"name": "sales-team", "display_name": "Sales team"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["external_invitations"], false);
        let (status, body) = api.post("/api/v1/spaces", json!({"name": "sales-team", "display_name": "Again"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        for bad in ["x", "Sales Team", "-a", "a--b", &"a".repeat(65)] {
            let (status, _) = api.post("/api/v1/spaces", json!({"name": bad, "display_name": "X"})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        let (status, body) = api.patch("/api/v1/spaces/sales-team", json!({"display_name": "Sales", "external_invitations": true})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["display_name"], "Sales");
        app.create_person("jane.doe", "Jane", "Doe").await;
        let (status, _) = api.send(api.request(reqwest::Method::PUT, "/api/v1/spaces/sales-team/members/jane.doe").json(&json!({"role": "manager"}))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.send(api.request(reqwest::Method::PUT, "/api/v1/spaces/sales-team/members/jane.doe").json(&json!({"role": "boss"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, members) = api.get("/api/v1/spaces/sales-team/members").await;
        assert_eq!(members["members"][0]["username"], "jane.doe");
        assert_eq!(members["members"][0]["role"], "manager");
        let (_, roles) = api.get("/api/v1/users/jane.doe/roles").await;
        let space_role = roles["roles"].as_array().unwrap().iter().find(|r| r["group"] == "/spaces/sales-team").unwrap().clone();
        assert_eq!(space_role["role"], "manager");
        assert!(space_role["summary"].as_str().unwrap().contains("Manages the space"));
        let (status, _) = api.delete("/api/v1/spaces/sales-team/members/jane.doe").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api.delete("/api/v1/spaces/sales-team/members/jane.doe").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = api.get("/api/v1/spaces").await;
        assert_eq!(list["spaces"].as_array().unwrap().len(), 1);
        let (_, audit) = api.get("/api/v1/audit?target=/spaces/sales-team").await;
        assert!(audit["total"].as_u64().unwrap() >= 4, "{audit}");
    }

    async fn an_outside_address_registers_as_an_external_member_of_the_space(db) {
        let (app, sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        api.post("/api/v1/spaces", json!({"name": "partners", "display_name": "Partners", "external_invitations": true})).await;
        let (status, inv) = api.post("/api/v1/spaces/partners/invitations", json!({"email": "guest@outside.example"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{inv}");
        assert_eq!(inv["state"], "pending");
        let received = sink.wait_for(1, WAIT).await;
        assert_eq!(received[0].recipients, ["guest@outside.example"]);
        let url = register_link(&received[0].data);
        assert!(url.starts_with(&format!("{}/register/", app.base_url)));
        // Errors come back in place; the link survives them.
        let (_, r) = register(&app, &url, &[("first_name", "G1"), ("last_name", "Guest"), ("username", ""), ("password", "guest-passphrase-1"), ("password_confirmation", "guest-passphrase-1")]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let (client, r) = register(&app, &url, &[("first_name", "Gina"), ("last_name", "Guest"), ("username", ""), ("password", "guest-passphrase-1"), ("password_confirmation", "guest-passphrase-1")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/me");
        let me = client.get(app.url("/me")).send().await.unwrap().text().await.unwrap();
        assert!(me.contains("Partners") && me.contains("gina.guest"), "{me}");

        let (_, user) = api.get("/api/v1/users/gina.guest").await;
        assert_eq!(user["type"], "external");
        assert_eq!(user["enrollment"], "not_possible");
        assert_eq!(user["email"], "guest@outside.example");
        let (_, roles) = api.get("/api/v1/users/gina.guest/roles").await;
        let groups: Vec<&str> = roles["roles"].as_array().unwrap().iter().map(|r| r["group"].as_str().unwrap()).collect();
        assert_eq!(groups, ["/platform/externals", "/spaces/partners"]);
        let (_, invs) = api.get("/api/v1/spaces/partners/invitations").await;
        assert_eq!(invs["invitations"][0]["state"], "accepted");
        let (_, externals) = api.get("/api/v1/users?type=external").await;
        assert_eq!(externals["total"], 1);
        // The link is spent.
        assert_eq!(browser_client().get(&url).send().await.unwrap().status(), StatusCode::GONE);
        // External people cannot be invited from the admin screen.
        let (status, body) = api.post("/api/v1/users/gina.guest/invitation", json!({})).await;
        assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("not_invitable")));

        // What the guest may do: their profile and their spaces, nothing else.
        let guest = Api::with_client(&app.base_url, client.clone());
        let (status, _) = guest.get("/api/v1/users/gina.guest").await;
        assert_eq!(status, StatusCode::OK);
        let (_, spaces) = guest.get("/api/v1/spaces").await;
        assert_eq!(spaces["spaces"].as_array().unwrap().len(), 1);
        for path in ["/api/v1/users", "/api/v1/users/admin", "/api/v1/audit"] {
            let (status, _) = guest.get(path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
        api.post("/api/v1/spaces", json!({"name": "internal-only", "display_name": "Internal"})).await;
        let (status, _) = guest.get("/api/v1/spaces/internal-only").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = guest.get("/api/v1/spaces/internal-only/members").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for page in ["/admin/users", "/admin/spaces", "/spaces/internal-only"] {
            let r = client.get(app.url(page)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{page}");
        }
        let r = client.get(app.url("/spaces/partners")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn inviting_an_existing_persons_address_adds_them_at_once(db) {
        let (app, sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        app.create_person("jane.doe", "Jane", "Doe").await;
        api.post("/api/v1/spaces", json!({"name": "partners", "display_name": "Partners", "external_invitations": true})).await;
        let (status, body) = api.post("/api/v1/spaces/partners/invitations", json!({"email": "JANE.DOE@example.org"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["added"]["username"], "jane.doe");
        let (_, members) = api.get("/api/v1/spaces/partners/members").await;
        assert_eq!(members["members"][0]["username"], "jane.doe");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sink.received().is_empty(), "no registration email");
    }

    async fn pending_invitations_are_resent_with_a_new_link_or_revoked(db) {
        let (app, sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        api.post("/api/v1/spaces", json!({"name": "partners", "display_name": "Partners", "external_invitations": true})).await;
        let (_, inv) = api.post("/api/v1/spaces/partners/invitations", json!({"email": "guest@outside.example"})).await;
        let id = inv["id"].as_i64().unwrap();
        let first = register_link(&sink.wait_for(1, WAIT).await[0].data);
        app.advance(time::Duration::hours(25));
        let (_, invs) = api.get("/api/v1/spaces/partners/invitations").await;
        assert_eq!(invs["invitations"][0]["state"], "expired");
        let (status, inv) = api.post(&format!("/api/v1/spaces/partners/invitations/{id}/resend"), json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{inv}");
        assert_eq!(inv["state"], "pending");
        let second = register_link(&sink.wait_for(2, WAIT).await[1].data);
        assert_eq!(browser_client().get(&first).send().await.unwrap().status(), StatusCode::GONE);
        assert_eq!(browser_client().get(&second).send().await.unwrap().status(), StatusCode::OK);
        let (status, _) = api.delete(&format!("/api/v1/spaces/partners/invitations/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, invs) = api.get("/api/v1/spaces/partners/invitations").await;
        assert_eq!(invs["invitations"][0]["state"], "revoked");
        assert_eq!(browser_client().get(&second).send().await.unwrap().status(), StatusCode::GONE);
        let (status, _) = api.post(&format!("/api/v1/spaces/partners/invitations/{id}/resend"), json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    async fn managers_invite_only_where_the_space_allows_and_members_cannot(db) {
        let (app, _sink) = app_with_sink(db).await;
        let api = app.admin_api().await;
        api.post("/api/v1/spaces", json!({"name": "closed", "display_name": "Closed"})).await;
        api.post("/api/v1/spaces", json!({"name": "open", "display_name": "Open", "external_invitations": true})).await;
        let manager = Api::with_client(&app.base_url, app.member_client("mo.manager").await);
        let member = Api::with_client(&app.base_url, app.member_client("mem.ber").await);
        for space in ["closed", "open"] {
            api.send(api.request(reqwest::Method::PUT, &format!("/api/v1/spaces/{space}/members/mo.manager")).json(&json!({"role": "manager"}))).await;
            api.send(api.request(reqwest::Method::PUT, &format!("/api/v1/spaces/{space}/members/mem.ber")).json(&json!({"role": "member"}))).await;
        }
        let t = csrf_of(&manager).await;
        let (status, body) = manager.send(manager.request(reqwest::Method::POST, "/api/v1/spaces/closed/invitations").header("x-csrf-token", &t).json(&json!({"email": "x@outside.example"}))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "external_invitations_disabled");
        let (status, body) = manager.send(manager.request(reqwest::Method::POST, "/api/v1/spaces/open/invitations").header("x-csrf-token", &t).json(&json!({"email": "x@outside.example"}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let t = csrf_of(&member).await;
        let (status, _) = member.send(member.request(reqwest::Method::POST, "/api/v1/spaces/open/invitations").header("x-csrf-token", &t).json(&json!({"email": "y@outside.example"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = member.get("/api/v1/spaces/open/members").await;
        assert_eq!(status, StatusCode::OK, "members see who is in their space");
        let (status, _) = member.send(member.request(reqwest::Method::POST, "/api/v1/spaces").header("x-csrf-token", &t).json(&json!({"name": "mine", "display_name": "Mine"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}

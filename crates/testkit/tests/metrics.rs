//! `/metrics` on SQLite and PostgreSQL: absent unless `USHER_METRICS` is on; when on, served
//! without login, requests counted under their route's template, the domain's counts read at
//! scrape time, and nothing in it that names the people the requests were about.

use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_testkit::{on_both_backends, TestApp};

/// Someone whose name, username and email must never appear in the figures.
const USERNAME: &str = "zelda.quintero";
const EMAIL: &str = "zelda.quintero@example.org";

/// Fetches `/metrics` without credentials; returns the status, content type and body.
async fn scrape(app: &TestApp) -> (StatusCode, String, String) {
    let response = reqwest::get(app.url("/metrics")).await.expect("scrape");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// The value of the sample `series` (name and labels exactly as written), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().expect("a number"))
    })
}

fn expect_sample(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

on_both_backends! {
    async fn metrics_are_not_served_unless_enabled(db) {
        let app = TestApp::spawn(db).await;
        let (status, _, body) = scrape(&app).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let unknown = reqwest::get(app.url("/no-such-page")).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(body, unknown.text().await.unwrap(), "the fallback's own 404");
        assert!(!body.contains("usher_"), "{body}");
    }

    async fn metrics_count_requests_by_route_template_and_name_nobody(db) {
        let app = TestApp::spawn_with(db, |c| c.metrics = true).await;
        let api = app.admin_api().await;
        let (status, created) = api
            .post("/api/v1/users", json!({
                "username": USERNAME, "first_name": "Zelda", "last_name": "Quintero",
                "email": EMAIL,
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        app.create_person("other.person", "Other", "Person").await;

        let (status, body) = api.get(&format!("/api/v1/users/{USERNAME}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], EMAIL);
        let (status, _) = api.get("/api/v1/users/nobody.here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api.get(&format!("/api/v1/no-such-endpoint/{USERNAME}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A search brings this node's index up to date with the people written.
        let (status, list) = api.get("/api/v1/users?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["total"], 3, "{list}");
        let (status, body) = api
            .post(&format!("/api/v1/users/{USERNAME}/invitation"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // An import waits as a queued job: no import worker runs in these tests.
        let (status, job) = api
            .send(
                api.request(Method::POST, "/api/v1/imports")
                    .header("content-type", "text/csv")
                    .body("userName,firstName,lastName,password,email\n\
                           yannick.xavier,Yannick,Xavier,,yannick.xavier@example.org\n"),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");

        let (status, content_type, body) = scrape(&app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");

        let user_route = r#"method="GET",route="/api/v1/users/{username}""#;
        assert_eq!(
            expect_sample(&body, &format!("usher_http_requests_total{{{user_route},status=\"200\"}}")),
            1.0
        );
        assert_eq!(
            expect_sample(&body, &format!("usher_http_requests_total{{{user_route},status=\"404\"}}")),
            1.0
        );
        assert_eq!(
            expect_sample(&body, &format!("usher_http_request_duration_seconds_count{{{user_route}}}")),
            2.0
        );
        assert_eq!(
            expect_sample(
                &body,
                &format!("usher_http_request_duration_seconds_bucket{{{user_route},le=\"+Inf\"}}")
            ),
            2.0
        );
        assert_eq!(
            expect_sample(
                &body,
                r#"usher_http_requests_total{method="POST",route="/api/v1/users",status="201"}"#
            ),
            2.0
        );
        assert_eq!(
            expect_sample(
                &body,
                r#"usher_http_requests_total{method="GET",route="unmatched",status="404"}"#
            ),
            1.0
        );
        assert!(body.contains("# TYPE usher_http_requests_total counter"), "{body}");
        assert!(body.contains("# TYPE usher_http_request_duration_seconds histogram"), "{body}");

        // The domain's counts: admin and the two people created (the import has not run).
        let people = app.usher.store.count_people().await.unwrap();
        assert_eq!(people, 3);
        assert_eq!(expect_sample(&body, "usher_people"), people as f64);
        assert_eq!(expect_sample(&body, "usher_search_index_people"), 3.0);
        assert_eq!(expect_sample(&body, r#"usher_import_jobs{state="queued"}"#), 1.0);
        assert_eq!(expect_sample(&body, r#"usher_import_jobs{state="done"}"#), 0.0);
        let outbox: f64 = ["queued", "sent", "failed"]
            .iter()
            .map(|s| expect_sample(&body, &format!("usher_outbox_messages{{state=\"{s}\"}}")))
            .sum();
        assert_eq!(outbox, 1.0, "the one invitation:\n{body}");
        assert_eq!(expect_sample(&body, "usher_store_up"), 1.0);
        assert_eq!(
            expect_sample(
                &body,
                &format!("usher_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))
            ),
            1.0
        );
        assert!(expect_sample(&body, "usher_uptime_seconds") >= 0.0);
        if cfg!(target_os = "linux") {
            assert!(expect_sample(&body, "process_resident_memory_bytes") > 1e6);
        }

        // Nothing about anyone: no username, name or email, not even the ones only in paths.
        let lower = body.to_lowercase();
        for personal in [
            USERNAME, EMAIL, "zelda", "quintero", "nobody.here", "other.person", "yannick",
            "example.org",
        ] {
            assert!(!lower.contains(personal), "{personal} appears in:\n{body}");
        }
        // Every sample line is `name{labels} value` or `name value`, announced by its family.
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| body.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert!(body.contains(&format!("# HELP {family} ")), "no HELP for {line}");
            assert!(body.contains(&format!("# TYPE {family} ")), "no TYPE for {line}");
        }

        // The scrape itself is counted by the next one.
        let (_, _, again) = scrape(&app).await;
        assert_eq!(
            expect_sample(
                &again,
                r#"usher_http_requests_total{method="GET",route="/metrics",status="200"}"#
            ),
            1.0
        );
    }
}

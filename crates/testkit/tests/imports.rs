//! CSV import (product §6) end to end on SQLite and PostgreSQL: files submitted through
//! `POST /api/v1/imports`, jobs run by the same code as the worker (run here in the test's
//! task, so that nothing races), reports read back through the API.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;
use time::Duration;
use usher_core::audit::AuditFilter;
use usher_core::import::{ImportCounts, ImportState};
use usher_core::service::{RunOptions, RunOutcome};
use usher_server::imports::{run_pending_imports, spawn_import_worker, ImportWorkerOptions};

use usher_testkit::{on_both_backends, Api, TestApp, TestBackend};

const MEEDS_HEADER: &str = "userName,firstName,lastName,password,email";
const LEASE: Duration = Duration::minutes(2);

/// Small steps, so that a few rows make several of them.
fn options(batch_size: usize) -> RunOptions {
    RunOptions {
        batch_size: Some(batch_size),
        ..RunOptions::default()
    }
}

async fn submit_as(
    api: &Api,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    api.send(
        api.request(Method::POST, &format!("/api/v1/imports{query}"))
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

/// Submits `csv` as `text/csv` and returns the 202 body.
async fn submit(app: &TestApp, csv: &str) -> Value {
    let api = app.admin_api().await;
    let (status, body) = submit_as(&api, "", "text/csv", csv.as_bytes().to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

/// Runs the waiting jobs to their end, as the worker would.
async fn run(app: &TestApp) {
    run_pending_imports(&app.usher, "test-node", LEASE, options(3))
        .await
        .expect("imports run");
}

/// Submits, runs, and returns the job as the API shows it.
async fn import(app: &TestApp, csv: &str) -> Value {
    let job = submit(app, csv).await;
    run(app).await;
    job_json(app, job["id"].as_i64().unwrap()).await
}

async fn job_json(app: &TestApp, id: i64) -> Value {
    let (status, body) = app
        .admin_api()
        .await
        .get(&format!("/api/v1/imports/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The report's lines, header first.
async fn report(app: &TestApp, id: i64) -> Vec<String> {
    let api = app.admin_api().await;
    let response = api
        .request(Method::GET, &format!("/api/v1/imports/{id}/report.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = response.text().await.unwrap();
    text.split_terminator("\r\n").map(str::to_owned).collect()
}

/// `(line, field, code)` of every report line but the header.
async fn issues(app: &TestApp, id: i64) -> Vec<(String, String, String)> {
    report(app, id)
        .await
        .iter()
        .skip(1)
        .map(|l| {
            let cells = csv_cells(l);
            (cells[0].clone(), cells[2].clone(), cells[4].clone())
        })
        .collect()
}

fn csv_cells(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    reader
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect()
}

fn counts(job: &Value) -> [u64; 7] {
    [
        "rows",
        "processed",
        "created",
        "updated",
        "unchanged",
        "failed",
        "warnings",
    ]
    .map(|k| job[k].as_u64().unwrap_or_else(|| panic!("{k} in {job}")))
}

async fn user(app: &TestApp, username: &str) -> Value {
    let (status, body) = app
        .admin_api()
        .await
        .get(&format!("/api/v1/users/{username}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{username}: {body}");
    body
}

async fn roles(app: &TestApp, username: &str) -> Vec<(String, String)> {
    let (_, body) = app
        .admin_api()
        .await
        .get(&format!("/api/v1/users/{username}/roles"))
        .await;
    body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap().to_owned(),
                r["group"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn people_count(app: &TestApp) -> u64 {
    let (_, body) = app.admin_api().await.get("/api/v1/users?limit=1").await;
    body["total"].as_u64().unwrap()
}

async fn audit_count(app: &TestApp, action: &str) -> u64 {
    app.usher
        .store
        .audit_entries(&AuditFilter {
            action: Some(action.into()),
            limit: 1,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .total
}

/// `n` rows `person.N`, without passwords.
fn generated(n: usize) -> String {
    let mut csv = format!("{MEEDS_HEADER}\n");
    for i in 0..n {
        let name = letters(i);
        csv.push_str(&format!(
            "person.{i},First{name},Last{name},,person.{i}@example.test\n"
        ));
    }
    csv
}

/// A name part made of letters only (names hold no digits).
fn letters(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return s;
        }
    }
}

on_both_backends! {
    async fn a_meeds_file_with_crlf_imports_unchanged_and_new_people_join_the_users_group(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!(
            "{MEEDS_HEADER}\r\njohn.doe,John,Doe,,john.doe@example.org\r\nJane.Roe,Jane,Roe,,jane.roe@example.org\r\n"
        );
        let submitted = submit(&app, &csv).await;
        assert_eq!(submitted["state"], "queued");
        assert_eq!(submitted["rows"], 2);
        assert_eq!(submitted["processed"], 0);
        run(&app).await;
        let job = job_json(&app, submitted["id"].as_i64().unwrap()).await;

        assert_eq!(job["state"], "done");
        assert_eq!(counts(&job), [2, 2, 2, 0, 0, 0, 0]);
        assert!(job["started_at"].is_string() && job["finished_at"].is_string());
        let jane = user(&app, "jane.roe").await;
        assert_eq!(jane["email"], "jane.roe@example.org");
        assert_eq!(jane["type"], "internal");
        assert_eq!(jane["enrollment"], "invite");
        assert_eq!(roles(&app, "john.doe").await, [("member".to_owned(), "/platform/users".to_owned())]);
        assert_eq!(report(&app, job["id"].as_i64().unwrap()).await, ["line,username,field,severity,code,message"]);
    }

    async fn quoted_cells_keep_their_commas_quotes_and_newlines_and_lines_count_physically(db) {
        let app = TestApp::spawn(db).await;
        let csv = "userName,firstName,lastName,email,company,aboutMe\n\
                   ann.lee,Ann,Lee,ann@example.org,\"Lee, Lee & \"\"Sons\"\"\",\"Line one\nline two\"\n\
                   x,Bad,Row,bad@example.org,,\n";
        let job = import(&app, csv).await;
        assert_eq!(counts(&job), [2, 2, 1, 0, 0, 1, 0]);
        let ann = user(&app, "ann.lee").await;
        assert_eq!(ann["profile"]["organization"], "Lee, Lee & \"Sons\"");
        assert_eq!(ann["profile"]["about_me"], "Line one\nline two");
        assert_eq!(
            issues(&app, job["id"].as_i64().unwrap()).await,
            [("4".to_owned(), "userName".to_owned(), "too_short".to_owned())],
            "the bad row starts on line 4, after a record spanning lines 2 and 3"
        );
    }

    async fn a_semicolon_file_with_a_bom_snake_case_headers_and_padded_cells_imports(db) {
        let app = TestApp::spawn(db).await;
        let csv = "\u{feff}USER_NAME ; first_name;Last Name;EMAIL;time_zone\n  zoe.kim ; Zoé ;Kim ; zoe@example.org ;Europe/Paris\n";
        let job = import(&app, csv).await;
        assert_eq!(counts(&job), [1, 1, 1, 0, 0, 0, 0], "{job}");
        let zoe = user(&app, "zoe.kim").await;
        assert_eq!(zoe["first_name"], "Zoé");
        assert_eq!(zoe["profile"]["time_zone"], "Europe/Paris");
    }

    async fn each_file_level_problem_is_refused_with_its_code_and_changes_nothing(db) {
        let app = TestApp::spawn_with(db, |c| c.import_max_bytes = 200).await;
        let api = app.admin_api().await;
        let cases: [(&[u8], StatusCode, &str); 6] = [
            (b"", StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
            (b"userName,firstName,lastName,email\r\n", StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
            (b"userName,firstName,lastName,email\njos\xE9,Jos\xE9,Doe,j@example.org\n", StatusCode::UNPROCESSABLE_ENTITY, "not_utf8"),
            (b"john.doe,John,Doe,john@example.org\n", StatusCode::UNPROCESSABLE_ENTITY, "no_header"),
            (b"userName,firstName,email\njohn.doe,John,john@example.org\n", StatusCode::UNPROCESSABLE_ENTITY, "missing_column"),
            (&[b'a'; 201], StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ];
        for (body, status, code) in cases {
            let (got, answer) = submit_as(&api, "", "text/csv", body.to_vec()).await;
            assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{answer}");
            assert!(answer["error"]["message"].as_str().unwrap().len() > 10);
        }
        let (got, answer) = submit_as(&api, "", "application/json", b"{}".to_vec()).await;
        assert_eq!(got, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
        assert_eq!(people_count(&app).await, 1, "only the super user");
        let (_, list) = api.get("/api/v1/imports").await;
        assert_eq!(list["total"], 0, "no job was kept: {list}");
    }

    async fn a_multipart_upload_is_accepted_with_its_file_name(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let boundary = "XyZ-boundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"staff.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n{MEEDS_HEADER}\r\nmary.major,Mary,Major,,mary@example.org\r\n\r\n--{boundary}--\r\n"
        );
        let (status, job) = submit_as(
            &api,
            "?dry_run=false",
            &format!("multipart/form-data; boundary={boundary}"),
            body.into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        assert_eq!(job["file_name"], "staff.csv");
        run(&app).await;
        user(&app, "mary.major").await;
    }

    async fn a_new_username_with_an_email_of_another_account_is_an_error(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("owner.one", "Owner", "One").await;
        let job = import(&app, &format!("{MEEDS_HEADER}\nnew.person,New,Person,,OWNER.ONE@example.org\n")).await;
        assert_eq!(counts(&job), [1, 1, 0, 0, 0, 1, 0]);
        assert_eq!(
            issues(&app, job["id"].as_i64().unwrap()).await,
            [("2".to_owned(), "email".to_owned(), "email_taken".to_owned())]
        );
    }

    async fn an_existing_username_whose_new_email_belongs_to_another_account_is_an_error(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("alice.a", "Alice", "Able").await;
        app.create_person("bob.b", "Bob", "Baker").await;
        let job = import(&app, &format!("{MEEDS_HEADER}\nalice.a,,,,bob.b@example.org\n")).await;
        assert_eq!(counts(&job), [1, 1, 0, 0, 0, 1, 0]);
        assert_eq!(issues(&app, job["id"].as_i64().unwrap()).await[0].2, "email_taken");
        assert_eq!(user(&app, "alice.a").await["email"], "alice.a@example.org");
    }

    async fn the_same_username_or_email_twice_in_a_file_fails_the_later_row(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!(
            "{MEEDS_HEADER}\nsam.one,Sam,One,,sam@example.org\nsam.two,Sam,Two,,SAM@example.org\n\
             SAM.ONE,Sam,Again,,other@example.org\n"
        );
        let job = import(&app, &csv).await;
        assert_eq!(counts(&job), [3, 3, 1, 0, 0, 2, 0]);
        assert_eq!(
            issues(&app, job["id"].as_i64().unwrap()).await,
            [
                ("3".to_owned(), "email".to_owned(), "duplicate_email".to_owned()),
                ("4".to_owned(), "userName".to_owned(), "duplicate_username".to_owned()),
            ]
        );
        assert_eq!(user(&app, "sam.one").await["last_name"], "One");
    }

    async fn every_error_of_a_row_is_reported_and_a_bad_row_never_stops_the_others(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!(
            "{MEEDS_HEADER},enabled\ngood.one,Good,One,,g1@example.org,\nx,J4ne,,short,not-an-email,perhaps\ngood.two,Good,Two,,g2@example.org,false\n"
        );
        let job = import(&app, &csv).await;
        assert_eq!(counts(&job), [3, 3, 2, 0, 0, 1, 0]);
        let codes: Vec<(String, String)> = issues(&app, job["id"].as_i64().unwrap())
            .await
            .into_iter()
            .map(|(_, field, code)| (field, code))
            .collect();
        for expected in [
            ("userName", "too_short"),
            ("firstName", "invalid_characters"),
            ("email", "invalid_email"),
            ("enabled", "invalid_boolean"),
        ] {
            assert!(codes.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {codes:?}");
        }
        assert_eq!(user(&app, "good.two").await["enabled"], false);
    }

    async fn on_update_the_password_is_ignored_empty_cells_keep_values_and_groups_only_add(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let (status, _) = api
            .post("/api/v1/users", serde_json::json!({
                "username": "kept.person", "first_name": "Kept", "last_name": "Person",
                "email": "kept@example.org", "profile": { "position": "Engineer", "phone": "123" },
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let csv = "userName,firstName,lastName,password,email,position,phone,groups\n\
                   kept.person,,Renamed,a-brand-new-password,,,456,\"manager:/platform/users;member:/platform/administrators;member:/platform/externals;boss:/platform/users;member:/spaces/nowhere\"\n";
        let job = import(&app, csv).await;

        assert_eq!(counts(&job), [1, 1, 0, 1, 0, 0, 4], "{job}");
        let kept = user(&app, "kept.person").await;
        assert_eq!(kept["first_name"], "Kept");
        assert_eq!(kept["last_name"], "Renamed");
        assert_eq!(kept["email"], "kept@example.org");
        assert_eq!(kept["profile"]["position"], "Engineer");
        assert_eq!(kept["profile"]["phone"], "456");
        assert_eq!(kept["type"], "internal", "an import never makes anyone external");
        let mut got = roles(&app, "kept.person").await;
        got.sort();
        assert_eq!(got, [
            ("member".to_owned(), "/platform/administrators".to_owned()),
            ("member".to_owned(), "/platform/users".to_owned()),
        ], "memberships are added; the existing role is kept");
        let mut warnings: Vec<String> = issues(&app, job["id"].as_i64().unwrap()).await.into_iter().map(|i| i.2).collect();
        warnings.sort();
        assert_eq!(warnings, ["externals_skipped", "membership_kept", "unknown_group", "unknown_role"]);
        // The password column was ignored: nobody can log in with it.
        let client = usher_testkit::browser_client();
        let (status, _) = app.login(&client, "kept.person", "a-brand-new-password").await;
        assert_ne!(status, StatusCode::SEE_OTHER);
    }

    async fn unknown_columns_are_one_warning_for_the_whole_file(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!("{MEEDS_HEADER},shoeSize,hatSize\na.b.c,Abc,Def,,abc@example.org,42,7\nd.e.f,Def,Ghi,,def@example.org,43,8\n");
        let job = import(&app, &csv).await;
        assert_eq!(counts(&job), [2, 2, 2, 0, 0, 0, 1]);
        let lines = report(&app, job["id"].as_i64().unwrap()).await;
        assert_eq!(lines.len(), 2);
        let cells = csv_cells(&lines[1]);
        assert_eq!(&cells[..5], ["1", "", "shoeSize, hatSize", "warning", "unknown_column"]);
    }

    async fn the_report_has_its_columns_and_neutralises_formulas(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!("{MEEDS_HEADER}\n=HYPERLINK(\"x\"),Evil,Cell,,evil@example.org\n");
        let job = import(&app, &csv).await;
        let lines = report(&app, job["id"].as_i64().unwrap()).await;
        assert_eq!(lines[0], "line,username,field,severity,code,message");
        let cells = csv_cells(&lines[1]);
        assert_eq!(cells[0], "2");
        assert!(cells[1].starts_with("'="), "a formula becomes text: {cells:?}");
        assert_eq!((cells[2].as_str(), cells[3].as_str()), ("userName", "error"));
        assert_eq!(cells[4], "invalid_format");
        assert!(!cells[5].is_empty());
    }

    async fn a_dry_run_checks_everything_and_writes_nothing(db) {
        let app = TestApp::spawn(db).await;
        app.create_person("owner.one", "Owner", "One").await;
        let api = app.admin_api().await;
        let csv = format!("{MEEDS_HEADER}\nnew.one,New,One,,new@example.org\nnew.two,New,Two,,owner.one@example.org\nowner.one,Owner,Renamed,,\n");
        let (status, job) = submit_as(&api, "?dry_run=true", "text/csv", csv.into_bytes()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(job["dry_run"], true);
        run(&app).await;
        let job = job_json(&app, job["id"].as_i64().unwrap()).await;
        assert_eq!(counts(&job), [3, 3, 1, 1, 0, 1, 0], "what would happen: {job}");
        assert_eq!(issues(&app, job["id"].as_i64().unwrap()).await[0].2, "email_taken");
        assert_eq!(people_count(&app).await, 2, "nobody was created");
        assert_eq!(user(&app, "owner.one").await["last_name"], "One", "nobody was changed");
        assert_eq!(audit_count(&app, "user.update").await, 0);
    }

    async fn importing_the_same_file_twice_changes_nothing_the_second_time(db) {
        let app = TestApp::spawn(db).await;
        let csv = format!(
            "{MEEDS_HEADER},groups,enabled,onboardUser,company\n\
             same.one,Same,One,a-temporary-passphrase,same1@example.org,member:/platform/administrators,true,true,Acme\n\
             same.two,Same,Two,,same2@example.org,,false,true,\n"
        );
        let first = import(&app, &csv).await;
        assert_eq!(counts(&first), [2, 2, 2, 0, 0, 0, 1], "onboarding a disabled account warns");
        let invited_at = user(&app, "same.one").await["invited_at"].clone();
        assert!(invited_at.is_string(), "onboardUser invites");
        let audit_before = audit_count(&app, "user.create").await + audit_count(&app, "user.update").await;

        let second = import(&app, &csv).await;

        assert_eq!(counts(&second), [2, 2, 0, 0, 2, 0, 1]);
        assert_eq!(user(&app, "same.one").await["invited_at"], invited_at, "no second invitation");
        assert_eq!(audit_count(&app, "user.create").await + audit_count(&app, "user.update").await, audit_before);
        assert_eq!(audit_count(&app, "user.invite").await, 1);
    }

    async fn passwords_from_the_file_are_temporary(db) {
        let app = TestApp::spawn(db).await;
        import(&app, &format!("{MEEDS_HEADER}\ntemp.pw,Temp,Password,a-temporary-passphrase,temp@example.org\n")).await;
        let client = usher_testkit::browser_client();
        let (status, location) = app.login(&client, "temp.pw", "a-temporary-passphrase").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/me/password"), "set by someone else: to be changed");
    }

    async fn a_job_interrupted_mid_file_resumes_after_its_last_step_and_applies_no_row_twice(db) {
        let app = TestApp::spawn(db).await;
        let rows = 11;
        let job = submit(&app, &generated(rows)).await;
        let id = job["id"].as_i64().unwrap();

        // A worker that dies after two steps of three rows: nothing finishes, the lease stays.
        let (claimed, lease) = app.usher.claim_import("node-a", LEASE, false).await.unwrap().unwrap();
        let outcome = app
            .usher
            .run_import(claimed, lease, RunOptions { stop_after_steps: Some(2), ..options(3) })
            .await
            .unwrap();
        assert!(matches!(outcome, RunOutcome::Stopped));
        let halfway = job_json(&app, id).await;
        assert_eq!((halfway["state"].as_str(), halfway["processed"].as_u64()), (Some("running"), Some(6)));
        assert_eq!(people_count(&app).await, 1 + 6);

        // Another node cannot take it while the lease holds; it can once it ran out.
        assert!(app.usher.claim_import("node-b", LEASE, false).await.unwrap().is_none());
        app.clock.advance(LEASE + Duration::seconds(1));
        let ended = run_pending_imports(&app.usher, "node-b", LEASE, options(3)).await.unwrap();

        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].state, ImportState::Done);
        let job = job_json(&app, id).await;
        assert_eq!(counts(&job), [11, 11, 11, 0, 0, 0, 0]);
        assert_eq!(people_count(&app).await, 1 + 11);
        assert_eq!(audit_count(&app, "user.create").await, 1 + 11, "one entry per person: no row applied twice");
    }

    async fn a_batch_of_passwords_commits_each_step_while_the_next_ones_hash(db) {
        let app = TestApp::spawn(db).await;
        let rows = 12;
        let mut csv = format!("{MEEDS_HEADER}\n");
        for i in 0..rows {
            let name = letters(i);
            csv.push_str(&format!("person.{i},First{name},Last{name},Vx7-{name}-Kq9-Lm,person.{i}@example.test\n"));
        }
        submit(&app, &csv).await;
        let (job, lease) = app.usher.claim_import("node-a", LEASE, false).await.unwrap().unwrap();
        // One batch of twelve rows, one password a step: twelve steps of one hash each.
        let (progress, mut committed) = tokio::sync::watch::channel(ImportCounts::default());
        let options = RunOptions {
            batch_size: Some(100),
            password_batch: 1,
            progress: Some(progress),
            ..RunOptions::default()
        };
        let usher = app.usher.clone();
        let running = tokio::spawn(async move { usher.run_import(job, lease, options).await });

        // Once the first step has committed, the clock moves: the rows planned from then on
        // are created at the later time. The last row is planned nine hashes later at least
        // (the planner is never more than two steps ahead); had the batch been planned whole
        // before its first step, it would carry the earlier time.
        committed.wait_for(|c| c.processed >= 1).await.unwrap();
        app.clock.advance(Duration::seconds(30));
        let outcome = running.await.unwrap().unwrap();

        assert!(matches!(outcome, RunOutcome::Finished(_)), "{outcome:?}");
        let created_at = |person: &Value| {
            let text = person["created_at"].as_str().unwrap().to_owned();
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let first = created_at(&user(&app, "person.0").await);
        let last = created_at(&user(&app, &format!("person.{}", rows - 1)).await);
        assert_eq!(last - first, Duration::seconds(30));
    }

    async fn a_restarted_worker_takes_its_job_back_once_the_dead_run_lets_go_of_it(db) {
        let app = TestApp::spawn(db).await;
        let job = submit(&app, &generated(5)).await;
        let id = job["id"].as_i64().unwrap();
        // The run before the restart claimed it, and died: its lease holds for two minutes.
        app.usher.claim_import("this-node", LEASE, false).await.unwrap().unwrap();
        // On PostgreSQL its last transaction may still lock the job's row when the node is
        // back, so that the first look skips the job.
        let mut lock = None;
        if app.db.backend == TestBackend::Postgres {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT id FROM import_jobs WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
            lock = Some(conn);
        }

        let worker = spawn_import_worker(
            app.usher.clone(),
            ImportWorkerOptions {
                poll_interval: std::time::Duration::from_millis(50),
                run: options(2),
                ..ImportWorkerOptions::for_node("this-node".into())
            },
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if let Some(mut conn) = lock {
            sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        }

        // The clock does not move: only taking its own job back can finish it.
        let mut state = String::new();
        for _ in 0..200 {
            state = job_json(&app, id).await["state"].as_str().unwrap().to_owned();
            if state == "done" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        worker.shutdown().await;
        assert_eq!(state, "done");
        assert_eq!(people_count(&app).await, 1 + 5);
    }

    async fn a_worker_that_lost_its_job_cannot_commit_to_it(db) {
        let app = TestApp::spawn(db).await;
        submit(&app, &generated(4)).await;
        let (job_a, lease_a) = app.usher.claim_import("node-a", LEASE, false).await.unwrap().unwrap();
        app.clock.advance(LEASE + Duration::seconds(1));
        let (job_b, lease_b) = app.usher.claim_import("node-b", LEASE, false).await.unwrap().unwrap();
        let done = app.usher.run_import(job_b, lease_b, options(2)).await.unwrap();
        assert!(matches!(done, RunOutcome::Finished(_)));

        let late = app.usher.run_import(job_a, lease_a, options(2)).await.unwrap();

        assert!(matches!(late, RunOutcome::LeaseLost), "{late:?}");
        assert_eq!(people_count(&app).await, 1 + 4);
    }

    async fn a_restarted_node_takes_its_own_job_back_at_once(db) {
        let app = TestApp::spawn(db).await;
        submit(&app, &generated(5)).await;
        let (job, lease) = app.usher.claim_import("this-node", LEASE, false).await.unwrap().unwrap();
        app.usher
            .run_import(job, lease, RunOptions { stop_after_steps: Some(1), ..options(2) })
            .await
            .unwrap();
        // Restarted: the lease has not run out, but the job is its own.
        let ended = run_pending_imports(&app.usher, "this-node", LEASE, options(2)).await.unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].counts.created, 5);
        assert_eq!(ended[0].attempts, 2);
    }

    async fn jobs_are_listed_newest_first_and_unknown_ones_are_not_found(db) {
        let app = TestApp::spawn(db).await;
        let first = import(&app, &generated(1)).await;
        let second = import(&app, &format!("{MEEDS_HEADER}\nother.one,Other,One,,other@example.org\n")).await;
        let api = app.admin_api().await;
        let (status, list) = api.get("/api/v1/imports?limit=10").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["total"], 2);
        assert_eq!(list["imports"][0]["id"], second["id"]);
        assert_eq!(list["imports"][1]["id"], first["id"]);
        assert_eq!(list["imports"][0]["submitted_by"], "admin");
        assert_eq!(api.get("/api/v1/imports/999999").await.0, StatusCode::NOT_FOUND);
        assert_eq!(api.get("/api/v1/imports/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(audit_count(&app, "import.submit").await, 2);
        assert_eq!(audit_count(&app, "import.finish").await, 2);
    }

    async fn the_template_is_the_meeds_header_and_imports_are_for_administrators(db) {
        let app = TestApp::spawn(db).await;
        let api = app.admin_api().await;
        let response = api.request(Method::GET, "/api/v1/imports/template.csv").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
        let text = response.text().await.unwrap();
        assert!(text.starts_with("userName,firstName,lastName,password,email,groups,enabled,onboardUser,"));
        assert!(text.ends_with("\r\n"));

        let member = Api::with_client(&app.base_url, app.member_client("plain.member").await);
        assert_eq!(member.get("/api/v1/imports").await.0, StatusCode::FORBIDDEN);
        let anonymous = app.anonymous_api();
        let (status, _) = submit_as(&anonymous, "", "text/csv", generated(1).into_bytes()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

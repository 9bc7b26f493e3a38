//! Invitations and mass actions in a real browser (see `browser_support` for the driver): an
//! invitation followed from the admin's envelope click, through a real SMTP conversation, to
//! the invited person's first page; the detail page's enrollment and delivery; refusals said
//! on the page; people selected on the list and disabled with each skip explained; a large
//! selection followed as a job. Screenshots of the new pages go to the temporary directory
//! (`usher-mass-*.png`).

#[macro_use]
mod browser_support;

use browser_support::*;
use mail_parser::MessageParser;
use serde_json::Value;
use usher_core::clock::Clock;
use usher_core::store::JobRecord;
use usher_store::Pool;
use usher_testkit::smtp::{Received, SmtpSink};

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The subject and the `/join/` link of an invitation.
fn join_link(received: &Received) -> (String, String) {
    let message = MessageParser::default()
        .parse(&received.data)
        .expect("a message");
    let subject = message.subject().unwrap_or_default().to_owned();
    let text = message.body_text(0).unwrap_or_default().into_owned();
    let start = text
        .find("/join/")
        .unwrap_or_else(|| panic!("no /join/ link in:\n{text}"));
    let from = text[..start].rfind("http").expect("an absolute link");
    let link = text[from..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ',', '>', ')'])
        .to_owned();
    (subject, link)
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    find(c, css).await.attr(name).await.expect("an attribute")
}

async fn prop(c: &Client, css: &str, name: &str) -> Option<String> {
    find(c, css).await.prop(name).await.expect("a property")
}

async fn absent(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.is_err()
}

/// Ticks a person's box on the list.
async fn tick(c: &Client, username: &str) {
    click(
        c,
        &format!("tr[data-username='{username}'] input[name=usernames]"),
    )
    .await;
}

/// Inserts `n` people `bulk.N` straight into the SQLite store, fast.
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
            sqlx::query(&sql).execute(p).await.expect("insert people");
        }
        Pool::Postgres(_) => unreachable!("the browser tests run on SQLite"),
    }
}

async fn api_user(app: &TestApp, username: &str) -> Value {
    let (status, body) = app
        .admin_api()
        .await
        .get(&format!("/api/v1/users/{username}"))
        .await;
    assert!(status.is_success(), "{body}");
    body
}

async fn enable_by_api(app: &TestApp, username: &str) {
    let (status, body) = app
        .admin_api()
        .await
        .patch(
            &format!("/api/v1/users/{username}"),
            json!({ "enabled": true }),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

// ------------------------------------------------------------------------------------------
// Invitations
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_is_followed_from_the_envelope_to_the_invited_persons_first_page() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    browser_test_with(
        move |config| config.smtp_url = Some(url),
        move |ctx| async move {
            let c = &ctx.c;
            ctx.app.create_person("jane.doe", "Jane", "Doe").await;
            log_in_as_admin(&ctx).await;
            wait_for_rows(c, &["admin", "jane.doe"]).await;
            let row = "tr[data-username='jane.doe']";
            let envelope = format!("{row} form.invite-form button");
            assert_eq!(
                text_of(c, &format!("{row} .badge[class*=enroll-]")).await,
                "Not invited"
            );
            assert_eq!(
                attr(c, &envelope, "title").await.as_deref(),
                Some("Send invitation")
            );
            assert!(
                absent(c, "tr[data-username=admin] form.invite-form").await,
                "no envelope for someone who has connected"
            );

            // The envelope: back on the list, with a notice naming the person.
            click(c, &envelope).await;
            wait_for_path(c, "/admin/users?notice=invited").await;
            assert_eq!(
                text_of(c, ".alert.notice").await,
                "Invitation sent to Jane Doe (jane.doe@example.org)."
            );
            let badge = text_of(c, &format!("{row} .badge.enroll-reinvite")).await;
            assert!(badge.starts_with("Invited · "), "{badge}");

            // The message went out over SMTP, and the row says so once the worker is done.
            let received = sink.wait_for(1, TIMEOUT).await;
            assert_eq!(received[0].recipients, vec!["jane.doe@example.org"]);
            let (subject, link) = join_link(&received[0]);
            assert_eq!(subject, "Join Usher");
            assert!(link.starts_with(&ctx.app.url("/join/")), "{link}");
            eventually!("the sent badge", {
                c.goto(&ctx.app.url("/admin/users"))
                    .await
                    .expect("reload the list");
                try_text(c, &format!("{row} .badge.enroll-reinvite"))
                    .await
                    .is_some_and(|t| t == "Invited · sent")
            });
            assert_eq!(
                attr(c, &envelope, "title").await.as_deref(),
                Some("Resend invitation (invited on 2026-11-24)")
            );

            // Jane, in a browser of her own (no admin cookie), follows the link.
            c.delete_all_cookies().await.expect("forget the admin");
            c.goto(&link).await.expect("open the link");
            assert_eq!(value_of(c, "input[name=username]").await, "jane.doe");
            fill(c, "input[name=password]", "jane-chose-this-passphrase").await;
            fill(
                c,
                "input[name=password_confirmation]",
                "jane-chose-this-passphrase",
            )
            .await;
            click(c, "main form button[type=submit]").await;
            wait_for_path(c, "/me").await;
            assert_eq!(text_of(c, "main h1").await, "Jane Doe");
            assert_eq!(text_of(c, "nav a[aria-current=page]").await, "jane.doe");
            assert!(
                absent(c, "nav a[href='/admin/users']").await,
                "Jane is no administrator"
            );

            // Back as the admin: Jane has joined, and nothing is left to send.
            c.delete_all_cookies().await.expect("forget Jane");
            log_in_as_admin(&ctx).await;
            assert_eq!(
                text_of(c, &format!("{row} .badge.enroll-accepted")).await,
                "Joined"
            );
            assert!(absent(c, &envelope).await, "no envelope once joined");
            click(c, &format!("{row} a.person-link")).await;
            wait_for_path(c, "/admin/users/jane.doe").await;
            let enrollment = text_of(c, "#enrollment").await;
            for part in [
                "Joined",
                "Invited 2026-11-24 09:00",
                "Joined 2026-11-24 09:00",
            ] {
                assert!(enrollment.contains(part), "{part} in {enrollment}");
            }
            assert!(text_of(c, "#delivery").await.starts_with("Sent"));
            assert!(absent(c, "#invite-button").await);
        },
    )
    .await;
}

#[tokio::test]
async fn the_detail_page_invites_shows_the_delivery_and_says_a_refusal_in_place() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        log_in_as_admin(&ctx).await;

        // Created with "Invite now" ticked: invited at once.
        c.goto(&ctx.app.url("/admin/users/new"))
            .await
            .expect("open");
        fill(c, "#first_name", "Ruth").await;
        fill(c, "#last_name", "Okafor").await;
        fill(c, "#username", "ruth.okafor").await;
        fill(c, "#email", "ruth@example.org").await;
        fill(c, "#password", "a-temporary-passphrase").await;
        fill(c, "#password_confirmation", "a-temporary-passphrase").await;
        click(c, "#invite").await;
        click(c, "form[data-suggest-username] button[type=submit]").await;
        wait_for_path(c, "/admin/users/ruth.okafor?notice=created_invited").await;
        assert!(text_of(c, ".alert.notice")
            .await
            .contains("an invitation sent"));
        assert!(text_of(c, "#enrollment")
            .await
            .contains("Invited 2026-11-24 09:00"));
        find(c, "#delivery").await;
        assert_eq!(text_of(c, "#invite-button").await, "Resend invitation");
        let invited = api_user(&ctx.app, "ruth.okafor").await;
        assert_eq!(invited["enrollment"], "reinvite");

        // Without SMTP the message is written to a file: sent, at the first try.
        eventually!("the delivery", {
            c.refresh().await.expect("reload");
            try_text(c, "#delivery")
                .await
                .is_some_and(|t| t.starts_with("Sent"))
        });
        assert!(text_of(c, "#delivery").await.contains("after 1 try"));

        // Resend from the page.
        click(c, "#invite-button").await;
        wait_for_path(c, "/admin/users/ruth.okafor?notice=invited").await;
        assert_eq!(
            text_of(c, ".alert.notice").await,
            "Invitation sent to ruth@example.org."
        );

        // A page that went stale: disabled meanwhile, the server refuses; the page says why.
        disable_by_api(&ctx.app, "ruth.okafor").await;
        click(c, "#invite-button").await;
        eventually!("the refusal", {
            try_text(c, ".alert.error")
                .await
                .is_some_and(|t| t.contains("No invitation was sent to Ruth Okafor."))
        });
        assert!(text_of(c, ".alert.error").await.contains("disabled"));
        assert_eq!(text_of(c, "main h1").await, "Ruth Okafor");
        assert!(
            absent(c, "#invite-button").await,
            "no button while disabled"
        );
        assert!(text_of(c, "#enrollment")
            .await
            .contains("Enable the account to invite them"));

        // The same from the list: the list again, with the alert on top.
        enable_by_api(&ctx.app, "ruth.okafor").await;
        c.goto(&ctx.app.url("/admin/users?q=ruth"))
            .await
            .expect("list");
        wait_for_rows(c, &["ruth.okafor"]).await;
        disable_by_api(&ctx.app, "ruth.okafor").await;
        click(c, "tr[data-username='ruth.okafor'] form.invite-form button").await;
        eventually!("the refusal on the list", {
            try_text(c, ".alert.error")
                .await
                .is_some_and(|t| t.contains("No invitation was sent to Ruth Okafor."))
        });
        assert_eq!(text_of(c, "main h1").await, "People");
        assert_eq!(value_of(c, "#q").await, "ruth", "the search is kept");
        wait_for_rows(c, &["ruth.okafor"]).await;
        assert!(
            absent(c, "tr[data-username='ruth.okafor'] form.invite-form").await,
            "disabled: no envelope"
        );
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Mass actions
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn people_selected_on_the_list_are_disabled_after_a_confirmation_with_each_skip_explained() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        for (u, f, l) in [
            ("jane.doe", "Jane", "Doe"),
            ("john.doe", "John", "Doe"),
            ("ann.smith", "Ann", "Smith"),
            ("ruth.okafor", "Ruth", "Okafor"),
        ] {
            ctx.app.create_person(u, f, l).await;
        }
        disable_by_api(&ctx.app, "ann.smith").await;
        log_in_as_admin(&ctx).await;
        wait_for_rows(
            c,
            &["admin", "ann.smith", "jane.doe", "john.doe", "ruth.okafor"],
        )
        .await;

        // Nothing ticked: nothing to submit.
        let submit = "#bulk-form button[type=submit]";
        assert_eq!(text_of(c, "#bulk-selected-count").await, "none yet");
        assert_eq!(prop(c, submit, "disabled").await.as_deref(), Some("true"));

        for u in ["jane.doe", "john.doe", "ann.smith", "admin"] {
            tick(c, u).await;
        }
        assert_eq!(text_of(c, "#bulk-selected-count").await, "4 selected");
        assert_eq!(prop(c, submit, "disabled").await.as_deref(), Some("false"));
        find(c, "#bulk-action")
            .await
            .select_by_value("disable")
            .await
            .expect("choose disable");
        click(c, submit).await;

        // The confirmation: who, how many, and what disabling means.
        wait_for_path(c, "/admin/users/bulk").await;
        assert_eq!(text_of(c, "main h1").await, "Disable 4 people?");
        let names = text_of(c, "#bulk-names").await;
        for name in [
            "Jane Doe",
            "John Doe",
            "Ann Smith",
            "Platform Administrator",
        ] {
            assert!(names.contains(name), "{name} in {names}");
        }
        assert!(text_of(c, ".alert.warning")
            .await
            .contains("Their sessions end at once"));
        // Nothing happened yet.
        assert_eq!(api_user(&ctx.app, "jane.doe").await["enabled"], true);
        assert_eq!(
            text_of(c, "#bulk-confirm button[type=submit]").await,
            "Disable 4 people"
        );
        click(c, "#bulk-confirm button[type=submit]").await;

        // The result: two changed, two skipped with the reason.
        eventually!("the result", {
            try_text(c, "main h1")
                .await
                .is_some_and(|t| t == "2 people disabled")
        });
        assert_eq!(text_of(c, "#changed-count").await, "2");
        assert_eq!(text_of(c, "#skipped-count").await, "2");
        assert!(text_of(c, "tr[data-username=admin][data-reason=self]")
            .await
            .contains("your own account"));
        assert!(text_of(
            c,
            "tr[data-username='ann.smith'][data-reason=already_disabled]"
        )
        .await
        .contains("already disabled"));

        // Back on the list, the two are disabled, the others as they were.
        click(c, "#bulk-result a.button.primary").await;
        wait_for_rows(
            c,
            &["admin", "ann.smith", "jane.doe", "john.doe", "ruth.okafor"],
        )
        .await;
        for (u, badge) in [
            ("jane.doe", "Disabled"),
            ("john.doe", "Disabled"),
            ("ann.smith", "Disabled"),
            ("ruth.okafor", "Enabled"),
            ("admin", "Enabled"),
        ] {
            let row = format!("tr[data-username='{u}']");
            assert_eq!(
                text_of(c, &format!("{row} .badge.enabled, {row} .badge.disabled")).await,
                badge,
                "{u}"
            );
        }

        // "Select this page" ticks every row, and unticks them.
        click(c, "#select-page").await;
        assert_eq!(text_of(c, "#bulk-selected-count").await, "5 selected");
        click(c, "#select-page").await;
        assert_eq!(text_of(c, "#bulk-selected-count").await, "none yet");

        // Everyone matching a search: the count before confirming, the filters kept.
        find(c, "#q").await.send_keys("doe").await.expect("type");
        wait_for_rows(c, &["jane.doe", "john.doe"]).await;
        assert_eq!(text_of(c, "#bulk-total").await, "2 people");
        click(c, "#bulk-form input[name=scope][value=all]").await;
        assert_eq!(prop(c, submit, "disabled").await.as_deref(), Some("false"));
        find(c, "#bulk-action")
            .await
            .select_by_value("enable")
            .await
            .expect("choose enable");
        click(c, submit).await;
        eventually!("the confirmation", {
            try_text(c, "main h1")
                .await
                .is_some_and(|t| t == "Enable all 2 people?")
        });
        assert!(text_of(c, ".filter-words").await.contains("Search “doe”"));
        click(c, "#bulk-confirm button[type=submit]").await;
        eventually!("the result", {
            try_text(c, "main h1")
                .await
                .is_some_and(|t| t == "2 people enabled")
        });
        assert!(absent(c, "table.skipped").await, "nobody skipped");
        click(c, "#bulk-result a.button.primary").await;
        wait_for_path(c, "/admin/users?q=doe").await;
        wait_for_rows(c, &["jane.doe", "john.doe"]).await;
        assert!(absent(c, "#results .badge.disabled").await);
    })
    .await;
}

#[tokio::test]
async fn a_large_selection_runs_as_a_job_whose_page_follows_the_progress() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        insert_many(&ctx.app, 1200).await;
        log_in_as_admin(&ctx).await;

        // Everyone matching "bulk": more than is answered at once.
        c.goto(&ctx.app.url("/admin/users?q=bulk"))
            .await
            .expect("list");
        assert_eq!(text_of(c, "#bulk-total").await, "1,200 people");
        click(c, "#bulk-form input[name=scope][value=all]").await;
        find(c, "#bulk-action")
            .await
            .select_by_value("disable")
            .await
            .expect("choose disable");
        click(c, "#bulk-form button[type=submit]").await;
        eventually!("the confirmation", {
            try_text(c, "main h1")
                .await
                .is_some_and(|t| t == "Disable all 1,200 people?")
        });
        assert!(text_of(c, ".bulk-confirm")
            .await
            .contains("and 1,180 people more"));
        assert!(text_of(c, ".bulk-confirm .alert.info")
            .await
            .contains("in the background"));
        click(c, "#bulk-confirm button[type=submit]").await;
        wait_for_path(c, "/admin/jobs/").await;
        eventually!("the end of the job", {
            try_text(c, "#changed-count")
                .await
                .is_some_and(|t| t == "1,200")
        });
        assert_eq!(text_of(c, "main h1").await, "Disable 1,200 people");
        assert_eq!(
            attr(c, "#job-progress", "value").await.as_deref(),
            Some("1200")
        );
        click(c, "#job a.button").await;
        wait_for_path(c, "/admin/users?q=bulk").await;
        assert!(absent(c, "#results .badge.enabled").await, "all disabled");

        // A job in progress: the bar follows it, then the result appears by itself.
        let mut job = JobRecord {
            id: 0,
            kind: "bulk_enable".into(),
            state: "running".into(),
            total: 3000,
            processed: 500,
            result: None,
            created_by: Some("admin".into()),
            created_at: ctx.app.clock.now(),
            finished_at: None,
        };
        let store = &ctx.app.usher.store;
        job.id = store.insert_job(&job).await.expect("a job");
        c.goto(&ctx.app.url(&format!("/admin/jobs/{}", job.id)))
            .await
            .expect("the job");
        assert_eq!(text_of(c, "main h1").await, "Enable 3,000 people");
        assert_eq!(
            text_of(c, "#job-status").await,
            "Enabling 500 of 3,000 people…"
        );
        assert!(
            c.source()
                .await
                .expect("page source")
                .contains(r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#),
            "without the script the page refreshes itself while the job runs"
        );
        job.processed = 1500;
        store.update_job(&job).await.expect("progress");
        eventually!("the progress", {
            try_text(c, "#job-status")
                .await
                .is_some_and(|t| t == "Enabling 1,500 of 3,000 people…")
        });
        assert_eq!(
            attr(c, "#job-progress", "value").await.as_deref(),
            Some("1500")
        );
        let running = screenshot(c, "usher-mass-job.png").await;
        job.state = "done".into();
        job.processed = 3000;
        job.finished_at = Some(ctx.app.clock.now());
        job.result = Some(json!({
            "changed": ["bulk.1", "bulk.2"],
            "skipped": [{ "username": "admin", "reason": "already_enabled" }],
        }));
        store.update_job(&job).await.expect("done");
        eventually!("the result", {
            try_text(c, "#changed-count")
                .await
                .is_some_and(|t| t == "2")
        });
        assert!(
            text_of(c, "tr[data-username=admin][data-reason=already_enabled]")
                .await
                .contains("already enabled")
        );
        assert!(
            !c.source().await.expect("source").contains("http-equiv"),
            "no more refreshing once done"
        );
        eprintln!("screenshot: {}", running.display());
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// The look
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_invitation_and_mass_action_pages_are_captured_wide_and_phone_sized() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        for (u, f, l) in [
            ("jane.doe", "Jane", "Doe"),
            ("john.doe", "John", "Doe"),
            ("ann.smith", "Ann", "Smith"),
            ("ruth.okafor", "Ruth", "Okafor"),
        ] {
            ctx.app.create_person(u, f, l).await;
        }
        let api = ctx.app.admin_api().await;
        for u in ["jane.doe", "ruth.okafor"] {
            let (status, body) = api
                .post(&format!("/api/v1/users/{u}/invitation"), json!({}))
                .await;
            assert!(status.is_success(), "{body}");
        }
        disable_by_api(&ctx.app, "ann.smith").await;
        log_in_as_admin(&ctx).await;
        let mut shots = Vec::new();

        for (width, height, suffix) in [(1280, 1000, ""), (390, 2000, "-phone")] {
            c.set_window_size(width, height).await.expect("resize");
            c.goto(&ctx.app.url("/admin/users")).await.expect("list");
            wait_for_rows(
                c,
                &["admin", "ann.smith", "jane.doe", "john.doe", "ruth.okafor"],
            )
            .await;
            tick(c, "john.doe").await;
            tick(c, "ann.smith").await;
            tick(c, "admin").await;
            find(c, "#bulk-action")
                .await
                .select_by_value("disable")
                .await
                .expect("choose");
            shots.push(screenshot(c, &format!("usher-mass-list{suffix}.png")).await);
            assert_no_sideways_scroll(c).await;
            click(c, "#bulk-form button[type=submit]").await;
            find(c, "#bulk-confirm").await;
            shots.push(screenshot(c, &format!("usher-mass-confirm{suffix}.png")).await);
            assert_no_sideways_scroll(c).await;
            click(c, "#bulk-confirm button[type=submit]").await;
            find(c, "#bulk-result").await;
            shots.push(screenshot(c, &format!("usher-mass-result{suffix}.png")).await);
            assert_no_sideways_scroll(c).await;
            enable_by_api(&ctx.app, "john.doe").await;

            c.goto(&ctx.app.url("/admin/users/jane.doe"))
                .await
                .expect("detail");
            find(c, "#delivery").await;
            shots.push(screenshot(c, &format!("usher-mass-user{suffix}.png")).await);
            assert_no_sideways_scroll(c).await;

            c.goto(&ctx.app.url("/admin/users/new")).await.expect("new");
            click(c, "#invite").await;
            c.execute(
                "document.getElementById('invite').scrollIntoView({block: 'center'});",
                vec![],
            )
            .await
            .expect("scroll");
            shots.push(screenshot(c, &format!("usher-mass-new{suffix}.png")).await);
            assert_no_sideways_scroll(c).await;
        }
        for p in shots {
            assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 0));
            eprintln!("screenshot: {}", p.display());
        }
    })
    .await;
}

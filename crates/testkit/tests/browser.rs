//! The admin pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started per test on a free port), against a [`TestApp`] on SQLite. PostgreSQL is covered by
//! the API tests; what is tested here is the pages and their script.
//!
//! Without `chromedriver` or Chromium the tests are skipped with a notice, except when
//! `CI=true`, where they fail. `CHROMEDRIVER` and `CHROMIUM` (paths) override the defaults.
//! Screenshots of the list and detail pages, wide and phone-sized, go to the temporary
//! directory (`usher-*.png`) for a look at the design. Invitations and mass actions are in
//! `browser_mass.rs`; the driver and helpers in `browser_support`.

#[macro_use]
mod browser_support;

use browser_support::*;

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_logs_in_through_the_login_form_and_lands_on_the_people_list() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        c.goto(&ctx.app.url("/admin/users"))
            .await
            .expect("open the list");
        // Not logged in: the login form, which brings them back afterwards.
        wait_for_path(c, "/login?next=").await;
        fill(c, "input[name=login]", "admin").await;
        fill(c, "input[name=password]", ADMIN_PASSWORD).await;
        click(c, "form[action='/login'] button[type=submit]").await;
        wait_for_path(c, "/admin/users").await;

        assert_eq!(text_of(c, "main h1").await, "People");
        assert_eq!(
            text_of(c, "nav a[aria-current=page]").await,
            "People",
            "the navigation marks the current section"
        );
        wait_for_rows(c, &["admin"]).await;
        assert_eq!(text_of(c, "#result-count").await, "1–1 of 1 person");
        let row = text_of(c, "tr[data-username=admin]").await;
        assert!(row.contains("Platform Administrator"), "{row}");
        assert!(row.contains("Super user"), "{row}");
        assert!(
            c.find(Locator::Css("tr[data-username=admin] form"))
                .await
                .is_err(),
            "nobody disables themselves or the super user"
        );
    })
    .await;
}

#[tokio::test]
async fn creating_a_person_suggests_the_username_from_the_typed_names_with_accents_folded() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        log_in_as_admin(&ctx).await;
        click(c, "a[href='/admin/users/new']").await;
        wait_for_path(c, "/admin/users/new").await;
        let policy = text_of(c, "fieldset .hint.full").await;
        assert!(
            policy.contains("characters"),
            "the policy is shown: {policy}"
        );

        fill(c, "#first_name", "Élodie").await;
        fill(c, "#last_name", "Näf").await;
        eventually!("the suggested username", {
            value_of(c, "#username").await == "elodie.naf"
        });
        eventually!("the availability hint", {
            try_text(c, "#username-hint")
                .await
                .is_some_and(|t| t.contains("available"))
        });

        fill(c, "#email", "elodie.naf@example.org").await;
        fill(c, "#password", "a-temporary-passphrase").await;
        fill(c, "#password_confirmation", "a-temporary-passphrase").await;
        click(c, "form[data-suggest-username] button[type=submit]").await;

        wait_for_path(c, "/admin/users/elodie.naf?notice=created").await;
        assert_eq!(text_of(c, "main h1").await, "Élodie Näf");
        assert!(text_of(c, ".alert.notice").await.contains("created"));
        let account = text_of(c, "section[aria-labelledby=account-heading]").await;
        assert!(account.contains("elodie.naf@example.org"), "{account}");
        assert!(account.contains("Never"), "never connected yet: {account}");
        let roles = text_of(c, "table.roles").await;
        assert!(roles.contains("/platform/users"), "{roles}");
    })
    .await;
}

#[tokio::test]
async fn a_person_is_found_with_the_search_box_and_combined_filters() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        ctx.app.create_person("jane.doe", "Jane", "Doe").await;
        ctx.app.create_person("john.doe", "John", "Doe").await;
        ctx.app.create_person("ann.smith", "Ann", "Smith").await;
        disable_by_api(&ctx.app, "john.doe").await;
        log_in_as_admin(&ctx).await;
        wait_for_rows(c, &["admin", "ann.smith", "jane.doe", "john.doe"]).await;

        // A filter applies as soon as it is chosen; the admin has connected, the others not.
        find(c, "#filter-connected")
            .await
            .select_by_value("false")
            .await
            .expect("choose never connected");
        wait_for_rows(c, &["ann.smith", "jane.doe", "john.doe"]).await;

        // Typing searches as one types, within the filter.
        find(c, "#q").await.send_keys("doe").await.expect("type");
        wait_for_rows(c, &["jane.doe", "john.doe"]).await;
        assert_eq!(text_of(c, "#result-count").await, "1–2 of 2 people");

        find(c, "#filter-enabled")
            .await
            .select_by_value("false")
            .await
            .expect("choose disabled");
        wait_for_rows(c, &["john.doe"]).await;
        assert!(text_of(c, "tr[data-username='john.doe']")
            .await
            .contains("Disabled"));

        // The address holds the whole selection, so a reload (or a shared link) shows it again,
        // rendered by the server.
        let address = path_and_query(c).await;
        for part in ["q=doe", "connected=false", "enabled=false"] {
            assert!(address.contains(part), "{address} should hold {part}");
        }
        c.goto(&ctx.app.url(&address)).await.expect("reload");
        wait_for_rows(c, &["john.doe"]).await;
        assert_eq!(value_of(c, "#q").await, "doe");
        assert_eq!(value_of(c, "#filter-connected").await, "false");
        assert_eq!(value_of(c, "#filter-enabled").await, "false");
        let export = find(c, "a[href^='/api/v1/users.csv']")
            .await
            .attr("href")
            .await
            .expect("href")
            .unwrap_or_default();
        assert!(
            export.contains("q=doe") && export.contains("enabled=false"),
            "{export}"
        );

        // A bad parameter in a hand-written address is said, and the rest still applies.
        c.goto(
            &ctx.app
                .url("/admin/users?enabled=maybe&sort=shoe_size&q=doe"),
        )
        .await
        .expect("a bad address");
        wait_for_rows(c, &["jane.doe", "john.doe"]).await;
        let problems = c
            .find_all(Locator::Css("#results .alert.error"))
            .await
            .expect("alerts");
        assert_eq!(problems.len(), 2, "one message per bad parameter");
        assert!(text_of(c, "#results .alert.error")
            .await
            .contains("ignored"));

        // Sorting by a column header, then back.
        c.goto(&ctx.app.url("/admin/users"))
            .await
            .expect("the whole list");
        wait_for_rows(c, &["admin", "ann.smith", "jane.doe", "john.doe"]).await;
        let username_header = "th a.sort[href*='sort=username']";
        click(c, username_header).await;
        wait_for_path(c, "/admin/users?sort=username").await;
        assert_eq!(
            find(c, "th[aria-sort]")
                .await
                .attr("aria-sort")
                .await
                .expect("aria-sort"),
            Some("ascending".to_owned())
        );
        click(c, "th[aria-sort] a.sort").await;
        wait_for_path(c, "/admin/users?sort=-username").await;
        let first_row = find(c, "#results tbody tr")
            .await
            .attr("data-username")
            .await
            .expect("attr");
        assert_eq!(
            first_row.as_deref(),
            Some("john.doe"),
            "descending by username"
        );
    })
    .await;
}

#[tokio::test]
async fn an_admin_opens_a_person_edits_them_and_sees_the_change_saved() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        ctx.app.create_person("jane.doe", "Jane", "Doe").await;
        log_in_as_admin(&ctx).await;
        click(c, "tr[data-username='jane.doe'] a.person-link").await;
        wait_for_path(c, "/admin/users/jane.doe").await;
        assert_eq!(text_of(c, "main h1").await, "Jane Doe");

        fill(c, "#last_name", "Martin").await;
        fill(c, "#profile-position", "Head of logistics").await;
        click(c, "#edit-form button[type=submit]").await;

        wait_for_path(c, "/admin/users/jane.doe?notice=updated").await;
        assert_eq!(text_of(c, "main h1").await, "Jane Martin");
        assert_eq!(text_of(c, ".alert.notice").await, "Changes saved.");
        assert_eq!(value_of(c, "#last_name").await, "Martin");
        let profile = text_of(c, "section[aria-labelledby=profile-heading]").await;
        assert!(profile.contains("Head of logistics"), "{profile}");

        // Emptying a profile field clears it.
        find(c, "#profile-position")
            .await
            .clear()
            .await
            .expect("clear");
        click(c, "#edit-form button[type=submit]").await;
        eventually!("the cleared profile", {
            try_text(c, "section[aria-labelledby=profile-heading]")
                .await
                .is_some_and(|t| t.contains("No profile details yet"))
        });
    })
    .await;
}

#[tokio::test]
async fn disabling_a_person_asks_for_confirmation_and_shows_the_disabled_badge() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        ctx.app.create_person("jane.doe", "Jane", "Doe").await;
        log_in_as_admin(&ctx).await;
        let row = "tr[data-username='jane.doe']";
        wait_for_rows(c, &["admin", "jane.doe"]).await;
        assert!(text_of(c, row).await.contains("Enabled"));

        // Dismissing the dialog changes nothing.
        let toggle = format!("{row} form[action$='/enabled'] button[type=submit]");
        click(c, &toggle).await;
        answer_confirm(c, "Disable Jane Doe", false).await;
        assert!(text_of(c, row).await.contains("Enabled"));

        // Accepting disables, and the list comes back with a notice.
        click(c, &toggle).await;
        answer_confirm(c, "Disable Jane Doe", true).await;
        wait_for_path(c, "/admin/users?notice=disabled").await;
        assert!(text_of(c, ".alert.notice").await.contains("disabled"));
        assert!(text_of(c, &format!("{row} .badge.disabled")).await == "Disabled");
        assert_eq!(text_of(c, &toggle).await, "Enable");

        // From the detail page: enable (no question asked), then disable again.
        click(c, &format!("{row} a.person-link")).await;
        wait_for_path(c, "/admin/users/jane.doe").await;
        assert_eq!(text_of(c, "#enabled-badge").await, "Disabled");
        click(c, ".page-header .actions button[type=submit]").await;
        wait_for_path(c, "/admin/users/jane.doe?notice=enabled").await;
        assert_eq!(text_of(c, "#enabled-badge").await, "Enabled");
        click(c, ".page-header .actions button[type=submit]").await;
        answer_confirm(c, "Disable Jane Doe", true).await;
        wait_for_path(c, "/admin/users/jane.doe?notice=disabled").await;
        assert_eq!(text_of(c, "#enabled-badge").await, "Disabled");
    })
    .await;
}

#[tokio::test]
async fn a_bad_creation_form_shows_each_error_in_place_and_keeps_the_values() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        ctx.app.create_person("jane.doe", "Jane", "Doe").await;
        log_in_as_admin(&ctx).await;
        c.goto(&ctx.app.url("/admin/users/new"))
            .await
            .expect("open");

        // Every rule broken at once: each field says what is wrong, under itself.
        fill(c, "#username", "x").await;
        fill(c, "#first_name", "J4ne").await;
        fill(c, "#last_name", "D").await;
        fill(c, "#email", "not-an-email").await;
        fill(c, "#password", "short").await;
        fill(c, "#password_confirmation", "other").await;
        click(c, "form[data-suggest-username] button[type=submit]").await;
        find(c, ".alert.error").await;
        for id in [
            "username",
            "first_name",
            "last_name",
            "email",
            "password",
            "password_confirmation",
        ] {
            let message = text_of(c, &format!("#{id}-error")).await;
            assert!(!message.is_empty(), "an error under {id}");
            assert_eq!(
                find(c, &format!("#{id}"))
                    .await
                    .attr("aria-invalid")
                    .await
                    .expect("attr")
                    .as_deref(),
                Some("true"),
                "{id} is marked invalid"
            );
        }
        assert_eq!(value_of(c, "#first_name").await, "J4ne");
        assert_eq!(value_of(c, "#last_name").await, "D");
        assert_eq!(value_of(c, "#username").await, "x");
        assert_eq!(value_of(c, "#email").await, "not-an-email");
        assert_eq!(
            value_of(c, "#password").await,
            "",
            "passwords are never sent back"
        );
        assert_eq!(value_of(c, "#password_confirmation").await, "");

        // An empty username: the server fills in its suggestion and asks to check it.
        fill(c, "#first_name", "Janet").await;
        fill(c, "#last_name", "Doe").await;
        fill(c, "#email", "janet@example.org").await;
        fill(c, "#password", "a-temporary-passphrase").await;
        fill(c, "#password_confirmation", "a-temporary-passphrase").await;
        find(c, "#username").await.clear().await.expect("clear");
        click(c, "form[data-suggest-username] button[type=submit]").await;
        eventually!("the username error", {
            c.find(Locator::Css("#username-error")).await.is_ok()
                && c.find(Locator::Css("#first_name-error")).await.is_err()
        });
        assert!(text_of(c, "#username-error").await.contains("suggested"));
        assert_eq!(value_of(c, "#username").await, "janet.doe");
        assert_eq!(value_of(c, "#email").await, "janet@example.org");

        // A username and an email that belong to someone: said in place too.
        fill(c, "#username", "jane.doe").await;
        fill(c, "#email", "JANE.DOE@example.org").await;
        fill(c, "#password", "a-temporary-passphrase").await;
        fill(c, "#password_confirmation", "a-temporary-passphrase").await;
        click(c, "form[data-suggest-username] button[type=submit]").await;
        eventually!("the conflict errors", {
            c.find(Locator::Css("#email-error")).await.is_ok()
        });
        assert!(text_of(c, "#username-error").await.contains("taken"));
        assert!(text_of(c, "#email-error").await.contains("already uses"));

        // Fixed, it goes through.
        fill(c, "#username", "janet.doe").await;
        fill(c, "#email", "janet@example.org").await;
        fill(c, "#password", "a-temporary-passphrase").await;
        fill(c, "#password_confirmation", "a-temporary-passphrase").await;
        click(c, "form[data-suggest-username] button[type=submit]").await;
        wait_for_path(c, "/admin/users/janet.doe?notice=created").await;
    })
    .await;
}

#[tokio::test]
async fn the_super_user_deletes_a_person_after_unfolding_the_warning() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        ctx.app.create_person("jane.doe", "Jane", "Doe").await;
        log_in_as_admin(&ctx).await;
        c.goto(&ctx.app.url("/admin/users/jane.doe"))
            .await
            .expect("open");
        click(c, ".danger-zone summary").await;
        let warning = text_of(c, ".danger-zone .alert").await;
        assert!(warning.contains("stays reserved"), "{warning}");
        click(c, ".danger-zone button.danger").await;
        answer_confirm(c, "Delete Jane Doe", true).await;
        wait_for_path(c, "/admin/users?notice=deleted").await;
        wait_for_rows(c, &["admin"]).await;

        // The audit log tells who did it.
        c.goto(&ctx.app.url("/admin/audit?action=user.delete"))
            .await
            .expect("audit");
        let table = text_of(c, "table.audit tbody").await;
        assert!(
            table.contains("admin") && table.contains("jane.doe"),
            "{table}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_list_and_detail_pages_are_captured_wide_and_phone_sized() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        for (u, f, l) in [
            ("jane.doe", "Jane", "Doe"),
            ("john.doe", "John", "Doe"),
            ("ann.smith", "Ann", "Smith"),
            ("ruth.okafor", "Ruth", "Okafor"),
            ("malik.berger", "Malik", "Berger"),
            ("elodie.naf", "Élodie", "Näf"),
        ] {
            ctx.app.create_person(u, f, l).await;
        }
        disable_by_api(&ctx.app, "john.doe").await;
        ctx.app.member_client("lea.member").await;
        c.goto(&ctx.app.url("/login")).await.expect("login page");
        find(c, "input[name=login]").await;
        let login = screenshot(c, "usher-login.png").await;
        log_in_as_admin(&ctx).await;
        c.set_window_size(1280, 1000).await.expect("resize");
        c.goto(&ctx.app.url("/admin/users?notice=enabled"))
            .await
            .expect("list");
        find(c, "#results tbody tr").await;
        let wide_list = screenshot(c, "usher-users.png").await;
        c.goto(&ctx.app.url("/admin/users/jane.doe"))
            .await
            .expect("detail");
        find(c, "#edit-form").await;
        let wide_detail = screenshot(c, "usher-user.png").await;
        c.goto(&ctx.app.url("/admin/audit")).await.expect("audit");
        find(c, "table.audit").await;
        let audit = screenshot(c, "usher-audit.png").await;
        c.goto(&ctx.app.url("/admin/users/new")).await.expect("new");
        click(c, "form[data-suggest-username] button[type=submit]").await;
        find(c, "#first_name-error").await;
        let new_form = screenshot(c, "usher-new.png").await;

        // A phone's width; tall, so that one screenshot holds the whole page.
        c.set_window_size(390, 2400)
            .await
            .expect("resize to a phone");
        c.goto(&ctx.app.url("/admin/users")).await.expect("list");
        find(c, "#results tbody tr").await;
        let phone_list = screenshot(c, "usher-users-phone.png").await;
        assert_no_sideways_scroll(c).await;
        c.goto(&ctx.app.url("/admin/users/jane.doe"))
            .await
            .expect("detail");
        find(c, "#edit-form").await;
        let phone_detail = screenshot(c, "usher-user-phone.png").await;
        assert_no_sideways_scroll(c).await;
        for p in [
            login,
            wide_list,
            wide_detail,
            audit,
            new_form,
            phone_list,
            phone_detail,
        ] {
            assert!(
                std::fs::metadata(&p).is_ok_and(|m| m.len() > 0),
                "{}",
                p.display()
            );
            eprintln!("screenshot: {}", p.display());
        }
    })
    .await;
}

//! The admin pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started per test on a free port), against a [`TestApp`] on SQLite. PostgreSQL is covered by
//! the API tests; what is tested here is the pages and their script.
//!
//! Without `chromedriver` or Chromium the tests are skipped with a notice, except when
//! `CI=true`, where they fail. `CHROMEDRIVER` and `CHROMIUM` (paths) override the defaults.
//! Screenshots of the list and detail pages, wide and phone-sized, go to the temporary
//! directory (`usher-*.png`) for a look at the design.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use usher_testkit::{TestApp, TestBackend, TestDb, ADMIN_PASSWORD};

/// How long anything may take before a test gives up waiting (a bound for failures, never an
/// expectation of speed).
const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// One browser at a time: the machines running these have few cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls an `async` condition (an expression that may `.await`) until it holds.
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if $check {
                break;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(POLL).await;
        }
    }};
}

// ------------------------------------------------------------------------------------------
// The browser
// ------------------------------------------------------------------------------------------

fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn chromedriver_path() -> Option<PathBuf> {
    match std::env::var_os("CHROMEDRIVER") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => in_path("chromedriver"),
    }
}

fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .or_else(|| in_path("chromium"))
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Driver {
    /// Starts chromedriver, or returns `None` (after a notice) when the browser is missing
    /// outside CI.
    fn start() -> Option<Self> {
        let (Some(driver), Some(chromium)) = (chromedriver_path(), chromium_path()) else {
            let message = "chromedriver and Chromium are needed for the browser tests \
                           (apt-get install chromium chromium-driver, or set CHROMEDRIVER and CHROMIUM)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}; CI=true: the browser tests must run");
            }
            eprintln!("note: skipping a browser test: {message}");
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        Some(Self {
            child,
            port,
            chromium,
            profile: TempDir::new("usher-chromium"),
        })
    }

    async fn connect(&self) -> Client {
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening"
            );
            tokio::time::sleep(POLL).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self.profile.0.display()),
                    "--window-size=1280,900",
                ],
            }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut attempts = 0;
        loop {
            match builder.connect(&url).await {
                Ok(client) => return client,
                Err(e) => {
                    attempts += 1;
                    assert!(
                        attempts < 5 && Instant::now() < deadline,
                        "cannot open a browser session: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// What a test body gets: the app and a browser.
struct Ctx {
    app: Arc<TestApp>,
    c: Client,
}

/// Runs `body` with a fresh app on SQLite and a fresh browser; the browser session is closed
/// whatever happens, then a failure of the body is passed on.
async fn browser_test<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _one = ONE_BROWSER.lock().await;
    let Some(driver) = Driver::start() else {
        return;
    };
    let db = TestDb::create(TestBackend::Sqlite)
        .await
        .expect("an SQLite test database");
    let app = Arc::new(TestApp::spawn(db).await);
    let client = driver.connect().await;
    let outcome = tokio::spawn(body(Ctx {
        app: app.clone(),
        c: client.clone(),
    }))
    .await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test body did not finish: {e}"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Page helpers
// ------------------------------------------------------------------------------------------

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(TIMEOUT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.expect("element text")
}

async fn value_of(c: &Client, css: &str) -> String {
    find(c, css)
        .await
        .prop("value")
        .await
        .expect("element value")
        .unwrap_or_default()
}

async fn fill(c: &Client, css: &str, value: &str) {
    let input = find(c, css).await;
    input.clear().await.expect("clear a field");
    input.send_keys(value).await.expect("type into a field");
}

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.expect("click");
}

async fn path_and_query(c: &Client) -> String {
    let url = c.current_url().await.expect("current URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits until the page's address starts with `prefix` (after a form or a link was followed).
async fn wait_for_path(c: &Client, prefix: &str) {
    eventually!(format!("the address {prefix}"), {
        path_and_query(c).await.starts_with(prefix)
    });
}

/// The usernames of the list's rows, sorted.
async fn listed_usernames(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(rows) = c.find_all(Locator::Css("#results tbody tr")).await {
        for row in rows {
            if let Ok(Some(u)) = row.attr("data-username").await {
                names.push(u);
            }
        }
    }
    names.sort();
    names
}

async fn wait_for_rows(c: &Client, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    eventually!(format!("the rows {expected:?}"), {
        listed_usernames(c).await == expected
    });
}

/// Waits for a confirmation dialog, checks its text and accepts or dismisses it.
async fn answer_confirm(c: &Client, containing: &str, accept: bool) {
    let mut text = String::new();
    eventually!("a confirmation dialog", {
        match c.get_alert_text().await {
            Ok(t) => {
                text = t;
                true
            }
            Err(_) => false,
        }
    });
    assert!(
        text.contains(containing),
        "the dialog says {text:?}, expected it to mention {containing:?}"
    );
    if accept {
        c.accept_alert().await.expect("accept the dialog");
    } else {
        c.dismiss_alert().await.expect("dismiss the dialog");
    }
}

async fn log_in_as_admin(ctx: &Ctx) {
    let c = &ctx.c;
    c.goto(&ctx.app.url("/login")).await.expect("open /login");
    fill(c, "input[name=login]", "admin").await;
    fill(c, "input[name=password]", ADMIN_PASSWORD).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    wait_for_path(c, "/admin/users").await;
    find(c, "form[data-live]").await;
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("a screenshot");
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// Nothing on the page overflows sideways (the phone layout).
async fn assert_no_sideways_scroll(c: &Client) {
    let overflow = c
        .execute(
            "const d = document.documentElement; return d.scrollWidth - d.clientWidth;",
            vec![],
        )
        .await
        .expect("measure the page");
    assert_eq!(
        overflow,
        json!(0),
        "the page scrolls sideways by {overflow} px"
    );
}

async fn disable_by_api(app: &TestApp, username: &str) {
    let (status, body) = app
        .admin_api()
        .await
        .patch(
            &format!("/api/v1/users/{username}"),
            json!({ "enabled": false }),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

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
            text_of(c, "#username-hint").await.contains("available")
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
            text_of(c, "section[aria-labelledby=profile-heading]")
                .await
                .contains("No profile details yet")
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
        click(c, &format!("{row} button[type=submit]")).await;
        answer_confirm(c, "Disable Jane Doe", false).await;
        assert!(text_of(c, row).await.contains("Enabled"));

        // Accepting disables, and the list comes back with a notice.
        click(c, &format!("{row} button[type=submit]")).await;
        answer_confirm(c, "Disable Jane Doe", true).await;
        wait_for_path(c, "/admin/users?notice=disabled").await;
        assert!(text_of(c, ".alert.notice").await.contains("disabled"));
        assert!(text_of(c, &format!("{row} .badge.disabled")).await == "Disabled");
        assert_eq!(text_of(c, &format!("{row} button")).await, "Enable");

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

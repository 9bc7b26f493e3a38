//! What the browser tests share: a headless Chromium driven over WebDriver (chromedriver,
//! started per test on a free port) against a [`TestApp`] on SQLite, and helpers to find,
//! fill, click and wait on the pages.
//!
//! Without `chromedriver` or Chromium the tests are skipped with a notice, except when
//! `CI=true`, where they fail. `CHROMEDRIVER` and `CHROMIUM` (paths) override the defaults.

#![allow(
    dead_code,
    unused_imports,
    reason = "each browser test file uses its own share of these helpers"
)]

use std::future::Future;
use std::net::{TcpListener, TcpStream};
pub use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use fantoccini::elements::Element;
pub use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
pub use serde_json::json;
pub use usher_testkit::{TestApp, TestBackend, TestDb, ADMIN_PASSWORD};

/// How long anything may take before a test gives up waiting (a bound for failures, never an
/// expectation of speed).
pub const TIMEOUT: Duration = Duration::from_secs(20);
pub const POLL: Duration = Duration::from_millis(100);

/// One browser at a time: the machines running these have few cores.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls an `async` condition (an expression that may `.await`) until it holds.
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let deadline = ::std::time::Instant::now() + $crate::browser_support::TIMEOUT;
        loop {
            if $check {
                break;
            }
            assert!(
                ::std::time::Instant::now() < deadline,
                "timed out waiting for {}",
                $what
            );
            ::tokio::time::sleep($crate::browser_support::POLL).await;
        }
    }};
}

// ------------------------------------------------------------------------------------------
// The browser
// ------------------------------------------------------------------------------------------

pub fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

pub fn chromedriver_path() -> Option<PathBuf> {
    match std::env::var_os("CHROMEDRIVER") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => in_path("chromedriver"),
    }
}

pub fn chromium_path() -> Option<PathBuf> {
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
pub struct TempDir(PathBuf);

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
pub struct Driver {
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

/// A free loopback port for chromedriver, below the range the kernel hands out for port 0
/// (32768 and up). Taken from that range, it could be handed to a test server binding port 0
/// before chromedriver binds it (seen: the driver's address answered with Usher's 404 page).
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = std::process::id() % 12_000;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (start + n) % 12_000;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free loopback port between 20000 and 32000")
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
pub struct Ctx {
    pub app: Arc<TestApp>,
    pub c: Client,
}

/// Runs `body` with a fresh app on SQLite and a fresh browser; the browser session is closed
/// whatever happens, then a failure of the body is passed on.
pub async fn browser_test<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    browser_test_with(|_| {}, body).await;
}

/// The same, with the app's configuration adjusted first (an SMTP server, say).
pub async fn browser_test_with<F, Fut>(adjust: impl FnOnce(&mut usher_server::Config), body: F)
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
    let app = Arc::new(TestApp::spawn_with(db, adjust).await);
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

pub async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(TIMEOUT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

pub async fn text_of(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.expect("element text")
}

/// The text of an element, or `None` while it is missing or gone stale (the page is being
/// replaced): for polling.
pub async fn try_text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

pub async fn value_of(c: &Client, css: &str) -> String {
    find(c, css)
        .await
        .prop("value")
        .await
        .expect("element value")
        .unwrap_or_default()
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let input = find(c, css).await;
    input.clear().await.expect("clear a field");
    input.send_keys(value).await.expect("type into a field");
}

pub async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.expect("click");
}

pub async fn path_and_query(c: &Client) -> String {
    let url = c.current_url().await.expect("current URL");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits until the page's address starts with `prefix` (after a form or a link was followed).
pub async fn wait_for_path(c: &Client, prefix: &str) {
    eventually!(format!("the address {prefix}"), {
        path_and_query(c).await.starts_with(prefix)
    });
}

/// The usernames of the list's rows, sorted.
pub async fn listed_usernames(c: &Client) -> Vec<String> {
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

pub async fn wait_for_rows(c: &Client, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    eventually!(format!("the rows {expected:?}"), {
        listed_usernames(c).await == expected
    });
}

/// Waits for a confirmation dialog, checks its text and accepts or dismisses it.
pub async fn answer_confirm(c: &Client, containing: &str, accept: bool) {
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

pub async fn log_in_as_admin(ctx: &Ctx) {
    let c = &ctx.c;
    c.goto(&ctx.app.url("/login")).await.expect("open /login");
    fill(c, "input[name=login]", "admin").await;
    fill(c, "input[name=password]", ADMIN_PASSWORD).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    wait_for_path(c, "/admin/users").await;
    find(c, "form[data-live]").await;
}

pub async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("a screenshot");
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// Nothing on the page overflows sideways (the phone layout).
pub async fn assert_no_sideways_scroll(c: &Client) {
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

pub async fn disable_by_api(app: &TestApp, username: &str) {
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

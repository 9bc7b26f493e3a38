//! Test support for Usher: [`TestApp`] runs the real router on a loopback port over a fresh
//! database (SQLite or PostgreSQL, from `usher_store::testing`) with a [`ManualClock`], and
//! [`Api`] is a small JSON client for it.

pub mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::macros::datetime;
use usher_core::clock::ManualClock;
use usher_core::service::Usher;
use usher_server::{router, AppState, Config};
pub use usher_store::on_both_backends;
pub use usher_store::testing::{TestBackend, TestDb};

/// The super user's password in every test app.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The password people made by [`TestApp::member_client`] choose.
pub const MEMBER_PASSWORD: &str = "my-own-good-passphrase";

/// A running Usher on `127.0.0.1:<random port>`.
pub struct TestApp {
    pub base_url: String,
    pub usher: Usher,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
    server: tokio::task::JoinHandle<()>,
    mail_worker: Option<usher_server::mail::WorkerHandle>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        // The worker ends with the test's runtime; dropping the handle detaches it.
        drop(self.mail_worker.take());
    }
}

impl TestApp {
    /// Migrates `db`, creates the super user `admin` (password [`ADMIN_PASSWORD`]) and serves.
    pub async fn spawn(db: TestDb) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// The same, after `adjust` changed the configuration. The mail outbox worker runs with
    /// the transport the configuration names: SMTP when `smtp_url` is set (see
    /// [`smtp::SmtpSink`]), else `.eml` files in a temporary folder.
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Self {
        let store = db.store().await;
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 09:00 UTC)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let mail_dir = std::env::temp_dir().join(format!(
            "usher-testkit-mail-{}-{}",
            std::process::id(),
            addr.port()
        ));
        let mut config = Config {
            // The store is already open; this URL only places the `.eml` files of the file
            // transport (beside where an SQLite store would be) in a folder of this test.
            database_url: format!("sqlite://{}/unused.db", mail_dir.display()),
            bind: addr.to_string(),
            public_url: format!("http://{addr}"),
            ..Config::default()
        };
        adjust(&mut config);
        let usher = usher_server::serve::services(store, clock.clone(), &config);
        usher
            .ensure_super_user(Some(ADMIN_PASSWORD.into()))
            .await
            .expect("super user");
        // Searches go through the in-memory index, as in `usher serve` once it has loaded.
        usher.load_search_index().await.expect("search index");
        let mail_worker =
            usher_server::serve::start_mail_worker(&usher, &config).expect("mail worker");
        let app = router(AppState {
            usher: usher.clone(),
            config: Arc::new(config),
        });
        let server = tokio::spawn(async move {
            axum_serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            usher,
            clock,
            db,
            server,
            mail_worker: Some(mail_worker),
        }
    }

    /// Moves the clock and wakes the mail worker, so that retries due by then go out.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
        self.usher.outbox_signal.notify_one();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An API client authenticated with a fresh token of the super user.
    pub async fn admin_api(&self) -> Api {
        let token = self
            .usher
            .create_api_token("admin", "tests")
            .await
            .expect("admin token");
        Api::new(self, Some(token))
    }

    /// An API client without credentials.
    pub fn anonymous_api(&self) -> Api {
        Api::new(self, None)
    }

    /// Creates a person through the API as admin (no password: invite-only) and returns the
    /// JSON answer.
    pub async fn create_person(&self, username: &str, first: &str, last: &str) -> Value {
        let api = self.admin_api().await;
        let (status, body) = api
            .post(
                "/api/v1/users",
                serde_json::json!({
                    "username": username, "first_name": first, "last_name": last,
                    "email": format!("{username}@example.org"),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a person who is not an administrator, with a password of their own (they chose
    /// it after the temporary one), and returns a client logged in as them.
    pub async fn member_client(&self, username: &str) -> reqwest::Client {
        let api = self.admin_api().await;
        let (status, body) = api
            .post(
                "/api/v1/users",
                serde_json::json!({
                    "username": username, "first_name": "Member", "last_name": "Person",
                    "email": format!("{username}@example.org"), "password": "temporary-password-1",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let client = browser_client();
        let (status, location) = self.login(&client, username, "temporary-password-1").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/me/password"));
        self.choose_password(&client, None, MEMBER_PASSWORD).await;
        client
    }

    /// Submits the `/me/password` form; returns the status of the answer.
    pub async fn choose_password(
        &self,
        client: &reqwest::Client,
        current: Option<&str>,
        new_password: &str,
    ) -> StatusCode {
        let page = client
            .get(self.url("/me/password"))
            .send()
            .await
            .expect("password page")
            .text()
            .await
            .expect("password page body");
        let csrf = hidden_field(&page, "csrf_token").expect("csrf field");
        let mut form = vec![
            ("csrf_token", csrf.as_str()),
            ("password", new_password),
            ("password_confirmation", new_password),
        ];
        if let Some(c) = current {
            form.push(("current_password", c));
        }
        client
            .post(self.url("/me/password"))
            .form(&form)
            .send()
            .await
            .expect("password post")
            .status()
    }

    /// A browser-like client (cookie store, no redirects followed) logged in as `login`.
    pub async fn logged_in_client(&self, login: &str, password: &str) -> reqwest::Client {
        let client = browser_client();
        let (status, _) = self.login(&client, login, password).await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "login of {login} should succeed"
        );
        client
    }

    /// Posts the login form as a browser would (fetching the form's CSRF cookie first);
    /// returns the status and the `Location` header.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        login: &str,
        password: &str,
    ) -> (StatusCode, Option<String>) {
        let page = client
            .get(self.url("/login"))
            .send()
            .await
            .expect("login page")
            .text()
            .await
            .expect("login page body");
        let csrf = hidden_field(&page, "csrf_token").expect("csrf field on the login form");
        let response = client
            .post(self.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("login", login),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("login post");
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status(), location)
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum_router::Router) {
    let _ = axum_router::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await;
}

/// `axum` as re-exported through the server's types.
mod axum_router {
    pub use usher_server::http::axum_reexport::{serve, Router};
}

/// A client that keeps cookies and does not follow redirects, like a browser seen one step at
/// a time.
pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// The value of `<input … name="NAME" value="…">` in a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A JSON client for `/api/v1`.
pub struct Api {
    base_url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    fn new(app: &TestApp, token: Option<String>) -> Self {
        Self {
            base_url: app.base_url.clone(),
            token,
            client: reqwest::Client::new(),
        }
    }

    pub fn with_client(base_url: &str, client: reqwest::Client) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token: None,
            client,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends and returns the status and the JSON body (`Value::Null` when there is none).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::DELETE, path)).await
    }
}

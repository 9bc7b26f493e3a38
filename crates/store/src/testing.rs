//! Test support: a fresh, migrated, empty database per test on either backend, and
//! [`on_both_backends!`](crate::on_both_backends) to run one test body against both.
//!
//! Compiled always (not only under `cfg(test)`) so that the API tests of `usher-testkit` use the
//! same databases as the store's contract suite.
//!
//! - SQLite: a new file in a new directory under [`std::env::temp_dir`], removed on drop.
//! - PostgreSQL: a new database `usher_test_<unique>` on the server named by the environment
//!   variable `USHER_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]), dropped on drop.
//!   When that server cannot be reached the test is skipped with a notice, unless `CI=true`,
//!   where it fails: CI must run both backends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;

use crate::SqlStore;

/// Where PostgreSQL test databases are created when `USHER_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long to wait for the PostgreSQL server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A fresh, migrated, empty database for one test, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    pub backend: TestBackend,
    /// What [`crate::connect_and_migrate`] opens.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// The directory holding the SQLite file (and its WAL files).
    SqliteDir(PathBuf),
    /// The database to drop, and the server URL to drop it from.
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDb {
    /// A new database on `backend`, or `None` (after a notice on stderr) when the backend is
    /// unavailable outside CI. Panics when `CI=true` and PostgreSQL is unreachable, and on any
    /// other failure to set the database up.
    pub async fn create(backend: TestBackend) -> Option<TestDb> {
        let db = match backend {
            TestBackend::Sqlite => Self::create_sqlite(),
            TestBackend::Postgres => Self::create_postgres().await?,
        };
        // Migrate once here so that a broken migration fails as such, not in the test body.
        db.store().await.close().await;
        Some(db)
    }

    /// The store on this database (migrations are idempotent: a second call opens it again).
    pub async fn store(&self) -> Arc<SqlStore> {
        crate::connect_and_migrate(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot open the {} test database: {e}", self.backend.name())
            })
    }

    fn create_sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("usher-test-{}", unique_suffix()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create the test directory {}: {e}", dir.display()));
        let url = format!("sqlite://{}", dir.join("usher.db").display());
        TestDb {
            backend: TestBackend::Sqlite,
            url,
            cleanup: Cleanup::SqliteDir(dir),
        }
    }

    async fn create_postgres() -> Option<TestDb> {
        let admin_url = std::env::var("USHER_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin = match connect_admin(&admin_url).await {
            Ok(conn) => conn,
            Err(reason) => {
                let message = format!(
                    "PostgreSQL at {} is unreachable ({reason}); set USHER_TEST_POSTGRES_URL",
                    redact(&admin_url)
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{message} (CI=true: PostgreSQL tests must run)");
                }
                eprintln!("note: skipping a PostgreSQL test: {message}");
                return None;
            }
        };
        let name = format!("usher_test_{}", unique_suffix());
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let _ = admin.close().await;
        Some(TestDb {
            backend: TestBackend::Postgres,
            url: with_database(&admin_url, &name),
            cleanup: Cleanup::PostgresDatabase { admin_url, name },
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                // Drop may run inside an async test's runtime, where blocking on another future
                // is not allowed: drop the database from a thread with its own small runtime.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let dropper = std::thread::spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            eprintln!("note: cannot drop the test database {name}: {e}");
                            return;
                        }
                    };
                    runtime.block_on(async {
                        let result = async {
                            let mut admin = connect_admin(&admin_url).await?;
                            sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .execute(&mut admin)
                            .await
                            .map_err(|e| e.to_string())?;
                            let _ = admin.close().await;
                            Ok::<(), String>(())
                        }
                        .await;
                        if let Err(e) = result {
                            eprintln!("note: cannot drop the test database {name}: {e}");
                        }
                    });
                });
                let _ = dropper.join();
            }
        }
    }
}

/// Runs `body` with a fresh database on `backend`; returns without running it when the
/// backend is unavailable (see [`TestDb::create`]). What [`on_both_backends!`] expands to.
///
/// [`on_both_backends!`]: crate::on_both_backends
pub async fn run<F, Fut>(backend: TestBackend, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(db) = TestDb::create(backend).await {
        body(db).await;
    }
}

/// Defines each test body twice, as `$name::sqlite` and `$name::postgres`, each receiving a
/// fresh [`TestDb`]:
///
/// ```ignore
/// usher_store::on_both_backends! {
///     /// Doc comments and attributes such as `#[should_panic]` apply to both tests.
///     async fn insert_then_find_by_username(db) {
///         let store = db.store().await;
///         // …
///     }
/// }
/// ```
///
/// The generated module imports everything from the calling module (`use super::*`), so
/// helpers defined beside the tests are in scope. The caller needs `tokio` (with the
/// `macros` and `rt-multi-thread` features) as a dependency.
#[macro_export]
macro_rules! on_both_backends {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($db:ident) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn __usher_test_body($db: $crate::testing::TestDb) $body

            $(#[$meta])*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::testing::run($crate::testing::TestBackend::Sqlite, __usher_test_body).await;
            }

            $(#[$meta])*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::testing::run($crate::testing::TestBackend::Postgres, __usher_test_body)
                    .await;
            }
        }
    )*};
}

/// Unique across processes (pid), runs (time) and tests of one process (counter).
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}_{nanos}_{n}", std::process::id())
}

async fn connect_admin(url: &str) -> Result<sqlx::PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// `url` with its database (the path) replaced by `name`, keeping the query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => {
            let credentials = &authority[..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    &url[..scheme_end],
                    &url[scheme_end + at..]
                ),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_replace_the_path_and_keep_the_query() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@host/db?sslmode=disable", "t2"),
            "postgres://u:p@host/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://host:5433", "t3"),
            "postgresql://host:5433/t3"
        );
        assert_eq!(
            with_database("postgres://host?sslmode=disable", "t4"),
            "postgres://host/t4?sslmode=disable"
        );
    }

    #[test]
    fn messages_never_show_the_password() {
        assert_eq!(
            redact("postgres://u:secret@host/db"),
            "postgres://u:***@host/db"
        );
        assert_eq!(redact("postgres://u@host/db"), "postgres://u@host/db");
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }

    #[test]
    fn suffixes_are_unique_within_a_process() {
        assert_ne!(unique_suffix(), unique_suffix());
    }
}

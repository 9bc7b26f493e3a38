//! The two stores the benchmark runs on, each fresh for every phase: SQLite in a new
//! temporary directory, PostgreSQL as a new database `usher_bench_<pid>` created through an
//! administrative connection and dropped at the end.

use std::path::PathBuf;

use anyhow::{bail, Context};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A fresh, empty store and the directory the server runs in.
pub struct Store {
    pub backend: Backend,
    pub database_url: String,
    pub work_dir: PathBuf,
    /// The administrative URL and the database to drop, on PostgreSQL.
    postgres: Option<(String, String)>,
}

/// The name of the database the benchmark creates on PostgreSQL.
pub fn postgres_database_name() -> String {
    format!("usher_bench_{}", std::process::id())
}

/// The directory of this run's stores.
fn run_dir() -> PathBuf {
    std::env::temp_dir().join(format!("usher-bench-{}", std::process::id()))
}

/// After an interruption: drops this run's database (if PostgreSQL answers) and removes its
/// directory.
pub async fn remove_leftovers(postgres_admin_url: &str) {
    let name = postgres_database_name();
    let drop = async {
        let mut conn = sqlx::PgConnection::connect(postgres_admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drop).await;
    let _ = std::fs::remove_dir_all(run_dir());
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut parsed = reqwest::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    match parsed.host_str() {
        Some("127.0.0.1" | "localhost" | "::1" | "[::1]") => {}
        other => bail!("the benchmark talks to 127.0.0.1 only; --postgres-url names {other:?}"),
    }
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

/// Whether PostgreSQL answers at `admin_url`, and its version.
pub async fn postgres_version(admin_url: &str) -> anyhow::Result<String> {
    with_database(admin_url, "postgres")?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sqlx::PgConnection::connect(admin_url),
    )
    .await
    .context("connecting to PostgreSQL timed out")??;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(version)
}

impl Store {
    /// A fresh store for one phase (`phase` names its directory).
    pub async fn create(
        backend: Backend,
        phase: &str,
        postgres_admin_url: &str,
    ) -> anyhow::Result<Self> {
        let work_dir = run_dir().join(format!("{}-{phase}", backend.slug()));
        if work_dir.exists() {
            std::fs::remove_dir_all(&work_dir)?;
        }
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        match backend {
            Backend::Sqlite => Ok(Self {
                backend,
                database_url: format!("sqlite://{}", work_dir.join("usher.db").display()),
                work_dir,
                postgres: None,
            }),
            Backend::Postgres => {
                let name = postgres_database_name();
                let mut conn = sqlx::PgConnection::connect(postgres_admin_url)
                    .await
                    .with_context(|| format!("connecting to {postgres_admin_url}"))?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .with_context(|| format!("creating the database {name}"))?;
                let _ = conn.close().await;
                Ok(Self {
                    backend,
                    database_url: with_database(postgres_admin_url, &name)?,
                    work_dir,
                    postgres: Some((postgres_admin_url.to_owned(), name)),
                })
            }
        }
    }

    /// Drops the database and removes the directory (after the server was stopped).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let Some((admin_url, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("dropping the database {name}"))?;
            let _ = conn.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
        if let Some(parent) = self.work_dir.parent() {
            // Only when empty: the other backend's directory may still be in use.
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_only_loopback_is_accepted() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "usher_bench_1"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/usher_bench_1"
        );
        assert!(with_database("postgres://u@db.example.org/x", "y").is_err());
    }
}

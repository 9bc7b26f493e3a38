//! Usher's store on SQLite (embedded, the default) or PostgreSQL, chosen by the URL scheme.
//!
//! Both backends share one implementation of [`usher_core::store::Store`]: the SQL they
//! understand alike is written once and run on each backend's own native driver
//! ([`pool::on_pool!`]), so that every query is type-checked against both; where they differ
//! (schema, migrations, connection settings) each has its own. The contract test suite in
//! `tests/contract` runs every operation against both databases, with fresh databases from
//! [`testing`].

mod pool;
mod rows;
mod sql;
mod sql_store;
pub mod testing;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use pool::Pool;
pub use sql_store::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the directory for {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Open(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens the database named by `url`, creating an SQLite file (and its directory) on first use.
pub async fn connect(url: &str) -> Result<SqlStore, ConnectError> {
    let pool = match Backend::of_url(url) {
        Some(Backend::Sqlite) => Pool::Sqlite(open_sqlite(url).await?),
        Some(Backend::Postgres) => Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?,
        ),
        None => return Err(ConnectError::UnsupportedUrl(url.to_owned())),
    };
    Ok(SqlStore::new(pool))
}

/// Opens and migrates: what `usher serve` and `usher migrate` do first.
pub async fn connect_and_migrate(url: &str) -> Result<Arc<SqlStore>, ConnectError> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

async fn open_sqlite(url: &str) -> Result<sqlx::SqlitePool, ConnectError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets readers proceed while one writer writes; NORMAL sync is durable across
        // process crashes, which is the failure that matters for an embedded store.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !Path::new(dir).exists() {
            std::fs::create_dir_all(dir).map_err(|source| ConnectError::Directory {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    Ok(SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?)
}

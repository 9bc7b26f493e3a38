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
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => {
            let (readers, writer) = open_sqlite(url).await?;
            Ok(SqlStore::with_writer(
                Pool::Sqlite(readers),
                Pool::Sqlite(writer),
            ))
        }
        Some(Backend::Postgres) => Ok(SqlStore::new(Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings a connection before every use by default: one more round trip
                // per query (a creation without password made 8, 2 of them pings). Only a
                // connection left idle is tested now, the one a database restart or a
                // network cut may have broken unnoticed; a busy one would have failed its
                // last query, and sqlx closes a connection that failed that way.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_AFTER_IDLE {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await?,
        ))),
        None => Err(ConnectError::UnsupportedUrl(url.to_owned())),
    }
}

/// Opens and migrates: what `usher serve` and `usher migrate` do first.
pub async fn connect_and_migrate(url: &str) -> Result<Arc<SqlStore>, ConnectError> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// How long a PostgreSQL connection may sit idle in the pool before it is tested on its next
/// use.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// The page cache of SQLite's one writing connection, in KiB. An import touches pages all over
/// the indexes of `people` and `audit_log`; with SQLite's default 2 MiB, each step read them
/// back from the file (measured: about 3 reads and 5 writes of a page per imported row). 32
/// MiB was measured a little faster again, but took the server past 256 MiB while importing a
/// million people (W5 of the benchmark).
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// The page cache of each reading connection, in KiB (SQLite's default is 2 MiB). Reads are of
/// a few pages each (a page of people, the change feed, the lookups of an import step); the
/// memory is better spent on the writer's.
const READER_CACHE_KIB: u32 = 1024;

/// Pages in the WAL before the writer copies them back to the database file (4 KiB each: 256
/// MiB). SQLite's default of 1,000 pages made a checkpoint, with its fsync, after nearly
/// every import step. A checkpoint copies each page once however many times the WAL holds it,
/// and an import's steps dirty the same index pages again and again: at 100,000 people, 32 MiB
/// checkpointed every third 2,000-row step (60 ms each), 128 MiB every eleventh (130 ms), a
/// step's share of them going from 20 ms to 12. Once steps were read through `usher_rows`,
/// 256 MiB against 128 took the files of 10,000, 1,000, 10,000 and 100,000 new people and the
/// update of the last, imported in turn on a fresh store, from 3.84–4.07 s to 3.33–3.47 (3
/// alternated runs each; the 100,000 new people from 46,100–49,900 rows/s to 61,600–64,500,
/// part of it a checkpoint that now comes later). The WAL file keeps its largest size on disk.
/// (Larger pages were measured too: 16 KiB pages made imports 20% faster but single creations
/// 40% slower, each commit writing whole pages; 4 KiB stays.)
const WAL_CHECKPOINT_PAGES: u32 = 65536;

/// Opens the readers' pool and the writer's single connection.
async fn open_sqlite(url: &str) -> Result<(sqlx::SqlitePool, sqlx::SqlitePool), ConnectError> {
    // Before any connection opens: each one gets the functions as it does.
    sql_store::register_sqlite_functions();
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets readers proceed while one writer writes; NORMAL sync is durable across
        // process crashes, which is the failure that matters for an embedded store.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !Path::new(dir).exists() {
            std::fs::create_dir_all(dir).map_err(|source| ConnectError::Directory {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    // Each connection is a thread of this process on a local file: testing it before each
    // use (sqlx's default) was one more round trip to that thread per query.
    let readers = SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .connect_with(
            options
                .clone()
                .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
        )
        .await?;
    // SQLite writes one transaction at a time whatever the number of connections: writes
    // queue for this one, whose cache keeps the pages the last transactions touched. It is
    // never closed for idleness, so that the cache lasts.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(
            // Negative: a size in KiB rather than in pages.
            options.pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
        )
        .await?;
    Ok((readers, writer))
}

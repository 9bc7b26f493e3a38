//! [`SqlStore`]: the store contract on either backend.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use usher_core::audit::{AuditEntry, AuditFilter, AuditRecord};
use usher_core::clock::to_millis;
use usher_core::groups::Membership;
use usher_core::import::{
    ImportIssue, ImportJob, ImportKeys, ImportLease, ImportLookup, ImportState, ImportStep,
    ImportUpdate, NewImport, PreparedRows,
};
use usher_core::mail::{Delivery, NewOutboxMessage, OutboxMessage};
use usher_core::people::Person;
use usher_core::query::{Page, UserFilter, UserQuery};
use usher_core::search::{ChangeCursor, ChangeKey, IndexedPerson};
use usher_core::store::{
    ActingPerson, Conflict, IdentityInUse, JobLease, JobRecord, LoginFailures, NewPerson, NewSpace,
    NewToken, PersonUpdate, QueueCounts, SessionRecord, Space, SpaceInvitation, Store, StoreError,
    StoreResult, TokenKind, TokenRecord,
};

use crate::pool::{on_pool, Pool};
use crate::rows::{inserted_person, AuditRow, PersonRow};
use crate::sql::{
    bind_all, bind_derived, bind_profile, insert_audit, insert_message, insert_new_person,
    order_by, person_conditions, Bind, Conditions, DerivedColumns, PEOPLE_VIEW, PERSON_COLUMNS,
};

/// How precisely an API token's last use is recorded.
const TOKEN_USE_PRECISION_MS: i64 = 60_000;

pub struct SqlStore {
    pool: Pool,
    /// Where write transactions run: on SQLite one connection of its own, whose page cache
    /// stays warm from one transaction to the next (see `crate::connect`); on PostgreSQL the
    /// same pool as reads.
    writer: Pool,
}

pub(crate) fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

/// Maps driver errors, turning unique violations into the conflict they mean.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let what = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
            if what.contains("email") {
                return StoreError::Conflict(Conflict::EmailTaken);
            }
            if what.contains("username") {
                return StoreError::Conflict(Conflict::UsernameTaken);
            }
        }
    }
    if matches!(e, sqlx::Error::RowNotFound) {
        return StoreError::NotFound;
    }
    backend(e.to_string())
}

/// How each backend begins a transaction that writes.
pub(crate) trait WriteTransaction: sqlx::Database {
    const BEGIN: &'static str;

    /// Whether one query may hold several statements separated by `;`. Each statement a
    /// query saves is, on SQLite, one hand-over to the connection's thread and back.
    const SEVERAL_STATEMENTS_PER_CALL: bool;

    /// The statement that lets a transaction's commit return before it is flushed to disk,
    /// where the backend waits for that flush (see `apply_step` of an import, the one user).
    const COMMIT_WITHOUT_FLUSH: Option<&'static str>;

    /// The turn a writer must take first, if this backend wants writers of one process in
    /// line rather than racing for the database's lock.
    fn write_turns(pool: &sqlx::Pool<Self>) -> Option<Arc<Semaphore>>;
}

impl WriteTransaction for sqlx::Sqlite {
    /// Takes the write lock at once, waiting for it up to the busy timeout. A deferred `BEGIN`
    /// that reads before it writes fails with SQLITE_BUSY ("database is locked"), without
    /// waiting, when another connection wrote in between.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    /// sqlx runs each statement of a query's text in turn, binding `$N` to the query's N-th
    /// argument in every one of them.
    const SEVERAL_STATEMENTS_PER_CALL: bool = true;

    /// In WAL mode with `synchronous = NORMAL` a commit never waits for a flush.
    const COMMIT_WITHOUT_FLUSH: Option<&'static str> = None;

    /// SQLite has one writer at a time; the others wait in its busy handler, which sleeps
    /// 1, 2, 5, 10… up to 100 ms between tries: under a few concurrent writers most of the
    /// time goes to sleeping (seen: 390 creations/s with 8 clients, p99 170 ms). Writers of
    /// this process (every pool on the same file) queue for one turn instead, first come first
    /// served; the busy timeout remains for other processes (`usher import` beside `serve`).
    fn write_turns(pool: &sqlx::Pool<Self>) -> Option<Arc<Semaphore>> {
        static TURNS: OnceLock<Mutex<HashMap<PathBuf, Arc<Semaphore>>>> = OnceLock::new();
        let file = pool.connect_options().get_filename().to_path_buf();
        let file = file.canonicalize().unwrap_or(file);
        let mut turns = TURNS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(
            turns
                .entry(file)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone(),
        )
    }
}

impl WriteTransaction for sqlx::Postgres {
    const BEGIN: &'static str = "BEGIN";

    /// The extended protocol takes one statement per prepared query.
    const SEVERAL_STATEMENTS_PER_CALL: bool = false;

    const COMMIT_WITHOUT_FLUSH: Option<&'static str> = Some("SET LOCAL synchronous_commit = off");

    /// PostgreSQL locks rows, not the database: writers proceed together.
    fn write_turns(_: &sqlx::Pool<Self>) -> Option<Arc<Semaphore>> {
        None
    }
}

/// A transaction that writes, holding this process's write turn (SQLite) until it ends.
/// Dereferences to the connection, as a `sqlx::Transaction` does.
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl<DB: sqlx::Database> WriteTx<DB> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// Whether the backend of `connection` runs several statements of one query's text in one
/// call.
pub(crate) fn runs_several_statements_per_call<C>(_: &C) -> bool
where
    C: sqlx::Connection,
    C::Database: WriteTransaction,
{
    <C::Database as WriteTransaction>::SEVERAL_STATEMENTS_PER_CALL
}

/// Whether [`insert_new_person`] is one statement on `pool`'s backend (PostgreSQL), which
/// needs no transaction around it.
fn one_statement_is_a_transaction<DB: WriteTransaction>(_: &sqlx::Pool<DB>) -> bool {
    !DB::SEVERAL_STATEMENTS_PER_CALL
}

/// [`WriteTransaction::COMMIT_WITHOUT_FLUSH`] of `pool`'s backend, for code written once for
/// both (`on_pool!`), which cannot name the backend's type.
pub(crate) fn commit_without_flush<DB: WriteTransaction>(
    _: &sqlx::Pool<DB>,
) -> Option<&'static str> {
    DB::COMMIT_WITHOUT_FLUSH
}

pub(crate) async fn begin_write<DB: WriteTransaction>(
    pool: &sqlx::Pool<DB>,
) -> Result<WriteTx<DB>, sqlx::Error> {
    let turn = match DB::write_turns(pool) {
        Some(turns) => Some(
            turns
                .acquire_owned()
                .await
                .map_err(|_| sqlx::Error::PoolClosed)?,
        ),
        None => None,
    };
    Ok(WriteTx {
        tx: pool.begin_with(DB::BEGIN).await?,
        _turn: turn,
    })
}

fn select_person(condition: &str) -> String {
    format!("SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW} WHERE {condition}")
}

/// A person with `admin`, whether they belong to the group bound to `$2`; `extra` adds columns.
fn select_acting_person(extra: &str, condition: &str) -> String {
    format!(
        "SELECT {PERSON_COLUMNS}, \
         EXISTS (SELECT 1 FROM memberships m JOIN user_groups g ON g.id = m.group_id \
                 WHERE m.person_id = {PEOPLE_VIEW}.id AND g.path = $2) AS admin{extra} \
         FROM {PEOPLE_VIEW} WHERE {condition}"
    )
}

#[derive(sqlx::FromRow)]
struct ActingRow {
    #[sqlx(flatten)]
    person: PersonRow,
    admin: bool,
}

impl TryFrom<ActingRow> for ActingPerson {
    type Error = StoreError;

    fn try_from(row: ActingRow) -> Result<Self, StoreError> {
        Ok(ActingPerson {
            person: Person::try_from(row.person)?,
            admin: row.admin,
        })
    }
}

impl SqlStore {
    /// A store whose writes share the pool of its reads.
    pub fn new(pool: Pool) -> Self {
        Self {
            writer: pool.clone(),
            pool,
        }
    }

    /// A store whose write transactions run on `writer`, a pool on the same database.
    pub fn with_writer(pool: Pool, writer: Pool) -> Self {
        Self { pool, writer }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &Pool {
        &self.writer
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await,
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await,
        }
    }

    pub async fn close(&self) {
        on_pool!(&self.writer, |p| p.close().await);
        on_pool!(&self.pool, |p| p.close().await)
    }

    async fn fetch_person(&self, condition: &str, value: Bind) -> StoreResult<Option<Person>> {
        let sql = select_person(condition);
        let row: Option<PersonRow> = on_pool!(&self.pool, |p| {
            bind_all!(sqlx::query_as::<_, PersonRow>(&sql), [&value])
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        row.map(Person::try_from).transpose()
    }
}

mod bulk;
mod changes;
mod imports;
mod outbox;
mod spaces;

pub(crate) use imports::jsonb_rows::register as register_sqlite_functions;

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_pool!(&self.pool, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(db_error)
    }

    async fn count_people(&self) -> StoreResult<u64> {
        let n: i64 = on_pool!(&self.pool, |p| {
            sqlx::query_scalar("SELECT count(*) FROM people")
                .fetch_one(p)
                .await
        })
        .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let (imports, outbox): (Vec<(String, i64)>, Vec<(String, i64)>) =
            on_pool!(&self.pool, |p| {
                let imports = sqlx::query_as(
                    "SELECT state, count(*) FROM import_jobs GROUP BY state ORDER BY state",
                )
                .fetch_all(p)
                .await
                .map_err(db_error)?;
                let outbox = sqlx::query_as(
                    "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state",
                )
                .fetch_all(p)
                .await
                .map_err(db_error)?;
                (imports, outbox)
            });
        let counted = |rows: Vec<(String, i64)>| {
            rows.into_iter()
                .map(|(state, n)| (state, n.max(0) as u64))
                .collect()
        };
        Ok(QueueCounts {
            imports: counted(imports),
            outbox: counted(outbox),
        })
    }

    async fn insert_person(&self, new: &NewPerson, audit: &AuditRecord) -> StoreResult<Person> {
        let id: i64 = on_pool!(self.writer(), |p| {
            if one_statement_is_a_transaction(p) {
                // PostgreSQL inserts the person, their memberships and the audit entry in one
                // statement, atomic by itself: no BEGIN and COMMIT round trips around it.
                let mut connection = p.acquire().await.map_err(db_error)?;
                Ok(insert_new_person!(connection, new, None, audit))
            } else {
                let mut tx = begin_write(p).await.map_err(db_error)?;
                let id = insert_new_person!(tx, new, None, audit);
                tx.commit().await.map_err(db_error)?;
                Ok::<i64, StoreError>(id)
            }
        })?;
        Ok(inserted_person(new, id, None))
    }

    async fn person_by_id(&self, id: i64) -> StoreResult<Option<Person>> {
        self.fetch_person("id = $1", Bind::Int(id)).await
    }

    async fn acting_person(&self, id: i64) -> StoreResult<Option<ActingPerson>> {
        let sql = select_acting_person("", "id = $1");
        let row: Option<ActingRow> = on_pool!(&self.pool, |p| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(usher_core::groups::ADMINISTRATORS)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        row.map(ActingPerson::try_from).transpose()
    }

    async fn person_by_username(&self, username: &str) -> StoreResult<Option<Person>> {
        self.fetch_person("username = $1", Bind::Text(username.to_owned()))
            .await
    }

    async fn person_by_email(&self, email: &str) -> StoreResult<Option<Person>> {
        self.fetch_person("email_key = $1", Bind::Text(email.trim().to_lowercase()))
            .await
    }

    async fn username_was_deleted(&self, username: &str) -> StoreResult<bool> {
        let found: Option<i32> = on_pool!(&self.pool, |p| {
            sqlx::query_scalar("SELECT 1 FROM deleted_usernames WHERE username = $1")
                .bind(username)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        Ok(found.is_some())
    }

    async fn identity_in_use(&self, username: &str, email: &str) -> StoreResult<IdentityInUse> {
        let (reserved, taken, email_taken): (bool, bool, bool) = on_pool!(&self.pool, |p| {
            sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM deleted_usernames WHERE username = $1), \
                 EXISTS (SELECT 1 FROM people WHERE username = $1), \
                 EXISTS (SELECT 1 FROM people WHERE email_key = $2)",
            )
            .bind(username)
            .bind(email.trim().to_lowercase())
            .fetch_one(p)
            .await
        })
        .map_err(db_error)?;
        Ok(IdentityInUse {
            username_reserved: reserved,
            username_taken: taken,
            email_taken,
        })
    }

    async fn password_hash(&self, id: i64) -> StoreResult<Option<String>> {
        let hash: Option<Option<String>> = on_pool!(&self.pool, |p| {
            sqlx::query_scalar("SELECT password_hash FROM people WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        Ok(hash.flatten())
    }

    async fn update_person_notifying(
        &self,
        id: i64,
        u: &PersonUpdate,
        audit: &AuditRecord,
        notices: &[NewOutboxMessage],
    ) -> StoreResult<Person> {
        let profile = &u.profile;
        let (password_hash, temporary) = match &u.password {
            Some(change) => (Some(change.hash.clone()), Some(change.temporary)),
            None => (None, None),
        };
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let username: Option<String> =
                sqlx::query_scalar("SELECT username FROM people WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            let Some(username) = username else {
                return Err(StoreError::NotFound);
            };
            let derived = DerivedColumns::of(&username, &u.first_name, &u.last_name, &u.email);
            let query = sqlx::query(
                "UPDATE people SET first_name = $1, last_name = $2, email = $3, email_key = $4, \
                 first_name_key = $5, last_name_key = $6, search_text = $7, enabled = $8, \
                 position = $9, organization = $10, department = $11, location = $12, \
                 phone = $13, manager = $14, about_me = $15, time_zone = $16, \
                 password_hash = COALESCE($17, password_hash), \
                 password_temporary = COALESCE($18, password_temporary) \
                 WHERE id = $19",
            );
            let query = bind_derived!(
                query.bind(&u.first_name).bind(&u.last_name).bind(&u.email),
                derived
            );
            bind_profile!(query.bind(u.enabled), profile)
                .bind(&password_hash)
                .bind(temporary)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            for notice in notices {
                insert_message!(&mut *tx, notice)?;
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })?;
        self.person_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_person(&self, id: i64, audit: &AuditRecord) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let username: Option<String> =
                sqlx::query_scalar("DELETE FROM people WHERE id = $1 RETURNING username")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            let Some(username) = username else {
                return Err(StoreError::NotFound);
            };
            sqlx::query("INSERT INTO deleted_usernames (username, deleted_at) VALUES ($1, $2)")
                .bind(&username)
                .bind(to_millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            // Their history is read by name from now on: no person holds it any more.
            sqlx::query("UPDATE audit_log SET target_id = NULL WHERE target_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })
    }

    async fn search_people(&self, query: &UserQuery) -> StoreResult<Page<Person>> {
        let conditions = person_conditions(&query.filter);
        let where_clause = conditions.where_clause();
        let count_sql = format!("SELECT count(*) FROM people{where_clause}");
        let mut binds = conditions.binds.clone();
        let limit_placeholder = format!("${}", binds.len() + 1);
        let offset_placeholder = format!("${}", binds.len() + 2);
        binds.push(Bind::Int(i64::from(query.limit)));
        binds.push(Bind::Int(i64::try_from(query.offset).unwrap_or(i64::MAX)));
        let page_sql = format!(
            "SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW}{where_clause}{} LIMIT {limit_placeholder} OFFSET {offset_placeholder}",
            order_by(query.sort)
        );
        let (total, rows): (i64, Vec<PersonRow>) = on_pool!(&self.pool, |p| {
            let total: i64 = bind_all!(sqlx::query_scalar(&count_sql), &conditions.binds)
                .fetch_one(p)
                .await
                .map_err(db_error)?;
            let rows = bind_all!(sqlx::query_as::<_, PersonRow>(&page_sql), &binds)
                .fetch_all(p)
                .await
                .map_err(db_error)?;
            Ok::<_, StoreError>((total, rows))
        })?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(Person::try_from)
                .collect::<Result<_, _>>()?,
            total: total as u64,
        })
    }

    async fn people_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Person>> {
        self.fetch_people_by_ids(ids).await
    }

    async fn people_change_cursor(&self) -> StoreResult<ChangeCursor> {
        self.change_cursor().await
    }

    async fn changed_people(
        &self,
        since: &ChangeCursor,
        after: Option<ChangeKey>,
        limit: u32,
    ) -> StoreResult<Vec<IndexedPerson>> {
        self.people_changed_since(since, after, limit).await
    }

    async fn removed_people(&self, since: &ChangeCursor) -> StoreResult<Vec<i64>> {
        self.people_removed_since(since).await
    }

    async fn memberships(&self, person_id: i64) -> StoreResult<Vec<Membership>> {
        let rows: Vec<(String, String, String)> = on_pool!(&self.pool, |p| {
            sqlx::query_as(
                "SELECT m.role, g.path, g.label FROM memberships m \
                 JOIN user_groups g ON g.id = m.group_id WHERE m.person_id = $1 ORDER BY g.path",
            )
            .bind(person_id)
            .fetch_all(p)
            .await
        })
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(role, group, group_label)| Membership {
                role,
                group,
                group_label,
            })
            .collect())
    }

    async fn is_member(&self, person_id: i64, group_path: &str) -> StoreResult<bool> {
        let found: Option<i32> = on_pool!(&self.pool, |p| {
            sqlx::query_scalar(
                "SELECT 1 FROM memberships m JOIN user_groups g ON g.id = m.group_id \
                 WHERE m.person_id = $1 AND g.path = $2",
            )
            .bind(person_id)
            .bind(group_path)
            .fetch_optional(p)
            .await
        })
        .map_err(db_error)?;
        Ok(found.is_some())
    }

    async fn record_login(&self, person_id: i64, at: OffsetDateTime) -> StoreResult<()> {
        on_pool!(&self.pool, |p| {
            sqlx::query("UPDATE people SET last_login_at = $1 WHERE id = $2")
                .bind(to_millis(at))
                .bind(person_id)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)?;
        Ok(())
    }

    async fn insert_session(&self, s: &SessionRecord) -> StoreResult<()> {
        on_pool!(&self.pool, |p| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, person_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&s.token_hash)
            .bind(s.person_id)
            .bind(&s.csrf_token)
            .bind(to_millis(s.created_at))
            .bind(to_millis(s.expires_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(db_error)?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<SessionRecord>> {
        let row: Option<(String, i64, String, i64, i64)> = on_pool!(&self.pool, |p| {
            sqlx::query_as(
                "SELECT token_hash, person_id, csrf_token, created_at, expires_at FROM sessions \
                 WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(to_millis(now))
            .fetch_optional(p)
            .await
        })
        .map_err(db_error)?;
        Ok(row.map(
            |(token_hash, person_id, csrf_token, created_at, expires_at)| SessionRecord {
                token_hash,
                person_id,
                csrf_token,
                created_at: usher_core::clock::from_millis(created_at),
                expires_at: usher_core::clock::from_millis(expires_at),
            },
        ))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        on_pool!(&self.pool, |p| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)?;
        Ok(())
    }

    async fn delete_sessions_of(
        &self,
        person_id: i64,
        except_token_hash: Option<&str>,
    ) -> StoreResult<u64> {
        let done = on_pool!(&self.pool, |p| {
            sqlx::query(
                "DELETE FROM sessions WHERE person_id = $1 AND token_hash <> COALESCE($2, '')",
            )
            .bind(person_id)
            .bind(except_token_hash)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(db_error)?;
        Ok(done)
    }

    async fn insert_api_token(
        &self,
        person_id: i64,
        name: &str,
        token_hash: &str,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            sqlx::query(
                "INSERT INTO api_tokens (person_id, name, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(person_id)
            .bind(name)
            .bind(token_hash)
            .bind(to_millis(audit.at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })
    }

    async fn api_token_owner(
        &self,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ActingPerson>> {
        // Every API request asks this: one read answers who holds the token, whether they
        // administer and when the token was last used. Recording each use would make every
        // read a write (and on SQLite queue it behind the one writer), so the use is
        // recorded to the minute.
        #[derive(sqlx::FromRow)]
        struct TokenRow {
            #[sqlx(flatten)]
            acting: ActingRow,
            token_used_at: Option<i64>,
        }
        let sql = select_acting_person(
            ", (SELECT last_used_at FROM api_tokens WHERE token_hash = $1) AS token_used_at",
            "id = (SELECT person_id FROM api_tokens WHERE token_hash = $1)",
        );
        let at = to_millis(at);
        let row: Option<TokenRow> = on_pool!(&self.pool, |p| {
            sqlx::query_as(&sql)
                .bind(token_hash)
                .bind(usher_core::groups::ADMINISTRATORS)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row
            .token_used_at
            .is_none_or(|last| at - last >= TOKEN_USE_PRECISION_MS)
        {
            on_pool!(&self.pool, |p| {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
                    .bind(at)
                    .bind(token_hash)
                    .execute(p)
                    .await
                    .map(|_| ())
            })
            .map_err(db_error)?;
        }
        ActingPerson::try_from(row.acting).map(Some)
    }

    async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>> {
        let row: Option<(i64, i64)> = on_pool!(&self.pool, |p| {
            sqlx::query_as("SELECT count, last_at FROM login_failures WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        Ok(row.map(|(count, last_at)| LoginFailures {
            count: count.clamp(0, i64::from(u32::MAX)) as u32,
            last_at: usher_core::clock::from_millis(last_at),
        }))
    }

    async fn record_login_failure(&self, key: &str, at: OffsetDateTime) -> StoreResult<u32> {
        let count: i64 = on_pool!(&self.pool, |p| {
            sqlx::query_scalar(
                "INSERT INTO login_failures (key, count, last_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET count = login_failures.count + 1, \
                 last_at = excluded.last_at RETURNING count",
            )
            .bind(key)
            .bind(to_millis(at))
            .fetch_one(p)
            .await
        })
        .map_err(db_error)?;
        Ok(count.clamp(0, i64::from(u32::MAX)) as u32)
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        on_pool!(&self.pool, |p| {
            sqlx::query("DELETE FROM login_failures WHERE key = $1")
                .bind(key)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)?;
        Ok(())
    }

    async fn record_invitation(
        &self,
        token: &NewToken,
        message: &NewOutboxMessage,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        self.record_token_and_message(token, message, Some(audit))
            .await
    }

    async fn record_password_reset(
        &self,
        token: &NewToken,
        message: &NewOutboxMessage,
    ) -> StoreResult<()> {
        self.record_token_and_message(token, message, None).await
    }

    async fn queue_message(&self, message: &NewOutboxMessage) -> StoreResult<i64> {
        self.insert_message(message).await
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.find_token(hash).await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        kind: TokenKind,
        password_hash: &str,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<i64> {
        self.redeem(hash, kind, password_hash, at, audit).await
    }

    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease_until: OffsetDateTime,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.claim(now, limit, lease_until).await
    }

    async fn message_sent(&self, id: i64, at: OffsetDateTime) -> StoreResult<()> {
        self.mark_sent(id, at).await
    }

    async fn message_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        self.mark_failed(id, error, retry_at).await
    }

    async fn message_delivery(&self, id: i64) -> StoreResult<Option<Delivery>> {
        self.delivery(id).await
    }

    async fn insert_space(
        &self,
        space: &NewSpace,
        audit: &AuditRecord,
    ) -> StoreResult<Option<Space>> {
        self.insert_space_row(space, audit).await
    }

    async fn update_space(&self, space: &Space, audit: &AuditRecord) -> StoreResult<()> {
        self.update_space_row(space, audit).await
    }

    async fn space(&self, name: &str) -> StoreResult<Option<Space>> {
        self.space_row(name).await
    }

    async fn spaces(&self, member: Option<i64>) -> StoreResult<Vec<Space>> {
        self.space_rows(member).await
    }

    async fn space_members(&self, space: &Space) -> StoreResult<Vec<(Person, String)>> {
        self.space_member_rows(space).await
    }

    async fn role_in(&self, person_id: i64, group_path: &str) -> StoreResult<Option<String>> {
        self.role_of(person_id, group_path).await
    }

    async fn set_membership(
        &self,
        person_id: i64,
        group_path: &str,
        role: &str,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        self.upsert_membership(person_id, group_path, role, audit)
            .await
    }

    async fn remove_membership(
        &self,
        person_id: i64,
        group_path: &str,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        self.delete_membership(person_id, group_path, audit).await
    }

    async fn record_space_invitation(
        &self,
        invitation: &SpaceInvitation,
        token_hash: &str,
        message: &NewOutboxMessage,
        audit: &AuditRecord,
    ) -> StoreResult<i64> {
        self.record_space_invitation_row(invitation, token_hash, message, audit)
            .await
    }

    async fn space_invitations(&self, space: &Space) -> StoreResult<Vec<SpaceInvitation>> {
        self.space_invitation_rows(space).await
    }

    async fn space_invitation(&self, id: i64) -> StoreResult<Option<SpaceInvitation>> {
        self.space_invitation_where("id = $1", spaces::SpaceKey::Id(id))
            .await
    }

    async fn space_invitation_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SpaceInvitation>> {
        self.space_invitation_where("token_hash = $1", spaces::SpaceKey::Hash(token_hash))
            .await
    }

    async fn revoke_space_invitation(&self, id: i64, audit: &AuditRecord) -> StoreResult<()> {
        self.revoke_space_invitation_row(id, audit).await
    }

    async fn accept_space_invitation(
        &self,
        id: i64,
        new: &NewPerson,
        audit: &AuditRecord,
    ) -> StoreResult<Person> {
        self.accept_space_invitation_row(id, new, audit).await
    }

    async fn matching_people(&self, filter: &UserFilter) -> StoreResult<Vec<Person>> {
        self.select_matching(filter).await
    }

    async fn set_enabled_many(
        &self,
        person_ids: &[i64],
        enabled: bool,
        audits: &[AuditRecord],
    ) -> StoreResult<u64> {
        self.enable_many(person_ids, enabled, audits).await
    }

    async fn insert_job(&self, job: &JobRecord) -> StoreResult<i64> {
        self.insert_job_row(job).await
    }

    async fn update_job(&self, job: &JobRecord) -> StoreResult<()> {
        self.update_job_row(job).await
    }

    async fn job(&self, id: i64) -> StoreResult<Option<JobRecord>> {
        self.job_row(id).await
    }

    async fn insert_resumable_job(
        &self,
        job: &JobRecord,
        spec: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<i64> {
        self.insert_resumable_job_row(job, spec, lease).await
    }

    async fn record_job_part(
        &self,
        job_id: i64,
        seq: u32,
        processed: u64,
        part: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<()> {
        self.insert_job_part(job_id, seq, processed, part, lease)
            .await
    }

    async fn job_parts(&self, job_id: i64) -> StoreResult<Vec<serde_json::Value>> {
        self.job_part_rows(job_id).await
    }

    async fn claim_stalled_job(
        &self,
        now: OffsetDateTime,
        lease: &JobLease,
    ) -> StoreResult<Option<(JobRecord, serde_json::Value)>> {
        self.claim_stalled_job_row(now, lease).await
    }

    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        on_pool!(&self.pool, |p| insert_audit!(p, audit))?;
        Ok(())
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Page<AuditEntry>> {
        let mut c = Conditions::default();
        if let Some(actor) = &filter.actor {
            c.push("actor = ?", Bind::Text(actor.clone()));
        }
        if let Some(target) = &filter.target {
            // A person's entries by their id, the others by their text (migration `..09`).
            c.push(
                "(target_id = (SELECT tp.id FROM people tp WHERE tp.username = ?) \
                 OR (target_id IS NULL AND target = ?))",
                Bind::Text(target.clone()),
            );
        }
        if let Some(action) = &filter.action {
            c.push("action = ?", Bind::Text(action.clone()));
        }
        if let Some(since) = filter.since {
            c.push("at >= ?", Bind::Int(to_millis(since)));
        }
        if let Some(until) = filter.until {
            c.push("at < ?", Bind::Int(to_millis(until)));
        }
        let where_clause = c.where_clause();
        let count_sql = format!("SELECT count(*) FROM audit_log{where_clause}");
        let limit = c.next_placeholder();
        let mut binds = c.binds.clone();
        binds.push(Bind::Int(i64::from(filter.limit)));
        let offset = format!("${}", binds.len() + 1);
        binds.push(Bind::Int(i64::try_from(filter.offset).unwrap_or(i64::MAX)));
        let page_sql = format!(
            "SELECT id, at, actor, action, target, details FROM audit_log{where_clause} \
             ORDER BY at DESC, id DESC LIMIT {limit} OFFSET {offset}"
        );
        let (total, rows): (i64, Vec<AuditRow>) = on_pool!(&self.pool, |p| {
            let total: i64 = bind_all!(sqlx::query_scalar(&count_sql), &c.binds)
                .fetch_one(p)
                .await
                .map_err(db_error)?;
            let rows = bind_all!(sqlx::query_as::<_, AuditRow>(&page_sql), &binds)
                .fetch_all(p)
                .await
                .map_err(db_error)?;
            Ok::<_, StoreError>((total, rows))
        })?;
        Ok(Page {
            items: rows.into_iter().map(AuditEntry::from).collect(),
            total: total as u64,
        })
    }

    // Imports: see `sql_store/imports.rs`.

    async fn create_import(&self, new: &NewImport) -> StoreResult<i64> {
        self.insert_import(new).await
    }

    async fn append_import_chunk(&self, job_id: i64, seq: u32, data: &[u8]) -> StoreResult<()> {
        self.insert_import_chunk(job_id, seq, data).await
    }

    async fn queue_import(
        &self,
        job_id: i64,
        rows: u64,
        file_bytes: u64,
        lease: Option<&ImportLease>,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob> {
        self.queue_import_job(job_id, rows, file_bytes, lease, audit)
            .await
    }

    async fn discard_import(&self, job_id: i64) -> StoreResult<()> {
        self.delete_receiving_import(job_id).await
    }

    async fn purge_abandoned_imports(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.purge_receiving_imports(before).await
    }

    async fn import_job(&self, id: i64) -> StoreResult<Option<ImportJob>> {
        self.fetch_import_job(id).await
    }

    async fn import_jobs(&self, limit: u32, offset: u64) -> StoreResult<Page<ImportJob>> {
        self.list_import_jobs(limit, offset).await
    }

    async fn import_chunk(&self, job_id: i64, seq: u32) -> StoreResult<Option<Vec<u8>>> {
        self.fetch_import_chunk(job_id, seq).await
    }

    async fn claim_import(
        &self,
        lease: &ImportLease,
        now: OffsetDateTime,
        reclaim_from: Option<&str>,
    ) -> StoreResult<Option<ImportJob>> {
        self.claim_import_job(lease, now, reclaim_from).await
    }

    async fn import_lookup(&self, keys: &ImportKeys) -> StoreResult<ImportLookup> {
        self.lookup_for_import(keys).await
    }

    fn import_batch_rows(&self) -> usize {
        self.batch_rows()
    }

    fn prepare_import_rows(
        &self,
        creates: &[&NewPerson],
        updates: &[&ImportUpdate],
        audits: &[&AuditRecord],
    ) -> Option<PreparedRows> {
        self.prepare_rows(creates, updates, audits)
            .map(PreparedRows::new)
    }

    async fn apply_import_step(
        &self,
        job_id: i64,
        lease_token: &str,
        step: &ImportStep,
    ) -> StoreResult<()> {
        self.apply_step(job_id, lease_token, step).await
    }

    async fn import_invites(&self, job_id: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.pending_invites(job_id, limit).await
    }

    async fn clear_import_invite(&self, job_id: i64, username: &str) -> StoreResult<()> {
        self.delete_invite(job_id, username).await
    }

    async fn finish_import(
        &self,
        job_id: i64,
        lease_token: &str,
        state: ImportState,
        error: Option<&str>,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob> {
        self.end_import(job_id, lease_token, state, error, at, audit)
            .await
    }

    async fn import_issues(
        &self,
        job_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, ImportIssue)>> {
        self.fetch_import_issues(job_id, after, limit).await
    }
}

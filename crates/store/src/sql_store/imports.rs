//! Import jobs (product §6): jobs with their lease, files in chunks, report lines, and the
//! steps that apply a batch of rows.
//!
//! A step writes a whole batch with a handful of statements whatever its size: the rows of
//! each go to the database at once (`step_data`: one JSONB array on SQLite, JSON text or one
//! array per column on PostgreSQL), so that an 8,000-row batch is one round trip per table
//! rather than one per row. Each step first moves the job's progress, and only if the caller
//! still holds the lease and agrees on where the job stands: that fence is what keeps a row
//! from being applied twice when a worker that lost its job wakes up.

use time::OffsetDateTime;
use usher_core::audit::AuditRecord;
use usher_core::clock::{from_millis, to_millis};
use usher_core::groups::Membership;
use usher_core::import::{
    ImportCounts, ImportIssue, ImportJob, ImportKeys, ImportLease, ImportLookup, ImportState,
    ImportStep, ImportUpdate, NewImport, Severity,
};
use usher_core::people::Person;
use usher_core::query::Page;
use usher_core::store::{Conflict, NewPerson, StoreError, StoreResult};

use crate::sql::DerivedColumns;

use super::{backend, begin_write, commit_without_flush, db_error, SqlStore};
use step_data::{
    rows_from, unnest_rows, update_columns, Fields, PreparedStepRows, StepData, AUDIT_FIELDS,
    ID_FIELDS, ISSUE_FIELDS, MEMBERSHIP_FIELDS, NEW_MEMBERSHIP_FIELDS, PERSON_FIELDS,
    PG_AUDIT_FIELDS, SQLITE_AUDIT_FIELDS, UPDATE_FIELDS, USERNAME_FIELDS,
};
use step_rows::StepRows;

mod jsonb;
pub(crate) mod jsonb_rows;
mod step_data;
mod step_rows;
use crate::pool::{on_pool, Pool};
use crate::rows::PersonRow;
use crate::sql::{insert_audit, insert_message, people_as_json_array, PEOPLE_VIEW, PERSON_COLUMNS};

/// Imports writing at least this many people refresh PostgreSQL's statistics when they end.
const ANALYZE_AFTER_ROWS: i64 = 10_000;

const JOB_COLUMNS: &str = "id, state, dry_run, file_name, file_bytes, actor, row_count, \
    processed, created, updated, unchanged, failed, warnings, created_at, started_at, \
    finished_at, error, owner, lease_until, attempts";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    state: String,
    dry_run: bool,
    file_name: Option<String>,
    file_bytes: i64,
    actor: Option<String>,
    row_count: i64,
    processed: i64,
    created: i64,
    updated: i64,
    unchanged: i64,
    failed: i64,
    warnings: i64,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    error: Option<String>,
    owner: Option<String>,
    lease_until: Option<i64>,
    attempts: i64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl TryFrom<JobRow> for ImportJob {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(ImportJob {
            id: r.id,
            state: ImportState::parse(&r.state)
                .ok_or_else(|| backend(format!("unknown import state {:?}", r.state)))?,
            dry_run: r.dry_run,
            file_name: r.file_name,
            file_bytes: count(r.file_bytes),
            actor: r.actor,
            counts: ImportCounts {
                rows: count(r.row_count),
                processed: count(r.processed),
                created: count(r.created),
                updated: count(r.updated),
                unchanged: count(r.unchanged),
                failed: count(r.failed),
                warnings: count(r.warnings),
            },
            created_at: from_millis(r.created_at),
            started_at: r.started_at.map(from_millis),
            finished_at: r.finished_at.map(from_millis),
            error: r.error,
            owner: r.owner,
            lease_until: r.lease_until.map(from_millis),
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
        })
    }
}

/// `(person id, role, group path, group label)`.
type MembershipRow = (i64, String, String, String);

type IssueRow = (i64, i64, String, String, String, String, String);

/// The people `sql` (a query of [`PERSON_COLUMNS`] with one parameter) reads, `bind` bound.
async fn read_people(pool: &Pool, sql: &str, bind: &str) -> StoreResult<Vec<PersonRow>> {
    match pool {
        Pool::Sqlite(p) => {
            let json: String = sqlx::query_scalar(&people_as_json_array(sql))
                .bind(bind)
                .fetch_one(p)
                .await
                .map_err(db_error)?;
            serde_json::from_str(&json).map_err(|e| backend(format!("people read as JSON: {e}")))
        }
        Pool::Postgres(p) => sqlx::query_as(sql)
            .bind(bind)
            .fetch_all(p)
            .await
            .map_err(db_error),
    }
}

/// A subquery listing the strings of the JSON array bound to `$param`.
fn json_strings(pool: &Pool, param: usize) -> String {
    match pool {
        Pool::Sqlite(_) => format!("SELECT value FROM json_each(${param})"),
        Pool::Postgres(_) => format!("SELECT json_array_elements_text(${param}::json)"),
    }
}

/// The statements of a step for one backend.
struct StepSql {
    /// SQLite: the step stamps the people it writes with numbers of the change counter it
    /// reserves (`$2` of `insert_people` and the updates is the number before the first),
    /// instead of a trigger stamping each row with a second write. PostgreSQL stamps them with
    /// the transaction's id (the column's default, and a trigger on update).
    stamps_changes: bool,
    insert_people: String,
    insert_memberships: String,
    insert_new_memberships: String,
    /// The updates of people whose address changed (not only its case).
    update_people_and_email: String,
    /// The other updates: `email_key` stays as it is.
    update_people_keeping_email: String,
    end_sessions: String,
    insert_audit: String,
    insert_issues: String,
    insert_invites: String,
}

impl StepSql {
    fn new(pool: &Pool) -> Self {
        let names = |fields: Fields| {
            fields
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let select = |fields: Fields| {
            fields
                .iter()
                .map(|(n, _)| format!("j.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Two updates: the people whose address changed, and the others, whose statement
        // leaves `email_key` out. SQLite rewrites the entry of every index whose column a SET
        // names, changed or not: a 1,000-row update without the key (the email unique index
        // untouched) took 17 ms against 21 and committed 19 ms against 27, measured in
        // Python on the same schema at 110,000 people.
        let sets_of = |columns: &mut dyn Iterator<Item = &'static str>| {
            columns
                .map(|n| format!("{n} = j.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sets = sets_of(&mut update_columns());
        let mut sets_keeping_email = sets_of(&mut update_columns().filter(|n| *n != "email_key"));
        let stamps_changes = matches!(pool, Pool::Sqlite(_));
        // The statements of `StepRows`: JSON on SQLite, one array per column on PostgreSQL.
        let step_rows = |fields: Fields| match pool {
            Pool::Sqlite(_) => rows_from(pool, 1, fields),
            Pool::Postgres(_) => unnest_rows(fields),
        };
        let (stamp_column, stamp_value, stamp_set) = if stamps_changes {
            (
                ", change_seq",
                ", $2 + j.ord + 1",
                ", change_seq = $2 + j.ord + 1",
            )
        } else {
            // PostgreSQL: the transaction's id, which the update trigger would set row by row
            // (a PL/pgSQL call each); it leaves alone a row whose number changed (`..09`).
            ("", "", ", change_seq = pg_current_xact_id()::text::bigint")
        };
        sets.push_str(stamp_set);
        sets_keeping_email.push_str(stamp_set);
        Self {
            stamps_changes,
            // A username a deleted person held stays reserved: such rows are left out, and
            // the caller sees fewer rows back.
            // SQLite reads the new ids back apart (`StepRows::insert_people`); PostgreSQL
            // returns them.
            insert_people: format!(
                "INSERT INTO people ({}{stamp_column}) SELECT {}{stamp_value} FROM {} \
                 WHERE NOT EXISTS (SELECT 1 FROM deleted_usernames d WHERE d.username = j.username)\
                 {}",
                names(PERSON_FIELDS),
                select(PERSON_FIELDS),
                step_rows(PERSON_FIELDS),
                match pool {
                    Pool::Sqlite(_) => "",
                    Pool::Postgres(_) => " RETURNING id, username",
                }
            ),
            // `WHERE true` settles SQLite's parse of ON CONFLICT after a join.
            insert_memberships: format!(
                "INSERT INTO memberships (person_id, group_id, role) SELECT p.id, g.id, j.role \
                 FROM {} JOIN people p ON p.username = j.username \
                 JOIN user_groups g ON g.path = j.grp WHERE true \
                 ON CONFLICT (person_id, group_id) DO NOTHING",
                rows_from(pool, 1, MEMBERSHIP_FIELDS)
            ),
            // The memberships of people the step itself created: by id (their insert returned
            // them), and none can exist yet. On PostgreSQL the join on usernames and the
            // conflict check were half the cost of these inserts.
            insert_new_memberships: format!(
                "INSERT INTO memberships (person_id, group_id, role) \
                 SELECT j.person_id, g.id, j.role FROM {} JOIN user_groups g ON g.path = j.grp",
                step_rows(NEW_MEMBERSHIP_FIELDS)
            ),
            update_people_and_email: format!(
                "UPDATE people SET {sets} FROM {} WHERE people.id = j.id AND j.email_changed",
                rows_from(pool, 1, UPDATE_FIELDS)
            ),
            update_people_keeping_email: format!(
                "UPDATE people SET {sets_keeping_email} FROM {} \
                 WHERE people.id = j.id AND NOT j.email_changed",
                rows_from(pool, 1, UPDATE_FIELDS)
            ),
            end_sessions: format!(
                "DELETE FROM sessions WHERE person_id IN (SELECT j.id FROM {})",
                rows_from(pool, 1, ID_FIELDS)
            ),
            // An entry's person is given by its row (`step_data::StepPeople`): on SQLite the id
            // of a changed person or the place of a new one among the step's new people, whose
            // first id is `$2`; on PostgreSQL the id.
            insert_audit: match pool {
                Pool::Sqlite(_) => format!(
                    "INSERT INTO audit_log ({}, target_id) \
                     SELECT {}, coalesce(j.target_id, $2 + j.new_person) FROM {}",
                    names(AUDIT_FIELDS),
                    select(AUDIT_FIELDS),
                    rows_from(pool, 1, SQLITE_AUDIT_FIELDS)
                ),
                Pool::Postgres(_) => format!(
                    "INSERT INTO audit_log ({}) SELECT {} FROM {}",
                    names(PG_AUDIT_FIELDS),
                    select(PG_AUDIT_FIELDS),
                    unnest_rows(PG_AUDIT_FIELDS)
                ),
            },
            insert_issues: format!(
                "INSERT INTO import_issues (job_id, {}) SELECT $2, {} FROM {}",
                names(ISSUE_FIELDS),
                select(ISSUE_FIELDS),
                rows_from(pool, 1, ISSUE_FIELDS)
            ),
            insert_invites: format!(
                "INSERT INTO import_invites (job_id, username) SELECT $2, j.username FROM {} \
                 WHERE true ON CONFLICT (job_id, username) DO NOTHING",
                rows_from(pool, 1, USERNAME_FIELDS)
            ),
        }
    }
}

/// Rows per import batch on SQLite. Its one writer dirties most leaf pages of the random-order
/// indexes (usernames, emails) in every step whatever the step's size, and writes each of them
/// to the WAL at each commit. Measured through the server, medians of 5 runs of a 100,000-row
/// file: 4,000-row steps imported 30.7k rows/s at 10,000 people stored and 20.4k at 110,000,
/// 8,000-row steps 35.2k and 28.9k. A 1,000,000-row import then peaked at 203 MiB against 171
/// (12,000 rows: 246 MiB, too near W5's 256). (Before steps were read as JSONB and imports'
/// audit details rendered without `serde_json::Value`, 5,000 rows already peaked at 242 MiB.)
const SQLITE_BATCH_ROWS: usize = 8000;

/// Rows per import batch on PostgreSQL. Against 2,000 (3 alternated runs each, fresh stores):
/// 100,000 new people 19,400–20,900 rows/s against 20,600–20,900, their update 21,100–21,200
/// against 21,700–22,100, 10,000 new people within noise; a 1,000,000-row import peaked at
/// 116 MiB with 2,000-row batches.
const POSTGRES_BATCH_ROWS: usize = 4000;

impl SqlStore {
    /// See [`usher_core::store::Store::import_batch_rows`].
    pub(super) fn batch_rows(&self) -> usize {
        match self.writer() {
            Pool::Sqlite(_) => SQLITE_BATCH_ROWS,
            Pool::Postgres(_) => POSTGRES_BATCH_ROWS,
        }
    }

    /// See [`usher_core::store::Store::prepare_import_rows`]. Rows that cannot be encoded are
    /// left unprepared: the step encodes them again at its turn, and fails with why.
    pub(super) fn prepare_rows(
        &self,
        creates: &[&NewPerson],
        updates: &[&ImportUpdate],
        audits: &[&AuditRecord],
    ) -> Option<PreparedStepRows> {
        match self.writer() {
            Pool::Sqlite(_) => PreparedStepRows::sqlite(creates, updates, audits).ok(),
            Pool::Postgres(_) => Some(PreparedStepRows::Columns {
                derived: creates.iter().map(|n| DerivedColumns::of_new(n)).collect(),
            }),
        }
    }

    pub(super) async fn insert_import(&self, new: &NewImport) -> StoreResult<i64> {
        on_pool!(self.pool(), |p| {
            sqlx::query_scalar(
                "INSERT INTO import_jobs (state, dry_run, file_name, actor, created_at) \
                 VALUES ('receiving', $1, $2, $3, $4) RETURNING id",
            )
            .bind(new.dry_run)
            .bind(&new.file_name)
            .bind(&new.actor)
            .bind(to_millis(new.created_at))
            .fetch_one(p)
            .await
        })
        .map_err(db_error)
    }

    pub(super) async fn insert_import_chunk(
        &self,
        job_id: i64,
        seq: u32,
        data: &[u8],
    ) -> StoreResult<()> {
        on_pool!(self.pool(), |p| {
            sqlx::query("INSERT INTO import_chunks (job_id, seq, data) VALUES ($1, $2, $3)")
                .bind(job_id)
                .bind(i64::from(seq))
                .bind(data)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)
    }

    pub(super) async fn queue_import_job(
        &self,
        job_id: i64,
        rows: u64,
        file_bytes: u64,
        lease: Option<&ImportLease>,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob> {
        let (state, owner, token, until, started, attempts) = match lease {
            Some(l) => (
                "running",
                Some(l.owner.as_str()),
                Some(l.token.as_str()),
                Some(to_millis(l.until)),
                Some(to_millis(audit.at)),
                1i64,
            ),
            None => ("queued", None, None, None, None, 0),
        };
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let done = sqlx::query(
                "UPDATE import_jobs SET state = $1, row_count = $2, file_bytes = $3, owner = $4, \
                 lease_token = $5, lease_until = $6, started_at = $7, attempts = $8 \
                 WHERE id = $9 AND state = 'receiving'",
            )
            .bind(state)
            .bind(signed(rows))
            .bind(signed(file_bytes))
            .bind(owner)
            .bind(token)
            .bind(until)
            .bind(started)
            .bind(attempts)
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })?;
        self.fetch_import_job(job_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn delete_receiving_import(&self, job_id: i64) -> StoreResult<()> {
        on_pool!(self.pool(), |p| {
            sqlx::query("DELETE FROM import_jobs WHERE id = $1 AND state = 'receiving'")
                .bind(job_id)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)
    }

    pub(super) async fn purge_receiving_imports(&self, before: OffsetDateTime) -> StoreResult<u64> {
        on_pool!(self.pool(), |p| {
            sqlx::query("DELETE FROM import_jobs WHERE state = 'receiving' AND created_at < $1")
                .bind(to_millis(before))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(db_error)
    }

    pub(super) async fn fetch_import_job(&self, id: i64) -> StoreResult<Option<ImportJob>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM import_jobs WHERE id = $1 AND state <> 'receiving'");
        let row: Option<JobRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(db_error)?;
        row.map(ImportJob::try_from).transpose()
    }

    pub(super) async fn list_import_jobs(
        &self,
        limit: u32,
        offset: u64,
    ) -> StoreResult<Page<ImportJob>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM import_jobs WHERE state <> 'receiving' \
             ORDER BY id DESC LIMIT $1 OFFSET $2"
        );
        let (total, rows): (i64, Vec<JobRow>) = on_pool!(self.pool(), |p| {
            let total: i64 =
                sqlx::query_scalar("SELECT count(*) FROM import_jobs WHERE state <> 'receiving'")
                    .fetch_one(p)
                    .await
                    .map_err(db_error)?;
            let rows = sqlx::query_as(&sql)
                .bind(i64::from(limit))
                .bind(signed(offset))
                .fetch_all(p)
                .await
                .map_err(db_error)?;
            Ok::<_, StoreError>((total, rows))
        })?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(ImportJob::try_from)
                .collect::<Result<_, _>>()?,
            total: count(total),
        })
    }

    pub(super) async fn fetch_import_chunk(
        &self,
        job_id: i64,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        on_pool!(self.pool(), |p| {
            sqlx::query_scalar("SELECT data FROM import_chunks WHERE job_id = $1 AND seq = $2")
                .bind(job_id)
                .bind(i64::from(seq))
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)
    }

    pub(super) async fn claim_import_job(
        &self,
        lease: &ImportLease,
        now: OffsetDateTime,
        reclaim_from: Option<&str>,
    ) -> StoreResult<Option<ImportJob>> {
        // PostgreSQL: a job another node is claiming is skipped, not waited for. SQLite has
        // one writer at a time, which keeps claims apart already.
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE import_jobs SET state = 'running', owner = $1, lease_token = $2, \
             lease_until = $3, started_at = COALESCE(started_at, $4), attempts = attempts + 1 \
             WHERE id = (SELECT id FROM import_jobs WHERE state = 'queued' \
             OR (state = 'running' AND (lease_until < $4 OR owner = $5)) \
             ORDER BY id LIMIT 1{lock}) RETURNING {JOB_COLUMNS}"
        );
        let row: Option<JobRow> = on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let row = sqlx::query_as(&sql)
                .bind(&lease.owner)
                .bind(&lease.token)
                .bind(to_millis(lease.until))
                .bind(to_millis(now))
                .bind(reclaim_from)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok::<_, StoreError>(row)
        })?;
        row.map(ImportJob::try_from).transpose()
    }

    pub(super) async fn lookup_for_import(&self, keys: &ImportKeys) -> StoreResult<ImportLookup> {
        let pool = self.pool();
        let list = |v: &[&str]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut lookup = ImportLookup::default();
        if !keys.usernames.is_empty() {
            let usernames: Vec<&str> = keys.usernames.iter().map(String::as_str).collect();
            let usernames = list(&usernames);
            let people_sql = format!(
                "SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW} WHERE username IN ({})",
                json_strings(pool, 1)
            );
            let memberships_sql = format!(
                "SELECT m.person_id, m.role, g.path, g.label FROM memberships m \
                 JOIN user_groups g ON g.id = m.group_id JOIN people p ON p.id = m.person_id \
                 WHERE p.username IN ({}) ORDER BY g.path",
                json_strings(pool, 1)
            );
            let deleted_sql = format!(
                "SELECT username FROM deleted_usernames WHERE username IN ({})",
                json_strings(pool, 1)
            );
            // Memberships only matter to a batch that grants some (a `groups` column).
            let with_memberships = !keys.groups.is_empty();
            let people = read_people(pool, &people_sql, &usernames).await?;
            let (memberships, deleted): (Vec<MembershipRow>, Vec<String>) = on_pool!(pool, |p| {
                let memberships = if with_memberships {
                    sqlx::query_as(&memberships_sql)
                        .bind(&usernames)
                        .fetch_all(p)
                        .await
                        .map_err(db_error)?
                } else {
                    Vec::new()
                };
                let deleted = sqlx::query_scalar(&deleted_sql)
                    .bind(&usernames)
                    .fetch_all(p)
                    .await
                    .map_err(db_error)?;
                Ok::<_, StoreError>((memberships, deleted))
            })?;
            let mut by_person: std::collections::HashMap<i64, Vec<Membership>> =
                std::collections::HashMap::new();
            for (person_id, role, group, group_label) in memberships {
                by_person.entry(person_id).or_default().push(Membership {
                    role,
                    group,
                    group_label,
                });
            }
            for row in people {
                let person = Person::try_from(row)?;
                let memberships = by_person.remove(&person.id).unwrap_or_default();
                lookup.people.push((person, memberships));
            }
            lookup.deleted = deleted;
        }
        if !keys.email_keys.is_empty() {
            // The addresses of the people just read are answered from them (an address has
            // one owner); only the others are asked for: on a re-import, none.
            let known: std::collections::HashMap<String, (i64, &str)> = lookup
                .people
                .iter()
                .map(|(p, _)| (p.email.to_lowercase(), (p.id, p.username.as_str())))
                .collect();
            let mut owners = Vec::new();
            let mut unknown = Vec::new();
            for key in &keys.email_keys {
                match known.get(key) {
                    Some((id, username)) => owners.push((key.clone(), *id, (*username).to_owned())),
                    None => unknown.push(key.as_str()),
                }
            }
            if !unknown.is_empty() {
                let emails = list(&unknown);
                let sql = format!(
                    "SELECT email_key, id, username FROM people WHERE email_key IN ({})",
                    json_strings(pool, 1)
                );
                let found: Vec<(String, i64, String)> = on_pool!(pool, |p| {
                    sqlx::query_as(&sql).bind(&emails).fetch_all(p).await
                })
                .map_err(db_error)?;
                owners.extend(found);
            }
            lookup.email_owners = owners;
        }
        if !keys.groups.is_empty() {
            let groups: Vec<&str> = keys.groups.iter().map(String::as_str).collect();
            let groups = list(&groups);
            let sql = format!(
                "SELECT path FROM user_groups WHERE path IN ({})",
                json_strings(pool, 1)
            );
            lookup.groups = on_pool!(pool, |p| {
                sqlx::query_scalar(&sql).bind(&groups).fetch_all(p).await
            })
            .map_err(db_error)?;
        }
        Ok(lookup)
    }

    pub(super) async fn apply_step(
        &self,
        job_id: i64,
        lease_token: &str,
        step: &ImportStep,
    ) -> StoreResult<()> {
        let sql = StepSql::new(self.pool());
        let data = StepData::new(step, self.pool())?;
        let c = &step.counts;
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            // The fence first: on PostgreSQL it also locks the job's row, so that two workers
            // that both believe they hold the job commit one after the other, and the second
            // finds `processed` moved.
            let moved = sqlx::query(
                "UPDATE import_jobs SET processed = $1, created = $2, updated = $3, \
                 unchanged = $4, failed = $5, warnings = $6, lease_until = $7 \
                 WHERE id = $8 AND lease_token = $9 AND processed = $10 AND state = 'running'",
            )
            .bind(signed(c.processed))
            .bind(signed(c.created))
            .bind(signed(c.updated))
            .bind(signed(c.unchanged))
            .bind(signed(c.failed))
            .bind(signed(c.warnings))
            .bind(to_millis(step.lease_until))
            .bind(job_id)
            .bind(lease_token)
            .bind(signed(step.expected_processed))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if moved.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            // A step's commit need not wait for the disk: the step and the job's progress
            // commit together, so that a step lost to a power cut is lost whole and done again
            // when the job resumes, and the job's end, which the administrator is told of,
            // commits flushed, flushing every step before it. A step that queues mail waits,
            // so that no message leaves for a step that could be undone. On PostgreSQL the
            // flush took 1–5 ms of each 2,000-row step (`log_min_duration_statement`).
            let queues_mail = step.updates.iter().any(|u| !u.notices.is_empty());
            if let (Some(relax), false) = (commit_without_flush(p), queues_mail) {
                sqlx::query(relax)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            // The change numbers of the step's people: creations first, then updates.
            let mut first_change = 0i64;
            let written = step.creates.len() + step.updates.len();
            if sql.stamps_changes && written > 0 {
                let last: i64 = sqlx::query_scalar(
                    "UPDATE people_change_counter SET seq = seq + $1 WHERE id = 1 RETURNING seq",
                )
                .bind(signed(written as u64))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                first_change = last - signed(written as u64);
            }
            let mut ids = Vec::new();
            if !step.creates.is_empty() {
                ids = StepRows::insert_people(&mut tx, &sql, step, &data, first_change).await?;
                if ids.len() != step.creates.len() {
                    return Err(StoreError::Conflict(Conflict::UsernameReserved));
                }
                StepRows::insert_new_memberships(&mut tx, &sql, step, &ids).await?;
            }
            if let Some(updates) = &data.updates {
                let emails_changed = step.updates.iter().filter(|u| u.email_changed).count();
                let statements = [
                    (emails_changed > 0, &sql.update_people_and_email),
                    (
                        emails_changed < step.updates.len(),
                        &sql.update_people_keeping_email,
                    ),
                ];
                for (needed, statement) in statements {
                    if !needed {
                        continue;
                    }
                    let mut update = sqlx::query(statement).bind(updates.as_ref());
                    if sql.stamps_changes {
                        update = update.bind(first_change + signed(step.creates.len() as u64));
                    }
                    update.execute(&mut *tx).await.map_err(db_error)?;
                }
            }
            if let Some(memberships) = &data.added_memberships {
                sqlx::query(&sql.insert_memberships)
                    .bind(memberships)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            for notice in step.updates.iter().flat_map(|u| &u.notices) {
                insert_message!(&mut *tx, notice)?;
            }
            if let Some(ids) = &data.end_sessions {
                sqlx::query(&sql.end_sessions)
                    .bind(ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            StepRows::insert_audits(&mut tx, &sql, step, &data, &ids).await?;
            if let Some(issues) = &data.issues {
                sqlx::query(&sql.insert_issues)
                    .bind(issues)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            if let Some(invites) = &data.invites {
                sqlx::query(&sql.insert_invites)
                    .bind(invites)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn pending_invites(
        &self,
        job_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        on_pool!(self.pool(), |p| {
            sqlx::query_scalar(
                "SELECT username FROM import_invites WHERE job_id = $1 ORDER BY username LIMIT $2",
            )
            .bind(job_id)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })
        .map_err(db_error)
    }

    pub(super) async fn delete_invite(&self, job_id: i64, username: &str) -> StoreResult<()> {
        on_pool!(self.pool(), |p| {
            sqlx::query("DELETE FROM import_invites WHERE job_id = $1 AND username = $2")
                .bind(job_id)
                .bind(username)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(db_error)
    }

    /// PostgreSQL, after an import that wrote many people: it plans with the old statistics of
    /// `people` until autovacuum comes by (up to a minute), and the change feed's index scan
    /// had become a full scan, 25 ms before each search. Only the change number's column is
    /// analysed (45 ms at 100,000 people, against 200 ms for every column: the other
    /// columns' lookups go by unique indexes whatever the statistics), and after the job's
    /// end is committed, so that the job is not reported later for it. A failure is only
    /// logged: the statistics catch up with autovacuum.
    async fn analyze_after_import(&self) {
        if let Pool::Postgres(p) = self.writer() {
            if let Err(e) = sqlx::query("ANALYZE people (change_seq)").execute(p).await {
                tracing::warn!(error = %e, "refreshing the statistics of people after an import");
            }
        }
    }

    pub(super) async fn end_import(
        &self,
        job_id: i64,
        lease_token: &str,
        state: ImportState,
        error: Option<&str>,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob> {
        let written = on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            // How many people the job wrote comes back with the change.
            let written: Option<i64> = sqlx::query_scalar(
                "UPDATE import_jobs SET state = $1, error = $2, finished_at = $3, \
                 lease_token = NULL, lease_until = NULL \
                 WHERE id = $4 AND lease_token = $5 AND state = 'running' \
                 RETURNING created + updated",
            )
            .bind(state.as_str())
            .bind(error)
            .bind(to_millis(at))
            .bind(job_id)
            .bind(lease_token)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let Some(written) = written else {
                return Err(StoreError::NotFound);
            };
            // The file is no longer needed (the report stays): a 500 MB upload does not
            // weigh on the database forever.
            for table in ["import_chunks", "import_invites"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE job_id = $1"))
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)?;
            Ok::<i64, StoreError>(written)
        })?;
        if written >= ANALYZE_AFTER_ROWS {
            self.analyze_after_import().await;
        }
        self.fetch_import_job(job_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn fetch_import_issues(
        &self,
        job_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, ImportIssue)>> {
        let rows: Vec<IssueRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as(
                "SELECT id, line, username, field, severity, code, message FROM import_issues \
                 WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(job_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, line, username, field, severity, code, message)| {
                Ok((
                    id,
                    ImportIssue {
                        line: count(line),
                        username,
                        field,
                        severity: Severity::parse(&severity)
                            .ok_or_else(|| backend(format!("unknown severity {severity:?}")))?,
                        code,
                        message,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestBackend, TestDb};

    /// Each of a step's statements reads `usher_rows` once, as its outer loop or as an `IN`
    /// list built once: were SQLite to put another table outside it (the three platform
    /// groups, say), it would read the step's rows again for each of that table's rows.
    #[tokio::test]
    async fn sqlite_steps_read_their_rows_once_as_the_outer_loop() {
        let db = TestDb::create(TestBackend::Sqlite).await.expect("SQLite");
        let store = db.store().await;
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a SQLite store");
        };
        let sql = StepSql::new(store.pool());
        let statements = [
            &sql.insert_people,
            &sql.insert_memberships,
            &sql.insert_new_memberships,
            &sql.update_people_and_email,
            &sql.update_people_keeping_email,
            &sql.end_sessions,
            &sql.insert_audit,
            &sql.insert_issues,
            &sql.insert_invites,
        ];
        for statement in statements {
            let plan = explain(pool, statement).await;
            assert!(reads_rows_once(&plan), "{statement}\n{plan:#?}");
        }
        // What the check refuses: the groups outside, the rows read once per group.
        let per_group = "SELECT 1 FROM user_groups g CROSS JOIN \
                         (SELECT ord, c0 AS grp FROM usher_rows($1)) AS j WHERE j.grp = g.path";
        assert!(!reads_rows_once(&explain(pool, per_group).await));
    }

    /// Whether a plan reads `usher_rows` once: one read, with no correlated subquery around
    /// it, and either an IN list built once around it or nothing, in which case it is the
    /// statement's first loop.
    fn reads_rows_once(plan: &[(i64, i64, String)]) -> bool {
        let reads: Vec<&(i64, i64, String)> = plan
            .iter()
            .filter(|(_, _, d)| d.contains("usher_rows VIRTUAL TABLE"))
            .collect();
        let [read] = reads.as_slice() else {
            return false;
        };
        let mut ancestors = Vec::new();
        let mut parent = read.1;
        while let Some(node) = plan.iter().find(|(id, _, _)| *id == parent) {
            ancestors.push(node.2.as_str());
            parent = node.1;
        }
        if ancestors.is_empty() {
            let first_loop = plan.iter().find(|(_, parent, d)| {
                *parent == 0 && (d.starts_with("SCAN") || d.starts_with("SEARCH"))
            });
            first_loop.is_some_and(|(_, _, d)| *d == read.2)
        } else {
            ancestors.iter().all(|a| !a.contains("CORRELATED"))
                && ancestors.iter().any(|a| a.starts_with("LIST SUBQUERY"))
        }
    }

    /// `EXPLAIN QUERY PLAN`'s rows: (id, parent, detail).
    async fn explain(pool: &sqlx::SqlitePool, statement: &str) -> Vec<(i64, i64, String)> {
        use sqlx::Row;
        sqlx::query(&format!("EXPLAIN QUERY PLAN {statement}"))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(3)))
            .collect()
    }
}

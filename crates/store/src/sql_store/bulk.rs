//! Mass actions: the whole selection of a filter, enabling or disabling many people in one
//! transaction, and the jobs that track large ones: their progress, the outcome of each chunk,
//! and the lease that lets another node resume a job whose node stopped.

use time::OffsetDateTime;
use usher_core::audit::AuditRecord;
use usher_core::clock::{from_millis, to_millis};
use usher_core::people::Person;
use usher_core::query::UserFilter;
use usher_core::store::{JobLease, JobRecord, StoreError, StoreResult};

use super::{begin_write, db_error, SqlStore};
use crate::pool::on_pool;
use crate::rows::PersonRow;
use crate::sql::{bind_all, insert_audit, person_conditions, PEOPLE_VIEW, PERSON_COLUMNS};

/// Ids per statement: far below SQLite's limit on bound parameters.
const CHUNK: usize = 500;

fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

type JobRow = (
    i64,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

fn job_from_row(r: JobRow) -> JobRecord {
    let (id, kind, state, total, processed, result, created_by, created_at, finished_at) = r;
    JobRecord {
        id,
        kind,
        state,
        total: total.max(0) as u64,
        processed: processed.max(0) as u64,
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        created_by,
        created_at: from_millis(created_at),
        finished_at: finished_at.map(from_millis),
    }
}

impl SqlStore {
    pub(super) async fn select_matching(&self, filter: &UserFilter) -> StoreResult<Vec<Person>> {
        let conditions = person_conditions(filter);
        let sql = format!(
            "SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW}{} ORDER BY username",
            conditions.where_clause()
        );
        let rows: Vec<PersonRow> = on_pool!(self.pool(), |p| {
            bind_all!(sqlx::query_as::<_, PersonRow>(&sql), &conditions.binds)
                .fetch_all(p)
                .await
        })
        .map_err(db_error)?;
        rows.into_iter().map(Person::try_from).collect()
    }

    pub(super) async fn enable_many(
        &self,
        person_ids: &[i64],
        enabled: bool,
        audits: &[AuditRecord],
    ) -> StoreResult<u64> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let mut changed = 0;
            for ids in person_ids.chunks(CHUNK) {
                let update = format!(
                    "UPDATE people SET enabled = $1 WHERE enabled <> $1 AND id IN ({})",
                    in_list(2, ids.len())
                );
                let mut q = sqlx::query(&update).bind(enabled);
                for id in ids {
                    q = q.bind(*id);
                }
                changed += q.execute(&mut *tx).await.map_err(db_error)?.rows_affected();
                if !enabled {
                    let delete = format!(
                        "DELETE FROM sessions WHERE person_id IN ({})",
                        in_list(1, ids.len())
                    );
                    let mut q = sqlx::query(&delete);
                    for id in ids {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *tx).await.map_err(db_error)?;
                }
            }
            for audit in audits {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(changed)
        })
    }

    pub(super) async fn insert_job_row(&self, job: &JobRecord) -> StoreResult<i64> {
        on_pool!(self.pool(), |p| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO jobs (kind, state, total, processed, result, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&job.kind)
            .bind(&job.state)
            .bind(job.total as i64)
            .bind(job.processed as i64)
            .bind(job.result.as_ref().map(|r| r.to_string()))
            .bind(&job.created_by)
            .bind(to_millis(job.created_at))
            .fetch_one(p)
            .await
        })
        .map_err(db_error)
    }

    pub(super) async fn update_job_row(&self, job: &JobRecord) -> StoreResult<()> {
        let done = on_pool!(self.pool(), |p| {
            sqlx::query(
                "UPDATE jobs SET state = $1, total = $2, processed = $3, result = $4, \
                 finished_at = $5 WHERE id = $6",
            )
            .bind(&job.state)
            .bind(job.total as i64)
            .bind(job.processed as i64)
            .bind(job.result.as_ref().map(|r| r.to_string()))
            .bind(job.finished_at.map(to_millis))
            .bind(job.id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(db_error)?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn insert_resumable_job_row(
        &self,
        job: &JobRecord,
        spec: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<i64> {
        on_pool!(self.writer(), |p| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO jobs (kind, state, total, processed, result, created_by, created_at, \
                 spec, lease_token, lease_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(&job.kind)
            .bind(&job.state)
            .bind(job.total as i64)
            .bind(job.processed as i64)
            .bind(job.result.as_ref().map(|r| r.to_string()))
            .bind(&job.created_by)
            .bind(to_millis(job.created_at))
            .bind(spec.to_string())
            .bind(&lease.token)
            .bind(to_millis(lease.until))
            .fetch_one(p)
            .await
        })
        .map_err(db_error)
    }

    pub(super) async fn insert_job_part(
        &self,
        job_id: i64,
        seq: u32,
        processed: u64,
        part: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            // The fence first: on PostgreSQL it also locks the job's row until this commits.
            let held = sqlx::query(
                "UPDATE jobs SET processed = $1, lease_until = $2 \
                 WHERE id = $3 AND lease_token = $4 AND state = 'running'",
            )
            .bind(processed as i64)
            .bind(to_millis(lease.until))
            .bind(job_id)
            .bind(&lease.token)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if held.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "INSERT INTO job_parts (job_id, seq, part) VALUES ($1, $2, $3) \
                 ON CONFLICT (job_id, seq) DO UPDATE SET part = excluded.part",
            )
            .bind(job_id)
            .bind(i64::from(seq))
            .bind(part.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn job_part_rows(&self, job_id: i64) -> StoreResult<Vec<serde_json::Value>> {
        let parts: Vec<String> = on_pool!(self.pool(), |p| {
            sqlx::query_scalar("SELECT part FROM job_parts WHERE job_id = $1 ORDER BY seq")
                .bind(job_id)
                .fetch_all(p)
                .await
        })
        .map_err(db_error)?;
        parts
            .iter()
            .map(|part| {
                serde_json::from_str(part)
                    .map_err(|e| super::backend(format!("a part of job {job_id}: {e}")))
            })
            .collect()
    }

    pub(super) async fn claim_stalled_job_row(
        &self,
        now: OffsetDateTime,
        lease: &JobLease,
    ) -> StoreResult<Option<(JobRecord, serde_json::Value)>> {
        // One statement, its condition checked again on the row it takes: of two nodes that
        // pick the same job, PostgreSQL makes the second wait for the first and then finds
        // the lease renewed, and SQLite writes one at a time.
        let row: Option<(i64, String)> = on_pool!(self.writer(), |p| {
            sqlx::query_as(
                "UPDATE jobs SET lease_token = $1, lease_until = $2 \
                 WHERE id = (SELECT id FROM jobs WHERE state = 'running' AND spec IS NOT NULL \
                             AND lease_until < $3 ORDER BY id LIMIT 1) \
                 AND state = 'running' AND lease_until < $3 \
                 RETURNING id, spec",
            )
            .bind(&lease.token)
            .bind(to_millis(lease.until))
            .bind(to_millis(now))
            .fetch_optional(p)
            .await
        })
        .map_err(db_error)?;
        let Some((id, spec)) = row else {
            return Ok(None);
        };
        let spec = serde_json::from_str(&spec)
            .map_err(|e| super::backend(format!("the spec of job {id}: {e}")))?;
        let job = self.job_row(id).await?.ok_or(StoreError::NotFound)?;
        Ok(Some((job, spec)))
    }

    pub(super) async fn job_row(&self, id: i64) -> StoreResult<Option<JobRecord>> {
        let row: Option<JobRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as(
                "SELECT id, kind, state, total, processed, result, created_by, created_at, \
                 finished_at FROM jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await
        })
        .map_err(db_error)?;
        Ok(row.map(job_from_row))
    }
}

//! Mass actions: the whole selection of a filter, enabling or disabling many people in one
//! transaction, and the jobs that track large ones.

use usher_core::audit::AuditRecord;
use usher_core::clock::{from_millis, to_millis};
use usher_core::people::Person;
use usher_core::query::UserFilter;
use usher_core::store::{JobRecord, StoreError, StoreResult};

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

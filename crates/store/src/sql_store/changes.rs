//! The people change feed (migration `..06_people_changes`): the present cursor, the people
//! written since a cursor in change order, the people deleted since, and people fetched by id
//! for the pages the in-memory index picks.
//!
//! On SQLite a cursor is the counter's next number. On PostgreSQL it is the snapshot at which
//! the reader read: changes numbered from its xmax on, or by a transaction then still running.

use usher_core::clock::from_millis;
use usher_core::people::{Person, PersonType, Source};
use usher_core::search::{ChangeCursor, ChangeKey, IndexedPerson};
use usher_core::store::StoreResult;

use super::{backend, db_error, SqlStore};
use crate::pool::Pool;
use crate::rows::PersonRow;
use crate::sql::{PEOPLE_VIEW, PERSON_COLUMNS};

const INDEXED_COLUMNS: &str = "id, username, first_name_key, last_name_key, email_key, \
    search_text, created_at, last_login_at, enabled, invited_at IS NOT NULL AS invited, kind, \
    source, change_seq";

/// The people after the change key `($1, $2)`. A plain range on `change_seq` is the index
/// scan's start, with the id as a filter: PostgreSQL misjudges a row value `(change_seq, id) >
/// ($1, $2)`, scanning the index from its bound or the whole table (20–55 ms at 100,000 people,
/// before every search).
const FROM_START: &str = "WHERE change_seq >= $1 AND (change_seq > $1 OR id > $2)";

#[derive(sqlx::FromRow)]
struct IndexedRow {
    id: i64,
    username: String,
    first_name_key: String,
    last_name_key: String,
    email_key: String,
    search_text: String,
    created_at: i64,
    last_login_at: Option<i64>,
    enabled: bool,
    invited: bool,
    kind: String,
    source: String,
    change_seq: i64,
}

impl TryFrom<IndexedRow> for IndexedPerson {
    type Error = usher_core::store::StoreError;

    fn try_from(r: IndexedRow) -> Result<Self, Self::Error> {
        Ok(IndexedPerson {
            kind: PersonType::parse(&r.kind)
                .ok_or_else(|| backend(format!("unknown person type {:?}", r.kind)))?,
            source: Source::parse(&r.source)
                .ok_or_else(|| backend(format!("unknown source {:?}", r.source)))?,
            change: ChangeKey {
                seq: r.change_seq,
                id: r.id,
            },
            id: r.id,
            username: r.username,
            first_name_key: r.first_name_key,
            last_name_key: r.last_name_key,
            email_key: r.email_key,
            search_text: r.search_text,
            created_at: from_millis(r.created_at),
            last_login_at: r.last_login_at.map(from_millis),
            enabled: r.enabled,
            invited: r.invited,
        })
    }
}

/// Parses `pg_current_snapshot()`'s text, `xmin:xmax:xip,xip,…`, into a cursor.
fn cursor_from_snapshot(snapshot: &str) -> StoreResult<ChangeCursor> {
    let bad = || backend(format!("unexpected snapshot {snapshot:?}"));
    let mut parts = snapshot.split(':');
    let (_xmin, xmax, xip) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let below = xmax.and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let pending = xip
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<StoreResult<Vec<i64>>>()?;
    Ok(ChangeCursor { below, pending })
}

impl SqlStore {
    pub(super) async fn change_cursor(&self) -> StoreResult<ChangeCursor> {
        match self.pool() {
            Pool::Sqlite(p) => {
                let seq: i64 =
                    sqlx::query_scalar("SELECT seq FROM people_change_counter WHERE id = 1")
                        .fetch_one(p)
                        .await
                        .map_err(db_error)?;
                Ok(ChangeCursor {
                    below: seq + 1,
                    pending: Vec::new(),
                })
            }
            Pool::Postgres(p) => {
                let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
                    .fetch_one(p)
                    .await
                    .map_err(db_error)?;
                cursor_from_snapshot(&snapshot)
            }
        }
    }

    pub(super) async fn people_changed_since(
        &self,
        since: &ChangeCursor,
        after: Option<ChangeKey>,
        limit: u32,
    ) -> StoreResult<Vec<IndexedPerson>> {
        let after = after.unwrap_or(ChangeKey {
            seq: i64::MIN,
            id: i64::MIN,
        });
        // Where the scan of changes numbered from `since.below` starts, written as a plain
        // range on `change_seq` (see FROM_START).
        let start = after.max(ChangeKey {
            seq: since.below,
            id: i64::MIN,
        });
        let rows: Vec<IndexedRow> = match self.pool() {
            Pool::Sqlite(p) => sqlx::query_as(&format!(
                "SELECT {INDEXED_COLUMNS} FROM people {FROM_START} ORDER BY change_seq, id \
                 LIMIT $3"
            ))
            .bind(start.seq)
            .bind(start.id)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
            .map_err(db_error)?,
            // Two index scans: the changes numbered from `since.below`, and those of the
            // transactions then still running, looked up by number (written without a row
            // value, which the planner would again take as the scan's start).
            Pool::Postgres(p) => sqlx::query_as(&format!(
                "(SELECT {INDEXED_COLUMNS} FROM people {FROM_START} \
                  ORDER BY change_seq, id LIMIT $3) \
                 UNION ALL \
                 (SELECT {INDEXED_COLUMNS} FROM people \
                  WHERE change_seq = ANY($4) AND change_seq < $5 \
                  AND (change_seq > $6 OR (change_seq = $6 AND id > $7)) \
                  ORDER BY change_seq, id LIMIT $3) \
                 ORDER BY change_seq, id LIMIT $3"
            ))
            .bind(start.seq)
            .bind(start.id)
            .bind(i64::from(limit))
            .bind(&since.pending)
            .bind(since.below)
            .bind(after.seq)
            .bind(after.id)
            .fetch_all(p)
            .await
            .map_err(db_error)?,
        };
        rows.into_iter().map(IndexedPerson::try_from).collect()
    }

    pub(super) async fn people_removed_since(&self, since: &ChangeCursor) -> StoreResult<Vec<i64>> {
        match self.pool() {
            Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT person_id FROM people_removed WHERE change_seq >= $1")
                    .bind(since.below)
                    .fetch_all(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT person_id FROM people_removed WHERE change_seq >= $1 \
                     UNION ALL \
                     SELECT person_id FROM people_removed \
                     WHERE change_seq = ANY($2) AND change_seq < $1",
                )
                .bind(since.below)
                .bind(&since.pending)
                .fetch_all(p)
                .await
            }
        }
        .map_err(db_error)
    }

    pub(super) async fn fetch_people_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Person>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW} WHERE id IN ({})",
            placeholders.join(", ")
        );
        let rows: Vec<PersonRow> = crate::pool::on_pool!(self.pool(), |p| {
            let mut query = sqlx::query_as::<_, PersonRow>(&sql);
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(p).await.map_err(db_error)?
        });
        let mut found: std::collections::HashMap<i64, Person> = rows
            .into_iter()
            .map(|row| Person::try_from(row).map(|person| (person.id, person)))
            .collect::<StoreResult<_>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_become_cursors() {
        assert_eq!(
            cursor_from_snapshot("100:105:100,103").unwrap(),
            ChangeCursor {
                below: 105,
                pending: vec![100, 103]
            }
        );
        assert_eq!(
            cursor_from_snapshot("7:7:").unwrap(),
            ChangeCursor {
                below: 7,
                pending: vec![]
            }
        );
        assert!(cursor_from_snapshot("nonsense").is_err());
    }
}

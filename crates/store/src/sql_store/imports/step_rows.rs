//! How the rows a step creates most of, its new people, their memberships and their audit
//! entries, reach the database: on SQLite as one JSONB array per statement, read by position
//! ([`super::step_data::rows_from`]); on PostgreSQL as one array per column, read by `unnest`.
//! PostgreSQL decodes arrays far faster than `json_to_recordset` parses JSON text, character
//! by character (20,000 rows of the person's 23 fields: 113 ms to parse the JSON, 19 ms to
//! unnest arrays, measured here), and a 2,000-row step spent a third of its people insert
//! parsing.

use std::collections::HashMap;

use usher_core::clock::to_millis;
use usher_core::import::ImportStep;
use usher_core::store::{NewPerson, StoreResult};

use super::step_data::{
    new_membership_rows, new_memberships, PreparedStepRows, StepData, StepPeople, StepPerson,
};
use super::StepSql;
use crate::sql::DerivedColumns;
use crate::sql_store::{backend, db_error, WriteTransaction, WriteTx};

/// The statements of a step whose rows travel differently on each backend.
pub(super) trait StepRows: WriteTransaction {
    /// Inserts the step's new people (`first_change`: SQLite's stamp, see
    /// [`StepSql::stamps_changes`]); the id and username of each inserted, in no particular
    /// order.
    async fn insert_people(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        json: &StepData<'_>,
        first_change: i64,
    ) -> StoreResult<Vec<(i64, String)>>;

    /// Grants the new people their memberships, given the ids their insert returned.
    async fn insert_new_memberships(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        ids: &[(i64, String)],
    ) -> StoreResult<()>;

    /// Writes the step's audit entries, given the ids the new people's insert returned.
    async fn insert_audits(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        json: &StepData<'_>,
        ids: &[(i64, String)],
    ) -> StoreResult<()>;
}

impl StepRows for sqlx::Sqlite {
    /// Without RETURNING: sqlx hands each row a statement returns over from the connection's
    /// thread on its own, which for a 4,000-row step took about half as long again as the
    /// insert itself (timed in the server: 78–109 ms with the ids and usernames returned,
    /// 48–73 without). `people`'s AUTOINCREMENT gives each new row the largest id the table
    /// ever had plus one, so the rows of one insert hold the ids that end at the last one it
    /// inserted; they are read back as one JSON text (about 1 ms for 4,000). The step's audit
    /// entries about new people take their ids from their places (`step_data::audit_rows`):
    /// should this SQLite ever insert a step's rows out of their order, the step is refused,
    /// and the engine writes its rows one by one.
    async fn insert_people(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        json: &StepData<'_>,
        first_change: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let Some(people) = &json.people else {
            return Ok(Vec::new());
        };
        let done = sqlx::query(&sql.insert_people)
            .bind(people.as_ref())
            .bind(first_change)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        let inserted = usize::try_from(done.rows_affected()).unwrap_or(usize::MAX);
        if inserted != step.creates.len() {
            // A reserved username left its row out: the caller refuses the step.
            return Ok(Vec::new());
        }
        let first = done.last_insert_rowid() + 1 - i64::try_from(inserted).unwrap_or(i64::MAX);
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, username) ORDER BY id) \
             FROM people WHERE id >= $1",
        )
        .bind(first)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
        let ids: Vec<(i64, String)> = serde_json::from_str(&json)
            .map_err(|e| backend(format!("the new people's ids: {e}")))?;
        let in_order = ids.len() == step.creates.len()
            && ids
                .iter()
                .zip(&step.creates)
                .all(|((_, username), new)| *username == new.username);
        if !in_order {
            return Err(backend(
                "a step's new people were inserted out of their order",
            ));
        }
        Ok(ids)
    }

    async fn insert_new_memberships(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        ids: &[(i64, String)],
    ) -> StoreResult<()> {
        if let Some(memberships) = new_membership_rows(step, ids)? {
            sqlx::query(&sql.insert_new_memberships)
                .bind(memberships)
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// `$2`: the id of the step's first new person, from which its entries about new people
    /// tell their person's id (see `step_data::audit_rows`).
    async fn insert_audits(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        _: &ImportStep,
        json: &StepData<'_>,
        ids: &[(i64, String)],
    ) -> StoreResult<()> {
        if let Some(audits) = &json.audits {
            sqlx::query(&sql.insert_audit)
                .bind(audits.as_ref())
                .bind(ids.first().map(|(id, _)| *id))
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }
}

impl StepRows for sqlx::Postgres {
    /// Binds one array per field of [`super::PERSON_FIELDS`], in its order.
    async fn insert_people(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        _: &StepData<'_>,
        _: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let people = &step.creates;
        if people.is_empty() {
            return Ok(Vec::new());
        }
        let computed: Vec<DerivedColumns>;
        let derived = match PreparedStepRows::of(step) {
            Some(PreparedStepRows::Columns { derived, .. }) => derived,
            _ => {
                computed = people.iter().map(DerivedColumns::of_new).collect();
                &computed
            }
        };
        let text = |f: fn(&NewPerson) -> &str| people.iter().map(f).collect::<Vec<&str>>();
        let optional =
            |f: fn(&NewPerson) -> Option<&str>| people.iter().map(f).collect::<Vec<Option<&str>>>();
        let flag = |f: fn(&NewPerson) -> bool| people.iter().map(f).collect::<Vec<bool>>();
        let derived_text =
            |f: fn(&DerivedColumns) -> &str| derived.iter().map(f).collect::<Vec<&str>>();
        sqlx::query_as(&sql.insert_people)
            .bind(text(|n| &n.username))
            .bind(text(|n| &n.first_name))
            .bind(text(|n| &n.last_name))
            .bind(text(|n| &n.email))
            .bind(derived_text(|d| &d.email_key))
            .bind(derived_text(|d| &d.first_name_key))
            .bind(derived_text(|d| &d.last_name_key))
            .bind(derived_text(|d| &d.search_text))
            .bind(optional(|n| n.password_hash.as_deref()))
            .bind(flag(|n| n.password_temporary))
            .bind(flag(|n| n.enabled))
            .bind(text(|n| n.kind.as_str()))
            .bind(text(|n| n.source.as_str()))
            .bind(flag(|n| n.super_user))
            .bind(
                people
                    .iter()
                    .map(|n| to_millis(n.created_at))
                    .collect::<Vec<i64>>(),
            )
            .bind(optional(|n| n.profile.position.as_deref()))
            .bind(optional(|n| n.profile.organization.as_deref()))
            .bind(optional(|n| n.profile.department.as_deref()))
            .bind(optional(|n| n.profile.location.as_deref()))
            .bind(optional(|n| n.profile.phone.as_deref()))
            .bind(optional(|n| n.profile.manager.as_deref()))
            .bind(optional(|n| n.profile.about_me.as_deref()))
            .bind(optional(|n| n.profile.time_zone.as_deref()))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Binds the arrays of [`super::NEW_MEMBERSHIP_FIELDS`].
    async fn insert_new_memberships(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        ids: &[(i64, String)],
    ) -> StoreResult<()> {
        let rows = new_memberships(step, ids);
        let person_ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
        let groups: Vec<&str> = rows.iter().map(|(_, group, _)| *group).collect();
        let roles: Vec<&str> = rows.iter().map(|(_, _, role)| *role).collect();
        if person_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(&sql.insert_new_memberships)
            .bind(person_ids)
            .bind(groups)
            .bind(roles)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Binds the arrays of [`super::PG_AUDIT_FIELDS`].
    async fn insert_audits(
        tx: &mut WriteTx<Self>,
        sql: &StepSql,
        step: &ImportStep,
        _: &StepData<'_>,
        ids: &[(i64, String)],
    ) -> StoreResult<()> {
        let audits = &step.audits;
        if audits.is_empty() {
            return Ok(());
        }
        let people = StepPeople::of(&step.creates, &step.updates);
        let new_ids: HashMap<&str, i64> = ids.iter().map(|(id, u)| (u.as_str(), *id)).collect();
        let target_ids: Vec<Option<i64>> = audits
            .iter()
            .map(|a| match people.of_entry(a)? {
                StepPerson::Changed(id) => Some(id),
                StepPerson::New(place) => {
                    new_ids.get(step.creates[place].username.as_str()).copied()
                }
            })
            .collect();
        sqlx::query(&sql.insert_audit)
            .bind(audits.iter().map(|a| to_millis(a.at)).collect::<Vec<i64>>())
            .bind(
                audits
                    .iter()
                    .map(|a| a.actor.as_deref())
                    .collect::<Vec<Option<&str>>>(),
            )
            .bind(audits.iter().map(|a| a.action).collect::<Vec<&str>>())
            .bind(
                audits
                    .iter()
                    .map(|a| a.target.as_deref())
                    .collect::<Vec<Option<&str>>>(),
            )
            .bind(
                audits
                    .iter()
                    .map(|a| a.details.as_str())
                    .collect::<Vec<&str>>(),
            )
            .bind(target_ids)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

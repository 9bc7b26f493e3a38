//! Spaces (groups `/spaces/{name}`), their members, and invitations of external people.

use usher_core::audit::AuditRecord;
use usher_core::clock::{from_millis, to_millis};
use usher_core::mail::NewOutboxMessage;
use usher_core::people::Person;
use usher_core::store::{NewPerson, NewSpace, Space, SpaceInvitation, StoreError, StoreResult};

use super::{begin_write, db_error, SqlStore};
use crate::pool::on_pool;
use crate::rows::{inserted_person, PersonRow};
use crate::sql::{insert_audit, insert_message, insert_new_person, PEOPLE_VIEW, PERSON_COLUMNS};

type SpaceRow = (i64, String, String, bool, i64);

const SPACE_COLUMNS: &str = "id, path, label, external_invitations, created_at";

fn space_from_row((id, path, label, external_invitations, created_at): SpaceRow) -> Space {
    Space {
        id,
        name: path.trim_start_matches("/spaces/").to_owned(),
        display_name: label,
        external_invitations,
        created_at: from_millis(created_at),
    }
}

type InvitationRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

const INVITATION_COLUMNS: &str =
    "id, group_id, email, state, invited_by, invited_at, expires_at, accepted_at";

fn invitation_from_row(r: InvitationRow) -> SpaceInvitation {
    let (id, space_id, email, state, invited_by, invited_at, expires_at, accepted_at) = r;
    SpaceInvitation {
        id,
        space_id,
        email,
        state,
        invited_by,
        invited_at: from_millis(invited_at),
        expires_at: from_millis(expires_at),
        accepted_at: accepted_at.map(from_millis),
    }
}

impl SqlStore {
    pub(super) async fn insert_space_row(
        &self,
        space: &NewSpace,
        audit: &AuditRecord,
    ) -> StoreResult<Option<Space>> {
        let path = format!("/spaces/{}", space.name);
        let inserted: Option<i64> = on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO user_groups (path, label, is_space, external_invitations, created_at) \
                 VALUES ($1, $2, TRUE, $3, $4) ON CONFLICT (path) DO NOTHING RETURNING id",
            )
            .bind(&path)
            .bind(&space.display_name)
            .bind(space.external_invitations)
            .bind(to_millis(space.created_at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if id.is_some() {
                insert_audit!(&mut *tx, audit)?;
                tx.commit().await.map_err(db_error)?;
            }
            Ok::<_, StoreError>(id)
        })?;
        match inserted {
            Some(_) => self.space_row(&space.name).await,
            None => Ok(None),
        }
    }

    pub(super) async fn update_space_row(
        &self,
        space: &Space,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let done = sqlx::query(
                "UPDATE user_groups SET label = $1, external_invitations = $2 \
                 WHERE id = $3 AND is_space",
            )
            .bind(&space.display_name)
            .bind(space.external_invitations)
            .bind(space.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn space_row(&self, name: &str) -> StoreResult<Option<Space>> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM user_groups WHERE path = $1 AND is_space");
        let row: Option<SpaceRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as(&sql)
                .bind(format!("/spaces/{name}"))
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        Ok(row.map(space_from_row))
    }

    pub(super) async fn space_rows(&self, member: Option<i64>) -> StoreResult<Vec<Space>> {
        let rows: Vec<SpaceRow> = on_pool!(self.pool(), |p| {
            match member {
                None => {
                    sqlx::query_as(&format!(
                        "SELECT {SPACE_COLUMNS} FROM user_groups WHERE is_space ORDER BY path"
                    ))
                    .fetch_all(p)
                    .await
                }
                Some(person_id) => {
                    sqlx::query_as(&format!(
                        "SELECT {SPACE_COLUMNS} FROM user_groups WHERE is_space AND id IN \
                         (SELECT group_id FROM memberships WHERE person_id = $1) ORDER BY path"
                    ))
                    .bind(person_id)
                    .fetch_all(p)
                    .await
                }
            }
        })
        .map_err(db_error)?;
        Ok(rows.into_iter().map(space_from_row).collect())
    }

    pub(super) async fn space_member_rows(
        &self,
        space: &Space,
    ) -> StoreResult<Vec<(Person, String)>> {
        let sql = format!(
            "SELECT {PERSON_COLUMNS} FROM {PEOPLE_VIEW} WHERE id IN \
             (SELECT person_id FROM memberships WHERE group_id = $1) ORDER BY username"
        );
        let rows: Vec<PersonRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as::<_, PersonRow>(&sql)
                .bind(space.id)
                .fetch_all(p)
                .await
        })
        .map_err(db_error)?;
        let roles: Vec<(i64, String)> = on_pool!(self.pool(), |p| {
            sqlx::query_as("SELECT person_id, role FROM memberships WHERE group_id = $1")
                .bind(space.id)
                .fetch_all(p)
                .await
        })
        .map_err(db_error)?;
        let roles: std::collections::HashMap<i64, String> = roles.into_iter().collect();
        rows.into_iter()
            .map(|r| {
                let person = Person::try_from(r)?;
                let role = roles
                    .get(&person.id)
                    .cloned()
                    .unwrap_or_else(|| "member".into());
                Ok((person, role))
            })
            .collect()
    }

    pub(super) async fn role_of(
        &self,
        person_id: i64,
        group_path: &str,
    ) -> StoreResult<Option<String>> {
        on_pool!(self.pool(), |p| {
            sqlx::query_scalar(
                "SELECT m.role FROM memberships m JOIN user_groups g ON g.id = m.group_id \
                 WHERE m.person_id = $1 AND g.path = $2",
            )
            .bind(person_id)
            .bind(group_path)
            .fetch_optional(p)
            .await
        })
        .map_err(db_error)
    }

    pub(super) async fn upsert_membership(
        &self,
        person_id: i64,
        group_path: &str,
        role: &str,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let done = sqlx::query(
                "INSERT INTO memberships (person_id, group_id, role) \
                 SELECT $1, id, $2 FROM user_groups WHERE path = $3 \
                 ON CONFLICT (person_id, group_id) DO UPDATE SET role = excluded.role",
            )
            .bind(person_id)
            .bind(role)
            .bind(group_path)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn delete_membership(
        &self,
        person_id: i64,
        group_path: &str,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let done = sqlx::query(
                "DELETE FROM memberships WHERE person_id = $1 AND group_id = \
                 (SELECT id FROM user_groups WHERE path = $2)",
            )
            .bind(person_id)
            .bind(group_path)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if done > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(done > 0)
        })
    }

    pub(super) async fn record_space_invitation_row(
        &self,
        invitation: &SpaceInvitation,
        token_hash: &str,
        message: &NewOutboxMessage,
        audit: &AuditRecord,
    ) -> StoreResult<i64> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let id: i64 = if invitation.id == 0 {
                sqlx::query_scalar(
                    "INSERT INTO space_invitations (group_id, email, email_key, token_hash, state, \
                     invited_by, invited_at, expires_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) \
                     RETURNING id",
                )
                .bind(invitation.space_id)
                .bind(&invitation.email)
                .bind(invitation.email.to_lowercase())
                .bind(token_hash)
                .bind(&invitation.invited_by)
                .bind(to_millis(invitation.invited_at))
                .bind(to_millis(invitation.expires_at))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?
            } else {
                // A resend: the same invitation with a new link; the older link stops working.
                let done = sqlx::query(
                    "UPDATE space_invitations SET token_hash = $1, invited_at = $2, expires_at = $3, \
                     invited_by = $4 WHERE id = $5 AND state = 'pending'",
                )
                .bind(token_hash)
                .bind(to_millis(invitation.invited_at))
                .bind(to_millis(invitation.expires_at))
                .bind(&invitation.invited_by)
                .bind(invitation.id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound);
                }
                invitation.id
            };
            insert_message!(&mut *tx, message)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)?;
            Ok(id)
        })
    }

    pub(super) async fn space_invitation_rows(
        &self,
        space: &Space,
    ) -> StoreResult<Vec<SpaceInvitation>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM space_invitations WHERE group_id = $1 \
             ORDER BY invited_at DESC, id DESC"
        );
        let rows: Vec<InvitationRow> = on_pool!(self.pool(), |p| {
            sqlx::query_as(&sql).bind(space.id).fetch_all(p).await
        })
        .map_err(db_error)?;
        Ok(rows.into_iter().map(invitation_from_row).collect())
    }

    pub(super) async fn space_invitation_where(
        &self,
        condition: &str,
        value: SpaceKey<'_>,
    ) -> StoreResult<Option<SpaceInvitation>> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM space_invitations WHERE {condition}");
        let row: Option<InvitationRow> = on_pool!(self.pool(), |p| {
            let q = sqlx::query_as(&sql);
            let q = match value {
                SpaceKey::Id(id) => q.bind(id),
                SpaceKey::Hash(h) => q.bind(h.to_owned()),
            };
            q.fetch_optional(p).await
        })
        .map_err(db_error)?;
        Ok(row.map(invitation_from_row))
    }

    pub(super) async fn revoke_space_invitation_row(
        &self,
        id: i64,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let done = sqlx::query(
                "UPDATE space_invitations SET state = 'revoked' WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn accept_space_invitation_row(
        &self,
        id: i64,
        new: &NewPerson,
        audit: &AuditRecord,
    ) -> StoreResult<Person> {
        let at = to_millis(new.created_at);
        let person_id: i64 = on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let claimed = sqlx::query(
                "UPDATE space_invitations SET state = 'accepted', accepted_at = $1 \
                 WHERE id = $2 AND state = 'pending' AND expires_at > $1",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if claimed == 0 {
                return Err(StoreError::NotFound);
            }
            let person_id = insert_new_person!(tx, new, Some(at), audit);
            sqlx::query("UPDATE space_invitations SET person_id = $1 WHERE id = $2")
                .bind(person_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(person_id)
        })?;
        Ok(inserted_person(new, person_id, Some(at)))
    }
}

/// How an invitation is looked up.
pub(super) enum SpaceKey<'a> {
    Id(i64),
    Hash(&'a str),
}

//! The mail outbox and link tokens. Messages are written in the transaction of the change
//! that causes them; workers claim due messages under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite has one writer at a time), so that several nodes never send one message
//! at once and a worker that dies only delays its messages.

use time::OffsetDateTime;
use usher_core::audit::AuditRecord;
use usher_core::clock::{from_millis, to_millis};
use usher_core::mail::{Delivery, DeliveryState, NewOutboxMessage, OutboxMessage};
use usher_core::store::{NewToken, StoreError, StoreResult, TokenKind, TokenRecord};

use super::{backend, begin_write, db_error, SqlStore};
use crate::pool::{on_pool, Pool};
use crate::sql::{insert_audit, insert_message};

/// Claims on SQLite: one writer at a time already keeps two workers apart.
const CLAIM_SQLITE: &str = "UPDATE outbox SET next_attempt_at = $3 WHERE id IN (\
    SELECT id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $1 \
    ORDER BY next_attempt_at, id LIMIT $2) \
    RETURNING id, recipient, template, subject, body_text, body_html, attempts, created_at";

/// Claims on PostgreSQL: rows another node is claiming are skipped, not waited for.
const CLAIM_POSTGRES: &str = "UPDATE outbox SET next_attempt_at = $3 WHERE id IN (\
    SELECT id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $1 \
    ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
    RETURNING id, recipient, template, subject, body_text, body_html, attempts, created_at";

type MessageRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn message_from_row(r: MessageRow) -> OutboxMessage {
    let (id, recipient, template, subject, text, html, attempts, created_at) = r;
    OutboxMessage {
        id,
        recipient,
        template,
        subject,
        text: text.unwrap_or_default(),
        html: html.unwrap_or_default(),
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: from_millis(created_at),
    }
}

impl SqlStore {
    pub(super) async fn insert_message(&self, m: &NewOutboxMessage) -> StoreResult<i64> {
        on_pool!(self.pool(), |p| insert_message!(p, m))
    }

    /// A new token replacing the person's unused ones of its kind, and its message; for an
    /// invitation also `invited_at`, the person's invitation message and the audit entry.
    pub(super) async fn record_token_and_message(
        &self,
        token: &NewToken,
        message: &NewOutboxMessage,
        audit: Option<&AuditRecord>,
    ) -> StoreResult<()> {
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM people WHERE id = $1")
                .bind(token.person_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "DELETE FROM tokens WHERE person_id = $1 AND kind = $2 AND used_at IS NULL",
            )
            .bind(token.person_id)
            .bind(token.kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            sqlx::query(
                "INSERT INTO tokens (hash, kind, person_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token.hash)
            .bind(token.kind.as_str())
            .bind(token.person_id)
            .bind(to_millis(token.created_at))
            .bind(to_millis(token.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let message_id = insert_message!(&mut *tx, message)?;
            if token.kind == TokenKind::Invitation {
                sqlx::query(
                    "UPDATE people SET invited_at = $1, invitation_message_id = $2 WHERE id = $3",
                )
                .bind(to_millis(token.created_at))
                .bind(message_id)
                .bind(token.person_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            if let Some(audit) = audit {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    pub(super) async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let row: Option<(String, String, i64, i64, i64, Option<i64>)> =
            on_pool!(self.pool(), |p| {
                sqlx::query_as(
                    "SELECT hash, kind, person_id, created_at, expires_at, used_at FROM tokens \
                     WHERE hash = $1",
                )
                .bind(hash)
                .fetch_optional(p)
                .await
            })
            .map_err(db_error)?;
        row.map(|(hash, kind, person_id, created_at, expires_at, used_at)| {
            Ok(TokenRecord {
                kind: TokenKind::parse(&kind)
                    .ok_or_else(|| backend(format!("unknown token kind {kind:?}")))?,
                hash,
                person_id,
                created_at: from_millis(created_at),
                expires_at: from_millis(expires_at),
                used_at: used_at.map(from_millis),
            })
        })
        .transpose()
    }

    pub(super) async fn redeem(
        &self,
        hash: &str,
        kind: TokenKind,
        password_hash: &str,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<i64> {
        let at_ms = to_millis(at);
        on_pool!(self.writer(), |p| {
            let mut tx = begin_write(p).await.map_err(db_error)?;
            // Claiming the token first makes a second, concurrent redemption find it used.
            let person_id: Option<i64> = sqlx::query_scalar(
                "UPDATE tokens SET used_at = $1 WHERE hash = $2 AND kind = $3 \
                 AND used_at IS NULL AND expires_at > $1 RETURNING person_id",
            )
            .bind(at_ms)
            .bind(hash)
            .bind(kind.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let Some(person_id) = person_id else {
                return Err(StoreError::NotFound);
            };
            sqlx::query(
                "UPDATE tokens SET used_at = $1 WHERE person_id = $2 AND kind = $3 \
                 AND used_at IS NULL",
            )
            .bind(at_ms)
            .bind(person_id)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let joined_at = (kind == TokenKind::Invitation).then_some(at_ms);
            sqlx::query(
                "UPDATE people SET password_hash = $1, password_temporary = FALSE, \
                 joined_at = COALESCE($2, joined_at) WHERE id = $3",
            )
            .bind(password_hash)
            .bind(joined_at)
            .bind(person_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(db_error)?;
            Ok(person_id)
        })
    }

    pub(super) async fn claim(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease_until: OffsetDateTime,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let rows: Vec<MessageRow> = match self.writer() {
            Pool::Sqlite(p) => {
                let mut tx = begin_write(p).await.map_err(db_error)?;
                let rows = sqlx::query_as(CLAIM_SQLITE)
                    .bind(to_millis(now))
                    .bind(i64::from(limit))
                    .bind(to_millis(lease_until))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                rows
            }
            Pool::Postgres(p) => sqlx::query_as(CLAIM_POSTGRES)
                .bind(to_millis(now))
                .bind(i64::from(limit))
                .bind(to_millis(lease_until))
                .fetch_all(p)
                .await
                .map_err(db_error)?,
        };
        Ok(rows.into_iter().map(message_from_row).collect())
    }

    pub(super) async fn mark_sent(&self, id: i64, at: OffsetDateTime) -> StoreResult<()> {
        let done = on_pool!(self.pool(), |p| {
            sqlx::query(
                "UPDATE outbox SET state = 'sent', sent_at = $1, attempts = attempts + 1, \
                 last_error = NULL, body_text = NULL, body_html = NULL WHERE id = $2",
            )
            .bind(to_millis(at))
            .bind(id)
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

    pub(super) async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let done = on_pool!(self.pool(), |p| {
            match retry_at {
                Some(retry_at) => sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
                     next_attempt_at = $2 WHERE id = $3 AND state = 'queued'",
                )
                .bind(error)
                .bind(to_millis(retry_at))
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
                None => sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
                     state = 'failed', body_text = NULL, body_html = NULL \
                     WHERE id = $2 AND state = 'queued'",
                )
                .bind(error)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            }
        })
        .map_err(db_error)?;
        // Nothing changed: either no such message, or another node finished it after this
        // worker's lease ran out, and its outcome stands.
        if done == 0 && self.delivery(id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn delivery(&self, id: i64) -> StoreResult<Option<Delivery>> {
        let row: Option<(String, i64, Option<String>, Option<i64>)> = on_pool!(self.pool(), |p| {
            sqlx::query_as("SELECT state, attempts, last_error, sent_at FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(db_error)?;
        row.map(|(state, attempts, last_error, sent_at)| {
            Ok(Delivery {
                state: DeliveryState::parse(&state)
                    .ok_or_else(|| backend(format!("unknown delivery state {state:?}")))?,
                attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
                last_error,
                sent_at: sent_at.map(from_millis),
            })
        })
        .transpose()
    }
}

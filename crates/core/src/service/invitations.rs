//! Joining by email: invitations (product §4), password resets, and the notices sent when
//! someone else changes a person's email or password. Every email is queued in the outbox in
//! the transaction of the change that causes it; links carry a 256-bit token of which only the
//! hash is stored, used once, and only the newest of its kind works.

use serde_json::json;

use super::access::LoginSuccess;
use super::{off_runtime, Actor, Usher};
use crate::audit::{actions, AuditRecord};
use crate::error::{FieldError, FieldErrors, ServiceError};
use crate::mail::{MailContext, NewOutboxMessage, Template};
use crate::people::{hash_password, Email, Password, Person, PersonType, Source};
use crate::store::{NewToken, StoreError, TokenKind};
use crate::token::{hash_token, new_token};

/// Reset emails one address may cause per hour; past that, requests are answered alike but
/// send nothing.
const RESETS_PER_ADDRESS_PER_HOUR: u32 = 3;

/// What the join and reset pages show about a live link.
#[derive(Debug, Clone)]
pub struct LinkHolder {
    pub username: String,
    pub first_name: String,
}

impl Usher {
    /// Sends or resends the invitation email. Only people who never connected, enabled,
    /// internal and not from LDAP can be invited; a resend voids the earlier links.
    pub async fn invite(&self, actor: &Actor, username: &str) -> Result<Person, ServiceError> {
        actor.require_admin()?;
        let person = self
            .store
            .person_by_username(&username.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)?;
        check_invitable(&person)?;
        self.send_invitation(
            Some(&actor.username),
            &person,
            json!({ "resend": person.invited_at.is_some(), "email": person.email }),
        )
        .await?;
        self.store
            .person_by_id(person.id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Queues the invitation email of product §4 for `person` with a new link, voiding the
    /// earlier ones, on behalf of `actor` (`None`: the system). The caller checked that the
    /// person may be invited.
    pub(crate) async fn send_invitation(
        &self,
        actor: Option<&str>,
        person: &Person,
        details: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let token = new_token();
        let expires_at = now + self.settings.link_ttl;
        let context = MailContext {
            link: Some(format!("{}/join/{token}", self.settings.public_url)),
            expires_at: Some(expires_at),
            ..self.mail_context(person)
        };
        let message = NewOutboxMessage {
            recipient: person.email.clone(),
            template: Template::Invitation,
            mail: self.composer.compose(Template::Invitation, &context),
            person_id: Some(person.id),
            created_at: now,
        };
        let audit = AuditRecord {
            at: now,
            actor: actor.map(str::to_owned),
            action: actions::USER_INVITE,
            target: Some(person.username.clone()),
            details: details.into(),
        };
        let new_token = NewToken {
            hash: hash_token(&token),
            kind: TokenKind::Invitation,
            person_id: person.id,
            created_at: now,
            expires_at,
        };
        self.store
            .record_invitation(&new_token, &message, &audit)
            .await?;
        self.outbox_signal.notify_one();
        Ok(())
    }

    pub(crate) fn mail_context(&self, person: &Person) -> MailContext {
        MailContext {
            platform_name: self.settings.platform_name.clone(),
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            username: person.username.clone(),
            ..MailContext::default()
        }
    }

    /// Who a live link belongs to, for its page. Opening a link changes nothing (mail
    /// scanners open links before people do). Unknown, used and expired links all answer
    /// `NotFound`, so that the page reveals nothing about the account.
    pub async fn link_holder(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<LinkHolder, ServiceError> {
        let record = self
            .store
            .token(&hash_token(token))
            .await?
            .filter(|t| t.kind == kind && t.is_live(self.clock.now()))
            .ok_or(ServiceError::NotFound)?;
        let person = self
            .store
            .person_by_id(record.person_id)
            .await?
            .filter(|p| p.enabled)
            .ok_or(ServiceError::NotFound)?;
        Ok(LinkHolder {
            username: person.username,
            first_name: person.first_name,
        })
    }

    /// Sets the password through an invitation link, records `joined_at`, uses up every
    /// invitation link of the person and logs them in.
    pub async fn join(
        &self,
        token: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<LoginSuccess, ServiceError> {
        let person_id = self
            .redeem_link(token, TokenKind::Invitation, password, confirmation)
            .await?;
        let now = self.clock.now();
        self.store.record_login(person_id, now).await?;
        let (session_token, csrf_token, expires_at) = self.open_session(person_id).await?;
        let person = self
            .store
            .person_by_id(person_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(LoginSuccess {
            person,
            session_token,
            csrf_token,
            expires_at,
        })
    }

    /// Sets the password through a reset link and ends every session of the person.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<(), ServiceError> {
        let person_id = self
            .redeem_link(token, TokenKind::PasswordReset, password, confirmation)
            .await?;
        self.store.delete_sessions_of(person_id, None).await?;
        Ok(())
    }

    async fn redeem_link(
        &self,
        token: &str,
        kind: TokenKind,
        password: &str,
        confirmation: &str,
    ) -> Result<i64, ServiceError> {
        let holder = self.link_holder(token, kind).await?;
        let mut errors = FieldErrors::default();
        let parsed = errors.take(
            "password",
            Password::parse(
                password,
                &self.settings.password_policy,
                Some(&holder.username),
            ),
        );
        if password != confirmation {
            errors.add(
                "password_confirmation",
                FieldError::new("password_mismatch", "The two passwords differ."),
            );
        }
        let (Some(parsed), true) = (parsed, errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        let hash = off_runtime(move || hash_password(&parsed)).await?;
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: Some(holder.username.clone()),
            action: match kind {
                TokenKind::Invitation => actions::USER_JOIN,
                TokenKind::PasswordReset => actions::USER_PASSWORD_RESET,
            },
            target: Some(holder.username.clone()),
            details: json!({}).into(),
        };
        match self
            .store
            .redeem_token(&hash_token(token), kind, &hash, self.clock.now(), &audit)
            .await
        {
            Ok(id) => Ok(id),
            // Used by a concurrent submission in the meantime.
            Err(StoreError::NotFound) => Err(ServiceError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Answers the same whether or not the address belongs to someone: when it does (and the
    /// person may log in here), a reset link is emailed. Throttled per client address (429)
    /// and per address (silently).
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &str,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        if let Some(wait) = self.reset_throttle.check(client, now) {
            return Err(ServiceError::Throttled {
                retry_after_secs: wait,
            });
        }
        self.reset_throttle.record(client, now);
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let key = format!("reset:{}", email.key());
        if let Some(f) = self.store.login_failures(&key).await? {
            if now - f.last_at >= time::Duration::hours(1) {
                self.store.clear_login_failures(&key).await?;
            } else if f.count >= RESETS_PER_ADDRESS_PER_HOUR {
                return Ok(());
            }
        }
        let Some(person) = self.store.person_by_email(email.as_str()).await? else {
            return Ok(());
        };
        if !person.enabled || person.source == Source::Ldap {
            return Ok(());
        }
        self.store.record_login_failure(&key, now).await?;
        let token = new_token();
        let expires_at = now + self.settings.link_ttl;
        let context = MailContext {
            link: Some(format!("{}/reset/{token}", self.settings.public_url)),
            expires_at: Some(expires_at),
            ..self.mail_context(&person)
        };
        let message = NewOutboxMessage {
            recipient: person.email.clone(),
            template: Template::PasswordReset,
            mail: self.composer.compose(Template::PasswordReset, &context),
            person_id: Some(person.id),
            created_at: now,
        };
        let new_token = NewToken {
            hash: hash_token(&token),
            kind: TokenKind::PasswordReset,
            person_id: person.id,
            created_at: now,
            expires_at,
        };
        self.store
            .record_password_reset(&new_token, &message)
            .await?;
        self.outbox_signal.notify_one();
        Ok(())
    }

    /// The notices owed when an administrator changes a person's email or password.
    pub(crate) fn change_notices(
        &self,
        before: &Person,
        new_email: Option<&str>,
        password_changed: bool,
    ) -> Vec<NewOutboxMessage> {
        let now = self.clock.now();
        let mut notices = Vec::new();
        if let Some(new_email) = new_email.filter(|e| !e.eq_ignore_ascii_case(&before.email)) {
            let context = MailContext {
                new_email: Some(new_email.to_owned()),
                ..self.mail_context(before)
            };
            notices.push(NewOutboxMessage {
                // The old address: the person may no longer read the new one, or not yet.
                recipient: before.email.clone(),
                template: Template::EmailChanged,
                mail: self.composer.compose(Template::EmailChanged, &context),
                person_id: Some(before.id),
                created_at: now,
            });
        }
        if password_changed {
            notices.push(NewOutboxMessage {
                recipient: new_email.unwrap_or(&before.email).to_owned(),
                template: Template::PasswordChangedByAdmin,
                mail: self
                    .composer
                    .compose(Template::PasswordChangedByAdmin, &self.mail_context(before)),
                person_id: Some(before.id),
                created_at: now,
            });
        }
        notices
    }
}

/// The rules of product §4: external, LDAP and disabled people cannot be invited; people who
/// joined or connected need no invitation.
pub fn check_invitable(person: &Person) -> Result<(), ServiceError> {
    if person.kind == PersonType::External || person.source == Source::Ldap {
        return Err(ServiceError::state(
            "not_invitable",
            "External and directory (LDAP) accounts cannot be invited from here.",
        ));
    }
    if person.last_login_at.is_some() || person.joined_at.is_some() {
        return Err(ServiceError::state(
            "already_joined",
            "This person has already joined; there is nothing to resend.",
        ));
    }
    if !person.enabled {
        return Err(ServiceError::state(
            "not_invitable",
            "This account is disabled; enable it before inviting.",
        ));
    }
    Ok(())
}

//! Logging in and staying logged in: password checks with throttling that never reveals
//! whether an account exists, database-stored sessions (so several nodes share them and a
//! disabled person is out at once), API tokens, and choosing one's own password.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{off_runtime, Actor, Usher};
use crate::audit::{actions, AuditRecord};
use crate::error::{FieldError, FieldErrors, ServiceError};
use crate::groups;
use crate::people::{dummy_hash, hash_password, verify_password, Person, Username};
use crate::store::{ActingPerson, PasswordChange, PersonUpdate, SessionRecord};
use crate::token::{hash_token, new_token};

/// Failures on one account after which each attempt must wait (doubling, up to a minute).
const FREE_FAILURES: u32 = 5;
const MAX_ACCOUNT_DELAY_SECS: i64 = 60;

#[derive(Debug)]
pub struct LoginSuccess {
    pub person: Person,
    /// The clear session token, for the cookie; only its hash is stored.
    pub session_token: String,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password: one message for both, so as not to tell which.
    #[error("Wrong username or password.")]
    InvalidCredentials,
    /// Only said after a correct password.
    #[error("This account is disabled. Ask your administrator.")]
    Disabled,
    #[error("Too many attempts. Try again in {retry_after_secs} seconds.")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for LoginError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// Who a request comes from, once its session or token checked out.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub actor: Actor,
    pub person: Person,
    /// The session's CSRF token; `None` for API tokens, which need none.
    pub csrf_token: Option<String>,
}

/// Events (failed logins, reset requests) per client address over the last minute, refused
/// past a limit. Kept in memory: each node throttles the clients it sees, which is what
/// protects that node.
pub struct ClientThrottle {
    per_minute: usize,
    failures: Mutex<HashMap<String, VecDeque<OffsetDateTime>>>,
}

impl ClientThrottle {
    pub fn new(per_minute: usize) -> Self {
        Self {
            per_minute,
            failures: Mutex::default(),
        }
    }

    fn prune(queue: &mut VecDeque<OffsetDateTime>, now: OffsetDateTime) {
        while queue
            .front()
            .is_some_and(|t| *t <= now - Duration::minutes(1))
        {
            queue.pop_front();
        }
    }

    /// Seconds to wait when the client is over its limit.
    pub(crate) fn check(&self, client: &str, now: OffsetDateTime) -> Option<u64> {
        let mut map = self.failures.lock().expect("throttle lock");
        let queue = map.get_mut(client)?;
        Self::prune(queue, now);
        if queue.len() >= self.per_minute {
            let oldest = *queue.front()?;
            let wait = (oldest + Duration::minutes(1) - now).whole_seconds().max(1);
            Some(wait as u64)
        } else {
            None
        }
    }

    pub(crate) fn record(&self, client: &str, now: OffsetDateTime) {
        let mut map = self.failures.lock().expect("throttle lock");
        // Bound memory under a flood of distinct addresses.
        if map.len() > 100_000 {
            map.retain(|_, q| {
                Self::prune(q, now);
                !q.is_empty()
            });
        }
        let queue = map.entry(client.to_owned()).or_default();
        Self::prune(queue, now);
        queue.push_back(now);
    }
}

impl Usher {
    /// Logs in with a username or an email and a password. `client` is the caller's address.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: &str,
    ) -> Result<LoginSuccess, LoginError> {
        let now = self.clock.now();
        if let Some(wait) = self.client_throttle.check(client, now) {
            return Err(LoginError::Throttled {
                retry_after_secs: wait,
            });
        }
        let person = self.person_by_login(login).await?;
        // Throttle per account when it exists, else per name typed: the two behave alike, so
        // throttling tells nothing about existence.
        let key = match &person {
            Some(p) => format!("person:{}", p.id),
            None => format!("login:{}", login.trim().to_lowercase()),
        };
        if let Some(f) = self.store.login_failures(&key).await? {
            if f.count >= FREE_FAILURES {
                let delay = 1i64 << (f.count - FREE_FAILURES).min(6);
                let delay = Duration::seconds(delay.min(MAX_ACCOUNT_DELAY_SECS));
                let allowed_at = f.last_at + delay;
                if now < allowed_at {
                    let wait = (allowed_at - now).as_seconds_f64().ceil().max(1.0) as u64;
                    return Err(LoginError::Throttled {
                        retry_after_secs: wait,
                    });
                }
            }
        }
        let stored = match &person {
            Some(p) => self.store.password_hash(p.id).await?,
            None => None,
        };
        let candidate = password.to_owned();
        let matches = off_runtime(move || match stored {
            Some(phc) => verify_password(&phc, &candidate),
            None => {
                // Same work as a real check, so timing does not tell either.
                let _ = verify_password(dummy_hash(), &candidate);
                false
            }
        })
        .await?;
        let Some(person) = person.filter(|_| matches) else {
            self.store.record_login_failure(&key, now).await?;
            self.client_throttle.record(client, now);
            return Err(LoginError::InvalidCredentials);
        };
        if !person.enabled {
            return Err(LoginError::Disabled);
        }
        self.store.clear_login_failures(&key).await?;
        self.store.record_login(person.id, now).await?;
        let (session_token, csrf_token, expires_at) = self.open_session(person.id).await?;
        let person = self
            .store
            .person_by_id(person.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(LoginSuccess {
            person,
            session_token,
            csrf_token,
            expires_at,
        })
    }

    async fn person_by_login(&self, login: &str) -> Result<Option<Person>, ServiceError> {
        let login = login.trim();
        if let Ok(username) = Username::parse(login) {
            if let Some(p) = self.store.person_by_username(username.as_str()).await? {
                return Ok(Some(p));
            }
        }
        if login.contains('@') {
            return Ok(self.store.person_by_email(login).await?);
        }
        Ok(None)
    }

    pub(crate) async fn open_session(
        &self,
        person_id: i64,
    ) -> Result<(String, String, OffsetDateTime), ServiceError> {
        let now = self.clock.now();
        let token = new_token();
        let csrf = new_token();
        let expires_at = now + self.settings.session_ttl;
        self.store
            .insert_session(&SessionRecord {
                token_hash: hash_token(&token),
                person_id,
                csrf_token: csrf.clone(),
                created_at: now,
                expires_at,
            })
            .await?;
        Ok((token, csrf, expires_at))
    }

    /// The person behind a session cookie, if the session is live and the person enabled.
    pub async fn authenticate_session(
        &self,
        token: &str,
    ) -> Result<Option<Authenticated>, ServiceError> {
        let hash = hash_token(token);
        let Some(session) = self.store.session(&hash, self.clock.now()).await? else {
            return Ok(None);
        };
        let Some(auth) = self
            .authenticated(session.person_id, Some(session.csrf_token))
            .await?
        else {
            self.store.delete_session(&hash).await?;
            return Ok(None);
        };
        Ok(Some(auth))
    }

    /// The person behind an API token, if enabled.
    pub async fn authenticate_token(
        &self,
        token: &str,
    ) -> Result<Option<Authenticated>, ServiceError> {
        let acting = self
            .store
            .api_token_owner(&hash_token(token), self.clock.now())
            .await?;
        Ok(authenticated(acting, None))
    }

    async fn authenticated(
        &self,
        person_id: i64,
        csrf_token: Option<String>,
    ) -> Result<Option<Authenticated>, ServiceError> {
        let acting = self.store.acting_person(person_id).await?;
        Ok(authenticated(acting, csrf_token))
    }

    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_session(&hash_token(token)).await?)
    }

    /// A person chooses their own password (after a temporary one, or at will). Their other
    /// sessions end; the current one, if given, stays.
    pub async fn change_own_password(
        &self,
        person: &Person,
        current_password: Option<&str>,
        new_password: &str,
        confirmation: &str,
        keep_session_token: Option<&str>,
    ) -> Result<(), ServiceError> {
        let mut errors = FieldErrors::default();
        // With a temporary password the person just typed it at login; otherwise ask again.
        if !person.password_temporary {
            let stored = self.store.password_hash(person.id).await?;
            let given = current_password.unwrap_or_default().to_owned();
            let ok =
                off_runtime(move || stored.is_some_and(|h| verify_password(&h, &given))).await?;
            if !ok {
                errors.add(
                    "current_password",
                    FieldError::new("wrong_password", "This is not your current password."),
                );
            }
        }
        let new = self.check_new_password_for(&mut errors, new_password, confirmation, person);
        let (Some(new), true) = (new, errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        let hash = off_runtime(move || hash_password(&new)).await?;
        let mut update = PersonUpdate::from_person(person);
        update.password = Some(PasswordChange {
            hash,
            temporary: false,
        });
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: Some(person.username.clone()),
            action: actions::USER_PASSWORD_SET,
            target: Some(person.username.clone()),
            details: json!({ "via": "self" }).into(),
        };
        self.store.update_person(person.id, &update, &audit).await?;
        let keep = keep_session_token.map(hash_token);
        self.store
            .delete_sessions_of(person.id, keep.as_deref())
            .await?;
        Ok(())
    }

    fn check_new_password_for(
        &self,
        errors: &mut FieldErrors,
        password: &str,
        confirmation: &str,
        person: &Person,
    ) -> Option<crate::people::Password> {
        let parsed = errors.take(
            "password",
            crate::people::Password::parse(
                password,
                &self.settings.password_policy,
                Some(&person.username),
            ),
        );
        if password != confirmation {
            errors.add(
                "password_confirmation",
                FieldError::new("password_mismatch", "The two passwords differ."),
            );
        }
        parsed
    }

    /// `usher token create`: a new API token for an administrator, returned once in clear.
    pub async fn create_api_token(
        &self,
        username: &str,
        name: &str,
    ) -> Result<String, ServiceError> {
        let person = self
            .store
            .person_by_username(&username.trim().to_lowercase())
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !self
            .store
            .is_member(person.id, groups::ADMINISTRATORS)
            .await?
        {
            return Err(ServiceError::forbidden(
                "not_admin",
                "API tokens are for administrators.",
            ));
        }
        let token = new_token();
        let audit = AuditRecord {
            at: self.clock.now(),
            actor: None,
            action: actions::TOKEN_CREATE,
            target: Some(person.username.clone()),
            details: json!({ "name": name, "via": "shell" }).into(),
        };
        self.store
            .insert_api_token(person.id, name, &hash_token(&token), &audit)
            .await?;
        Ok(token)
    }
}

/// Who acts on a request, if anyone: a disabled person is no one.
fn authenticated(
    acting: Option<ActingPerson>,
    csrf_token: Option<String>,
) -> Option<Authenticated> {
    acting.filter(|a| a.person.enabled).map(|a| Authenticated {
        actor: Actor::of(&a.person, a.admin),
        person: a.person,
        csrf_token,
    })
}

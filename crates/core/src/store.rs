//! The store contract: everything Usher keeps, as one trait that `usher-store` implements for
//! SQLite and PostgreSQL and that one contract test suite runs against both.
//!
//! Rules every implementation keeps:
//! - a method that takes an [`AuditRecord`] writes it in the same transaction as the change;
//! - usernames and email keys are unique; a deleted person's username stays reserved;
//! - derived columns (search text, sort keys) are computed by the store from the values given,
//!   with [`crate::fold`], so that every backend searches alike;
//! - times are kept to the millisecond.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::groups::Membership;
use crate::people::{Person, PersonType, Profile, Source};
use crate::query::{Page, UserQuery};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    UsernameTaken,
    UsernameReserved,
    EmailTaken,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    #[error("store error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A person to insert; values already validated.
#[derive(Debug, Clone)]
pub struct NewPerson {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub password_temporary: bool,
    pub enabled: bool,
    pub kind: PersonType,
    pub source: Source,
    pub super_user: bool,
    pub profile: Profile,
    pub created_at: OffsetDateTime,
    /// `(group path, role)` pairs granted in the same transaction.
    pub memberships: Vec<(String, String)>,
}

/// The new state of a person's changeable fields. The password changes only when given.
#[derive(Debug, Clone)]
pub struct PersonUpdate {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub enabled: bool,
    pub profile: Profile,
    pub password: Option<PasswordChange>,
}

#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub hash: String,
    pub temporary: bool,
}

impl PersonUpdate {
    /// The current values of `person`, to change a few of them.
    pub fn from_person(person: &Person) -> Self {
        Self {
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            email: person.email.clone(),
            enabled: person.enabled,
            profile: person.profile.clone(),
            password: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub person_id: i64,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Failed logins counted against one key (an account, or an unknown login name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    pub last_at: OffsetDateTime,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    async fn count_people(&self) -> StoreResult<u64>;

    /// Inserts a person with their memberships. Conflicts: `UsernameReserved` when the username
    /// belonged to a deleted person, `UsernameTaken`, `EmailTaken`.
    async fn insert_person(&self, new: &NewPerson, audit: &AuditRecord) -> StoreResult<Person>;

    async fn person_by_id(&self, id: i64) -> StoreResult<Option<Person>>;
    async fn person_by_username(&self, username: &str) -> StoreResult<Option<Person>>;
    /// Looks up by address, case-insensitively.
    async fn person_by_email(&self, email: &str) -> StoreResult<Option<Person>>;
    /// Whether a deleted person held this username.
    async fn username_was_deleted(&self, username: &str) -> StoreResult<bool>;

    /// The PHC string, kept out of [`Person`] so that it never travels further than needed.
    async fn password_hash(&self, id: i64) -> StoreResult<Option<String>>;

    /// Writes the new state of a person. Conflict: `EmailTaken`. `NotFound` if gone.
    async fn update_person(
        &self,
        id: i64,
        update: &PersonUpdate,
        audit: &AuditRecord,
    ) -> StoreResult<Person>;

    /// Deletes a person, their memberships, sessions and tokens; the username stays reserved.
    async fn delete_person(&self, id: i64, audit: &AuditRecord) -> StoreResult<()>;

    /// One page of the people matching the query, in its order, and the exact total.
    async fn search_people(&self, query: &UserQuery) -> StoreResult<Page<Person>>;

    async fn memberships(&self, person_id: i64) -> StoreResult<Vec<Membership>>;
    async fn is_member(&self, person_id: i64, group_path: &str) -> StoreResult<bool>;

    /// Sets `last_login_at`.
    async fn record_login(&self, person_id: i64, at: OffsetDateTime) -> StoreResult<()>;

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with this hash if it has not expired at `now`.
    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<SessionRecord>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Ends every session of a person but the one given; returns how many ended.
    async fn delete_sessions_of(
        &self,
        person_id: i64,
        except_token_hash: Option<&str>,
    ) -> StoreResult<u64>;

    async fn insert_api_token(
        &self,
        person_id: i64,
        name: &str,
        token_hash: &str,
        audit: &AuditRecord,
    ) -> StoreResult<()>;
    /// The owner of a token, recording its use.
    async fn api_token_owner(
        &self,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<i64>>;

    async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>>;
    /// Adds one failure and returns the new count.
    async fn record_login_failure(&self, key: &str, at: OffsetDateTime) -> StoreResult<u32>;
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;

    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()>;
    /// Entries newest first, with the exact total of the filter.
    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Page<AuditEntry>>;
}

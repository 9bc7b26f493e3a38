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
use crate::import::{
    ImportIssue, ImportJob, ImportKeys, ImportLease, ImportLookup, ImportState, ImportStep,
    ImportUpdate, NewImport, PreparedRows,
};
use crate::mail::{Delivery, NewOutboxMessage, OutboxMessage};
use crate::people::{Person, PersonType, Profile, Source};
use crate::query::{Page, UserFilter, UserQuery};
use crate::search::{ChangeCursor, ChangeKey, IndexedPerson};

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

/// The answer of [`Store::identity_in_use`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityInUse {
    pub username_reserved: bool,
    pub username_taken: bool,
    pub email_taken: bool,
}

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

/// A person as the one acting on a request: who they are and whether they administer, read
/// together (every authenticated request needs both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingPerson {
    pub person: Person,
    /// A member of the administrators' group.
    pub admin: bool,
}

/// Failed logins counted against one key (an account, or an unknown login name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    pub last_at: OffsetDateTime,
}

/// A collaboration space, the group `/spaces/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    /// Whether its managers may invite people from outside the organisation.
    pub external_invitations: bool,
    pub created_at: OffsetDateTime,
}

impl Space {
    pub fn group_path(&self) -> String {
        format!("/spaces/{}", self.name)
    }
}

#[derive(Debug, Clone)]
pub struct NewSpace {
    pub name: String,
    pub display_name: String,
    pub external_invitations: bool,
    pub created_at: OffsetDateTime,
}

/// An invitation of an email address to a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceInvitation {
    pub id: i64,
    pub space_id: i64,
    pub email: String,
    /// `pending`, `accepted` or `revoked`; a pending one past `expires_at` shows as expired.
    pub state: String,
    pub invited_by: Option<String>,
    pub invited_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
}

impl SpaceInvitation {
    /// The state shown: `pending`, `expired`, `accepted` or `revoked`.
    pub fn shown_state(&self, now: OffsetDateTime) -> &str {
        if self.state == "pending" && now >= self.expires_at {
            "expired"
        } else {
            &self.state
        }
    }
}

/// A background job: a mass action too large to answer at once.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub total: u64,
    pub processed: u64,
    /// The outcome as JSON, once done.
    pub result: Option<serde_json::Value>,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// How many import jobs and outbox messages are in each state, for the operator's gauges:
/// counts only, nothing about anyone. States absent from the store are absent here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// `(state, count)` of import jobs (`receiving`, `queued`, `running`, `done`, `failed`).
    pub imports: Vec<(String, u64)>,
    /// `(state, count)` of outbox messages (`queued`, `sent`, `failed`).
    pub outbox: Vec<(String, u64)>,
}

/// The hold one run has on a background job. The run renews it with each chunk it records;
/// once `until` has passed, any node may take the job over under a new token, which fences
/// the old run out (its next record is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub token: String,
    pub until: OffsetDateTime,
}

/// What a single-use link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Invitation,
    PasswordReset,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(Self::Invitation),
            "password_reset" => Some(Self::PasswordReset),
            _ => None,
        }
    }
}

/// A link token to store; only its hash is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: String,
    pub kind: TokenKind,
    pub person_id: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: String,
    pub kind: TokenKind,
    pub person_id: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Usable: not used and not expired at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    async fn count_people(&self) -> StoreResult<u64>;

    /// Import jobs and outbox messages counted by state.
    async fn queue_counts(&self) -> StoreResult<QueueCounts>;

    /// Inserts a person with their memberships. Conflicts: `UsernameReserved` when the username
    /// belonged to a deleted person, `UsernameTaken`, `EmailTaken`.
    async fn insert_person(&self, new: &NewPerson, audit: &AuditRecord) -> StoreResult<Person>;

    async fn person_by_id(&self, id: i64) -> StoreResult<Option<Person>>;
    /// The person with this id and whether they administer, in one read.
    async fn acting_person(&self, id: i64) -> StoreResult<Option<ActingPerson>>;
    async fn person_by_username(&self, username: &str) -> StoreResult<Option<Person>>;
    /// Looks up by address, case-insensitively.
    async fn person_by_email(&self, email: &str) -> StoreResult<Option<Person>>;
    /// Whether a deleted person held this username.
    async fn username_was_deleted(&self, username: &str) -> StoreResult<bool>;
    /// Which of a new person's identifiers are already used, in one read: the username by a
    /// deleted person (reserved) or a stored one, the email (case-insensitively) by anyone.
    async fn identity_in_use(&self, username: &str, email: &str) -> StoreResult<IdentityInUse>;

    /// The PHC string, kept out of [`Person`] so that it never travels further than needed.
    async fn password_hash(&self, id: i64) -> StoreResult<Option<String>>;

    /// Writes the new state of a person. Conflict: `EmailTaken`. `NotFound` if gone.
    async fn update_person(
        &self,
        id: i64,
        update: &PersonUpdate,
        audit: &AuditRecord,
    ) -> StoreResult<Person> {
        self.update_person_notifying(id, update, audit, &[]).await
    }

    /// The same, queuing `notices` (emails telling the person) in the same transaction.
    async fn update_person_notifying(
        &self,
        id: i64,
        update: &PersonUpdate,
        audit: &AuditRecord,
        notices: &[NewOutboxMessage],
    ) -> StoreResult<Person>;

    /// Deletes a person, their memberships, sessions and tokens; the username stays reserved.
    async fn delete_person(&self, id: i64, audit: &AuditRecord) -> StoreResult<()>;

    /// One page of the people matching the query, in its order, and the exact total.
    async fn search_people(&self, query: &UserQuery) -> StoreResult<Page<Person>>;

    /// These people, in this order; those since deleted are left out.
    async fn people_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Person>>;

    // --- The people change feed, which keeps each node's search index in step ---

    /// The feed's present position. Taken before reading changes, it is where the next read
    /// starts: every write to `people`, by any statement, node or process, committed before it
    /// was taken is seen from a cursor taken earlier, and none is lost after it.
    async fn people_change_cursor(&self) -> StoreResult<ChangeCursor>;

    /// Up to `limit` people written since `since` (everyone from [`ChangeCursor::origin`]), in
    /// change order after `after`. A person may come again later (written again): the latest
    /// version wins.
    async fn changed_people(
        &self,
        since: &ChangeCursor,
        after: Option<ChangeKey>,
        limit: u32,
    ) -> StoreResult<Vec<IndexedPerson>>;

    /// Ids of the people deleted since `since`. An id may since belong to someone new: apply
    /// these before the changed people.
    async fn removed_people(&self, since: &ChangeCursor) -> StoreResult<Vec<i64>>;

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
    /// The owner of a token and whether they administer, read at once (every API request
    /// asks), recording the token's use to the minute (a use within a minute of the last
    /// recorded one is not written).
    async fn api_token_owner(
        &self,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ActingPerson>>;

    async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>>;
    /// Adds one failure and returns the new count.
    async fn record_login_failure(&self, key: &str, at: OffsetDateTime) -> StoreResult<u32>;
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;

    /// Records an invitation in one transaction: the person's earlier unused invitation links
    /// stop working, the new token is stored, `invited_at` is set to the token's creation,
    /// the message is queued and becomes the person's invitation message, the audit written.
    async fn record_invitation(
        &self,
        token: &NewToken,
        message: &NewOutboxMessage,
        audit: &AuditRecord,
    ) -> StoreResult<()>;

    /// Stores a password-reset token (earlier unused ones of the person stop working) and
    /// queues its message, in one transaction.
    async fn record_password_reset(
        &self,
        token: &NewToken,
        message: &NewOutboxMessage,
    ) -> StoreResult<()>;

    /// Queues a message on its own (notices).
    async fn queue_message(&self, message: &NewOutboxMessage) -> StoreResult<i64>;

    /// The token with this hash, whatever its state.
    async fn token(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;

    /// Sets a password through a link, in one transaction: the token must be of `kind`, unused
    /// and unexpired at `at` (else `NotFound`); the password is set (not temporary), `joined_at`
    /// recorded for an invitation, and every token of that kind of the person is used up.
    /// Returns the person's id.
    async fn redeem_token(
        &self,
        hash: &str,
        kind: TokenKind,
        password_hash: &str,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<i64>;

    /// Claims up to `limit` queued messages due at `now` for delivery. A claimed message is
    /// not due again before `lease_until`, so that a worker that dies mid-send only delays
    /// it; several workers (nodes) never claim the same message at once.
    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease_until: OffsetDateTime,
    ) -> StoreResult<Vec<OutboxMessage>>;

    /// Marks a message delivered and forgets its bodies (they hold clear links).
    async fn message_sent(&self, id: i64, at: OffsetDateTime) -> StoreResult<()>;

    /// Records a failed attempt: retried at `retry_at`, or given up (`None`, bodies forgotten).
    async fn message_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;

    /// How a message's delivery stands.
    async fn message_delivery(&self, id: i64) -> StoreResult<Option<Delivery>>;

    // Spaces

    /// Creates the group `/spaces/{name}`. Conflict `UsernameTaken` is never used here:
    /// `Ok(None)` says the name is taken.
    async fn insert_space(
        &self,
        space: &NewSpace,
        audit: &AuditRecord,
    ) -> StoreResult<Option<Space>>;
    async fn update_space(&self, space: &Space, audit: &AuditRecord) -> StoreResult<()>;
    async fn space(&self, name: &str) -> StoreResult<Option<Space>>;
    /// Every space, by name; or only those `person_id` belongs to.
    async fn spaces(&self, member: Option<i64>) -> StoreResult<Vec<Space>>;
    /// Members with their role, by username.
    async fn space_members(&self, space: &Space) -> StoreResult<Vec<(Person, String)>>;
    /// The role of a person in a group, if a member.
    async fn role_in(&self, person_id: i64, group_path: &str) -> StoreResult<Option<String>>;
    /// Adds or changes a membership.
    async fn set_membership(
        &self,
        person_id: i64,
        group_path: &str,
        role: &str,
        audit: &AuditRecord,
    ) -> StoreResult<()>;
    /// Removes a membership; `false` if there was none.
    async fn remove_membership(
        &self,
        person_id: i64,
        group_path: &str,
        audit: &AuditRecord,
    ) -> StoreResult<bool>;

    /// Records a registration invitation (or a resend: same id, new link) and queues its
    /// message, in one transaction.
    async fn record_space_invitation(
        &self,
        invitation: &SpaceInvitation,
        token_hash: &str,
        message: &NewOutboxMessage,
        audit: &AuditRecord,
    ) -> StoreResult<i64>;
    async fn space_invitations(&self, space: &Space) -> StoreResult<Vec<SpaceInvitation>>;
    async fn space_invitation(&self, id: i64) -> StoreResult<Option<SpaceInvitation>>;
    /// The invitation whose newest link has this hash.
    async fn space_invitation_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SpaceInvitation>>;
    async fn revoke_space_invitation(&self, id: i64, audit: &AuditRecord) -> StoreResult<()>;
    /// Creates the external person of an accepted registration, with their memberships, and
    /// marks the invitation accepted, in one transaction. `NotFound` if the invitation is no
    /// longer pending and live at `new.created_at`.
    async fn accept_space_invitation(
        &self,
        id: i64,
        new: &NewPerson,
        audit: &AuditRecord,
    ) -> StoreResult<Person>;

    // Mass actions

    /// Every person matching a filter, in username order, without paging: the selection of a
    /// mass action, taken once before acting so that acting cannot change it.
    async fn matching_people(&self, filter: &UserFilter) -> StoreResult<Vec<Person>>;

    /// Sets `enabled` for many people in one transaction with one audit entry each; disabling
    /// also ends their sessions. Returns how many rows changed.
    async fn set_enabled_many(
        &self,
        person_ids: &[i64],
        enabled: bool,
        audits: &[AuditRecord],
    ) -> StoreResult<u64>;

    /// Records a background job (a large mass action) and returns its id.
    async fn insert_job(&self, job: &JobRecord) -> StoreResult<i64>;
    /// Saves a job's progress, state and (when done) its result.
    async fn update_job(&self, job: &JobRecord) -> StoreResult<()>;
    async fn job(&self, id: i64) -> StoreResult<Option<JobRecord>>;
    /// Records a job that can be resumed: `spec` says what it does, `lease` is its first run's.
    async fn insert_resumable_job(
        &self,
        job: &JobRecord,
        spec: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<i64>;
    /// Records the outcome of chunk `seq` of a running job, its progress and its renewed lease,
    /// in one transaction; `NotFound` when `lease.token` no longer holds the job (another node
    /// took it over, or it ended). Recording a chunk again replaces its outcome.
    async fn record_job_part(
        &self,
        job_id: i64,
        seq: u32,
        processed: u64,
        part: &serde_json::Value,
        lease: &JobLease,
    ) -> StoreResult<()>;
    /// The recorded outcomes of a job's chunks, in order.
    async fn job_parts(&self, job_id: i64) -> StoreResult<Vec<serde_json::Value>>;
    /// Takes over one running resumable job whose lease ran out before `now` (its node
    /// stopped), under `lease`: the job and its spec. At most one caller gets each job.
    async fn claim_stalled_job(
        &self,
        now: OffsetDateTime,
        lease: &JobLease,
    ) -> StoreResult<Option<(JobRecord, serde_json::Value)>>;

    async fn append_audit(&self, audit: &AuditRecord) -> StoreResult<()>;
    /// Entries newest first, with the exact total of the filter.
    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Page<AuditEntry>>;

    // Imports (product §6). A job's file is kept in the store in chunks until the job ends, so
    // that any node can run or resume it; rows are applied in steps that also move the job's
    // progress, under a lease that fences out a worker which lost the job.

    /// Creates a job in the `receiving` state, for its file to be appended.
    async fn create_import(&self, new: &NewImport) -> StoreResult<i64>;
    /// Stores chunk `seq` (0, 1, …) of a job's file.
    async fn append_import_chunk(&self, job_id: i64, seq: u32, data: &[u8]) -> StoreResult<()>;
    /// Ends the receiving: the job becomes `queued` with its row count, or `running` under
    /// `lease` when the submitter runs it itself (the shell); the audit entry is written.
    async fn queue_import(
        &self,
        job_id: i64,
        rows: u64,
        file_bytes: u64,
        lease: Option<&ImportLease>,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob>;
    /// Forgets a job that is still `receiving` (its file was refused or never completed).
    async fn discard_import(&self, job_id: i64) -> StoreResult<()>;
    /// Forgets the `receiving` jobs created before `before`: uploads a crash left behind.
    async fn purge_abandoned_imports(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// A job, unless it is still `receiving`.
    async fn import_job(&self, id: i64) -> StoreResult<Option<ImportJob>>;
    /// Jobs newest first (`receiving` ones left out), with the total.
    async fn import_jobs(&self, limit: u32, offset: u64) -> StoreResult<Page<ImportJob>>;
    /// Chunk `seq` of a job's file; `None` past the end (or once the job ended).
    async fn import_chunk(&self, job_id: i64, seq: u32) -> StoreResult<Option<Vec<u8>>>;
    /// Takes the oldest job that is `queued`, or `running` with its lease expired at `now`
    /// (its node died), or `running` for `reclaim_from` (this node, restarted); several nodes
    /// never take the same job. The job becomes `running` under `lease`, `started_at` is set
    /// the first time, `attempts` grows by one.
    async fn claim_import(
        &self,
        lease: &ImportLease,
        now: OffsetDateTime,
        reclaim_from: Option<&str>,
    ) -> StoreResult<Option<ImportJob>>;
    /// What a batch needs to know: the people with its usernames (and their memberships when
    /// the batch names groups: only then are they read), the owners of its addresses, which
    /// usernames were deleted, which groups exist.
    async fn import_lookup(&self, keys: &ImportKeys) -> StoreResult<ImportLookup>;
    /// How many rows of a file an import reads, looks up and plans at a time: what suits this
    /// store's writes (each batch is written as one step, or several when it brings many
    /// passwords), against the memory each batch in flight holds.
    fn import_batch_rows(&self) -> usize;
    /// Prepares the form in which a step's `creates`, `updates` and `audits` are written (the
    /// part of a step's work that needs no database), so that it can be done ahead of the
    /// step's turn to commit ([`ImportStep::prepared`]). `None`: nothing to prepare.
    fn prepare_import_rows(
        &self,
        creates: &[&NewPerson],
        updates: &[&ImportUpdate],
        audits: &[&AuditRecord],
    ) -> Option<PreparedRows>;
    /// Applies a step in one transaction: people created and changed with their memberships,
    /// audit entries, notices and ended sessions, report lines, people to invite, new counts
    /// and the extended lease. `NotFound` (nothing written) when the lease token no longer
    /// holds the running job or its `processed` is not `expected_processed`; `Conflict` when a
    /// username or email clashed (nothing written: the caller retries row by row); a created
    /// username that a deleted person held is `Conflict(UsernameReserved)`.
    async fn apply_import_step(
        &self,
        job_id: i64,
        lease_token: &str,
        step: &ImportStep,
    ) -> StoreResult<()>;
    /// Usernames a job still has to invite (left by a step whose invitations did not all go).
    async fn import_invites(&self, job_id: i64, limit: u32) -> StoreResult<Vec<String>>;
    async fn clear_import_invite(&self, job_id: i64, username: &str) -> StoreResult<()>;
    /// Ends a job held under `lease_token` as `done` or `failed`; its file is forgotten (the
    /// report stays) and the audit entry written. `NotFound` if the lease no longer holds.
    async fn finish_import(
        &self,
        job_id: i64,
        lease_token: &str,
        state: ImportState,
        error: Option<&str>,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> StoreResult<ImportJob>;
    /// Report lines in file order, after the one with id `after` (0 for the first page), each
    /// with its id.
    async fn import_issues(
        &self,
        job_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, ImportIssue)>>;
}

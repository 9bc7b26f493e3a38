//! An import job as the store keeps it, and the values that cross the store contract while a
//! job runs: a lease (which worker holds the job, until when), a step (one committed slice of
//! the file: its changes, its report lines and the new counts), and the lookups a batch needs.

use std::any::Any;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::AuditRecord;
use crate::groups::Membership;
use crate::mail::NewOutboxMessage;
use crate::people::Person;
use crate::store::{NewPerson, PersonUpdate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// The file is being received; not a job yet (never shown; discarded if abandoned).
    Receiving,
    Queued,
    Running,
    Done,
    Failed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "receiving" => Self::Receiving,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// The counts of product §6. `rows` counts data records (not the header, not blank lines);
/// `processed` = created + updated + unchanged + failed; `warnings` counts warning lines of
/// the report. In a dry run, created/updated/unchanged say what would have happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub rows: u64,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub warnings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    pub id: i64,
    pub state: ImportState,
    pub dry_run: bool,
    pub file_name: Option<String>,
    pub file_bytes: u64,
    /// Who submitted it; `None` for the shell (`usher import`).
    pub actor: Option<String>,
    pub counts: ImportCounts,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// Why a job failed.
    pub error: Option<String>,
    /// The node running it (or that ran it last).
    pub owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    /// How many times a worker took the job up.
    pub attempts: u32,
}

/// A job to create, in the `receiving` state until its file is complete.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub dry_run: bool,
    pub file_name: Option<String>,
    pub actor: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A worker's hold on a job. The token changes with every claim, so that a worker that lost
/// its job (its lease ran out and another node took over) can no longer commit to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLease {
    pub owner: String,
    pub token: String,
    pub until: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Self::Error),
            "warning" => Some(Self::Warning),
            _ => None,
        }
    }
}

/// One line of the report (`line,username,field,severity,code,message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportIssue {
    pub line: u64,
    pub username: String,
    pub field: String,
    pub severity: Severity,
    pub code: String,
    pub message: String,
}

/// A person changed by an import.
#[derive(Debug, Clone)]
pub struct ImportUpdate {
    pub id: i64,
    pub username: String,
    pub update: PersonUpdate,
    /// `(group path, role)`; memberships the person already has in a group are kept as they are.
    pub add_memberships: Vec<(String, String)>,
    /// Emails telling the person (an address changed by someone else).
    pub notices: Vec<NewOutboxMessage>,
    /// Disabled by this import: their sessions end.
    pub end_sessions: bool,
    /// The address changed, not only its case: the store writes its key (a unique index's
    /// entry) only then.
    pub email_changed: bool,
}

/// A step's rows in the form its store writes them (for instance their JSON), made ahead of
/// the step's turn to commit by [`crate::store::Store::prepare_import_rows`], on the planner's
/// time rather than the writer's. Opaque to everything but the store that made it.
#[derive(Clone)]
pub struct PreparedRows(Arc<dyn Any + Send + Sync>);

impl PreparedRows {
    pub fn new<T: Any + Send + Sync>(rows: T) -> Self {
        Self(Arc::new(rows))
    }

    /// The rows as the store made them; `None` if another kind of store did.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for PreparedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedRows(..)")
    }
}

/// One committed slice of a job. The store applies it whole or not at all, and only while
/// the lease holds and the job's `processed` is still `expected_processed`, so that no row is
/// ever applied twice.
#[derive(Debug, Clone)]
pub struct ImportStep {
    pub expected_processed: u64,
    /// The job's counts after this step.
    pub counts: ImportCounts,
    pub creates: Vec<NewPerson>,
    pub updates: Vec<ImportUpdate>,
    /// One entry per created or updated person.
    pub audits: Vec<AuditRecord>,
    pub issues: Vec<ImportIssue>,
    /// People to invite once the step is committed (`onboardUser`).
    pub invites: Vec<String>,
    /// The lease is extended to this time.
    pub lease_until: OffsetDateTime,
    /// `creates`, `updates` and `audits` as the store writes them, when prepared ahead; they
    /// must then be what they were prepared from.
    pub prepared: Option<PreparedRows>,
}

/// What a batch asks the store about.
#[derive(Debug, Clone, Default)]
pub struct ImportKeys {
    pub usernames: Vec<String>,
    /// Lower-cased addresses.
    pub email_keys: Vec<String>,
    pub groups: Vec<String>,
}

/// What the store knows about a batch's keys.
#[derive(Debug, Clone, Default)]
pub struct ImportLookup {
    /// The people with one of the usernames, with their memberships when `groups` was asked
    /// about (a batch without a `groups` cell never reads them).
    pub people: Vec<(Person, Vec<Membership>)>,
    /// `(email key, person id, username)` of the accounts holding one of the addresses.
    pub email_owners: Vec<(String, i64, String)>,
    /// The usernames that belonged to deleted people.
    pub deleted: Vec<String>,
    /// The group paths that exist.
    pub groups: Vec<String>,
}

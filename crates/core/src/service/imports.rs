//! Import jobs (product §6): receiving a file, running it batch by batch, resuming it.
//!
//! - **Receiving** ([`Usher::begin_import`]): the file is checked as it arrives
//!   ([`FileScanner`]) and stored in the store in chunks of [`CHUNK_BYTES`]; a file-level
//!   problem discards it and changes nothing. The job is then `queued` (or, for the shell,
//!   `running` at once under its own lease).
//! - **Running** ([`Usher::run_import`]): a blocking thread reads the stored chunks, parses and
//!   checks rows and hands batches over a bounded channel, so memory holds a chunk and a few
//!   batches whatever the file's size. Each batch is looked up in the store, planned
//!   ([`plan_row`]), its new passwords hashed on every core, and committed in one step that
//!   also moves the job's progress: a crash resumes after the last committed step, and no row
//!   is applied twice. A step the store refuses (a username or email taken by someone else in
//!   the meantime) is retried row by row, so one clash fails one row, never its neighbours.
//! - **Resuming**: a job is held under a lease that each step extends. A job whose node died
//!   is taken over when its lease runs out; a node that restarts takes its own jobs back at
//!   once. The new holder skips the rows already processed (still noting their usernames and
//!   emails for the duplicate check) and goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{finished, submit, Actor, Usher};
use crate::audit::{actions, AuditDetails, AuditRecord};
use crate::error::ServiceError;
use crate::import::csv_stream::{CsvStream, Next, StreamError};
use crate::import::plan::{keys_of, plan_row, BatchLookup, Plan, PlanContext, PlannedRow};
use crate::import::row::{issue, parse_row, ParsedRow, SeenKeys};
use crate::import::{
    unknown_columns_issue, Column, FileError, FileScanner, Header, ImportCounts, ImportIssue,
    ImportJob, ImportLease, ImportState, ImportStep, ImportUpdate, NewImport, PreparedRows,
    Severity,
};
use crate::people::{hash_password, Password, Person, PersonType, Source};
use crate::query::Page;
use crate::store::{Conflict, NewPerson, PersonUpdate, Store, StoreError};
use crate::token::new_token;

/// The size of the chunks a file is stored in.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A job taken up this many times without finishing is failed rather than tried again: a file
/// that crashes its worker must not crash every node in turn.
const MAX_ATTEMPTS: u32 = 5;

/// Where a job's file comes from, chunk by chunk.
#[async_trait]
pub trait ChunkSource: Send + 'static {
    /// The next chunk, or `None` at the end of the file.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError>;
}

/// A job's file, read back from the store.
struct StoredChunks {
    store: Arc<dyn Store>,
    job_id: i64,
    seq: u32,
}

#[async_trait]
impl ChunkSource for StoredChunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        let chunk = self.store.import_chunk(self.job_id, self.seq).await?;
        self.seq += 1;
        Ok(chunk)
    }
}

/// Receives the report's lines of a dry run that has no job to keep them.
pub type IssueSink<'a> = Box<dyn FnMut(&ImportIssue) + Send + Sync + 'a>;

/// How a file is submitted.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub dry_run: bool,
    pub file_name: Option<String>,
    /// The largest file accepted (`USHER_IMPORT_MAX_BYTES`).
    pub max_bytes: u64,
    /// Set when the submitter runs the job itself (the shell): the job is claimed at once by
    /// this owner instead of waiting for a worker.
    pub run_by: Option<String>,
    /// How long that first claim lasts.
    pub lease: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            file_name: None,
            max_bytes: 512 * 1024 * 1024,
            run_by: None,
            lease: Duration::minutes(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file is refused; nothing was kept.
    #[error("{0}")]
    File(FileError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for UploadError {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// A file being received. Dropped without [`ImportUpload::finish`], it leaves a `receiving`
/// job that the import worker purges later.
pub struct ImportUpload {
    usher: Usher,
    job_id: i64,
    scanner: FileScanner,
    pending: Vec<u8>,
    seq: u32,
    actor: Option<String>,
    options: UploadOptions,
}

impl ImportUpload {
    /// Adds the next bytes of the file. On a file-level problem the upload is discarded.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), UploadError> {
        if let Err(e) = self.scanner.feed(bytes) {
            self.discard_quietly().await;
            return Err(UploadError::File(e));
        }
        while !bytes.is_empty() {
            let take = (CHUNK_BYTES - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == CHUNK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.scanner.bytes()
    }

    async fn flush(&mut self) -> Result<(), UploadError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self
            .usher
            .store
            .append_import_chunk(self.job_id, self.seq, &self.pending)
            .await
        {
            self.discard_quietly().await;
            return Err(e.into());
        }
        self.seq += 1;
        self.pending.clear();
        Ok(())
    }

    /// Ends the file: the job, queued (or claimed, with its lease, when `run_by` was set).
    pub async fn finish(mut self) -> Result<(ImportJob, Option<ImportLease>), UploadError> {
        let scanner = std::mem::replace(&mut self.scanner, FileScanner::new(0));
        let summary = match scanner.finish() {
            Ok(s) => s,
            Err(e) => {
                self.discard_quietly().await;
                return Err(UploadError::File(e));
            }
        };
        self.flush().await?;
        let now = self.usher.clock.now();
        let lease = self.options.run_by.clone().map(|owner| ImportLease {
            owner,
            token: new_token(),
            until: now + self.options.lease,
        });
        let audit = AuditRecord {
            at: now,
            actor: self.actor.clone(),
            action: actions::IMPORT_SUBMIT,
            target: None,
            details: json!({
                "job": self.job_id,
                "file": self.options.file_name,
                "rows": summary.rows,
                "bytes": summary.bytes,
                "dry_run": self.options.dry_run,
            })
            .into(),
        };
        let job = self
            .usher
            .store
            .queue_import(
                self.job_id,
                summary.rows,
                summary.bytes,
                lease.as_ref(),
                &audit,
            )
            .await?;
        if lease.is_none() {
            self.usher.import_signal.notify_one();
        }
        Ok((job, lease))
    }

    /// Forgets the file received so far.
    pub async fn discard(self) {
        self.discard_quietly().await;
    }

    async fn discard_quietly(&self) {
        // Nothing to add if this fails too: the worker purges abandoned uploads.
        let _ = self.usher.store.discard_import(self.job_id).await;
    }
}

/// How a run paces itself and when it stops early.
#[derive(Clone)]
pub struct RunOptions {
    /// Rows per batch (one store lookup, then steps of at most this many rows); `None`: the
    /// store's choice ([`Store::import_batch_rows`]), reached by doubling from
    /// [`FIRST_BATCH_ROWS`] ([`BatchSizes`]).
    pub batch_size: Option<usize>,
    /// At most this many passwords hashed per step, so that steps (and progress) stay short
    /// when every row brings a password.
    pub password_batch: usize,
    /// Each step extends the lease to now + this.
    pub lease: Duration,
    /// Set from outside (shutdown): the run stops after the step in progress, leaving the
    /// job to be resumed.
    pub stop: Option<Arc<AtomicBool>>,
    /// Tests: stop after this many steps as a crash would (nothing finished, lease kept).
    pub stop_after_steps: Option<u64>,
    /// Receives the counts after every step (the shell's progress bar).
    pub progress: Option<watch::Sender<ImportCounts>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            batch_size: None,
            password_batch: (cores * 8).max(8),
            lease: Duration::minutes(2),
            stop: None,
            stop_after_steps: None,
            progress: None,
        }
    }
}

#[derive(Debug)]
pub enum RunOutcome {
    /// The job ended (`done`, or `failed` with its reason).
    Finished(Box<ImportJob>),
    /// Stopped on request; the job stays `running` under its lease, to be resumed.
    Stopped,
    /// Another worker holds the job now; this one stopped without writing.
    LeaseLost,
}

impl Usher {
    /// Starts receiving a file. `actor` is the administrator submitting it, `None` for the
    /// shell.
    pub async fn begin_import(
        &self,
        actor: Option<&Actor>,
        options: UploadOptions,
    ) -> Result<ImportUpload, ServiceError> {
        if let Some(actor) = actor {
            actor.require_admin()?;
        }
        let file_name = options
            .file_name
            .as_deref()
            .map(|n| crate::import::row::report_text(n, 255))
            .filter(|n| !n.is_empty());
        let job_id = self
            .store
            .create_import(&NewImport {
                dry_run: options.dry_run,
                file_name: file_name.clone(),
                actor: actor.map(|a| a.username.clone()),
                created_at: self.clock.now(),
            })
            .await?;
        Ok(ImportUpload {
            usher: self.clone(),
            job_id,
            scanner: FileScanner::new(options.max_bytes),
            pending: Vec::with_capacity(CHUNK_BYTES),
            seq: 0,
            actor: actor.map(|a| a.username.clone()),
            options: UploadOptions {
                file_name,
                ..options
            },
        })
    }

    pub async fn import_job(&self, actor: &Actor, id: i64) -> Result<ImportJob, ServiceError> {
        actor.require_admin()?;
        self.store
            .import_job(id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn import_jobs(
        &self,
        actor: &Actor,
        limit: u32,
        offset: u64,
    ) -> Result<Page<ImportJob>, ServiceError> {
        actor.require_admin()?;
        Ok(self.store.import_jobs(limit, offset).await?)
    }

    /// A page of a job's report, after the line with id `after`.
    pub async fn import_issues(
        &self,
        actor: &Actor,
        id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ImportIssue)>, ServiceError> {
        actor.require_admin()?;
        Ok(self.store.import_issues(id, after, limit).await?)
    }

    /// Takes the next job this node may run, under a new lease. `reclaim_own` takes back the
    /// jobs `owner` held before a restart, without waiting for their lease to run out.
    pub async fn claim_import(
        &self,
        owner: &str,
        lease: Duration,
        reclaim_own: bool,
    ) -> Result<Option<(ImportJob, ImportLease)>, ServiceError> {
        let now = self.clock.now();
        let lease = ImportLease {
            owner: owner.to_owned(),
            token: new_token(),
            until: now + lease,
        };
        let job = self
            .store
            .claim_import(&lease, now, reclaim_own.then_some(owner))
            .await?;
        Ok(job.map(|j| (j, lease)))
    }

    /// Runs (or resumes) a job held under `lease` until it ends, stops, or loses its lease.
    pub async fn run_import(
        &self,
        job: ImportJob,
        lease: ImportLease,
        options: RunOptions,
    ) -> Result<RunOutcome, ServiceError> {
        let token = lease.token.clone();
        if job.attempts > MAX_ATTEMPTS {
            let error = format!(
                "Stopped after {MAX_ATTEMPTS} interrupted attempts; {} of {} rows were processed.",
                job.counts.processed, job.counts.rows
            );
            return self
                .end_job(&job, &token, ImportState::Failed, Some(&error))
                .await;
        }
        let actor_id = match &job.actor {
            Some(name) => self.store.person_by_username(name).await?.map(|p| p.id),
            None => None,
        };
        let mut engine = Engine {
            usher: self,
            job_id: Some(job.id),
            dry_run: job.dry_run,
            actor: job.actor.clone(),
            actor_id,
            lease: Some(lease),
            counts: job.counts,
            options: options.clone(),
            sink: None,
            header: None,
            steps: 0,
        };
        engine.send_pending_invites().await?;
        let source = StoredChunks {
            store: self.store.clone(),
            job_id: job.id,
            seq: 0,
        };
        match engine.run(Box::new(source)).await? {
            Ended::Completed => self.end_job(&job, &token, ImportState::Done, None).await,
            Ended::FileError(message) => {
                self.end_job(&job, &token, ImportState::Failed, Some(&message))
                    .await
            }
            Ended::Stopped => Ok(RunOutcome::Stopped),
            Ended::LeaseLost => Ok(RunOutcome::LeaseLost),
        }
    }

    async fn end_job(
        &self,
        job: &ImportJob,
        token: &str,
        state: ImportState,
        error: Option<&str>,
    ) -> Result<RunOutcome, ServiceError> {
        let now = self.clock.now();
        // The counts as committed, for the audit entry.
        let counts = self
            .store
            .import_job(job.id)
            .await?
            .map_or(job.counts, |j| j.counts);
        let audit = AuditRecord {
            at: now,
            actor: job.actor.clone(),
            action: actions::IMPORT_FINISH,
            target: None,
            details: json!({
                "job": job.id,
                "file": job.file_name,
                "dry_run": job.dry_run,
                "state": state.as_str(),
                "error": error,
                "counts": counts,
            })
            .into(),
        };
        match self
            .store
            .finish_import(job.id, token, state, error, now, &audit)
            .await
        {
            Ok(job) => Ok(RunOutcome::Finished(Box::new(job))),
            Err(StoreError::NotFound) => Ok(RunOutcome::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// Validates a file without a job and without writing anything (`usher import
    /// --dry-run`): every rule, consistency checks included, against the stored people.
    /// `on_issue` receives the report's lines in order; the counts say what would happen.
    pub async fn dry_run_import(
        &self,
        source: Box<dyn ChunkSource>,
        rows: u64,
        options: RunOptions,
        on_issue: IssueSink<'_>,
    ) -> Result<Result<ImportCounts, String>, ServiceError> {
        let mut engine = Engine {
            usher: self,
            job_id: None,
            dry_run: true,
            actor: None,
            actor_id: None,
            lease: None,
            counts: ImportCounts {
                rows,
                ..ImportCounts::default()
            },
            options,
            sink: Some(on_issue),
            header: None,
            steps: 0,
        };
        match engine.run(source).await? {
            Ended::FileError(message) => Ok(Err(message)),
            _ => Ok(Ok(engine.counts)),
        }
    }
}

/// What the reading thread hands to the applier.
enum Produced {
    Header(Arc<Header>),
    Batch(Vec<ParsedRow>),
    /// The file cannot be read on (it was checked when submitted, so only a store problem or
    /// a file changed since would do this).
    Failed(String),
}

enum Ended {
    Completed,
    FileError(String),
    Stopped,
    LeaseLost,
}

/// Why a step could not be committed.
enum Halt {
    LeaseLost,
    Error(ServiceError),
}

impl From<ServiceError> for Halt {
    fn from(e: ServiceError) -> Self {
        Self::Error(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Failed,
}

#[derive(Debug, Clone)]
enum Change {
    None,
    Create(Box<NewPerson>),
    Update(Box<ImportUpdate>),
}

/// A row ready to commit.
#[derive(Debug, Clone)]
struct RowResult {
    line: u64,
    label: String,
    outcome: Outcome,
    change: Change,
    audit: Option<AuditRecord>,
    issues: Vec<ImportIssue>,
    invite: Option<String>,
}

impl RowResult {
    /// The row, failed because the store refused its change.
    fn refused(self, header: Option<&Header>, e: &StoreError) -> Self {
        let name = |c: Column| header.map_or(c.template_name(), |h| h.name(c)).to_owned();
        let (field, code, message) = match e {
            StoreError::Conflict(Conflict::EmailTaken) => (
                name(Column::Email),
                "email_taken",
                "Another account took this email address while the import ran.".to_owned(),
            ),
            StoreError::Conflict(Conflict::UsernameReserved) => (
                name(Column::UserName),
                "username_reserved",
                "This username belonged to a deleted account and stays reserved.".to_owned(),
            ),
            StoreError::Conflict(Conflict::UsernameTaken) => (
                name(Column::UserName),
                "username_taken",
                "Another account took this username while the import ran.".to_owned(),
            ),
            other => (
                name(Column::UserName),
                "store_error",
                format!(
                    "The store refused this row: {}",
                    crate::import::row::report_text(&other.to_string(), 200)
                ),
            ),
        };
        let mut issues = self.issues;
        issues.push(issue(
            self.line,
            &self.label,
            &field,
            Severity::Error,
            code,
            message,
        ));
        Self {
            outcome: Outcome::Failed,
            change: Change::None,
            audit: None,
            invite: None,
            issues,
            ..self
        }
    }
}

/// A step as the planner hands it over: its rows, and what the store writes for them in its
/// own form when it could be prepared while the step before committed rather than on the
/// writer's turn.
#[derive(Default)]
struct PlannedStep {
    rows: Vec<RowResult>,
    prepared: Option<PreparedRows>,
}

/// What of a row moved into its step: to give it back when the store refuses the step.
struct RowParts {
    change: ChangeKind,
    audit: bool,
    invite: bool,
    issues: usize,
}

#[derive(Clone, Copy)]
enum ChangeKind {
    None,
    Create,
    Update,
}

impl RowParts {
    /// Moves the row's change, audit entry, invitation and report lines to the end of the
    /// step's lists.
    fn move_into(r: &mut RowResult, step: &mut ImportStep) -> Self {
        let change = match std::mem::replace(&mut r.change, Change::None) {
            Change::None => ChangeKind::None,
            Change::Create(new) => {
                step.creates.push(*new);
                ChangeKind::Create
            }
            Change::Update(u) => {
                step.updates.push(*u);
                ChangeKind::Update
            }
        };
        let audit = r.audit.take().map(|a| step.audits.push(a)).is_some();
        let invite = r.invite.take().map(|u| step.invites.push(u)).is_some();
        let issues = r.issues.len();
        step.issues.append(&mut r.issues);
        Self {
            change,
            audit,
            invite,
            issues,
        }
    }

    /// The rows as they were before [`RowParts::move_into`], taking their parts back from the
    /// step in order (its first `extra` report lines were not theirs).
    fn give_back(
        step: ImportStep,
        emptied: Vec<(RowResult, RowParts)>,
        extra: usize,
    ) -> Vec<RowResult> {
        let mut creates = step.creates.into_iter();
        let mut updates = step.updates.into_iter();
        let mut audits = step.audits.into_iter();
        let mut invites = step.invites.into_iter();
        let mut issues = step.issues.into_iter().skip(extra);
        emptied
            .into_iter()
            .map(|(mut r, parts)| {
                r.change = match parts.change {
                    ChangeKind::None => Change::None,
                    ChangeKind::Create => creates
                        .next()
                        .map_or(Change::None, |n| Change::Create(Box::new(n))),
                    ChangeKind::Update => updates
                        .next()
                        .map_or(Change::None, |u| Change::Update(Box::new(u))),
                };
                if parts.audit {
                    r.audit = audits.next();
                }
                if parts.invite {
                    r.invite = invites.next();
                }
                r.issues = issues.by_ref().take(parts.issues).collect();
                r
            })
            .collect()
    }
}

struct Engine<'a> {
    usher: &'a Usher,
    /// `None` for a dry run of the shell, which writes nothing.
    job_id: Option<i64>,
    dry_run: bool,
    actor: Option<String>,
    actor_id: Option<i64>,
    lease: Option<ImportLease>,
    counts: ImportCounts,
    options: RunOptions,
    sink: Option<IssueSink<'a>>,
    header: Option<Arc<Header>>,
    steps: u64,
}

impl Engine<'_> {
    async fn run(&mut self, source: Box<dyn ChunkSource>) -> Result<Ended, ServiceError> {
        // One batch read ahead of the one being planned (itself ahead of the one committing):
        // parsing is far quicker than writing, and each batch held costs memory.
        let (tx, mut rx) = mpsc::channel(1);
        let handle = tokio::runtime::Handle::current();
        let skip = self.counts.processed;
        let capacity = usize::try_from(self.counts.rows).unwrap_or(0);
        let sizes = match self.options.batch_size {
            Some(size) => BatchSizes::fixed(size),
            None => BatchSizes::growing(self.usher.store.import_batch_rows()),
        };
        let reader = tokio::task::spawn_blocking(move || {
            read_rows(handle, source, skip, capacity, sizes, tx)
        });
        let ended = self.apply_all(&mut rx).await;
        // Stops the reader if it is still going (its sends fail), then waits for it.
        drop(rx);
        let _ = reader.await;
        ended
    }

    async fn apply_all(
        &mut self,
        rx: &mut mpsc::Receiver<Produced>,
    ) -> Result<Ended, ServiceError> {
        // The unknown-columns warning belongs to the first step of the job, only.
        let mut file_issues = Vec::new();
        // The batch being planned while the one before it commits.
        let mut planning: Option<Planning> = None;
        loop {
            let produced = rx.recv().await;
            if let Some(Produced::Batch(rows)) = produced {
                let next = self.planner()?.start(rows);
                if let Some(ended) = self
                    .commit_planned(planning.replace(next), &mut file_issues)
                    .await?
                {
                    return Ok(ended);
                }
                continue;
            }
            // Whatever comes next, the batch in hand commits first.
            if let Some(ended) = self
                .commit_planned(planning.take(), &mut file_issues)
                .await?
            {
                return Ok(ended);
            }
            match produced {
                Some(Produced::Header(header)) => {
                    if self.counts.processed == 0 {
                        file_issues.extend(unknown_columns_issue(&header.unknown));
                    }
                    self.header = Some(header);
                }
                Some(Produced::Failed(message)) => return Ok(Ended::FileError(message)),
                Some(Produced::Batch(_)) => unreachable!("handled above"),
                None => break,
            }
        }
        if !file_issues.is_empty() {
            match self.commit(PlannedStep::default(), file_issues).await {
                Ok(()) => {}
                Err(Halt::LeaseLost) => return Ok(Ended::LeaseLost),
                Err(Halt::Error(e)) => return Err(e),
            }
        }
        Ok(Ended::Completed)
    }

    fn planner(&self) -> Result<Planner, ServiceError> {
        Ok(Planner {
            usher: self.usher.clone(),
            header: self
                .header
                .clone()
                .ok_or_else(|| ServiceError::Internal("rows before the header".into()))?,
            actor: self.actor.clone(),
            actor_id: self.actor_id,
            job_id: self.job_id,
            dry_run: self.dry_run,
            password_batch: self.options.password_batch.max(1),
        })
    }

    /// Commits the steps of a batch in order, each as soon as it is planned; `Some` when the
    /// run ends here.
    async fn commit_planned(
        &mut self,
        planning: Option<Planning>,
        file_issues: &mut Vec<ImportIssue>,
    ) -> Result<Option<Ended>, ServiceError> {
        let Some(mut planning) = planning else {
            return Ok(None);
        };
        while let Some(step) = planning.steps.recv().await {
            match self.commit(step?, std::mem::take(file_issues)).await {
                Ok(()) => {}
                Err(Halt::LeaseLost) => return Ok(Some(Ended::LeaseLost)),
                Err(Halt::Error(e)) => return Err(e),
            }
            if self.should_stop() {
                return Ok(Some(Ended::Stopped));
            }
        }
        // Every step arrived, unless the planner panicked.
        (&mut planning.task)
            .await
            .map_err(|e| ServiceError::Internal(format!("planning a batch failed: {e}")))?;
        Ok(None)
    }

    fn should_stop(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
            || self
                .options
                .stop_after_steps
                .is_some_and(|n| self.steps >= n)
    }

    /// Commits a planned step whole; when the store refuses it, row by row, so that a clash
    /// fails only its own row.
    async fn commit(&mut self, planned: PlannedStep, extra: Vec<ImportIssue>) -> Result<(), Halt> {
        let PlannedStep { mut rows, prepared } = planned;
        if rows.len() <= 1 {
            return self.commit_one(rows.pop(), extra).await;
        }
        match self.write_step(rows, prepared, &extra).await {
            Ok(step) => self.committed(step).await,
            Err((StoreError::NotFound, _)) => Err(Halt::LeaseLost),
            Err((_, rows)) => {
                let mut extra = Some(extra);
                for row in rows {
                    self.commit_one(Some(row), extra.take().unwrap_or_default())
                        .await?;
                }
                Ok(())
            }
        }
    }

    async fn commit_one(
        &mut self,
        row: Option<RowResult>,
        extra: Vec<ImportIssue>,
    ) -> Result<(), Halt> {
        let rows: Vec<RowResult> = row.into_iter().collect();
        match self.write_step(rows, None, &extra).await {
            Ok(step) => self.committed(step).await,
            Err((StoreError::NotFound, _)) => Err(Halt::LeaseLost),
            Err((e, mut rows)) => {
                let Some(row) = rows.pop() else {
                    return Err(Halt::Error(e.into()));
                };
                // The row's change cannot be made: it fails, with why, and the job goes on.
                // If even that cannot be written, the store itself is failing.
                let refused = vec![row.refused(self.header.as_deref(), &e)];
                match self.write_step(refused, None, &extra).await {
                    Ok(step) => self.committed(step).await,
                    Err((StoreError::NotFound, _)) => Err(Halt::LeaseLost),
                    Err((e, _)) => Err(Halt::Error(e.into())),
                }
            }
        }
    }

    /// Writes one step of `rows` after the report lines `extra` (or hands its report lines to
    /// the sink of a dry run without a job); `prepared`, when given, is what the store
    /// prepared of these same rows. The rows' changes move into the step rather than being
    /// copied (a copy of 2,000 people took 3–7 ms of the writer's turn): when the store refuses
    /// the step, they come back with the error.
    async fn write_step(
        &mut self,
        rows: Vec<RowResult>,
        prepared: Option<PreparedRows>,
        extra: &[ImportIssue],
    ) -> Result<ImportStep, (StoreError, Vec<RowResult>)> {
        let mut counts = self.counts;
        // Sized once: growing them copied each list over and over (an 8,000-row step's new
        // people come to some 2 MB).
        let count = |kind: fn(&RowResult) -> bool| rows.iter().filter(|r| kind(r)).count();
        let mut step = ImportStep {
            expected_processed: self.counts.processed,
            counts,
            creates: Vec::with_capacity(count(|r| matches!(r.change, Change::Create(_)))),
            updates: Vec::with_capacity(count(|r| matches!(r.change, Change::Update(_)))),
            audits: Vec::with_capacity(count(|r| r.audit.is_some())),
            issues: extra.to_vec(),
            invites: Vec::new(),
            lease_until: self.usher.clock.now() + self.options.lease,
            prepared,
        };
        let mut emptied = Vec::with_capacity(rows.len());
        for mut r in rows {
            counts.processed += 1;
            match r.outcome {
                Outcome::Created => counts.created += 1,
                Outcome::Updated => counts.updated += 1,
                Outcome::Unchanged => counts.unchanged += 1,
                Outcome::Failed => counts.failed += 1,
            }
            let parts = RowParts::move_into(&mut r, &mut step);
            emptied.push((r, parts));
        }
        counts.warnings += step
            .issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
            .count() as u64;
        step.counts = counts;
        match (self.job_id, &mut self.lease) {
            (Some(job_id), Some(lease)) => {
                if let Err(e) = self
                    .usher
                    .store
                    .apply_import_step(job_id, &lease.token, &step)
                    .await
                {
                    return Err((e, RowParts::give_back(step, emptied, extra.len())));
                }
                lease.until = step.lease_until;
            }
            _ => {
                if let Some(sink) = &mut self.sink {
                    for i in &step.issues {
                        sink(i);
                    }
                }
            }
        }
        drop_aside(emptied);
        Ok(step)
    }

    /// After a step is committed: progress, mail, invitations.
    async fn committed(&mut self, step: ImportStep) -> Result<(), Halt> {
        self.counts = step.counts;
        self.steps += 1;
        if let Some(progress) = &self.options.progress {
            let _ = progress.send(self.counts);
        }
        if step.updates.iter().any(|u| !u.notices.is_empty()) {
            self.usher.outbox_signal.notify_one();
        }
        for username in &step.invites {
            self.invite(username).await?;
        }
        drop_aside(step);
        Ok(())
    }

    /// Invitations a step left to send (a run interrupted between a step and its
    /// invitations sends them when it resumes).
    async fn send_pending_invites(&mut self) -> Result<(), ServiceError> {
        let Some(job_id) = self.job_id else {
            return Ok(());
        };
        loop {
            let pending = self.usher.store.import_invites(job_id, 100).await?;
            if pending.is_empty() {
                return Ok(());
            }
            for username in pending {
                self.invite(&username).await?;
            }
        }
    }

    /// Invites a person the import created or updated with `onboardUser`, then forgets the
    /// pending invitation. People who were invited, joined or became uninvitable meanwhile
    /// are skipped: invitations are at most once per person and import.
    async fn invite(&self, username: &str) -> Result<(), ServiceError> {
        let Some(job_id) = self.job_id else {
            return Ok(());
        };
        let usher = self.usher;
        if let Some(person) = usher.store.person_by_username(username).await? {
            if person.invited_at.is_none() && super::check_invitable(&person).is_ok() {
                self.send_invitation(&person).await?;
            }
        }
        usher.store.clear_import_invite(job_id, username).await?;
        Ok(())
    }

    /// The invitation of product §4 on behalf of the job's submitter (or the system, for the
    /// shell).
    async fn send_invitation(&self, person: &Person) -> Result<(), ServiceError> {
        self.usher
            .send_invitation(
                self.actor.as_deref(),
                person,
                json!({ "resend": false, "email": person.email, "import": self.job_id }),
            )
            .await
    }
}

/// A batch being planned on its own task, its steps arriving as they are ready. Dropping it
/// stops the planning (a run that ends early).
struct Planning {
    steps: mpsc::Receiver<Result<PlannedStep, ServiceError>>,
    task: JoinHandle<()>,
}

impl Drop for Planning {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plans batches and prepares their rows: the part of a run that only reads the store, so
/// that it can go on for the next batch (its own task) while the previous step commits.
#[derive(Clone)]
struct Planner {
    usher: Usher,
    header: Arc<Header>,
    actor: Option<String>,
    actor_id: Option<i64>,
    job_id: Option<i64>,
    dry_run: bool,
    password_batch: usize,
}

impl Planner {
    /// Plans a batch on its own task, handing its steps over one by one.
    fn start(self, rows: Vec<ParsedRow>) -> Planning {
        // One step ready ahead of the one committing: enough to keep the writer busy, and a
        // batch of passwords is not all hashed (and held) before its first step commits.
        let (tx, steps) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            if let Err(e) = self.steps(rows, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Planning { steps, task }
    }

    /// A batch as the steps to commit, sent as each is ready: at most `password_batch` new
    /// passwords each, so that steps, and the progress they report, stay short when every row
    /// brings a password. Stops when the receiver is gone.
    async fn steps(
        &self,
        rows: Vec<ParsedRow>,
        tx: &mpsc::Sender<Result<PlannedStep, ServiceError>>,
    ) -> Result<(), ServiceError> {
        let planned = self.plan(rows).await?;
        let mut slice = Vec::new();
        let mut passwords = 0;
        let mut planned = planned.into_iter().peekable();
        while let Some(row) = planned.next() {
            if matches!(&row.plan, Plan::Create(c) if c.password.is_some()) {
                passwords += 1;
            }
            slice.push(row);
            if passwords >= self.password_batch || planned.peek().is_none() {
                let rows = self.prepare(std::mem::take(&mut slice)).await?;
                if tx.send(Ok(self.planned_step(rows))).await.is_err() {
                    return Ok(());
                }
                passwords = 0;
            }
        }
        Ok(())
    }

    /// A step's rows, with what they write prepared in the store's form unless nothing will
    /// be written (a dry run).
    fn planned_step(&self, rows: Vec<RowResult>) -> PlannedStep {
        let prepared = (self.job_id.is_some() && !self.dry_run)
            .then(|| {
                let (mut creates, mut updates) = (Vec::new(), Vec::new());
                for r in &rows {
                    match &r.change {
                        Change::None => {}
                        Change::Create(new) => creates.push(&**new),
                        Change::Update(u) => updates.push(&**u),
                    }
                }
                let audits: Vec<&AuditRecord> =
                    rows.iter().filter_map(|r| r.audit.as_ref()).collect();
                self.usher
                    .store
                    .prepare_import_rows(&creates, &updates, &audits)
            })
            .flatten();
        PlannedStep { rows, prepared }
    }

    /// Looks a batch up and decides what each row does.
    async fn plan(&self, rows: Vec<ParsedRow>) -> Result<Vec<PlannedRow>, ServiceError> {
        let header = &self.header;
        let lookup: BatchLookup = self
            .usher
            .store
            .import_lookup(&keys_of(&rows))
            .await?
            .into();
        let ctx = PlanContext {
            header,
            policy: &self.usher.settings.password_policy,
            actor_id: self.actor_id,
        };
        Ok(rows
            .into_iter()
            .map(|r| plan_row(r, &lookup, &ctx))
            .collect())
    }

    /// Hashes the new passwords and builds what the store writes for each row.
    async fn prepare(&self, planned: Vec<PlannedRow>) -> Result<Vec<RowResult>, ServiceError> {
        let passwords: Vec<Password> = if self.dry_run {
            Vec::new()
        } else {
            planned
                .iter()
                .filter_map(|p| match &p.plan {
                    Plan::Create(c) => c.password.clone(),
                    _ => None,
                })
                .collect()
        };
        let mut hashes = hash_all(passwords).await?.into_iter();
        let now = self.usher.clock.now();
        Ok(planned
            .into_iter()
            .map(|p| self.row_result(p, &mut hashes, now))
            .collect())
    }

    fn row_result(
        &self,
        p: PlannedRow,
        hashes: &mut impl Iterator<Item = String>,
        now: OffsetDateTime,
    ) -> RowResult {
        let mut result = RowResult {
            line: p.line,
            label: p.label,
            outcome: Outcome::Failed,
            change: Change::None,
            audit: None,
            issues: p.issues,
            invite: None,
        };
        let audit = |action: &'static str, target: &str, details: AuditDetails| AuditRecord {
            at: now,
            actor: self.actor.clone(),
            action,
            target: Some(target.to_owned()),
            details,
        };
        let via = ImportOrigin {
            job: self.job_id,
            line: p.line,
        };
        match p.plan {
            Plan::Failed => {}
            Plan::Unchanged => result.outcome = Outcome::Unchanged,
            Plan::Create(c) => {
                result.outcome = Outcome::Created;
                if self.dry_run {
                    return result;
                }
                let hash = c.password.as_ref().and_then(|_| hashes.next());
                let new = NewPerson {
                    username: c.username.into_string(),
                    first_name: c.first_name.into_string(),
                    last_name: c.last_name.into_string(),
                    email: c.email.into_string(),
                    // Set by someone else: the person chooses their own at first login.
                    password_temporary: hash.is_some(),
                    password_hash: hash,
                    enabled: c.enabled,
                    kind: PersonType::Internal,
                    source: Source::Internal,
                    super_user: false,
                    profile: c.profile,
                    created_at: now,
                    memberships: c.memberships,
                };
                result.audit = Some(audit(
                    actions::USER_CREATE,
                    &new.username,
                    AuditDetails::of(&CreatedByImport {
                        after: NewPersonSnapshot::of(&new),
                        import: via,
                    }),
                ));
                result.invite = p.invite.then(|| new.username.clone());
                result.change = Change::Create(Box::new(new));
            }
            Plan::Update(u) => {
                result.outcome = Outcome::Updated;
                if self.dry_run {
                    return result;
                }
                let (before, mut after) = diff(&u.before, &u.update);
                if !u.add_memberships.is_empty() {
                    after.insert("memberships_added".into(), json!(u.add_memberships));
                }
                if p.invite {
                    after.insert("invite".into(), json!(true));
                }
                let action = if u.disabled {
                    actions::USER_DISABLE
                } else if !u.before.enabled && u.update.enabled {
                    actions::USER_ENABLE
                } else {
                    actions::USER_UPDATE
                };
                result.audit = Some(audit(
                    action,
                    &u.before.username,
                    AuditDetails::of(&json!({ "before": before, "after": after, "import": via })),
                ));
                let notices = if u.email_changed {
                    self.usher
                        .change_notices(&u.before, Some(&u.update.email), false)
                } else {
                    Vec::new()
                };
                result.invite = p.invite.then(|| u.before.username.clone());
                result.change = Change::Update(Box::new(ImportUpdate {
                    id: u.before.id,
                    username: u.before.username.clone(),
                    update: u.update,
                    add_memberships: u.add_memberships,
                    notices,
                    end_sessions: u.disabled,
                    email_changed: u.email_changed,
                }));
            }
        }
        result
    }
}

/// The first batch of a run whose batch size is the store's choice.
pub const FIRST_BATCH_ROWS: usize = 250;

/// The sizes of a run's batches, one after the other.
///
/// Nothing is written until the first batch has been read, looked up and planned, and the
/// reading and planning of each batch overlap the writing of the one before: a first batch of
/// the store's full size (then 4,000 rows on SQLite) kept the writer waiting 45–55 ms, a fifth of a
/// 10,000-row import (timed in the server). Batches start small and double up to that size, so
/// that the first rows are written (and the progress moves) within 10 ms.
#[derive(Debug, Clone, Copy)]
struct BatchSizes {
    next: usize,
    max: usize,
}

impl BatchSizes {
    fn fixed(size: usize) -> Self {
        let size = size.max(1);
        Self {
            next: size,
            max: size,
        }
    }

    fn growing(max: usize) -> Self {
        let max = max.max(1);
        Self {
            next: FIRST_BATCH_ROWS.min(max),
            max,
        }
    }

    /// The size of the next batch.
    fn take(&mut self) -> usize {
        let size = self.next;
        self.next = (self.next * 2).min(self.max);
        size
    }
}

/// The reading thread: parses the file chunk by chunk, skips the rows a previous run
/// processed (noting their keys for the duplicate check), checks the others and sends them in
/// batches. Stops quietly when the applier hangs up.
fn read_rows(
    handle: tokio::runtime::Handle,
    mut source: Box<dyn ChunkSource>,
    skip: u64,
    capacity: usize,
    mut sizes: BatchSizes,
    tx: mpsc::Sender<Produced>,
) {
    let fail = |tx: &mpsc::Sender<Produced>, message: String| {
        let _ = tx.blocking_send(Produced::Failed(message));
    };
    let mut stream = CsvStream::new();
    let mut header: Option<Arc<Header>> = None;
    let mut seen = SeenKeys::with_capacity(capacity);
    let mut index = 0u64;
    let mut batch_size = sizes.take();
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let next = match stream.next_record() {
            Ok(next) => next,
            Err(e) => return fail(&tx, stream_message(e)),
        };
        match next {
            Next::NeedInput => match handle.block_on(source.next_chunk()) {
                Ok(Some(chunk)) => stream.push(&chunk),
                Ok(None) => stream.finish(),
                Err(e) => return fail(&tx, format!("The file could not be read back: {e}")),
            },
            Next::End => {
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Produced::Batch(batch));
                }
                return;
            }
            Next::Record(record) => {
                if record.is_blank() {
                    continue;
                }
                let Some(h) = &header else {
                    match Header::parse(&record.fields) {
                        Ok(h) => {
                            let h = Arc::new(h);
                            if tx.blocking_send(Produced::Header(h.clone())).is_err() {
                                return;
                            }
                            header = Some(h);
                        }
                        Err(e) => return fail(&tx, e.message),
                    }
                    continue;
                };
                index += 1;
                if index <= skip {
                    seen.remember(h, &record);
                    continue;
                }
                batch.push(parse_row(h, &record, &mut seen));
                if batch.len() >= batch_size {
                    batch_size = sizes.take();
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.blocking_send(Produced::Batch(full)).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn stream_message(e: StreamError) -> String {
    match e {
        StreamError::RecordTooLong { line } => {
            format!("The record starting on line {line} is longer than 1 MiB.")
        }
        StreamError::TooManyFields { line } => {
            format!("The record starting on line {line} has too many cells.")
        }
    }
}

/// Frees a written step's rows on a blocking thread: for an 8,000-row step some hundred
/// thousand allocations, which the writer's task otherwise freed between one step and the
/// next, while the database waited.
fn drop_aside<T: Send + 'static>(rows: T) {
    drop(tokio::task::spawn_blocking(move || drop(rows)));
}

/// Hashes passwords on every core, off the async runtime: one task per core's share on the
/// hashing pool.
async fn hash_all(passwords: Vec<Password>) -> Result<Vec<String>, ServiceError> {
    if passwords.is_empty() {
        return Ok(Vec::new());
    }
    let expected = passwords.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_task = passwords.len().div_ceil(cores.min(passwords.len()));
    let tasks: Vec<_> = passwords
        .chunks(per_task)
        .map(|part| {
            let part = part.to_vec();
            submit(move || part.iter().map(hash_password).collect::<Vec<_>>())
        })
        .collect();
    let mut hashes = Vec::with_capacity(expected);
    for task in tasks {
        hashes.extend(finished(task).await?);
    }
    // A hashing thread that panicked leaves fewer hashes than passwords: refuse the step
    // rather than give someone another's hash.
    if hashes.len() == expected {
        Ok(hashes)
    } else {
        Err(ServiceError::Internal(
            "a password hashing thread failed".into(),
        ))
    }
}

/// Where an imported row came from, in its audit entry.
#[derive(Serialize)]
struct ImportOrigin {
    job: Option<i64>,
    line: u64,
}

/// The details of an import's `user.create` entry, rendered straight from the row. Fields
/// come in the order of their names, as in the entries rendered from a `serde_json::Value`.
#[derive(Serialize)]
struct CreatedByImport<'a> {
    after: NewPersonSnapshot<'a>,
    import: ImportOrigin,
}

/// A new person as their audit entry records them: the values the file set, without the
/// empty profile fields and the membership every new person has, so that a million entries
/// stay small.
#[derive(Serialize)]
struct NewPersonSnapshot<'a> {
    email: &'a str,
    enabled: bool,
    first_name: &'a str,
    last_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    memberships: Option<&'a [(String, String)]>,
    password: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Value>,
    username: &'a str,
}

impl<'a> NewPersonSnapshot<'a> {
    fn of(p: &'a NewPerson) -> Self {
        // Most rows bring no profile: it is rendered only when there is one.
        let profile = if p.profile == crate::people::Profile::default() {
            None
        } else if let Value::Object(fields) = json!(p.profile) {
            Some(Value::Object(
                fields.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            ))
        } else {
            None
        };
        let usual_membership = matches!(
            p.memberships.as_slice(),
            [(g, r)] if g == crate::groups::USERS && r == "member"
        );
        Self {
            email: &p.email,
            enabled: p.enabled,
            first_name: &p.first_name,
            last_name: &p.last_name,
            memberships: (!p.memberships.is_empty() && !usual_membership)
                .then_some(p.memberships.as_slice()),
            password: if p.password_hash.is_some() {
                "set"
            } else {
                "none"
            },
            profile,
            username: &p.username,
        }
    }
}

/// The fields that change, before and after.
fn diff(p: &Person, u: &PersonUpdate) -> (Map<String, Value>, Map<String, Value>) {
    let mut before = Map::new();
    let mut after = Map::new();
    let mut field = |name: &str, old: Value, new: Value| {
        if old != new {
            before.insert(name.to_owned(), old);
            after.insert(name.to_owned(), new);
        }
    };
    field("first_name", json!(p.first_name), json!(u.first_name));
    field("last_name", json!(p.last_name), json!(u.last_name));
    field("email", json!(p.email), json!(u.email));
    field("enabled", json!(p.enabled), json!(u.enabled));
    field("profile", json!(p.profile), json!(u.profile));
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::Profile;

    fn row(line: u64, outcome: Outcome, change: Change) -> RowResult {
        RowResult {
            line,
            label: format!("row.{line}"),
            outcome,
            change,
            audit: None,
            issues: Vec::new(),
            invite: None,
        }
    }

    fn audit(target: &str) -> AuditRecord {
        AuditRecord {
            at: OffsetDateTime::UNIX_EPOCH,
            actor: Some("admin".into()),
            action: actions::USER_CREATE,
            target: Some(target.into()),
            details: json!({ "target": target }).into(),
        }
    }

    fn report(line: u64, code: &str) -> ImportIssue {
        issue(line, "someone", "email", Severity::Warning, code, "a line")
    }

    #[test]
    fn batches_grow_from_the_first_to_the_store_s_size() {
        let mut sizes = BatchSizes::growing(4000);
        let taken: Vec<usize> = (0..8).map(|_| sizes.take()).collect();
        assert_eq!(taken, [250, 500, 1000, 2000, 4000, 4000, 4000, 4000]);
        let mut small = BatchSizes::growing(100);
        assert_eq!((small.take(), small.take()), (100, 100));
        let mut fixed = BatchSizes::fixed(7);
        assert_eq!((fixed.take(), fixed.take()), (7, 7));
    }

    #[test]
    fn rows_moved_into_a_refused_step_come_back_as_they_were() {
        let created = NewPerson {
            username: "new.one".into(),
            first_name: "New".into(),
            last_name: "One".into(),
            email: "new.one@example.org".into(),
            password_hash: None,
            password_temporary: false,
            enabled: true,
            kind: PersonType::Internal,
            source: Source::Internal,
            super_user: false,
            profile: Profile::default(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            memberships: vec![("/platform/users".into(), "member".into())],
        };
        let updated = ImportUpdate {
            id: 7,
            username: "old.one".into(),
            update: PersonUpdate {
                first_name: "Old".into(),
                last_name: "Renamed".into(),
                email: "old.one@example.org".into(),
                enabled: false,
                profile: Profile::default(),
                password: None,
            },
            add_memberships: Vec::new(),
            notices: Vec::new(),
            end_sessions: true,
            email_changed: false,
        };
        let mut first = row(2, Outcome::Created, Change::Create(Box::new(created)));
        first.audit = Some(audit("new.one"));
        first.invite = Some("new.one".into());
        first.issues = vec![report(2, "unknown_group")];
        let mut failed = row(3, Outcome::Failed, Change::None);
        failed.issues = vec![report(3, "invalid_email"), report(3, "too_long")];
        let unchanged = row(4, Outcome::Unchanged, Change::None);
        let mut last = row(5, Outcome::Updated, Change::Update(Box::new(updated)));
        last.audit = Some(audit("old.one"));
        let rows = vec![first, failed, unchanged, last];
        let before = format!("{rows:?}");
        let mut step = ImportStep {
            expected_processed: 0,
            counts: ImportCounts::default(),
            creates: Vec::new(),
            updates: Vec::new(),
            audits: Vec::new(),
            issues: vec![report(1, "unknown_column")],
            invites: Vec::new(),
            lease_until: OffsetDateTime::UNIX_EPOCH,
            prepared: None,
        };

        let emptied: Vec<(RowResult, RowParts)> = rows
            .into_iter()
            .map(|mut r| {
                let parts = RowParts::move_into(&mut r, &mut step);
                (r, parts)
            })
            .collect();

        assert_eq!((step.creates.len(), step.updates.len()), (1, 1));
        assert_eq!((step.audits.len(), step.invites.len()), (2, 1));
        let codes: Vec<&str> = step.issues.iter().map(|i| i.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "unknown_column",
                "unknown_group",
                "invalid_email",
                "too_long"
            ],
            "the step's own lines first, then each row's in order"
        );
        let back = RowParts::give_back(step, emptied, 1);
        assert_eq!(format!("{back:?}"), before);
    }
}

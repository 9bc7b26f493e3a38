//! Mass actions (product §7): invite, disable or enable many people at once, chosen by name
//! or by every match of a search. Each person is either changed or skipped with a reason;
//! large selections run as a background job whose progress and chunks' outcomes are stored,
//! under a lease: when its node stops, another (or the same, restarted) takes it over.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Duration;

use super::invitations::check_invitable;
use super::{Actor, Usher};
use crate::audit::{actions, AuditRecord};
use crate::error::ServiceError;
use crate::people::Person;
use crate::query::UserFilter;
use crate::store::{JobLease, JobRecord, StoreError};
use crate::token::new_token;

/// Selections up to this size are answered at once; larger ones become a job.
pub const BULK_SYNC_LIMIT: usize = 1000;
/// People changed per transaction, and per recorded part of a job.
const CHUNK: usize = 500;
/// How long a job's run holds it without recording a chunk before another node may take it
/// over. A chunk takes well under a second; this is the longest a stopped node's job waits.
pub const JOB_LEASE: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Invite,
    Disable,
    Enable,
}

impl BulkAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invite" => Some(Self::Invite),
            "disable" => Some(Self::Disable),
            "enable" => Some(Self::Enable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Disable => "disable",
            Self::Enable => "enable",
        }
    }
}

/// Who a mass action is for.
#[derive(Debug, Clone)]
pub enum Selection {
    Usernames(Vec<String>),
    Filter(UserFilter),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NotFound,
    #[serde(rename = "self")]
    SelfAccount,
    SuperUser,
    AlreadyDisabled,
    AlreadyEnabled,
    AlreadyJoined,
    NotInvitable,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::SelfAccount => "self",
            Self::SuperUser => "super_user",
            Self::AlreadyDisabled => "already_disabled",
            Self::AlreadyEnabled => "already_enabled",
            Self::AlreadyJoined => "already_joined",
            Self::NotInvitable => "not_invitable",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::NotFound => "no such person",
            Self::SelfAccount => "your own account",
            Self::SuperUser => "the super user",
            Self::AlreadyDisabled => "already disabled",
            Self::AlreadyEnabled => "already enabled",
            Self::AlreadyJoined => "has already joined",
            Self::NotInvitable => "cannot be invited (external, LDAP or disabled)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub username: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkResult {
    pub changed: Vec<String>,
    pub skipped: Vec<Skipped>,
}

impl BulkResult {
    fn extend(&mut self, other: BulkResult) {
        self.changed.extend(other.changed);
        self.skipped.extend(other.skipped);
    }
}

/// What a background mass action does, stored with its job so that any node can resume it:
/// the action, who asked, and the people chosen when it was asked (by id, with the username
/// to report one who is gone by then), in the order of its chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BulkSpec {
    action: BulkAction,
    actor_id: i64,
    people: Vec<(i64, String)>,
    missing: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum BulkOutcome {
    Done(BulkResult),
    /// Running in the background; poll [`Usher::job`].
    Started(JobRecord),
}

impl Usher {
    /// How many people a selection holds, for the confirmation before acting.
    pub async fn count_selection(
        &self,
        actor: &Actor,
        filter: &UserFilter,
    ) -> Result<u64, ServiceError> {
        actor.require_admin()?;
        let query = crate::query::UserQuery {
            filter: filter.clone(),
            limit: 1,
            ..Default::default()
        };
        Ok(self.find_people(&query).await?.total)
    }

    pub async fn bulk(
        &self,
        actor: &Actor,
        action: BulkAction,
        selection: Selection,
    ) -> Result<BulkOutcome, ServiceError> {
        actor.require_admin()?;
        let (people, missing) = self.resolve(selection).await?;
        if people.len() + missing.len() <= BULK_SYNC_LIMIT {
            return Ok(BulkOutcome::Done(
                self.apply(actor, action, people, missing).await?,
            ));
        }
        let job = JobRecord {
            id: 0,
            kind: format!("bulk_{}", action.as_str()),
            state: "running".into(),
            total: (people.len() + missing.len()) as u64,
            processed: 0,
            result: None,
            created_by: Some(actor.username.clone()),
            created_at: self.clock.now(),
            finished_at: None,
        };
        let spec = BulkSpec {
            action,
            actor_id: actor.id,
            people: people.into_iter().map(|p| (p.id, p.username)).collect(),
            missing,
        };
        let lease = self.job_lease();
        let mut job = job;
        job.id = self
            .store
            .insert_resumable_job(&job, &json!(spec), &lease)
            .await?;
        let started = job.clone();
        let usher = self.clone();
        let actor = actor.clone();
        tokio::spawn(async move { usher.run_bulk_job(actor, job, spec, lease, 0).await });
        Ok(BulkOutcome::Started(started))
    }

    /// Takes over every background mass action whose node stopped (its lease ran out), and
    /// runs each on from its first chunk not yet recorded. Called periodically on every node;
    /// answers how many it took.
    pub async fn resume_stalled_jobs(&self) -> Result<usize, ServiceError> {
        let mut taken = 0;
        loop {
            let lease = self.job_lease();
            let Some((mut job, spec)) = self
                .store
                .claim_stalled_job(self.clock.now(), &lease)
                .await?
            else {
                return Ok(taken);
            };
            taken += 1;
            tracing::info!(
                job = job.id,
                "resuming a mass action left by a stopped node"
            );
            let resumable = async {
                let spec: BulkSpec = serde_json::from_value(spec)
                    .map_err(|e| format!("its description cannot be read ({e})"))?;
                let acting = self
                    .store
                    .acting_person(spec.actor_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .filter(|a| a.admin && a.person.enabled)
                    .ok_or_else(|| {
                        "the administrator who started it can no longer act".to_owned()
                    })?;
                Ok::<_, String>((spec, Actor::of(&acting.person, acting.admin)))
            };
            match resumable.await {
                Ok((spec, actor)) => {
                    let done = self.store.job_parts(job.id).await?.len();
                    let usher = self.clone();
                    tokio::spawn(
                        async move { usher.run_bulk_job(actor, job, spec, lease, done).await },
                    );
                }
                Err(why) => {
                    job.state = "failed".into();
                    job.finished_at = Some(self.clock.now());
                    job.result = Some(json!({
                        "error": format!("Stopped when its server stopped, and cannot go on: {why}. \
                                          The people already processed keep their change.")
                    }));
                    self.store.update_job(&job).await?;
                }
            }
        }
    }

    fn job_lease(&self) -> JobLease {
        JobLease {
            token: new_token(),
            until: self.clock.now() + JOB_LEASE,
        }
    }

    /// Runs a background mass action from chunk `first` on, recording each chunk's outcome,
    /// then its result; stops quietly when another node has taken the job over.
    async fn run_bulk_job(
        &self,
        actor: Actor,
        mut job: JobRecord,
        spec: BulkSpec,
        mut lease: JobLease,
        first: usize,
    ) {
        let outcome = async {
            let mut result = BulkResult {
                skipped: spec
                    .missing
                    .iter()
                    .map(|username| Skipped {
                        username: username.clone(),
                        reason: SkipReason::NotFound,
                    })
                    .collect(),
                ..BulkResult::default()
            };
            for part in self.store.job_parts(job.id).await?.into_iter().take(first) {
                let part: BulkResult = serde_json::from_value(part)
                    .map_err(|e| StoreError::Backend(format!("a part of job {}: {e}", job.id)))?;
                result.extend(part);
            }
            let mut processed = spec.missing.len() + (first * CHUNK).min(spec.people.len());
            for (seq, chunk) in spec.people.chunks(CHUNK).enumerate().skip(first) {
                let part = self.bulk_chunk(&actor, spec.action, chunk).await?;
                processed += chunk.len();
                lease.until = self.clock.now() + JOB_LEASE;
                self.store
                    .record_job_part(job.id, seq as u32, processed as u64, &json!(part), &lease)
                    .await?;
                result.extend(part);
            }
            Ok::<_, ServiceError>(result)
        };
        let outcome = outcome.await;
        job.finished_at = Some(self.clock.now());
        match outcome {
            Ok(result) => {
                job.state = "done".into();
                job.processed = job.total;
                job.result = Some(json!(result));
            }
            Err(ServiceError::Store(StoreError::NotFound)) => {
                tracing::info!(job = job.id, "mass action taken over by another node");
                return;
            }
            Err(e) => {
                job.state = "failed".into();
                job.result = Some(json!({ "error": e.to_string() }));
            }
        }
        if let Err(e) = self.store.update_job(&job).await {
            tracing::error!("could not record the end of job {}: {e}", job.id);
        }
    }

    /// One chunk of a background job: its people read again (they may have changed, or gone,
    /// since the job was asked for, or before a resumed job got to them), then changed.
    async fn bulk_chunk(
        &self,
        actor: &Actor,
        action: BulkAction,
        chunk: &[(i64, String)],
    ) -> Result<BulkResult, ServiceError> {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let mut found: HashMap<i64, Person> = self
            .store
            .people_by_ids(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut part = BulkResult::default();
        let mut people = Vec::with_capacity(chunk.len());
        for (id, username) in chunk {
            match found.remove(id) {
                Some(person) => people.push(person),
                None => part.skipped.push(Skipped {
                    username: username.clone(),
                    reason: SkipReason::NotFound,
                }),
            }
        }
        self.apply_chunk(actor, action, &people, &mut part).await?;
        Ok(part)
    }

    pub async fn job(&self, actor: &Actor, id: i64) -> Result<JobRecord, ServiceError> {
        actor.require_admin()?;
        self.store.job(id).await?.ok_or(ServiceError::NotFound)
    }

    /// The people selected, and the names that match nobody.
    async fn resolve(
        &self,
        selection: Selection,
    ) -> Result<(Vec<Person>, Vec<String>), ServiceError> {
        match selection {
            Selection::Filter(filter) => {
                Ok((self.store.matching_people(&filter).await?, Vec::new()))
            }
            Selection::Usernames(names) => {
                let mut people = Vec::with_capacity(names.len());
                let mut missing = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for name in names {
                    let name = name.trim().to_lowercase();
                    if !seen.insert(name.clone()) {
                        continue;
                    }
                    match self.store.person_by_username(&name).await? {
                        Some(p) => people.push(p),
                        None => missing.push(name),
                    }
                }
                Ok((people, missing))
            }
        }
    }

    async fn apply(
        &self,
        actor: &Actor,
        action: BulkAction,
        people: Vec<Person>,
        missing: Vec<String>,
    ) -> Result<BulkResult, ServiceError> {
        let mut result = BulkResult {
            skipped: missing
                .into_iter()
                .map(|username| Skipped {
                    username,
                    reason: SkipReason::NotFound,
                })
                .collect(),
            ..BulkResult::default()
        };
        for chunk in people.chunks(CHUNK) {
            self.apply_chunk(actor, action, chunk, &mut result).await?;
        }
        Ok(result)
    }

    /// Changes or skips each of `chunk`, writing one transaction for a switch.
    async fn apply_chunk(
        &self,
        actor: &Actor,
        action: BulkAction,
        chunk: &[Person],
        result: &mut BulkResult,
    ) -> Result<(), ServiceError> {
        match action {
            BulkAction::Disable | BulkAction::Enable => {
                self.switch_chunk(actor, action == BulkAction::Enable, chunk, result)
                    .await
            }
            BulkAction::Invite => {
                for person in chunk {
                    match check_invitable(person) {
                        Ok(()) => {
                            self.invite(actor, &person.username).await?;
                            result.changed.push(person.username.clone());
                        }
                        Err(ServiceError::State { code, .. }) => result.skipped.push(Skipped {
                            username: person.username.clone(),
                            reason: if code == "already_joined" {
                                SkipReason::AlreadyJoined
                            } else {
                                SkipReason::NotInvitable
                            },
                        }),
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    async fn switch_chunk(
        &self,
        actor: &Actor,
        enable: bool,
        chunk: &[Person],
        result: &mut BulkResult,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let mut ids = Vec::new();
        let mut audits = Vec::new();
        for person in chunk {
            let skip = if enable {
                person.enabled.then_some(SkipReason::AlreadyEnabled)
            } else if person.id == actor.id {
                Some(SkipReason::SelfAccount)
            } else if person.super_user {
                Some(SkipReason::SuperUser)
            } else {
                (!person.enabled).then_some(SkipReason::AlreadyDisabled)
            };
            if let Some(reason) = skip {
                result.skipped.push(Skipped {
                    username: person.username.clone(),
                    reason,
                });
                continue;
            }
            ids.push(person.id);
            audits.push(AuditRecord {
                at: now,
                actor: Some(actor.username.clone()),
                action: if enable {
                    actions::USER_ENABLE
                } else {
                    actions::USER_DISABLE
                },
                target: Some(person.username.clone()),
                details: json!({ "before": { "enabled": !enable }, "after": { "enabled": enable }, "via": "mass action" }).into(),
            });
            result.changed.push(person.username.clone());
        }
        if !ids.is_empty() {
            self.store.set_enabled_many(&ids, enable, &audits).await?;
        }
        Ok(())
    }
}

//! Mass actions (product §7): invite, disable or enable many people at once, chosen by name
//! or by every match of a search. Each person is either changed or skipped with a reason;
//! large selections run as a background job whose progress is stored.

use serde::Serialize;
use serde_json::json;

use super::invitations::check_invitable;
use super::{Actor, Usher};
use crate::audit::{actions, AuditRecord};
use crate::error::ServiceError;
use crate::people::Person;
use crate::query::UserFilter;
use crate::store::JobRecord;

/// Selections up to this size are answered at once; larger ones become a job.
pub const BULK_SYNC_LIMIT: usize = 1000;
/// People changed per transaction.
const CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub username: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkResult {
    pub changed: Vec<String>,
    pub skipped: Vec<Skipped>,
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
                self.apply(actor, action, people, missing, None).await?,
            ));
        }
        let mut job = JobRecord {
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
        job.id = self.store.insert_job(&job).await?;
        let usher = self.clone();
        let actor = actor.clone();
        let started = job.clone();
        tokio::spawn(async move {
            let mut job = job;
            let outcome = usher
                .apply(&actor, action, people, missing, Some(&mut job))
                .await;
            job.finished_at = Some(usher.clock.now());
            match outcome {
                Ok(result) => {
                    job.state = "done".into();
                    job.processed = job.total;
                    job.result = Some(json!(result));
                }
                Err(e) => {
                    job.state = "failed".into();
                    job.result = Some(json!({ "error": e.to_string() }));
                }
            }
            if let Err(e) = usher.store.update_job(&job).await {
                tracing::error!("could not record the end of job {}: {e}", job.id);
            }
        });
        Ok(BulkOutcome::Started(started))
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
        mut job: Option<&mut JobRecord>,
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
        let mut processed = result.skipped.len() as u64;
        for chunk in people.chunks(CHUNK) {
            match action {
                BulkAction::Disable | BulkAction::Enable => {
                    self.switch_chunk(actor, action == BulkAction::Enable, chunk, &mut result)
                        .await?
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
                }
            }
            processed += chunk.len() as u64;
            if let Some(job) = job.as_deref_mut() {
                job.processed = processed;
                self.store.update_job(job).await?;
            }
        }
        Ok(result)
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
                details: json!({ "before": { "enabled": !enable }, "after": { "enabled": enable }, "via": "mass action" }),
            });
            result.changed.push(person.username.clone());
        }
        if !ids.is_empty() {
            self.store.set_enabled_many(&ids, enable, &audits).await?;
        }
        Ok(())
    }
}

//! Mass actions from the people list (product §7). `POST /admin/users/bulk` first shows what
//! will happen (who, how many, what it does) and asks to confirm; posted again with
//! `confirmed=1` it acts and shows how many changed and each person skipped with the reason.
//! A selection too large to answer at once runs as a job: `/admin/jobs/{id}` shows its
//! progress (polled by the script, refreshed by the page itself without it), then the same
//! summary.

use std::collections::HashSet;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use usher_core::error::FieldErrors;
use usher_core::query::UserQuery;
use usher_core::service::{BulkAction, BulkOutcome, BulkResult, Selection, SkipReason, Skipped};
use usher_core::store::JobRecord;
use usher_core::ServiceError;

use super::users::{
    describe_filter, filter_pairs, list_return, people_count, person_path, LIST_PATH,
};
use super::{
    format_time, grouped, not_found_page, render, render_with, service_error_page, with_query,
    Layout,
};
use crate::http::auth::AdminCaller;
use crate::http::forms::{self, Pairs};
use crate::http::AppState;

/// People named on the confirmation page; the count says how many more.
const SHOWN_NAMES: usize = 20;
/// People listed as changed on the result; beyond, only the count.
const SHOWN_CHANGED: usize = 100;
/// Skipped people listed on the result; beyond, only the count.
const SHOWN_SKIPPED: usize = 500;

/// `1 person`, `12,345 people`.
fn people(n: u64) -> String {
    people_count(n)
}

/// How each action is said.
struct Words {
    /// `Disable`
    verb: &'static str,
    /// `disabled`
    past: &'static str,
    /// `Disabling`
    doing: &'static str,
}

fn words(action: BulkAction) -> Words {
    match action {
        BulkAction::Invite => Words {
            verb: "Invite",
            past: "invited",
            doing: "Inviting",
        },
        BulkAction::Disable => Words {
            verb: "Disable",
            past: "disabled",
            doing: "Disabling",
        },
        BulkAction::Enable => Words {
            verb: "Enable",
            past: "enabled",
            doing: "Enabling",
        },
    }
}

/// What an action does, said before confirming.
fn explanation(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Invite => {
            "Each person who has never connected and can be enrolled gets an email with a link to \
             choose a password; for those already invited it is a new link, and the earlier one \
             stops working. Everyone else is skipped and listed with the reason."
        }
        BulkAction::Disable => {
            "Disabled people cannot log in until enabled again; their memberships are kept. You \
             and the super user are never disabled, nor anyone already disabled: they are \
             skipped and listed with the reason."
        }
        BulkAction::Enable => {
            "Enabled people can log in again, with every membership and right they had. Anyone \
             already enabled is skipped and listed with the reason."
        }
    }
}

/// The human reason of a skip code stored in a job's result.
fn reason_of(code: &str) -> Option<SkipReason> {
    [
        SkipReason::NotFound,
        SkipReason::SelfAccount,
        SkipReason::SuperUser,
        SkipReason::AlreadyDisabled,
        SkipReason::AlreadyEnabled,
        SkipReason::AlreadyJoined,
        SkipReason::NotInvitable,
    ]
    .into_iter()
    .find(|r| r.as_str() == code)
}

/// A form field as typed, or empty.
fn field<'a>(pairs: &'a Pairs, key: &str) -> &'a str {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

// ----------------------------------------------------------------------------------------
// Confirmation
// ----------------------------------------------------------------------------------------

/// One person named on the confirmation page.
struct NameView {
    name: String,
    username: String,
    href: String,
    /// Nobody has this username (any more).
    missing: bool,
}

#[derive(Template)]
#[template(path = "bulk_confirm.html")]
struct ConfirmPage {
    layout: Layout,
    /// `Disable 3 people?`, or what is wrong when there is nothing to confirm.
    heading: String,
    /// Why nothing can be done; no confirm button then.
    problem: Option<String>,
    action: &'static str,
    verb: &'static str,
    scope_all: bool,
    usernames: Vec<String>,
    filter_fields: Vec<(&'static str, String)>,
    filter_words: Vec<String>,
    names: Vec<NameView>,
    /// People in the selection beyond those named.
    more: String,
    count_people: String,
    explanation: &'static str,
    disable: bool,
    /// The selection is large enough to run as a job.
    background: bool,
    return_to: String,
}

impl ConfirmPage {
    fn problem(layout: Layout, heading: &str, problem: &str, return_to: String) -> Self {
        Self {
            layout,
            heading: heading.to_owned(),
            problem: Some(problem.to_owned()),
            action: "",
            verb: "",
            scope_all: false,
            usernames: Vec::new(),
            filter_fields: Vec::new(),
            filter_words: Vec::new(),
            names: Vec::new(),
            more: String::new(),
            count_people: String::new(),
            explanation: "",
            disable: false,
            background: false,
            return_to,
        }
    }
}

/// `POST /admin/users/bulk`: `action`, `scope=selected` with `usernames`, or `scope=all` with
/// the list's filters; `return_to`; `confirmed=1` once confirmed.
pub async fn submit(
    State(state): State<AppState>,
    caller: AdminCaller,
    Form(form): Form<Pairs>,
) -> Response {
    let caller = caller.0;
    if let Err(r) = caller.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    let actor = &caller.auth.actor;
    let layout = || Layout::for_caller(&state, &caller, "users");
    let return_to = list_return(&form).unwrap_or_else(|| LIST_PATH.to_owned());
    let problem = |heading: &str, text: &str| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ConfirmPage::problem(layout(), heading, text, return_to.clone()),
        )
    };

    let Some(action) = BulkAction::parse(field(&form, "action")) else {
        return problem(
            "Choose an action",
            "Nothing was changed: choose Invite, Disable or Enable for the people selected, then continue.",
        );
    };
    let scope_all = field(&form, "scope") == "all";
    let mut errors = FieldErrors::default();
    let filter = forms::user_filter(&form, &mut errors);
    let mut seen = HashSet::new();
    let usernames: Vec<String> = form
        .iter()
        .filter(|(k, v)| k == "usernames" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| seen.insert(v.clone()))
        .collect();
    if scope_all && !errors.is_empty() {
        return problem(
            "The search could not be read",
            "Nothing was changed. Go back to the list, search again and choose the people anew.",
        );
    }
    if !scope_all && usernames.is_empty() {
        return problem(
            "Nobody selected",
            "Nothing was changed: tick the people to change in the list, or choose everyone matching the search, then continue.",
        );
    }

    if field(&form, "confirmed") == "1" {
        let selection = if scope_all {
            Selection::Filter(filter)
        } else {
            Selection::Usernames(usernames)
        };
        return match state.usher.bulk(actor, action, selection).await {
            Ok(BulkOutcome::Done(result)) => render(&ResultPage {
                layout: layout(),
                summary: Summary::of(action, &result),
                return_to,
            }),
            Ok(BulkOutcome::Started(job)) => Redirect::to(&with_query(
                &format!("/admin/jobs/{}", job.id),
                &[("back", return_to)],
            ))
            .into_response(),
            Err(e) => service_error_page(e),
        };
    }

    // What will happen, before it does.
    let (count, names) = if scope_all {
        let count = match state.usher.count_selection(actor, &filter).await {
            Ok(n) => n,
            Err(e) => return service_error_page(e),
        };
        let query = UserQuery {
            filter: filter.clone(),
            limit: SHOWN_NAMES as u32,
            ..UserQuery::default()
        };
        let first = match state.usher.search_people(actor, &query).await {
            Ok(page) => page.items,
            Err(e) => return service_error_page(e),
        };
        let names = first
            .iter()
            .map(|p| NameView {
                name: p.display_name(),
                username: p.username.clone(),
                href: person_path(&p.username),
                missing: false,
            })
            .collect();
        (count, names)
    } else {
        let mut names = Vec::new();
        for username in usernames.iter().take(SHOWN_NAMES) {
            let view = match state.usher.person(actor, username).await {
                Ok(p) => NameView {
                    name: p.display_name(),
                    username: p.username.clone(),
                    href: person_path(&p.username),
                    missing: false,
                },
                Err(ServiceError::NotFound) => NameView {
                    name: String::new(),
                    username: username.clone(),
                    href: String::new(),
                    missing: true,
                },
                Err(e) => return service_error_page(e),
            };
            names.push(view);
        }
        (usernames.len() as u64, names)
    };
    if count == 0 {
        return problem(
            "Nobody matches this search",
            "Nothing was changed: no one matches the search any more.",
        );
    }
    let w = words(action);
    let shown = names.len() as u64;
    let page = ConfirmPage {
        layout: layout(),
        heading: if scope_all {
            format!("{} all {}?", w.verb, people(count))
        } else {
            format!("{} {}?", w.verb, people(count))
        },
        problem: None,
        action: action.as_str(),
        verb: w.verb,
        scope_all,
        usernames: if scope_all { Vec::new() } else { usernames },
        filter_fields: if scope_all {
            filter_pairs(&filter)
        } else {
            Vec::new()
        },
        filter_words: describe_filter(&filter),
        names,
        more: if count > shown {
            people(count - shown)
        } else {
            String::new()
        },
        count_people: people(count),
        explanation: explanation(action),
        disable: action == BulkAction::Disable,
        background: count > usher_core::service::BULK_SYNC_LIMIT as u64,
        return_to,
    };
    render(&page)
}

// ----------------------------------------------------------------------------------------
// Results
// ----------------------------------------------------------------------------------------

struct ChangedView {
    username: String,
    href: String,
}

struct SkipView {
    username: String,
    href: String,
    code: &'static str,
    reason: &'static str,
}

/// How a mass action ended: the counts, who changed, who was skipped and why.
struct Summary {
    /// `3 people disabled`.
    heading: String,
    changed_count: String,
    skipped_count: String,
    changed: Vec<ChangedView>,
    /// Changed people not listed.
    changed_more: String,
    skipped: Vec<SkipView>,
    skipped_more: String,
}

impl Summary {
    fn of(action: BulkAction, result: &BulkResult) -> Self {
        let w = words(action);
        let changed_n = result.changed.len() as u64;
        let skipped_n = result.skipped.len() as u64;
        let heading = if changed_n == 0 {
            format!("Nobody was {}", w.past)
        } else {
            format!("{} {}", people(changed_n), w.past)
        };
        let more = |total: u64, shown: usize| {
            if total > shown as u64 {
                people(total - shown as u64)
            } else {
                String::new()
            }
        };
        Self {
            heading,
            changed_count: grouped(changed_n),
            skipped_count: grouped(skipped_n),
            changed: result
                .changed
                .iter()
                .take(SHOWN_CHANGED)
                .map(|u| ChangedView {
                    username: u.clone(),
                    href: person_path(u),
                })
                .collect(),
            changed_more: more(changed_n, SHOWN_CHANGED),
            skipped: result
                .skipped
                .iter()
                .take(SHOWN_SKIPPED)
                .map(|s| SkipView {
                    username: s.username.clone(),
                    href: if s.reason == SkipReason::NotFound {
                        String::new()
                    } else {
                        person_path(&s.username)
                    },
                    code: s.reason.as_str(),
                    reason: s.reason.describe(),
                })
                .collect(),
            skipped_more: more(skipped_n, SHOWN_SKIPPED),
        }
    }
}

#[derive(Template)]
#[template(path = "bulk_result.html")]
struct ResultPage {
    layout: Layout,
    summary: Summary,
    return_to: String,
}

// ----------------------------------------------------------------------------------------
// Jobs
// ----------------------------------------------------------------------------------------

/// A job's stored result: the answer of a mass action.
#[derive(Deserialize)]
struct StoredResult {
    changed: Vec<String>,
    skipped: Vec<StoredSkip>,
}

#[derive(Deserialize)]
struct StoredSkip {
    username: String,
    reason: String,
}

impl StoredResult {
    fn into_result(self) -> BulkResult {
        BulkResult {
            changed: self.changed,
            skipped: self
                .skipped
                .into_iter()
                .filter_map(|s| {
                    Some(Skipped {
                        username: s.username,
                        reason: reason_of(&s.reason)?,
                    })
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    id: i64,
    heading: String,
    /// `queued`, `running`, `done`, `failed`.
    state: String,
    running: bool,
    failed: bool,
    total: u64,
    processed: u64,
    progress_text: String,
    /// `Disabling`, for the script's progress text.
    doing: &'static str,
    total_people: String,
    started: String,
    finished: Option<String>,
    summary: Option<Summary>,
    back: String,
}

/// `GET /admin/jobs/{id}` (`back` = the list to return to).
pub async fn job(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found_page();
    };
    let job: JobRecord = match state.usher.job(&caller.0.auth.actor, id).await {
        Ok(job) => job,
        Err(e) => return service_error_page(e),
    };
    let action = job.kind.strip_prefix("bulk_").and_then(BulkAction::parse);
    let heading = match action {
        Some(a) => format!("{} {}", words(a).verb, people(job.total)),
        None => format!("Job {}", job.id),
    };
    let running = matches!(job.state.as_str(), "queued" | "running");
    let summary = match (action, job.state.as_str(), &job.result) {
        (Some(a), "done", Some(value)) => StoredResult::deserialize(value)
            .ok()
            .map(|r| Summary::of(a, &r.into_result())),
        _ => None,
    };
    let progress_text = match (job.state.as_str(), action) {
        ("queued", _) => "Waiting to start…".to_owned(),
        ("running", Some(a)) => format!(
            "{} {} of {}…",
            words(a).doing,
            grouped(job.processed),
            people(job.total)
        ),
        ("running", None) => format!("{} of {}…", grouped(job.processed), grouped(job.total)),
        ("failed", _) => format!(
            "Stopped after {} of {}.",
            grouped(job.processed),
            grouped(job.total)
        ),
        _ => format!("All {} processed.", people(job.total)),
    };
    let back = forms::get(&pairs, "back")
        .map(|b| vec![("return_to".to_owned(), b.to_owned())])
        .and_then(|p| list_return(&p))
        .unwrap_or_else(|| LIST_PATH.to_owned());
    let page = JobPage {
        layout: Layout::for_caller(&state, &caller.0, "users"),
        id: job.id,
        heading,
        running,
        failed: job.state == "failed",
        total: job.total,
        processed: job.processed.min(job.total),
        progress_text,
        doing: action.map_or("Processed", |a| words(a).doing),
        total_people: people(job.total),
        started: format_time(job.created_at),
        finished: job.finished_at.map(format_time),
        summary,
        back,
        state: job.state,
    };
    render(&page)
}

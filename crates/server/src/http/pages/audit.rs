//! `GET /admin/audit`: the audit log, filtered by actor, target, action and dates, 50 a page.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::Value;
use usher_core::audit::actions;
use usher_core::error::{FieldError, FieldErrors};

use super::{format_seconds, machine_time, render, service_error_page, with_query, Layout};
use crate::http::api::audit::audit_filter;
use crate::http::auth::AdminCaller;
use crate::http::forms::{self, Pairs};
use crate::http::AppState;

const PAGE_SIZE: u32 = 50;
const PATH: &str = "/admin/audit";

struct ActionChoice {
    value: &'static str,
    selected: bool,
}

struct EntryView {
    at: String,
    at_iso: String,
    actor: Option<String>,
    actor_href: String,
    action: String,
    target: Option<String>,
    target_href: String,
    /// What changed, in a few words (`last_name, email`).
    summary: String,
    /// The details as compact JSON; empty when there are none.
    details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    actor: String,
    target: String,
    since: String,
    until: String,
    actions: Vec<ActionChoice>,
    param_errors: Vec<String>,
    entries: Vec<EntryView>,
    summary: String,
    prev: Option<String>,
    next: Option<String>,
    filtered: bool,
}

fn person_href(username: &str) -> String {
    format!("/admin/users/{}", urlencoding::encode(username))
}

/// A few words on an entry's details: the fields that changed, or what kind of record it is.
fn details_summary(details: &Value) -> String {
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    match (details.get("before"), details.get("after")) {
        (Some(_), Some(after)) if !keys(after).is_empty() => {
            format!("Changed {}", keys(after).join(", "))
        }
        (None, Some(_)) => "New record".to_owned(),
        (Some(_), None) => "Record before".to_owned(),
        _ => "Details".to_owned(),
    }
}

fn is_date(s: &str) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).is_ok()
}

/// The day after a `YYYY-MM-DD` date, so that "until" includes the day it names.
fn day_after(s: &str) -> Option<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &fmt).ok()?.next_day()?;
    date.format(&fmt).ok()
}

pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(pairs): Query<Pairs>,
) -> Response {
    let mut errors = FieldErrors::default();
    let page = forms::number(&pairs, &mut errors, "page", 1, 1_000_000_000).unwrap_or(1);
    // The page pages by number; the date picker gives days, and "until" includes its day.
    let adjusted: Pairs = pairs
        .iter()
        .filter(|(k, _)| k != "limit" && k != "offset")
        .map(|(k, v)| match (k.as_str(), day_after(v.trim())) {
            ("until", Some(next)) => (k.clone(), next),
            _ => (k.clone(), v.trim().to_owned()),
        })
        .collect();
    let mut filter = audit_filter(&adjusted, &mut errors);
    if let Some(a) = &filter.action {
        if !actions::ALL.contains(&a.as_str()) {
            errors.add(
                "action",
                FieldError::new("invalid_value", "Choose an action from the list."),
            );
            filter.action = None;
        }
    }
    filter.limit = PAGE_SIZE;
    filter.offset = (page - 1) * u64::from(PAGE_SIZE);

    let result = match state.usher.audit_entries(&caller.auth.actor, &filter).await {
        Ok(r) => r,
        Err(e) => return service_error_page(e),
    };

    // What the form shows and the links keep: the values as given, when valid.
    let raw = |key: &str| {
        forms::get(&pairs, key)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let since = raw("since");
    let until = raw("until");
    let kept_dates = |v: String, key: &str| {
        if errors.0.contains_key(key) {
            String::new()
        } else {
            v
        }
    };
    let since = kept_dates(since, "since");
    let until = kept_dates(until, "until");
    let mut link_pairs: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &filter.actor {
        link_pairs.push(("actor", a.clone()));
    }
    if let Some(t) = &filter.target {
        link_pairs.push(("target", t.clone()));
    }
    if let Some(a) = &filter.action {
        link_pairs.push(("action", a.clone()));
    }
    if !since.is_empty() {
        link_pairs.push(("since", since.clone()));
    }
    if !until.is_empty() {
        link_pairs.push(("until", until.clone()));
    }
    let filtered = !link_pairs.is_empty();
    let href = |n: u64| {
        let mut v = link_pairs.clone();
        if n > 1 {
            v.push(("page", n.to_string()));
        }
        with_query(PATH, &v)
    };

    let total = result.total;
    let offset = filter.offset;
    let summary = if total == 0 {
        "No entries".to_owned()
    } else if result.items.is_empty() {
        format!("Page {page} is past the end: {total} entries")
    } else {
        let to = offset + result.items.len() as u64;
        let noun = if total == 1 { "entry" } else { "entries" };
        format!("{}–{to} of {total} {noun}", offset + 1)
    };
    let last_page = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let entries = result
        .items
        .into_iter()
        .map(|e| EntryView {
            at: format_seconds(e.at),
            at_iso: machine_time(e.at),
            actor_href: e.actor.as_deref().map(person_href).unwrap_or_default(),
            actor: e.actor,
            target_href: e.target.as_deref().map(person_href).unwrap_or_default(),
            target: e.target,
            action: e.action,
            summary: details_summary(&e.details),
            details: if e.details.is_null() || e.details.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                serde_json::to_string(&e.details).unwrap_or_default()
            },
        })
        .collect();
    let param_errors = errors
        .0
        .iter()
        .flat_map(|(key, errs)| {
            errs.iter()
                .map(move |e| format!("The “{key}” filter was ignored: {}", e.message))
        })
        .collect();

    let page_view = AuditPage {
        layout: Layout::for_caller(&state, &caller, "audit"),
        actor: filter.actor.clone().unwrap_or_default(),
        target: filter.target.clone().unwrap_or_default(),
        actions: actions::ALL
            .iter()
            .map(|a| ActionChoice {
                value: a,
                selected: filter.action.as_deref() == Some(*a),
            })
            .collect(),
        since: if is_date(&since) {
            since
        } else {
            String::new()
        },
        until: if is_date(&until) {
            until
        } else {
            String::new()
        },
        param_errors,
        entries,
        summary,
        prev: (page > 1).then(|| href((page - 1).min(last_page))),
        next: (page < last_page).then(|| href(page + 1)),
        filtered,
    };
    render(&page_view)
}

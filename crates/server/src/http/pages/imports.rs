//! The import pages: `/admin/imports` (upload form, template, past imports) and
//! `/admin/imports/{id}` (a live progress bar, then the summary and the report). Both work
//! without JavaScript: the progress page reloads itself while the job runs; with JavaScript,
//! `assets/app.js` polls the job instead and moves the bar in place.

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use usher_core::import::{ImportJob, ImportState};

use super::{format_seconds, machine_time, render, render_with, service_error_page, Layout};
use crate::http::api::imports::{multipart_error, receive_field};
use crate::http::auth::AdminCaller;
use crate::http::forms::{self, Pairs};
use crate::http::AppState;
use crate::imports::max_size_text;

const PAGE_SIZE: u32 = 20;

/// A job as the pages show it.
struct JobView {
    id: i64,
    href: String,
    file_name: String,
    state: &'static str,
    state_label: &'static str,
    dry_run: bool,
    submitted_by: String,
    created: String,
    created_iso: String,
    rows: u64,
    processed: u64,
    created_count: u64,
    updated: u64,
    unchanged: u64,
    failed: u64,
    warnings: u64,
    percent: u64,
    running: bool,
    finished: bool,
    /// Rows a second and time left, while running (empty before the first step).
    rate: String,
    eta: String,
    duration: String,
    error: String,
    report_href: String,
}

fn state_label(state: ImportState) -> &'static str {
    match state {
        ImportState::Receiving | ImportState::Queued => "Queued",
        ImportState::Running => "Running",
        ImportState::Done => "Done",
        ImportState::Failed => "Failed",
    }
}

fn view(job: ImportJob, now: OffsetDateTime) -> JobView {
    let c = job.counts;
    let percent = (c.processed * 100)
        .checked_div(c.rows)
        .unwrap_or(100)
        .min(100);
    let elapsed = job.started_at.map(|s| {
        (job.finished_at.unwrap_or(now) - s)
            .as_seconds_f64()
            .max(0.001)
    });
    let (rate, eta) = match (job.state, elapsed) {
        (ImportState::Running, Some(secs)) if c.processed > 0 => {
            let rate = c.processed as f64 / secs;
            let left = (c.rows.saturating_sub(c.processed)) as f64 / rate;
            (
                format!("{rate:.0} rows/s"),
                format!("about {} left", seconds_text(left)),
            )
        }
        _ => (String::new(), String::new()),
    };
    let duration = match (job.state.is_finished(), elapsed) {
        (true, Some(secs)) => seconds_text(secs),
        _ => String::new(),
    };
    JobView {
        id: job.id,
        href: format!("/admin/imports/{}", job.id),
        file_name: job
            .file_name
            .unwrap_or_else(|| format!("import {}", job.id)),
        state: job.state.as_str(),
        state_label: state_label(job.state),
        dry_run: job.dry_run,
        submitted_by: job.actor.unwrap_or_else(|| "the shell".into()),
        created: format_seconds(job.created_at),
        created_iso: machine_time(job.created_at),
        rows: c.rows,
        processed: c.processed,
        created_count: c.created,
        updated: c.updated,
        unchanged: c.unchanged,
        failed: c.failed,
        warnings: c.warnings,
        percent,
        running: !job.state.is_finished(),
        finished: job.state.is_finished(),
        rate,
        eta,
        duration,
        error: job.error.unwrap_or_default(),
        report_href: format!("/api/v1/imports/{}/report.csv", job.id),
    }
}

fn seconds_text(secs: f64) -> String {
    let secs = secs.round() as u64;
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[derive(Template)]
#[template(path = "imports.html")]
struct ImportsPage {
    layout: Layout,
    max_size: String,
    error: Option<String>,
    jobs: Vec<JobView>,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    layout: Layout,
    job: JobView,
}

/// `GET /admin/imports`.
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(pairs): Query<Pairs>,
) -> Response {
    let mut errors = usher_core::FieldErrors::default();
    let page = forms::number(&pairs, &mut errors, "page", 1, 1_000_000).unwrap_or(1);
    list_page(&state, &caller, page, StatusCode::OK, None).await
}

async fn list_page(
    state: &AppState,
    caller: &crate::http::auth::PageCaller,
    page: u64,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let offset = (page - 1) * u64::from(PAGE_SIZE);
    let result = match state
        .usher
        .import_jobs(&caller.auth.actor, PAGE_SIZE, offset)
        .await
    {
        Ok(r) => r,
        Err(e) => return service_error_page(e),
    };
    let now = state.usher.clock.now();
    let last_page = result.total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let href = |n: u64| format!("/admin/imports?page={n}");
    render_with(
        status,
        &ImportsPage {
            layout: Layout::for_caller(state, caller, "users"),
            max_size: max_size_text(&state.config),
            error,
            total: result.total,
            jobs: result.items.into_iter().map(|j| view(j, now)).collect(),
            prev: (page > 1).then(|| href(page - 1)),
            next: (page < last_page).then(|| href(page + 1)),
        },
    )
}

/// `POST /admin/imports`: the form's fields in order, `csrf_token` first, so that nothing of
/// the file is stored before the form is known to come from this site.
pub async fn upload(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    request: Request,
) -> Response {
    let mut multipart = match Multipart::from_request(request, &state).await {
        Ok(m) => m,
        Err(_) => {
            return list_page(
                &state,
                &caller,
                1,
                StatusCode::BAD_REQUEST,
                Some("Choose a CSV file to import.".into()),
            )
            .await
        }
    };
    let mut csrf_ok = false;
    let mut dry_run = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let message = multipart_error(e).message;
                return list_page(&state, &caller, 1, StatusCode::BAD_REQUEST, Some(message)).await;
            }
        };
        match field.name().unwrap_or_default() {
            "csrf_token" => {
                let sent = field.text().await.unwrap_or_default();
                if let Err(page) = caller.verify_csrf(&sent) {
                    return page;
                }
                csrf_ok = true;
            }
            "dry_run" => dry_run = field.text().await.is_ok_and(|v| v == "true"),
            "file" if csrf_ok => {
                if field.file_name().is_none_or(str::is_empty) {
                    break;
                }
                return match receive_field(&state, &caller.auth.actor, dry_run, field).await {
                    Ok(job) => Redirect::to(&format!("/admin/imports/{}", job.id)).into_response(),
                    Err(e) => {
                        let message = if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                            "The file could not be stored; try again in a moment.".to_owned()
                        } else {
                            e.message
                        };
                        list_page(&state, &caller, 1, e.status, Some(message)).await
                    }
                };
            }
            _ => {}
        }
    }
    if !csrf_ok {
        if let Err(page) = caller.verify_csrf("") {
            return page;
        }
    }
    list_page(
        &state,
        &caller,
        1,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("Choose a CSV file to import.".into()),
    )
    .await
}

/// `GET /admin/imports/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return super::not_found_page();
    };
    match state.usher.import_job(&caller.auth.actor, id).await {
        Ok(job) => render(&ImportPage {
            layout: Layout::for_caller(&state, &caller, "users"),
            job: view(job, state.usher.clock.now()),
        }),
        Err(e) => service_error_page(e),
    }
}

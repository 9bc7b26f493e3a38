//! Server-rendered pages (askama templates in `crates/server/templates`). Every page works
//! without JavaScript; `assets/app.js` only adds conveniences (live username suggestion,
//! auto-submitting filters, confirmations).

mod account;
mod audit;
mod bulk;
mod imports;
mod links;
mod spaces;
mod users;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use time::OffsetDateTime;

use super::auth::PageCaller;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", get(account::logout_form).post(account::logout))
        .route("/me", get(account::me))
        .route("/join/{token}", get(links::join_form).post(links::join))
        .route("/reset/{token}", get(links::reset_form).post(links::reset))
        .route("/forgot", get(links::forgot_form).post(links::forgot))
        .route("/admin/spaces", get(spaces::list).post(spaces::create))
        .route("/spaces/{name}", get(spaces::show))
        .route("/spaces/{name}/settings", post(spaces::settings))
        .route("/spaces/{name}/members", post(spaces::set_member))
        .route("/spaces/{name}/members/remove", post(spaces::remove_member))
        .route("/spaces/{name}/invitations", post(spaces::invite))
        .route(
            "/spaces/{name}/invitations/{id}/resend",
            post(spaces::resend),
        )
        .route(
            "/spaces/{name}/invitations/{id}/revoke",
            post(spaces::revoke),
        )
        .route(
            "/register/{token}",
            get(links::register_form).post(links::register),
        )
        .route(
            "/me/password",
            get(account::password_form).post(account::change_password),
        )
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/users", get(users::list))
        .route("/admin/users/new", get(users::new_form).post(users::create))
        .route(
            "/admin/users/{username}",
            get(users::detail).post(users::update),
        )
        .route(
            "/admin/users/{username}/enabled",
            post(users::set_enabled).get(users::back_to_detail),
        )
        .route(
            "/admin/users/{username}/delete",
            post(users::delete).get(users::back_to_detail),
        )
        .route(
            "/admin/users/{username}/invite",
            post(users::invite).get(users::back_to_detail),
        )
        .route(
            "/admin/users/bulk",
            post(bulk::submit).get(|| async { Redirect::to("/admin/users") }),
        )
        .route("/admin/jobs/{id}", get(bulk::job))
        .route("/admin/audit", get(audit::list))
        // Files are checked against USHER_IMPORT_MAX_BYTES as they stream in.
        .route(
            "/admin/imports",
            get(imports::list)
                .post(imports::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/admin/imports/{id}", get(imports::detail))
}

/// A time as pages show it: `2026-11-24 09:00` in UTC.
pub fn format_time(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// The day of a time, in UTC: `2026-11-24`.
pub fn format_date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// A time to the second, in UTC: `2026-11-24 09:00:05`.
pub fn format_seconds(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// A time for `<time datetime="…">`: RFC 3339 in UTC.
pub fn machine_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A count with its thousands grouped: `12,345`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A lifetime in words: `24 hours`, `7 days`, `15 minutes`.
pub fn describe_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let (n, unit) = if secs >= 2 * 86_400 && secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs >= 3600 && secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// `path?k=v&…` with every value percent-encoded; just `path` without parameters.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The messages a `?notice=` code stands for. A fixed set: nothing from the address is shown.
pub fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "password_changed" => "Your password was changed.",
        "created" => "The account was created. Its password is temporary: the person chooses their own at first login.",
        "updated" => "Changes saved.",
        "enabled" => "The account was enabled; its previous rights are back.",
        "disabled" => "The account was disabled and its sessions ended.",
        "deleted" => "The account was deleted. Its username stays reserved.",
        "invited" => "Invitation sent. Its delivery shows beside the person.",
        "created_invited" => "The account was created and an invitation sent: the person chooses their password from the link in it.",
        "created_not_invited" => "The account was created, but no invitation could be sent. Try again with Send invitation below.",
        _ => return None,
    })
}

/// What the layout of every page needs.
pub struct Layout {
    pub platform_name: String,
    pub username: Option<String>,
    pub admin: bool,
    pub csrf_token: String,
    /// Which navigation entry is current.
    pub section: &'static str,
}

impl Layout {
    pub fn anonymous(state: &AppState) -> Self {
        Self {
            platform_name: state.config.platform_name.clone(),
            username: None,
            admin: false,
            csrf_token: String::new(),
            section: "",
        }
    }

    pub fn for_caller(state: &AppState, caller: &PageCaller, section: &'static str) -> Self {
        Self {
            platform_name: state.config.platform_name.clone(),
            username: Some(caller.auth.person.username.clone()),
            admin: caller.auth.actor.admin,
            csrf_token: caller.csrf_token.clone(),
            section,
        }
    }
}

/// Renders a template into a response, logging (not showing) a rendering failure.
pub fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("template error: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

/// A page saying what went wrong and what to do, without the caller's context.
pub fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    render_with(
        status,
        &ErrorPage {
            layout: Layout {
                platform_name: String::new(),
                username: None,
                admin: false,
                csrf_token: String::new(),
                section: "",
            },
            heading: heading.to_owned(),
            message: message.to_owned(),
        },
    )
}

pub fn not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address. Check the link, or start again from the start page.",
    )
}

/// A service failure on a page: logged, and shown as a generic page.
pub fn service_error_page(e: usher_core::ServiceError) -> Response {
    use usher_core::ServiceError as E;
    match e {
        E::NotFound => not_found_page(),
        E::Forbidden { message, .. } => error_page(StatusCode::FORBIDDEN, "Not allowed", &message),
        E::State { message, .. } => error_page(StatusCode::CONFLICT, "Not possible", &message),
        other => {
            tracing::error!("page failed: {other}");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete this; it has been logged. Try again in a moment.",
            )
        }
    }
}

/// Only local paths are followed after login, never another site.
pub fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

async fn home(caller: Result<PageCaller, Response>) -> Redirect {
    match caller {
        Ok(c) if c.auth.actor.admin => Redirect::to("/admin/users"),
        Ok(_) => Redirect::to("/me"),
        Err(_) => Redirect::to("/login"),
    }
}

//! The people pages: the list (search, combinable filters, sorting, paging, a selection for
//! mass actions, invite and enable/disable per row), the creation form, and a person's detail
//! (facts, enrollment, roles, edit, enable/disable, delete). Handlers translate forms into
//! service calls; every rule lives in `usher_core`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use usher_core::error::{FieldError, FieldErrors};
use usher_core::groups::Membership;
use usher_core::mail::{Delivery, DeliveryState};
use usher_core::people::{Enrollment, Person, PersonType, Profile, Source, PROFILE_FIELDS};
use usher_core::query::{Sort, SortColumn, UserFilter, UserQuery, DEFAULT_PAGE_SIZE};
use usher_core::service::{check_invitable, Actor, CreatePerson, PatchPerson};
use usher_core::ServiceError;

use super::{
    describe_duration, error_page, format_date, format_time, grouped, machine_time, notice_text,
    render_with, safe_next, service_error_page, with_query, Layout,
};
use crate::http::auth::{AdminCaller, PageCaller};
use crate::http::forms::{self, Pairs};
use crate::http::AppState;

const PER_PAGE_CHOICES: [u32; 3] = [20, 50, 100];
pub(super) const LIST_PATH: &str = "/admin/users";

/// The address of a person's page.
pub(super) fn person_path(username: &str) -> String {
    format!("{LIST_PATH}/{}", urlencoding::encode(username))
}

/// A `return_to` field that leads back to a page of the people list (filters kept), if it
/// does; anything else (another site, another page) is ignored.
pub(super) fn list_return(pairs: &Pairs) -> Option<String> {
    let r = forms::get(pairs, "return_to")?;
    let path = r.split_once('?').map_or(r, |(p, _)| p);
    (safe_next(r) == r && path == LIST_PATH).then(|| r.to_owned())
}

/// A problem shown at the top of a page (not an error page): what did not happen, and why.
pub(super) struct Alert {
    pub heading: String,
    pub message: String,
}

/// "1 try", "3 tries".
fn tries(n: u32) -> String {
    if n == 1 {
        "1 try".to_owned()
    } else {
        format!("{n} tries")
    }
}

/// The enrollment badge of a person: the state, with the invitation's delivery while they
/// have not joined (`Invited · sent`), and the class that colours it (`enroll-{class}`).
fn enrollment_badge(person: &Person) -> (String, &'static str) {
    let enrollment = person.enrollment();
    let label = enrollment.label();
    match (enrollment, &person.invitation_delivery) {
        (Enrollment::Reinvite, Some(d)) => match d.state {
            DeliveryState::Queued if d.attempts == 0 => (format!("{label} · sending"), "reinvite"),
            DeliveryState::Queued => (
                format!("{label} · retrying after {}", tries(d.attempts)),
                "reinvite",
            ),
            DeliveryState::Sent => (format!("{label} · sent"), "reinvite"),
            DeliveryState::Failed => (
                format!("{label} · failed after {}", tries(d.attempts)),
                "failed",
            ),
        },
        _ => (label.to_owned(), enrollment.as_str()),
    }
}

/// The label of the button that sends the invitation, when the server would accept it.
fn invite_label(person: &Person) -> Option<&'static str> {
    check_invitable(person).ok()?;
    Some(if person.invited_at.is_some() {
        "Resend invitation"
    } else {
        "Send invitation"
    })
}

/// A submitted form field as typed, or empty.
fn field<'a>(pairs: &'a Pairs, key: &str) -> &'a str {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Whether the actor may enable or disable this person here (never themselves, never the
/// super user, never a read-only LDAP account).
fn can_toggle(actor: &Actor, person: &Person) -> bool {
    person.id != actor.id && !person.super_user && person.source != Source::Ldap
}

/// Errors of fields a form does not show in place, as lines for a summary.
fn unplaced_errors(errors: &FieldErrors, placed: &[&str]) -> Vec<String> {
    errors
        .0
        .iter()
        .filter(|(k, _)| !placed.contains(&k.as_str()))
        .flat_map(|(_, errs)| errs.iter().map(|e| e.message.clone()))
        .collect()
}

// ----------------------------------------------------------------------------------------
// The list
// ----------------------------------------------------------------------------------------

/// One `<option>`.
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// One filter `<select>`.
struct FilterSelect {
    name: &'static str,
    label: &'static str,
    choices: Vec<Choice>,
}

impl FilterSelect {
    fn new(
        name: &'static str,
        label: &'static str,
        current: &str,
        options: &[(&'static str, &'static str)],
    ) -> Self {
        Self {
            name,
            label,
            choices: options
                .iter()
                .map(|&(value, label)| Choice {
                    value,
                    label,
                    selected: value == current,
                })
                .collect(),
        }
    }
}

/// A sortable column header.
struct Column {
    label: &'static str,
    href: String,
    /// `ascending`, `descending`, or empty when the list is not sorted by this column.
    aria_sort: &'static str,
    arrow: &'static str,
}

struct Row {
    username: String,
    name: String,
    href: String,
    /// The address cut after its `@`, where it may wrap.
    email_user: String,
    email_domain: String,
    last_login: Option<String>,
    last_login_date: String,
    last_login_iso: String,
    created: String,
    created_date: String,
    created_iso: String,
    enrollment: String,
    enrollment_class: &'static str,
    /// The last delivery error of the invitation, as a tooltip.
    enrollment_title: String,
    guest: bool,
    super_user: bool,
    enabled: bool,
    can_toggle: bool,
    toggle_action: String,
    /// The envelope's tooltip (`Send invitation`, `Resend invitation (invited on DATE)`),
    /// when the person can be invited.
    invite_title: Option<String>,
    invite_action: String,
}

/// A link of the pagination bar; a gap (`…`) when `href` and `label` are empty.
struct PageLink {
    label: String,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    notice: Option<String>,
    alert: Option<Alert>,
    param_errors: Vec<String>,
    q: String,
    sort: String,
    filters: Vec<FilterSelect>,
    per_page: Vec<Choice>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    summary: String,
    return_to: String,
    export_href: String,
    pages: Vec<PageLink>,
    prev: Option<String>,
    next: Option<String>,
    filtered: bool,
    /// The filters again, as hidden fields of the mass-action form.
    filter_fields: Vec<(&'static str, String)>,
    /// `1 person`, `57 people`.
    total_people: String,
}

/// The filters of a search as address parameters, in a fixed order.
pub(super) fn filter_pairs(f: &UserFilter) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let Some(q) = &f.q {
        v.push(("q", q.clone()));
    }
    if let Some(b) = f.enabled {
        v.push(("enabled", b.to_string()));
    }
    if let Some(b) = f.connected {
        v.push(("connected", b.to_string()));
    }
    if let Some(e) = f.enrollment {
        v.push(("enrollment", e.as_str().to_owned()));
    }
    if let Some(k) = f.kind {
        v.push(("type", k.as_str().to_owned()));
    }
    if let Some(s) = f.source {
        v.push(("source", s.as_str().to_owned()));
    }
    v
}

/// The filters of a search in words, as the list's filter form names them
/// (`Search “doe”`, `Account: Disabled`).
pub(super) fn describe_filter(filter: &UserFilter) -> Vec<String> {
    let list = ListState {
        filter: filter.clone(),
        sort: Sort::default(),
        per_page: DEFAULT_PAGE_SIZE,
        page: 1,
    };
    let mut words = Vec::new();
    if let Some(q) = &filter.q {
        words.push(format!("Search “{q}”"));
    }
    for select in list.selects() {
        if let Some(c) = select
            .choices
            .iter()
            .find(|c| c.selected && !c.value.is_empty())
        {
            words.push(format!("{}: {}", select.label, c.label));
        }
    }
    words
}

/// The list's state as it appears in its address: only values that parsed are kept, so that
/// every link it builds is valid.
struct ListState {
    filter: UserFilter,
    sort: Sort,
    per_page: u32,
    page: u64,
}

impl ListState {
    fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        filter_pairs(&self.filter)
    }

    fn href(&self, sort: Sort, page: u64) -> String {
        let mut v = self.filter_pairs();
        if sort != Sort::default() {
            v.push(("sort", sort.to_param()));
        }
        if self.per_page != DEFAULT_PAGE_SIZE {
            v.push(("per_page", self.per_page.to_string()));
        }
        if page > 1 {
            v.push(("page", page.to_string()));
        }
        with_query(LIST_PATH, &v)
    }

    fn export_href(&self) -> String {
        let mut v = self.filter_pairs();
        if self.sort != Sort::default() {
            v.push(("sort", self.sort.to_param()));
        }
        with_query("/api/v1/users.csv", &v)
    }

    fn column(&self, label: &'static str, column: SortColumn) -> Column {
        let current = self.sort.column == column;
        let next = Sort {
            column,
            descending: current && !self.sort.descending,
        };
        let (aria_sort, arrow) = match (current, self.sort.descending) {
            (false, _) => ("", ""),
            (true, false) => ("ascending", "▲"),
            (true, true) => ("descending", "▼"),
        };
        Column {
            label,
            href: self.href(next, 1),
            aria_sort,
            arrow,
        }
    }

    fn selects(&self) -> Vec<FilterSelect> {
        let f = &self.filter;
        let bool_value = |b: Option<bool>| match b {
            Some(true) => "true",
            Some(false) => "false",
            None => "",
        };
        vec![
            FilterSelect::new(
                "enabled",
                "Account",
                bool_value(f.enabled),
                &[("", "Any"), ("true", "Enabled"), ("false", "Disabled")],
            ),
            FilterSelect::new(
                "connected",
                "Connection",
                bool_value(f.connected),
                &[
                    ("", "Any"),
                    ("true", "Connected"),
                    ("false", "Never connected"),
                ],
            ),
            FilterSelect::new(
                "enrollment",
                "Enrollment",
                f.enrollment.map_or("", |e| e.as_str()),
                &[
                    ("", "Any"),
                    ("enrolled", "Enrolled"),
                    ("never_enrolled", "Never enrolled"),
                    ("not_possible", "No enrollment possible"),
                ],
            ),
            FilterSelect::new(
                "type",
                "Type",
                f.kind.map_or("", PersonType::as_str),
                &[
                    ("", "Any"),
                    ("internal", "Internal"),
                    ("external", "External (guest)"),
                ],
            ),
            FilterSelect::new(
                "source",
                "Source",
                f.source.map_or("", Source::as_str),
                &[("", "Any"), ("internal", "Internal"), ("ldap", "LDAP")],
            ),
        ]
    }

    /// Numbered links around the current page, with the first and the last.
    fn pages(&self, last: u64) -> Vec<PageLink> {
        if last <= 1 {
            return Vec::new();
        }
        let mut numbers: Vec<u64> = vec![1, last];
        numbers.extend(self.page.saturating_sub(2).max(1)..=(self.page + 2).min(last));
        numbers.sort_unstable();
        numbers.dedup();
        let mut links = Vec::new();
        let mut previous = 0;
        for n in numbers {
            if n > previous + 1 {
                links.push(PageLink {
                    label: String::new(),
                    href: String::new(),
                    current: false,
                });
            }
            links.push(PageLink {
                label: n.to_string(),
                href: self.href(self.sort, n),
                current: n == self.page,
            });
            previous = n;
        }
        links
    }
}

/// `1 person`, `12,345 people`.
pub(super) fn people_count(n: u64) -> String {
    if n == 1 {
        "1 person".to_owned()
    } else {
        format!("{} people", grouped(n))
    }
}

/// `GET /admin/users`: search, filters, sort and paging, all in the address.
pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(pairs): Query<Pairs>,
) -> Response {
    let notice = match forms::get(&pairs, "notice") {
        Some("invited") => {
            invited_notice(&state, &caller.auth.actor, forms::get(&pairs, "who")).await
        }
        code => notice_text(code).map(str::to_owned),
    };
    list_page(&state, &caller, &pairs, StatusCode::OK, notice, None).await
}

/// "Invitation sent to Jane Doe (jane@example.org)." for a person found by username: only
/// what is stored is shown, never the address's text.
async fn invited_notice(state: &AppState, actor: &Actor, who: Option<&str>) -> Option<String> {
    let person = match who {
        Some(username) => state.usher.person(actor, username).await.ok(),
        None => None,
    };
    Some(match person {
        Some(p) => format!("Invitation sent to {} ({}).", p.display_name(), p.email),
        None => notice_text(Some("invited"))?.to_owned(),
    })
}

/// The list for the parameters of its address, with a notice or an alert on top.
async fn list_page(
    state: &AppState,
    caller: &PageCaller,
    pairs: &Pairs,
    status: StatusCode,
    notice: Option<String>,
    alert: Option<Alert>,
) -> Response {
    let mut errors = FieldErrors::default();
    let filter = forms::user_filter(pairs, &mut errors);
    let sort = forms::sort(pairs, &mut errors);
    let per_page = match forms::number(pairs, &mut errors, "per_page", 1, 100) {
        Some(n) if PER_PAGE_CHOICES.contains(&(n as u32)) => n as u32,
        Some(_) => {
            errors.add(
                "per_page",
                FieldError::new("invalid_value", "Use 20, 50 or 100."),
            );
            DEFAULT_PAGE_SIZE
        }
        None => DEFAULT_PAGE_SIZE,
    };
    let page = forms::number(pairs, &mut errors, "page", 1, 1_000_000_000).unwrap_or(1);
    let list = ListState {
        filter,
        sort,
        per_page,
        page,
    };
    let query = UserQuery {
        filter: list.filter.clone(),
        sort: list.sort,
        limit: per_page,
        offset: (page - 1) * u64::from(per_page),
    };
    let actor = &caller.auth.actor;
    let result = match state.usher.search_people(actor, &query).await {
        Ok(r) => r,
        Err(e) => return service_error_page(e),
    };

    let rows: Vec<Row> = result
        .items
        .iter()
        .map(|p| {
            let (enrollment, enrollment_class) = enrollment_badge(p);
            let invite_title = invite_label(p).map(|label| match p.invited_at {
                Some(t) => format!("{label} (invited on {})", format_date(t)),
                None => label.to_owned(),
            });
            let (email_user, email_domain) = match p.email.rsplit_once('@') {
                Some((user, domain)) => (format!("{user}@"), domain.to_owned()),
                None => (p.email.clone(), String::new()),
            };
            Row {
                email_user,
                email_domain,
                created_date: format_date(p.created_at),
                last_login_date: p.last_login_at.map(format_date).unwrap_or_default(),
                username: p.username.clone(),
                name: p.display_name(),
                href: person_path(&p.username),
                last_login: p.last_login_at.map(format_time),
                last_login_iso: p.last_login_at.map(machine_time).unwrap_or_default(),
                created: format_time(p.created_at),
                created_iso: machine_time(p.created_at),
                enrollment,
                enrollment_class,
                enrollment_title: p
                    .invitation_delivery
                    .as_ref()
                    .and_then(|d| d.last_error.clone())
                    .map(|e| format!("Last error: {e}"))
                    .unwrap_or_default(),
                guest: p.kind == PersonType::External,
                super_user: p.super_user,
                enabled: p.enabled,
                can_toggle: can_toggle(actor, p),
                toggle_action: format!("{}/enabled", person_path(&p.username)),
                invite_title,
                invite_action: format!("{}/invite", person_path(&p.username)),
            }
        })
        .collect();

    let total = result.total;
    let last_page = total.div_ceil(u64::from(per_page)).max(1);
    let summary = if total == 0 {
        if list.filter == UserFilter::default() {
            "No people yet".to_owned()
        } else {
            "No people match".to_owned()
        }
    } else if rows.is_empty() {
        format!("Page {page} is past the end: {}", people_count(total))
    } else {
        let from = query.offset + 1;
        let to = query.offset + rows.len() as u64;
        format!(
            "{}–{} of {}",
            grouped(from),
            grouped(to),
            people_count(total)
        )
    };

    let param_errors = errors
        .0
        .iter()
        .flat_map(|(key, errs)| {
            errs.iter()
                .map(move |e| format!("The “{key}” parameter was ignored: {}", e.message))
        })
        .collect();

    let columns = vec![
        list.column("Name", SortColumn::LastName),
        list.column("Username", SortColumn::Username),
        list.column("Email", SortColumn::Email),
        list.column("Last login", SortColumn::LastLoginAt),
        list.column("Created", SortColumn::CreatedAt),
    ];
    let page_view = UsersPage {
        layout: Layout::for_caller(state, caller, "users"),
        notice,
        alert,
        param_errors,
        q: list.filter.q.clone().unwrap_or_default(),
        sort: if list.sort == Sort::default() {
            String::new()
        } else {
            list.sort.to_param()
        },
        filters: list.selects(),
        per_page: PER_PAGE_CHOICES
            .iter()
            .map(|n| Choice {
                value: match n {
                    20 => "20",
                    50 => "50",
                    _ => "100",
                },
                label: match n {
                    20 => "20 a page",
                    50 => "50 a page",
                    _ => "100 a page",
                },
                selected: *n == per_page,
            })
            .collect(),
        columns,
        rows,
        summary,
        return_to: list.href(list.sort, page),
        export_href: list.export_href(),
        pages: list.pages(last_page),
        prev: (page > 1).then(|| list.href(list.sort, (page - 1).min(last_page))),
        next: (page < last_page).then(|| list.href(list.sort, page + 1)),
        filtered: list.filter != UserFilter::default(),
        filter_fields: list.filter_pairs(),
        total_people: people_count(total),
    };
    render_with(status, &page_view)
}

// ----------------------------------------------------------------------------------------
// Enable / disable, delete
// ----------------------------------------------------------------------------------------

/// `return_to` with `notice=CODE` as its only notice.
fn with_notice(return_to: &str, code: &str) -> String {
    with_notice_for(return_to, code, None)
}

/// `return_to` with `notice=CODE` as its only notice, and `who=USERNAME` when the notice is
/// about someone.
fn with_notice_for(return_to: &str, code: &str, who: Option<&str>) -> String {
    let (path, query) = return_to.split_once('?').unwrap_or((return_to, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("notice=") && !p.starts_with("who="))
        .map(str::to_owned)
        .collect();
    parts.push(format!("notice={code}"));
    if let Some(who) = who {
        parts.push(format!("who={}", urlencoding::encode(who)));
    }
    format!("{path}?{}", parts.join("&"))
}

/// `POST /admin/users/{username}/enabled` (`enabled=true|false`, `return_to`).
pub async fn set_enabled(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(username): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = caller.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    let enabled = match field(&form, "enabled") {
        "true" => true,
        "false" => false,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Nothing was changed",
                "The form did not say whether to enable or disable the account.",
            )
        }
    };
    let patch = PatchPerson {
        enabled: Some(enabled),
        ..PatchPerson::default()
    };
    match state
        .usher
        .patch_person(&caller.auth.actor, &username, patch)
        .await
    {
        Ok(person) => {
            let back = match forms::get(&form, "return_to") {
                Some(r) if safe_next(r) == r => r.to_owned(),
                _ => person_path(&person.username),
            };
            let code = if enabled { "enabled" } else { "disabled" };
            Redirect::to(&with_notice(&back, code)).into_response()
        }
        Err(e) => service_error_page(e),
    }
}

/// `POST /admin/users/{username}/delete`: the super user only; the username stays reserved.
pub async fn delete(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(username): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = caller.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    match state
        .usher
        .delete_person(&caller.auth.actor, &username)
        .await
    {
        Ok(()) => Redirect::to("/admin/users?notice=deleted").into_response(),
        Err(e) => service_error_page(e),
    }
}

/// `POST /admin/users/{username}/invite` (`return_to`): sends or resends the invitation, then
/// back to the list or the person with a notice. When the server refuses (the person joined
/// or was disabled meanwhile), the same page again with an alert saying why (409).
pub async fn invite(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(username): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = caller.0.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    let actor = &caller.0.auth.actor;
    let back_to_list = list_return(&form);
    match state.usher.invite(actor, &username).await {
        Ok(person) => {
            let back = back_to_list.unwrap_or_else(|| person_path(&person.username));
            Redirect::to(&with_notice_for(&back, "invited", Some(&person.username))).into_response()
        }
        Err(ServiceError::State { message, .. }) => {
            let name = match state.usher.person(actor, &username).await {
                Ok(p) => p.display_name(),
                Err(e) => return service_error_page(e),
            };
            let alert = Alert {
                heading: format!("No invitation was sent to {name}."),
                message,
            };
            match back_to_list {
                Some(back) => {
                    let query = back.split_once('?').map_or("", |(_, q)| q);
                    let pairs: Pairs = url::form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                    list_page(
                        &state,
                        &caller.0,
                        &pairs,
                        StatusCode::CONFLICT,
                        None,
                        Some(alert),
                    )
                    .await
                }
                None => {
                    let input = DetailInput {
                        values: None,
                        errors: FieldErrors::default(),
                        notice: None,
                        alert: Some(alert),
                    };
                    detail_page(&state, &caller, &username, StatusCode::CONFLICT, input).await
                }
            }
        }
        Err(e) => service_error_page(e),
    }
}

/// A `GET` on an action address (after a login interrupted a form): back to the person.
pub async fn back_to_detail(Path(username): Path<String>) -> Redirect {
    Redirect::to(&person_path(&username))
}

// ----------------------------------------------------------------------------------------
// Creation
// ----------------------------------------------------------------------------------------

#[derive(Default)]
struct NewValues {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    /// "Invite now" is ticked.
    invite: bool,
}

#[derive(Template)]
#[template(path = "user_new.html")]
struct NewUserPage {
    layout: Layout,
    values: NewValues,
    errors: FieldErrors,
    other_errors: Vec<String>,
    /// The username was filled in by the server from the names.
    suggested: bool,
    policy: String,
    link_ttl: String,
}

const NEW_FIELDS: &[&str] = &[
    "username",
    "first_name",
    "last_name",
    "email",
    "password",
    "password_confirmation",
];

fn new_page(
    state: &AppState,
    caller: &AdminCaller,
    status: StatusCode,
    values: NewValues,
    errors: FieldErrors,
    suggested: bool,
) -> Response {
    render_with(
        status,
        &NewUserPage {
            layout: Layout::for_caller(state, &caller.0, "users"),
            other_errors: unplaced_errors(&errors, NEW_FIELDS),
            values,
            errors,
            suggested,
            policy: state.usher.settings.password_policy.describe(),
            link_ttl: describe_duration(state.usher.settings.link_ttl),
        },
    )
}

/// `GET /admin/users/new`.
pub async fn new_form(State(state): State<AppState>, caller: AdminCaller) -> Response {
    new_page(
        &state,
        &caller,
        StatusCode::OK,
        NewValues::default(),
        FieldErrors::default(),
        false,
    )
}

/// `POST /admin/users/new`: 303 to the new person, or the form again with every error in
/// place (422 for rules, 409 for a taken username or email) and the values kept, passwords
/// excepted.
pub async fn create(
    State(state): State<AppState>,
    caller: AdminCaller,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = caller.0.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    let mut values = NewValues {
        username: field(&form, "username").to_owned(),
        first_name: field(&form, "first_name").to_owned(),
        last_name: field(&form, "last_name").to_owned(),
        email: field(&form, "email").to_owned(),
        invite: !field(&form, "invite").is_empty(),
    };
    let input = CreatePerson {
        username: values.username.clone(),
        first_name: values.first_name.clone(),
        last_name: values.last_name.clone(),
        email: values.email.clone(),
        password: Some(field(&form, "password").to_owned()),
        password_confirmation: Some(field(&form, "password_confirmation").to_owned()),
        password_required: true,
        enabled: true,
        profile: Profile::default(),
    };
    let actor = &caller.0.auth.actor;
    match state.usher.create_person(actor, input).await {
        Ok(person) => {
            let notice = if !values.invite {
                "created"
            } else if let Err(e) = state.usher.invite(actor, &person.username).await {
                tracing::warn!(
                    "inviting {} after creating them failed: {e}",
                    person.username
                );
                "created_not_invited"
            } else {
                "created_invited"
            };
            Redirect::to(&format!(
                "{}?notice={notice}",
                person_path(&person.username)
            ))
            .into_response()
        }
        Err(ServiceError::Validation(mut errors)) => {
            let mut suggested = false;
            if values.username.trim().is_empty() {
                let suggestion = state
                    .usher
                    .suggest_username(&values.first_name, &values.last_name)
                    .await
                    .ok()
                    .and_then(|s| s.username);
                let message = if let Some(username) = suggestion {
                    values.username = username;
                    suggested = true;
                    "Enter a username. One was suggested from the names: check it and submit again."
                } else {
                    "Enter a username."
                };
                errors.0.insert(
                    "username".into(),
                    vec![FieldError::new("required", message)],
                );
            }
            new_page(
                &state,
                &caller,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                errors,
                suggested,
            )
        }
        Err(ServiceError::Conflict(errors)) => {
            new_page(&state, &caller, StatusCode::CONFLICT, values, errors, false)
        }
        Err(e) => service_error_page(e),
    }
}

// ----------------------------------------------------------------------------------------
// Detail and edit
// ----------------------------------------------------------------------------------------

/// The edit form's values: the stored ones, or those just submitted.
struct EditValues {
    first_name: String,
    last_name: String,
    email: String,
    profile: Vec<String>,
}

impl EditValues {
    fn of(person: &Person) -> Self {
        Self {
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            email: person.email.clone(),
            profile: PROFILE_FIELDS
                .iter()
                .map(|(f, _, _)| person.profile.get(*f).cloned().unwrap_or_default())
                .collect(),
        }
    }

    fn submitted(form: &Pairs) -> Self {
        Self {
            first_name: field(form, "first_name").to_owned(),
            last_name: field(form, "last_name").to_owned(),
            email: field(form, "email").to_owned(),
            profile: PROFILE_FIELDS
                .iter()
                .map(|(_, name, _)| field(form, name).to_owned())
                .collect(),
        }
    }
}

struct ProfileView {
    name: &'static str,
    label: &'static str,
    /// What is stored, for the facts.
    stored: Option<String>,
    /// What the edit field holds.
    value: String,
    error: Option<String>,
    long: bool,
}

/// How the last invitation email stands, for the detail page.
struct DeliveryView {
    /// `Sent`, `Waiting to be sent`, `Failed`.
    state: &'static str,
    class: &'static str,
    attempts: String,
    sent_at: Option<String>,
    last_error: Option<String>,
}

impl DeliveryView {
    fn of(d: &Delivery) -> Self {
        let (state, class) = match d.state {
            DeliveryState::Queued => ("Waiting to be sent", "queued"),
            DeliveryState::Sent => ("Sent", "sent"),
            DeliveryState::Failed => ("Failed", "failed"),
        };
        let attempts = match (d.state, d.attempts) {
            (DeliveryState::Queued, 0) => "not tried yet".to_owned(),
            (DeliveryState::Queued, n) => format!("{} failed so far, retrying", tries(n)),
            (DeliveryState::Sent, n) => format!("after {}", tries(n.max(1))),
            (DeliveryState::Failed, n) => format!("gave up after {}", tries(n)),
        };
        Self {
            state,
            class,
            attempts,
            sent_at: d.sent_at.map(format_time),
            last_error: d.last_error.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    layout: Layout,
    notice: Option<String>,
    alert: Option<Alert>,
    person: Person,
    href: String,
    name: String,
    created: String,
    created_iso: String,
    last_login: Option<String>,
    last_login_iso: String,
    invited: Option<String>,
    joined: Option<String>,
    enrollment: String,
    enrollment_class: &'static str,
    /// What the enrollment state means, in a sentence.
    enrollment_text: &'static str,
    delivery: Option<DeliveryView>,
    /// `Send invitation` or `Resend invitation`, when the server would accept it.
    invite_label: Option<&'static str>,
    guest: bool,
    ldap: bool,
    roles: Vec<Membership>,
    values: EditValues,
    profile: Vec<ProfileView>,
    has_profile: bool,
    errors: FieldErrors,
    other_errors: Vec<String>,
    can_toggle: bool,
    can_delete: bool,
    policy: String,
    link_ttl: String,
}

const EDIT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "password",
    "password_confirmation",
];

struct DetailInput {
    values: Option<EditValues>,
    errors: FieldErrors,
    notice: Option<String>,
    alert: Option<Alert>,
}

/// Loads the person and their roles and renders the page.
async fn detail_page(
    state: &AppState,
    caller: &AdminCaller,
    username: &str,
    status: StatusCode,
    input: DetailInput,
) -> Response {
    let actor = &caller.0.auth.actor;
    let person = match state.usher.person(actor, username).await {
        Ok(p) => p,
        Err(e) => return service_error_page(e),
    };
    let roles = match state.usher.roles(actor, &person.username).await {
        Ok(r) => r,
        Err(e) => return service_error_page(e),
    };
    let values = input.values.unwrap_or_else(|| EditValues::of(&person));
    let profile: Vec<ProfileView> = PROFILE_FIELDS
        .iter()
        .zip(&values.profile)
        .map(|((f, name, label), value)| ProfileView {
            name,
            label,
            stored: person.profile.get(*f).cloned(),
            value: value.clone(),
            error: input
                .errors
                .first(&format!("profile.{name}"))
                .map(|e| e.message.clone()),
            long: *name == "about_me",
        })
        .collect();
    let mut placed: Vec<String> = EDIT_FIELDS.iter().map(|s| (*s).to_owned()).collect();
    placed.extend(
        PROFILE_FIELDS
            .iter()
            .map(|(_, n, _)| format!("profile.{n}")),
    );
    let placed: Vec<&str> = placed.iter().map(String::as_str).collect();
    let enrollment = person.enrollment();
    let (enrollment_label, enrollment_class) = enrollment_badge(&person);
    let enrollment_text = match enrollment {
        Enrollment::Invite | Enrollment::Reinvite if !person.enabled => {
            "Never connected. Enable the account to invite them."
        }
        Enrollment::Invite => {
            "Never invited and never connected: an invitation lets them choose a password."
        }
        Enrollment::Reinvite => {
            "Invited, not joined yet. A new invitation replaces the earlier link."
        }
        Enrollment::Accepted => "Joined through an invitation.",
        Enrollment::Connected => "Connected without an invitation.",
        Enrollment::NotPossible => {
            "External and directory (LDAP) accounts are not invited from here."
        }
    };
    // The `invited` notice names the address it went to: the stored one, never the URL's.
    let notice = match input.notice.as_deref() {
        Some("invited") => Some(format!("Invitation sent to {}.", person.email)),
        _ => input.notice,
    };
    let page = UserPage {
        layout: Layout::for_caller(state, &caller.0, "users"),
        notice,
        alert: input.alert,
        href: person_path(&person.username),
        name: person.display_name(),
        created: format_time(person.created_at),
        created_iso: machine_time(person.created_at),
        last_login: person.last_login_at.map(format_time),
        last_login_iso: person.last_login_at.map(machine_time).unwrap_or_default(),
        invited: person.invited_at.map(format_time),
        joined: person.joined_at.map(format_time),
        enrollment: enrollment_label,
        enrollment_class,
        enrollment_text,
        delivery: match enrollment {
            Enrollment::Reinvite | Enrollment::Accepted => {
                person.invitation_delivery.as_ref().map(DeliveryView::of)
            }
            _ => None,
        },
        invite_label: invite_label(&person),
        guest: person.kind == PersonType::External,
        ldap: person.source == Source::Ldap,
        roles,
        has_profile: profile.iter().any(|p| p.stored.is_some()),
        profile,
        values,
        other_errors: unplaced_errors(&input.errors, &placed),
        errors: input.errors,
        can_toggle: can_toggle(actor, &person),
        can_delete: actor.super_user && person.id != actor.id && !person.super_user,
        policy: state.usher.settings.password_policy.describe(),
        link_ttl: describe_duration(state.usher.settings.link_ttl),
        person,
    };
    render_with(status, &page)
}

/// `GET /admin/users/{username}`.
pub async fn detail(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(username): Path<String>,
    Query(pairs): Query<Pairs>,
) -> Response {
    let input = DetailInput {
        values: None,
        errors: FieldErrors::default(),
        notice: match forms::get(&pairs, "notice") {
            Some("invited") => Some("invited".to_owned()),
            code => notice_text(code).map(str::to_owned),
        },
        alert: None,
    };
    detail_page(&state, &caller, &username, StatusCode::OK, input).await
}

/// `POST /admin/users/{username}`: the edit form. A blank password leaves it unchanged; an
/// emptied profile field clears it.
pub async fn update(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(username): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = caller.0.verify_csrf(field(&form, "csrf_token")) {
        return r;
    }
    let values = EditValues::submitted(&form);
    let password = field(&form, "password");
    let confirmation = field(&form, "password_confirmation");
    if password.is_empty() && !confirmation.is_empty() {
        let errors = FieldErrors::single(
            "password",
            FieldError::new(
                "required",
                "Enter the new password in both fields, or leave both blank.",
            ),
        );
        let input = DetailInput {
            values: Some(values),
            errors,
            notice: None,
            alert: None,
        };
        return detail_page(
            &state,
            &caller,
            &username,
            StatusCode::UNPROCESSABLE_ENTITY,
            input,
        )
        .await;
    }
    let mut profile = Profile::default();
    for ((f, _, _), value) in PROFILE_FIELDS.iter().zip(&values.profile) {
        *profile.slot(*f) = Some(value.clone());
    }
    let patch = PatchPerson {
        first_name: Some(values.first_name.clone()),
        last_name: Some(values.last_name.clone()),
        email: Some(values.email.clone()),
        password: (!password.is_empty()).then(|| password.to_owned()),
        password_confirmation: (!password.is_empty()).then(|| confirmation.to_owned()),
        enabled: None,
        profile: Some(profile),
    };
    let (status, errors) = match state
        .usher
        .patch_person(&caller.0.auth.actor, &username, patch)
        .await
    {
        Ok(person) => {
            return Redirect::to(&format!("{}?notice=updated", person_path(&person.username)))
                .into_response()
        }
        Err(ServiceError::Validation(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(ServiceError::Conflict(errors)) => (StatusCode::CONFLICT, errors),
        Err(e) => return service_error_page(e),
    };
    let input = DetailInput {
        values: Some(values),
        errors,
        notice: None,
        alert: None,
    };
    detail_page(&state, &caller, &username, status, input).await
}

//! Space pages: `/admin/spaces` (administrators create and list spaces) and `/spaces/{name}`
//! (members see who is in it; managers and administrators change members and roles and invite
//! guests by email).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use usher_core::groups::ROLES;
use usher_core::people::Person;
use usher_core::service::SpaceInviteOutcome;
use usher_core::store::{Space, SpaceInvitation};
use usher_core::{FieldErrors, ServiceError};

use super::{render, render_with, service_error_page, Layout};
use crate::http::auth::{AdminCaller, PageCaller};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "spaces.html")]
struct SpacesPage {
    layout: Layout,
    spaces: Vec<Space>,
    notice: Option<String>,
    name: String,
    display_name: String,
    external_invitations: bool,
    errors: FieldErrors,
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
    error: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "created" => "The space was created.",
            "saved" => "The space was saved.",
            "member_set" => "The member's role was saved.",
            "member_removed" => "The member was removed from the space.",
            "invited" => "The invitation was sent.",
            "added" => "This address belongs to someone already: they were added to the space.",
            "resent" => "A new link was sent; the older one no longer works.",
            "revoked" => "The invitation was revoked.",
            _ => return None,
        }
        .to_owned(),
    )
}

fn error_text(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "not_found" => "No such person.",
            "invalid_email" => "Enter a valid email address.",
            "invalid_role" => "Choose a role from the list.",
            "external_invitations_disabled" => "This space does not accept external invitations.",
            "not_pending" => "This invitation is no longer pending.",
            _ => return None,
        }
        .to_owned(),
    )
}

pub async fn list(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(q): Query<NoticeQuery>,
) -> Response {
    match state.usher.spaces_for(&caller.auth.actor).await {
        Ok(spaces) => render(&SpacesPage {
            layout: Layout::for_caller(&state, &caller, "spaces"),
            spaces,
            notice: notice_text(q.notice.as_deref()),
            name: String::new(),
            display_name: String::new(),
            external_invitations: false,
            errors: FieldErrors::default(),
        }),
        Err(e) => service_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    name: String,
    display_name: String,
    external_invitations: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let external = form.external_invitations.is_some();
    match state
        .usher
        .create_space(&caller.auth.actor, &form.name, &form.display_name, external)
        .await
    {
        Ok(space) => {
            Redirect::to(&format!("/spaces/{}?notice=created", space.name)).into_response()
        }
        Err(ServiceError::Validation(errors)) | Err(ServiceError::Conflict(errors)) => {
            let spaces = state
                .usher
                .spaces_for(&caller.auth.actor)
                .await
                .unwrap_or_default();
            render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SpacesPage {
                    layout: Layout::for_caller(&state, &caller, "spaces"),
                    spaces,
                    notice: None,
                    name: form.name,
                    display_name: form.display_name,
                    external_invitations: external,
                    errors,
                },
            )
        }
        Err(e) => service_error_page(e),
    }
}

#[derive(Template)]
#[template(path = "space.html")]
struct SpacePage {
    layout: Layout,
    space: Space,
    role: Option<String>,
    admin: bool,
    can_manage: bool,
    members: Vec<(Person, String)>,
    /// Invitation, shown state, invited date, expiry date.
    invitations: Vec<(SpaceInvitation, String, String, String)>,
    roles: &'static [&'static str],
    ttl: String,
    notice: Option<String>,
    error: Option<String>,
}

fn date(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&fmt).unwrap_or_default()
}

pub async fn show(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(name): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let actor = &caller.auth.actor;
    let (space, role) = match state.usher.space_for(actor, &name).await {
        Ok(x) => x,
        Err(e) => return service_error_page(e),
    };
    let members = match state.usher.space_members(actor, &name).await {
        Ok(m) => m,
        Err(e) => return service_error_page(e),
    };
    let can_manage = actor.admin || role.as_deref() == Some("manager");
    let now = state.usher.clock.now();
    let invitations = if can_manage {
        match state.usher.space_invitations(actor, &name).await {
            Ok(list) => list
                .into_iter()
                .map(|i| {
                    let shown = i.shown_state(now).to_owned();
                    let (invited, expires) = (date(i.invited_at), date(i.expires_at));
                    (i, shown, invited, expires)
                })
                .collect(),
            Err(e) => return service_error_page(e),
        }
    } else {
        Vec::new()
    };
    let hours = state.usher.settings.link_ttl.whole_hours();
    render(&SpacePage {
        layout: Layout::for_caller(&state, &caller, if actor.admin { "spaces" } else { "me" }),
        space,
        role,
        admin: actor.admin,
        can_manage,
        members,
        invitations,
        roles: ROLES,
        ttl: format!("{hours} hours"),
        notice: notice_text(q.notice.as_deref()),
        error: error_text(q.error.as_deref()),
    })
}

/// After a change: back to the space page with a notice, or with an error code the page
/// explains; other failures get the error page.
fn back(name: &str, result: Result<&'static str, ServiceError>) -> Response {
    match result {
        Ok(notice) => Redirect::to(&format!("/spaces/{name}?notice={notice}")).into_response(),
        Err(ServiceError::NotFound) => {
            Redirect::to(&format!("/spaces/{name}?error=not_found")).into_response()
        }
        Err(ServiceError::Validation(fields)) => {
            let code = if fields.first("email").is_some() {
                "invalid_email"
            } else {
                "invalid_role"
            };
            Redirect::to(&format!("/spaces/{name}?error={code}")).into_response()
        }
        Err(ServiceError::State { code, .. }) => {
            Redirect::to(&format!("/spaces/{name}?error={code}")).into_response()
        }
        Err(e) => service_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf_token: String,
    display_name: String,
    external_invitations: Option<String>,
}

pub async fn settings(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .update_space(
            &caller.auth.actor,
            &name,
            Some(&form.display_name),
            Some(form.external_invitations.is_some()),
        )
        .await
        .map(|_| "saved");
    back(&name, result)
}

#[derive(Deserialize)]
pub struct MemberForm {
    csrf_token: String,
    username: String,
    #[serde(default)]
    role: String,
}

pub async fn set_member(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(name): Path<String>,
    Form(form): Form<MemberForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .set_space_member(&caller.auth.actor, &name, &form.username, &form.role)
        .await
        .map(|()| "member_set");
    back(&name, result)
}

pub async fn remove_member(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(name): Path<String>,
    Form(form): Form<MemberForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .remove_space_member(&caller.auth.actor, &name, &form.username)
        .await
        .map(|()| "member_removed");
    back(&name, result)
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf_token: String,
    email: String,
}

pub async fn invite(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(name): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .invite_to_space(&caller.auth.actor, &name, &form.email)
        .await
        .map(|outcome| match outcome {
            SpaceInviteOutcome::Added(_) => "added",
            SpaceInviteOutcome::Invited(_) => "invited",
        });
    back(&name, result)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: String,
}

pub async fn resend(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .resend_space_invitation(&caller.auth.actor, &name, id)
        .await
        .map(|_| "resent");
    back(&name, result)
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .revoke_space_invitation(&caller.auth.actor, &name, id)
        .await
        .map(|()| "revoked");
    back(&name, result)
}

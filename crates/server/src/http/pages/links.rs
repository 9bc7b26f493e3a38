//! Pages reached from emailed links: joining (`/join/{token}`), forgetting a password
//! (`/forgot`) and resetting it (`/reset/{token}`). Opening a link changes nothing; only
//! submitting its form uses it. Unknown, used and expired links all get the same page.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use usher_core::store::TokenKind;
use usher_core::{FieldErrors, ServiceError};

use super::account::ClientAddr;
use super::{render, render_with, service_error_page, Layout};
use crate::http::auth::{
    anonymous_csrf_ok as csrf_ok, anonymous_form_csrf as form_csrf, with_cookie, SESSION_COOKIE,
};
use crate::http::cookies;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "link_password.html")]
struct LinkPasswordPage {
    layout: Layout,
    heading: String,
    intro: String,
    action: String,
    submit: &'static str,
    form_csrf: String,
    username: String,
    policy: String,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "link_expired.html")]
struct LinkExpiredPage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    layout: Layout,
    form_csrf: String,
    sent: bool,
    ttl: String,
    error: Option<String>,
}

fn expired(state: &AppState) -> Response {
    render_with(
        StatusCode::GONE,
        &LinkExpiredPage {
            layout: Layout::anonymous(state),
        },
    )
}

fn human_duration(d: time::Duration) -> String {
    let hours = d.whole_hours();
    if hours >= 48 && hours % 24 == 0 {
        format!("{} days", hours / 24)
    } else if hours >= 1 {
        format!("{hours} hours")
    } else {
        format!("{} minutes", d.whole_minutes().max(1))
    }
}

/// Which link page: joining or resetting.
#[derive(Clone, Copy)]
enum LinkPage {
    Join,
    Reset,
}

impl LinkPage {
    fn kind(self) -> TokenKind {
        match self {
            Self::Join => TokenKind::Invitation,
            Self::Reset => TokenKind::PasswordReset,
        }
    }

    fn page(
        self,
        state: &AppState,
        token: &str,
        csrf: String,
        username: String,
        first_name: &str,
        errors: FieldErrors,
    ) -> LinkPasswordPage {
        let platform = &state.config.platform_name;
        let (heading, intro, action, submit) = match self {
            Self::Join => (
                format!("Welcome to {platform}"),
                format!("Hello {first_name}, choose the password you will log in with."),
                format!("/join/{token}"),
                "Join",
            ),
            Self::Reset => (
                "Choose a new password".to_owned(),
                format!(
                    "Hello {first_name}, choose your new password. Your other sessions will end."
                ),
                format!("/reset/{token}"),
                "Save my new password",
            ),
        };
        LinkPasswordPage {
            layout: Layout::anonymous(state),
            heading,
            intro,
            action,
            submit,
            form_csrf: csrf,
            username,
            policy: state.usher.settings.password_policy.describe(),
            errors,
        }
    }
}

async fn show(state: AppState, headers: HeaderMap, token: String, which: LinkPage) -> Response {
    match state.usher.link_holder(&token, which.kind()).await {
        Ok(holder) => {
            let (csrf, cookie) = form_csrf(&headers, &state);
            let page = which.page(
                &state,
                &token,
                csrf,
                holder.username,
                &holder.first_name,
                FieldErrors::default(),
            );
            with_cookie(render(&page), cookie)
        }
        Err(ServiceError::NotFound) => expired(&state),
        Err(e) => service_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf_token: String,
    password: String,
    password_confirmation: String,
}

async fn submit(
    state: AppState,
    headers: HeaderMap,
    token: String,
    form: PasswordForm,
    which: LinkPage,
) -> Response {
    if !csrf_ok(&headers, &form.csrf_token) {
        return Redirect::to(&format!(
            "/{}/{token}",
            if matches!(which, LinkPage::Join) {
                "join"
            } else {
                "reset"
            }
        ))
        .into_response();
    }
    let result = match which {
        LinkPage::Join => state
            .usher
            .join(&token, &form.password, &form.password_confirmation)
            .await
            .map(Some),
        LinkPage::Reset => state
            .usher
            .reset_password(&token, &form.password, &form.password_confirmation)
            .await
            .map(|()| None),
    };
    match result {
        Ok(Some(success)) => {
            let max_age = (success.expires_at - state.usher.clock.now()).whole_seconds();
            let cookie = cookies::set(
                SESSION_COOKIE,
                &success.session_token,
                max_age,
                state.config.secure_cookies(),
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Ok(None) => Redirect::to("/login?notice=password_changed").into_response(),
        Err(ServiceError::Validation(errors)) => {
            let Ok(holder) = state.usher.link_holder(&token, which.kind()).await else {
                return expired(&state);
            };
            let page = which.page(
                &state,
                &token,
                form.csrf_token.clone(),
                holder.username,
                &holder.first_name,
                errors,
            );
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(ServiceError::NotFound) => expired(&state),
        Err(e) => service_error_page(e),
    }
}

pub async fn join_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    show(state, headers, token, LinkPage::Join).await
}

pub async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Response {
    submit(state, headers, token, form, LinkPage::Join).await
}

pub async fn reset_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    show(state, headers, token, LinkPage::Reset).await
}

pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Response {
    submit(state, headers, token, form, LinkPage::Reset).await
}

pub async fn forgot_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (csrf, cookie) = form_csrf(&headers, &state);
    let page = ForgotPage {
        layout: Layout::anonymous(&state),
        form_csrf: csrf,
        sent: false,
        ttl: human_duration(state.usher.settings.link_ttl),
        error: None,
    };
    with_cookie(render(&page), cookie)
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf_token: String,
    email: String,
}

pub async fn forgot(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf_token) {
        return Redirect::to("/forgot").into_response();
    }
    let page = |sent: bool, error: Option<String>| ForgotPage {
        layout: Layout::anonymous(&state),
        form_csrf: form.csrf_token.clone(),
        sent,
        ttl: human_duration(state.usher.settings.link_ttl),
        error,
    };
    match state
        .usher
        .request_password_reset(&form.email, &client)
        .await
    {
        Ok(()) => render(&page(true, None)),
        Err(ServiceError::Throttled { retry_after_secs }) => {
            let mut r = render_with(
                StatusCode::TOO_MANY_REQUESTS,
                &page(
                    false,
                    Some(format!(
                        "Too many requests from your network; try again in {retry_after_secs} seconds."
                    )),
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            r
        }
        Err(e) => service_error_page(e),
    }
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    layout: Layout,
    token: String,
    form_csrf: String,
    space_name: String,
    email: String,
    first_name: String,
    last_name: String,
    username: String,
    policy: String,
    errors: FieldErrors,
}

/// `/register/{token}`: an external person invited to a space creates their account.
pub async fn register_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    match state.usher.registration(&token).await {
        Ok(registration) => {
            let (csrf, cookie) = form_csrf(&headers, &state);
            let page = RegisterPage {
                layout: Layout::anonymous(&state),
                token,
                form_csrf: csrf,
                space_name: registration.space.display_name,
                email: registration.invitation.email,
                first_name: String::new(),
                last_name: String::new(),
                username: String::new(),
                policy: state.usher.settings.password_policy.describe(),
                errors: FieldErrors::default(),
            };
            with_cookie(render(&page), cookie)
        }
        Err(ServiceError::NotFound) => expired(&state),
        Err(e) => service_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct RegisterForm {
    csrf_token: String,
    #[serde(default)]
    username: String,
    first_name: String,
    last_name: String,
    password: String,
    password_confirmation: String,
}

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<RegisterForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf_token) {
        return Redirect::to(&format!("/register/{token}")).into_response();
    }
    let Ok(registration) = state.usher.registration(&token).await else {
        return expired(&state);
    };
    let mut username = form.username.trim().to_owned();
    let mut errors = FieldErrors::default();
    if username.is_empty() {
        // Suggested from the names, with a number added when taken.
        match state
            .usher
            .suggest_username(&form.first_name, &form.last_name)
            .await
        {
            Ok(s) if s.available => username = s.username.unwrap_or_default(),
            _ => {}
        }
    }
    let result = if username.is_empty() {
        errors.add(
            "username",
            usher_core::FieldError::new("required", "Choose a username."),
        );
        Err(ServiceError::Validation(errors))
    } else {
        state
            .usher
            .register(
                &token,
                usher_core::service::RegisterInput {
                    username: username.clone(),
                    first_name: form.first_name.clone(),
                    last_name: form.last_name.clone(),
                    password: form.password.clone(),
                    password_confirmation: form.password_confirmation.clone(),
                },
            )
            .await
    };
    match result {
        Ok(success) => {
            let max_age = (success.expires_at - state.usher.clock.now()).whole_seconds();
            let cookie = cookies::set(
                SESSION_COOKIE,
                &success.session_token,
                max_age,
                state.config.secure_cookies(),
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/me")).into_response()
        }
        Err(ServiceError::Validation(errors)) | Err(ServiceError::Conflict(errors)) => render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &RegisterPage {
                layout: Layout::anonymous(&state),
                token,
                form_csrf: form.csrf_token.clone(),
                space_name: registration.space.display_name,
                email: registration.invitation.email,
                first_name: form.first_name,
                last_name: form.last_name,
                username,
                policy: state.usher.settings.password_policy.describe(),
                errors,
            },
        ),
        Err(ServiceError::NotFound) => expired(&state),
        Err(e) => service_error_page(e),
    }
}

//! Logging in and out, and a person's own account pages.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use usher_core::groups::Membership;
use usher_core::people::Person;
use usher_core::service::LoginError;
use usher_core::{FieldErrors, ServiceError};

use super::{render, render_with, safe_next, service_error_page, Layout};
use crate::http::auth::{
    anonymous_csrf_ok, anonymous_form_csrf, with_cookie, PageCaller, SESSION_COOKIE,
};
use crate::http::cookies;
use crate::http::AppState;

/// The caller's network address, for per-client throttling.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(Self(addr))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    form_csrf: String,
    next: String,
    login: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

/// The login form. Its CSRF protection is a double-submit cookie, as there is no session yet.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let (csrf, set_cookie) = anonymous_form_csrf(&headers, &state);
    let notice = match q.notice.as_deref() {
        Some("logged_out") => Some("You are logged out.".to_owned()),
        Some("password_changed") => Some("Your password was changed; log in with it.".to_owned()),
        _ => None,
    };
    let page = LoginPage {
        layout: Layout::anonymous(&state),
        form_csrf: csrf,
        next: safe_next(q.next.as_deref().unwrap_or("/")).to_owned(),
        login: String::new(),
        error: None,
        notice,
    };
    with_cookie(render(&page), set_cookie)
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf_token: String,
    #[serde(default)]
    next: String,
    login: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let page = |status: StatusCode, error: String| {
        render_with(
            status,
            &LoginPage {
                layout: Layout::anonymous(&state),
                form_csrf: form.csrf_token.clone(),
                next: next.clone(),
                login: form.login.clone(),
                error: Some(error),
                notice: None,
            },
        )
    };
    if !anonymous_csrf_ok(&headers, &form.csrf_token) {
        return Redirect::to("/login").into_response();
    }
    match state
        .usher
        .login(&form.login, &form.password, &client)
        .await
    {
        Ok(success) => {
            let max_age = (success.expires_at - state.usher.clock.now()).whole_seconds();
            let cookie = cookies::set(
                SESSION_COOKIE,
                &success.session_token,
                max_age,
                state.config.secure_cookies(),
            );
            let target = if success.person.password_temporary {
                "/me/password".to_owned()
            } else {
                next
            };
            ([(header::SET_COOKIE, cookie)], Redirect::to(&target)).into_response()
        }
        Err(e @ LoginError::InvalidCredentials) => page(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(e @ LoginError::Disabled) => page(StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ LoginError::Throttled { retry_after_secs }) => {
            let mut r = page(StatusCode::TOO_MANY_REQUESTS, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            r
        }
        Err(LoginError::Service(e)) => service_error_page(e),
    }
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    layout: Layout,
}

pub async fn logout_form(State(state): State<AppState>, caller: PageCaller) -> Response {
    render(&LogoutPage {
        layout: Layout::for_caller(&state, &caller, ""),
    })
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf_token: String,
}

pub async fn logout(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    if let Err(e) = state.usher.logout(&caller.session_token).await {
        return service_error_page(e);
    }
    let cookie = cookies::clear(SESSION_COOKIE, state.config.secure_cookies());
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/login?notice=logged_out"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    layout: Layout,
    person: Person,
    roles: Vec<Membership>,
    spaces: Vec<usher_core::store::Space>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn me(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let person = caller.auth.person.clone();
    let roles = match state
        .usher
        .roles(&caller.auth.actor, &person.username)
        .await
    {
        Ok(r) => r,
        Err(e) => return service_error_page(e),
    };
    let spaces = match state.usher.my_spaces(&person).await {
        Ok(s) => s,
        Err(e) => return service_error_page(e),
    };
    let notice = (q.notice.as_deref() == Some("password_changed"))
        .then(|| "Your password was changed.".to_owned());
    render(&MePage {
        layout: Layout::for_caller(&state, &caller, "me"),
        person,
        roles,
        spaces,
        notice,
    })
}

#[derive(Template)]
#[template(path = "me_password.html")]
struct PasswordPage {
    layout: Layout,
    temporary: bool,
    policy: String,
    errors: FieldErrors,
}

pub async fn password_form(State(state): State<AppState>, caller: PageCaller) -> Response {
    render(&PasswordPage {
        temporary: caller.auth.person.password_temporary,
        policy: state.usher.settings.password_policy.describe(),
        layout: Layout::for_caller(&state, &caller, "me"),
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf_token: String,
    current_password: Option<String>,
    password: String,
    password_confirmation: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Err(r) = caller.verify_csrf(&form.csrf_token) {
        return r;
    }
    let result = state
        .usher
        .change_own_password(
            &caller.auth.person,
            form.current_password.as_deref(),
            &form.password,
            &form.password_confirmation,
            Some(&caller.session_token),
        )
        .await;
    match result {
        Ok(()) => {
            let target = if caller.auth.actor.admin {
                "/admin/users?notice=password_changed"
            } else {
                "/me?notice=password_changed"
            };
            Redirect::to(target).into_response()
        }
        Err(ServiceError::Validation(errors)) => render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                temporary: caller.auth.person.password_temporary,
                policy: state.usher.settings.password_policy.describe(),
                layout: Layout::for_caller(&state, &caller, "me"),
                errors,
            },
        ),
        Err(e) => service_error_page(e),
    }
}

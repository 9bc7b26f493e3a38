//! Who is calling. API requests authenticate with a bearer token or the session cookie (then
//! state-changing requests must echo the session's CSRF token in `X-CSRF-Token`); pages with
//! the session cookie, forms carrying the CSRF token in a hidden field. A person with a
//! temporary password is held at `/me/password` until they choose their own.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use usher_core::service::Authenticated;
use usher_core::token::new_token;

use super::cookies;
use super::error::ApiError;
use super::pages;
use super::AppState;

pub const SESSION_COOKIE: &str = "usher_session";
/// Double-submit cookie protecting forms shown before login (login, later forgot-password).
pub const CSRF_COOKIE: &str = "usher_csrf";

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The double-submit CSRF value of a form shown before login (login, forgot, join, reset,
/// register): the cookie's, or a new one to set.
pub fn anonymous_form_csrf(headers: &HeaderMap, state: &AppState) -> (String, Option<String>) {
    match cookies::read(headers, CSRF_COOKIE) {
        Some(c) if c.len() == 64 => (c, None),
        _ => {
            let c = new_token();
            let cookie = cookies::set(CSRF_COOKIE, &c, 3600 * 24, state.config.secure_cookies());
            (c, Some(cookie))
        }
    }
}

pub fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(v) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub fn anonymous_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    let cookie = cookies::read(headers, CSRF_COOKIE).unwrap_or_default();
    !cookie.is_empty() && same_secret(&cookie, sent)
}

/// An authenticated API caller.
pub struct ApiCaller(pub Authenticated);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let usher = &state.usher;
        let auth = if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(ApiError::unauthorized)?;
            usher
                .authenticate_token(token.trim())
                .await?
                .ok_or_else(ApiError::unauthorized)?
        } else {
            let token =
                cookies::read(&parts.headers, SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?;
            let auth = usher
                .authenticate_session(&token)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            if !is_safe(&parts.method) {
                let sent = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let expected = auth.csrf_token.as_deref().unwrap_or_default();
                if expected.is_empty() || !same_secret(sent, expected) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "Send the session's CSRF token in the X-CSRF-Token header (see GET /api/v1/session).",
                    ));
                }
            }
            auth
        };
        if auth.person.password_temporary && !parts.uri.path().ends_with("/session") {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "Choose your own password at /me/password first.",
            ));
        }
        Ok(Self(auth))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A logged-in person on a page.
pub struct PageCaller {
    pub auth: Authenticated,
    pub session_token: String,
    pub csrf_token: String,
}

impl PageCaller {
    /// Checks the hidden CSRF field of a submitted form.
    #[allow(
        clippy::result_large_err,
        reason = "the error is the page to answer with, built only when the check fails and \
                  returned at once by every caller; boxing it would only add an unboxing there"
    )]
    pub fn verify_csrf(&self, sent: &str) -> Result<(), Response> {
        if same_secret(sent, &self.csrf_token) {
            Ok(())
        } else {
            Err(pages::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Go back, reload the page and submit it again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let to_login = || {
            Redirect::to(&format!(
                "/login?next={}",
                urlencoding::encode(&path_and_query)
            ))
            .into_response()
        };
        let Some(token) = cookies::read(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let auth = match state.usher.authenticate_session(&token).await {
            Ok(Some(auth)) => auth,
            Ok(None) => return Err(to_login()),
            Err(e) => {
                tracing::error!("session lookup failed: {e}");
                return Err(pages::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not check your session; try again in a moment.",
                ));
            }
        };
        let path = parts.uri.path();
        if auth.person.password_temporary && path != "/me/password" && path != "/logout" {
            return Err(Redirect::to("/me/password").into_response());
        }
        let csrf_token = auth.csrf_token.clone().unwrap_or_default();
        Ok(Self {
            auth,
            session_token: token,
            csrf_token,
        })
    }
}

/// A logged-in administrator on an admin page.
pub struct AdminCaller(pub PageCaller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let caller = PageCaller::from_request_parts(parts, state).await?;
        if !caller.auth.actor.admin {
            return Err(pages::error_page(
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This part of the site is for the platform's administrators.",
            ));
        }
        Ok(Self(caller))
    }
}

//! HTTP: the JSON API under `/api/v1`, the pages, health checks, and what every response
//! carries (security headers). Handlers translate requests into service calls and hold no SQL.

pub mod api;
mod assets;
mod auth;
mod cookies;
mod error;
mod forms;
mod metrics;
pub mod pages;
mod user_json;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use usher_core::service::Usher;

use crate::config::Config;

pub use auth::{CSRF_COOKIE, SESSION_COOKIE};

/// The axum items tests need to serve the router, so that they use the server's own version.
pub mod axum_reexport {
    pub use axum::{serve, Router};
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub usher: Usher,
    pub config: Arc<Config>,
}

/// JSON bodies are small; larger ones are refused with 413.
const API_BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let routes = Router::new()
        .nest(
            "/api/v1",
            api::routes().layer(DefaultBodyLimit::max(API_BODY_LIMIT)),
        )
        .merge(pages::routes().layer(DefaultBodyLimit::max(API_BODY_LIMIT)))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/static/{file}", get(assets::serve))
        .fallback(not_found);
    // Only when enabled: otherwise `/metrics` is a page like any unknown one, and requests are
    // not timed.
    let routes = if state.config.metrics {
        metrics::instrument(routes)
    } else {
        routes
    };
    routes
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.usher.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!("store not ready: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
            .into_response()
    } else {
        pages::not_found_page()
    }
}

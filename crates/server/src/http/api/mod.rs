//! The JSON API under `/api/v1` (interface: HTTP API).

pub mod audit;
pub mod bulk;
pub mod imports;
pub mod spaces;
mod users;

pub use users::csv_line;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::ApiCaller;
use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/session", get(session))
        .route("/users", get(users::list).post(users::create))
        .route("/users.csv", get(users::export_csv))
        .route("/users/bulk", post(bulk::bulk))
        .route("/jobs/{id}", get(bulk::job))
        .route("/users/suggest-username", get(users::suggest_username))
        .route(
            "/users/{username}",
            get(users::get).patch(users::patch).delete(users::delete),
        )
        .route("/users/{username}/roles", get(users::roles))
        .route("/users/{username}/invitation", post(users::invite))
        .route("/audit", get(audit::list))
        // The size of an import is checked against USHER_IMPORT_MAX_BYTES as it streams in.
        .route(
            "/imports",
            get(imports::list)
                .post(imports::submit)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/imports/template.csv", get(imports::template))
        .route("/imports/{id}", get(imports::get))
        .route("/imports/{id}/report.csv", get(imports::report))
        .route("/spaces", get(spaces::list).post(spaces::create))
        .route("/spaces/{name}", get(spaces::get).patch(spaces::patch))
        .route("/spaces/{name}/members", get(spaces::members))
        .route(
            "/spaces/{name}/members/{username}",
            axum::routing::put(spaces::put_member).delete(spaces::delete_member),
        )
        .route(
            "/spaces/{name}/invitations",
            get(spaces::invitations).post(spaces::invite),
        )
        .route(
            "/spaces/{name}/invitations/{id}",
            axum::routing::delete(spaces::revoke),
        )
        .route(
            "/spaces/{name}/invitations/{id}/resend",
            post(spaces::resend),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such API endpoint.")
        })
}

async fn session(ApiCaller(auth): ApiCaller) -> Json<serde_json::Value> {
    Json(json!({
        "username": auth.person.username,
        "csrf_token": auth.csrf_token,
        "admin": auth.actor.admin,
        "password_change_required": auth.person.password_temporary,
    }))
}

/// `Json` whose rejections use the API's error shape: malformed JSON 400, wrong content type
/// 415, too large 413, and unknown or mistyped fields 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    // serde's message names the field and what was expected.
                    e.body_text(),
                ),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send JSON with Content-Type: application/json.",
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        "JSON bodies are limited to 1 MiB.",
                    )
                }
                other => ApiError::new(other.status(), "bad_request", other.body_text()),
            }),
        }
    }
}

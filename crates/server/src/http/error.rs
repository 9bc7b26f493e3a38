//! The API's one error shape, `{"error": {"code", "message", "fields"}}`, and the mapping of
//! service errors and extractor rejections onto it. Internal details are logged once here and
//! never reach the client.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use usher_core::{FieldErrors, ServiceError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Option<FieldErrors>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Log in, or send an API token as `Authorization: Bearer TOKEN`.",
        )
    }

    pub fn invalid(fields: FieldErrors) -> Self {
        Self {
            fields: Some(fields),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Some values are not valid; see `fields`.",
            )
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on the server; it has been logged.",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(fields) => Self::invalid(fields),
            ServiceError::Conflict(fields) => {
                let code = fields
                    .0
                    .values()
                    .flatten()
                    .next()
                    .map(|f| f.code)
                    .unwrap_or("conflict");
                Self {
                    fields: Some(fields),
                    ..Self::new(
                        StatusCode::CONFLICT,
                        code,
                        "This conflicts with stored data; see `fields`.",
                    )
                }
            }
            ServiceError::State { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            ServiceError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
            }
            ServiceError::Forbidden { code, message } => {
                Self::new(StatusCode::FORBIDDEN, code, message)
            }
            ServiceError::Throttled { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    format!("Too many attempts; try again in {retry_after_secs} seconds."),
                )
            },
            ServiceError::Store(e) => {
                tracing::error!("store error: {e}");
                Self::internal()
            }
            ServiceError::Internal(e) => {
                tracing::error!("internal error: {e}");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(fields) = &self.fields {
            body["error"]["fields"] = json!(fields);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

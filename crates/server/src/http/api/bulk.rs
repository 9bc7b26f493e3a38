//! `POST /api/v1/users/bulk` (mass actions) and `GET /api/v1/jobs/{id}` (their progress when
//! large).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use usher_core::error::{FieldError, FieldErrors};
use usher_core::people::{PersonType, Source};
use usher_core::query::{EnrollmentFilter, UserFilter};
use usher_core::service::{BulkAction, BulkOutcome, Selection};
use usher_core::store::JobRecord;

use super::ApiJson;
use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::user_json::rfc3339;
use crate::http::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    action: String,
    usernames: Option<Vec<String>>,
    filter: Option<FilterBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    q: Option<String>,
    enabled: Option<bool>,
    connected: Option<bool>,
    enrollment: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
}

impl FilterBody {
    fn parse(self, errors: &mut FieldErrors) -> UserFilter {
        fn one<T>(
            errors: &mut FieldErrors,
            field: &str,
            value: Option<String>,
            parse: impl Fn(&str) -> Option<T>,
            allowed: &str,
        ) -> Option<T> {
            let value = value?;
            let parsed = parse(&value);
            if parsed.is_none() {
                errors.add(
                    field,
                    FieldError::new("invalid_value", format!("Use one of: {allowed}.")),
                );
            }
            parsed
        }
        UserFilter {
            q: self.q.filter(|q| !q.trim().is_empty()),
            enabled: self.enabled,
            connected: self.connected,
            enrollment: one(
                errors,
                "filter.enrollment",
                self.enrollment,
                EnrollmentFilter::parse,
                "enrolled, never_enrolled, not_possible",
            ),
            kind: one(
                errors,
                "filter.type",
                self.kind,
                PersonType::parse,
                "internal, external",
            ),
            source: one(
                errors,
                "filter.source",
                self.source,
                Source::parse,
                "internal, ldap",
            ),
        }
    }
}

pub fn job_json(job: &JobRecord) -> serde_json::Value {
    json!({
        "id": job.id, "kind": job.kind, "state": job.state, "total": job.total,
        "processed": job.processed, "result": job.result,
        "created_at": rfc3339(Some(job.created_at)), "finished_at": rfc3339(job.finished_at),
    })
}

pub async fn bulk(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let action = BulkAction::parse(&body.action);
    if action.is_none() {
        errors.add(
            "action",
            FieldError::new("invalid_value", "Use invite, disable or enable."),
        );
    }
    let selection = match (body.usernames, body.filter) {
        (Some(names), None) => Some(Selection::Usernames(names)),
        (None, Some(filter)) => Some(Selection::Filter(filter.parse(&mut errors))),
        _ => {
            errors.add(
                "usernames",
                FieldError::new("required", "Give either `usernames` or `filter`, not both."),
            );
            None
        }
    };
    let (Some(action), Some(selection), true) = (action, selection, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    match state.usher.bulk(&auth.actor, action, selection).await? {
        BulkOutcome::Done(result) => Ok(Json(json!(result)).into_response()),
        BulkOutcome::Started(job) => {
            Ok((StatusCode::ACCEPTED, Json(job_json(&job))).into_response())
        }
    }
}

pub async fn job(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = state.usher.job(&auth.actor, id).await?;
    Ok(Json(job_json(&job)))
}

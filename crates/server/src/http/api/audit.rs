//! `/api/v1/audit`: the audit log, filtered and paged.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use usher_core::audit::AuditFilter;
use usher_core::error::{FieldError, FieldErrors};

use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::forms::{self, Pairs};
use crate::http::user_json::rfc3339;
use crate::http::AppState;

/// Parses the audit filters shared by the API and the page. Times are RFC 3339 or a date
/// (`2026-11-24`, meaning its start in UTC).
pub fn audit_filter(pairs: &Pairs, errors: &mut FieldErrors) -> AuditFilter {
    let time = |errors: &mut FieldErrors, key: &str| -> Option<OffsetDateTime> {
        let v = forms::get(pairs, key)?;
        let parsed = OffsetDateTime::parse(v, &Rfc3339).ok().or_else(|| {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(v, &fmt)
                .ok()
                .map(|d| d.midnight().assume_utc())
        });
        if parsed.is_none() {
            errors.add(
                key,
                FieldError::new(
                    "invalid_value",
                    "Use a date (2026-11-24) or an RFC 3339 time.",
                ),
            );
        }
        parsed
    };
    AuditFilter {
        actor: forms::get(pairs, "actor").map(|s| s.trim().to_lowercase()),
        target: forms::get(pairs, "target").map(|s| s.trim().to_lowercase()),
        action: forms::get(pairs, "action").map(str::to_owned),
        since: time(errors, "since"),
        until: time(errors, "until"),
        limit: forms::number(pairs, errors, "limit", 1, 500).map_or(50, |n| n as u32),
        offset: forms::number(pairs, errors, "offset", 0, i64::MAX as u64).unwrap_or(0),
    }
}

pub async fn list(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::default();
    let filter = audit_filter(&pairs, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_query",
            ..ApiError::invalid(errors)
        });
    }
    let page = state.usher.audit_entries(&auth.actor, &filter).await?;
    let entries: Vec<Value> = page
        .items
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "at": rfc3339(Some(e.at)), "actor": e.actor,
                "action": e.action, "target": e.target, "details": e.details,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "total": page.total })))
}

//! `/api/v1/users`: create, list, export, get, change, delete, roles.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use usher_core::people::Profile;
use usher_core::query::UserQuery;
use usher_core::service::{CreatePerson, PatchPerson};

use super::ApiJson;
use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::forms::{self, Pairs};
use crate::http::user_json::{rfc3339, UserJson};
use crate::http::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    password: Option<String>,
    enabled: Option<bool>,
    /// Send the invitation email at once.
    invite: Option<bool>,
    profile: Option<Profile>,
}

pub async fn create(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let mut person = state
        .usher
        .create_person(
            &auth.actor,
            CreatePerson {
                username: body.username,
                first_name: body.first_name,
                last_name: body.last_name,
                email: body.email,
                password: body.password,
                password_confirmation: None,
                password_required: false,
                enabled: body.enabled.unwrap_or(true),
                profile: body.profile.unwrap_or_default(),
            },
        )
        .await?;
    if body.invite == Some(true) {
        person = state.usher.invite(&auth.actor, &person.username).await?;
    }
    Ok((StatusCode::CREATED, Json(UserJson::from(person))).into_response())
}

fn query_of(pairs: &Pairs) -> Result<UserQuery, ApiError> {
    forms::user_query(pairs).map_err(|fields| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_query",
        ..ApiError::invalid(fields)
    })
}

pub async fn list(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
) -> Result<Json<Value>, ApiError> {
    let query = query_of(&pairs)?;
    let page = state.usher.search_people(&auth.actor, &query).await?;
    let users: Vec<UserJson> = page.items.into_iter().map(UserJson::from).collect();
    Ok(Json(json!({
        "users": users,
        "total": page.total,
        "limit": query.limit,
        "offset": query.offset,
    })))
}

/// The whole selection of a search as CSV, streamed page by page so that memory stays flat
/// however many people match.
pub async fn export_csv(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let mut query = query_of(&pairs)?;
    auth.actor.require_admin()?;
    query.limit = 1000;
    query.offset = 0;
    let header_line = csv_line(&[
        "username",
        "first_name",
        "last_name",
        "email",
        "enabled",
        "type",
        "source",
        "created_at",
        "last_login_at",
        "invited_at",
        "enrollment",
    ]);
    let usher = state.usher.clone();
    let actor = auth.actor.clone();
    let stream =
        futures_util::stream::unfold((Some(header_line), Some(query)), move |(header, next)| {
            let usher = usher.clone();
            let actor = actor.clone();
            async move {
                if let Some(h) = header {
                    return Some((Ok::<_, std::io::Error>(h), (None, next)));
                }
                let mut query = next?;
                let page = match usher.search_people(&actor, &query).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!("CSV export stopped: {e}");
                        return Some((Err(std::io::Error::other("export failed")), (None, None)));
                    }
                };
                if page.items.is_empty() {
                    return None;
                }
                let mut chunk = String::new();
                for p in &page.items {
                    chunk.push_str(&csv_line(&[
                        &p.username,
                        &p.first_name,
                        &p.last_name,
                        &p.email,
                        if p.enabled { "true" } else { "false" },
                        p.kind.as_str(),
                        p.source.as_str(),
                        &rfc3339(Some(p.created_at)),
                        &rfc3339(p.last_login_at),
                        &rfc3339(p.invited_at),
                        p.enrollment().as_str(),
                    ]));
                }
                let more = page.items.len() as u32 == query.limit;
                query.offset += u64::from(query.limit);
                Some((Ok(chunk), (None, more.then_some(query))))
            }
        });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"users.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One CSV record. Cells that a spreadsheet would run as a formula are prefixed with `'`.
pub fn csv_line(cells: &[&str]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let cells = cells.iter().map(|c| neutralize(c).into_owned());
    writer.write_record(cells).expect("writing to memory");
    String::from_utf8(writer.into_inner().expect("flushing to memory"))
        .expect("UTF-8 in, UTF-8 out")
}

fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

pub async fn get(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(username): Path<String>,
) -> Result<Json<UserJson>, ApiError> {
    let person = state.usher.person(&auth.actor, &username).await?;
    Ok(Json(person.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    enabled: Option<bool>,
    profile: Option<Profile>,
}

pub async fn patch(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<UserJson>, ApiError> {
    let person = state
        .usher
        .patch_person(
            &auth.actor,
            &username,
            PatchPerson {
                first_name: body.first_name,
                last_name: body.last_name,
                email: body.email,
                password: body.password,
                password_confirmation: None,
                enabled: body.enabled,
                profile: body.profile,
            },
        )
        .await?;
    Ok(Json(person.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.usher.delete_person(&auth.actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn roles(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let roles: Vec<Value> = state
        .usher
        .roles(&auth.actor, &username)
        .await?
        .into_iter()
        .map(|m| {
            json!({
                "role": m.role, "group": m.group, "group_label": m.group_label,
                "summary": m.summary(),
            })
        })
        .collect();
    Ok(Json(json!({ "roles": roles })))
}

/// `GET /users/suggest-username?first_name=&last_name=` → `{username, available}`: what the
/// creation form proposes as names are typed.
pub async fn suggest_username(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
) -> Result<Json<Value>, ApiError> {
    auth.actor.require_admin()?;
    let first = forms::get(&pairs, "first_name").unwrap_or_default();
    let last = forms::get(&pairs, "last_name").unwrap_or_default();
    let s = state.usher.suggest_username(first, last).await?;
    Ok(Json(
        json!({ "username": s.username, "available": s.available }),
    ))
}

/// `POST /users/{username}/invitation`: sends or resends the invitation (202, the user with
/// `invitation_delivery: "queued"`); 409 `already_joined` or `not_invitable`.
pub async fn invite(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    let person = state.usher.invite(&auth.actor, &username).await?;
    Ok((StatusCode::ACCEPTED, Json(UserJson::from(person))).into_response())
}

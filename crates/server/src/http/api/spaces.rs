//! `/api/v1/spaces`: spaces, their members and roles, and external invitations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use usher_core::service::SpaceInviteOutcome;
use usher_core::store::{Space, SpaceInvitation};

use super::ApiJson;
use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::user_json::{rfc3339, UserJson};
use crate::http::AppState;

fn space_json(s: &Space) -> Value {
    json!({
        "name": s.name, "display_name": s.display_name,
        "external_invitations": s.external_invitations, "group": s.group_path(),
        "created_at": rfc3339(Some(s.created_at)),
    })
}

pub fn invitation_json(i: &SpaceInvitation, now: time::OffsetDateTime) -> Value {
    json!({
        "id": i.id, "email": i.email, "state": i.shown_state(now),
        "invited_by": i.invited_by, "invited_at": rfc3339(Some(i.invited_at)),
        "expires_at": rfc3339(Some(i.expires_at)), "accepted_at": rfc3339(i.accepted_at),
    })
}

pub async fn list(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let spaces = state.usher.spaces_for(&auth.actor).await?;
    Ok(Json(
        json!({ "spaces": spaces.iter().map(space_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    display_name: String,
    #[serde(default)]
    external_invitations: bool,
}

pub async fn create(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let space = state
        .usher
        .create_space(
            &auth.actor,
            &body.name,
            &body.display_name,
            body.external_invitations,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(space_json(&space))).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (space, role) = state.usher.space_for(&auth.actor, &name).await?;
    let mut v = space_json(&space);
    v["your_role"] = json!(role);
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    display_name: Option<String>,
    external_invitations: Option<bool>,
}

pub async fn patch(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    let space = state
        .usher
        .update_space(
            &auth.actor,
            &name,
            body.display_name.as_deref(),
            body.external_invitations,
        )
        .await?;
    Ok(Json(space_json(&space)))
}

pub async fn members(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = state.usher.space_members(&auth.actor, &name).await?;
    let members: Vec<Value> = members
        .into_iter()
        .map(|(p, role)| {
            json!({
                "username": p.username, "first_name": p.first_name, "last_name": p.last_name,
                "type": p.kind, "role": role,
            })
        })
        .collect();
    Ok(Json(json!({ "members": members })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

pub async fn put_member(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path((name, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    state
        .usher
        .set_space_member(&auth.actor, &name, &username, &body.role)
        .await?;
    Ok(Json(json!({ "username": username, "role": body.role })))
}

pub async fn delete_member(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .usher
        .remove_space_member(&auth.actor, &name, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    email: String,
}

/// 202 with the invitation when a registration link was sent; 200 with the person when the
/// address belonged to someone, who is now a member.
pub async fn invite(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<Response, ApiError> {
    let now = state.usher.clock.now();
    Ok(
        match state
            .usher
            .invite_to_space(&auth.actor, &name, &body.email)
            .await?
        {
            SpaceInviteOutcome::Invited(i) => {
                (StatusCode::ACCEPTED, Json(invitation_json(&i, now))).into_response()
            }
            SpaceInviteOutcome::Added(p) => {
                (StatusCode::OK, Json(json!({ "added": UserJson::from(*p) }))).into_response()
            }
        },
    )
}

pub async fn invitations(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = state.usher.clock.now();
    let list = state.usher.space_invitations(&auth.actor, &name).await?;
    Ok(Json(
        json!({ "invitations": list.iter().map(|i| invitation_json(i, now)).collect::<Vec<_>>() }),
    ))
}

pub async fn resend(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let now = state.usher.clock.now();
    let i = state
        .usher
        .resend_space_invitation(&auth.actor, &name, id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(invitation_json(&i, now))).into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path((name, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    state
        .usher
        .revoke_space_invitation(&auth.actor, &name, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The admin API for people: `/admin/v1/users`.

use super::admin::{json_body, require_admin};
use super::error::ApiError;
use crate::audit::{client_actor, user_actor, AuditEntry};
use crate::users::SessionsEnded;
use crate::Authority;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use castellan_store::{SessionRecord, UserRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Routes, nested under `/admin/v1`.
pub fn router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{name}", get(show_user).delete(delete_user))
        .route("/users/{name}/password", post(set_password))
        .route("/users/{name}/suspend", post(suspend))
        .route("/users/{name}/resume", post(resume))
}

/// A person as the admin API shows them (never the password hash).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    /// Stable id, the `sub` of their tokens.
    pub user_id: String,
    /// Sign-in name.
    pub username: String,
    /// Suspended people cannot sign in or refresh.
    pub suspended: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Created.
    pub created_at: i64,
    /// Upstream issuer, for people linked to the federated provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_issuer: Option<String>,
    /// Upstream subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_subject: Option<String>,
    /// Live sessions (on `show` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionView>>,
}

/// A live session.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionView {
    /// Session id (`sid` of its tokens).
    pub sid: String,
    /// The app.
    pub client_id: String,
    /// The service its tokens are for.
    pub audience: String,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the person authenticated.
    pub auth_time: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// Absolute end.
    pub expires_at: i64,
}

impl UserView {
    fn of(u: &UserRecord, sessions: Option<&[SessionRecord]>) -> Self {
        Self {
            user_id: u.user_id.clone(),
            username: u.username.clone(),
            suspended: u.suspended,
            has_password: u.password_hash.is_some(),
            created_at: u.created_at,
            federated_issuer: u.federated_issuer.clone(),
            federated_subject: u.federated_subject.clone(),
            sessions: sessions.map(|s| {
                s.iter()
                    .map(|s| SessionView {
                        sid: s.sid.clone(),
                        client_id: s.client_id.clone(),
                        audience: s.audience.clone(),
                        scope: s.scope.clone(),
                        auth_time: s.auth_time,
                        last_used_at: s.last_used_at,
                        expires_at: s.expires_at,
                    })
                    .collect()
            }),
        }
    }
}

/// `POST /admin/v1/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Sign-in name.
    pub username: String,
    /// Initial password; absent for people who only sign in through federation.
    #[serde(default)]
    pub password: Option<String>,
    /// Links the person to this subject at the configured federation provider.
    #[serde(default)]
    pub federated_subject: Option<String>,
}

/// `POST /admin/v1/users/{name}/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password.
    pub password: String,
    /// End every session of the person (default true).
    #[serde(default = "yes")]
    pub end_sessions: bool,
}

fn yes() -> bool {
    true
}

async fn find(auth: &Authority, name: &str) -> Result<UserRecord, ApiError> {
    auth.find_user(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user `{}`", name.chars().take(64).collect::<String>())))
}

async fn list_users(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let users = auth
        .store()
        .list_users()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let views: Vec<UserView> = users.iter().map(|u| UserView::of(u, None)).collect();
    Ok(Json(serde_json::json!({ "users": views })).into_response())
}

async fn create_user(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: CreateUser = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let link = match &body.federated_subject {
        None => None,
        Some(sub) => {
            let fed = auth
                .federation()
                .ok_or_else(|| ApiError::invalid_request("no federation provider is configured"))?;
            if sub.is_empty() || sub.len() > 255 || sub.chars().any(char::is_control) {
                return Err(ApiError::invalid_request(
                    "federated_subject must be 1 to 255 printable characters",
                ));
            }
            Some((fed.issuer().to_owned(), sub.clone()))
        }
    };
    let user = auth.create_user(&body.username, body.password.as_deref(), link).await?;
    tracing::info!(user_id = %user.user_id, username = %user.username, by = %caller.client_id, "user created");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "user.create",
            user_actor(&user.user_id),
        )
        .detail(serde_json::json!({
            "username": user.username,
            "federated": user.federated_subject.is_some(),
        })),
    )
    .await;
    Ok((StatusCode::CREATED, Json(UserView::of(&user, None))).into_response())
}

async fn show_user(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let user = find(&auth, &name).await?;
    let sessions = auth
        .store()
        .list_sessions(&user.user_id, auth.now())
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    Ok(Json(UserView::of(&user, Some(&sessions))).into_response())
}

async fn delete_user(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let user = find(&auth, &name).await?;
    let ended = auth.delete_user(&user).await?;
    tracing::info!(user_id = %user.user_id, ended = ended.ended_sessions, by = %caller.client_id, "user deleted");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "user.delete",
            user_actor(&user.user_id),
        )
        .detail(serde_json::json!({ "username": user.username, "ended_sessions": ended.ended_sessions })),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_password(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let user = find(&auth, &name).await?;
    let body: SetPassword = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let ended: SessionsEnded = auth.set_user_password(&user, &body.password, body.end_sessions).await?;
    tracing::info!(user_id = %user.user_id, ended = ended.ended_sessions, by = %caller.client_id, "password changed");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "user.set_password",
            user_actor(&user.user_id),
        )
        .detail(serde_json::json!({ "username": user.username, "ended_sessions": ended.ended_sessions })),
    )
    .await;
    Ok(Json(ended).into_response())
}

async fn suspend(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let user = find(&auth, &name).await?;
    let ended = auth.suspend_user(&user).await?;
    tracing::warn!(user_id = %user.user_id, ended = ended.ended_sessions, by = %caller.client_id, "user suspended");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "user.suspend",
            user_actor(&user.user_id),
        )
        .detail(serde_json::json!({ "username": user.username, "ended_sessions": ended.ended_sessions })),
    )
    .await;
    Ok(Json(ended).into_response())
}

async fn resume(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let user = find(&auth, &name).await?;
    auth.resume_user(&user).await?;
    tracing::info!(user_id = %user.user_id, by = %caller.client_id, "user resumed");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "user.resume",
            user_actor(&user.user_id),
        )
        .detail(serde_json::json!({ "username": user.username })),
    )
    .await;
    let user = find(&auth, &name).await?;
    Ok(Json(UserView::of(&user, None)).into_response())
}

//! Sign-in through an upstream OpenID Connect provider.

use super::pages::error_page;
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

/// `POST /oauth2/federation/start`.
pub async fn start(State(_auth): State<Arc<Authority>>, _req: Request) -> Response {
    error_page(StatusCode::NOT_FOUND, "Federated sign-in is not configured.")
}

/// `GET /oauth2/federation/callback`.
pub async fn callback(State(_auth): State<Arc<Authority>>, _req: Request) -> Response {
    error_page(StatusCode::NOT_FOUND, "Federated sign-in is not configured.")
}

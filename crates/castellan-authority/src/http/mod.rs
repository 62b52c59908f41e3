//! The authority's HTTP surface.

pub mod admin;
pub mod admin_users;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod form;
pub mod oauth;
pub mod stream;

use crate::Authority;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Paths, relative to the issuer. Clients discover them; these are ours to move.
pub mod paths {
    /// OpenID discovery.
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    /// RFC 8414 discovery.
    pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// JWKS.
    pub const JWKS: &str = "/.well-known/jwks.json";
    /// Token endpoint.
    pub const TOKEN: &str = "/oauth2/token";
    /// RFC 7662 introspection.
    pub const INTROSPECT: &str = "/oauth2/introspect";
    /// RFC 7009 revocation.
    pub const REVOKE: &str = "/oauth2/revoke";
    /// Admin API root.
    pub const ADMIN: &str = "/admin/v1";
    /// Revocation log snapshot.
    pub const REVOCATIONS: &str = "/revocations";
    /// Live revocation stream (SSE).
    pub const REVOCATION_STREAM: &str = "/revocations/stream";
    /// Verifier heartbeats.
    pub const HEARTBEAT: &str = "/verifiers/heartbeat";
}

/// Every route.
pub fn router(auth: Arc<Authority>) -> Router {
    Router::new()
        .route(paths::OPENID_CONFIGURATION, get(discovery::metadata))
        .route(paths::OAUTH_METADATA, get(discovery::metadata))
        .route(paths::JWKS, get(discovery::jwks))
        .route(paths::TOKEN, post(oauth::token))
        .route(paths::INTROSPECT, post(oauth::introspect))
        .route(paths::REVOKE, post(oauth::revoke))
        .route(paths::REVOCATIONS, get(stream::snapshot))
        .route(paths::REVOCATION_STREAM, get(stream::stream))
        .route(paths::HEARTBEAT, post(stream::heartbeat))
        .nest(paths::ADMIN, admin::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .route("/metrics", get(discovery::metrics))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { error::ApiError::method_not_allowed() })
        .with_state(auth)
}

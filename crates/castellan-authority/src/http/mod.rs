//! The authority's HTTP surface.

pub mod admin;
pub mod admin_users;
pub mod audit;
pub mod authorize;
pub mod canaries;
pub mod client_auth;
pub mod console;
pub mod decisions;
pub mod discovery;
pub mod error;
pub mod exchange;
pub mod federation;
pub mod form;
pub mod grants;
pub mod oauth;
pub mod observe;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod policies;
pub mod report;
pub mod stream;
pub mod workload;

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
    /// Authorization endpoint (code flow with PKCE).
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    /// Where the login form posts.
    pub const LOGIN: &str = "/oauth2/login";
    /// OpenID Connect userinfo.
    pub const USERINFO: &str = "/oauth2/userinfo";
    /// RP-initiated logout.
    pub const END_SESSION: &str = "/oauth2/logout";
    /// Starts a sign-in at the upstream identity provider.
    pub const FEDERATION_START: &str = "/oauth2/federation/start";
    /// Where the upstream identity provider returns.
    pub const FEDERATION_CALLBACK: &str = "/oauth2/federation/callback";
    /// The internal CA's trust bundle, PEM.
    pub const TRUST_BUNDLE: &str = "/ca/bundle.pem";
    /// The trust bundle as SPIFFE bundle JSON.
    pub const SPIFFE_BUNDLE: &str = "/ca/bundle.json";
    /// SVID issuance for a join token.
    pub const SVID: &str = "/workload/v1/svid";
    /// SVID renewal, authenticated by the current SVID (mTLS listener only).
    pub const SVID_RENEW: &str = "/workload/v1/svid/renew";
    /// The admin console (server-rendered pages).
    pub const CONSOLE: &str = "/admin";
    /// The OpenAPI document.
    pub const OPENAPI: &str = "/openapi.json";
    /// Admin API root.
    pub const ADMIN: &str = "/admin/v1";
    /// Revocation log snapshot.
    pub const REVOCATIONS: &str = "/revocations";
    /// Live revocation stream (SSE).
    pub const REVOCATION_STREAM: &str = "/revocations/stream";
    /// Verifier heartbeats.
    pub const HEARTBEAT: &str = "/verifiers/heartbeat";
    /// A service's signed policy bundle (`{service}` replaced).
    pub const POLICY_BUNDLE: &str = "/policies/{service}/bundle";
    /// Where a service ships its decision log (`{service}` replaced).
    pub const DECISION_LOG: &str = "/policies/{service}/decisions";
}

/// Every route.
pub fn router(auth: Arc<Authority>) -> Router {
    Router::new()
        .route(paths::OPENID_CONFIGURATION, get(discovery::metadata))
        .route(paths::OAUTH_METADATA, get(discovery::metadata))
        .route(paths::JWKS, get(discovery::jwks))
        .route(paths::TOKEN, post(oauth::token))
        .route(paths::INTROSPECT, post(oauth::introspect))
        .route(paths::AUTHORIZE, get(authorize::authorize))
        .route(paths::LOGIN, post(authorize::login))
        .route(paths::USERINFO, get(oidc::userinfo).post(oidc::userinfo))
        .route(paths::END_SESSION, get(oidc::logout).post(oidc::logout))
        .route(paths::FEDERATION_START, post(federation::start))
        .route(paths::FEDERATION_CALLBACK, get(federation::callback))
        .route(paths::REVOKE, post(oauth::revoke))
        .route(paths::TRUST_BUNDLE, get(workload::bundle_pem))
        .route(paths::SPIFFE_BUNDLE, get(workload::bundle_json))
        .route(paths::SVID, post(workload::issue))
        .route(paths::SVID_RENEW, post(workload::renew))
        .route(paths::REVOCATIONS, get(stream::snapshot))
        .route(paths::REVOCATION_STREAM, get(stream::stream))
        .route(paths::HEARTBEAT, post(stream::heartbeat))
        .route(paths::POLICY_BUNDLE, get(policies::bundle))
        .route(paths::DECISION_LOG, post(decisions::ingest))
        .nest(
            paths::ADMIN,
            admin::router().route_layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                audit::record_refusals,
            )),
        )
        .nest(paths::CONSOLE, console::router())
        .route(paths::OPENAPI, get(openapi::document))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(discovery::readyz))
        .route("/metrics", get(discovery::metrics))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { error::ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(observe::measure))
        .with_state(auth)
}

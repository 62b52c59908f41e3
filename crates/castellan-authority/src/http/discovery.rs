//! Discovery (OpenID Connect Discovery and RFC 8414), JWKS and metrics.

use super::paths;
use crate::Authority;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use castellan_jose::Algorithm;
use serde_json::json;
use std::sync::Arc;

/// The metadata document, served at both well-known paths.
pub fn metadata_document(auth: &Authority) -> serde_json::Value {
    let iss = auth.issuer();
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    let mtls = auth.config().mtls_url();
    let mut auth_methods = vec!["client_secret_basic", "client_secret_post", "private_key_jwt"];
    if mtls.is_some() {
        auth_methods.push("tls_client_auth");
    }
    let mut token_auth_methods = auth_methods.clone();
    token_auth_methods.push("none");
    // Algorithms of the keys whose tokens are valid now (several after a change of `keys.algorithm`).
    let mut signing_algs: Vec<String> = Vec::new();
    for info in &auth.keys().current().infos {
        let trusted = !matches!(
            info.state,
            castellan_store::KeyState::Withdrawn | castellan_store::KeyState::Removed
        );
        if trusted && !signing_algs.contains(&info.alg) {
            signing_algs.push(info.alg.clone());
        }
    }
    let mut doc = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}{}", paths::TOKEN),
        "jwks_uri": format!("{iss}{}", paths::JWKS),
        "introspection_endpoint": format!("{iss}{}", paths::INTROSPECT),
        "revocation_endpoint": format!("{iss}{}", paths::REVOKE),
        "authorization_endpoint": format!("{iss}{}", paths::AUTHORIZE),
        "userinfo_endpoint": format!("{iss}{}", paths::USERINFO),
        "end_session_endpoint": format!("{iss}{}", paths::END_SESSION),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", crate::http::exchange::TOKEN_EXCHANGE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp", "preferred_username"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": token_auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": token_auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": [auth.config().keys.algorithm.as_str()],
        "access_token_signing_alg_values_supported": signing_algs,
        "scopes_supported": ["openid", "profile", "offline_access", crate::ADMIN_SCOPE],
        "castellan_admin_endpoint": format!("{iss}{}", paths::ADMIN),
        "castellan_trust_domain": auth.ca().trust_domain().as_str(),
        "castellan_trust_bundle_endpoint": format!("{iss}{}", paths::TRUST_BUNDLE),
        "castellan_spiffe_bundle_endpoint": format!("{iss}{}", paths::SPIFFE_BUNDLE),
        "castellan_svid_endpoint": format!("{iss}{}", paths::SVID),
        "castellan_policy_bundle_endpoint": format!("{iss}{}", paths::POLICY_BUNDLE),
        "castellan_decision_log_endpoint": format!("{iss}{}", paths::DECISION_LOG),
        "castellan_revocation_endpoint": format!("{iss}{}", paths::REVOCATIONS),
        "castellan_revocation_stream_endpoint": format!("{iss}{}", paths::REVOCATION_STREAM),
        "castellan_verifier_heartbeat_endpoint": format!("{iss}{}", paths::HEARTBEAT),
        "castellan_validation_profile": validation_profile(auth, &signing_algs),
        "castellan_authority_spiffe_id": crate::mtls::authority_spiffe_id(auth.ca().trust_domain()).ok().map(|id| id.to_string()),
    });
    if let (Some(m), Some(obj)) = (mtls, doc.as_object_mut()) {
        // RFC 8705 §5: where clients with certificates send their requests.
        obj.insert(
            "mtls_endpoint_aliases".to_owned(),
            json!({
                "token_endpoint": format!("{m}{}", paths::TOKEN),
                "introspection_endpoint": format!("{m}{}", paths::INTROSPECT),
                "revocation_endpoint": format!("{m}{}", paths::REVOKE),
                "castellan_svid_renewal_endpoint": format!("{m}{}", paths::SVID_RENEW),
            }),
        );
        obj.insert("tls_client_certificate_bound_access_tokens".to_owned(), json!(true));
    }
    doc
}

/// The validation settings every verifier applies; local config may only tighten them.
pub fn validation_profile(auth: &Authority, signing_algs: &[String]) -> serde_json::Value {
    let c = auth.config();
    json!({
        "allowed_algorithms": signing_algs,
        "token_type": castellan_core::claims::ACCESS_TOKEN_TYP,
        "required_claims": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"],
        "max_leeway_seconds": c.tokens.leeway.secs(),
        "max_delegation_depth": c.tokens.max_delegation_depth,
        "max_token_lifetime_seconds": c.tokens.max_access_token_ttl.secs(),
        "staleness_window_seconds": c.revocation.staleness_window.secs(),
        "heartbeat_interval_seconds": c.revocation.heartbeat_interval.secs(),
    })
}

fn json_response(body: Vec<u8>, cache: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn metadata(State(auth): State<Arc<Authority>>) -> Response {
    let body = serde_json::to_vec(&metadata_document(&auth)).unwrap_or_default();
    json_response(body, "public, max-age=300")
}

/// `GET /.well-known/jwks.json`: next, active and retired keys. `max-age` is
/// the configured JWKS max-age, and the schedule publishes every next key at
/// least twice that long before it signs.
pub async fn jwks(State(auth): State<Arc<Authority>>) -> Response {
    let set = auth.keys().current();
    let max_age = auth.config().keys.jwks_max_age.secs();
    json_response(set.jwks_json.clone(), &format!("public, max-age={max_age}"))
}

/// `GET /metrics`: Prometheus text: the recorder's counters and histograms,
/// then the gauges computed now (see [`crate::gauges`]).
pub async fn metrics(State(auth): State<Arc<Authority>>) -> Response {
    let mut text = auth.render_metrics();
    text.push_str(&crate::gauges::render(&auth).await);
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// `GET /readyz`: 200 `ready` while the store answers within two seconds,
/// else 503 (a load balancer takes the node out; it issues nothing it could
/// not record meanwhile).
pub async fn readyz(State(auth): State<Arc<Authority>>) -> Response {
    let probe = tokio::time::timeout(std::time::Duration::from_secs(2), auth.store().ping()).await;
    match probe {
        Ok(Ok(_)) => {
            metrics::gauge!("castellan_store_up").set(1.0);
            (StatusCode::OK, "ready").into_response()
        }
        Ok(Err(e)) => {
            metrics::gauge!("castellan_store_up").set(0.0);
            tracing::warn!(error = %e, "not ready: the store fails");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the store is unavailable").into_response()
        }
        Err(_) => {
            metrics::gauge!("castellan_store_up").set(0.0);
            tracing::warn!("not ready: the store did not answer within 2s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store did not answer within 2s",
            )
                .into_response()
        }
    }
}

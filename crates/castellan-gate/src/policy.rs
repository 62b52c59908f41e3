//! Route policies at the gate (`--policy-service`): the service's Cedar
//! bundle is kept current by `castellan_authz::sync` (fetched, verified,
//! installed on every `policy` event and by polling, kept while the
//! authority is away); every request is decided before it is forwarded,
//! and every decision goes to the decision log when one is attached.

use axum::response::{IntoResponse, Response};
use castellan_authz::{gate_request, Authorizer, Decision};
use castellan_verify::VerifiedToken;

/// Decides `method path` for the token (and mTLS peer); `Some(response)`
/// (403) when denied. `request_id` goes on the log lines.
pub fn check(
    authz: &Authorizer,
    token: &VerifiedToken,
    peer: Option<&str>,
    method: &str,
    path: &str,
    request_id: &str,
) -> Option<Response> {
    let decision = match gate_request(token, peer, method, path) {
        Ok((request, entities)) => authz.decide(&request, &entities),
        Err(castellan_authz::AuthzError::AmbiguousPath { why, .. }) => {
            // `/a/../admin`, `//`, `%2F` and the like: refused rather than
            // decided for a path the upstream may read differently.
            metrics::counter!("castellan_gate_decisions_total", "decision" => "deny", "reason" => "ambiguous_path")
                .increment(1);
            let body = serde_json::json!({
                "error": "invalid_request",
                "error_description": format!("path not in normal form: {why}"),
            });
            return Some((http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
        }
        Err(e) => {
            tracing::warn!(request_id, error = %e, "authorization request cannot be built; denying");
            return Some(denied("the request cannot be evaluated".to_owned()));
        }
    };
    match &decision {
        Decision::Allow {
            determining, version, ..
        } => {
            metrics::counter!("castellan_gate_decisions_total", "decision" => "allow").increment(1);
            tracing::debug!(request_id, sub = %token.sub, method, path, policies = ?determining, version, "allowed by policy");
            None
        }
        Decision::Deny {
            reason,
            determining,
            errors,
            version,
        } => {
            metrics::counter!("castellan_gate_decisions_total", "decision" => "deny", "reason" => reason.label())
                .increment(1);
            tracing::info!(request_id, sub = %token.sub, method, path, reason = reason.label(), policies = ?determining, errors = errors.len(), version, "denied by policy");
            let why = if determining.is_empty() {
                format!("denied by policy ({})", reason.label())
            } else {
                format!("denied by policy ({}: {})", reason.label(), determining.join(", "))
            };
            Some(denied(why))
        }
    }
}

fn denied(description: String) -> Response {
    let body = serde_json::json!({ "error": "access_denied", "error_description": description });
    (http::StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

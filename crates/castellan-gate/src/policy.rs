//! Route policies at the gate (`--policy-service`): the service's Cedar
//! bundle, fetched from the authority, verified against its JWKS, installed
//! on every `policy` event of the stream and by polling as a fallback, kept
//! in memory while the authority is away; every request is decided before
//! it is forwarded.

use axum::response::{IntoResponse, Response};
use castellan_authz::{gate_request, Authorizer, Decision, Installed};
use castellan_verify::{VerifiedToken, Verifier};
use std::sync::Arc;
use std::time::Duration;

/// How often the bundle is fetched when no event came.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Fetches, verifies and installs the bundle in force. `Ok(Some(v))` when
/// a new version was installed.
async fn refresh(verifier: &Verifier, authz: &Authorizer) -> Result<Option<u64>, String> {
    let service = authz.service();
    let url = verifier
        .policy_bundle_url(service)
        .ok_or_else(|| "the authority does not distribute policies".to_owned())?;
    let resp = verifier
        .http_client()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(format!("no policies for `{service}` on the authority yet")),
        s => return Err(format!("{url}: HTTP {s}")),
    }
    let jws = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
    match authz.install_signed(&jws, verifier.issuer(), |kid| verifier.verifying_key(kid)) {
        Ok(Installed::Swapped { version, .. }) => Ok(Some(version)),
        Ok(Installed::Unchanged { .. }) | Err(castellan_authz::AuthzError::Stale { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Keeps the bundle current until aborted: at once, on every `policy`
/// event for this service, and every [`POLL_INTERVAL`].
pub async fn keep_current(verifier: Arc<Verifier>, authz: Arc<Authorizer>) {
    let mut notices = verifier.policy_notices();
    loop {
        match refresh(&verifier, &authz).await {
            Ok(Some(v)) => {
                #[expect(clippy::cast_precision_loss, reason = "a version number as a gauge")]
                metrics::gauge!("castellan_gate_policy_version").set(v as f64);
                tracing::info!(service = authz.service(), version = v, "policy bundle installed");
            }
            Ok(None) => {}
            Err(e) => {
                metrics::counter!("castellan_gate_policy_refresh_failures_total").increment(1);
                tracing::warn!(service = authz.service(), error = %e, version_in_force = ?authz.version(), "policy bundle not refreshed");
            }
        }
        let deadline = tokio::time::sleep(POLL_INTERVAL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                n = notices.recv() => match n {
                    Ok(n) if n.service == authz.service()
                        && u64::try_from(n.version).ok() != authz.version() => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        notices = verifier.policy_notices();
                    }
                },
            }
        }
    }
}

/// Decides `method path` for the token (and mTLS peer); `Some(response)`
/// (403) when denied.
pub fn check(
    authz: &Authorizer,
    token: &VerifiedToken,
    peer: Option<&str>,
    method: &str,
    path: &str,
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
            tracing::warn!(error = %e, "authorization request cannot be built; denying");
            return Some(denied("the request cannot be evaluated".to_owned()));
        }
    };
    match &decision {
        Decision::Allow {
            determining, version, ..
        } => {
            metrics::counter!("castellan_gate_decisions_total", "decision" => "allow").increment(1);
            tracing::debug!(sub = %token.sub, method, path, policies = ?determining, version, "allowed by policy");
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
            tracing::info!(sub = %token.sub, method, path, reason = reason.label(), policies = ?determining, errors = errors.len(), version, "denied by policy");
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

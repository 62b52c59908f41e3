//! Keeps an [`Authorizer`] on the service's newest bundle: fetched from the
//! authority, verified against its JWKS (through the `Verifier`), installed
//! at once, on every `policy` event of the authority's stream, and by
//! polling as a fallback. While the authority is away the bundle in force
//! stays, so decisions continue. The gate and services share this code.

use crate::authorizer::{Authorizer, Installed};
use crate::error::AuthzError;
use castellan_verify::Verifier;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the bundle is fetched when no event came.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// What one refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// A newer version was verified and is now in force.
    Installed(u64),
    /// The version in force is still the newest.
    Current,
}

/// Fetches, verifies and installs the bundle in force at the authority.
///
/// # Errors
/// A description of what failed (no policy endpoint, no policies for the
/// service yet, HTTP or verification failure); the bundle in force stays.
pub async fn refresh(verifier: &Verifier, authz: &Authorizer) -> Result<Refreshed, String> {
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
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(format!("no policies for `{service}` on the authority yet")),
        s => return Err(format!("{url}: HTTP {s}")),
    }
    let jws = resp.text().await.map_err(|e| format!("{url}: {}", e.without_url()))?;
    match authz.install_signed(&jws, verifier.issuer(), |kid| verifier.verifying_key(kid)) {
        Ok(Installed::Swapped { version, .. }) => Ok(Refreshed::Installed(version)),
        Ok(Installed::Unchanged { .. }) | Err(AuthzError::Stale { .. }) => Ok(Refreshed::Current),
        Err(e) => Err(e.to_string()),
    }
}

/// How [`keep_current`] runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Poll this often when no event came.
    pub poll_interval: Duration,
    /// Save every installed bundle here ([`Authorizer::save_last_good`]),
    /// and load it at start before the first fetch, so a restart while the
    /// authority is away still decides with the last good policies.
    pub last_good: Option<PathBuf>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            poll_interval: POLL_INTERVAL,
            last_good: None,
        }
    }
}

/// Keeps `authz` current until the task is dropped: at once, on every
/// `policy` event for its service, and every poll interval. Logs each
/// install and failure (`tracing`) and keeps the metrics
/// `castellan_policy_version{service}` and
/// `castellan_policy_refresh_failures_total{service}`.
pub async fn keep_current(verifier: Arc<Verifier>, authz: Arc<Authorizer>, options: SyncOptions) {
    let service = authz.service().to_owned();
    let mut notices = verifier.policy_notices();
    if let Some(path) = &options.last_good {
        match authz.load_last_good(path, verifier.issuer(), |kid| verifier.verifying_key(kid)) {
            Ok(i) => {
                tracing::info!(service, version = i.version(), path = %path.display(), "last good policy bundle loaded")
            }
            Err(AuthzError::Io { .. }) => {}
            Err(e) => tracing::warn!(service, error = %e, path = %path.display(), "last good policy bundle refused"),
        }
    }
    loop {
        match refresh(&verifier, &authz).await {
            Ok(Refreshed::Installed(v)) => {
                #[expect(clippy::cast_precision_loss, reason = "a version number as a gauge")]
                metrics::gauge!("castellan_policy_version", "service" => service.clone()).set(v as f64);
                tracing::info!(service, version = v, "policy bundle installed");
                if let Some(path) = &options.last_good {
                    if let Err(e) = authz.save_last_good(path) {
                        tracing::warn!(service, error = %e, "last good policy bundle not saved");
                    }
                }
            }
            Ok(Refreshed::Current) => {}
            Err(e) => {
                metrics::counter!("castellan_policy_refresh_failures_total", "service" => service.clone()).increment(1);
                tracing::warn!(service, error = %e, version_in_force = ?authz.version(), "policy bundle not refreshed");
            }
        }
        let deadline = tokio::time::sleep(options.poll_interval);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                n = notices.recv() => match n {
                    Ok(n) if n.service == service
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

//! The authority's mTLS listener for workloads: SVID renewal authenticated
//! by the current SVID, and RFC 8705 `tls_client_auth` at the token,
//! introspection and revocation endpoints (advertised as
//! `mtls_endpoint_aliases`). The authority presents its own SVID,
//! `spiffe://<trust domain>/castellan/authority`, issued in-process by its
//! CA, renewed at half-life and at every change of the trust bundle;
//! client certificates must chain to the bundle in force.

use crate::Authority;
use castellan_ca::{generate_workload_key, CaError, SpiffeId, TrustDomain};
use castellan_workload::{CurrentMaterial, ListenerMetrics, SvidCell, SvidError, SvidMaterial};
use rustls::crypto::CryptoProvider;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// SPIFFE IDs under `spiffe://<td>/castellan/` belong to the authority: no
/// workload or client may be registered there.
pub const RESERVED_PREFIX: &str = "castellan";

/// The path of the authority's own SPIFFE ID.
pub const AUTHORITY_PATH: &str = "/castellan/authority";

const METRICS: ListenerMetrics = ListenerMetrics {
    handshakes_total: "castellan_mtls_handshakes_total",
    handshake_seconds: "castellan_mtls_handshake_seconds",
};

/// Why the mTLS listener cannot present an SVID.
#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    /// Issuing the authority's own SVID failed.
    #[error("cannot issue the authority's own svid: {0}")]
    Issue(#[from] CaError),
    /// The issued SVID is not usable by rustls.
    #[error("the authority's own svid is unusable: {0}")]
    Material(#[from] SvidError),
}

/// `spiffe://<td>/castellan/authority`.
///
/// # Errors
/// Only if `td` with the constant path were too long for a SPIFFE ID.
pub fn authority_spiffe_id(td: &TrustDomain) -> Result<SpiffeId, CaError> {
    td.workload_id(AUTHORITY_PATH)
}

/// Whether `id` lies under the authority's reserved path.
pub fn is_reserved(id: &SpiffeId) -> bool {
    let path = id.path().trim_start_matches('/');
    path == RESERVED_PREFIX || path.starts_with(&format!("{RESERVED_PREFIX}/"))
}

/// What the trust bundle is made of: the signing CA and every published one.
/// (The bundle's `spiffe_sequence` has a one-second resolution; this
/// changes with any change.)
fn bundle_identity(set: &crate::ca::CaSet) -> Vec<String> {
    std::iter::once(set.active.id().to_owned())
        .chain(set.published.iter().map(|c| c.id().to_owned()))
        .collect()
}

/// The authority's own SVID now, with when to renew it and the bundle it
/// was built against.
fn own_svid(auth: &Authority, provider: &Arc<CryptoProvider>) -> Result<(SvidMaterial, i64, Vec<String>), MtlsError> {
    let id = authority_spiffe_id(auth.ca().trust_domain())?;
    let key = generate_workload_key(&id)?;
    let set = auth.ca().current();
    let ttl = auth.config().ca.svid_ttl.secs();
    let svid = set
        .active
        .issue_svid(key.csr_der(), &id, u64::try_from(ttl).unwrap_or(3_600), auth.now())?;
    let bundle = set.published.iter().map(|c| c.der().clone()).collect();
    let material = SvidMaterial::from_parts(svid.chain.clone(), key.key_pem().as_bytes(), bundle, provider)?;
    Ok((material, svid.renew_at(), bundle_identity(&set)))
}

/// Renews the authority's SVID at half-life and whenever the bundle changes
/// (a CA rotation), checking every second.
async fn keep_fresh(auth: Arc<Authority>, cell: Arc<SvidCell>, mut renew_at: i64, mut bundle: Vec<String>) {
    let mut failures = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if auth.now() < renew_at && bundle_identity(&auth.ca().current()) == bundle {
            continue;
        }
        match own_svid(&auth, cell.provider()) {
            Ok((material, at, cas)) => {
                failures = 0;
                cell.replace(material);
                renew_at = at;
                tracing::debug!(renew_at, cas = ?cas, "authority svid renewed");
                bundle = cas;
            }
            Err(e) => {
                // Retried every second; logged at the first failure and once a minute.
                if failures.checked_rem(60) == Some(0) {
                    tracing::error!(error = %e, failures, "authority svid renewal failed; will retry");
                }
                failures += 1;
                metrics::counter!("castellan_mtls_svid_renewal_failures_total").increment(1);
            }
        }
    }
}

/// Serves the whole router over mTLS on `listener` until `stop`.
///
/// # Errors
/// When the authority's own SVID cannot be issued.
pub async fn serve_mtls<F>(auth: Arc<Authority>, listener: TcpListener, stop: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (material, renew_at, bundle) = own_svid(&auth, &provider).map_err(std::io::Error::other)?;
    let cell = SvidCell::new(material, provider);
    let current: Arc<dyn CurrentMaterial> = cell.clone();
    let config = castellan_workload::server_config(&current).map_err(std::io::Error::other)?;
    let refresher = tokio::spawn(keep_fresh(auth.clone(), cell, renew_at, bundle));
    let app = crate::http::router(auth).layer(tower_http::trace::TraceLayer::new_for_http());
    tracing::info!(addr = ?listener.local_addr().ok(), "mtls listener for workloads ready");
    let result = castellan_workload::serve(listener, Arc::new(config), app, stop, METRICS).await;
    refresher.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_path_is_reserved() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(
            authority_spiffe_id(&td).unwrap().as_str(),
            "spiffe://example.org/castellan/authority"
        );
        for reserved in ["spiffe://example.org/castellan", "spiffe://example.org/castellan/x/y"] {
            assert!(is_reserved(&SpiffeId::parse(reserved).unwrap()), "{reserved}");
        }
        for free in ["spiffe://example.org/castellanx", "spiffe://example.org/a/castellan"] {
            assert!(!is_reserved(&SpiffeId::parse(free).unwrap()), "{free}");
        }
    }
}

//! `castellan gate`: the one verifier in front of any service, in any
//! language. As a reverse proxy it admits requests with a valid token and
//! forwards them with identity headers; in forward-auth mode it answers
//! nginx `auth_request`, Traefik ForwardAuth and Envoy `ext_authz` (HTTP)
//! with 200 and the identity headers, or 401.
#![forbid(unsafe_code)]

mod headers;
mod proxy;

pub use headers::{IDENTITY_HEADERS, IDENTITY_PREFIX};

use arc_swap::ArcSwapOption;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use castellan_verify::{rejection_response, verify_request, FailMode, Rejection, Verifier};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the gate runs.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The service behind the gate; `None` in forward-auth mode.
    pub upstream: Option<String>,
    /// The authority's URL.
    pub authority: String,
    /// The audience tokens must carry.
    pub audience: String,
    /// Local leeway (may only tighten the authority's).
    pub leeway: Option<Duration>,
    /// Local staleness window (may only tighten the authority's).
    pub staleness_window: Option<Duration>,
    /// Keep admitting tokens past the staleness window.
    pub fail_open: bool,
}

/// Why the gate could not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Bad settings.
    #[error("{0}")]
    Config(String),
    /// Listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Paths the gate keeps for itself; everything else is the service's.
pub mod paths {
    /// Liveness.
    pub const HEALTH: &str = "/.castellan/health";
    /// Readiness: keys held and revocation state fresh.
    pub const READY: &str = "/.castellan/ready";
    /// Prometheus metrics.
    pub const METRICS: &str = "/.castellan/metrics";
}

struct Gate {
    verifier: ArcSwapOption<Verifier>,
    upstream: Option<proxy::Upstream>,
    client: Client<HttpConnector, Body>,
    metrics: PrometheusHandle,
}

fn prometheus() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
}

/// Binds `config.listen` and returns the bound address and the serving future.
pub async fn bind(
    config: GateConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<(), GateError>>), GateError> {
    let upstream = match &config.upstream {
        Some(u) => Some(proxy::Upstream::parse(u).map_err(GateError::Config)?),
        None => None,
    };
    if config.audience.is_empty() {
        return Err(GateError::Config("--audience must not be empty".to_owned()));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GateError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(GateError::Serve)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let gate = Arc::new(Gate {
        verifier: ArcSwapOption::empty(),
        upstream,
        client,
        metrics: prometheus(),
    });
    let connecting = tokio::spawn(connect_verifier(gate.clone(), config.clone()));
    let app = Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(
            paths::METRICS,
            get(|State(g): State<Arc<Gate>>| async move { g.metrics.render() }),
        )
        .fallback(handle)
        .with_state(gate);
    let serve = async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(GateError::Serve);
        connecting.abort();
        result
    };
    Ok((addr, serve))
}

/// Connects the verifier, retrying with backoff until the authority answers.
async fn connect_verifier(gate: Arc<Gate>, config: GateConfig) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut b = Verifier::builder(&config.authority, &config.audience)
            .kind("gate")
            .fail_mode(if config.fail_open {
                FailMode::Open
            } else {
                FailMode::Closed
            });
        if let Some(l) = config.leeway {
            b = b.leeway(l);
        }
        if let Some(w) = config.staleness_window {
            b = b.staleness_window(w);
        }
        match b.connect().await {
            Ok(v) => {
                tracing::info!(authority = %config.authority, audience = %config.audience, "verifier connected");
                gate.verifier.store(Some(Arc::new(v)));
                return;
            }
            Err(castellan_verify::BuildError::Profile(e)) => {
                // Settings that loosen the authority's profile never become valid by retrying.
                tracing::error!(error = %e, "refusing to verify with settings looser than the authority's");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "authority not reachable yet; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn ready(State(gate): State<Arc<Gate>>) -> Response {
    match gate.verifier.load_full() {
        Some(v) if v.is_ready() => (http::StatusCode::OK, axum::Json(v.status())).into_response(),
        Some(v) => (http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(v.status())).into_response(),
        None => (http::StatusCode::SERVICE_UNAVAILABLE, "verifier not connected").into_response(),
    }
}

async fn handle(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let Some(verifier) = gate.verifier.load_full() else {
        metrics::counter!("castellan_gate_requests_total", "outcome" => "not_ready").increment(1);
        return rejection_response(&Rejection::NotReady);
    };
    let token = match verify_request(&verifier, req.headers()).await {
        Ok(t) => t,
        Err(r) => {
            metrics::counter!("castellan_gate_requests_total", "outcome" => r.label()).increment(1);
            return rejection_response(&r);
        }
    };
    let identity = match headers::identity(&token) {
        Ok(h) => h,
        Err(r) => return rejection_response(&r),
    };
    metrics::counter!("castellan_gate_requests_total", "outcome" => "admitted").increment(1);
    match &gate.upstream {
        None => {
            let mut resp = http::StatusCode::OK.into_response();
            resp.headers_mut().extend(identity);
            resp
        }
        Some(upstream) => proxy::forward(&gate.client, upstream, req, identity).await,
    }
}

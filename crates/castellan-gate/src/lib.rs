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
use axum::extract::{ConnectInfo, Request, State};
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
    /// Longest delegation chain admitted (may only tighten the authority's).
    pub max_delegation_depth: Option<usize>,
    /// Admit only exchanged tokens (with `act`).
    pub require_delegation: bool,
    /// Keep admitting tokens past the staleness window.
    pub fail_open: bool,
    /// A separate listener for health, readiness and metrics. In forward-auth
    /// mode these are served only there: on the main port every request,
    /// whatever its path, is an authorization question.
    pub health_listen: Option<SocketAddr>,
    /// Extra PEM CA certificate to trust for an `https://` authority.
    pub authority_ca_pem: Option<Vec<u8>>,
}

/// A bound gate, not yet serving.
pub struct Bound<F> {
    /// The main listener's address.
    pub addr: SocketAddr,
    /// The health listener's address, when there is one.
    pub health_addr: Option<SocketAddr>,
    /// Serves until shutdown, or fails when the verifier can never start.
    pub serve: F,
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

/// Binds the listeners and returns their addresses and the serving future.
pub async fn bind(
    config: GateConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Bound<impl Future<Output = Result<(), GateError>>>, GateError> {
    let upstream = match &config.upstream {
        Some(u) => Some(proxy::Upstream::parse(u).map_err(GateError::Config)?),
        None => None,
    };
    if config.audience.is_empty() {
        return Err(GateError::Config("--audience must not be empty".to_owned()));
    }
    let listen = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| GateError::Listen { addr, source })
    };
    let listener = listen(config.listen).await?;
    let addr = listener.local_addr().map_err(GateError::Serve)?;
    let health_listener = match config.health_listen {
        Some(a) => Some(listen(a).await?),
        None => None,
    };
    let health_addr = health_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()
        .map_err(GateError::Serve)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let proxy_mode = upstream.is_some();
    let gate = Arc::new(Gate {
        verifier: ArcSwapOption::empty(),
        upstream,
        client,
        metrics: prometheus(),
    });
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<String>();
    let connecting = tokio::spawn(connect_verifier(gate.clone(), config.clone(), fatal_tx));
    let own = Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(
            paths::METRICS,
            get(|State(g): State<Arc<Gate>>| async move { g.metrics.render() }),
        );
    let mut main = Router::new();
    if proxy_mode {
        main = main.merge(own.clone());
    }
    let main = main.fallback(handle).with_state(gate.clone());
    let health = own.with_state(gate);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let stop_main = stop_tx.subscribe();
    let stop_health = stop_tx.subscribe();
    let serve = async move {
        let until = |mut rx: tokio::sync::broadcast::Receiver<()>| async move {
            let _ = rx.recv().await;
        };
        // No Nagle delay on small proxied answers.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let main_server = axum::serve(listener, main.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(until(stop_main));
        let health_server = async move {
            match health_listener {
                Some(l) => axum::serve(l, health).with_graceful_shutdown(until(stop_health)).await,
                None => Ok(()),
            }
        };
        let both = async { tokio::try_join!(main_server, health_server).map(|_| ()) };
        // Shutdown asks both servers to stop accepting and waits for in-flight requests.
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(());
        });
        let result = tokio::select! {
            r = both => r.map_err(GateError::Serve),
            Ok(msg) = fatal_rx => Err(GateError::Config(msg)),
        };
        connecting.abort();
        result
    };
    Ok(Bound {
        addr,
        health_addr,
        serve,
    })
}

/// Connects the verifier, retrying with backoff until the authority answers.
async fn connect_verifier(gate: Arc<Gate>, config: GateConfig, fatal: tokio::sync::oneshot::Sender<String>) {
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
        if let Some(n) = config.max_delegation_depth {
            b = b.max_delegation_depth(n);
        }
        if config.require_delegation {
            b = b.require_delegation();
        }
        if let Some(pem) = &config.authority_ca_pem {
            b = b.root_certificate_pem(pem.clone());
        }
        match b.connect().await {
            Ok(v) => {
                tracing::info!(authority = %config.authority, audience = %config.audience, "verifier connected");
                gate.verifier.store(Some(Arc::new(v)));
                return;
            }
            Err(e @ (castellan_verify::BuildError::Profile(_) | castellan_verify::BuildError::Config(_))) => {
                // Settings the authority's profile rules out never become valid by retrying.
                tracing::error!(error = %e, "refusing to start the verifier");
                let _ = fatal.send(e.to_string());
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

async fn handle(State(gate): State<Arc<Gate>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
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
        Some(upstream) => proxy::forward(&gate.client, upstream, req, identity, peer).await,
    }
}

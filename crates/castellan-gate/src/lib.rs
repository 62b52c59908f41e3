//! `castellan gate`: the one verifier in front of any service, in any
//! language. As a reverse proxy it admits requests with a valid token and
//! forwards them with identity headers; in forward-auth mode it answers
//! nginx `auth_request`, Traefik ForwardAuth and Envoy `ext_authz` (HTTP)
//! with 200 and the identity headers, or 401.
//!
//! With [`MtlsConfig`] the gate terminates mTLS with its own SPIFFE SVID,
//! requires client SVIDs chaining to the trust bundle, identifies the peer
//! as a typed step after the handshake ([`PeerIdentity`] in the request
//! extensions), admits only allow-listed peers (403 otherwise), passes the
//! peer's ID upstream as `x-castellan-peer-spiffe-id`, and still requires a
//! valid bearer token. See [`mtls`].
#![forbid(unsafe_code)]

mod headers;
pub mod mtls;
mod policy;
mod proxy;

pub use castellan_ca::SpiffeId;
pub use headers::{IDENTITY_HEADERS, IDENTITY_PREFIX};
pub use mtls::{MtlsConfig, PeerIdentity, PEER_HEADER};

use arc_swap::ArcSwapOption;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use castellan_core::observe;
use castellan_verify::{
    rejection_response, verify_request_presented, FailMode, PresentedCertificate, Rejection, Verifier,
};
use http::{HeaderName, HeaderValue};
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The request-id header, forwarded upstream and returned to the caller.
const X_REQUEST_ID: HeaderName = HeaderName::from_static(observe::HEADER);

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
    /// Terminate mTLS with a SPIFFE SVID and admit only allow-listed peers.
    pub mtls: Option<MtlsConfig>,
    /// Decide every request with this service's Cedar policies (from the
    /// authority) before forwarding it.
    pub policy_service: Option<String>,
    /// With `policy_service`: the client the gate ships its decision log
    /// as (it needs the scope `castellan.decisions:<service>`). `None`
    /// keeps decisions in the gate's own log lines only.
    pub decision_log: Option<ClientCredentials>,
}

pub use castellan_authz::ClientCredentials;

/// A bound gate, not yet serving.
pub struct Bound<F> {
    /// The main listener's address.
    pub addr: SocketAddr,
    /// The health listener's address, when there is one.
    pub health_addr: Option<SocketAddr>,
    /// The main listener speaks mTLS (`https://`).
    pub tls: bool,
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
    /// The SVID directory cannot be used.
    #[error(transparent)]
    Svid(#[from] mtls::SvidError),
    /// TLS settings cannot be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
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
    /// Route policies, with `--policy-service`.
    authz: Option<Arc<castellan_authz::Authorizer>>,
    /// Ships the decision log, once the authority said where.
    shipper: std::sync::OnceLock<castellan_authz::DecisionShipper>,
    /// Policy sync and shipping, stopped at shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    upstream: Option<proxy::Upstream>,
    client: proxy::UpstreamClient,
    metrics: PrometheusHandle,
    /// The admitted path's metric handles, registered once: the macros
    /// build and hash a labelled key on every call.
    hot: HotMetrics,
    /// `https` behind the mTLS listener, else `http`.
    proto: &'static str,
}

struct HotMetrics {
    admitted: metrics::Counter,
    admitted_seconds: metrics::Histogram,
    upstream_seconds: metrics::Histogram,
}

impl HotMetrics {
    fn register() -> Self {
        Self {
            admitted: metrics::counter!("castellan_gate_requests_total", "outcome" => "admitted"),
            admitted_seconds: metrics::histogram!("castellan_gate_request_duration_seconds", "outcome" => "admitted"),
            upstream_seconds: metrics::histogram!("castellan_gate_upstream_duration_seconds"),
        }
    }
}

/// The mTLS side of a bound gate.
struct Mtls {
    source: Arc<mtls::SvidSource>,
    server: Arc<rustls::ServerConfig>,
    allow: Arc<mtls::AllowList>,
    reload_interval: Duration,
}

/// Reads the SVID directory and builds the TLS settings, failing fast.
fn prepare_mtls(config: &MtlsConfig, proxy_mode: bool) -> Result<(Mtls, proxy::UpstreamClient), GateError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let source = mtls::SvidSource::load(&config.svid_dir, provider)?;
    let trust_domain = source.trust_domain().clone();
    let allow = mtls::AllowList::new(trust_domain.clone(), &config.allow_peers)
        .map_err(|e| GateError::Config(e.to_string()))?;
    let client = match &config.upstream_spiffe_id {
        Some(_) if !proxy_mode => {
            return Err(GateError::Config(
                "--upstream-spiffe-id needs --upstream (not --forward-auth)".to_owned(),
            ))
        }
        Some(id) if !id.is_member_of(&trust_domain) => {
            return Err(GateError::Config(format!(
                "--upstream-spiffe-id `{id}` is outside the gate's trust domain `{trust_domain}`"
            )))
        }
        Some(id) => proxy::UpstreamClient::mtls(mtls::client_config(source.clone(), id.clone())?),
        None => proxy::UpstreamClient::plain(),
    };
    let material: Arc<dyn castellan_workload::CurrentMaterial> = source.clone();
    let server = Arc::new(mtls::server_config(&material)?);
    tracing::info!(
        spiffe_id = %source.id(),
        allow_peers = config.allow_peers.len(),
        upstream_spiffe_id = config.upstream_spiffe_id.as_ref().map(SpiffeId::as_str),
        "mtls enabled"
    );
    Ok((
        Mtls {
            source,
            server,
            allow: Arc::new(allow),
            reload_interval: config.reload_interval,
        },
        client,
    ))
}

/// The process's recorder; the gate records two histogram samples per
/// admitted request, so they are drained every second.
fn prometheus() -> PrometheusHandle {
    castellan_core::observe::install_prometheus(std::time::Duration::from_secs(1))
}

/// `GET /.castellan/metrics`: the verifier's gauges as of now, then everything.
async fn metrics_text(State(gate): State<Arc<Gate>>) -> String {
    if let Some(v) = gate.verifier.load_full() {
        v.publish_metrics();
    }
    gate.metrics.render()
}

/// Binds the listeners and returns their addresses and the serving future.
pub async fn bind(
    config: GateConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Bound<impl Future<Output = Result<(), GateError>>>, GateError> {
    let upstream_mtls = config.mtls.as_ref().is_some_and(|m| m.upstream_spiffe_id.is_some());
    let upstream = match &config.upstream {
        Some(u) => Some(proxy::Upstream::parse(u, upstream_mtls).map_err(GateError::Config)?),
        None => None,
    };
    if config.audience.is_empty() {
        return Err(GateError::Config("--audience must not be empty".to_owned()));
    }
    let (mtls, client) = match &config.mtls {
        Some(m) => {
            let (mtls, client) = prepare_mtls(m, upstream.is_some())?;
            (Some(mtls), client)
        }
        None => (None, proxy::UpstreamClient::plain()),
    };
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
    let proxy_mode = upstream.is_some();
    let tls = mtls.is_some();
    if config.decision_log.is_some() && config.policy_service.is_none() {
        return Err(GateError::Config(
            "a decision log needs a policy service: there are no decisions without policies".to_owned(),
        ));
    }
    let decision_log = config.decision_log.as_ref().map(|_| {
        Arc::new(castellan_authz::DecisionLog::new(
            castellan_authz::decision_log::DEFAULT_CAPACITY,
            Arc::new(castellan_core::SystemClock),
        ))
    });
    // The recorder first: the hot path's handles register with it.
    let metrics = prometheus();
    let gate = Arc::new(Gate {
        verifier: ArcSwapOption::empty(),
        authz: config.policy_service.as_ref().map(|s| {
            let authz = castellan_authz::Authorizer::new(s.clone());
            Arc::new(match &decision_log {
                Some(log) => authz.with_decision_log(log.clone()),
                None => authz,
            })
        }),
        shipper: std::sync::OnceLock::new(),
        tasks: std::sync::Mutex::new(Vec::new()),
        upstream,
        client,
        metrics,
        hot: HotMetrics::register(),
        proto: if tls { "https" } else { "http" },
    });
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<String>();
    let connecting = tokio::spawn(connect_verifier(gate.clone(), config.clone(), fatal_tx));
    let own = Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(paths::METRICS, get(metrics_text));
    let mut main = Router::new();
    if proxy_mode {
        main = main.merge(own.clone());
    }
    let mut main = main.fallback(handle).with_state(gate.clone());
    if let Some(m) = &mtls {
        // Every request on the mTLS listener, the gate's own paths included,
        // passes the peer check before anything else.
        main = main.layer(axum::middleware::from_fn_with_state(m.allow.clone(), mtls::admit_peer));
    }
    let stopping = gate.clone();
    let health = own.with_state(gate);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let stop_main = stop_tx.subscribe();
    let stop_health = stop_tx.subscribe();
    let serve = async move {
        let until = |mut rx: tokio::sync::broadcast::Receiver<()>| async move {
            let _ = rx.recv().await;
        };
        // Renewed SVID files are picked up while serving.
        let reloading = mtls
            .as_ref()
            .map(|m| tokio::spawn(m.source.clone().watch(m.reload_interval)));
        let main_server = async move {
            match mtls {
                Some(m) => mtls::serve(listener, m.server, main, until(stop_main), mtls::LISTENER_METRICS).await,
                None => {
                    // No Nagle delay on small proxied answers.
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, main.into_make_service_with_connect_info::<SocketAddr>())
                        .with_graceful_shutdown(until(stop_main))
                        .await
                }
            }
        };
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
        let tasks = std::mem::take(&mut *stopping.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        tasks.iter().for_each(tokio::task::JoinHandle::abort);
        // Wait for them to stop: a shipment interrupted mid-send stays in
        // the shipper, and the flush below sends it again (same batch id).
        for t in tasks {
            let _ = t.await;
        }
        // What was decided before the stop still reaches the authority.
        let log = stopping.authz.as_ref().and_then(|a| a.decision_log());
        if let (Some(shipper), Some(log)) = (stopping.shipper.get(), log) {
            match tokio::time::timeout(Duration::from_secs(5), shipper.ship_pending(log)).await {
                Ok(Ok(n)) => tracing::info!(shipped = n, "decision log flushed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "decision log not flushed"),
                Err(_) => tracing::warn!(pending = log.pending(), "decision log flush timed out"),
            }
        }
        if let Some(r) = reloading {
            r.abort();
        }
        result
    };
    Ok(Bound {
        addr,
        health_addr,
        tls,
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
                let v = Arc::new(v);
                if let Some(authz) = &gate.authz {
                    let mut tasks = gate.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let sync = castellan_authz::sync::keep_current(v.clone(), authz.clone(), Default::default());
                    tasks.push(tokio::spawn(sync));
                    if let (Some(log), Some(creds)) = (authz.decision_log(), &config.decision_log) {
                        match v.decision_log_url(authz.service()) {
                            Some(url) => {
                                let shipper = castellan_authz::DecisionShipper::new(
                                    v.http_client().clone(),
                                    url,
                                    &creds.client_id,
                                    &creds.client_secret,
                                );
                                let _ = gate.shipper.set(shipper.clone());
                                tasks.push(tokio::spawn(shipper.run(log.clone())));
                            }
                            None => {
                                tracing::error!(
                                    "the authority does not take decision logs; decisions are logged here only"
                                );
                            }
                        }
                    }
                }
                gate.verifier.store(Some(v));
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

/// The method and path a request is decided for. Forward-auth asks about
/// the original request, which the proxy names in `X-Forwarded-Method` /
/// `X-Forwarded-Uri` (Traefik) or `X-Original-Method` / `X-Original-URI`
/// (nginx); in proxy mode the request itself is the one (a client's
/// headers are never trusted for it).
fn decided_route(req: &http::request::Parts, forward_auth: bool) -> (String, String) {
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| req.headers.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_owned)
    };
    let (method, uri) = if forward_auth {
        (
            header(&["x-forwarded-method", "x-original-method"]).unwrap_or_else(|| req.method.as_str().to_owned()),
            header(&["x-forwarded-uri", "x-original-uri"]).unwrap_or_else(|| req.uri.path().to_owned()),
        )
    } else {
        (req.method.as_str().to_owned(), req.uri.path().to_owned())
    };
    let path = uri.split(['?', '#']).next().unwrap_or("").to_owned();
    (method.to_ascii_uppercase(), path)
}

async fn ready(State(gate): State<Arc<Gate>>) -> Response {
    // With route policies, not ready until a bundle is in force.
    if gate.authz.as_ref().is_some_and(|a| a.version().is_none()) {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "no policy bundle yet").into_response();
    }
    match gate.verifier.load_full() {
        Some(v) if v.is_ready() => (http::StatusCode::OK, axum::Json(v.status())).into_response(),
        Some(v) => (http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(v.status())).into_response(),
        None => (http::StatusCode::SERVICE_UNAVAILABLE, "verifier not connected").into_response(),
    }
}

/// The request id a request carries: the caller's when sane, else a new one.
fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(observe::HEADER) {
        if observe::is_sane(v.as_bytes()) {
            return v.clone();
        }
    }
    // A generated id is hex and `-`: always a valid header value.
    HeaderValue::from_str(&observe::generate()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Every request on the main port: given an id (kept from the caller when
/// sane, forwarded upstream, returned to the caller, on its log lines),
/// checked, and forwarded or answered. `castellan_gate_request_duration_seconds`
/// is the gate's own time, up to forwarding or answering;
/// `castellan_gate_upstream_duration_seconds` the upstream's, to its headers.
async fn handle(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    let rid = id.to_str().unwrap_or_default();
    // A debug span: at the default `info` a span per request would cost
    // more than the id itself (a couple of µs and allocations at ~50 µs of
    // CPU per request), so the gate's per-request lines at `info` and above
    // (policy denials, upstream failures) name `request_id` themselves;
    // with `debug` on, every line of the request (the verifier's too)
    // carries it through the span.
    let span = tracing::debug_span!("request", request_id = rid);
    // The verdict reads only the head (the body is not `Sync`).
    let (parts, body) = req.into_parts();
    let mut resp = async {
        let (outcome, decided) = check(&gate, &parts, rid).await;
        let own = started.elapsed().as_secs_f64();
        if decided.is_ok() {
            gate.hot.admitted_seconds.record(own);
            gate.hot.admitted.increment(1);
        } else {
            metrics::histogram!("castellan_gate_request_duration_seconds", "outcome" => outcome).record(own);
            metrics::counter!("castellan_gate_requests_total", "outcome" => outcome).increment(1);
        }
        match (decided, &gate.upstream) {
            (Err(refused), _) => refused,
            (Ok(identity), None) => {
                let mut resp = http::StatusCode::OK.into_response();
                resp.headers_mut().extend(identity);
                resp
            }
            (Ok(identity), Some(upstream)) => {
                let forwarding = Instant::now();
                let req = Request::from_parts(parts, body);
                let resp = proxy::forward(&gate.client, upstream, req, identity, peer, gate.proto).await;
                gate.hot.upstream_seconds.record(forwarding.elapsed().as_secs_f64());
                resp
            }
        }
    }
    .instrument(span)
    .await;
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

/// The verdict on a request: its outcome label, and the identity headers
/// to pass on or the answer refusing it.
async fn check(
    gate: &Gate,
    req: &http::request::Parts,
    request_id: &str,
) -> (&'static str, Result<http::HeaderMap, Response>) {
    let Some(verifier) = gate.verifier.load_full() else {
        return ("not_ready", Err(rejection_response(&Rejection::NotReady)));
    };
    // On the mTLS listener: the client certificate, for bound tokens (RFC
    // 8705); elsewhere none, so a bound token is refused.
    let presented = req.extensions.get::<PresentedCertificate>();
    let token = match verify_request_presented(&verifier, &req.headers, presented).await {
        Ok(t) => t,
        Err(r) => return (r.label(), Err(rejection_response(&r))),
    };
    let mut identity = match headers::identity(&token) {
        Ok(h) => h,
        Err(r) => return (r.label(), Err(rejection_response(&r))),
    };
    // The peer checked by the mTLS step (SPIFFE IDs are valid header values).
    if let Some(PeerIdentity(id)) = req.extensions.get::<PeerIdentity>() {
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            identity.insert(HeaderName::from_static(PEER_HEADER), v);
        }
    }
    if let Some(authz) = &gate.authz {
        let peer_id = req.extensions.get::<PeerIdentity>().map(|p| p.0.as_str().to_owned());
        let (method, path) = decided_route(req, gate.upstream.is_none());
        if let Some(denied) = policy::check(authz, &token, peer_id.as_deref(), &method, &path, request_id) {
            return ("denied_by_policy", Err(denied));
        }
    }
    ("admitted", Ok(identity))
}

//! The running verifier: keys, revocation state and the tasks that keep them fresh.

use crate::cache::TokenCache;
use crate::profile::LocalPolicy;
use crate::sources::{discover, fetch_jwks, SseParser};
use crate::validate::validate_unbound;
use crate::{
    binding, EffectiveProfile, KeyRing, PresentedCertificate, ProfileError, Rejection, RevocationEvent,
    RevocationState, ValidationContext, VerifiedToken,
};
use arc_swap::ArcSwap;
use castellan_core::{Clock, SystemClock};
use castellan_jose::Algorithm;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What to do once the revocation state is older than the staleness window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Refuse every token ([`Rejection::Stale`]). The default.
    #[default]
    Closed,
    /// Keep accepting tokens with the last known state, loudly.
    Open,
}

/// Why a verifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Discovery failed.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The profile cannot be applied.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The first JWKS fetch failed.
    #[error("jwks: {0}")]
    Jwks(String),
    /// The revocation stream did not deliver its snapshot in time.
    #[error("revocation stream not ready within {0:?}")]
    Stream(Duration),
    /// Bad local settings.
    #[error("{0}")]
    Config(String),
}

/// How a verifier is set up. Every setting may only tighten the authority's profile.
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    authority: String,
    audience: String,
    policy: LocalPolicy,
    fail_mode: FailMode,
    clock: Arc<dyn Clock>,
    cache_capacity: usize,
    kind: String,
    connect_timeout: Duration,
    unknown_kid_cooldown: Duration,
    heartbeat_every: Duration,
    root_certificates: Vec<Vec<u8>>,
}

/// Makes aws-lc-rs the process's TLS provider unless one is set already
/// (aws-lc-rs is the project's one crypto provider).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A point-in-time view of a verifier, for readiness checks and metrics.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifierStatus {
    /// Instance id reported to the authority.
    pub verifier_id: String,
    /// Audience.
    pub audience: String,
    /// Kids held.
    pub kids: Vec<String>,
    /// Last revocation sequence number applied.
    pub last_seq: i64,
    /// The stream is connected now.
    pub stream_connected: bool,
    /// Milliseconds since anything arrived on the stream.
    pub millis_since_contact: u64,
    /// Past the staleness window.
    pub stale: bool,
}

impl VerifierBuilder {
    /// Local leeway (at most the authority's, at most 120 s).
    pub fn leeway(mut self, d: Duration) -> Self {
        self.policy.leeway = Some(d);
        self
    }
    /// Accept only these algorithms (intersected with the authority's).
    pub fn algorithms(mut self, algs: Vec<Algorithm>) -> Self {
        self.policy.algorithms = Some(algs);
        self
    }
    /// Shorter maximum token lifetime.
    pub fn max_token_lifetime(mut self, d: Duration) -> Self {
        self.policy.max_token_lifetime = Some(d);
        self
    }
    /// Shorter delegation chains (`act` links) than the authority allows;
    /// 0 accepts no exchanged token.
    pub fn max_delegation_depth(mut self, n: usize) -> Self {
        self.policy.max_delegation_depth = Some(n);
        self
    }
    /// Accept only exchanged tokens (ones carrying `act`).
    pub fn require_delegation(mut self) -> Self {
        self.policy.require_delegation = true;
        self
    }
    /// Shorter staleness window.
    pub fn staleness_window(mut self, d: Duration) -> Self {
        self.policy.staleness_window = Some(d);
        self
    }
    /// Fail open or closed past the staleness window.
    pub fn fail_mode(mut self, m: FailMode) -> Self {
        self.fail_mode = m;
        self
    }
    /// Inject a clock (tests).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }
    /// Verified-token cache size (0 disables).
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }
    /// What this verifier reports itself as (`library`, `gate`).
    pub fn kind(mut self, k: &str) -> Self {
        self.kind = k.to_owned();
        self
    }
    /// How long `connect` waits for discovery, keys and the stream snapshot.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Least time between JWKS refetches caused by unknown kids.
    pub fn unknown_kid_cooldown(mut self, d: Duration) -> Self {
        self.unknown_kid_cooldown = d;
        self
    }
    /// How often the verifier reports its kids and stream position.
    pub fn heartbeat_every(mut self, d: Duration) -> Self {
        self.heartbeat_every = d;
        self
    }
    /// Also trust this PEM CA certificate for an `https://` authority (besides the system's roots).
    pub fn root_certificate_pem(mut self, pem: Vec<u8>) -> Self {
        self.root_certificates.push(pem);
        self
    }

    /// Discovers the authority, applies its profile, fetches keys, and waits
    /// for the revocation snapshot; then keeps all of it fresh in the background.
    pub async fn connect(self) -> Result<Verifier, BuildError> {
        let deadline = self.connect_timeout;
        match tokio::time::timeout(deadline, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(BuildError::Stream(deadline)),
        }
    }

    async fn connect_inner(self) -> Result<Verifier, BuildError> {
        if self.audience.is_empty() {
            return Err(BuildError::Config("audience must not be empty".to_owned()));
        }
        install_tls_provider();
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        for pem in &self.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| BuildError::Config(format!("root certificate: {e}")))?;
            http = http.add_root_certificate(cert);
        }
        let http = http.build().map_err(|e| BuildError::Config(e.to_string()))?;
        let d = discover(&http, &self.authority).await.map_err(BuildError::Discovery)?;
        let profile = EffectiveProfile::new(&d.castellan_validation_profile, &self.policy)?;
        let heartbeat_interval = Duration::from_secs(
            d.castellan_validation_profile
                .heartbeat_interval_seconds
                .unwrap_or(5)
                .clamp(1, 60),
        );
        if profile.staleness_window < heartbeat_interval * 3 {
            return Err(BuildError::Config(format!(
                "staleness window ({}) must be at least three of the authority's keep-alives ({} each)",
                castellan_core::format_duration(profile.staleness_window),
                castellan_core::format_duration(heartbeat_interval)
            )));
        }
        let fetched = fetch_jwks(&http, &d.jwks_uri).await.map_err(BuildError::Jwks)?;
        let verifier_id = format!("{}-{}-{}", self.kind, std::process::id(), random_suffix());
        let (ready_tx, mut ready_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            audience: self.audience,
            issuer: d.issuer,
            profile: ArcSwap::from_pointee(profile),
            policy: self.policy,
            authority: self.authority,
            fail_mode: self.fail_mode,
            clock: self.clock,
            http,
            jwks_uri: d.jwks_uri,
            stream_uri: d.castellan_revocation_stream_endpoint,
            heartbeat_uri: d.castellan_verifier_heartbeat_endpoint,
            keys: ArcSwap::from_pointee(fetched.keys),
            jwks_max_age: AtomicU64::new(fetched.max_age.map_or(300, |d| d.as_secs())),
            jwks_lock: tokio::sync::Mutex::new(Some(Instant::now())),
            unknown_kid_cooldown: self.unknown_kid_cooldown,
            revocations: RwLock::new(RevocationState::default()),
            started: Instant::now(),
            last_contact_ms: AtomicU64::new(0),
            jwks_fetched_ms: AtomicU64::new(0),
            stream_connected: AtomicBool::new(false),
            cache: TokenCache::new(self.cache_capacity),
            verifier_id,
            kind: self.kind,
            heartbeat_every: self.heartbeat_every,
            heartbeat_interval,
            keys_changed: Notify::new(),
            ready: ready_tx,
            log_id: Mutex::new(None),
            policy_bundle_uri: d.castellan_policy_bundle_endpoint,
            decision_log_uri: d.castellan_decision_log_endpoint,
            policy_notices: tokio::sync::broadcast::channel(64).0,
            transport: Transport::default(),
        });
        let tasks = vec![
            tokio::spawn(inner.clone().run_stream()),
            tokio::spawn(inner.clone().run_jwks_refresh()),
            tokio::spawn(inner.clone().run_heartbeat()),
        ];
        let guard = Arc::new(TaskGuard(Mutex::new(tasks)));
        while !*ready_rx.borrow() {
            if ready_rx.changed().await.is_err() {
                break;
            }
        }
        Ok(Verifier { inner, _tasks: guard })
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    // The id only has to be unique among verifiers; a failed fill still yields an id.
    let _ = aws_lc_rs::rand::fill(&mut b);
    castellan_jose::b64::encode(&b)
}

/// Aborts the background tasks when the last [`Verifier`] handle goes.
#[derive(Debug)]
struct TaskGuard(Mutex<Vec<JoinHandle<()>>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Ok(tasks) = self.0.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    audience: String,
    issuer: String,
    /// The authority's profile with local tightening; refreshed with discovery.
    profile: ArcSwap<EffectiveProfile>,
    policy: LocalPolicy,
    authority: String,
    fail_mode: FailMode,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    jwks_uri: String,
    stream_uri: String,
    heartbeat_uri: String,
    keys: ArcSwap<KeyRing>,
    jwks_max_age: AtomicU64,
    /// Single flight for JWKS fetches; holds when the last one finished.
    jwks_lock: tokio::sync::Mutex<Option<Instant>>,
    unknown_kid_cooldown: Duration,
    revocations: RwLock<RevocationState>,
    started: Instant,
    last_contact_ms: AtomicU64,
    /// When the JWKS last arrived (milliseconds after `started`).
    jwks_fetched_ms: AtomicU64,
    stream_connected: AtomicBool,
    cache: TokenCache,
    verifier_id: String,
    kind: String,
    heartbeat_every: Duration,
    heartbeat_interval: Duration,
    keys_changed: Notify,
    ready: watch::Sender<bool>,
    /// The authority's revocation log id, once seen.
    log_id: Mutex<Option<String>>,
    /// Where signed policy bundles are, `{service}` to be replaced.
    policy_bundle_uri: Option<String>,
    decision_log_uri: Option<String>,
    /// `policy` events from the stream.
    policy_notices: tokio::sync::broadcast::Sender<PolicyNotice>,
    /// How accepted calls arrived, reported in heartbeats.
    transport: Transport,
}

/// Whether accepted calls came with a client certificate (mTLS), without,
/// or both, since the verifier started. Each flag is read before it is
/// written, so the hot path only ever reads a shared cache line.
#[derive(Debug, Default)]
struct Transport {
    with_certificate: AtomicBool,
    without_certificate: AtomicBool,
}

impl Transport {
    fn saw(&self, certificate: bool) {
        let flag = if certificate {
            &self.with_certificate
        } else {
            &self.without_certificate
        };
        if !flag.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// `mtls`, `plain`, `mixed`, or `None` before the first accepted call.
    fn label(&self) -> Option<&'static str> {
        match (
            self.with_certificate.load(Ordering::Relaxed),
            self.without_certificate.load(Ordering::Relaxed),
        ) {
            (true, false) => Some("mtls"),
            (false, true) => Some("plain"),
            (true, true) => Some("mixed"),
            (false, false) => None,
        }
    }
}

/// A service's policies changed on the authority (a `policy` event on the
/// stream): fetch the signed bundle now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PolicyNotice {
    /// The service.
    pub service: String,
    /// The version now in force.
    pub version: i64,
}

/// The verifier. Clones share one state and one set of background tasks.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
    _tasks: Arc<TaskGuard>,
}

impl Verifier {
    /// Starts building a verifier for tokens addressed to `audience`.
    pub fn builder(authority_url: &str, audience: &str) -> VerifierBuilder {
        VerifierBuilder {
            authority: authority_url.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            policy: LocalPolicy::default(),
            fail_mode: FailMode::Closed,
            clock: Arc::new(SystemClock),
            cache_capacity: 10_000,
            kind: "library".to_owned(),
            connect_timeout: Duration::from_secs(10),
            unknown_kid_cooldown: Duration::from_secs(5),
            heartbeat_every: Duration::from_secs(10),
            root_certificates: Vec::new(),
        }
    }

    /// Verifies a token that arrived with no client certificate:
    /// [`verify_presented`](Self::verify_presented) with none, so a
    /// certificate-bound token is refused.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        self.verify_presented(token, None).await
    }

    /// Verifies a token that arrived on a connection whose TLS peer
    /// presented `presented` (or no certificate). A token bound to a
    /// certificate (`cnf` `x5t#S256`, RFC 8705) is accepted only with that
    /// certificate, checked on every call, cache hits included; a token
    /// without `cnf` is unaffected by `presented`. An unknown kid triggers
    /// one single-flight JWKS refetch (at most once per cooldown) before the
    /// token is refused.
    pub async fn verify_presented(
        &self,
        token: &str,
        presented: Option<&PresentedCertificate>,
    ) -> Result<VerifiedToken, Rejection> {
        let result = match self.inner.verify_now(token) {
            Err(Rejection::UnknownKey) if self.inner.refresh_for_unknown_kid().await => self.inner.verify_now(token),
            other => other,
        }
        .and_then(|t| binding::check(t.cnf_x5t_s256.as_deref(), presented).map(|()| t));
        match &result {
            Ok(_) => {
                self.inner.transport.saw(presented.is_some());
                metrics::counter!("castellan_verify_total", "result" => "ok", "reason" => "none").increment(1);
            }
            // The reason is the rejection's kind (a fixed set), never its detail.
            Err(r) => {
                metrics::counter!("castellan_verify_total", "result" => "rejected", "reason" => r.label()).increment(1)
            }
        }
        result
    }

    /// The issuer the verifier checks tokens against.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// A key of the authority's current JWKS, by kid (for other documents
    /// it signs, such as policy bundles).
    #[must_use]
    pub fn verifying_key(&self, kid: &str) -> Option<Arc<castellan_jose::VerifyingKey>> {
        self.inner.keys.load().get(kid).cloned()
    }

    /// Where `service`'s signed policy bundle is, if the authority says.
    #[must_use]
    pub fn policy_bundle_url(&self, service: &str) -> Option<String> {
        self.inner
            .policy_bundle_uri
            .as_ref()
            .map(|u| u.replace("{service}", service))
    }

    /// Where `service` ships its decision log, if the authority says.
    #[must_use]
    pub fn decision_log_url(&self, service: &str) -> Option<String> {
        self.inner
            .decision_log_uri
            .as_ref()
            .map(|u| u.replace("{service}", service))
    }

    /// `policy` events from the authority's stream, from now on.
    #[must_use]
    pub fn policy_notices(&self) -> tokio::sync::broadcast::Receiver<PolicyNotice> {
        self.inner.policy_notices.subscribe()
    }

    /// The HTTP client the verifier reaches the authority with (its TLS
    /// trust included).
    #[must_use]
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The audience it checks for.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The profile in force (refreshed from the authority's discovery document).
    pub fn profile(&self) -> Arc<EffectiveProfile> {
        self.inner.profile.load_full()
    }

    /// Whether the verifier can decide right now (keys held, state not stale or failing open).
    pub fn is_ready(&self) -> bool {
        !self.inner.keys.load().is_empty() && (self.inner.fail_mode == FailMode::Open || !self.inner.stale())
    }

    /// Sets the gauges that describe the verifier now; call it before
    /// rendering metrics (the gate does on every scrape):
    /// `castellan_jwks_age_seconds` (since the JWKS last arrived),
    /// `castellan_verifier_stream_connected`, `castellan_verifier_last_seq`,
    /// `castellan_verifier_seconds_since_contact` and `castellan_verifier_stale`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "gauge values: milliseconds and sequence numbers fit f64"
    )]
    pub fn publish_metrics(&self) {
        let i = &self.inner;
        let now = i.millis_since_start();
        let jwks_age = now.saturating_sub(i.jwks_fetched_ms.load(Ordering::Relaxed));
        metrics::gauge!("castellan_jwks_age_seconds").set(jwks_age as f64 / 1000.0);
        let connected = i.stream_connected.load(Ordering::Relaxed);
        metrics::gauge!("castellan_verifier_stream_connected").set(if connected { 1.0 } else { 0.0 });
        let last_seq = i.revocations.read().map(|r| r.last_seq()).unwrap_or(0);
        metrics::gauge!("castellan_verifier_last_seq").set(last_seq as f64);
        metrics::gauge!("castellan_verifier_seconds_since_contact").set(i.millis_since_contact() as f64 / 1000.0);
        metrics::gauge!("castellan_verifier_stale").set(if i.stale() { 1.0 } else { 0.0 });
    }

    /// A snapshot for health checks and metrics.
    pub fn status(&self) -> VerifierStatus {
        let i = &self.inner;
        let mut kids: Vec<String> = i.keys.load().keys().cloned().collect();
        kids.sort();
        VerifierStatus {
            verifier_id: i.verifier_id.clone(),
            audience: i.audience.clone(),
            kids,
            last_seq: i.revocations.read().map(|r| r.last_seq()).unwrap_or(0),
            stream_connected: i.stream_connected.load(Ordering::Relaxed),
            millis_since_contact: i.millis_since_contact(),
            stale: i.stale(),
        }
    }
}

impl Inner {
    fn millis_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn millis_since_contact(&self) -> u64 {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(self.last_contact_ms.load(Ordering::Relaxed))
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact_ms.store(now, Ordering::Relaxed);
    }

    fn stale(&self) -> bool {
        u128::from(self.millis_since_contact()) > self.profile.load().staleness_window.as_millis()
    }

    /// Every check but the certificate binding, which
    /// [`Verifier::verify_presented`] makes on cache hits and misses alike.
    fn verify_now(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        if self.stale() {
            match self.fail_mode {
                FailMode::Closed => return Err(Rejection::Stale),
                FailMode::Open => metrics::counter!("castellan_verify_stale_open_total").increment(1),
            }
        }
        let keys = self.keys.load();
        if keys.is_empty() {
            return Err(Rejection::NotReady);
        }
        let now = self.clock.now();
        let profile = self.profile.load();
        let revocations = self.revocations.read().map_err(|_| Rejection::NotReady)?;
        if let Some(hit) = self.cache.get(token, now, profile.leeway, &revocations) {
            return hit;
        }
        let cx = ValidationContext {
            keys: &keys,
            profile: &profile,
            issuer: &self.issuer,
            audience: &self.audience,
            revocations: &revocations,
            now,
        };
        let verified = validate_unbound(token, &cx)?;
        drop(revocations);
        self.cache.insert(token, verified.clone(), now);
        Ok(verified)
    }

    /// Refetches JWKS for an unknown kid: one fetch at a time, and none
    /// within the cooldown of the last. True when keys may have changed.
    async fn refresh_for_unknown_kid(&self) -> bool {
        let asked = Instant::now();
        let mut last = self.jwks_lock.lock().await;
        if last.is_some_and(|t| t > asked) {
            return true; // someone fetched while we waited
        }
        if last.is_some_and(|t| t.elapsed() < self.unknown_kid_cooldown) {
            metrics::counter!("castellan_jwks_refetch_suppressed_total").increment(1);
            return false;
        }
        let ok = self.fetch_keys().await;
        *last = Some(Instant::now());
        ok
    }

    async fn fetch_keys(&self) -> bool {
        match fetch_jwks(&self.http, &self.jwks_uri).await {
            Ok(fetched) => {
                if let Some(age) = fetched.max_age {
                    self.jwks_max_age.store(age.as_secs(), Ordering::Relaxed);
                }
                let count = fetched.keys.len();
                self.keys.store(Arc::new(fetched.keys));
                self.jwks_fetched_ms.store(self.millis_since_start(), Ordering::Relaxed);
                self.keys_changed.notify_one();
                metrics::counter!("castellan_jwks_refresh_total", "outcome" => "ok").increment(1);
                tracing::debug!(keys = count, "jwks refreshed");
                true
            }
            Err(e) => {
                metrics::counter!("castellan_jwks_refresh_total", "outcome" => "error").increment(1);
                tracing::warn!(error = %e, "jwks refresh failed; keeping the keys we have");
                false
            }
        }
    }

    /// Refreshes JWKS before its max-age runs out (at 80% of it), keeping the
    /// old keys whenever a fetch fails (stale-while-revalidate).
    async fn run_jwks_refresh(self: Arc<Self>) {
        loop {
            let max_age = self.jwks_max_age.load(Ordering::Relaxed);
            let wait = Duration::from_millis(max_age.saturating_mul(800))
                .clamp(Duration::from_secs(1), Duration::from_secs(3600));
            tokio::time::sleep(wait).await;
            self.refresh_profile().await;
            let ok = {
                let mut last = self.jwks_lock.lock().await;
                let ok = self.fetch_keys().await;
                *last = Some(Instant::now());
                ok
            };
            if !ok {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }

    fn apply(&self, ev: &RevocationEvent) {
        let applied = match self.revocations.write() {
            Ok(mut state) => state.apply(ev),
            Err(_) => false,
        };
        if applied {
            metrics::gauge!("castellan_verifier_last_seq").set(ev.seq as f64);
            if ev.kind == "key" {
                // A withdrawn key leaves the ring at once, whatever JWKS caching says.
                let mut ring: KeyRing = (**self.keys.load()).clone();
                if ring.remove(&ev.value).is_some() {
                    self.keys.store(Arc::new(ring));
                    self.keys_changed.notify_one();
                }
                tracing::warn!(kid = %ev.value, "signing key withdrawn by the authority");
            }
        }
    }

    async fn run_stream(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let after = self.revocations.read().map(|r| r.last_seq()).unwrap_or(0);
            let url = format!("{}?after={after}", self.stream_uri);
            match self
                .http
                .get(&url)
                .header("last-event-id", after.to_string())
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    self.stream_connected.store(true, Ordering::Relaxed);
                    metrics::gauge!("castellan_verifier_stream_connected").set(1.0);
                    self.touch();
                    backoff = Duration::from_millis(100);
                    self.read_stream(resp).await;
                    self.stream_connected.store(false, Ordering::Relaxed);
                    metrics::gauge!("castellan_verifier_stream_connected").set(0.0);
                    tracing::warn!("revocation stream closed; reconnecting");
                }
                Ok(resp) => tracing::warn!(status = %resp.status(), "revocation stream refused"),
                Err(e) => tracing::warn!(error = %e, "revocation stream unreachable"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn read_stream(&self, resp: reqwest::Response) {
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::default();
        // A stream that stays silent for three heartbeats is dead even if TCP says otherwise.
        let idle_limit = (self.heartbeat_interval * 3).min(self.profile.load().staleness_window);
        loop {
            let chunk = match tokio::time::timeout(idle_limit, body.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "revocation stream error");
                    return;
                }
                Ok(None) | Err(_) => return,
            };
            self.touch();
            let events = match parser.feed(&chunk) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream unreadable");
                    return;
                }
            };
            for ev in events {
                match ev.event.as_str() {
                    "revocation" => match serde_json::from_str::<RevocationEvent>(&ev.data) {
                        Ok(r) => self.apply(&r),
                        Err(e) => tracing::warn!(error = %e, "unreadable revocation event"),
                    },
                    "policy" => match serde_json::from_str::<PolicyNotice>(&ev.data) {
                        Ok(n) => {
                            let _ = self.policy_notices.send(n);
                        }
                        Err(e) => tracing::warn!(error = %e, "unreadable policy event"),
                    },
                    "keys" => {
                        self.refresh_profile().await;
                        let mut last = self.jwks_lock.lock().await;
                        self.fetch_keys().await;
                        *last = Some(Instant::now());
                    }
                    "ready" => {
                        let info = serde_json::from_str::<serde_json::Value>(&ev.data).unwrap_or_default();
                        let latest = info.get("latest_seq").and_then(serde_json::Value::as_i64);
                        let log_id = info
                            .get("log_id")
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned);
                        let ours = self.revocations.read().map(|r| r.last_seq()).unwrap_or(0);
                        let known = self.log_id.lock().ok().and_then(|l| l.clone());
                        let new_log = matches!((&known, &log_id), (Some(k), Some(n)) if k != n);
                        if let (Some(id), Ok(mut slot)) = (log_id, self.log_id.lock()) {
                            *slot = Some(id);
                        }
                        if new_log || latest.is_some_and(|l| l < ours) {
                            // The authority's log restarted (store restored or replaced): its
                            // numbers mean something else now. Replay it all from the start
                            // (applying an entry twice is harmless) on a fresh connection.
                            tracing::warn!(ours, ?latest, "authority's revocation log restarted; replaying it");
                            if let Ok(mut r) = self.revocations.write() {
                                r.rewind(0);
                            }
                            return;
                        }
                        let _ = self.ready.send(true);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Re-reads the authority's profile so settings changed there reach this
    /// verifier; a profile local settings would loosen is refused and the old one kept.
    async fn refresh_profile(&self) {
        match discover(&self.http, &self.authority).await {
            Ok(d) => match EffectiveProfile::new(&d.castellan_validation_profile, &self.policy) {
                Ok(p) => {
                    if *self.profile.load_full() != p {
                        tracing::info!("validation profile changed at the authority; applying");
                        self.profile.store(Arc::new(p));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "authority's new profile conflicts with local settings; keeping the old one")
                }
            },
            Err(e) => tracing::debug!(error = %e, "discovery refresh failed"),
        }
    }

    async fn heartbeat(&self) {
        let mut kids: Vec<String> = self.keys.load().keys().cloned().collect();
        kids.sort();
        kids.truncate(64);
        let last_seq = match self.revocations.write() {
            Ok(mut r) => {
                r.purge(self.clock.now());
                r.last_seq()
            }
            Err(_) => 0,
        };
        metrics::gauge!("castellan_verifier_stale").set(if self.stale() { 1.0 } else { 0.0 });
        let mut body = serde_json::json!({
            "verifier_id": self.verifier_id,
            "audience": self.audience,
            "kids": kids,
            "last_seq": last_seq,
            "kind": self.kind,
        });
        // Only once known: an older authority refuses fields it does not know.
        if let (Some(t), Some(map)) = (self.transport.label(), body.as_object_mut()) {
            map.insert("transport".to_owned(), serde_json::Value::from(t));
        }
        let sent = self
            .http
            .post(&self.heartbeat_uri)
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }

    async fn run_heartbeat(self: Arc<Self>) {
        loop {
            self.heartbeat().await;
            if self.stale() {
                tracing::warn!(
                    millis_since_contact = self.millis_since_contact(),
                    fail_mode = ?self.fail_mode,
                    "revocation state is stale"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat_every) => {}
                _ = self.keys_changed.notified() => {}
            }
        }
    }
}

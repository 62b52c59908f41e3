//! Ships a [`DecisionLog`] to the authority in batches, off the request
//! path: every [`DecisionShipper::interval`] or as soon as the log is half
//! full, whichever comes first. The authority authenticates the shipper as
//! an OAuth client (HTTP Basic, `client_secret_basic`) that holds the scope
//! `castellan.decisions:<service>`.
//!
//! A shipment the authority cannot take now (network error, 5xx, 408, 429)
//! goes back into the log and is retried with backoff; one it refuses (any
//! other 4xx: bad credentials, missing scope, a malformed entry) is dropped
//! and counted (`castellan_decisions_dropped_total{reason="rejected"}`),
//! since sending it again would be refused again. Each shipment carries a
//! random batch id, so a retry after a lost answer is stored once.

use crate::decision_log::{DecisionBatch, DecisionLog};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;

/// Default most entries per shipment (the authority's default limit).
pub const DEFAULT_BATCH: usize = 1_000;
/// Default pause between shipments.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between retries while the authority is away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a shipment did not land.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The authority could not be reached, or answered 5xx, 408 or 429:
    /// the entries were put back to be sent again.
    #[error("decision log shipment deferred: {0}")]
    Deferred(String),
    /// The authority refused the shipment: the entries were dropped.
    #[error("decision log shipment refused with HTTP {status}: {description}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The authority's `error_description`, or the body's start.
        description: String,
    },
}

/// Sends a service's decision log to the authority.
#[derive(Clone)]
pub struct DecisionShipper {
    http: reqwest::Client,
    url: String,
    authorization: String,
    client_id: String,
    batch: usize,
    interval: Duration,
}

impl std::fmt::Debug for DecisionShipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionShipper")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("batch", &self.batch)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DecisionShipper {
    /// A shipper posting to `url` (the authority's
    /// `castellan_decision_log_endpoint` for the service, see
    /// `Verifier::decision_log_url`) as client `client_id`.
    #[must_use]
    pub fn new(http: reqwest::Client, url: impl Into<String>, client_id: &str, client_secret: &str) -> Self {
        // RFC 6749 §2.3.1: form-urlencode each part before Basic encoding.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(client_secret)));
        Self {
            http,
            url: url.into(),
            authorization: format!("Basic {basic}"),
            client_id: client_id.to_owned(),
            batch: DEFAULT_BATCH,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// Most entries per shipment (at least 1).
    #[must_use]
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Pause between shipments.
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Ships everything waiting in `log` now, batch by batch; returns how
    /// many entries landed. Stops at the first shipment that does not land.
    ///
    /// # Errors
    /// [`ShipError::Deferred`] (entries put back) or [`ShipError::Refused`]
    /// (entries dropped and counted).
    pub async fn ship_pending(&self, log: &DecisionLog) -> Result<usize, ShipError> {
        let mut shipped = 0;
        loop {
            let entries = log.take(self.batch);
            if entries.is_empty() {
                return Ok(shipped);
            }
            let n = entries.len();
            let batch = DecisionBatch {
                batch_id: batch_id(),
                decisions: entries,
            };
            match self.send(&batch).await {
                Ok(()) => {
                    shipped += n;
                    metrics::counter!("castellan_decisions_shipped_total").increment(n as u64);
                }
                Err(e @ ShipError::Deferred(_)) => {
                    log.put_back(batch.decisions);
                    return Err(e);
                }
                Err(e @ ShipError::Refused { .. }) => {
                    metrics::counter!("castellan_decisions_dropped_total", "reason" => "rejected").increment(n as u64);
                    return Err(e);
                }
            }
        }
    }

    async fn send(&self, batch: &DecisionBatch) -> Result<(), ShipError> {
        let resp = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .timeout(Duration::from_secs(10))
            .json(batch)
            .send()
            .await
            .map_err(|e| ShipError::Deferred(format!("{}: {}", self.url, e.without_url())))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            return Err(ShipError::Deferred(format!("{}: HTTP {code}", self.url)));
        }
        let body = resp.text().await.unwrap_or_default();
        let description = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error_description").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        Err(ShipError::Refused {
            status: code,
            description,
        })
    }

    /// Ships `log` until the task is dropped: every interval, or sooner
    /// when the log is half full; backs off (doubling up to 30 s) while
    /// the authority is away.
    pub async fn run(self, log: Arc<DecisionLog>) {
        let mut backoff = self.interval;
        loop {
            let wait = tokio::time::sleep(backoff);
            tokio::select! {
                () = wait => {}
                () = log.half_full(), if backoff == self.interval => {}
            }
            #[expect(clippy::cast_precision_loss, reason = "a queue length as a gauge")]
            metrics::gauge!("castellan_decision_log_pending").set(log.pending() as f64);
            match self.ship_pending(&log).await {
                Ok(_) => backoff = self.interval,
                Err(e @ ShipError::Deferred(_)) => {
                    backoff = (backoff * 2).clamp(self.interval, MAX_BACKOFF);
                    tracing::warn!(error = %e, pending = log.pending(), retry_in = ?backoff, "decision log not shipped");
                }
                Err(e @ ShipError::Refused { .. }) => {
                    backoff = self.interval;
                    tracing::error!(error = %e, client_id = %self.client_id, "decision log shipment refused; entries dropped");
                }
            }
        }
    }
}

/// 128 random bits, hex.
fn batch_id() -> String {
    let mut bytes = [0u8; 16];
    // On failure (never seen) the id is still unique enough per process:
    // fall back to the time and a counter rather than fail the shipment.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("t{t:x}-{n:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Ships a [`DecisionLog`] to the authority in batches, off the request
//! path: every [`DecisionShipper::interval`] or as soon as the log is half
//! full, whichever comes first. The authority authenticates the shipper as
//! an OAuth client (HTTP Basic, `client_secret_basic`) that holds the scope
//! `castellan.decisions:<service>`.
//!
//! A shipment the authority cannot take now (network error, 5xx, 408, 429)
//! is kept as it is, batch id included, and sent again with backoff: the
//! authority stores a batch id once per client, so a retry after a lost
//! answer is stored once. A shipment refused as too large or malformed
//! (413, 400) is split in halves and each half sent on its own, down to
//! single entries, so one bad entry costs only itself. Any other refusal
//! (bad credentials, missing scope) drops the shipment, counted as
//! `castellan_decisions_dropped_total{reason="rejected"}`, since sending it
//! again would be refused again.

use crate::decision_log::{DecisionBatch, DecisionEntry, DecisionLog};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Default most entries per shipment (the authority's default limit).
pub const DEFAULT_BATCH: usize = 1_000;
/// Default pause between shipments.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between retries while the authority is away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest pause between shipments.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The OAuth client a shipper authenticates as: a JSON file
/// `{"client_id": ..., "client_secret": ...}`, as `castellan client create
/// --json` prints it (other members are ignored). The client needs the
/// scope `castellan.decisions:<service>`. The secret never appears in
/// `Debug`.
#[derive(Clone, serde::Deserialize)]
pub struct ClientCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("client credentials `{path}`: {reason}")]
pub struct CredentialsError {
    /// The file.
    pub path: String,
    /// Why (never the secret).
    pub reason: String,
}

impl ClientCredentials {
    /// Reads a credentials file.
    ///
    /// # Errors
    /// [`CredentialsError`] when the file cannot be read, is not JSON, or
    /// lacks either member or has one empty.
    pub fn load(path: &std::path::Path) -> Result<Self, CredentialsError> {
        let fail = |reason: String| CredentialsError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        // serde_json's messages quote no values, only positions and names.
        let creds: Self = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        if creds.client_id.is_empty() || creds.client_secret.is_empty() {
            return Err(fail("`client_id` and `client_secret` must not be empty".to_owned()));
        }
        Ok(creds)
    }
}

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

/// Sends a service's decision log to the authority. Clones share the
/// shipment in flight, so a clone kept for a final flush at shutdown sends
/// the same batch (same id) that an interrupted shipment was sending.
#[derive(Clone)]
pub struct DecisionShipper {
    http: reqwest::Client,
    url: String,
    authorization: String,
    client_id: String,
    batch: usize,
    interval: Duration,
    /// Shipments taken from the log and not yet landed or refused, oldest
    /// first; each keeps its batch id across retries.
    in_flight: Arc<Mutex<std::collections::VecDeque<DecisionBatch>>>,
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
            in_flight: Arc::new(Mutex::new(std::collections::VecDeque::new())),
        }
    }

    /// Most entries per shipment (at least 1).
    #[must_use]
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Pause between shipments, between 10 ms and 30 s (clamped).
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d.clamp(MIN_INTERVAL, MAX_BACKOFF);
        self
    }

    /// Ships everything waiting in `log` now, batch by batch (first any
    /// shipment still in flight from an earlier call); returns how many
    /// entries landed. Stops at the first shipment that has to wait.
    ///
    /// # Errors
    /// [`ShipError::Deferred`] (the shipment is kept and sent again, same
    /// batch id, by the next call) or [`ShipError::Refused`] (the entries
    /// were dropped and counted; the call goes on with the rest first).
    pub async fn ship_pending(&self, log: &DecisionLog) -> Result<usize, ShipError> {
        let mut in_flight = self.in_flight.lock().await;
        let mut shipped = 0;
        let mut refused = None;
        loop {
            if in_flight.is_empty() {
                let entries = log.take(self.batch);
                if entries.is_empty() {
                    return refused.map_or(Ok(shipped), Err);
                }
                in_flight.push_back(new_batch(entries));
            }
            let Some(batch) = in_flight.front() else { continue };
            let n = batch.decisions.len();
            match self.send(batch).await {
                Ok(()) => {
                    in_flight.pop_front();
                    shipped += n;
                    metrics::counter!("castellan_decisions_shipped_total").increment(n as u64);
                }
                Err(e @ ShipError::Deferred(_)) => return Err(e),
                Err(ShipError::Refused { status: 400 | 413, .. }) if n > 1 => {
                    // Too large or one bad entry: send each half on its own.
                    if let Some(batch) = in_flight.pop_front() {
                        let mut first = batch.decisions;
                        let second = first.split_off(n / 2);
                        in_flight.push_front(new_batch(second));
                        in_flight.push_front(new_batch(first));
                    }
                }
                Err(e @ ShipError::Refused { .. }) => {
                    in_flight.pop_front();
                    metrics::counter!("castellan_decisions_dropped_total", "reason" => "rejected").increment(n as u64);
                    tracing::error!(error = %e, client_id = %self.client_id, dropped = n, "decision log shipment refused; entries dropped");
                    refused = Some(e);
                }
            }
        }
    }

    /// Entries taken from the log and not yet landed.
    pub async fn in_flight(&self) -> usize {
        self.in_flight.lock().await.iter().map(|b| b.decisions.len()).sum()
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
                Ok(_) | Err(ShipError::Refused { .. }) => backoff = self.interval,
                Err(e @ ShipError::Deferred(_)) => {
                    backoff = (backoff * 2).clamp(self.interval, MAX_BACKOFF);
                    tracing::warn!(error = %e, pending = log.pending(), retry_in = ?backoff, "decision log not shipped");
                }
            }
        }
    }
}

fn new_batch(decisions: Vec<DecisionEntry>) -> DecisionBatch {
    DecisionBatch {
        batch_id: batch_id(),
        decisions,
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

//! An example Castellan service: orders owned by people, people in teams,
//! team managers. Tokens are checked with `castellan-verify`; what a caller
//! may do is decided by Cedar policies (`castellan-authz`) that the
//! authority manages and this service keeps current, against entities the
//! service builds from its own data ([`authz`] documents the model). Every
//! decision can be shipped to the authority's decision log.
//!
//! [`start`] wires it together and returns the router; [`serve`] runs it.
//! `main.rs` only reads flags. See `README.md` for a walk-through.
#![forbid(unsafe_code)]

pub mod authz;
pub mod data;
pub mod http;

use castellan_authz::decision_log::{DecisionLog, DEFAULT_CAPACITY};
use castellan_authz::sync::{keep_current, SyncOptions};
use castellan_authz::{Authorizer, DecisionShipper, ShipError};
use castellan_core::Clock;
use castellan_verify::Verifier;
use data::Directory;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub use castellan_authz::ClientCredentials;

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The decision-log credentials file is unusable.
    #[error("decision log {0}")]
    Credentials(#[from] castellan_authz::CredentialsError),
    /// Credentials were given but the authority takes no decision logs.
    #[error("the authority at `{authority}` advertises no decision log endpoint")]
    NoDecisionLog {
        /// Its issuer.
        authority: String,
    },
}

/// How the service runs, besides its verifier and data.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service whose policies the authority keeps (`orders`).
    pub policy_service: String,
    /// Ship every decision to the authority as this client; `None` keeps
    /// decisions in the service's own logs only.
    pub decision_log: Option<ClientCredentials>,
    /// Pause between decision-log shipments.
    pub ship_interval: Duration,
    /// Keep the last good policy bundle here, so a restart while the
    /// authority is away still decides.
    pub policy_cache: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy_service: "orders".to_owned(),
            decision_log: None,
            // `castellan_authz`'s default shipper interval (not exported).
            ship_interval: Duration::from_secs(1),
            policy_cache: None,
        }
    }
}

/// The running service: its router and background tasks (policy sync,
/// decision shipping), which stop when it is dropped.
#[derive(Debug)]
pub struct Service {
    router: axum::Router,
    authz: Arc<Authorizer>,
    directory: Arc<Directory>,
    shipping: Option<(DecisionShipper, Arc<DecisionLog>)>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the service's background work and builds its router:
///
/// - an [`Authorizer`] for `settings.policy_service`, kept on the newest
///   bundle by [`keep_current`] (at once, on each `policy` event, and by
///   polling);
/// - with `settings.decision_log`, a [`DecisionLog`] stamped with `clock`
///   that records every decision, and a [`DecisionShipper`] sending it to
///   the authority; without, a log line says decisions are not shipped.
///
/// Must be called inside a Tokio runtime.
///
/// # Errors
/// [`StartError::NoDecisionLog`] when shipping is asked for and the
/// authority does not take decision logs.
pub fn start(
    verifier: Verifier,
    directory: Arc<Directory>,
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> Result<Service, StartError> {
    let service = settings.policy_service.clone();
    let mut authz = Authorizer::new(service.clone());
    let mut shipping = None;
    match &settings.decision_log {
        Some(creds) => {
            let url = verifier
                .decision_log_url(&service)
                .ok_or_else(|| StartError::NoDecisionLog {
                    authority: verifier.issuer().to_owned(),
                })?;
            let log = Arc::new(DecisionLog::new(DEFAULT_CAPACITY, clock));
            authz = authz.with_decision_log(log.clone());
            let shipper = DecisionShipper::new(
                verifier.http_client().clone(),
                url.clone(),
                &creds.client_id,
                &creds.client_secret,
            )
            .interval(settings.ship_interval);
            tracing::info!(service, %url, client_id = %creds.client_id, "decisions are shipped to the authority");
            shipping = Some((shipper, log));
        }
        None => tracing::info!(
            service,
            "decisions are not shipped to the authority (set ORDERS_DECISION_LOG_CREDENTIALS to ship them); \
             they are logged here only"
        ),
    }
    let authz = Arc::new(authz);
    let mut tasks = Vec::new();
    let options = SyncOptions {
        last_good: settings.policy_cache.clone(),
        ..SyncOptions::default()
    };
    tasks.push(tokio::spawn(keep_current(
        Arc::new(verifier.clone()),
        authz.clone(),
        options,
    )));
    if let Some((shipper, log)) = &shipping {
        tasks.push(tokio::spawn(shipper.clone().run(log.clone())));
    }
    let router = http::router(http::AppState {
        verifier,
        authz: authz.clone(),
        directory: directory.clone(),
    });
    Ok(Service {
        router,
        authz,
        directory,
        shipping,
        tasks,
    })
}

impl Service {
    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The authorizer (its [`Authorizer::version`] is the bundle in force).
    #[must_use]
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authz
    }

    /// The data the service decides with.
    #[must_use]
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Ships every decision still waiting (for a clean shutdown); returns
    /// how many landed, 0 when decisions are not shipped.
    ///
    /// # Errors
    /// As [`DecisionShipper::ship_pending`].
    pub async fn flush_decisions(&self) -> Result<usize, ShipError> {
        match &self.shipping {
            Some((shipper, log)) => shipper.ship_pending(log).await,
            None => Ok(0),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then ships
/// the decisions still waiting.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, service.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Err(e) = service.flush_decisions().await {
        tracing::warn!(error = %e, "decisions still waiting were not shipped");
    }
    Ok(())
}

//! `orders-service`: the example service. Flags (or environment variables)
//! say where the authority is and how to run; everything else is in the
//! library.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use castellan_verify::Verifier;
use clap::Parser;
use orders_service::data::Directory;
use orders_service::{ClientCredentials, Settings};
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// An example service deciding with Castellan-managed Cedar policies.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The authority's URL (its issuer).
    #[arg(long, env = "ORDERS_AUTHORITY", default_value = "http://127.0.0.1:8080")]
    authority: String,
    /// The audience tokens must be addressed to.
    #[arg(long, env = "ORDERS_AUDIENCE", default_value = "orders")]
    audience: String,
    /// Address to listen on.
    #[arg(long, env = "ORDERS_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The service whose policies the authority keeps for this one.
    #[arg(long, env = "ORDERS_POLICY_SERVICE", default_value = "orders")]
    policy_service: String,
    /// Data file (teams, people, orders); the built-in demo data without it.
    #[arg(long, env = "ORDERS_DATA")]
    data: Option<PathBuf>,
    /// JSON file with `client_id` and `client_secret` of a client holding
    /// `castellan.decisions:<policy service>`: every decision is shipped
    /// to the authority's decision log. Without it decisions are only logged here.
    #[arg(long, env = "ORDERS_DECISION_LOG_CREDENTIALS")]
    decision_log_credentials: Option<PathBuf>,
    /// Keep the last good policy bundle in this file, so a restart while the
    /// authority is away still decides.
    #[arg(long, env = "ORDERS_POLICY_CACHE")]
    policy_cache: Option<PathBuf>,
    /// Also trust this PEM CA certificate when the authority is `https://`.
    #[arg(long, env = "ORDERS_CA_FILE")]
    ca_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let directory = match &args.data {
        Some(path) => Directory::load(path).with_context(|| format!("data file `{}`", path.display()))?,
        None => {
            tracing::info!("no --data file: using the built-in demo data");
            Directory::demo()
        }
    };
    let decision_log = args
        .decision_log_credentials
        .as_deref()
        .map(ClientCredentials::load)
        .transpose()?;

    let mut builder = Verifier::builder(&args.authority, &args.audience);
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("CA file `{}`", path.display()))?;
        builder = builder.root_certificate_pem(pem);
    }
    let verifier = builder
        .connect()
        .await
        .with_context(|| format!("connecting to the authority at `{}`", args.authority))?;

    let settings = Settings {
        policy_service: args.policy_service,
        decision_log,
        policy_cache: args.policy_cache,
        ..Settings::default()
    };
    let service = orders_service::start(
        verifier,
        Arc::new(directory),
        settings,
        Arc::new(castellan_core::SystemClock),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on `{}`", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, audience = %args.audience, "orders service listening");
    orders_service::serve(listener, service, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

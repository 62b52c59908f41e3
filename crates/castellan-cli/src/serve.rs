//! `castellan serve` and `castellan config check`.

use crate::cli::LogFormat;
use anyhow::Context;
use castellan_authority::{Authority, Config, StartEnv};
use castellan_core::SystemClock;
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where and how the authority runs. Flags override `CASTELLAN_*`
/// variables (`CASTELLAN_LISTEN`, or `CASTELLAN_KEYS__ALGORITHM` for file
/// settings), which override the config file, which overrides defaults.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CASTELLAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (SQLite store, master key, bootstrap credentials).
    #[arg(long, env = "CASTELLAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user:password@host/db`) for several authority
    /// nodes sharing one database; omitted: the embedded SQLite store under the data dir.
    #[arg(long, env = "CASTELLAN_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Issuer URL (default: http:// + the listen address).
    #[arg(long, env = "CASTELLAN_ISSUER")]
    pub issuer: Option<String>,
    /// SPIFFE trust domain of the internal CA.
    #[arg(long, env = "CASTELLAN_TRUST_DOMAIN")]
    pub trust_domain: Option<String>,
    /// TOML config file.
    #[arg(long, env = "CASTELLAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also listen here with mTLS for workloads (SVID renewal, RFC 8705
    /// tls_client_auth); port 0 picks a free port.
    #[arg(long, env = "CASTELLAN_MTLS_LISTEN", value_name = "ADDR")]
    pub mtls_listen: Option<SocketAddr>,
}

fn build_config(file: Option<PathBuf>, args: &ServeArgs) -> anyhow::Result<Config> {
    let file = file.or_else(|| args.config.clone());
    let mut config = Config::load(file.as_deref(), std::env::vars())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(i) = &args.issuer {
        config.issuer = Some(i.clone());
    }
    if let Some(td) = &args.trust_domain {
        config.trust_domain = Some(td.clone());
    }
    if let Some(m) = args.mtls_listen {
        config.ca.mtls_listen = Some(m);
    }
    if let Some(db) = &args.database {
        config.database.url = Some(castellan_authority::config::DatabaseUrl::new(db));
    }
    config.validate()?;
    Ok(config)
}

pub fn check(file: Option<PathBuf>, args: ServeArgs, json: bool) -> anyhow::Result<()> {
    let config = build_config(file, &args)?;
    if json {
        out!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        out!(
            "config ok: issuer {}, data dir {}",
            config.issuer(),
            config.data_dir.display()
        );
    }
    Ok(())
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
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
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

pub async fn run(args: ServeArgs, log: LogFormat) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logging(log);
    let mut config = build_config(None, &args)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    config.listen = listener.local_addr()?;
    let mtls = match config.ca.mtls_listen {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (mtls)"))?;
            config.ca.mtls_listen = Some(l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    let authority = Authority::open(config, &StartEnv::from_process(), Arc::new(SystemClock)).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        issuer = %authority.issuer(),
        data_dir = %authority.config().data_dir.display(),
        ready_ms = format!("{ready_ms:.1}"),
        "castellan authority ready"
    );
    if std::fs::metadata(authority.bootstrap_file()).is_ok() {
        tracing::info!(file = %authority.bootstrap_file().display(), "admin credentials for the CLI: --credentials FILE");
    }
    // The address this node listens on; with --issuer (a cluster behind a
    // load balancer) the issuer may be another URL, logged above.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", authority.config().listen)?;
    out.flush()?;
    drop(out);
    if let Some(m) = authority.config().mtls_url() {
        tracing::info!(url = %m, "mtls for workloads (svid renewal, tls_client_auth)");
    }
    let Some(mtls) = mtls else {
        castellan_authority::server::serve(authority, listener, shutdown_signal()).await?;
        return Ok(());
    };
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // Either listener failing (the mTLS one cannot present an SVID, say)
    // stops the process, rather than advertising an endpoint that is gone.
    tokio::try_join!(
        castellan_authority::server::serve(authority.clone(), listener, until(stop_rx.clone())),
        async {
            castellan_authority::mtls::serve_mtls(authority, mtls, until(stop_rx))
                .await
                .map_err(|e| std::io::Error::other(format!("mtls listener: {e}")))
        },
    )?;
    Ok(())
}

//! `castellan gate`.

use crate::cli::LogFormat;
use anyhow::Context;
use castellan_gate::{GateConfig, MtlsConfig, SpiffeId};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;

/// The verifier in front of a service.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CASTELLAN_GATE_LISTEN")]
    pub listen: SocketAddr,
    /// The service to forward admitted requests to (http://host:port). Omit with --forward-auth.
    #[arg(
        long,
        env = "CASTELLAN_GATE_UPSTREAM",
        required_unless_present = "forward_auth",
        conflicts_with = "forward_auth"
    )]
    pub upstream: Option<String>,
    /// The authority's URL.
    #[arg(long, env = "CASTELLAN_AUTHORITY")]
    pub authority: String,
    /// The audience tokens must be for.
    #[arg(long, env = "CASTELLAN_GATE_AUDIENCE")]
    pub audience: String,
    /// Clock-skew leeway (at most the authority's, e.g. `10s`).
    #[arg(long)]
    pub leeway: Option<String>,
    /// Forward-auth mode: answer 200 with identity headers or 401 (nginx auth_request, Traefik, Envoy ext_authz).
    #[arg(long)]
    pub forward_auth: bool,
    /// Staleness window for the revocation state (at most the authority's).
    #[arg(long)]
    pub staleness_window: Option<String>,
    /// Longest delegation chain (`act` links from token exchange) admitted; 0 admits no
    /// exchanged token. At most the authority's `tokens.max_delegation_depth`.
    #[arg(long, value_name = "N")]
    pub max_delegation_depth: Option<usize>,
    /// Admit only exchanged tokens: callers must act on someone's behalf.
    #[arg(long)]
    pub require_delegation: bool,
    /// Keep admitting valid tokens when the revocation state is stale (default: fail closed).
    #[arg(long)]
    pub fail_open: bool,
    /// Serve /.castellan/health, /ready and /metrics on this address too. In forward-auth
    /// mode they are served only here (every path on the main port is an authorization question).
    #[arg(long, env = "CASTELLAN_GATE_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Also trust this PEM CA certificate when the authority is `https://`.
    #[arg(long, env = "CASTELLAN_CA_FILE")]
    pub authority_ca: Option<std::path::PathBuf>,
    /// Terminate mTLS with the SVID in DIR (svid.pem, svid_key.pem, bundle.pem, as written by
    /// `castellan workload svid`/`agent`); clients must present an SVID chaining to bundle.pem.
    /// Renewed files are picked up for new connections. Bearer tokens are still required.
    #[arg(long, value_name = "DIR", env = "CASTELLAN_GATE_SVID_DIR", requires = "allow_peer")]
    pub svid_dir: Option<std::path::PathBuf>,
    /// With --svid-dir: a SPIFFE ID admitted over mTLS (repeat, or separate with commas);
    /// every other peer gets 403. Passed upstream as `x-castellan-peer-spiffe-id`.
    #[arg(
        long,
        value_name = "SPIFFE_ID",
        env = "CASTELLAN_GATE_ALLOW_PEERS",
        num_args = 1..,
        value_delimiter = ',',
        requires = "svid_dir",
        value_parser = SpiffeId::parse
    )]
    pub allow_peer: Vec<SpiffeId>,
    /// With --svid-dir: call an https:// --upstream (another gate) over mTLS, presenting this
    /// gate's SVID and requiring the upstream to present this SPIFFE ID.
    #[arg(long, value_name = "SPIFFE_ID", requires_all = ["svid_dir", "upstream"], value_parser = SpiffeId::parse)]
    pub upstream_spiffe_id: Option<SpiffeId>,
    /// Decide every request with this service's Cedar policies from the
    /// authority (`castellan policy push SERVICE ...`) before forwarding it:
    /// denied requests get 403 and never reach the upstream.
    #[arg(long, value_name = "SERVICE", env = "CASTELLAN_GATE_POLICY_SERVICE")]
    pub policy_service: Option<String>,
    /// With --policy-service: ship every decision to the authority's decision log as the
    /// client in FILE (JSON `client_id`, `client_secret`; the client needs the scope
    /// `castellan.decisions:SERVICE`). Required unless --no-decision-log.
    #[arg(
        long,
        value_name = "FILE",
        env = "CASTELLAN_GATE_DECISION_LOG_CREDENTIALS",
        requires = "policy_service",
        conflicts_with = "no_decision_log"
    )]
    pub decision_log_credentials: Option<std::path::PathBuf>,
    /// With --policy-service: keep decisions in this gate's own log lines only.
    #[arg(long, requires = "policy_service")]
    pub no_decision_log: bool,
}

pub async fn run(args: GateArgs, log: LogFormat) -> anyhow::Result<()> {
    crate::serve::init_logging(log);
    let duration = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<std::time::Duration>> {
        v.as_deref()
            .map(castellan_core::parse_duration)
            .transpose()
            .with_context(|| flag.to_owned())
    };
    let config = GateConfig {
        listen: args.listen,
        upstream: args.upstream,
        authority: args.authority.trim_end_matches('/').to_owned(),
        audience: args.audience,
        leeway: duration("--leeway", &args.leeway)?,
        staleness_window: duration("--staleness-window", &args.staleness_window)?,
        fail_open: args.fail_open,
        max_delegation_depth: args.max_delegation_depth,
        require_delegation: args.require_delegation,
        health_listen: args.health_listen,
        authority_ca_pem: match &args.authority_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read CA file `{}`", p.display()))?),
            None => None,
        },
        mtls: args.svid_dir.map(|dir| MtlsConfig {
            upstream_spiffe_id: args.upstream_spiffe_id,
            ..MtlsConfig::new(dir, args.allow_peer)
        }),
        decision_log: decision_log_credentials(
            &args.policy_service,
            args.decision_log_credentials.as_deref(),
            args.no_decision_log,
        )?,
        policy_service: args.policy_service,
    };
    let mode = if config.upstream.is_some() {
        "proxy"
    } else {
        "forward-auth"
    };
    let bound = castellan_gate::bind(config, crate::serve::shutdown_signal()).await?;
    let addr = bound.addr;
    tracing::info!(%addr, mode, "castellan gate listening");
    let mut out = std::io::stdout().lock();
    let scheme = if bound.tls { "https" } else { "http" };
    writeln!(out, "listening on {scheme}://{addr}")?;
    if let Some(h) = bound.health_addr {
        writeln!(out, "health on http://{h}")?;
    }
    out.flush()?;
    drop(out);
    bound.serve.await?;
    Ok(())
}

/// The decision-log client: read from FILE, or explicitly none.
fn decision_log_credentials(
    policy_service: &Option<String>,
    file: Option<&std::path::Path>,
    opted_out: bool,
) -> anyhow::Result<Option<castellan_gate::ClientCredentials>> {
    match (policy_service, file) {
        (Some(_), Some(path)) => Ok(Some(castellan_gate::ClientCredentials::load(path)?)),
        (Some(service), None) if !opted_out => anyhow::bail!(
            "--policy-service ships every decision to the authority: pass --decision-log-credentials FILE \
             (a client with the scope `castellan.decisions:{service}`), or --no-decision-log to keep \
             decisions in this gate's log lines only"
        ),
        _ => Ok(None),
    }
}

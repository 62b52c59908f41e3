//! `castellan workload renew` and `castellan workload agent`: renewal over
//! mTLS with the current SVID (never the join token), the authority checked
//! by its SPIFFE ID (`spiffe://<our trust domain>/castellan/authority`,
//! derived here, not taken from discovery), files replaced atomically.

use crate::admin::print;
use crate::workload::{
    check_issued, error_of, http_client, prepare_dir, svid, when, write_svid, AgentArgs, RenewArgs, SvidArgs,
    SvidResponse, BUNDLE_FILE, SVID_FILE,
};
use anyhow::{anyhow, Context};
use castellan_ca::{cert_validity, certs_from_pem, generate_workload_key_unnamed, SpiffeId};
use castellan_core::{Clock as _, SystemClock};
use castellan_workload::{CurrentMaterial, SvidSource};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The path of the authority's own SPIFFE ID in every trust domain.
const AUTHORITY_PATH: &str = "/castellan/authority";

/// What one renewal produced.
pub struct Renewed {
    id: SpiffeId,
    not_after: i64,
    renew_at: i64,
}

/// The current SVID in `dir` and the validity of its leaf.
fn current(dir: &std::path::Path) -> anyhow::Result<(Arc<SvidSource>, i64, i64)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let source = SvidSource::load(dir, provider).with_context(|| format!("no usable svid in `{}`", dir.display()))?;
    let leaf = source
        .current()
        .certified
        .cert
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("`{}` holds no leaf certificate", dir.join(SVID_FILE).display()))?;
    let (not_before, not_after) = cert_validity(&leaf)?;
    Ok((source, not_before, not_after))
}

async fn renewal_endpoint(args: &RenewArgs) -> anyhow::Result<String> {
    if let Some(e) = &args.renewal_endpoint {
        return Ok(e.clone());
    }
    let server = args.server.trim_end_matches('/');
    let http = http_client(args.ca_file.as_deref())?;
    let meta = crate::admin::discover(&http, server).await?;
    meta.pointer("/mtls_endpoint_aliases/castellan_svid_renewal_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!(
                "the authority at {server} has no mtls listener (start it with `castellan serve --mtls-listen ADDR`)"
            )
        })
}

/// Renews the SVID in `--out` once.
pub async fn renew_once(args: &RenewArgs) -> anyhow::Result<Renewed> {
    let (source, _, _) = current(&args.out)?;
    let id = source.id();
    let trust_domain = source.trust_domain().clone();
    let authority = trust_domain.workload_id(AUTHORITY_PATH)?;
    let endpoint = renewal_endpoint(args).await?;
    let material: Arc<dyn CurrentMaterial> = source;
    let tls = castellan_workload::client_config(material, authority)?;
    // Renewal is authenticated both ways by mTLS: never over plain HTTP,
    // whatever discovery (itself possibly plain HTTP) says.
    let http = reqwest::Client::builder()
        .https_only(true)
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?;
    let key = generate_workload_key_unnamed().context("cannot generate a key")?;
    let resp = http
        .post(&endpoint)
        .json(&json!({ "csr": key.csr_pem() }))
        .send()
        .await
        .with_context(|| format!("cannot renew at {endpoint} over mtls"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await.context("the authority refused to renew"));
    }
    let issued: SvidResponse = resp
        .json()
        .await
        .context("the renewal response is not the expected JSON")?;
    let got = check_issued(&issued, &trust_domain, key.pkcs8_der())?;
    if got != id {
        anyhow::bail!("the authority renewed `{got}`, but this svid is `{id}`; nothing written");
    }
    // The new SVID must chain to a CA we already trust: a renewal may
    // bring new CAs in the bundle (the next one), never a new issuer.
    let trusted = certs_from_pem(&std::fs::read(args.out.join(BUNDLE_FILE))?)?;
    let chain = certs_from_pem(issued.svid_pem.as_bytes())?;
    if chain.iter().skip(1).any(|ca| !trusted.contains(ca)) {
        anyhow::bail!("the renewed svid is issued by a CA outside the current bundle; nothing written");
    }
    write_svid(&args.out, &key, &issued)?;
    Ok(Renewed {
        id,
        not_after: issued.not_after,
        renew_at: issued.renew_at,
    })
}

pub fn print_renewed(args: &RenewArgs, r: &Renewed) -> anyhow::Result<()> {
    let v = json!({ "spiffe_id": r.id.as_str(), "not_after": r.not_after, "renew_at": r.renew_at });
    print(args.json, &v, |_| {
        out!("renewed:     {}", r.id);
        out!("expires:     {}", when(Some(r.not_after)));
        out!("renew at:    {}", when(Some(r.renew_at)));
        out!("files:       {}", args.out.display());
    })
}

/// Seconds until `at`, at least 1.
fn until(at: i64) -> Duration {
    Duration::from_secs(u64::try_from(at.saturating_sub(SystemClock.now())).unwrap_or(0).max(1))
}

/// `castellan workload agent`.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    prepare_dir(&args.renew.out)?;
    let usable = current(&args.renew.out)
        .ok()
        .filter(|(_, _, not_after)| *not_after > SystemClock.now());
    if usable.is_none() {
        let token = args
            .join_token
            .clone()
            .ok_or_else(|| anyhow!("`{}` holds no valid svid: pass --join-token", args.renew.out.display()))?;
        svid(SvidArgs {
            join_token: token,
            out: args.renew.out.clone(),
            server: args.renew.server.clone(),
            ca_file: args.renew.ca_file.clone(),
            json: false,
        })
        .await?;
    } else if args.join_token.is_some() {
        eprintln!("a valid svid is already in place: the join token is not used");
    }
    let mut renewals = 0u64;
    let mut backoff = Duration::from_secs(1);
    loop {
        let (source, not_before, not_after) = current(&args.renew.out)?;
        // Half-life: renew when half the lifetime has passed.
        let renew_at = not_before.saturating_add(not_after.saturating_sub(not_before) / 2);
        eprintln!(
            "agent: {} valid until {}; renewing at {}",
            source.id(),
            when(Some(not_after)),
            when(Some(renew_at))
        );
        drop(source);
        tokio::select! {
            () = tokio::time::sleep(until(renew_at)) => {}
            () = crate::serve::shutdown_signal() => return Ok(()),
        }
        loop {
            match renew_once(&args.renew).await {
                Ok(r) => {
                    renewals += 1;
                    backoff = Duration::from_secs(1);
                    eprintln!(
                        "agent: renewed {} (#{renewals}), valid until {}",
                        r.id,
                        when(Some(r.not_after))
                    );
                    break;
                }
                Err(e) if SystemClock.now() < not_after => {
                    eprintln!("agent: renewal failed, retrying in {}s: {e:#}", backoff.as_secs());
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = crate::serve::shutdown_signal() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    return Err(
                        e.context("the svid expired before it could be renewed; register again for a join token")
                    )
                }
            }
        }
        if args.max_renewals.is_some_and(|max| renewals >= max) {
            return Ok(());
        }
    }
}

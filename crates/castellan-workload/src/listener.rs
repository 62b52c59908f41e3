//! An mTLS listener: TLS handshake (client certificate mandatory), the
//! identity step once per connection, then HTTP/1.1 with the identity in
//! every request's extensions.

use crate::identity::{PeerIdentity, UnidentifiedPeer};
use crate::source::{CurrentBundle, CurrentMaterial, CurrentSvid};
use axum::extract::ConnectInfo;
use axum::Router;
use castellan_verify::PresentedCertificate;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::NoServerSessionStorage;
use rustls::ServerConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A handshake must finish within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The server side: the current SVID, client certificates verified against
/// the current bundle, both swapped on reload for new handshakes.
///
/// # Errors
/// A rustls error when the provider supports no safe protocol version.
pub fn server_config(source: &Arc<dyn CurrentMaterial>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(source.provider().clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(CurrentBundle(source.clone())))
        .with_cert_resolver(Arc::new(CurrentSvid(source.clone())));
    // Every connection verifies its client against the bundle in force: a
    // resumed session would skip that, past a rotation or an SVID's expiry.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The identity of a connection's peer, as put into request extensions.
#[derive(Clone)]
enum Peer {
    Identified(PeerIdentity),
    Unidentified(UnidentifiedPeer),
}

/// The metric names a listener records its handshakes under.
#[derive(Clone, Copy, Debug)]
pub struct ListenerMetrics {
    /// Counter, label `outcome` = `ok` | `failed` | `timeout`.
    pub handshakes_total: &'static str,
    /// Histogram of handshake durations in seconds.
    pub handshake_seconds: &'static str,
}

/// Accepts mTLS connections until `stop`, then waits for in-flight requests.
/// Every request carries [`ConnectInfo`], and either a [`PeerIdentity`] or an
/// [`UnidentifiedPeer`], and the [`PresentedCertificate`], in its extensions.
///
/// # Errors
/// Never at present: accept errors are logged and retried.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    stop: impl Future<Output = ()>,
    names: ListenerMetrics,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let started = Instant::now();
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    metrics::counter!(names.handshakes_total, "outcome" => "failed").increment(1);
                    tracing::debug!(%remote, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    metrics::counter!(names.handshakes_total, "outcome" => "timeout").increment(1);
                    tracing::debug!(%remote, "tls handshake timed out");
                    return;
                }
            };
            metrics::counter!(names.handshakes_total, "outcome" => "ok").increment(1);
            metrics::histogram!(names.handshake_seconds).record(started.elapsed().as_secs_f64());
            // The identity step, once per connection.
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|leaf| PresentedCertificate::from_der(leaf));
            let peer = match PeerIdentity::from_peer_certificates(tls.get_ref().1.peer_certificates()) {
                Ok(id) => {
                    tracing::debug!(%remote, peer = %id.0, "mtls peer identified");
                    Peer::Identified(id)
                }
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "mtls peer has no spiffe id");
                    Peer::Unidentified(e)
                }
            };
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                let ext = req.extensions_mut();
                ext.insert(ConnectInfo(remote));
                if let Some(c) = &certificate {
                    ext.insert(c.clone());
                }
                match &peer {
                    Peer::Identified(id) => {
                        ext.insert(id.clone());
                    }
                    Peer::Unidentified(u) => {
                        ext.insert(u.clone());
                    }
                }
                tower::Service::call(&mut app.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

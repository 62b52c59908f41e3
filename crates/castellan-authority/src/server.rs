//! Serving: the router on a listener, the scheduler beside it, graceful shutdown.

use crate::Authority;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves until `shutdown` resolves, running the key scheduler meanwhile.
pub async fn serve<F>(auth: Arc<Authority>, listener: TcpListener, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let scheduler = tokio::spawn(auth.clone().run_scheduler());
    let follower = tokio::spawn(auth.clone().run_follower());
    let auth_for_release = auth.clone();
    // Open revocation streams would hold a graceful shutdown forever: end them first.
    let closing = auth.clone();
    let shutdown = async move {
        shutdown.await;
        closing.events().close();
    };
    let app = crate::http::router(auth).layer(tower_http::trace::TraceLayer::new_for_http());
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    scheduler.abort();
    follower.abort();
    // Let another node lead at once rather than after the lease runs out.
    if let Err(e) = auth_for_release
        .store()
        .release_lease(crate::cluster::SCHEDULER_LEASE, auth_for_release.node_id())
        .await
    {
        tracing::warn!(error = %e, "could not release the scheduler lease; it expires on its own");
    }
    result
}

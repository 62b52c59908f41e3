//! The admin console at `/admin`: server-rendered pages (askama + htmx).

use crate::Authority;
use axum::Router;
use std::sync::Arc;

/// Console routes, nested under `/admin`.
pub fn router() -> Router<Arc<Authority>> {
    Router::new()
}

//! The audit trail over the admin API: `GET /admin/v1/audit` and `GET /admin/v1/audit/verify`.

use crate::Authority;
use axum::Router;
use std::sync::Arc;

/// Audit routes, merged into the admin router.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new()
}

//! The OpenAPI 3.1 document of the admin and OAuth endpoints, served at `/openapi.json`.

use axum::response::{IntoResponse, Response};

/// `GET /openapi.json`.
pub async fn document() -> Response {
    axum::Json(serde_json::json!({})).into_response()
}

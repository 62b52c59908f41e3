//! The HTTP API: `GET /orders/{id}`, `POST /orders`, `GET /healthz`.
//!
//! Every `/orders` request carries a bearer token, checked by
//! [`VerifyLayer`] (401 with RFC 6750 bodies when it is missing or bad);
//! the handler then asks the policies. Errors are JSON
//! `{"error": ..., "error_description": ...}`.

use crate::authz::{self, Action, RequestError};
use crate::data::{DataError, Directory, OrderView};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use castellan_authz::{Authorizer, AuthzRequest, Decision, DenyReason};
use castellan_verify::{VerifiedToken, Verifier, VerifyLayer};
use serde::Deserialize;
use std::sync::Arc;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Verifies tokens (the extractor needs it in the state).
    pub verifier: Verifier,
    /// Decides with the policy bundle in force.
    pub authz: Arc<Authorizer>,
    /// The service's own data.
    pub directory: Arc<Directory>,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let orders = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(read_order))
        .route_layer(VerifyLayer::new(state.verifier.clone()));
    Router::new()
        .merge(orders)
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400 `invalid_request`.
    BadRequest(String),
    /// 403 `access_denied`.
    Denied(String),
    /// 404 `not_found`.
    NotFound(String),
    /// 503 `temporarily_unavailable`, `Retry-After: 1`.
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            Self::BadRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
            Self::Denied(d) => (StatusCode::FORBIDDEN, "access_denied", d),
            Self::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            Self::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", d),
        };
        let body = Json(serde_json::json!({ "error": error, "error_description": description }));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        tracing::warn!(error = %e, "request refused: it cannot be put to the policies");
        Self::Denied(e.to_string())
    }
}

/// Lets the request through on `Allow`; every deny is an error answer.
/// Exhaustive, so a new outcome cannot slip through unhandled.
fn enforce(request: &AuthzRequest, decision: Decision) -> Result<(), ApiError> {
    let principal = request.principal().map(ToString::to_string).unwrap_or_default();
    let action = request.action().map(ToString::to_string).unwrap_or_default();
    let resource = request.resource().map(ToString::to_string).unwrap_or_default();
    tracing::info!(
        %principal,
        %action,
        %resource,
        decision = decision.label(),
        policies = ?decision.determining(),
        version = ?decision.version(),
        "authorization decision"
    );
    if !decision.errors().is_empty() {
        tracing::warn!(errors = ?decision.errors(), "policies failed to evaluate and were skipped");
    }
    match decision {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny {
            reason: DenyReason::Forbidden,
            determining,
            ..
        } => Err(ApiError::Denied(format!(
            "{action} on {resource} is forbidden by policy `{}`",
            determining.join("`, `")
        ))),
        Decision::Deny {
            reason: DenyReason::NoPermit,
            ..
        } => Err(ApiError::Denied(format!(
            "no policy permits {principal} {action} on {resource}"
        ))),
        Decision::Deny {
            reason: DenyReason::NoBundle,
            ..
        } => Err(ApiError::Unavailable(
            "no policies are in force yet; try again shortly".to_owned(),
        )),
    }
}

async fn read_order(
    State(app): State<AppState>,
    token: VerifiedToken,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let order = app
        .directory
        .order(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no order `{id}`")))?;
    let relations = app.directory.relations(&token.sub);
    let (request, decision) = authz::decide(&app.authz, &token, &relations, Action::Read, &order)?;
    enforce(&request, decision)?;
    Ok(Json(order))
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    item: String,
    #[serde(default)]
    confidential: bool,
}

async fn create_order(
    State(app): State<AppState>,
    token: VerifiedToken,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let draft = match app.directory.draft(&token.sub, &new.item, new.confidential) {
        Ok(d) => d,
        Err(DataError::UnknownPerson(_)) => {
            return Err(ApiError::Denied(format!(
                "`{}` is not a person of this service, so cannot own an order",
                token.sub
            )))
        }
        Err(e) => return Err(ApiError::BadRequest(e.to_string())),
    };
    let relations = app.directory.relations(&token.sub);
    let (request, decision) = authz::decide(&app.authz, &token, &relations, Action::Create, &draft)?;
    enforce(&request, decision)?;
    app.directory
        .insert(&draft)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::info!(order = %draft.id, owner = %draft.owner, "order created");
    Ok((StatusCode::CREATED, Json(draft)))
}

/// Ready when the verifier can verify and a policy bundle is in force.
async fn healthz(State(app): State<AppState>) -> Response {
    let version = app.authz.version();
    let ready = app.verifier.is_ready() && version.is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "policy_service": app.authz.service(),
        "policy_version": version,
        "verifier": app.verifier.status(),
    });
    (status, Json(body)).into_response()
}

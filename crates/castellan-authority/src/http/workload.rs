//! Workload identity over HTTP: registration and join tokens (admin), the
//! trust bundle (public), and SVID issuance for a join token (no admin
//! credentials: the single-use join token is the credential).

use super::admin::{json_body, require_admin};
use super::error::ApiError;
use crate::secrets::random_bytes;
use crate::Authority;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_ca::SpiffeId;
use castellan_core::HumanDuration;
use castellan_store::{JoinTokenRecord, Redeemed, StoreError, WorkloadRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/workloads", get(list).post(register))
        .route("/workloads/{id}", delete(remove))
        .route("/ca", get(list_cas))
        .route("/ca/rotate", axum::routing::post(rotate_ca))
}

/// One CA in the admin view.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaView {
    /// Its id (hash of its public key).
    pub ca_id: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// Created at.
    pub created_at: i64,
    /// Certificate validity end.
    pub not_after: Option<i64>,
}

fn ca_views(set: &crate::ca::CaSet) -> serde_json::Value {
    let cas: Vec<CaView> = set
        .records
        .iter()
        .map(|(id, state, created)| CaView {
            ca_id: id.clone(),
            state: state.as_str().to_owned(),
            created_at: *created,
            not_after: set
                .published
                .iter()
                .find(|c| c.id() == id)
                .map(castellan_ca::CaCert::not_after),
        })
        .collect();
    serde_json::json!({ "trust_domain": set.active.trust_domain().as_str(), "bundle_sequence": set.sequence, "cas": cas })
}

async fn list_cas(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    Ok(Json(ca_views(&auth.ca().current())).into_response())
}

/// Promotes the next CA now (it has been in the bundle since it was made);
/// the old one stays in the bundle until its last SVID expires.
/// `POST /admin/v1/ca/rotate` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCa {
    /// Rotate even if the next CA is younger than `ca.max_svid_ttl`.
    #[serde(default)]
    pub force: bool,
    /// Remove the active CA from the bundle at once (compromise).
    #[serde(default)]
    pub emergency: bool,
}

async fn rotate_ca(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: RotateCa = json_body(&auth, req, true).await?.unwrap_or_default();
    let set = match auth.ca().rotate(body.force, body.emergency).await {
        Ok(set) => set,
        Err(e @ crate::ca::CaManagerError::TooSoon { .. }) => return Err(ApiError::conflict(e.to_string())),
        Err(e @ crate::ca::CaManagerError::Busy) => return Err(ApiError::conflict(e.to_string())),
        Err(crate::ca::CaManagerError::Store(e)) => return Err(ApiError::server_error(&e)),
        Err(e) => return Err(ApiError::server_error(&e)),
    };
    tracing::info!(active = %set.active.id(), by = %caller.client_id, force = body.force, emergency = body.emergency, "internal CA rotated by an admin");
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::client_actor(&caller.client_id),
            "ca.rotate",
            format!("ca:{}", set.active.id()),
        )
        .detail(serde_json::json!({ "force": body.force, "emergency": body.emergency })),
    )
    .await;
    auth.announce(castellan_store::Change::Ca).await;
    Ok(Json(ca_views(&set)).into_response())
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::server_error(&e)
}

/// `POST /admin/v1/workloads` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The SPIFFE ID, inside the authority's trust domain.
    pub spiffe_id: String,
    /// SVID lifetime for this workload (default `ca.svid_ttl`).
    #[serde(default)]
    pub svid_ttl: Option<HumanDuration>,
    /// Join-token lifetime (default `ca.join_token_ttl`).
    #[serde(default)]
    pub join_token_ttl: Option<HumanDuration>,
}

/// The answer to a registration: a fresh single-use join token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// SVID lifetime, seconds.
    pub svid_ttl: i64,
    /// Single-use; exchange it with `castellan workload svid`.
    pub join_token: String,
    /// When the join token expires.
    pub join_token_expires_at: i64,
}

fn parse_id(auth: &Authority, id: &str) -> Result<SpiffeId, ApiError> {
    let id = parse_member(auth, id)?;
    if crate::mtls::is_reserved(&id) {
        return Err(ApiError::invalid_request(format!(
            "`{id}` is reserved for the authority itself (`/{}/...`)",
            crate::mtls::RESERVED_PREFIX
        )));
    }
    Ok(id)
}

/// A SPIFFE ID in the trust domain (reserved paths included: they can be deleted).
fn parse_member(auth: &Authority, id: &str) -> Result<SpiffeId, ApiError> {
    let id = SpiffeId::parse(id).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    if !id.is_member_of(auth.ca().trust_domain()) {
        return Err(ApiError::invalid_request(format!(
            "`{id}` is outside the trust domain `{}`",
            auth.ca().trust_domain().as_str()
        )));
    }
    Ok(id)
}

async fn register(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: Register = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let id = parse_id(&auth, &body.spiffe_id)?;
    let c = &auth.config().ca;
    let svid_ttl = body.svid_ttl.unwrap_or(c.svid_ttl);
    if svid_ttl.secs() < 60 || svid_ttl > c.max_svid_ttl {
        return Err(ApiError::invalid_request(format!(
            "svid_ttl must be between 1m and {}",
            c.max_svid_ttl
        )));
    }
    let join_ttl = body.join_token_ttl.unwrap_or(c.join_token_ttl);
    if join_ttl.secs() < 60 || join_ttl.secs() > 7 * 86_400 {
        return Err(ApiError::invalid_request("join_token_ttl must be between 1m and 7d"));
    }
    let now = auth.now();
    let (status, record) = match auth.store().get_workload(id.as_str()).await.map_err(store_err)? {
        Some(w) => (StatusCode::OK, w),
        None => {
            let w = WorkloadRecord {
                spiffe_id: id.to_string(),
                svid_ttl: svid_ttl.secs(),
                created_at: now,
            };
            match auth.store().insert_workload(&w).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(store_err(e)),
            }
            (StatusCode::CREATED, w)
        }
    };
    let token = format!(
        "cjt_{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>().map_err(|e| ApiError::server_error(&e))?)
    );
    let expires_at = now.saturating_add(join_ttl.secs());
    auth.store()
        .insert_join_token(&JoinTokenRecord {
            token_hash: auth.master().hash_secret(&token),
            spiffe_id: record.spiffe_id.clone(),
            expires_at,
        })
        .await
        .map_err(store_err)?;
    tracing::info!(spiffe_id = %record.spiffe_id, by = %caller.client_id, "workload registered; join token issued");
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::client_actor(&caller.client_id),
            "workload.register",
            format!("workload:{}", record.spiffe_id),
        )
        .detail(serde_json::json!({ "svid_ttl": record.svid_ttl, "join_token_expires_at": expires_at })),
    )
    .await;
    Ok((
        status,
        Json(Registered {
            spiffe_id: record.spiffe_id,
            svid_ttl: record.svid_ttl,
            join_token: token,
            join_token_expires_at: expires_at,
        }),
    )
        .into_response())
}

async fn list(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let workloads = auth.store().list_workloads().await.map_err(store_err)?;
    let views: Vec<serde_json::Value> = workloads
        .iter()
        .map(|w| serde_json::json!({"spiffe_id": w.spiffe_id, "svid_ttl": w.svid_ttl, "created_at": w.created_at}))
        .collect();
    Ok(Json(serde_json::json!({ "workloads": views })).into_response())
}

async fn remove(
    State(auth): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let id = parse_member(auth.as_ref(), &id)?;
    if !auth.store().delete_workload(id.as_str()).await.map_err(store_err)? {
        return Err(ApiError::not_found(format!("no workload `{id}`")));
    }
    tracing::info!(spiffe_id = %id, by = %caller.client_id, "workload deleted");
    auth.audit(crate::audit::AuditEntry::new(
        crate::audit::client_actor(&caller.client_id),
        "workload.delete",
        format!("workload:{id}"),
    ))
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    resp
}

/// `GET /ca/bundle.pem`: every CA certificate in force (next, active, retired).
pub async fn bundle_pem(State(auth): State<Arc<Authority>>) -> Response {
    text(auth.ca().current().bundle_pem(), "application/x-pem-file")
}

/// `GET /ca/bundle.json`: the same as a SPIFFE trust bundle.
pub async fn bundle_json(State(auth): State<Arc<Authority>>) -> Response {
    text(auth.ca().current().spiffe_bundle(60), "application/json")
}

/// `POST /workload/v1/svid` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvidRequest {
    /// The single-use join token from registration.
    pub join_token: String,
    /// A PEM or base64 DER PKCS#10 request for the workload's own key.
    pub csr: String,
}

/// An issued SVID.
#[derive(Debug, Serialize, Deserialize)]
pub struct SvidResponse {
    /// The SPIFFE ID it carries.
    pub spiffe_id: String,
    /// Leaf then issuing CA, PEM: `svid.pem`.
    pub svid_pem: String,
    /// The trust bundle, PEM: `bundle.pem`.
    pub bundle_pem: String,
    /// End of validity.
    pub not_after: i64,
    /// When to renew (half-life).
    pub renew_at: i64,
}

/// `POST /workload/v1/svid`: a join token and a CSR for an SVID.
pub async fn issue(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let body: SvidRequest = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    if body.join_token.len() > 128 {
        return Err(ApiError::invalid_grant("join token is invalid, expired or used"));
    }
    let now = auth.now();
    let hash = auth.master().hash_secret(&body.join_token);
    let token = match auth.store().redeem_join_token(&hash, now).await.map_err(store_err)? {
        Redeemed::Fresh(t) => t,
        Redeemed::Replayed(t) => {
            tracing::warn!(spiffe_id = %t.spiffe_id, "join token replayed");
            metrics::counter!("castellan_join_token_replays_total").increment(1);
            return Err(ApiError::invalid_grant("join token is invalid, expired or used"));
        }
        Redeemed::Unknown => return Err(ApiError::invalid_grant("join token is invalid, expired or used")),
    };
    let workload = auth
        .store()
        .get_workload(&token.spiffe_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::invalid_grant("the workload was deleted"))?;
    let id = SpiffeId::parse(&workload.spiffe_id).map_err(|e| ApiError::server_error(&e))?;
    if crate::mtls::is_reserved(&id) {
        // Registered before the path was reserved: never the authority's identity.
        return Err(ApiError::invalid_grant(
            "the workload's id is reserved for the authority",
        ));
    }
    issue_for(&auth, &id, body.csr.as_bytes(), workload.svid_ttl, now)
}

/// `POST /workload/v1/svid/renew` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A PEM or base64 DER PKCS#10 request for a new key, naming the same
    /// SPIFFE ID as the certificate presented.
    pub csr: String,
}

/// `POST /workload/v1/svid/renew`: a new SVID for the workload whose
/// current SVID authenticated this mTLS connection. Only on the mTLS
/// listener (elsewhere there is no peer identity) and only while the
/// workload is still registered.
pub async fn renew(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let Some(peer) = req.extensions().get::<castellan_workload::PeerIdentity>().cloned() else {
        return Err(ApiError::invalid_client(
            "renewal authenticates with the current svid: call the mtls endpoint (mtls_endpoint_aliases)",
        ));
    };
    let id = peer.0;
    if !id.is_member_of(auth.ca().trust_domain()) || crate::mtls::is_reserved(&id) {
        return Err(ApiError::invalid_client(format!("`{id}` cannot renew here")));
    }
    let body: RenewRequest = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let workload = auth
        .store()
        .get_workload(id.as_str())
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            tracing::warn!(spiffe_id = %id, "renewal refused: the workload is no longer registered");
            ApiError::invalid_grant("the workload is no longer registered")
        })?;
    metrics::counter!("castellan_svid_renewals_total").increment(1);
    issue_for(&auth, &id, body.csr.as_bytes(), workload.svid_ttl, auth.now())
}

/// Issues an SVID for `id` from `csr` (PEM, or base64 DER).
pub fn issue_for(auth: &Authority, id: &SpiffeId, csr: &[u8], ttl: i64, now: i64) -> Result<Response, ApiError> {
    let set = auth.ca().current();
    let ttl = u64::try_from(ttl).unwrap_or(3_600);
    let svid = set.active.issue_svid(csr, id, ttl, now).map_err(|e| {
        if e.is_bad_input() {
            ApiError::invalid_request(e.to_string())
        } else {
            ApiError::server_error(&e)
        }
    })?;
    metrics::counter!("castellan_svids_issued_total").increment(1);
    tracing::info!(spiffe_id = %id, serial = %svid.serial, not_after = svid.not_after, "SVID issued");
    Ok(Json(SvidResponse {
        spiffe_id: id.to_string(),
        svid_pem: svid.chain_pem(),
        bundle_pem: set.bundle_pem(),
        not_after: svid.not_after,
        renew_at: svid.renew_at(),
    })
    .into_response())
}

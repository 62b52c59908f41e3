//! The OpenAPI 3.1 document of the admin and OAuth endpoints, served at `/openapi.json`.
//!
//! Built with utoipa's builders, not `#[utoipa::path]` on the handlers: the
//! operations are listed in [`operations`], the body and answer shapes in
//! [`schemas`] (types that mirror what the handlers read and write). The
//! integration test `tests/openapi.rs` holds the document to the router: every
//! documented operation is routed, every route is documented.

mod operations;
pub mod schemas;

use crate::Authority;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};
use utoipa::openapi::security::{ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

/// The security scheme of the admin API: an access token for the authority
/// itself with scope `castellan.admin`.
pub const ADMIN_SECURITY: &str = "admin";
/// A bearer access token (userinfo).
pub const BEARER_SECURITY: &str = "bearer";
/// RFC 6749 §2.3.1 HTTP Basic client authentication.
pub const CLIENT_BASIC_SECURITY: &str = "client_secret_basic";
/// RFC 8705 `tls_client_auth` / SVID authentication on the mTLS listener.
pub const MUTUAL_TLS_SECURITY: &str = "mutual_tls";

/// The document without `servers` (the issuer is per authority).
pub fn openapi() -> OpenApi {
    let info = InfoBuilder::new()
        .title("Castellan authority")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The OAuth 2 / OpenID Connect endpoints, the workload-identity, revocation and \
             policy endpoints services and verifiers call, and the admin API (`/admin/v1`). \
             Errors are RFC 6749 §5.2 / RFC 6750 §3 bodies `{\"error\",\"error_description\"}`. \
             Clients discover endpoints from `/.well-known/openid-configuration`.",
        ))
        .build();
    let tags = [
        ("discovery", "Metadata, keys and this document"),
        ("oauth", "OAuth 2 and OpenID Connect"),
        ("workload", "Workload identity: SVIDs and the trust bundle"),
        ("revocation", "The revocation log verifiers follow"),
        ("policies", "Policy bundles and the decision log"),
        ("admin", "The admin API: clients, keys, revocation, verifiers"),
        ("admin-users", "The admin API: people"),
        ("admin-workloads", "The admin API: workloads and the CA"),
        ("admin-policies", "The admin API: policies and decisions"),
        ("admin-probe", "The admin API: canaries, probe runs and the report"),
        ("admin-audit", "The admin API: the audit trail"),
    ]
    .map(|(name, description)| TagBuilder::new().name(name).description(Some(description)).build());
    OpenApiBuilder::new()
        .info(info)
        .paths(operations::paths())
        .components(Some(components()))
        .tags(Some(tags))
        .build()
}

fn components() -> utoipa::openapi::Components {
    let admin = OAuth2::with_description(
        [Flow::ClientCredentials(ClientCredentials::new(
            super::paths::TOKEN,
            Scopes::from_iter([(crate::ADMIN_SCOPE, "Call the admin API")]),
        ))],
        "A Bearer access token from this authority's token endpoint (`client_credentials`, \
         `audience` = the issuer, scope `castellan.admin`) for a client that is still an admin. \
         Certificate-bound tokens are refused. Without it: 401 with `WWW-Authenticate: Bearer`; \
         without the scope: 403 `insufficient_scope`.",
    );
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("An RFC 9068 access token from this authority (RFC 6750)."))
        .build();
    let basic = HttpBuilder::new()
        .scheme(HttpAuthScheme::Basic)
        .description(Some(
            "`client_secret_basic`: client id and secret, form-encoded, in HTTP Basic. The other \
             methods go in the form body: `client_secret_post` (`client_id`, `client_secret`) and \
             `private_key_jwt` (`client_assertion_type`, `client_assertion`); see the request schemas.",
        ))
        .build();
    let mtls = SecurityScheme::MutualTls {
        description: Some(
            "RFC 8705 `tls_client_auth` with an SVID, on the mTLS listener (`mtls_endpoint_aliases` \
             in the metadata); tokens issued so are bound to the certificate."
                .to_owned(),
        ),
        extensions: None,
    };
    let builder = ComponentsBuilder::new()
        .security_scheme(ADMIN_SECURITY, SecurityScheme::OAuth2(admin))
        .security_scheme(BEARER_SECURITY, SecurityScheme::Http(bearer))
        .security_scheme(CLIENT_BASIC_SECURITY, SecurityScheme::Http(basic))
        .security_scheme(MUTUAL_TLS_SECURITY, mtls);
    operations::responses(schemas::register(builder)).build()
}

/// The document as JSON, built once; `None` if it could not be serialised.
fn static_document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| match serde_json::to_value(openapi()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document cannot be serialised");
            None
        }
    })
    .as_ref()
}

/// The document served by `auth`: the static part with `servers` = the issuer.
pub fn document_for(issuer: &str) -> Option<serde_json::Value> {
    let mut doc = static_document()?.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "servers".to_owned(),
            serde_json::json!([{ "url": issuer, "description": "this authority (the issuer)" }]),
        );
    }
    Some(doc)
}

/// `GET /openapi.json`.
pub async fn document(State(auth): State<Arc<Authority>>) -> Response {
    let Some(doc) = document_for(auth.issuer()) else {
        return super::error::ApiError::internal(&"the OpenAPI document is unavailable").into_response();
    };
    let mut resp = axum::Json(doc).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

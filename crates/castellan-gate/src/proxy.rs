//! Streaming reverse proxy to the one upstream.

use crate::headers::strip_identity;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

/// The service behind the gate.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

impl Upstream {
    /// Parses `http://host:port[/base]`, or `https://` when `mtls` (the
    /// upstream is another gate, reached with `--upstream-spiffe-id`).
    pub fn parse(url: &str, mtls: bool) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("--upstream `{url}`: {e}"))?;
        let want = if mtls { "https://" } else { "http://" };
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("--upstream `{url}` needs {want}"))?;
        match (mtls, scheme.as_str()) {
            (false, "http") | (true, "https") => {}
            (false, "https") => {
                return Err(format!(
                    "--upstream `{url}`: an https:// upstream needs --upstream-spiffe-id (mTLS to another gate)"
                ))
            }
            (false, _) => {
                return Err(format!(
                    "--upstream `{url}`: only http:// upstreams are supported (the gate sits beside the service)"
                ))
            }
            (true, _) => {
                return Err(format!(
                    "--upstream `{url}`: --upstream-spiffe-id needs an https:// upstream"
                ))
            }
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("--upstream `{url}` needs a host"))?;
        if uri.query().is_some() {
            return Err(format!("--upstream `{url}` must not have a query"));
        }
        Ok(Self {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        headers.remove(name);
    }
}

/// An error and its causes, for the log (a TLS refusal sits a few levels down).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn bad_gateway(detail: &str, request_id: Option<&HeaderValue>) -> Response {
    let request_id = request_id.and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::warn!(request_id, error = detail, "upstream request failed");
    metrics::counter!("castellan_gate_upstream_errors_total").increment(1);
    let body = serde_json::json!({"error": "bad_gateway", "error_description": "upstream unavailable"});
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}

/// How the gate reaches its upstream.
pub enum UpstreamClient {
    /// Plain HTTP to the service beside the gate.
    Plain(Client<HttpConnector, Body>),
    /// mTLS to another gate.
    Mtls(Client<HttpsConnector<HttpConnector>, Body>),
}

impl UpstreamClient {
    fn connector() -> HttpConnector {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector
    }

    fn builder() -> hyper_util::client::legacy::Builder {
        let mut b = Client::builder(hyper_util::rt::TokioExecutor::new());
        b.pool_idle_timeout(std::time::Duration::from_secs(60));
        b
    }

    /// Plain HTTP.
    pub fn plain() -> Self {
        Self::Plain(Self::builder().build(Self::connector()))
    }

    /// mTLS with `tls` (the gate's SVID, the upstream's SPIFFE ID checked).
    pub fn mtls(tls: rustls::ClientConfig) -> Self {
        let mut http = Self::connector();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Self::Mtls(Self::builder().build(https))
    }

    async fn request(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Self::Plain(c) => c.request(req).await,
            Self::Mtls(c) => c.request(req).await,
        }
    }
}

/// Forwards an admitted request with `identity` headers and streams the answer back.
/// `proto` is the scheme the caller used (`x-forwarded-proto`).
pub async fn forward(
    client: &UpstreamClient,
    upstream: &Upstream,
    req: Request,
    identity: HeaderMap,
    peer: std::net::SocketAddr,
    proto: &'static str,
) -> Response {
    let (mut parts, body) = req.into_parts();
    // Set by the gate before the request got here (the one it forwards).
    let request_id = parts.headers.get(castellan_core::observe::HEADER).cloned();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = match Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{}", upstream.base_path, path_and_query))
        .build()
    {
        Ok(u) => u,
        Err(_) => return bad_gateway("cannot build upstream URI", request_id.as_ref()),
    };
    let original_host = parts.headers.remove(header::HOST);
    strip_hop_by_hop(&mut parts.headers);
    strip_identity(&mut parts.headers);
    parts.headers.extend(identity);
    if let Some(host) = original_host {
        parts.headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    parts.headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    // Append the caller to X-Forwarded-For, keeping what came before.
    let xff = HeaderName::from_static("x-forwarded-for");
    let chain = match parts.headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        parts.headers.insert(xff, v);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let upstream_req = http::Request::from_parts(parts, body);
    match client.request(upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => bad_gateway(&error_chain(&e), request_id.as_ref()),
    }
}

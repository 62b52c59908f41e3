//! The verifier in front of handlers: a tower [`Layer`](tower::Layer) and an
//! axum extractor, answering RFC 6750 errors.

use crate::{PresentedCertificate, Rejection, VerifiedToken, Verifier};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The bearer token of a request. `Ok(None)` when there is no
/// `Authorization` header; an error when there is one we cannot read.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(Rejection::Malformed("more than one Authorization header".to_owned()));
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::Malformed("Authorization header is not ASCII".to_owned()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(Rejection::Malformed("empty bearer token".to_owned()))
            } else {
                Ok(Some(token))
            }
        }
        _ => Ok(None),
    }
}

/// The RFC 6750 answer to a rejection: 401 with `WWW-Authenticate: Bearer`
/// (with `error="invalid_token"` when a token was sent), or 503 when the
/// verifier cannot decide (stale revocation state, no keys yet).
pub fn rejection_response(rejection: &Rejection) -> Response {
    let (status, challenge) = if rejection.is_invalid_token() {
        (
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer realm="castellan", error="invalid_token", error_description="{}""#,
                rejection.to_string().replace(['"', '\\'], "'")
            ),
        )
    } else if *rejection == Rejection::Missing {
        (StatusCode::UNAUTHORIZED, r#"Bearer realm="castellan""#.to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, String::new())
    };
    let body = serde_json::json!({
        "error": if rejection.is_invalid_token() { "invalid_token" } else if status == StatusCode::UNAUTHORIZED { "invalid_request" } else { "temporarily_unavailable" },
        "error_description": rejection.to_string(),
    });
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        if !challenge.is_empty() {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Verifies the request's token with `verifier`, as arrived with no client
/// certificate (a certificate-bound token is refused).
pub async fn verify_request(verifier: &Verifier, headers: &HeaderMap) -> Result<VerifiedToken, Rejection> {
    verify_request_presented(verifier, headers, None).await
}

/// Verifies the request's token with `verifier`, checking a certificate
/// binding against `presented`: the client certificate of the connection the
/// request came on, as the TLS terminator put it into the request extensions.
pub async fn verify_request_presented(
    verifier: &Verifier,
    headers: &HeaderMap,
    presented: Option<&PresentedCertificate>,
) -> Result<VerifiedToken, Rejection> {
    match bearer(headers)? {
        Some(token) => verifier.verify_presented(token, presented).await,
        None => Err(Rejection::Missing),
    }
}

/// Admits requests with a valid token; puts the [`VerifiedToken`] into the
/// request extensions; answers everything else with RFC 6750 errors. A
/// [`PresentedCertificate`] in the request extensions (put there by whatever
/// terminated TLS) is checked against a certificate-bound token.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    /// A layer using `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;
    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around handlers.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> tower::Service<Request<Body>> for VerifyService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let verifier = self.verifier.clone();
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let verified =
                verify_request_presented(&verifier, req.headers(), req.extensions().get::<PresentedCertificate>())
                    .await;
            match verified {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(rejection) => Ok(rejection_response(&rejection)),
            }
        })
    }
}

/// Rejection of the extractor, rendered per RFC 6750.
#[derive(Debug)]
pub struct RejectionResponse(pub Rejection);

impl IntoResponse for RejectionResponse {
    fn into_response(self) -> Response {
        rejection_response(&self.0)
    }
}

/// `VerifiedToken` as an axum extractor: taken from the extensions when a
/// [`VerifyLayer`] already verified the request, otherwise verified here
/// with the [`Verifier`] in the router state (and the [`PresentedCertificate`]
/// in the extensions, if any).
impl<S> FromRequestParts<S> for VerifiedToken
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = RejectionResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts.extensions.get::<VerifiedToken>() {
            return Ok(token.clone());
        }
        let verifier = Verifier::from_ref(state);
        verify_request_presented(
            &verifier,
            &parts.headers,
            parts.extensions.get::<PresentedCertificate>(),
        )
        .await
        .map_err(RejectionResponse)
    }
}

//! RFC 8693 token exchange: a service that received a person's (or another
//! service's) access token gets a token for a service it calls next, on the
//! subject's behalf. The new token keeps `sub` and `sid` (so revoking the
//! original session revokes the whole chain), narrows `aud` and scopes,
//! never outlives the subject token, and records who acts in a nested `act`.

use super::error::ApiError;
use super::form::Form;
use crate::tokens::{Grant, TokenRejection};
use crate::Authority;
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_core::Actor;
use castellan_store::ClientRecord;
use serde_json::json;

/// The grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The only token type exchanged and issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What an exchange attempt got to know, for its audit event.
#[derive(Debug, Default)]
struct Attempt {
    /// The subject of a valid subject token.
    subject: Option<String>,
    /// Its session.
    sid: Option<String>,
    /// The audience asked for.
    audience: Option<String>,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`; every
/// attempt, granted or refused, is an audit event (`token.exchange`).
pub async fn token_exchange(
    auth: &Authority,
    client: &ClientRecord,
    form: &Form,
    bound_to: Option<&str>,
) -> Result<Response, ApiError> {
    let mut attempt = Attempt::default();
    let result = exchange(auth, client, form, bound_to, &mut attempt).await;
    let target = attempt
        .subject
        .as_deref()
        .map(|s| format!("subject:{s}"))
        .unwrap_or_default();
    let mut entry =
        crate::audit::AuditEntry::new(crate::audit::client_actor(&client.client_id), "token.exchange", target);
    let mut detail = json!({ "audience": attempt.audience, "sid": attempt.sid });
    if let (Err(e), Some(obj)) = (&result, detail.as_object_mut()) {
        entry = entry.outcome(crate::audit::Outcome::Failure);
        obj.insert("error".to_owned(), json!(e.code()));
        obj.insert("error_description".to_owned(), json!(e.description()));
    }
    auth.audit(entry.detail(detail)).await;
    result
}

async fn exchange(
    auth: &Authority,
    client: &ClientRecord,
    form: &Form,
    bound_to: Option<&str>,
    attempt: &mut Attempt,
) -> Result<Response, ApiError> {
    if client.public {
        return Err(ApiError::unauthorized_client("a public client cannot exchange tokens"));
    }
    let Some(serves) = client.serves.as_deref() else {
        return Err(ApiError::unauthorized_client(
            "this client serves no audience, so it has no tokens to exchange (register it with `serves`)",
        ));
    };
    let subject_token = form
        .get("subject_token")
        .ok_or_else(|| ApiError::invalid_request("subject_token is required"))?;
    match form.get("subject_token_type") {
        Some(ACCESS_TOKEN_TYPE) => {}
        Some(_) => {
            return Err(ApiError::invalid_request(format!(
                "subject_token_type must be `{ACCESS_TOKEN_TYPE}`"
            )))
        }
        None => return Err(ApiError::invalid_request("subject_token_type is required")),
    }
    if form.get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(ApiError::invalid_request(format!(
            "requested_token_type must be `{ACCESS_TOKEN_TYPE}`"
        )));
    }
    if form.get("actor_token").is_some() {
        return Err(ApiError::invalid_request(
            "actor_token is not accepted: the authenticated client is the actor",
        ));
    }
    let subject = match auth.check_access_token(subject_token).await {
        Ok((c, _)) => c,
        Err(TokenRejection::Store(e)) => return Err(ApiError::server_error(&e)),
        Err(e) => return Err(ApiError::invalid_request(format!("subject_token is not valid: {e}"))),
    };
    attempt.subject = Some(subject.sub.clone());
    attempt.sid = Some(subject.sid.clone());
    if subject.aud != serves {
        return Err(ApiError::invalid_request(
            "subject_token was not addressed to this client's service: a service exchanges only tokens sent to it",
        ));
    }
    let aud = match form.audiences().as_slice() {
        [one] => {
            attempt.audience = Some(one.chars().take(256).collect());
            (*one).to_owned()
        }
        [] => {
            return Err(ApiError::invalid_target(
                "name the next service with `audience` or `resource`",
            ))
        }
        _ => return Err(ApiError::invalid_target("a token is for exactly one audience")),
    };
    if !client.exchange_audiences.contains(&aud) {
        let shown: String = aud.chars().take(64).collect();
        return Err(ApiError::invalid_target(format!(
            "this client may not exchange toward `{shown}`"
        )));
    }
    let scope = narrow(subject.scope.as_deref(), form.get("scope"))?;
    let act = Actor {
        sub: client.client_id.clone(),
        act: subject.act.clone().map(Box::new),
    };
    let max_depth = auth.config().tokens.max_delegation_depth;
    if act.depth() > max_depth {
        return Err(ApiError::invalid_request(format!(
            "the delegation chain would be {} links long; at most {max_depth} are allowed",
            act.depth()
        )));
    }
    let now = auth.now();
    let ttl = auth
        .config()
        .tokens
        .lifetime_for(client.access_token_ttl)
        .min(subject.exp.saturating_sub(now));
    if ttl < 1 {
        return Err(ApiError::invalid_request("subject_token expires now"));
    }
    let issued = auth.issue_access_token_in(
        Grant {
            kind: "token_exchange",
            client_id: &client.client_id,
            sub: &subject.sub,
            aud: &aud,
            sid: &subject.sid,
            act: Some(&act),
            bound_to,
        },
        scope.clone(),
        ttl,
    )?;
    let mut body = json!({
        "access_token": issued.token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    });
    if let (Some(scope), Some(obj)) = (scope, body.as_object_mut()) {
        obj.insert("scope".to_owned(), json!(scope));
    }
    tracing::info!(
        client_id = %client.client_id, sub = %subject.sub, from = %subject.aud, to = %aud,
        sid = %subject.sid, depth = act.depth(), "token exchanged"
    );
    Ok(Json(body).into_response())
}

/// The subject's scopes, or fewer; never more.
fn narrow(granted: Option<&str>, requested: Option<&str>) -> Result<Option<String>, ApiError> {
    let has = |s: &str| granted.is_some_and(|g| g.split(' ').any(|x| x == s));
    let Some(requested) = requested else {
        return Ok(granted.map(str::to_owned));
    };
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !has(s) {
            let shown: String = s.chars().take(64).collect();
            return Err(ApiError::invalid_scope(format!(
                "scope `{shown}` is not in the subject token"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

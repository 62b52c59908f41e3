//! The console's actions (POST): each checks the session and its CSRF
//! token, asks for confirmation when it is destructive (a page with a
//! second form, so it holds without JavaScript), calls the same function
//! the admin API calls, records an audit event as `user:<id>`, and sends
//! the browser back to the page it came from.

use super::pages::{chrome, failed, not_found_page};
use super::session::{posted, Admin};
use super::{render, Chrome, MessagePage, CONSOLE_PATH};
use crate::audit::{AuditEntry, Outcome};
use crate::http::error::ApiError;
use crate::http::form::Form;
use crate::Authority;
use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use castellan_store::KeyState;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    c: Chrome,
    title: String,
    message: String,
    action: String,
    fields: Vec<(String, String)>,
    button: String,
    cancel: String,
}

/// What a destructive action asks before it acts.
struct Confirm<'a> {
    section: &'static str,
    title: &'a str,
    message: String,
    action: String,
    fields: Vec<(&'a str, String)>,
    button: &'a str,
    cancel: String,
}

fn confirmed(form: &Form) -> bool {
    form.get("confirm") == Some("yes")
}

fn ask(auth: &Authority, admin: &Admin, c: Confirm<'_>) -> Response {
    let page = ConfirmPage {
        c: chrome(admin, c.section, &HashMap::new()),
        title: c.title.to_owned(),
        message: c.message,
        action: c.action,
        fields: c.fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        button: c.button.to_owned(),
        cancel: c.cancel,
    };
    admin.respond(auth, render(StatusCode::OK, &page))
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn back(auth: &Authority, admin: &Admin, to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    admin.respond(auth, resp)
}

fn refused(auth: &Authority, admin: &Admin, e: &ApiError) -> Response {
    admin.respond(
        auth,
        render(
            e.status(),
            &MessagePage {
                c: chrome(admin, "", &HashMap::new()),
                title: "Not done".to_owned(),
                message: e.description().to_owned(),
                link: String::new(),
                link_text: String::new(),
            },
        ),
    )
}

/// `POST /admin/keys/rotate` (`emergency=yes` withdraws the active key).
pub async fn rotate_keys(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let (admin, form) = match posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let emergency = form.get("emergency") == Some("yes");
    let active = auth
        .keys()
        .current()
        .infos
        .iter()
        .find(|k| k.state == KeyState::Active)
        .map(|k| k.kid.clone())
        .unwrap_or_default();
    if !confirmed(&form) {
        let (title, message, button) = if emergency {
            (
                "Withdraw the active key?",
                format!(
                    "Key {active} leaves the JWKS at once and every token it signed is refused by \
                     every verifier within seconds; people and services must get new tokens. The \
                     next key starts signing now. Do this only if the key may be compromised."
                ),
                "Withdraw key now",
            )
        } else {
            (
                "Rotate the signing keys?",
                format!(
                    "The next key starts signing (once live verifiers hold it) and key {active} is \
                     retired: still published until its last token expires, then removed."
                ),
                "Rotate now",
            )
        };
        return ask(
            &auth,
            &admin,
            Confirm {
                section: "keys",
                title,
                message,
                action: format!("{CONSOLE_PATH}/keys/rotate"),
                fields: vec![("emergency", if emergency { "yes" } else { "no" }.to_owned())],
                button,
                cancel: format!("{CONSOLE_PATH}/keys"),
            },
        );
    }
    // In its own task: a browser that goes away during the acknowledgement
    // wait must not cancel a rotation half-way.
    let rotating = auth.clone();
    let outcome = tokio::spawn(async move { rotating.rotate_keys(emergency).await }).await;
    let action = if emergency { "key.withdraw" } else { "key.rotate" };
    let entry = AuditEntry::new(admin.actor(), action, format!("key:{active}"));
    match outcome {
        Ok(Ok(o)) => {
            let new_active = o
                .keys
                .infos
                .iter()
                .find(|k| k.state == KeyState::Active)
                .map(|k| k.kid.clone());
            auth.audit(entry.detail(json!({
                "emergency": emergency,
                "active": new_active,
                "laggards": o.laggards,
                "via": "console",
            })))
            .await;
            let done = if emergency { "withdrawn" } else { "rotated" };
            back(&auth, &admin, &format!("{CONSOLE_PATH}/keys?done={done}"))
        }
        Ok(Err(e)) => {
            auth.audit(entry.outcome(Outcome::Failure)).await;
            let e = match e {
                crate::keys::KeyError::Busy => ApiError::conflict(e.to_string()),
                other => ApiError::server_error(&other),
            };
            refused(&auth, &admin, &e)
        }
        Err(e) => {
            auth.audit(entry.outcome(Outcome::Failure)).await;
            failed(&admin, &auth, &e.to_string())
        }
    }
}

async fn person_named(auth: &Authority, admin: &Admin, name: &str) -> Result<castellan_store::UserRecord, Response> {
    match auth.find_user(name).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(not_found_page(admin, auth, "There is no such person.")),
        Err(e) => Err(refused(auth, admin, &e)),
    }
}

/// `POST /admin/people/{name}/suspend`: no sign-in, every session ended.
pub async fn suspend(State(auth): State<Arc<Authority>>, Path(name): Path<String>, req: Request) -> Response {
    let (admin, form) = match posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let user = match person_named(&auth, &admin, &name).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let page = format!("{CONSOLE_PATH}/people/{}", seg(&user.username));
    if !confirmed(&form) {
        let yourself = if user.user_id == admin.user.user_id {
            " This is you: your console session ends too."
        } else {
            ""
        };
        return ask(
            &auth,
            &admin,
            Confirm {
                section: "people",
                title: "Suspend this person?",
                message: format!(
                    "{} can no longer sign in or refresh, every session of theirs ends now and \
                     verifiers refuse their tokens within seconds.{yourself}",
                    user.username
                ),
                action: format!("{page}/suspend"),
                fields: Vec::new(),
                button: "Suspend",
                cancel: page,
            },
        );
    }
    let entry = AuditEntry::new(admin.actor(), "user.suspend", format!("user:{}", user.user_id));
    match auth.suspend_user(&user).await {
        Ok(ended) => {
            auth.audit(entry.detail(json!({ "ended_sessions": ended.ended_sessions, "via": "console" })))
                .await;
            tracing::warn!(user_id = %user.user_id, ended = ended.ended_sessions, by = %admin.actor(), "user suspended");
            back(&auth, &admin, &format!("{page}?done=suspended"))
        }
        Err(e) => {
            auth.audit(entry.outcome(Outcome::Failure)).await;
            refused(&auth, &admin, &e)
        }
    }
}

/// `POST /admin/people/{name}/resume`: may sign in again (not destructive: no confirmation).
pub async fn resume(State(auth): State<Arc<Authority>>, Path(name): Path<String>, req: Request) -> Response {
    let (admin, _) = match posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let user = match person_named(&auth, &admin, &name).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let entry = AuditEntry::new(admin.actor(), "user.resume", format!("user:{}", user.user_id));
    match auth.resume_user(&user).await {
        Ok(()) => {
            auth.audit(entry.detail(json!({ "via": "console" }))).await;
            tracing::info!(user_id = %user.user_id, by = %admin.actor(), "user resumed");
            back(
                &auth,
                &admin,
                &format!("{CONSOLE_PATH}/people/{}?done=resumed", seg(&user.username)),
            )
        }
        Err(e) => {
            auth.audit(entry.outcome(Outcome::Failure)).await;
            refused(&auth, &admin, &e)
        }
    }
}

/// `POST /admin/people/{name}/sessions/{sid}/revoke`: ends one session.
pub async fn revoke_session(
    State(auth): State<Arc<Authority>>,
    Path((name, sid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (admin, form) = match posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let user = match person_named(&auth, &admin, &name).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match auth.store().get_session(&sid).await {
        Ok(Some(s)) if s.user_id == user.user_id => {}
        Ok(_) => return not_found_page(&admin, &auth, "This person has no such session."),
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    }
    let page = format!("{CONSOLE_PATH}/people/{}", seg(&user.username));
    if !confirmed(&form) {
        return ask(
            &auth,
            &admin,
            Confirm {
                section: "people",
                title: "Revoke this session?",
                message: format!(
                    "Session {sid} of {} ends now: it cannot be refreshed and verifiers refuse \
                     its tokens within seconds.",
                    user.username
                ),
                action: format!("{page}/sessions/{}/revoke", seg(&sid)),
                fields: Vec::new(),
                button: "Revoke session",
                cancel: page,
            },
        );
    }
    let entry = AuditEntry::new(admin.actor(), "session.revoke", format!("session:{sid}"));
    match auth.end_session(&sid).await {
        Ok(seq) => {
            auth.audit(entry.detail(json!({ "user": user.user_id, "seq": seq, "via": "console" })))
                .await;
            back(&auth, &admin, &format!("{page}?done=revoked"))
        }
        Err(e) => {
            auth.audit(entry.outcome(Outcome::Failure)).await;
            refused(&auth, &admin, &e)
        }
    }
}

/// `POST /admin/policies/{service}/rollback` (`version`): stores that version again.
pub async fn rollback(State(auth): State<Arc<Authority>>, Path(service): Path<String>, req: Request) -> Response {
    let (admin, form) = match posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    if !crate::http::policies::valid_service(&service) {
        return not_found_page(&admin, &auth, "There is no such service.");
    }
    let Some(version) = form.get("version").and_then(|v| v.parse::<i64>().ok()) else {
        return refused(
            &auth,
            &admin,
            &ApiError::invalid_request("choose a version to roll back to"),
        );
    };
    let page = format!("{CONSOLE_PATH}/policies/{}", seg(&service));
    if !confirmed(&form) {
        return ask(
            &auth,
            &admin,
            Confirm {
                section: "policies",
                title: "Roll back these policies?",
                message: format!(
                    "Version {version} of {service} is stored again as a new version and put in \
                     force; every service fetches it within seconds."
                ),
                action: format!("{page}/rollback"),
                fields: vec![("version", version.to_string())],
                button: "Roll back",
                cancel: page,
            },
        );
    }
    // A successful rollback is audited where the version is stored (as for the admin API).
    match crate::http::policies::rollback_to(&auth, &service, version, &admin.actor(), admin.actor()).await {
        Ok(_) => back(&auth, &admin, &format!("{page}?done=rolledback")),
        Err(e) => {
            let entry = AuditEntry::new(admin.actor(), "policy.rollback", format!("policy:{service}"));
            auth.audit(
                entry
                    .outcome(Outcome::Failure)
                    .detail(json!({ "to": version, "via": "console" })),
            )
            .await;
            refused(&auth, &admin, &e)
        }
    }
}

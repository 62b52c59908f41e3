//! The console's pages (GET): each checks the session, reads what it shows
//! through the same functions the admin API uses, and renders.

use super::session::{require, Admin};
use super::{render, when, Chrome, MessagePage};
use crate::http::report::{parse_run, platform_report, KEEP_RUNS};
use crate::Authority;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use castellan_core::platform::Severity;
use castellan_store::{DecisionQuery, KeyState};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// The line shown after an action, by the `done` parameter its redirect carries.
fn notice(params: &HashMap<String, String>) -> String {
    match params.get("done").map(String::as_str) {
        Some("rotated") => "Keys rotated: the next key signs now and the previous one is retired.",
        Some("withdrawn") => "The active key was withdrawn: its tokens are refused everywhere, a new key signs now.",
        Some("suspended") => "Suspended: every session of this person has ended and their tokens are revoked.",
        Some("resumed") => "Resumed: this person may sign in again.",
        Some("revoked") => "Session revoked.",
        Some("rolledback") => "Rolled back: the chosen version is in force again, as a new version.",
        _ => "",
    }
    .to_owned()
}

pub(super) fn chrome(admin: &Admin, section: &'static str, params: &HashMap<String, String>) -> Chrome {
    Chrome {
        username: admin.user.username.clone(),
        csrf: admin.session.csrf.clone(),
        section,
        notice: notice(params),
    }
}

/// A store failure as a page.
pub(super) fn failed(admin: &Admin, auth: &Authority, detail: &str) -> Response {
    tracing::error!(detail, "console: page failed");
    admin.respond(
        auth,
        render(
            StatusCode::SERVICE_UNAVAILABLE,
            &MessagePage {
                c: chrome(admin, "", &HashMap::new()),
                title: "Unavailable".to_owned(),
                message: "This page cannot be shown right now. Try again shortly.".to_owned(),
                link: String::new(),
                link_text: String::new(),
            },
        ),
    )
}

macro_rules! admin_or_return {
    ($auth:expr, $headers:expr) => {
        match require(&$auth, &$headers).await {
            Ok(a) => a,
            Err(resp) => return resp,
        }
    };
}

/// One finding of the platform report.
pub struct FindingView {
    /// One line.
    pub title: String,
    /// The stage it holds the platform below.
    pub blocks: u8,
    /// The facts.
    pub evidence: Vec<String>,
    /// What to do.
    pub remedy: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    c: Chrome,
    stage: u8,
    stage_name: String,
    stages: Vec<(&'static str, bool)>,
    alerts: Vec<FindingView>,
    notices: Vec<FindingView>,
    active_kid: String,
    next_kid: String,
    live_verifiers: usize,
    verifiers: usize,
    services: usize,
    probe_runs: usize,
}

/// `GET /admin`: the stage the platform is at, and what holds it back.
pub async fn overview(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let report = match platform_report(&auth).await {
        Ok(r) => r,
        Err(e) => return failed(&admin, &auth, e.description()),
    };
    let view = |f: &castellan_core::platform::Finding| FindingView {
        title: f.title.clone(),
        blocks: f.blocks,
        evidence: f.evidence.clone(),
        remedy: f.remedy.clone(),
    };
    let stages = castellan_core::platform::STAGES
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, i < usize::from(report.stage)))
        .collect();
    let page = OverviewPage {
        c: chrome(&admin, "overview", &q),
        stage: report.stage,
        stage_name: report.stage_name.clone(),
        stages,
        alerts: report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
            .map(view)
            .collect(),
        notices: report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Notice)
            .map(view)
            .collect(),
        active_kid: report.keys.active_kid.clone().unwrap_or_else(|| "-".to_owned()),
        next_kid: report.keys.next_kid.clone().unwrap_or_else(|| "-".to_owned()),
        live_verifiers: report.verifiers.iter().filter(|v| v.live).count(),
        verifiers: report.verifiers.len(),
        services: report.services.len(),
        probe_runs: report.probe_runs.len(),
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct KeyRow {
    kid: String,
    alg: String,
    state: &'static str,
    created: String,
    activated: String,
    retired: String,
    remove_at: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    c: Chrome,
    keys: Vec<KeyRow>,
    rotation_interval: String,
}

fn state_rank(s: KeyState) -> u8 {
    match s {
        KeyState::Next => 0,
        KeyState::Active => 1,
        KeyState::Retired => 2,
        KeyState::Withdrawn => 3,
        KeyState::Removed => 4,
    }
}

/// `GET /admin/keys`: the key timeline, newest first.
pub async fn keys(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let set = auth.keys().current();
    let mut infos = set.infos.clone();
    infos.sort_by(|a, b| {
        state_rank(a.state)
            .cmp(&state_rank(b.state))
            .then(b.created_at.cmp(&a.created_at))
    });
    let keys = infos
        .iter()
        .map(|k| KeyRow {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.as_str(),
            created: when(Some(k.created_at)),
            activated: when(k.activated_at),
            retired: when(k.retired_at),
            remove_at: when(k.remove_at),
        })
        .collect();
    let page = KeysPage {
        c: chrome(&admin, "keys", &q),
        keys,
        rotation_interval: castellan_core::format_duration(auth.config().keys.rotation_interval.0),
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct VerifierRow {
    id: String,
    audience: String,
    kind: String,
    kids: String,
    last_seq: i64,
    lag: i64,
    last_seen: String,
    live: bool,
    transport: String,
}

#[derive(Template)]
#[template(path = "console/verifiers.html")]
struct VerifiersPage {
    c: Chrome,
    latest_seq: i64,
    verifiers: Vec<VerifierRow>,
}

/// `GET /admin/verifiers`: every verifier heard from, the kids it holds, its lag.
pub async fn verifiers(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let latest_seq = match auth.store().latest_revocation_seq().await {
        Ok(s) => s,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let verifiers = auth
        .verifier_views()
        .await
        .into_iter()
        .map(|v| VerifierRow {
            id: v.verifier_id,
            audience: v.audience,
            kind: v.kind.unwrap_or_else(|| "-".to_owned()),
            kids: v.kids.join(", "),
            last_seq: v.last_seq,
            lag: v.stream_lag,
            last_seen: when(Some(v.last_seen)),
            live: v.live,
            transport: v.transport.unwrap_or_else(|| "-".to_owned()),
        })
        .collect();
    let page = VerifiersPage {
        c: chrome(&admin, "verifiers", &q),
        latest_seq,
        verifiers,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    audiences: String,
    redirect_uris: String,
    created: String,
}

struct WorkloadRow {
    spiffe_id: String,
    svid_ttl: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    c: Chrome,
    clients: Vec<ClientRow>,
    workloads: Vec<WorkloadRow>,
    console_client: &'static str,
}

/// `GET /admin/clients`: clients and workloads.
pub async fn clients(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let (clients, workloads) = match (auth.store().list_clients().await, auth.store().list_workloads().await) {
        (Ok(c), Ok(w)) => (c, w),
        (Err(e), _) | (_, Err(e)) => return failed(&admin, &auth, &e.to_string()),
    };
    let clients = clients
        .iter()
        .map(|c| ClientRow {
            id: c.client_id.clone(),
            name: c.name.clone(),
            kind: if c.admin {
                "admin"
            } else if c.public {
                "public (PKCE)"
            } else if c.tls_client_auth_san_uri.is_some() {
                "mTLS"
            } else if c.jwks.is_some() {
                "private_key_jwt"
            } else {
                "secret"
            },
            audiences: c.audiences.join(", "),
            redirect_uris: c.redirect_uris.join(", "),
            created: when(Some(c.created_at)),
        })
        .collect();
    let workloads = workloads
        .iter()
        .map(|w| WorkloadRow {
            spiffe_id: w.spiffe_id.clone(),
            svid_ttl: castellan_core::format_duration(std::time::Duration::from_secs(
                u64::try_from(w.svid_ttl).unwrap_or(0),
            )),
            created: when(Some(w.created_at)),
        })
        .collect();
    let page = ClientsPage {
        c: chrome(&admin, "clients", &q),
        clients,
        workloads,
        console_client: super::CLIENT_ID,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct PersonRow {
    username: String,
    suspended: bool,
    admin: bool,
    sessions: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage {
    c: Chrome,
    people: Vec<PersonRow>,
}

/// `GET /admin/people`: everyone, with their live session count.
pub async fn people(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let users = match auth.store().list_users().await {
        Ok(u) => u,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let now = auth.now();
    let mut people = Vec::with_capacity(users.len());
    for u in users {
        let sessions = match auth.store().list_sessions(&u.user_id, now).await {
            Ok(s) => s.len(),
            Err(e) => return failed(&admin, &auth, &e.to_string()),
        };
        people.push(PersonRow {
            admin: auth.config().console.is_admin(&u.username),
            username: u.username,
            suspended: u.suspended,
            sessions,
            created: when(Some(u.created_at)),
        });
    }
    let page = PeoplePage {
        c: chrome(&admin, "people", &q),
        people,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct SessionRow {
    sid: String,
    client_id: String,
    audience: String,
    auth_time: String,
    last_used: String,
    expires: String,
    yours: bool,
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    c: Chrome,
    username: String,
    user_id: String,
    suspended: bool,
    admin: bool,
    created: String,
    federated: String,
    sessions: Vec<SessionRow>,
}

pub(super) fn not_found_page(admin: &Admin, auth: &Authority, what: &str) -> Response {
    admin.respond(
        auth,
        render(
            StatusCode::NOT_FOUND,
            &MessagePage {
                c: chrome(admin, "", &HashMap::new()),
                title: "Not found".to_owned(),
                message: what.to_owned(),
                link: String::new(),
                link_text: String::new(),
            },
        ),
    )
}

/// `GET /admin/people/{name}`: a person and their live sessions.
pub async fn person(
    State(auth): State<Arc<Authority>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let admin = admin_or_return!(auth, headers);
    let user = match auth.find_user(&name).await {
        Ok(Some(u)) => u,
        Ok(None) => return not_found_page(&admin, &auth, "There is no such person."),
        Err(e) => return failed(&admin, &auth, e.description()),
    };
    let sessions = match auth.store().list_sessions(&user.user_id, auth.now()).await {
        Ok(s) => s,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let sessions = sessions
        .into_iter()
        .map(|s| SessionRow {
            yours: s.sid == admin.session.sid,
            sid: s.sid,
            client_id: s.client_id,
            audience: s.audience,
            auth_time: when(Some(s.auth_time)),
            last_used: when(Some(s.last_used_at)),
            expires: when(Some(s.expires_at)),
        })
        .collect();
    let page = PersonPage {
        c: chrome(&admin, "people", &q),
        admin: auth.config().console.is_admin(&user.username),
        username: user.username,
        user_id: user.user_id,
        suspended: user.suspended,
        created: when(Some(user.created_at)),
        federated: match (user.federated_issuer, user.federated_subject) {
            (Some(i), Some(s)) => format!("{s} at {i}"),
            _ => String::new(),
        },
        sessions,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    c: Chrome,
    services: Vec<(String, i64)>,
}

/// `GET /admin/policies`: every service with policies and its version in force.
pub async fn policies(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let services = match auth.store().list_policy_services().await {
        Ok(s) => s,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let page = PoliciesPage {
        c: chrome(&admin, "policies", &q),
        services,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct VersionRow {
    version: i64,
    created: String,
    by: String,
    note: String,
    sha256: String,
    has_schema: bool,
}

struct DiffLine {
    class: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    c: Chrome,
    service: String,
    current: i64,
    versions: Vec<VersionRow>,
    from: i64,
    to: i64,
    diff: Vec<DiffLine>,
    /// A side is longer than [`MAX_DIFF_LINES`]: no diff shown.
    too_long: bool,
    max_lines: usize,
    text: String,
}

/// The longest policy text (in lines, either side) the console diffs;
/// longer ones are for `castellan policy diff`.
const MAX_DIFF_LINES: usize = 5_000;

fn version_param(q: &HashMap<String, String>, name: &str) -> Option<i64> {
    q.get(name).and_then(|v| v.trim().parse::<i64>().ok())
}

/// `GET /admin/policies/{service}`: its versions, a diff of two, rollback.
pub async fn policy(
    State(auth): State<Arc<Authority>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let admin = admin_or_return!(auth, headers);
    if !crate::http::policies::valid_service(&service) {
        return not_found_page(&admin, &auth, "There is no such service.");
    }
    let records = match auth.store().list_policy_versions(&service).await {
        Ok(v) => v,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let Some(current) = records.iter().map(|r| r.version).max() else {
        return not_found_page(&admin, &auth, "This service has no policies.");
    };
    let to = version_param(&q, "to").unwrap_or(current);
    let from = version_param(&q, "from").unwrap_or_else(|| to.saturating_sub(1).max(1));
    let text_of = |v: i64| records.iter().find(|r| r.version == v).map(|r| r.policies.as_str());
    let mut too_long = false;
    let diff = match (text_of(from), text_of(to)) {
        (Some(a), Some(b)) if a.lines().count() > MAX_DIFF_LINES || b.lines().count() > MAX_DIFF_LINES => {
            too_long = true;
            Vec::new()
        }
        (Some(a), Some(b)) => {
            let (a, b) = (a.to_owned(), b.to_owned());
            // The diff is O(n·m): off the async workers.
            match tokio::task::spawn_blocking(move || castellan_core::diff::diff_lines(&a, &b)).await {
                Ok(lines) => lines
                    .into_iter()
                    .map(|l| DiffLine {
                        class: if l.starts_with('+') {
                            "add"
                        } else if l.starts_with('-') {
                            "del"
                        } else {
                            "same"
                        },
                        text: l,
                    })
                    .collect(),
                Err(e) => return failed(&admin, &auth, &e.to_string()),
            }
        }
        _ => Vec::new(),
    };
    let mut versions: Vec<VersionRow> = records
        .iter()
        .map(|r| VersionRow {
            version: r.version,
            created: when(Some(r.created_at)),
            by: r.created_by.clone(),
            note: r.note.clone().unwrap_or_default(),
            sha256: crate::http::policies::sha256_hex(&r.policies)
                .chars()
                .take(12)
                .collect(),
            has_schema: r.schema.is_some(),
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let page = PolicyPage {
        c: chrome(&admin, "policies", &q),
        text: text_of(current).unwrap_or("").to_owned(),
        service,
        current,
        versions,
        from,
        to,
        diff,
        too_long,
        max_lines: MAX_DIFF_LINES,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct DecisionRow {
    time: String,
    principal: String,
    action: String,
    resource: String,
    decision: String,
    reason: String,
    policies: String,
    version: String,
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
struct DecisionsPage {
    c: Chrome,
    services: Vec<String>,
    service: String,
    principal: String,
    decision: String,
    rows: Vec<DecisionRow>,
    error: String,
}

/// `GET /admin/decisions?service=&principal=&decision=`: the decision log, filtered.
pub async fn decisions(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let services: Vec<String> = match auth.store().list_policy_services().await {
        Ok(s) => s.into_iter().map(|(s, _)| s).collect(),
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (service, principal, decision) = (get("service"), get("principal"), get("decision"));
    let mut error = String::new();
    let mut rows = Vec::new();
    if !service.is_empty() {
        if !crate::http::policies::valid_service(&service) || principal.len() > 512 {
            error = "That is not a service name.".to_owned();
        } else {
            let query = DecisionQuery {
                service: service.clone(),
                principal: (!principal.is_empty()).then(|| crate::http::decisions::principal_uid(&principal)),
                decision: matches!(decision.as_str(), "allow" | "deny").then(|| decision.clone()),
                since: None,
                before_id: None,
                limit: 200,
            };
            match auth.store().query_decisions(&query).await {
                Ok(found) => {
                    rows = found
                        .into_iter()
                        .map(|r| DecisionRow {
                            time: when(Some(r.time)),
                            principal: r.principal,
                            action: r.action,
                            resource: r.resource,
                            decision: r.decision,
                            reason: r.reason.unwrap_or_default(),
                            policies: r.policies.join(", "),
                            version: r.policy_version.map(|v| v.to_string()).unwrap_or_default(),
                        })
                        .collect();
                }
                Err(e) => return failed(&admin, &auth, &e.to_string()),
            }
        }
    }
    let page = DecisionsPage {
        c: chrome(&admin, "decisions", &q),
        services,
        service,
        principal,
        decision,
        rows,
        error,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct TargetRow {
    name: String,
    url: String,
    audience: String,
    passed: bool,
    failed: String,
}

struct RunView {
    id: i64,
    recorded: String,
    by: String,
    passed: usize,
    targets: Vec<TargetRow>,
}

#[derive(Template)]
#[template(path = "console/probes.html")]
struct ProbesPage {
    c: Chrome,
    runs: Vec<RunView>,
}

/// `GET /admin/probes`: the probe runs kept, newest first.
pub async fn probes(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let rows = match auth.store().list_probe_runs(KEEP_RUNS).await {
        Ok(r) => r,
        Err(e) => return failed(&admin, &auth, &e.to_string()),
    };
    let runs = rows
        .iter()
        .filter_map(parse_run)
        .map(|r| {
            let targets: Vec<TargetRow> = r
                .run
                .targets
                .iter()
                .map(|t| TargetRow {
                    name: t.name.clone(),
                    url: t.url.clone(),
                    audience: t.audience.clone(),
                    passed: t.passed(),
                    failed: t.failed().join(", "),
                })
                .collect();
            RunView {
                id: r.id,
                recorded: when(Some(r.recorded_at)),
                by: r.recorded_by.clone(),
                passed: targets.iter().filter(|t| t.passed).count(),
                targets,
            }
        })
        .collect();
    let page = ProbesPage {
        c: chrome(&admin, "probes", &q),
        runs,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

struct AuditRow {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    target: String,
    failed: bool,
    detail: String,
}

/// What a chain check found, as the page shows it.
struct ChainView {
    ok: bool,
    events: i64,
    head: String,
    problem: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: Chrome,
    actor: String,
    window: String,
    rows: Vec<AuditRow>,
    /// The `after` of the next page, when this one is full.
    next: Option<i64>,
    chain: Option<ChainView>,
    error: String,
}

/// Events a page of the audit trail shows.
const AUDIT_PAGE: u32 = 100;

/// The time windows the audit page offers, and how far back each reaches.
fn audit_window(window: &str) -> Option<Option<i64>> {
    match window {
        "1h" => Some(Some(3_600)),
        "" | "24h" => Some(Some(86_400)),
        "7d" => Some(Some(7 * 86_400)),
        "all" => Some(None),
        _ => None,
    }
}

/// `GET /admin/audit`: the audit trail, oldest first within a time window,
/// filtered by actor, a page of 100 at a time; `verify=1` checks the chain.
pub async fn audit(State(auth): State<Arc<Authority>>, headers: HeaderMap, Query(q): Params) -> Response {
    let admin = admin_or_return!(auth, headers);
    let actor = q.get("actor").map(|a| a.trim().to_owned()).unwrap_or_default();
    let window = q.get("window").cloned().unwrap_or_else(|| "24h".to_owned());
    let after = q.get("after").map(|a| a.parse::<i64>());
    let mut error = String::new();
    let mut rows = Vec::new();
    let mut next = None;
    match (audit_window(&window), after) {
        (None, _) => error = "Choose one of the offered time windows.".to_owned(),
        (_, Some(Err(_))) => error = "`after` must be a sequence number.".to_owned(),
        _ if actor.len() > 512 => error = "That actor is too long.".to_owned(),
        (Some(back), after) => {
            let query = castellan_store::AuditQuery {
                after_seq: after.and_then(Result::ok).unwrap_or(0).max(0),
                since: back.map(|b| auth.now().saturating_sub(b)),
                actor: (!actor.is_empty()).then(|| actor.clone()),
                limit: AUDIT_PAGE,
            };
            match auth.store().list_audit(&query).await {
                Ok(found) => {
                    if found.len() == AUDIT_PAGE as usize {
                        next = found.last().map(|r| r.seq);
                    }
                    rows = found
                        .into_iter()
                        .map(|r| AuditRow {
                            seq: r.seq,
                            time: when(Some(r.at)),
                            actor: r.actor,
                            action: r.action,
                            target: r.target,
                            failed: r.outcome != "success",
                            detail: if r.detail == "{}" { String::new() } else { r.detail },
                        })
                        .collect();
                }
                Err(e) => return failed(&admin, &auth, &e.to_string()),
            }
        }
    }
    let chain = if q.get("verify").map(String::as_str) == Some("1") {
        match auth.verify_audit().await {
            Ok(v) => Some(ChainView {
                ok: v.ok(),
                events: v.events,
                head: v.head.map(|h| format!("{} {}", h.seq, h.hash)).unwrap_or_default(),
                problem: v.first_bad.map(|b| b.to_string()).unwrap_or_default(),
            }),
            Err(e) => return failed(&admin, &auth, &e.to_string()),
        }
    } else {
        None
    };
    let page = AuditPage {
        c: chrome(&admin, "audit", &q),
        actor,
        window,
        rows,
        next,
        chain,
        error,
    };
    admin.respond(&auth, render(StatusCode::OK, &page))
}

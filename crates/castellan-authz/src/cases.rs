//! Policy CI (`castellan policy test`): a table of requests with the
//! decisions they must get, run against a [`CompiledBundle`] through the
//! very decision path a service uses ([`CompiledBundle::decide`]).
//!
//! A cases file is JSON or TOML: shared `entities` (Cedar entity JSON) and
//! `cases`, each either a request (`principal`, `action`, `resource`,
//! optional `context` and extra `entities`) or a `gate` request built as
//! `castellan gate --policy-service` builds it ([`crate::gate_request`]),
//! with `expect` (`allow` / `deny`) and optionally `reason` and
//! `determining`. The format is documented in `docs/authorization.md`
//! ("Policy CI").
//!
//! A file that cannot be read as cases is refused as a whole
//! ([`CasesError`], naming the case); a case whose request Cedar refuses
//! fails on its own ([`CaseResult::detail`]) while the others still run.

use crate::bundle::CompiledBundle;
use crate::decision::{Decision, DenyReason};
use crate::gate_model::gate_request;
use crate::request::AuthzRequest;
use castellan_verify::{VerifiedClaims, VerifiedToken};
use cedar_policy::{Context, Entities, Entity, EntityUid, Request, Schema};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// Largest cases file accepted, in bytes.
pub const MAX_CASES_BYTES: usize = 4 * 1024 * 1024;

/// Why a cases file is refused. Nothing is run when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CasesError {
    /// The file is larger than [`MAX_CASES_BYTES`].
    #[error("cases file is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The file is not JSON / TOML, or not of the cases file's shape
    /// outside any one case (an unknown top-level member, no `cases`).
    #[error("cases file is not valid {format}: {reason}")]
    Syntax {
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's message, with the line and column.
        reason: String,
    },
    /// The file holds no case.
    #[error("cases file has no cases")]
    NoCases,
    /// The shared `entities` are not Cedar entity JSON.
    #[error("shared `entities`: {reason}")]
    SharedEntities {
        /// Cedar's message.
        reason: String,
    },
    /// One case is malformed.
    #[error("case {index}{}: {reason}", quoted(.name.as_deref()))]
    Case {
        /// Its position in `cases`, from 1.
        index: usize,
        /// Its `name`, when it has one.
        name: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Two cases share a name, so a report could not tell them apart.
    #[error("cases {first} and {second} are both named `{name}`")]
    DuplicateName {
        /// The name.
        name: String,
        /// Position of the first, from 1.
        first: usize,
        /// Position of the second, from 1.
        second: usize,
    },
}

fn quoted(name: Option<&str>) -> String {
    name.map_or_else(String::new, |n| format!(" `{n}`"))
}

/// The file formats of a cases file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasesFormat {
    /// JSON (`.json`).
    Json,
    /// TOML (`.toml`).
    Toml,
}

impl CasesFormat {
    /// The format a file name says: `.json` or `.toml` (any case).
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        }
    }
}

/// The outcome a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The request must be allowed.
    Allow,
    /// The request must be denied.
    Deny,
}

impl Expect {
    /// `allow` or `deny`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The deny reasons a case may ask for (a compiled bundle is always in
/// force, so never `no_bundle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExpectedReason {
    Forbidden,
    NoPermit,
}

impl ExpectedReason {
    fn reason(self) -> DenyReason {
        match self {
            Self::Forbidden => DenyReason::Forbidden,
            Self::NoPermit => DenyReason::NoPermit,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    entities: Vec<Value>,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    context: Option<Value>,
    entities: Option<Vec<Value>>,
    gate: Option<RawGate>,
    expect: Expect,
    reason: Option<ExpectedReason>,
    determining: Option<Vec<String>>,
    #[serde(default)]
    allow_errors: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    sub: String,
    client_id: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    actors: Vec<String>,
    method: String,
    path: String,
}

/// A case, checked.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    kind: Kind,
    expect: Expect,
    reason: Option<ExpectedReason>,
    /// Sorted, without duplicates.
    determining: Option<Vec<String>>,
    /// Pass even when a policy fails to evaluate (normally a failure: a
    /// skipped `forbid` cannot deny).
    allow_errors: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Request(Box<RequestCase>),
    Gate {
        token: VerifiedToken,
        peer: Option<String>,
        method: String,
        path: String,
    },
}

/// A request case: its request and the entities it adds.
#[derive(Debug, Clone)]
struct RequestCase {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Value,
    /// Entity JSON added to (and replacing by uid) the shared entities.
    entities: Vec<Value>,
    /// The uids of `entities`.
    replaces: HashSet<EntityUid>,
}

/// A parsed cases file, ready to run against any number of bundles.
#[derive(Debug, Clone)]
pub struct PolicyTests {
    entities: Vec<Value>,
    cases: Vec<Case>,
}

/// Cedar's message and help, on one line.
fn cedar_message(e: &dyn Diagnostic) -> String {
    match e.help() {
        Some(help) => format!("{e}; help: {help}"),
        None => e.to_string(),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The first case in `doc` (the file as plain data) that does not
/// deserialize, as a [`CasesError::Case`] placed at `at`.
fn locate(doc: &Value, at: Option<(usize, usize)>) -> Option<CasesError> {
    let cases = doc.get("cases")?.as_array()?;
    cases.iter().enumerate().find_map(|(i, case)| {
        let err = RawCase::deserialize(case).err()?;
        let place = at.map_or_else(String::new, |(l, c)| format!(" (at line {l}, column {c})"));
        Some(CasesError::Case {
            index: i + 1,
            name: case.get("name").and_then(Value::as_str).map(str::to_owned),
            reason: format!("{err}{place}"),
        })
    })
}

fn parse_raw(text: &str, format: CasesFormat) -> Result<RawFile, CasesError> {
    let syntax = |reason: String| CasesError::Syntax {
        format: format.name(),
        reason,
    };
    match format {
        CasesFormat::Json => serde_json::from_str::<RawFile>(text).map_err(|e| {
            if e.is_data() {
                let at = (e.line() > 0).then(|| (e.line(), e.column()));
                let doc = serde_json::from_str::<Value>(text).ok();
                if let Some(located) = doc.as_ref().and_then(|d| locate(d, at)) {
                    return located;
                }
            }
            syntax(e.to_string())
        }),
        CasesFormat::Toml => toml::from_str::<RawFile>(text).map_err(|e| {
            let at = e.span().map(|s| line_col(text, s.start));
            let doc = toml::from_str::<Value>(text).ok();
            doc.as_ref()
                .and_then(|d| locate(d, at))
                .unwrap_or_else(|| syntax(e.to_string().trim_end().to_owned()))
        }),
    }
}

fn parse_uid(field: &str, text: &str) -> Result<EntityUid, String> {
    EntityUid::from_str(text).map_err(|e| {
        format!(
            "`{field}` `{text}` is not an entity uid such as `User::\"alice\"`: {}",
            cedar_message(&e)
        )
    })
}

fn check_case(raw: RawCase) -> Result<Case, String> {
    if raw.name.trim().is_empty() || raw.name.chars().any(char::is_control) {
        return Err("`name` must be non-empty, without control characters".to_owned());
    }
    if raw.expect == Expect::Allow && raw.reason.is_some() {
        return Err("`reason` applies only to `expect` `deny`".to_owned());
    }
    let determining = match raw.determining {
        Some(mut ids) => {
            if ids.iter().any(String::is_empty) {
                return Err("`determining` holds an empty policy id".to_owned());
            }
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        }
        None => None,
    };
    let kind = match raw.gate {
        Some(gate) => {
            let mixed: Vec<&str> = [
                ("principal", raw.principal.is_some()),
                ("action", raw.action.is_some()),
                ("resource", raw.resource.is_some()),
                ("context", raw.context.is_some()),
                ("entities", raw.entities.is_some()),
            ]
            .into_iter()
            .filter_map(|(field, set)| set.then_some(field))
            .collect();
            if !mixed.is_empty() {
                return Err(format!(
                    "`gate` cannot be combined with `{}`: a gate case evaluates exactly the gate's request and entities",
                    mixed.join("`, `")
                ));
            }
            check_gate(gate)?
        }
        None => {
            let (Some(principal), Some(action), Some(resource)) = (raw.principal, raw.action, raw.resource) else {
                return Err("needs `principal`, `action` and `resource`, or a `gate` request".to_owned());
            };
            let entities = raw.entities.unwrap_or_default();
            let mut replaces = HashSet::new();
            for (i, e) in entities.iter().enumerate() {
                let entity = Entity::from_json_value(e.clone(), None)
                    .map_err(|err| format!("`entities` item {}: {}", i + 1, cedar_message(&err)))?;
                if !replaces.insert(entity.uid()) {
                    return Err(format!("`entities` lists `{}` twice", entity.uid()));
                }
            }
            Kind::Request(Box::new(RequestCase {
                principal: parse_uid("principal", &principal)?,
                action: parse_uid("action", &action)?,
                resource: parse_uid("resource", &resource)?,
                context: raw.context.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                entities,
                replaces,
            }))
        }
    };
    Ok(Case {
        name: raw.name,
        kind,
        expect: raw.expect,
        reason: raw.reason,
        determining,
        allow_errors: raw.allow_errors,
    })
}

/// The `act` claim of a token exchanged through `actors`, current actor first.
fn act_chain(actors: &[String]) -> Option<Value> {
    actors.iter().rev().fold(None, |inner, sub| {
        let mut link = serde_json::Map::new();
        link.insert("sub".to_owned(), Value::String(sub.clone()));
        if let Some(inner) = inner {
            link.insert("act".to_owned(), inner);
        }
        Some(Value::Object(link))
    })
}

fn check_gate(g: RawGate) -> Result<Kind, String> {
    if g.sub.is_empty() {
        return Err("`gate.sub` must be non-empty".to_owned());
    }
    if g.method.is_empty() {
        return Err("`gate.method` must be non-empty".to_owned());
    }
    if let Some(bad) = g
        .scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(format!(
            "`gate.scopes` item `{bad}`: a scope is non-empty and has no spaces (a token's `scope` is space-separated)"
        ));
    }
    let token = VerifiedToken::new(VerifiedClaims {
        iss: "castellan-policy-test".to_owned(),
        sub: g.sub,
        aud: String::new(),
        client_id: g.client_id,
        sid: String::new(),
        jti: String::new(),
        scope: (!g.scopes.is_empty()).then(|| g.scopes.join(" ")),
        iat: 0,
        exp: 0,
        kid: String::new(),
        act: act_chain(&g.actors),
        cnf_x5t_s256: None,
    });
    Ok(Kind::Gate {
        token,
        peer: g.peer,
        method: g.method,
        path: g.path,
    })
}

impl PolicyTests {
    /// Parses and checks a cases file.
    ///
    /// # Errors
    /// [`CasesError`]: too large, not JSON / TOML, an unknown member, no
    /// cases, shared entities Cedar refuses, a malformed case (named), or
    /// two cases with one name.
    pub fn parse(text: &str, format: CasesFormat) -> Result<Self, CasesError> {
        if text.len() > MAX_CASES_BYTES {
            return Err(CasesError::TooLarge {
                len: text.len(),
                max: MAX_CASES_BYTES,
            });
        }
        let raw = parse_raw(text, format)?;
        if raw.cases.is_empty() {
            return Err(CasesError::NoCases);
        }
        let shared = |reason: String| CasesError::SharedEntities { reason };
        let list = parse_entities(&raw.entities, None).map_err(shared)?;
        let mut uids = HashSet::new();
        if let Some(twice) = list.iter().map(Entity::uid).find(|uid| !uids.insert(uid.clone())) {
            return Err(shared(format!("lists `{twice}` twice")));
        }
        entity_set(list, None).map_err(shared)?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cases = Vec::with_capacity(raw.cases.len());
        for (i, case) in raw.cases.into_iter().enumerate() {
            let index = i + 1;
            let name = case.name.clone();
            let case = check_case(case).map_err(|reason| CasesError::Case {
                index,
                name: Some(name.clone()),
                reason,
            })?;
            if let Some(&first) = seen.get(&name) {
                return Err(CasesError::DuplicateName {
                    name,
                    first,
                    second: index,
                });
            }
            seen.insert(name, index);
            cases.push(case);
        }
        Ok(Self {
            entities: raw.entities,
            cases,
        })
    }

    /// How many cases.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether there are none (never, once parsed).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// The case names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.cases.iter().map(|c| c.name.as_str())
    }

    /// Runs every case against `bundle`, in file order. Request cases are
    /// checked against the bundle's schema when it has one (entities,
    /// context and request types), then decided by
    /// [`CompiledBundle::decide`] with exactly the entities the case lists;
    /// gate cases are built by [`crate::gate_request`] and decided the same way.
    #[must_use]
    pub fn run(&self, bundle: &CompiledBundle) -> TestReport {
        let schema = bundle.schema();
        let needs_shared = self.cases.iter().any(|c| matches!(c.kind, Kind::Request(_)));
        let shared = if needs_shared {
            shared_entities(&self.entities, schema)
        } else {
            // Only gate cases: the shared entities are never read.
            Err(String::new())
        };
        TestReport {
            cases: self.cases.iter().map(|c| c.run(bundle, schema, &shared)).collect(),
        }
    }
}

/// The shared entities, each checked against `schema`, and as a set.
type Shared = Result<(Vec<Entity>, Entities), String>;

fn parse_entities(json: &[Value], schema: Option<&Schema>) -> Result<Vec<Entity>, String> {
    json.iter()
        .enumerate()
        .map(|(i, e)| {
            Entity::from_json_value(e.clone(), schema).map_err(|err| format!("item {}: {}", i + 1, cedar_message(&err)))
        })
        .collect()
}

/// A set of exactly `entities`: with a schema, checked against it, and no
/// action entities added from it (a service's `decide` gets only what it passes).
fn entity_set(entities: Vec<Entity>, schema: Option<&Schema>) -> Result<Entities, String> {
    Entities::empty()
        .add_entities(entities, schema)
        .map_err(|e| cedar_message(&e))
}

fn shared_entities(json: &[Value], schema: Option<&Schema>) -> Shared {
    let list = parse_entities(json, schema)?;
    let set = entity_set(list.clone(), schema)?;
    Ok((list, set))
}

impl Case {
    fn run(&self, bundle: &CompiledBundle, schema: Option<&Schema>, shared: &Shared) -> CaseResult {
        match self.decide(bundle, schema, shared) {
            Ok(decision) => self.judge(decision),
            Err(detail) => CaseResult {
                name: self.name.clone(),
                expect: self.expect,
                decision: None,
                ok: false,
                detail: Some(detail),
            },
        }
    }

    fn decide(&self, bundle: &CompiledBundle, schema: Option<&Schema>, shared: &Shared) -> Result<Decision, String> {
        match &self.kind {
            Kind::Gate {
                token,
                peer,
                method,
                path,
            } => {
                let (request, entities) =
                    gate_request(token, peer.as_deref(), method, path).map_err(|e| format!("request refused: {e}"))?;
                Ok(bundle.decide(&request, &entities))
            }
            Kind::Request(request) => {
                let RequestCase {
                    principal,
                    action,
                    resource,
                    context,
                    entities,
                    replaces,
                } = request.as_ref();
                let (shared_list, shared_set) =
                    shared.as_ref().map_err(|e| format!("shared `entities` refused: {e}"))?;
                let entities = if entities.is_empty() {
                    shared_set.clone()
                } else {
                    let extra = parse_entities(entities, schema).map_err(|e| format!("`entities` refused: {e}"))?;
                    let all = shared_list
                        .iter()
                        .filter(|e| !replaces.contains(&e.uid()))
                        .cloned()
                        .chain(extra)
                        .collect();
                    entity_set(all, schema).map_err(|e| format!("`entities` refused: {e}"))?
                };
                let context = Context::from_json_value(context.clone(), schema.map(|s| (s, action)))
                    .map_err(|e| format!("`context` refused: {}", cedar_message(&e)))?;
                let request = Request::new(principal.clone(), action.clone(), resource.clone(), context, schema)
                    .map_err(|e| format!("request refused: {}", cedar_message(&e)))?;
                Ok(bundle.decide(&AuthzRequest::from(request), &entities))
            }
        }
    }

    fn judge(&self, decision: Decision) -> CaseResult {
        let mut wrong: Vec<String> = Vec::new();
        let got = match &decision {
            Decision::Allow { .. } => Expect::Allow,
            Decision::Deny { .. } => Expect::Deny,
        };
        if got != self.expect {
            wrong.push(format!("expected {}, got {}", self.expect.label(), describe(&decision)));
        } else if let (Some(want), Decision::Deny { reason, .. }) = (self.reason, &decision) {
            if want.reason() != *reason {
                wrong.push(format!(
                    "expected reason {}, got {}",
                    want.reason().label(),
                    reason.label()
                ));
            }
        }
        if let Some(want) = &self.determining {
            if want.as_slice() != decision.determining() {
                wrong.push(format!(
                    "expected determining [{}], got [{}]",
                    want.join(", "),
                    decision.determining().join(", ")
                ));
            }
        }
        if !self.allow_errors && !decision.errors().is_empty() {
            wrong.push(format!(
                "{} polic{} failed to evaluate (a skipped forbid cannot deny; set allow_errors to accept): {}",
                decision.errors().len(),
                if decision.errors().len() == 1 { "y" } else { "ies" },
                decision.errors().join("; ")
            ));
        }
        CaseResult {
            name: self.name.clone(),
            expect: self.expect,
            ok: wrong.is_empty(),
            detail: (!wrong.is_empty()).then(|| wrong.join("; ")),
            decision: Some(decision),
        }
    }
}

/// `allow by [a, b]`, `deny (forbidden by [c])`, `deny (no_permit)`.
fn describe(decision: &Decision) -> String {
    match decision {
        Decision::Allow { determining, .. } => format!("allow by [{}]", determining.join(", ")),
        Decision::Deny {
            reason, determining, ..
        } if !determining.is_empty() => format!("deny ({} by [{}])", reason.label(), determining.join(", ")),
        Decision::Deny { reason, .. } => format!("deny ({})", reason.label()),
    }
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// What it expected.
    pub expect: Expect,
    /// What it got; `None` when the request was refused before a decision.
    pub decision: Option<Decision>,
    /// Whether the decision matched every expectation.
    pub ok: bool,
    /// Why it failed: the mismatches, or why the request was refused.
    pub detail: Option<String>,
}

/// The wire form: `{"name","expect","decision","reason","determining",
/// "errors","ok","detail"?}`.
impl Serialize for CaseResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            name: &'a str,
            expect: Expect,
            decision: Option<&'static str>,
            reason: Option<&'static str>,
            determining: &'a [String],
            errors: &'a [String],
            ok: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a str>,
        }
        let d = self.decision.as_ref();
        Wire {
            name: &self.name,
            expect: self.expect,
            decision: d.map(|d| if d.is_allowed() { "allow" } else { "deny" }),
            reason: match d {
                Some(Decision::Deny { reason, .. }) => Some(reason.label()),
                _ => None,
            },
            determining: d.map_or(&[], Decision::determining),
            errors: d.map_or(&[], Decision::errors),
            ok: self.ok,
            detail: self.detail.as_deref(),
        }
        .serialize(s)
    }
}

/// Every case's outcome, in file order. Serialises as `{"cases": [...],
/// "summary": {"total", "passed", "failed"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// The outcomes.
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    /// How many cases ran.
    #[must_use]
    pub fn total(&self) -> usize {
        self.cases.len()
    }

    /// How many passed.
    #[must_use]
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.ok).count()
    }

    /// How many failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.total() - self.passed()
    }

    /// Whether every case passed.
    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|c| c.ok)
    }
}

impl Serialize for TestReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Summary {
            total: usize,
            passed: usize,
            failed: usize,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            cases: &'a [CaseResult],
            summary: Summary,
        }
        Wire {
            cases: &self.cases,
            summary: Summary {
                total: self.total(),
                passed: self.passed(),
                failed: self.failed(),
            },
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::PolicyBundle;
    use crate::gate_model::GATE_SCHEMA;
    use serde_json::json;

    const POLICIES: &str = r#"
@id("owner-reads")
permit(principal, action == Action::"read", resource) when { resource.owner == principal };

@id("team-reads")
permit(principal, action == Action::"read", resource) when { principal in resource.team };

@id("no-archived")
forbid(principal, action, resource) when { resource has archived && resource.archived };

@id("night-freeze")
forbid(principal, action == Action::"write", resource) when { context.hour < 6 };

@id("writers")
permit(principal, action in Action::"writes", resource);
"#;

    const SCHEMA: &str = r#"
entity Team;
entity User in [Team];
entity Order = { owner: User, team: Team, archived?: Bool };
action "read" appliesTo { principal: [User], resource: [Order] };
action "writes";
action "write" in ["writes"] appliesTo { principal: [User], resource: [Order], context: { hour: Long } };
"#;

    fn bundle(policies: &str, schema: Option<&str>) -> CompiledBundle {
        CompiledBundle::compile(PolicyBundle {
            service: "orders".into(),
            version: 3,
            policies: policies.into(),
            schema: schema.map(str::to_owned),
            created_at: 0,
        })
        .unwrap()
    }

    fn entities() -> Value {
        json!([
            {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []},
            {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Team", "id": "emea"}]},
            {"uid": {"type": "Team", "id": "emea"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Order", "id": "7"}, "attrs": {
                "owner": {"__entity": {"type": "User", "id": "alice"}},
                "team": {"__entity": {"type": "Team", "id": "emea"}}}, "parents": []},
        ])
    }

    fn case(name: &str, p: &str, a: &str, r: &str, expect: &str) -> Value {
        json!({"name": name, "principal": format!("User::\"{p}\""), "action": format!("Action::\"{a}\""),
               "resource": format!("Order::\"{r}\""), "expect": expect})
    }

    fn file(cases: Vec<Value>) -> String {
        json!({"entities": entities(), "cases": cases}).to_string()
    }

    fn tests(cases: Vec<Value>) -> PolicyTests {
        PolicyTests::parse(&file(cases), CasesFormat::Json).unwrap()
    }

    fn err(text: &str, format: CasesFormat) -> String {
        PolicyTests::parse(text, format).unwrap_err().to_string()
    }

    fn with(mut v: Value, key: &str, val: Value) -> Value {
        v.as_object_mut().unwrap().insert(key.to_owned(), val);
        v
    }

    #[test]
    fn passing_cases_with_and_without_a_schema() {
        let t = tests(vec![
            with(
                case("owner", "alice", "read", "7", "allow"),
                "determining",
                json!(["owner-reads"]),
            ),
            with(
                case("team", "bob", "read", "7", "allow"),
                "determining",
                json!(["team-reads"]),
            ),
            with(
                case("stranger", "carol", "read", "7", "deny"),
                "reason",
                json!("no_permit"),
            ),
        ]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.names().collect::<Vec<_>>(), ["owner", "team", "stranger"]);
        for schema in [None, Some(SCHEMA)] {
            let report = t.run(&bundle(POLICIES, schema));
            assert!(report.all_passed(), "{schema:?}: {report:#?}");
            assert_eq!((report.total(), report.passed(), report.failed()), (3, 3, 0));
        }
    }

    #[test]
    fn a_policy_that_fails_to_evaluate_fails_the_case_unless_allowed() {
        // Without a schema, a forbid reading an attribute the order lacks
        // errors and is skipped: the owner is allowed, though the forbid
        // was meant to deny. That must not pass silently.
        let policies =
            format!("{POLICIES}\n@id(\"no-gifts\")\nforbid(principal, action, resource) when {{ resource.gift }};");
        let t = tests(vec![
            case("owner", "alice", "read", "7", "allow"),
            with(
                case("owner, errors accepted", "alice", "read", "7", "allow"),
                "allow_errors",
                json!(true),
            ),
        ]);
        let report = t.run(&bundle(&policies, None));
        assert!(!report.cases[0].ok, "{report:#?}");
        let detail = report.cases[0].detail.as_deref().unwrap();
        assert!(
            detail.contains("failed to evaluate") && detail.contains("no-gifts"),
            "{detail}"
        );
        assert!(report.cases[1].ok, "{report:#?}");
        assert!(t.run(&bundle(POLICIES, None)).all_passed(), "no error, no failure");
    }

    #[test]
    fn mismatches_fail_with_a_detail_and_the_json_shape() {
        let t = tests(vec![
            case("wrong outcome", "alice", "read", "7", "deny"),
            with(
                case("wrong reason", "carol", "read", "7", "deny"),
                "reason",
                json!("forbidden"),
            ),
            with(
                case("wrong ids", "alice", "read", "7", "allow"),
                "determining",
                json!(["team-reads"]),
            ),
            with(
                case("right", "alice", "read", "7", "allow"),
                "determining",
                json!(["owner-reads", "owner-reads"]),
            ),
        ]);
        let report = t.run(&bundle(POLICIES, Some(SCHEMA)));
        assert_eq!((report.passed(), report.failed()), (1, 3));
        let details: Vec<&str> = report.cases.iter().map(|c| c.detail.as_deref().unwrap_or("")).collect();
        assert_eq!(
            details,
            [
                "expected deny, got allow by [owner-reads]",
                "expected reason forbidden, got no_permit",
                "expected determining [team-reads], got [owner-reads]",
                "",
            ]
        );
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["summary"], json!({"total": 4, "passed": 1, "failed": 3}));
        assert_eq!(
            v["cases"][0],
            json!({"name": "wrong outcome", "expect": "deny", "decision": "allow", "reason": null,
                   "determining": ["owner-reads"], "errors": [], "ok": false,
                   "detail": "expected deny, got allow by [owner-reads]"})
        );
        assert_eq!(v["cases"][1]["reason"], "no_permit");
        assert!(v["cases"][3].get("detail").is_none());
        assert_eq!(v["cases"][3]["ok"], true);
    }

    #[test]
    fn forbid_context_and_action_groups_from_listed_entities_only() {
        let archived = json!([{"uid": {"type": "Order", "id": "7"}, "attrs": {
            "owner": {"__entity": {"type": "User", "id": "alice"}},
            "team": {"__entity": {"type": "Team", "id": "emea"}}, "archived": true}, "parents": []}]);
        let write_action = json!([
            {"uid": {"type": "Action", "id": "write"}, "attrs": {}, "parents": [{"type": "Action", "id": "writes"}]},
            {"uid": {"type": "Action", "id": "writes"}, "attrs": {}, "parents": []},
        ]);
        let t = tests(vec![
            // A case's entities replace shared ones with the same uid.
            with(
                with(case("archived", "alice", "read", "7", "deny"), "entities", archived),
                "determining",
                json!(["no-archived"]),
            ),
            with(
                with(
                    case("night write", "alice", "write", "7", "deny"),
                    "context",
                    json!({"hour": 3}),
                ),
                "reason",
                json!("forbidden"),
            ),
            // Without the action entities, `in Action::"writes"` does not hold:
            // a service's decide sees only the entities it passes.
            with(
                case("write, no action entities", "alice", "write", "7", "deny"),
                "context",
                json!({"hour": 12}),
            ),
            with(
                with(
                    case("write", "alice", "write", "7", "allow"),
                    "context",
                    json!({"hour": 12}),
                ),
                "entities",
                write_action,
            ),
        ]);
        for schema in [None, Some(SCHEMA)] {
            let report = t.run(&bundle(POLICIES, schema));
            assert!(report.all_passed(), "{schema:?}: {report:#?}");
        }
    }

    #[test]
    fn a_refused_request_fails_alone() {
        let t = tests(vec![
            case("unknown principal type", "alice", "read", "7", "allow"),
            with(
                case("context not a record", "alice", "read", "7", "allow"),
                "context",
                json!(5),
            ),
            with(
                case("context of the wrong type", "alice", "write", "7", "deny"),
                "context",
                json!({"hour": "3"}),
            ),
            with(
                case("entity off-schema", "alice", "read", "7", "allow"),
                "entities",
                json!([{"uid": {"type": "User", "id": "alice"}, "attrs": {"age": 3}, "parents": []}]),
            ),
            case("fine", "alice", "read", "7", "allow"),
        ]);
        let mut t2 = t.clone();
        // `User::"alice"` typed as `Usr` is what a schema catches.
        if let Some(Case {
            kind: Kind::Request(request),
            ..
        }) = t2.cases.get_mut(0)
        {
            request.principal = EntityUid::from_str("Usr::\"alice\"").unwrap();
        }
        let report = t2.run(&bundle(POLICIES, Some(SCHEMA)));
        let outcome: Vec<(bool, bool)> = report.cases.iter().map(|c| (c.ok, c.decision.is_some())).collect();
        assert_eq!(
            outcome,
            [
                (false, false),
                (false, false),
                (false, false),
                (false, false),
                (true, true)
            ]
        );
        let details: Vec<&str> = report.cases.iter().filter_map(|c| c.detail.as_deref()).collect();
        assert!(details[0].starts_with("request refused: "), "{}", details[0]);
        assert!(details[1].starts_with("`context` refused: "), "{}", details[1]);
        assert!(details[2].contains(" refused: "), "{}", details[2]);
        assert!(details[3].starts_with("`entities` refused: item 1: "), "{}", details[3]);
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["cases"][0]["decision"], Value::Null);
        assert_eq!(v["cases"][0]["determining"], json!([]));
        // Without a schema only the context that is not a record is refused;
        // the string `hour` is decided, but `night-freeze` fails to evaluate
        // on it, which fails the case.
        let report = t.run(&bundle(POLICIES, None));
        assert_eq!(
            report.cases.iter().map(|c| c.ok).collect::<Vec<_>>(),
            [true, false, false, true, true]
        );
        assert!(report.cases[2].decision.is_some());
        assert!(report.cases[2].detail.as_deref().unwrap().contains("night-freeze"));
    }

    #[test]
    fn shared_entities_off_schema_fail_request_cases_not_gate_cases() {
        let text = json!({
            "entities": [{"uid": {"type": "Widget", "id": "w"}, "attrs": {}, "parents": []}],
            "cases": [
                case("request", "alice", "read", "7", "deny"),
                {"name": "gate", "gate": {"sub": "alice", "client_id": "web", "method": "GET", "path": "/"}, "expect": "deny"},
            ]
        });
        let t = PolicyTests::parse(&text.to_string(), CasesFormat::Json).unwrap();
        let report = t.run(&bundle(POLICIES, Some(SCHEMA)));
        assert!(!report.cases[0].ok);
        assert!(
            report.cases[0]
                .detail
                .as_deref()
                .unwrap()
                .starts_with("shared `entities` refused: item 1: "),
            "{report:#?}"
        );
        assert!(report.cases[1].ok, "{report:#?}");
    }

    const GATE_POLICIES: &str = r#"
@id("read-orders")
permit(principal, action in [Action::"GET", Action::"HEAD"], resource)
when { principal.scopes.contains("orders:read") && resource.path like "/orders/*" };
@id("billing")
permit(principal, action == Action::"POST", resource)
when { principal has peer && principal.peer == "spiffe://td/billing" && resource.path like "/refunds/*" };
@id("no-admin")
forbid(principal, action, resource) when { resource.path like "/orders/admin*" };
@id("no-delegated")
forbid(principal, action, resource) unless { principal.actors.isEmpty() };
"#;

    #[test]
    fn gate_cases_build_the_gates_request() {
        let gate = |name: &str, g: Value, expect: &str| json!({"name": name, "gate": g, "expect": expect});
        let text = json!({"cases": [
            gate("read", json!({"sub": "alice", "client_id": "web", "scopes": ["orders:read"], "peer": null,
                                "actors": [], "method": "GET", "path": "/orders/7"}), "allow"),
            with(gate("no scope", json!({"sub": "alice", "client_id": "web", "method": "GET", "path": "/orders/7"}), "deny"),
                 "reason", json!("no_permit")),
            with(gate("admin", json!({"sub": "alice", "client_id": "web", "scopes": ["orders:read"],
                                      "method": "GET", "path": "/orders/admin"}), "deny"),
                 "determining", json!(["no-admin"])),
            gate("peer", json!({"sub": "billing", "client_id": "billing", "peer": "spiffe://td/billing",
                                "method": "POST", "path": "/refunds/1"}), "allow"),
            with(gate("delegated", json!({"sub": "alice", "client_id": "web", "scopes": ["orders:read"],
                                          "actors": ["gateway", "frontend"], "method": "GET", "path": "/orders/7"}), "deny"),
                 "determining", json!(["no-delegated"])),
            gate("unlisted method", json!({"sub": "alice", "client_id": "web", "scopes": ["orders:read"],
                                           "method": "TRACE", "path": "/orders/7"}), "deny"),
            gate("dot segment", json!({"sub": "alice", "client_id": "web", "scopes": ["orders:read"],
                                       "method": "GET", "path": "/x/../orders/7"}), "deny"),
            gate("empty actor", json!({"sub": "alice", "client_id": "web", "actors": [""],
                                       "method": "GET", "path": "/orders/7"}), "deny"),
        ]});
        let t = PolicyTests::parse(&text.to_string(), CasesFormat::Json).unwrap();
        let report = t.run(&bundle(GATE_POLICIES, Some(GATE_SCHEMA)));
        let ok: Vec<bool> = report.cases.iter().map(|c| c.ok).collect();
        assert_eq!(ok, [true, true, true, true, true, true, false, false], "{report:#?}");
        let detail = report.cases[6].detail.as_deref().unwrap();
        assert!(detail.contains("not in normal form"), "{detail}");
        let detail = report.cases[7].detail.as_deref().unwrap();
        assert!(detail.contains("`act` link without a `sub`"), "{detail}");
    }

    #[test]
    fn toml_reads_as_json_does() {
        let text = r#"
[[entities]]
uid = { type = "User", id = "alice" }
attrs = {}
parents = []

[[entities]]
uid = { type = "Team", id = "emea" }
attrs = {}
parents = []

[[entities]]
uid = { type = "Order", id = "7" }
attrs = { owner = { __entity = { type = "User", id = "alice" } }, team = { __entity = { type = "Team", id = "emea" } } }
parents = []

[[cases]]
name = "owner reads"
principal = 'User::"alice"'
action = 'Action::"read"'
resource = 'Order::"7"'
expect = "allow"
determining = ["owner-reads"]

[[cases]]
name = "night write"
principal = 'User::"alice"'
action = 'Action::"write"'
resource = 'Order::"7"'
context = { hour = 2 }
expect = "deny"
reason = "forbidden"

[[cases]]
name = "gate"
expect = "deny"
gate = { sub = "alice", client_id = "web", method = "GET", path = "/" }
"#;
        let t = PolicyTests::parse(text, CasesFormat::Toml).unwrap();
        let report = t.run(&bundle(POLICIES, Some(SCHEMA)));
        assert!(report.all_passed(), "{report:#?}");
        assert_eq!(report.total(), 3);
    }

    #[test]
    fn bad_files_are_refused_naming_the_case() {
        use CasesFormat::{Json, Toml};
        let good = case("ok", "alice", "read", "7", "allow");
        let one = |c: Value| file(vec![good.clone(), c]);

        let e = err("{\"cases\": [", Json);
        assert!(
            e.starts_with("cases file is not valid JSON: ") && e.contains("line 1"),
            "{e}"
        );
        let e = err("cases = [", Toml);
        assert!(
            e.starts_with("cases file is not valid TOML: ") && e.contains("line 1"),
            "{e}"
        );
        assert_eq!(err("{\"cases\": []}", Json), "cases file has no cases");
        let e = err("{\"entities\": []}", Json);
        assert!(e.contains("missing field `cases`"), "{e}");
        let e = err("{\"cases\": [], \"extra\": 1}", Json);
        assert!(e.contains("unknown field `extra`"), "{e}");

        let e = err(
            &one(with(case("typo", "a", "read", "7", "allow"), "expct", json!("deny"))),
            Json,
        );
        assert!(e.starts_with("case 2 `typo`: unknown field `expct`"), "{e}");
        assert!(e.contains("(at line 1, column"), "{e}");
        let e = err(&one(case("bad expect", "a", "read", "7", "permit")), Json);
        assert!(e.starts_with("case 2 `bad expect`: unknown variant `permit`"), "{e}");
        let e = err(
            &one(with(
                case("bad reason", "a", "read", "7", "deny"),
                "reason",
                json!("no_bundle"),
            )),
            Json,
        );
        assert!(e.starts_with("case 2 `bad reason`: unknown variant `no_bundle`"), "{e}");
        let e = err(&one(json!({"expect": "allow"})), Json);
        assert!(e.starts_with("case 2: missing field `name`"), "{e}");
        let e = err(
            &one(with(
                case("both", "a", "read", "7", "deny"),
                "gate",
                json!({"sub": "a", "client_id": "w", "method": "GET", "path": "/"}),
            )),
            Json,
        );
        assert_eq!(
            e,
            "case 2 `both`: `gate` cannot be combined with `principal`, `action`, `resource`: \
             a gate case evaluates exactly the gate's request and entities"
        );
        let e = err(&one(json!({"name": "none", "expect": "deny"})), Json);
        assert_eq!(
            e,
            "case 2 `none`: needs `principal`, `action` and `resource`, or a `gate` request"
        );
        let e = err(
            &one(with(
                case("uid", "a", "read", "7", "deny"),
                "principal",
                json!("User::alice"),
            )),
            Json,
        );
        assert!(
            e.starts_with("case 2 `uid`: `principal` `User::alice` is not an entity uid"),
            "{e}"
        );
        let e = err(
            &one(with(
                case("reason", "a", "read", "7", "allow"),
                "reason",
                json!("forbidden"),
            )),
            Json,
        );
        assert_eq!(e, "case 2 `reason`: `reason` applies only to `expect` `deny`");
        let e = err(
            &one(with(
                case("ents", "a", "read", "7", "deny"),
                "entities",
                json!([{"uid": "nope"}]),
            )),
            Json,
        );
        assert!(e.starts_with("case 2 `ents`: `entities` item 1: "), "{e}");
        let dup = json!({"uid": {"type": "User", "id": "x"}, "attrs": {}, "parents": []});
        let e = err(
            &one(with(
                case("dup", "a", "read", "7", "deny"),
                "entities",
                json!([dup, dup]),
            )),
            Json,
        );
        assert_eq!(e, "case 2 `dup`: `entities` lists `User::\"x\"` twice");
        let e = err(
            &one(json!({"name": "scope", "expect": "deny",
                        "gate": {"sub": "a", "client_id": "w", "scopes": ["a b"], "method": "GET", "path": "/"}})),
            Json,
        );
        assert!(e.starts_with("case 2 `scope`: `gate.scopes` item `a b`"), "{e}");
        let e = err(
            &one(json!({"name": "gate field", "expect": "deny",
                        "gate": {"sub": "a", "client_id": "w", "method": "GET", "path": "/", "aud": "x"}})),
            Json,
        );
        assert!(e.starts_with("case 2 `gate field`: unknown field `aud`"), "{e}");
        let e = err(&one(case("", "a", "read", "7", "deny")), Json);
        assert!(e.starts_with("case 2 ``: `name` must be non-empty"), "{e}");
        let e = err(&one(good.clone()), Json);
        assert_eq!(e, "cases 1 and 2 are both named `ok`");

        let e = err(
            &json!({"entities": [{"uid": {"type": "User"}}], "cases": [good.clone()]}).to_string(),
            Json,
        );
        assert!(e.starts_with("shared `entities`: "), "{e}");
        let e = err(
            &json!({"entities": [dup, dup], "cases": [good.clone()]}).to_string(),
            Json,
        );
        assert_eq!(e, "shared `entities`: lists `User::\"x\"` twice");
        let cycle = json!([
            {"uid": {"type": "G", "id": "a"}, "attrs": {}, "parents": [{"type": "G", "id": "b"}]},
            {"uid": {"type": "G", "id": "b"}, "attrs": {}, "parents": [{"type": "G", "id": "a"}]},
        ]);
        let e = err(&json!({"entities": cycle, "cases": [good.clone()]}).to_string(), Json);
        assert!(e.starts_with("shared `entities`: "), "{e}");

        let e = err(
            "[[cases]]\nname = \"t\"\nexpect = \"allow\"\nprincipal = 'User::\"a\"'\nbogus = 1\n",
            Toml,
        );
        assert!(e.starts_with("case 1 `t`: unknown field `bogus`"), "{e}");
        assert!(e.contains("(at line 1, column 1)") || e.contains("(at line"), "{e}");
        let e = err("[[cases]]\nname = \"t\"\nname = \"u\"\n", Toml);
        assert!(e.starts_with("cases file is not valid TOML: "), "{e}");

        let big = format!("{{\"cases\": [], \"pad\": \"{}\"}}", "x".repeat(MAX_CASES_BYTES));
        assert!(matches!(
            PolicyTests::parse(&big, Json),
            Err(CasesError::TooLarge {
                max: MAX_CASES_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn duplicate_members_are_not_silently_merged() {
        let text = r#"{"cases": [{"name": "x", "principal": "User::\"a\"", "action": "Action::\"read\"",
                       "resource": "Order::\"7\"", "expect": "allow", "expect": "deny"}]}"#;
        let e = err(text, CasesFormat::Json);
        assert!(e.contains("duplicate field `expect`"), "{e}");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            CasesFormat::from_path(Path::new("a/cases.json")),
            Some(CasesFormat::Json)
        );
        assert_eq!(CasesFormat::from_path(Path::new("cases.TOML")), Some(CasesFormat::Toml));
        assert_eq!(CasesFormat::from_path(Path::new("cases.yaml")), None);
        assert_eq!(CasesFormat::from_path(Path::new("cases")), None);
    }
}

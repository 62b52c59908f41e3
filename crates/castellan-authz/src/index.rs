//! A sound pre-filter over a policy set, so a decision evaluates only the
//! policies that could match the request.
//!
//! Cedar evaluates every policy of a set for every request (here about
//! 1-2.5 us each), while route policies are usually guarded by the action,
//! a scope and a path prefix. At compile time each policy's guards are read
//! from its scope and from the top-level `&&` chain of its `when` clauses:
//!
//! - the action constraint (`action == A`, `action in [A, B]`);
//! - `principal.scopes.contains("literal")`;
//! - `resource.path like "literal*..."` (the literal prefix; the whole
//!   literal when the pattern has no wildcard).
//!
//! A policy whose guard fails for a request is `false` or an error for that
//! request, so it cannot be determining and Cedar would skip it either way:
//! leaving it out changes no decision and no determining policy. It can
//! only leave out an evaluation error of a policy that could not match.
//!
//! A policy with a path guard is indexed by its longest path prefix (the
//! path is one string to read); one with only scope guards by its first
//! scope (reading the principal's scopes builds a set, so it is done only
//! when such a policy exists).
//!
//! The filter applies only while its facts are plain: the action has no
//! ancestors in the request's entities (else every policy is evaluated, as
//! `action in` could match through the hierarchy); a fact the entities do
//! not hold (no `scopes` set, no `path` string) prunes nothing.

use cedar_policy::{ActionConstraint, Entities, EntityUid, EvalResult, Policy, PolicySet};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PathGuard {
    prefix: String,
    exact: bool,
}

impl PathGuard {
    fn admits(&self, path: &str) -> bool {
        if self.exact {
            path == self.prefix
        } else {
            path.starts_with(&self.prefix)
        }
    }
}

/// What a policy needs before it can match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Guards {
    /// `None`: any action.
    actions: Option<Vec<EntityUid>>,
    scopes: Vec<String>,
    paths: Vec<PathGuard>,
}

/// A guarded policy, alone in a set; its action constraint is dropped when
/// it had one, since the filter has checked it (it would evaluate `true`).
#[derive(Debug, Clone)]
struct Entry {
    guards: Guards,
    set: PolicySet,
}

/// The facts of one request the guards are checked against.
struct Facts<'a> {
    action: &'a EntityUid,
    scopes: Option<Vec<&'a str>>,
    path: Option<&'a str>,
}

impl Entry {
    fn admits(&self, f: &Facts<'_>) -> bool {
        let g = &self.guards;
        g.actions.as_ref().is_none_or(|a| a.contains(f.action))
            && f.scopes
                .as_ref()
                .is_none_or(|have| g.scopes.iter().all(|s| have.contains(&s.as_str())))
            && f.path.is_none_or(|p| g.paths.iter().all(|pg| pg.admits(p)))
    }
}

/// The policies of a set grouped by their guards.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    /// Entries with a path guard, under their longest prefix.
    by_prefix: HashMap<String, Vec<usize>>,
    /// The distinct lengths of `by_prefix` keys.
    prefix_lens: Vec<usize>,
    /// Entries with a scope guard but no path guard, under their first scope.
    by_scope: HashMap<String, Vec<usize>>,
    /// Policies with no scope or path guard, per action they apply to (a
    /// handful of actions: a list beats hashing an entity uid).
    unguarded_by_action: Vec<(EntityUid, PolicySet)>,
    /// Policies with no guard at all (for actions no policy names).
    unguarded_any: PolicySet,
}

/// `resource.path` (or `resource["path"]`) in the EST.
fn is_attr(e: &Value, var: &str, attr: &str) -> bool {
    e.get(".").is_some_and(|dot| {
        dot.get("attr").and_then(Value::as_str) == Some(attr)
            && dot.get("left").and_then(|l| l.get("Var")).and_then(Value::as_str) == Some(var)
    })
}

/// Guards from one conjunct chain (`a && b && ...`) of a `when` body.
fn conjuncts(e: &Value, g: &mut Guards) {
    if let Some(and) = e.get("&&") {
        if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
            conjuncts(l, g);
            conjuncts(r, g);
        }
        return;
    }
    if let Some(c) = e.get("contains") {
        let scope = c.get("right").and_then(|r| r.get("Value")).and_then(Value::as_str);
        if let (true, Some(s)) = (c.get("left").is_some_and(|l| is_attr(l, "principal", "scopes")), scope) {
            g.scopes.push(s.to_owned());
        }
        return;
    }
    if let Some(like) = e.get("like") {
        if !like.get("left").is_some_and(|l| is_attr(l, "resource", "path")) {
            return;
        }
        let Some(pattern) = like.get("pattern").and_then(Value::as_array) else {
            return;
        };
        let mut prefix = String::new();
        let mut exact = true;
        for el in pattern {
            match el.get("Literal").and_then(Value::as_str) {
                Some(lit) => prefix.push_str(lit),
                None => {
                    exact = false;
                    break;
                }
            }
        }
        if exact || !prefix.is_empty() {
            g.paths.push(PathGuard { prefix, exact });
        }
    }
}

fn guards(p: &Policy, est: Option<&Value>) -> Guards {
    let mut g = Guards {
        actions: match p.action_constraint() {
            ActionConstraint::Any => None,
            ActionConstraint::Eq(a) => Some(vec![a]),
            ActionConstraint::In(v) => Some(v),
        },
        ..Guards::default()
    };
    let conditions = est.and_then(|e| e.get("conditions")).and_then(Value::as_array);
    for c in conditions.into_iter().flatten() {
        if c.get("kind").and_then(Value::as_str) == Some("when") {
            if let Some(body) = c.get("body") {
                conjuncts(body, &mut g);
            }
        }
    }
    g
}

/// The policy without its action constraint, same id and annotations;
/// the original if Cedar will not rebuild it.
fn without_action(p: &Policy, est: Option<&Value>) -> Policy {
    let Some(mut est) = est.cloned() else {
        return p.clone();
    };
    if let Some(obj) = est.as_object_mut() {
        obj.insert("action".to_owned(), serde_json::json!({"op": "All"}));
    }
    Policy::from_json(Some(p.id().clone()), est).unwrap_or_else(|_| p.clone())
}

impl Index {
    /// Groups the policies of `set`; `None` if Cedar refuses one of the
    /// derived sets (it should not: ids are unique), and then every
    /// decision evaluates the whole set.
    pub(crate) fn build(set: &PolicySet) -> Option<Self> {
        let mut index = Self::default();
        let mut unguarded: Vec<(Option<Vec<EntityUid>>, Policy)> = Vec::new();
        for p in set.policies() {
            let est = p.to_json().ok();
            let g = guards(p, est.as_ref());
            if g.scopes.is_empty() && g.paths.is_empty() {
                unguarded.push((g.actions, p.clone()));
                continue;
            }
            let policy = if g.actions.is_some() {
                without_action(p, est.as_ref())
            } else {
                p.clone()
            };
            let i = index.entries.len();
            // The path is the cheap fact (one string); scopes only when needed.
            if let Some(longest) = g.paths.iter().max_by_key(|pg| pg.prefix.len()) {
                index.by_prefix.entry(longest.prefix.clone()).or_default().push(i);
                if !index.prefix_lens.contains(&longest.prefix.len()) {
                    index.prefix_lens.push(longest.prefix.len());
                }
            } else if let Some(scope) = g.scopes.first() {
                index.by_scope.entry(scope.clone()).or_default().push(i);
            }
            index.entries.push(Entry {
                guards: g,
                set: PolicySet::from_policies([policy]).ok()?,
            });
        }
        let mut named: Vec<&EntityUid> = Vec::new();
        for a in unguarded.iter().filter_map(|(a, _)| a.as_ref()).flatten() {
            if !named.contains(&a) {
                named.push(a);
            }
        }
        for action in named {
            let applies = unguarded
                .iter()
                .filter(|(actions, _)| actions.as_ref().is_none_or(|a| a.contains(action)));
            let set = PolicySet::from_policies(applies.map(|(_, p)| p.clone())).ok()?;
            index.unguarded_by_action.push((action.clone(), set));
        }
        let any = unguarded.iter().filter(|(actions, _)| actions.is_none());
        index.unguarded_any = PolicySet::from_policies(any.map(|(_, p)| p.clone())).ok()?;
        Some(index)
    }

    /// The sets to evaluate for this request, or `None` to evaluate the
    /// whole policy set (the action has ancestors, or there is no action).
    pub(crate) fn select(&self, request: &cedar_policy::Request, entities: &Entities) -> Option<Vec<&PolicySet>> {
        let action = request.action()?;
        if entities.ancestors(action).is_some_and(|mut a| a.next().is_some()) {
            return None;
        }
        let path_attr = request
            .resource()
            .and_then(|r| entities.get(r))
            .and_then(|r| r.attr("path"));
        // Reading `scopes` builds a set: only when a scope-indexed entry needs it.
        let scopes_attr = if self.by_scope.is_empty() {
            None
        } else {
            request
                .principal()
                .and_then(|p| entities.get(p))
                .and_then(|p| p.attr("scopes"))
        };
        let facts = Facts {
            action,
            scopes: match &scopes_attr {
                Some(Ok(EvalResult::Set(set))) => Some(
                    set.iter()
                        .filter_map(|v| match v {
                            EvalResult::String(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            },
            path: match &path_attr {
                Some(Ok(EvalResult::String(s))) => Some(s.as_str()),
                _ => None,
            },
        };
        let mut sets: Vec<&PolicySet> = Vec::new();
        let unguarded = self
            .unguarded_by_action
            .iter()
            .find_map(|(a, set)| (a == action).then_some(set))
            .unwrap_or(&self.unguarded_any);
        if !unguarded.is_empty() {
            sets.push(unguarded);
        }
        let mut consider = |ids: &Vec<usize>| {
            for e in ids.iter().filter_map(|&i| self.entries.get(i)) {
                if e.admits(&facts) {
                    sets.push(&e.set);
                }
            }
        };
        match facts.path {
            Some(path) => self
                .prefix_lens
                .iter()
                .filter_map(|&len| path.get(..len))
                .filter_map(|k| self.by_prefix.get(k))
                .for_each(&mut consider),
            None => self.by_prefix.values().for_each(&mut consider),
        }
        match &facts.scopes {
            Some(have) => have
                .iter()
                .filter_map(|s| self.by_scope.get(*s))
                .for_each(&mut consider),
            None => self.by_scope.values().for_each(&mut consider),
        }
        Some(sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn guards_of(src: &str) -> Guards {
        let set = PolicySet::from_str(src).unwrap();
        let p = set.policies().next().unwrap();
        guards(p, p.to_json().ok().as_ref())
    }

    fn path(prefix: &str, exact: bool) -> PathGuard {
        PathGuard {
            prefix: prefix.to_owned(),
            exact,
        }
    }

    #[test]
    fn reads_guards_from_scope_and_when_conjuncts() {
        let g = guards_of(
            r#"permit(principal, action in [Action::"GET", Action::"HEAD"], resource)
               when { principal.scopes.contains("a") && (resource.path like "/x/*" && true) }
               when { resource["path"] like "/x/y" };"#,
        );
        assert_eq!(g.actions.unwrap().len(), 2);
        assert_eq!(g.scopes, ["a"]);
        assert_eq!(g.paths, [path("/x/", false), path("/x/y", true)]);
    }

    #[test]
    fn ignores_what_is_not_a_necessary_condition() {
        for src in [
            r#"permit(principal, action, resource) when { principal.scopes.contains("a") || resource.path like "/x/*" };"#,
            r#"permit(principal, action, resource) unless { principal.scopes.contains("a") };"#,
            r#"permit(principal, action, resource) when { !(resource.path like "/x/*") };"#,
            r#"permit(principal, action, resource) when { resource.path like "*/x" };"#,
            r#"permit(principal, action, resource) when { principal.other.contains("a") };"#,
            r#"permit(principal, action, resource) when { context.path like "/x/*" };"#,
            r#"permit(principal, action, resource) when { if true then resource.path like "/x" else true };"#,
        ] {
            assert_eq!(guards_of(src), Guards::default(), "{src}");
        }
        // An escaped star is a literal.
        let g = guards_of(r#"permit(principal, action, resource) when { resource.path like "/a\*b/*" };"#);
        assert_eq!(g.paths, [path("/a*b/", false)]);
    }

    #[test]
    fn selects_only_what_can_match() {
        use castellan_verify::{VerifiedClaims, VerifiedToken};
        let mut src = String::from(
            r#"@id("no-admin") forbid(principal, action, resource) when { resource.path like "/admin/*" };
               @id("no-deletes") forbid(principal, action == Action::"DELETE", resource);
               @id("open") permit(principal, action == Action::"OPTIONS", resource);
"#,
        );
        for t in 0..40 {
            src.push_str(&format!(
                "@id(\"r{t}\") permit(principal, action in [Action::\"GET\", Action::\"HEAD\"], resource) \
                 when {{ principal.scopes.contains(\"t{t}\") && resource.path like \"/t{t}/*\" }};\n"
            ));
        }
        let set = PolicySet::from_str(&src).unwrap();
        let index = Index::build(&set).unwrap();
        let token = VerifiedToken::new(VerifiedClaims {
            iss: "i".into(),
            sub: "alice".into(),
            aud: "a".into(),
            client_id: "c".into(),
            sid: "s".into(),
            jti: "j".into(),
            scope: Some("t3 t4".into()),
            iat: 0,
            exp: 1,
            kid: "k".into(),
            act: None,
            cnf_x5t_s256: None,
        });
        let count = |method: &str, path: &str| {
            let (req, entities) = crate::gate_request(&token, None, method, path).unwrap();
            index.select(req.as_cedar(), &entities).map(|s| s.len())
        };
        assert_eq!(count("GET", "/t3/x"), Some(1), "r3 alone");
        // Indexed by path: a policy whose scope the principal lacks is left to Cedar.
        assert_eq!(count("GET", "/t5/x"), Some(1), "r5, by its path");
        assert_eq!(count("GET", "/t77/x"), Some(0), "no policy for the path");
        assert_eq!(count("GET", "/admin/x"), Some(1), "no-admin alone");
        assert_eq!(count("DELETE", "/t3/x"), Some(1), "the DELETE set: no-deletes");
        assert_eq!(count("OPTIONS", "/t3/x"), Some(1), "the OPTIONS set: open");
        assert_eq!(count("POST", "/t3/x"), Some(0));
    }

    #[test]
    fn scope_only_policies_are_indexed_by_scope() {
        use castellan_verify::{VerifiedClaims, VerifiedToken};
        let set = PolicySet::from_str(
            r#"@id("s9") permit(principal, action == Action::"GET", resource) when { principal.scopes.contains("s9") };
               @id("s8") permit(principal, action == Action::"GET", resource) when { principal.scopes.contains("s8") };"#,
        )
        .unwrap();
        let index = Index::build(&set).unwrap();
        let count = |scope: &str| {
            let token = VerifiedToken::new(VerifiedClaims {
                iss: "i".into(),
                sub: "alice".into(),
                aud: "a".into(),
                client_id: "c".into(),
                sid: "s".into(),
                jti: "j".into(),
                scope: Some(scope.into()),
                iat: 0,
                exp: 1,
                kid: "k".into(),
                act: None,
                cnf_x5t_s256: None,
            });
            let (req, entities) = crate::gate_request(&token, None, "GET", "/x").unwrap();
            index.select(req.as_cedar(), &entities).map(|s| s.len())
        };
        assert_eq!(count("s9"), Some(1));
        assert_eq!(count("s8 s9"), Some(2));
        assert_eq!(count("other"), Some(0));
    }
}

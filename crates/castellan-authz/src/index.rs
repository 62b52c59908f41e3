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
    /// Entries with a scope guard, under their first one.
    by_scope: HashMap<String, Vec<usize>>,
    /// Entries with a path guard but no scope guard, under the longest prefix.
    by_prefix: HashMap<String, Vec<usize>>,
    /// The distinct lengths of `by_prefix` keys.
    prefix_lens: Vec<usize>,
    /// Policies with no scope or path guard, per action they apply to.
    unguarded_by_action: HashMap<EntityUid, PolicySet>,
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

fn single(p: Policy) -> PolicySet {
    let mut set = PolicySet::new();
    // A fresh set takes any one policy.
    let _ = set.add(p);
    set
}

impl Index {
    /// Groups the policies of `set`.
    pub(crate) fn build(set: &PolicySet) -> Self {
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
            if let Some(scope) = g.scopes.first() {
                index.by_scope.entry(scope.clone()).or_default().push(i);
            } else if let Some(longest) = g.paths.iter().max_by_key(|pg| pg.prefix.len()) {
                index.by_prefix.entry(longest.prefix.clone()).or_default().push(i);
                if !index.prefix_lens.contains(&longest.prefix.len()) {
                    index.prefix_lens.push(longest.prefix.len());
                }
            }
            index.entries.push(Entry {
                guards: g,
                set: single(policy),
            });
        }
        let mut named: Vec<&EntityUid> = Vec::new();
        for a in unguarded.iter().filter_map(|(a, _)| a.as_ref()).flatten() {
            if !named.contains(&a) {
                named.push(a);
            }
        }
        for action in named {
            let mut s = PolicySet::new();
            for (actions, p) in &unguarded {
                if actions.as_ref().is_none_or(|a| a.contains(action)) {
                    let _ = s.add(p.clone());
                }
            }
            index.unguarded_by_action.insert(action.clone(), s);
        }
        for (actions, p) in &unguarded {
            if actions.is_none() {
                let _ = index.unguarded_any.add(p.clone());
            }
        }
        index
    }

    /// The sets to evaluate for this request, or `None` to evaluate the
    /// whole policy set (the action has ancestors, or there is no action).
    pub(crate) fn select(&self, request: &cedar_policy::Request, entities: &Entities) -> Option<Vec<&PolicySet>> {
        let action = request.action()?;
        if entities.ancestors(action).is_some_and(|mut a| a.next().is_some()) {
            return None;
        }
        let scopes_attr = request
            .principal()
            .and_then(|p| entities.get(p))
            .and_then(|p| p.attr("scopes"));
        let path_attr = request
            .resource()
            .and_then(|r| entities.get(r))
            .and_then(|r| r.attr("path"));
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
        let unguarded = self.unguarded_by_action.get(action).unwrap_or(&self.unguarded_any);
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
        match &facts.scopes {
            Some(have) => have
                .iter()
                .filter_map(|s| self.by_scope.get(*s))
                .for_each(&mut consider),
            None => self.by_scope.values().for_each(&mut consider),
        }
        match facts.path {
            Some(path) => self
                .prefix_lens
                .iter()
                .filter_map(|&len| path.get(..len))
                .filter_map(|k| self.by_prefix.get(k))
                .for_each(&mut consider),
            None => self.by_prefix.values().for_each(&mut consider),
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
}

//! Checking a policy set: parse, name, and (with a schema) validate. The
//! authority runs [`check_policies`] before it stores a push; a service runs
//! the same code when it compiles a bundle.

use crate::diagnostics::{render, render_all};
use crate::error::AuthzError;
use cedar_policy::{Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a policy set holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// Policy ids in source order: the `@id("...")` annotation where a
    /// policy has one, else Cedar's `policy0`, `policy1`, ...
    pub ids: Vec<String>,
    /// How many `permit` policies.
    pub permits: usize,
    /// How many `forbid` policies.
    pub forbids: usize,
}

/// A checked policy set, ready to decide with.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) set: PolicySet,
    pub(crate) schema: Option<Schema>,
    pub(crate) summary: PolicySummary,
}

/// Parses `policies`, renames each policy to its `@id` annotation, and with
/// a schema validates the set against it in strict mode.
pub(crate) fn compile(policies: &str, schema: Option<&str>) -> Result<Checked, AuthzError> {
    let parsed = PolicySet::from_str(policies).map_err(|e| AuthzError::Parse(render_all(e.iter(), policies)))?;
    if parsed.num_of_templates() > 0 {
        let ids: Vec<String> = parsed.templates().map(|t| format!("`{}`", t.id())).collect();
        return Err(AuthzError::PolicySet(format!(
            "templates are not supported (a bundle carries no template links): {}",
            ids.join(", ")
        )));
    }
    // Decisions name the policies that determined them; `@id` makes those
    // names stable across edits, where Cedar's `policyN` shift.
    let mut set = PolicySet::new();
    let mut summary = PolicySummary {
        ids: Vec::new(),
        permits: 0,
        forbids: 0,
    };
    for p in parsed.policies() {
        let p = match p.annotation("id") {
            Some(id) if !id.is_empty() => p.new_id(PolicyId::new(id)),
            _ => p.clone(),
        };
        let id = AsRef::<str>::as_ref(p.id()).to_owned();
        match p.effect() {
            Effect::Permit => summary.permits += 1,
            Effect::Forbid => summary.forbids += 1,
        }
        set.add(p)
            .map_err(|e| AuthzError::PolicySet(format!("policy id `{id}`: {}", render(&e, policies))))?;
        summary.ids.push(id);
    }
    let Some(schema_text) = schema else {
        return Ok(Checked {
            set,
            schema: None,
            summary,
        });
    };
    let (schema, _warnings) =
        Schema::from_cedarschema_str(schema_text).map_err(|e| AuthzError::Schema(render(&e, schema_text)))?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        return Err(AuthzError::Validation(render_all(result.validation_errors(), policies)));
    }
    Ok(Checked {
        set,
        schema: Some(schema),
        summary,
    })
}

/// Parses `policies` (Cedar policy text) and, when `schema` (Cedar schema,
/// human-readable `.cedarschema` format) is given, validates them against it
/// in strict mode: what the authority runs before it stores a push, and
/// what [`crate::CompiledBundle::compile`] runs.
///
/// Policies are named by their `@id("...")` annotation when they have one;
/// two policies with one id are refused, as are templates.
///
/// # Errors
/// [`AuthzError::Parse`], [`AuthzError::Schema`], [`AuthzError::Validation`]
/// or [`AuthzError::PolicySet`], with Cedar's diagnostics, one per line.
pub fn check_policies(policies: &str, schema: Option<&str>) -> Result<PolicySummary, AuthzError> {
    compile(policies, schema).map(|c| c.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GATE_SCHEMA;

    const GOOD: &str = r#"
@id("read-orders")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders:read") && resource.path like "/orders/*" };

@id("no-admin")
forbid(principal, action, resource) when { resource.path like "/admin/*" };

permit(principal, action == Action::"POST", resource)
when { principal has peer && principal.peer == "spiffe://example.org/billing" };
"#;

    #[test]
    fn summary_counts_and_names_in_source_order() {
        let s = check_policies(GOOD, Some(GATE_SCHEMA)).unwrap();
        assert_eq!(s.ids, ["read-orders", "no-admin", "policy2"]);
        assert_eq!((s.permits, s.forbids), (2, 1));
        // Without a schema it only parses.
        assert_eq!(check_policies(GOOD, None).unwrap(), s);
        // Ids are the annotation verbatim, not escaped.
        let quoted = check_policies(r#"@id("say \"hi\"") permit(principal, action, resource);"#, None).unwrap();
        assert_eq!(quoted.ids, ["say \"hi\""]);
        // An empty set is valid: it denies everything.
        assert_eq!(check_policies("", Some(GATE_SCHEMA)).unwrap().ids.len(), 0);
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let bad = "permit(principal, action, resource);\n\npermit(principal, action resource);\n";
        let err = check_policies(bad, None).unwrap_err();
        let AuthzError::Parse(text) = &err else {
            panic!("{err:?}")
        };
        assert!(text.contains("line 3"), "{text}");
        assert!(err.to_string().starts_with("policies do not parse:"), "{err}");
    }

    #[test]
    fn every_parse_error_is_reported() {
        let bad = "permit(principal, action resource);\nforbid(principal action, resource);\n";
        let AuthzError::Parse(text) = check_policies(bad, None).unwrap_err() else {
            panic!()
        };
        assert!(text.contains("line 1") && text.contains("line 2"), "{text}");
    }

    #[test]
    fn validation_errors_name_the_policy_and_place() {
        let bad = "@id(\"uses-email\")\npermit(principal, action, resource)\nwhen { principal.email == \"a@b\" };\n";
        let err = check_policies(bad, Some(GATE_SCHEMA)).unwrap_err();
        let AuthzError::Validation(text) = &err else {
            panic!("{err:?}")
        };
        assert!(text.contains("uses-email"), "{text}");
        assert!(text.contains("email"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        // Unvalidated, the same text parses.
        assert!(check_policies(bad, None).is_ok());
    }

    #[test]
    fn optional_attributes_need_has() {
        let bad = "permit(principal, action, resource) when { principal.peer == \"x\" };";
        assert!(matches!(
            check_policies(bad, Some(GATE_SCHEMA)),
            Err(AuthzError::Validation(_))
        ));
        let good = "permit(principal, action, resource) when { principal has peer && principal.peer == \"x\" };";
        check_policies(good, Some(GATE_SCHEMA)).unwrap();
    }

    #[test]
    fn bad_schema_is_refused_with_a_place() {
        let err = check_policies("", Some("entity Principal = { client_id: String ")).unwrap_err();
        let AuthzError::Schema(text) = &err else {
            panic!("{err:?}")
        };
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn duplicate_ids_and_templates_are_refused() {
        let dup = "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);";
        assert!(matches!(check_policies(dup, None), Err(AuthzError::PolicySet(m)) if m.contains("`a`")));
        let template = "permit(principal == ?principal, action, resource);";
        assert!(matches!(check_policies(template, None), Err(AuthzError::PolicySet(m)) if m.contains("template")));
    }
}

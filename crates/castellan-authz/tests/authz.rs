//! The authorizer through its public interface: the gate's entity model,
//! default deny, forbid over permit, hot swap, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_authz::{
    check_policies, gate_request, Authorizer, AuthzError, Decision, DenyReason, PolicyBundle, GATE_SCHEMA,
};
use castellan_verify::{VerifiedClaims, VerifiedToken};
use serde_json::json;

fn token(sub: &str, scope: Option<&str>, act: Option<serde_json::Value>) -> VerifiedToken {
    VerifiedToken::new(VerifiedClaims {
        iss: "https://auth.test".into(),
        sub: sub.into(),
        aud: "orders".into(),
        client_id: "web".into(),
        sid: "s1".into(),
        jti: "j1".into(),
        scope: scope.map(str::to_owned),
        iat: 1,
        exp: 2,
        kid: "k".into(),
        act,
        cnf_x5t_s256: None,
    })
}

const POLICIES: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };

@id("writers")
permit(principal, action in [Action::"POST", Action::"PUT"], resource)
when { principal.scopes.contains("orders.write") && resource.path like "/orders/*" };

@id("billing-peer")
permit(principal, action == Action::"POST", resource == Route::"/refunds")
when { principal has peer && principal.peer == "spiffe://prod.example/billing" };

@id("no-admin")
forbid(principal, action, resource)
when { resource.path like "/admin/*" };
"#;

fn bundle(version: i64, policies: &str) -> PolicyBundle {
    PolicyBundle {
        service: "orders".into(),
        version,
        policies: policies.into(),
        schema: Some(GATE_SCHEMA.into()),
        created_at: 0,
    }
}

fn decide(a: &Authorizer, t: &VerifiedToken, peer: Option<&str>, method: &str, path: &str) -> Decision {
    let (req, entities) = gate_request(t, peer, method, path).unwrap();
    a.decide(&req, &entities)
}

#[test]
fn the_gate_model_allows_denies_and_forbid_wins() {
    let summary = check_policies(POLICIES, Some(GATE_SCHEMA)).unwrap();
    assert_eq!(summary.permits, 3);
    assert_eq!(summary.forbids, 1);
    assert_eq!(summary.ids, ["readers", "writers", "billing-peer", "no-admin"]);

    let a = Authorizer::new("orders");
    let reader = token("alice", Some("orders.read"), None);
    // No bundle yet: nothing is allowed.
    assert!(matches!(
        decide(&a, &reader, None, "GET", "/orders/1"),
        Decision::Deny {
            reason: DenyReason::NoBundle,
            version: None,
            ..
        }
    ));
    assert!(a.install(bundle(1, POLICIES)).unwrap());

    let d = decide(&a, &reader, None, "GET", "/orders/1");
    assert_eq!(
        d,
        Decision::Allow {
            determining: vec!["readers".into()],
            version: 1,
            errors: vec![]
        }
    );
    // Default deny: a reader may not write.
    assert!(matches!(
        decide(&a, &reader, None, "POST", "/orders/1"),
        Decision::Deny { reason: DenyReason::NoPermit, ref determining, .. } if determining.is_empty()
    ));
    // Forbid overrides a matching permit.
    let d = decide(&a, &reader, None, "GET", "/admin/users");
    assert_eq!(
        d,
        Decision::Deny {
            reason: DenyReason::Forbidden,
            determining: vec!["no-admin".into()],
            errors: vec![],
            version: Some(1)
        }
    );
    // Scopes are a set; the path attribute drives `like`.
    let writer = token("bob", Some("orders.read orders.write"), None);
    assert!(decide(&a, &writer, None, "PUT", "/orders/7").is_allowed());
    assert!(!decide(&a, &writer, None, "PUT", "/invoices/7").is_allowed());
    // The mTLS peer, only when there is one.
    let svc = token("billing-client", None, None);
    assert!(decide(&a, &svc, Some("spiffe://prod.example/billing"), "POST", "/refunds").is_allowed());
    assert!(!decide(&a, &svc, Some("spiffe://prod.example/other"), "POST", "/refunds").is_allowed());
    assert!(!decide(&a, &svc, None, "POST", "/refunds").is_allowed());
    // No scopes at all is an empty set, not an error.
    assert!(matches!(
        decide(&a, &svc, None, "GET", "/orders"),
        Decision::Deny { reason: DenyReason::NoPermit, ref errors, .. } if errors.is_empty()
    ));
}

#[test]
fn actors_of_an_exchanged_token_are_visible() {
    let a = Authorizer::new("orders");
    a.install(bundle(
        1,
        r#"@id("via-frontend") permit(principal, action, resource)
           when { principal has actors && principal.actors.contains("frontend") };"#,
    ))
    .unwrap();
    let act = json!({"sub": "frontend", "act": {"sub": "edge"}});
    assert!(decide(&a, &token("alice", None, Some(act)), None, "GET", "/x").is_allowed());
    assert!(!decide(&a, &token("alice", None, None), None, "GET", "/x").is_allowed());
}

#[test]
fn an_erroring_permit_allows_nothing() {
    let a = Authorizer::new("orders");
    // Without a schema this parses; `peer` is missing on plain calls, so the
    // permit errors at evaluation and is skipped.
    a.install(PolicyBundle {
        schema: None,
        ..bundle(
            1,
            r#"@id("p") permit(principal, action, resource) when { principal.peer == "x" };"#,
        )
    })
    .unwrap();
    match decide(&a, &token("alice", None, None), None, "GET", "/x") {
        Decision::Deny {
            reason: DenyReason::NoPermit,
            errors,
            ..
        } => assert_eq!(errors.len(), 1, "{errors:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn installs_swap_atomically_and_refuse_what_they_must() {
    let a = Authorizer::new("orders");
    a.install(bundle(1, POLICIES)).unwrap();
    let held = a.current().unwrap();
    let reader = token("alice", Some("orders.read"), None);
    // Version 2 forbids everything; decisions already holding v1 keep it.
    assert!(a
        .install(bundle(2, r#"@id("freeze") forbid(principal, action, resource);"#))
        .unwrap());
    assert_eq!(a.version(), Some(2));
    assert_eq!(held.bundle.version, 1);
    assert!(!decide(&a, &reader, None, "GET", "/orders/1").is_allowed());

    // The same bundle again is a no-op; an older or equal different one is a replay.
    assert!(!a
        .install(bundle(2, r#"@id("freeze") forbid(principal, action, resource);"#))
        .unwrap());
    assert!(matches!(
        a.install(bundle(1, POLICIES)),
        Err(AuthzError::Stale { current: 2, offered: 1 })
    ));
    assert!(matches!(a.install(bundle(2, POLICIES)), Err(AuthzError::Stale { .. })));
    // Another service's bundle.
    let other = PolicyBundle {
        service: "billing".into(),
        ..bundle(3, POLICIES)
    };
    assert!(matches!(a.install(other), Err(AuthzError::WrongService { .. })));
    // A broken one: refused with Cedar's diagnostic, v2 stays in force.
    let err = a.install(bundle(3, "permit(principal, action resource);")).unwrap_err();
    assert!(matches!(err, AuthzError::Parse(_)), "{err}");
    // Valid Cedar that the schema refuses.
    let err = a
        .install(bundle(
            3,
            r#"permit(principal, action, resource) when { principal.department == "x" };"#,
        ))
        .unwrap_err();
    assert!(
        matches!(err, AuthzError::Validation(ref m) if m.contains("department")),
        "{err}"
    );
    assert_eq!(a.version(), Some(2));
}

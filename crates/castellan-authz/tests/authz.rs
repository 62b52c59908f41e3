//! `castellan-authz` through its public API: decisions (allow, default deny,
//! forbid over permit, erroring policies), the gate's entity model and
//! schema, installs and hot swaps, signed bundles and the last-good file.
//! No authority runs here: bundles are signed with keys made on the spot,
//! as the authority signs them (castellan-jose `sign_compact`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_authz::{
    check_policies, entity_uid, gate_request, principal_entity_with_parents, verify_bundle, Authorizer, AuthzError,
    AuthzRequest, CompiledBundle, Decision, DenyReason, Installed, PolicyBundle, GATE_SCHEMA, POLICY_BUNDLE_TYP,
};
use castellan_jose::{b64, Algorithm, JoseError, SigningKey, VerifyingKey};
use castellan_verify::{VerifiedClaims, VerifiedToken};
use cedar_policy::{Context, Entities, Entity, RestrictedExpression};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const ISS: &str = "https://auth.test";
const SERVICE: &str = "orders";

/// A typical gate policy set: read by scope and path prefix, write by
/// scope, service-to-service by mTLS peer, and two forbids.
const GATE_POLICIES: &str = r#"
@id("read-orders")
permit(principal, action in [Action::"GET", Action::"HEAD"], resource)
when { principal.scopes.contains("orders:read") && resource.path like "/orders*" };

@id("write-orders")
permit(principal, action in [Action::"POST", Action::"PUT", Action::"PATCH", Action::"DELETE"], resource)
when { principal.scopes.contains("orders:write") && resource.path like "/orders/*" };

@id("billing-peer")
permit(principal, action == Action::"POST", resource)
when { principal has peer && principal.peer == "spiffe://castellan.test/billing" && resource.path like "/internal/*" };

@id("no-admin")
forbid(principal, action, resource) when { resource.path like "/orders/admin*" };

@id("no-delegated-deletes")
forbid(principal, action == Action::"DELETE", resource) unless { principal.actors.isEmpty() };
"#;

fn token(sub: &str, scope: Option<&str>, act: Option<Value>) -> VerifiedToken {
    VerifiedToken::new(VerifiedClaims {
        iss: ISS.into(),
        sub: sub.into(),
        aud: SERVICE.into(),
        client_id: "web".into(),
        sid: "s1".into(),
        jti: "j1".into(),
        scope: scope.map(str::to_owned),
        iat: 1_700_000_000,
        exp: 1_700_000_300,
        kid: "k".into(),
        act,
        cnf_x5t_s256: None,
    })
}

fn bundle(version: u64, policies: &str, schema: Option<&str>) -> PolicyBundle {
    PolicyBundle {
        service: SERVICE.into(),
        version,
        policies: policies.into(),
        schema: schema.map(str::to_owned),
        created_at: 1_700_000_000 + i64::try_from(version).unwrap(),
    }
}

fn gate_authz() -> Authorizer {
    let a = Authorizer::new(SERVICE);
    a.install(bundle(1, GATE_POLICIES, Some(GATE_SCHEMA))).unwrap();
    a
}

fn decide(a: &Authorizer, t: &VerifiedToken, peer: Option<&str>, method: &str, path: &str) -> Decision {
    let (req, entities) = gate_request(t, peer, method, path).unwrap();
    a.decide(&req, &entities)
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---- decisions ----

#[test]
fn allow_names_the_permit_and_version() {
    let a = gate_authz();
    let reader = token("alice", Some("orders:read"), None);
    assert_eq!(
        decide(&a, &reader, None, "GET", "/orders/7"),
        Decision::Allow {
            determining: ids(&["read-orders"]),
            version: 1,
            errors: vec![]
        }
    );
}

#[test]
fn default_deny_when_no_permit_matches() {
    let a = gate_authz();
    let reader = token("alice", Some("orders:read"), None);
    for (method, path) in [("POST", "/orders/7"), ("GET", "/billing"), ("PROPFIND", "/orders/7")] {
        assert_eq!(
            decide(&a, &reader, None, method, path),
            Decision::Deny {
                reason: DenyReason::NoPermit,
                determining: vec![],
                errors: vec![],
                version: Some(1)
            },
            "{method} {path}"
        );
    }
}

#[test]
fn no_bundle_denies_everything() {
    let a = Authorizer::new(SERVICE);
    assert_eq!(a.version(), None);
    let d = decide(&a, &token("alice", Some("orders:read"), None), None, "GET", "/orders/7");
    assert_eq!(
        d,
        Decision::Deny {
            reason: DenyReason::NoBundle,
            determining: vec![],
            errors: vec![],
            version: None
        }
    );
    assert_eq!(d.label(), "no_bundle");
}

#[test]
fn forbid_overrides_permit() {
    let a = gate_authz();
    let reader = token("alice", Some("orders:read orders:write"), None);
    // `read-orders` matches `/orders/admin`, and so does `no-admin`.
    let d = decide(&a, &reader, None, "GET", "/orders/admin/users");
    assert_eq!(
        d,
        Decision::Deny {
            reason: DenyReason::Forbidden,
            determining: ids(&["no-admin"]),
            errors: vec![],
            version: Some(1)
        }
    );
    assert!(!d.is_allowed());
    // The same with only Cedar's own names.
    let b = CompiledBundle::compile(PolicyBundle {
        policies: "permit(principal, action, resource);\nforbid(principal, action, resource);".into(),
        ..bundle(1, "", None)
    })
    .unwrap();
    let (req, entities) = gate_request(&reader, None, "GET", "/x").unwrap();
    assert_eq!(
        b.decide(&req, &entities),
        Decision::Deny {
            reason: DenyReason::Forbidden,
            determining: ids(&["policy1"]),
            errors: vec![],
            version: Some(1)
        }
    );
}

#[test]
fn scopes_contains() {
    let a = gate_authz();
    for (scope, allowed) in [
        (Some("orders:write"), true),
        (Some("profile orders:write email"), true),
        (Some("orders:read"), false),
        (Some("orders:writer"), false),
        (None, false),
    ] {
        let d = decide(&a, &token("alice", scope, None), None, "PUT", "/orders/7");
        assert_eq!(d.is_allowed(), allowed, "{scope:?}: {d:?}");
    }
}

#[test]
fn peer_present_and_absent() {
    let a = gate_authz();
    let svc = token("billing", None, None);
    let d = decide(
        &a,
        &svc,
        Some("spiffe://castellan.test/billing"),
        "POST",
        "/internal/refund",
    );
    assert_eq!(d.determining(), ["billing-peer"]);
    assert!(d.is_allowed());
    // Without mTLS there is no `peer`: `principal has peer` is false, no error.
    let d = decide(&a, &svc, None, "POST", "/internal/refund");
    assert_eq!(
        d,
        Decision::Deny {
            reason: DenyReason::NoPermit,
            determining: vec![],
            errors: vec![],
            version: Some(1)
        }
    );
    // Another peer.
    assert!(!decide(
        &a,
        &svc,
        Some("spiffe://castellan.test/other"),
        "POST",
        "/internal/refund"
    )
    .is_allowed());
}

#[test]
fn actors_from_token_exchange() {
    let a = gate_authz();
    let direct = token("alice", Some("orders:write"), None);
    assert!(decide(&a, &direct, None, "DELETE", "/orders/7").is_allowed());
    let delegated = token("alice", Some("orders:write"), Some(json!({"sub": "frontend"})));
    let d = decide(&a, &delegated, None, "DELETE", "/orders/7");
    assert_eq!(d.label(), "forbidden");
    assert_eq!(d.determining(), ["no-delegated-deletes"]);
    assert!(decide(&a, &delegated, None, "PUT", "/orders/7").is_allowed());
}

#[test]
fn an_erroring_permit_allows_nothing() {
    // No schema, so this parses and then fails at evaluation: the
    // principal has no `email` attribute. Cedar skips the policy.
    let a = Authorizer::new(SERVICE);
    a.install(bundle(
        1,
        r#"@id("by-email") permit(principal, action, resource) when { principal.email == "a@example.com" };"#,
        None,
    ))
    .unwrap();
    let d = decide(&a, &token("alice", None, None), None, "GET", "/x");
    let Decision::Deny {
        reason: DenyReason::NoPermit,
        determining,
        errors,
        version: Some(1),
    } = &d
    else {
        panic!("{d:?}")
    };
    assert!(determining.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("by-email") && errors[0].contains("email"),
        "{errors:?}"
    );
}

#[test]
fn an_erroring_forbid_is_skipped_and_reported() {
    // Cedar's semantics, shown so nobody is surprised: an erroring forbid
    // denies nothing. Validating against a schema rules this class out.
    let a = Authorizer::new(SERVICE);
    a.install(bundle(
        1,
        r#"@id("all") permit(principal, action, resource);
           @id("broken-forbid") forbid(principal, action, resource) when { principal.suspended };"#,
        None,
    ))
    .unwrap();
    let d = decide(&a, &token("alice", None, None), None, "GET", "/x");
    assert!(d.is_allowed());
    assert_eq!(d.determining(), ["all"]);
    assert_eq!(d.errors().len(), 1);
    assert!(d.errors()[0].contains("broken-forbid"), "{:?}", d.errors());
    // With the gate schema the same forbid is refused before it is stored.
    assert!(matches!(
        check_policies(
            "forbid(principal, action, resource) when { principal.suspended };",
            Some(GATE_SCHEMA)
        ),
        Err(AuthzError::Validation(_))
    ));
}

#[test]
fn a_service_supplies_its_own_entities() {
    // Orders owned by people and visible to their team's managers, as a
    // service would load them from its own database.
    const SCHEMA: &str = r#"
        entity Team;
        entity Principal in [Team] = { client_id: String, scopes: Set<String>, peer?: String, actors: Set<String> };
        entity Order = { owner: Principal, team: Team };
        action "view" appliesTo { principal: [Principal], resource: [Order], context: { manager: Bool } };
    "#;
    const POLICIES: &str = r#"
        @id("owner") permit(principal, action == Action::"view", resource) when { resource.owner == principal };
        @id("team-manager") permit(principal, action == Action::"view", resource)
            when { context.manager && principal in resource.team };
    "#;
    let a = Authorizer::new(SERVICE);
    a.install(bundle(1, POLICIES, Some(SCHEMA))).unwrap();
    let order = |owner: &str, team: &str| {
        let attrs = HashMap::from([
            (
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(entity_uid("Principal", owner).unwrap()),
            ),
            (
                "team".to_owned(),
                RestrictedExpression::new_entity_uid(entity_uid("Team", team).unwrap()),
            ),
        ]);
        Entity::new(entity_uid("Order", "o-1").unwrap(), attrs, HashSet::new()).unwrap()
    };
    let ask = |who: &str, team: &str, manager: bool| {
        // The principal's team comes from the service's data too.
        let principal =
            principal_entity_with_parents(&token(who, None, None), None, [entity_uid("Team", team).unwrap()]).unwrap();
        let entities = Entities::from_entities(
            [
                principal.clone(),
                order("alice", "emea"),
                Entity::with_uid(entity_uid("Team", "emea").unwrap()),
                Entity::with_uid(entity_uid("Team", "apac").unwrap()),
            ],
            None,
        )
        .unwrap();
        let context = Context::from_pairs([("manager".to_owned(), RestrictedExpression::new_bool(manager))]).unwrap();
        let req = AuthzRequest::new(
            principal.uid(),
            entity_uid("Action", "view").unwrap(),
            entity_uid("Order", "o-1").unwrap(),
            context,
        )
        .unwrap();
        a.decide(&req, &entities)
    };
    assert_eq!(ask("alice", "apac", false).determining(), ["owner"]);
    assert_eq!(ask("bob", "emea", true).determining(), ["team-manager"]);
    assert_eq!(ask("bob", "emea", false).label(), "no_permit");
    assert_eq!(ask("carol", "apac", true).label(), "no_permit");
}

// ---- checking and compiling ----

#[test]
fn gate_schema_validates_a_typical_gate_policy_set() {
    let s = check_policies(GATE_POLICIES, Some(GATE_SCHEMA)).unwrap();
    assert_eq!(
        s.ids,
        [
            "read-orders",
            "write-orders",
            "billing-peer",
            "no-admin",
            "no-delegated-deletes"
        ]
    );
    assert_eq!((s.permits, s.forbids), (3, 2));
}

#[test]
fn schema_refuses_an_undeclared_attribute() {
    let policies =
        "@id(\"by-email\")\npermit(principal, action, resource)\nwhen { principal.email like \"*@example.com\" };";
    let err = check_policies(policies, Some(GATE_SCHEMA)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AuthzError::Validation(_)), "{err:?}");
    assert!(
        text.contains("by-email") && text.contains("`email`") && text.contains("line 3"),
        "{text}"
    );
    // Also on install: nothing goes in force.
    let a = Authorizer::new(SERVICE);
    assert!(matches!(
        a.install(bundle(1, policies, Some(GATE_SCHEMA))),
        Err(AuthzError::Validation(_))
    ));
    assert_eq!(a.version(), None);
}

#[test]
fn a_broken_policy_is_refused_with_a_diagnostic() {
    let broken =
        "@id(\"ok\") permit(principal, action, resource);\n\npermit(principal, action == Action::\"GET\" resource);\n";
    let err = check_policies(broken, None).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AuthzError::Parse(_)), "{err:?}");
    assert!(text.contains("unexpected token `resource`"), "{text}");
    assert!(text.contains("line 3, column"), "{text}");
}

// ---- installs and hot swaps ----

#[test]
fn hot_swap_keeps_the_old_bundle_usable() {
    let a = gate_authz();
    let reader = token("alice", Some("orders:read"), None);
    let (req, entities) = gate_request(&reader, None, "GET", "/orders/7").unwrap();
    let v1 = a.current().unwrap();
    assert!(a.decide(&req, &entities).is_allowed());

    // v2 revokes reading; no new token.
    let v2_policies = GATE_POLICIES.replace("orders:read", "orders:audit");
    assert_eq!(
        a.install(bundle(2, &v2_policies, Some(GATE_SCHEMA))).unwrap(),
        Installed::Swapped {
            previous: Some(1),
            version: 2
        }
    );
    assert_eq!(a.version(), Some(2));
    assert_eq!(
        a.decide(&req, &entities),
        Decision::Deny {
            reason: DenyReason::NoPermit,
            determining: vec![],
            errors: vec![],
            version: Some(2)
        }
    );
    // A decision that started with v1 finishes with v1.
    assert_eq!(v1.version(), 1);
    assert_eq!(
        v1.decide(&req, &entities),
        Decision::Allow {
            determining: ids(&["read-orders"]),
            version: 1,
            errors: vec![]
        }
    );
}

#[test]
fn decisions_never_see_a_half_installed_bundle() {
    // Readers decide while a writer installs v2..v40: every decision is
    // wholly one version's (even versions allow, odd ones deny).
    let allow = "@id(\"even\") permit(principal, action, resource);";
    let deny = "@id(\"odd\") forbid(principal, action, resource);\npermit(principal, action, resource);";
    let a = Arc::new(Authorizer::new(SERVICE));
    a.install(bundle(1, deny, None)).unwrap();
    let (req, entities) = gate_request(&token("alice", None, None), None, "GET", "/x").unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    let d = a.decide(&req, &entities);
                    let v = d.version().unwrap();
                    assert_eq!(d.is_allowed(), v & 1 == 0, "{d:?}");
                }
            });
        }
        for v in 2..=40 {
            a.install(bundle(v, if v % 2 == 0 { allow } else { deny }, None))
                .unwrap();
        }
    });
    assert_eq!(a.version(), Some(40));
}

#[test]
fn another_services_bundle_is_refused() {
    let a = gate_authz();
    let other = PolicyBundle {
        service: "billing".into(),
        ..bundle(2, "permit(principal, action, resource);", None)
    };
    assert_eq!(
        a.install(other).unwrap_err(),
        AuthzError::WrongService {
            expected: SERVICE.into(),
            got: "billing".into()
        }
    );
    assert_eq!(a.version(), Some(1));
}

#[test]
fn a_failed_install_keeps_the_previous_version() {
    let a = gate_authz();
    let reader = token("alice", Some("orders:read"), None);
    for bad in [
        bundle(2, "permit(principal, action, resource", None),
        bundle(
            2,
            "permit(principal, action, resource) when { principal.nope };",
            Some(GATE_SCHEMA),
        ),
        bundle(2, "permit(principal, action, resource);", Some("entity Principal = {")),
    ] {
        assert!(a.install(bad).is_err());
        assert_eq!(a.version(), Some(1));
        assert!(decide(&a, &reader, None, "GET", "/orders/7").is_allowed());
    }
    // A good v2 still goes in after the failures.
    assert!(matches!(
        a.install(bundle(2, GATE_POLICIES, Some(GATE_SCHEMA))),
        Ok(Installed::Swapped { version: 2, .. })
    ));
}

#[test]
fn older_or_conflicting_versions_are_refused_identical_ones_are_no_ops() {
    let a = Authorizer::new(SERVICE);
    let v3 = bundle(3, "@id(\"three\") permit(principal, action, resource);", None);
    assert_eq!(
        a.install(v3.clone()).unwrap(),
        Installed::Swapped {
            previous: None,
            version: 3
        }
    );
    assert_eq!(a.install(v3.clone()).unwrap(), Installed::Unchanged { version: 3 });
    let replay = bundle(2, "permit(principal, action, resource);", None);
    assert_eq!(
        a.install(replay).unwrap_err(),
        AuthzError::Stale { current: 3, offered: 2 }
    );
    let conflicting = PolicyBundle {
        policies: "forbid(principal, action, resource);".into(),
        ..v3
    };
    assert!(matches!(
        a.install(conflicting),
        Err(AuthzError::Stale { current: 3, offered: 3 })
    ));
    assert_eq!(a.current().unwrap().summary().ids, ["three"]);
}

// ---- signed bundles ----

struct Authority {
    sk: SigningKey,
    keys: HashMap<String, VerifyingKey>,
}

impl Authority {
    fn new() -> Self {
        let (sk, _) = SigningKey::generate(Algorithm::ES256).unwrap();
        let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
        Self {
            keys: HashMap::from([(vk.kid().to_owned(), vk)]),
            sk,
        }
    }

    /// As the authority's `GET /policies/{service}/bundle` signs.
    fn sign(&self, b: &PolicyBundle) -> String {
        let mut payload = serde_json::to_value(b).unwrap();
        payload["iss"] = json!(ISS);
        payload["iat"] = json!(1_700_000_100);
        self.sk.sign_compact(POLICY_BUNDLE_TYP, &payload).unwrap()
    }

    fn find<'a>(&'a self) -> impl Fn(&str) -> Option<&'a VerifyingKey> + 'a {
        |kid| self.keys.get(kid)
    }
}

#[test]
fn bundle_signature_checks() {
    let auth = Authority::new();
    let b = bundle(1, GATE_POLICIES, Some(GATE_SCHEMA));
    let jws = auth.sign(&b);
    assert_eq!(verify_bundle(&jws, ISS, SERVICE, auth.find()).unwrap(), b);

    // Wrong typ: an access token signed by the same key is not a bundle.
    let mut as_token = serde_json::to_value(&b).unwrap();
    as_token["iss"] = json!(ISS);
    as_token["iat"] = json!(0);
    let at = auth.sk.sign_compact("at+jwt", &as_token).unwrap();
    assert!(matches!(
        verify_bundle(&at, ISS, SERVICE, auth.find()),
        Err(AuthzError::Signature(JoseError::WrongType { .. }))
    ));
    // Wrong issuer, wrong service.
    assert!(matches!(
        verify_bundle(&jws, "https://evil.test", SERVICE, auth.find()),
        Err(AuthzError::WrongIssuer { .. })
    ));
    assert!(matches!(
        verify_bundle(&jws, ISS, "billing", auth.find()),
        Err(AuthzError::WrongService { .. })
    ));
    // Signed by a key the receiver does not know.
    let stranger = Authority::new();
    assert!(matches!(
        verify_bundle(&stranger.sign(&b), ISS, SERVICE, auth.find()),
        Err(AuthzError::UnknownKey { .. })
    ));
    // Tampered payload.
    let parts: Vec<&str> = jws.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&b64::decode(parts[1]).unwrap()).unwrap();
    payload["policies"] = json!("permit(principal, action, resource);");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(payload.to_string().as_bytes()),
        parts[2]
    );
    assert!(matches!(
        verify_bundle(&tampered, ISS, SERVICE, auth.find()),
        Err(AuthzError::Signature(JoseError::BadSignature))
    ));
    // Malformed payload, properly signed.
    let bad = auth
        .sk
        .sign_compact(POLICY_BUNDLE_TYP, &json!({"iss": ISS, "iat": 0, "service": SERVICE}))
        .unwrap();
    assert!(matches!(
        verify_bundle(&bad, ISS, SERVICE, auth.find()),
        Err(AuthzError::Payload(_))
    ));
}

#[test]
fn install_signed_verifies_then_installs() {
    let auth = Authority::new();
    let a = Authorizer::new(SERVICE);
    let b1 = bundle(1, GATE_POLICIES, Some(GATE_SCHEMA));
    let jws = auth.sign(&b1);
    assert_eq!(
        a.install_signed(&jws, ISS, auth.find()).unwrap(),
        Installed::Swapped {
            previous: None,
            version: 1
        }
    );
    assert_eq!(a.current().unwrap().signed(), Some(jws.as_str()));
    // Signed for another service: refused by the signature step.
    let other = PolicyBundle {
        service: "billing".into(),
        ..bundle(2, "permit(principal, action, resource);", None)
    };
    assert!(matches!(
        a.install_signed(&auth.sign(&other), ISS, auth.find()),
        Err(AuthzError::WrongService { .. })
    ));
    // Signed but not compiling: refused, v1 stays.
    let broken = auth.sign(&bundle(2, "permit(", None));
    assert!(matches!(
        a.install_signed(&broken, ISS, auth.find()),
        Err(AuthzError::Parse(_))
    ));
    assert_eq!(a.version(), Some(1));
}

// ---- last good ----

#[test]
fn last_good_round_trips_and_is_verified_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.policy.jws");
    let auth = Authority::new();

    let a = Authorizer::new(SERVICE);
    assert_eq!(a.save_last_good(&path).unwrap_err(), AuthzError::NothingToSave);
    a.install(bundle(1, GATE_POLICIES, None)).unwrap();
    assert_eq!(
        a.save_last_good(&path).unwrap_err(),
        AuthzError::NothingToSave,
        "an unsigned bundle cannot be saved"
    );
    let jws = auth.sign(&bundle(2, GATE_POLICIES, Some(GATE_SCHEMA)));
    a.install_signed(&jws, ISS, auth.find()).unwrap();
    a.save_last_good(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{jws}\n"));

    // A restart: the file alone brings v2 back.
    let restarted = Authorizer::new(SERVICE);
    assert_eq!(
        restarted.load_last_good(&path, ISS, auth.find()).unwrap(),
        Installed::Swapped {
            previous: None,
            version: 2
        }
    );
    let reader = token("alice", Some("orders:read"), None);
    assert!(decide(&restarted, &reader, None, "GET", "/orders/7").is_allowed());

    // An edited file is refused like any forgery.
    let parts: Vec<&str> = jws.split('.').collect();
    let evil = bundle(3, "permit(principal, action, resource);", None);
    let mut payload = serde_json::to_value(&evil).unwrap();
    payload["iss"] = json!(ISS);
    payload["iat"] = json!(0);
    std::fs::write(
        &path,
        format!(
            "{}.{}.{}",
            parts[0],
            b64::encode(payload.to_string().as_bytes()),
            parts[2]
        ),
    )
    .unwrap();
    let fresh = Authorizer::new(SERVICE);
    assert!(matches!(
        fresh.load_last_good(&path, ISS, auth.find()),
        Err(AuthzError::Signature(JoseError::BadSignature))
    ));
    assert_eq!(fresh.version(), None);
    // Saved by another service's authorizer.
    std::fs::write(&path, &jws).unwrap();
    assert!(matches!(
        Authorizer::new("billing").load_last_good(&path, ISS, auth.find()),
        Err(AuthzError::WrongService { .. })
    ));
    // No file.
    assert!(matches!(
        fresh.load_last_good(&dir.path().join("missing"), ISS, auth.find()),
        Err(AuthzError::Io { op: "read", .. })
    ));
    // Never older than what is in force.
    let newer = Authorizer::new(SERVICE);
    newer
        .install_signed(&auth.sign(&bundle(5, GATE_POLICIES, None)), ISS, auth.find())
        .unwrap();
    assert!(matches!(
        newer.load_last_good(&path, ISS, auth.find()),
        Err(AuthzError::Stale { current: 5, offered: 2 })
    ));
}

#[test]
fn a_refetch_refreshes_the_saved_signature() {
    // The authority signs each fetch afresh (new `iat`, the active key):
    // the same bundle in a new JWS is Unchanged, but the newer signature is
    // what gets saved, so the file's key is the current one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last-good");
    let old_key = Authority::new();
    let new_key = Authority::new();
    let keys: HashMap<String, VerifyingKey> = [&old_key, &new_key]
        .iter()
        .map(|a| {
            (
                a.sk.kid().to_owned(),
                VerifyingKey::from_jwk(a.sk.public_jwk()).unwrap(),
            )
        })
        .collect();
    let b = bundle(4, GATE_POLICIES, None);
    let a = Authorizer::new(SERVICE);
    a.install_signed(&old_key.sign(&b), ISS, |kid| keys.get(kid)).unwrap();
    let resigned = new_key.sign(&b);
    assert_eq!(
        a.install_signed(&resigned, ISS, |kid| keys.get(kid)).unwrap(),
        Installed::Unchanged { version: 4 }
    );
    a.save_last_good(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim_end(), resigned);
    // After the old key is gone, the saved bundle still loads.
    Authorizer::new(SERVICE)
        .load_last_good(&path, ISS, new_key.find())
        .unwrap();
}

// ---- the policy index agrees with Cedar ----

/// xorshift64*: a small deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const PATTERNS: [&str; 12] = [
    "/orders*",
    "/orders/*",
    "/admin/*",
    r"/a\*b/*",
    "/x/y",
    "*",
    "*/x",
    "/team-1*",
    "/team-1/*",
    "/",
    "",
    "/orders/*/items",
];
const PATHS: [&str; 13] = [
    "/",
    "/orders",
    "/orders/",
    "/orders/7",
    "/orders/7/items",
    "/admin/x",
    "/a*b/c",
    "/axb/c",
    "/team-1/x",
    "/team-10/x",
    "/x/y",
    "exact",
    "",
];
const SCOPES: [&str; 4] = ["a", "b", "c", "orders:read"];
const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "DELETE", "read"];

fn atom(r: &mut Rng) -> String {
    match r.below(11) {
        0..=2 => format!("principal.scopes.contains(\"{}\")", r.pick(&SCOPES)),
        3..=5 => format!("resource.path like \"{}\"", r.pick(&PATTERNS)),
        6 => format!("resource.path == \"{}\"", r.pick(&PATHS)),
        7 => "principal has peer && principal.peer == \"spiffe://td/p\"".to_owned(),
        8 => "principal.email == \"e\"".to_owned(),
        9 => format!("!(resource.path like \"{}\")", r.pick(&PATTERNS)),
        _ => r
            .pick(&["true", "false", "principal.scopes.containsAny([\"a\", \"b\"])"])
            .to_owned(),
    }
}

fn body(r: &mut Rng, depth: usize) -> String {
    if depth == 0 || r.chance(35) {
        return atom(r);
    }
    let op = if r.chance(75) { "&&" } else { "||" };
    format!("({} {op} {})", body(r, depth - 1), body(r, depth - 1))
}

fn random_policy(r: &mut Rng, i: usize) -> String {
    let effect = if r.chance(25) { "forbid" } else { "permit" };
    let principal = r.pick(&[
        "principal",
        "principal",
        "principal == Principal::\"alice\"",
        "principal is Principal",
    ]);
    let action = r.pick(&[
        "action",
        "action",
        "action == Action::\"GET\"",
        "action in [Action::\"GET\", Action::\"HEAD\"]",
        "action in [Action::\"read\"]",
        "action == Action::\"POST\"",
        "action in [Action::\"DELETE\", Action::\"read\"]",
    ]);
    let mut p = String::new();
    if r.chance(50) {
        p.push_str(&format!("@id(\"p{i}\")\n"));
    }
    p.push_str(&format!("{effect}({principal}, {action}, resource)"));
    for _ in 0..r.below(3) {
        let kind = if r.chance(80) { "when" } else { "unless" };
        p.push_str(&format!(" {kind} {{ {} }}", body(r, 3)));
    }
    p.push_str(";\n");
    p
}

fn random_request(r: &mut Rng) -> (AuthzRequest, Entities) {
    let scopes: Vec<&str> = SCOPES.iter().copied().filter(|_| r.chance(40)).collect();
    let scope = (!scopes.is_empty()).then(|| scopes.join(" "));
    let sub = if r.chance(50) { "alice" } else { "bob" };
    let peer = r.chance(30).then_some("spiffe://td/p");
    let t = token(sub, scope.as_deref(), None);
    let method = r.pick(&METHODS);
    let path = r.pick(&PATHS);
    let principal = if r.chance(10) {
        // A principal without `scopes`.
        Entity::new(
            entity_uid("Principal", sub).unwrap(),
            HashMap::from([("client_id".to_owned(), RestrictedExpression::new_string("web".into()))]),
            HashSet::new(),
        )
        .unwrap()
    } else {
        castellan_authz::principal_entity(&t, peer).unwrap()
    };
    let route = entity_uid("Route", path).unwrap();
    let mut entities = vec![principal.clone()];
    match r.below(10) {
        0 => {} // no resource entity
        1 => entities.push(
            Entity::new(
                route.clone(),
                HashMap::from([("path".to_owned(), RestrictedExpression::new_long(7))]),
                HashSet::new(),
            )
            .unwrap(),
        ), // path not a string
        _ => entities.push(
            Entity::new(
                route.clone(),
                HashMap::from([("path".to_owned(), RestrictedExpression::new_string(path.to_owned()))]),
                HashSet::new(),
            )
            .unwrap(),
        ),
    }
    if method != "read" && r.chance(15) {
        // The action is a member of an action group.
        entities.push(Entity::new_no_attrs(
            entity_uid("Action", method).unwrap(),
            HashSet::from([entity_uid("Action", "read").unwrap()]),
        ));
    }
    let req = AuthzRequest::new(
        principal.uid(),
        entity_uid("Action", method).unwrap(),
        route,
        Context::empty(),
    )
    .unwrap();
    (req, Entities::from_entities(entities, None).unwrap())
}

#[test]
fn the_policy_index_decides_as_cedar_does() {
    let mut r = Rng(0x5EED_CA57_E11A_0001);
    let cedar = cedar_policy::Authorizer::new();
    let (mut allowed, mut forbidden, mut errors_seen) = (0, 0, 0);
    for round in 0..300 {
        let n = 1 + r.below(12);
        let text: String = (0..n).map(|i| random_policy(&mut r, i)).collect();
        let b = CompiledBundle::compile(bundle(1, &text, None)).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for _ in 0..25 {
            let (req, entities) = random_request(&mut r);
            let ours = b.decide(&req, &entities);
            let raw = cedar.is_authorized(req.as_cedar(), b.policy_set(), &entities);
            let mut raw_ids: Vec<String> = raw
                .diagnostics()
                .reason()
                .map(|id| AsRef::<str>::as_ref(id).to_owned())
                .collect();
            raw_ids.sort();
            let raw_errors: Vec<String> = raw.diagnostics().errors().map(ToString::to_string).collect();
            let context = format!("round {round}\n{text}\n{req:?}\n{entities:?}\nours {ours:?}\nraw {raw:?}");
            assert_eq!(
                ours.is_allowed(),
                raw.decision() == cedar_policy::Decision::Allow,
                "{context}"
            );
            assert_eq!(ours.determining(), raw_ids.as_slice(), "{context}");
            // The index may leave out errors of policies that could not match, never add one.
            assert!(ours.errors().iter().all(|e| raw_errors.contains(e)), "{context}");
            if let Decision::Deny { reason, .. } = &ours {
                assert_eq!(*reason == DenyReason::Forbidden, !raw_ids.is_empty(), "{context}");
                forbidden += usize::from(*reason == DenyReason::Forbidden);
            } else {
                allowed += 1;
            }
            errors_seen += usize::from(!raw_errors.is_empty());
        }
    }
    // The generator reaches every outcome.
    assert!(
        allowed > 1000 && forbidden > 500 && errors_seen > 500,
        "{allowed} {forbidden} {errors_seen}"
    );
}

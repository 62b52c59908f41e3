//! The principal every service builds from a verified token, and the entity
//! model `castellan gate --policy-service` evaluates each request with.

use crate::error::AuthzError;
use crate::request::AuthzRequest;
use castellan_verify::VerifiedToken;
use cedar_policy::{Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use std::str::FromStr;
use std::sync::LazyLock;

/// The gate's schema (Cedar human-readable format): push it with the gate's
/// policies so they are validated against the entity model.
pub const GATE_SCHEMA: &str = include_str!("../schema/gate.cedarschema");

/// Longest `act` chain walked; the verifier refuses deeper ones long before.
const MAX_ACTORS: usize = 32;

type TypeName = LazyLock<Result<EntityTypeName, String>>;
static PRINCIPAL: TypeName = LazyLock::new(|| EntityTypeName::from_str("Principal").map_err(|e| e.to_string()));
static ACTION: TypeName = LazyLock::new(|| EntityTypeName::from_str("Action").map_err(|e| e.to_string()));
static ROUTE: TypeName = LazyLock::new(|| EntityTypeName::from_str("Route").map_err(|e| e.to_string()));

fn uid(ty: &TypeName, id: &str) -> Result<EntityUid, AuthzError> {
    let ty = ty.as_ref().map_err(|e| AuthzError::Request(e.clone()))?;
    Ok(EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id)))
}

/// The actors of an RFC 8693 `act` claim: the current actor first, the
/// oldest last.
fn actors(act: Option<&serde_json::Value>) -> Result<Vec<String>, AuthzError> {
    let mut out = Vec::new();
    let mut at = act;
    while let Some(a) = at {
        let sub = a
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty());
        match sub {
            Some(sub) if out.len() < MAX_ACTORS => out.push(sub.to_owned()),
            Some(_) => return Err(AuthzError::Request("`act` chain is too deep".to_owned())),
            // A truncated chain could slip past a `forbid` on an actor.
            None => return Err(AuthzError::Request("`act` link without a `sub`".to_owned())),
        }
        at = a.get("act");
    }
    Ok(out)
}

/// The principal of a verified token: `Principal::"<sub>"` with attributes
///
/// - `client_id` (String): the OAuth client the token was issued to;
/// - `scopes` (Set of String): the granted scopes;
/// - `peer` (String), only when `peer` is given: the caller's SPIFFE ID,
///   from the mTLS connection the request came on;
/// - `actors` (Set of String): the `sub` of every actor in the token's
///   `act` chain after token exchange, empty without delegation.
///
/// A service adds its own entities (the resource, groups) next to it; see
/// [`principal_entity_with_parents`] to place the principal in its groups.
///
/// # Errors
/// [`AuthzError::Request`] for a malformed `act` chain, or if Cedar
/// refuses the entity.
pub fn principal_entity(token: &VerifiedToken, peer: Option<&str>) -> Result<Entity, AuthzError> {
    principal_entity_with_parents(token, peer, [])
}

/// [`principal_entity`], member of `parents` (groups, teams, roles from the
/// service's own data), so policies can ask `principal in Team::"emea"`.
///
/// # Errors
/// As [`principal_entity`].
pub fn principal_entity_with_parents(
    token: &VerifiedToken,
    peer: Option<&str>,
    parents: impl IntoIterator<Item = EntityUid>,
) -> Result<Entity, AuthzError> {
    let scopes = RestrictedExpression::new_set(token.scopes().map(|s| RestrictedExpression::new_string(s.to_owned())));
    let actors = RestrictedExpression::new_set(
        actors(token.act.as_ref())?
            .into_iter()
            .map(RestrictedExpression::new_string),
    );
    let attrs = [
        (
            "client_id".to_owned(),
            RestrictedExpression::new_string(token.client_id.clone()),
        ),
        ("scopes".to_owned(), scopes),
        ("actors".to_owned(), actors),
    ];
    let peer = peer.map(|p| ("peer".to_owned(), RestrictedExpression::new_string(p.to_owned())));
    Entity::new_with_tags(uid(&PRINCIPAL, &token.sub)?, attrs.into_iter().chain(peer), parents, [])
        .map_err(|e| AuthzError::Request(e.to_string()))
}

/// Refuses a path that an upstream could read as another path than the
/// policies see: so `forbid ... resource.path like "/admin/*"` cannot be
/// walked around with `/x/../admin/`, `//admin/`, `/%61dmin/` or
/// `/admin%2Fusers`.
fn check_path(path: &str) -> Result<(), AuthzError> {
    let refuse = |why: &'static str| AuthzError::AmbiguousPath {
        path: path.chars().take(256).collect(),
        why,
    };
    if !path.starts_with('/') {
        return Err(refuse("does not start with `/`"));
    }
    if path.contains(['?', '#']) {
        return Err(refuse("carries a query or fragment"));
    }
    if path.contains('\\') {
        return Err(refuse("contains a backslash"));
    }
    if path.chars().any(char::is_control) {
        return Err(refuse("contains a control character"));
    }
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        if seg == "." || seg == ".." {
            return Err(refuse("has a dot segment"));
        }
        if seg.is_empty() && segments.peek().is_some() {
            return Err(refuse("has an empty segment"));
        }
    }
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            continue;
        }
        let hex = |b: Option<u8>| b.and_then(|b| char::from(b).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(bytes.next()), hex(bytes.next())) else {
            return Err(refuse("has a malformed percent-encoding"));
        };
        let decoded = char::from_u32(hi * 16 + lo).unwrap_or('\0');
        if decoded.is_ascii_alphanumeric() || matches!(decoded, '-' | '.' | '_' | '~' | '/' | '\\') {
            return Err(refuse("percent-encodes `/`, `\\` or an unreserved character"));
        }
    }
    Ok(())
}

/// The request the gate evaluates for `method path`:
///
/// - principal `Principal::"<sub>"` from the token and the mTLS peer
///   ([`principal_entity`]);
/// - action `Action::"<method>"` (the HTTP method as sent, `GET`, `POST`, ...);
/// - resource `Route::"<path>"` with attribute `path` (String), the path
///   without query string.
///
/// The path must be in normal form (starts with `/`; no `.` or `..`
/// segments; no empty segment except a trailing slash; no `%`-encoded `/`,
/// `\` or unreserved character; no query, fragment, backslash or control
/// character); anything else is refused with [`AuthzError::AmbiguousPath`]
/// rather than decided, and the gate should answer it 400.
///
/// # Errors
/// [`AuthzError::AmbiguousPath`], or [`AuthzError::Request`] as
/// [`principal_entity`].
pub fn gate_request(
    token: &VerifiedToken,
    peer: Option<&str>,
    method: &str,
    path: &str,
) -> Result<(AuthzRequest, Entities), AuthzError> {
    check_path(path)?;
    let principal = principal_entity(token, peer)?;
    let route_uid = uid(&ROUTE, path)?;
    let route = Entity::new_with_tags(
        route_uid.clone(),
        [("path".to_owned(), RestrictedExpression::new_string(path.to_owned()))],
        [],
        [],
    )
    .map_err(|e| AuthzError::Request(e.to_string()))?;
    let request = AuthzRequest::new(principal.uid(), uid(&ACTION, method)?, route_uid, Context::empty())?;
    let entities = Entities::from_entities([principal, route], None).map_err(|e| AuthzError::Request(e.to_string()))?;
    Ok((request, entities))
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_verify::VerifiedClaims;
    use cedar_policy::EvalResult;
    use serde_json::json;

    fn token(scope: Option<&str>, act: Option<serde_json::Value>) -> VerifiedToken {
        VerifiedToken::new(VerifiedClaims {
            iss: "https://auth.test".into(),
            sub: "alice".into(),
            aud: "orders".into(),
            client_id: "web".into(),
            sid: "s1".into(),
            jti: "j1".into(),
            scope: scope.map(str::to_owned),
            iat: 0,
            exp: 300,
            kid: "k".into(),
            act,
            cnf_x5t_s256: None,
        })
    }

    fn attr(e: &Entity, name: &str) -> Option<String> {
        e.attr(name).map(|v| format!("{:?}", v.unwrap()))
    }

    #[test]
    fn principal_carries_the_token_identity() {
        let e = principal_entity(&token(Some("a b"), None), None).unwrap();
        assert_eq!(e.uid().to_string(), "Principal::\"alice\"");
        assert!(matches!(e.attr("client_id"), Some(Ok(EvalResult::String(s))) if s == "web"));
        let Some(Ok(EvalResult::Set(scopes))) = e.attr("scopes") else {
            panic!("{:?}", attr(&e, "scopes"))
        };
        assert_eq!(scopes.len(), 2);
        assert!(e.attr("peer").is_none());
        assert!(matches!(e.attr("actors"), Some(Ok(EvalResult::Set(s))) if s.is_empty()));
        let e = principal_entity(&token(None, None), Some("spiffe://td/billing")).unwrap();
        assert!(matches!(e.attr("peer"), Some(Ok(EvalResult::String(s))) if s == "spiffe://td/billing"));
        assert!(matches!(e.attr("scopes"), Some(Ok(EvalResult::Set(s))) if s.is_empty()));
    }

    #[test]
    fn actors_follow_the_act_chain() {
        let act = json!({"sub": "gateway", "act": {"sub": "frontend"}});
        assert_eq!(actors(Some(&act)).unwrap(), ["gateway", "frontend"]);
        let e = principal_entity(&token(None, Some(act)), None).unwrap();
        assert!(matches!(e.attr("actors"), Some(Ok(EvalResult::Set(s))) if s.len() == 2));
        for bad in [
            json!({"act": {"sub": "x"}}),
            json!({"sub": "a", "act": {"sub": ""}}),
            json!("a"),
        ] {
            assert!(
                principal_entity(&token(None, Some(bad.clone())), None).is_err(),
                "{bad}"
            );
        }
        let mut deep = json!({"sub": "last"});
        for i in 0..MAX_ACTORS {
            deep = json!({"sub": format!("a{i}"), "act": deep});
        }
        assert!(actors(Some(&deep)).is_err());
    }

    #[test]
    fn gate_request_shape() {
        let (req, entities) = gate_request(&token(Some("a"), None), None, "GET", "/orders/7").unwrap();
        assert_eq!(req.principal().unwrap().to_string(), "Principal::\"alice\"");
        assert_eq!(req.action().unwrap().to_string(), "Action::\"GET\"");
        assert_eq!(req.resource().unwrap().to_string(), "Route::\"/orders/7\"");
        let route = entities.get(req.resource().unwrap()).unwrap();
        assert!(matches!(route.attr("path"), Some(Ok(EvalResult::String(s))) if s == "/orders/7"));
        assert!(entities.get(req.principal().unwrap()).is_some());
    }

    #[test]
    fn paths_in_normal_form_only() {
        for good in [
            "/",
            "/orders",
            "/orders/",
            "/orders/7/items",
            "/a%20b",
            "/caf%C3%A9",
            "/x.y/..z/.well-known",
            "/%3A",
        ] {
            check_path(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "orders",
            "/a/../admin",
            "/./admin",
            "/admin/.",
            "//admin",
            "/a//b",
            "/admin%2Fusers",
            "/admin%2fusers",
            "/%61dmin",
            "/a%2E%2E/b",
            "/a%5Cb",
            "/a\\b",
            "/a?x=1",
            "/a#f",
            "/a%",
            "/a%4",
            "/a%zz",
            "/a\nb",
        ] {
            let err = check_path(bad).unwrap_err();
            assert!(matches!(err, AuthzError::AmbiguousPath { .. }), "{bad:?}: {err:?}");
        }
        assert!(gate_request(&token(None, None), None, "GET", "/a/../b").is_err());
    }
}

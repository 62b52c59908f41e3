//! The entity model of `castellan gate --policy-service`, and the
//! principal every service can build from a verified token.

use crate::error::AuthzError;
use castellan_verify::VerifiedToken;
use cedar_policy::{Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// The gate's schema (Cedar human-readable format).
pub const GATE_SCHEMA: &str = include_str!("../schema/gate.cedarschema");

fn uid(ty: &str, id: &str) -> Result<EntityUid, AuthzError> {
    let ty = EntityTypeName::from_str(ty).map_err(|e| AuthzError::Request(e.to_string()))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// The actors of an `act` claim, current first.
fn actors(act: Option<&serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = act;
    while let Some(a) = at {
        match a.get("sub").and_then(serde_json::Value::as_str) {
            Some(sub) => out.push(sub.to_owned()),
            None => break,
        }
        at = a.get("act");
    }
    out
}

/// `Principal::"<sub>"` with `client_id`, `scopes`, `peer` (when the call
/// came over mTLS) and `actors` (after token exchange).
///
/// # Errors
/// [`AuthzError::Request`] if Cedar refuses the entity.
pub fn principal_entity(token: &VerifiedToken, peer: Option<&str>) -> Result<Entity, AuthzError> {
    let mut attrs: HashMap<String, RestrictedExpression> = HashMap::with_capacity(4);
    attrs.insert(
        "client_id".to_owned(),
        RestrictedExpression::new_string(token.client_id.clone()),
    );
    attrs.insert(
        "scopes".to_owned(),
        RestrictedExpression::new_set(token.scopes().map(|s| RestrictedExpression::new_string(s.to_owned()))),
    );
    if let Some(p) = peer {
        attrs.insert("peer".to_owned(), RestrictedExpression::new_string(p.to_owned()));
    }
    let chain = actors(token.act.as_ref());
    if !chain.is_empty() {
        attrs.insert(
            "actors".to_owned(),
            RestrictedExpression::new_set(chain.into_iter().map(RestrictedExpression::new_string)),
        );
    }
    Entity::new(uid("Principal", &token.sub)?, attrs, HashSet::new()).map_err(|e| AuthzError::Request(e.to_string()))
}

/// The request the gate evaluates for `method path`: principal from the
/// token (and mTLS peer), `Action::"<METHOD>"`, `Route::"<path>"`.
///
/// # Errors
/// [`AuthzError::Request`] if Cedar refuses an entity or the request.
pub fn gate_request(
    token: &VerifiedToken,
    peer: Option<&str>,
    method: &str,
    path: &str,
) -> Result<(Request, Entities), AuthzError> {
    let principal = principal_entity(token, peer)?;
    let route_uid = uid("Route", path)?;
    let mut attrs = HashMap::with_capacity(1);
    attrs.insert("path".to_owned(), RestrictedExpression::new_string(path.to_owned()));
    let route =
        Entity::new(route_uid.clone(), attrs, HashSet::new()).map_err(|e| AuthzError::Request(e.to_string()))?;
    let request = Request::new(
        principal.uid(),
        uid("Action", method)?,
        route_uid,
        Context::empty(),
        None,
    )
    .map_err(|e| AuthzError::Request(e.to_string()))?;
    let entities = Entities::from_entities([principal, route], None).map_err(|e| AuthzError::Request(e.to_string()))?;
    Ok((request, entities))
}

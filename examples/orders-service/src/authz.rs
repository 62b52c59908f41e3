//! The entity model (`policies/orders.cedarschema`) built from the
//! service's data for each request, and the question put to the
//! [`Authorizer`].
//!
//! | Cedar | Built from |
//! |---|---|
//! | `Principal::"<sub>"` | the verified token ([`principal_entity_with_parents`]): `client_id`, `scopes`, `actors` |
//! | its parents | `Team::"<t>"` for the team it belongs to, `TeamManagers::"<t>"` for each team it manages |
//! | `Order::"<id>"` | the order: `owner` (`Principal`), `team` (`Team`, the owner's), `confidential` (Bool) |
//! | `Team::"<t>"` | the order's team, with `managers: TeamManagers::"<t>"` |
//! | actions | `Action::"read"`, `Action::"create"` |
//!
//! So "a manager of the owner's team" is `principal in
//! resource.team.managers`, and "a member of the owner's team" would be
//! `principal in resource.team`.

use crate::data::{OrderView, Relations};
use castellan_authz::{entity_uid, principal_entity_with_parents, Authorizer, AuthzError, AuthzRequest, Decision};
use castellan_verify::VerifiedToken;
use cedar_policy::{Context, Entities, Entity, RestrictedExpression};
use std::collections::{HashMap, HashSet};

/// What the caller wants to do with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `Action::"read"`.
    Read,
    /// `Action::"create"`.
    Create,
}

impl Action {
    /// The Cedar action id.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
        }
    }
}

/// The request could not be put into Cedar's terms (a malformed `act`
/// chain in the token, an id Cedar refuses). Nothing is allowed then.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the authorization request: {0}")]
pub struct RequestError(String);

impl From<AuthzError> for RequestError {
    fn from(e: AuthzError) -> Self {
        Self(e.to_string())
    }
}

fn entity(uid: &str, id: &str, attrs: HashMap<String, RestrictedExpression>) -> Result<Entity, RequestError> {
    Entity::new(entity_uid(uid, id)?, attrs, HashSet::new()).map_err(|e| RequestError(e.to_string()))
}

/// The principal of `token`, member of its team and of the manager group
/// of every team it manages.
///
/// # Errors
/// [`RequestError`] as [`principal_entity_with_parents`].
pub fn principal(token: &VerifiedToken, relations: &Relations) -> Result<Entity, RequestError> {
    let mut parents = Vec::with_capacity(relations.manages.len() + 1);
    if let Some(team) = &relations.team {
        parents.push(entity_uid("Team", team)?);
    }
    for team in &relations.manages {
        parents.push(entity_uid("TeamManagers", team)?);
    }
    Ok(principal_entity_with_parents(token, None, parents)?)
}

/// The `Order` entity and its `Team` (whose `managers` the policies follow).
///
/// # Errors
/// [`RequestError`] if Cedar refuses an id.
pub fn order_entities(order: &OrderView) -> Result<[Entity; 2], RequestError> {
    let team = entity(
        "Team",
        &order.team,
        HashMap::from([(
            "managers".to_owned(),
            RestrictedExpression::new_entity_uid(entity_uid("TeamManagers", &order.team)?),
        )]),
    )?;
    let order = entity(
        "Order",
        &order.id,
        HashMap::from([
            (
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(entity_uid("Principal", &order.owner)?),
            ),
            ("team".to_owned(), RestrictedExpression::new_entity_uid(team.uid())),
            (
                "confidential".to_owned(),
                RestrictedExpression::new_bool(order.confidential),
            ),
        ]),
    )?;
    Ok([order, team])
}

/// Asks `authz` whether `token`'s subject (with `relations` from the data)
/// may do `action` to `order`. The decision is recorded in the
/// authorizer's decision log when it has one.
///
/// # Errors
/// [`RequestError`]: the question could not be asked; treat it as a deny.
pub fn decide(
    authz: &Authorizer,
    token: &VerifiedToken,
    relations: &Relations,
    action: Action,
    order: &OrderView,
) -> Result<(AuthzRequest, Decision), RequestError> {
    let principal = principal(token, relations)?;
    let [order, team] = order_entities(order)?;
    let request = AuthzRequest::new(
        principal.uid(),
        entity_uid("Action", action.id())?,
        order.uid(),
        Context::empty(),
    )?;
    let entities = Entities::from_entities([principal, order, team], None).map_err(|e| RequestError(e.to_string()))?;
    let decision = authz.decide(&request, &entities);
    Ok((request, decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Directory;
    use castellan_authz::PolicyBundle;
    use castellan_verify::VerifiedClaims;

    const POLICIES: &str = include_str!("../policies/orders.cedar");
    const SCHEMA: &str = include_str!("../policies/orders.cedarschema");

    fn token(sub: &str, scope: Option<&str>) -> VerifiedToken {
        VerifiedToken::new(VerifiedClaims {
            iss: "https://auth.test".into(),
            sub: sub.into(),
            aud: "orders".into(),
            client_id: sub.into(),
            sid: "s".into(),
            jti: "j".into(),
            scope: scope.map(str::to_owned),
            iat: 0,
            exp: 300,
            kid: "k".into(),
            act: None,
            cnf_x5t_s256: None,
        })
    }

    fn authorizer(policies: &str) -> Authorizer {
        let a = Authorizer::new("orders");
        a.install(PolicyBundle {
            service: "orders".into(),
            version: 1,
            policies: policies.into(),
            schema: Some(SCHEMA.into()),
            created_at: 0,
        })
        .unwrap();
        a
    }

    fn ask(a: &Authorizer, d: &Directory, who: &str, scope: Option<&str>, action: Action, order: &OrderView) -> String {
        let (_, decision) = decide(a, &token(who, scope), &d.relations(who), action, order).unwrap();
        match decision {
            Decision::Allow { determining, .. } => format!("allow {}", determining.join(",")),
            Decision::Deny {
                reason, determining, ..
            } => format!("{} {}", reason.label(), determining.join(",")),
        }
    }

    #[test]
    fn the_shipped_policies_validate_against_the_shipped_schema() {
        let s = castellan_authz::check_policies(POLICIES, Some(SCHEMA)).unwrap();
        assert_eq!(
            s.ids,
            [
                "owner-reads",
                "manager-reads-team",
                "confidential-owner-only",
                "writers-create"
            ]
        );
    }

    #[test]
    fn the_shipped_policies_decide_as_documented() {
        let a = authorizer(POLICIES);
        let d = Directory::demo();
        let o1 = d.order("o-1").unwrap();
        let o2 = d.order("o-2").unwrap();
        let o3 = d.order("o-3").unwrap();
        let read = Action::Read;
        assert_eq!(ask(&a, &d, "alice", None, read, &o1), "allow owner-reads");
        assert_eq!(ask(&a, &d, "alice", None, read, &o2), "allow owner-reads");
        assert_eq!(ask(&a, &d, "bob", None, read, &o1), "no_permit ");
        assert_eq!(ask(&a, &d, "carol", None, read, &o1), "allow manager-reads-team");
        assert_eq!(
            ask(&a, &d, "carol", None, read, &o2),
            "forbidden confidential-owner-only"
        );
        assert_eq!(ask(&a, &d, "carol", None, read, &o3), "no_permit ");
        assert_eq!(ask(&a, &d, "stranger", None, read, &o1), "no_permit ");
        // The data changes; the same token now reads the team's orders.
        d.set_manager("emea", "dave", true).unwrap();
        assert_eq!(ask(&a, &d, "dave", None, read, &o1), "allow manager-reads-team");
        assert_eq!(
            ask(&a, &d, "dave", None, read, &o2),
            "forbidden confidential-owner-only"
        );

        let draft = d.draft("bob", "pens", false).unwrap();
        assert_eq!(
            ask(&a, &d, "bob", Some("orders.write"), Action::Create, &draft),
            "allow writers-create"
        );
        assert_eq!(
            ask(&a, &d, "bob", Some("orders.read"), Action::Create, &draft),
            "no_permit "
        );
    }

    #[test]
    fn team_membership_is_a_parent_too() {
        let members = format!(
            "{POLICIES}\n@id(\"team-reads\") permit(principal, action == Action::\"read\", resource is Order) \
             when {{ principal in resource.team }};"
        );
        let a = authorizer(&members);
        let d = Directory::demo();
        assert_eq!(
            ask(&a, &d, "bob", None, Action::Read, &d.order("o-1").unwrap()),
            "allow team-reads"
        );
        assert_eq!(
            ask(&a, &d, "dave", None, Action::Read, &d.order("o-1").unwrap()),
            "no_permit "
        );
    }
}

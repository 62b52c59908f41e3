//! The request a service asks about: principal, action, resource, context.

use crate::error::AuthzError;
use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Request};
use std::str::FromStr;

/// An authorization request: who (principal) wants to do what (action) to
/// what (resource), in what context. A thin wrapper over Cedar's
/// [`Request`], built without a schema: the policies were validated against
/// the schema when the bundle was compiled, and a request the policies do
/// not expect simply matches no `permit`.
#[derive(Debug, Clone)]
pub struct AuthzRequest {
    inner: Request,
}

impl AuthzRequest {
    /// A request for `principal`, `action`, `resource` in `context`.
    ///
    /// # Errors
    /// [`AuthzError::Request`] if Cedar refuses it.
    pub fn new(
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: Context,
    ) -> Result<Self, AuthzError> {
        Request::new(principal, action, resource, context, None)
            .map(|inner| Self { inner })
            .map_err(|e| AuthzError::Request(e.to_string()))
    }

    /// The principal.
    #[must_use]
    pub fn principal(&self) -> Option<&EntityUid> {
        self.inner.principal()
    }

    /// The action.
    #[must_use]
    pub fn action(&self) -> Option<&EntityUid> {
        self.inner.action()
    }

    /// The resource.
    #[must_use]
    pub fn resource(&self) -> Option<&EntityUid> {
        self.inner.resource()
    }

    /// The Cedar request.
    #[must_use]
    pub fn as_cedar(&self) -> &Request {
        &self.inner
    }
}

impl From<Request> for AuthzRequest {
    fn from(inner: Request) -> Self {
        Self { inner }
    }
}

/// `Type::"id"`: an entity uid from a type name (`Order`, `App::Order`) and
/// an id (any string, taken literally).
///
/// # Errors
/// [`AuthzError::Request`] if `type_name` is not a Cedar type name.
pub fn entity_uid(type_name: &str, id: &str) -> Result<EntityUid, AuthzError> {
    let ty = EntityTypeName::from_str(type_name)
        .map_err(|e| AuthzError::Request(format!("entity type `{type_name}`: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_take_ids_literally() {
        let uid = entity_uid("App::Order", "a\"b/../c").unwrap();
        assert_eq!(uid.id().unescaped(), "a\"b/../c");
        assert_eq!(uid.type_name().to_string(), "App::Order");
        assert!(entity_uid("not a type", "x").is_err());
        assert!(entity_uid("", "x").is_err());
    }

    #[test]
    fn accessors() {
        let r = AuthzRequest::new(
            entity_uid("Principal", "alice").unwrap(),
            entity_uid("Action", "GET").unwrap(),
            entity_uid("Route", "/x").unwrap(),
            Context::empty(),
        )
        .unwrap();
        assert_eq!(r.principal().unwrap().id().unescaped(), "alice");
        assert_eq!(r.action().unwrap().id().unescaped(), "GET");
        assert_eq!(r.resource().unwrap().id().unescaped(), "/x");
    }
}

//! The records the store keeps.

use castellan_core::UnixTime;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A registered OAuth client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Public identifier.
    pub client_id: String,
    /// Human name.
    pub name: String,
    /// Keyed hash of the client secret; `None` for `private_key_jwt`-only clients.
    #[serde(skip)]
    pub secret_hash: Option<Vec<u8>>,
    /// Audiences (services) this client may ask tokens for.
    pub audiences: Vec<String>,
    /// Scopes this client may be granted.
    pub scopes: Vec<String>,
    /// Access-token lifetime override, seconds.
    pub access_token_ttl: Option<i64>,
    /// Registered JWK Set for `private_key_jwt`, as JSON.
    pub jwks: Option<String>,
    /// Whether this client administers the authority.
    pub admin: bool,
    /// Creation time.
    pub created_at: UnixTime,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Active,
    /// Published until the last token it signed expires.
    Retired,
    /// Removed from JWKS at once in an emergency; its tokens are invalid.
    Withdrawn,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "next" => Ok(Self::Next),
            "active" => Ok(Self::Active),
            "retired" => Ok(Self::Retired),
            "withdrawn" => Ok(Self::Withdrawn),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

/// A signing key as stored. `private_enc` is sealed by the authority's master key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id.
    pub kid: String,
    /// JWA algorithm name.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Encrypted PKCS#8.
    pub private_enc: Vec<u8>,
    /// Public JWK as JSON.
    pub public_jwk: String,
    /// When it was created (and published).
    pub created_at: UnixTime,
    /// When it started signing.
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing.
    pub retired_at: Option<UnixTime>,
    /// When it may be deleted (retired) or was withdrawn.
    pub remove_at: Option<UnixTime>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("remove_at", &self.remove_at)
            .finish_non_exhaustive()
    }
}

/// What a revocation event revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// One session or grant, by `sid`.
    Session,
    /// Every token of a subject issued at or before `not_before`.
    Subject,
    /// Every token of a client issued at or before `not_before`.
    Client,
    /// Every token signed by a key (emergency withdrawal).
    Key,
}

impl RevocationKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Subject => "subject",
            Self::Client => "client",
            Self::Key => "key",
        }
    }
}

impl FromStr for RevocationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(Self::Session),
            "subject" => Ok(Self::Subject),
            "client" => Ok(Self::Client),
            "key" => Ok(Self::Key),
            other => Err(format!("unknown revocation kind `{other}`")),
        }
    }
}

/// One entry of the ordered revocation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// Monotonic sequence number.
    pub seq: i64,
    /// What is revoked.
    pub kind: RevocationKind,
    /// The sid, subject, client id or kid.
    pub value: String,
    /// Tokens issued at or before this time are revoked (subject, client).
    pub not_before: UnixTime,
    /// When it was recorded.
    pub created_at: UnixTime,
    /// After this no token it could affect is still valid.
    pub expires_at: UnixTime,
}

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
    /// Redirect URIs for the authorization-code flow, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE is its only proof).
    pub public: bool,
    /// The audience this client itself serves, when it is a service: only
    /// tokens addressed to it may it exchange (RFC 8693).
    pub serves: Option<String>,
    /// Audiences it may exchange tokens toward.
    pub exchange_audiences: Vec<String>,
    /// RFC 8705 `tls_client_auth`: the SPIFFE ID (URI SAN) the client's
    /// certificate must carry; it then has no secret.
    pub tls_client_auth_san_uri: Option<String>,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .field("admin", &self.admin)
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
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
    /// Past its last token, or withdrawn and past it: published nowhere,
    /// trusted by no verifier, its private half kept (encrypted) only to
    /// sign the drift probe's `removed-key` canaries, then deleted.
    Removed,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Withdrawn => "withdrawn",
            Self::Removed => "removed",
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
            "removed" => Ok(Self::Removed),
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

/// A person who signs in.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable id; the `sub` of their tokens.
    pub user_id: String,
    /// Unique sign-in name.
    pub username: String,
    /// argon2id PHC string; `None` for people who only sign in through federation.
    pub password_hash: Option<String>,
    /// Suspended people cannot sign in or refresh.
    pub suspended: bool,
    /// Creation time.
    pub created_at: UnixTime,
    /// Upstream identity provider issuer, for federated people.
    pub federated_issuer: Option<String>,
    /// Upstream subject, for federated people.
    pub federated_subject: Option<String>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("suspended", &self.suspended)
            .field("federated_issuer", &self.federated_issuer)
            .finish_non_exhaustive()
    }
}

/// A sign-in session: one per successful sign-in, named by the `sid` of
/// every token issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id.
    pub sid: String,
    /// The person.
    pub user_id: String,
    /// The app they signed in to.
    pub client_id: String,
    /// The service its access tokens are for.
    pub audience: String,
    /// Granted scopes, space separated.
    pub scope: Option<String>,
    /// When the person authenticated.
    pub auth_time: UnixTime,
    /// Created.
    pub created_at: UnixTime,
    /// Last refresh (idle timeout counts from here).
    pub last_used_at: UnixTime,
    /// Absolute end.
    pub expires_at: UnixTime,
    /// Set when ended (logout, suspension, replay, revocation).
    pub ended_at: Option<UnixTime>,
}

/// A pending authorization code, stored by keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCodeRecord {
    /// Keyed hash of the code.
    pub code_hash: Vec<u8>,
    /// Client it was issued to.
    pub client_id: String,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The session it starts.
    pub sid: String,
    /// The person.
    pub user_id: String,
    /// OIDC nonce to echo in the id_token.
    pub nonce: Option<String>,
    /// When the person authenticated.
    pub auth_time: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
}

impl fmt::Debug for AuthCodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCodeRecord")
            .field("client_id", &self.client_id)
            .field("sid", &self.sid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A refresh token, stored by keyed hash. Every token of a session is one family.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Keyed hash of the token.
    pub token_hash: Vec<u8>,
    /// The session (family).
    pub sid: String,
    /// Client it was issued to.
    pub client_id: String,
    /// The person.
    pub user_id: String,
    /// Issued.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// Set once it has been exchanged; a second use is a replay.
    pub used_at: Option<UnixTime>,
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("sid", &self.sid)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

/// What redeeming a one-time value (code or refresh token) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed<T> {
    /// First use: it is now spent.
    Fresh(T),
    /// It was spent before: a replay.
    Replayed(T),
    /// No such value (or expired and purged).
    Unknown,
}

/// An internal CA key pair and certificate. `private_enc` is sealed by the
/// authority's master key. The lifecycle is the signing keys': `next`
/// (in the trust bundle, not signing) -> `active` -> `retired` (in the
/// bundle until its last SVID expires) -> gone.
#[derive(Clone, PartialEq, Eq)]
pub struct CaRecord {
    /// Stable id (hash of the public key).
    pub ca_id: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Encrypted PKCS#8.
    pub private_enc: Vec<u8>,
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// Created (and published).
    pub created_at: UnixTime,
    /// Started signing.
    pub activated_at: Option<UnixTime>,
    /// Stopped signing.
    pub retired_at: Option<UnixTime>,
    /// When it may be deleted.
    pub remove_at: Option<UnixTime>,
}

impl fmt::Debug for CaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaRecord")
            .field("ca_id", &self.ca_id)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("remove_at", &self.remove_at)
            .finish_non_exhaustive()
    }
}

/// One stored version of a service's Cedar policies. Versions of a service
/// count up from 1 and are never changed or removed: a rollback stores the
/// old text again as a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    /// The service the policies govern.
    pub service: String,
    /// 1, 2, 3, ... per service.
    pub version: i64,
    /// Cedar policy text.
    pub policies: String,
    /// Cedar schema text, when the push carried one.
    pub schema: Option<String>,
    /// Stored at.
    pub created_at: UnixTime,
    /// The admin client that pushed it.
    pub created_by: String,
    /// Why (e.g. `rollback to 3`).
    pub note: Option<String>,
}

/// One authorization decision a service made and shipped to the authority
/// (the central decision log). Rows are appended, queried, and pruned after
/// the retention window; never changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRecord {
    /// Assigned by the store on append (0 before).
    pub id: i64,
    /// The service that decided (its policy service name).
    pub service: String,
    /// When the service decided (its clock).
    pub time: UnixTime,
    /// The principal, as a Cedar entity uid (`Principal::"alice"`).
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Why a deny: `forbidden`, `no_permit`, `no_bundle`.
    pub reason: Option<String>,
    /// The determining policy ids.
    pub policies: Vec<String>,
    /// Policies that failed to evaluate.
    pub errors: Vec<String>,
    /// The policy version that decided.
    pub policy_version: Option<i64>,
    /// The client that shipped the row (set by the store from the shipment).
    pub reporter: String,
    /// When the authority stored it (set by the store from the shipment).
    pub received_at: UnixTime,
}

/// Which decision rows to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionQuery {
    /// The service.
    pub service: String,
    /// Only this principal uid.
    pub principal: Option<String>,
    /// Only `allow` or only `deny`.
    pub decision: Option<String>,
    /// Only decisions at or after this time.
    pub since: Option<UnixTime>,
    /// Only rows with an id below this one (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many rows.
    pub limit: u32,
}

/// A registered workload: who may hold an SVID for this SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRecord {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// Longest SVID lifetime for it, seconds.
    pub svid_ttl: i64,
    /// Registered.
    pub created_at: UnixTime,
}

/// A single-use join token, stored by keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenRecord {
    /// Keyed hash of the token.
    pub token_hash: Vec<u8>,
    /// The workload it admits.
    pub spiffe_id: String,
    /// Expiry.
    pub expires_at: UnixTime,
}

impl fmt::Debug for JoinTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTokenRecord")
            .field("spiffe_id", &self.spiffe_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One drift-probe run as `castellan probe` reported it (the JSON report,
/// kept as sent once the authority has checked its shape). The newest runs
/// are kept; older ones are dropped as new ones arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRunRecord {
    /// Assigned in order.
    pub id: i64,
    /// When the authority received it.
    pub recorded_at: UnixTime,
    /// The admin client that sent it.
    pub recorded_by: String,
    /// The JSON report.
    pub report: String,
}

/// A verifier's latest heartbeat, shared by the nodes of a cluster (each
/// verifier reports to whichever node the load balancer picks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRecord {
    /// The verifier instance.
    pub verifier_id: String,
    /// The audience it checks.
    pub audience: String,
    /// `library` or `gate`.
    pub kind: Option<String>,
    /// Kids it held.
    pub kids: Vec<String>,
    /// Last revocation sequence number it had applied.
    pub last_seq: i64,
    /// How its accepted calls arrived.
    pub transport: Option<String>,
    /// When the heartbeat arrived.
    pub seen_at: UnixTime,
    /// The newest sequence number when it arrived.
    pub latest_seq: i64,
    /// The newest sequence number at the verifier's previous heartbeat (its
    /// own `last_seq` on the first): set by the store on record.
    pub latest_at_previous: i64,
}

/// An audit event to append (the store assigns `seq` and the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: UnixTime,
    /// Who acted (`client:<id>`, `user:<id>`, `castellan`).
    pub actor: String,
    /// What was done, `noun.verb`.
    pub action: String,
    /// What it was done to; empty when nothing.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Further facts: JSON text, hashed exactly as stored.
    pub detail: String,
}

/// A stored audit event: its place in the chain and its link hash
/// (see [`crate::audit_chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, gapless from 1.
    pub seq: i64,
    /// When it happened.
    pub at: UnixTime,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Further facts, JSON text.
    pub detail: String,
    /// HMAC-SHA-256 over the previous event's hash and this event's fields.
    pub hash: Vec<u8>,
}

/// Which audit events to read, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events with a higher sequence number (0: from the first).
    pub after_seq: i64,
    /// Only events at or after this time.
    pub since: Option<UnixTime>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// At most this many.
    pub limit: u32,
}

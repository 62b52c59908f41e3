//! Schema types of the OpenAPI document. They are never built: each mirrors
//! the JSON a handler reads or writes (the handlers keep their own types or
//! build the JSON inline), so the document can name it. Times are seconds
//! since the Unix epoch; durations in bodies are written `30s`, `5m`, `1h`, `7d`.

use serde::Serialize;
use utoipa::ToSchema;

/// RFC 6749 §5.2 / RFC 6750 §3 error body; every error answer of the JSON API has it.
#[derive(Serialize, ToSchema)]
pub struct Error {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `unsupported_token_type`, `invalid_scope`,
    /// `invalid_target`, `invalid_token`, `insufficient_scope`, `access_denied`,
    /// `not_found`, `conflict`, `temporarily_unavailable` or `server_error`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// What is wrong, for people.
    pub error_description: String,
}

// ---- OAuth ----

/// The grant types of the token endpoint.
#[derive(Serialize, ToSchema)]
pub enum GrantType {
    /// RFC 6749 §4.4.
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// RFC 6749 §4.1, with PKCE.
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    /// RFC 6749 §6.
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// RFC 8693 token exchange.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

/// `POST /oauth2/token` form (`application/x-www-form-urlencoded`). The
/// client authenticates with HTTP Basic (`client_secret_basic`), with
/// `client_id` and `client_secret` in the form (`client_secret_post`), with a
/// signed assertion (`private_key_jwt`), with its certificate on the mTLS
/// listener (`tls_client_auth`), or not at all as a public client sending
/// `client_id` (authorization code and refresh only).
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    /// The grant.
    pub grant_type: GrantType,
    /// Space-separated scopes, each one the client may be granted.
    pub scope: Option<String>,
    /// The one service the token is for (repeatable with `resource`; at most one value in all).
    pub audience: Option<String>,
    /// RFC 8707: the same as `audience`.
    pub resource: Option<String>,
    /// `authorization_code`: the code.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier, 43 to 128 characters.
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    pub refresh_token: Option<String>,
    /// Token exchange: the access token sent to this client.
    pub subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    pub subject_token_type: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` if sent.
    pub requested_token_type: Option<String>,
    /// `client_secret_post` and public clients: the client id.
    pub client_id: Option<String>,
    /// `client_secret_post`: the secret.
    pub client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`: the signed assertion (`aud` = this endpoint's URL).
    pub client_assertion: Option<String>,
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// An RFC 9068 JWT access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The scopes granted, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `authorization_code` and `refresh_token`: the next refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `authorization_code` and `refresh_token`: an OpenID Connect ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// `POST /oauth2/introspect` form; the caller authenticates as any confidential client.
#[derive(Serialize, ToSchema)]
pub struct IntrospectRequest {
    /// The access token.
    pub token: String,
    /// Ignored.
    pub token_type_hint: Option<String>,
    /// `client_secret_post`.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    pub client_secret: Option<String>,
    /// `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`.
    pub client_assertion: Option<String>,
}

/// RFC 7662 answer: `{"active":false}` for anything not valid now.
#[derive(Serialize, ToSchema)]
pub struct IntrospectResponse {
    /// Whether the token is valid now.
    pub active: bool,
    /// `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The one audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client it was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Session or grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 8693 actor chain, after token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 8705 confirmation (`x5t#S256`), for certificate-bound tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
}

/// `POST /oauth2/revoke` form (RFC 7009). Revoking an access token ends its whole session.
#[derive(Serialize, ToSchema)]
pub struct RevokeRequest {
    /// An access or refresh token.
    pub token: String,
    /// `access_token` or `refresh_token`.
    pub token_type_hint: Option<String>,
    /// `client_secret_post` and public clients.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    pub client_secret: Option<String>,
    /// `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`.
    pub client_assertion: Option<String>,
}

/// `POST /oauth2/login` form, posted by the login page.
#[derive(Serialize, ToSchema)]
pub struct LoginForm {
    /// The sealed authorization request the page carries.
    pub request: String,
    /// Sign-in name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `POST /oauth2/federation/start` form, posted by the login page's company sign-in button.
#[derive(Serialize, ToSchema)]
pub struct FederationStartForm {
    /// The sealed authorization request the page carries.
    pub request: String,
}

/// `POST /oauth2/logout` form; `GET` takes the same as query parameters.
#[derive(Serialize, ToSchema)]
pub struct LogoutForm {
    /// An ID token of the session to end.
    pub id_token_hint: String,
    /// The app; must be the ID token's audience.
    pub client_id: Option<String>,
    /// A registered post-logout redirect URI.
    pub post_logout_redirect_uri: Option<String>,
    /// Returned to the app with the redirect.
    pub state: Option<String>,
}

/// OpenID Connect userinfo.
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    /// The person's stable id.
    pub sub: String,
    /// With scope `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// RFC 8414 / OpenID discovery metadata (the main members; `castellan_*` members name Castellan's own endpoints).
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    /// The issuer.
    pub issuer: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// JWKS.
    pub jwks_uri: String,
    /// Introspection.
    pub introspection_endpoint: String,
    /// Revocation.
    pub revocation_endpoint: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Userinfo.
    pub userinfo_endpoint: String,
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    /// Grant types.
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Scopes.
    pub scopes_supported: Vec<String>,
    /// Access-token signing algorithms of the keys in force.
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// The admin API root.
    pub castellan_admin_endpoint: String,
    /// The revocation log.
    pub castellan_revocation_endpoint: String,
    /// The revocation stream.
    pub castellan_revocation_stream_endpoint: String,
    /// Verifier heartbeats.
    pub castellan_verifier_heartbeat_endpoint: String,
    /// The validation settings every verifier applies.
    pub castellan_validation_profile: serde_json::Value,
    /// RFC 8705 §5 aliases on the mTLS listener, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls_endpoint_aliases: Option<serde_json::Value>,
}

/// A JSON Web Key Set (next, active and retired keys).
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    /// The public keys.
    pub keys: Vec<serde_json::Value>,
}

// ---- Workload identity ----

/// `POST /workload/v1/svid` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SvidRequest {
    /// The single-use join token from registration.
    pub join_token: String,
    /// A PEM or base64 DER PKCS#10 request for the workload's own key.
    pub csr: String,
}

/// `POST /workload/v1/svid/renew` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SvidRenewRequest {
    /// A PKCS#10 request naming the same SPIFFE ID as the presented certificate.
    pub csr: String,
}

/// An issued X.509 SVID.
#[derive(Serialize, ToSchema)]
pub struct Svid {
    /// The SPIFFE ID it carries.
    pub spiffe_id: String,
    /// Leaf then issuing CA, PEM.
    pub svid_pem: String,
    /// The trust bundle, PEM.
    pub bundle_pem: String,
    /// End of validity.
    pub not_after: i64,
    /// When to renew (half-life).
    pub renew_at: i64,
}

// ---- Revocation ----

/// What a revocation event revokes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// One session or grant, by `sid`.
    Session,
    /// Every token of a subject issued at or before `not_before`.
    Subject,
    /// Every token of a client issued at or before `not_before`.
    Client,
    /// Every token signed by a key.
    Key,
}

/// One event of the revocation log.
#[derive(Serialize, ToSchema)]
pub struct RevocationEvent {
    /// Monotonic sequence number.
    pub seq: i64,
    /// What is revoked.
    pub kind: RevocationKind,
    /// The sid, subject, client id or kid.
    pub value: String,
    /// Tokens issued at or before this time are revoked (subject, client).
    pub not_before: i64,
    /// When it was recorded.
    pub created_at: i64,
    /// After this no token it could affect is still valid.
    pub expires_at: i64,
}

/// `GET /revocations`: unexpired events after `after`.
#[derive(Serialize, ToSchema)]
pub struct RevocationSnapshot {
    /// The events, in order.
    pub events: Vec<RevocationEvent>,
    /// The newest sequence number.
    pub latest_seq: i64,
}

/// `POST /verifiers/heartbeat` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Stable id of this verifier instance.
    pub verifier_id: String,
    /// The audience it checks tokens for.
    pub audience: String,
    /// Kids it holds.
    pub kids: Vec<String>,
    /// Last revocation sequence number it applied.
    pub last_seq: i64,
    /// `library` or `gate`.
    pub kind: Option<String>,
    /// `mtls`, `plain` or `mixed`.
    pub transport: Option<String>,
}

// ---- Decision log ----

/// One authorization decision a service made.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionEntry {
    /// When (the service's clock).
    pub time: i64,
    /// Principal uid, e.g. `Principal::"alice"`.
    pub principal: String,
    /// Action uid.
    pub action: String,
    /// Resource uid.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// For a deny: `forbidden`, `no_permit` or `no_bundle`.
    pub reason: Option<String>,
    /// Determining policy ids.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Policies that failed to evaluate.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The bundle version that decided.
    pub version: Option<u64>,
}

/// `POST /policies/{service}/decisions` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBatch {
    /// Names the shipment; stored once per client (retries are duplicates).
    pub batch_id: String,
    /// The decisions, oldest first.
    pub decisions: Vec<DecisionEntry>,
}

/// The answer to a shipment.
#[derive(Serialize, ToSchema)]
pub struct DecisionsAccepted {
    /// Rows stored (0 for a duplicate).
    pub accepted: u64,
    /// The batch id was seen before.
    pub duplicate: bool,
}

/// A stored decision.
#[derive(Serialize, ToSchema)]
pub struct DecisionRecord {
    /// Row id (pages go by it).
    pub id: i64,
    /// The service.
    pub service: String,
    /// When it decided.
    pub time: i64,
    /// Principal uid.
    pub principal: String,
    /// Action uid.
    pub action: String,
    /// Resource uid.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Why a deny.
    pub reason: Option<String>,
    /// Determining policy ids.
    pub policies: Vec<String>,
    /// Policies that failed to evaluate.
    pub errors: Vec<String>,
    /// The policy version that decided.
    pub policy_version: Option<i64>,
    /// The client that shipped it.
    pub reporter: String,
    /// When the authority stored it.
    pub received_at: i64,
}

/// `GET /admin/v1/decisions/{service}`: newest first.
#[derive(Serialize, ToSchema)]
pub struct DecisionPage {
    /// The service.
    pub service: String,
    /// The rows.
    pub decisions: Vec<DecisionRecord>,
    /// `before_id` of the next page; null on the last.
    pub next_before_id: Option<i64>,
}

// ---- Admin: clients, keys, revocation, verifiers ----

/// A client as the admin API shows it.
#[derive(Serialize, ToSchema)]
pub struct Client {
    /// Id.
    pub client_id: String,
    /// Only when just created or rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Name.
    pub name: String,
    /// Audiences it may request.
    pub audiences: Vec<String>,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Lifetime override, e.g. `5m`.
    pub access_token_ttl: Option<String>,
    /// `client_secret`, `private_key_jwt`, `tls_client_auth` or `none`.
    pub auth_method: String,
    /// An admin client (scope `castellan.admin`).
    pub admin: bool,
    /// Created.
    pub created_at: i64,
    /// A public client (PKCE, no secret).
    pub public: bool,
    /// Redirect URIs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// The audience it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serves: Option<String>,
    /// Audiences it may exchange tokens toward.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchange_audiences: Vec<String>,
    /// RFC 8705 `tls_client_auth`: its certificate's SPIFFE ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
}

/// `GET /admin/v1/clients`.
#[derive(Serialize, ToSchema)]
pub struct ClientList {
    /// Every client, without secrets.
    pub clients: Vec<Client>,
}

/// `POST /admin/v1/clients` body (unknown members are refused).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// 1 to 128 printable characters.
    pub name: String,
    /// Services it may get tokens for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Scopes it may be granted; `castellan.admin` makes an admin client.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime override, e.g. `5m`.
    pub access_token_ttl: Option<String>,
    /// Public keys for `private_key_jwt`; no secret is issued then.
    pub jwks: Option<serde_json::Value>,
    /// Redirect URIs for the authorization-code flow.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client: no secret, PKCE required.
    #[serde(default)]
    pub public: bool,
    /// The audience it serves.
    pub serves: Option<String>,
    /// Audiences it may exchange tokens toward (needs `serves`).
    #[serde(default)]
    pub exchange_audiences: Vec<String>,
    /// `tls_client_auth` with an SVID carrying this SPIFFE ID.
    pub tls_client_auth_san_uri: Option<String>,
}

/// Key lifecycle state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Active,
    /// Published until its last token expires.
    Retired,
    /// Removed from the JWKS in an emergency.
    Withdrawn,
    /// Published nowhere; kept only for `removed-key` canaries.
    Removed,
}

/// A signing key.
#[derive(Serialize, ToSchema)]
pub struct Key {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// State.
    pub state: KeyState,
    /// Created and published.
    pub created_at: i64,
    /// Started signing.
    pub activated_at: Option<i64>,
    /// Stopped signing.
    pub retired_at: Option<i64>,
    /// Deleted at (retired) / kept until (withdrawn).
    pub remove_at: Option<i64>,
}

/// `GET /admin/v1/keys` and the answer of a rotation.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Every stored key.
    pub keys: Vec<Key>,
    /// After a rotation: live verifiers that did not hold the new active key yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub laggards: Vec<String>,
}

/// `POST /admin/v1/keys/rotate` body; an empty body is a routine rotation.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// Withdraw the active key instead of retiring it.
    #[serde(default)]
    pub emergency: bool,
}

/// What a revocation recorded.
#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// The event as verifiers receive it.
    pub event: RevocationEvent,
}

/// A verifier heard from.
#[derive(Serialize, ToSchema)]
pub struct Verifier {
    /// Instance id.
    pub verifier_id: String,
    /// Audience.
    pub audience: String,
    /// `library` or `gate`.
    pub kind: Option<String>,
    /// Kids held.
    pub kids: Vec<String>,
    /// Last sequence number applied.
    pub last_seq: i64,
    /// Events it had not applied at its last heartbeat.
    pub stream_lag: i64,
    /// Last heartbeat.
    pub last_seen: i64,
    /// Heard from within the liveness window.
    pub live: bool,
    /// `mtls`, `plain` or `mixed`.
    pub transport: Option<String>,
}

/// `GET /admin/v1/verifiers`.
#[derive(Serialize, ToSchema)]
pub struct VerifierList {
    /// Verifiers heard from recently.
    pub verifiers: Vec<Verifier>,
    /// The newest revocation sequence number.
    pub latest_seq: i64,
}

// ---- Admin: people ----

/// A live session of a person.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// Session id (`sid` of its tokens).
    pub sid: String,
    /// The app.
    pub client_id: String,
    /// The service its tokens are for.
    pub audience: String,
    /// Granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the person authenticated.
    pub auth_time: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// Absolute end.
    pub expires_at: i64,
}

/// A person (never the password hash).
#[derive(Serialize, ToSchema)]
pub struct User {
    /// Stable id, the `sub` of their tokens.
    pub user_id: String,
    /// Sign-in name.
    pub username: String,
    /// Suspended people cannot sign in or refresh.
    pub suspended: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Created.
    pub created_at: i64,
    /// Upstream issuer, for federated people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_issuer: Option<String>,
    /// Upstream subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_subject: Option<String>,
    /// Live sessions (on `GET /admin/v1/users/{name}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<Session>>,
}

/// `GET /admin/v1/users`.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    /// Everyone.
    pub users: Vec<User>,
}

/// `POST /admin/v1/users` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Sign-in name.
    pub username: String,
    /// Initial password; absent for people who only sign in through federation.
    pub password: Option<String>,
    /// Links the person to this subject at the federation provider.
    pub federated_subject: Option<String>,
}

/// `POST /admin/v1/users/{name}/password` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password.
    pub password: String,
    /// End every session of the person.
    #[serde(default)]
    #[schema(default = true)]
    pub end_sessions: bool,
}

/// What ending a person's sessions did.
#[derive(Serialize, ToSchema)]
pub struct SessionsEnded {
    /// Sessions ended.
    pub ended_sessions: u64,
    /// The revocation event verifiers receive, if one was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_seq: Option<i64>,
}

// ---- Admin: workloads and the CA ----

/// `POST /admin/v1/workloads` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorkload {
    /// The SPIFFE ID, inside the trust domain.
    pub spiffe_id: String,
    /// SVID lifetime (default `ca.svid_ttl`), e.g. `1h`.
    pub svid_ttl: Option<String>,
    /// Join-token lifetime (default `ca.join_token_ttl`).
    pub join_token_ttl: Option<String>,
}

/// A registration's answer: a fresh single-use join token.
#[derive(Serialize, ToSchema)]
pub struct WorkloadRegistered {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// SVID lifetime, seconds.
    pub svid_ttl: i64,
    /// Single-use; exchange it at `/workload/v1/svid`.
    pub join_token: String,
    /// When the join token expires.
    pub join_token_expires_at: i64,
}

/// A registered workload.
#[derive(Serialize, ToSchema)]
pub struct Workload {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// SVID lifetime, seconds.
    pub svid_ttl: i64,
    /// Registered.
    pub created_at: i64,
}

/// `GET /admin/v1/workloads`.
#[derive(Serialize, ToSchema)]
pub struct WorkloadList {
    /// Every workload.
    pub workloads: Vec<Workload>,
}

/// One CA.
#[derive(Serialize, ToSchema)]
pub struct Ca {
    /// Its id (hash of its public key).
    pub ca_id: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// Created.
    pub created_at: i64,
    /// Certificate validity end.
    pub not_after: Option<i64>,
}

/// `GET /admin/v1/ca` and the answer of a CA rotation.
#[derive(Serialize, ToSchema)]
pub struct CaList {
    /// The trust domain.
    pub trust_domain: String,
    /// Bundle sequence number.
    pub bundle_sequence: u64,
    /// Every CA.
    pub cas: Vec<Ca>,
}

/// `POST /admin/v1/ca/rotate` body; may be empty.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCa {
    /// Rotate even if the next CA is younger than `ca.max_svid_ttl`.
    #[serde(default)]
    pub force: bool,
    /// Remove the active CA from the bundle at once (compromise).
    #[serde(default)]
    pub emergency: bool,
}

// ---- Admin: policies ----

/// A service and the version in force.
#[derive(Serialize, ToSchema)]
pub struct PolicyService {
    /// The service.
    pub service: String,
    /// Its newest version.
    pub version: i64,
}

/// `GET /admin/v1/policies`.
#[derive(Serialize, ToSchema)]
pub struct PolicyServiceList {
    /// Every service with policies.
    pub services: Vec<PolicyService>,
}

/// `POST /admin/v1/policies/{service}` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushPolicies {
    /// Cedar policy text (at most 256 KiB).
    pub policies: String,
    /// Cedar schema (human-readable format); policies are validated against it.
    pub schema: Option<String>,
    /// A note kept with the version (at most 512 bytes).
    pub note: Option<String>,
}

/// `POST /admin/v1/policies/{service}/rollback` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackPolicies {
    /// The version to put back in force (stored again as a new version).
    pub version: i64,
}

/// One policy version; the texts only where noted.
#[derive(Serialize, ToSchema)]
pub struct PolicyVersion {
    /// The service.
    pub service: String,
    /// Version number.
    pub version: i64,
    /// Stored at.
    pub created_at: i64,
    /// The admin client that pushed it.
    pub created_by: String,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// SHA-256 of the policy text, hex.
    pub policies_sha256: String,
    /// Whether a schema came with it.
    pub has_schema: bool,
    /// On push: the policy ids and counts of `permit` and `forbid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicySummary>,
    /// On `GET .../{version}`: the policy text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<String>,
    /// On `GET .../{version}`: the schema, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// What a pushed policy set holds.
#[derive(Serialize, ToSchema)]
pub struct PolicySummary {
    /// Policy ids in source order.
    pub ids: Vec<String>,
    /// `permit` policies.
    pub permits: u64,
    /// `forbid` policies.
    pub forbids: u64,
}

/// `GET /admin/v1/policies/{service}`.
#[derive(Serialize, ToSchema)]
pub struct PolicyVersionList {
    /// The service.
    pub service: String,
    /// Every version, oldest first.
    pub versions: Vec<PolicyVersion>,
}

// ---- Admin: canaries, probe runs, report ----

/// `POST /admin/v1/canaries` body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintCanary {
    /// The target's audience.
    pub audience: String,
    /// `genuine`, `expired`, `not-yet-valid`, `wrong-issuer`, `wrong-audience`,
    /// `wrong-token-type`, `removed-key` or `revoked-session`.
    #[schema(example = "expired")]
    pub check: String,
}

/// A minted canary token.
#[derive(Serialize, ToSchema)]
pub struct Canary {
    /// The check it is for.
    pub check: String,
    /// The signed token.
    pub token: String,
    /// Its session.
    pub sid: String,
    /// Its id.
    pub jti: String,
    /// The key that signed it.
    pub kid: String,
    /// Its expiry.
    pub exp: i64,
    /// `revoked-session`: the revocation event's sequence number.
    pub revocation_seq: Option<i64>,
}

/// A `castellan probe --json` report.
#[derive(Serialize, ToSchema)]
pub struct ProbeRun {
    /// One entry per target: `name`, `url`, `audience` and its `checks`.
    pub targets: Vec<serde_json::Value>,
    /// Totals, as the probe computed them.
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// A recorded probe run's id.
#[derive(Serialize, ToSchema)]
pub struct ProbeRunRecorded {
    /// Run id.
    pub id: i64,
    /// When it was recorded.
    pub recorded_at: i64,
}

/// A recorded probe run.
#[derive(Serialize, ToSchema)]
pub struct RecordedProbeRun {
    /// Run id.
    pub id: i64,
    /// When it was recorded.
    pub recorded_at: i64,
    /// The admin client that recorded it.
    pub recorded_by: String,
    /// The report.
    pub report: ProbeRun,
}

/// `GET /admin/v1/probe-runs`, newest first.
#[derive(Serialize, ToSchema)]
pub struct ProbeRunList {
    /// The runs.
    pub runs: Vec<RecordedProbeRun>,
}

/// The platform report (`castellan report`).
#[derive(Serialize, ToSchema)]
pub struct PlatformReport {
    /// When the authority assembled it.
    pub generated_at: i64,
    /// The stage reached (1-based).
    pub stage: u8,
    /// Its name.
    pub stage_name: String,
    /// Every finding (`id`, `severity`, `blocks`, ...).
    pub findings: Vec<serde_json::Value>,
    /// Every service the authority knows of.
    pub services: Vec<serde_json::Value>,
    /// Signing keys and rotation.
    pub keys: serde_json::Value,
    /// Token lifetimes.
    pub tokens: serde_json::Value,
    /// Verifiers heard from.
    pub verifiers: Vec<serde_json::Value>,
    /// The probe runs it drew on, newest first.
    pub probe_runs: Vec<serde_json::Value>,
}

// ---- Admin: audit ----

/// Whether an audited action took effect.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It happened.
    Success,
    /// It was refused or failed.
    Failure,
}

/// One event of the hash-chained audit trail.
#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    /// Sequence number.
    pub seq: i64,
    /// When.
    pub at: i64,
    /// `client:<id>`, `user:<id>`, `workload:<spiffe id>` or `castellan`.
    pub actor: String,
    /// `noun.verb`, e.g. `client.create`.
    pub action: String,
    /// What it was done to; empty when nothing.
    pub target: String,
    /// Success or failure.
    pub outcome: AuditOutcome,
    /// Further facts (never a secret).
    pub detail: serde_json::Value,
    /// This event's link hash (HMAC-SHA-256 over the previous event's hash and this event), lowercase hex.
    pub hash: String,
}

/// `GET /admin/v1/audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditEventList {
    /// The events, oldest first.
    pub events: Vec<AuditEvent>,
    /// When the page is full: the `after` of the next page.
    pub next_after: Option<i64>,
}

/// The newest event of the chain.
#[derive(Serialize, ToSchema)]
pub struct AuditHead {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// `GET /admin/v1/audit/verify`: the chain checked from the start.
#[derive(Serialize, ToSchema)]
pub struct AuditVerification {
    /// Every link holds.
    pub ok: bool,
    /// Events checked.
    pub events: u64,
    /// The newest event, when there is one.
    pub head: Option<AuditHead>,
    /// The first event whose link does not hold.
    pub first_bad_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}

/// Adds every schema of this module to the components.
pub(super) fn register(builder: utoipa::openapi::ComponentsBuilder) -> utoipa::openapi::ComponentsBuilder {
    builder
        .schema_from::<Error>()
        .schema_from::<GrantType>()
        .schema_from::<TokenRequest>()
        .schema_from::<TokenResponse>()
        .schema_from::<IntrospectRequest>()
        .schema_from::<IntrospectResponse>()
        .schema_from::<RevokeRequest>()
        .schema_from::<LoginForm>()
        .schema_from::<FederationStartForm>()
        .schema_from::<LogoutForm>()
        .schema_from::<UserInfo>()
        .schema_from::<ServerMetadata>()
        .schema_from::<Jwks>()
        .schema_from::<SvidRequest>()
        .schema_from::<SvidRenewRequest>()
        .schema_from::<Svid>()
        .schema_from::<RevocationKind>()
        .schema_from::<RevocationEvent>()
        .schema_from::<RevocationSnapshot>()
        .schema_from::<Heartbeat>()
        .schema_from::<DecisionEntry>()
        .schema_from::<DecisionBatch>()
        .schema_from::<DecisionsAccepted>()
        .schema_from::<DecisionRecord>()
        .schema_from::<DecisionPage>()
        .schema_from::<Client>()
        .schema_from::<ClientList>()
        .schema_from::<CreateClient>()
        .schema_from::<KeyState>()
        .schema_from::<Key>()
        .schema_from::<KeyList>()
        .schema_from::<RotateKeys>()
        .schema_from::<Revoked>()
        .schema_from::<Verifier>()
        .schema_from::<VerifierList>()
        .schema_from::<Session>()
        .schema_from::<User>()
        .schema_from::<UserList>()
        .schema_from::<CreateUser>()
        .schema_from::<SetPassword>()
        .schema_from::<SessionsEnded>()
        .schema_from::<RegisterWorkload>()
        .schema_from::<WorkloadRegistered>()
        .schema_from::<Workload>()
        .schema_from::<WorkloadList>()
        .schema_from::<Ca>()
        .schema_from::<CaList>()
        .schema_from::<RotateCa>()
        .schema_from::<PolicyService>()
        .schema_from::<PolicyServiceList>()
        .schema_from::<PushPolicies>()
        .schema_from::<RollbackPolicies>()
        .schema_from::<PolicyVersion>()
        .schema_from::<PolicySummary>()
        .schema_from::<PolicyVersionList>()
        .schema_from::<MintCanary>()
        .schema_from::<Canary>()
        .schema_from::<ProbeRun>()
        .schema_from::<ProbeRunRecorded>()
        .schema_from::<RecordedProbeRun>()
        .schema_from::<ProbeRunList>()
        .schema_from::<PlatformReport>()
        .schema_from::<AuditOutcome>()
        .schema_from::<AuditEvent>()
        .schema_from::<AuditEventList>()
        .schema_from::<AuditHead>()
        .schema_from::<AuditVerification>()
}

//! The authority's configuration: a TOML file, overridden by `CASTELLAN_*`
//! environment variables and command-line flags (the binary applies those).

use castellan_core::HumanDuration;
use castellan_jose::Algorithm;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {reason}")]
    Read { path: String, reason: String },
    /// The file is not valid TOML for this schema.
    #[error("config file `{path}` is invalid: {reason}")]
    Parse { path: String, reason: String },
    /// A value is out of range or inconsistent with another.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Everything `castellan serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite store, master key and bootstrap credentials live.
    pub data_dir: PathBuf,
    /// Issuer URL; defaults to `http://` + `listen`.
    pub issuer: Option<String>,
    /// SPIFFE trust domain of the internal CA (used once the CA is enabled).
    pub trust_domain: Option<String>,
    /// Token lifetimes.
    pub tokens: TokenConfig,
    /// Signing keys and their rotation.
    pub keys: KeyConfig,
    /// Request limits.
    pub limits: LimitConfig,
    /// The revocation stream and verifier staleness.
    pub revocation: RevocationConfig,
    /// Sign-in sessions of people: lifetimes of codes, sessions and refresh tokens.
    pub sessions: SessionConfig,
    /// The login page: password hashing and throttling.
    pub signin: SigninConfig,
    /// An upstream OpenID Connect provider people may sign in with.
    pub federation: Option<FederationConfig>,
    /// The internal CA that issues workloads their SVIDs.
    pub ca: CaConfig,
    /// The central log of authorization decisions services ship.
    pub decisions: DecisionLogConfig,
    /// The store: SQLite under the data dir, or PostgreSQL for a cluster.
    pub database: DatabaseConfig,
    /// The admin console at `/admin`.
    pub console: ConsoleConfig,
}

/// The admin console (`docs/console.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether `/admin` serves the console at all.
    pub enabled: bool,
    /// Usernames of the people who may use the console; empty refuses everyone.
    /// A list in TOML; a comma-separated string from the environment
    /// (`CASTELLAN_CONSOLE__ADMINS=alice,bob`).
    #[serde(deserialize_with = "list_or_commas")]
    pub admins: Vec<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            admins: Vec::new(),
        }
    }
}

impl ConsoleConfig {
    /// Whether `user` may use the console: a local account (not created by
    /// federation, whose upstream chose its username) named in `admins`.
    pub fn is_admin_user(&self, user: &castellan_store::UserRecord) -> bool {
        user.federated_issuer.is_none() && self.is_admin(&user.username)
    }

    /// Whether the name `username` (already normalized) is in `admins`.
    /// Use [`ConsoleConfig::is_admin_user`] for a person.
    pub fn is_admin(&self, username: &str) -> bool {
        self.admins
            .iter()
            .filter_map(|a| crate::users::normalize_username(a))
            .any(|a| a == username)
    }
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(v) => v,
        ListOrCommas::Commas(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A database URL. Shown and logged with its password replaced.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    #[must_use]
    pub fn new(url: &str) -> Self {
        Self(url.to_owned())
    }
    /// The URL itself, password included: for connecting only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with any password replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                // Query parameters may carry a password too.
                if u.query().is_some() {
                    u.set_query(Some("***"));
                }
                u.to_string()
            }
            Err(_) => "<unparseable database url>".to_owned(),
        }
    }
    /// Whether it names PostgreSQL.
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// The store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://...` for several authority nodes; unset: SQLite under the data dir.
    pub url: Option<DatabaseUrl>,
    /// Most connections a node opens (PostgreSQL).
    pub max_connections: u32,
    /// Longest a statement may run before the database cancels it (PostgreSQL).
    pub statement_timeout: HumanDuration,
    /// Longest a request waits for a free connection before failing (PostgreSQL).
    pub acquire_timeout: HumanDuration,
    /// How long the node that runs scheduled work (key and CA rotation,
    /// pruning) holds its lease; another node takes over within this long
    /// after it dies.
    pub leader_lease: HumanDuration,
    /// How often a node reads the store for cross-node changes a
    /// notification may have missed.
    pub poll_interval: HumanDuration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            statement_timeout: HumanDuration::from_secs(5),
            acquire_timeout: HumanDuration::from_secs(5),
            leader_lease: HumanDuration::from_secs(30),
            poll_interval: HumanDuration::from_secs(1),
        }
    }
}

/// The central decision log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionLogConfig {
    /// Rows older than this (by arrival) are pruned.
    pub retention: HumanDuration,
    /// Most rows accepted in one shipment.
    pub max_batch: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            retention: HumanDuration::from_secs(30 * 86_400),
            max_batch: 1_000,
        }
    }
}

/// The internal CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// How long a CA signs before the next one (already in the trust
    /// bundle) takes over.
    pub rotation_interval: HumanDuration,
    /// Default SVID lifetime.
    pub svid_ttl: HumanDuration,
    /// Longest SVID lifetime a workload may be registered with.
    pub max_svid_ttl: HumanDuration,
    /// Default join-token lifetime.
    pub join_token_ttl: HumanDuration,
    /// Address of the mTLS listener for workloads (SVID renewal, RFC 8705
    /// `tls_client_auth`); unset: no mTLS listener.
    pub mtls_listen: Option<SocketAddr>,
    /// Base URL workloads reach the mTLS listener at; defaults to
    /// `https://` + `mtls_listen`.
    pub mtls_url: Option<String>,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            rotation_interval: HumanDuration::from_secs(7 * 86_400),
            svid_ttl: HumanDuration::from_secs(3_600),
            max_svid_ttl: HumanDuration::from_secs(86_400),
            join_token_ttl: HumanDuration::from_secs(3_600),
            mtls_listen: None,
            mtls_url: None,
        }
    }
}

/// Sign-in sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session ends when its refresh token goes unused this long.
    pub idle_timeout: HumanDuration,
    /// A session ends this long after sign-in, however active.
    pub absolute_lifetime: HumanDuration,
    /// Lifetime of an authorization code.
    pub code_ttl: HumanDuration,
    /// How long the login page may sit open before it must be reloaded.
    pub login_page_ttl: HumanDuration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: HumanDuration::from_secs(7 * 86_400),
            absolute_lifetime: HumanDuration::from_secs(30 * 86_400),
            code_ttl: HumanDuration::from_secs(60),
            login_page_ttl: HumanDuration::from_secs(1_800),
        }
    }
}

/// Password hashing and sign-in throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninConfig {
    /// argon2id memory cost, KiB (OWASP: 19456 with 2 passes).
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; more wait their turn.
    pub max_concurrent_hashes: usize,
    /// Consecutive failures after which an account is locked.
    pub max_failures: u32,
    /// How long a locked account refuses even the right password.
    pub lockout: HumanDuration,
    /// Sign-in attempts per source address per minute.
    pub per_source_per_minute: u32,
    /// Take the source address from the first `X-Forwarded-For` entry
    /// (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl Default for SigninConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            // One hash per core: more only time-slice one core's caches and starve the runtime.
            max_concurrent_hashes: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            max_failures: 5,
            lockout: HumanDuration::from_secs(900),
            per_source_per_minute: 600,
            trust_forwarded_for: false,
        }
    }
}

/// An upstream OpenID Connect provider.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Its issuer URL (discovery is read from it).
    pub issuer: String,
    /// Our client id there.
    pub client_id: String,
    /// Our client secret there.
    pub client_secret: String,
    /// Button text on the login page.
    #[serde(default = "default_federation_name")]
    pub display_name: String,
    /// Create a local account on the first federated sign-in (otherwise an
    /// admin links people beforehand).
    #[serde(default = "default_true")]
    pub create_users: bool,
}

fn default_federation_name() -> String {
    "Company sign-in".to_owned()
}

fn default_true() -> bool {
    true
}

impl std::fmt::Debug for FederationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// The revocation stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// How often an idle stream carries a keep-alive, so verifiers can tell a
    /// quiet authority from a dead one.
    pub heartbeat_interval: HumanDuration,
    /// How long a verifier may go without the stream before it stops trusting
    /// its revocation state (then fails closed, or open if configured).
    pub staleness_window: HumanDuration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: HumanDuration::from_secs(5),
            staleness_window: HumanDuration::from_secs(300),
        }
    }
}

/// Token lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Default access-token lifetime.
    pub access_token_ttl: HumanDuration,
    /// Longest lifetime any client may be configured with.
    pub max_access_token_ttl: HumanDuration,
    /// Clock skew tolerated when checking tokens and client assertions.
    pub leeway: HumanDuration,
    /// Longest delegation chain (`act` links) token exchange builds; also
    /// the most any verifier accepts.
    pub max_delegation_depth: usize,
}

/// Signing keys and rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Algorithm of newly generated keys.
    pub algorithm: Algorithm,
    /// How long a key signs before the next one takes over.
    pub rotation_interval: HumanDuration,
    /// `Cache-Control: max-age` of the JWKS. A next key is published at
    /// least twice this long before it signs.
    pub jwks_max_age: HumanDuration,
    /// How often the scheduler looks at the keys.
    pub check_interval: HumanDuration,
    /// Longest a routine rotation waits for every live verifier to hold the
    /// next key before promoting it anyway (with a warning naming the laggards).
    pub ack_timeout: HumanDuration,
    /// How long a key stays `removed` (unpublished, untrusted, its private
    /// half kept encrypted to sign `removed-key` canaries for the drift
    /// probe) before it is deleted. `0s` deletes keys as soon as their last
    /// token has expired.
    pub keep_removed_for: HumanDuration,
}

/// Request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./castellan-data"),
            issuer: None,
            trust_domain: None,
            tokens: TokenConfig::default(),
            keys: KeyConfig::default(),
            limits: LimitConfig::default(),
            revocation: RevocationConfig::default(),
            sessions: SessionConfig::default(),
            signin: SigninConfig::default(),
            federation: None,
            ca: CaConfig::default(),
            decisions: DecisionLogConfig::default(),
            database: DatabaseConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl TokenConfig {
    /// The access-token lifetime a client gets, seconds: its override, or
    /// the default, kept between 1 s and the maximum.
    #[must_use]
    pub fn lifetime_for(&self, client_override: Option<i64>) -> i64 {
        client_override
            .unwrap_or(self.access_token_ttl.secs())
            .clamp(1, self.max_access_token_ttl.secs())
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: HumanDuration::from_secs(300),
            max_access_token_ttl: HumanDuration::from_secs(3_600),
            leeway: HumanDuration::from_secs(30),
            max_delegation_depth: 4,
        }
    }
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::ES256,
            rotation_interval: HumanDuration::from_secs(7 * 86_400),
            jwks_max_age: HumanDuration::from_secs(300),
            check_interval: HumanDuration::from_secs(10),
            ack_timeout: HumanDuration::from_secs(30),
            keep_removed_for: HumanDuration::from_secs(7 * 86_400),
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|reason| ConfigError::Parse {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Reads the optional file, then applies `CASTELLAN_<SECTION>__<KEY>`
    /// variables from `env` over it (for example `CASTELLAN_KEYS__ALGORITHM=EdDSA`
    /// or `CASTELLAN_TOKENS__ACCESS_TOKEN_TTL=2m`). Unknown sections or keys
    /// are errors, from the file and the environment alike.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (label, text) = match file {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            ),
            None => ("(defaults)".to_owned(), String::new()),
        };
        let parse_err = |reason: String| ConfigError::Parse {
            path: label.clone(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("CASTELLAN_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            let value = match value.as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => value
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .unwrap_or(toml::Value::String(value)),
            };
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key, value);
                }
                _ => {
                    return Err(parse_err(format!(
                        "environment variable `{name}`: `{section}` is not a section"
                    )))
                }
            }
        }
        Self::deserialize(toml::Value::Table(table)).map_err(|e| parse_err(e.to_string()))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The SPIFFE trust domain: `trust_domain`, or the issuer's host.
    pub fn trust_domain(&self) -> String {
        match &self.trust_domain {
            Some(td) => td.clone(),
            // An IPv6 literal is no trust domain name: fall back to `localhost`.
            None => url::Url::parse(&self.issuer())
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                .filter(|h| !h.contains([':', '[', ']']))
                .unwrap_or_else(|| "localhost".to_owned()),
        }
    }

    /// The base URL of the mTLS listener, when there is one.
    pub fn mtls_url(&self) -> Option<String> {
        match (&self.ca.mtls_url, self.ca.mtls_listen) {
            (Some(u), _) => Some(u.trim_end_matches('/').to_owned()),
            (None, Some(addr)) => Some(format!("https://{addr}")),
            (None, None) => None,
        }
    }

    /// The issuer URL, without a trailing slash.
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Checks ranges and consistency; the message says what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.decisions.retention.secs() < 60 {
            return invalid("decisions.retention must be at least 1m".to_owned());
        }
        if !(1..=10_000).contains(&self.decisions.max_batch) {
            return invalid("decisions.max_batch must be between 1 and 10000".to_owned());
        }
        let db = &self.database;
        if let Some(u) = &db.url {
            if !u.is_postgres() {
                return invalid(format!(
                    "database.url `{}` must be a postgres:// URL (SQLite needs none: it lives under the data dir)",
                    u.redacted()
                ));
            }
        }
        if !(1..=1_000).contains(&db.max_connections) {
            return invalid("database.max_connections must be between 1 and 1000".to_owned());
        }
        for (name, d) in [
            ("statement_timeout", db.statement_timeout),
            ("acquire_timeout", db.acquire_timeout),
            ("poll_interval", db.poll_interval),
        ] {
            if !(1..=300).contains(&d.secs()) {
                return invalid(format!("database.{name} must be between 1s and 5m"));
            }
        }
        if !(3..=600).contains(&db.leader_lease.secs()) {
            return invalid("database.leader_lease must be between 3s and 10m".to_owned());
        }
        if db.leader_lease.secs() < self.keys.check_interval.secs().saturating_mul(2) {
            return invalid(format!(
                "database.leader_lease ({}) must be at least twice keys.check_interval ({}): the leader renews it on every pass",
                db.leader_lease, self.keys.check_interval
            ));
        }
        let issuer = self.issuer();
        match url::Url::parse(&issuer) {
            Ok(u)
                if (u.scheme() == "https" || u.scheme() == "http") && u.query().is_none() && u.fragment().is_none() => {
            }
            _ => {
                return invalid(format!(
                    "issuer `{issuer}` must be an http(s) URL without query or fragment"
                ))
            }
        }
        if let Some(td) = &self.trust_domain {
            let ok = !td.is_empty()
                && td.len() <= 255
                && td
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_'));
            if !ok {
                return invalid(format!(
                    "trust_domain `{td}` must be lowercase letters, digits, `-`, `.` or `_`"
                ));
            }
        }
        if self.ca.mtls_url.is_some() && self.ca.mtls_listen.is_none() {
            return invalid("ca.mtls_url needs ca.mtls_listen: there is no mtls listener to advertise".into());
        }
        if let Some(u) = &self.ca.mtls_url {
            match url::Url::parse(u) {
                Ok(u) if u.scheme() == "https" && u.query().is_none() && u.fragment().is_none() => {}
                _ => {
                    return invalid(format!(
                        "ca.mtls_url `{u}` must be an https URL without query or fragment"
                    ))
                }
            }
        }
        if self.ca.mtls_listen.is_some() && self.ca.mtls_listen == Some(self.listen) && self.listen.port() != 0 {
            return invalid("ca.mtls_listen must differ from listen".into());
        }
        let t = &self.tokens;
        if t.access_token_ttl.secs() < 1 {
            return invalid("tokens.access_token_ttl must be at least 1s".into());
        }
        if t.access_token_ttl > t.max_access_token_ttl {
            return invalid(format!(
                "tokens.access_token_ttl ({}) exceeds tokens.max_access_token_ttl ({})",
                t.access_token_ttl, t.max_access_token_ttl
            ));
        }
        if t.max_access_token_ttl.secs() > 86_400 {
            return invalid("tokens.max_access_token_ttl must be at most 1d".into());
        }
        if !(1..=16).contains(&t.max_delegation_depth) {
            return invalid("tokens.max_delegation_depth must be between 1 and 16".into());
        }
        if t.leeway.secs() > 120 {
            return invalid(format!("tokens.leeway ({}) must be at most 120s", t.leeway));
        }
        let k = &self.keys;
        if k.jwks_max_age.secs() < 1 {
            return invalid("keys.jwks_max_age must be at least 1s".into());
        }
        if k.rotation_interval.secs() < k.jwks_max_age.secs().saturating_mul(2) {
            return invalid(format!(
                "keys.rotation_interval ({}) must be at least twice keys.jwks_max_age ({}), so the next key is published before it signs",
                k.rotation_interval, k.jwks_max_age
            ));
        }
        if k.check_interval.secs() < 1 {
            return invalid("keys.check_interval must be at least 1s".into());
        }
        if k.ack_timeout.secs() > 600 {
            return invalid("keys.ack_timeout must be at most 10m".into());
        }
        if self.keys.keep_removed_for.secs() > 365 * 86_400 {
            return invalid("keys.keep_removed_for must be at most 365d".into());
        }
        let r = &self.revocation;
        if r.heartbeat_interval.secs() < 1 || r.heartbeat_interval.secs() > 60 {
            return invalid("revocation.heartbeat_interval must be between 1s and 60s".into());
        }
        if r.staleness_window.secs() < r.heartbeat_interval.secs().saturating_mul(3) {
            return invalid(format!(
                "revocation.staleness_window ({}) must be at least three heartbeats ({} each)",
                r.staleness_window, r.heartbeat_interval
            ));
        }
        let s = &self.sessions;
        if s.code_ttl.secs() < 1 || s.code_ttl.secs() > 600 {
            return invalid("sessions.code_ttl must be between 1s and 10m".into());
        }
        if s.idle_timeout.secs() < 60 || s.idle_timeout > s.absolute_lifetime {
            return invalid(format!(
                "sessions.idle_timeout ({}) must be at least 1m and at most sessions.absolute_lifetime ({})",
                s.idle_timeout, s.absolute_lifetime
            ));
        }
        if s.absolute_lifetime.secs() > 365 * 86_400 {
            return invalid("sessions.absolute_lifetime must be at most 365d".into());
        }
        if s.login_page_ttl.secs() < 60 || s.login_page_ttl.secs() > 86_400 {
            return invalid("sessions.login_page_ttl must be between 1m and 1d".into());
        }
        let ca = &self.ca;
        if ca.rotation_interval.secs() < 3_600 || ca.rotation_interval.secs() > 365 * 86_400 {
            return invalid("ca.rotation_interval must be between 1h and 365d".into());
        }
        if ca.svid_ttl.secs() < 60 || ca.svid_ttl > ca.max_svid_ttl || ca.max_svid_ttl.secs() > 30 * 86_400 {
            return invalid("ca.svid_ttl must be at least 1m and at most ca.max_svid_ttl (at most 30d)".into());
        }
        if ca.rotation_interval < ca.max_svid_ttl {
            return invalid(format!(
                "ca.rotation_interval ({}) must be at least ca.max_svid_ttl ({}): a CA is published that long before it signs, so every workload renews and learns it first",
                ca.rotation_interval, ca.max_svid_ttl
            ));
        }
        if ca.join_token_ttl.secs() < 60 || ca.join_token_ttl.secs() > 7 * 86_400 {
            return invalid("ca.join_token_ttl must be between 1m and 7d".into());
        }
        let g = &self.signin;
        if g.argon2_memory_kib < 8 * 1024 || g.argon2_iterations < 1 || g.argon2_parallelism < 1 {
            return invalid("signin.argon2_* must be at least 8192 KiB, 1 pass, 1 lane".into());
        }
        if g.max_concurrent_hashes < 1 || g.max_concurrent_hashes > 256 {
            return invalid("signin.max_concurrent_hashes must be between 1 and 256".into());
        }
        if g.max_failures < 1 || g.max_failures > 100 {
            return invalid("signin.max_failures must be between 1 and 100".into());
        }
        if g.per_source_per_minute < 10 {
            return invalid("signin.per_source_per_minute must be at least 10".into());
        }
        if let Some(f) = &self.federation {
            match url::Url::parse(&f.issuer) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => return invalid(format!("federation.issuer `{}` must be an http(s) URL", f.issuer)),
            }
            if f.client_id.is_empty() || f.client_secret.is_empty() {
                return invalid("federation.client_id and federation.client_secret are required".into());
            }
        }
        if !(1024..=1024 * 1024).contains(&self.limits.max_body_bytes) {
            return invalid("limits.max_body_bytes must be between 1024 and 1048576".into());
        }
        if let Some(bad) = self
            .console
            .admins
            .iter()
            .find(|a| crate::users::normalize_username(a).is_none())
        {
            return invalid(format!(
                "console.admins: `{bad}` is not a valid username (1 to 64 of a-z, 0-9 and `. _ - @ +`)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.tokens.access_token_ttl.secs(), 300);
        assert_eq!(c.keys.rotation_interval.secs(), 7 * 86_400);
        assert_eq!(c.issuer(), "http://127.0.0.1:8080");
        assert_eq!(c.trust_domain(), "127.0.0.1");
    }

    #[test]
    fn trust_domain_comes_from_the_issuer_host() {
        let mut c = Config {
            listen: "[::1]:8443".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(c.trust_domain(), "localhost");
        c.validate().unwrap();
        c.issuer = Some("https://Auth.Example.com/x".to_owned());
        assert_eq!(c.trust_domain(), "auth.example.com");
        c.trust_domain = Some("prod.example".to_owned());
        assert_eq!(c.trust_domain(), "prod.example");
    }

    #[test]
    fn reads_durations_and_refuses_unknown_keys() {
        let c = Config::from_toml("[keys]\nrotation_interval = \"1d\"\nalgorithm = \"EdDSA\"\n").unwrap();
        assert_eq!(c.keys.rotation_interval.secs(), 86_400);
        assert_eq!(c.keys.algorithm, Algorithm::EdDSA);
        assert!(Config::from_toml("[keys]\nrotation = \"1d\"\n")
            .unwrap_err()
            .contains("unknown field"));
        assert!(Config::from_toml("[tokens]\naccess_token_ttl = \"5 minutes\"\n").is_err());
        assert!(Config::from_toml("[keys]\nalgorithm = \"HS256\"\n").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[keys]\nalgorithm = \"RS256\"\n").unwrap();
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let c = Config::load(
            Some(&path),
            env(&[
                ("CASTELLAN_KEYS__ALGORITHM", "EdDSA"),
                ("CASTELLAN_LIMITS__MAX_BODY_BYTES", "4096"),
                ("CASTELLAN_LISTEN", "ignored: flags handle it"),
                ("OTHER__X", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.keys.algorithm, Algorithm::EdDSA);
        assert_eq!(c.limits.max_body_bytes, 4096);
        let err = Config::load(None, env(&[("CASTELLAN_KEYS__ROTATION", "1d")])).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(Config::load(None, env(&[("CASTELLAN_TOKENS__LEEWAY", "soon")])).is_err());
    }

    #[test]
    fn console_admins_from_the_file_or_the_environment() {
        let c = Config::default();
        assert!(c.console.enabled);
        assert!(c.console.admins.is_empty());
        let c = Config::from_toml("[console]\nadmins = [\"Alice\", \"bob\"]\n").unwrap();
        assert!(c.console.is_admin("alice"), "names are compared normalized");
        assert!(c.console.is_admin("bob"));
        assert!(!c.console.is_admin("carol"));
        let env = vec![
            ("CASTELLAN_CONSOLE__ADMINS".to_owned(), "alice, bob".to_owned()),
            ("CASTELLAN_CONSOLE__ENABLED".to_owned(), "false".to_owned()),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.console.admins, ["alice", "bob"]);
        assert!(!c.console.enabled);
        assert!(Config::from_toml("[console]\nadmin = []\n").is_err());
        let c = Config::from_toml("[console]\nadmins = [\"alice\", \"bad name\"]\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`bad name`"), "{err}");
    }

    #[test]
    fn refuses_inconsistent_schedules() {
        let c = Config::from_toml("[keys]\nrotation_interval = \"5m\"\njwks_max_age = \"5m\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        let c = Config::from_toml("[tokens]\naccess_token_ttl = \"2h\"\n").unwrap();
        assert!(c.validate().is_err());
        let c = Config::from_toml("issuer = \"ftp://x\"\n").unwrap();
        assert!(c.validate().is_err());
    }
}

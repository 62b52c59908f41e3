//! Schema versions, applied in order inside one transaction each.

/// Each entry is one schema version; never edit a released entry, append.
pub(crate) const SQLITE: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE clients (
    client_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    secret_hash      BLOB,
    audiences        TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    access_token_ttl INTEGER,
    jwks             TEXT,
    admin            INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL,
    private_enc  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER,
    remove_at    INTEGER
);
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revocations_by_value ON revocations (kind, value);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
"#,
    r#"
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
CREATE TABLE users (
    user_id           TEXT PRIMARY KEY,
    username          TEXT NOT NULL UNIQUE,
    password_hash     TEXT,
    suspended         INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    federated_issuer  TEXT,
    federated_subject TEXT,
    UNIQUE (federated_issuer, federated_subject)
);
CREATE TABLE sessions (
    sid          TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    audience     TEXT NOT NULL,
    scope        TEXT,
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE TABLE auth_codes (
    code_hash      BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    sid            TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_by_sid ON refresh_tokens (sid);
"#,
    r#"
ALTER TABLE clients ADD COLUMN serves TEXT;
ALTER TABLE clients ADD COLUMN exchange_audiences TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
CREATE TABLE ca_keys (
    ca_id        TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    private_enc  BLOB NOT NULL,
    cert_der     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER,
    remove_at    INTEGER
);
CREATE TABLE workloads (
    spiffe_id  TEXT PRIMARY KEY,
    svid_ttl   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE join_tokens (
    token_hash BLOB PRIMARY KEY,
    spiffe_id  TEXT NOT NULL REFERENCES workloads (spiffe_id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
"#,
    r#"
ALTER TABLE clients ADD COLUMN tls_client_auth_san_uri TEXT;
"#,
    r#"
CREATE TABLE policy_versions (
    service     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    policies    TEXT NOT NULL,
    schema      TEXT,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    note        TEXT,
    PRIMARY KEY (service, version)
);
"#,
    r#"
CREATE TABLE decisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    service        TEXT NOT NULL,
    time           INTEGER NOT NULL,
    principal      TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    decision       TEXT NOT NULL,
    reason         TEXT,
    policies       TEXT NOT NULL,
    errors         TEXT NOT NULL,
    policy_version INTEGER,
    reporter       TEXT NOT NULL,
    received_at    INTEGER NOT NULL
);
CREATE INDEX decisions_by_service_time ON decisions (service, time);
CREATE INDEX decisions_by_service_id ON decisions (service, id);
CREATE INDEX decisions_by_received ON decisions (received_at);
CREATE TABLE decision_batches (
    reporter    TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (reporter, batch_id)
);
"#,
    r#"
CREATE TABLE probe_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    report      TEXT NOT NULL
);
"#,
];

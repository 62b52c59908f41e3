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
    r#"
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE verifier_heartbeats (
    verifier_id        TEXT PRIMARY KEY,
    audience           TEXT NOT NULL,
    kind               TEXT,
    kids               TEXT NOT NULL,
    last_seq           INTEGER NOT NULL,
    transport          TEXT,
    seen_at            INTEGER NOT NULL,
    latest_seq         INTEGER NOT NULL,
    latest_at_previous INTEGER NOT NULL
);
CREATE INDEX verifier_heartbeats_by_seen ON verifier_heartbeats (seen_at);
"#,
    r#"
CREATE TABLE audit_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    BLOB NOT NULL
);
CREATE INDEX audit_events_by_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_by_at ON audit_events (at);
"#,
];

/// PostgreSQL schema versions as `(version, description, sql)`, applied by
/// sqlx's migrator (one transaction each, under its advisory lock). Version 1
/// is every SQLite version above in one go; never edit a released entry, append.
///
/// Differences from SQLite: BIGINT for integers, BYTEA for blobs, BOOLEAN for
/// flags; identifier columns that are listed in order are `COLLATE "C"` so the
/// order is byte order, as in SQLite, whatever the database's locale; the
/// revocation sequence and the per-service policy versions come from rows in
/// `counters` (see `postgres.rs`), not from sequences.
pub(crate) const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "castellan schema",
        r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('revocation_seq', 0);
CREATE TABLE clients (
    client_id                 TEXT COLLATE "C" PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_hash               BYTEA,
    audiences                 TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    access_token_ttl          BIGINT,
    jwks                      TEXT,
    admin                     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                BIGINT NOT NULL,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    public                    BOOLEAN NOT NULL DEFAULT FALSE,
    serves                    TEXT,
    exchange_audiences        TEXT NOT NULL DEFAULT '[]',
    tls_client_auth_san_uri   TEXT
);
CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL,
    private_enc  BYTEA NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT,
    remove_at    BIGINT
);
CREATE TABLE revocations (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_by_value ON revocations (kind, value);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_by_expiry ON assertion_jtis (expires_at);
CREATE TABLE users (
    user_id           TEXT COLLATE "C" PRIMARY KEY,
    username          TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash     TEXT,
    suspended         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    federated_issuer  TEXT,
    federated_subject TEXT,
    UNIQUE (federated_issuer, federated_subject)
);
CREATE TABLE sessions (
    sid          TEXT COLLATE "C" PRIMARY KEY,
    user_id      TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    audience     TEXT NOT NULL,
    scope        TEXT,
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE TABLE auth_codes (
    code_hash      BYTEA PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    sid            TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX auth_codes_by_user ON auth_codes (user_id);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_by_sid ON refresh_tokens (sid);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE TABLE ca_keys (
    ca_id        TEXT COLLATE "C" PRIMARY KEY,
    state        TEXT NOT NULL,
    private_enc  BYTEA NOT NULL,
    cert_der     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT,
    remove_at    BIGINT
);
CREATE TABLE workloads (
    spiffe_id  TEXT COLLATE "C" PRIMARY KEY,
    svid_ttl   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE join_tokens (
    token_hash BYTEA PRIMARY KEY,
    spiffe_id  TEXT COLLATE "C" NOT NULL REFERENCES workloads (spiffe_id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX join_tokens_by_workload ON join_tokens (spiffe_id);
CREATE TABLE policy_versions (
    service    TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    policies   TEXT NOT NULL,
    schema     TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    note       TEXT,
    PRIMARY KEY (service, version)
);
CREATE TABLE decisions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service        TEXT NOT NULL,
    time           BIGINT NOT NULL,
    principal      TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    decision       TEXT NOT NULL,
    reason         TEXT,
    policies       TEXT NOT NULL,
    errors         TEXT NOT NULL,
    policy_version BIGINT,
    reporter       TEXT NOT NULL,
    received_at    BIGINT NOT NULL
);
CREATE INDEX decisions_by_service_time ON decisions (service, time);
CREATE INDEX decisions_by_service_id ON decisions (service, id);
CREATE INDEX decisions_by_received ON decisions (received_at);
CREATE TABLE decision_batches (
    reporter    TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (reporter, batch_id)
);
CREATE INDEX decision_batches_by_received ON decision_batches (received_at);
CREATE TABLE probe_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    report      TEXT NOT NULL
);
"#,
    ),
    (
        2,
        "leases",
        r#"
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
"#,
    ),
    (
        3,
        "verifier heartbeats shared by the nodes",
        r#"
CREATE TABLE verifier_heartbeats (
    verifier_id        TEXT COLLATE "C" PRIMARY KEY,
    audience           TEXT COLLATE "C" NOT NULL,
    kind               TEXT,
    kids               TEXT NOT NULL,
    last_seq           BIGINT NOT NULL,
    transport          TEXT,
    seen_at            BIGINT NOT NULL,
    latest_seq         BIGINT NOT NULL,
    latest_at_previous BIGINT NOT NULL
);
CREATE INDEX verifier_heartbeats_by_seen ON verifier_heartbeats (seen_at);
"#,
    ),
    (
        4,
        "audit trail",
        r#"
CREATE TABLE audit_events (
    seq     BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT COLLATE "C" NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    BYTEA NOT NULL
);
CREATE INDEX audit_events_by_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_by_at ON audit_events (at);
"#,
    ),
];

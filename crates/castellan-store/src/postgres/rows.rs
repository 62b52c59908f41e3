//! Reading PostgreSQL rows back into records.

use crate::{
    AuditRecord, AuthCodeRecord, CaRecord, ClientRecord, DecisionRecord, JoinTokenRecord, KeyRecord,
    PolicyVersionRecord, ProbeRunRecord, RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord,
    StoreError, StoreResult, UserRecord, WorkloadRecord,
};
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::str::FromStr;

pub(super) fn corrupt(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn json_list(row: &PgRow, column: &str, what: &'static str) -> StoreResult<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(what, e))
}

pub(super) fn client(row: &PgRow) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        audiences: json_list(row, "audiences", "client")?,
        scopes: json_list(row, "scopes", "client")?,
        access_token_ttl: row.try_get("access_token_ttl")?,
        jwks: row.try_get("jwks")?,
        admin: row.try_get("admin")?,
        created_at: row.try_get("created_at")?,
        redirect_uris: json_list(row, "redirect_uris", "client")?,
        post_logout_redirect_uris: json_list(row, "post_logout_redirect_uris", "client")?,
        public: row.try_get("public")?,
        serves: row.try_get("serves")?,
        exchange_audiences: json_list(row, "exchange_audiences", "client")?,
        tls_client_auth_san_uri: row.try_get("tls_client_auth_san_uri")?,
    })
}

pub(super) fn key(row: &PgRow) -> StoreResult<KeyRecord> {
    let state: String = row.try_get("state")?;
    Ok(KeyRecord {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        state: state.parse().map_err(|e: String| corrupt("signing key", e))?,
        private_enc: row.try_get("private_enc")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

pub(super) fn event(row: &PgRow) -> StoreResult<RevocationEvent> {
    let kind: String = row.try_get("kind")?;
    Ok(RevocationEvent {
        seq: row.try_get("seq")?,
        kind: RevocationKind::from_str(&kind).map_err(|e| corrupt("revocation", e))?,
        value: row.try_get("value")?,
        not_before: row.try_get("not_before")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(super) fn user(row: &PgRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        suspended: row.try_get("suspended")?,
        created_at: row.try_get("created_at")?,
        federated_issuer: row.try_get("federated_issuer")?,
        federated_subject: row.try_get("federated_subject")?,
    })
}

pub(super) fn session(row: &PgRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        sid: row.try_get("sid")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        audience: row.try_get("audience")?,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

pub(super) fn code(row: &PgRow) -> StoreResult<AuthCodeRecord> {
    Ok(AuthCodeRecord {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        sid: row.try_get("sid")?,
        user_id: row.try_get("user_id")?,
        nonce: row.try_get("nonce")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(super) fn refresh(row: &PgRow) -> StoreResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: row.try_get("token_hash")?,
        sid: row.try_get("sid")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

pub(super) fn ca(row: &PgRow) -> StoreResult<CaRecord> {
    let state: String = row.try_get("state")?;
    Ok(CaRecord {
        ca_id: row.try_get("ca_id")?,
        state: state.parse().map_err(|e: String| corrupt("ca key", e))?,
        private_enc: row.try_get("private_enc")?,
        cert_der: row.try_get("cert_der")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

pub(super) fn workload(row: &PgRow) -> StoreResult<WorkloadRecord> {
    Ok(WorkloadRecord {
        spiffe_id: row.try_get("spiffe_id")?,
        svid_ttl: row.try_get("svid_ttl")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn join_token(row: &PgRow) -> StoreResult<JoinTokenRecord> {
    Ok(JoinTokenRecord {
        token_hash: row.try_get("token_hash")?,
        spiffe_id: row.try_get("spiffe_id")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(super) fn policy(row: &PgRow) -> StoreResult<PolicyVersionRecord> {
    Ok(PolicyVersionRecord {
        service: row.try_get("service")?,
        version: row.try_get("version")?,
        policies: row.try_get("policies")?,
        schema: row.try_get("schema")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        note: row.try_get("note")?,
    })
}

pub(super) fn decision(row: &PgRow) -> StoreResult<DecisionRecord> {
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        time: row.try_get("time")?,
        principal: row.try_get("principal")?,
        action: row.try_get("action")?,
        resource: row.try_get("resource")?,
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        policies: json_list(row, "policies", "decision")?,
        errors: json_list(row, "errors", "decision")?,
        policy_version: row.try_get("policy_version")?,
        reporter: row.try_get("reporter")?,
        received_at: row.try_get("received_at")?,
    })
}

pub(super) fn probe_run(row: &PgRow) -> StoreResult<ProbeRunRecord> {
    Ok(ProbeRunRecord {
        id: row.try_get("id")?,
        recorded_at: row.try_get("recorded_at")?,
        recorded_by: row.try_get("recorded_by")?,
        report: row.try_get("report")?,
    })
}

pub(super) fn audit(row: &PgRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        hash: row.try_get("hash")?,
    })
}

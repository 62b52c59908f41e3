//! [`MeteredStore`]: any [`Store`] with every call timed, so slow storage
//! shows on the metrics before it shows as timeouts:
//! `castellan_store_operation_duration_seconds{op}` (a histogram; `op` is
//! the trait method's name) and `castellan_store_errors_total{op}`.

use crate::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, Change, ClientRecord, DecisionQuery, DecisionRecord,
    HeartbeatRecord, JoinTokenRecord, KeyRecord, NewAuditEvent, Notice, PolicyVersionRecord, ProbeRunRecord, Redeemed,
    RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord, Store, StoreResult, UserRecord, WorkloadRecord,
};
use castellan_core::UnixTime;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Wraps a store and times each call.
#[derive(Debug, Clone)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// Times every call to `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

/// Runs `call`, recording how long it took under `op` (and counting a failure).
async fn timed<T>(op: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!("castellan_store_operation_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!("castellan_store_errors_total", "op" => op).increment(1);
    }
    result
}

#[async_trait::async_trait]
impl Store for MeteredStore {
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        timed("get_meta", self.inner.get_meta(key)).await
    }
    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String> {
        timed("init_meta", self.inner.init_meta(key, value)).await
    }
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        timed("insert_client", self.inner.insert_client(client)).await
    }
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        timed("get_client", self.inner.get_client(client_id)).await
    }
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        timed("list_clients", self.inner.list_clients()).await
    }
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        timed("delete_client", self.inner.delete_client(client_id)).await
    }
    async fn set_client_secret(&self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool> {
        timed(
            "set_client_secret",
            self.inner.set_client_secret(client_id, secret_hash),
        )
        .await
    }
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        timed("list_keys", self.inner.list_keys()).await
    }
    async fn write_keys(&self, upserts: &[KeyRecord], deletes: &[String]) -> StoreResult<()> {
        timed("write_keys", self.inner.write_keys(upserts, deletes)).await
    }
    async fn append_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        not_before: UnixTime,
        created_at: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<RevocationEvent> {
        timed(
            "append_revocation",
            self.inner
                .append_revocation(kind, value, not_before, created_at, expires_at),
        )
        .await
    }
    async fn revocations_since(&self, after: i64, limit: u32) -> StoreResult<Vec<RevocationEvent>> {
        timed("revocations_since", self.inner.revocations_since(after, limit)).await
    }
    async fn find_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: UnixTime,
    ) -> StoreResult<Option<RevocationEvent>> {
        timed("find_revocation", self.inner.find_revocation(kind, value, now)).await
    }
    async fn find_revocations(
        &self,
        wanted: &[(RevocationKind, &str)],
        now: UnixTime,
    ) -> StoreResult<Vec<Option<RevocationEvent>>> {
        timed("find_revocations", self.inner.find_revocations(wanted, now)).await
    }
    async fn latest_revocation_seq(&self) -> StoreResult<i64> {
        timed("latest_revocation_seq", self.inner.latest_revocation_seq()).await
    }
    async fn purge_revocations(&self, now: UnixTime) -> StoreResult<u64> {
        timed("purge_revocations", self.inner.purge_revocations(now)).await
    }
    async fn record_jti(&self, client_id: &str, jti: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        timed("record_jti", self.inner.record_jti(client_id, jti, expires_at, now)).await
    }
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        timed("insert_user", self.inner.insert_user(user)).await
    }
    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        timed("get_user", self.inner.get_user(user_id)).await
    }
    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        timed("get_user_by_name", self.inner.get_user_by_name(username)).await
    }
    async fn get_user_by_federated(&self, issuer: &str, subject: &str) -> StoreResult<Option<UserRecord>> {
        timed(
            "get_user_by_federated",
            self.inner.get_user_by_federated(issuer, subject),
        )
        .await
    }
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        timed("list_users", self.inner.list_users()).await
    }
    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        timed("delete_user", self.inner.delete_user(user_id)).await
    }
    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<bool> {
        timed(
            "set_user_password",
            self.inner.set_user_password(user_id, password_hash),
        )
        .await
    }
    async fn set_user_suspended(&self, user_id: &str, suspended: bool) -> StoreResult<bool> {
        timed("set_user_suspended", self.inner.set_user_suspended(user_id, suspended)).await
    }
    async fn begin_session(&self, session: &SessionRecord, code: &AuthCodeRecord) -> StoreResult<()> {
        timed("begin_session", self.inner.begin_session(session, code)).await
    }
    async fn get_session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        timed("get_session", self.inner.get_session(sid)).await
    }
    async fn list_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<SessionRecord>> {
        timed("list_sessions", self.inner.list_sessions(user_id, now)).await
    }
    async fn end_session(&self, sid: &str, now: UnixTime) -> StoreResult<bool> {
        timed("end_session", self.inner.end_session(sid, now)).await
    }
    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: UnixTime) -> StoreResult<Vec<String>> {
        timed("end_user_sessions", self.inner.end_user_sessions(user_id, keep, now)).await
    }
    async fn redeem_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<AuthCodeRecord>> {
        timed("redeem_code", self.inner.redeem_code(code_hash, now)).await
    }
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord, now: UnixTime) -> StoreResult<()> {
        timed("insert_refresh_token", self.inner.insert_refresh_token(token, now)).await
    }
    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>> {
        timed("get_refresh_token", self.inner.get_refresh_token(token_hash)).await
    }
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StoreResult<Redeemed<RefreshTokenRecord>> {
        timed(
            "rotate_refresh_token",
            self.inner.rotate_refresh_token(old_hash, new, now),
        )
        .await
    }
    async fn purge_grants(&self, now: UnixTime) -> StoreResult<u64> {
        timed("purge_grants", self.inner.purge_grants(now)).await
    }
    async fn list_cas(&self) -> StoreResult<Vec<CaRecord>> {
        timed("list_cas", self.inner.list_cas()).await
    }
    async fn write_cas(&self, upserts: &[CaRecord], deletes: &[String]) -> StoreResult<()> {
        timed("write_cas", self.inner.write_cas(upserts, deletes)).await
    }
    async fn insert_workload(&self, w: &WorkloadRecord) -> StoreResult<()> {
        timed("insert_workload", self.inner.insert_workload(w)).await
    }
    async fn get_workload(&self, spiffe_id: &str) -> StoreResult<Option<WorkloadRecord>> {
        timed("get_workload", self.inner.get_workload(spiffe_id)).await
    }
    async fn list_workloads(&self) -> StoreResult<Vec<WorkloadRecord>> {
        timed("list_workloads", self.inner.list_workloads()).await
    }
    async fn delete_workload(&self, spiffe_id: &str) -> StoreResult<bool> {
        timed("delete_workload", self.inner.delete_workload(spiffe_id)).await
    }
    async fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        timed("insert_join_token", self.inner.insert_join_token(t)).await
    }
    async fn redeem_join_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<JoinTokenRecord>> {
        timed("redeem_join_token", self.inner.redeem_join_token(token_hash, now)).await
    }
    async fn append_policy_version(
        &self,
        service: &str,
        policies: &str,
        schema: Option<&str>,
        created_at: UnixTime,
        created_by: &str,
        note: Option<&str>,
    ) -> StoreResult<PolicyVersionRecord> {
        timed(
            "append_policy_version",
            self.inner
                .append_policy_version(service, policies, schema, created_at, created_by, note),
        )
        .await
    }
    async fn get_policy_version(
        &self,
        service: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<PolicyVersionRecord>> {
        timed("get_policy_version", self.inner.get_policy_version(service, version)).await
    }
    async fn list_policy_versions(&self, service: &str) -> StoreResult<Vec<PolicyVersionRecord>> {
        timed("list_policy_versions", self.inner.list_policy_versions(service)).await
    }
    async fn list_policy_services(&self) -> StoreResult<Vec<(String, i64)>> {
        timed("list_policy_services", self.inner.list_policy_services()).await
    }
    async fn append_decisions(
        &self,
        reporter: &str,
        batch_id: &str,
        received_at: UnixTime,
        rows: &[DecisionRecord],
    ) -> StoreResult<bool> {
        timed(
            "append_decisions",
            self.inner.append_decisions(reporter, batch_id, received_at, rows),
        )
        .await
    }
    async fn query_decisions(&self, query: &DecisionQuery) -> StoreResult<Vec<DecisionRecord>> {
        timed("query_decisions", self.inner.query_decisions(query)).await
    }
    async fn prune_decisions(&self, before: UnixTime) -> StoreResult<u64> {
        timed("prune_decisions", self.inner.prune_decisions(before)).await
    }
    async fn append_probe_run(
        &self,
        recorded_by: &str,
        recorded_at: UnixTime,
        report: &str,
        keep: usize,
    ) -> StoreResult<ProbeRunRecord> {
        timed(
            "append_probe_run",
            self.inner.append_probe_run(recorded_by, recorded_at, report, keep),
        )
        .await
    }
    async fn list_probe_runs(&self, limit: usize) -> StoreResult<Vec<ProbeRunRecord>> {
        timed("list_probe_runs", self.inner.list_probe_runs(limit)).await
    }
    async fn append_audit(&self, event: &NewAuditEvent, chain_key: &[u8]) -> StoreResult<AuditRecord> {
        timed("append_audit", self.inner.append_audit(event, chain_key)).await
    }
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        timed("list_audit", self.inner.list_audit(query)).await
    }
    async fn acquire_lease(&self, name: &str, holder: &str, now: UnixTime, ttl: i64) -> StoreResult<bool> {
        timed("acquire_lease", self.inner.acquire_lease(name, holder, now, ttl)).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        timed("release_lease", self.inner.release_lease(name, holder)).await
    }
    async fn ping(&self) -> StoreResult<()> {
        timed("ping", self.inner.ping()).await
    }
    async fn announce(&self, change: &Change) -> StoreResult<()> {
        timed("announce", self.inner.announce(change)).await
    }
    async fn record_heartbeat(&self, hb: &HeartbeatRecord) -> StoreResult<()> {
        timed("record_heartbeat", self.inner.record_heartbeat(hb)).await
    }
    async fn list_heartbeats(&self, since: UnixTime) -> StoreResult<Vec<HeartbeatRecord>> {
        timed("list_heartbeats", self.inner.list_heartbeats(since)).await
    }
    async fn prune_heartbeats(&self, before: UnixTime) -> StoreResult<u64> {
        timed("prune_heartbeats", self.inner.prune_heartbeats(before)).await
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn subscribe(&self) -> Option<tokio::sync::mpsc::Receiver<Notice>> {
        self.inner.subscribe()
    }
}

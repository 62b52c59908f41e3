//! `castellan_store::copy::sqlite_to_postgres`: a realistic single-node store,
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! written through the `Store` trait on SQLite, copied to PostgreSQL, read
//! back through the trait and used there (numbering continues, spent values
//! stay spent, replays stay refused).

use castellan_store::audit_chain::ChainCheck;
use castellan_store::copy::{self, sqlite_to_postgres, CopyError, CopyReport};
use castellan_store::testing::fresh_postgres_database;
use castellan_store::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, ClientRecord, DecisionQuery, DecisionRecord, JoinTokenRecord,
    KeyRecord, KeyState, NewAuditEvent, PgOptions, PolicyVersionRecord, PostgresStore, ProbeRunRecord, Redeemed,
    RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord, SqliteStore, Store, UserRecord, WorkloadRecord,
};
use sqlx::ConnectOptions;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// "Now" for the data set: everything live expires well after it.
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        name: format!("{id} service"),
        secret_hash: Some(format!("hmac-of-{id}").into_bytes()),
        audiences: vec!["orders".to_owned(), "billing".to_owned()],
        scopes: vec!["read".to_owned(), "write".to_owned()],
        access_token_ttl: None,
        jwks: None,
        admin: false,
        created_at: NOW - 30 * DAY,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        public: false,
        serves: None,
        exchange_audiences: vec![],
        tls_client_auth_san_uri: None,
    }
}

fn clients() -> Vec<ClientRecord> {
    let admin = ClientRecord {
        name: "bootstrap admin".to_owned(),
        audiences: vec![],
        scopes: vec!["castellan.admin".to_owned()],
        admin: true,
        created_at: NOW - 40 * DAY,
        ..client("admin-Xy3")
    };
    let public = ClientRecord {
        secret_hash: None,
        public: true,
        redirect_uris: vec!["https://app.example/cb".to_owned(), "http://127.0.0.1:9/cb".to_owned()],
        post_logout_redirect_uris: vec!["https://app.example/bye".to_owned()],
        ..client("web")
    };
    let gateway = ClientRecord {
        access_token_ttl: Some(120),
        serves: Some("gateway".to_owned()),
        exchange_audiences: vec!["orders".to_owned()],
        ..client("gateway")
    };
    let signed = ClientRecord {
        secret_hash: None,
        jwks: Some(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB"}]}"#.to_owned()),
        ..client("batch-job")
    };
    let mtls = ClientRecord {
        secret_hash: None,
        tls_client_auth_san_uri: Some("spiffe://corp.example/billing".to_owned()),
        ..client("billing-svc")
    };
    vec![admin, public, gateway, signed, mtls, client("orders-svc")]
}

fn key(kid: &str, state: KeyState, created_at: i64) -> KeyRecord {
    KeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        state,
        // Sealed bytes, opaque to the store: every byte value, NUL included.
        private_enc: (0..=255u8).chain(kid.bytes()).collect(),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at,
        activated_at: matches!(state, KeyState::Active | KeyState::Retired).then_some(created_at + 60),
        retired_at: (state == KeyState::Retired).then_some(created_at + DAY),
        remove_at: matches!(state, KeyState::Retired | KeyState::Withdrawn).then_some(created_at + 2 * DAY),
    }
}

fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        username: username.to_owned(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$salt-{id}$hash-{id}")),
        suspended: false,
        created_at: NOW - 20 * DAY,
        federated_issuer: None,
        federated_subject: None,
    }
}

fn session(sid: &str, user_id: &str) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        user_id: user_id.to_owned(),
        client_id: "web".to_owned(),
        audience: "orders".to_owned(),
        scope: Some("openid read".to_owned()),
        auth_time: NOW - 3_600,
        created_at: NOW - 3_600,
        last_used_at: NOW - 3_600,
        expires_at: NOW + DAY,
        ended_at: None,
    }
}

fn code(s: &SessionRecord, label: &str) -> AuthCodeRecord {
    AuthCodeRecord {
        code_hash: format!("code-{label}").into_bytes(),
        client_id: s.client_id.clone(),
        redirect_uri: "https://app.example/cb".to_owned(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        sid: s.sid.clone(),
        user_id: s.user_id.clone(),
        nonce: (label != "c3").then(|| format!("nonce-{label}")),
        auth_time: s.auth_time,
        expires_at: NOW + 600,
    }
}

fn refresh(s: &SessionRecord, label: &str, created_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: format!("rt-{label}").into_bytes(),
        sid: s.sid.clone(),
        client_id: s.client_id.clone(),
        user_id: s.user_id.clone(),
        created_at,
        expires_at: NOW + 7 * DAY,
        used_at: None,
    }
}

fn ca(id: &str, state: KeyState, created_at: i64) -> CaRecord {
    CaRecord {
        ca_id: id.to_owned(),
        state,
        private_enc: vec![1, 0, 2, 0, 3],
        cert_der: vec![0x30, 0x82, 0x01, 0x0a, 0x00, 0xff],
        created_at,
        activated_at: (state == KeyState::Active).then_some(created_at),
        retired_at: None,
        remove_at: None,
    }
}

fn decision(service: &str, i: i64) -> DecisionRecord {
    let allow = i % 3 != 0;
    DecisionRecord {
        id: 0,
        service: service.to_owned(),
        time: NOW - 1_000 + i,
        principal: format!("Principal::\"user-{}\"", i % 7),
        action: "Action::\"GET\"".to_owned(),
        resource: format!("Route::\"/{service}/{i}\""),
        decision: if allow { "allow" } else { "deny" }.to_owned(),
        reason: (!allow).then(|| "no_permit".to_owned()),
        policies: if allow {
            vec!["read".to_owned(), "staff".to_owned()]
        } else {
            vec![]
        },
        errors: if i == 5 {
            vec!["policy `x` failed".to_owned()]
        } else {
            vec![]
        },
        policy_version: (i % 2 == 0).then_some(2),
        reporter: String::new(),
        received_at: 0,
    }
}

/// Rows in the big batch: more than a page (1,000) of the copy.
const BIG_BATCH: i64 = 2_345;

/// Writes the data set; returns the SQLite file.
async fn write_data_set(dir: &Path) -> PathBuf {
    let file = dir.join("castellan.db");
    let s = SqliteStore::open(&file).await.unwrap();
    for (k, v) in [
        ("master_key_check", "check-value"),
        ("bootstrap_admin", "admin-Xy3"),
        ("revocation_log_id", "log-4f2a"),
        ("secret_hash_key", "v1"),
    ] {
        s.init_meta(k, v).await.unwrap();
    }
    for c in clients() {
        s.insert_client(&c).await.unwrap();
    }
    s.write_keys(
        &[
            key("k-removed", KeyState::Removed, NOW - 9 * DAY),
            key("k-withdrawn", KeyState::Withdrawn, NOW - 8 * DAY),
            key("k-retired", KeyState::Retired, NOW - 7 * DAY),
            key("k-active", KeyState::Active, NOW - 6 * DAY),
            key("k-next", KeyState::Next, NOW - DAY),
        ],
        &[],
    )
    .await
    .unwrap();

    // Seven revocations; the two newest expire early and are purged, so
    // the highest sequence number left (5) is below the highest assigned (7).
    let kinds = [
        (RevocationKind::Session, "sid-old", NOW + DAY),
        (RevocationKind::Subject, "u-bob", NOW + DAY),
        (RevocationKind::Client, "orders-svc", NOW + DAY),
        (RevocationKind::Key, "k-withdrawn", NOW + DAY),
        (RevocationKind::Session, "sid-ended", NOW + DAY),
        (RevocationKind::Subject, "u-gone", NOW - 10),
        (RevocationKind::Client, "gone-client", NOW - 5),
    ];
    for (i, (kind, value, expires)) in kinds.into_iter().enumerate() {
        let t = NOW - 100 + i64::try_from(i).unwrap();
        s.append_revocation(kind, value, t, t, expires).await.unwrap();
    }
    assert_eq!(s.purge_revocations(NOW).await.unwrap(), 2);
    assert_eq!(s.latest_revocation_seq().await.unwrap(), 7);

    assert!(s.record_jti("batch-job", "jti-1", NOW + 300, NOW).await.unwrap());
    assert!(s.record_jti("batch-job", "jti-2", NOW + 300, NOW).await.unwrap());

    let suspended = UserRecord {
        suspended: true,
        ..user("u-bob", "bob")
    };
    let federated = UserRecord {
        password_hash: None,
        federated_issuer: Some("https://idp.example".to_owned()),
        federated_subject: Some("248289761001".to_owned()),
        ..user("u-carol", "carol")
    };
    for u in [user("u-alice", "alice"), suspended, federated] {
        s.insert_user(&u).await.unwrap();
    }

    // Alice: a live session whose refresh token rotated twice (one family),
    // and a spent code; a second session she ended; Carol: a fresh code.
    let live = session("sid-live", "u-alice");
    s.begin_session(&live, &code(&live, "c1")).await.unwrap();
    assert!(matches!(
        s.redeem_code(b"code-c1", NOW - 3_500).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    s.insert_refresh_token(&refresh(&live, "r1", NOW - 3_500), NOW - 3_500)
        .await
        .unwrap();
    let r2 = refresh(&live, "r2", NOW - 2_000);
    assert!(matches!(
        s.rotate_refresh_token(b"rt-r1", &r2, NOW - 2_000).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    let r3 = refresh(&live, "r3", NOW - 1_000);
    assert!(matches!(
        s.rotate_refresh_token(b"rt-r2", &r3, NOW - 1_000).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    let ended = session("sid-ended", "u-alice");
    s.begin_session(&ended, &code(&ended, "c2")).await.unwrap();
    s.insert_refresh_token(&refresh(&ended, "r-ended", NOW - 3_000), NOW - 3_000)
        .await
        .unwrap();
    assert!(s.end_session("sid-ended", NOW - 500).await.unwrap());
    let carol = SessionRecord {
        scope: None,
        ..session("sid-carol", "u-carol")
    };
    s.begin_session(&carol, &code(&carol, "c3")).await.unwrap();

    s.write_cas(
        &[
            ca("ca-active", KeyState::Active, NOW - 10 * DAY),
            ca("ca-next", KeyState::Next, NOW - DAY),
        ],
        &[],
    )
    .await
    .unwrap();
    for id in ["spiffe://corp.example/billing", "spiffe://corp.example/orders"] {
        s.insert_workload(&WorkloadRecord {
            spiffe_id: id.to_owned(),
            svid_ttl: 3_600,
            created_at: NOW - 5 * DAY,
        })
        .await
        .unwrap();
    }
    for (label, id) in [("jt-used", "billing"), ("jt-fresh", "orders")] {
        s.insert_join_token(&JoinTokenRecord {
            token_hash: label.as_bytes().to_vec(),
            spiffe_id: format!("spiffe://corp.example/{id}"),
            expires_at: NOW + 3_600,
        })
        .await
        .unwrap();
    }
    assert!(matches!(
        s.redeem_join_token(b"jt-used", NOW - 60).await.unwrap(),
        Redeemed::Fresh(_)
    ));

    for (service, versions) in [("orders", 3), ("billing", 2)] {
        for v in 1..=versions {
            s.append_policy_version(
                service,
                &format!("permit(principal, action, resource) when {{ {v} == {v} }};"),
                (v == 2).then_some("entity User;"),
                NOW - 1_000 + v,
                "admin-Xy3",
                (v == 3).then_some("rollback to 1"),
            )
            .await
            .unwrap();
        }
    }

    // An early batch, pruned: the highest decision id ever assigned (5 more)
    // is above the highest left.
    let early: Vec<_> = (0..5).map(|i| decision("orders", i)).collect();
    assert!(s
        .append_decisions("gate-orders", "batch-0", NOW - 50 * DAY, &early)
        .await
        .unwrap());
    let small: Vec<_> = (0..3).map(|i| decision("billing", i)).collect();
    assert!(s
        .append_decisions("gate-billing", "batch-1", NOW - 100, &small)
        .await
        .unwrap());
    let big: Vec<_> = (0..BIG_BATCH).map(|i| decision("orders", i)).collect();
    assert!(s
        .append_decisions("gate-orders", "batch-2", NOW - 50, &big)
        .await
        .unwrap());
    let late: Vec<_> = (0..4).map(|i| decision("orders", 10_000 + i)).collect();
    assert!(s
        .append_decisions("gate-orders", "batch-3", NOW - 40, &late)
        .await
        .unwrap());
    assert_eq!(s.prune_decisions(NOW - 40 * DAY).await.unwrap(), 5);
    assert!(
        !s.append_decisions("gate-orders", "batch-3", NOW, &late).await.unwrap(),
        "a replayed batch is refused on SQLite"
    );

    for i in 1..=3 {
        s.append_probe_run("admin-Xy3", NOW - 300 + i, &format!(r#"{{"run":{i}}}"#), 2)
            .await
            .unwrap();
    }
    assert!(s.acquire_lease("key-rotation", "node-a", NOW, 60).await.unwrap());
    for i in 1..=3 {
        s.append_audit(&audit_event(i), AUDIT_KEY).await.unwrap();
    }
    file
}

const AUDIT_KEY: &[u8] = b"audit chain key";

fn audit_event(i: i64) -> NewAuditEvent {
    NewAuditEvent {
        at: NOW - 100 + i,
        actor: "client:admin-Xy3".to_owned(),
        action: "client.create".to_owned(),
        target: format!("client:svc-{i}"),
        outcome: "success".to_owned(),
        detail: format!(r#"{{"i":{i}}}"#),
    }
}

/// Every audit event, after checking the chain.
async fn audit_trail(s: &dyn Store) -> Vec<AuditRecord> {
    let all = s
        .list_audit(&AuditQuery {
            after_seq: 0,
            since: None,
            actor: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let mut check = ChainCheck::new(AUDIT_KEY);
    for r in &all {
        check.check(r).unwrap();
    }
    all
}

/// Everything the trait reads back, for comparing two stores.
#[derive(Debug, PartialEq)]
struct Dump {
    meta: Vec<Option<String>>,
    clients: Vec<ClientRecord>,
    each_client: Vec<Option<ClientRecord>>,
    keys: Vec<KeyRecord>,
    revocations: Vec<RevocationEvent>,
    latest_revocation_seq: i64,
    found_revocations: Vec<Option<RevocationEvent>>,
    users: Vec<UserRecord>,
    by_id: Vec<Option<UserRecord>>,
    by_name: Vec<Option<UserRecord>>,
    federated: Option<UserRecord>,
    sessions: Vec<Option<SessionRecord>>,
    live_sessions: Vec<Vec<SessionRecord>>,
    refresh_tokens: Vec<Option<RefreshTokenRecord>>,
    cas: Vec<CaRecord>,
    workloads: Vec<WorkloadRecord>,
    each_workload: Vec<Option<WorkloadRecord>>,
    policy_services: Vec<(String, i64)>,
    policy_versions: Vec<Vec<PolicyVersionRecord>>,
    newest_policies: Vec<Option<PolicyVersionRecord>>,
    decisions: Vec<Vec<DecisionRecord>>,
    denies: Vec<DecisionRecord>,
    probe_runs: Vec<ProbeRunRecord>,
    audit: Vec<AuditRecord>,
}

async fn dump(s: &dyn Store) -> Dump {
    let mut meta = Vec::new();
    for k in [
        "master_key_check",
        "bootstrap_admin",
        "revocation_log_id",
        "secret_hash_key",
        "absent",
    ] {
        meta.push(s.get_meta(k).await.unwrap());
    }
    let clients = s.list_clients().await.unwrap();
    let mut each_client = Vec::new();
    for c in &clients {
        each_client.push(s.get_client(&c.client_id).await.unwrap());
    }
    let mut found_revocations = Vec::new();
    for (kind, value) in [
        (RevocationKind::Session, "sid-old"),
        (RevocationKind::Subject, "u-bob"),
        (RevocationKind::Client, "orders-svc"),
        (RevocationKind::Key, "k-withdrawn"),
        (RevocationKind::Subject, "u-gone"),
    ] {
        found_revocations.push(s.find_revocation(kind, value, NOW).await.unwrap());
    }
    let users = s.list_users().await.unwrap();
    let (mut by_id, mut by_name) = (Vec::new(), Vec::new());
    for u in &users {
        by_id.push(s.get_user(&u.user_id).await.unwrap());
        by_name.push(s.get_user_by_name(&u.username).await.unwrap());
    }
    let mut sessions = Vec::new();
    for sid in ["sid-live", "sid-ended", "sid-carol", "sid-none"] {
        sessions.push(s.get_session(sid).await.unwrap());
    }
    let mut live_sessions = Vec::new();
    for u in ["u-alice", "u-bob", "u-carol"] {
        live_sessions.push(s.list_sessions(u, NOW).await.unwrap());
    }
    let mut refresh_tokens = Vec::new();
    for label in ["r1", "r2", "r3", "r-ended"] {
        refresh_tokens.push(s.get_refresh_token(format!("rt-{label}").as_bytes()).await.unwrap());
    }
    let workloads = s.list_workloads().await.unwrap();
    let mut each_workload = Vec::new();
    for w in &workloads {
        each_workload.push(s.get_workload(&w.spiffe_id).await.unwrap());
    }
    let policy_services = s.list_policy_services().await.unwrap();
    let (mut policy_versions, mut newest_policies) = (Vec::new(), Vec::new());
    for (service, _) in &policy_services {
        policy_versions.push(s.list_policy_versions(service).await.unwrap());
        newest_policies.push(s.get_policy_version(service, None).await.unwrap());
    }
    let mut decisions = Vec::new();
    for service in ["orders", "billing"] {
        let q = DecisionQuery {
            service: service.to_owned(),
            limit: 100_000,
            ..DecisionQuery::default()
        };
        decisions.push(s.query_decisions(&q).await.unwrap());
    }
    let denies = s
        .query_decisions(&DecisionQuery {
            service: "orders".to_owned(),
            decision: Some("deny".to_owned()),
            principal: Some("Principal::\"user-3\"".to_owned()),
            limit: 50,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    Dump {
        meta,
        clients,
        each_client,
        keys: s.list_keys().await.unwrap(),
        revocations: s.revocations_since(0, 1_000).await.unwrap(),
        latest_revocation_seq: s.latest_revocation_seq().await.unwrap(),
        found_revocations,
        users,
        by_id,
        by_name,
        federated: s
            .get_user_by_federated("https://idp.example", "248289761001")
            .await
            .unwrap(),
        sessions,
        live_sessions,
        refresh_tokens,
        cas: s.list_cas().await.unwrap(),
        workloads,
        each_workload,
        policy_services,
        policy_versions,
        newest_policies,
        decisions,
        denies,
        probe_runs: s.list_probe_runs(100).await.unwrap(),
        audit: audit_trail(s).await,
    }
}

/// Copies, collecting the progress calls.
async fn copy_collecting(file: &Path, url: &str) -> (Result<CopyReport, CopyError>, Vec<(String, u64)>) {
    let mut calls = Vec::new();
    let outcome = sqlite_to_postgres(file, url, &mut |table, rows| calls.push((table.to_owned(), rows))).await;
    (outcome, calls)
}

/// Opens the SQLite store again once the copy is done: no connection may
/// be open while it runs.
async fn reopen(file: &Path) -> SqliteStore {
    SqliteStore::open(file).await.unwrap()
}

#[tokio::test]
async fn a_single_node_store_moves_to_postgres_whole() {
    let Some((url, db)) = fresh_postgres_database("copy::a_single_node_store_moves_to_postgres_whole").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = write_data_set(dir.path()).await;
    let before = dump(&reopen(&file).await).await;
    // Sanity: the data set holds what the checks below rely on.
    assert_eq!(before.clients.len(), 6);
    assert_eq!(before.keys.len(), 5);
    assert_eq!(before.revocations.len(), 5);
    assert_eq!(before.live_sessions[0].len(), 1);
    assert_eq!(before.decisions[0].len(), usize::try_from(BIG_BATCH + 4).unwrap());
    assert_eq!(before.probe_runs.len(), 2);
    assert_eq!(before.audit.len(), 3);

    // While a store has the file open (as a running authority does), the copy is refused.
    let open = reopen(&file).await;
    let _ = open.get_meta("bootstrap_admin").await.unwrap();
    let (refused, _) = copy_collecting(&file, &url).await;
    assert!(matches!(refused, Err(CopyError::SourceInUse { .. })), "{refused:?}");
    assert!(refused.unwrap_err().to_string().contains("stop it"));
    drop(open);

    let started = Instant::now();
    let (report, calls) = copy_collecting(&file, &url).await;
    let report = report.unwrap();
    eprintln!("copied {} rows in {:?}", report.total_rows(), started.elapsed());

    // The report: every table, in order, with its rows; progress heard of each.
    let tables: Vec<&str> = report.tables.iter().map(|t| t.table).collect();
    assert_eq!(tables, copy::copied_tables());
    for (table, rows) in [
        ("meta", 4),
        ("clients", 6),
        ("signing_keys", 5),
        ("revocations", 5),
        ("assertion_jtis", 2),
        ("users", 3),
        ("sessions", 3),
        ("auth_codes", 3),
        ("refresh_tokens", 3),
        ("ca_keys", 2),
        ("workloads", 2),
        ("join_tokens", 2),
        ("policy_versions", 5),
        ("decision_batches", 3),
        ("decisions", u64::try_from(3 + BIG_BATCH + 4).unwrap()),
        ("probe_runs", 2),
        ("audit_events", 3),
    ] {
        assert_eq!(report.rows(table), Some(rows), "{table}");
    }
    assert_eq!(report.rows("leases"), None);
    assert_eq!(
        report.skipped,
        vec!["castellan_schema", "sqlite_sequence", "leases", "verifier_heartbeats"]
    );
    assert_eq!(report.revocation_seq, 7);
    assert!(report.target.ends_with(&format!("/{}", db.name())), "{}", report.target);
    let finals: Vec<(&str, u64)> = report.tables.iter().map(|t| (t.table, t.rows)).collect();
    let heard: Vec<(&str, u64)> = calls.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(heard, finals, "one progress call per table, with its total");

    // Field by field, through the trait: PostgreSQL reads what SQLite reads.
    let pg = PostgresStore::connect(&url, PgOptions::default()).await.unwrap();
    let after = dump(&pg).await;
    assert_eq!(after, before);
    // And the source is unchanged.
    let sqlite = reopen(&file).await;
    assert_eq!(dump(&sqlite).await, before);

    // Numbering continues past what SQLite ever assigned, purged rows included.
    let next = pg
        .append_revocation(RevocationKind::Session, "sid-live", NOW, NOW, NOW + DAY)
        .await
        .unwrap();
    assert_eq!(next.seq, 8);
    assert_eq!(pg.latest_revocation_seq().await.unwrap(), 8);
    for (service, version) in [("orders", 4), ("billing", 3), ("new-service", 1)] {
        let v = pg
            .append_policy_version(
                service,
                "permit(principal, action, resource);",
                None,
                NOW,
                "admin-Xy3",
                None,
            )
            .await
            .unwrap();
        assert_eq!(v.version, version, "{service}");
    }
    let probe = pg.append_probe_run("admin-Xy3", NOW, "{}", 10).await.unwrap();
    assert_eq!(probe.id, 4);
    // The audit chain goes on from the copied head, and still verifies.
    let next = pg.append_audit(&audit_event(4), AUDIT_KEY).await.unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(audit_trail(&pg).await.len(), 4);

    // Replays stay refused: decision batches, spent codes, refresh tokens,
    // join tokens, assertion ids.
    assert!(!pg
        .append_decisions("gate-orders", "batch-3", NOW, &[decision("orders", 1)])
        .await
        .unwrap());
    assert!(!pg
        .append_decisions("gate-billing", "batch-1", NOW, &[decision("billing", 1)])
        .await
        .unwrap());
    assert!(pg
        .append_decisions("gate-orders", "batch-4", NOW, &[decision("orders", 1)])
        .await
        .unwrap());
    let newest = pg
        .query_decisions(&DecisionQuery {
            service: "orders".to_owned(),
            limit: 1,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    let highest_before = before.decisions[0][0].id.max(before.decisions[1][0].id);
    assert_eq!(newest[0].id, highest_before + 1);
    assert_eq!(newest[0].reporter, "gate-orders");

    assert!(matches!(
        pg.redeem_code(b"code-c1", NOW).await.unwrap(),
        Redeemed::Replayed(_)
    ));
    let carol = session("sid-carol", "u-carol");
    let carol = SessionRecord { scope: None, ..carol };
    assert_eq!(
        pg.redeem_code(b"code-c3", NOW).await.unwrap(),
        Redeemed::Fresh(code(&carol, "c3"))
    );
    let r4 = refresh(&session("sid-live", "u-alice"), "r4", NOW);
    assert!(matches!(
        pg.rotate_refresh_token(b"rt-r2", &r4, NOW).await.unwrap(),
        Redeemed::Replayed(_)
    ));
    assert!(matches!(
        pg.rotate_refresh_token(b"rt-r3", &r4, NOW).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    assert!(matches!(
        pg.redeem_join_token(b"jt-used", NOW).await.unwrap(),
        Redeemed::Replayed(_)
    ));
    assert!(matches!(
        pg.redeem_join_token(b"jt-fresh", NOW).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    assert!(!pg.record_jti("batch-job", "jti-1", NOW + 300, NOW).await.unwrap());
    // Leases were not copied: another node may take the rotation lease at once.
    assert!(pg.acquire_lease("key-rotation", "node-b", NOW, 60).await.unwrap());

    // A second copy into the now live database is refused and changes nothing.
    let live_before = dump(&pg).await;
    drop(sqlite);
    let (again, calls) = copy_collecting(&file, &url).await;
    let err = again.unwrap_err();
    assert!(matches!(err, CopyError::TargetNotEmpty { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not empty") && msg.contains("clients") && msg.contains("meta"),
        "{msg}"
    );
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(dump(&pg).await, live_before);
    assert_eq!(pg.latest_revocation_seq().await.unwrap(), 8);

    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn an_empty_store_copies_and_numbering_starts_at_one() {
    let Some((url, db)) = fresh_postgres_database("copy::an_empty_store_copies_and_numbering_starts_at_one").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("castellan.db");
    drop(SqliteStore::open(&file).await.unwrap());
    let (report, calls) = copy_collecting(&file, &url).await;
    let report = report.unwrap();
    assert_eq!(report.total_rows(), 0);
    assert_eq!(report.revocation_seq, 0);
    assert_eq!(calls.len(), copy::copied_tables().len());
    // Still empty, so a copy may fill it again (nothing else counts as data).
    let pg = PostgresStore::connect(&url, PgOptions::default()).await.unwrap();
    let e = pg
        .append_revocation(RevocationKind::Subject, "u", NOW, NOW, NOW + 1)
        .await
        .unwrap();
    assert_eq!(e.seq, 1);
    assert!(pg.append_decisions("r", "b", NOW, &[decision("s", 1)]).await.unwrap());
    let rows = pg
        .query_decisions(&DecisionQuery {
            service: "s".to_owned(),
            limit: 5,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows[0].id, 1);
    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_target_kept_locked_by_a_writer_is_refused_in_time() {
    let Some((url, db)) = fresh_postgres_database("copy::a_target_kept_locked_by_a_writer_is_refused_in_time").await
    else {
        return;
    };
    drop(PostgresStore::connect(&url, PgOptions::default()).await.unwrap());
    // Another session is writing (a node starting up, say) and has not committed.
    let mut other = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut writing = sqlx::Connection::begin(&mut other).await.unwrap();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('master_key_check', 'other')")
        .execute(&mut *writing)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("castellan.db");
    drop(SqliteStore::open(&file).await.unwrap());
    let started = Instant::now();
    let err = sqlite_to_postgres(&file, &url, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, CopyError::TargetBusy { .. }), "{err:?}");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    writing.rollback().await.unwrap();
    sqlx::Connection::close(other).await.unwrap();
    // Once the writer is gone, the copy goes through.
    sqlite_to_postgres(&file, &url, &mut |_, _| {}).await.unwrap();
    db.drop_database().await.unwrap();
}

/// Sets the SQLite store's recorded schema version (as if older or newer).
async fn set_schema_version(file: &Path, version: i64) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .connect()
        .await
        .unwrap();
    sqlx::query("DELETE FROM castellan_schema")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO castellan_schema (version) VALUES (?)")
        .bind(version)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
}

#[tokio::test]
async fn only_a_castellan_store_at_this_schema_version_is_copied() {
    // None of these reach the target: the URL names nothing.
    let url = "postgres://castellan@127.0.0.1:1/nowhere";
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.db");
    let err = sqlite_to_postgres(&missing, url, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, CopyError::SourceMissing { .. }), "{err:?}");
    assert!(!missing.exists(), "the copy never creates the source");

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = sqlite_to_postgres(&empty, url, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, CopyError::NotAStore { .. }), "{err:?}");

    let text = dir.path().join("text.db");
    std::fs::write(
        &text,
        "not a database, just some text that is long enough to have a header".repeat(20),
    )
    .unwrap();
    let err = sqlite_to_postgres(&text, url, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, CopyError::NotAStore { .. }), "{err:?}");

    let file = dir.path().join("castellan.db");
    drop(SqliteStore::open(&file).await.unwrap());
    set_schema_version(&file, 3).await;
    let err = sqlite_to_postgres(&file, url, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, CopyError::SourceSchemaTooOld { found: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("castellan serve"), "{err}");
    set_schema_version(&file, 999).await;
    let err = sqlite_to_postgres(&file, url, &mut |_, _| {}).await.unwrap_err();
    assert!(
        matches!(err, CopyError::SourceSchemaTooNew { found: 999, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_target_password_never_shows_in_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("castellan.db");
    drop(SqliteStore::open(&file).await.unwrap());
    for (url, secrets) in [
        (
            "postgres://castellan:Sup3r-S3cret-pw@127.0.0.1:1/auth",
            vec!["Sup3r-S3cret-pw"],
        ),
        (
            "postgresql://castellan:p%40ss%2Fw0rd-Secret@127.0.0.1:1/auth?sslmode=disable",
            vec!["p%40ss%2Fw0rd-Secret", "p@ss/w0rd-Secret"],
        ),
        (
            "postgres://127.0.0.1:1/auth?user=castellan&password=Query-S3cret-pw",
            vec!["Query-S3cret-pw"],
        ),
    ] {
        let err = sqlite_to_postgres(&file, url, &mut |_, _| {}).await.unwrap_err();
        assert!(matches!(err, CopyError::TargetConnect { .. }), "{err:?}");
        let shown = format!("{err} / {err:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("castellan@127.0.0.1:1/auth"), "{shown}");
    }

    // And from a real server, whatever it makes of the password.
    let Some((url, db)) = fresh_postgres_database("copy::the_target_password_never_shows_in_an_error").await else {
        return;
    };
    let mut with_password = url::Url::parse(&url).unwrap();
    with_password.set_password(Some("Wr0ng-S3cret-pw")).unwrap();
    let pg = PostgresStore::connect(&url, PgOptions::default()).await.unwrap();
    pg.init_meta("master_key_check", "x").await.unwrap();
    drop(pg);
    let err = sqlite_to_postgres(&file, with_password.as_str(), &mut |_, _| {})
        .await
        .unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("Wr0ng-S3cret-pw"), "{shown}");
    db.drop_database().await.unwrap();
}

//! The behaviour every `Store` backend must have. Run against SQLite and
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! PostgreSQL here; each new backend runs the same functions.

use castellan_store::audit_chain::{ChainCheck, ChainProblem};
use castellan_store::testing::fresh_postgres_database;
use castellan_store::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, Change, ClientRecord, DecisionQuery, DecisionRecord,
    HeartbeatRecord, JoinTokenRecord, KeyRecord, KeyState, NewAuditEvent, Notice, PgOptions, PostgresStore, Redeemed,
    RefreshTokenRecord, RevocationKind, SessionRecord, SqliteStore, Store, StoreError, UserRecord, WorkloadRecord,
};
use std::sync::Arc;

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        name: format!("{id} service"),
        secret_hash: Some(vec![1, 2, 3]),
        audiences: vec!["orders".to_owned()],
        scopes: vec!["read".to_owned()],
        access_token_ttl: Some(60),
        jwks: None,
        admin: false,
        created_at: 1_000,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        public: false,
        serves: None,
        exchange_audiences: vec![],
        tls_client_auth_san_uri: None,
    }
}

fn key(kid: &str, state: KeyState, created_at: i64) -> KeyRecord {
    KeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        state,
        private_enc: vec![9; 40],
        public_jwk: "{}".to_owned(),
        created_at,
        activated_at: None,
        retired_at: None,
        remove_at: None,
    }
}

async fn clients_round_trip(store: &dyn Store) {
    store.insert_client(&client("a")).await.unwrap();
    let err = store.insert_client(&client("a")).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(store.get_client("a").await.unwrap(), Some(client("a")));
    assert_eq!(store.get_client("missing").await.unwrap(), None);
    assert!(store.set_client_secret("a", &[7; 32]).await.unwrap());
    assert!(!store.set_client_secret("missing", &[7; 32]).await.unwrap());
    assert_eq!(
        store.get_client("a").await.unwrap().unwrap().secret_hash,
        Some(vec![7; 32])
    );
    store.insert_client(&client("b")).await.unwrap();
    assert_eq!(store.list_clients().await.unwrap().len(), 2);
    assert!(store.delete_client("a").await.unwrap());
    assert!(!store.delete_client("a").await.unwrap());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

async fn keys_transition_atomically(store: &dyn Store) {
    store
        .write_keys(&[key("k1", KeyState::Active, 1), key("k2", KeyState::Next, 2)], &[])
        .await
        .unwrap();
    let mut k1 = key("k1", KeyState::Retired, 1);
    k1.retired_at = Some(10);
    k1.remove_at = Some(100);
    let mut k2 = key("k2", KeyState::Active, 2);
    k2.activated_at = Some(10);
    store
        .write_keys(&[k1.clone(), k2.clone(), key("k3", KeyState::Next, 10)], &[])
        .await
        .unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys, vec![k1, k2, key("k3", KeyState::Next, 10)]);
    store.write_keys(&[], &["k1".to_owned()]).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

async fn revocation_log_is_ordered_and_expires(store: &dyn Store) {
    assert_eq!(store.latest_revocation_seq().await.unwrap(), 0);
    let a = store
        .append_revocation(RevocationKind::Session, "s1", 5, 5, 50)
        .await
        .unwrap();
    let b = store
        .append_revocation(RevocationKind::Subject, "u1", 6, 6, 60)
        .await
        .unwrap();
    let c = store
        .append_revocation(RevocationKind::Client, "c1", 7, 7, 70)
        .await
        .unwrap();
    assert!(a.seq < b.seq && b.seq < c.seq);
    let since = store.revocations_since(a.seq, 10).await.unwrap();
    assert_eq!(since, vec![b.clone(), c.clone()]);
    assert_eq!(store.revocations_since(0, 1).await.unwrap(), vec![a.clone()]);
    assert_eq!(
        store.find_revocation(RevocationKind::Session, "s1", 10).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.find_revocation(RevocationKind::Session, "s1", 51).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_revocation(RevocationKind::Subject, "s1", 10).await.unwrap(),
        None
    );
    assert_eq!(store.latest_revocation_seq().await.unwrap(), c.seq);
    assert_eq!(store.purge_revocations(55).await.unwrap(), 1);
    // Sequence numbers never go back, even after a purge.
    let d = store
        .append_revocation(RevocationKind::Key, "k", 8, 8, 80)
        .await
        .unwrap();
    assert!(d.seq > c.seq);
    assert_eq!(store.latest_revocation_seq().await.unwrap(), d.seq);
}

async fn jti_replay_is_detected(store: &dyn Store) {
    assert!(store.record_jti("c", "j1", 100, 10).await.unwrap());
    assert!(!store.record_jti("c", "j1", 100, 20).await.unwrap());
    assert!(store.record_jti("other", "j1", 100, 20).await.unwrap());
    // Once expired, the entry is purged (the assertion's own exp stops replays then).
    assert!(store.record_jti("c", "j1", 300, 200).await.unwrap());
}

async fn meta_is_write_once(store: &dyn Store) {
    assert_eq!(store.get_meta("x").await.unwrap(), None);
    assert_eq!(store.init_meta("x", "1").await.unwrap(), "1");
    assert_eq!(store.init_meta("x", "2").await.unwrap(), "1");
}

fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        username: username.to_owned(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$salt-{id}$hash-{id}")),
        suspended: false,
        created_at: 1_000,
        federated_issuer: None,
        federated_subject: None,
    }
}

fn federated(id: &str, username: &str, issuer: &str, subject: &str) -> UserRecord {
    UserRecord {
        password_hash: None,
        federated_issuer: Some(issuer.to_owned()),
        federated_subject: Some(subject.to_owned()),
        ..user(id, username)
    }
}

fn session(sid: &str, user_id: &str, created_at: i64, expires_at: i64) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        user_id: user_id.to_owned(),
        client_id: "web".to_owned(),
        audience: "orders".to_owned(),
        scope: Some("openid read".to_owned()),
        auth_time: created_at,
        created_at,
        last_used_at: created_at,
        expires_at,
        ended_at: None,
    }
}

/// A stand-in for a keyed hash: distinct bytes per label.
fn hash(label: &str) -> Vec<u8> {
    label.as_bytes().to_vec()
}

fn code(s: &SessionRecord, label: &str, expires_at: i64) -> AuthCodeRecord {
    AuthCodeRecord {
        code_hash: hash(label),
        client_id: s.client_id.clone(),
        redirect_uri: "https://app.example/cb".to_owned(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        sid: s.sid.clone(),
        user_id: s.user_id.clone(),
        nonce: Some(format!("nonce-{label}")),
        auth_time: s.auth_time,
        expires_at,
    }
}

fn refresh(s: &SessionRecord, label: &str, created_at: i64, expires_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash(label),
        sid: s.sid.clone(),
        client_id: s.client_id.clone(),
        user_id: s.user_id.clone(),
        created_at,
        expires_at,
        used_at: None,
    }
}

fn is_conflict(err: &StoreError) -> bool {
    matches!(err, StoreError::Conflict { .. })
}

async fn client_flow_fields_round_trip(store: &dyn Store) {
    let mut c = client("browser-app");
    c.secret_hash = None;
    c.public = true;
    c.redirect_uris = vec![
        "https://app.example/cb".to_owned(),
        "http://127.0.0.1:8080/cb".to_owned(),
    ];
    c.post_logout_redirect_uris = vec!["https://app.example/bye".to_owned()];
    store.insert_client(&c).await.unwrap();
    assert_eq!(store.get_client("browser-app").await.unwrap(), Some(c.clone()));
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed.iter().find(|x| x.client_id == "browser-app"), Some(&c));
    // A confidential client keeps the defaults.
    store.insert_client(&client("backend-app")).await.unwrap();
    let back = store.get_client("backend-app").await.unwrap().unwrap();
    assert!(!back.public);
    assert!(back.redirect_uris.is_empty() && back.post_logout_redirect_uris.is_empty());
}

async fn users_round_trip(store: &dyn Store) {
    let alice = user("u-alice", "alice");
    let bob = user("u-bob", "bob");
    let fed = federated("u-fed", "fed-carol", "https://idp.example", "carol-1");
    store.insert_user(&bob).await.unwrap();
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&fed).await.unwrap();
    // Several people without an upstream identity do not collide on (NULL, NULL).
    store.insert_user(&user("u-dave", "dave")).await.unwrap();

    // Duplicate username under a new id.
    let err = store.insert_user(&user("u-alice-2", "alice")).await.unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    // Duplicate upstream identity under a new id and name.
    let err = store
        .insert_user(&federated("u-fed-2", "fed-carol-2", "https://idp.example", "carol-1"))
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    // Duplicate id.
    let err = store.insert_user(&user("u-alice", "alice-again")).await.unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    // No conflict left anything behind.
    assert_eq!(store.get_user("u-alice-2").await.unwrap(), None);
    assert_eq!(store.get_user("u-fed-2").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("alice-again").await.unwrap(), None);
    // Same issuer, another subject is someone else.
    let other = federated("u-fed-3", "fed-erin", "https://idp.example", "erin-1");
    store.insert_user(&other).await.unwrap();

    assert_eq!(store.get_user("u-alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.get_user("missing").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(store.get_user_by_name("missing").await.unwrap(), None);
    assert_eq!(
        store
            .get_user_by_federated("https://idp.example", "carol-1")
            .await
            .unwrap(),
        Some(fed.clone())
    );
    assert_eq!(
        store
            .get_user_by_federated("https://idp.example", "erin-1")
            .await
            .unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        store
            .get_user_by_federated("https://other.example", "carol-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_user_by_federated("https://idp.example", "nobody")
            .await
            .unwrap(),
        None
    );

    // By username.
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.user_id.starts_with("u-"))
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "dave", "fed-carol", "fed-erin"]);

    assert!(store.set_user_password("u-alice", "$argon2id$new").await.unwrap());
    assert!(!store.set_user_password("missing", "$argon2id$new").await.unwrap());
    assert_eq!(
        store
            .get_user("u-alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("$argon2id$new")
    );
    // A federated-only person may be given a password.
    assert!(store.set_user_password("u-fed", "$argon2id$fed").await.unwrap());
    assert_eq!(
        store.get_user("u-fed").await.unwrap().unwrap().password_hash.as_deref(),
        Some("$argon2id$fed")
    );

    assert!(store.set_user_suspended("u-bob", true).await.unwrap());
    assert!(store.get_user("u-bob").await.unwrap().unwrap().suspended);
    assert!(store.set_user_suspended("u-bob", false).await.unwrap());
    assert!(!store.get_user("u-bob").await.unwrap().unwrap().suspended);
    assert!(!store.set_user_suspended("missing", true).await.unwrap());
    assert_eq!(store.get_user("missing").await.unwrap(), None);

    assert!(store.delete_user("u-dave").await.unwrap());
    assert!(!store.delete_user("u-dave").await.unwrap());
    assert!(!store.delete_user("missing").await.unwrap());
    assert_eq!(store.get_user("u-dave").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("dave").await.unwrap(), None);
    // The name is free again.
    store.insert_user(&user("u-dave-2", "dave")).await.unwrap();
}

async fn delete_user_cascades(store: &dyn Store) {
    let now = 2_000;
    store.insert_user(&user("del-gone", "del-gone")).await.unwrap();
    store.insert_user(&user("del-kept", "del-kept")).await.unwrap();
    let s1 = session("del-s1", "del-gone", now, now + 3_600);
    let s2 = session("del-s2", "del-gone", now + 1, now + 3_600);
    let kept = session("del-s3", "del-kept", now, now + 3_600);
    store.begin_session(&s1, &code(&s1, "del-c1", now + 60)).await.unwrap();
    store.begin_session(&s2, &code(&s2, "del-c2", now + 60)).await.unwrap();
    store
        .begin_session(&kept, &code(&kept, "del-c3", now + 60))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&s1, "del-r1", now, now + 600), now)
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&s2, "del-r2", now, now + 600), now)
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&kept, "del-r3", now, now + 600), now)
        .await
        .unwrap();

    assert!(store.delete_user("del-gone").await.unwrap());
    assert_eq!(store.get_user("del-gone").await.unwrap(), None);
    for sid in ["del-s1", "del-s2"] {
        assert_eq!(store.get_session(sid).await.unwrap(), None, "{sid}");
    }
    assert!(store.list_sessions("del-gone", now).await.unwrap().is_empty());
    for label in ["del-r1", "del-r2"] {
        assert_eq!(store.get_refresh_token(&hash(label)).await.unwrap(), None, "{label}");
    }
    for label in ["del-c1", "del-c2"] {
        assert_eq!(
            store.redeem_code(&hash(label), now).await.unwrap(),
            Redeemed::Unknown,
            "{label}"
        );
    }
    // Someone else's grants are untouched.
    assert_eq!(store.get_session("del-s3").await.unwrap(), Some(kept.clone()));
    assert!(store.get_refresh_token(&hash("del-r3")).await.unwrap().is_some());
    assert!(matches!(
        store.redeem_code(&hash("del-c3"), now).await.unwrap(),
        Redeemed::Fresh(_)
    ));
}

async fn sessions_begin_atomically(store: &dyn Store) {
    let now = 3_000;
    let s = session("bs-s1", "bs-user", now, now + 3_600);
    let c = code(&s, "bs-c1", now + 60);
    store.begin_session(&s, &c).await.unwrap();
    assert_eq!(store.get_session("bs-s1").await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session("missing").await.unwrap(), None);

    // The sid is taken: neither the session nor its code is stored.
    let mut dup_sid = session("bs-s1", "bs-other", now + 5, now + 7_200);
    dup_sid.scope = None;
    let err = store
        .begin_session(&dup_sid, &code(&dup_sid, "bs-c2", now + 60))
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert_eq!(store.get_session("bs-s1").await.unwrap(), Some(s.clone()));
    assert_eq!(store.redeem_code(&hash("bs-c2"), now).await.unwrap(), Redeemed::Unknown);

    // The code hash is taken: the new session is rolled back with it, and the
    // error does not echo the hash.
    let s3 = session("bs-s3", "bs-user", now, now + 3_600);
    let err = store
        .begin_session(&s3, &code(&s3, "bs-c1", now + 60))
        .await
        .unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert!(!err.to_string().contains("bs-c1"), "{err}");
    assert!(!format!("{err:?}").contains(&format!("{:?}", hash("bs-c1"))), "{err:?}");
    assert_eq!(store.get_session("bs-s3").await.unwrap(), None);
    // The original code still belongs to the original session.
    assert_eq!(
        store.redeem_code(&hash("bs-c1"), now).await.unwrap(),
        Redeemed::Fresh(c)
    );
}

async fn sessions_list_and_end(store: &dyn Store) {
    let now = 4_000;
    let old = session("ls-old", "ls-user", now - 300, now + 3_600);
    let mid = session("ls-mid", "ls-user", now - 200, now + 3_600);
    let new = session("ls-new", "ls-user", now - 100, now + 3_600);
    let expired = session("ls-expired", "ls-user", now - 7_200, now - 1);
    let ended = session("ls-ended", "ls-user", now - 50, now + 3_600);
    let foreign = session("ls-foreign", "ls-someone-else", now - 10, now + 3_600);
    for (i, s) in [&old, &mid, &new, &expired, &ended, &foreign].into_iter().enumerate() {
        store
            .begin_session(s, &code(s, &format!("ls-c{i}"), now + 60))
            .await
            .unwrap();
    }
    assert!(store.end_session("ls-ended", now - 10).await.unwrap());

    // Live only, newest first.
    let live: Vec<String> = store
        .list_sessions("ls-user", now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, ["ls-new", "ls-mid", "ls-old"]);
    assert_eq!(store.list_sessions("ls-user", now).await.unwrap()[0], new);
    // Later, `mid` and everything else runs out.
    assert!(store.list_sessions("ls-user", now + 3_601).await.unwrap().is_empty());
    assert!(store.list_sessions("ls-nobody", now).await.unwrap().is_empty());

    // Ending one: ended_at is set, its refresh tokens go, the others stay.
    store
        .insert_refresh_token(&refresh(&mid, "ls-r-mid-1", now, now + 600), now)
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&mid, "ls-r-mid-2", now, now + 600), now)
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&old, "ls-r-old", now, now + 600), now)
        .await
        .unwrap();
    assert!(store.end_session("ls-mid", now + 5).await.unwrap());
    let ended_mid = store.get_session("ls-mid").await.unwrap().unwrap();
    assert_eq!(ended_mid.ended_at, Some(now + 5));
    assert_eq!(store.get_refresh_token(&hash("ls-r-mid-1")).await.unwrap(), None);
    assert_eq!(store.get_refresh_token(&hash("ls-r-mid-2")).await.unwrap(), None);
    assert!(store.get_refresh_token(&hash("ls-r-old")).await.unwrap().is_some());
    // Ending again does nothing and keeps the first end time.
    assert!(!store.end_session("ls-mid", now + 9).await.unwrap());
    assert_eq!(
        store.get_session("ls-mid").await.unwrap().unwrap().ended_at,
        Some(now + 5)
    );
    assert!(!store.end_session("missing", now).await.unwrap());
    let live: Vec<String> = store
        .list_sessions("ls-user", now + 5)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, ["ls-new", "ls-old"]);
    // Ending changes nothing else (last use is the refresh token stored at `now`).
    assert_eq!(
        ended_mid,
        SessionRecord {
            last_used_at: now,
            ended_at: Some(now + 5),
            ..mid.clone()
        }
    );
    assert_eq!(store.get_session("ls-foreign").await.unwrap(), Some(foreign));
}

async fn end_user_sessions_keeps_one(store: &dyn Store) {
    let now = 5_000;
    let a = session("eu-a", "eu-user", now - 30, now + 3_600);
    let b = session("eu-b", "eu-user", now - 20, now + 3_600);
    let c = session("eu-c", "eu-user", now - 10, now + 3_600);
    let done = session("eu-done", "eu-user", now - 40, now + 3_600);
    let other = session("eu-other", "eu-someone-else", now - 10, now + 3_600);
    for (i, s) in [&a, &b, &c, &done, &other].into_iter().enumerate() {
        store
            .begin_session(s, &code(s, &format!("eu-c{i}"), now + 60))
            .await
            .unwrap();
        store
            .insert_refresh_token(&refresh(s, &format!("eu-r{i}"), now, now + 600), now)
            .await
            .unwrap();
    }
    assert!(store.end_session("eu-done", now - 1).await.unwrap());

    let mut ended = store.end_user_sessions("eu-user", Some("eu-b"), now).await.unwrap();
    ended.sort();
    assert_eq!(ended, ["eu-a", "eu-c"]);
    for sid in ["eu-a", "eu-c"] {
        assert_eq!(
            store.get_session(sid).await.unwrap().unwrap().ended_at,
            Some(now),
            "{sid}"
        );
    }
    // Already ended before: not reported again, end time unchanged.
    assert_eq!(
        store.get_session("eu-done").await.unwrap().unwrap().ended_at,
        Some(now - 1)
    );
    // The kept session and its refresh token survive; the others' tokens are gone.
    assert_eq!(store.get_session("eu-b").await.unwrap().unwrap().ended_at, None);
    assert!(store.get_refresh_token(&hash("eu-r1")).await.unwrap().is_some());
    assert_eq!(store.get_refresh_token(&hash("eu-r0")).await.unwrap(), None);
    assert_eq!(store.get_refresh_token(&hash("eu-r2")).await.unwrap(), None);
    let live: Vec<String> = store
        .list_sessions("eu-user", now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, ["eu-b"]);
    // Another person's session is untouched (its refresh token marked it used at `now`).
    assert_eq!(
        store.get_session("eu-other").await.unwrap(),
        Some(SessionRecord {
            last_used_at: now,
            ..other
        })
    );
    assert!(store.get_refresh_token(&hash("eu-r4")).await.unwrap().is_some());

    // Without `keep`, the last one ends too; a second call ends nothing.
    assert_eq!(
        store.end_user_sessions("eu-user", None, now + 1).await.unwrap(),
        ["eu-b"]
    );
    assert_eq!(store.get_refresh_token(&hash("eu-r1")).await.unwrap(), None);
    assert!(store.list_sessions("eu-user", now + 1).await.unwrap().is_empty());
    assert!(store
        .end_user_sessions("eu-user", None, now + 2)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .end_user_sessions("eu-nobody", None, now)
        .await
        .unwrap()
        .is_empty());
}

async fn codes_are_single_use(store: &dyn Store) {
    let now = 6_000;
    let s = session("rc-s", "rc-user", now, now + 3_600);
    let c = code(&s, "rc-c", now + 60);
    store.begin_session(&s, &c).await.unwrap();
    assert_eq!(
        store.redeem_code(&hash("rc-c"), now).await.unwrap(),
        Redeemed::Fresh(c.clone())
    );
    assert_eq!(
        store.redeem_code(&hash("rc-c"), now + 1).await.unwrap(),
        Redeemed::Replayed(c.clone())
    );
    assert_eq!(
        store.redeem_code(&hash("rc-c"), now + 2).await.unwrap(),
        Redeemed::Replayed(c)
    );
    assert_eq!(
        store.redeem_code(&hash("rc-none"), now).await.unwrap(),
        Redeemed::Unknown
    );

    // An expired, unspent code is unknown, and stays unspendable.
    let s2 = session("rc-s2", "rc-user", now, now + 3_600);
    store
        .begin_session(&s2, &code(&s2, "rc-expired", now + 60))
        .await
        .unwrap();
    assert_eq!(
        store.redeem_code(&hash("rc-expired"), now + 61).await.unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(
        store.redeem_code(&hash("rc-expired"), now + 600).await.unwrap(),
        Redeemed::Unknown
    );
    // At its expiry instant it is already expired.
    let s3 = session("rc-s3", "rc-user", now, now + 3_600);
    store.begin_session(&s3, &code(&s3, "rc-edge", now + 60)).await.unwrap();
    assert_eq!(
        store.redeem_code(&hash("rc-edge"), now + 60).await.unwrap(),
        Redeemed::Unknown
    );
}

async fn refresh_tokens_rotate_once(store: &dyn Store) {
    let now = 7_000;
    let s = session("rt-s", "rt-user", now, now + 3_600);
    store.begin_session(&s, &code(&s, "rt-c", now + 60)).await.unwrap();
    let first = refresh(&s, "rt-1", now + 10, now + 600);
    store.insert_refresh_token(&first, now + 10).await.unwrap();
    assert_eq!(
        store.get_refresh_token(&hash("rt-1")).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_refresh_token(&hash("rt-none")).await.unwrap(), None);
    // Storing a refresh token marks the session used.
    assert_eq!(store.get_session("rt-s").await.unwrap().unwrap().last_used_at, now + 10);
    // The same hash twice is a conflict.
    let err = store.insert_refresh_token(&first, now + 11).await.unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert!(!format!("{err:?}").contains(&format!("{:?}", hash("rt-1"))), "{err:?}");

    let second = refresh(&s, "rt-2", now + 20, now + 620);
    assert_eq!(
        store
            .rotate_refresh_token(&hash("rt-1"), &second, now + 20)
            .await
            .unwrap(),
        Redeemed::Fresh(first.clone())
    );
    assert_eq!(
        store.get_refresh_token(&hash("rt-1")).await.unwrap().unwrap().used_at,
        Some(now + 20)
    );
    assert_eq!(
        store.get_refresh_token(&hash("rt-2")).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.get_session("rt-s").await.unwrap().unwrap().last_used_at, now + 20);

    // Replaying the spent token reports it (with its spend time) and stores nothing.
    let thief = refresh(&s, "rt-thief", now + 30, now + 630);
    match store
        .rotate_refresh_token(&hash("rt-1"), &thief, now + 30)
        .await
        .unwrap()
    {
        Redeemed::Replayed(old) => {
            assert_eq!(old.token_hash, hash("rt-1"));
            assert_eq!(old.sid, "rt-s");
        }
        other => panic!("expected Replayed, got {other:?}"),
    }
    assert_eq!(store.get_refresh_token(&hash("rt-thief")).await.unwrap(), None);
    assert_eq!(
        store.get_refresh_token(&hash("rt-1")).await.unwrap().unwrap().used_at,
        Some(now + 20)
    );
    assert_eq!(store.get_session("rt-s").await.unwrap().unwrap().last_used_at, now + 20);

    // An unknown token stores nothing either.
    let stray = refresh(&s, "rt-stray", now + 40, now + 640);
    assert_eq!(
        store
            .rotate_refresh_token(&hash("rt-none"), &stray, now + 40)
            .await
            .unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(store.get_refresh_token(&hash("rt-stray")).await.unwrap(), None);

    // The chain continues from the newest token.
    let third = refresh(&s, "rt-3", now + 50, now + 650);
    assert_eq!(
        store
            .rotate_refresh_token(&hash("rt-2"), &third, now + 50)
            .await
            .unwrap(),
        Redeemed::Fresh(second)
    );
    // After the session ends, the family is gone.
    assert!(store.end_session("rt-s", now + 60).await.unwrap());
    let after = refresh(&s, "rt-4", now + 70, now + 670);
    assert_eq!(
        store
            .rotate_refresh_token(&hash("rt-3"), &after, now + 70)
            .await
            .unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(store.get_refresh_token(&hash("rt-4")).await.unwrap(), None);
}

async fn purge_grants_drops_only_expired(store: &dyn Store) {
    let now = 8_000;
    // Clear what earlier checks left to expire, so the count below is ours alone.
    store.purge_grants(now).await.unwrap();
    let gone = session("pg-gone", "pg-user", now - 7_200, now - 1);
    let live = session("pg-live", "pg-user", now - 100, now + 3_600);
    let ended = session("pg-ended", "pg-user", now - 100, now + 3_600);
    store
        .begin_session(&gone, &code(&gone, "pg-c-gone", now - 7_000))
        .await
        .unwrap();
    store
        .begin_session(&live, &code(&live, "pg-c-live", now + 60))
        .await
        .unwrap();
    store
        .begin_session(&ended, &code(&ended, "pg-c-ended", now - 1))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&live, "pg-r-old", now - 700, now - 100), now - 700)
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh(&live, "pg-r-live", now - 100, now + 600), now - 100)
        .await
        .unwrap();
    // A spent but unexpired token stays: it is what detects a replay.
    store
        .rotate_refresh_token(&hash("pg-r-live"), &refresh(&live, "pg-r-next", now, now + 700), now)
        .await
        .unwrap();
    assert!(store.end_session("pg-ended", now - 50).await.unwrap());

    // Expired: codes pg-c-gone and pg-c-ended, refresh token pg-r-old, session pg-gone.
    assert_eq!(store.purge_grants(now).await.unwrap(), 4);
    assert_eq!(store.get_session("pg-gone").await.unwrap(), None);
    assert!(store.get_session("pg-live").await.unwrap().is_some());
    // An ended session is kept until it expires.
    assert!(store.get_session("pg-ended").await.unwrap().is_some());
    assert_eq!(store.get_refresh_token(&hash("pg-r-old")).await.unwrap(), None);
    assert!(store
        .get_refresh_token(&hash("pg-r-live"))
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert!(store.get_refresh_token(&hash("pg-r-next")).await.unwrap().is_some());
    assert!(matches!(
        store.redeem_code(&hash("pg-c-live"), now).await.unwrap(),
        Redeemed::Fresh(_)
    ));
    assert_eq!(
        store.redeem_code(&hash("pg-c-gone"), now).await.unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(store.purge_grants(now).await.unwrap(), 0);
}

/// How many tasks race for one value in the concurrency checks, and how many rounds.
const RACERS: usize = 16;
const ROUNDS: usize = 8;

async fn concurrent_code_redemption_has_one_winner(store: Arc<dyn Store>) {
    let now = 9_000;
    for round in 0..ROUNDS {
        let s = session(&format!("cc-s{round}"), "cc-user", now, now + 3_600);
        let label = format!("cc-c{round}");
        let c = code(&s, &label, now + 60);
        store.begin_session(&s, &c).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..RACERS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let h = hash(&label);
            tasks.spawn(async move {
                barrier.wait().await;
                store.redeem_code(&h, now).await
            });
        }
        let (mut fresh, mut replayed) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                Ok(Redeemed::Fresh(r)) => {
                    assert_eq!(r, c);
                    fresh += 1;
                }
                Ok(Redeemed::Replayed(r)) => {
                    assert_eq!(r, c);
                    replayed += 1;
                }
                Ok(Redeemed::Unknown) => panic!("round {round}: a stored code was unknown"),
                Err(e) => panic!("round {round}: a racing redemption failed instead of losing: {e}"),
            }
        }
        assert_eq!((fresh, replayed), (1, RACERS - 1), "round {round}");
    }
}

async fn concurrent_refresh_rotation_has_one_winner(store: Arc<dyn Store>) {
    let now = 10_000;
    for round in 0..ROUNDS {
        let s = session(&format!("cr-s{round}"), "cr-user", now, now + 3_600);
        store
            .begin_session(&s, &code(&s, &format!("cr-c{round}"), now + 60))
            .await
            .unwrap();
        let old = refresh(&s, &format!("cr-old{round}"), now, now + 600);
        store.insert_refresh_token(&old, now).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..RACERS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let old_hash = old.token_hash.clone();
            let next = refresh(&s, &format!("cr-new{round}-{i}"), now + 1, now + 601);
            tasks.spawn(async move {
                barrier.wait().await;
                (i, store.rotate_refresh_token(&old_hash, &next, now + 1).await)
            });
        }
        let mut winners = Vec::new();
        let mut replayed = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                (i, Ok(Redeemed::Fresh(r))) => {
                    assert_eq!(r, old);
                    winners.push(i);
                }
                (_, Ok(Redeemed::Replayed(r))) => {
                    assert_eq!(r.token_hash, old.token_hash);
                    replayed += 1;
                }
                (_, Ok(Redeemed::Unknown)) => panic!("round {round}: a stored token was unknown"),
                (_, Err(e)) => panic!("round {round}: a racing rotation failed instead of losing: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(replayed, RACERS - 1, "round {round}");
        // Only the winner's successor was stored.
        for i in 0..RACERS {
            let stored = store
                .get_refresh_token(&hash(&format!("cr-new{round}-{i}")))
                .await
                .unwrap();
            assert_eq!(stored.is_some(), winners == [i], "round {round}, racer {i}");
        }
        assert_eq!(
            store.get_refresh_token(&old.token_hash).await.unwrap().unwrap().used_at,
            Some(now + 1)
        );
    }
}

/// Every check, in order, against one empty store. A new backend calls this.
fn ca(id: &str, state: KeyState, created_at: i64) -> CaRecord {
    CaRecord {
        ca_id: id.to_owned(),
        state,
        private_enc: vec![9, 9, 9],
        cert_der: vec![0x30, 0x03, 1, 2, 3],
        created_at,
        activated_at: (state == KeyState::Active).then_some(created_at),
        retired_at: None,
        remove_at: None,
    }
}

async fn cas_transition_atomically(store: &dyn Store) {
    store
        .write_cas(&[ca("ca-a", KeyState::Active, 10), ca("ca-b", KeyState::Next, 10)], &[])
        .await
        .unwrap();
    let retired = CaRecord {
        state: KeyState::Retired,
        retired_at: Some(20),
        remove_at: Some(100),
        ..ca("ca-a", KeyState::Active, 10)
    };
    let promoted = CaRecord {
        state: KeyState::Active,
        activated_at: Some(20),
        ..ca("ca-b", KeyState::Next, 10)
    };
    store
        .write_cas(
            &[retired.clone(), promoted.clone(), ca("ca-c", KeyState::Next, 20)],
            &[],
        )
        .await
        .unwrap();
    let all = store.list_cas().await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&retired) && all.contains(&promoted));
    store.write_cas(&[], &["ca-a".to_owned()]).await.unwrap();
    assert_eq!(store.list_cas().await.unwrap().len(), 2);
    assert!(!format!("{:?}", all[0]).contains("private_enc"));
}

async fn join_tokens_are_single_use(store: &dyn Store) {
    let w = WorkloadRecord {
        spiffe_id: "spiffe://td/api".to_owned(),
        svid_ttl: 3_600,
        created_at: 5,
    };
    store.insert_workload(&w).await.unwrap();
    assert!(is_conflict(&store.insert_workload(&w).await.unwrap_err()));
    assert_eq!(store.get_workload(&w.spiffe_id).await.unwrap(), Some(w.clone()));
    assert_eq!(store.list_workloads().await.unwrap(), vec![w.clone()]);
    let t = |label: &str, expires_at| JoinTokenRecord {
        token_hash: hash(label),
        spiffe_id: w.spiffe_id.clone(),
        expires_at,
    };
    store.insert_join_token(&t("jt-1", 100)).await.unwrap();
    store.insert_join_token(&t("jt-2", 100)).await.unwrap();
    store.insert_join_token(&t("jt-old", 50)).await.unwrap();
    assert!(is_conflict(
        &store.insert_join_token(&t("jt-1", 100)).await.unwrap_err()
    ));
    assert!(
        matches!(store.redeem_join_token(&hash("jt-1"), 60).await.unwrap(), Redeemed::Fresh(r) if r.spiffe_id == w.spiffe_id)
    );
    assert!(matches!(
        store.redeem_join_token(&hash("jt-1"), 61).await.unwrap(),
        Redeemed::Replayed(_)
    ));
    assert!(matches!(
        store.redeem_join_token(&hash("jt-old"), 60).await.unwrap(),
        Redeemed::Unknown
    ));
    assert!(matches!(
        store.redeem_join_token(&hash("nope"), 60).await.unwrap(),
        Redeemed::Unknown
    ));
    assert!(store.delete_workload(&w.spiffe_id).await.unwrap());
    assert!(!store.delete_workload(&w.spiffe_id).await.unwrap());
    assert!(
        matches!(
            store.redeem_join_token(&hash("jt-2"), 60).await.unwrap(),
            Redeemed::Unknown
        ),
        "deleting a workload voids its tokens"
    );
    assert!(store.list_workloads().await.unwrap().is_empty());
}

async fn conformance(store: Arc<dyn Store>) {
    cas_transition_atomically(&*store).await;
    join_tokens_are_single_use(&*store).await;
    clients_round_trip(&*store).await;
    keys_transition_atomically(&*store).await;
    revocation_log_is_ordered_and_expires(&*store).await;
    jti_replay_is_detected(&*store).await;
    meta_is_write_once(&*store).await;
    client_flow_fields_round_trip(&*store).await;
    users_round_trip(&*store).await;
    delete_user_cascades(&*store).await;
    sessions_begin_atomically(&*store).await;
    sessions_list_and_end(&*store).await;
    end_user_sessions_keeps_one(&*store).await;
    codes_are_single_use(&*store).await;
    refresh_tokens_rotate_once(&*store).await;
    concurrent_code_redemption_has_one_winner(Arc::clone(&store)).await;
    concurrent_refresh_rotation_has_one_winner(Arc::clone(&store)).await;
    purge_grants_drops_only_expired(&*store).await;
    policy_versions_count_up_per_service(Arc::clone(&store)).await;
    decisions_append_query_and_prune(&*store).await;
    probe_runs_keep_the_newest(&*store).await;
    nul_bytes_find_nothing(&*store).await;
    leases_have_one_holder_until_they_expire(&*store).await;
    batched_revocation_lookups_match_single_ones(&*store).await;
    heartbeats_remember_the_previous_reference(&*store).await;
    audit_events_chain_and_filter(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).await.unwrap();
    conformance(Arc::new(store)).await;
}

/// The metered wrapper the authority runs with is the same store to its callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metered_sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("c.db")).await.unwrap());
    let metered = castellan_store::MeteredStore::new(store);
    assert!(!metered.is_shared());
    assert!(metered.subscribe().is_none());
    metered.ping().await.unwrap();
    conformance(Arc::new(metered)).await;
}

#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let now = 1_000;
    let mut web = client("web");
    web.public = true;
    web.redirect_uris = vec!["https://app.example/cb".to_owned()];
    web.post_logout_redirect_uris = vec!["https://app.example/bye".to_owned()];
    let alice = federated("u-alice", "alice", "https://idp.example", "a-1");
    let live = session("s-live", "u-alice", now, now + 3_600);
    let ended = session("s-ended", "u-alice", now + 1, now + 3_600);
    let spent = code(&live, "c-spent", now + 60);
    let pending = code(&ended, "c-pending", now + 60);
    let first = refresh(&live, "r-1", now, now + 600);
    let second = refresh(&live, "r-2", now + 5, now + 605);
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.insert_client(&client("a")).await.unwrap();
        store.insert_client(&web).await.unwrap();
        store.insert_user(&alice).await.unwrap();
        assert!(store.set_user_suspended("u-alice", true).await.unwrap());
        store.begin_session(&live, &spent).await.unwrap();
        store.begin_session(&ended, &pending).await.unwrap();
        assert!(matches!(
            store.redeem_code(&spent.code_hash, now).await.unwrap(),
            Redeemed::Fresh(_)
        ));
        store.insert_refresh_token(&first, now).await.unwrap();
        assert!(matches!(
            store
                .rotate_refresh_token(&first.token_hash, &second, now + 5)
                .await
                .unwrap(),
            Redeemed::Fresh(_)
        ));
        assert!(store.end_session("s-ended", now + 6).await.unwrap());
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_client("a").await.unwrap(), Some(client("a")));
    assert_eq!(store.get_client("web").await.unwrap(), Some(web));
    assert_eq!(
        store.get_user_by_federated("https://idp.example", "a-1").await.unwrap(),
        Some(UserRecord {
            suspended: true,
            ..alice
        })
    );
    assert_eq!(
        store.get_session("s-live").await.unwrap(),
        Some(SessionRecord {
            last_used_at: now + 5,
            ..live
        })
    );
    assert_eq!(
        store.get_session("s-ended").await.unwrap().unwrap().ended_at,
        Some(now + 6)
    );
    // Spent stays spent across a restart.
    assert_eq!(
        store.redeem_code(&spent.code_hash, now + 7).await.unwrap(),
        Redeemed::Replayed(spent)
    );
    assert_eq!(
        store.redeem_code(&pending.code_hash, now + 7).await.unwrap(),
        Redeemed::Fresh(pending)
    );
    assert_eq!(
        store
            .get_refresh_token(&first.token_hash)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(now + 5)
    );
    assert_eq!(store.get_refresh_token(&second.token_hash).await.unwrap(), Some(second));
}

#[test]
fn debug_output_hides_secrets() {
    let mut u = user("u-secret", "secret-person");
    u.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$U0FMVFNBTFQ$UEFTU1dPUkRIQVNI".to_owned());
    let s = session("s-secret", "u-secret", 1, 2);
    let mut c = code(&s, "unused", 2);
    c.code_hash = vec![0xC0; 32];
    let mut r = refresh(&s, "unused", 1, 2);
    r.token_hash = vec![0xE7; 32];
    r.used_at = Some(1);
    let mut cl = client("c-secret");
    cl.secret_hash = Some(vec![0xD5; 32]);

    for shown in [format!("{u:?}"), format!("{u:#?}")] {
        assert!(shown.contains("secret-person"), "{shown}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(!shown.contains("UEFTU1dPUkRIQVNI"), "{shown}");
        assert!(!shown.contains("password_hash"), "{shown}");
    }
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(shown.contains("s-secret"), "{shown}");
        assert!(!shown.contains("192"), "{shown}"); // 0xC0
        assert!(!shown.contains("code_hash"), "{shown}");
    }
    for shown in [format!("{r:?}"), format!("{r:#?}")] {
        assert!(shown.contains("s-secret"), "{shown}");
        assert!(!shown.contains("231"), "{shown}"); // 0xE7
        assert!(!shown.contains("token_hash"), "{shown}");
    }
    for shown in [format!("{cl:?}"), format!("{cl:#?}")] {
        assert!(!shown.contains("213"), "{shown}"); // 0xD5
        assert!(!shown.contains("secret_hash"), "{shown}");
    }
    // Wrapped in what the store returns, still nothing.
    let redeemed = format!("{:?}", Redeemed::Fresh(c));
    assert!(!redeemed.contains("192"), "{redeemed}");
    let replayed = format!("{:?}", Redeemed::Replayed(r));
    assert!(!replayed.contains("231"), "{replayed}");
    let found = format!("{:?}", Some(u));
    assert!(!found.contains("argon2id"), "{found}");
}

async fn policy_versions_count_up_per_service(store: Arc<dyn Store>) {
    assert_eq!(store.get_policy_version("orders", None).await.unwrap(), None);
    let v1 = store
        .append_policy_version(
            "orders",
            "permit(principal, action, resource);",
            None,
            10,
            "admin",
            None,
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let v2 = store
        .append_policy_version(
            "orders",
            "forbid(principal, action, resource);",
            Some("entity A;"),
            11,
            "admin",
            Some("tighten"),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        store
            .append_policy_version("billing", "x", None, 12, "ops", None)
            .await
            .unwrap()
            .version,
        1,
        "versions are per service"
    );
    assert_eq!(
        store.get_policy_version("orders", None).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        store.get_policy_version("orders", Some(1)).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(store.get_policy_version("orders", Some(9)).await.unwrap(), None);
    assert_eq!(store.list_policy_versions("orders").await.unwrap(), vec![v1, v2]);
    assert_eq!(
        store.list_policy_services().await.unwrap(),
        vec![("billing".to_owned(), 1), ("orders".to_owned(), 2)]
    );
    // Concurrent pushes never share a version.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.append_policy_version("race", &format!("// {i}"), None, 20, "admin", None)
                .await
                .unwrap()
                .version
        }));
    }
    let mut versions: Vec<i64> = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
}

async fn decisions_append_query_and_prune(store: &dyn Store) {
    let row = |i: i64, principal: &str, decision: &str, received_at: i64| DecisionRecord {
        id: 0,
        service: "orders".into(),
        time: 100 + i,
        principal: format!("Principal::\"{principal}\""),
        action: "Action::\"GET\"".into(),
        resource: format!("Route::\"/orders/{i}\""),
        decision: decision.into(),
        reason: (decision == "deny").then(|| "no_permit".to_owned()),
        policies: if decision == "allow" {
            vec!["read".into(), "staff".into()]
        } else {
            vec![]
        },
        errors: if i == 2 {
            vec!["error while evaluating policy `x`".into()]
        } else {
            vec![]
        },
        policy_version: Some(3),
        reporter: "gate-orders".into(),
        received_at,
    };
    assert!(store
        .query_decisions(&DecisionQuery {
            service: "orders".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    let rows = [
        row(1, "alice", "allow", 1_000),
        row(2, "bob", "deny", 1_000),
        row(3, "alice", "deny", 2_000),
        row(4, "alice", "allow", 2_000),
    ];
    assert!(store
        .append_decisions("gate-orders", "b1", 1_000, &rows[..2])
        .await
        .unwrap());
    assert!(
        !store
            .append_decisions("gate-orders", "b1", 1_000, &rows[..2])
            .await
            .unwrap(),
        "a retried batch is stored once"
    );
    assert!(store
        .append_decisions("gate-orders", "b2", 2_000, &rows[2..])
        .await
        .unwrap());
    let mut other = row(5, "alice", "allow", 2_000);
    other.service = "billing".into();
    assert!(
        store
            .append_decisions("gate-billing", "b1", 2_000, &[other])
            .await
            .unwrap(),
        "batch ids are per reporter"
    );
    assert!(store.append_decisions("gate-orders", "b3", 2_000, &[]).await.unwrap());

    let q = |f: &dyn Fn(&mut DecisionQuery)| {
        let mut q = DecisionQuery {
            service: "orders".into(),
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = store.query_decisions(&q(&|_| {})).await.unwrap();
    assert_eq!(all.len(), 4, "only the service's rows");
    assert_eq!(
        all.iter().map(|d| d.time).collect::<Vec<_>>(),
        vec![104, 103, 102, 101],
        "newest first"
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids assigned in order");
    let mut expected = rows[1].clone();
    expected.id = all[2].id;
    assert_eq!(all[2], expected, "every field round-trips");

    let alice = store
        .query_decisions(&q(&|q| q.principal = Some("Principal::\"alice\"".into())))
        .await
        .unwrap();
    assert_eq!(alice.len(), 3);
    let denies = store
        .query_decisions(&q(&|q| q.decision = Some("deny".into())))
        .await
        .unwrap();
    assert_eq!(denies.iter().map(|d| d.time).collect::<Vec<_>>(), vec![103, 102]);
    let both = store
        .query_decisions(&q(&|q| {
            q.decision = Some("allow".into());
            q.principal = Some("Principal::\"alice\"".into());
            q.since = Some(102);
        }))
        .await
        .unwrap();
    assert_eq!(both.iter().map(|d| d.time).collect::<Vec<_>>(), vec![104]);
    let first_two = store.query_decisions(&q(&|q| q.limit = 2)).await.unwrap();
    assert_eq!(first_two.len(), 2);
    let next = store
        .query_decisions(&q(&|q| {
            q.limit = 2;
            q.before_id = Some(first_two[1].id);
        }))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|d| d.time).collect::<Vec<_>>(),
        vec![102, 101],
        "paging"
    );

    assert_eq!(
        store.prune_decisions(1_500).await.unwrap(),
        2,
        "received before the cut"
    );
    let left = store.query_decisions(&q(&|_| {})).await.unwrap();
    assert_eq!(left.iter().map(|d| d.time).collect::<Vec<_>>(), vec![104, 103]);
    assert_eq!(store.prune_decisions(1_500).await.unwrap(), 0);
}

async fn probe_runs_keep_the_newest(store: &dyn Store) {
    assert!(store.list_probe_runs(10).await.unwrap().is_empty());
    let mut ids = Vec::new();
    for i in 0..5 {
        let run = store
            .append_probe_run("admin", 1_000 + i, &format!("{{\"run\":{i}}}"), 3)
            .await
            .unwrap();
        ids.push(run.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    let kept = store.list_probe_runs(10).await.unwrap();
    assert_eq!(kept.len(), 3, "only the newest three are kept");
    assert_eq!(kept[0].id, ids[4]);
    assert_eq!(kept[0].report, "{\"run\":4}");
    assert_eq!(kept[0].recorded_by, "admin");
    assert_eq!(kept[0].recorded_at, 1_004);
    assert_eq!(kept[2].id, ids[2]);
    assert_eq!(store.list_probe_runs(1).await.unwrap().len(), 1);
}

/// No stored key holds a NUL byte (PostgreSQL text cannot), so a lookup by
/// one finds nothing, on every backend, instead of failing.
async fn nul_bytes_find_nothing(store: &dyn Store) {
    let k = "nul\0key";
    assert_eq!(store.get_meta(k).await.unwrap(), None);
    assert_eq!(store.get_client(k).await.unwrap(), None);
    assert!(!store.delete_client(k).await.unwrap());
    assert!(!store.set_client_secret(k, &[1]).await.unwrap());
    assert_eq!(
        store.find_revocation(RevocationKind::Session, k, 0).await.unwrap(),
        None
    );
    assert_eq!(store.get_user(k).await.unwrap(), None);
    assert_eq!(store.get_user_by_name(k).await.unwrap(), None);
    assert_eq!(store.get_user_by_federated(k, "sub").await.unwrap(), None);
    assert_eq!(
        store.get_user_by_federated("https://idp.example", k).await.unwrap(),
        None
    );
    assert!(!store.delete_user(k).await.unwrap());
    assert!(!store.set_user_password(k, "$argon2id$x").await.unwrap());
    assert!(!store.set_user_suspended(k, true).await.unwrap());
    assert_eq!(store.get_session(k).await.unwrap(), None);
    assert!(store.list_sessions(k, 0).await.unwrap().is_empty());
    assert!(!store.end_session(k, 0).await.unwrap());
    assert!(store.end_user_sessions(k, None, 0).await.unwrap().is_empty());
    assert_eq!(store.get_workload(k).await.unwrap(), None);
    assert!(!store.delete_workload(k).await.unwrap());
    assert_eq!(store.get_policy_version(k, None).await.unwrap(), None);
    assert!(store.list_policy_versions(k).await.unwrap().is_empty());
    for q in [
        DecisionQuery {
            service: k.to_owned(),
            limit: 10,
            ..Default::default()
        },
        DecisionQuery {
            service: "orders".to_owned(),
            principal: Some(k.to_owned()),
            limit: 10,
            ..Default::default()
        },
    ] {
        assert!(store.query_decisions(&q).await.unwrap().is_empty());
    }
    // A `keep` no session can have keeps none.
    let s = session("nul-s", "nul-user", 11_000, 11_000 + 3_600);
    store.begin_session(&s, &code(&s, "nul-c", 11_060)).await.unwrap();
    assert_eq!(
        store.end_user_sessions("nul-user", Some(k), 11_001).await.unwrap(),
        ["nul-s"]
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL. Each test runs on a database of its own, created for it and
// dropped after; without a server they skip loudly (and fail under `CI`).

async fn pg_connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, PgOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance() {
    let Some((url, db)) = fresh_postgres_database("postgres_conformance").await else {
        return;
    };
    let store = pg_connect(&url).await;
    store.ping().await.unwrap();
    conformance(Arc::new(store)).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn postgres_survives_reconnect() {
    let Some((url, db)) = fresh_postgres_database("postgres_survives_reconnect").await else {
        return;
    };
    let now = 1_000;
    let mut web = client("web");
    web.public = true;
    web.redirect_uris = vec!["https://app.example/cb".to_owned()];
    web.post_logout_redirect_uris = vec!["https://app.example/bye".to_owned()];
    let alice = federated("u-alice", "alice", "https://idp.example", "a-1");
    let live = session("s-live", "u-alice", now, now + 3_600);
    let ended = session("s-ended", "u-alice", now + 1, now + 3_600);
    let spent = code(&live, "c-spent", now + 60);
    let pending = code(&ended, "c-pending", now + 60);
    let first = refresh(&live, "r-1", now, now + 600);
    let second = refresh(&live, "r-2", now + 5, now + 605);
    let revoked;
    {
        let store = pg_connect(&url).await;
        store.insert_client(&client("a")).await.unwrap();
        store.insert_client(&web).await.unwrap();
        store.insert_user(&alice).await.unwrap();
        assert!(store.set_user_suspended("u-alice", true).await.unwrap());
        store.begin_session(&live, &spent).await.unwrap();
        store.begin_session(&ended, &pending).await.unwrap();
        assert!(matches!(
            store.redeem_code(&spent.code_hash, now).await.unwrap(),
            Redeemed::Fresh(_)
        ));
        store.insert_refresh_token(&first, now).await.unwrap();
        assert!(matches!(
            store
                .rotate_refresh_token(&first.token_hash, &second, now + 5)
                .await
                .unwrap(),
            Redeemed::Fresh(_)
        ));
        assert!(store.end_session("s-ended", now + 6).await.unwrap());
        revoked = store
            .append_revocation(RevocationKind::Session, "s-ended", now + 6, now + 6, now + 60)
            .await
            .unwrap();
        // A purged event's number is not handed out again.
        store
            .append_revocation(RevocationKind::Session, "s-gone", now, now, now + 1)
            .await
            .unwrap();
        assert_eq!(store.purge_revocations(now + 2).await.unwrap(), 1);
    }
    let store = pg_connect(&url).await;
    assert_eq!(store.get_client("a").await.unwrap(), Some(client("a")));
    assert_eq!(store.get_client("web").await.unwrap(), Some(web));
    assert_eq!(
        store.get_user_by_federated("https://idp.example", "a-1").await.unwrap(),
        Some(UserRecord {
            suspended: true,
            ..alice
        })
    );
    assert_eq!(
        store.get_session("s-live").await.unwrap(),
        Some(SessionRecord {
            last_used_at: now + 5,
            ..live
        })
    );
    assert_eq!(
        store.get_session("s-ended").await.unwrap().unwrap().ended_at,
        Some(now + 6)
    );
    assert_eq!(
        store.redeem_code(&spent.code_hash, now + 7).await.unwrap(),
        Redeemed::Replayed(spent)
    );
    assert_eq!(
        store.redeem_code(&pending.code_hash, now + 7).await.unwrap(),
        Redeemed::Fresh(pending)
    );
    assert_eq!(
        store
            .get_refresh_token(&first.token_hash)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(now + 5)
    );
    assert_eq!(store.get_refresh_token(&second.token_hash).await.unwrap(), Some(second));
    assert_eq!(store.revocations_since(0, 10).await.unwrap(), vec![revoked.clone()]);
    assert_eq!(store.latest_revocation_seq().await.unwrap(), revoked.seq + 1);
    let next = store
        .append_revocation(RevocationKind::Key, "k", now, now, now + 60)
        .await
        .unwrap();
    assert_eq!(next.seq, revoked.seq + 2);
    drop(store);
    db.drop_database().await.unwrap();
}

/// Four nodes starting at once on an empty database: all come up, and the
/// schema is applied once (under sqlx's advisory lock; without it the
/// losers would fail on `CREATE TABLE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_migrate_once_when_starting_together() {
    let Some((url, db)) = fresh_postgres_database("postgres_nodes_migrate_once_when_starting_together").await else {
        return;
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (url, barrier) = (url.clone(), Arc::clone(&barrier));
        starts.spawn(async move {
            barrier.wait().await;
            PostgresStore::connect(&url, PgOptions::default()).await
        });
    }
    let mut nodes = Vec::new();
    while let Some(started) = starts.join_next().await {
        nodes.push(started.unwrap().expect("every node starts"));
    }
    let conn = sqlx::PgPool::connect(&url).await.unwrap();
    let (rows, versions, failed): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT version), COUNT(*) FILTER (WHERE NOT success) FROM _sqlx_migrations",
    )
    .fetch_one(&conn)
    .await
    .unwrap();
    // Each version once: as many rows as versions, none failed.
    assert_eq!((rows, failed), (versions, 0), "schema applied once");
    assert!(versions >= 2, "every version applied: {versions}");
    let counters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM counters")
        .fetch_one(&conn)
        .await
        .unwrap();
    assert_eq!(counters, 1, "the seeding insert ran once");
    for node in &nodes {
        assert_eq!(node.latest_revocation_seq().await.unwrap(), 0);
    }
    conn.close().await;
    drop(nodes);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn postgres_refuses_a_newer_schema() {
    let Some((url, db)) = fresh_postgres_database("postgres_refuses_a_newer_schema").await else {
        return;
    };
    let store = pg_connect(&url).await;
    drop(store);
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    match PostgresStore::connect(&url, PgOptions::default()).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 9999);
            assert!((1..9999).contains(&supported), "{supported}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn postgres_debug_hides_the_password() {
    let Some((url, db)) = fresh_postgres_database("postgres_debug_hides_the_password").await else {
        return;
    };
    // Trust authentication ignores a password it did not ask for.
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (url, secret) = match userinfo.split_once(':') {
        Some((_, password)) => (url.clone(), password.to_owned()),
        None => (
            format!("{scheme}://{userinfo}:hunter2-not-shown@{host}"),
            "hunter2-not-shown".to_owned(),
        ),
    };
    let store = pg_connect(&url).await;
    for shown in [format!("{store:?}"), format!("{store:#?}")] {
        assert!(shown.contains(db.name()), "{shown}");
        assert!(!shown.contains(&secret), "{shown}");
    }
    let err = PostgresStore::connect(&format!("{url}?sslmode=bogus"), PgOptions::default())
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(&secret), "{err}");
    drop(store);
    db.drop_database().await.unwrap();
}

/// Several nodes (each its own pool) racing for every single-use thing.
const NODES: usize = 4;

async fn pg_nodes(url: &str) -> Vec<Arc<PostgresStore>> {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let options = PgOptions {
            max_connections: 8,
            ..PgOptions::default()
        };
        nodes.push(Arc::new(PostgresStore::connect(url, options).await.unwrap()));
    }
    nodes
}

/// Runs `RACERS` copies of `race` at once, spread over the nodes, and
/// returns what each returned, in racer order.
async fn race_on_nodes<T, F, Fut>(nodes: &[Arc<PostgresStore>], race: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<PostgresStore>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let barrier = Arc::clone(&barrier);
        let run = race(i, Arc::clone(&nodes[i % nodes.len()]));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            run.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count_fresh<T>(results: &[Redeemed<T>]) -> (usize, usize, usize) {
    let fresh = results.iter().filter(|r| matches!(r, Redeemed::Fresh(_))).count();
    let replayed = results.iter().filter(|r| matches!(r, Redeemed::Replayed(_))).count();
    (fresh, replayed, results.len() - fresh - replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn postgres_nodes_spend_single_use_values_once() {
    let Some((url, db)) = fresh_postgres_database("postgres_nodes_spend_single_use_values_once").await else {
        return;
    };
    let nodes = pg_nodes(&url).await;
    let now = 20_000;
    for round in 0..ROUNDS {
        // An authorization code.
        let s = session(&format!("nc-s{round}"), "nc-user", now, now + 3_600);
        let c = code(&s, &format!("nc-c{round}"), now + 60);
        nodes[0].begin_session(&s, &c).await.unwrap();
        let h = c.code_hash.clone();
        let results = race_on_nodes(&nodes, |_, node| {
            let h = h.clone();
            async move { node.redeem_code(&h, now).await.unwrap() }
        })
        .await;
        assert_eq!(count_fresh(&results), (1, RACERS - 1, 0), "code, round {round}");

        // A refresh token: one successor stored, the winner's.
        let old = refresh(&s, &format!("nr-old{round}"), now, now + 600);
        nodes[1].insert_refresh_token(&old, now).await.unwrap();
        let old_hash = old.token_hash.clone();
        let sid = s.clone();
        let results = race_on_nodes(&nodes, |i, node| {
            let (old_hash, next) = (
                old_hash.clone(),
                refresh(&sid, &format!("nr-new{round}-{i}"), now + 1, now + 601),
            );
            async move { node.rotate_refresh_token(&old_hash, &next, now + 1).await.unwrap() }
        })
        .await;
        assert_eq!(count_fresh(&results), (1, RACERS - 1, 0), "refresh, round {round}");
        let winner = results.iter().position(|r| matches!(r, Redeemed::Fresh(_))).unwrap();
        for i in 0..RACERS {
            let stored = nodes[2]
                .get_refresh_token(&hash(&format!("nr-new{round}-{i}")))
                .await
                .unwrap();
            assert_eq!(stored.is_some(), i == winner, "round {round}, racer {i}");
        }

        // A join token.
        let spiffe_id = format!("spiffe://td/race-{round}");
        nodes[0]
            .insert_workload(&WorkloadRecord {
                spiffe_id: spiffe_id.clone(),
                svid_ttl: 60,
                created_at: now,
            })
            .await
            .unwrap();
        let jt = JoinTokenRecord {
            token_hash: hash(&format!("nj-{round}")),
            spiffe_id,
            expires_at: now + 60,
        };
        nodes[0].insert_join_token(&jt).await.unwrap();
        let h = jt.token_hash.clone();
        let results = race_on_nodes(&nodes, |_, node| {
            let h = h.clone();
            async move { node.redeem_join_token(&h, now).await.unwrap() }
        })
        .await;
        assert_eq!(count_fresh(&results), (1, RACERS - 1, 0), "join token, round {round}");

        // A client assertion's jti, new and then expired-and-reused.
        let jti = format!("jti-{round}");
        for (expires_at, at) in [(now + 100, now), (now + 1_000, now + 200)] {
            let jti = jti.clone();
            let results = race_on_nodes(&nodes, |_, node| {
                let jti = jti.clone();
                async move { node.record_jti("racer", &jti, expires_at, at).await.unwrap() }
            })
            .await;
            assert_eq!(
                results.iter().filter(|fresh| **fresh).count(),
                1,
                "jti at {at}, round {round}"
            );
        }

        // A decision shipment retried on every node at once.
        let batch = format!("batch-{round}");
        let row = DecisionRecord {
            id: 0,
            service: format!("race-{round}"),
            time: now,
            principal: "Principal::\"p\"".into(),
            action: "Action::\"GET\"".into(),
            resource: "Route::\"/\"".into(),
            decision: "allow".into(),
            reason: None,
            policies: vec!["p".into()],
            errors: vec![],
            policy_version: None,
            reporter: String::new(),
            received_at: 0,
        };
        let rows = vec![row.clone(), row.clone(), row];
        let results = race_on_nodes(&nodes, |_, node| {
            let (batch, rows) = (batch.clone(), rows.clone());
            async move { node.append_decisions("gate", &batch, now, &rows).await.unwrap() }
        })
        .await;
        assert_eq!(
            results.iter().filter(|stored| **stored).count(),
            1,
            "batch, round {round}"
        );
        let stored = nodes[3]
            .query_decisions(&DecisionQuery {
                service: format!("race-{round}"),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 3, "round {round}");
    }

    // Policy pushes from every node number 1..=RACERS.
    let mut versions = race_on_nodes(&nodes, |i, node| async move {
        node.append_policy_version("race", &format!("// {i}"), None, now, "admin", None)
            .await
            .unwrap()
            .version
    })
    .await;
    versions.sort_unstable();
    assert_eq!(versions, (1..=i64::try_from(RACERS).unwrap()).collect::<Vec<_>>());

    drop(nodes);
    db.drop_database().await.unwrap();
}

/// Refreshes racing logouts on other nodes: both sides finish (no deadlock
/// error), and a token rotated at the same time as the logout is gone after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn postgres_refresh_racing_logout_neither_fails() {
    let Some((url, db)) = fresh_postgres_database("postgres_refresh_racing_logout_neither_fails").await else {
        return;
    };
    let nodes = pg_nodes(&url).await;
    let now = 30_000;
    for round in 0..ROUNDS * 4 {
        let s = session(&format!("rl-s{round}"), "rl-user", now, now + 3_600);
        nodes[0]
            .begin_session(&s, &code(&s, &format!("rl-c{round}"), now + 60))
            .await
            .unwrap();
        let old = refresh(&s, &format!("rl-old{round}"), now, now + 600);
        nodes[0].insert_refresh_token(&old, now).await.unwrap();
        let next = refresh(&s, &format!("rl-new{round}"), now + 1, now + 601);
        let (a, b) = (Arc::clone(&nodes[1]), Arc::clone(&nodes[2]));
        let old_hash = old.token_hash.clone();
        let rotate = tokio::spawn(async move { a.rotate_refresh_token(&old_hash, &next, now + 1).await });
        let sid = s.sid.clone();
        let logout = tokio::spawn(async move { b.end_user_sessions("rl-user", None, now + 1).await.map(|_| sid) });
        rotate.await.unwrap().unwrap();
        logout.await.unwrap().unwrap();
        assert!(nodes[3].get_session(&s.sid).await.unwrap().unwrap().ended_at.is_some());
        assert_eq!(
            nodes[3]
                .get_refresh_token(&hash(&format!("rl-new{round}")))
                .await
                .unwrap(),
            None,
            "round {round}: the logout ran last, or the rotation found nothing"
        );
    }
    drop(nodes);
    db.drop_database().await.unwrap();
}

/// Writers on every node append revocations while readers tail the log:
/// numbers are distinct and contiguous, and a reader never sees a number
/// before every lower one.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn postgres_revocations_commit_in_order() {
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    const READERS: usize = 3;
    let total = i64::try_from(WRITERS * EACH).unwrap();
    let Some((url, db)) = fresh_postgres_database("postgres_revocations_commit_in_order").await else {
        return;
    };
    let nodes = pg_nodes(&url).await;
    let mut readers = Vec::new();
    for r in 0..READERS {
        let node = Arc::clone(&nodes[r % NODES]);
        readers.push(tokio::spawn(async move {
            let mut cursor = 0;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while cursor < total {
                assert!(tokio::time::Instant::now() < deadline, "reader {r} stuck at {cursor}");
                for e in node.revocations_since(cursor, 7).await.unwrap() {
                    assert_eq!(e.seq, cursor + 1, "reader {r} saw a gap after {cursor}");
                    cursor = e.seq;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let node = Arc::clone(&nodes[w % NODES]);
        writers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let e = node
                    .append_revocation(RevocationKind::Session, &format!("w{w}-{i}"), 1, 1, 100)
                    .await
                    .unwrap();
                seqs.push(e.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        let seqs = w.await.unwrap();
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "one writer's numbers rise");
        all.extend(seqs);
    }
    for r in readers {
        r.await.unwrap();
    }
    all.sort_unstable();
    assert_eq!(all, (1..=total).collect::<Vec<_>>(), "distinct and contiguous");
    assert_eq!(nodes[0].latest_revocation_seq().await.unwrap(), total);
    drop(nodes);
    db.drop_database().await.unwrap();
}

async fn leases_have_one_holder_until_they_expire(store: &dyn Store) {
    assert!(store.acquire_lease("scheduler", "node-a", 1_000, 15).await.unwrap());
    assert!(
        !store.acquire_lease("scheduler", "node-b", 1_001, 15).await.unwrap(),
        "held by a"
    );
    assert!(
        store.acquire_lease("scheduler", "node-a", 1_010, 15).await.unwrap(),
        "a renews"
    );
    assert!(
        !store.acquire_lease("scheduler", "node-b", 1_024, 15).await.unwrap(),
        "renewed until 1025"
    );
    assert!(
        store.acquire_lease("scheduler", "node-b", 1_025, 15).await.unwrap(),
        "expired: b takes over"
    );
    assert!(
        !store.acquire_lease("scheduler", "node-a", 1_026, 15).await.unwrap(),
        "a lost it"
    );
    // Another lease is independent.
    assert!(store.acquire_lease("bootstrap", "node-a", 1_026, 30).await.unwrap());
    // Releasing is the holder's alone.
    store.release_lease("scheduler", "node-a").await.unwrap();
    assert!(!store.acquire_lease("scheduler", "node-c", 1_027, 15).await.unwrap());
    store.release_lease("scheduler", "node-b").await.unwrap();
    assert!(store.acquire_lease("scheduler", "node-c", 1_027, 15).await.unwrap());
    store.release_lease("bootstrap", "node-a").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_race_for_a_lease_and_one_wins() {
    let Some((url, db)) = fresh_postgres_database("postgres_nodes_race_for_a_lease_and_one_wins").await else {
        return;
    };
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(pg_connect(&url).await),
        Arc::new(pg_connect(&url).await),
        Arc::new(pg_connect(&url).await),
    ];
    for round in 0..20_i64 {
        let mut tasks = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for j in 0..4 {
                let node = Arc::clone(node);
                let holder = format!("node-{i}-{j}");
                tasks.push(tokio::spawn(async move {
                    node.acquire_lease("race", &holder, round * 100, 50).await.unwrap()
                }));
            }
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_announced_on_one_node_reach_every_node() {
    let Some((url, db)) = fresh_postgres_database("postgres_changes_announced_on_one_node_reach_every_node").await
    else {
        return;
    };
    let a = pg_connect(&url).await;
    let b = pg_connect(&url).await;
    assert!(a.is_shared());
    let mut on_a = a.subscribe().unwrap();
    let mut on_b = b.subscribe().unwrap();
    // LISTEN is issued by the subscriber's task: wait until both listen.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let changes = [
        Change::Revocation { seq: 7 },
        Change::Keys,
        Change::Ca,
        Change::Policy {
            service: "orders".into(),
            version: 3,
        },
    ];
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    // Announce until both have heard the first one, then the rest once.
    while seen_a.is_empty() || seen_b.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no notification arrived");
        b.announce(&changes[0]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while let Ok(n) = on_a.try_recv() {
            seen_a.push(n);
        }
        while let Ok(n) = on_b.try_recv() {
            seen_b.push(n);
        }
    }
    for c in &changes[1..] {
        b.announce(c).await.unwrap();
    }
    for rx in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("a change within 5 s")
                .unwrap();
            if n != Notice::Change(changes[0].clone()) {
                got.push(n);
            }
        }
        assert_eq!(
            got,
            changes[1..].iter().cloned().map(Notice::Change).collect::<Vec<_>>()
        );
    }
    assert!(SqliteStore::open(&tempfile::tempdir().unwrap().path().join("x.db"))
        .await
        .unwrap()
        .subscribe()
        .is_none());
    drop(on_a);
    drop(on_b);
    db.drop_database().await.unwrap();
}

async fn batched_revocation_lookups_match_single_ones(store: &dyn Store) {
    let now = 50_000;
    // Two events for one subject: the newer `not_before` wins, as in find_revocation.
    store
        .append_revocation(RevocationKind::Subject, "batch-u", now - 10, now - 10, now + 100)
        .await
        .unwrap();
    store
        .append_revocation(RevocationKind::Subject, "batch-u", now - 5, now - 5, now + 100)
        .await
        .unwrap();
    store
        .append_revocation(RevocationKind::Session, "batch-s", now, now, now + 100)
        .await
        .unwrap();
    // Expired: not found.
    store
        .append_revocation(RevocationKind::Client, "batch-c", now - 100, now - 100, now - 1)
        .await
        .unwrap();
    let wanted = [
        (RevocationKind::Key, "batch-none"),
        (RevocationKind::Session, "batch-s"),
        (RevocationKind::Subject, "batch-u"),
        (RevocationKind::Client, "batch-c"),
        // Same value, other kind: kinds are not mixed up.
        (RevocationKind::Client, "batch-s"),
        (RevocationKind::Session, "nul\0byte"),
    ];
    let batch = store.find_revocations(&wanted, now).await.unwrap();
    assert_eq!(batch.len(), wanted.len());
    for ((kind, value), got) in wanted.iter().zip(&batch) {
        assert_eq!(
            got,
            &store.find_revocation(*kind, value, now).await.unwrap(),
            "{kind:?} {value}"
        );
    }
    assert_eq!(batch[2].as_ref().unwrap().not_before, now - 5);
    assert!(batch[1].is_some() && batch[0].is_none() && batch[3].is_none() && batch[4].is_none());
}

async fn heartbeats_remember_the_previous_reference(store: &dyn Store) {
    let hb = |id: &str, last_seq: i64, seen_at: i64, latest_seq: i64| HeartbeatRecord {
        verifier_id: id.into(),
        audience: "orders".into(),
        kind: Some("gate".into()),
        kids: vec!["k1".into(), "k2".into()],
        last_seq,
        transport: Some("mtls".into()),
        seen_at,
        latest_seq,
        latest_at_previous: -1, // set by the store
    };
    store.record_heartbeat(&hb("v-1", 5, 1_000, 5)).await.unwrap();
    let first = store.list_heartbeats(0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].latest_at_previous, 5, "first heartbeat: its own last_seq");
    assert_eq!(first[0].kids, vec!["k1", "k2"]);
    store.record_heartbeat(&hb("v-1", 7, 1_010, 9)).await.unwrap();
    store.record_heartbeat(&hb("v-1", 7, 1_020, 12)).await.unwrap();
    let mut other = hb("v-0", 1, 1_015, 9);
    other.kind = None;
    other.transport = None;
    store.record_heartbeat(&other).await.unwrap();
    let all = store.list_heartbeats(0).await.unwrap();
    assert_eq!(
        all.iter().map(|h| h.verifier_id.as_str()).collect::<Vec<_>>(),
        ["v-0", "v-1"]
    );
    let v1 = &all[1];
    assert_eq!(
        (v1.last_seq, v1.latest_seq, v1.latest_at_previous, v1.seen_at),
        (7, 12, 9, 1_020)
    );
    assert_eq!(all[0].kind, None);
    assert_eq!(store.list_heartbeats(1_016).await.unwrap().len(), 1);
    assert_eq!(store.prune_heartbeats(1_016).await.unwrap(), 1);
    assert_eq!(store.list_heartbeats(0).await.unwrap().len(), 1);
    store.prune_heartbeats(i64::MAX).await.unwrap();
}

const AUDIT_KEY: &[u8] = b"conformance audit key";

fn audit_event(at: i64, actor: &str, action: &str, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: "success".to_owned(),
        detail: format!(r#"{{"target":"{target}"}}"#),
    }
}

fn audit_query(after_seq: i64, since: Option<i64>, actor: Option<&str>, limit: u32) -> AuditQuery {
    AuditQuery {
        after_seq,
        since,
        actor: actor.map(str::to_owned),
        limit,
    }
}

/// The whole chain through a fresh check; the first break, if any.
async fn check_audit_chain(store: &dyn Store) -> Result<(i64, Vec<u8>), castellan_store::audit_chain::ChainBreak> {
    let mut check = ChainCheck::new(AUDIT_KEY);
    let mut after = 0;
    loop {
        let page = store.list_audit(&audit_query(after, None, None, 3)).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            check.check(r)?;
        }
    }
    let (seq, hash) = check.head().unwrap();
    Ok((seq, hash.to_vec()))
}

async fn audit_events_chain_and_filter(store: &dyn Store) {
    assert!(store
        .list_audit(&audit_query(0, None, None, 10))
        .await
        .unwrap()
        .is_empty());
    let mut stored: Vec<AuditRecord> = Vec::new();
    for i in 1..=7_i64 {
        let actor = if i % 2 == 0 { "client:even" } else { "user:odd" };
        let r = store
            .append_audit(
                &audit_event(1_000 + i, actor, "client.create", &format!("client:c{i}")),
                AUDIT_KEY,
            )
            .await
            .unwrap();
        assert_eq!(r.seq, i, "gapless from 1");
        assert_eq!(r.hash.len(), 32);
        stored.push(r);
    }
    // Read back exactly as appended, oldest first, in pages.
    assert_eq!(
        store.list_audit(&audit_query(0, None, None, 100)).await.unwrap(),
        stored
    );
    let page = store.list_audit(&audit_query(2, None, None, 3)).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
    // Filters: by actor, by time, combined with the cursor.
    let even = store
        .list_audit(&audit_query(0, None, Some("client:even"), 100))
        .await
        .unwrap();
    assert_eq!(even.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 4, 6]);
    let recent = store.list_audit(&audit_query(0, Some(1_005), None, 100)).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 6, 7]);
    let both = store
        .list_audit(&audit_query(4, Some(1_003), Some("client:even"), 100))
        .await
        .unwrap();
    assert_eq!(both.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![6]);
    assert!(store
        .list_audit(&audit_query(0, None, Some("nobody"), 100))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_audit(&audit_query(0, None, Some("bad\0actor"), 100))
        .await
        .unwrap()
        .is_empty());
    // The chain verifies, and its head is the last append.
    let (seq, hash) = check_audit_chain(store).await.unwrap();
    assert_eq!((seq, hash), (7, stored[6].hash.clone()));
    // Under another key nothing verifies.
    let mut other = ChainCheck::new(b"another key");
    let err = other.check(&stored[0]).unwrap_err();
    assert_eq!((err.seq, err.problem), (1, ChainProblem::HashMismatch));
}

/// Edits and deletions made behind the store's back (straight in the
/// database) are found, naming the first bad sequence number.
async fn audit_tampering_is_detected(store: &dyn Store, exec: impl AsyncFn(&str)) {
    for i in 1..=5_i64 {
        store
            .append_audit(
                &audit_event(2_000 + i, "client:admin", "key.rotate", &format!("key:k{i}")),
                AUDIT_KEY,
            )
            .await
            .unwrap();
    }
    assert_eq!(check_audit_chain(store).await.unwrap().0, 5);

    exec("UPDATE audit_events SET detail = '{\"target\":\"key:forged\"}' WHERE seq = 3").await;
    let err = check_audit_chain(store).await.unwrap_err();
    assert_eq!((err.seq, &err.problem), (3, &ChainProblem::HashMismatch), "{err}");

    // Put back the exact text: it verifies again (the hash covers only the stored fields).
    exec("UPDATE audit_events SET detail = '{\"target\":\"key:k3\"}' WHERE seq = 3").await;
    assert_eq!(check_audit_chain(store).await.unwrap().0, 5);

    exec("UPDATE audit_events SET actor = 'client:someone-else' WHERE seq = 4").await;
    assert_eq!(check_audit_chain(store).await.unwrap_err().seq, 4);
    exec("UPDATE audit_events SET actor = 'client:admin' WHERE seq = 4").await;

    exec("DELETE FROM audit_events WHERE seq = 2").await;
    let err = check_audit_chain(store).await.unwrap_err();
    assert_eq!(
        (err.seq, &err.problem),
        (2, &ChainProblem::Missing { next_found: 3 }),
        "{err}"
    );

    // Renumbering to close the gap breaks the hashes instead.
    // (Through negative numbers: PostgreSQL checks the key row by row.)
    exec("UPDATE audit_events SET seq = 1 - seq WHERE seq >= 3").await;
    exec("UPDATE audit_events SET seq = -seq WHERE seq < 0").await;
    assert_eq!(check_audit_chain(store).await.unwrap_err().seq, 2);
}

#[tokio::test]
async fn sqlite_audit_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    audit_tampering_is_detected(&store, async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_audit_tampering_is_detected() {
    let Some((url, db)) = fresh_postgres_database("postgres_audit_tampering_is_detected").await else {
        return;
    };
    let store = pg_connect(&url).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    audit_tampering_is_detected(&store, async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    })
    .await;
    pool.close().await;
    drop(store);
    db.drop_database().await.unwrap();
}

/// Nodes appending at once still build one chain: gapless, no forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn postgres_nodes_appending_audit_events_build_one_chain() {
    const EACH: i64 = 15;
    let Some((url, db)) = fresh_postgres_database("postgres_nodes_appending_audit_events_build_one_chain").await else {
        return;
    };
    let nodes = pg_nodes(&url).await;
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let node = Arc::clone(node);
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                node.append_audit(
                    &audit_event(i, &format!("client:node{n}"), "signin", "user:x"),
                    AUDIT_KEY,
                )
                .await
                .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let total = EACH * i64::try_from(NODES).unwrap();
    assert_eq!(check_audit_chain(&*nodes[0]).await.unwrap().0, total);
    drop(nodes);
    db.drop_database().await.unwrap();
}

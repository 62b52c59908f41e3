//! The behaviour every `Store` backend must have. Run against SQLite here;
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! each new backend runs the same functions.

use castellan_store::{ClientRecord, KeyRecord, KeyState, RevocationKind, SqliteStore, Store};

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

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).await.unwrap();
    clients_round_trip(&store).await;
    keys_transition_atomically(&store).await;
    revocation_log_is_ordered_and_expires(&store).await;
    jti_replay_is_detected(&store).await;
    meta_is_write_once(&store).await;
}

#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.insert_client(&client("a")).await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_client("a").await.unwrap(), Some(client("a")));
}

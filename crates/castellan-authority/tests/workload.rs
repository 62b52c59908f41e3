//! Workload identity through the authority's HTTP interface: registration,
//! single-use join tokens, SVID issuance from a CSR, the trust bundle, and
//! CA rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_ca::{certs_from_pem, generate_workload_key, parse_svid_peer, CaCert, SpiffeId};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

async fn register(ta: &TestAuthority, id: &str) -> (u16, Value) {
    ta.admin(Method::POST, "/workloads", Some(json!({ "spiffe_id": id })))
        .await
}

async fn svid(ta: &TestAuthority, token: &str, csr_pem: &str) -> (u16, Value) {
    let resp = ta
        .http
        .post(format!("{}/workload/v1/svid", ta.url))
        .json(&json!({"join_token": token, "csr": csr_pem}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn bundle_ids(pem: &str) -> Vec<String> {
    certs_from_pem(pem.as_bytes())
        .unwrap()
        .iter()
        .map(|c| CaCert::from_der(c).unwrap().id().to_owned())
        .collect()
}

#[tokio::test]
async fn a_registered_workload_gets_an_svid_once_per_join_token() {
    let ta = TestAuthority::start_with(|c| c.trust_domain = Some("prod.example".into())).await;
    let d = ta.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["castellan_trust_domain"], "prod.example");
    let id = "spiffe://prod.example/payments/api";
    let (status, reg) = register(&ta, id).await;
    assert_eq!(status, 201, "{reg}");
    let token = reg["join_token"].as_str().unwrap();
    let key = generate_workload_key(&SpiffeId::parse(id).unwrap()).unwrap();

    let (status, out) = svid(&ta, token, &key.csr_pem()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["spiffe_id"], id);
    let chain = certs_from_pem(out["svid_pem"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(chain.len(), 2, "leaf and issuing CA");
    assert_eq!(parse_svid_peer(&chain[0]).unwrap().as_str(), id);
    let not_after = out["not_after"].as_i64().unwrap();
    let now = ta.authority.now();
    assert!((now + 3_500..=now + 3_600).contains(&not_after), "one hour by default");
    assert_eq!(out["renew_at"].as_i64().unwrap(), now - 30 + (not_after - now + 30) / 2);
    let issuing = CaCert::from_der(&chain[1]).unwrap();
    let bundle = ta
        .http
        .get(format!("{}/ca/bundle.pem", ta.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(bundle, out["bundle_pem"].as_str().unwrap());
    let ids = bundle_ids(&bundle);
    assert_eq!(ids.len(), 2, "active and next CA are both published");
    assert!(ids.contains(&issuing.id().to_owned()));
    let spiffe: Value = ta.get_json("/ca/bundle.json").await;
    assert_eq!(spiffe["keys"].as_array().unwrap().len(), 2);
    assert_eq!(spiffe["keys"][0]["use"], "x509-svid");

    // the join token is single-use
    let (status, e) = svid(&ta, token, &key.csr_pem()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // registering again issues a new token for the same workload
    let (status, again) = register(&ta, id).await;
    assert_eq!(status, 200);
    assert_ne!(again["join_token"], reg["join_token"]);
    // a CSR naming another workload is refused, and the token is spent
    let other = generate_workload_key(&SpiffeId::parse("spiffe://prod.example/ledger").unwrap()).unwrap();
    let (status, e) = svid(&ta, again["join_token"].as_str().unwrap(), &other.csr_pem()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    // garbage CSR
    let (_, t3) = register(&ta, id).await;
    let (status, e) = svid(
        &ta,
        t3["join_token"].as_str().unwrap(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    // unknown and oversized tokens
    assert_eq!(svid(&ta, "cjt_nope", &key.csr_pem()).await.0, 400);
    assert_eq!(svid(&ta, &"x".repeat(10_000), &key.csr_pem()).await.0, 400);
}

#[tokio::test]
async fn registration_refuses_ids_outside_the_trust_domain_and_deletion_voids_tokens() {
    let ta = TestAuthority::start_with(|c| c.trust_domain = Some("prod.example".into())).await;
    for bad in [
        "spiffe://other.example/api",
        "https://prod.example/api",
        "spiffe://prod.example/a/../b",
        "spiffe://prod.example",
    ] {
        let (status, e) = register(&ta, bad).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {e}"
        );
    }
    let id = "spiffe://prod.example/orders";
    let (_, reg) = register(&ta, id).await;
    let (status, list) = ta.admin(Method::GET, "/workloads", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["workloads"][0]["spiffe_id"], id);
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let (status, _) = ta.admin(Method::DELETE, &format!("/workloads/{encoded}"), None).await;
    assert_eq!(status, 204);
    let key = generate_workload_key(&SpiffeId::parse(id).unwrap()).unwrap();
    let (status, _) = svid(&ta, reg["join_token"].as_str().unwrap(), &key.csr_pem()).await;
    assert_eq!(status, 400, "a deleted workload's join token is void");
    let (status, _) = ta.admin(Method::DELETE, &format!("/workloads/{encoded}"), None).await;
    assert_eq!(status, 404);
    // an expired join token
    let (_, reg) = register(&ta, id).await;
    ta.clock.advance(3_601);
    let (status, _) = svid(&ta, reg["join_token"].as_str().unwrap(), &key.csr_pem()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_next_ca_is_published_before_it_signs_and_the_old_one_stays_until_its_svids_expire() {
    let ta = TestAuthority::start_with(|c| {
        c.trust_domain = Some("prod.example".into());
        c.ca.rotation_interval = "1h".parse().unwrap();
        c.ca.max_svid_ttl = "1h".parse().unwrap();
    })
    .await;
    let id = "spiffe://prod.example/api";
    let key = generate_workload_key(&SpiffeId::parse(id).unwrap()).unwrap();
    let issue = || async {
        let (_, reg) = register(&ta, id).await;
        let (status, out) = svid(&ta, reg["join_token"].as_str().unwrap(), &key.csr_pem()).await;
        assert_eq!(status, 200, "{out}");
        let chain = certs_from_pem(out["svid_pem"].as_str().unwrap().as_bytes()).unwrap();
        CaCert::from_der(&chain[1]).unwrap().id().to_owned()
    };
    let first = issue().await;
    let bundle = |ta: &TestAuthority| {
        let url = format!("{}/ca/bundle.pem", ta.url);
        let http = ta.http.clone();
        async move { bundle_ids(&http.get(url).send().await.unwrap().text().await.unwrap()) }
    };
    let before = bundle(&ta).await;
    let next: Vec<String> = before.iter().filter(|i| **i != first).cloned().collect();
    assert_eq!(next.len(), 1);

    ta.clock.advance(3_601);
    ta.authority.maintain().await.unwrap();
    let second = issue().await;
    assert_eq!(second, next[0], "the published next CA signs after the rotation");
    let after = bundle(&ta).await;
    assert_eq!(after.len(), 3, "retired, active and a new next");
    assert!(after.contains(&first), "the old CA stays while its SVIDs live");

    // max_svid_ttl (1h) after the rotation, the retired CA leaves the bundle
    ta.clock.advance(3_600 + 61);
    ta.authority.maintain().await.unwrap();
    let later = bundle(&ta).await;
    assert!(!later.contains(&first), "{later:?}");
}

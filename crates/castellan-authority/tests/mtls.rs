//! The authority's mTLS listener: SVID renewal authenticated by the current
//! SVID, RFC 8705 `tls_client_auth` with a SPIFFE ID as the registered
//! subject, and certificate-bound access tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_ca::{certs_from_pem, generate_workload_key, parse_svid_peer, CaCert, SpiffeId};
use castellan_testkit::workload::TestSvid;
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

const TD: &str = "spiffe://127.0.0.1";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn renew(client: &reqwest::Client, base: &str, csr_pem: &str) -> Result<(u16, Value), reqwest::Error> {
    let resp = client
        .post(format!("{base}/workload/v1/svid/renew"))
        .json(&json!({ "csr": csr_pem }))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn token_over(client: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn discovery_advertises_the_mtls_aliases_only_when_listening() {
    let ta = TestAuthority::start_with_mtls().await;
    let d = ta.get_json("/.well-known/openid-configuration").await;
    let m = ta.mtls_url().unwrap();
    assert!(m.starts_with("https://127.0.0.1:"), "{m}");
    assert_eq!(
        d["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{m}/oauth2/token")
    );
    assert_eq!(
        d["mtls_endpoint_aliases"]["castellan_svid_renewal_endpoint"],
        format!("{m}/workload/v1/svid/renew")
    );
    assert_eq!(d["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(d["castellan_authority_spiffe_id"], format!("{TD}/castellan/authority"));
    assert!(d["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("tls_client_auth")));

    let plain = TestAuthority::start().await;
    let d = plain.get_json("/.well-known/openid-configuration").await;
    assert!(d.get("mtls_endpoint_aliases").is_none());
    assert!(!d["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("tls_client_auth")));
}

#[tokio::test]
async fn a_workload_renews_with_its_current_svid_and_only_that_way() {
    let ta = TestAuthority::start_with_mtls().await;
    let base = ta.mtls_url().unwrap();
    let authority = ta.authority_spiffe_id();
    let svid = ta.workload_svid(&format!("{TD}/payments/api")).await;
    let client = svid.mtls_client(&authority);

    // Renewal with a fresh key: same ID, new certificate, same bundle.
    let fresh = generate_workload_key(&svid.id).unwrap();
    let (status, body) = renew(&client, &base, &fresh.csr_pem()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let renewed = TestSvid::from_response(svid.id.clone(), fresh.key_pem().to_string(), &body);
    assert_eq!(parse_svid_peer(&renewed.leaf_der()).unwrap(), svid.id);
    assert_ne!(renewed.leaf_der(), svid.leaf_der());
    assert!(body["renew_at"].as_i64().unwrap() < body["not_after"].as_i64().unwrap());
    // The renewed SVID renews in turn.
    let again = generate_workload_key(&svid.id).unwrap();
    let (status, _) = renew(&renewed.mtls_client(&authority), &base, &again.csr_pem())
        .await
        .unwrap();
    assert_eq!(status, 200);

    // A CSR for another identity is refused, whatever the certificate says.
    let other = SpiffeId::parse(&format!("{TD}/payments/admin")).unwrap();
    let foreign_csr = generate_workload_key(&other).unwrap();
    let (status, body) = renew(&client, &base, &foreign_csr.csr_pem()).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");

    // Malformed bodies get precise errors, never a 5xx.
    for bad in [
        json!({}),
        json!({"csr": "nonsense"}),
        json!({"csr": fresh.csr_pem(), "x": 1}),
    ] {
        let resp = client
            .post(format!("{base}/workload/v1/svid/renew"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }

    // The plain listener has no peer identity: no renewal there.
    let resp = ta
        .http
        .post(format!("{}/workload/v1/svid/renew", ta.url))
        .json(&json!({ "csr": fresh.csr_pem() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");

    // No client certificate, or one from another CA: the handshake fails.
    let anonymous = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything))
                .with_no_client_auth(),
        )
        .build()
        .unwrap();
    assert!(renew(&anonymous, &base, &fresh.csr_pem()).await.is_err());
    let elsewhere = TestAuthority::start_with_mtls().await;
    let stranger = elsewhere.workload_svid(&format!("{TD}/payments/api")).await;
    // Same SPIFFE ID, but signed by another authority's CA.
    assert!(renew(&stranger.mtls_client(&authority), &base, &fresh.csr_pem())
        .await
        .is_err());
    // Nor does the workload accept a server that is not this authority.
    assert!(renew(&svid.mtls_client(&svid.id), &base, &fresh.csr_pem())
        .await
        .is_err());

    // A deleted workload cannot renew, even with a still-valid SVID.
    let (status, _) = ta
        .admin(
            Method::DELETE,
            &format!("/workloads/{}", urlencode(svid.id.as_str())),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = renew(&client, &base, &fresh.csr_pem()).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn renewal_survives_a_ca_rotation() {
    let ta = TestAuthority::start_with_mtls().await;
    let base = ta.mtls_url().unwrap();
    let authority = ta.authority_spiffe_id();
    let svid = ta.workload_svid(&format!("{TD}/orders/api")).await;
    let ids = |pem: &str| -> Vec<String> {
        certs_from_pem(pem.as_bytes())
            .unwrap()
            .iter()
            .map(|c| CaCert::from_der(c).unwrap().id().to_owned())
            .collect()
    };
    let before = ids(&svid.bundle_pem);
    assert_eq!(before.len(), 2, "active and next");

    // Too soon for an ordinary rotation: the next CA was published seconds
    // ago, and workloads learn it only when they renew.
    let (status, refused) = ta.admin(Method::POST, "/ca/rotate", None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error_description"].as_str().unwrap().contains("max_svid_ttl"),
        "{refused}"
    );
    // This workload got its bundle after the next CA was made: forcing is safe here.
    let (status, view) = ta.admin(Method::POST, "/ca/rotate", Some(json!({"force": true}))).await;
    assert_eq!(status, 200, "{view}");
    // The authority re-issues its own SVID from the new CA within a second;
    // the workload, holding the old bundle (which already had the new CA),
    // still renews, and learns the new bundle.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let fresh = generate_workload_key(&svid.id).unwrap();
    let (status, body) = renew(&svid.mtls_client(&authority), &base, &fresh.csr_pem())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let after = ids(body["bundle_pem"].as_str().unwrap());
    assert_eq!(after.len(), 3, "retired, active, next: {after:?}");
    for id in &before {
        assert!(after.contains(id), "the old CAs stay in the bundle");
    }
    let issuer_of = |pem: &str| {
        CaCert::from_der(&certs_from_pem(pem.as_bytes()).unwrap()[1])
            .unwrap()
            .id()
            .to_owned()
    };
    let issuer = issuer_of(body["svid_pem"].as_str().unwrap());
    assert_ne!(issuer, issuer_of(&svid.svid_pem), "signed by the new CA");
    assert!(
        before.contains(&issuer),
        "the CA that was next, already in the old bundle"
    );
}

#[tokio::test]
async fn a_client_authenticates_with_its_svid_and_gets_certificate_bound_tokens() {
    let ta = TestAuthority::start_with_mtls().await;
    let base = ta.mtls_url().unwrap();
    let authority = ta.authority_spiffe_id();
    let id = format!("{TD}/billing/worker");
    let (status, client) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "billing", "audiences": ["orders"], "tls_client_auth_san_uri": id})),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["auth_method"], "tls_client_auth");
    assert!(client.get("client_secret").is_none(), "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_owned();

    let svid = ta.workload_svid(&id).await;
    let http = svid.mtls_client(&authority);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("audience", "orders"),
    ];
    let (status, body) = token_over(&http, &base, &form).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    let thumbprint = castellan_workload::x5t_s256(&svid.leaf_der());
    assert_eq!(claims["cnf"], json!({ "x5t#S256": thumbprint }));
    assert_eq!(claims["sub"], client_id.as_str());

    // Introspection reports the binding.
    let (admin_id, admin_secret) = ta.client("introspector", &["orders"], &[]).await;
    let resp = ta
        .http
        .post(format!("{}/oauth2/introspect", ta.url))
        .basic_auth(&admin_id, Some(&admin_secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["cnf"]["x5t#S256"], thumbprint.as_str());

    // Without the certificate (plain listener) the client cannot authenticate.
    let resp = ta
        .http
        .post(format!("{}/oauth2/token", ta.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
    // Another workload's SVID is not this client's.
    let other = ta.workload_svid(&format!("{TD}/billing/other")).await;
    let (status, body) = token_over(&other.mtls_client(&authority), &base, &form).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // A secret client over mTLS still works and gets an unbound token.
    let (sid, secret) = ta.client("plain", &["orders"], &[]).await;
    let (status, body) = token_over(
        &other.mtls_client(&authority),
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", "orders"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(claims_of(body["access_token"].as_str().unwrap()).get("cnf").is_none());

    // Registration refuses what it cannot honour.
    for (bad, why) in [
        (
            json!({"name": "x", "audiences": ["orders"], "tls_client_auth_san_uri": "spiffe://elsewhere.example/a"}),
            "outside",
        ),
        (
            json!({"name": "x", "audiences": ["orders"], "tls_client_auth_san_uri": format!("{TD}/castellan/authority")}),
            "reserved",
        ),
        (
            json!({"name": "x", "audiences": ["orders"], "tls_client_auth_san_uri": "https://not-spiffe"}),
            "spiffe",
        ),
        (
            json!({"name": "x", "audiences": ["orders"], "scopes": ["castellan.admin"], "tls_client_auth_san_uri": id}),
            "cannot be an admin",
        ),
        (
            json!({"name": "x", "audiences": ["orders"], "public": true, "redirect_uris": ["https://a.example/cb"], "tls_client_auth_san_uri": id}),
            "no other credentials",
        ),
    ] {
        let (status, body) = ta.admin(Method::POST, "/clients", Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains(why), "{body}");
    }
    let (status, body) = ta
        .admin(Method::POST, &format!("/clients/{client_id}/rotate-secret"), None)
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn the_authority_path_cannot_be_registered() {
    let ta = TestAuthority::start_with_mtls().await;
    for id in [format!("{TD}/castellan/authority"), format!("{TD}/castellan/x")] {
        let (status, body) = ta
            .admin(Method::POST, "/workloads", Some(json!({ "spiffe_id": id })))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains("reserved"),
            "{body}"
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

use std::sync::Arc;

/// A client that accepts any server: to show the server refuses it.
#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn an_emergency_ca_rotation_withdraws_the_old_ca_and_its_svids_stop_working() {
    let ta = TestAuthority::start_with_mtls().await;
    let base = ta.mtls_url().unwrap();
    let authority = ta.authority_spiffe_id();
    let before = ta.workload_svid(&format!("{TD}/orders/api")).await;
    let old_ca = CaCert::from_der(&certs_from_pem(before.svid_pem.as_bytes()).unwrap()[1])
        .unwrap()
        .id()
        .to_owned();

    let (status, view) = ta
        .admin(Method::POST, "/ca/rotate", Some(json!({"emergency": true})))
        .await;
    assert_eq!(status, 200, "{view}");
    let ids: Vec<&str> = view["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ca_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&old_ca.as_str()), "withdrawn at once: {view}");
    let bundle = ta
        .http
        .get(format!("{}/ca/bundle.pem", ta.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!certs_from_pem(bundle.as_bytes())
        .unwrap()
        .iter()
        .any(|c| CaCert::from_der(c).unwrap().id() == old_ca));

    // Within a second the mTLS listener trusts only the new bundle: the old
    // SVID can no longer renew (its holder needs a new join token).
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let key = generate_workload_key(&before.id).unwrap();
    assert!(renew(&before.mtls_client(&authority), &base, &key.csr_pem())
        .await
        .is_err());
    let again = ta.workload_svid(&format!("{TD}/orders/api")).await;
    let (status, body) = renew(&again.mtls_client(&authority), &base, &key.csr_pem())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

//! A verifier reaches an `https://` authority (TLS terminated in front of it,
//! as in production) and refuses one whose certificate it does not trust.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use castellan_verify::{install_tls_provider, Verifier};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn verifies_through_an_https_authority_it_trusts() {
    install_tls_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem().into_bytes();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = front.local_addr().unwrap().port();
    let issuer = format!("https://localhost:{port}");
    let ta = TestAuthority::start_with(|c| c.issuer = Some(issuer.clone())).await;
    let backend = ta.authority.config().listen;
    // The TLS terminator: decrypt, then pass the bytes to the authority's plain port.
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = front.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                }
            });
        }
    });

    let untrusted = Verifier::builder(&issuer, "orders")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_err();
    assert!(untrusted.to_string().contains("discovery"), "{untrusted}");

    let v = Verifier::builder(&issuer, "orders")
        .clock(Arc::new(ta.clock.clone()))
        .root_certificate_pem(cert_pem)
        .connect()
        .await
        .unwrap();
    let issued = ta
        .authority
        .issue_access_token("svc", "svc", "orders", None, 300)
        .unwrap();
    let ok = v.verify(&issued.token).await.unwrap();
    assert_eq!(ok.iss, issuer);
    assert!(v.status().stream_connected, "the revocation stream runs over TLS too");
}

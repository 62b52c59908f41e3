//! mTLS at the gate, end to end: a CA and SVIDs made in-process with
//! castellan-ca, written to directories as the workload agent writes them;
//! a real authority (testkit) for tokens; the gate in front of an upstream
//! that echoes what it received; rustls clients presenting SVIDs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use axum::body::Body;
use castellan_ca::{bundle_pem, generate_workload_key, CaCert, CaKey, SpiffeId, Svid, TrustDomain, WorkloadKey};
use castellan_gate::{GateConfig, MtlsConfig};
use castellan_testkit::TestAuthority;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TD: &str = "example.org";
const GATE_ID: &str = "spiffe://example.org/gate/orders";
const CALLER_ID: &str = "spiffe://example.org/svc/billing";
const OTHER_ID: &str = "spiffe://example.org/svc/intruder";
const PEER_HEADER: &str = "x-castellan-peer-spiffe-id";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A CA of the trust domain.
fn ca() -> CaKey {
    CaKey::generate(&TrustDomain::new(TD).unwrap(), 86_400, now()).unwrap()
}

/// An SVID and its key, as `castellan workload svid` would hold them.
struct Issued {
    svid: Svid,
    key: WorkloadKey,
}

fn issue(ca: &CaKey, id: &str) -> Issued {
    let id = SpiffeId::parse(id).unwrap();
    let key = generate_workload_key(&id).unwrap();
    let svid = ca.issue_svid(key.csr_der(), &id, 3_600, now()).unwrap();
    Issued { svid, key }
}

impl Issued {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.svid.chain.clone()
    }
    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.pkcs8_der().to_vec()))
    }
}

/// Replaces a file atomically, as the workload agent does.
fn replace(dir: &Path, name: &str, contents: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn write_svid_dir(dir: &Path, issued: &Issued, bundle: &[&CaCert]) {
    replace(dir, "bundle.pem", bundle_pem(bundle).as_bytes());
    replace(dir, "svid.pem", issued.svid.chain_pem().as_bytes());
    replace(dir, "svid_key.pem", issued.key.key_pem().as_bytes());
}

/// Checks the server's chain against the bundle only: the test looks at the
/// leaf it got afterwards.
#[derive(Debug)]
struct BundleVerifier {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client trusting `bundle`, presenting `cert` when given.
fn client(bundle: &[&CaCert], cert: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in bundle {
        roots.add(ca.der().clone()).unwrap();
    }
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(BundleVerifier {
            roots,
            provider: provider(),
        }));
    Arc::new(match cert {
        Some(i) => b.with_client_auth_cert(i.chain(), i.key_der()).unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// One HTTP/1.1 connection over TLS.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    server_leaf: CertificateDer<'static>,
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

impl Conn {
    async fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let tls = tls_connect(addr, config).await.unwrap();
        let server_leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        Self { sender, server_leaf }
    }

    async fn get(&mut self, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut req = http::Request::get(path).header("host", "orders.internal");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        self.sender.ready().await.unwrap();
        let resp = self
            .sender
            .send_request(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// Connects and sends a request; the TLS error the client sees, if any.
async fn tls_refusal(addr: SocketAddr, config: Arc<ClientConfig>) -> Option<String> {
    let mut tls = match tls_connect(addr, config).await {
        Ok(t) => t,
        Err(e) => return Some(e.to_string()),
    };
    // TLS 1.3: the client finishes first; the server's verdict arrives as an alert.
    if let Err(e) = tls
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
    {
        return Some(e.to_string());
    }
    let mut buf = Vec::new();
    match tls.read_to_end(&mut buf).await {
        Err(e) => Some(e.to_string()),
        Ok(_) if buf.is_empty() => Some("closed without an answer".to_owned()),
        Ok(_) => None,
    }
}

/// An upstream that answers with the headers it received.
async fn echo() -> String {
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("<binary>"))))
            .collect();
        axum::Json(json!({"path": req.uri().path(), "headers": headers}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn config(authority: &str, upstream: &str, mtls: MtlsConfig) -> GateConfig {
    GateConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: Some(upstream.to_owned()),
        authority: authority.to_owned(),
        audience: "orders".to_owned(),
        leeway: None,
        staleness_window: None,
        max_delegation_depth: None,
        require_delegation: false,
        fail_open: false,
        health_listen: Some("127.0.0.1:0".parse().unwrap()),
        authority_ca_pem: None,
        mtls: Some(mtls),
        policy_service: None,
        decision_log: None,
    }
}

fn mtls(dir: &Path, allow: &[&str]) -> MtlsConfig {
    MtlsConfig {
        reload_interval: Duration::from_millis(100),
        ..MtlsConfig::new(dir, allow.iter().map(|a| SpiffeId::parse(a).unwrap()).collect())
    }
}

/// A gate serving in the background, ready (verifier connected) when returned.
struct Gate {
    addr: SocketAddr,
    health: SocketAddr,
}

async fn start_gate(config: GateConfig) -> Gate {
    let bound = castellan_gate::bind(config, std::future::pending()).await.unwrap();
    assert!(bound.tls);
    let gate = Gate {
        addr: bound.addr,
        health: bound.health_addr.unwrap(),
    };
    tokio::spawn(bound.serve);
    let http = castellan_testkit::http_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http
            .get(format!("http://{}/.castellan/ready", gate.health))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return gate;
        }
        assert!(Instant::now() < deadline, "gate not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The usual scene: one CA, the gate's SVID, an allowed caller and another
/// workload, an authority with a client for audience `orders`.
struct Scene {
    ta: TestAuthority,
    ca: CaKey,
    gate_dir: tempfile::TempDir,
    caller: Issued,
    other: Issued,
    gate: Gate,
    token: String,
}

async fn scene() -> Scene {
    let ta = TestAuthority::start().await;
    let ca = ca();
    let gate_dir = tempfile::tempdir().unwrap();
    write_svid_dir(gate_dir.path(), &issue(&ca, GATE_ID), &[ca.cert()]);
    let upstream = echo().await;
    let gate = start_gate(config(&ta.url, &upstream, mtls(gate_dir.path(), &[CALLER_ID]))).await;
    let (id, secret) = ta.client("billing", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[("audience", "orders")]).await;
    Scene {
        caller: issue(&ca, CALLER_ID),
        other: issue(&ca, OTHER_ID),
        ta,
        ca,
        gate_dir,
        gate,
        token,
    }
}

#[tokio::test]
async fn an_allowed_peer_with_a_token_reaches_the_upstream_with_its_spiffe_id() {
    let s = scene().await;
    let mut conn = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&s.caller))).await;
    // The gate presented its own SVID.
    assert_eq!(
        castellan_ca::parse_svid_peer(&s.gate_leaf_now().await)
            .unwrap()
            .as_str(),
        GATE_ID
    );
    let (status, body) = conn
        .get(
            "/v1/orders",
            Some(&s.token),
            &[(PEER_HEADER, "spiffe://example.org/admin")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let h = &body["headers"];
    assert_eq!(
        h[PEER_HEADER], CALLER_ID,
        "the client's spoofed peer header was replaced"
    );
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-castellan-audience"], "orders");
    assert_eq!(body["path"], "/v1/orders");
    // Several requests on one connection: the identity step ran once, holds for all.
    let (status, body) = conn.get("/again", Some(&s.token), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["headers"][PEER_HEADER], CALLER_ID);
}

impl Scene {
    /// The leaf a new connection gets now.
    async fn gate_leaf_now(&self) -> CertificateDer<'static> {
        Conn::open(self.gate.addr, client(&[self.ca.cert()], Some(&self.caller)))
            .await
            .server_leaf
    }
}

#[tokio::test]
async fn an_allowed_peer_without_a_token_gets_401() {
    let s = scene().await;
    let mut conn = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&s.caller))).await;
    let (status, body) = conn.get("/v1/orders", None, &[]).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = conn.get("/v1/orders", Some("a.b.c"), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn another_peer_with_a_valid_chain_gets_403_even_with_a_token() {
    let s = scene().await;
    let mut conn = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&s.other))).await;
    let (status, body) = conn.get("/v1/orders", Some(&s.token), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        json!({
            "error": "peer_not_allowed",
            "error_description": format!("peer `{OTHER_ID}` is not allowed by this gate"),
        })
    );
    // The gate's own paths are behind the peer check too.
    let (status, _) = conn.get("/.castellan/metrics", None, &[]).await;
    assert_eq!(status, 403);
    // (Metrics are checked against the real binary: in-process, the
    // authority owns the global recorder.)
}

#[tokio::test]
async fn a_client_without_a_certificate_fails_the_handshake() {
    let s = scene().await;
    let err = tls_refusal(s.gate.addr, client(&[s.ca.cert()], None))
        .await
        .expect("the handshake must fail");
    assert!(err.contains("CertificateRequired"), "{err}");
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_fails_the_handshake() {
    let s = scene().await;
    // Same trust domain name, same SPIFFE ID as the allowed caller, another CA.
    let foreign_ca = ca();
    let forged = issue(&foreign_ca, CALLER_ID);
    let err = tls_refusal(s.gate.addr, client(&[s.ca.cert()], Some(&forged)))
        .await
        .expect("the handshake must fail");
    assert!(err.contains("UnknownCA"), "{err}");
    // The gate is unharmed.
    let mut conn = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&s.caller))).await;
    assert_eq!(conn.get("/", Some(&s.token), &[]).await.0, 200);
}

#[tokio::test]
async fn renewed_svid_files_serve_new_connections_while_open_ones_keep_working() {
    let s = scene().await;
    let dir = s.gate_dir.path();
    let mut before = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&s.caller))).await;
    assert_eq!(before.get("/", Some(&s.token), &[]).await.0, 200);
    let old_leaf = before.server_leaf.clone();

    // Half a renewal: the new certificate is in place, the key is not yet. The
    // gate never swaps to a certificate it has no key for.
    let renewed = issue(&s.ca, GATE_ID);
    assert_ne!(renewed.svid.serial, "");
    replace(dir, "svid.pem", renewed.svid.chain_pem().as_bytes());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.gate_leaf_now().await,
        old_leaf,
        "swapped to a certificate without its key"
    );

    // The key lands: new connections get the new SVID.
    replace(dir, "svid_key.pem", renewed.key.key_pem().as_bytes());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let leaf = s.gate_leaf_now().await;
        if leaf == renewed.svid.cert_der {
            break;
        }
        assert_eq!(leaf, old_leaf);
        assert!(Instant::now() < deadline, "the renewed svid was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before still works, still on the old certificate.
    let (status, body) = before.get("/still", Some(&s.token), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"][PEER_HEADER], CALLER_ID);
    assert_eq!(before.server_leaf, old_leaf);

    // Garbage in the directory changes nothing.
    replace(dir, "bundle.pem", b"not pem");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.gate_leaf_now().await, renewed.svid.cert_der);

    // A CA rotation: the bundle gains the next CA, and peers with SVIDs from
    // it are admitted on new connections.
    let next = ca();
    replace(dir, "bundle.pem", bundle_pem(&[s.ca.cert(), next.cert()]).as_bytes());
    let from_next = issue(&next, CALLER_ID);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls_refusal(s.gate.addr, client(&[s.ca.cert()], Some(&from_next)))
        .await
        .is_some()
    {
        assert!(Instant::now() < deadline, "the new bundle was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut conn = Conn::open(s.gate.addr, client(&[s.ca.cert()], Some(&from_next))).await;
    assert_eq!(conn.get("/", Some(&s.token), &[]).await.0, 200);
    drop(s.ta);
}

#[tokio::test]
async fn a_gate_calls_an_upstream_gate_over_mtls_and_checks_its_spiffe_id() {
    let ta = TestAuthority::start().await;
    let ca = ca();
    let echo = echo().await;
    // Back gate: in front of the service, admits only the front gate.
    let back_dir = tempfile::tempdir().unwrap();
    write_svid_dir(back_dir.path(), &issue(&ca, GATE_ID), &[ca.cert()]);
    let front_id = "spiffe://example.org/gate/edge";
    let back = start_gate(config(&ta.url, &echo, mtls(back_dir.path(), &[front_id]))).await;
    // Front gate: admits the caller, calls the back gate over mTLS.
    let front_dir = tempfile::tempdir().unwrap();
    write_svid_dir(front_dir.path(), &issue(&ca, front_id), &[ca.cert()]);
    let back_url = format!("https://{}", back.addr);
    let mut m = mtls(front_dir.path(), &[CALLER_ID]);
    m.upstream_spiffe_id = Some(SpiffeId::parse(GATE_ID).unwrap());
    let front = start_gate(config(&ta.url, &back_url, m)).await;

    let (id, secret) = ta.client("billing", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[("audience", "orders")]).await;
    let caller = issue(&ca, CALLER_ID);
    let mut conn = Conn::open(front.addr, client(&[ca.cert()], Some(&caller))).await;
    let (status, body) = conn.get("/v1/orders", Some(&token), &[]).await;
    assert_eq!(status, 200, "{body}");
    // The service sees the hop it trusts: the front gate, proven by mTLS.
    assert_eq!(body["headers"][PEER_HEADER], front_id);

    // A front gate expecting another upstream identity refuses the back gate.
    let wrong_dir = tempfile::tempdir().unwrap();
    write_svid_dir(wrong_dir.path(), &issue(&ca, front_id), &[ca.cert()]);
    let mut m = mtls(wrong_dir.path(), &[CALLER_ID]);
    m.upstream_spiffe_id = Some(SpiffeId::parse("spiffe://example.org/gate/payments").unwrap());
    let wrong = start_gate(config(&ta.url, &back_url, m)).await;
    let mut conn = Conn::open(wrong.addr, client(&[ca.cert()], Some(&caller))).await;
    let (status, body) = conn.get("/v1/orders", Some(&token), &[]).await;
    assert_eq!(status, 502, "{body}");
}

#[tokio::test]
async fn unusable_settings_fail_at_start_with_precise_errors() {
    let ta = TestAuthority::start().await;
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let upstream = "http://127.0.0.1:9";
    let start = |m: MtlsConfig| {
        let c = config(&ta.url, upstream, m);
        async move {
            match castellan_gate::bind(c, std::future::pending()).await {
                Ok(_) => panic!("the gate started"),
                Err(e) => e.to_string(),
            }
        }
    };

    let err = start(mtls(dir.path(), &[CALLER_ID])).await;
    assert!(err.starts_with("cannot read `") && err.contains("svid.pem"), "{err}");

    // A key that is not the certificate's.
    let gate = issue(&ca, GATE_ID);
    write_svid_dir(dir.path(), &gate, &[ca.cert()]);
    replace(dir.path(), "svid_key.pem", issue(&ca, GATE_ID).key.key_pem().as_bytes());
    let err = start(mtls(dir.path(), &[CALLER_ID])).await;
    assert!(err.contains("does not match the certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");

    // A CA certificate where the leaf should be.
    write_svid_dir(dir.path(), &gate, &[ca.cert()]);
    replace(dir.path(), "svid.pem", ca.cert_pem().as_bytes());
    let err = start(mtls(dir.path(), &[CALLER_ID])).await;
    assert!(err.contains("is not an x509-svid"), "{err}");

    write_svid_dir(dir.path(), &gate, &[ca.cert()]);
    assert_eq!(
        start(mtls(dir.path(), &["spiffe://other.org/x"])).await,
        "--allow-peer `spiffe://other.org/x` is outside the gate's trust domain `example.org`"
    );
    assert_eq!(
        start(mtls(dir.path(), &[])).await,
        "--svid-dir needs at least one --allow-peer"
    );
    let mut m = mtls(dir.path(), &[CALLER_ID]);
    m.upstream_spiffe_id = Some(SpiffeId::parse(GATE_ID).unwrap());
    assert_eq!(
        start(m).await,
        "--upstream `http://127.0.0.1:9`: --upstream-spiffe-id needs an https:// upstream"
    );
}

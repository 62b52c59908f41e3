//! Workloads in tests: register a SPIFFE ID, redeem its join token for an
//! SVID, and call the authority's mTLS listener with it.

use crate::TestAuthority;
use castellan_ca::{certs_from_pem, generate_workload_key, CertificateDer, SpiffeId};
use castellan_workload::{CurrentMaterial, SvidCell, SvidMaterial};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// An SVID with its private key, as a workload holds it.
#[derive(Clone)]
pub struct TestSvid {
    /// The SPIFFE ID.
    pub id: SpiffeId,
    /// PKCS#8 PEM private key.
    pub key_pem: String,
    /// `svid.pem`: leaf, then CA.
    pub svid_pem: String,
    /// `bundle.pem`.
    pub bundle_pem: String,
}

impl std::fmt::Debug for TestSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSvid")
            .field("id", &self.id.as_str())
            .finish_non_exhaustive()
    }
}

impl TestSvid {
    /// From an SVID endpoint answer and the key the CSR was made with.
    pub fn from_response(id: SpiffeId, key_pem: String, answer: &Value) -> Self {
        Self {
            id,
            key_pem,
            svid_pem: answer["svid_pem"].as_str().expect("svid_pem").to_owned(),
            bundle_pem: answer["bundle_pem"].as_str().expect("bundle_pem").to_owned(),
        }
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> CertificateDer<'static> {
        certs_from_pem(self.svid_pem.as_bytes())
            .expect("svid pem")
            .into_iter()
            .next()
            .expect("a leaf")
    }

    /// For rustls.
    pub fn material(&self) -> Arc<dyn CurrentMaterial> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let material = SvidMaterial::from_parts(
            certs_from_pem(self.svid_pem.as_bytes()).expect("svid pem"),
            self.key_pem.as_bytes(),
            certs_from_pem(self.bundle_pem.as_bytes()).expect("bundle pem"),
            &provider,
        )
        .expect("usable svid");
        SvidCell::new(material, provider)
    }

    /// An HTTP client presenting this SVID that trusts only a server with
    /// the SPIFFE ID `server` chaining to this SVID's bundle.
    pub fn mtls_client(&self, server: &SpiffeId) -> reqwest::Client {
        let config = castellan_workload::client_config(self.material(), server.clone()).expect("tls config");
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .expect("mtls client")
    }

    /// Writes `svid.pem`, `svid_key.pem` (0600) and `bundle.pem` into `dir`.
    pub fn write_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("svid dir");
        std::fs::write(dir.join("svid.pem"), &self.svid_pem).expect("svid.pem");
        let key = dir.join("svid_key.pem");
        std::fs::write(&key, &self.key_pem).expect("svid_key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(dir.join("bundle.pem"), &self.bundle_pem).expect("bundle.pem");
    }
}

impl TestAuthority {
    /// The authority's own SPIFFE ID (what its mTLS listener presents).
    pub fn authority_spiffe_id(&self) -> SpiffeId {
        castellan_authority::mtls::authority_spiffe_id(self.authority.ca().trust_domain()).expect("authority id")
    }

    /// Registers `id` and redeems the join token for an SVID.
    pub async fn workload_svid(&self, id: &str) -> TestSvid {
        let (status, reg) = self
            .admin(reqwest::Method::POST, "/workloads", Some(json!({ "spiffe_id": id })))
            .await;
        assert!(status == 201 || status == 200, "register {id}: {status} {reg}");
        let spiffe_id = SpiffeId::parse(id).expect("spiffe id");
        let key = generate_workload_key(&spiffe_id).expect("workload key");
        let resp = self
            .http
            .post(format!("{}/workload/v1/svid", self.url))
            .json(&json!({"join_token": reg["join_token"], "csr": key.csr_pem()}))
            .send()
            .await
            .expect("svid request");
        assert_eq!(resp.status(), 200);
        let answer: Value = resp.json().await.expect("svid json");
        TestSvid::from_response(spiffe_id, key.key_pem().to_string(), &answer)
    }
}

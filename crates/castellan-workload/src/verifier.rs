//! Outbound mTLS: present our own SVID, verify the server's chain against
//! the bundle (webpki, through rustls), then require its SPIFFE ID to be the
//! expected one. SVIDs carry no DNS names, so the SPIFFE ID takes the place
//! of the server name.

use crate::source::{CurrentMaterial, CurrentSvid};
use castellan_ca::{parse_svid_peer, CaError, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, Resumption};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use std::sync::Arc;

/// The server presented a valid SVID for another workload.
#[derive(Debug, thiserror::Error)]
#[error("server presented `{got}`, expected `{expected}`")]
pub struct WrongUpstream {
    /// The SPIFFE ID we expected.
    pub expected: String,
    /// The SPIFFE ID in the server's certificate.
    pub got: String,
}

/// Chain to the current bundle, then exactly the expected SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    source: Arc<dyn CurrentMaterial>,
    expected: SpiffeId,
}

fn refuse(outcome: &'static str, error: rustls::Error) -> rustls::Error {
    metrics::counter!("castellan_upstream_tls_verifications_total", "outcome" => outcome).increment(1);
    tracing::warn!(%error, "server certificate refused");
    error
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity).map_err(|e| refuse("bad_chain", e))?;
        let material = self.source.material();
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &material.roots,
            intermediates,
            now,
            self.source.provider().signature_verification_algorithms.all,
        )
        .map_err(|e| refuse("bad_chain", e))?;
        let got = parse_svid_peer(end_entity).map_err(|e: CaError| refuse("not_an_svid", other(e)))?;
        if got != self.expected {
            return Err(refuse(
                "wrong_peer",
                other(WrongUpstream {
                    expected: self.expected.to_string(),
                    got: got.to_string(),
                }),
            ));
        }
        metrics::counter!("castellan_upstream_tls_verifications_total", "outcome" => "ok").increment(1);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.source.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.source.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.source
            .provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls client configuration for mTLS calls to a server that must
/// present `expected`.
///
/// # Errors
/// A rustls error when the provider supports no safe protocol version.
pub fn client_config(source: Arc<dyn CurrentMaterial>, expected: SpiffeId) -> Result<ClientConfig, rustls::Error> {
    let provider = source.provider().clone();
    let verifier = SpiffeServerVerifier {
        source: source.clone(),
        expected,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(CurrentSvid(source)));
    // A resumed session skips verification: it could outlive a bundle
    // rotation. Pooled keep-alive connections carry the load instead.
    config.resumption = Resumption::disabled();
    Ok(config)
}

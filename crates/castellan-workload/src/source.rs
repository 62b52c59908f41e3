//! The SVID in force, swapped atomically on renewal. New handshakes read the
//! current SVID and bundle; connections already open keep theirs.

use crate::files::{self as svid, Stamp, SvidError, SvidMaterial};
use arc_swap::ArcSwap;
use castellan_ca::{SpiffeId, TrustDomain};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the SVID in force comes from: a watched directory ([`SvidSource`])
/// or memory ([`SvidCell`]). New handshakes ask it each time.
pub trait CurrentMaterial: fmt::Debug + Send + Sync + 'static {
    /// The SVID and bundle now.
    fn material(&self) -> Arc<SvidMaterial>;
    /// The crypto provider the material was built with.
    fn provider(&self) -> &Arc<CryptoProvider>;
}

/// An SVID held in memory and replaced by its owner (the authority's own).
pub struct SvidCell {
    provider: Arc<CryptoProvider>,
    current: ArcSwap<SvidMaterial>,
}

impl fmt::Debug for SvidCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidCell")
            .field("current", &*self.current.load())
            .finish_non_exhaustive()
    }
}

impl SvidCell {
    /// A cell holding `material`.
    #[must_use]
    pub fn new(material: SvidMaterial, provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self {
            provider,
            current: ArcSwap::from_pointee(material),
        })
    }

    /// Replaces the material for new handshakes.
    pub fn replace(&self, material: SvidMaterial) {
        self.current.store(Arc::new(material));
    }
}

impl CurrentMaterial for SvidCell {
    fn material(&self) -> Arc<SvidMaterial> {
        self.current.load_full()
    }

    fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }
}

/// An SVID directory and what was last read from it.
pub struct SvidSource {
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    trust_domain: TrustDomain,
    current: ArcSwap<SvidMaterial>,
    /// The stamp of the files last tried, so a bad set is reported once.
    tried: Mutex<Stamp>,
}

impl fmt::Debug for SvidSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidSource")
            .field("dir", &self.dir)
            .field("current", &*self.current.load())
            .finish_non_exhaustive()
    }
}

impl SvidSource {
    /// Reads `dir` once; fails when it does not hold a usable SVID.
    ///
    /// # Errors
    /// [`SvidError`] when the directory does not hold a usable SVID.
    pub fn load(dir: &Path, provider: Arc<CryptoProvider>) -> Result<Arc<Self>, SvidError> {
        let stamp = svid::stamp(dir);
        let material = svid::load(dir, &provider)?;
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            provider,
            trust_domain: material.id.trust_domain().clone(),
            current: ArcSwap::from_pointee(material),
            tried: Mutex::new(stamp),
        }))
    }

    /// Our own SPIFFE ID now.
    #[must_use]
    pub fn id(&self) -> SpiffeId {
        self.current.load().id.clone()
    }

    /// The trust domain the source started in; it never changes.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The SVID and bundle now.
    #[must_use]
    pub fn current(&self) -> Arc<SvidMaterial> {
        self.current.load_full()
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory when a file changed; swaps only a complete,
    /// consistent set in the same trust domain. `Ok(true)` when swapped.
    ///
    /// # Errors
    /// [`SvidError`] when the files changed but are not a usable set.
    pub fn reload_if_changed(&self) -> Result<bool, SvidError> {
        let stamp = svid::stamp(&self.dir);
        {
            let mut tried = self.tried.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *tried == stamp {
                return Ok(false);
            }
            *tried = stamp;
        }
        let material = svid::load(&self.dir, &self.provider)?;
        if !material.id.is_member_of(&self.trust_domain) {
            return Err(SvidError::NotAnSvid {
                path: self.dir.join(svid::SVID_FILE),
                source: castellan_ca::CaError::ForeignTrustDomain {
                    id: material.id.to_string(),
                    trust_domain: self.trust_domain.to_string(),
                },
            });
        }
        self.current.store(Arc::new(material));
        Ok(true)
    }

    /// Polls the directory every `interval` until the task is aborted.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let this = self.clone();
            // File reads and key parsing are blocking work.
            let outcome = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            match outcome {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => {
                    let m = self.current();
                    metrics::counter!("castellan_svid_reloads_total", "outcome" => "ok").increment(1);
                    tracing::info!(spiffe_id = %m.id, dir = %self.dir.display(), bundle_cas = m.roots.len(), "svid reloaded; new connections use it");
                }
                Ok(Err(e)) => {
                    metrics::counter!("castellan_svid_reloads_total", "outcome" => "failed").increment(1);
                    tracing::warn!(error = %e, "svid files changed but cannot be used (yet); keeping the current svid");
                }
                Err(e) => tracing::error!(error = %e, "svid reload task failed"),
            }
        }
    }
}

impl CurrentMaterial for SvidSource {
    fn material(&self) -> Arc<SvidMaterial> {
        self.current.load_full()
    }

    fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }
}

/// Serves the current SVID to every new handshake.
#[derive(Debug)]
pub struct CurrentSvid(pub Arc<dyn CurrentMaterial>);

impl ResolvesServerCert for CurrentSvid {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material().certified.clone())
    }
}

impl ResolvesClientCert for CurrentSvid {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies client certificates against the current bundle (rustls
/// `WebPkiClientVerifier`, rebuilt on every reload). A client certificate is
/// mandatory.
#[derive(Debug)]
pub struct CurrentBundle(pub Arc<dyn CurrentMaterial>);

impl ClientCertVerifier for CurrentBundle {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA hints: each SVID holder has one certificate to send, and the
    /// hints would have to outlive a reload.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .material()
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.provider().signature_verification_algorithms.supported_schemes()
    }
}

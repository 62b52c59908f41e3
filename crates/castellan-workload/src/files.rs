//! A workload's SVID on disk: `svid.pem` (leaf then chain), `svid_key.pem`
//! (PKCS#8) and `bundle.pem` (every trusted CA), read together and accepted
//! only when all three parse and the key matches the leaf.

use castellan_ca::{certs_from_pem, parse_svid_peer, CaError, SpiffeId};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use zeroize::Zeroizing;

/// The leaf and its chain.
pub const SVID_FILE: &str = "svid.pem";
/// The leaf's private key, PKCS#8 PEM.
pub const KEY_FILE: &str = "svid_key.pem";
/// Every trusted CA certificate, PEM.
pub const BUNDLE_FILE: &str = "bundle.pem";

/// Largest file read from an SVID directory.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why the SVID directory cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// A file cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file is larger than any SVID file should be.
    #[error("`{}` is too large: more than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// A certificate file does not hold PEM certificates.
    #[error("`{}`: {source}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: CaError,
    },
    /// The leaf of `svid.pem` is not an X.509 SVID.
    #[error("`{}`: the first certificate is not an x509-svid: {source}", path.display())]
    NotAnSvid {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: CaError,
    },
    /// The key file holds no usable private key.
    #[error("`{}`: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The private key is not the leaf's.
    #[error("the private key in `{}` does not match the certificate in `{}`", key.display(), cert.display())]
    KeyMismatch {
        /// `svid.pem`.
        cert: PathBuf,
        /// `svid_key.pem`.
        key: PathBuf,
    },
    /// A bundle certificate is not a usable trust anchor, or the bundle
    /// yields no client verifier.
    #[error("`{}`: {reason}", path.display())]
    Bundle {
        /// `bundle.pem`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One consistent SVID: leaf, chain, key and the bundle to verify peers by.
pub struct SvidMaterial {
    /// The SPIFFE ID our own leaf carries.
    pub id: SpiffeId,
    /// Leaf, chain and key, for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The trust bundle.
    pub roots: Arc<RootCertStore>,
    /// Client certificates must chain to `roots`.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for SvidMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidMaterial")
            .field("id", &self.id.as_str())
            .field("chain_len", &self.certified.cert.len())
            .field("bundle_len", &self.roots.len())
            .finish_non_exhaustive()
    }
}

fn read_capped(path: &Path) -> Result<Zeroizing<Vec<u8>>, SvidError> {
    let file = std::fs::File::open(path).map_err(|source| SvidError::Read {
        path: path.to_owned(),
        source,
    })?;
    // Reserve once so a key is never reallocated and left behind.
    let mut out = Zeroizing::new(Vec::with_capacity(16 * 1024));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|source| SvidError::Read {
            path: path.to_owned(),
            source,
        })?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(SvidError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(out)
}

/// Reads and checks the three files in `dir`.
///
/// # Errors
/// [`SvidError`] naming the file that is missing, malformed or inconsistent.
pub fn load(dir: &Path, provider: &Arc<CryptoProvider>) -> Result<SvidMaterial, SvidError> {
    let cert_path = dir.join(SVID_FILE);
    let key_path = dir.join(KEY_FILE);
    let bundle_path = dir.join(BUNDLE_FILE);

    let chain = certs_from_pem(&read_capped(&cert_path)?).map_err(|source| SvidError::Certificates {
        path: cert_path.clone(),
        source,
    })?;
    let key_pem = read_capped(&key_path)?;
    let cas = certs_from_pem(&read_capped(&bundle_path)?).map_err(|source| SvidError::Certificates {
        path: bundle_path.clone(),
        source,
    })?;
    let paths = Paths {
        cert: cert_path,
        key: key_path,
        bundle: bundle_path,
    };
    SvidMaterial::build(chain, &key_pem, cas, provider, &paths)
}

/// Where the parts came from, for error messages.
struct Paths {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
}

impl SvidMaterial {
    /// From parts held in memory: `chain` (leaf first), a PKCS#8 PEM key,
    /// and the trust bundle.
    ///
    /// # Errors
    /// [`SvidError`] as for [`load`], naming `svid.pem`, `svid_key.pem` and
    /// `bundle.pem` as the parts.
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key_pem: &[u8],
        bundle: Vec<CertificateDer<'static>>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, SvidError> {
        let paths = Paths {
            cert: PathBuf::from(SVID_FILE),
            key: PathBuf::from(KEY_FILE),
            bundle: PathBuf::from(BUNDLE_FILE),
        };
        Self::build(chain, key_pem, bundle, provider, &paths)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key_pem: &[u8],
        cas: Vec<CertificateDer<'static>>,
        provider: &Arc<CryptoProvider>,
        paths: &Paths,
    ) -> Result<Self, SvidError> {
        let (cert_path, key_path, bundle_path) = (paths.cert.clone(), paths.key.clone(), paths.bundle.clone());
        let id = match chain.first() {
            Some(leaf) => parse_svid_peer(leaf).map_err(|source| SvidError::NotAnSvid {
                path: cert_path.clone(),
                source,
            })?,
            None => {
                return Err(SvidError::Certificates {
                    path: cert_path,
                    source: CaError::MalformedPem {
                        what: "certificate",
                        reason: "no matching section found",
                    },
                })
            }
        };

        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| SvidError::Key {
            path: key_path.clone(),
            reason: "no pem private key found".to_owned(),
        })?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| SvidError::Key {
                path: key_path.clone(),
                reason: format!("the private key cannot be used: {e}"),
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        if certified.keys_match().is_err() {
            return Err(SvidError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }

        let mut roots = RootCertStore::empty();
        for (index, ca) in cas.into_iter().enumerate() {
            roots.add(ca).map_err(|e| SvidError::Bundle {
                path: bundle_path.clone(),
                reason: format!("certificate {index} is not a usable trust anchor: {e}"),
            })?;
        }
        let roots = Arc::new(roots);
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| SvidError::Bundle {
                path: bundle_path,
                reason: format!("cannot verify client certificates with it: {e}"),
            })?;
        Ok(Self {
            id,
            certified: Arc::new(certified),
            roots,
            client_verifier,
        })
    }
}

/// What changes when a file is replaced: its size, modification time and
/// (on Unix) inode, since renewal renames a new file into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<Option<(u64, Option<SystemTime>, u64)>>);

/// The stamp of the three files, read before they are.
pub fn stamp(dir: &Path) -> Stamp {
    Stamp(
        [SVID_FILE, KEY_FILE, BUNDLE_FILE]
            .iter()
            .map(|name| {
                std::fs::metadata(dir.join(name))
                    .ok()
                    .map(|m| (m.len(), m.modified().ok(), inode(&m)))
            })
            .collect(),
    )
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

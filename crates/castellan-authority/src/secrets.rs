//! The master key and everything derived from it: encryption of private keys
//! at rest (AES-256-GCM, bound to the key id) and the keyed hash of client
//! secrets (HMAC-SHA-256, so the token endpoint never runs argon2).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::path::Path;

/// Sealed blobs start with this version byte.
const SEAL_V1: u8 = 1;

/// Why secret material could not be used. Never carries the material itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key is not 32 bytes of base64.
    #[error("master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    /// The master key file could not be read or written.
    #[error("master key file `{path}`: {reason}")]
    File { path: String, reason: String },
    /// A sealed blob did not open: wrong master key or tampered data.
    #[error("sealed data does not open with this master key (wrong CASTELLAN_MASTER_KEY, or tampered data)")]
    Unseal,
    /// The system random source failed.
    #[error("random source failed")]
    Random,
}

/// 32 random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| SecretError::Random)?;
    Ok(out)
}

/// A random identifier: `prefix` + 16 bytes of base64url.
///
/// The random part never starts with `-` (drawn again, 1 time in 64), so an
/// id on a command line (`castellan client show ID`) is never read as an
/// option.
pub fn random_id(prefix: &str) -> Result<String, SecretError> {
    loop {
        let id = castellan_jose::b64::encode(&random_bytes::<16>()?);
        if !id.starts_with('-') {
            return Ok(format!("{prefix}{id}"));
        }
    }
}

/// A new client secret: 256 random bits, base64url.
pub fn new_client_secret() -> Result<String, SecretError> {
    Ok(castellan_jose::b64::encode(&random_bytes::<32>()?))
}

/// The authority's master key.
pub struct MasterKey {
    aead: LessSafeKey,
    secret_hash_key: hmac::Key,
    audit_chain_key: Vec<u8>,
    check: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() != 32 {
            return Err(SecretError::BadMasterKey);
        }
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SecretError::BadMasterKey)?);
        let root = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let derive = |label: &str| hmac::sign(&root, label.as_bytes());
        let secret_hash_key = hmac::Key::new(hmac::HMAC_SHA256, derive("castellan/client-secret-hash/v1").as_ref());
        let check = castellan_jose::b64::encode(derive("castellan/master-key-check/v1").as_ref());
        let audit_chain_key = derive("castellan/audit-chain/v1").as_ref().to_vec();
        Ok(Self {
            aead,
            secret_hash_key,
            audit_chain_key,
            check,
        })
    }

    /// From base64 (standard or url-safe alphabet).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .ok()
            .or_else(|| castellan_jose::b64::decode(text))
            .ok_or(SecretError::BadMasterKey)?;
        Self::from_bytes(&bytes)
    }

    /// `CASTELLAN_MASTER_KEY` when given, else `DATA_DIR/master.key`,
    /// generated (mode 0600) on first start.
    pub fn load_or_create(env_value: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(v) = env_value {
            return Self::from_base64(v);
        }
        let path = data_dir.join("master.key");
        let file_err = |e: std::io::Error| SecretError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = random_bytes::<32>()?;
                write_private_file(&path, format!("{}\n", STANDARD.encode(bytes)).as_bytes()).map_err(file_err)?;
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(file_err(e)),
        }
    }

    /// The key of the audit trail's hash chain (HMAC-SHA-256), derived
    /// under its own label: it says nothing of the other derived keys.
    pub fn audit_chain_key(&self) -> &[u8] {
        &self.audit_chain_key
    }

    /// A value that identifies this master key without revealing it; stored
    /// on first start so a wrong key is refused at once, not at first use.
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// Encrypts `plain`, bound to `context` (the key id).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let (version, rest) = sealed.split_first().ok_or(SecretError::Unseal)?;
        if *version != SEAL_V1 || rest.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// The keyed hash stored for a client secret.
    pub fn hash_secret(&self, secret: &str) -> Vec<u8> {
        hmac::sign(&self.secret_hash_key, secret.as_bytes()).as_ref().to_vec()
    }

    /// Constant-time check of a presented secret against a stored hash.
    pub fn verify_secret(&self, secret: &str, stored: &[u8]) -> bool {
        hmac::verify(&self.secret_hash_key, secret.as_bytes(), stored).is_ok()
    }
}

/// Writes a new file readable only by its owner (0600 on Unix); refuses to
/// overwrite an existing one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_start_with_a_dash() {
        // 1 in 64 raw draws starts with `-`: 4,096 ids would show one ~64 times.
        for _ in 0..4_096 {
            let id = random_id("").unwrap();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22);
        }
        assert!(random_id("canary-").unwrap().starts_with("canary-"));
    }

    #[test]
    fn seal_is_bound_to_key_and_context() {
        let a = MasterKey::from_bytes(&[1; 32]).unwrap();
        let b = MasterKey::from_bytes(&[2; 32]).unwrap();
        let sealed = a.seal("kid-1", b"private").unwrap();
        assert_eq!(a.open("kid-1", &sealed).unwrap(), b"private");
        assert!(a.open("kid-2", &sealed).is_err(), "moved to another kid");
        assert!(b.open("kid-1", &sealed).is_err(), "other master key");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(a.open("kid-1", &tampered).is_err());
        assert!(a.open("kid-1", &[]).is_err());
        assert!(!sealed.windows(7).any(|w| w == b"private"));
    }

    #[test]
    fn secret_hash_is_keyed() {
        let a = MasterKey::from_bytes(&[1; 32]).unwrap();
        let b = MasterKey::from_bytes(&[2; 32]).unwrap();
        let h = a.hash_secret("s3cret");
        assert!(a.verify_secret("s3cret", &h));
        assert!(!a.verify_secret("s3cres", &h));
        assert!(!b.verify_secret("s3cret", &h));
        assert_ne!(a.check_value(), b.check_value());
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = MasterKey::load_or_create(None, dir.path()).unwrap();
        let k2 = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(k1.check_value(), k2.check_value());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}

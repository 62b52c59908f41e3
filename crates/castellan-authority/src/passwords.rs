//! Password hashing with argon2id, off the async runtime and behind a
//! concurrency cap, so a burst of sign-ins queues instead of starving every
//! other request of CPU and memory.

use crate::config::SigninConfig;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Longest password accepted, bytes. Longer input is refused before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted for new passwords, characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The parameters are out of argon2's range.
    #[error("argon2 parameters are invalid: {0}")]
    Params(String),
    /// Hashing failed or the worker was lost.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A new password is too short or too long.
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes long")]
    Length,
}

/// The hasher shared by the login page and the admin API.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// Working memory of finished checks, reused by the next ones: at most
    /// one buffer per permit, so memory stays bounded under a sign-in burst
    /// (the allocator would otherwise keep every freed 19 MiB buffer).
    blocks: Arc<BlockPool>,
    /// A hash of a random password with the same parameters, made on first
    /// need: unknown users are checked against it, so they cost the same
    /// time as known ones.
    dummy: Arc<tokio::sync::OnceCell<Arc<str>>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .finish_non_exhaustive()
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    let salt_bytes = crate::secrets::random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon(params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

impl Passwords {
    /// A hasher with the configured parameters.
    pub fn new(config: &SigninConfig) -> Result<Self, PasswordError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Self {
            params,
            blocks: Arc::new(BlockPool {
                free: std::sync::Mutex::new(Vec::new()),
                max: config.max_concurrent_hashes,
            }),
            permits: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            dummy: Arc::default(),
        })
    }

    /// Checks the length rules for a new password.
    pub fn check_new(password: &str) -> Result<(), PasswordError> {
        if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::Length);
        }
        Ok(())
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    async fn dummy(&self) -> Result<Arc<str>, PasswordError> {
        self.dummy
            .get_or_try_init(|| async {
                let params = self.params.clone();
                let filler = crate::secrets::random_bytes::<32>().map_err(|e| PasswordError::Hash(e.to_string()))?;
                let hash = self.run(move || hash_blocking(&params, &filler)).await??;
                Ok::<_, PasswordError>(Arc::from(hash))
            })
            .await
            .cloned()
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        Self::check_new(password)?;
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || hash_blocking(&params, password.as_bytes())).await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when
    /// there is no stored hash, so both cost the same. Over-long input is
    /// checked against the dummy too (same timing, always false).
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, PasswordError> {
        let real = stored.is_some() && password.len() <= MAX_PASSWORD_BYTES;
        let hash: Arc<str> = match stored {
            Some(s) if real => Arc::from(s),
            _ => self.dummy().await?,
        };
        let password = if password.len() <= MAX_PASSWORD_BYTES {
            password.to_owned()
        } else {
            String::new()
        };
        let blocks = self.blocks.clone();
        let ok = self
            .run(move || verify_phc(&hash, password.as_bytes(), &blocks))
            .await?;
        Ok(ok && real)
    }
}

/// Reusable argon2 working memory.
struct BlockPool {
    free: std::sync::Mutex<Vec<Vec<Block>>>,
    max: usize,
}

impl BlockPool {
    fn take(&self, count: usize) -> Vec<Block> {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .filter(|b| b.len() == count);
        reused.unwrap_or_else(|| vec![Block::default(); count])
    }

    fn give_back(&self, blocks: Vec<Block>) {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < self.max {
            free.push(blocks);
        }
    }
}

/// Checks `password` against a PHC string with pooled working memory; the
/// parameters come from the string, so older hashes still verify.
fn verify_phc(stored: &str, password: &[u8], pool: &BlockPool) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let mut blocks = pool.take(params.block_count());
    let computed = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
        .is_ok();
    pool.give_back(blocks);
    computed && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(&SigninConfig {
            argon2_memory_kib: 8 * 1024,
            argon2_iterations: 1,
            ..SigninConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = cheap();
        let h = p.hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{h}");
        assert!(p.verify("correct horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse batterY", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse battery", None).await.unwrap());
        assert!(!p.verify("x", Some("not a phc string")).await.unwrap());
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(!p.verify(&long, Some(&h)).await.unwrap());
        assert!(matches!(p.hash("short").await, Err(PasswordError::Length)));
        assert!(matches!(p.hash(&long).await, Err(PasswordError::Length)));
    }

    #[tokio::test]
    async fn hashes_made_with_older_parameters_still_verify_and_memory_is_reused() {
        let old = cheap().hash("an older password").await.unwrap();
        let now = Passwords::new(&SigninConfig {
            argon2_memory_kib: 12 * 1024,
            argon2_iterations: 1,
            max_concurrent_hashes: 1,
            ..SigninConfig::default()
        })
        .unwrap();
        for _ in 0..3 {
            assert!(now.verify("an older password", Some(&old)).await.unwrap());
            assert!(!now.verify("an older passwore", Some(&old)).await.unwrap());
        }
        let pooled = now.blocks.free.lock().unwrap();
        assert_eq!(pooled.len(), 1, "one buffer per permit is kept");
        assert_eq!(pooled[0].len(), 8 * 1024);
    }

    #[test]
    fn default_parameters_are_owasp() {
        let c = SigninConfig::default();
        assert_eq!(
            (c.argon2_memory_kib, c.argon2_iterations, c.argon2_parallelism),
            (19_456, 2, 1)
        );
    }
}

//! Password hashing: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), always run on
//! the blocking pool so a login never stalls the async workers, and at most one hash per core
//! at a time: argon2 is CPU-bound, so more at once only adds 19 MiB of memory each (the soak
//! saw the auth process grow from 0.9 to 1.3 GB with hashing unbounded) and no throughput.
//!
//! Unknown accounts are checked against [`dummy_hash`], so a login for an email that does not
//! exist takes as long as one with a wrong password (no user enumeration by timing).

use std::sync::LazyLock;

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet, argon2id: 19 MiB of memory, 2 iterations, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password: verified against when the account does not exist.
static DUMMY: LazyLock<String> = LazyLock::new(|| {
    argon2()
        .hash_password(uuid::Uuid::new_v4().as_bytes())
        .expect("hashing a random password")
        .to_string()
});

/// The dummy hash (computed once, off the async workers at first use).
pub async fn dummy_hash() -> String {
    tokio::task::spawn_blocking(|| DUMMY.clone())
        .await
        .unwrap_or_default()
}

/// Permits to hash: one per core.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)));

/// Runs `work` on the blocking pool once a hashing permit is free.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let _permit = HASHING.acquire().await.context("hashing permits closed")?;
    tokio::task::spawn_blocking(work)
        .await
        .context("hashing task panicked")
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub async fn hash(password: SecretString) -> anyhow::Result<String> {
    bounded(move || {
        argon2()
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// True when `password` matches the PHC string `hash`. A malformed hash does not match.
pub async fn verify(password: SecretString, hash: String) -> anyhow::Result<bool> {
    bounded(move || {
        argon2()
            .verify_password(password.expose_secret().as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters() {
        let h = hash(SecretString::from("SecurePass123")).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify(SecretString::from("SecurePass123"), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify(SecretString::from("WrongPass123"), h).await.unwrap());
        assert!(
            !verify(SecretString::from("x"), "not a hash".into())
                .await
                .unwrap()
        );
    }
}

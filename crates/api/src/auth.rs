//! Passwords (argon2id), session tokens and API keys. Tokens are random and only their SHA-256
//! is stored, so a copy of the database does not let anyone sign in.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "poslens_session";
/// Sessions last a working day.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Longer passwords are refused before hashing, so hashing cannot be used to burn CPU.
pub const PASSWORD_BYTES_MAX: usize = 256;

pub fn hash_password(password: &str) -> Result<String, String> {
    if password.len() < 8 || password.len() > PASSWORD_BYTES_MAX {
        return Err(format!("password must be 8 to {PASSWORD_BYTES_MAX} bytes"));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A new random secret with a readable prefix (`pls_` sessions, `plk_` API keys).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("poslens-demo").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("poslens-demo", &h));
        assert!(!verify_password("poslens-demo!", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = new_token("pls_");
        assert_ne!(a, new_token("pls_"));
        assert!(a.starts_with("pls_") && a.len() > 40);
        assert_eq!(token_hash(&a).len(), 64);
    }
}

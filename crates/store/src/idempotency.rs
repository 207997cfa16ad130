//! Stored answers to POST requests that carried an `Idempotency-Key`.

use chrono::{DateTime, Utc};

use crate::StoreError;

/// Longest response body kept for a replay; larger answers are not stored (the request then
/// simply runs again on a retry).
pub const IDEMPOTENT_BODY_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_sha256: [u8; 32],
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub trait IdempotencyRepo {
    /// The answer stored for `(caller, key)` if it is younger than `not_before`.
    fn find_idempotent(&self, caller: &str, key: &str, not_before: DateTime<Utc>) -> Result<Option<StoredResponse>, StoreError>;
    /// Keeps the first answer for `(caller, key)` (a later one under the same key is ignored)
    /// and drops answers older than `not_before`.
    fn save_idempotent(&self, caller: &str, key: &str, r: &StoredResponse, not_before: DateTime<Utc>) -> Result<(), StoreError>;
}

//! SQLite implementation of stored idempotent responses.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{from_us, SqliteStore};
use crate::idempotency::{IdempotencyRepo, StoredResponse, IDEMPOTENT_BODY_BYTES_MAX};
use crate::StoreError;

impl IdempotencyRepo for SqliteStore {
    fn find_idempotent(&self, caller: &str, key: &str, not_before: DateTime<Utc>) -> Result<Option<StoredResponse>, StoreError> {
        self.read(|c| {
            let row = c
                .query_row(
                    "SELECT request_sha256, status, content_type, body, created_at_us FROM idempotency_keys \
                     WHERE caller = ?1 AND key = ?2 AND created_at_us >= ?3",
                    (caller, key, not_before.timestamp_micros()),
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, Vec<u8>>(3)?, r.get::<_, i64>(4)?)),
                )
                .optional()?;
            let Some((hash, status, content_type, body, at)) = row else { return Ok(None) };
            let request_sha256: [u8; 32] = hash
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt { column: "idempotency_keys.request_sha256", value: hex::encode(&hash) })?;
            let status = u16::try_from(status).map_err(|_| StoreError::Corrupt { column: "idempotency_keys.status", value: status.to_string() })?;
            Ok(Some(StoredResponse { request_sha256, status, content_type, body, created_at: from_us(at) }))
        })
    }

    fn save_idempotent(&self, caller: &str, key: &str, r: &StoredResponse, not_before: DateTime<Utc>) -> Result<(), StoreError> {
        if r.body.len() > IDEMPOTENT_BODY_BYTES_MAX {
            return Ok(());
        }
        let (caller, key, r) = (caller.to_owned(), key.to_owned(), r.clone());
        self.write(move |ctx| {
            ctx.conn.execute("DELETE FROM idempotency_keys WHERE created_at_us < ?1", [not_before.timestamp_micros()])?;
            ctx.conn.execute(
                "INSERT OR IGNORE INTO idempotency_keys (caller, key, request_sha256, status, content_type, body, created_at_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![caller, key, r.request_sha256.as_slice(), i64::from(r.status), r.content_type, r.body, r.created_at.timestamp_micros()],
            )?;
            Ok(())
        })
    }
}

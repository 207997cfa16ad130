//! Per-aggregate repository traits. [`crate::SqliteStore`] implements all of them; a
//! PostgreSQL store is meant to implement the same set. All methods are synchronous: async
//! callers use `spawn_blocking`.

use chrono::{DateTime, Utc};
use domain::{MerchantId, MerchantStatus, SettlementDate, TerminalId};

use crate::error::{BulkError, IngestError, StoreError};
use crate::model::*;

pub trait MerchantRepo {
    /// `AlreadyExists` if the id is taken. `actor` is recorded in the status history.
    fn create_merchant(&self, m: &NewMerchant, actor: &str) -> Result<Merchant, StoreError>;
    fn get_merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, StoreError>;
    /// Merchants visible in `scope`, ordered by id.
    fn list_merchants(&self, scope: &Scope) -> Result<Vec<Merchant>, StoreError>;
    /// Changes the status and appends to the history. `NotFound` for an unknown id.
    fn set_merchant_status(
        &self,
        id: &MerchantId,
        status: MerchantStatus,
        reason: &str,
        actor: &str,
        effective_at: DateTime<Utc>,
    ) -> Result<Merchant, StoreError>;
    /// Oldest first, including the initial `active` on creation.
    fn merchant_status_history(&self, id: &MerchantId) -> Result<Vec<MerchantStatusChange>, StoreError>;
}

pub trait TerminalRepo {
    /// `NotFound` if the merchant does not exist, `AlreadyExists` if that merchant has the id.
    fn create_terminal(&self, t: &NewTerminal) -> Result<Terminal, StoreError>;
    fn get_terminal(&self, merchant_id: &MerchantId, id: &TerminalId) -> Result<Option<Terminal>, StoreError>;
    /// Every terminal with this id, whatever its merchant (for "terminal not bound" answers).
    fn find_terminals(&self, id: &TerminalId) -> Result<Vec<Terminal>, StoreError>;
    /// Terminals visible in `scope`, optionally of one merchant, ordered by merchant then id.
    fn list_terminals(&self, scope: &Scope, merchant_id: Option<&MerchantId>) -> Result<Vec<Terminal>, StoreError>;
    fn set_terminal_status(&self, merchant_id: &MerchantId, id: &TerminalId, status: TerminalStatus)
        -> Result<Terminal, StoreError>;
    /// Records what the POS front end learned (sign-on, batch, settlement, last contact).
    fn update_terminal_sync(&self, merchant_id: &MerchantId, id: &TerminalId, sync: &TerminalSync)
        -> Result<(), StoreError>;
}

pub trait UserRepo {
    /// `AlreadyExists` if the username is taken.
    fn create_user(&self, u: &NewUser) -> Result<User, StoreError>;
    fn get_user(&self, id: i64) -> Result<Option<User>, StoreError>;
    fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// All users, or those of one merchant; ordered by username.
    fn list_users(&self, merchant_id: Option<&MerchantId>) -> Result<Vec<User>, StoreError>;
    fn set_user_disabled(&self, id: i64, disabled: bool) -> Result<(), StoreError>;
    fn set_user_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError>;
    fn set_user_terminals(&self, id: i64, terminals: &[TerminalId]) -> Result<(), StoreError>;
    fn create_session(&self, s: &NewSession) -> Result<Session, StoreError>;
    /// A live session (not expired at `now`) and its user, if the user is not disabled.
    fn get_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<(Session, User)>, StoreError>;
    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Removes sessions expired at `now`; returns how many.
    fn purge_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

pub trait ApiKeyRepo {
    fn create_api_key(&self, k: &NewApiKey) -> Result<ApiKey, StoreError>;
    /// Unrevoked key with this hash.
    fn get_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    fn revoke_api_key(&self, id: i64) -> Result<(), StoreError>;
}

pub trait AuditRepo {
    /// Appends one event; returns its id. Audit events are never changed or removed.
    fn append_audit(&self, e: &NewAuditEvent) -> Result<i64, StoreError>;
    /// Newest first.
    fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
}

pub trait TxnRepo {
    /// Stores a batch atomically (all or nothing) and idempotently. At most
    /// [`INGEST_BATCH_MAX`] items.
    fn ingest(&self, batch: Vec<NewTxn>, opts: IngestOptions) -> Result<Vec<IngestResult>, IngestError>;
    /// Streams a JSON Lines import: validates every line, stores all of them in one database
    /// transaction, or nothing when any line is bad (every bad line is listed, up to
    /// `opts.errors_max`). `progress` is called every few thousand lines.
    fn bulk_ingest(
        &self,
        lines: &mut dyn Iterator<Item = BulkLine>,
        key: &domain::CardKey,
        source: domain::Source,
        opts: BulkOptions,
        progress: &mut dyn FnMut(BulkProgress),
    ) -> Result<BulkReport, BulkError>;
    /// One page, newest first.
    fn list_txns(&self, q: &TxnQuery) -> Result<TxnPage, StoreError>;
    /// Count and amount per status over everything the query matches (cursor and limit ignored).
    fn summary(&self, q: &TxnQuery) -> Result<Vec<StatusSummary>, StoreError>;
    /// The record and its event history, or `None` when missing or outside `scope`.
    fn get_txn(&self, id: &TxnId, scope: &Scope) -> Result<Option<TxnDetail>, StoreError>;
    /// Totals per settlement date in `[from, to]`, oldest first, for the merchants in scope
    /// (optionally one merchant).
    fn settlements(
        &self,
        scope: &Scope,
        merchant_id: Option<&MerchantId>,
        from: SettlementDate,
        to: SettlementDate,
    ) -> Result<Vec<SettlementDay>, StoreError>;
    /// Streams every matching row (newest first) to `on_row`, at most `rows_max` (capped at
    /// [`EXPORT_ROWS_MAX`]), with bounded memory. An error from `on_row` stops the export.
    /// `on_row` may run on another thread than the caller's (reading and parsing overlap).
    fn export_txns(
        &self,
        q: &TxnQuery,
        rows_max: u64,
        on_row: &mut (dyn FnMut(&TxnRow) -> std::io::Result<()> + Send),
    ) -> Result<ExportOutcome, StoreError>;
    /// Recomputes the hash chain and the status projection; names the first break.
    fn verify(&self) -> Result<VerifyReport, StoreError>;
}

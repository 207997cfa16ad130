//! Plain data the store takes and returns. No serde: the edges convert by hand.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use domain::{
    Amount, AuthCode, BatchNo, CardSummary, Channel, Currency, MerchantClock, MerchantId, MerchantStatus, ResponseCode,
    Role, Rrn, SettlementDate, Source, Stan, TerminalId, TxnKind, TxnStatus,
};

/// Most rows one page may ask for.
pub const PAGE_LIMIT_MAX: u32 = 500;
/// Page size when the caller does not say.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;
/// Most records one `ingest` call takes (the HTTP API's array limit).
pub const INGEST_BATCH_MAX: usize = 1_000;
/// Most rows one export streams.
pub const EXPORT_ROWS_MAX: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

/// Opaque, time-ordered transaction id: 26 characters of Crockford base32 over the receive
/// time (ms, 48 bits) and the chain sequence number (80 bits), like a ULID whose random part is
/// the sequence. Callers must treat it as opaque; the store decodes it to find the row.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub(crate) String);

impl TxnId {
    /// Accepts only well-formed ids; anything else is "not found" to the caller.
    pub fn parse(s: &str) -> Option<TxnId> {
        crate::sqlite::ids::decode(s).map(|_| TxnId(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxnId({})", self.0)
    }
}

/// How an ingest object names its original transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalRef {
    /// Same terminal, this batch and STAN.
    BatchStan { batch_no: BatchNo, stan: Stan },
    /// Any terminal of the same merchant.
    Rrn(Rrn),
}

/// A validated transaction record ready to store. Produced by [`crate::validate`] or built
/// directly by the POS front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTxn {
    pub merchant_id: MerchantId,
    /// Required for the card channel.
    pub terminal_id: Option<TerminalId>,
    pub batch_no: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    pub card: Option<CardSummary>,
    pub amount: Amount,
    pub currency: Currency,
    pub response_code: ResponseCode,
    pub txn_time: DateTime<Utc>,
    pub original: Option<OriginalRef>,
    /// A reversal of `original` (or, without `original`, of the record with the same key).
    pub reversal: bool,
    pub source: Source,
    /// Channel order number for QR channels.
    pub external_ref: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestOptions {
    /// Register unknown merchants and terminals with defaults instead of refusing the item.
    pub create_missing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResult {
    pub id: TxnId,
    /// The same object had been stored before; `id` is the existing record.
    pub duplicate: bool,
}

/// One line of a JSON Lines import: its physical line number and either the object the edge
/// parsed or why it could not parse it.
#[derive(Debug, Clone)]
pub struct BulkLine {
    pub line_no: u64,
    pub object: Result<crate::IngestObject, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkOptions {
    pub create_missing: bool,
    /// Stop collecting errors after this many (the import is refused either way). 0 = 1,000.
    pub errors_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkProgress {
    pub lines_read: u64,
    pub rows_stored: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkReport {
    pub lines: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub merchants_created: u64,
    pub terminals_created: u64,
    pub elapsed_ms: u64,
}

/// What a caller may see. `None` means unrestricted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub merchants: Option<Vec<MerchantId>>,
    /// Staff users: only these terminals.
    pub terminals: Option<Vec<TerminalId>>,
}

impl Scope {
    pub fn all() -> Scope {
        Scope::default()
    }

    pub fn merchant(id: MerchantId) -> Scope {
        Scope { merchants: Some(vec![id]), terminals: None }
    }

    pub fn allows_merchant(&self, id: &MerchantId) -> bool {
        self.merchants.as_ref().is_none_or(|m| m.contains(id))
    }

    pub fn allows_terminal(&self, id: Option<&TerminalId>) -> bool {
        match (&self.terminals, id) {
            (None, _) => true,
            (Some(ts), Some(t)) => ts.contains(t),
            (Some(_), None) => false,
        }
    }
}

/// The time basis of a list range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TxnRange {
    #[default]
    All,
    /// Half-open `[from, to)`.
    TxnTime { from: DateTime<Utc>, to: DateTime<Utc> },
    /// Inclusive on both ends.
    SettlementDate { from: SettlementDate, to: SettlementDate },
}

/// Position after the last row of a page (rows are newest first: `txn_time` desc, then id
/// desc), with the snapshot the first page pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnCursor {
    pub as_of_seq: i64,
    pub txn_time_us: i64,
    pub seq: i64,
}

impl TxnCursor {
    /// A compact token. It carries no merchant data; scope is applied again on every page.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.as_of_seq, self.txn_time_us, self.seq)
    }

    pub fn decode(s: &str) -> Option<TxnCursor> {
        let mut it = s.split('.');
        let c = TxnCursor {
            as_of_seq: it.next()?.parse().ok()?,
            txn_time_us: it.next()?.parse().ok()?,
            seq: it.next()?.parse().ok()?,
        };
        if it.next().is_some() || c.as_of_seq < 0 || c.seq < 0 {
            return None;
        }
        Some(c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnQuery {
    pub scope: Scope,
    pub merchant_id: Option<MerchantId>,
    pub range: TxnRange,
    pub terminal_ids: Vec<TerminalId>,
    pub kinds: Vec<TxnKind>,
    pub statuses: Vec<TxnStatus>,
    pub channels: Vec<Channel>,
    pub card_last4: Option<String>,
    pub rrn: Option<Rrn>,
    pub stan: Option<Stan>,
    pub batch_no: Option<BatchNo>,
    pub auth_code: Option<AuthCode>,
    pub external_ref: Option<String>,
    pub amount_min: Option<Amount>,
    pub amount_max: Option<Amount>,
    /// Highest chain sequence visible. `None` on a first page: the store pins the current one.
    /// A cursor's own `as_of_seq` wins over this.
    pub as_of_seq: Option<i64>,
    pub cursor: Option<TxnCursor>,
    /// 1..=[`PAGE_LIMIT_MAX`]; out-of-range values are clamped.
    pub limit: u32,
}

impl Default for TxnQuery {
    fn default() -> Self {
        TxnQuery {
            scope: Scope::all(),
            merchant_id: None,
            range: TxnRange::All,
            terminal_ids: Vec::new(),
            kinds: Vec::new(),
            statuses: Vec::new(),
            channels: Vec::new(),
            card_last4: None,
            rrn: None,
            stan: None,
            batch_no: None,
            auth_code: None,
            external_ref: None,
            amount_min: None,
            amount_max: None,
            as_of_seq: None,
            cursor: None,
            limit: PAGE_LIMIT_DEFAULT,
        }
    }
}

/// One stored record with its current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRow {
    pub id: TxnId,
    /// Position in the hash chain (also the snapshot unit of `as_of_seq`).
    pub seq: i64,
    pub merchant_id: MerchantId,
    pub terminal_id: Option<TerminalId>,
    pub batch_no: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    pub card: Option<CardSummary>,
    pub amount: Amount,
    pub currency: Currency,
    pub response_code: ResponseCode,
    pub status: TxnStatus,
    pub txn_time: DateTime<Utc>,
    pub txn_time_us: i64,
    /// `txn_time` in the merchant's zone.
    pub local_time: DateTime<FixedOffset>,
    /// IANA name of the merchant's zone.
    pub timezone: String,
    pub settlement_date: SettlementDate,
    pub original_id: Option<TxnId>,
    pub reversal: bool,
    pub source: Source,
    pub external_ref: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPage {
    pub rows: Vec<TxnRow>,
    pub has_more: bool,
    pub next_cursor: Option<TxnCursor>,
    pub as_of_seq: i64,
}

/// A record and its history: the record, then every record naming it as original (and their
/// own followers, e.g. the reversal of a void), in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDetail {
    pub txn: TxnRow,
    /// The record this one names as original, when it has one.
    pub original: Option<TxnRow>,
    pub events: Vec<TxnRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSummary {
    pub status: TxnStatus,
    pub count: u64,
    pub amount_fen: i64,
}

/// Per settlement date totals. `gross_fen`: approved purchases and pre-auth completions that
/// were not voided or reversed; `refund_fen`: approved refunds not reversed; net = gross − refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementDay {
    pub settlement_date: SettlementDate,
    /// Every record with this settlement date.
    pub record_count: u64,
    pub gross_count: u64,
    pub gross_fen: i64,
    pub refund_count: u64,
    pub refund_fen: i64,
    pub net_fen: i64,
    pub declined_count: u64,
    pub reversed_count: u64,
    pub voided_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rows: u64,
    /// More rows matched than `EXPORT_ROWS_MAX` (or the caller's lower max).
    pub truncated: bool,
    pub as_of_seq: i64,
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The stored hash is not the hash of the row's content after its predecessor.
    HashMismatch,
    /// A sequence number is missing (a row was deleted).
    SeqGap { expected_seq: i64 },
    /// The projection disagrees with what the events say.
    StatusMismatch { stored: Option<String>, expected: TxnStatus },
    /// A status row names a record that does not exist.
    OrphanStatus,
    /// The last record is not the recorded chain head (rows removed from the end).
    HeadMismatch { head_seq: i64 },
    /// A column holds a value no writer could have stored.
    BadValue { column: &'static str },
    /// What reconciliation reads of the records (the record chunk starting at `first_seq`)
    /// disagrees with the records themselves.
    ChunkMismatch { first_seq: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub id: Option<TxnId>,
    pub what: BreakKind,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id.as_ref().map(|i| i.as_str()).unwrap_or("-");
        match &self.what {
            BreakKind::HashMismatch => write!(f, "record seq {} id {id}: hash does not match its content", self.seq),
            BreakKind::SeqGap { expected_seq } => {
                write!(f, "record seq {expected_seq} is missing (next present is seq {} id {id})", self.seq)
            }
            BreakKind::StatusMismatch { stored, expected } => write!(
                f,
                "record seq {} id {id}: stored status {} but events say {expected}",
                self.seq,
                stored.as_deref().unwrap_or("(none)")
            ),
            BreakKind::OrphanStatus => write!(f, "status row for seq {} has no record", self.seq),
            BreakKind::HeadMismatch { head_seq } => {
                write!(f, "chain head says seq {head_seq} but the last record is seq {} id {id}", self.seq)
            }
            BreakKind::BadValue { column } => write!(f, "record seq {} id {id}: bad value in {column}", self.seq),
            BreakKind::ChunkMismatch { first_seq } => write!(
                f,
                "record seq {}: the record chunk from seq {first_seq} (what reconciliation reads) does not match the records",
                self.seq
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records_checked: u64,
    pub head_seq: i64,
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Merchants, terminals
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMerchant {
    pub id: MerchantId,
    pub name_zh: String,
    pub name_en: Option<String>,
    pub mcc: Option<String>,
    pub clock: MerchantClock,
    pub single_txn_limit: Option<Amount>,
    pub wechat_sub_mch_id: Option<String>,
    pub alipay_id: Option<String>,
}

impl NewMerchant {
    /// Defaults for `--create-missing`: the id as name, Shanghai, 23:00.
    pub fn with_defaults(id: MerchantId) -> NewMerchant {
        NewMerchant {
            name_zh: id.to_string(),
            id,
            name_en: None,
            mcc: None,
            clock: MerchantClock::default(),
            single_txn_limit: None,
            wechat_sub_mch_id: None,
            alipay_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name_zh: String,
    pub name_en: Option<String>,
    pub mcc: Option<String>,
    pub status: MerchantStatus,
    pub status_reason: Option<String>,
    pub status_since: DateTime<Utc>,
    pub clock: MerchantClock,
    pub single_txn_limit: Option<Amount>,
    pub wechat_sub_mch_id: Option<String>,
    pub alipay_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantStatusChange {
    pub merchant_id: MerchantId,
    pub status: MerchantStatus,
    pub reason: String,
    pub actor: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminalStatus {
    Active,
    Disabled,
}

impl TerminalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TerminalStatus::Active => "active",
            TerminalStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<TerminalStatus> {
        match s {
            "active" => Some(TerminalStatus::Active),
            "disabled" => Some(TerminalStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTerminal {
    pub id: TerminalId,
    pub merchant_id: MerchantId,
    /// Hex as given (a later version encrypts it at rest).
    pub master_key_hex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub id: TerminalId,
    pub merchant_id: MerchantId,
    pub status: TerminalStatus,
    pub master_key_hex: Option<String>,
    pub open_batch: Option<BatchNo>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_sign_on_at: Option<DateTime<Utc>>,
    pub last_settlement_at: Option<DateTime<Utc>>,
    pub last_settlement_result: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Sync state the POS front end reports; `Some` fields overwrite, `None` leave as is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminalSync {
    pub open_batch: Option<BatchNo>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_sign_on_at: Option<DateTime<Utc>>,
    pub last_settlement: Option<(DateTime<Utc>, String)>,
}

// ---------------------------------------------------------------------------------------------
// Users, sessions, API keys, audit
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    /// Staff users: the terminals they may see.
    pub terminals: Vec<TerminalId>,
    /// An argon2 PHC string made by the caller.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    pub terminals: Vec<TerminalId>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Hash of the bearer token (the token itself is never stored).
    pub token_hash: String,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub key_hash: String,
    /// `None`: all merchants.
    pub merchants: Option<Vec<MerchantId>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub key_hash: String,
    pub merchants: Option<Vec<MerchantId>>,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Half-open `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset: events with id below this (newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery { actor: None, action: None, from: None, to: None, before_id: None, limit: PAGE_LIMIT_DEFAULT }
    }
}

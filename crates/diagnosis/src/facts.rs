//! Facts the caller gathered before asking: the user's scope, nearby transactions of the user's
//! own merchant, terminal, clearing, reconciliation and announcement state, and "now".
//!
//! The caller is expected to pass only the user's own data. The engine still re-checks every
//! record against [`Scope`] and silently drops what is outside it ("foreign"), so a caller bug
//! cannot leak another merchant's data into a finding.

use chrono::{DateTime, Utc};
use domain::{
    Amount, AuthCode, BatchNo, Channel, MerchantClock, MerchantId, MerchantStatus, ResponseCode,
    Role, Rrn, SettlementDate, Stan, TerminalId, TxnKind, TxnStatus,
};

use crate::Text;

/// Who is asking and what they may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub role: Role,
    /// The merchants the user belongs to (one for merchant roles, usually).
    pub merchant_ids: Vec<MerchantId>,
    /// `Some` for `merchant_staff`: the only terminals the user may see.
    pub terminal_ids: Option<Vec<TerminalId>>,
}

/// The merchant being diagnosed (one of the user's own).
#[derive(Debug, Clone, PartialEq)]
pub struct MerchantFacts {
    pub merchant_id: MerchantId,
    pub clock: MerchantClock,
    pub status: MerchantStatus,
    /// The reason given with the last status change; empty when active.
    pub status_reason: String,
    pub status_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEventKind {
    VoidedBy,
    ReversedBy,
    RefundedBy,
    CompletedBy,
}

impl TxnEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnEventKind::VoidedBy => "voided_by",
            TxnEventKind::ReversedBy => "reversed_by",
            TxnEventKind::RefundedBy => "refunded_by",
            TxnEventKind::CompletedBy => "completed_by",
        }
    }
}

/// A later record that changed a candidate's status.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnEvent {
    pub kind: TxnEventKind,
    pub transaction_id: String,
    pub at: DateTime<Utc>,
    pub amount: Amount,
    /// For reversals: the reason in the 0400's field 39 (`98` no reply received, `06` other).
    pub reason_code: Option<ResponseCode>,
}

/// A transaction near what the user asked about, from the user's own merchant, any of its
/// terminals, found in the caller's widened window ([`Facts::candidate_window`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub merchant_id: MerchantId,
    /// QR-channel records may have no terminal.
    pub terminal_id: Option<TerminalId>,
    pub batch_no: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    pub status: TxnStatus,
    pub response_code: ResponseCode,
    pub amount: Amount,
    pub card_last4: Option<String>,
    pub txn_time: DateTime<Utc>,
    pub settlement_date: SettlementDate,
    pub original_id: Option<String>,
    pub events: Vec<TxnEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStatus {
    Active,
    Disabled,
}

/// The last 0500 batch settlement a terminal sent.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettlement {
    pub batch_no: BatchNo,
    pub at: DateTime<Utc>,
    pub balanced: bool,
}

/// A batch-upload (0320) item the terminal sent that the host had no record of
/// (`terminal_only`): the terminal has the sale, the platform does not.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadItem {
    pub batch_no: BatchNo,
    pub stan: Stan,
    pub amount: Amount,
    pub uploaded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TerminalFacts {
    pub terminal_id: TerminalId,
    /// The merchant this terminal is bound to. Terminals of other merchants are dropped.
    pub merchant_id: MerchantId,
    pub status: TerminalStatus,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_sign_on: Option<DateTime<Utc>>,
    pub open_batch: Option<BatchNo>,
    pub last_settlement: Option<BatchSettlement>,
    /// Approved transactions in the open batch.
    pub unsettled_count: u32,
    pub upload_items_missing_at_host: Vec<UploadItem>,
}

/// Which channels' clearing files are in for a settlement date. A date with no entry has none.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearingDay {
    pub settlement_date: SettlementDate,
    pub channels_in: Vec<Channel>,
}

/// Reconciliation outcomes (PRODUCT.md "Reconciliation outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconOutcome {
    Matched,
    AmountMismatch,
    MissingInClearing,
    MissingInPlatform,
    StatusMismatch,
    DuplicateInClearing,
    DateShift,
}

impl ReconOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconOutcome::Matched => "matched",
            ReconOutcome::AmountMismatch => "amount_mismatch",
            ReconOutcome::MissingInClearing => "missing_in_clearing",
            ReconOutcome::MissingInPlatform => "missing_in_platform",
            ReconOutcome::StatusMismatch => "status_mismatch",
            ReconOutcome::DuplicateInClearing => "duplicate_in_clearing",
            ReconOutcome::DateShift => "date_shift",
        }
    }
}

/// A reconciliation item whose platform side is one of the candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconItem {
    pub run_id: String,
    pub transaction_id: String,
    pub settlement_date: SettlementDate,
    pub outcome: ReconOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceEffect {
    Query,
    Capture,
    Settlement,
}

impl MaintenanceEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceEffect::Query => "query",
            MaintenanceEffect::Capture => "capture",
            MaintenanceEffect::Settlement => "settlement",
        }
    }
}

/// An announced maintenance window `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    pub announcement_id: String,
    pub title: Text,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub affects: Vec<MaintenanceEffect>,
}

/// Everything the engine may look at. The caller does the I/O; see the crate docs for what to
/// gather.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub scope: Scope,
    pub merchant: MerchantFacts,
    /// The widened window the caller searched for candidates, `[from, to)`.
    pub candidate_window: (DateTime<Utc>, DateTime<Utc>),
    pub candidates: Vec<Candidate>,
    /// The merchant's terminals.
    pub terminals: Vec<TerminalFacts>,
    /// True when a typed terminal id exists but is bound to another merchant. Only bank roles
    /// see this in a finding; for merchant roles the answer is the same as for an unknown id.
    pub typed_terminal_bound_elsewhere: bool,
    pub clearing: Vec<ClearingDay>,
    pub reconciliation: Vec<ReconItem>,
    pub maintenance: Vec<MaintenanceWindow>,
    pub retention_days: u32,
}

//! What the POS front end found wrong in terminals' batch uploads and reversals, kept per
//! terminal so the merchant and the bank see it (spec ISO8583-CUPS §4, PRODUCT "terminals"):
//! plain data and the repository trait. Append-only, like the transaction records: a
//! discrepancy is what was seen at the time, and a later settlement does not erase it.
//!
//! Card data only as BIN and last four digits; the store is never handed a PAN.

use chrono::{DateTime, Utc};
use domain::{BatchNo, MerchantId, TerminalId};

use crate::model::{Scope, TxnId};
use crate::StoreError;

/// What a batch upload or reversal found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PosDiscrepancyKind {
    /// The terminal uploaded an item the host has no approved record of.
    TerminalOnly,
    /// Both have it, with different amounts.
    AmountDiffers,
    /// The host has an approved record the terminal did not upload.
    HostOnly,
    /// The upload's announced item count differs from the items received.
    UploadCountDiffers,
    /// A purchase with refunds was reversed.
    ReversedWithRefunds,
}

impl PosDiscrepancyKind {
    pub const ALL: [PosDiscrepancyKind; 5] = [
        PosDiscrepancyKind::TerminalOnly,
        PosDiscrepancyKind::AmountDiffers,
        PosDiscrepancyKind::HostOnly,
        PosDiscrepancyKind::UploadCountDiffers,
        PosDiscrepancyKind::ReversedWithRefunds,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PosDiscrepancyKind::TerminalOnly => "terminal_only",
            PosDiscrepancyKind::AmountDiffers => "amount_differs",
            PosDiscrepancyKind::HostOnly => "host_only",
            PosDiscrepancyKind::UploadCountDiffers => "upload_count_differs",
            PosDiscrepancyKind::ReversedWithRefunds => "reversed_with_refunds",
        }
    }

    pub fn parse(s: &str) -> Option<PosDiscrepancyKind> {
        PosDiscrepancyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One discrepancy to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPosDiscrepancy {
    pub merchant_id: MerchantId,
    pub terminal_id: TerminalId,
    /// The batch the upload or reversal was about (field 60.2).
    pub batch_no: u32,
    pub stan: Option<u32>,
    pub kind: PosDiscrepancyKind,
    /// For `upload_count_differs`: the count the terminal announced.
    pub terminal_amount_fen: Option<i64>,
    /// For `upload_count_differs`: the items the host received.
    pub host_amount_fen: Option<i64>,
    pub card_bin: Option<String>,
    pub card_last4: Option<String>,
    /// The host's record (`TxnRow::seq`) when the host has one.
    pub txn_seq: Option<i64>,
    pub detail: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// A recorded discrepancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosDiscrepancy {
    pub id: i64,
    pub content: NewPosDiscrepancy,
    /// The host record's public id, when the host has one.
    pub txn_id: Option<TxnId>,
}

/// Per terminal: how many discrepancies of each kind were recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosDiscrepancyCount {
    pub merchant_id: MerchantId,
    pub terminal_id: TerminalId,
    pub kind: PosDiscrepancyKind,
    pub count: u64,
}

pub trait PosRepo {
    /// Records discrepancies in one durable commit (group commit with other writers); an
    /// empty list writes nothing.
    fn record_discrepancies(&self, ds: Vec<NewPosDiscrepancy>) -> Result<(), StoreError>;

    /// Newest first, within `scope` (merchants and, for staff, terminals), optionally one
    /// merchant and one terminal; at most `limit` (clamped to 1..=`PAGE_LIMIT_MAX`).
    fn list_discrepancies(
        &self,
        scope: &Scope,
        merchant_id: Option<&MerchantId>,
        terminal_id: Option<&TerminalId>,
        limit: u32,
    ) -> Result<Vec<PosDiscrepancy>, StoreError>;

    /// Counts per terminal and kind within `scope`, optionally one merchant.
    fn discrepancy_counts(&self, scope: &Scope, merchant_id: Option<&MerchantId>) -> Result<Vec<PosDiscrepancyCount>, StoreError>;

    /// Approved sales and refunds of a terminal still in its open (unsettled) batch with a
    /// transaction time before `before` (typically now − 24 h).
    fn unsettled_older_than(
        &self,
        merchant_id: &MerchantId,
        terminal_id: &TerminalId,
        open_batch: BatchNo,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

use chrono::{DateTime, Utc};
use domain::{
    Amount, AuthCode, BatchNo, CardSummary, Channel, Currency, MerchantId, Rrn, SettlementDate, Source, Stan,
    TerminalId, TxnKind, TxnStatus,
};
use std::fmt;

/// The store's identifier of a platform transaction record. Both backends (SQLite rowid,
/// PostgreSQL bigserial) number rows with an `i64`; the public opaque id is the store's concern.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PlatformId(pub i64);

impl fmt::Display for PlatformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The store's identifier of an imported clearing file. The file's name lives with the store;
/// items carry this id and the physical line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClearingFileId(pub i64);

impl fmt::Display for ClearingFileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What reconciliation keeps of a card: BIN and last four digits (10 bytes, `Copy`, no heap).
/// Never a clear PAN: it is built from a [`CardSummary`] or from a masked number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MaskedCard {
    bin: [u8; 6],
    last4: [u8; 4],
}

impl MaskedCard {
    /// From a BIN of six digits and a last four of four digits; `None` if either is not digits.
    pub fn new(bin: &str, last4: &str) -> Option<MaskedCard> {
        let b = bin.as_bytes();
        let l = last4.as_bytes();
        if b.len() != 6 || l.len() != 4 || !b.iter().chain(l).all(u8::is_ascii_digit) {
            return None;
        }
        let mut card = MaskedCard { bin: [0; 6], last4: [0; 4] };
        card.bin.copy_from_slice(b);
        card.last4.copy_from_slice(l);
        Some(card)
    }

    pub fn from_summary(summary: &CardSummary) -> Option<MaskedCard> {
        MaskedCard::new(&summary.bin, &summary.last4)
    }

    pub fn bin(&self) -> &str {
        std::str::from_utf8(&self.bin).unwrap_or("")
    }

    pub fn last4(&self) -> &str {
        std::str::from_utf8(&self.last4).unwrap_or("")
    }

    /// The last four as a number `0..=9999`, for compact keys.
    pub fn last4_number(&self) -> u16 {
        self.last4.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
    }

    /// `622202******1234` (16 characters; the true length is not kept).
    pub fn masked(&self) -> String {
        format!("{}******{}", self.bin(), self.last4())
    }
}

/// One platform transaction record (one financial message outcome), as the store derives it.
///
/// Give the engine the records whose settlement date is D, and also those of D-1 and D+1 when
/// available: adjacent-day records let a `date_shift` be told apart from a sync gap, and keep an
/// adjacent day's own rows from being claimed by D's records. Records of other dates are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformRecord {
    pub id: PlatformId,
    pub merchant: MerchantId,
    pub terminal: Option<TerminalId>,
    pub batch: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    /// The record's own response was approved (field 39 `00`).
    pub approved: bool,
    /// This record is a reversal (0400) of `original_id`; it carries the original's kind.
    pub is_reversal: bool,
    /// The derived status (`domain::project_status`).
    pub status: TxnStatus,
    pub amount: Amount,
    pub currency: Currency,
    pub card: Option<MaskedCard>,
    pub txn_time: DateTime<Utc>,
    pub settlement_date: SettlementDate,
    /// Channel order number; for QR refunds the refund's own reference.
    pub external_ref: Option<String>,
    /// The transaction this one voids, refunds, reverses or completes.
    pub original_id: Option<PlatformId>,
    /// `batch_upload` items (reported by the terminal at settlement) reconcile like any other.
    pub source: Source,
}

impl PlatformRecord {
    /// Whether the bank is expected to settle this record (PRODUCT.md, reconciliation rules):
    /// approved purchases (also when later voided or refunded: the void and the refund settle as
    /// their own rows), voids, refunds and pre-auth completions. Declined, reversed, pre-auth,
    /// balance-inquiry and reversal records do not.
    pub fn should_settle(&self) -> bool {
        self.approved
            && !self.is_reversal
            && self.kind.settles()
            && !matches!(self.status, TxnStatus::Declined | TxnStatus::Reversed)
    }
}

/// One row of a bank's (or wallet channel's) clearing file, as the clearing importer produced it.
///
/// Give the engine the rows of the files for D and, when imported, for D-1 and D+1 (for
/// `date_shift`). Rows of other dates are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearingRecord {
    pub file: ClearingFileId,
    /// Physical line in the file, the header being line 1.
    pub line: u64,
    pub settlement_date: SettlementDate,
    /// `None` when the file names no merchant poslens could resolve (e.g. an unknown WeChat
    /// sub-merchant): the row then matches on its other identifiers.
    pub merchant: Option<MerchantId>,
    pub terminal: Option<TerminalId>,
    pub batch: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    pub card: Option<MaskedCard>,
    pub amount: Amount,
    pub fee: Amount,
    pub currency: Currency,
    /// The transaction time, converted from the file's local time by the importer.
    pub txn_time: Option<DateTime<Utc>>,
    pub external_ref: Option<String>,
}

/// Where a clearing row came from: a file and a physical line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClearingRef {
    pub file: ClearingFileId,
    pub line: u64,
}

impl ClearingRecord {
    pub fn reference(&self) -> ClearingRef {
        ClearingRef { file: self.file, line: self.line }
    }
}

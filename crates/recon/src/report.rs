use domain::{Amount, Channel, SettlementDate};
use std::fmt;

use crate::{ClearingRecord, PlatformRecord};

/// The outcome of one reconciliation item (PRODUCT.md, "Reconciliation outcomes").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Outcome {
    Matched,
    AmountMismatch,
    MissingInClearing,
    MissingInPlatform,
    StatusMismatch,
    DuplicateInClearing,
    DateShift,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Matched,
        Outcome::AmountMismatch,
        Outcome::MissingInClearing,
        Outcome::MissingInPlatform,
        Outcome::StatusMismatch,
        Outcome::DuplicateInClearing,
        Outcome::DateShift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::AmountMismatch => "amount_mismatch",
            Outcome::MissingInClearing => "missing_in_clearing",
            Outcome::MissingInPlatform => "missing_in_platform",
            Outcome::StatusMismatch => "status_mismatch",
            Outcome::DuplicateInClearing => "duplicate_in_clearing",
            Outcome::DateShift => "date_shift",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which matching pass paired the two sides, strongest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum MatchPass {
    /// Terminal + batch + STAN.
    Key,
    /// Retrieval reference number.
    Rrn,
    /// Channel order number (QR channels).
    ExternalRef,
    /// Terminal, amount, card last 4 and time within the configured window.
    Fuzzy,
}

impl MatchPass {
    pub const ALL: [MatchPass; 4] = [MatchPass::Key, MatchPass::Rrn, MatchPass::ExternalRef, MatchPass::Fuzzy];

    pub fn as_str(self) -> &'static str {
        match self {
            MatchPass::Key => "key",
            MatchPass::Rrn => "rrn",
            MatchPass::ExternalRef => "external_ref",
            MatchPass::Fuzzy => "fuzzy",
        }
    }

    pub fn parse(s: &str) -> Option<MatchPass> {
        MatchPass::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for MatchPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reconciliation item: a clearing row of D, a platform record of D that should settle, or
/// a pair of them. Borrows the records the engine was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub outcome: Outcome,
    /// `None` for unmatched items and for extra copies of a duplicated row.
    pub match_pass: Option<MatchPass>,
    /// For `duplicate_in_clearing`, the record the first copy matched (if any).
    pub platform: Option<&'a PlatformRecord>,
    pub clearing: Option<&'a ClearingRecord>,
}

impl Item<'_> {
    pub fn platform_amount(&self) -> Option<Amount> {
        self.platform.map(|p| p.amount)
    }

    pub fn clearing_amount(&self) -> Option<Amount> {
        self.clearing.map(|c| c.amount)
    }

    /// The amount this item adds to its outcome's total: the platform amount, or the clearing
    /// amount where the platform has none.
    pub fn amount(&self) -> Amount {
        self.platform_amount().or(self.clearing_amount()).unwrap_or(Amount::ZERO)
    }
}

/// Counts and amounts (fen) per outcome, plus the pending records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    counts: [u64; 7],
    amounts_fen: [i64; 7],
    pub pending_count: u64,
    pub pending_amount_fen: i64,
}

impl Summary {
    pub(crate) fn add(&mut self, outcome: Outcome, amount_fen: i64) {
        let i = outcome.index();
        self.counts[i] += 1;
        self.amounts_fen[i] = self.amounts_fen[i].saturating_add(amount_fen);
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts[outcome.index()]
    }

    pub fn amount_fen(&self, outcome: Outcome) -> i64 {
        self.amounts_fen[outcome.index()]
    }

    pub fn total_items(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The result of one run for one settlement date.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    pub settlement_date: SettlementDate,
    /// Clearing rows of D in (file, line) order, then the platform-only items in id order.
    pub items: Vec<Item<'a>>,
    /// Channels with platform records of D awaiting settlement but no clearing file for D.
    pub pending_channels: Vec<Channel>,
    /// Platform records of D in those channels that no clearing row accounts for, in id order:
    /// pending, not `missing_in_clearing`.
    pub pending: Vec<&'a PlatformRecord>,
    pub summary: Summary,
}

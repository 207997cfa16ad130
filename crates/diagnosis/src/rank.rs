//! The ranking model's numbers, in one place so they can be read and argued about together.
//! The model itself is explained in the crate docs ("Ranking").

use crate::finding::{Code, Severity};

// Evidence weights for matching a candidate against the description (log-odds-like points).
// Identifiers that are unique by construction weigh most; values many transactions share
// weigh least. A mismatch on a field the person typed costs as much as a match gains.
pub(crate) const W_RRN: f64 = 8.0;
pub(crate) const W_AUTH_CODE: f64 = 6.0;
pub(crate) const W_STAN: f64 = 4.0;
pub(crate) const W_AMOUNT: f64 = 4.0;
pub(crate) const W_CARD_LAST4: f64 = 3.0;
/// Only a bonus: a different terminal is itself a cause (OTHER_TERMINAL), not a contradiction.
pub(crate) const W_TERMINAL: f64 = 1.0;
/// Time proximity for an instant: `W_TIME · exp(-|Δt| / TIME_TAU_MINUTES)`.
pub(crate) const W_TIME: f64 = 4.0;
pub(crate) const TIME_TAU_MINUTES: f64 = 20.0;
/// A date-only description: same local date, same settlement date, or one day off.
pub(crate) const W_DATE_SAME: f64 = 2.0;
pub(crate) const W_DATE_SETTLEMENT: f64 = 1.5;
pub(crate) const W_DATE_ADJACENT: f64 = 0.5;
/// Closeness to the searched range when the description gives no time of its own.
pub(crate) const W_RANGE: f64 = 2.0;
pub(crate) const RANGE_PROXIMITY_MIN_MINUTES: f64 = 60.0;
/// Points at which a candidate is a coin flip: one strong attribute alone (an exact amount)
/// makes it one; two (amount and card) make it near certain.
pub(crate) const MATCH_PIVOT: f64 = 4.0;

/// A candidate below this match quality is not considered the transaction looked for.
pub(crate) const MATCH_MIN: f64 = 0.5;
/// NOT_FOUND's own score: it leads when nothing else reaches it and no candidate matched.
pub(crate) const NOT_FOUND_SCORE: f64 = 0.3;

pub(crate) fn logistic(points: f64) -> f64 {
    1.0 / (1.0 + (-(points - MATCH_PIVOT)).exp())
}

/// A cause is a code plus the path that produced it; some codes have several paths with
/// different specificity (see the table in the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Retention,
    AccountClosed,
    AccountFrozen,
    MerchantIdMismatch,
    TerminalNotBound,
    Reversed,
    Voided,
    Refunded,
    Declined,
    SyncUploadOnly,
    MissingAtBank,
    MaintenanceQueryVisible,
    SettlementDateShift,
    Timezone,
    OtherTerminal,
    FilteredOut,
    OutsideRange,
    SyncBatchOpen,
    MaintenanceSettlement,
    ClearingPending,
    MaintenanceCapture,
    SyncTerminalSilent,
    MaintenanceQueryNow,
}

impl Cause {
    /// How completely and how actionably this cause explains "I can't find it", given that
    /// its facts hold. The finding's score is `fit × specificity`.
    pub(crate) fn specificity(self) -> f64 {
        match self {
            Cause::Retention => 1.00,
            Cause::AccountClosed => 0.97,
            Cause::AccountFrozen => 0.96,
            Cause::MerchantIdMismatch => 0.95,
            Cause::TerminalNotBound => 0.94,
            Cause::Reversed => 0.92,
            Cause::Voided => 0.91,
            Cause::Refunded => 0.90,
            Cause::Declined => 0.89,
            Cause::SyncUploadOnly => 0.87,
            Cause::MissingAtBank => 0.85,
            Cause::MaintenanceQueryVisible => 0.84,
            Cause::SettlementDateShift => 0.80,
            Cause::Timezone => 0.79,
            Cause::OtherTerminal => 0.78,
            Cause::FilteredOut => 0.76,
            Cause::OutsideRange => 0.74,
            Cause::SyncBatchOpen => 0.72,
            Cause::MaintenanceSettlement => 0.71,
            Cause::ClearingPending => 0.70,
            Cause::MaintenanceCapture => 0.67,
            Cause::SyncTerminalSilent => 0.65,
            Cause::MaintenanceQueryNow => 0.60,
        }
    }

    pub(crate) fn code(self) -> Code {
        match self {
            Cause::Retention => Code::Retention,
            Cause::AccountClosed => Code::AccountClosed,
            Cause::AccountFrozen => Code::AccountFrozen,
            Cause::MerchantIdMismatch => Code::MerchantIdMismatch,
            Cause::TerminalNotBound => Code::TerminalNotBound,
            Cause::Reversed => Code::Reversed,
            Cause::Voided => Code::Voided,
            Cause::Refunded => Code::Refunded,
            Cause::Declined => Code::Declined,
            Cause::SyncUploadOnly | Cause::SyncBatchOpen | Cause::SyncTerminalSilent => {
                Code::SyncPending
            }
            Cause::MissingAtBank => Code::MissingAtBank,
            Cause::MaintenanceQueryVisible
            | Cause::MaintenanceSettlement
            | Cause::MaintenanceCapture
            | Cause::MaintenanceQueryNow => Code::Maintenance,
            Cause::SettlementDateShift => Code::SettlementDateShift,
            Cause::Timezone => Code::Timezone,
            Cause::OtherTerminal => Code::OtherTerminal,
            Cause::FilteredOut => Code::FilteredOut,
            Cause::OutsideRange => Code::OutsideRange,
            Cause::ClearingPending => Code::ClearingPending,
        }
    }

    pub(crate) fn severity(self) -> Severity {
        match self.code() {
            Code::OutsideRange
            | Code::SettlementDateShift
            | Code::Timezone
            | Code::FilteredOut
            | Code::OtherTerminal
            | Code::ClearingPending => Severity::Info,
            Code::AccountFrozen | Code::AccountClosed | Code::MissingAtBank => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

/// Tie-break between equal scores: the order of the specificity table.
pub(crate) fn precedence(code: Code) -> usize {
    const ORDER: &[Code] = &[
        Code::Retention,
        Code::AccountClosed,
        Code::AccountFrozen,
        Code::MerchantIdMismatch,
        Code::TerminalNotBound,
        Code::Reversed,
        Code::Voided,
        Code::Refunded,
        Code::Declined,
        Code::MissingAtBank,
        Code::SettlementDateShift,
        Code::Timezone,
        Code::OtherTerminal,
        Code::FilteredOut,
        Code::OutsideRange,
        Code::SyncPending,
        Code::ClearingPending,
        Code::Maintenance,
        Code::NotFound,
    ];
    ORDER.iter().position(|c| *c == code).unwrap_or(ORDER.len())
}

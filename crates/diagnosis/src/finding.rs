//! What the engine answers: ranked findings and the list of things it checked.

use std::fmt;

/// A message in both portal languages. Chinese is the default language of the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub zh: String,
    pub en: String,
}

impl Text {
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> Text {
        Text {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $word:literal),+ $(,)?) => {
        /// The stable diagnosis codes of PRODUCT.md. Their spelling is part of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),+ }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $word),+ }
            }

            pub fn parse(s: &str) -> Option<Code> {
                match s { $($word => Some(Code::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    OutsideRange = "OUTSIDE_RANGE",
    SettlementDateShift = "SETTLEMENT_DATE_SHIFT",
    Timezone = "TIMEZONE",
    FilteredOut = "FILTERED_OUT",
    Declined = "DECLINED",
    Reversed = "REVERSED",
    Voided = "VOIDED",
    Refunded = "REFUNDED",
    OtherTerminal = "OTHER_TERMINAL",
    TerminalNotBound = "TERMINAL_NOT_BOUND",
    MerchantIdMismatch = "MERCHANT_ID_MISMATCH",
    AccountFrozen = "ACCOUNT_FROZEN",
    AccountClosed = "ACCOUNT_CLOSED",
    SyncPending = "SYNC_PENDING",
    ClearingPending = "CLEARING_PENDING",
    MissingAtBank = "MISSING_AT_BANK",
    Maintenance = "MAINTENANCE",
    Retention = "RETENTION",
    NotFound = "NOT_FOUND",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much the finding should worry the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The transaction is fine; the search missed it.
    Info,
    /// The money did not arrive as expected, or cannot be shown now.
    Warning,
    /// Someone must act: the account, the bank.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceValue {
    Text(String),
    Integer(i64),
    Bool(bool),
    List(Vec<String>),
}

/// Structured key → value pairs, in the order they were added. Times are RFC 3339 in the
/// merchant's zone; amounts are integer fen under keys ending in `_fen`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    entries: Vec<(&'static str, EvidenceValue)>,
}

impl Evidence {
    pub fn new() -> Evidence {
        Evidence::default()
    }

    pub fn text(&mut self, key: &'static str, value: impl Into<String>) -> &mut Evidence {
        self.set(key, EvidenceValue::Text(value.into()))
    }

    pub fn integer(&mut self, key: &'static str, value: i64) -> &mut Evidence {
        self.set(key, EvidenceValue::Integer(value))
    }

    pub fn flag(&mut self, key: &'static str, value: bool) -> &mut Evidence {
        self.set(key, EvidenceValue::Bool(value))
    }

    pub fn list(&mut self, key: &'static str, values: Vec<String>) -> &mut Evidence {
        self.set(key, EvidenceValue::List(values))
    }

    fn set(&mut self, key: &'static str, value: EvidenceValue) -> &mut Evidence {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&EvidenceValue> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value under `key` as text; integers and booleans are rendered, lists joined by `,`.
    pub fn get_text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            EvidenceValue::Text(s) => s.clone(),
            EvidenceValue::Integer(n) => n.to_string(),
            EvidenceValue::Bool(b) => b.to_string(),
            EvidenceValue::List(l) => l.join(","),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &EvidenceValue)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One possible reason the transaction could not be found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: Text,
    pub evidence: Evidence,
    pub next_step: Text,
    /// The user's own transactions this finding is about, best match first.
    pub transaction_ids: Vec<String>,
    /// The ranking score in `[0, 1]` (see the crate docs). Exposed so a ticket can show why
    /// one finding was ranked above another.
    pub score: f64,
}

/// One thing the engine looked at, so that `NOT_FOUND` still shows the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// A stable key: `scope`, `candidates`, `merchant_id`, `terminal_id`, `account`,
    /// `terminals`, `clearing`, `reconciliation`, `maintenance`, `retention`.
    pub subject: &'static str,
    pub note: Text,
}

/// The engine's answer: findings, most likely cause first, and what was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
    pub checked: Vec<Checked>,
}

impl Diagnosis {
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }

    pub fn finding(&self, code: Code) -> Option<&Finding> {
        self.findings.iter().find(|f| f.code == code)
    }
}

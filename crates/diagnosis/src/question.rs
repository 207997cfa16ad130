//! The merchant's question: the list query that came back empty or short, and/or a description
//! of the transaction they are looking for.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use domain::{Amount, AuthCode, Channel, Rrn, SettlementDate, Stan, TxnKind, TxnStatus};

/// Why a question cannot be diagnosed as asked. The HTTP edge maps these to a 400 problem with
/// the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    #[error("a diagnosis needs a query, a description of the expected transaction, or both")]
    Empty,
    #[error("the query range ends ({to}) before it starts ({from})")]
    RangeReversed { from: String, to: String },
    #[error("card_last4 must be exactly 4 digits")]
    CardLast4,
}

/// What the list query's range was compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBasis {
    TxnTime,
    SettlementDate,
}

impl TimeBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeBasis::TxnTime => "txn_time",
            TimeBasis::SettlementDate => "settlement_date",
        }
    }
}

/// The range the list query searched, exactly as the list endpoint resolved it.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchRange {
    /// Transaction instants in `[from, to)`. `timezone` is the zone the user gave the bounds in
    /// (the browser's or the one in the RFC 3339 offset); it may differ from the merchant's.
    TxnTime {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        timezone: Tz,
    },
    /// Settlement dates `from..=to`.
    SettlementDate {
        from: SettlementDate,
        to: SettlementDate,
    },
}

impl SearchRange {
    pub fn basis(&self) -> TimeBasis {
        match self {
            SearchRange::TxnTime { .. } => TimeBasis::TxnTime,
            SearchRange::SettlementDate { .. } => TimeBasis::SettlementDate,
        }
    }
}

/// List filters other than time. An empty `Vec` or `None` means "not filtered".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filters {
    /// As typed: may name a terminal that is not the user's, or be malformed.
    pub terminal_ids: Vec<String>,
    pub kinds: Vec<TxnKind>,
    pub statuses: Vec<TxnStatus>,
    pub channels: Vec<Channel>,
    pub card_last4: Option<String>,
    pub rrn: Option<Rrn>,
    pub stan: Option<Stan>,
    pub auth_code: Option<AuthCode>,
    pub amount_min: Option<Amount>,
    pub amount_max: Option<Amount>,
}

/// The list query that came back empty or short.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// The merchant id in the request, as typed (the list endpoint answered 404 or empty if it
    /// is not the user's).
    pub merchant_id: Option<String>,
    pub range: SearchRange,
    pub filters: Filters,
}

/// When the person believes the transaction happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedTime {
    Instant(DateTime<Utc>),
    /// A calendar date in the merchant's zone ("it was on the 24th").
    LocalDate(NaiveDate),
}

/// What the person is looking for. Every field is optional; the more they give, the sharper
/// the match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expected {
    pub time: Option<ExpectedTime>,
    pub amount: Option<Amount>,
    pub card_last4: Option<String>,
    /// As typed.
    pub terminal_id: Option<String>,
    pub rrn: Option<Rrn>,
    pub stan: Option<Stan>,
    pub auth_code: Option<AuthCode>,
    /// As typed.
    pub merchant_id: Option<String>,
}

/// One diagnosis request. Build it with [`Question::new`] at the edge; [`crate::diagnose`]
/// also accepts a hand-built value that `new` would refuse and never panics on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Question {
    pub query: Option<ListQuery>,
    pub expected: Option<Expected>,
}

impl Question {
    pub fn new(
        query: Option<ListQuery>,
        expected: Option<Expected>,
    ) -> Result<Question, QuestionError> {
        if query.is_none() && expected.is_none() {
            return Err(QuestionError::Empty);
        }
        if let Some(q) = &query {
            match &q.range {
                SearchRange::TxnTime { from, to, .. } if to < from => {
                    return Err(QuestionError::RangeReversed {
                        from: from.to_rfc3339(),
                        to: to.to_rfc3339(),
                    })
                }
                SearchRange::SettlementDate { from, to } if to < from => {
                    return Err(QuestionError::RangeReversed {
                        from: from.to_string(),
                        to: to.to_string(),
                    })
                }
                _ => {}
            }
            if q.filters
                .card_last4
                .as_deref()
                .is_some_and(|s| !is_last4(s))
            {
                return Err(QuestionError::CardLast4);
            }
        }
        if let Some(e) = &expected {
            if e.card_last4.as_deref().is_some_and(|s| !is_last4(s)) {
                return Err(QuestionError::CardLast4);
            }
        }
        Ok(Question { query, expected })
    }
}

fn is_last4(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
}

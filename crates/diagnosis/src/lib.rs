//! Diagnosis: explains why a merchant cannot find a transaction ("为什么查不到这笔交易？").
//!
//! A sans-I/O engine. The caller (the HTTP edge, backed by the store) gathers [`Facts`] and
//! passes a [`Question`]; [`diagnose`] returns ranked [`Finding`]s, each with a stable
//! [`Code`], a Chinese and English message, structured evidence, a next step and the ids of
//! the user's own transactions it is about, plus the list of what was [`Checked`], so that
//! `NOT_FOUND` still shows the work. [`hints`] serves list endpoints that came back empty and
//! [`warnings`] the banner every list response carries.
//!
//! What it deliberately does not do: no database, no clock (`Facts::now` is now), no
//! randomness (the case generator takes a seed), no JSON (types do not derive `Serialize`;
//! the HTTP layer converts, using `code.as_str()`), no authorisation decisions (the caller
//! decides who may ask), and no guessing about data it was not given.
//!
//! # What the caller gathers
//!
//! For the merchant being diagnosed (one of the user's own): its status and clock; every own
//! transaction in a widened window around the question (e.g. the query range or expected
//! time ± 3 days, on all terminals the user may see, any status) as [`Candidate`]s with their
//! void/reversal/refund events; its terminals; clearing-file arrival per settlement date of
//! those candidates; reconciliation items whose platform side is a candidate; maintenance
//! windows near the question and now; the retention period; and whether a typed terminal id
//! exists under another merchant (a boolean, shown only to bank roles).
//!
//! # Usage
//!
//! ```text
//! POST /api/v1/diagnose:
//!   let question = Question::new(query, expected)?;        // QuestionError -> 400 problem
//!   let facts = Facts { .. };                                // gathered by the store
//!   let diagnosis = diagnose(&question, &facts);             // findings + checked
//! GET /api/v1/transactions (empty page):
//!   let hints = hints(&list_query, &facts);                  // at most HINTS_MAX findings
//! every list response:
//!   let warnings = warnings(&facts);                         // maintenance, account, sync
//! ```
//!
//! The edge converts [`Finding`] by hand: `code.as_str()`, `severity.as_str()`, message and
//! next step `{zh, en}`, evidence entries in order, `transaction_ids`.
//!
//! # Scoping
//!
//! A merchant's diagnosis never reveals another merchant's data, not even that it exists.
//! The engine re-checks everything against [`Scope`]: a candidate or terminal of another
//! merchant, or a terminal a staff user may not see, is dropped before anything is looked at
//! and is not even counted in `checked`. A question about another merchant's RRN therefore
//! produces exactly the answer an unknown RRN does, and a typed terminal id bound elsewhere
//! reads exactly like one that exists nowhere (`TERMINAL_NOT_BOUND`, same text), unless the
//! user has a bank role.
//!
//! # Ranking
//!
//! Every detected cause gets `score = fit × specificity`, both in `[0, 1]`; findings are
//! grouped one per code (the best-scoring path wins, all matching transaction ids are kept)
//! and sorted by score, ties broken by the specificity order.
//!
//! **Match quality** (the `fit` of a cause tied to a transaction). Each attribute the person
//! gave adds log-odds-like points when the candidate has the same value and subtracts them
//! when it differs: RRN ±8, auth code ±6, STAN ±4, amount ±4, card last 4 ±3, terminal +1
//! (never negative: another terminal is a cause, not a contradiction), time
//! `4·exp(−|Δt|/20 min)` for an instant, `2 / 1.5 / 0.5` for the same local date / same
//! settlement date / one day off for a date, and `2·exp(−distance/τ)` to the searched range
//! when no time was given (τ = the range's length, at least 60 min). Attributes that come from
//! a list filter rather than the description only add: failing them is what `FILTERED_OUT`
//! means. Quality = `1 / (1 + e^−(points − 4))`: an exact amount alone is a coin flip, amount
//! and card together are near certain, an RRN alone is certain. Candidates below 0.5 are not
//! the transaction. A question that describes nothing (only a range to browse) uses proximity
//! to the range, `exp(−distance/τ)`, instead.
//!
//! **Specificity** ranks causes when the facts for several hold at once. The principle: the
//! cause the merchant must act on first, and that would still stand after the others were
//! fixed, wins.
//!
//! | cause (code / path) | specificity | why there |
//! |---|---|---|
//! | RETENTION | 1.00 | purged by policy: nothing else can be checked |
//! | ACCOUNT_CLOSED / ACCOUNT_FROZEN | 0.97 / 0.96 | root cause of `03` declines and held settlement |
//! | MERCHANT_ID_MISMATCH / TERMINAL_NOT_BOUND | 0.95 / 0.94 | the question itself names the wrong thing |
//! | REVERSED, VOIDED, REFUNDED, DECLINED | 0.92–0.89 | the money did not happen or was undone: widening the search would still not show a sale |
//! | SYNC_PENDING (batch upload reported a sale the host lacks) | 0.87 | a real terminal/host gap |
//! | MISSING_AT_BANK | 0.85 | a bank discrepancy needs a ticket, whatever the search |
//! | MAINTENANCE (query maintenance now; the record matches the query) | 0.84 | the only reason a matching record was not listed |
//! | SETTLEMENT_DATE_SHIFT, TIMEZONE | 0.80, 0.79 | explain *why* the range missed: more specific than OUTSIDE_RANGE |
//! | OTHER_TERMINAL, FILTERED_OUT, OUTSIDE_RANGE | 0.78, 0.76, 0.74 | the record is fine; the search missed it |
//! | SYNC_PENDING (in the terminal's open batch) | 0.72 | upstream of clearing |
//! | MAINTENANCE (settlement window over its settlement date) | 0.71 | explains a late file |
//! | CLEARING_PENDING | 0.70 | transient; resolves by itself |
//! | MAINTENANCE (capture window over the expected time) | 0.67 × (1 − best match) | why a terminal could not send |
//! | SYNC_PENDING (terminal silent since before the expected time) | 0.65 × (1 − best match) | |
//! | MAINTENANCE (query maintenance now) | 0.60 × (1 − best match) | |
//! | NOT_FOUND | 0.30 | shown first only when no candidate matched and nothing scores higher |
//!
//! Causes that say "the record never reached us" (retention, account status without a
//! declined record, silent terminal, capture or query maintenance) are multiplied by
//! `1 − best match quality`: a matching record in hand explains them away. So a declined sale
//! just outside the range is `DECLINED` first and `OUTSIDE_RANGE` second.
//!
//! The seeded generator in [`cases`] builds "can't find it" scenarios with known causes,
//! including ones where two causes hold and the table above decides.

pub mod cases;
mod engine;
pub mod facts;
mod finding;
pub mod question;
mod rank;

pub use engine::{
    diagnose, hints, warnings, CANDIDATES_MAX, HINTS_MAX, TERMINAL_SILENT_WARNING_HOURS,
    TRANSACTION_IDS_MAX,
};
pub use facts::{
    BatchSettlement, Candidate, ClearingDay, Facts, MaintenanceEffect, MaintenanceWindow,
    MerchantFacts, ReconItem, ReconOutcome, Scope, TerminalFacts, TerminalStatus, TxnEvent,
    TxnEventKind, UploadItem,
};
pub use finding::{Checked, Code, Diagnosis, Evidence, EvidenceValue, Finding, Severity, Text};
pub use question::{
    Expected, ExpectedTime, Filters, ListQuery, Question, QuestionError, SearchRange, TimeBasis,
};

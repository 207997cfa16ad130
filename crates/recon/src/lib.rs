//! Reconciliation: platform transaction records against the bank's clearing rows for one
//! settlement date, with item-level outcomes (PRODUCT.md, "Reconciliation outcomes").
//!
//! What it does: pairs records in four passes (`key`, `rrn`, `external_ref`, `fuzzy`), finds
//! duplicated clearing rows, date shifts against the adjacent days' files, status disagreements
//! (declined, reversed, voided here; settled there) and the channels still waiting for a file,
//! and sums counts and amounts per outcome. [`scenario`] generates seeded test data with known
//! outcomes.
//!
//! What it does not do: no I/O of any kind — no files, no database, no clock, no randomness
//! beyond the seeded generator. The store loads the records and keeps the runs; the clearing
//! crate parses files; the CLI and HTTP edges format the report. The engine never sees a clear
//! card number ([`MaskedCard`] holds BIN and last four only).

mod engine;
mod fasthash;
mod record;
mod report;
pub mod scenario;

pub use engine::{reconcile, Input, ReconConfig, ReconError, RECORDS_PER_SIDE_MAX};
pub use record::{ClearingFileId, ClearingRecord, ClearingRef, MaskedCard, PlatformId, PlatformRecord};
pub use report::{Item, MatchPass, Outcome, Report, Summary};

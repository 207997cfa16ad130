//! Clearing-file import (CLEARING-FILES.md): streaming parsers for the bank's and the wallet
//! channels' settlement files, turning bytes into [`ClearingRow`]s or [`BadRow`]s with line,
//! column, value and reason.
//!
//! What it does: the `canonical` CSV, the WeChat Pay trade bill (`wechatpay-tradebill`) and
//! user-defined TOML profiles (CSV or fixed-width; UTF-8, GBK or GB18030); exact amounts
//! (never rounded, except WeChat's 5-decimal fees, rounded half up as WeChat settles them);
//! header validation before any row; encoding errors named by line; totals rows checked;
//! settlement date from the file versus `--date`; card numbers reduced to BIN + last 4 + token
//! on arrival; SHA-256 of the bytes while streaming; progress; conversion to the
//! reconciliation engine's [`recon::ClearingRecord`]; and a canonical CSV writer for tests and
//! benchmarks.
//!
//! What it does not do: no database and no file system. Refusing a file imported before
//! (by its SHA-256), atomic versus `--allow-partial`, the rejects file and resolving WeChat
//! sub-merchant ids to merchants are the caller's (the store and CLI). Memory is bounded by
//! [`LINE_BYTES_MAX`] per line whatever the file's size.

mod error;
mod parse;
mod profile;
mod write;

pub use error::{BadRow, FieldError, FileError, ProfileError};
pub use parse::{
    parse, sha256_of, ClearingRow, FileSummary, ParseOptions, RowSink, LINE_BYTES_MAX, PROGRESS_EVERY_BYTES,
};
pub use profile::{
    AmountUnit, ColumnSource, ColumnSpec, Dialect, Field, Layout, Profile, TextEncoding, SKIP_TRAILING_ROWS_MAX,
};
pub use write::{write_canonical_csv, CANONICAL_HEADER};

/// Collects everything [`parse`] hands over: convenient for tests and small files.
#[derive(Default, Debug)]
pub struct CollectedRows {
    pub rows: Vec<ClearingRow>,
    pub bad_rows: Vec<BadRow>,
    pub last_progress_bytes: u64,
}

impl RowSink for CollectedRows {
    fn row(&mut self, row: ClearingRow) {
        self.rows.push(row);
    }
    fn bad_row(&mut self, bad: BadRow) {
        self.bad_rows.push(bad);
    }
    fn progress(&mut self, bytes_read: u64) {
        self.last_progress_bytes = bytes_read;
    }
}

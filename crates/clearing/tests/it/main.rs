//! Integration tests of the clearing parsers: files written here, imported or refused with the
//! exact line.

use clearing::{parse, CollectedRows, FileError, FileSummary, ParseOptions, Profile};
use domain::{CardKey, SettlementDate, TxnKind};


mod canonical;
mod custom;
mod wechat;

fn key() -> CardKey {
    CardKey::from_bytes(&[9u8; 32]).unwrap()
}

fn import(bytes: &[u8], profile: &Profile, date: Option<&str>) -> Result<(FileSummary, CollectedRows), FileError> {
    let key = key();
    let options = ParseOptions { settlement_date: date.map(|d| SettlementDate::parse(d).unwrap()), card_key: &key };
    let mut sink = CollectedRows::default();
    let summary = parse(bytes, profile, &options, &mut sink)?;
    Ok((summary, sink))
}

/// The bad rows as `line column reason-fragment` strings.
fn bad_lines(rows: &CollectedRows) -> Vec<(u64, String)> {
    rows.bad_rows.iter().flat_map(|b| b.errors.iter().map(move |e| (b.line, e.column.clone()))).collect()
}

use std::io::{self, Write};

use chrono_tz::Tz;
use domain::TxnKind;
use recon::ClearingRecord;

/// The `canonical` header, in CLEARING-FILES.md's order.
pub const CANONICAL_HEADER: &str = "settlement_date,merchant_id,terminal_id,batch_no,stan,rrn,auth_code,kind,card,amount,fee,net_amount,txn_time,currency,channel,external_ref";

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

/// Writes records as a `canonical` CSV file (header, then one row per record in the order
/// given, so record `i` lands on line `i + 2`). Times are written in `timezone`. For benchmarks
/// and tests: the generator's records become a real file to import.
pub fn write_canonical_csv<W: Write>(out: W, records: &[ClearingRecord], timezone: Tz) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(256 * 1024, out);
    writeln!(w, "{CANONICAL_HEADER}")?;
    for r in records {
        let net = r.amount.fen() - r.fee.fen();
        let net = if matches!(r.kind, TxnKind::Void | TxnKind::Refund | TxnKind::PreauthCompletionVoid) { -net } else { net };
        let opt = |v: Option<String>| v.unwrap_or_default();
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.settlement_date,
            opt(r.merchant.as_ref().map(|m| m.to_string())),
            opt(r.terminal.as_ref().map(|t| t.to_string())),
            opt(r.batch.map(|b| b.to_string())),
            opt(r.stan.map(|s| s.to_string())),
            opt(r.rrn.as_ref().map(|x| x.to_string())),
            opt(r.auth_code.as_ref().map(|a| a.to_string())),
            r.kind,
            opt(r.card.map(|c| c.masked())),
            yuan(r.amount.fen()),
            yuan(r.fee.fen()),
            yuan(net),
            opt(r.txn_time.map(|t| t.with_timezone(&timezone).format("%Y-%m-%d %H:%M:%S").to_string())),
            r.currency,
            r.channel,
            r.external_ref.as_deref().unwrap_or(""),
        )?;
    }
    w.flush()
}

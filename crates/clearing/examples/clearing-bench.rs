//! Parse + reconcile benchmark: writes the generator's D-date card clearing rows as a 1M-row
//! canonical CSV (and the platform records as CSV for the DuckDB yardstick), then times parsing
//! that file and reconciling it against the platform records.
//!
//! `cargo run --release -p clearing --example clearing-bench -- [CASES] [DIR]`
//! (default 1,000,000 cases, files in `target/recon-bench/`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clearing::{parse, write_canonical_csv, BadRow, ClearingRow, ParseOptions, Profile, RowSink};
use domain::{CardKey, Channel};
use recon::scenario::{generate, ScenarioRates};
use recon::{reconcile, ClearingFileId, ClearingRecord, Input, Outcome, ReconConfig};

fn peak_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
        / 1024
}

struct IntoRecon {
    file: ClearingFileId,
    records: Vec<ClearingRecord>,
    bad: u64,
}

impl RowSink for IntoRecon {
    fn row(&mut self, row: ClearingRow) {
        self.records.push(row.into_recon(self.file));
    }
    fn bad_row(&mut self, _bad: BadRow) {
        self.bad += 1;
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let cases: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/recon-bench".to_owned()));
    std::fs::create_dir_all(&dir)?;
    // Every clearing row of D in one card file: the wallet rows too, as a bank's combined file.
    let rates = ScenarioRates { matched_by_external_ref: 0.0, pending_channel: 0.0, ..ScenarioRates::default() };
    let s = generate(42, cases, &rates);
    let clearing_d: Vec<ClearingRecord> = s.clearing.iter().filter(|r| r.settlement_date == s.settlement_date).cloned().collect();
    let clearing_path = dir.join("clearing-2026-11-25.csv");
    write_canonical_csv(std::fs::File::create(&clearing_path)?, &clearing_d, chrono_tz::Asia::Shanghai)?;
    let platform_path = dir.join("platform.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&platform_path)?);
        writeln!(w, "id,settlement_date,merchant_id,terminal_id,batch_no,stan,rrn,kind,status,should_settle,amount_fen,external_ref")?;
        for p in &s.platform {
            let opt = |v: Option<String>| v.unwrap_or_default();
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                p.id,
                p.settlement_date,
                p.merchant,
                opt(p.terminal.as_ref().map(ToString::to_string)),
                opt(p.batch.map(|b| b.to_string())),
                opt(p.stan.map(|b| b.to_string())),
                opt(p.rrn.as_ref().map(ToString::to_string)),
                p.kind,
                p.status,
                p.should_settle(),
                p.amount.fen(),
                p.external_ref.as_deref().unwrap_or("")
            )?;
        }
    }
    drop(clearing_d);
    let file_bytes = std::fs::metadata(&clearing_path)?.len();
    println!("files: {} ({} MiB), {}", clearing_path.display(), file_bytes >> 20, platform_path.display());

    let key = CardKey::from_bytes(&[1u8; 32]).map_err(std::io::Error::other)?;
    let options = ParseOptions { settlement_date: Some(s.settlement_date), card_key: &key };
    let mut sink = IntoRecon { file: ClearingFileId(1), records: Vec::with_capacity(cases), bad: 0 };
    let started = Instant::now();
    let summary = parse(std::fs::File::open(&clearing_path)?, &Profile::canonical(), &options, &mut sink)
        .map_err(std::io::Error::other)?;
    let parse_secs = started.elapsed().as_secs_f64();
    println!(
        "parse: {} rows ({} bad) in {parse_secs:.3} s = {:.0} rows/s, {:.0} MiB/s, sha256 {}",
        summary.rows,
        sink.bad,
        summary.rows as f64 / parse_secs,
        file_bytes as f64 / 1048576.0 / parse_secs,
        &summary.sha256_hex()[..16]
    );
    let channels = [Channel::Card, Channel::Wechat, Channel::Alipay, Channel::UnionpayQr];
    let input = Input {
        settlement_date: s.settlement_date,
        platform: &s.platform,
        clearing: &sink.records,
        channels_with_clearing: &channels,
        config: ReconConfig::default(),
    };
    let started = Instant::now();
    let report = reconcile(&input).map_err(std::io::Error::other)?;
    let recon_secs = started.elapsed().as_secs_f64();
    println!(
        "reconcile: {} + {} records in {recon_secs:.3} s = {:.0} records/s",
        s.platform.len(),
        sink.records.len(),
        (s.platform.len() + sink.records.len()) as f64 / recon_secs
    );
    println!("parse + reconcile: {:.3} s, peak memory {} MiB", parse_secs + recon_secs, peak_memory_mib());
    for outcome in Outcome::ALL {
        println!("  {:<22} {:>9}", outcome.as_str(), report.summary.count(outcome));
    }
    Ok(())
}

//! Writes a reconciliation scenario as the files the real commands import: the platform side as
//! JSON Lines for `poslens import transactions --create-missing`, each clearing file as a
//! `canonical` CSV for `poslens import clearing`, and the expected counts per outcome.
//!
//! `cargo run --release -p poslens --example recon-scenario-files -- OUT_DIR CASES [SEED]`

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use recon::scenario::{generate, Scenario, ScenarioRates};
use recon::{Outcome, PlatformRecord};
use serde_json::{json, Value};

fn ingest_object(r: &PlatformRecord, by_id: &HashMap<i64, &PlatformRecord>) -> Value {
    let mut v = json!({
        "merchant_id": r.merchant.to_string(),
        "kind": r.kind.as_str(),
        "channel": r.channel.as_str(),
        "amount": r.amount.fen(),
        "currency": r.currency.as_str(),
        "response_code": if r.approved { "00" } else { "05" },
        "txn_time": r.txn_time.to_rfc3339(),
    });
    let put = |v: &mut Value, k: &str, x: Option<String>| {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    };
    put(&mut v, "terminal_id", r.terminal.as_ref().map(|t| t.to_string()));
    put(&mut v, "batch_no", r.batch.map(|b| b.to_string()));
    put(&mut v, "stan", r.stan.map(|s| s.to_string()));
    put(&mut v, "rrn", r.rrn.as_ref().map(|x| x.to_string()));
    put(&mut v, "auth_code", r.auth_code.as_ref().map(|a| a.to_string()));
    put(&mut v, "card_masked", r.card.map(|c| c.masked()));
    put(&mut v, "external_ref", r.external_ref.clone());
    if r.is_reversal {
        v["reversal"] = json!(true);
    }
    if let Some(o) = r.original_id.and_then(|id| by_id.get(&id.0)) {
        v["original"] = match (o.batch, o.stan) {
            (Some(b), Some(s)) => json!({"batch_no": b.to_string(), "stan": s.to_string()}),
            _ => json!({"rrn": o.rrn.as_ref().map(|x| x.to_string())}),
        };
    }
    v
}

/// Writes `platform.jsonl`, one `clearing-<n>-<channel>-<date>.csv` per file and
/// `expected.json` (`{counts: {outcome: n}, pending_channels}`) into `dir`.
pub fn write_scenario(dir: &Path, s: &Scenario) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let by_id: HashMap<i64, &PlatformRecord> = s.platform.iter().map(|r| (r.id.0, r)).collect();
    let mut platform: Vec<&PlatformRecord> = s.platform.iter().collect();
    // Originals before the records that name them.
    platform.sort_by_key(|r| r.id);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("platform.jsonl"))?);
    for r in platform {
        serde_json::to_writer(&mut w, &ingest_object(r, &by_id))?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut paths = Vec::new();
    for f in &s.files {
        let rows: Vec<recon::ClearingRecord> = s.clearing.iter().filter(|c| c.file == f.id).cloned().collect();
        let path = dir.join(format!("clearing-{}-{}-{}.csv", f.id, f.channel.as_str(), f.settlement_date));
        clearing::write_canonical_csv(std::fs::File::create(&path)?, &rows, chrono_tz::Asia::Shanghai)?;
        paths.push(path);
    }
    let mut counts = serde_json::Map::new();
    for o in Outcome::ALL {
        counts.insert(o.as_str().into(), json!(s.expected.iter().filter(|e| e.outcome == o).count()));
    }
    let expected = json!({"counts": counts, "pending_channels": ["alipay"], "platform": s.platform.len(), "clearing": s.clearing.len()});
    std::fs::write(dir.join("expected.json"), expected.to_string())?;
    Ok(paths)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("recon-scenario");
    let cases: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(42);
    let s = generate(seed, cases, &ScenarioRates::default());
    let paths = write_scenario(Path::new(dir), &s)?;
    println!("{} platform records, {} clearing rows in {} files under {dir}", s.platform.len(), s.clearing.len(), paths.len());
    Ok(())
}

//! Store benchmark: JSON Lines import throughput (durable, chained, indexed), database bytes
//! per million records, and list-query latency on a large store.
//!
//! `cargo run --release -p store --example store_bench -- [ROWS_IMPORT] [ROWS_LARGE] [DIR]`
//! (defaults 1,000,000 and 0; ROWS_LARGE > 0 builds a second store of that many rows over
//! 2,000 merchants in 1M-row imports and times queries on it).

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use domain::{CardKey, MerchantId, Secret, Source, TxnStatus};
use store::*;

/// The allocator `poslens` runs with, so the import measured is the one the command does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MERCHANTS: u64 = 2_000;
const TERMINALS_PER_MERCHANT: u64 = 2;
const DAYS: i64 = 30;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-10-27T00:00:00+08:00").unwrap().with_timezone(&Utc)
}

fn merchant(m: u64) -> String {
    format!("8983100{:08}", m)
}

/// Line `i` of `total`: time-ordered over 30 days; every 20th is declined, every 40th a WeChat
/// payment, and about one in 25 card rows voids its terminal's previous purchase.
fn line(i: u64, total: u64, offset: u64, slice: Option<u64>, out: &mut String) {
    out.clear();
    let m = i % MERCHANTS;
    let t = (i / MERCHANTS) % TERMINALS_PER_MERCHANT;
    let per_part = total / (MERCHANTS * TERMINALS_PER_MERCHANT) + 1;
    let per_terminal = i / (MERCHANTS * TERMINALS_PER_MERCHANT) + offset * per_part;
    let span_us = DAYS * 86_400_000_000;
    let at = match slice {
        // Part `offset` of `parts` covers its own consecutive days (history loaded in order).
        Some(parts) => {
            let part_us = span_us / parts as i64;
            start() + Duration::microseconds(offset as i64 * part_us + i as i64 * (part_us / total as i64))
        }
        // Every part spans all 30 days.
        None => start() + Duration::microseconds(((i + offset * MERCHANTS * TERMINALS_PER_MERCHANT) as i64 % total as i64) * (span_us / total as i64)),
    };
    let time = at.to_rfc3339();
    let stan = per_terminal % 999_999 + 1;
    let batch = per_terminal / 999_999 + 1;
    let amount = 100 + (i * 7919) % 500_000;
    let pan = format!("62220212345{:08}", i % 100_000_000);
    let rrn = format!("{:012}", i + offset * 1_000_000_000);
    let is_wechat = i % 40 == 39;
    let declined = i % 20 == 19;
    // The row 4,000 lines back is the same terminal's previous STAN, with the same i % 40 and
    // i % 20, so it is an approved card purchase whenever this one is an approved card row.
    let is_void = !is_wechat && !declined && per_terminal % 25 == 24 && i >= MERCHANTS * TERMINALS_PER_MERCHANT;
    if is_wechat {
        out.push_str(&format!(
            r#"{{"merchant_id":"{}","kind":"purchase","channel":"wechat","amount":{amount},"currency":"CNY","response_code":"00","txn_time":"{time}","external_ref":"WX{:020}"}}"#,
            merchant(m), i + offset * 1_000_000_000
        ));
    } else if is_void {
        out.push_str(&format!(
            r#"{{"merchant_id":"{}","terminal_id":"{:08}","batch_no":"{batch:06}","stan":"{stan:06}","rrn":"{rrn}","kind":"void","channel":"card","pan":"{pan}","amount":{amount},"currency":"156","response_code":"00","txn_time":"{time}","original":{{"batch_no":"{:06}","stan":"{:06}"}}}}"#,
            merchant(m), t + 1, (per_terminal - 1) / 999_999 + 1, (per_terminal - 1) % 999_999 + 1
        ));
    } else {
        let rc = if declined { "51" } else { "00" };
        out.push_str(&format!(
            r#"{{"merchant_id":"{}","terminal_id":"{:08}","batch_no":"{batch:06}","stan":"{stan:06}","rrn":"{rrn}","auth_code":"{:06}","kind":"purchase","channel":"card","pan":"{pan}","amount":{amount},"currency":"CNY","response_code":"{rc}","txn_time":"{time}"}}"#,
            merchant(m), t + 1, i % 1_000_000
        ));
    }
}

fn s(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_owned)
}

fn to_object(text: &str) -> Result<IngestObject, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let orig = v.get("original");
    Ok(IngestObject {
        merchant_id: s(&v, "merchant_id"),
        terminal_id: s(&v, "terminal_id"),
        batch_no: s(&v, "batch_no"),
        stan: s(&v, "stan"),
        rrn: s(&v, "rrn"),
        auth_code: s(&v, "auth_code"),
        kind: s(&v, "kind"),
        channel: s(&v, "channel"),
        pan: s(&v, "pan").map(Secret::new),
        card_masked: s(&v, "card_masked"),
        amount_fen: v.get("amount").and_then(|x| x.as_i64()),
        currency: s(&v, "currency"),
        response_code: s(&v, "response_code"),
        txn_time: s(&v, "txn_time"),
        original_batch_no: orig.and_then(|o| s(o, "batch_no")),
        original_stan: orig.and_then(|o| s(o, "stan")),
        original_rrn: orig.and_then(|o| s(o, "rrn")),
        reversal: v.get("reversal").and_then(|x| x.as_bool()),
        external_ref: s(&v, "external_ref"),
    })
}

fn write_file(path: &Path, rows: u64, offset: u64, slice: Option<u64>) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = String::new();
    for i in 0..rows {
        line(i, rows, offset, slice, &mut buf);
        w.write_all(buf.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
}

fn import(store: &SqliteStore, key: &CardKey, path: &Path) -> (BulkReport, f64) {
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let mut lines = f.lines().enumerate().map(|(n, l)| BulkLine {
        line_no: n as u64 + 1,
        object: l.map_err(|e| e.to_string()).and_then(|t| to_object(&t)),
    });
    let t0 = Instant::now();
    let report = store
        .bulk_ingest(&mut lines, key, Source::Import, BulkOptions { create_missing: true, errors_max: 10 }, &mut |_| {})
        .unwrap_or_else(|e| panic!("import failed: {e}"));
    (report, t0.elapsed().as_secs_f64())
}

/// CPU seconds (user + system) used so far by this process's threads named `name`: on a
/// shared machine the writer's CPU time is steadier than wall time. Linux only; 0 elsewhere.
fn thread_cpu_s(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name, from field 3 (state): utime is 14, stime 15.
        let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / 100.0
}

fn db_bytes(dir: &Path) -> u64 {
    ["poslens.db", "poslens.db-wal"].iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let large: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let base = args.get(3).map(std::path::PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("store-bench"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let key = CardKey::from_bytes(&[1u8; 32]).unwrap();

    // (a) + (b): one import of `rows` lines into a fresh store.
    let jsonl = base.join("txns.jsonl");
    write_file(&jsonl, rows, 0, None);
    let dir_a = base.join("a");
    let store = SqliteStore::open(&dir_a, StoreConfig::default()).unwrap();
    let main_cpu_before_s = thread_cpu_s("store_bench");
    let (report, secs) = import(&store, &key, &jsonl);
    println!(
        "import: {} lines, {} inserted in {:.2} s = {:.0} rows/s (parse + validate + tokenise + chain + projection + indexes, one durable commit)",
        report.lines, report.inserted, secs, report.inserted as f64 / secs
    );
    println!(
        "import: writer thread CPU {:.2} s, feeding (main) thread CPU {:.2} s",
        thread_cpu_s("store-writer"),
        thread_cpu_s("store_bench") - main_cpu_before_s
    );
    let t0 = Instant::now();
    let v = store.verify().unwrap();
    println!("verify: {} records ok={} in {:.2} s", v.records_checked, v.ok(), t0.elapsed().as_secs_f64());
    drop(store);
    let bytes = db_bytes(&dir_a);
    println!("size: {} bytes for {} rows = {:.0} MB per million", bytes, rows, bytes as f64 / rows as f64 * 1e6 / 1e6);
    let _ = std::fs::remove_file(&jsonl);

    if large == 0 {
        return;
    }
    // (c): a large store, built in 1M-line imports, then query latencies.
    let dir_c = base.join("c");
    let store = SqliteStore::open(&dir_c, StoreConfig::default()).unwrap();
    let chunk = 1_000_000.min(large);
    // STORE_BENCH_PARTS=consecutive: part k covers days [30k/P, 30(k+1)/P), as when history is
    // loaded month by month; otherwise (the default) every part spans all 30 days, so rows
    // consecutive in time come from every part (the worst case for a time-ordered export).
    let consecutive = std::env::var("STORE_BENCH_PARTS").is_ok_and(|v| v == "consecutive");
    let slice = consecutive.then(|| large.div_ceil(chunk));
    let mut done = 0;
    let t0 = Instant::now();
    let mut part = 0;
    while done < large {
        let n = chunk.min(large - done);
        let path = base.join(format!("part{part}.jsonl"));
        write_file(&path, n, part, slice);
        let (r, secs) = import(&store, &key, &path);
        let _ = std::fs::remove_file(&path);
        done += n;
        part += 1;
        println!("large: part {part}: {} rows in {:.1} s ({:.0} rows/s), total {done}", r.inserted, secs, r.inserted as f64 / secs);
    }
    println!("large: {done} rows in {:.0} s, {} bytes", t0.elapsed().as_secs_f64(), db_bytes(&dir_c));

    let iters = 300;
    let mut one_day = Vec::new();
    let mut filtered = Vec::new();
    let mut rows_seen = (0usize, 0usize);
    for k in 0..iters {
        let m = MerchantId::parse(&merchant((k * 7919) % MERCHANTS)).unwrap();
        let day = start() + Duration::days((k % DAYS as u64) as i64);
        let q = TxnQuery {
            scope: Scope::merchant(m.clone()),
            range: TxnRange::TxnTime { from: day, to: day + Duration::days(1) },
            limit: 50,
            ..TxnQuery::default()
        };
        let t = Instant::now();
        let p = store.list_txns(&q).unwrap();
        one_day.push(t.elapsed().as_secs_f64() * 1e3);
        rows_seen.0 += p.rows.len();
        let q = TxnQuery {
            scope: Scope::merchant(m),
            range: TxnRange::TxnTime { from: start(), to: start() + Duration::days(DAYS) },
            statuses: vec![TxnStatus::Approved],
            amount_min: Some(domain::Amount::from_fen(100_000).unwrap()),
            limit: 50,
            ..TxnQuery::default()
        };
        let t = Instant::now();
        let p = store.list_txns(&q).unwrap();
        filtered.push(t.elapsed().as_secs_f64() * 1e3);
        rows_seen.1 += p.rows.len();
    }
    println!(
        "query one merchant one day first page (limit 50, avg {} rows): p50 {:.2} ms p99 {:.2} ms",
        rows_seen.0 / iters as usize,
        pct(&mut one_day, 0.5),
        pct(&mut one_day, 0.99)
    );
    println!(
        "query one merchant 30 days approved & amount>=1000.00 first page (avg {} rows): p50 {:.2} ms p99 {:.2} ms",
        rows_seen.1 / iters as usize,
        pct(&mut filtered, 0.5),
        pct(&mut filtered, 0.99)
    );
}

//! Reconciles a generated scenario and prints throughput and peak memory.
//!
//! `cargo run --release -p recon --example recon-bench -- [CASES] [SEED]` (default 1,000,000).
//! Peak memory is the process's VmHWM from /proc/self/status (inputs included).

use recon::scenario::{generate, ScenarioRates};
use recon::{reconcile, Input, Outcome, ReconConfig};
use std::time::Instant;

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time this thread has used, in seconds (user + system, 10 ms ticks): on a shared machine
/// the wall clock also counts other people's work.
fn thread_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return 0.0 };
    let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0) + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cases: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);

    let started = Instant::now();
    let s = generate(seed, cases, &ScenarioRates::default());
    let generated = started.elapsed();
    let memory_inputs = peak_memory_kib().unwrap_or(0);

    let input = Input {
        settlement_date: s.settlement_date,
        platform: &s.platform,
        clearing: &s.clearing,
        channels_with_clearing: &s.channels_with_clearing,
        config: ReconConfig::default(),
    };
    let cpu_before = thread_cpu_secs();
    let started = Instant::now();
    let report = match reconcile(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reconcile failed: {e}");
            std::process::exit(1);
        }
    };
    let took = started.elapsed();
    let cpu = thread_cpu_secs() - cpu_before;
    let records = s.platform.len() + s.clearing.len();
    println!("cases {cases}  platform {}  clearing {}  items {}", s.platform.len(), s.clearing.len(), report.items.len());
    println!("generate {:.3} s  (peak after generating: {} MiB)", generated.as_secs_f64(), memory_inputs / 1024);
    println!(
        "reconcile {:.3} s wall, {:.2} s CPU  {:.0} records/s (wall)  peak memory {} MiB",
        took.as_secs_f64(),
        cpu,
        records as f64 / took.as_secs_f64(),
        peak_memory_kib().unwrap_or(0) / 1024
    );
    for outcome in Outcome::ALL {
        println!("  {:<22} {:>9}  {:>16} fen", outcome.as_str(), report.summary.count(outcome), report.summary.amount_fen(outcome));
    }
    println!("  {:<22} {:>9}  {:>16} fen", "pending", report.summary.pending_count, report.summary.pending_amount_fen);
}

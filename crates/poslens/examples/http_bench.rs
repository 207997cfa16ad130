//! HTTP benchmark of the transaction-detail query and the CSV export, through the real router
//! on loopback, against a large store built by `store_bench`.
//!
//! `cargo run --release -p store --example store_bench -- 0 10000000 DIR` builds DIR, then
//! `cargo run --release -p poslens --example http_bench -- DIR [REQUESTS]`
//! (`HTTP_BENCH_EXPORT_ONLY=1` runs the export alone).
//! Prints p50/p99 for one merchant's one-day first page and a 30-day filtered page, and the
//! p50/p99 of `POST /diagnose`, and the export rate and peak RSS for a CSV export of every row
//! in a range (bank operator).

use std::time::{Duration, Instant};

use api::{app, AppState};
use domain::{MerchantId, Role};
use store::{MerchantRepo, NewUser, Scope, SqliteStore, StoreConfig, UserRepo};

const PASSWORD: &str = "bench-password";

/// The allocator `poslens` itself runs with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: http_bench DIR [REQUESTS]"));
    let requests: usize = args.next().map(|s| s.parse().expect("REQUESTS")).unwrap_or(1000);
    let store = SqliteStore::open(&dir, StoreConfig::default()).expect("open store");
    let card_key = store::card_key(&dir).expect("card key");
    let merchants = store.list_merchants(&Scope::all()).expect("merchants");
    let m: MerchantId = merchants.get(merchants.len() / 2).expect("a store with merchants").id.clone();
    let hash = api::auth::hash_password(PASSWORD).unwrap();
    for (name, role, mid) in [("bench-merchant", Role::MerchantAdmin, Some(m.clone())), ("bench-bank", Role::BankOperator, None)] {
        if store.get_user_by_username(name).unwrap().is_none() {
            store.create_user(&NewUser { username: name.into(), role, merchant_id: mid, terminals: vec![], password_hash: hash.clone() }).unwrap();
        }
    }
    let state = AppState::new(store, card_key, api::CursorKey::new([3; 32]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let login = |user: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: serde_json::Value = http
                .post(format!("{base}/api/v1/auth/login"))
                .json(&serde_json::json!({"username": user, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_owned()
        }
    };
    eprintln!("RSS after opening the store: {} MiB", vm_rss_kib() / 1024);
    let merchant_token = login("bench-merchant").await;
    let bank_token = login("bench-bank").await;
    println!("store {} merchants; querying merchant {m}; {requests} requests per query", merchants.len());
    let queries = [
        ("one-day first page", "/api/v1/transactions?from=2026-11-10&to=2026-11-10&limit=50".to_owned()),
        ("30-day filtered page", "/api/v1/transactions?from=2026-10-27&to=2026-11-25&status=approved&channel=card&limit=50".to_owned()),
    ];
    // HTTP_BENCH_EXPORT_ONLY=1: only the export, in a fresh process, so its peak RSS is the
    // export's own and not what earlier phases left in the allocator.
    let export_only = std::env::var("HTTP_BENCH_EXPORT_ONLY").is_ok_and(|v| v == "1");
    for (name, q) in queries.iter().filter(|_| !export_only) {
        let url = format!("{base}{q}");
        let mut rows = 0;
        for _ in 0..20 {
            http.get(&url).bearer_auth(&merchant_token).send().await.unwrap().bytes().await.unwrap();
        }
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let r = http.get(&url).bearer_auth(&merchant_token).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let body: serde_json::Value = r.json().await.unwrap();
            times.push(t.elapsed());
            rows = body["data"].as_array().map(Vec::len).unwrap_or(0);
        }
        times.sort();
        println!("{name}: {rows} rows/page, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", percentile(&times, 0.5), percentile(&times, 0.99), percentile(&times, 1.0));
    }
    // "Why can't I find it?": a description with a date and an amount, the common case.
    if !export_only {
        let url = format!("{base}/api/v1/diagnose");
        let body = serde_json::json!({"expected": {"time": "2026-11-10", "amount": 12345, "card_last4": "0001"}});
        let mut times = Vec::with_capacity(requests);
        let mut top = String::new();
        for i in 0..requests + 20 {
            let t = Instant::now();
            let r = http.post(&url).bearer_auth(&merchant_token).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let v: serde_json::Value = r.json().await.unwrap();
            if i >= 20 {
                times.push(t.elapsed());
            }
            top = v["findings"][0]["code"].as_str().unwrap_or("-").to_owned();
        }
        times.sort();
        println!("diagnose (date + amount + last4): top finding {top}, p50 {:.2} ms, p99 {:.2} ms", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    eprintln!("RSS after the queries: {} MiB (peak {} MiB)", vm_rss_kib() / 1024, vm_hwm_kib() / 1024);
    let rss_before = vm_hwm_kib();
    let url = format!("{base}/api/v1/transactions/export?from=2026-10-27&to=2026-11-02&format=csv");
    let t = Instant::now();
    let mut resp = http.get(&url).bearer_auth(&bank_token).send().await.unwrap();
    assert!(resp.status().is_success());
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    let rows = lines.saturating_sub(1);
    println!(
        "export csv: {rows} rows, {:.1} MB in {secs:.2} s = {:.0} rows/s; peak RSS {} MiB (before export {} MiB)",
        bytes as f64 / 1e6,
        rows as f64 / secs,
        vm_hwm_kib() / 1024,
        rss_before / 1024
    );
}

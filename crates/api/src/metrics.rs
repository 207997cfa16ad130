//! Prometheus text metrics: request counts and latency buckets per route template and status
//! class. Route templates (`/api/v1/transactions/{id}`), never raw paths, so ids do not leak into
//! metrics and cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS_MS: [f64; 10] = [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum_ms: f64,
    buckets: [u64; BUCKETS_MS.len()],
}

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), Series>>,
    counters: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed_ms: f64) {
        let mut map = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((method.to_owned(), route.to_owned(), status)).or_default();
        s.count += 1;
        s.sum_ms += elapsed_ms;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if elapsed_ms <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn add(&self, name: &'static str, n: u64) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default() += n;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP poslens_http_request_duration_ms HTTP request latency by route template.\n");
        out.push_str("# TYPE poslens_http_request_duration_ms histogram\n");
        let map = self.http.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), s) in map.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, b) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(out, "poslens_http_request_duration_ms_bucket{{{labels},le=\"{b}\"}} {}", s.buckets[i]);
            }
            let _ = writeln!(out, "poslens_http_request_duration_ms_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "poslens_http_request_duration_ms_sum{{{labels}}} {}", s.sum_ms);
            let _ = writeln!(out, "poslens_http_request_duration_ms_count{{{labels}}} {}", s.count);
        }
        drop(map);
        for (name, v) in self.counters.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {v}");
        }
        out
    }
}

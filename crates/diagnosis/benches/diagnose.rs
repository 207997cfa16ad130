//! diagnose() on a realistic facts set: 500 candidates over ten days, three terminals, ten
//! clearing days, reconciliation items and maintenance windows. The store-side cost of
//! gathering those facts (p99 on 10M rows) is measured separately with the store.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("diagnose");
    for candidates in [50usize, 500, 5_000] {
        let (question, facts) = diagnosis::cases::realistic(7, candidates);
        group.bench_with_input(
            BenchmarkId::new("candidates", candidates),
            &candidates,
            |b, _| b.iter(|| diagnosis::diagnose(black_box(&question), black_box(&facts))),
        );
    }
    let (question, facts) = diagnosis::cases::realistic(7, 500);
    let query = question
        .query
        .clone()
        .expect("the realistic question has a query");
    group.bench_function("hints_500", |b| {
        b.iter(|| diagnosis::hints(black_box(&query), black_box(&facts)))
    });
    group.bench_function("warnings_500", |b| {
        b.iter(|| diagnosis::warnings(black_box(&facts)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

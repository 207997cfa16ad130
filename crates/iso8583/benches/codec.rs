//! Decode and encode of a typical 0200 purchase and its 0210 reply (frames from the shared
//! vectors), on one core. `scripts/iso8583/bench.sh` runs this and the pyiso8583 equivalent.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iso8583::{Message, Request};

fn frame(file: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/spec/vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("vector file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let vec = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap();
    hex::decode(vec["wire_hex"].as_str().unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "0200_purchase",
            frame("purchase.json", "0200_purchase_track2_37"),
        ),
        (
            "0210_purchase",
            frame("purchase.json", "0210_purchase_track2_ok"),
        ),
    ];
    let mut g = c.benchmark_group("iso8583");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in &cases {
        let body = &frame[2..];
        let msg = Message::decode(body).unwrap();
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Message::decode(black_box(body)).unwrap())
        });
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&msg).to_frame().unwrap())
        });
        g.bench_function(format!("decode_and_view/{name}"), |b| {
            b.iter(|| {
                let m = Message::decode(black_box(body)).unwrap();
                Request::from_message(&m).ok()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

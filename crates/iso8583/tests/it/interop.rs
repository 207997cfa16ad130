//! Live interop with pyiso8583 4.0.1 (an independent implementation) as the peer: random
//! messages of every message type (the MTI + field set of each vector) encoded by pyiso8583
//! decode identically here, and messages encoded here decode identically in pyiso8583.
//! Needs `<repo>/.venv` from `scripts/setup-python.sh` (the repo's test command runs it).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use iso8583::Message;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::support::{all_vectors, message_of, random_like, text_fields, vectors_dir};

const SEED: u64 = 8583;
const PER_TEMPLATE: usize = 4;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "pyiso8583 interop needs {} — run scripts/setup-python.sh first (scripts/test.sh does)",
        py.display()
    );
    py
}

fn script() -> PathBuf {
    repo_root().join("scripts/iso8583/interop.py")
}

#[test]
fn pyiso8583_encoded_messages_decode_identically() {
    let out = Command::new(python())
        .arg(script())
        .args([
            "gen",
            &vectors_dir().to_string_lossy(),
            &SEED.to_string(),
            &PER_TEMPLATE.to_string(),
        ])
        .output()
        .expect("run interop.py gen");
    assert!(
        out.status.success(),
        "interop.py gen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages: Vec<Value> = serde_json::from_slice(&out.stdout).expect("gen JSON");
    assert!(messages.len() >= 75 * PER_TEMPLATE);
    for m in &messages {
        let wire = hex::decode(m["wire_hex"].as_str().unwrap()).unwrap();
        let decoded = Message::decode(&wire[2..])
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", m["template"], m["wire_hex"]));
        let want = message_of(m);
        assert_eq!(decoded, want, "{}", m["template"]);
        assert_eq!(text_fields(&decoded), crate::support::fields_of(m));
        assert_eq!(
            decoded.to_frame().unwrap(),
            wire,
            "{}: re-encoding",
            m["template"]
        );
    }
}

#[test]
fn rust_encoded_messages_decode_identically_in_pyiso8583() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut messages = Vec::new();
    for (file, v) in all_vectors() {
        let template = message_of(&v);
        for _ in 0..PER_TEMPLATE {
            let m = random_like(&mut rng, &template);
            let fields: serde_json::Map<String, Value> = text_fields(&m)
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            messages.push(json!({
                "template": format!("{file}/{}", v["name"]),
                "mti": m.mti().to_string(),
                "tpdu_header_hex": hex::encode_upper(m.envelope().to_bytes()),
                "fields": fields,
                "wire_hex": hex::encode_upper(m.to_frame().unwrap()),
            }));
        }
    }
    let mut child = Command::new(python())
        .arg(script())
        .arg("check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run interop.py check");
    let input = serde_json::to_vec(&messages).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("check output: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["checked"], messages.len(), "{report}");
    assert!(out.status.success(), "pyiso8583 disagrees: {report:#}");
}

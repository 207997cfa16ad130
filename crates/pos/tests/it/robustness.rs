//! Malformed frames, random bytes, stalled and idle connections, the connection limit, and an
//! independent pyiso8583 terminal: the offending connection gets `30` or is closed, and the
//! server keeps serving everyone else.

use std::path::PathBuf;
use std::time::Duration;

use pos::sim::Terminal;
use pos::Limits;
use rand::{Rng, SeedableRng};

use crate::*;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/vectors")
}

/// After abuse, a fresh terminal still completes sign-on and a purchase.
async fn still_serving(env: &Env) {
    let mut t = env.signed_on(TID).await;
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "00", "server still serves other terminals");
}

/// Reads until the host closes (Ok(None)) or a reply arrives.
async fn reply_or_close(t: &mut Terminal, wait: Duration) -> Result<Option<iso8583::Message>, String> {
    match t.recv_within(wait).await {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) => Err("neither a reply nor a close in time".into()),
        Err(pos::sim::SimError::Closed) | Err(pos::sim::SimError::Io(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_vectors_get_30_or_a_close_and_nothing_is_recorded() {
    let env = Env::start().await;
    let path = vectors_dir().join("malformed.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let action = v["expected"]["action"].as_str().unwrap();
        let bytes = hex::decode(v["wire_hex"].as_str().unwrap()).unwrap();
        let mut t = env.terminal(TID, MID).await;
        t.send_raw(&bytes).await.unwrap();
        let got = reply_or_close(&mut t, Duration::from_secs(3)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        match (action, got) {
            ("reply_30", Some(r)) => {
                assert_eq!(code(&r), "30", "{name}");
                assert!(!r.has(64), "{name}: a 30 carries no MAC");
                assert!(r.has(11), "{name}");
            }
            ("close" | "close_after_frame_timeout", None) => {}
            (a, g) => panic!("{name}: expected {a}, got {g:?}"),
        }
    }
    assert!(env.rows(TID).is_empty(), "nothing recorded for format errors");
    still_serving(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_never_stop_the_server() {
    let env = Env::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(8583);
    for round in 0..40 {
        let mut t = env.terminal(TID, MID).await;
        let len = rng.gen_range(21..200usize);
        let mut body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if round % 2 == 0 {
            // Half of them look like a plausible envelope and MTI so decoding goes deeper.
            body[..13].copy_from_slice(&hex::decode("60000300006031003113010200").unwrap());
        }
        let mut frame = (len as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        t.send_raw(&frame).await.unwrap();
        if let Some(r) = reply_or_close(&mut t, Duration::from_secs(3)).await.unwrap() {
            assert_eq!(code(&r), "30", "round {round}: random bytes get 30 or a close");
        }
    }
    still_serving(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_half_frame_is_dropped_while_others_are_served() {
    let env = Env::start().await;
    let mut stalled = env.terminal(TID_2, MID).await;
    let m = stalled.sign_on_message().unwrap();
    let frame = m.to_frame().unwrap();
    stalled.send_raw(&frame[..frame.len() / 2]).await.unwrap();
    let started = std::time::Instant::now();
    still_serving(&env).await;
    let got = reply_or_close(&mut stalled, Duration::from_secs(5)).await.unwrap();
    assert!(got.is_none(), "the stalled connection is closed");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "closed by the frame timeout, not at once ({waited:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_the_connection_limit_holds() {
    let env = Env::start_with(Limits {
        connections_max: 2,
        idle_timeout: Duration::from_millis(600),
        frame_read_timeout: Duration::from_millis(600),
        ..Limits::default()
    })
    .await;
    let mut a = env.signed_on(TID).await;
    let _b = env.terminal(TID_2, MID).await;
    let mut c = env.terminal(TID_2, MID).await;
    assert!(reply_or_close(&mut c, Duration::from_secs(2)).await.unwrap().is_none(), "third connection refused");
    assert!(reply_or_close(&mut a, Duration::from_secs(3)).await.unwrap().is_none(), "idle connection closed");
    // Slots free again once the idle ones are gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serving(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiso8583_terminal_runs_sign_on_purchase_void_reversal_settlement() {
    let env = Env::start().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh to create the venv with pyiso8583",
        python.display()
    );
    let port = env.addr.rsplit(':').next().unwrap().to_owned();
    let out = tokio::process::Command::new(&python)
        .arg(root.join("scripts/pos/terminal.py"))
        .args(["--port", &port, "--terminal", TID, "--merchant", MID])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("python terminal timed out").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "terminal.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("settlement balanced"), "{stdout}");
    let rows = env.rows(TID);
    assert!(rows.iter().any(|r| r.kind == domain::TxnKind::Void), "void recorded");
    assert!(rows.iter().any(|r| r.reversal), "reversal recorded");
    env.verify_ok();
}

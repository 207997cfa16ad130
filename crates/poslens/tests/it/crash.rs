//! Crash safety of the POS front end: under load from the terminal simulator the server is
//! killed with SIGKILL; after a restart every transaction a terminal was told was approved is
//! stored, and the chain verifies.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{poslens, start, BIN, MERCHANT};

#[test]
fn every_approved_transaction_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(poslens(data, &["merchant", "add", "--id", MERCHANT, "--name", "crash"], None).0);
    for t in 1..=4 {
        assert!(poslens(data, &["terminal", "add", "--id", &format!("6000000{t}"), "--merchant", MERCHANT], None).0);
    }
    let config = data.join("poslens.toml");
    std::fs::write(&config, "http = \"127.0.0.1:0\"\npos = \"127.0.0.1:0\"\n").unwrap();
    let mut server = start(data, &["serve", "--config", config.to_str().unwrap()], "serving http://", Duration::from_secs(60));
    let pos = server.pos.clone().expect("the serve line names the POS address");
    let log = data.join("approved.log");
    let mut sim = Command::new(BIN)
        .args(["terminal-sim", "--addr", &pos, "--merchant", MERCHANT, "--terminals", "60000001-60000004", "--concurrency", "4"])
        .args(["--count", "100000", "--mix", "purchase:90,void:5,refund:5", "--reply-timeout-s", "2", "--approved-log"])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let approvals accumulate, then kill the server mid-stream.
    let started = Instant::now();
    while std::fs::read_to_string(&log).map(|s| s.lines().count()).unwrap_or(0) < 300 {
        assert!(started.elapsed() < Duration::from_secs(60), "the simulator got no approvals");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    // The simulator stops on its own once the host is gone; bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = sim.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = sim.wait();
    let approved: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    assert!(approved.len() >= 300);

    // Restart: the database opens (recovering its WAL) and serves again.
    let again = start(data, &["serve", "--config", config.to_str().unwrap()], "serving http://", Duration::from_secs(60));
    drop(again);
    let (ok, out, _) = poslens(data, &["verify"], None);
    assert!(ok && out.starts_with("ok:"), "{out}");
    let conn = rusqlite::Connection::open(data.join("poslens.db")).unwrap();
    let mut stmt = conn.prepare("SELECT rrn FROM txn_records WHERE rrn IS NOT NULL").unwrap();
    let stored: HashSet<String> = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
    let missing: Vec<&String> = approved.iter().filter(|l| !stored.contains(l.split(',').nth(3).unwrap())).collect();
    assert!(missing.is_empty(), "{} of {} approved transactions lost, e.g. {:?}", missing.len(), approved.len(), missing.first());
    eprintln!("{} approved before the kill, all stored", approved.len());
}

//! End-to-end: the real `poslens` binary on loopback, driven as a person or a system would.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod crash;
mod recon_cli;

const BIN: &str = env!("CARGO_BIN_EXE_poslens");
const MERCHANT: &str = "898310048990001";

fn poslens(data: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

struct Server {
    child: Child,
    base: String,
    /// The POS front end's address, when the ready line names it.
    pos: Option<String>,
    /// Every later line the process writes (stdout and stderr).
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// SIGKILL: no shutdown code runs.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `poslens <args>` and waits (bounded) for the line naming the HTTP address.
fn start(data: &Path, args: &[&str], marker: &str, limit: Duration) -> Server {
    start_with_env(data, args, marker, limit, &[])
}

fn start_with_env(data: &Path, args: &[&str], marker: &str, limit: Duration, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let started = Instant::now();
    loop {
        let line = match limit.checked_sub(started.elapsed()).map(|left| rx.recv_timeout(left)) {
            Some(Ok(line)) => line,
            // Not ready in time: stop the process before failing, so no server outlives the test.
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server not ready within {limit:?}");
            }
        };
        if let Some(rest) = line.split(marker).nth(1) {
            let addr = rest.split_whitespace().next().unwrap().trim_end_matches('/');
            let pos = line.split("POS terminals on ").nth(1).map(|p| p.trim().to_owned());
            return Server { child, base: addr.to_owned(), pos, lines: rx };
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn login(base: &str, user: &str, password: &str) -> String {
    let r = client().post(format!("{base}/api/v1/auth/login")).json(&json!({"username": user, "password": password})).send().unwrap();
    assert!(r.status().is_success(), "login {user}: {}", r.status());
    r.json::<Value>().unwrap()["token"].as_str().unwrap().to_owned()
}

fn purchase(stan: u32, time: &str) -> Value {
    json!({
        "merchant_id": MERCHANT, "terminal_id": "10000001", "batch_no": "000001", "stan": format!("{stan:06}"),
        "rrn": format!("{:012}", 700_000_000_000u64 + u64::from(stan)), "auth_code": "654321", "kind": "purchase",
        "channel": "card", "pan": "6222021234567890128", "amount": 1000 + i64::from(stan), "currency": "CNY",
        "response_code": "00", "txn_time": time,
    })
}

#[test]
fn serve_ingest_query_page_while_rows_arrive_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(poslens(data, &["merchant", "add", "--id", MERCHANT, "--name", "静安咖啡馆"], None).0);
    assert!(poslens(data, &["terminal", "add", "--id", "10000001", "--merchant", MERCHANT], None).0);
    let (ok, _, err) = poslens(data, &["user", "add", "--username", "owner", "--role", "merchant_admin", "--merchant", MERCHANT, "--password-stdin"], Some("s3cret-pass\n"));
    assert!(ok, "{err}");
    let (ok, key, _) = poslens(data, &["apikey", "create", "--name", "till", "--merchant", MERCHANT], None);
    assert!(ok);
    let key = key.trim().to_owned();
    // A refusal says why and exits non-zero.
    let (ok, _, err) = poslens(data, &["merchant", "add", "--id", "12345", "--name", "x"], None);
    assert!(!ok && err.contains("merchant_id must be 15 characters"), "{err}");

    let config = data.join("poslens.toml");
    std::fs::write(&config, "http = \"127.0.0.1:0\"\npos = \"127.0.0.1:0\"\n").unwrap();
    let server = start(data, &["serve", "--config", config.to_str().unwrap()], "serving http://", Duration::from_secs(60));
    let base = format!("http://{}", server.base);
    let http = client();

    let batch: Vec<Value> = (1..=25).map(|i| purchase(i, &format!("2026-11-20T09:{i:02}:00+08:00"))).collect();
    let r = http.post(format!("{base}/api/v1/transactions")).header("x-api-key", &key).json(&batch).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let token = login(&base, "owner", "s3cret-pass");
    let q = format!("{base}/api/v1/transactions?from=2026-11-20&to=2026-11-20&terminal_id=10000001&status=approved&limit=7");
    let get = |url: &str| -> Value {
        let r = http.get(url).bearer_auth(&token).send().unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.json().unwrap()
    };
    let mut page = get(&q);
    let mut seen: Vec<String> = Vec::new();
    let mut arrivals = 100;
    loop {
        seen.extend(page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        // More rows arrive between pages, inside the range.
        arrivals += 1;
        let more = vec![purchase(arrivals, "2026-11-20T09:30:30+08:00")];
        assert_eq!(http.post(format!("{base}/api/v1/transactions")).header("x-api-key", &key).json(&more).send().unwrap().status().as_u16(), 201);
        match page["next_cursor"].as_str() {
            Some(c) => page = get(&format!("{q}&cursor={c}")),
            None => break,
        }
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (25, 25), "no row skipped or repeated");

    let csv = http.get(format!("{base}/api/v1/transactions/export?from=2026-11-20&to=2026-11-20&format=csv")).bearer_auth(&token).send().unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    let text = csv.text().unwrap();
    assert_eq!(text.lines().count(), 1 + 25 + (arrivals - 100) as usize);
    assert!(!text.contains("6222021234567890128"));
    drop(server);

    // verify: the chain is intact, then an edited row is named.
    let (ok, out, _) = poslens(data, &["verify"], None);
    assert!(ok && out.starts_with("ok:"), "{out}");
    let conn = rusqlite::Connection::open(data.join("poslens.db")).unwrap();
    let seq: i64 = conn.query_row("SELECT seq FROM txn_records ORDER BY seq LIMIT 1 OFFSET 4", [], |r| r.get(0)).unwrap();
    // Someone with the file in hand can drop the guard trigger; the chain still tells.
    conn.execute("DROP TRIGGER txn_records_append_only_update", []).unwrap();
    conn.execute("UPDATE txn_records SET amount_fen = amount_fen + 1 WHERE seq = ?1", [seq]).unwrap();
    drop(conn);
    let (ok, out, _) = poslens(data, &["verify"], None);
    assert!(!ok, "verify must fail after an edit");
    assert!(out.contains("BROKEN") && out.contains(&format!("seq {seq} id ")), "{out}");
}

#[test]
fn import_transactions_is_atomic_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let file = data.join("in.jsonl");
    let good: Vec<String> = (1..=5).map(|i| purchase(i, "2026-11-20T10:00:00+08:00").to_string()).collect();
    let mut bad = good.clone();
    bad.insert(2, "{not json".into());
    let mut negative = purchase(9, "2026-11-20T10:00:00+08:00");
    negative["amount"] = json!(-1);
    bad.push(negative.to_string());
    std::fs::write(&file, bad.join("\n")).unwrap();
    let (ok, _, err) = poslens(data, &["import", "transactions", file.to_str().unwrap(), "--create-missing"], None);
    assert!(!ok);
    assert!(err.contains("line 3:") && err.contains("line 7:"), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    std::fs::write(&file, good.join("\n")).unwrap();
    let (ok, out, err) = poslens(data, &["import", "transactions", file.to_str().unwrap(), "--create-missing"], None);
    assert!(ok, "{err}");
    assert!(out.contains("5 stored"), "{out}");
    let (ok, out, _) = poslens(data, &["verify"], None);
    assert!(ok && out.contains("5 records"), "{out}");
}

#[test]
fn iso_decode_prints_fields_with_the_pan_masked() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/vectors/purchase.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(vectors).unwrap()).unwrap();
    let vector = v["vectors"].as_array().unwrap().iter().find(|x| x["fields"]["2"].is_string()).unwrap();
    let pan = vector["fields"]["2"].as_str().unwrap();
    let (ok, out, err) = poslens(dir.path(), &["iso", "decode", vector["wire_hex"].as_str().unwrap()], None);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["mti"], "0200");
    assert!(!out.contains(pan), "clear PAN printed");
    assert!(out.contains(&pan[pan.len() - 4..]));
    let (ok, _, err) = poslens(dir.path(), &["iso", "decode", "zz"], None);
    assert!(!ok && err.contains("hexadecimal"), "{err}");
}

#[test]
fn demo_serves_generated_data_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let started = Instant::now();
    let server = start(data, &["demo", "--http", "127.0.0.1:0", "--pos", "127.0.0.1:0"], "web portal and API   http://", Duration::from_secs(120));
    let first_start = started.elapsed();
    let base = format!("http://{}", server.base);
    let token = login(&base, "demo-merchant", "poslens-demo");
    let v: Value = client()
        .get(format!("{base}/api/v1/transactions?from={}&include=summary&limit=5", (chrono::Utc::now() - chrono::Duration::days(7)).format("%Y-%m-%d")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 5, "{v}");
    let by_status = &v["summary"]["by_status"];
    for s in ["approved", "declined", "voided"] {
        assert!(by_status[s]["count"].as_u64().unwrap_or(0) > 0, "demo has {s} transactions: {by_status}");
    }
    // A terminal signing on continues after the generated batches: the simulator's purchases
    // are all approved (no 94 from reused batch/STAN keys) and its settlement balances.
    let pos_line = std::iter::from_fn(|| server.lines.recv_timeout(Duration::from_secs(10)).ok())
        // The demo's own line, not the front end's log line ("… INFO pos::server: POS front
        // end listening …" on stderr), which may come first.
        .find(|l| l.trim_start().starts_with("POS front end"))
        .expect("the demo prints the POS address");
    let pos_addr = pos_line.split_whitespace().nth(3).unwrap().to_owned();
    let sim = Command::new(BIN)
        .args(["terminal-sim", "--addr", &pos_addr, "--count", "60", "--concurrency", "3", "--mix", "purchase:100", "--settle"])
        .output()
        .unwrap();
    let sim_out = String::from_utf8_lossy(&sim.stdout);
    assert!(
        sim_out.contains("approved 60  declined 0  errors 0") && sim_out.contains("3 balanced"),
        "{sim_out}\n{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    for user in ["demo-staff", "demo-bank", "demo-auditor", "demo-admin"] {
        login(&base, user, "poslens-demo");
    }
    let bank = login(&base, "demo-bank", "poslens-demo");
    let merchants: Value = client().get(format!("{base}/api/v1/merchants")).bearer_auth(&bank).send().unwrap().json().unwrap();
    let statuses: Vec<&str> = merchants["data"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert!(statuses.len() >= 3 && statuses.contains(&"frozen"), "{statuses:?}");
    drop(server);
    let (ok, out, _) = poslens(data, &["verify"], None);
    let records: u64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(ok && records >= 50_000, "{out}");
    // The second start reuses the data (no regeneration) and is quick.
    let again = start(data, &["demo", "--http", "127.0.0.1:0", "--pos", "127.0.0.1:0"], "web portal and API   http://", Duration::from_secs(60));
    drop(again);
    let (_, out2, _) = poslens(data, &["verify"], None);
    assert_eq!(out, out2, "restart reused the data");
    eprintln!("demo first start: {first_start:?}");
}

#[test]
fn json_logs_never_carry_a_card_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(poslens(data, &["merchant", "add", "--id", MERCHANT, "--name", "logs"], None).0);
    assert!(poslens(data, &["terminal", "add", "--id", "10000001", "--merchant", MERCHANT], None).0);
    let (_, key, _) = poslens(data, &["apikey", "create", "--name", "till"], None);
    let config = data.join("poslens.toml");
    std::fs::write(&config, "http = \"127.0.0.1:0\"\npos = \"127.0.0.1:0\"\n").unwrap();
    let mut server = start_with_env(
        data,
        &["serve", "--config", config.to_str().unwrap()],
        "serving http://",
        Duration::from_secs(60),
        &[("POSLENS_LOG_FORMAT", "json"), ("POSLENS_LOG", "debug")],
    );
    let base = format!("http://{}", server.base);
    let http = client();
    let pan = "6222021234567890128";
    let good = purchase(1, "2026-11-20T09:00:00+08:00");
    let mut bad = purchase(2, "2026-11-20T09:00:00+08:00");
    bad["amount"] = json!(-1);
    for body in [json!([good]), json!([bad])] {
        http.post(format!("{base}/api/v1/transactions")).header("x-api-key", key.trim()).json(&body).send().unwrap();
    }
    // A query string carrying card digits is not logged either.
    http.get(format!("{base}/api/v1/transactions?card_last4=0128&rrn={pan}")).header("x-api-key", key.trim()).send().unwrap();
    server.kill9();
    // The pipe readers forward what is left once the process is gone.
    let mut lines: Vec<String> = Vec::new();
    while let Ok(l) = server.lines.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    let requests: Vec<&String> = lines.iter().filter(|l| l.contains("\"request\"")).collect();
    assert!(requests.len() >= 3, "{lines:#?}");
    for l in &lines {
        assert!(serde_json::from_str::<Value>(l).is_ok() || !l.starts_with('{'), "not JSON: {l}");
        assert!(!l.contains(pan), "a PAN reached the log: {l}");
    }
}

#[test]
fn backup_and_restore_round_trip_and_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("in.jsonl");
    let lines: Vec<String> = (1..=20).map(|i| purchase(i, "2026-11-20T10:00:00+08:00").to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    assert!(poslens(&data, &["import", "transactions", file.to_str().unwrap(), "--create-missing"], None).0);
    let backup = dir.path().join("backup");
    let (ok, out, err) = poslens(&data, &["backup", backup.to_str().unwrap()], None);
    assert!(ok && out.contains("20 records") && out.contains("verified"), "{out}{err}");
    let (ok, _, err) = poslens(&data, &["backup", backup.to_str().unwrap()], None);
    assert!(!ok && err.contains("not empty"), "{err}");
    let restored = dir.path().join("restored");
    let (ok, out, err) = poslens(&restored, &["restore", backup.to_str().unwrap()], None);
    assert!(ok && out.contains("20 records"), "{out}{err}");
    // The card key came along: the same PAN tokenises the same, so the restored store
    // recognises a re-sent transaction as the same one.
    let key_a = std::fs::read(data.join("card.key")).unwrap();
    assert_eq!(key_a, std::fs::read(restored.join("card.key")).unwrap());
    let (ok, out, _) = poslens(&restored, &["import", "transactions", file.to_str().unwrap()], None);
    assert!(ok && out.contains("0 stored, 20 already present"), "{out}");
    let (ok, _, err) = poslens(&restored, &["restore", backup.to_str().unwrap()], None);
    assert!(!ok && err.contains("not empty"), "{err}");
}

//! Clearing upload and reconciliation runs over HTTP: who may do what, paging by outcome, and
//! what merchants see of a run.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_problem, purchase, World, MA, MB};

const TIME: &str = "2026-11-25T10:00:00+08:00";
const HEADER: &str = "settlement_date,merchant_id,terminal_id,batch_no,stan,rrn,auth_code,kind,card,amount,fee,net_amount,txn_time,currency,channel,external_ref";

fn line(merchant: &str, terminal: &str, stan: u32, amount: &str) -> String {
    let rrn = 500_000_000_000u64 + u64::from(stan) + if merchant == MB { 10_000 } else { 0 };
    format!("2026-11-25,{merchant},{terminal},000001,{stan:06},{rrn:012},123456,purchase,622202******0128,{amount},0.00,{amount},2026-11-25 10:00:00,CNY,card,")
}

fn file(lines: &[String]) -> String {
    format!("{HEADER}\n{}\n", lines.join("\n"))
}

async fn upload(w: &World, token: &str, query: &str, body: String) -> crate::support::Resp {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/clearing/files{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(body))
        .unwrap();
    w.raw(req).await
}

/// A's stan 1 matches, A's stan 2 differs in amount, A's stan 3 is missing at the bank, B's
/// stan 1 matches, and the bank has A's stan 9 that the platform never saw.
async fn world_with_run() -> (World, String, i64) {
    let w = World::new();
    let items = json!([
        purchase(MA, "A0000001", 1, 1000, TIME), purchase(MA, "A0000002", 2, 2000, TIME),
        purchase(MA, "A0000001", 3, 3000, TIME), purchase(MB, "B0000001", 1, 4000, TIME),
    ]);
    assert!(w.ingest(&w.key_all, items).await.status.is_success());
    let bank = w.login("bank").await;
    let body = file(&[
        line(MA, "A0000001", 1, "10.00"),
        line(MA, "A0000002", 2, "21.00"),
        line(MB, "B0000001", 1, "40.00"),
        line(MA, "A0000001", 9, "90.00"),
    ]);
    let r = upload(&w, &bank, "?name=card-2026-11-25.csv", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.json()["file"]["rows"], 4);
    // The same bytes again: 409.
    assert_problem(&upload(&w, &bank, "", body).await, StatusCode::CONFLICT, None);
    let r = w.call(Method::POST, "/api/v1/reconciliation/runs", Some(&bank), Some(json!({"settlement_date": "2026-11-25"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let run_id = r.json()["run_id"].as_i64().unwrap();
    (w, bank, run_id)
}

#[tokio::test]
async fn upload_run_and_page_items_by_outcome() {
    let (w, bank, id) = world_with_run().await;
    let run = w.get(&format!("/api/v1/reconciliation/runs/{id}"), &bank).await.json();
    assert_eq!(run["counts"], json!({"matched": 2, "amount_mismatch": 1, "missing_in_clearing": 1, "missing_in_platform": 1,
        "status_mismatch": 0, "duplicate_in_clearing": 0, "date_shift": 0}), "{run}");
    assert_eq!(run["amounts"]["missing_in_platform"], 9000);

    // Two pages of two, then the last item; no item twice.
    let mut seen = Vec::new();
    let mut uri = format!("/api/v1/reconciliation/runs/{id}/items?limit=2");
    loop {
        let page = w.get(&uri, &bank).await.json();
        seen.extend(page["data"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/reconciliation/runs/{id}/items?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen);

    let mip = w.get(&format!("/api/v1/reconciliation/runs/{id}/items?outcome=missing_in_platform"), &bank).await.json();
    let data = mip["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!((data[0]["clearing_file"].as_str(), data[0]["clearing_line"].as_u64()), (Some("card-2026-11-25.csv"), Some(5)));
    // A cursor from one outcome does not page another.
    let first = w.get(&format!("/api/v1/reconciliation/runs/{id}/items?limit=1"), &bank).await.json();
    let c = first["next_cursor"].as_str().unwrap();
    let r = w.get(&format!("/api/v1/reconciliation/runs/{id}/items?outcome=matched&cursor={c}"), &bank).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("cursor"));
    assert_problem(&w.get(&format!("/api/v1/reconciliation/runs/{id}/items?outcome=lost"), &bank).await, StatusCode::BAD_REQUEST, Some("outcome"));

    let csv = w.get(&format!("/api/v1/reconciliation/runs/{id}/items/export?outcome=amount_mismatch"), &bank).await;
    let text = String::from_utf8(csv.bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], api::recon::ITEMS_CSV_HEADER);
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("amount_mismatch,key,898310048990001,A0000002,000001,000002,") && lines[1].ends_with(",card-2026-11-25.csv,3"), "{text}");

    let files = w.get("/api/v1/clearing/files?from=2026-11-20&to=2026-11-30", &bank).await.json();
    assert_eq!(files["data"].as_array().unwrap().len(), 1);
    assert_eq!(files["status"][0]["channel"], "card");
    assert_eq!(files["status"][0]["rows"], 4);
}

#[tokio::test]
async fn merchants_see_only_their_items_without_bank_fields_and_others_are_refused() {
    let (w, _bank, id) = world_with_run().await;
    let a = w.login("a-admin").await;
    let items = w.get(&format!("/api/v1/reconciliation/runs/{id}/items"), &a).await.json();
    let data = items["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "A has four items: {items}");
    assert!(data.iter().all(|i| i["merchant_id"] == MA && i.get("clearing_file").is_none() && i.get("clearing_fee").is_none()), "{items}");
    let run = w.get(&format!("/api/v1/reconciliation/runs/{id}"), &a).await.json();
    assert_eq!(run["counts"]["matched"], 1, "A's own totals: {run}");
    let csv = String::from_utf8(w.get(&format!("/api/v1/reconciliation/runs/{id}/items/export"), &a).await.bytes).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",,")), "no clearing file or line for merchants: {csv}");

    let staff = w.login("a-staff").await; // terminal A0000001 only
    let items = w.get(&format!("/api/v1/reconciliation/runs/{id}/items"), &staff).await.json();
    assert!(items["data"].as_array().unwrap().iter().all(|i| i["terminal_id"] == "A0000001"), "{items}");
    assert_eq!(items["data"].as_array().unwrap().len(), 3);

    let b = w.login("b-admin").await;
    let items = w.get(&format!("/api/v1/reconciliation/runs/{id}/items"), &b).await.json();
    assert_eq!(items["data"].as_array().unwrap().len(), 1);

    // Merchants cannot upload or run; admins cannot read; an unknown run is 404.
    assert_problem(&upload(&w, &a, "", file(&[line(MA, "A0000001", 7, "7.00")])).await, StatusCode::FORBIDDEN, None);
    let r = w.call(Method::POST, "/api/v1/reconciliation/runs", Some(&a), Some(json!({"settlement_date": "2026-11-25"}))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let admin = w.login("admin").await;
    assert_problem(&w.get(&format!("/api/v1/reconciliation/runs/{id}"), &admin).await, StatusCode::FORBIDDEN, None);
    assert_problem(&w.get("/api/v1/clearing/files", &a).await, StatusCode::FORBIDDEN, None);
    assert_problem(&w.get("/api/v1/reconciliation/runs/999/items", &a).await, StatusCode::NOT_FOUND, None);
    let auditor = w.login("auditor").await;
    let all = w.get(&format!("/api/v1/reconciliation/runs/{id}/items"), &auditor).await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert!(all["data"][0].get("clearing_file").is_some());
}

#[tokio::test]
async fn a_bad_row_refuses_the_upload_naming_line_and_column_unless_partial() {
    let w = World::new();
    let bank = w.login("bank").await;
    let body = file(&[line(MA, "A0000001", 1, "10.00"), line(MA, "A0000001", 2, "12.345")]);
    let r = upload(&w, &bank, "", body.clone()).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    let errors = r.json()["errors"].clone();
    assert!(errors.as_array().unwrap().iter().any(|e| e["line"] == 3 && e["column"] == "amount" && e["value"] == "12.345"), "{errors}");
    assert!(w.get("/api/v1/clearing/files", &bank).await.json()["data"].as_array().unwrap().is_empty());
    let r = upload(&w, &bank, "?allow_partial=true", body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v: Value = r.json();
    assert_eq!((v["file"]["rows"].as_u64(), v["file"]["bad_rows"].as_u64()), (Some(1), Some(1)));
    assert_eq!(v["rejected"][0]["line"], 3);
}

async fn ask(w: &World, token: &str, body: Value) -> Value {
    let r = w.call(Method::POST, "/api/v1/diagnose", Some(token), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()
}

#[tokio::test]
async fn diagnosis_reads_reconciliation_and_clearing_arrival() {
    let (w, _bank, _run) = world_with_run().await;
    let a = w.login("a-admin").await;
    // A's stan 3 was approved here but is not in the bank's file.
    let v = ask(&w, &a, json!({"expected": {"rrn": "500000000003"}})).await;
    assert_eq!(v["findings"][0]["code"], "MISSING_AT_BANK", "{v}");
    // A sale on a date whose card file has not arrived: the bank's side is pending.
    let next_day = purchase(MA, "A0000001", 20, 2500, "2026-11-26T10:00:00+08:00");
    assert!(w.ingest(&w.key_all, json!([next_day])).await.status.is_success());
    let v = ask(&w, &a, json!({"expected": {"rrn": "500000000020"}})).await;
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"CLEARING_PENDING"), "{v}");
}

/// A merchant with more items in a run than one page: the diagnosis still finds the item of
/// the transaction asked about, wherever it lies in the run.
#[tokio::test]
async fn diagnosis_finds_an_item_beyond_the_first_page_of_a_large_run() {
    let w = World::new();
    let total = 700u32;
    let missing = 650u32;
    let items: Vec<Value> = (1..=total).map(|stan| purchase(MA, "A0000001", stan, 1000 + i64::from(stan), TIME)).collect();
    assert!(w.ingest(&w.key_all, json!(items)).await.status.is_success());
    let bank = w.login("bank").await;
    let lines: Vec<String> = (1..=total)
        .filter(|&stan| stan != missing)
        .map(|stan| {
            let fen = 1000 + stan;
            line(MA, "A0000001", stan, &format!("{}.{:02}", fen / 100, fen % 100))
        })
        .collect();
    let r = upload(&w, &bank, "?name=card-2026-11-25.csv", file(&lines)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let r = w.call(Method::POST, "/api/v1/reconciliation/runs", Some(&bank), Some(json!({"settlement_date": "2026-11-25"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let run = w.get(&format!("/api/v1/reconciliation/runs/{}", r.json()["run_id"]), &bank).await.json();
    assert_eq!((run["counts"]["matched"].as_u64(), run["counts"]["missing_in_clearing"].as_u64()), (Some(699), Some(1)), "{run}");

    let a = w.login("a-admin").await;
    let v = ask(&w, &a, json!({"expected": {"rrn": format!("{:012}", 500_000_000_000u64 + u64::from(missing))}})).await;
    assert_eq!(v["findings"][0]["code"], "MISSING_AT_BANK", "{v}");
}

mod digest_beside_the_parse {
    use super::*;
    use api::recon::{import_clearing, ClearingImportRefusal, ClearingImportRequest, FileDigest};
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::sync_channel;
    use std::sync::Arc;
    use store::{ClearingRepo, SqliteStore, StoreConfig};

    fn bytes(rows: u32) -> Vec<u8> {
        let lines: Vec<String> = (1..=rows).map(|i| line(MA, "A0000001", i, "10.00")).collect();
        file(&lines).into_bytes()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
    }

    /// Counts the bytes the parse has read.
    struct Counting<'b> {
        inner: &'b [u8],
        read: Arc<AtomicU64>,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
    }

    /// The CLI computes the digest beside the parse: rows parsed before it is known are held,
    /// then stored; a wrong digest, a failed one and bytes imported before are each refused
    /// with nothing kept.
    #[test]
    fn rows_wait_for_the_digest_and_every_refusal_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
        let card_key = store::card_key(dir.path()).unwrap();
        let profile = clearing::Profile::canonical();
        let req = ClearingImportRequest {
            name: "card.csv".into(),
            profile: &profile,
            settlement_date: None,
            allow_partial: false,
            replace: false,
            actor: "test".into(),
        };
        let data = bytes(20_000);
        let import = |digest: FileDigest<'_>, reader: &mut dyn Read| import_clearing(&store, &card_key, digest, reader, &req, &mut |_| {});

        // The digest arrives only once the parse has read a megabyte: the rows before it wait.
        let read = Arc::new(AtomicU64::new(0));
        let (tx, rx) = sync_channel(1);
        let (seen, digest) = (Arc::clone(&read), sha(&data));
        let sender = std::thread::spawn(move || {
            while seen.load(Ordering::SeqCst) < 1 << 20 {
                std::thread::yield_now();
            }
            tx.send(Ok(digest)).unwrap();
        });
        let out = import(FileDigest::Pending(rx), &mut Counting { inner: &data, read }).unwrap();
        sender.join().unwrap();
        assert_eq!((out.file.rows, out.summary.rows), (20_000, 20_000));
        assert_eq!(store.list_clearing_files(10).unwrap().len(), 1);

        // The same bytes again: refused once the digest is known, before the parse ends.
        let (tx, rx) = sync_channel(1);
        tx.send(Ok(sha(&data))).unwrap();
        let refused = import(FileDigest::Pending(rx), &mut &data[..]).unwrap_err();
        assert!(matches!(refused, ClearingImportRefusal::Duplicate(_)), "{refused:?}");

        // The same bytes under a profile whose columns they lack: still named as imported
        // before, not as a missing column.
        let wechat = clearing::Profile::builtin("wechatpay-tradebill").unwrap();
        let wrong = ClearingImportRequest {
            name: "card.csv".into(),
            profile: &wechat,
            settlement_date: None,
            allow_partial: false,
            replace: false,
            actor: "test".into(),
        };
        let (tx, rx) = sync_channel(1);
        tx.send(Ok(sha(&data))).unwrap();
        let refused = import_clearing(&store, &card_key, FileDigest::Pending(rx), &data[..], &wrong, &mut |_| {}).unwrap_err();
        assert!(matches!(refused, ClearingImportRefusal::Duplicate(_)), "{refused:?}");

        // A digest of other bytes: the file changed while it was read.
        let other = bytes(3);
        let (tx, rx) = sync_channel(1);
        tx.send(Ok(sha(b"something else"))).unwrap();
        let refused = import(FileDigest::Pending(rx), &mut &other[..]).unwrap_err();
        assert!(refused.to_string().contains("changed"), "{refused}");

        // The digest could not be computed.
        let (tx, rx) = sync_channel(1);
        tx.send(Err(std::io::Error::other("disk gone"))).unwrap();
        let refused = import(FileDigest::Pending(rx), &mut &other[..]).unwrap_err();
        assert!(matches!(refused, ClearingImportRefusal::File(_)), "{refused:?}");
        let (tx, rx) = sync_channel::<std::io::Result<String>>(1);
        drop(tx);
        let refused = import(FileDigest::Pending(rx), &mut &other[..]).unwrap_err();
        assert!(matches!(refused, ClearingImportRefusal::File(_)), "{refused:?}");

        let files = store.list_clearing_files(10).unwrap();
        assert_eq!(files.len(), 1, "only the first import was kept: {files:?}");
    }
}

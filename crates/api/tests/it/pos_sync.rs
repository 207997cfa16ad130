//! Terminal sync state from the POS front end: discrepancies found by batch upload, the counts
//! on the terminals list, and diagnosis seeing the items the host lacked. Discrepancies are put
//! in through the store, as the POS front end does.

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use domain::{BatchNo, MerchantId, TerminalId};
use serde_json::{json, Value};
use store::{NewPosDiscrepancy, PosDiscrepancyKind, PosRepo, TerminalRepo, TerminalSync};

use crate::support::*;

fn d(merchant: &str, terminal: &str, kind: PosDiscrepancyKind, stan: u32, terminal_fen: Option<i64>, host_fen: Option<i64>) -> NewPosDiscrepancy {
    NewPosDiscrepancy {
        merchant_id: MerchantId::parse(merchant).unwrap(),
        terminal_id: TerminalId::parse(terminal).unwrap(),
        batch_no: 1,
        stan: Some(stan),
        kind,
        terminal_amount_fen: terminal_fen,
        host_amount_fen: host_fen,
        card_bin: Some("622202".into()),
        card_last4: Some("0128".into()),
        txn_seq: None,
        detail: None,
        recorded_at: Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap(),
    }
}

fn seed(w: &World) {
    use PosDiscrepancyKind::*;
    w.store
        .record_discrepancies(vec![
            d(MA, "A0000001", TerminalOnly, 41, Some(12_800), None),
            d(MA, "A0000001", AmountDiffers, 42, Some(1_500), Some(1_000)),
            d(MA, "A0000002", HostOnly, 43, None, Some(700)),
            d(MA, "A0000001", TerminalOnly, 44, Some(300), None),
            d(MB, "B0000001", TerminalOnly, 45, Some(999), None),
        ])
        .unwrap();
}

fn data(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()["data"].as_array().unwrap().clone()
}

fn stans(list: &[Value]) -> Vec<&str> {
    list.iter().map(|d| d["stan"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn discrepancies_are_listed_newest_first_within_the_callers_scope() {
    let w = World::new();
    seed(&w);
    let a = w.login("a-admin").await;
    let list = data(&w.get("/api/v1/terminals/discrepancies", &a).await);
    assert_eq!(stans(&list), ["000044", "000043", "000042", "000041"], "merchant A only, newest first");
    let amount_differs = &list[2];
    assert_eq!(amount_differs["kind"], "amount_differs");
    assert_eq!((amount_differs["terminal_amount"].as_i64(), amount_differs["host_amount"].as_i64()), (Some(1_500), Some(1_000)));
    assert_eq!((amount_differs["card_bin"].as_str(), amount_differs["card_last4"].as_str()), (Some("622202"), Some("0128")));
    assert_eq!(amount_differs["batch_no"], "000001");
    assert_eq!(amount_differs["recorded_at"], "2026-11-21T10:00:00+08:00", "in the merchant's time zone");
    let one = data(&w.get("/api/v1/terminals/discrepancies?terminal_id=A0000002&limit=5", &a).await);
    assert_eq!(stans(&one), ["000043"]);
    assert_eq!(data(&w.get("/api/v1/terminals/discrepancies?limit=1", &a).await).len(), 1);
    // Another merchant's is not there at all.
    assert_problem(&w.get(&format!("/api/v1/terminals/discrepancies?merchant_id={MB}"), &a).await, StatusCode::NOT_FOUND, None);
    // Staff: their terminals only; another terminal is not found.
    let staff = w.login("a-staff").await;
    assert_eq!(stans(&data(&w.get("/api/v1/terminals/discrepancies", &staff).await)), ["000044", "000042", "000041"]);
    assert_problem(&w.get("/api/v1/terminals/discrepancies?terminal_id=A0000002", &staff).await, StatusCode::NOT_FOUND, None);
    // The bank and the auditor see every merchant's.
    for user in ["bank", "auditor"] {
        let t = w.login(user).await;
        assert_eq!(data(&w.get("/api/v1/terminals/discrepancies", &t).await).len(), 5, "{user}");
        let b = data(&w.get(&format!("/api/v1/terminals/discrepancies?merchant_id={MB}"), &t).await);
        assert_eq!(stans(&b), ["000045"], "{user}");
    }
    // Not for administrators or API keys; bad parameters are named.
    let admin = w.login("admin").await;
    assert_problem(&w.get("/api/v1/terminals/discrepancies", &admin).await, StatusCode::FORBIDDEN, None);
    assert_problem(&w.get("/api/v1/terminals/discrepancies", &w.key_all).await, StatusCode::FORBIDDEN, None);
    assert_problem(&w.get("/api/v1/terminals/discrepancies?limit=0", &a).await, StatusCode::BAD_REQUEST, Some("limit"));
    assert_problem(&w.get("/api/v1/terminals/discrepancies?terminal_id=x", &a).await, StatusCode::BAD_REQUEST, Some("terminal_id"));
}

#[tokio::test]
async fn the_terminals_list_counts_missing_upload_items_and_old_unsettled_sales() {
    let w = World::new();
    seed(&w);
    let (mid, tid) = (MerchantId::parse(MA).unwrap(), TerminalId::parse("A0000001").unwrap());
    let sync = TerminalSync { open_batch: Some(BatchNo::new(1).unwrap()), last_seen_at: Some(Utc::now()), ..TerminalSync::default() };
    w.store.update_terminal_sync(&mid, &tid, &sync).unwrap();
    let old = (Utc::now() - Duration::hours(30)).to_rfc3339();
    let recent = (Utc::now() - Duration::hours(2)).to_rfc3339();
    let mut declined = purchase(MA, "A0000001", 3, 500, &old);
    declined["response_code"] = json!("51");
    declined.as_object_mut().unwrap().remove("auth_code");
    let mut other_batch = purchase(MA, "A0000001", 4, 500, &old);
    other_batch["batch_no"] = json!("000002");
    let items = json!([purchase(MA, "A0000001", 1, 100, &old), purchase(MA, "A0000001", 2, 200, &recent), declined, other_batch]);
    let r = w.ingest(&w.key_all, items).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let a = w.login("a-admin").await;
    let list = data(&w.get("/api/v1/terminals", &a).await);
    let sync_of = |id: &str| list.iter().find(|t| t["terminal_id"] == id).unwrap()["sync"].clone();
    let s1 = sync_of("A0000001");
    assert_eq!(s1["upload_items_missing_at_host"], 2, "{s1}");
    assert_eq!(s1["unsettled_older_than_24h"], 1, "only the approved sale of the open batch older than 24 h: {s1}");
    assert_eq!(s1["open_batch"], "000001");
    let s2 = sync_of("A0000002");
    assert_eq!((s2["upload_items_missing_at_host"].as_i64(), s2["unsettled_older_than_24h"].as_i64()), (Some(0), Some(0)), "{s2}");
    // The bank sees merchant B's terminal with its own count.
    let bank = w.login("bank").await;
    let all = data(&w.get("/api/v1/terminals", &bank).await);
    let b1 = all.iter().find(|t| t["terminal_id"] == "B0000001").unwrap();
    assert_eq!(b1["sync"]["upload_items_missing_at_host"], 1);
}

#[tokio::test]
async fn diagnosis_sees_an_item_the_terminal_uploaded_that_the_host_lacks() {
    let w = World::new();
    seed(&w);
    let a = w.login("a-admin").await;
    let body = json!({"expected": {"time": "2026-11-21T09:30:00+08:00", "amount": 12800, "card_last4": "0128"}});
    let r = w.call(axum::http::Method::POST, "/api/v1/diagnose", Some(&a), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    let v = r.json();
    let upload_only = v["findings"].as_array().unwrap().iter().find(|f| f["evidence"]["discrepancy"] == "terminal_only");
    let f = upload_only.unwrap_or_else(|| panic!("no batch-upload finding: {v}"));
    assert_eq!(f["evidence"]["stan"], "000041", "{f}");
}

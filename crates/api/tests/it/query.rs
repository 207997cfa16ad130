use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn ids(v: &Value) -> Vec<String> {
    v["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn paging_with_cursors_neither_skips_nor_repeats_while_rows_arrive() {
    let w = World::new();
    let batch: Vec<Value> = (1..=30).map(|i| purchase(MA, "A0000001", i, 100 + i64::from(i), &format!("2026-11-20T10:{i:02}:00+08:00"))).collect();
    assert_eq!(w.ingest(&w.key_all, Value::Array(batch)).await.status, StatusCode::CREATED);
    let t = w.login("a-admin").await;
    let q = "/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=10";
    let first = w.get(q, &t).await.json();
    let mut seen = ids(&first);
    assert_eq!(first["has_more"], true);
    // New rows arrive inside the range, newer and older than the page boundary.
    let late: Vec<Value> = (31..=35).map(|i| purchase(MA, "A0000001", i, 999, &format!("2026-11-20T{:02}:00:00+08:00", i - 22))).collect();
    assert_eq!(w.ingest(&w.key_all, Value::Array(late)).await.status, StatusCode::CREATED);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let page = w.get(&format!("{q}&cursor={cursor}"), &t).await;
        assert_eq!(page.status, StatusCode::OK, "{}", String::from_utf8_lossy(&page.bytes));
        let page = page.json();
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30, "the pinned snapshot has exactly the first 30 rows");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30, "no row repeated");
    // A fresh first page sees the new rows.
    let fresh = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=500", &t).await.json();
    assert_eq!(fresh["data"].as_array().unwrap().len(), 35);
}

#[tokio::test]
async fn filters_range_echo_and_summary() {
    let w = World::new();
    let mut items = vec![
        purchase(MA, "A0000001", 1, 1000, "2026-11-20T09:00:00+08:00"),
        purchase(MA, "A0000002", 2, 2000, "2026-11-20T12:00:00+08:00"),
        purchase(MA, "A0000001", 3, 3000, "2026-11-20T23:30:00+08:00"),
    ];
    let mut declined = purchase(MA, "A0000001", 4, 4000, "2026-11-20T13:00:00+08:00");
    declined["response_code"] = json!("51");
    declined.as_object_mut().unwrap().remove("auth_code");
    items.push(declined);
    let r = w.ingest(&w.key_all, Value::Array(items)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let t = w.login("a-admin").await;
    let all = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20&include=summary", &t).await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    assert_eq!(all["range"]["from"], "2026-11-20T00:00:00+08:00");
    assert_eq!(all["range"]["to"], "2026-11-21T00:00:00+08:00");
    assert_eq!(all["range"]["timezone"], "Asia/Shanghai");
    assert_eq!(all["range"]["basis"], "txn_time");
    assert_eq!(all["summary"]["by_status"]["approved"]["count"], 3);
    assert_eq!(all["summary"]["by_status"]["declined"]["amount"], 4000);
    // Newest first, times shown in the merchant's zone.
    assert_eq!(all["data"][0]["txn_time"], "2026-11-20T23:30:00+08:00");
    // The 23:30 sale settles on the next day.
    assert_eq!(all["data"][0]["settlement_date"], "2026-11-21");
    let check = |q: &str, n: usize| {
        let q = q.to_owned();
        let w = &w;
        let t = t.clone();
        async move {
            let v = w.get(&format!("/api/v1/transactions?from=2026-11-20&to=2026-11-21&{q}"), &t).await.json();
            assert_eq!(v["data"].as_array().map(Vec::len), Some(n), "{q}: {v}");
        }
    };
    check("terminal_id=A0000002", 1).await;
    check("status=declined", 1).await;
    check("status=approved,declined", 4).await;
    check("kind=refund", 0).await;
    check("channel=card", 4).await;
    check("card_last4=0128", 4).await;
    check("card_last4=9999", 0).await;
    check("amount_min=1500&amount_max=3000", 2).await;
    check("stan=000002", 1).await;
    check("rrn=500000000003", 1).await;
    check("auth_code=123456", 3).await;
    let by_settlement = w.get("/api/v1/transactions?basis=settlement_date&from=2026-11-21&to=2026-11-21", &t).await.json();
    assert_eq!(by_settlement["data"].as_array().unwrap().len(), 1, "{by_settlement}");
    assert_eq!(by_settlement["range"]["day_cutoff"], "23:00");
}

#[tokio::test]
async fn detail_shows_the_event_history_and_the_derived_status() {
    let w = World::new();
    let p = purchase(MA, "A0000001", 7, 5000, "2026-11-20T10:00:00+08:00");
    let mut void = purchase(MA, "A0000001", 8, 5000, "2026-11-20T10:05:00+08:00");
    void["kind"] = json!("void");
    void["original"] = json!({"batch_no": "000001", "stan": "000007"});
    let r = w.ingest(&w.key_all, json!([p, void])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let purchase_id = r.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let t = w.login("a-admin").await;
    let d = w.get(&format!("/api/v1/transactions/{purchase_id}"), &t).await.json();
    assert_eq!(d["status"], "voided", "{d}");
    assert_eq!(d["card"]["masked"], "622202*********0128");
    assert_eq!(d["events"][0]["kind"], "void");
    assert_eq!(d["events"][0]["relation"], "voided_by");
    let void_id = d["events"][0]["id"].as_str().unwrap();
    let v = w.get(&format!("/api/v1/transactions/{void_id}"), &t).await.json();
    assert_eq!(v["original"]["id"], purchase_id.as_str());
    // Settlements: the voided purchase counts in neither gross nor refunds.
    let s = w.get("/api/v1/settlements?from=2026-11-20&to=2026-11-20", &t).await.json();
    assert_eq!(s["data"][0]["gross"], 0, "{s}");
    assert_eq!(s["data"][0]["voided_count"], 1, "{s}");
}

#[tokio::test]
async fn staff_see_only_their_terminals() {
    let w = World::new();
    let items = json!([
        purchase(MA, "A0000001", 1, 100, "2026-11-20T10:00:00+08:00"),
        purchase(MA, "A0000002", 2, 200, "2026-11-20T10:00:00+08:00"),
    ]);
    let r = w.ingest(&w.key_all, items).await;
    let other_terminal_id = r.json()["data"][1]["id"].as_str().unwrap().to_owned();
    let t = w.login("a-staff").await;
    let v = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20", &t).await.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["terminal_id"], "A0000001");
    assert_eq!(w.get(&format!("/api/v1/transactions/{other_terminal_id}"), &t).await.status, StatusCode::NOT_FOUND);
    let terms = w.get("/api/v1/terminals", &t).await.json();
    assert_eq!(terms["data"].as_array().unwrap().len(), 1, "{terms}");
}

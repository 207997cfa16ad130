use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ingest_is_idempotent_and_refuses_a_different_object_under_the_same_key() {
    let w = World::new();
    let p = purchase(MA, "A0000001", 1, 1250, "2026-11-20T10:00:00+08:00");
    let r = w.ingest(&w.key_all, json!([p.clone()])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let id = r.json()["data"][0]["id"].as_str().unwrap().to_owned();
    // The same object again: accepted once, same id.
    let again = w.ingest(&w.key_all, json!([p.clone()])).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["data"][0], json!({"id": id, "duplicate": true}));
    // A different amount under the same key: refused, key named.
    let mut changed = p.clone();
    changed["amount"] = json!(9999);
    let r = w.ingest(&w.key_all, json!([changed])).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    let errs = r.json()["errors"].clone();
    assert_eq!(errs[0]["field"], "key", "{errs}");
}

#[tokio::test]
async fn a_batch_with_any_bad_item_stores_nothing_and_lists_every_bad_item() {
    let w = World::new();
    let good = purchase(MA, "A0000001", 2, 100, "2026-11-20T10:00:00+08:00");
    let mut negative = purchase(MA, "A0000001", 3, 100, "2026-11-20T10:01:00+08:00");
    negative["amount"] = json!(-5);
    let mut long_mid = purchase(MA, "A0000001", 4, 100, "2026-11-20T10:02:00+08:00");
    long_mid["merchant_id"] = json!("8983100489900012");
    let mut wrong_type = purchase(MA, "A0000001", 5, 100, "2026-11-20T10:03:00+08:00");
    wrong_type["amount"] = json!("100");
    let r = w.ingest(&w.key_all, json!([good, negative, long_mid, wrong_type])).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    let errs = r.json()["errors"].as_array().unwrap().clone();
    let by_index: Vec<(u64, String)> = errs.iter().map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap().to_owned())).collect();
    assert!(by_index.contains(&(1, "amount".into())), "{errs:?}");
    assert!(by_index.contains(&(2, "merchant_id".into())), "{errs:?}");
    assert!(by_index.contains(&(3, "amount".into())), "{errs:?}");
    assert!(!by_index.iter().any(|(i, _)| *i == 0), "the good item is not an error");
    // Nothing stored, not even the good item.
    let t = w.login("bank").await;
    let list = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    // No PAN in the error text.
    assert!(!String::from_utf8_lossy(&r.bytes).contains("6222021234567890128"));
}

#[tokio::test]
async fn an_api_key_is_scoped_to_its_merchants_and_users_cannot_ingest() {
    let w = World::new();
    let r = w.ingest(&w.key_a, json!([purchase(MB, "B0000001", 1, 100, "2026-11-20T10:00:00+08:00")])).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    assert_eq!(r.json()["errors"][0]["field"], "merchant_id");
    let t = w.login("bank").await;
    let r = w.ingest(&t, json!([purchase(MA, "A0000001", 1, 100, "2026-11-20T10:00:00+08:00")])).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
}

//! The authorization matrix: a merchant never sees, infers or changes another merchant's data.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn merchant_a_gets_404_for_every_merchant_b_resource() {
    let w = World::new();
    let r = w
        .ingest(&w.key_all, json!([purchase(MA, "A0000001", 1, 100, "2026-11-20T10:00:00+08:00"), purchase(MB, "B0000001", 1, 100, "2026-11-20T10:00:00+08:00")]))
        .await;
    let b_id = r.json()["data"][1]["id"].as_str().unwrap().to_owned();
    let a = w.login("a-admin").await;
    let b = w.login("b-admin").await;
    let missing_id = {
        // A well-formed id that names nothing: B's id with the sequence part changed.
        let mut s = b_id.clone().into_bytes();
        let last = s.len() - 1;
        s[last] = if s[last] == b'Z' { b'Y' } else { b'Z' };
        String::from_utf8(s).unwrap()
    };
    let foreign = [
        (Method::GET, format!("/api/v1/transactions/{b_id}")),
        (Method::GET, format!("/api/v1/transactions?merchant_id={MB}")),
        (Method::GET, format!("/api/v1/transactions/export?merchant_id={MB}")),
        (Method::GET, format!("/api/v1/settlements?from=2026-11-20&merchant_id={MB}")),
        (Method::GET, format!("/api/v1/merchants/{MB}")),
        (Method::GET, format!("/api/v1/terminals?merchant_id={MB}")),
        (Method::POST, format!("/api/v1/merchants/{MB}/status")),
    ];
    for (method, uri) in foreign {
        let body = (method == Method::POST).then(|| json!({"status": "frozen", "reason": "x"}));
        let r = w.call(method.clone(), &uri, Some(&a), body).await;
        assert_problem(&r, StatusCode::NOT_FOUND, None);
        assert!(!String::from_utf8_lossy(&r.bytes).contains(MB), "{uri} must not echo the foreign id");
    }
    // A foreign id and a missing id answer identically (apart from the request id).
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    let foreign = strip(w.get(&format!("/api/v1/transactions/{b_id}"), &a).await.json());
    let missing = strip(w.get(&format!("/api/v1/transactions/{missing_id}"), &a).await.json());
    assert_eq!(foreign, missing);
    // Lists never include B's rows, and B still sees its own.
    let list = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20", &a).await.json();
    assert!(list["data"].as_array().unwrap().iter().all(|r| r["merchant_id"] == MA));
    assert_eq!(w.get(&format!("/api/v1/transactions/{b_id}"), &b).await.status, StatusCode::OK);
    let merchants = w.get("/api/v1/merchants", &a).await.json();
    assert_eq!(merchants["data"].as_array().unwrap().len(), 1);
    let csv = w.get("/api/v1/transactions/export?from=2026-11-20&to=2026-11-20&lang=en", &a).await;
    let text = String::from_utf8(csv.bytes).unwrap();
    assert!(!text.contains(MB) && text.contains(MA));
}

#[tokio::test]
async fn a_cursor_minted_for_b_does_not_open_for_a() {
    let w = World::new();
    let items: Vec<_> = (1..=3).map(|i| purchase(MB, "B0000001", i, 100, "2026-11-20T10:00:00+08:00")).collect();
    w.ingest(&w.key_all, serde_json::Value::Array(items)).await;
    let a = w.login("a-admin").await;
    let b = w.login("b-admin").await;
    let q = "/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=1";
    let cursor = w.get(q, &b).await.json()["next_cursor"].as_str().unwrap().to_owned();
    let r = w.get(&format!("{q}&cursor={cursor}"), &a).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("cursor"));
}

#[tokio::test]
async fn roles_outside_the_table_get_403() {
    let w = World::new();
    let admin = w.login("admin").await;
    assert_problem(&w.get("/api/v1/transactions", &admin).await, StatusCode::FORBIDDEN, None);
    let auditor = w.login("auditor").await;
    let r = w.call(Method::POST, &format!("/api/v1/merchants/{MA}/status"), Some(&auditor), Some(json!({"status": "frozen", "reason": "x"}))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    assert_eq!(w.get("/api/v1/transactions", &auditor).await.status, StatusCode::OK);
    // API keys only ingest.
    assert_problem(&w.get("/api/v1/transactions", &w.key_all).await, StatusCode::FORBIDDEN, None);
    // A bank operator may freeze a merchant; the change is in the history.
    let bank = w.login("bank").await;
    let r = w.call(Method::POST, &format!("/api/v1/merchants/{MB}/status"), Some(&bank), Some(json!({"status": "frozen", "reason": "风险核查"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    let m = w.get(&format!("/api/v1/merchants/{MB}"), &bank).await.json();
    assert_eq!(m["status"], "frozen");
    assert_eq!(m["status_history"].as_array().unwrap().last().unwrap()["reason"], "风险核查");
}

//! Bad input on every endpoint answers 400/422 problem+json naming the parameter; never a 500.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn list_parameters_are_checked_and_named() {
    let w = World::new();
    let t = w.login("a-admin").await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=10000", "limit"),
        ("limit=ten", "limit"),
        ("from=2026-11-20&to=2026-11-19", "to"),
        ("from=yesterday", "from"),
        ("merchant_id=8983100489900012", "merchant_id"),
        ("cursor=garbage", "cursor"),
        ("basis=local", "basis"),
        ("basis=settlement_date&from=2026-11-20T10:00:00Z", "from"),
        ("status=lost", "status"),
        ("kind=purchase,teleport", "kind"),
        ("amount_min=-1", "amount_min"),
        ("amount_min=500&amount_max=100", "amount_max"),
        ("card_last4=12345", "card_last4"),
        ("stan=12", "stan"),
        ("from=2024-01-01&to=2026-11-20", "from"),
        ("form=2026-11-20", "form"),
        ("limit=1&limit=2", "limit"),
        ("include=everything", "include"),
    ];
    for (q, param) in cases {
        let r = w.get(&format!("/api/v1/transactions?{q}"), &t).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, Some(param));
    }
    for (q, param) in [("format=pdf", "format"), ("encoding=latin1", "encoding"), ("lang=fr", "lang"), ("format=xlsx&encoding=gbk", "encoding")] {
        let r = w.get(&format!("/api/v1/transactions/export?{q}"), &t).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, Some(param));
    }
    for (q, param) in [("", "from"), ("from=2026-13-01", "from"), ("from=2026-11-20&to=2026-11-01", "to")] {
        let r = w.get(&format!("/api/v1/settlements?{q}"), &t).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, Some(param));
    }
}

#[tokio::test]
async fn a_cursor_minted_for_another_query_is_refused() {
    let w = World::new();
    let items: Vec<_> = (1..=3).map(|i| purchase(MA, "A0000001", i, 100, "2026-11-20T10:00:00+08:00")).collect();
    w.ingest(&w.key_all, serde_json::Value::Array(items)).await;
    let t = w.login("a-admin").await;
    let c = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=1", &t).await.json()["next_cursor"].as_str().unwrap().to_owned();
    let r = w.get(&format!("/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=1&status=approved&cursor={c}"), &t).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("cursor"));
    assert!(r.json()["detail"].as_str().unwrap().contains("different query"));
    // Changing only the page size keeps the cursor valid.
    let r = w.get(&format!("/api/v1/transactions?from=2026-11-20&to=2026-11-20&limit=2&cursor={c}"), &t).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_bodies_are_400_or_422_never_500() {
    let w = World::new();
    let bodies: [(&str, StatusCode); 6] = [
        ("{not json", StatusCode::BAD_REQUEST),
        ("{\"a\":1}", StatusCode::BAD_REQUEST),
        ("[]", StatusCode::BAD_REQUEST),
        ("[1, \"x\"]", StatusCode::UNPROCESSABLE_ENTITY),
        ("[{\"merchant_id\": 898310048990001}]", StatusCode::UNPROCESSABLE_ENTITY),
        ("[{\"amount\": 1.5, \"reversal\": \"yes\", \"original\": 7}]", StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, status) in bodies {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/transactions")
            .header(header::AUTHORIZATION, format!("Bearer {}", w.key_all))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let r = w.raw(req).await;
        assert_problem(&r, status, None);
    }
    let too_many: Vec<_> = (0..1001).map(|i| purchase(MA, "A0000001", i, 1, "2026-11-20T10:00:00+08:00")).collect();
    assert_problem(&w.ingest(&w.key_all, serde_json::Value::Array(too_many)).await, StatusCode::BAD_REQUEST, Some("body"));
    // Login with wrong types and the wrong media type.
    let r = w.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": 5, "password": "x"}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, Some("username"));
    let req = Request::post("/api/v1/auth/login").header(header::CONTENT_TYPE, "text/plain").body(Body::from("hi")).unwrap();
    assert_problem(&w.raw(req).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
    let bank = w.login("bank").await;
    let r = w.call(Method::POST, &format!("/api/v1/merchants/{MA}/status"), Some(&bank), Some(json!({"status": "asleep", "reason": "x"}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("status"));
    // Unknown ids are 404, malformed ids too.
    let t = w.login("a-admin").await;
    assert_problem(&w.get("/api/v1/transactions/not-an-id", &t).await, StatusCode::NOT_FOUND, None);
    assert_problem(&w.get("/api/v1/nowhere", &t).await, StatusCode::NOT_FOUND, None);
}

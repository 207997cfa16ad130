//! Idempotency-Key on POST endpoints.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

async fn post(w: &World, token: &str, uri: &str, key: &str, body: Value) -> Resp {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    w.raw(req).await
}

#[tokio::test]
async fn a_retried_post_gets_the_first_answer_and_acts_once() {
    let w = World::new();
    let bank = w.login("bank").await;
    let body = json!({"title": {"zh": "系统维护", "en": "Maintenance"}, "affects": ["query"]});
    let first = post(&w, &bank, "/api/v1/announcements", "k-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = post(&w, &bank, "/api/v1/announcements", "k-1", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(w.get("/api/v1/announcements", &bank).await.json()["data"].as_array().unwrap().len(), 1, "acted once");
    // The same key for a different request is refused, naming the header.
    let other = post(&w, &bank, "/api/v1/announcements", "k-1", json!({"title": {"zh": "别的", "en": "Other"}})).await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key"));
    // A new key acts again.
    assert_eq!(post(&w, &bank, "/api/v1/announcements", "k-2", body).await.status, StatusCode::CREATED);
    let status = json!({"status": "frozen", "reason": "风险核查"});
    for _ in 0..3 {
        assert_eq!(post(&w, &bank, &format!("/api/v1/merchants/{MA}/status"), "freeze-1", status.clone()).await.status, StatusCode::OK);
    }
    let m = w.get(&format!("/api/v1/merchants/{MA}"), &bank).await.json();
    assert_eq!(m["status_history"].as_array().unwrap().len(), 2, "created + one freeze: {m}");
    let bad = post(&w, &bank, "/api/v1/announcements", &"x".repeat(101), json!({})).await;
    assert_problem(&bad, StatusCode::BAD_REQUEST, Some("Idempotency-Key"));
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let w = World::new();
    let a = w.login("a-admin").await;
    let b = w.login("b-admin").await;
    let ask = json!({"expected": {"rrn": "500000000001"}});
    let ra = post(&w, &a, "/api/v1/diagnose", "same", ask.clone()).await;
    let rb = post(&w, &b, "/api/v1/diagnose", "same", ask).await;
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    assert!(rb.headers.get("idempotent-replayed").is_none(), "B never sees A's stored answer");
}

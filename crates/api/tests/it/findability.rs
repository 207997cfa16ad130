//! Announcements, tickets and the audit log through the router.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn announcements_reach_the_merchants_they_are_for() {
    let w = World::new();
    let bank = w.login("bank").await;
    let a = w.login("a-admin").await;
    let b = w.login("b-admin").await;
    let maintenance = json!({"title": {"zh": "系统维护", "en": "Maintenance"}, "body": {"zh": "今晚 23:00–01:00 暂停查询", "en": "Queries paused 23:00–01:00"},
                             "starts_at": "2020-01-01T00:00:00Z", "affects": ["query", "capture"]});
    let r = w.call(Method::POST, "/api/v1/announcements", Some(&bank), Some(maintenance)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let global = r.json();
    assert_eq!(global["maintenance"], true);
    assert_eq!(global["active"], true);
    let for_b = json!({"title": {"zh": "费率调整", "en": "Fee change"}, "merchant_id": MB});
    assert_eq!(w.call(Method::POST, "/api/v1/announcements", Some(&bank), Some(for_b)).await.status, StatusCode::CREATED);
    let seen_by_a = w.get("/api/v1/announcements?active=true", &a).await.json();
    assert_eq!(seen_by_a["data"].as_array().unwrap().len(), 1, "{seen_by_a}");
    assert_eq!(w.get("/api/v1/announcements", &b).await.json()["data"].as_array().unwrap().len(), 2);
    // Merchants cannot post; bad bodies name the field.
    assert_problem(&w.call(Method::POST, "/api/v1/announcements", Some(&a), Some(json!({"title": {"zh": "x", "en": "x"}}))).await, StatusCode::FORBIDDEN, None);
    let r = w.call(Method::POST, "/api/v1/announcements", Some(&bank), Some(json!({"title": {"zh": "x"}}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("title.en"));
    let r = w.call(Method::POST, "/api/v1/announcements", Some(&bank), Some(json!({"title": {"zh": "x", "en": "x"}, "affects": ["weather"]}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("affects"));
    // Ending keeps it, inactive.
    let id = global["id"].as_i64().unwrap();
    let ended = w.call(Method::POST, &format!("/api/v1/announcements/{id}/end"), Some(&bank), None).await.json();
    assert_eq!(ended["active"], false);
    assert_eq!(w.get("/api/v1/announcements?active=true", &a).await.json()["data"].as_array().unwrap().len(), 0);
    assert_eq!(w.get("/api/v1/announcements", &a).await.json()["data"].as_array().unwrap().len(), 1);
}

async fn open(w: &World, token: &str, key: &str) -> (StatusCode, Value) {
    let body = json!({"subject": "找不到 11 月 20 日 128.00 元的消费", "expected": {"time": "2026-11-20", "amount": 12800, "card_last4": "1234"},
                      "diagnosis": {"findings": [{"code": "NOT_FOUND"}]}});
    let req = Request::post("/api/v1/tickets")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = w.raw(req).await;
    (r.status, r.json())
}

#[tokio::test]
async fn a_ticket_goes_from_merchant_to_bank_and_back_with_every_step_audited() {
    let w = World::new();
    let a = w.login("a-admin").await;
    let b = w.login("b-admin").await;
    let bank = w.login("bank").await;
    let (status, t) = open(&w, &a, "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (status, again) = open(&w, &a, "k-1").await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &t["id"]), "idempotent");
    let id = t["id"].as_i64().unwrap();
    // Another merchant: 404 for reading and for acting, like a missing ticket.
    assert_problem(&w.get(&format!("/api/v1/tickets/{id}"), &b).await, StatusCode::NOT_FOUND, None);
    assert_problem(&w.get("/api/v1/tickets/999999", &b).await, StatusCode::NOT_FOUND, None);
    let r = w.call(Method::POST, &format!("/api/v1/tickets/{id}/comments"), Some(&b), Some(json!({"text": "hi"}))).await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(w.get("/api/v1/tickets", &b).await.json()["data"].as_array().unwrap().len(), 0);
    // The merchant cannot work its own ticket; the bank can.
    let r = w.call(Method::POST, &format!("/api/v1/tickets/{id}/resolve"), Some(&a), Some(json!({"explanation": "x"}))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let queue = w.get("/api/v1/tickets?status=open", &bank).await.json();
    assert_eq!(queue["data"][0]["id"], id);
    for (step, body) in [("assign", json!({"assignee": "ops-1"})), ("comments", json!({"text": "正在核对清算文件"})), ("resolve", json!({"explanation": "该交易已冲正，未扣款"}))] {
        let r = w.call(Method::POST, &format!("/api/v1/tickets/{id}/{step}"), Some(&bank), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", String::from_utf8_lossy(&r.bytes));
    }
    let r = w.call(Method::POST, &format!("/api/v1/tickets/{id}/comments"), Some(&bank), Some(json!({"text": "late"}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, None);
    let seen = w.get(&format!("/api/v1/tickets/{id}"), &a).await.json();
    assert_eq!(seen["status"], "resolved");
    assert_eq!(seen["resolution"], "该交易已冲正，未扣款");
    assert_eq!(seen["details"]["expected"]["amount"], 12800);
    assert!(seen.get("assignee").is_none(), "merchants do not see who at the bank handled it");
    let actors: Vec<&str> = seen["events"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["user:a-admin", "bank", "bank", "bank"]);
    // Every step is in the audit log, readable by auditors only.
    assert_problem(&w.get("/api/v1/audit", &bank).await, StatusCode::FORBIDDEN, None);
    let auditor = w.login("auditor").await;
    let log = w.get("/api/v1/audit?limit=100", &auditor).await.json();
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["login", "ticket_open", "ticket_assign", "ticket_comment", "ticket_resolve"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let filtered = w.get("/api/v1/audit?action=ticket_resolve", &auditor).await.json();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    assert_problem(&w.get("/api/v1/audit?before_id=x", &auditor).await, StatusCode::BAD_REQUEST, Some("before_id"));
}

#[tokio::test]
async fn a_closed_merchant_cannot_sign_in_and_is_told_why_while_the_bank_still_sees_its_data() {
    let w = World::new();
    w.ingest(&w.key_all, json!([purchase(MA, "A0000001", 1, 100, "2026-11-20T10:00:00+08:00")])).await;
    let bank = w.login("bank").await;
    let r = w.call(Method::POST, &format!("/api/v1/merchants/{MA}/status"), Some(&bank), Some(json!({"status": "closed", "reason": "合同到期"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "a-admin", "password": PASSWORD}))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let v = r.json();
    assert_eq!(v["code"], "account_closed");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("已关闭") && detail.contains("合同到期") && detail.contains("contact"), "{detail}");
    let list = w.get(&format!("/api/v1/transactions?merchant_id={MA}&from=2026-11-20&to=2026-11-20"), &bank).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

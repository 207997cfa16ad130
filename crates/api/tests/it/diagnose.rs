//! `POST /api/v1/diagnose` and the list's `warnings`/`hints`, end to end through the router.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

async fn diagnose(w: &World, token: &str, body: Value) -> Value {
    let r = w.call(Method::POST, "/api/v1/diagnose", Some(token), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    r.json()
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

fn top(v: &Value) -> &Value {
    &v["findings"][0]
}

#[tokio::test]
async fn a_reversed_sale_is_explained_as_reversed() {
    let w = World::new();
    let p = purchase(MA, "A0000001", 11, 8800, "2026-11-20T10:00:00+08:00");
    let r = w.ingest(&w.key_all, json!([p.clone()])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let purchase_id = r.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let mut rev = p;
    rev["reversal"] = json!(true);
    rev["original"] = json!({"batch_no": "000001", "stan": "000011"});
    let r = w.ingest(&w.key_all, json!([rev])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let t = w.login("a-admin").await;
    let v = diagnose(&w, &t, json!({"expected": {"time": "2026-11-20T10:00:00+08:00", "amount": 8800}})).await;
    assert_eq!(top(&v)["code"], "REVERSED", "{v}");
    assert_eq!(top(&v)["transaction_ids"][0], purchase_id.as_str(), "{v}");
    for key in ["severity", "message", "evidence", "next_step"] {
        assert!(!top(&v)[key].is_null(), "{key}: {v}");
    }
    assert!(top(&v)["message"]["zh"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(top(&v)["message"]["en"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(!v["checked"].as_array().unwrap().is_empty());
    // A reversed sale never settles: no clearing file is "pending" for it, though clearing and
    // reconciliation were looked at and say so.
    assert!(!codes(&v).contains(&"CLEARING_PENDING".to_owned()), "{v}");
    for subject in ["clearing", "reconciliation"] {
        let c = v["checked"].as_array().unwrap().iter().find(|c| c["subject"] == subject).unwrap();
        assert!(c["note"]["zh"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    }
}

#[tokio::test]
async fn a_declined_sale_is_explained_with_the_response_code_meaning() {
    let w = World::new();
    let mut d = purchase(MA, "A0000001", 12, 4500, "2026-11-20T13:00:00+08:00");
    d["response_code"] = json!("51");
    d.as_object_mut().unwrap().remove("auth_code");
    let r = w.ingest(&w.key_all, json!([d])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let t = w.login("a-admin").await;
    let v = diagnose(
        &w,
        &t,
        json!({"query": {"from": "2026-11-20", "to": "2026-11-20", "status": "approved"},
               "expected": {"amount": 4500, "card_last4": "0128"}}),
    )
    .await;
    assert_eq!(top(&v)["code"], "DECLINED", "{v}");
    let text = top(&v).to_string();
    assert!(text.contains("51"), "{v}");
    let (zh, en) = domain::ResponseCode::parse("51").unwrap().meaning();
    assert!(text.contains(zh) && text.contains(en), "the meaning of 51 in both languages: {v}");
}

#[tokio::test]
async fn a_late_sale_searched_on_its_calendar_day_by_settlement_date() {
    let w = World::new();
    let r = w.ingest(&w.key_all, json!([purchase(MA, "A0000001", 13, 3000, "2026-11-20T23:30:00+08:00")])).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t = w.login("a-admin").await;
    let q = json!({"from": "2026-11-20", "to": "2026-11-20", "basis": "settlement_date"});
    // The list is empty, and its hints already say why.
    let list = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20&basis=settlement_date", &t).await.json();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    let hints: Vec<&str> = list["hints"].as_array().unwrap().iter().map(|h| h["code"].as_str().unwrap()).collect();
    assert!(!hints.is_empty(), "{list}");
    assert!(hints[0] == "SETTLEMENT_DATE_SHIFT" || hints[0] == "OUTSIDE_RANGE", "{list}");
    let v = diagnose(&w, &t, json!({"query": q, "expected": {"amount": 3000}})).await;
    let c = top(&v)["code"].as_str().unwrap();
    assert!(c == "SETTLEMENT_DATE_SHIFT" || c == "OUTSIDE_RANGE", "{v}");
    assert!(codes(&v).contains(&"SETTLEMENT_DATE_SHIFT".to_owned()), "{v}");
}

#[tokio::test]
async fn a_frozen_merchant_sees_the_warning_on_every_list() {
    let w = World::new();
    let t = w.login("a-admin").await;
    let before = w.get("/api/v1/transactions", &t).await.json();
    assert_eq!(before["warnings"], json!([]), "{before}");
    let bank = w.login("bank").await;
    let r = w.call(Method::POST, &format!("/api/v1/merchants/{MA}/status"), Some(&bank), Some(json!({"status": "frozen", "reason": "x"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    let after = w.get("/api/v1/transactions", &t).await.json();
    let codes: Vec<&str> = after["warnings"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"ACCOUNT_FROZEN"), "{after}");
    // The bank sees it when filtering on the merchant; without a merchant filter, none.
    let b = w.get(&format!("/api/v1/transactions?merchant_id={MA}"), &bank).await.json();
    assert!(b["warnings"].to_string().contains("ACCOUNT_FROZEN"), "{b}");
    assert_eq!(w.get("/api/v1/transactions", &bank).await.json()["warnings"], json!([]));
    // Merchant B is not frozen and learns nothing about A.
    let tb = w.login("b-admin").await;
    assert_eq!(w.get("/api/v1/transactions", &tb).await.json()["warnings"], json!([]));
}

#[tokio::test]
async fn another_merchants_rrn_answers_exactly_like_an_unknown_one() {
    let w = World::new();
    let r = w.ingest(&w.key_all, json!([purchase(MB, "B0000001", 21, 7700, "2026-11-20T10:00:00+08:00")])).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let b_rrn = purchase(MB, "B0000001", 21, 7700, "2026-11-20T10:00:00+08:00")["rrn"].as_str().unwrap().to_owned();
    // A's terminals are online (POS front end contact just now): a terminal that never
    // contacted the host would otherwise be offered as the reason (SYNC_PENDING, silent).
    for tid in ["A0000001", "A0000002"] {
        let sync = store::TerminalSync { last_seen_at: Some(chrono::Utc::now()), ..store::TerminalSync::default() };
        store::TerminalRepo::update_terminal_sync(&w.store, &domain::MerchantId::parse(MA).unwrap(), &domain::TerminalId::parse(tid).unwrap(), &sync).unwrap();
    }
    let t = w.login("a-admin").await;
    let ask = |rrn: &str| json!({"expected": {"rrn": rrn, "time": "2026-11-20"}});
    let foreign = diagnose(&w, &t, ask(&b_rrn)).await;
    let unknown = diagnose(&w, &t, ask("999999999999")).await;
    assert_eq!(top(&foreign)["code"], "NOT_FOUND", "{foreign}");
    // Same answer apart from the RRN itself, which is echoed as typed.
    let normalise = |v: &Value, rrn: &str| v.to_string().replace(rrn, "<rrn>");
    assert_eq!(normalise(&foreign, &b_rrn), normalise(&unknown, "999999999999"));
    // And B's own admin does find it.
    let tb = w.login("b-admin").await;
    let own = diagnose(&w, &tb, ask(&b_rrn)).await;
    assert_ne!(top(&own)["code"], "NOT_FOUND", "{own}");
    // A foreign terminal id reads like a nonexistent one for a merchant user.
    let t1 = diagnose(&w, &t, json!({"expected": {"terminal_id": "B0000001", "time": "2026-11-20"}})).await;
    let t2 = diagnose(&w, &t, json!({"expected": {"terminal_id": "Z0000009", "time": "2026-11-20"}})).await;
    assert_eq!(t1.to_string().replace("B0000001", "<t>"), t2.to_string().replace("Z0000009", "<t>"));
    // Typing B's merchant id is a mismatch with A's, never B's data.
    let m = diagnose(&w, &t, json!({"query": {"merchant_id": MB, "from": "2026-11-20", "to": "2026-11-20"}})).await;
    assert!(codes(&m).contains(&"MERCHANT_ID_MISMATCH".to_owned()), "{m}");
    assert!(!m.to_string().contains("乙商户"), "{m}");
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let w = World::new();
    let t = w.login("a-admin").await;
    let cases = [
        (json!({}), StatusCode::BAD_REQUEST, "body"),
        (json!([]), StatusCode::UNPROCESSABLE_ENTITY, "body"),
        (json!({"qeury": {}}), StatusCode::UNPROCESSABLE_ENTITY, "qeury"),
        (json!({"query": {"form": "2026-11-20"}}), StatusCode::UNPROCESSABLE_ENTITY, "query.form"),
        (json!({"query": {"from": "yesterday"}}), StatusCode::BAD_REQUEST, "query.from"),
        (json!({"query": {"from": "2026-11-20", "to": "2026-11-19"}}), StatusCode::BAD_REQUEST, "query.to"),
        (json!({"query": {"basis": "local"}}), StatusCode::BAD_REQUEST, "query.basis"),
        (json!({"query": {"status": "lost"}}), StatusCode::BAD_REQUEST, "query.status"),
        (json!({"query": {"amount_min": "ten"}}), StatusCode::BAD_REQUEST, "query.amount_min"),
        (json!({"query": {"amount_min": 1.5}}), StatusCode::UNPROCESSABLE_ENTITY, "query.amount_min"),
        (json!({"query": {"from": 20261120}}), StatusCode::UNPROCESSABLE_ENTITY, "query.from"),
        (json!({"query": "today"}), StatusCode::UNPROCESSABLE_ENTITY, "query"),
        (json!({"expected": {"amount": "88.00"}}), StatusCode::UNPROCESSABLE_ENTITY, "expected.amount"),
        (json!({"expected": {"amount": -1}}), StatusCode::BAD_REQUEST, "expected.amount"),
        (json!({"expected": {"time": "noon"}}), StatusCode::BAD_REQUEST, "expected.time"),
        (json!({"expected": {"card_last4": "12345"}}), StatusCode::BAD_REQUEST, "expected.card_last4"),
        (json!({"expected": {"rrn": "1"}}), StatusCode::BAD_REQUEST, "expected.rrn"),
        (json!({"expected": {"stan": "12"}}), StatusCode::BAD_REQUEST, "expected.stan"),
        (json!({"expected": {"colour": "red"}}), StatusCode::UNPROCESSABLE_ENTITY, "expected.colour"),
        (json!({"expected": {"terminal_id": "x".repeat(65)}}), StatusCode::BAD_REQUEST, "expected.terminal_id"),
    ];
    for (body, status, param) in cases {
        let r = w.call(Method::POST, "/api/v1/diagnose", Some(&t), Some(body.clone())).await;
        assert_problem(&r, status, Some(param));
    }
    // Not JSON at all, and not declared as JSON.
    let req = |ct: &str, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/diagnose")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap()
    };
    assert_problem(&w.raw(req("application/json", "{")).await, StatusCode::BAD_REQUEST, Some("body"));
    assert_eq!(w.raw(req("text/plain", "{}")).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Readers only; a bank user must name the merchant.
    let admin = w.login("admin").await;
    let r = w.call(Method::POST, "/api/v1/diagnose", Some(&admin), Some(json!({"expected": {"amount": 1}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.call(Method::POST, "/api/v1/diagnose", Some(&w.key_all), Some(json!({"expected": {"amount": 1}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bank = w.login("bank").await;
    let r = w.call(Method::POST, "/api/v1/diagnose", Some(&bank), Some(json!({"expected": {"amount": 1}}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("query.merchant_id"));
    let v = diagnose(&w, &bank, json!({"expected": {"amount": 1, "merchant_id": MA}})).await;
    assert_eq!(top(&v)["code"], "NOT_FOUND", "{v}");
}

#[tokio::test]
async fn an_empty_list_carries_hints_and_the_call_is_audited() {
    let w = World::new();
    let r = w.ingest(&w.key_all, json!([purchase(MA, "A0000002", 31, 1200, "2026-11-20T10:00:00+08:00")])).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t = w.login("a-admin").await;
    // Filtered to the other terminal: empty, and the hint points at the filter/terminal.
    let v = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20&terminal_id=A0000001", &t).await.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    assert!(!v["hints"].as_array().unwrap().is_empty(), "{v}");
    // An empty day with nothing nearby still says what was looked at.
    let v = w.get("/api/v1/transactions?from=2026-10-01&to=2026-10-01", &t).await.json();
    assert!(!v["hints"].as_array().unwrap().is_empty(), "{v}");
    // Non-empty pages carry no hints.
    let v = w.get("/api/v1/transactions?from=2026-11-20&to=2026-11-20", &t).await.json();
    assert!(v.get("hints").is_none(), "{v}");
    diagnose(&w, &t, json!({"expected": {"amount": 1200}})).await;
    let audit = store::AuditRepo::list_audit(&w.store, &store::AuditQuery { actor: None, action: Some("diagnose".into()), from: None, to: None, before_id: None, limit: 50 }).unwrap();
    assert!(audit.iter().any(|e| e.action == "diagnose" && e.actor == "user:a-admin"), "{audit:?}");
}

#[tokio::test]
async fn the_openapi_document_describes_diagnose() {
    let w = World::new();
    let r = w.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let doc = if r.status == StatusCode::OK { r.json() } else { w.get("/api/v1/openapi.json", &w.login("a-admin").await).await.json() };
    assert!(doc["paths"]["/diagnose"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["Finding"]["properties"]["code"]["enum"].as_array().unwrap().len() == 19);
}

#[tokio::test]
async fn active_query_maintenance_is_a_list_warning() {
    let w = World::new();
    let now = chrono::Utc::now();
    store::AnnouncementRepo::create_announcement(
        &w.store,
        &store::NewAnnouncement {
            title_zh: "系统维护".into(),
            title_en: "System maintenance".into(),
            body_zh: "查询暂停".into(),
            body_en: "Queries paused".into(),
            merchant_id: None,
            starts_at: now - chrono::Duration::hours(1),
            ends_at: Some(now + chrono::Duration::hours(1)),
            maintenance: true,
            affects: vec![store::Affects::Query],
        },
        "bank",
    )
    .unwrap();
    let t = w.login("a-admin").await;
    let v = w.get("/api/v1/transactions", &t).await.json();
    assert!(v["warnings"].to_string().contains("MAINTENANCE"), "{v}");
}

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn login_issues_a_bearer_token_and_an_httponly_cookie() {
    let w = World::new();
    let r = w.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "a-admin", "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let v = r.json();
    assert_eq!(v["user"]["role"], "merchant_admin");
    assert!(v["expires_at"].as_str().is_some());
    let token = v["token"].as_str().unwrap();
    assert_eq!(w.get("/api/v1/auth/me", token).await.json()["username"], "a-admin");
    // The cookie works the same way.
    let pair = cookie.split(';').next().unwrap().to_owned();
    let req = Request::get("/api/v1/auth/me").header(header::COOKIE, pair).body(Body::empty()).unwrap();
    assert_eq!(w.raw(req).await.json()["username"], "a-admin");
}

#[tokio::test]
async fn wrong_password_and_missing_token_are_401() {
    let w = World::new();
    let r = w.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "a-admin", "password": "nope-nope"}))).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    let r = w.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "ghost", "password": PASSWORD}))).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    let r = w.call(Method::GET, "/api/v1/transactions", None, None).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
    let r = w.call(Method::GET, "/api/v1/transactions", Some("pls_forged"), None).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, None);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let w = World::new();
    let t = w.login("bank").await;
    assert_eq!(w.get("/api/v1/auth/me", &t).await.status, StatusCode::OK);
    assert_eq!(w.call(Method::POST, "/api/v1/auth/logout", Some(&t), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(w.get("/api/v1/auth/me", &t).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let w = World::new();
    let r = w.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = w.login("bank").await;
    w.get("/api/v1/transactions", &t).await;
    let m = w.call(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(text.contains("poslens_http_request_duration_ms_count{method=\"GET\",route=\"/api/v1/transactions\",status=\"200\"} 1"), "{text}");
    let doc = w.call(Method::GET, "/api/v1/openapi.json", None, None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/transactions"]["get"].is_object());
    // Every route of the router is documented.
    for path in [
        "/auth/login", "/auth/logout", "/auth/me", "/transactions", "/transactions/export", "/transactions/{id}", "/settlements",
        "/merchants", "/merchants/{id}", "/merchants/{id}/status", "/terminals", "/terminals/discrepancies", "/diagnose",
        "/announcements", "/announcements/{id}", "/announcements/{id}/end", "/tickets", "/tickets/{id}", "/tickets/{id}/{step}",
        "/audit", "/clearing/files", "/reconciliation/runs", "/reconciliation/runs/{id}", "/reconciliation/runs/{id}/items",
        "/reconciliation/runs/{id}/items/export",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not in the OpenAPI document");
    }
}

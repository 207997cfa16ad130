//! Staff users: merchant admins manage their own merchant's staff, admins everyone; a foreign
//! user is not found; every change is audited.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

fn names(v: &serde_json::Value) -> Vec<String> {
    v["data"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_merchant_admin_creates_lists_and_disables_its_own_staff() {
    let w = World::new();
    let a = w.login("a-admin").await;
    let body = json!({"username": "a-cashier", "password": PASSWORD, "terminals": ["A0000002"]});
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let u = r.json();
    assert_eq!((u["role"].as_str(), u["merchant_id"].as_str()), (Some("merchant_staff"), Some(MA)));
    assert_eq!(u["terminals"], json!(["A0000002"]));
    assert!(u.get("password_hash").is_none());
    // The new user signs in and sees only its terminal.
    let staff = w.login("a-cashier").await;
    let txns = w.get("/api/v1/terminals", &staff).await.json();
    assert_eq!(txns["data"].as_array().unwrap().len(), 1, "{txns}");
    // Taken name, another merchant's terminal, another role, another merchant: refused.
    assert_problem(&w.call(Method::POST, "/api/v1/users", Some(&a), Some(body)).await, StatusCode::CONFLICT, None);
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(json!({"username": "x1", "password": "long-enough", "terminals": ["B0000001"]}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("terminals"));
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(json!({"username": "x2", "password": "long-enough", "role": "bank_operator"}))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, None);
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(json!({"username": "x3", "password": "long-enough", "merchant_id": MB, "terminals": ["B0000001"]}))).await;
    assert_problem(&r, StatusCode::NOT_FOUND, None);
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(json!({"username": "x4", "password": "short", "terminals": ["A0000001"]}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("password"));
    let r = w.call(Method::POST, "/api/v1/users", Some(&a), Some(json!({"username": "has space", "password": "long-enough", "terminals": ["A0000001"]}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("username"));

    let list = names(&w.get("/api/v1/users", &a).await.json());
    assert_eq!(list, ["a-admin", "a-cashier", "a-staff"]);

    let r = w.call(Method::POST, "/api/v1/users/a-cashier/disable", Some(&a), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["disabled"], true);
    // Signed out at once.
    assert_eq!(w.get("/api/v1/terminals", &staff).await.status, StatusCode::UNAUTHORIZED);
    let audit = w.get("/api/v1/audit?action=user_create", &w.login("auditor").await).await.json();
    assert_eq!(audit["data"][0]["target"], "a-cashier");
    assert_eq!(audit["data"][0]["actor"], "user:a-admin");
}

#[tokio::test]
async fn another_merchants_user_is_not_found_and_other_roles_cannot_manage_users() {
    let w = World::new();
    let b = w.login("b-admin").await;
    for who in ["a-staff", "a-admin", "nobody"] {
        let r = w.call(Method::POST, &format!("/api/v1/users/{who}/disable"), Some(&b), None).await;
        assert_problem(&r, StatusCode::NOT_FOUND, None);
    }
    assert_eq!(names(&w.get("/api/v1/users", &b).await.json()), ["b-admin"]);
    for user in ["a-staff", "bank", "auditor"] {
        let t = w.login(user).await;
        assert_problem(&w.get("/api/v1/users", &t).await, StatusCode::FORBIDDEN, None);
        let r = w.call(Method::POST, "/api/v1/users", Some(&t), Some(json!({"username": "z", "password": "long-enough"}))).await;
        assert_problem(&r, StatusCode::FORBIDDEN, None);
    }
    // a-staff is still active.
    w.login("a-staff").await;
}

#[tokio::test]
async fn an_admin_manages_every_user() {
    let w = World::new();
    let admin = w.login("admin").await;
    assert_eq!(names(&w.get("/api/v1/users", &admin).await.json()).len(), 6);
    let r = w.call(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"username": "bank2", "password": "long-enough", "role": "bank_operator"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let r = w.call(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"username": "b-boss", "password": "long-enough", "role": "merchant_admin", "merchant_id": MB}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let r = w.call(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"username": "orphan", "password": "long-enough", "role": "merchant_admin"}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, Some("merchant_id"));
    assert_eq!(w.call(Method::POST, "/api/v1/users/a-admin/disable", Some(&admin), None).await.status, StatusCode::OK);
    assert_problem(&w.call(Method::POST, "/api/v1/users/admin/disable", Some(&admin), None).await, StatusCode::CONFLICT, None);
}

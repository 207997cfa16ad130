use std::sync::Arc;

use api::{app, AppState, CursorKey};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use domain::{MerchantClock, MerchantId, Role, TerminalId};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use store::{ApiKeyRepo, MerchantRepo, NewApiKey, NewMerchant, NewTerminal, NewUser, SqliteStore, StoreConfig, TerminalRepo, UserRepo};
use tower::ServiceExt;

pub const MA: &str = "898310048990001";
pub const MB: &str = "898310048990002";
pub const PASSWORD: &str = "correct horse";

pub struct World {
    pub app: Router,
    pub store: SqliteStore,
    pub key_all: String,
    pub key_a: String,
    _dir: Arc<tempfile::TempDir>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
        let card_key = store::card_key(dir.path()).unwrap();
        for (id, name) in [(MA, "甲商户"), (MB, "乙商户")] {
            let mid = MerchantId::parse(id).unwrap();
            let mut m = NewMerchant::with_defaults(mid.clone());
            m.name_zh = name.into();
            m.clock = MerchantClock::default();
            store.create_merchant(&m, "test").unwrap();
            let prefix = if id == MA { "A" } else { "B" };
            for n in 1..=2 {
                let t = TerminalId::parse(&format!("{prefix}000000{n}")).unwrap();
                store.create_terminal(&NewTerminal { id: t, merchant_id: mid.clone(), master_key_hex: None }).unwrap();
            }
        }
        // A cheap hash for tests: the same argon2id format, the real verifier.
        let hash = api::auth::hash_password(PASSWORD).unwrap();
        let users: Vec<(&str, Role, Option<&str>, Vec<&str>)> = vec![
            ("a-admin", Role::MerchantAdmin, Some(MA), vec![]),
            ("a-staff", Role::MerchantStaff, Some(MA), vec!["A0000001"]),
            ("b-admin", Role::MerchantAdmin, Some(MB), vec![]),
            ("bank", Role::BankOperator, None, vec![]),
            ("auditor", Role::Auditor, None, vec![]),
            ("admin", Role::Admin, None, vec![]),
        ];
        for (name, role, m, ts) in users {
            store
                .create_user(&NewUser {
                    username: name.into(),
                    role,
                    merchant_id: m.map(|m| MerchantId::parse(m).unwrap()),
                    terminals: ts.iter().map(|t| TerminalId::parse(t).unwrap()).collect(),
                    password_hash: hash.clone(),
                })
                .unwrap();
        }
        let key_all = api::auth::new_token("plk_");
        store.create_api_key(&NewApiKey { name: "all".into(), key_hash: api::auth::token_hash(&key_all), merchants: None }).unwrap();
        let key_a = api::auth::new_token("plk_");
        store
            .create_api_key(&NewApiKey { name: "a-only".into(), key_hash: api::auth::token_hash(&key_a), merchants: Some(vec![MerchantId::parse(MA).unwrap()]) })
            .unwrap();
        let state = AppState::new(store.clone(), card_key, CursorKey::new([7; 32]));
        World { app: app(state), store, key_all, key_a, _dir: Arc::new(dir) }
    }

    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        Resp { status, headers, bytes }
    }

    pub async fn get(&self, uri: &str, token: &str) -> Resp {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub async fn login(&self, user: &str) -> String {
        let r = self.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": user, "password": PASSWORD}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
        r.json()["token"].as_str().unwrap().to_owned()
    }

    pub async fn ingest(&self, key: &str, items: Value) -> Resp {
        self.call(Method::POST, "/api/v1/transactions", Some(key), Some(items)).await
    }
}

/// A card purchase on merchant A's first terminal (or `terminal`), at `time`.
pub fn purchase(merchant: &str, terminal: &str, stan: u32, amount: i64, time: &str) -> Value {
    json!({
        "merchant_id": merchant, "terminal_id": terminal, "batch_no": "000001", "stan": format!("{stan:06}"),
        "rrn": format!("{:012}", 500_000_000_000u64 + u64::from(stan) + if merchant == MB { 10_000 } else { 0 }),
        "auth_code": "123456", "kind": "purchase", "channel": "card", "pan": "6222021234567890128",
        "amount": amount, "currency": "CNY", "response_code": "00", "txn_time": time,
    })
}

pub fn assert_problem(r: &Resp, status: StatusCode, param: Option<&str>) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.headers.get(header::CONTENT_TYPE).unwrap(), "application/problem+json");
    let v = r.json();
    assert!(v["request_id"].as_str().is_some_and(|s| s.len() == 16), "{v}");
    assert_eq!(v["status"], status.as_u16());
    if let Some(p) = param {
        assert_eq!(v["param"], p, "{v}");
    }
}

use std::net::SocketAddr;
use std::sync::Arc;

use api::{AppState, CursorKey};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use domain::{MerchantClock, MerchantId, Role, TerminalId};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use store::{
    ApiKeyRepo, MerchantRepo, NewApiKey, NewMerchant, NewTerminal, NewUser, SqliteStore,
    StoreConfig, TerminalRepo, UserRepo,
};
use tower::ServiceExt;

pub const MA: &str = "898310048990001";
pub const MB: &str = "898310048990002";
pub const PASSWORD: &str = "correct horse";
/// The RRN of merchant A's purchase that the terminal reversed (timeout).
pub const REVERSED_RRN: &str = "500000000003";

pub struct World {
    pub app: Router,
    #[allow(dead_code)]
    pub store: SqliteStore,
    /// Ids of merchant B's transactions (foreign to merchant A).
    pub b_txn: String,
    _dir: Arc<tempfile::TempDir>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

fn txn(merchant: &str, terminal: &str, stan: u32, amount: i64, minutes_ago: i64) -> Value {
    let time = (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339();
    json!({
        "merchant_id": merchant, "terminal_id": terminal, "batch_no": "000001", "stan": format!("{stan:06}"),
        "rrn": format!("{:012}", 500_000_000_000u64 + u64::from(stan) + if merchant == MB { 10_000 } else { 0 }),
        "auth_code": "123456", "kind": "purchase", "channel": "card", "pan": "6222021234567890128",
        "amount": amount, "currency": "CNY", "response_code": "00", "txn_time": time,
    })
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap();
        let card_key = store::card_key(dir.path()).unwrap();
        for (id, zh, en) in [(MA, "甲便利店", "Shop A"), (MB, "乙餐厅", "Restaurant B")] {
            let mid = MerchantId::parse(id).unwrap();
            let mut m = NewMerchant::with_defaults(mid.clone());
            m.name_zh = zh.into();
            m.name_en = Some(en.into());
            m.clock = MerchantClock::default();
            store.create_merchant(&m, "test").unwrap();
            let prefix = if id == MA { "A" } else { "B" };
            for n in 1..=2 {
                let t = TerminalId::parse(&format!("{prefix}000000{n}")).unwrap();
                store
                    .create_terminal(&NewTerminal {
                        id: t,
                        merchant_id: mid.clone(),
                        master_key_hex: None,
                    })
                    .unwrap();
            }
        }
        let hash = api::auth::hash_password(PASSWORD).unwrap();
        for (name, role, m) in [
            ("a-admin", Role::MerchantAdmin, Some(MA)),
            ("b-admin", Role::MerchantAdmin, Some(MB)),
            ("bank", Role::BankOperator, None),
            ("auditor", Role::Auditor, None),
        ] {
            store
                .create_user(&NewUser {
                    username: name.into(),
                    role,
                    merchant_id: m.map(|m| MerchantId::parse(m).unwrap()),
                    terminals: vec![],
                    password_hash: hash.clone(),
                })
                .unwrap();
        }
        let key = api::auth::new_token("plk_");
        store
            .create_api_key(&NewApiKey {
                name: "seed".into(),
                key_hash: api::auth::token_hash(&key),
                merchants: None,
            })
            .unwrap();
        let state = AppState::new(store.clone(), card_key, CursorKey::new([7; 32]));
        let app = api::app(state.clone()).merge(web::routes(state));
        let mut world = World {
            app,
            store,
            b_txn: String::new(),
            _dir: Arc::new(dir),
        };
        // Merchant A: a few purchases over the last two hours (so "today" has rows in any
        // zone most of the day), one reversed, and older ones for the 7-day range.
        let mut items = Vec::new();
        for stan in 1..=30u32 {
            let minutes_ago = if stan <= 12 {
                i64::from(stan)
            } else {
                i64::from(stan) * 60 * 5
            };
            let terminal = if stan % 3 == 0 {
                "A0000002"
            } else {
                "A0000001"
            };
            items.push(txn(
                MA,
                terminal,
                stan,
                1000 + i64::from(stan) * 137,
                minutes_ago,
            ));
        }
        let mut rev = txn(MA, "A0000002", 31, 1000 + 3 * 137, 2);
        rev["reversal"] = json!(true);
        rev["original"] = json!({"batch_no": "000001", "stan": "000003"});
        rev["terminal_id"] = json!("A0000002");
        rev.as_object_mut().unwrap().remove("auth_code");
        rev.as_object_mut().unwrap().remove("rrn");
        items.push(rev);
        items.push(txn(MB, "B0000001", 1, 88_800, 3));
        let r = world
            .call_key(
                "POST",
                "/api/v1/transactions",
                &key,
                Some(Value::Array(items)),
            )
            .await;
        assert!(r.status.is_success(), "seeding failed: {}", r.text);
        let ids: Value = serde_json::from_str(&r.text).unwrap();
        world.b_txn = ids["data"].as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        world
    }

    async fn call_key(&self, method: &str, uri: &str, key: &str, body: Option<Value>) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-api-key", key)
            .header(header::CONTENT_TYPE, "application/json");
        let req = req
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        self.raw(req).await
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str, cookie: &str) -> Resp {
        self.raw(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_form(&self, uri: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Request::post(uri)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.raw(req).await
    }

    /// Signs in through the login form; returns the session cookie (`poslens_session=…`).
    pub async fn login(&self, user: &str) -> String {
        let (csrf_cookie, csrf) = self.login_csrf().await;
        let r = self
            .post_form(
                "/login",
                &csrf_cookie,
                &[
                    ("username", user),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        set_cookie(&r, "poslens_session").expect("a session cookie")
    }

    /// The login form's CSRF cookie and field value.
    pub async fn login_csrf(&self) -> (String, String) {
        let r = self
            .raw(Request::get("/login").body(Body::empty()).unwrap())
            .await;
        let cookie = set_cookie(&r, "poslens_login_csrf").unwrap();
        let csrf = field_value(&r.text, "csrf").unwrap();
        (cookie, csrf)
    }

    /// Serves the app on loopback (with peer addresses, as the binary does).
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        addr
    }
}

pub fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The value of the first `<input name="…" value="…">` in a page.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

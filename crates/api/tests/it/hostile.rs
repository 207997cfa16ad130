//! Arbitrary query strings, bodies and ids from the network never make the API fail with a
//! 500 or panic: every answer is a success or a 4xx problem.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use proptest::prelude::*;

use crate::support::*;

fn check(status: StatusCode, what: &str) {
    assert!(status.is_success() || status.is_client_error(), "{what} answered {status}");
}

/// Query parameters the endpoints know, with values from a hostile alphabet.
fn query() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "from", "to", "basis", "merchant_id", "terminal_id", "kind", "status", "channel", "card_last4", "rrn", "stan",
        "batch_no", "auth_code", "external_ref", "amount_min", "amount_max", "limit", "cursor", "include", "format", "encoding",
        "lang", "bogus",
    ]);
    let value = prop::string::string_regex("[-0-9a-zA-Z:+T.,%=&_ \u{4e00}\u{ff}]{0,30}").unwrap();
    prop::collection::vec((names, value), 0..6).prop_map(|pairs| {
        pairs.iter().map(|(k, v)| format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())).collect::<Vec<_>>().join("&")
    })
}

#[test]
fn hostile_queries_bodies_and_ids_get_4xx_never_500() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let w = World::new();
    let token = rt.block_on(w.login("a-admin"));
    let bank = rt.block_on(w.login("bank"));
    let config = ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(q in query(), body in prop::collection::vec(any::<u8>(), 0..200), id in "[ -~]{0,40}")| {
        rt.block_on(async {
            for path in ["/api/v1/transactions", "/api/v1/settlements", "/api/v1/terminals", "/api/v1/transactions/export", "/api/v1/audit", "/api/v1/tickets"] {
                let r = w.get(&format!("{path}?{q}"), &token).await;
                check(r.status, &format!("GET {path}?{q}"));
            }
            let enc: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let r = w.get(&format!("/api/v1/transactions/{enc}"), &token).await;
            check(r.status, &format!("GET transactions/{id:?}"));
            for path in ["/api/v1/transactions", "/api/v1/diagnose", "/api/v1/auth/login", "/api/v1/announcements", "/api/v1/tickets"] {
                let who = if path == "/api/v1/transactions" { w.key_all.clone() } else if path == "/api/v1/announcements" { bank.clone() } else { token.clone() };
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {who}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let r = w.raw(req).await;
                check(r.status, &format!("POST {path} with {} bytes", body.len()));
            }
        });
    });
}

//! The portal through the router: what a browser cannot easily show (headers, status codes,
//! refusals).

use axum::http::{header, StatusCode};

use crate::support::*;

#[tokio::test]
async fn pages_carry_a_strict_csp_and_the_session_cookie_is_httponly_strict() {
    let w = World::new().await;
    let (csrf_cookie, csrf) = w.login_csrf().await;
    let r = w
        .post_form(
            "/login",
            &csrf_cookie,
            &[
                ("username", "a-admin"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let session = set
        .iter()
        .find(|c| c.starts_with("poslens_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap().to_owned();
    let page = w.get("/transactions", &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csp = page
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(!page.text.contains("<script"), "no page needs a script");
    assert!(
        !page.text.contains("style=\""),
        "inline styles would need 'unsafe-inline'"
    );
    // The same cookie authenticates the JSON API (export links rely on it).
    assert_eq!(
        w.get("/api/v1/auth/me", &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let w = World::new().await;
    let bank = w.login("bank").await;
    let r = w
        .post_form(
            &format!("/bank/merchants/{MA}/status"),
            &bank,
            &[("status", "frozen"), ("reason", "x"), ("csrf", "forged")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let m = w.get(&format!("/bank/merchants/{MA}"), &bank).await;
    assert!(
        m.text.contains("mstatus-active"),
        "status must be unchanged"
    );
    // A login post without the form's cookie is refused too.
    let r = w
        .post_form(
            "/login",
            "",
            &[
                ("username", "a-admin"),
                ("password", PASSWORD),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_login_for_a_minute_with_a_clear_message() {
    let w = World::new().await;
    let (c, csrf) = w.login_csrf().await;
    for left in (1..=4).rev() {
        let r = w
            .post_form(
                "/login",
                &c,
                &[
                    ("username", "a-admin"),
                    ("password", "wrong wrong"),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.text.contains(&format!("还可尝试 {left} 次")),
            "{}",
            r.text
        );
    }
    let r = w
        .post_form(
            "/login",
            &c,
            &[
                ("username", "a-admin"),
                ("password", "wrong wrong"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Locked even with the right password, and the page says for how long.
    let r = w
        .post_form(
            "/login",
            &c,
            &[
                ("username", "a-admin"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.text.contains("登录失败次数过多") && r.text.contains("秒后再试"),
        "{}",
        r.text
    );
    // Another user is not locked out by it.
    w.login("b-admin").await;
}

#[tokio::test]
async fn another_merchants_transaction_and_unknown_ids_answer_404() {
    let w = World::new().await;
    let a = w.login("a-admin").await;
    for uri in [
        format!("/transactions/{}", w.b_txn),
        "/transactions/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        "/transactions/nonsense".into(),
        "/no-such-page".into(),
    ] {
        let r = w.get(&uri, &a).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.text.contains("页面不存在"), "{uri}");
    }
    // Merchant users do not see bank pages exist.
    assert_eq!(
        w.get(&format!("/bank/merchants/{MB}"), &a).await.status,
        StatusCode::NOT_FOUND
    );
    // Merchant B sees its own.
    let b = w.login("b-admin").await;
    assert_eq!(
        w.get(&format!("/transactions/{}", w.b_txn), &b)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_login_and_back_to_a_local_page_only() {
    let w = World::new().await;
    let r = w.get("/transactions?quick=7d", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap(),
        "/login?next=%2Ftransactions%3Fquick%3D7d"
    );
    let (c, csrf) = w.login_csrf().await;
    let r = w
        .post_form(
            "/login",
            &c,
            &[
                ("username", "a-admin"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/");
}

#[tokio::test]
async fn every_main_page_renders_for_its_role() {
    let w = World::new().await;
    let a = w.login("a-admin").await;
    for uri in [
        "/",
        "/transactions",
        "/transactions?quick=month&kind=purchase&amount_min=1",
        "/settlements",
        "/diagnose",
    ] {
        let r = w.get(uri, &a).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    }
    let bank = w.login("bank").await;
    for uri in [
        "/bank/merchants",
        "/bank/merchants?q=%E7%94%B2",
        &format!("/bank/merchants/{MA}"),
    ] {
        let r = w.get(uri, &bank).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    }
}

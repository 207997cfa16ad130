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
    for uri in ["/tickets", "/tickets?status=resolved", "/users"] {
        let r = w.get(uri, &a).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    }
    let bank = w.login("bank").await;
    for uri in [
        "/bank/merchants",
        "/bank/merchants?q=%E7%94%B2",
        &format!("/bank/merchants/{MA}"),
        "/tickets",
        "/tickets?status=assigned",
        "/bank/announcements",
        "/bank/clearing",
        "/bank/reconciliation",
    ] {
        let r = w.get(uri, &bank).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    }
}

/// The CSRF field of a signed-in page.
async fn csrf(w: &World, cookie: &str, page: &str) -> String {
    field_value(&w.get(page, cookie).await.text, "csrf").expect("a form on the page")
}

fn ticket_location(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    r.headers
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_ticket_opened_from_the_diagnosis_is_one_ticket_and_the_bank_answer_reaches_the_merchant() {
    let w = World::new().await;
    let a = w.login("a-admin").await;
    let token = csrf(&w, &a, "/diagnose").await;
    // The diagnosis page offers the ticket with the question carried along.
    let d = w
        .post_form("/diagnose", &a, &[("csrf", &token), ("rrn", REVERSED_RRN)])
        .await;
    assert!(d.text.contains("id=\"open-ticket\""), "{}", d.text);
    let form = [("csrf", token.as_str()), ("rrn", REVERSED_RRN), ("date", "")];
    // Without the session's token nothing is opened.
    let forged = w
        .post_form("/tickets", &a, &[("csrf", "forged"), ("rrn", REVERSED_RRN)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(w.get("/tickets", &a).await.text.contains("id=\"no-tickets\""));
    let first = ticket_location(&w.post_form("/tickets", &a, &form).await);
    let again = ticket_location(&w.post_form("/tickets", &a, &form).await);
    assert_eq!(first, again, "a double click opens one ticket");
    assert!(first.starts_with("/tickets/") && first.ends_with("?opened=1"));
    let path = first.trim_end_matches("?opened=1").to_owned();
    let page = w.get(&first, &a).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("data-code=\"REVERSED\""), "the diagnosis is attached");
    assert!(page.text.contains(REVERSED_RRN));
    assert!(!page.text.contains("id=\"resolve-form\""), "merchants do not work tickets");
    // Another merchant does not see it; the bank does, in its open queue.
    let b = w.login("b-admin").await;
    assert_eq!(w.get(&path, &b).await.status, StatusCode::NOT_FOUND);
    let bank = w.login("bank").await;
    assert!(w.get("/tickets", &bank).await.text.contains(&format!("href=\"{path}\"")));
    // Auditors read but cannot resolve; merchants cannot either.
    let auditor = w.login("auditor").await;
    assert!(!w.get(&path, &auditor).await.text.contains("id=\"resolve-form\""));
    let at = csrf(&w, &auditor, &path).await;
    let r = w
        .post_form(&format!("{path}/resolve"), &auditor, &[("csrf", &at), ("explanation", "x")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .post_form(&format!("{path}/resolve"), &a, &[("csrf", &token), ("explanation", "x")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The bank resolves with an explanation (an empty answer is refused first).
    let bt = csrf(&w, &bank, &path).await;
    let r = w
        .post_form(&format!("{path}/resolve"), &bank, &[("csrf", &bt), ("explanation", " ")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w
        .post_form(&format!("{path}/resolve"), &bank, &[("csrf", "forged"), ("explanation", "x")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .post_form(
            &format!("{path}/resolve"),
            &bank,
            &[("csrf", &bt), ("explanation", "终端超时已自动冲正，未扣款")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = w.get(&path, &a).await.text;
    assert!(page.contains("终端超时已自动冲正，未扣款") && page.contains("tkstatus-resolved"), "{page}");
    assert!(page.contains("data-action=\"resolve\""), "the step history");
}

#[tokio::test]
async fn a_maintenance_announcement_is_a_banner_on_every_merchant_page() {
    let w = World::new().await;
    let bank = w.login("bank").await;
    let a = w.login("a-admin").await;
    let token = csrf(&w, &bank, "/bank/announcements").await;
    let form = [
        ("csrf", token.as_str()),
        ("title_zh", "今晚系统维护"),
        ("title_en", "Maintenance tonight"),
        ("body_zh", "查询暂停"),
        ("body_en", "Queries paused"),
        ("starts_at", "2020-01-01T00:00"),
        ("affects_query", "on"),
    ];
    let mut forged = form;
    forged[0] = ("csrf", "forged");
    assert_eq!(
        w.post_form("/bank/announcements", &bank, &forged).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(!w.get("/", &a).await.text.contains("id=\"notices\""));
    // Merchants and auditors cannot post one.
    let auditor = w.login("auditor").await;
    let at = csrf(&w, &auditor, "/bank/announcements").await;
    let mut by_auditor = form;
    by_auditor[0] = ("csrf", at.as_str());
    assert_eq!(
        w.post_form("/bank/announcements", &auditor, &by_auditor).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(!w.get("/bank/announcements", &auditor).await.text.contains("id=\"announcement-form\""));
    let r = w.post_form("/bank/announcements", &bank, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    for page in ["/", "/transactions", "/settlements", "/diagnose", "/tickets"] {
        let html = w.get(page, &a).await.text;
        assert!(html.contains("id=\"notices\"") && html.contains("今晚系统维护"), "{page}");
    }
    // Bad times are refused with the form kept.
    let mut bad = form;
    bad[5] = ("starts_at", "tomorrow");
    let r = w.post_form("/bank/announcements", &bank, &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("今晚系统维护"));
    // Ending it takes the banner away.
    let list = w.get("/bank/announcements", &bank).await.text;
    let at = list.find("/bank/announcements/").unwrap();
    let id: String = list[at + 20..].chars().take_while(|c| c.is_ascii_digit()).collect();
    let r = w
        .post_form(&format!("/bank/announcements/{id}/end"), &bank, &[("csrf", &token)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(!w.get("/", &a).await.text.contains("今晚系统维护"));
}

#[tokio::test]
async fn bank_pages_are_404_for_merchants_and_the_audit_log_is_for_auditors() {
    let w = World::new().await;
    let a = w.login("a-admin").await;
    for uri in [
        "/bank/announcements",
        "/bank/clearing",
        "/bank/reconciliation",
        "/bank/reconciliation/1",
        "/bank/audit",
    ] {
        assert_eq!(w.get(uri, &a).await.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let bank = w.login("bank").await;
    assert_eq!(w.get("/bank/audit", &bank).await.status, StatusCode::FORBIDDEN);
    assert_eq!(w.get("/users", &bank).await.status, StatusCode::FORBIDDEN);
    let auditor = w.login("auditor").await;
    let r = w.get("/bank/audit?action=login", &auditor).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("user:bank"), "{}", r.text);
    for uri in ["/bank/clearing", "/bank/reconciliation"] {
        let r = w.get(uri, &auditor).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(!r.text.contains("id=\"upload-form\"") && !r.text.contains("id=\"run-form\""), "{uri}");
    }
}

fn multipart(fields: &[(&str, &str)], file: &str) -> (String, String) {
    let boundary = "----poslens-test-boundary";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
    }
    body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bank.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_refused_clearing_file_lists_its_bad_rows_and_a_run_lists_its_items() {
    let w = World::new().await;
    let bank = w.login("bank").await;
    let token = csrf(&w, &bank, "/bank/clearing").await;
    let header = "settlement_date,merchant_id,terminal_id,batch_no,stan,rrn,auth_code,kind,card,amount,fee,net_amount,txn_time,currency,channel,external_ref";
    let good = format!("2026-11-25,{MA},A0000001,000001,000777,500000000777,123456,purchase,622202******0128,10.00,0.00,10.00,2026-11-25 10:00:00,CNY,card,");
    let bad = format!("2026-11-25,{MA},A0000001,000001,000002,500000000002,123456,purchase,622202******0128,ten,0.00,10.00,2026-11-25 10:00:00,CNY,card,");
    let file = format!("{header}\n{good}\n{bad}\n");
    let post = |fields: Vec<(&'static str, String)>| {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ct, body) = multipart(&f, &file);
        axum::http::Request::post("/bank/clearing")
            .header(header::COOKIE, bank.as_str())
            .header(header::CONTENT_TYPE, ct)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let r = w.raw(post(vec![("csrf", "forged".into()), ("profile", "canonical".into())])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.raw(post(vec![("csrf", token.clone()), ("profile", "canonical".into())])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("id=\"bad-rows\"") && r.text.contains(">3<") && r.text.contains(">ten<"), "{}", r.text);
    assert!(r.text.contains("id=\"no-files\"") || !r.text.contains("bank.csv</td>"), "nothing imported");
    let r = w
        .raw(post(vec![("csrf", token.clone()), ("profile", "canonical".into()), ("allow_partial", "true".into())]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("id=\"notice\"") && r.text.contains("bank.csv"), "{}", r.text);
    // A run for that date, and its items by outcome.
    let r = w
        .post_form("/bank/reconciliation", &bank, &[("csrf", &token), ("settlement_date", "2026-11-25")])
        .await;
    let run = ticket_location(&r);
    assert!(run.starts_with("/bank/reconciliation/"), "{run}");
    let page = w.get(&run, &bank).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("outcome-missing_in_platform"), "{}", page.text);
    let filtered = w.get(&format!("{run}?outcome=missing_in_platform"), &bank).await;
    assert!(filtered.text.contains("500000000777") && filtered.text.contains("bank.csv:2"));
    assert!(w.get("/bank/reconciliation", &bank).await.text.contains(&format!("href=\"{run}\"")));
}

#[tokio::test]
async fn a_merchant_admin_creates_and_disables_staff_from_the_portal() {
    let w = World::new().await;
    let a = w.login("a-admin").await;
    let token = csrf(&w, &a, "/users").await;
    let form = [
        ("csrf", token.as_str()),
        ("username", "a-cashier"),
        ("password", PASSWORD),
        ("terminals", "A0000002"),
    ];
    let mut forged = form;
    forged[0] = ("csrf", "forged");
    assert_eq!(w.post_form("/users", &a, &forged).await.status, StatusCode::FORBIDDEN);
    let r = w.post_form("/users", &a, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = w.get("/users?done=created", &a).await.text;
    assert!(page.contains("a-cashier") && page.contains("A0000002"), "{page}");
    // The same name again: the API's reason on the page.
    let r = w.post_form("/users", &a, &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("id=\"user-error\""));
    let staff = w.login("a-cashier").await;
    assert_eq!(w.get("/users", &staff).await.status, StatusCode::NOT_FOUND);
    // Another merchant's admin cannot disable it.
    let b = w.login("b-admin").await;
    let bt = csrf(&w, &b, "/users").await;
    let r = w.post_form("/users/a-cashier/disable", &b, &[("csrf", &bt)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w.post_form("/users/a-cashier/disable", &a, &[("csrf", &token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(w.get("/", &staff).await.status, StatusCode::SEE_OTHER, "signed out");
}

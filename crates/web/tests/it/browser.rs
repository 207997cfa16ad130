//! Headless Chromium over chromedriver: the journeys of the issue, with screenshots of every
//! main page at 1280 and 375 px in `target/screenshots/`. chromedriver missing is a failure,
//! not a skip (scripts/test.sh installs it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::*;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_browser() -> (Driver, Client, tempfile::TempDir) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver could not start ({e}); install it: apt-get install -y chromium chromium-driver (scripts/test.sh does)"));
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on port {port} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                        format!("--user-data-dir={}", profile.path().display()), "--window-size=1280,900", "--lang=zh-CN"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session through chromedriver");
    (driver, client, profile)
}

fn shots_dir() -> PathBuf {
    // tests run in the crate directory; the workspace target dir is two levels up.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct B {
    c: Client,
    base: String,
    width: u32,
}

impl B {
    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} not on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn has(&self, css: &str) -> bool {
        !self.c.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    async fn resize(&mut self, width: u32) {
        self.width = width;
        self.c
            .set_window_size(width, if width < 600 { 812 } else { 900 })
            .await
            .unwrap();
    }

    /// A full-page screenshot at the current width, after checking the page does not scroll
    /// sideways and every visible form control has a label.
    async fn shot(&self, name: &str) {
        let overflow = self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        assert!(
            overflow.as_i64().unwrap_or(0) <= 0,
            "{name} at {} px scrolls sideways by {overflow} px",
            self.width
        );
        let unlabelled = self
            .js("return [...document.querySelectorAll('input:not([type=hidden]),select')].filter(e => !(e.labels && e.labels.length)).map(e => e.name)")
            .await;
        assert_eq!(unlabelled, json!([]), "{name}: inputs without a label");
        let h = self
            .js("return Math.min(document.documentElement.scrollHeight, 4000)")
            .await
            .as_u64()
            .unwrap_or(900) as u32;
        let base_h = if self.width < 600 { 812 } else { 900 };
        self.c
            .set_window_size(self.width, h.max(base_h) + 100)
            .await
            .unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(shots_dir().join(format!("{name}-{}.png", self.width)), png).unwrap();
        self.c.set_window_size(self.width, base_h).await.unwrap();
    }

    /// The top of the page only, as a phone shows it first (`{name}-top-{width}.png`).
    async fn shot_top(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(shots_dir().join(format!("{name}-top-{}.png", self.width)), png).unwrap();
    }

    /// Screenshots of the current page at 1280 and 375 px; the window is left at 1280.
    async fn shots(&mut self, name: &str) {
        self.resize(1280).await;
        self.shot(name).await;
        self.resize(375).await;
        self.shot(name).await;
        self.resize(1280).await;
    }

    /// Signs in with the keyboard only: type, Tab to the password, Enter to submit.
    async fn login(&self, user: &str) {
        self.go("/login").await;
        let u = self.c.find(Locator::Id("username")).await.unwrap();
        u.send_keys(user).await.unwrap();
        u.send_keys("\u{E004}").await.unwrap();
        let focused = self.js("return document.activeElement.id").await;
        assert_eq!(
            focused,
            json!("password"),
            "Tab from the username goes to the password"
        );
        self.c
            .active_element()
            .await
            .unwrap()
            .send_keys(&format!("{PASSWORD}\u{E007}"))
            .await
            .unwrap();
        self.wait_for("header .user").await;
    }

    async fn logout(&self) {
        self.click("#logout").await;
        self.wait_for("#login-submit").await;
    }

    /// Waits until the address contains `part` (after a click that navigates).
    async fn wait_path(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.path().await.contains(part) {
            assert!(
                Instant::now() < deadline,
                "address never contained {part:?}: {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has(css).await {
            if Instant::now() >= deadline {
                let src = self.c.source().await.unwrap_or_default();
                panic!(
                    "{css} did not appear on {}:\n{}",
                    self.path().await,
                    &src[..src.len().min(3000)]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_merchant_and_bank_journeys() {
    let started = Instant::now();
    let w = World::new().await;
    let addr: SocketAddr = w.serve().await;
    let (_driver, client, _profile) = start_browser().await;
    let mut b = B {
        c: client,
        base: format!("http://{addr}"),
        width: 1280,
    };
    b.resize(1280).await;

    // Sign-in page, Chinese by default.
    b.go("/login").await;
    assert_eq!(
        b.js("return document.documentElement.lang").await,
        json!("zh-CN")
    );
    assert_eq!(b.text("h1").await, "登录");
    b.shot("login").await;

    // A merchant signs in (keyboard only) and lands on the dashboard.
    b.login("a-admin").await;
    assert_eq!(b.text("main h1").await, "概览");
    assert!(b.text("#tile-week").await.contains('¥'));
    assert_eq!(b.text("#account-status").await, "正常");
    b.shot("dashboard").await;

    // Transactions: a quick range, then an amount filter typed in yuan.
    b.go("/transactions").await;
    b.click(".quick a:nth-child(3)").await; // 近7天
    b.wait_path("quick=7d").await;
    b.wait_for("#txn-table").await;
    let rows =
        b.c.find_all(Locator::Css("#txn-table tbody tr"))
            .await
            .unwrap()
            .len();
    assert_eq!(rows, 20, "a full first page");
    assert!(
        b.has("#next-page").await,
        "31 records in 7 days: there is a second page"
    );
    assert!(b.text("#searched-range").await.contains("Asia/Shanghai"));
    b.shot("transactions").await;
    b.click("#next-page").await;
    b.wait_path("page=2").await;
    assert!(b.text(".pager").await.contains("第 2 页"));
    b.go("/transactions?quick=7d").await;
    b.click("details summary").await;
    // ¥40 and up: purchases 22..=30, between 4.6 and 6.25 days old. Some of them lie in the
    // 7-day range (today and the six days before it, in the merchant's zone) at any hour;
    // purchase 30 alone would not (early in a Shanghai morning it is older than the range).
    b.fill("#amount_min", "40").await;
    b.click("#search").await;
    b.wait_path("amount_min=40").await;
    b.wait_for("#summary").await;
    let amounts: Vec<String> = {
        let mut v = Vec::new();
        for e in
            b.c.find_all(Locator::Css("#txn-table td.amount"))
                .await
                .unwrap()
        {
            v.push(e.text().await.unwrap());
        }
        v
    };
    assert!(
        !amounts.is_empty()
            && amounts.iter().all(|a| a
                .trim_start_matches('¥')
                .replace(',', "")
                .parse::<f64>()
                .unwrap()
                >= 40.0),
        "{amounts:?}"
    );
    // The export links carry the same query (amount in fen) and the cookie authenticates them.
    let csv_href =
        b.c.find(Locator::Id("export-csv"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
    assert!(
        csv_href.starts_with("/api/v1/transactions/export?")
            && csv_href.contains("amount_min=4000")
            && csv_href.contains("format=csv"),
        "{csv_href}"
    );
    let cookie = w.login("a-admin").await;
    let csv = w.get(&csv_href, &cookie).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.text.lines().count() - 1,
        amounts.len().max(csv.text.lines().count() - 1),
        "CSV has the filtered rows"
    );
    let xlsx_href =
        b.c.find(Locator::Id("export-xlsx"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(w.get(&xlsx_href, &cookie).await.status, StatusCode::OK);

    // A detail with its event history: the reversed purchase.
    b.go(&format!("/transactions?quick=7d&rrn={REVERSED_RRN}"))
        .await;
    b.click("#txn-table .detail-link").await;
    b.wait_for("#detail-status").await;
    assert_eq!(b.text("#detail-status").await, "已冲正");
    assert!(b.text("#history").await.contains("冲正"));
    b.shot("detail").await;

    // Another merchant's transaction URL: the not-found page.
    b.go(&format!("/transactions/{}", w.b_txn)).await;
    assert_eq!(b.text("main h1").await, "页面不存在");
    b.shot("not-found").await;

    b.go("/settlements").await;
    assert!(b.has("#settlements").await);
    b.shot("settlements").await;

    // "找不到交易？" on the reversed transaction says REVERSED.
    b.go("/diagnose").await;
    b.fill("#rrn", REVERSED_RRN).await;
    b.click("#diagnose-submit").await;
    b.wait_for("#findings, #diagnose-error").await;
    b.wait_for("#findings").await;
    let first =
        b.c.find(Locator::Css("#findings li"))
            .await
            .unwrap()
            .attr("data-code")
            .await
            .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("REVERSED"),
        "{}",
        b.text("#findings").await
    );
    b.shot("diagnose").await;
    // Still missing: one click opens a ticket with the question and the findings attached.
    b.click("#open-ticket").await;
    b.wait_for("#ticket-status").await;
    assert_eq!(b.text("#ticket-status").await, "待处理");
    assert!(b.has("#ticket-findings li[data-code=REVERSED]").await);
    let ticket_path = b.path().await.split('?').next().unwrap().to_owned();
    b.shots("ticket").await;

    // The language switch, remembered across pages; then back to Chinese.
    b.go("/transactions?quick=7d").await;
    b.click("#lang-switch").await;
    b.wait_for("html[lang=en] #txn-table").await;
    assert_eq!(b.text("main h1").await, "Transactions");
    assert!(
        b.path().await.contains("quick=7d"),
        "the switch returns to the same query"
    );
    b.go("/settlements").await;
    assert_eq!(b.text("main h1").await, "Settlements");
    assert_eq!(
        b.js("return document.documentElement.lang").await,
        json!("en")
    );
    b.shot("settlements-en").await;
    b.click("#lang-switch").await;
    b.wait_for("html[lang=zh-CN] main h1").await;
    assert_eq!(b.text("main h1").await, "结算汇总");

    // Phone width: the same pages as cards, nothing scrolls sideways.
    b.resize(375).await;
    for (path, name) in [
        ("/", "dashboard"),
        ("/transactions?quick=7d", "transactions"),
        ("/settlements", "settlements"),
        ("/diagnose", "diagnose"),
    ] {
        b.go(path).await;
        b.shot(name).await;
        b.shot_top(name).await;
    }
    // The export links sit with the searched range, above the first row, on a phone too.
    b.go("/transactions?quick=7d").await;
    let export_y = b
        .js("return document.getElementById('export-csv').getBoundingClientRect().top")
        .await;
    let first_row_y = b
        .js("return document.querySelector('#txn-table tbody tr').getBoundingClientRect().top")
        .await;
    assert!(
        export_y.as_f64().unwrap() < first_row_y.as_f64().unwrap(),
        "export links at {export_y}, first row at {first_row_y}"
    );
    b.go(&format!("/transactions?quick=7d&rrn={REVERSED_RRN}"))
        .await;
    b.click("#txn-table .detail-link").await;
    b.wait_for("#detail-status").await;
    b.shot("detail").await;
    b.logout().await;
    b.shot("login").await;

    // A bank operator freezes merchant A with a reason.
    b.resize(1280).await;
    b.login("bank").await;
    assert!(b.path().await.starts_with("/bank/merchants"));
    b.shot("bank-merchants").await;
    b.fill("#q", "甲").await;
    b.click("form[role=search] button").await;
    b.wait_path("q=").await;
    assert_eq!(
        b.c.find_all(Locator::Css("#merchants tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    b.click(&format!("a[href='/bank/merchants/{MA}']")).await;
    b.wait_for("#status-form").await;
    b.c.find(Locator::Id("status"))
        .await
        .unwrap()
        .select_by_value("frozen")
        .await
        .unwrap();
    b.fill("#reason", "风险核查中").await;
    b.click("#status-submit").await;
    b.wait_for("#notice").await;
    assert_eq!(b.text("#merchant-status").await, "已冻结");
    b.shot("bank-merchant").await;
    b.resize(375).await;
    b.shot("bank-merchant").await;
    b.go("/bank/merchants").await;
    b.shot("bank-merchants").await;
    b.resize(1280).await;

    // The bank's ticket queue: the merchant's ticket, resolved with an explanation.
    b.go("/tickets").await;
    b.wait_for("#tickets").await;
    b.shots("bank-tickets").await;
    b.click(&format!("a[href='{ticket_path}']")).await;
    b.wait_for("#resolve-form").await;
    b.shots("bank-ticket").await;
    b.resize(375).await;
    b.shot_top("bank-ticket").await;
    b.resize(1280).await;
    b.fill("#explanation", "该笔交易因终端超时已自动冲正，未扣款。").await;
    b.click("#resolve-submit").await;
    b.wait_for("#answer").await;
    assert_eq!(b.text("#ticket-status").await, "已解决");

    // A maintenance announcement, typed with the keyboard and saved.
    b.go("/bank/announcements").await;
    b.fill("#title_zh", "今晚系统维护").await;
    b.fill("#title_en", "Maintenance tonight").await;
    b.fill("#body_zh", "23:00 至次日 01:00 暂停查询").await;
    b.fill("#body_en", "Queries paused 23:00-01:00").await;
    b.click("input[name=affects_query]").await;
    b.click("#announcement-submit").await;
    b.wait_for("#notice").await;
    assert!(b.text("#announcements").await.contains("今晚系统维护"));
    b.shots("bank-announcements").await;
    b.go("/bank/clearing").await;
    b.shots("bank-clearing").await;
    b.go("/bank/reconciliation").await;
    b.shots("bank-reconciliation").await;
    b.logout().await;

    // An auditor reads the audit log.
    b.login("auditor").await;
    b.go("/bank/audit?action=ticket_resolve").await;
    assert!(b.text("#audit").await.contains("user:bank"));
    b.shots("bank-audit").await;
    b.logout().await;

    // The merchant then sees the notice on every page.
    b.resize(1280).await;
    b.login("a-admin").await;
    let banner = b.text("#account-banner").await;
    assert!(
        banner.contains("已被冻结") && banner.contains("风险核查中"),
        "{banner}"
    );
    assert_eq!(b.text("#account-status").await, "已冻结");
    assert!(b.text("#notices").await.contains("今晚系统维护"));
    b.shot("dashboard-frozen").await;
    b.resize(375).await;
    b.shot("dashboard-frozen").await;
    // The bank's answer on the merchant's ticket.
    b.resize(1280).await;
    b.go("/tickets").await;
    b.wait_for("#tickets").await;
    b.shots("tickets").await;
    b.go(&ticket_path).await;
    assert!(b.text("#answer").await.contains("未扣款"));
    assert!(b.text("#ticket-history").await.contains("已解决"));
    b.shots("ticket-resolved").await;
    b.go("/users").await;
    b.shots("users").await;

    b.c.close().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "browser journeys took {:?}",
        started.elapsed()
    );
}

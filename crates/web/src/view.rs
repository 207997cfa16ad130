//! What every page shows around its content: who is signed in, the navigation for their role,
//! the language switch, the sign-out form and the account banner; and the message pages (404,
//! 403, 500).

use axum::http::StatusCode;
use axum::response::Response;
use domain::{MerchantStatus, Role};
use serde_json::{json, Value};

use crate::i18n::{t, Lang};
use crate::session::Viewer;
use crate::Web;

/// The frame of a page for `viewer`, with `active` the navigation key of this page.
pub fn frame(viewer: &Viewer, active: &str) -> Value {
    let lang = viewer.lang;
    let role = viewer.user.role;
    let mut nav: Vec<(&str, &str)> = Vec::new();
    if role.is_merchant() {
        nav.extend([
            ("/", "nav_dashboard"),
            ("/transactions", "nav_transactions"),
            ("/settlements", "nav_settlements"),
        ]);
        nav.push(("/diagnose", "nav_diagnose"));
        nav.push(("/tickets", "nav_tickets"));
    }
    if matches!(role, Role::BankOperator | Role::Auditor) {
        nav.extend([
            ("/bank/merchants", "nav_merchants"),
            ("/tickets", "nav_tickets"),
            ("/bank/announcements", "nav_announcements"),
            ("/bank/clearing", "nav_clearing"),
            ("/bank/reconciliation", "nav_reconciliation"),
        ]);
    }
    if role == Role::Auditor {
        nav.push(("/bank/audit", "nav_audit"));
    }
    if matches!(role, Role::MerchantAdmin | Role::Admin) {
        nav.push(("/users", "nav_users"));
    }
    let nav: Vec<Value> = nav
        .into_iter()
        .map(|(href, key)| json!({"href": href, "label": t(lang, key), "active": key == active}))
        .collect();
    let banner = viewer.merchant.as_ref().filter(|m| m.status != MerchantStatus::Active).map(|m| {
        let key = if m.status == MerchantStatus::Frozen { "banner_frozen" } else { "banner_closed" };
        json!({
            "title": t(lang, key),
            "reason": m.status_reason.clone().unwrap_or_default(),
            "since": m.status_since.with_timezone(&m.clock.tz).format("%Y-%m-%d %H:%M").to_string(),
            "timezone": m.clock.tz.name(),
        })
    });
    let tz = viewer.merchant.as_ref().map(|m| m.clock.tz).unwrap_or(chrono_tz::Asia::Shanghai);
    let notices: Vec<Value> = viewer.notices.iter().map(|a| notice_view(a, lang, tz)).collect();
    let back: String = form_urlencoded::byte_serialize(viewer.path.as_bytes()).collect();
    json!({
        "user": {"username": viewer.user.username, "role": t(lang, &format!("role_{}", role.as_str()))},
        "brand": t(lang, if role.is_merchant() { "brand" } else { "brand_bank" }),
        "merchant_name": viewer.merchant.as_ref().map(|m| merchant_name(m, lang)),
        "nav": nav,
        "csrf": viewer.csrf(),
        "lang_switch": format!("/lang?to={}&back={back}", lang.other().as_str()),
        "banner": banner,
        "notices": notices,
    })
}

/// An RFC 3339 instant of the API as wall-clock time in `tz` (`2026-01-05 23:00`).
pub fn at_zone(v: &Value, tz: chrono_tz::Tz) -> String {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// An announcement of the API in the page's language, its window in `tz`.
pub fn notice_view(a: &Value, lang: Lang, tz: chrono_tz::Tz) -> Value {
    let l = lang.as_str();
    let affects: Vec<String> = a["affects"]
        .as_array()
        .map(|x| x.iter().filter_map(Value::as_str).map(|w| t(lang, &format!("affects_{w}"))).collect())
        .unwrap_or_default();
    json!({
        "id": a["id"],
        "title": a["title"][l].as_str().unwrap_or(""),
        "body": a["body"][l].as_str().unwrap_or(""),
        "maintenance": a["maintenance"].as_bool().unwrap_or(false),
        "starts_at": at_zone(&a["starts_at"], tz),
        "ends_at": at_zone(&a["ends_at"], tz),
        "affects": affects.join(t(lang, "list_sep").as_str()),
        "timezone": tz.name(),
    })
}

pub fn merchant_name(m: &store::Merchant, lang: Lang) -> String {
    match (lang, &m.name_en) {
        (Lang::En, Some(en)) if !en.is_empty() => en.clone(),
        _ => m.name_zh.clone(),
    }
}

/// A page that only says something: not found, not allowed, an error.
pub fn message(web: &Web, lang: Lang, viewer: Option<&Viewer>, status: StatusCode) -> Response {
    let (title, text) = match status {
        StatusCode::NOT_FOUND => ("not_found_title", "not_found_text"),
        StatusCode::FORBIDDEN => ("forbidden_title", "forbidden_text"),
        _ => ("error_title", "error_text"),
    };
    message_text(web, lang, viewer, status, title, text)
}

pub fn message_text(
    web: &Web,
    lang: Lang,
    viewer: Option<&Viewer>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let mut ctx = match viewer {
        Some(v) => frame(v, ""),
        None => {
            json!({"user": null, "brand": t(lang, "brand"), "merchant_name": null, "nav": [], "csrf": "", "banner": null, "notices": [],
                       "lang_switch": format!("/lang?to={}&back=/", lang.other().as_str())})
        }
    };
    ctx["title"] = json!(t(lang, title));
    ctx["text"] = json!(t(lang, text));
    web.render(status, "message.html", lang, ctx)
}

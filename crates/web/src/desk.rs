//! The help desk around "找不到交易？": tickets (merchants follow theirs; bank operators assign,
//! comment and resolve), the bank's announcements, the audit log for auditors, and staff users
//! for merchant admins and admins.
//!
//! Every read and write goes through the JSON API in-process with the person's session, so who
//! may do what is the API's decision; these handlers only pick which pages a role is shown (a
//! merchant user asking for a bank page gets the 404 page, as for any page that is not theirs).

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use domain::Role;
use serde_json::{json, Value};

use crate::i18n::{t, Lang};
use crate::pages::{api_failure, enc, finding_view, query_string, txt};
use crate::session::Viewer;
use crate::view::{self, at_zone, notice_view};
use crate::{ApiAnswer, Web};

/// Tickets shown per tab (the API's page).
const TICKETS_SHOWN_MAX: u32 = 200;
/// Audit lines per page.
const AUDIT_PAGE_ROWS: usize = 50;
/// Longest filter value kept from a query string.
const FILTER_CHARS_MAX: usize = 64;
/// The bank's wall clock for announcement windows and the audit log.
pub(crate) const BANK_ZONE: Tz = chrono_tz::Asia::Shanghai;

/// Lets `roles` through; merchant users get the 404 page for pages that are not theirs, other
/// roles the 403 page.
pub(crate) fn only(web: &Web, viewer: &Viewer, roles: &[Role]) -> Result<(), Response> {
    if roles.contains(&viewer.user.role) {
        return Ok(());
    }
    let status = if viewer.is_merchant() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::FORBIDDEN
    };
    Err(view::message(web, viewer.lang, Some(viewer), status))
}

/// The API's refusal of what a person typed (400, 409, 422) as a line for the page; `None`
/// for every other answer.
pub(crate) fn refusal(lang: Lang, a: &ApiAnswer) -> Option<String> {
    matches!(
        a.status,
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
    )
    .then(|| format!("{}{}{}", t(lang, "refused"), t(lang, "colon"), a.detail()))
}

/// One query parameter, trimmed and bounded.
pub(crate) fn param(uri: &Uri, name: &str) -> String {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().chars().take(FILTER_CHARS_MAX).collect())
        .unwrap_or_default()
}

fn zone_of(viewer: &Viewer) -> Tz {
    viewer
        .merchant
        .as_ref()
        .map(|m| m.clock.tz)
        .unwrap_or(BANK_ZONE)
}

// ---------------------------------------------------------------------------------------------
// Tickets

const TICKET_READERS: &[Role] = &[
    Role::MerchantAdmin,
    Role::MerchantStaff,
    Role::BankOperator,
    Role::Auditor,
];
const TICKET_TABS: &[&str] = &["open", "assigned", "resolved"];

fn ticket_row(v: &Value, lang: Lang, tz: Tz) -> Value {
    json!({
        "id": v["id"], "subject": txt(&v["subject"]), "merchant_id": txt(&v["merchant_id"]),
        "status_word": txt(&v["status"]), "status": t(lang, &format!("tkstatus_{}", v["status"].as_str().unwrap_or("open"))),
        "assignee": txt(&v["assignee"]), "opened_by": txt(&v["opened_by"]),
        "created_at": at_zone(&v["created_at"], tz), "updated_at": at_zone(&v["updated_at"], tz),
    })
}

pub async fn tickets(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = only(&web, &viewer, TICKET_READERS) {
        return r;
    }
    let lang = viewer.lang;
    let bank = !viewer.is_merchant();
    let mut tab = param(&uri, "status");
    if !TICKET_TABS.contains(&tab.as_str()) && (tab != "all" || bank) {
        // The bank's queue starts at what waits for someone; a merchant sees all of its own.
        tab = if bank { "open".into() } else { "all".into() };
    }
    let q = if tab == "all" {
        format!("/api/v1/tickets?limit={TICKETS_SHOWN_MAX}")
    } else {
        format!("/api/v1/tickets?status={tab}&limit={TICKETS_SHOWN_MAX}")
    };
    let a = web.api("GET", &viewer.token, &q, None).await;
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    let tz = zone_of(&viewer);
    let rows: Vec<Value> = a.body["data"]
        .as_array()
        .map(|l| l.iter().map(|v| ticket_row(v, lang, tz)).collect())
        .unwrap_or_default();
    let mut tabs: Vec<&str> = Vec::new();
    if !bank {
        tabs.push("all");
    }
    tabs.extend_from_slice(TICKET_TABS);
    let mut ctx = view::frame(&viewer, "nav_tickets");
    ctx["tabs"] = json!(tabs
        .iter()
        .map(|s| json!({"href": format!("/tickets?status={s}"), "label": t(lang, &format!("tkstatus_{s}")), "active": *s == tab}))
        .collect::<Vec<_>>());
    ctx["tickets"] = json!(rows);
    ctx["bank"] = json!(bank);
    ctx["timezone"] = json!(tz.name());
    web.render(StatusCode::OK, "tickets.html", lang, ctx)
}

fn ticket_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

async fn ticket_page(
    web: &Web,
    viewer: &Viewer,
    id: i64,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let a = web
        .api("GET", &viewer.token, &format!("/api/v1/tickets/{id}"), None)
        .await;
    if !a.ok() {
        return api_failure(web, viewer, &a);
    }
    let tz = zone_of(viewer);
    let v = &a.body;
    let expected: Vec<Value> = v["details"]["expected"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "merchant_id")
                .map(|(k, x)| {
                    let value = match (k.as_str(), x) {
                        ("amount", Value::Number(n)) => {
                            crate::format::yuan(n.as_i64().unwrap_or(0))
                        }
                        ("time", Value::String(s)) if s.contains('T') => at_zone(x, tz),
                        _ => txt(x),
                    };
                    let key = if k == "time" { "time".to_owned() } else { format!("expected_{k}") };
                    json!({"key": t(lang, &key), "value": value})
                })
                .collect()
        })
        .unwrap_or_default();
    let findings: Vec<Value> = v["diagnosis"]["findings"]
        .as_array()
        .map(|l| l.iter().map(|f| finding_view(f, lang)).collect())
        .unwrap_or_default();
    let merchant = viewer.is_merchant();
    let events: Vec<Value> = v["events"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    let action = e["action"].as_str().unwrap_or("");
                    let actor = match e["actor"].as_str().unwrap_or("") {
                        "bank" => t(lang, "the_bank"),
                        other => other.trim_start_matches("user:").to_owned(),
                    };
                    // Merchants see that someone took the case, not who.
                    let text = if merchant && action == "assign" { String::new() } else { txt(&e["text"]) };
                    json!({"at": at_zone(&e["at"], tz), "action_word": action,
                           "action": t(lang, &format!("tkaction_{action}")), "actor": actor, "text": text})
                })
                .collect()
        })
        .unwrap_or_default();
    let status_word = v["status"].as_str().unwrap_or("open");
    let mut ctx = view::frame(viewer, "nav_tickets");
    ctx["ticket"] = json!({
        "id": v["id"], "subject": txt(&v["subject"]), "merchant_id": txt(&v["merchant_id"]),
        "status_word": status_word, "status": t(lang, &format!("tkstatus_{status_word}")),
        "opened_by": txt(&v["opened_by"]).trim_start_matches("user:"), "assignee": txt(&v["assignee"]).trim_start_matches("user:"),
        "created_at": at_zone(&v["created_at"], tz), "updated_at": at_zone(&v["updated_at"], tz),
        "resolution": txt(&v["resolution"]), "resolved_txn": txt(&v["resolved_transaction_id"]),
    });
    ctx["expected"] = json!(expected);
    ctx["findings"] = json!(findings);
    ctx["events"] = json!(events);
    ctx["merchant"] = json!(merchant);
    ctx["can_work"] =
        json!(viewer.user.role == Role::BankOperator && status_word != "resolved");
    ctx["me"] = json!(viewer.user.username);
    ctx["timezone"] = json!(tz.name());
    ctx["notice"] = json!(notice);
    ctx["error"] = json!(error);
    web.render(status, "ticket.html", lang, ctx)
}

pub async fn ticket(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = only(&web, &viewer, TICKET_READERS) {
        return r;
    }
    let Some(id) = ticket_id(&id) else {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let notice = match param(&uri, "done").as_str() {
        "" => None,
        step if ["opened", "assign", "comment", "resolve"].contains(&step) => {
            Some(t(viewer.lang, &format!("ticket_done_{step}")))
        }
        _ => None,
    };
    let notice = notice.or_else(|| {
        (param(&uri, "opened") == "1").then(|| t(viewer.lang, "ticket_done_opened"))
    });
    ticket_page(&web, &viewer, id, notice, None, StatusCode::OK).await
}

#[derive(serde::Deserialize, Default)]
pub struct StepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    transaction_id: String,
}

/// `POST /tickets/{id}/{assign|comment|resolve}` (bank operators).
pub async fn ticket_step(
    State(web): State<Web>,
    viewer: Viewer,
    Path((id, step)): Path<(String, String)>,
    Form(f): Form<StepForm>,
) -> Response {
    if let Err(r) = only(&web, &viewer, &[Role::BankOperator, Role::Auditor]) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let lang = viewer.lang;
    let Some(id) = ticket_id(&id) else {
        return view::message(&web, lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let (api_step, body) = match step.as_str() {
        "assign" => {
            let who = f.assignee.trim();
            let who = if who.is_empty() {
                format!("user:{}", viewer.user.username)
            } else if who.contains(':') {
                who.to_owned()
            } else {
                format!("user:{who}")
            };
            ("assign", json!({"assignee": who}))
        }
        "comment" => ("comments", json!({"text": f.text.trim()})),
        "resolve" => {
            let (text, txn) = (f.explanation.trim(), f.transaction_id.trim());
            if text.is_empty() && txn.is_empty() {
                let msg = t(lang, "resolve_needs_something");
                return ticket_page(&web, &viewer, id, None, Some(msg), StatusCode::BAD_REQUEST).await;
            }
            let mut b = json!({"explanation": text});
            if !txn.is_empty() {
                b["transaction_id"] = json!(txn);
            }
            ("resolve", b)
        }
        _ => return view::message(&web, lang, Some(&viewer), StatusCode::NOT_FOUND),
    };
    let a = web
        .api(
            "POST",
            &viewer.token,
            &format!("/api/v1/tickets/{id}/{api_step}"),
            Some(&body),
        )
        .await;
    if let Some(msg) = refusal(lang, &a) {
        return ticket_page(&web, &viewer, id, None, Some(msg), StatusCode::BAD_REQUEST).await;
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to(&format!("/tickets/{id}?done={step}")).into_response()
}

// ---------------------------------------------------------------------------------------------
// Announcements

const AFFECTS: &[&str] = &["query", "capture", "settlement"];

#[derive(serde::Deserialize, Default, Clone)]
pub struct AnnouncementForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title_zh: String,
    #[serde(default)]
    title_en: String,
    #[serde(default)]
    body_zh: String,
    #[serde(default)]
    body_en: String,
    #[serde(default)]
    merchant_id: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default)]
    affects_query: String,
    #[serde(default)]
    affects_capture: String,
    #[serde(default)]
    affects_settlement: String,
}

impl AnnouncementForm {
    fn affects(&self) -> Vec<&'static str> {
        [
            ("query", &self.affects_query),
            ("capture", &self.affects_capture),
            ("settlement", &self.affects_settlement),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k)
        .collect()
    }

    /// The API's announcement from the form; `Err` names the message key of a bad time.
    fn api_body(&self) -> Result<Value, &'static str> {
        let instant = |s: &str| -> Result<Option<String>, &'static str> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
                .map_err(|_| "time_invalid")?;
            let at = BANK_ZONE
                .from_local_datetime(&local)
                .earliest()
                .ok_or("time_invalid")?;
            Ok(Some(at.to_rfc3339()))
        };
        let mut v = json!({
            "title": {"zh": self.title_zh.trim(), "en": self.title_en.trim()},
            "body": {"zh": self.body_zh.trim(), "en": self.body_en.trim()},
            "affects": self.affects(),
        });
        if let Some(s) = instant(&self.starts_at)? {
            v["starts_at"] = json!(s);
        }
        if let Some(e) = instant(&self.ends_at)? {
            v["ends_at"] = json!(e);
        }
        if !self.merchant_id.trim().is_empty() {
            v["merchant_id"] = json!(self.merchant_id.trim());
        }
        Ok(v)
    }

    /// The form again from an announcement of the API (for editing).
    fn from_api(a: &Value) -> AnnouncementForm {
        let local = |v: &Value| {
            v.as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&BANK_ZONE).format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default()
        };
        let has = |w: &str| {
            if a["affects"].as_array().is_some_and(|l| l.iter().any(|x| x == w)) {
                "on".to_owned()
            } else {
                String::new()
            }
        };
        AnnouncementForm {
            csrf: String::new(),
            title_zh: txt(&a["title"]["zh"]),
            title_en: txt(&a["title"]["en"]),
            body_zh: txt(&a["body"]["zh"]),
            body_en: txt(&a["body"]["en"]),
            merchant_id: txt(&a["merchant_id"]),
            starts_at: local(&a["starts_at"]),
            ends_at: local(&a["ends_at"]),
            affects_query: has("query"),
            affects_capture: has("capture"),
            affects_settlement: has("settlement"),
        }
    }

    fn view(&self, lang: Lang) -> Value {
        let on = self.affects();
        json!({
            "title_zh": self.title_zh, "title_en": self.title_en, "body_zh": self.body_zh, "body_en": self.body_en,
            "merchant_id": self.merchant_id, "starts_at": self.starts_at, "ends_at": self.ends_at,
            "affects": AFFECTS.iter().map(|w| json!({"value": w, "label": t(lang, &format!("affects_{w}")), "checked": on.contains(w)})).collect::<Vec<_>>(),
        })
    }
}

async fn announcements_page(
    web: &Web,
    viewer: &Viewer,
    editing: Option<i64>,
    form: Option<AnnouncementForm>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let a = web
        .api("GET", &viewer.token, "/api/v1/announcements", None)
        .await;
    if !a.ok() {
        return api_failure(web, viewer, &a);
    }
    let list = a.body["data"].as_array().cloned().unwrap_or_default();
    let now = chrono::Utc::now();
    let rows: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut v = notice_view(x, lang, BANK_ZONE);
            let active = x["active"].as_bool().unwrap_or(false);
            let upcoming = !active
                && x["starts_at"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .is_some_and(|s| s > now);
            let state = if active { "active" } else if upcoming { "upcoming" } else { "ended" };
            v["state_word"] = json!(state);
            v["state"] = json!(t(lang, &format!("annstate_{state}")));
            v["merchant_id"] = json!(txt(&x["merchant_id"]));
            v["created_by"] = json!(txt(&x["created_by"]).trim_start_matches("user:"));
            v["can_end"] = json!(state != "ended");
            v
        })
        .collect();
    let form = match (form, editing) {
        (Some(f), _) => f,
        (None, Some(id)) => match list.iter().find(|x| x["id"].as_i64() == Some(id)) {
            Some(x) => AnnouncementForm::from_api(x),
            None => return view::message(web, lang, Some(viewer), StatusCode::NOT_FOUND),
        },
        (None, None) => AnnouncementForm::default(),
    };
    let mut ctx = view::frame(viewer, "nav_announcements");
    ctx["announcements"] = json!(rows);
    ctx["form"] = form.view(lang);
    ctx["editing"] = json!(editing);
    ctx["action"] = json!(match editing {
        Some(id) => format!("/bank/announcements/{id}"),
        None => "/bank/announcements".to_owned(),
    });
    ctx["can_write"] = json!(viewer.user.role == Role::BankOperator);
    ctx["timezone"] = json!(BANK_ZONE.name());
    ctx["notice"] = json!(notice);
    ctx["error"] = json!(error);
    web.render(status, "announcements.html", lang, ctx)
}

const BANK_READERS: &[Role] = &[Role::BankOperator, Role::Auditor];

pub async fn announcements(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    let editing = param(&uri, "edit").parse::<i64>().ok();
    let notice = match param(&uri, "done").as_str() {
        "saved" => Some(t(viewer.lang, "announcement_saved")),
        "ended" => Some(t(viewer.lang, "announcement_ended")),
        _ => None,
    };
    announcements_page(&web, &viewer, editing, None, notice, None, StatusCode::OK).await
}

async fn save(web: Web, viewer: Viewer, id: Option<i64>, f: AnnouncementForm) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let lang = viewer.lang;
    let body = match f.api_body() {
        Ok(b) => b,
        Err(key) => {
            let msg = t(lang, key);
            return announcements_page(&web, &viewer, id, Some(f), None, Some(msg), StatusCode::BAD_REQUEST).await;
        }
    };
    let (method, path) = match id {
        Some(id) => ("PUT", format!("/api/v1/announcements/{id}")),
        None => ("POST", "/api/v1/announcements".to_owned()),
    };
    let a = web.api(method, &viewer.token, &path, Some(&body)).await;
    if let Some(msg) = refusal(lang, &a) {
        return announcements_page(&web, &viewer, id, Some(f), None, Some(msg), StatusCode::BAD_REQUEST).await;
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to("/bank/announcements?done=saved").into_response()
}

pub async fn save_announcement(
    State(web): State<Web>,
    viewer: Viewer,
    Form(f): Form<AnnouncementForm>,
) -> Response {
    save(web, viewer, None, f).await
}

pub async fn save_announcement_id(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<AnnouncementForm>,
) -> Response {
    match id.parse::<i64>() {
        Ok(id) => save(web, viewer, Some(id), f).await,
        Err(_) => view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn end_announcement(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let Ok(id) = id.parse::<i64>() else {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let a = web
        .api("POST", &viewer.token, &format!("/api/v1/announcements/{id}/end"), None)
        .await;
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to("/bank/announcements?done=ended").into_response()
}

// ---------------------------------------------------------------------------------------------
// Audit log

pub async fn audit(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = only(&web, &viewer, &[Role::Auditor, Role::BankOperator]) {
        return r;
    }
    if viewer.user.role != Role::Auditor {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let lang = viewer.lang;
    let (actor, action, before) = (param(&uri, "actor"), param(&uri, "action"), param(&uri, "before_id"));
    let mut filters: Vec<(String, String)> = Vec::new();
    if !actor.is_empty() {
        filters.push(("actor".into(), actor.clone()));
    }
    if !action.is_empty() {
        filters.push(("action".into(), action.clone()));
    }
    let mut q = filters.clone();
    if before.parse::<i64>().is_ok() {
        q.push(("before_id".into(), before.clone()));
    }
    q.push(("limit".into(), AUDIT_PAGE_ROWS.to_string()));
    let a = web
        .api("GET", &viewer.token, &format!("/api/v1/audit?{}", query_string(&q)), None)
        .await;
    let mut ctx = view::frame(&viewer, "nav_audit");
    ctx["error"] = json!(refusal(lang, &a));
    ctx["events"] = json!([]);
    ctx["older"] = Value::Null;
    if a.ok() {
        let data = a.body["data"].as_array().cloned().unwrap_or_default();
        ctx["events"] = json!(data
            .iter()
            .map(|e| json!({"id": e["id"], "at": at_zone(&e["at"], BANK_ZONE), "actor": txt(&e["actor"]), "action": txt(&e["action"]),
                            "target": txt(&e["target"]), "detail": txt(&e["detail"]), "ip": txt(&e["ip"])}))
            .collect::<Vec<_>>());
        if data.len() == AUDIT_PAGE_ROWS {
            if let Some(next) = a.body["next_before_id"].as_i64() {
                let mut p = filters.clone();
                p.push(("before_id".into(), next.to_string()));
                ctx["older"] = json!(format!("/bank/audit?{}", query_string(&p)));
            }
        }
    } else if ctx["error"].is_null() {
        return api_failure(&web, &viewer, &a);
    }
    ctx["first"] = if before.is_empty() {
        Value::Null
    } else {
        json!(format!("/bank/audit?{}", query_string(&filters)))
    };
    ctx["actor"] = json!(actor);
    ctx["action"] = json!(action);
    ctx["timezone"] = json!(BANK_ZONE.name());
    web.render(StatusCode::OK, "audit.html", lang, ctx)
}

// ---------------------------------------------------------------------------------------------
// Staff users

const USER_MANAGERS: &[Role] = &[Role::MerchantAdmin, Role::Admin];

#[derive(serde::Deserialize, Default)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    merchant_id: String,
    /// Checked terminals (merchant admins) or a comma-separated list (admins).
    #[serde(default)]
    terminals: String,
}

async fn users_page(
    web: &Web,
    viewer: &Viewer,
    form: Option<(UserForm, Vec<String>)>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let admin = viewer.user.role == Role::Admin;
    let a = web.api("GET", &viewer.token, "/api/v1/users", None).await;
    if !a.ok() {
        return api_failure(web, viewer, &a);
    }
    let tz = zone_of(viewer);
    let users: Vec<Value> = a.body["data"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|u| {
                    let role = u["role"].as_str().unwrap_or("");
                    let name = txt(&u["username"]);
                    let manageable = !u["disabled"].as_bool().unwrap_or(false)
                        && name != viewer.user.username
                        && (admin || role == "merchant_staff");
                    json!({"username": name, "role": t(lang, &format!("role_{role}")), "merchant_id": txt(&u["merchant_id"]),
                           "terminals": u["terminals"].as_array().map(|t| t.iter().map(txt).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
                           "disabled": u["disabled"].as_bool().unwrap_or(false), "created_at": at_zone(&u["created_at"], tz),
                           "manageable": manageable, "disable_action": format!("/users/{}/disable", enc(&name))})
                })
                .collect()
        })
        .unwrap_or_default();
    let (f, checked) = form.unwrap_or_default();
    let terminals: Vec<Value> = if admin {
        Vec::new()
    } else {
        let t_a = web.api("GET", &viewer.token, "/api/v1/terminals", None).await;
        t_a.body["data"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|x| {
                        let id = txt(&x["terminal_id"]);
                        json!({"value": id, "checked": checked.contains(&id)})
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut ctx = view::frame(viewer, "nav_users");
    ctx["users"] = json!(users);
    ctx["admin"] = json!(admin);
    ctx["terminals"] = json!(terminals);
    ctx["roles"] = json!(Role::ALL
        .iter()
        .map(|r| json!({"value": r.as_str(), "label": t(lang, &format!("role_{}", r.as_str())), "selected": r.as_str() == f.role}))
        .collect::<Vec<_>>());
    ctx["form"] = json!({"username": f.username, "merchant_id": f.merchant_id, "terminals": f.terminals});
    ctx["notice"] = json!(notice);
    ctx["error"] = json!(error);
    web.render(status, "users.html", lang, ctx)
}

pub async fn users(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = only(&web, &viewer, USER_MANAGERS) {
        return r;
    }
    let notice = match param(&uri, "done").as_str() {
        "created" => Some(t(viewer.lang, "user_created")),
        "disabled" => Some(t(viewer.lang, "user_disabled")),
        _ => None,
    };
    users_page(&web, &viewer, None, notice, None, StatusCode::OK).await
}

pub async fn create_user(State(web): State<Web>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    if let Err(r) = only(&web, &viewer, USER_MANAGERS) {
        return r;
    }
    // Checkboxes repeat `terminals`; a serde form would keep only one.
    let mut f = UserForm::default();
    let mut checked: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        let v = v.into_owned();
        match k.as_ref() {
            "csrf" => f.csrf = v,
            "username" => f.username = v,
            "password" => f.password = v,
            "role" => f.role = v,
            "merchant_id" => f.merchant_id = v,
            "terminals" => checked.push(v),
            _ => {}
        }
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    let admin = viewer.user.role == Role::Admin;
    let terminals: Vec<String> = checked
        .iter()
        .flat_map(|v| v.split([',', ' ']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut body = json!({"username": f.username.trim(), "password": f.password, "terminals": terminals});
    if admin {
        body["role"] = json!(f.role);
        if !f.merchant_id.trim().is_empty() {
            body["merchant_id"] = json!(f.merchant_id.trim());
        }
        f.terminals = checked.join(",");
    }
    let a = web.api("POST", &viewer.token, "/api/v1/users", Some(&body)).await;
    if let Some(msg) = refusal(viewer.lang, &a) {
        f.password.clear();
        return users_page(&web, &viewer, Some((f, checked)), None, Some(msg), StatusCode::BAD_REQUEST).await;
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to("/users?done=created").into_response()
}

pub async fn disable_user(
    State(web): State<Web>,
    viewer: Viewer,
    Path(username): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = only(&web, &viewer, USER_MANAGERS) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    let a = web
        .api("POST", &viewer.token, &format!("/api/v1/users/{}/disable", enc(&username)), None)
        .await;
    if let Some(msg) = refusal(viewer.lang, &a) {
        return users_page(&web, &viewer, None, None, Some(msg), StatusCode::BAD_REQUEST).await;
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to("/users?done=disabled").into_response()
}

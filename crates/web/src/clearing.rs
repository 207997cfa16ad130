//! The bank's clearing files and reconciliation runs: upload a file (a plain multipart form,
//! no script), see why a file was refused row by row, start a run for a settlement date, and
//! read a run's items by outcome, a page at a time.
//!
//! The file goes to `POST /api/v1/clearing/files` as it came; parsing, checking and storing it
//! are the API's. Bank operators write; auditors read.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, Utc};
use domain::Role;
use serde_json::{json, Value};

use crate::desk::{only, param, refusal, BANK_ZONE};
use crate::format::yuan;
use crate::i18n::t;
use crate::pages::{api_failure, query_string, txt};
use crate::session::Viewer;
use crate::view::{self, at_zone};
use crate::Web;

/// Largest file the portal's form accepts (bigger files go through the API or the CLI).
pub const UPLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bad rows shown on a refusal (the API lists more; the first ones say enough).
const BAD_ROWS_SHOWN_MAX: usize = 200;
/// Items per page of a run.
const ITEMS_PAGE_ROWS: u32 = 50;
const PROFILES: &[&str] = &["canonical", "wechatpay-tradebill"];
const OUTCOMES: &[&str] = &[
    "matched",
    "amount_mismatch",
    "missing_in_clearing",
    "missing_in_platform",
    "status_mismatch",
    "duplicate_in_clearing",
    "date_shift",
];
const BANK_READERS: &[Role] = &[Role::BankOperator, Role::Auditor];

/// The text fields and the file of a `multipart/form-data` body.
#[derive(Default)]
struct Upload {
    fields: Vec<(String, String)>,
    file: Option<(Bytes, String)>,
}

impl Upload {
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Splits a multipart body into its parts. `None` when it is not one.
fn parse_multipart(content_type: &str, body: &Bytes) -> Option<Upload> {
    let boundary = content_type
        .split(';')
        .filter_map(|kv| kv.trim().strip_prefix("boundary="))
        .next()?
        .trim_matches('"')
        .to_owned();
    let delim = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let data = &body[..];
    let mut pos = find(data, delim.as_bytes(), 0)?;
    let mut out = Upload::default();
    loop {
        let start = pos + delim.len();
        if data.get(start..start + 2) == Some(b"--") {
            return Some(out);
        }
        let head_end = find(data, b"\r\n\r\n", start)?;
        let head = String::from_utf8_lossy(&data[start..head_end]).into_owned();
        let next = find(data, format!("\r\n{delim}").as_bytes(), head_end + 4)?;
        let content = body.slice(head_end + 4..next);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .unwrap_or("");
        let attr = |key: &str| {
            disposition
                .split(';')
                .filter_map(|kv| kv.trim().strip_prefix(&format!("{key}=")))
                .next()
                .map(|v| v.trim_matches('"').to_owned())
        };
        match (attr("name"), attr("filename")) {
            (Some(n), Some(file_name)) if n == "file" => out.file = Some((content, file_name)),
            (Some(n), None) => out
                .fields
                .push((n, String::from_utf8_lossy(&content).chars().take(64).collect())),
            _ => {}
        }
        pos = next + 2;
    }
}

fn bad_rows(v: &Value) -> Vec<Value> {
    v.as_array()
        .map(|l| {
            l.iter()
                .take(BAD_ROWS_SHOWN_MAX)
                .map(|r| json!({"line": r["line"], "column": txt(&r["column"]), "value": txt(&r["value"]), "reason": txt(&r["reason"])}))
                .collect()
        })
        .unwrap_or_default()
}

struct Outcome {
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<Value>,
    rows_total: usize,
}

async fn files_page(
    web: &Web,
    viewer: &Viewer,
    form: (String, String, bool),
    outcome: Outcome,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let a = web
        .api("GET", &viewer.token, "/api/v1/clearing/files", None)
        .await;
    if !a.ok() {
        return api_failure(web, viewer, &a);
    }
    let files: Vec<Value> = a.body["files"]
        .as_array()
        .or_else(|| a.body["data"].as_array())
        .map(|l| {
            l.iter()
                .map(|f| json!({"id": f["id"], "name": txt(&f["name"]), "profile": txt(&f["profile"]), "rows": f["rows"], "bad_rows": f["bad_rows"],
                                "imported_at": at_zone(&f["imported_at"], BANK_ZONE), "imported_by": txt(&f["imported_by"]).trim_start_matches("user:"),
                                "superseded": !f["superseded_by"].is_null()}))
                .collect()
        })
        .unwrap_or_default();
    let (profile, date, allow_partial) = form;
    let mut ctx = view::frame(viewer, "nav_clearing");
    ctx["files"] = json!(files);
    ctx["profiles"] = json!(PROFILES
        .iter()
        .map(|p| json!({"value": p, "selected": *p == profile}))
        .collect::<Vec<_>>());
    ctx["date"] = json!(date);
    ctx["allow_partial"] = json!(allow_partial);
    ctx["can_write"] = json!(viewer.user.role == Role::BankOperator);
    ctx["notice"] = json!(outcome.notice);
    ctx["error"] = json!(outcome.error);
    ctx["bad_rows"] = json!(outcome.rows);
    ctx["bad_rows_more"] = json!(outcome.rows_total.saturating_sub(outcome.rows.len()));
    ctx["timezone"] = json!(BANK_ZONE.name());
    web.render(status, "clearing.html", lang, ctx)
}

pub async fn files(State(web): State<Web>, viewer: Viewer) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    let none = Outcome {
        notice: None,
        error: None,
        rows: Vec::new(),
        rows_total: 0,
    };
    files_page(&web, &viewer, ("canonical".into(), String::new(), false), none, StatusCode::OK).await
}

/// `POST /bank/clearing` (multipart: csrf, profile, date, allow_partial, file).
pub async fn upload(
    State(web): State<Web>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    let lang = viewer.lang;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = if ct.starts_with("multipart/form-data") {
        parse_multipart(ct, &body)
    } else {
        None
    };
    let Some(up) = parsed else {
        // Without the form's parts there is no CSRF token either.
        return viewer.check_csrf(&web, "").err().unwrap_or_else(|| {
            view::message(&web, lang, Some(&viewer), StatusCode::BAD_REQUEST)
        });
    };
    if let Err(r) = viewer.check_csrf(&web, up.field("csrf")) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let profile = up.field("profile").trim().to_owned();
    let date = up.field("date").trim().to_owned();
    let allow_partial = !up.field("allow_partial").is_empty();
    let form = (profile.clone(), date.clone(), allow_partial);
    let fail = |msg: String, rows: Vec<Value>, total: usize| Outcome {
        notice: None,
        error: Some(msg),
        rows,
        rows_total: total,
    };
    let Some((bytes, name)) = up.file.filter(|(b, _)| !b.is_empty()) else {
        let o = fail(t(lang, "upload_choose_file"), Vec::new(), 0);
        return files_page(&web, &viewer, form, o, StatusCode::BAD_REQUEST).await;
    };
    let mut q: Vec<(String, String)> = vec![("profile".into(), profile)];
    if !date.is_empty() {
        q.push(("date".into(), date));
    }
    if allow_partial {
        q.push(("allow_partial".into(), "true".into()));
    }
    let name: String = name.chars().take(200).collect();
    if !name.is_empty() {
        q.push(("name".into(), name));
    }
    let a = web
        .api_raw(
            "POST",
            &viewer.token,
            &format!("/api/v1/clearing/files?{}", query_string(&q)),
            Some("application/octet-stream"),
            Body::from(bytes),
            None,
        )
        .await;
    if a.ok() {
        let f = &a.body["file"];
        let rejected = &a.body["rejected"];
        let total = rejected.as_array().map(Vec::len).unwrap_or(0);
        let notice = t(lang, "upload_done")
            .replace("{name}", &txt(&f["name"]))
            .replace("{rows}", &txt(&f["rows"]))
            .replace("{bad}", &total.to_string());
        let o = Outcome {
            notice: Some(notice),
            error: None,
            rows: bad_rows(rejected),
            rows_total: total,
        };
        return files_page(&web, &viewer, ("canonical".into(), String::new(), false), o, StatusCode::OK).await;
    }
    match refusal(lang, &a) {
        Some(msg) => {
            let errors = &a.body["errors"];
            let total = errors.as_array().map(Vec::len).unwrap_or(0);
            let o = fail(msg, bad_rows(errors), total);
            files_page(&web, &viewer, form, o, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        None => api_failure(&web, &viewer, &a),
    }
}

// ---------------------------------------------------------------------------------------------
// Reconciliation runs

fn counts_view(v: &Value, lang: crate::i18n::Lang) -> Vec<Value> {
    OUTCOMES
        .iter()
        .filter_map(|o| {
            let n = v["counts"][o].as_u64().unwrap_or(0);
            (n > 0).then(|| json!({"word": o, "label": t(lang, &format!("outcome_{o}")), "count": n,
                                  "amount": yuan(v["amounts"][o].as_i64().unwrap_or(0))}))
        })
        .collect()
}

fn run_view(v: &Value, lang: crate::i18n::Lang) -> Value {
    json!({
        "id": v["run_id"], "date": txt(&v["settlement_date"]), "merchant_id": txt(&v["merchant_id"]),
        "started_at": at_zone(&v["started_at"], BANK_ZONE), "started_by": txt(&v["started_by"]).trim_start_matches("user:"),
        "counts": counts_view(v, lang),
        "pending": v["pending_channels"].as_array().map(|l| l.iter().map(|c| t(lang, &format!("channel_{}", c.as_str().unwrap_or("")))).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        "superseded": !v["superseded_by"].is_null(),
        "platform_records": v["platform_records"], "clearing_rows": v["clearing_rows"],
    })
}

async fn runs_page(
    web: &Web,
    viewer: &Viewer,
    date: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let a = web
        .api("GET", &viewer.token, "/api/v1/reconciliation/runs?limit=100", None)
        .await;
    if !a.ok() {
        return api_failure(web, viewer, &a);
    }
    let runs: Vec<Value> = a.body["data"]
        .as_array()
        .map(|l| l.iter().map(|v| run_view(v, lang)).collect())
        .unwrap_or_default();
    let mut ctx = view::frame(viewer, "nav_reconciliation");
    ctx["runs"] = json!(runs);
    ctx["date"] = json!(date);
    ctx["can_write"] = json!(viewer.user.role == Role::BankOperator);
    ctx["error"] = json!(error);
    ctx["timezone"] = json!(BANK_ZONE.name());
    web.render(status, "runs.html", lang, ctx)
}

fn yesterday() -> String {
    (Utc::now().with_timezone(&BANK_ZONE).date_naive() - Duration::days(1)).to_string()
}

pub async fn runs(State(web): State<Web>, viewer: Viewer) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    runs_page(&web, &viewer, yesterday(), None, StatusCode::OK).await
}

#[derive(serde::Deserialize, Default)]
pub struct RunForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    settlement_date: String,
}

pub async fn start_run(State(web): State<Web>, viewer: Viewer, Form(f): Form<RunForm>) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let date = f.settlement_date.trim().to_owned();
    let a = web
        .api(
            "POST",
            &viewer.token,
            "/api/v1/reconciliation/runs",
            Some(&json!({"settlement_date": date})),
        )
        .await;
    if let Some(msg) = refusal(viewer.lang, &a) {
        return runs_page(&web, &viewer, date, Some(msg), StatusCode::BAD_REQUEST).await;
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    Redirect::to(&format!("/bank/reconciliation/{}", txt(&a.body["run_id"]))).into_response()
}

pub async fn run(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = only(&web, &viewer, BANK_READERS) {
        return r;
    }
    let lang = viewer.lang;
    let Some(id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return view::message(&web, lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let outcome = param(&uri, "outcome");
    let outcome = if OUTCOMES.contains(&outcome.as_str()) { outcome } else { String::new() };
    let cursor: String = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.chars().take(512).collect())
        .unwrap_or_default();
    let page: u32 = param(&uri, "page").parse().unwrap_or(1).clamp(1, 100_000);
    let mut q: Vec<(String, String)> = vec![("limit".into(), ITEMS_PAGE_ROWS.to_string())];
    if !outcome.is_empty() {
        q.push(("outcome".into(), outcome.clone()));
    }
    if !cursor.is_empty() {
        q.push(("cursor".into(), cursor.clone()));
    }
    let run_path = format!("/api/v1/reconciliation/runs/{id}");
    let items_path = format!("/api/v1/reconciliation/runs/{id}/items?{}", query_string(&q));
    let (run_a, items_a) = tokio::join!(
        web.api("GET", &viewer.token, &run_path, None),
        web.api("GET", &viewer.token, &items_path, None),
    );
    if !run_a.ok() {
        return api_failure(&web, &viewer, &run_a);
    }
    if !items_a.ok() {
        // A stale or foreign cursor: start the list again rather than fail.
        if items_a.status == StatusCode::BAD_REQUEST && !cursor.is_empty() {
            let mut p = vec![];
            if !outcome.is_empty() {
                p.push(("outcome".to_owned(), outcome.clone()));
            }
            return Redirect::to(&format!("/bank/reconciliation/{id}?{}", query_string(&p))).into_response();
        }
        return api_failure(&web, &viewer, &items_a);
    }
    let run = run_view(&run_a.body, lang);
    let items: Vec<Value> = items_a.body["data"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|i| {
                    let amount = |k: &str| i[k].as_i64().map(yuan).unwrap_or_default();
                    json!({
                        "outcome_word": txt(&i["outcome"]), "outcome": t(lang, &format!("outcome_{}", i["outcome"].as_str().unwrap_or(""))),
                        "match_pass": txt(&i["match_pass"]), "merchant_id": txt(&i["merchant_id"]), "terminal_id": txt(&i["terminal_id"]),
                        "batch_no": txt(&i["batch_no"]), "stan": txt(&i["stan"]), "rrn": txt(&i["rrn"]), "external_ref": txt(&i["external_ref"]),
                        "channel": t(lang, &format!("channel_{}", i["channel"].as_str().unwrap_or(""))),
                        "platform_amount": amount("platform_amount"), "clearing_amount": amount("clearing_amount"),
                        "clearing_file": txt(&i["clearing_file"]), "clearing_line": txt(&i["clearing_line"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let total: u64 = run["counts"]
        .as_array()
        .map(|l| l.iter().map(|c| c["count"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    let mut tabs = vec![json!({"href": format!("/bank/reconciliation/{id}"), "label": t(lang, "all"), "count": total, "active": outcome.is_empty()})];
    for c in run["counts"].as_array().cloned().unwrap_or_default() {
        let w = c["word"].as_str().unwrap_or("");
        tabs.push(json!({"href": format!("/bank/reconciliation/{id}?outcome={w}"), "label": c["label"], "count": c["count"], "active": w == outcome}));
    }
    let mut base: Vec<(String, String)> = Vec::new();
    if !outcome.is_empty() {
        base.push(("outcome".into(), outcome.clone()));
    }
    let mut ctx = view::frame(&viewer, "nav_reconciliation");
    ctx["run"] = run;
    ctx["tabs"] = json!(tabs);
    ctx["items"] = json!(items);
    ctx["page_no"] = json!(crate::i18n::t_n(lang, "page_n", page));
    ctx["next_link"] = match items_a.body["next_cursor"].as_str() {
        Some(c) => {
            let mut p = base.clone();
            p.push(("cursor".into(), c.to_owned()));
            p.push(("page".into(), (page + 1).to_string()));
            json!(format!("/bank/reconciliation/{id}?{}", query_string(&p)))
        }
        None => Value::Null,
    };
    ctx["first_link"] = if cursor.is_empty() {
        Value::Null
    } else {
        json!(format!("/bank/reconciliation/{id}?{}", query_string(&base)))
    };
    ctx["export"] = json!(format!(
        "/api/v1/reconciliation/runs/{id}/items/export?{}",
        query_string(&base)
    ));
    web.render(StatusCode::OK, "run.html", lang, ctx)
}

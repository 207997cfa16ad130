//! Merchant pages: dashboard, transaction details (list, filters, paging, export links,
//! detail with history), settlements, and "找不到交易？" (the diagnosis).

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use domain::{Channel, TxnKind, TxnStatus};
use serde_json::{json, Value};

use crate::format::{local_time, parse_yuan, yuan};
use crate::i18n::{t, t_n, Lang};
use crate::session::Viewer;
use crate::{view, ApiAnswer, Web};

/// Rows per page of the transaction list (a phone screen of cards, a desktop screen of rows).
pub const PAGE_ROWS: u32 = 20;
/// Days of the dashboard chart.
const CHART_DAYS: i64 = 14;
/// Days the settlements page shows when no range is given.
const SETTLEMENT_DAYS_DEFAULT: i64 = 7;

pub(crate) fn zone(viewer: &Viewer) -> Tz {
    viewer
        .merchant
        .as_ref()
        .map(|m| m.clock.tz)
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

pub(crate) fn today(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn query_string(pairs: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// Bank staff have their own pages; merchant pages are for merchant users.
fn merchant_only(web: &Web, viewer: &Viewer) -> Result<(), Response> {
    if viewer.is_merchant() {
        Ok(())
    } else {
        Err(view::message(
            web,
            viewer.lang,
            Some(viewer),
            StatusCode::FORBIDDEN,
        ))
    }
}

pub(crate) fn api_failure(web: &Web, viewer: &Viewer, a: &ApiAnswer) -> Response {
    let status = match a.status {
        StatusCode::NOT_FOUND => StatusCode::NOT_FOUND,
        StatusCode::FORBIDDEN => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(api_status = a.status.as_u16(), detail = %a.detail(), "the API refused a portal read");
    }
    view::message(web, viewer.lang, Some(viewer), status)
}

fn label(lang: Lang, prefix: &str, word: &Value) -> String {
    match word.as_str() {
        Some(w) => t(lang, &format!("{prefix}_{w}")),
        None => String::new(),
    }
}

pub(crate) fn txt(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A transaction of the API as a row of the page.
fn txn_view(v: &Value, lang: Lang) -> Value {
    json!({
        "id": txt(&v["id"]),
        "time": local_time(v["txn_time"].as_str().unwrap_or("")),
        "timezone": txt(&v["timezone"]),
        "settlement_date": txt(&v["settlement_date"]),
        "terminal_id": txt(&v["terminal_id"]),
        "batch_no": txt(&v["batch_no"]),
        "stan": txt(&v["stan"]),
        "rrn": txt(&v["rrn"]),
        "auth_code": txt(&v["auth_code"]),
        "kind": label(lang, "kind", &v["kind"]),
        "status_word": txt(&v["status"]),
        "status": label(lang, "status", &v["status"]),
        "channel": label(lang, "channel", &v["channel"]),
        "card": txt(&v["card"]["masked"]),
        "amount": yuan(v["amount"].as_i64().unwrap_or(0)),
        "response_code": txt(&v["response_code"]),
        "response_message": txt(&v["response_message"][lang.as_str()]),
        "source": label(lang, "source", &v["source"]),
        "external_ref": txt(&v["external_ref"]),
        "reversal": v["reversal"].as_bool().unwrap_or(false),
        "relation": v["relation"].as_str().map(|r| t(lang, &format!("rel_{r}"))),
    })
}

/// A diagnosis finding (also list warnings and hints) in the page's language.
pub(crate) fn finding_view(f: &Value, lang: Lang) -> Value {
    let l = lang.as_str();
    let evidence: Vec<Value> = f["evidence"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Array(items) => items.iter().map(txt).collect::<Vec<_>>().join(", "),
                        other => txt(other),
                    };
                    json!({"key": k, "value": v})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "code": txt(&f["code"]),
        "severity": txt(&f["severity"]),
        "message": txt(&f["message"][l]),
        "next_step": txt(&f["next_step"][l]),
        "evidence": evidence,
        "transaction_ids": f["transaction_ids"].as_array().cloned().unwrap_or_default(),
    })
}

pub(crate) fn findings(list: &Value, lang: Lang) -> Vec<Value> {
    list.as_array()
        .map(|a| a.iter().map(|f| finding_view(f, lang)).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Dashboard

pub async fn dashboard(State(web): State<Web>, viewer: Viewer) -> Response {
    let lang = viewer.lang;
    if !viewer.is_merchant() {
        // Bank staff start at their merchant list; other roles have no pages yet.
        if matches!(
            viewer.user.role,
            domain::Role::BankOperator | domain::Role::Auditor
        ) {
            return axum::response::IntoResponse::into_response(axum::response::Redirect::to(
                "/bank/merchants",
            ));
        }
        return view::message_text(
            &web,
            lang,
            Some(&viewer),
            StatusCode::OK,
            "dashboard_title",
            "no_role_pages",
        );
    }
    let tz = zone(&viewer);
    let d = today(tz);
    let week_from = d - Duration::days(6);
    let chart_from = d - Duration::days(CHART_DAYS - 1);
    let tok = viewer.token.as_str();
    let today_q = format!("/api/v1/transactions?from={d}&to={d}&include=summary&limit=1");
    let week_q = format!("/api/v1/transactions?from={week_from}&to={d}&include=summary&limit=1");
    let chart_q = format!("/api/v1/settlements?from={chart_from}&to={d}");
    let (today_a, week_a, chart_a, terms_a) = tokio::join!(
        web.api("GET", tok, &today_q, None),
        web.api("GET", tok, &week_q, None),
        web.api("GET", tok, &chart_q, None),
        web.api("GET", tok, "/api/v1/terminals", None),
    );
    for a in [&today_a, &week_a, &chart_a, &terms_a] {
        if !a.ok() {
            return api_failure(&web, &viewer, a);
        }
    }
    let totals = |a: &ApiAnswer| {
        let s = &a.body["summary"];
        let approved: i64 = ["approved", "partially_refunded", "completed"]
            .iter()
            .map(|k| s["by_status"][k]["amount"].as_i64().unwrap_or(0))
            .sum();
        let approved_n: u64 = ["approved", "partially_refunded", "completed"]
            .iter()
            .map(|k| s["by_status"][k]["count"].as_u64().unwrap_or(0))
            .sum();
        json!({"count": s["count"].as_u64().unwrap_or(0), "approved_count": approved_n, "approved": yuan(approved)})
    };
    // The chart: one bar per settlement date, drawn as SVG (no script, nothing inline to allow).
    let days: Vec<(String, i64)> = chart_a.body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| (txt(&d["settlement_date"]), d["net"].as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let mut bars = Vec::new();
    for i in 0..CHART_DAYS {
        let date = (chart_from + Duration::days(i)).to_string();
        let net = days
            .iter()
            .find(|(d, _)| *d == date)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let h = if net > 0 {
            ((net as f64 / max as f64) * 100.0).round().max(1.0) as i64
        } else {
            0
        };
        bars.push(json!({"x": i * 20 + 6, "y": 110 - h, "h": h, "date": date, "label": date[5..].to_owned(),
                         "net": yuan(net), "show_label": i % 2 == (CHART_DAYS - 1) % 2}));
    }
    let terminals: Vec<Value> = terms_a.body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let when = |v: &Value| {
                        v.as_str()
                            .map(local_time)
                            .unwrap_or_else(|| crate::i18n::t(lang, "never"))
                    };
                    json!({
                        "id": txt(&t["terminal_id"]),
                        "status": label(lang, "tstatus", &t["status"]),
                        "open_batch": txt(&t["sync"]["open_batch"]),
                        "last_seen": when(&t["sync"]["last_seen_at"]),
                        "last_settlement": when(&t["sync"]["last_settlement_at"]),
                        "last_settlement_result": txt(&t["sync"]["last_settlement_result"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let m = viewer.merchant.as_ref();
    let mut ctx = view::frame(&viewer, "nav_dashboard");
    ctx["today"] = totals(&today_a);
    ctx["week"] = totals(&week_a);
    ctx["today_link"] = json!(format!("/transactions?quick=today"));
    ctx["week_link"] = json!(format!("/transactions?quick=7d"));
    ctx["bars"] = json!(bars);
    ctx["chart_empty"] = json!(days.iter().all(|(_, n)| *n == 0));
    ctx["terminals"] = json!(terminals);
    ctx["warnings"] = json!(findings(&today_a.body["warnings"], lang));
    ctx["merchant"] = json!({
        "id": m.map(|m| m.id.to_string()),
        "name": m.map(|m| view::merchant_name(m, lang)),
        "status_word": m.map(|m| m.status.as_str()),
        "status": m.map(|m| t(lang, &format!("mstatus_{}", m.status.as_str()))),
        "reason": m.and_then(|m| m.status_reason.clone()),
        "timezone": tz.name(),
        "cutoff": m.map(|m| m.clock.cutoff.to_string()),
    });
    web.render(StatusCode::OK, "dashboard.html", lang, ctx)
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// The list page's form, as typed. Multi-valued filters come as repeated checkboxes.
#[derive(Default, Clone)]
struct TxnForm {
    quick: String,
    from: String,
    to: String,
    basis: String,
    terminal_id: Vec<String>,
    kind: Vec<String>,
    status: Vec<String>,
    channel: Vec<String>,
    card_last4: String,
    rrn: String,
    stan: String,
    auth_code: String,
    amount_min: String,
    amount_max: String,
    cursor: String,
    page: u32,
}

/// Longest single value kept from the form (everything real is far shorter).
const FIELD_CHARS_MAX: usize = 64;

impl TxnForm {
    fn parse(raw: Option<&str>, today: NaiveDate) -> TxnForm {
        let mut f = TxnForm {
            page: 1,
            ..TxnForm::default()
        };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v: String = v
                .trim()
                .chars()
                .take(if k == "cursor" { 512 } else { FIELD_CHARS_MAX })
                .collect();
            match k.as_ref() {
                "quick" => f.quick = v,
                "from" => f.from = v,
                "to" => f.to = v,
                "basis" => f.basis = v,
                "terminal_id" if !v.is_empty() => f.terminal_id.push(v),
                "kind" if !v.is_empty() => f.kind.push(v),
                "status" if !v.is_empty() => f.status.push(v),
                "channel" if !v.is_empty() => f.channel.push(v),
                "card_last4" => f.card_last4 = v,
                "rrn" => f.rrn = v,
                "stan" => f.stan = v,
                "auth_code" => f.auth_code = v,
                "amount_min" => f.amount_min = v,
                "amount_max" => f.amount_max = v,
                "cursor" => f.cursor = v,
                "page" => f.page = v.parse().unwrap_or(1).clamp(1, 100_000),
                _ => {}
            }
        }
        // A quick range fills the dates in the merchant's zone; typed dates win otherwise.
        let (from, to) = match f.quick.as_str() {
            "today" => (today, today),
            "yesterday" => (today - Duration::days(1), today - Duration::days(1)),
            "7d" => (today - Duration::days(6), today),
            "month" => (today.with_day(1).unwrap_or(today), today),
            _ => {
                f.quick.clear();
                if f.from.is_empty() && f.to.is_empty() {
                    f.quick = "today".into();
                    (today, today)
                } else {
                    (NaiveDate::MIN, NaiveDate::MIN)
                }
            }
        };
        if from != NaiveDate::MIN {
            f.from = from.to_string();
            f.to = to.to_string();
        }
        if f.basis != "settlement_date" {
            f.basis = "txn_time".into();
        }
        f
    }

    /// The filters as API parameters; `Err` names the message key of a bad amount.
    fn api_pairs(&self) -> Result<Vec<(String, String)>, &'static str> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut one = |k: &str, v: &str| {
            if !v.is_empty() {
                out.push((k.to_owned(), v.to_owned()));
            }
        };
        one("from", &self.from);
        one("to", &self.to);
        one("basis", &self.basis);
        for (k, vs) in [
            ("terminal_id", &self.terminal_id),
            ("kind", &self.kind),
            ("status", &self.status),
            ("channel", &self.channel),
        ] {
            for v in vs {
                one(k, v);
            }
        }
        one("card_last4", &self.card_last4);
        one("rrn", &self.rrn);
        one("stan", &self.stan);
        one("auth_code", &self.auth_code);
        for (k, v) in [
            ("amount_min", &self.amount_min),
            ("amount_max", &self.amount_max),
        ] {
            if !v.is_empty() {
                let fen = parse_yuan(v).ok_or("amount_invalid")?;
                out.push((k.to_owned(), fen.to_string()));
            }
        }
        Ok(out)
    }

    /// The page's own query for links (without cursor and page).
    fn page_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut one = |k: &str, v: &str| {
            if !v.is_empty() {
                out.push((k.to_owned(), v.to_owned()));
            }
        };
        if self.quick.is_empty() {
            one("from", &self.from);
            one("to", &self.to);
        } else {
            one("quick", &self.quick);
        }
        one("basis", &self.basis);
        for (k, vs) in [
            ("terminal_id", &self.terminal_id),
            ("kind", &self.kind),
            ("status", &self.status),
            ("channel", &self.channel),
        ] {
            for v in vs {
                one(k, v);
            }
        }
        for (k, v) in [
            ("card_last4", &self.card_last4),
            ("rrn", &self.rrn),
            ("stan", &self.stan),
            ("auth_code", &self.auth_code),
            ("amount_min", &self.amount_min),
            ("amount_max", &self.amount_max),
        ] {
            one(k, v);
        }
        out
    }

    fn advanced(&self) -> bool {
        !(self.terminal_id.is_empty()
            && self.kind.is_empty()
            && self.status.is_empty()
            && self.channel.is_empty()
            && self.card_last4.is_empty()
            && self.rrn.is_empty()
            && self.stan.is_empty()
            && self.auth_code.is_empty()
            && self.amount_min.is_empty()
            && self.amount_max.is_empty())
    }
}

fn options(lang: Lang, prefix: &str, words: &[&str], chosen: &[String]) -> Vec<Value> {
    words
        .iter()
        .map(|w| json!({"value": w, "label": t(lang, &format!("{prefix}_{w}")), "checked": chosen.iter().any(|c| c == w)}))
        .collect()
}

pub async fn transactions(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = merchant_only(&web, &viewer) {
        return r;
    }
    let lang = viewer.lang;
    let tz = zone(&viewer);
    let form = TxnForm::parse(uri.query(), today(tz));
    let page_pairs = form.page_pairs();
    let mut ctx = view::frame(&viewer, "nav_transactions");
    ctx["error"] = Value::Null;
    ctx["rows"] = json!([]);
    ctx["hints"] = json!([]);
    ctx["warnings"] = json!([]);
    ctx["summary"] = Value::Null;
    ctx["next_link"] = Value::Null;
    ctx["range"] = Value::Null;
    ctx["export_csv"] = Value::Null;
    ctx["export_xlsx"] = Value::Null;
    match form.api_pairs() {
        Err(key) => ctx["error"] = json!(t(lang, key)),
        Ok(pairs) => {
            let mut list = pairs.clone();
            list.push(("limit".into(), PAGE_ROWS.to_string()));
            if form.cursor.is_empty() {
                list.push(("include".into(), "summary".into()));
            } else {
                list.push(("cursor".into(), form.cursor.clone()));
            }
            let a = web
                .api(
                    "GET",
                    &viewer.token,
                    &format!("/api/v1/transactions?{}", query_string(&list)),
                    None,
                )
                .await;
            if a.status == StatusCode::BAD_REQUEST {
                ctx["error"] = json!(format!("{}：{}", t(lang, "query_error"), a.detail()));
            } else if !a.ok() {
                return api_failure(&web, &viewer, &a);
            } else {
                let rows: Vec<Value> = a.body["data"]
                    .as_array()
                    .map(|r| r.iter().map(|v| txn_view(v, lang)).collect())
                    .unwrap_or_default();
                ctx["rows"] = json!(rows);
                ctx["hints"] = json!(findings(&a.body["hints"], lang));
                ctx["warnings"] = json!(findings(&a.body["warnings"], lang));
                let r = &a.body["range"];
                ctx["range"] = json!({
                    "from": local_time(r["from"].as_str().unwrap_or("")),
                    "to": local_time(r["to"].as_str().unwrap_or("")),
                    "timezone": txt(&r["timezone"]),
                    "basis": t(lang, &format!("basis_{}", r["basis"].as_str().unwrap_or("txn_time"))),
                    "to_exclusive": r["to_exclusive"].as_bool().unwrap_or(false),
                });
                if let Some(s) = a.body.get("summary") {
                    let by: Vec<Value> = s["by_status"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| json!({"status_word": k, "status": t(lang, &format!("status_{k}")),
                                                     "count": v["count"], "amount": yuan(v["amount"].as_i64().unwrap_or(0))}))
                                .collect()
                        })
                        .unwrap_or_default();
                    ctx["summary"] = json!({"count": s["count"], "by_status": by});
                }
                if let Some(next) = a.body["next_cursor"].as_str() {
                    let mut p = page_pairs.clone();
                    p.push(("cursor".into(), next.to_owned()));
                    p.push(("page".into(), (form.page + 1).to_string()));
                    ctx["next_link"] = json!(format!("/transactions?{}", query_string(&p)));
                }
                let mut export = pairs.clone();
                export.push(("lang".into(), lang.as_str().into()));
                let mut csv = export.clone();
                csv.push(("format".into(), "csv".into()));
                let mut xlsx = export;
                xlsx.push(("format".into(), "xlsx".into()));
                ctx["export_csv"] = json!(format!(
                    "/api/v1/transactions/export?{}",
                    query_string(&csv)
                ));
                ctx["export_xlsx"] = json!(format!(
                    "/api/v1/transactions/export?{}",
                    query_string(&xlsx)
                ));
            }
        }
    }
    // The terminals to choose from: the ones this user may see.
    let terms = web
        .api("GET", &viewer.token, "/api/v1/terminals", None)
        .await;
    let terminal_ids: Vec<String> = terms.body["data"]
        .as_array()
        .map(|a| a.iter().map(|t| txt(&t["terminal_id"])).collect())
        .unwrap_or_default();
    let quick: Vec<Value> = [("today", "today"), ("yesterday", "yesterday"), ("7d", "last_7_days"), ("month", "this_month")]
        .iter()
        .map(|(q, key)| {
            let mut p: Vec<(String, String)> = vec![("quick".into(), (*q).into()), ("basis".into(), form.basis.clone())];
            p.extend(page_pairs.iter().filter(|(k, _)| !matches!(k.as_str(), "quick" | "from" | "to" | "basis")).cloned());
            json!({"label": t(lang, key), "href": format!("/transactions?{}", query_string(&p)), "active": form.quick == *q})
        })
        .collect();
    let words = |all: &[&'static str]| all.to_vec();
    ctx["form"] = json!({
        "from": form.from, "to": form.to, "basis": form.basis,
        "card_last4": form.card_last4, "rrn": form.rrn, "stan": form.stan, "auth_code": form.auth_code,
        "amount_min": form.amount_min, "amount_max": form.amount_max, "advanced": form.advanced(),
        "terminals": terminal_ids.iter().map(|id| json!({"value": id, "label": id, "checked": form.terminal_id.contains(id)})).collect::<Vec<_>>(),
        "kinds": options(lang, "kind", &words(&TxnKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()), &form.kind),
        "statuses": options(lang, "status", &TxnStatus::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(), &form.status),
        "channels": options(lang, "channel", &Channel::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(), &form.channel),
    });
    ctx["quick"] = json!(quick);
    ctx["page_no"] = json!(t_n(lang, "page_n", form.page));
    ctx["first_link"] = if form.cursor.is_empty() {
        Value::Null
    } else {
        json!(format!("/transactions?{}", query_string(&page_pairs)))
    };
    ctx["timezone"] = json!(tz.name());
    web.render(StatusCode::OK, "transactions.html", lang, ctx)
}

pub async fn detail(State(web): State<Web>, viewer: Viewer, Path(id): Path<String>) -> Response {
    if let Err(r) = merchant_only(&web, &viewer) {
        return r;
    }
    let lang = viewer.lang;
    // Ids are 26 Crockford base32 characters; anything else cannot name a transaction.
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return view::message(&web, lang, Some(&viewer), StatusCode::NOT_FOUND);
    }
    let a = web
        .api(
            "GET",
            &viewer.token,
            &format!("/api/v1/transactions/{}", enc(&id)),
            None,
        )
        .await;
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    let mut ctx = view::frame(&viewer, "nav_transactions");
    ctx["txn"] = txn_view(&a.body, lang);
    ctx["original"] = if a.body["original"].is_null() {
        Value::Null
    } else {
        txn_view(&a.body["original"], lang)
    };
    ctx["events"] = json!(a.body["events"]
        .as_array()
        .map(|e| e.iter().map(|v| txn_view(v, lang)).collect::<Vec<_>>())
        .unwrap_or_default());
    web.render(StatusCode::OK, "detail.html", lang, ctx)
}

// ---------------------------------------------------------------------------------------------
// Settlements

pub async fn settlements(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = merchant_only(&web, &viewer) {
        return r;
    }
    let lang = viewer.lang;
    let d = today(zone(&viewer));
    let (mut from, mut to) = (String::new(), String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let v: String = v.trim().chars().take(16).collect();
        match k.as_ref() {
            "from" => from = v,
            "to" => to = v,
            _ => {}
        }
    }
    if from.is_empty() {
        from = (d - Duration::days(SETTLEMENT_DAYS_DEFAULT - 1)).to_string();
    }
    if to.is_empty() {
        to = d.to_string();
    }
    let mut ctx = view::frame(&viewer, "nav_settlements");
    ctx["from"] = json!(from);
    ctx["to"] = json!(to);
    ctx["error"] = Value::Null;
    ctx["days"] = json!([]);
    ctx["totals"] = Value::Null;
    let a = web
        .api(
            "GET",
            &viewer.token,
            &format!(
                "/api/v1/settlements?{}",
                query_string(&[("from".into(), from), ("to".into(), to)])
            ),
            None,
        )
        .await;
    if a.status == StatusCode::BAD_REQUEST {
        ctx["error"] = json!(format!("{}：{}", t(lang, "query_error"), a.detail()));
    } else if !a.ok() {
        return api_failure(&web, &viewer, &a);
    } else {
        let data = a.body["data"].as_array().cloned().unwrap_or_default();
        let n = |d: &Value, k: &str| d[k].as_i64().unwrap_or(0);
        let days: Vec<Value> = data
            .iter()
            .rev()
            .map(|d| {
                let date = txt(&d["settlement_date"]);
                json!({
                    "date": date,
                    "link": format!("/transactions?basis=settlement_date&from={date}&to={date}"),
                    "records": n(d, "record_count"), "gross_count": n(d, "gross_count"), "gross": yuan(n(d, "gross")),
                    "refund_count": n(d, "refund_count"), "refunds": yuan(n(d, "refunds")), "net": yuan(n(d, "net")),
                    "declined": n(d, "declined_count"), "reversed": n(d, "reversed_count"), "voided": n(d, "voided_count"),
                })
            })
            .collect();
        let sum = |k: &str| data.iter().map(|d| n(d, k)).sum::<i64>();
        if !data.is_empty() {
            ctx["totals"] = json!({"records": sum("record_count"), "gross": yuan(sum("gross")), "refunds": yuan(sum("refunds")), "net": yuan(sum("net"))});
        }
        ctx["days"] = json!(days);
    }
    web.render(StatusCode::OK, "settlements.html", lang, ctx)
}

// ---------------------------------------------------------------------------------------------
// "找不到交易？"

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct DiagnoseForm {
    pub(crate) csrf: String,
    pub(crate) date: String,
    pub(crate) time: String,
    pub(crate) amount: String,
    pub(crate) card_last4: String,
    pub(crate) terminal_id: String,
    pub(crate) rrn: String,
    pub(crate) stan: String,
    pub(crate) auth_code: String,
}

fn diagnose_ctx(viewer: &Viewer, f: &DiagnoseForm) -> Value {
    let mut ctx = view::frame(viewer, "nav_diagnose");
    ctx["form"] = json!({"date": f.date, "time": f.time, "amount": f.amount, "card_last4": f.card_last4,
                         "terminal_id": f.terminal_id, "rrn": f.rrn, "stan": f.stan, "auth_code": f.auth_code});
    ctx["error"] = Value::Null;
    ctx["findings"] = Value::Null;
    ctx["checked"] = json!([]);
    ctx["timezone"] = json!(zone(viewer).name());
    ctx
}

/// The question of the form as the API's `expected`; `Err` names the message key of the
/// problem.
fn expected_of(
    viewer: &Viewer,
    f: &DiagnoseForm,
) -> Result<serde_json::Map<String, Value>, &'static str> {
    let tz = zone(viewer);
    let mut expected = serde_json::Map::new();
    let clip = |s: &str| s.trim().chars().take(FIELD_CHARS_MAX).collect::<String>();
    // A date alone is a local date; with a time it is an instant in the merchant's zone.
    let date = NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d").ok();
    let time = NaiveTime::parse_from_str(f.time.trim(), "%H:%M").ok();
    match (date, time) {
        (Some(d), Some(tm)) => {
            if let Some(at) = tz.from_local_datetime(&d.and_time(tm)).earliest() {
                expected.insert("time".into(), json!(at.to_rfc3339()));
            }
        }
        (Some(d), None) => {
            expected.insert("time".into(), json!(d.to_string()));
        }
        _ => {}
    }
    if !f.amount.trim().is_empty() {
        let fen = parse_yuan(&f.amount).ok_or("amount_invalid")?;
        expected.insert("amount".into(), json!(fen));
    }
    for (k, v) in [
        ("card_last4", &f.card_last4),
        ("terminal_id", &f.terminal_id),
        ("rrn", &f.rrn),
        ("stan", &f.stan),
        ("auth_code", &f.auth_code),
    ] {
        if !v.trim().is_empty() {
            expected.insert(k.into(), json!(clip(v)));
        }
    }
    if expected.is_empty() {
        return Err("diagnose_need_something");
    }
    if let Some(m) = viewer.user.merchant_id.as_ref() {
        expected.insert("merchant_id".into(), json!(m.as_str()));
    }
    Ok(expected)
}

pub async fn diagnose_form(State(web): State<Web>, viewer: Viewer) -> Response {
    if let Err(r) = merchant_only(&web, &viewer) {
        return r;
    }
    let f = DiagnoseForm {
        date: today(zone(&viewer)).to_string(),
        ..DiagnoseForm::default()
    };
    web.render(
        StatusCode::OK,
        "diagnose.html",
        viewer.lang,
        diagnose_ctx(&viewer, &f),
    )
}

pub async fn diagnose(
    State(web): State<Web>,
    viewer: Viewer,
    Form(f): Form<DiagnoseForm>,
) -> Response {
    if let Err(r) = merchant_only(&web, &viewer) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    let lang = viewer.lang;
    let mut ctx = diagnose_ctx(&viewer, &f);
    let expected = match expected_of(&viewer, &f) {
        Ok(e) => e,
        Err(key) => {
            ctx["error"] = json!(t(lang, key));
            return web.render(StatusCode::BAD_REQUEST, "diagnose.html", lang, ctx);
        }
    };
    let body = json!({"expected": expected});
    let a = web
        .api("POST", &viewer.token, "/api/v1/diagnose", Some(&body))
        .await;
    if matches!(
        a.status,
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
    ) {
        ctx["error"] = json!(format!("{}：{}", t(lang, "query_error"), a.detail()));
        return web.render(StatusCode::BAD_REQUEST, "diagnose.html", lang, ctx);
    }
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    ctx["findings"] = json!(findings(&a.body["findings"], lang));
    ctx["checked"] = json!(a.body["checked"]
        .as_array()
        .map(|c| c
            .iter()
            .map(|c| json!({"subject": txt(&c["subject"]), "note": txt(&c["note"][lang.as_str()])}))
            .collect::<Vec<_>>())
        .unwrap_or_default());
    web.render(StatusCode::OK, "diagnose.html", lang, ctx)
}

/// `POST /tickets` from the diagnosis page: asks the same question again, and opens a ticket
/// with the question and the answer attached. The Idempotency-Key is derived from the user and
/// the question, so a double click (or a second visit with the same question) opens one ticket.
pub async fn open_ticket(
    State(web): State<Web>,
    viewer: Viewer,
    Form(f): Form<DiagnoseForm>,
) -> Response {
    if !viewer.is_merchant() {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    let lang = viewer.lang;
    let expected = match expected_of(&viewer, &f) {
        Ok(e) => e,
        Err(key) => {
            let mut ctx = diagnose_ctx(&viewer, &f);
            ctx["error"] = json!(t(lang, key));
            return web.render(StatusCode::BAD_REQUEST, "diagnose.html", lang, ctx);
        }
    };
    let question = json!({"expected": expected});
    let diagnosis = web
        .api("POST", &viewer.token, "/api/v1/diagnose", Some(&question))
        .await;
    if !diagnosis.ok() {
        return api_failure(&web, &viewer, &diagnosis);
    }
    let mut subject = vec![t(lang, "ticket_subject")];
    for (label, v) in [
        ("", f.date.trim().to_owned()),
        ("", f.time.trim().to_owned()),
        ("", parse_yuan(&f.amount).map(yuan).unwrap_or_default()),
        ("RRN ", f.rrn.trim().to_owned()),
        ("STAN ", f.stan.trim().to_owned()),
        ("*", f.card_last4.trim().to_owned()),
        ("", f.terminal_id.trim().to_owned()),
        ("", f.auth_code.trim().to_owned()),
    ] {
        if !v.is_empty() {
            subject.push(format!("{label}{}", v.chars().take(FIELD_CHARS_MAX).collect::<String>()));
        }
    }
    let body = json!({
        "subject": subject.join(" "),
        "expected": expected,
        "diagnosis": diagnosis.body,
    });
    let key = {
        use sha2::{Digest, Sha256};
        let canonical = format!("web-ticket\0{}\0{}", viewer.user.username, Value::Object(expected));
        format!("web-{}", hex::encode(&Sha256::digest(canonical.as_bytes())[..16]))
    };
    let a = web
        .api_raw(
            "POST",
            &viewer.token,
            "/api/v1/tickets",
            Some("application/json"),
            axum::body::Body::from(body.to_string()),
            Some(&key),
        )
        .await;
    if !a.ok() {
        return api_failure(&web, &viewer, &a);
    }
    let id = a.body["id"].as_i64().unwrap_or(0);
    axum::response::IntoResponse::into_response(axum::response::Redirect::to(&format!(
        "/tickets/{id}?opened=1"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn quick_ranges_are_dates_in_the_merchant_zone() {
        let today = day("2026-03-18");
        let check = |q: &str, from: &str, to: &str| {
            let f = TxnForm::parse(Some(q), today);
            assert_eq!((f.from.as_str(), f.to.as_str()), (from, to), "{q}");
        };
        check("", "2026-03-18", "2026-03-18");
        check("quick=yesterday", "2026-03-17", "2026-03-17");
        check("quick=7d", "2026-03-12", "2026-03-18");
        check("quick=month", "2026-03-01", "2026-03-18");
        check("from=2026-02-01&to=2026-02-03", "2026-02-01", "2026-02-03");
    }

    #[test]
    fn form_filters_become_api_parameters_with_amounts_in_fen() {
        let f = TxnForm::parse(
            Some("quick=today&kind=purchase&kind=refund&amount_min=1.5&card_last4=1234&bogus=1"),
            day("2026-03-18"),
        );
        let pairs = f.api_pairs().unwrap();
        let qs = query_string(&pairs);
        assert_eq!(qs, "from=2026-03-18&to=2026-03-18&basis=txn_time&kind=purchase&kind=refund&card_last4=1234&amount_min=150");
        assert!(f.advanced());
        let bad = TxnForm::parse(Some("amount_max=1.234"), day("2026-03-18"));
        assert_eq!(bad.api_pairs(), Err("amount_invalid"));
    }
}

//! Transaction endpoints: list with filters and keyset cursors, detail with history,
//! settlements per date, and ingest.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{Amount, AuthCode, BatchNo, Channel, MerchantClock, MerchantId, Rrn, SettlementDate, Stan, TerminalId, TxnKind, TxnStatus};
use serde_json::{json, Value};
use store::{
    AuditRepo, IngestError, IngestOptions, ItemReason, MerchantRepo, NewAuditEvent, TxnCursor, TxnId, TxnQuery, TxnRange,
    TxnRepo, INGEST_BATCH_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX,
};

use crate::caller::Caller;
use crate::cursor::{fingerprint, Cursor};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::json_body;
use crate::{dto, AppState};

/// The widest range one query may span.
pub const RANGE_DAYS_MAX: i64 = 366;

pub const FILTER_PARAMS: &[&str] = &[
    "from", "to", "basis", "merchant_id", "terminal_id", "kind", "status", "channel", "card_last4", "rrn", "stan",
    "batch_no", "auth_code", "external_ref", "amount_min", "amount_max",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    TxnTime,
    SettlementDate,
}

/// A parsed list query: the store query plus what the response echoes.
pub struct ListQuery {
    pub query: TxnQuery,
    pub range_echo: Value,
    pub fingerprint: [u8; 8],
    pub clock: MerchantClock,
}

enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_bound(s: &str) -> Result<Bound, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Bound::Date(d));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Bound::Instant(t.with_timezone(&Utc)))
        .map_err(|_| format!("{s:?} is neither a YYYY-MM-DD date nor an RFC 3339 instant"))
}

/// A merchant outside the caller's scope answers exactly like one that does not exist.
pub fn require_visible(scope: &store::Scope, merchant_id: Option<&MerchantId>) -> ApiResult<()> {
    match merchant_id {
        Some(m) if !scope.allows_merchant(m) => Err(ApiError::not_found("merchant")),
        _ => Ok(()),
    }
}

fn err_str<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Parses the filters shared by list and export. `now` decides the default range (today).
pub async fn parse_list_query(state: &AppState, caller: &Caller, p: &Params, now: DateTime<Utc>) -> ApiResult<ListQuery> {
    caller.require_reader()?;
    let scope = caller.scope();
    let merchant_id = p.parse_one("merchant_id", |s| MerchantId::parse(s).map_err(err_str))?;
    require_visible(&scope, merchant_id.as_ref())?;
    // The zone that dates are read in: the merchant asked about, else the caller's own.
    let zone_merchant = merchant_id.clone().or_else(|| caller.own_merchant().cloned());
    let clock = match zone_merchant {
        Some(m) if scope.allows_merchant(&m) => {
            state.blocking(move |store| Ok(store.get_merchant(&m)?.map(|m| m.clock))).await?.unwrap_or_default()
        }
        _ => MerchantClock::default(),
    };
    let basis = match p.one("basis")? {
        None | Some("txn_time") => Basis::TxnTime,
        Some("settlement_date") => Basis::SettlementDate,
        Some(other) => return Err(ApiError::bad_param("basis", format!("basis must be txn_time or settlement_date, got {other:?}"))),
    };
    let from = p.parse_one("from", parse_bound)?;
    let to = p.parse_one("to", parse_bound)?;
    let today = clock.local(now).date_naive();
    let tz = clock.tz;
    let (range, range_echo) = match basis {
        Basis::TxnTime => {
            let start = |b: &Bound| match b {
                Bound::Date(d) => clock.start_of_day(*d),
                Bound::Instant(t) => *t,
            };
            // A date `to` includes that whole day.
            let end = |b: &Bound| match b {
                Bound::Date(d) => clock.start_of_day(*d + Duration::days(1)),
                Bound::Instant(t) => *t,
            };
            let to_t = to.as_ref().map(end).unwrap_or_else(|| clock.start_of_day(today + Duration::days(1)));
            let from_t = from.as_ref().map(start).unwrap_or_else(|| {
                if to.is_some() { to_t - Duration::days(1) } else { clock.start_of_day(today) }
            });
            let dates_reversed = matches!((&from, &to), (Some(Bound::Date(f)), Some(Bound::Date(t))) if t < f);
            if to_t < from_t || dates_reversed {
                return Err(ApiError::bad_param("to", "to is before from"));
            }
            if to_t - from_t > Duration::days(RANGE_DAYS_MAX) {
                return Err(ApiError::bad_param("from", format!("a range may span at most {RANGE_DAYS_MAX} days")));
            }
            let echo = json!({"from": dto::rfc3339_in(from_t, tz), "to": dto::rfc3339_in(to_t, tz),
                              "timezone": tz.name(), "basis": "txn_time", "to_exclusive": true});
            (TxnRange::TxnTime { from: from_t, to: to_t }, echo)
        }
        Basis::SettlementDate => {
            let date = |b: Bound, name: &str| match b {
                Bound::Date(d) => Ok(SettlementDate::new(d)),
                Bound::Instant(_) => Err(ApiError::bad_param(name, "with basis=settlement_date, give dates (YYYY-MM-DD)")),
            };
            let to_d = match to { Some(b) => date(b, "to")?, None => SettlementDate::new(today) };
            let from_d = match from { Some(b) => date(b, "from")?, None => to_d };
            if to_d < from_d {
                return Err(ApiError::bad_param("to", "to is before from"));
            }
            if (to_d.date() - from_d.date()).num_days() > RANGE_DAYS_MAX {
                return Err(ApiError::bad_param("from", format!("a range may span at most {RANGE_DAYS_MAX} days")));
            }
            let echo = json!({"from": from_d.to_string(), "to": to_d.to_string(), "timezone": tz.name(),
                              "basis": "settlement_date", "day_cutoff": clock.cutoff.to_string()});
            (TxnRange::SettlementDate { from: from_d, to: to_d }, echo)
        }
    };
    let amount = |s: &str| s.parse::<i64>().map_err(|_| format!("{s:?} is not an integer number of fen")).and_then(|n| Amount::from_fen(n).map_err(err_str));
    let query = TxnQuery {
        scope,
        merchant_id,
        range,
        terminal_ids: p.list("terminal_id", |s| TerminalId::parse(s).map_err(err_str))?,
        kinds: p.list("kind", |s| TxnKind::parse(s).map_err(err_str))?,
        statuses: p.list("status", |s| TxnStatus::parse(s).map_err(err_str))?,
        channels: p.list("channel", |s| Channel::parse(s).map_err(err_str))?,
        card_last4: p.parse_one("card_last4", |s| {
            if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) { Ok(s.to_owned()) } else { Err("card_last4 must be 4 digits".into()) }
        })?,
        rrn: p.parse_one("rrn", |s| Rrn::parse(s).map_err(err_str))?,
        stan: p.parse_one("stan", |s| Stan::parse(s).map_err(err_str))?,
        batch_no: p.parse_one("batch_no", |s| BatchNo::parse(s).map_err(err_str))?,
        auth_code: p.parse_one("auth_code", |s| AuthCode::parse(s).map_err(err_str))?,
        external_ref: p.parse_one("external_ref", |s| if s.len() <= 64 { Ok(s.to_owned()) } else { Err("at most 64 characters".into()) })?,
        amount_min: p.parse_one("amount_min", amount)?,
        amount_max: p.parse_one("amount_max", amount)?,
        ..TxnQuery::default()
    };
    if let (Some(lo), Some(hi)) = (query.amount_min, query.amount_max) {
        if hi < lo {
            return Err(ApiError::bad_param("amount_max", "amount_max is below amount_min"));
        }
    }
    // The cursor is bound to everything that defines the result set, including the scope.
    let mut parts: Vec<(&str, String)> = vec![("range", range_echo.to_string()), ("scope", format!("{:?}", query.scope))];
    for name in FILTER_PARAMS.iter().filter(|n| !matches!(**n, "from" | "to" | "basis")) {
        parts.push((name, format!("{:?}", p.list(name, |s| Ok::<_, String>(s.to_owned()))?)));
    }
    Ok(ListQuery { fingerprint: fingerprint(&parts), query, range_echo, clock })
}

pub async fn list(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    let mut allowed: Vec<&str> = FILTER_PARAMS.to_vec();
    allowed.extend(["limit", "cursor", "include"]);
    let p = Params::parse(uri.query(), &allowed)?;
    let lq = parse_list_query(&state, &caller, &p, Utc::now()).await?;
    let limit = p
        .parse_one("limit", |s| match s.parse::<u32>() {
            Ok(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(n),
            _ => Err(format!("limit must be an integer from 1 to {PAGE_LIMIT_MAX}")),
        })?
        .unwrap_or(PAGE_LIMIT_DEFAULT);
    let include_summary = match p.one("include")? {
        None => false,
        Some("summary") => true,
        Some(other) => return Err(ApiError::bad_param("include", format!("include may only be summary, got {other:?}"))),
    };
    let annotate_query = lq.query.clone();
    let mut query = lq.query;
    query.limit = limit;
    if let Some(c) = p.one("cursor")? {
        let opened = state.cursor_key.open(c, lq.fingerprint).map_err(|e| ApiError::bad_param("cursor", e.message()))?;
        let position = TxnCursor::decode(&opened.position).ok_or_else(|| ApiError::bad_param("cursor", "cursor is damaged"))?;
        query.cursor = Some(position);
        query.as_of_seq = Some(opened.as_of);
    }
    let audit_actor = caller.actor();
    let (page, summary) = state
        .blocking(move |store| {
            let page = store.list_txns(&query)?;
            let summary = if include_summary {
                let mut q = query.clone();
                q.as_of_seq = Some(page.as_of_seq);
                Some(store.summary(&q)?)
            } else {
                None
            };
            if query.cursor.is_none() {
                // Recorded after the answer: a query's audit line need not hold up the page
                // for a durable commit.
                let event = NewAuditEvent {
                    actor: audit_actor,
                    action: "query_transactions".into(),
                    target: query.merchant_id.as_ref().map(|m| m.to_string()),
                    detail: None,
                    ip: None,
                    at: Utc::now(),
                };
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.append_audit(&event) {
                        tracing::error!(error = %e, "audit of a query failed");
                    }
                });
            }
            Ok((page, summary))
        })
        .await?;
    let next_cursor = page.next_cursor.map(|c| {
        state.cursor_key.seal(&Cursor { as_of: page.as_of_seq, position: c.encode() }, lq.fingerprint)
    });
    let mut body = json!({
        "data": page.rows.iter().map(dto::txn).collect::<Vec<_>>(),
        "has_more": page.has_more,
        "next_cursor": next_cursor,
        "range": lq.range_echo,
        "warnings": [],
    });
    if let Some(s) = summary {
        body["summary"] = dto::summary(&s);
    }
    let empty_first_page = page.rows.is_empty() && p.one("cursor")?.is_none();
    if page.rows.is_empty() {
        body["hints"] = json!([]);
    }
    crate::diagnose::annotate_list(&state, &caller, &p, annotate_query, lq.clock, empty_first_page, &mut body).await?;
    Ok(Json(body))
}

pub async fn detail(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    caller.require_reader()?;
    let id = TxnId::parse(&id).ok_or_else(|| ApiError::not_found("transaction"))?;
    let scope = caller.scope();
    let d = state
        .blocking(move |store| store.get_txn(&id, &scope)?.ok_or_else(|| ApiError::not_found("transaction")))
        .await?;
    let mut body = dto::txn(&d.txn);
    let scope = caller.scope();
    // History rows of another merchant cannot exist (originals are resolved within a
    // merchant), but the scope filter is applied anyway: staff see only their terminals.
    body["original"] = d.original.as_ref().filter(|o| scope.allows_terminal(o.terminal_id.as_ref())).map(dto::txn).unwrap_or(Value::Null);
    body["events"] = d
        .events
        .iter()
        .map(|e| {
            let mut v = dto::txn(e);
            v["relation"] = json!(relation(e));
            v
        })
        .collect();
    Ok(Json(body))
}

/// How a later record relates to the one shown: "voided by", "refunded by", …
fn relation(e: &store::TxnRow) -> &'static str {
    if e.reversal {
        return "reversed_by";
    }
    match e.kind {
        TxnKind::Void | TxnKind::PreauthVoid | TxnKind::PreauthCompletionVoid => "voided_by",
        TxnKind::Refund => "refunded_by",
        TxnKind::PreauthCompletion => "completed_by",
        _ => "related",
    }
}

pub async fn settlements(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    caller.require_reader()?;
    let p = Params::parse(uri.query(), &["from", "to", "merchant_id"])?;
    let merchant_id = p.parse_one("merchant_id", |s| MerchantId::parse(s).map_err(err_str))?;
    require_visible(&caller.scope(), merchant_id.as_ref())?;
    let date = |s: &str| SettlementDate::parse(s).map_err(err_str);
    let from = p.parse_one("from", date)?.ok_or_else(|| ApiError::bad_param("from", "from (YYYY-MM-DD) is required"))?;
    let to = p.parse_one("to", date)?.unwrap_or(from);
    if to < from {
        return Err(ApiError::bad_param("to", "to is before from"));
    }
    if (to.date() - from.date()).num_days() > RANGE_DAYS_MAX {
        return Err(ApiError::bad_param("from", format!("a range may span at most {RANGE_DAYS_MAX} days")));
    }
    let scope = caller.scope();
    let days = state.blocking(move |store| Ok(store.settlements(&scope, merchant_id.as_ref(), from, to)?)).await?;
    Ok(Json(json!({
        "data": days.iter().map(dto::settlement_day).collect::<Vec<_>>(),
        "range": {"from": from.to_string(), "to": to.to_string(), "basis": "settlement_date"},
    })))
}

pub async fn ingest(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let Caller::ApiKey(key) = &caller else {
        return Err(ApiError::forbidden("ingest takes an API key (x-api-key or Authorization: Bearer plk_…)"));
    };
    let v = json_body(&headers, &body)?;
    let Some(items) = v.as_array() else {
        return Err(ApiError::bad_param("body", "body must be a JSON array of ingest objects"));
    };
    if items.is_empty() || items.len() > INGEST_BATCH_MAX {
        return Err(ApiError::bad_param("body", format!("send 1 to {INGEST_BATCH_MAX} objects per call")));
    }
    let mut errors = Vec::new();
    let mut txns = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let obj = match crate::ingest::ingest_object(item) {
            Ok(o) => o,
            Err(shape) => {
                for (field, message) in shape {
                    errors.push(json!({"index": index, "field": field, "message": message}));
                }
                continue;
            }
        };
        match store::validate(obj, &state.card_key, domain::Source::Api) {
            Ok(t) => {
                if !caller.scope().allows_merchant(&t.merchant_id) {
                    errors.push(json!({"index": index, "field": "merchant_id", "message": "this API key may not ingest for that merchant"}));
                } else {
                    txns.push((index, t));
                }
            }
            Err(fields) => {
                for f in fields {
                    errors.push(json!({"index": index, "field": f.field, "message": f.message}));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::unprocessable(format!("{} problem(s) in the batch; nothing was stored", errors.len()), Value::Array(errors)));
    }
    let indices: Vec<usize> = txns.iter().map(|(i, _)| *i).collect();
    let batch: Vec<_> = txns.into_iter().map(|(_, t)| t).collect();
    let actor = caller.actor();
    let _ = key;
    let results = state
        .blocking(move |store| {
            let n = batch.len();
            let r = store.ingest(batch, IngestOptions::default());
            if r.is_ok() {
                store.append_audit(&NewAuditEvent { actor, action: "ingest".into(), target: None, detail: Some(format!("{n} items")), ip: None, at: Utc::now() })?;
            }
            Ok(r)
        })
        .await?;
    match results {
        Ok(results) => {
            let created = results.iter().filter(|r| !r.duplicate).count();
            let data: Vec<Value> = results.iter().map(|r| json!({"id": r.id.as_str(), "duplicate": r.duplicate})).collect();
            let status = if created > 0 { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(json!({"data": data, "created": created, "duplicates": results.len() - created}))).into_response())
        }
        Err(IngestError::Items(items)) => {
            let errs: Vec<Value> = items
                .iter()
                .map(|e| {
                    let field = match &e.reason {
                        ItemReason::Conflict { .. } => "key",
                        ItemReason::UnknownMerchant(_) => "merchant_id",
                        ItemReason::UnknownTerminal { .. } => "terminal_id",
                        ItemReason::OriginalNotFound(_) => "original",
                        _ => "item",
                    };
                    json!({"index": indices.get(e.index).copied().unwrap_or(e.index), "field": field, "message": e.reason.to_string()})
                })
                .collect();
            Err(ApiError::unprocessable(format!("{} problem(s) in the batch; nothing was stored", errs.len()), Value::Array(errs)))
        }
        Err(IngestError::Store(e)) => Err(ApiError::internal(e)),
    }
}

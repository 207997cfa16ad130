//! `POST /api/v1/diagnose` ("为什么查不到这笔交易？") and the `warnings` / `hints` of the
//! transaction list, backed by the sans-I/O engine in the `diagnosis` crate.
//!
//! This module does the I/O the engine refuses to do: it parses the question, gathers
//! [`Facts`] from the store **within the caller's scope only** (the candidates query carries
//! the caller's [`store::Scope`], so another merchant's rows are never even loaded), calls the
//! engine, and shapes the answer as JSON.
//!
//! Maintenance windows come from the bank's maintenance announcements; clearing-file arrival
//! from the clearing status per settlement date; reconciliation items from the latest run of
//! each date in the window, read within the caller's scope (a merchant sees only items of its
//! own transactions).

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Offset, Utc};
use chrono_tz::Tz;
use diagnosis::{
    BatchSettlement, Candidate, ClearingDay, ReconItem, ReconOutcome, MaintenanceEffect, MaintenanceWindow, Diagnosis, Expected, ExpectedTime, Facts, Filters, Finding, MerchantFacts, Question,
    QuestionError, SearchRange, TerminalFacts, TxnEvent, TxnEventKind,
};
use domain::{Amount, AuthCode, BatchNo, MerchantClock, MerchantId, Role, Rrn, SettlementDate, Stan, TerminalId, TxnKind, TxnStatus};
use serde_json::{json, Map, Value};
use store::{
    Affects, AnnouncementRepo, AuditRepo, ClearingRepo, Merchant, ReconItemQuery, ReconRepo, MerchantRepo, NewAuditEvent, SqliteStore, Terminal, TerminalRepo, TxnQuery, TxnRange, TxnRepo,
    TxnRow,
};

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::json_body;
use crate::txns::{parse_list_query, FILTER_PARAMS};
use crate::{dto, AppState};

/// Candidates loaded for one diagnosis (newest first; the engine's own cap is higher).
pub const CANDIDATES_FETCH_MAX: u64 = 2_000;
/// Candidates loaded for the hints of an empty list page: one bounded query.
pub const HINT_CANDIDATES_MAX: u64 = 500;

/// Reconciliation items read per run at most when looking for the candidates' items.
pub const RECON_ITEMS_SCANNED_MAX: usize = 200_000;
/// The candidate window reaches this far beyond the question's range or expected time.
pub const WINDOW_DAYS: i64 = 3;
/// Transaction records are kept 5 years (PRODUCT.md "Data and scale").
pub const RETENTION_DAYS: u32 = 1826;
/// Typed identifiers (passed to the engine as typed) longer than this are refused.
const TYPED_CHARS_MAX: usize = 64;

const QUERY_FIELDS: &[&str] = &[
    "from", "to", "basis", "merchant_id", "terminal_id", "kind", "status", "channel", "card_last4", "rrn", "stan",
    "auth_code", "amount_min", "amount_max",
];
const QUERY_LIST_FIELDS: &[&str] = &["terminal_id", "kind", "status", "channel"];
const EXPECTED_FIELDS: &[&str] = &["time", "amount", "card_last4", "terminal_id", "rrn", "stan", "auth_code", "merchant_id"];

// ---------------------------------------------------------------------------------------------
// Request parsing

/// A body that is JSON but has the wrong shape: 422 naming the field.
fn shape_error(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::unprocessable(format!("{field}: {message}"), json!([{"field": field, "message": message}])).with_param(field)
}

fn object<'a>(v: &'a Value, field: &str, allowed: &[&str]) -> ApiResult<&'a Map<String, Value>> {
    let Value::Object(map) = v else {
        return Err(shape_error(field, "must be a JSON object"));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let name = if field == "body" { k.clone() } else { format!("{field}.{k}") };
        return Err(shape_error(&name, format!("unknown field; allowed: {}", allowed.join(", "))));
    }
    Ok(map)
}

fn opt_string(map: &Map<String, Value>, prefix: &str, name: &str) -> ApiResult<Option<String>> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(shape_error(&format!("{prefix}.{name}"), "must be a string")),
    }
}

fn typed(map: &Map<String, Value>, prefix: &str, name: &str) -> ApiResult<Option<String>> {
    let v = opt_string(map, prefix, name)?;
    if v.as_ref().is_some_and(|s| s.chars().count() > TYPED_CHARS_MAX) {
        return Err(ApiError::bad_param(&format!("{prefix}.{name}"), format!("at most {TYPED_CHARS_MAX} characters")));
    }
    Ok(v)
}

/// The `query` object as query-string values, so it is resolved exactly like `GET
/// /transactions` (same defaults, zones, bounds and error messages).
fn query_values(map: &Map<String, Value>) -> ApiResult<Vec<(&'static str, Vec<String>)>> {
    let mut out = Vec::new();
    for &name in QUERY_FIELDS {
        let field = format!("query.{name}");
        let values = match map.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Number(n)) if name.starts_with("amount_") => match n.as_i64() {
                Some(i) => vec![i.to_string()],
                None => return Err(shape_error(&field, "must be an integer number of fen")),
            },
            Some(Value::Array(items)) if QUERY_LIST_FIELDS.contains(&name) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| shape_error(&field, "must be an array of strings")))
                .collect::<ApiResult<Vec<_>>>()?,
            Some(_) if name.starts_with("amount_") => return Err(shape_error(&field, "must be an integer number of fen")),
            Some(_) if QUERY_LIST_FIELDS.contains(&name) => {
                return Err(shape_error(&field, "must be a string or an array of strings"))
            }
            Some(_) => return Err(shape_error(&field, "must be a string")),
        };
        out.push((name, values));
    }
    Ok(out)
}

fn values_of<'a>(values: &'a [(&'static str, Vec<String>)], name: &str) -> Vec<&'a str> {
    values
        .iter()
        .filter(|(n, _)| *n == name)
        .flat_map(|(_, v)| v.iter())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The zone a `from`/`to` bound was given in: the offset of an RFC 3339 instant when it is not
/// the merchant's, else the merchant's zone.
fn bound_zone(raw: Option<&str>, clock: &MerchantClock) -> Tz {
    let Some(t) = raw.and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
        return clock.tz;
    };
    let given = t.offset().local_minus_utc();
    let merchant = clock.local(t.with_timezone(&Utc)).offset().fix().local_minus_utc();
    if given == merchant || given % 3600 != 0 {
        return clock.tz;
    }
    // POSIX-style names: Etc/GMT-8 is UTC+8.
    let hours = given / 3600;
    let name = if hours == 0 { "Etc/UTC".to_owned() } else { format!("Etc/GMT{:+}", -hours) };
    name.parse().unwrap_or(clock.tz)
}

/// The engine's view of a list query the API already resolved.
pub(crate) fn engine_list_query(
    q: &TxnQuery,
    typed_merchant_id: Option<String>,
    typed_terminal_ids: Vec<String>,
    from_raw: Option<&str>,
    to_raw: Option<&str>,
    clock: &MerchantClock,
) -> Option<diagnosis::ListQuery> {
    let range = match &q.range {
        TxnRange::TxnTime { from, to } => {
            SearchRange::TxnTime { from: *from, to: *to, timezone: bound_zone(from_raw.or(to_raw), clock) }
        }
        TxnRange::SettlementDate { from, to } => SearchRange::SettlementDate { from: *from, to: *to },
        TxnRange::All => return None,
    };
    Some(diagnosis::ListQuery {
        merchant_id: typed_merchant_id,
        range,
        filters: Filters {
            terminal_ids: typed_terminal_ids,
            kinds: q.kinds.clone(),
            statuses: q.statuses.clone(),
            channels: q.channels.clone(),
            card_last4: q.card_last4.clone(),
            rrn: q.rrn.clone(),
            stan: q.stan,
            auth_code: q.auth_code.clone(),
            amount_min: q.amount_min,
            amount_max: q.amount_max,
        },
    })
}

fn parse_expected(map: &Map<String, Value>) -> ApiResult<Expected> {
    let p = "expected";
    let bad = |name: &str, why: String| ApiError::bad_param(&format!("{p}.{name}"), why);
    let time = match opt_string(map, p, "time")? {
        None => None,
        Some(s) => Some(if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            ExpectedTime::LocalDate(d)
        } else {
            let t = DateTime::parse_from_rfc3339(&s)
                .map_err(|_| bad("time", format!("{s:?} is neither a YYYY-MM-DD date nor an RFC 3339 instant")))?;
            ExpectedTime::Instant(t.with_timezone(&Utc))
        }),
    };
    let amount = match map.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let fen = n.as_i64().ok_or_else(|| shape_error("expected.amount", "must be an integer number of fen"))?;
            Some(Amount::from_fen(fen).map_err(|e| bad("amount", e.to_string()))?)
        }
        Some(_) => return Err(shape_error("expected.amount", "must be an integer number of fen")),
    };
    let card_last4 = opt_string(map, p, "card_last4")?;
    if card_last4.as_ref().is_some_and(|s| !(s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))) {
        return Err(bad("card_last4", "card_last4 must be exactly 4 digits".into()));
    }
    Ok(Expected {
        time,
        amount,
        card_last4,
        terminal_id: typed(map, p, "terminal_id")?,
        rrn: opt_string(map, p, "rrn")?.map(|s| Rrn::parse(&s).map_err(|e| bad("rrn", e.to_string()))).transpose()?,
        stan: opt_string(map, p, "stan")?.map(|s| Stan::parse(&s).map_err(|e| bad("stan", e.to_string()))).transpose()?,
        auth_code: opt_string(map, p, "auth_code")?
            .map(|s| AuthCode::parse(&s).map_err(|e| bad("auth_code", e.to_string())))
            .transpose()?,
        merchant_id: typed(map, p, "merchant_id")?,
    })
}

fn question_error(e: QuestionError) -> ApiError {
    let param = match e {
        QuestionError::Empty => "body",
        QuestionError::RangeReversed { .. } => "query.to",
        QuestionError::CardLast4 => "card_last4",
    };
    ApiError::bad_param(param, e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Facts

fn event_kind(row: &TxnRow) -> Option<TxnEventKind> {
    if row.reversal {
        return Some(TxnEventKind::ReversedBy);
    }
    match row.kind {
        TxnKind::Void | TxnKind::PreauthVoid | TxnKind::PreauthCompletionVoid => Some(TxnEventKind::VoidedBy),
        TxnKind::Refund => Some(TxnEventKind::RefundedBy),
        TxnKind::PreauthCompletion => Some(TxnEventKind::CompletedBy),
        _ => None,
    }
}

/// Rows as candidates, with the later records that changed them attached as events. Reversal
/// records are events only: they are the terminal's undo, not a transaction to look for.
fn candidates(rows: &[TxnRow]) -> Vec<Candidate> {
    let mut events: HashMap<&str, Vec<TxnEvent>> = HashMap::new();
    for r in rows {
        let (Some(orig), Some(kind)) = (r.original_id.as_ref(), event_kind(r)) else { continue };
        if !r.reversal && !r.response_code.is_approved() {
            continue;
        }
        events.entry(orig.as_str()).or_default().push(TxnEvent {
            kind,
            transaction_id: r.id.as_str().to_owned(),
            at: r.txn_time,
            amount: r.amount,
            reason_code: (r.reversal && !r.response_code.is_approved()).then_some(r.response_code),
        });
    }
    rows.iter()
        .filter(|r| !r.reversal)
        .map(|r| Candidate {
            id: r.id.as_str().to_owned(),
            merchant_id: r.merchant_id.clone(),
            terminal_id: r.terminal_id.clone(),
            batch_no: r.batch_no,
            stan: r.stan,
            rrn: r.rrn.clone(),
            auth_code: r.auth_code.clone(),
            kind: r.kind,
            channel: r.channel,
            status: r.status,
            response_code: r.response_code,
            amount: r.amount,
            card_last4: r.card.as_ref().map(|c| c.last4.clone()),
            txn_time: r.txn_time,
            settlement_date: r.settlement_date,
            original_id: r.original_id.as_ref().map(|o| o.as_str().to_owned()),
            events: events.remove(r.id.as_str()).unwrap_or_default(),
        })
        .collect()
}

/// The batch a terminal settled last: the one before its open batch.
fn settled_batch(open: Option<BatchNo>) -> Option<BatchNo> {
    let n = open?.get();
    BatchNo::new(if n <= 1 { 999_999 } else { n - 1 }).ok()
}

/// `unsettled` is the number of approved transactions in the open batch when known; `None`
/// estimates from the sync fields (contact since the last settlement with a batch open).
fn terminal_facts(t: &Terminal, unsettled: Option<u32>, uploads: &HashMap<TerminalId, Vec<diagnosis::UploadItem>>) -> TerminalFacts {
    let estimated = || {
        let active_since_settlement = t.last_seen_at.is_some_and(|seen| t.last_settlement_at.is_none_or(|s| s < seen));
        u32::from(t.open_batch.is_some() && active_since_settlement)
    };
    TerminalFacts {
        terminal_id: t.id.clone(),
        merchant_id: t.merchant_id.clone(),
        status: match t.status {
            store::TerminalStatus::Active => diagnosis::TerminalStatus::Active,
            store::TerminalStatus::Disabled => diagnosis::TerminalStatus::Disabled,
        },
        last_seen: t.last_seen_at,
        last_sign_on: t.last_sign_on_at,
        open_batch: t.open_batch,
        last_settlement: t.last_settlement_at.and_then(|at| {
            settled_batch(t.open_batch).map(|batch_no| BatchSettlement {
                batch_no,
                at,
                balanced: t.last_settlement_result.as_deref() == Some("balanced"),
            })
        }),
        unsettled_count: unsettled.unwrap_or_else(estimated),
        upload_items_missing_at_host: uploads.get(&t.id).cloned().unwrap_or_default(),
    }
}

fn engine_scope(caller: &Caller, merchant: &MerchantId) -> diagnosis::Scope {
    let scope = caller.scope();
    diagnosis::Scope {
        role: caller.role().unwrap_or(Role::Auditor),
        // Merchant users: their own merchant(s) only. Bank roles: the merchant they named.
        merchant_ids: scope.merchants.clone().unwrap_or_else(|| vec![merchant.clone()]),
        terminal_ids: scope.terminals,
    }
}

struct Gathered {
    maintenance: Vec<MaintenanceWindow>,
    clearing: Vec<ClearingDay>,
    reconciliation: Vec<ReconItem>,
    merchant: Merchant,
    terminals: Vec<Terminal>,
    rows: Vec<TxnRow>,
    bound_elsewhere: bool,
    uploads: HashMap<TerminalId, Vec<diagnosis::UploadItem>>,
}

fn facts(caller: &Caller, g: &Gathered, window: (DateTime<Utc>, DateTime<Utc>), now: DateTime<Utc>, count_unsettled: bool) -> Facts {
    let m = &g.merchant;
    let candidates = candidates(&g.rows);
    let terminals = g
        .terminals
        .iter()
        .map(|t| {
            let unsettled = count_unsettled.then(|| {
                let n = candidates
                    .iter()
                    .filter(|c| {
                        c.terminal_id.as_ref() == Some(&t.id)
                            && t.open_batch.is_some()
                            && c.batch_no == t.open_batch
                            && c.status == TxnStatus::Approved
                    })
                    .count();
                u32::try_from(n).unwrap_or(u32::MAX)
            });
            terminal_facts(t, unsettled, &g.uploads)
        })
        .collect();
    Facts {
        now,
        scope: engine_scope(caller, &m.id),
        merchant: MerchantFacts {
            merchant_id: m.id.clone(),
            clock: m.clock,
            status: m.status,
            status_reason: m.status_reason.clone().unwrap_or_default(),
            status_since: Some(m.status_since),
        },
        candidate_window: window,
        candidates,
        terminals,
        typed_terminal_bound_elsewhere: g.bound_elsewhere,
        clearing: g.clearing.clone(),
        reconciliation: g.reconciliation.clone(),
        maintenance: g.maintenance.clone(),
        retention_days: RETENTION_DAYS,
    }
}

/// Rows of `merchant` in `[from, to)` within `scope`, newest first, at most `max`.
fn load_rows(store: &SqliteStore, q: &TxnQuery, max: u64) -> Result<Vec<TxnRow>, ApiError> {
    let mut rows = Vec::new();
    store.export_txns(q, max, &mut |row| {
        rows.push(row.clone());
        Ok(())
    })?;
    Ok(rows)
}

/// Maintenance announcements for the merchant (its own and everyone's) overlapping `span`.
fn load_maintenance(store: &SqliteStore, merchant: &MerchantId, span: (DateTime<Utc>, DateTime<Utc>)) -> Result<Vec<MaintenanceWindow>, ApiError> {
    let list = store.list_announcements(Some(merchant), Some(span), 50)?;
    Ok(list
        .into_iter()
        .filter(|a| a.content.maintenance)
        .map(|a| MaintenanceWindow {
            announcement_id: a.id.to_string(),
            title: diagnosis::Text::new(a.content.title_zh.clone(), a.content.title_en.clone()),
            start: a.content.starts_at,
            // Open-ended: still going; far enough to cover any question.
            end: a.content.ends_at.unwrap_or(span.1.max(a.content.starts_at) + Duration::days(3650)),
            affects: a
                .content
                .affects
                .iter()
                .map(|x| match x {
                    Affects::Query => MaintenanceEffect::Query,
                    Affects::Capture => MaintenanceEffect::Capture,
                    Affects::Settlement => MaintenanceEffect::Settlement,
                })
                .collect(),
        })
        .collect())
}

/// The widest window of settlement dates whose clearing and reconciliation are looked at.
const CLEARING_DAYS_MAX: i64 = 62;

/// Which channels' clearing files are in for each settlement date around `window`, and the
/// latest reconciliation run's items for the candidates among `rows` (items outside `scope`
/// are never read).
fn load_clearing_and_recon(
    store: &SqliteStore,
    merchant: &Merchant,
    scope: &store::Scope,
    window: (DateTime<Utc>, DateTime<Utc>),
    rows: &[TxnRow],
) -> Result<(Vec<ClearingDay>, Vec<ReconItem>), ApiError> {
    let clock = merchant.clock;
    let first = SettlementDate::new(clock.local(window.0).date_naive());
    let mut last = SettlementDate::new(clock.local(window.1).date_naive()).succ();
    if (last.date() - first.date()).num_days() > CLEARING_DAYS_MAX {
        last = SettlementDate::new(first.date() + Duration::days(CLEARING_DAYS_MAX));
    }
    let mut by_date: std::collections::BTreeMap<SettlementDate, Vec<domain::Channel>> = std::collections::BTreeMap::new();
    for e in store.clearing_status(first, last)? {
        let channels = by_date.entry(e.settlement_date).or_default();
        if !channels.contains(&e.channel) {
            channels.push(e.channel);
        }
    }
    let clearing = by_date.into_iter().map(|(settlement_date, channels_in)| ClearingDay { settlement_date, channels_in }).collect();
    let wanted: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut reconciliation = Vec::new();
    let mut date = first;
    while date <= last {
        if let Some(run) = store.list_recon_runs(Some(date), 20)?.into_iter().find(|r| r.superseded_by.is_none()) {
            // Page through the run's items in scope until every candidate's item is found (or
            // the bound is reached): a merchant's day may hold tens of thousands.
            let mut q = ReconItemQuery {
                run_id: run.id,
                outcome: None,
                scope: scope.clone(),
                after_id: None,
                limit: store::RECON_ITEMS_PAGE_MAX,
            };
            let (mut scanned, mut found) = (0usize, HashSet::new());
            loop {
                let (items, more) = store.list_recon_items(&q)?;
                scanned += items.len();
                q.after_id = items.last().map(|i| i.id);
                for item in items {
                    let Some(pid) = item.platform_id.filter(|p| wanted.contains(p.as_str())) else { continue };
                    let Some(outcome) = recon_outcome(item.outcome) else { continue };
                    found.insert(pid.clone());
                    reconciliation.push(ReconItem { run_id: run.id.to_string(), transaction_id: pid, settlement_date: date, outcome });
                }
                if !more || q.after_id.is_none() || found.len() >= wanted.len() || scanned >= RECON_ITEMS_SCANNED_MAX {
                    break;
                }
            }
        }
        date = date.succ();
    }
    Ok((clearing, reconciliation))
}

fn recon_outcome(o: recon::Outcome) -> Option<ReconOutcome> {
    [
        ReconOutcome::Matched,
        ReconOutcome::AmountMismatch,
        ReconOutcome::MissingInClearing,
        ReconOutcome::MissingInPlatform,
        ReconOutcome::StatusMismatch,
        ReconOutcome::DuplicateInClearing,
        ReconOutcome::DateShift,
    ]
    .into_iter()
    .find(|x| x.as_str() == o.as_str())
}

fn widen(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> (DateTime<Utc>, DateTime<Utc>) {
    (a.0.min(b.0), a.1.max(b.1))
}

fn range_span(range: &SearchRange, clock: &MerchantClock) -> (DateTime<Utc>, DateTime<Utc>) {
    match range {
        SearchRange::TxnTime { from, to, .. } => (*from, *to),
        // A settlement date covers the day before's late hours up to its own cut-off.
        SearchRange::SettlementDate { from, to } => {
            (clock.start_of_day(from.date()) - Duration::days(1), clock.start_of_day(to.date() + Duration::days(1)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Findings as JSON, most likely first.
fn findings_json(findings: &[Finding]) -> Vec<Value> {
    findings.iter().map(dto::finding).collect()
}

fn checked_json(d: &Diagnosis) -> Vec<Value> {
    d.checked.iter().map(|c| json!({"subject": c.subject, "note": dto::text(&c.note)})).collect()
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub async fn diagnose(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    caller.require_reader()?;
    let v = json_body(&headers, &body)?;
    let top = object(&v, "body", &["query", "expected"])?;
    let now = Utc::now();
    let store_scope = caller.scope();

    let query_raw = match top.get("query") {
        None | Some(Value::Null) => None,
        Some(q) => Some(query_values(object(q, "query", QUERY_FIELDS)?)?),
    };
    let expected = match top.get("expected") {
        None | Some(Value::Null) => None,
        Some(e) => Some(parse_expected(object(e, "expected", EXPECTED_FIELDS)?)?),
    };
    let typed_query_merchant = match &query_raw {
        Some(vals) => {
            let m = values_of(vals, "merchant_id");
            if m.len() > 1 {
                return Err(ApiError::bad_param("query.merchant_id", "give one merchant_id"));
            }
            if m.first().is_some_and(|s| s.chars().count() > TYPED_CHARS_MAX) {
                return Err(ApiError::bad_param("query.merchant_id", format!("at most {TYPED_CHARS_MAX} characters")));
            }
            m.first().map(|s| (*s).to_owned())
        }
        None => None,
    };
    let visible = |s: &str| MerchantId::parse(s).ok().filter(|m| store_scope.allows_merchant(m));

    // The merchant diagnosed: a merchant user's own; for bank roles, the one they named.
    let merchant_id = match caller.own_merchant().filter(|_| caller.role().is_some_and(Role::is_merchant)) {
        Some(m) => m.clone(),
        None => typed_query_merchant
            .as_deref()
            .and_then(visible)
            .or_else(|| expected.as_ref().and_then(|e| e.merchant_id.as_deref()).and_then(visible))
            .ok_or_else(|| {
                ApiError::bad_param("query.merchant_id", "name the merchant to diagnose: query.merchant_id or expected.merchant_id")
            })?,
    };

    // The list query, resolved exactly as the list endpoint resolves it. A merchant id that is
    // not the caller's goes to the engine as typed (MERCHANT_ID_MISMATCH), never to the store.
    let list_query = match &query_raw {
        None => None,
        Some(vals) => {
            // The serializer is not Send: finish it before any await.
            let qs = {
                let mut qs = form_urlencoded::Serializer::new(String::new());
                qs.append_pair("merchant_id", merchant_id.as_str());
                for (name, values) in vals {
                    if matches!(*name, "merchant_id" | "terminal_id") {
                        continue;
                    }
                    for v in values {
                        qs.append_pair(name, v);
                    }
                }
                qs.finish()
            };
            let prefixed = |mut e: ApiError| {
                e.param = e.param.map(|p| format!("query.{p}"));
                e
            };
            let p = Params::parse(Some(&qs), FILTER_PARAMS).map_err(prefixed)?;
            let lq = parse_list_query(&state, &caller, &p, now).await.map_err(prefixed)?;
            let typed_terminals: Vec<String> = values_of(vals, "terminal_id").into_iter().map(str::to_owned).collect();
            if typed_terminals.iter().any(|t| t.chars().count() > TYPED_CHARS_MAX) {
                return Err(ApiError::bad_param("query.terminal_id", format!("at most {TYPED_CHARS_MAX} characters")));
            }
            let raw = |n: &str| values_of(vals, n).first().map(|s| (*s).to_owned());
            let (from_raw, to_raw) = (raw("from"), raw("to"));
            engine_list_query(&lq.query, typed_query_merchant.clone(), typed_terminals, from_raw.as_deref(), to_raw.as_deref(), &lq.clock)
        }
    };
    let question = Question::new(list_query, expected).map_err(question_error)?;

    let typed_terminals: Vec<TerminalId> = question
        .expected
        .iter()
        .filter_map(|e| e.terminal_id.as_deref())
        .chain(question.query.iter().flat_map(|q| q.filters.terminal_ids.iter().map(String::as_str)))
        .filter_map(|t| TerminalId::parse(t).ok())
        .collect();
    let is_bank = !caller.role().is_some_and(Role::is_merchant);
    let expected_rrn = question.expected.as_ref().and_then(|e| e.rrn.clone());
    let q2 = question.clone();
    let actor = caller.actor();
    let diagnosis = state
        .blocking(move |store| {
            let merchant = store.get_merchant(&merchant_id)?.ok_or_else(|| ApiError::not_found("merchant"))?;
            let clock = merchant.clock;
            // The window: the query's range and the expected time, widened by WINDOW_DAYS.
            let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = q2.query.as_ref().map(|q| range_span(&q.range, &clock));
            if let Some(t) = q2.expected.as_ref().and_then(|e| e.time) {
                let s = match t {
                    ExpectedTime::Instant(t) => (t, t),
                    ExpectedTime::LocalDate(d) => (clock.start_of_day(d), clock.start_of_day(d + Duration::days(1))),
                };
                span = Some(span.map_or(s, |x| widen(x, s)));
            }
            let (lo, hi) = span.unwrap_or((now, now));
            let window = (lo - Duration::days(WINDOW_DAYS), hi + Duration::days(WINDOW_DAYS));
            let base = TxnQuery { scope: store_scope.clone(), merchant_id: Some(merchant_id.clone()), ..TxnQuery::default() };
            let mut rows = load_rows(
                &store,
                &TxnQuery { range: TxnRange::TxnTime { from: window.0, to: window.1 }, ..base.clone() },
                CANDIDATES_FETCH_MAX,
            )?;
            // An RRN identifies one transaction whenever it happened: look it up (in scope).
            if let Some(rrn) = expected_rrn {
                let ids: HashSet<String> = rows.iter().map(|r| r.id.as_str().to_owned()).collect();
                for r in load_rows(&store, &TxnQuery { rrn: Some(rrn), ..base.clone() }, 50)? {
                    if !ids.contains(r.id.as_str()) {
                        rows.push(r);
                    }
                }
            }
            let terminals = store.list_terminals(&store_scope, Some(&merchant_id))?;
            // Whether a typed terminal id belongs to another merchant: bank roles only (for
            // merchant users the engine answers as for an unknown id anyway; not even asked).
            let mut bound_elsewhere = false;
            if is_bank {
                for t in &typed_terminals {
                    if store.find_terminals(t)?.iter().any(|x| x.merchant_id != merchant_id) {
                        bound_elsewhere = true;
                    }
                }
            }
            let maintenance = load_maintenance(&store, &merchant_id, widen(window, (now, now + Duration::seconds(1))))?;
            let (clearing, reconciliation) = load_clearing_and_recon(&store, &merchant, &store_scope, window, &rows)?;
            let uploads = crate::pos_sync::upload_items(&store, &store_scope, &merchant_id)?;
            let g = Gathered { maintenance, clearing, reconciliation, merchant, terminals, rows, bound_elsewhere, uploads };
            let facts = facts(&caller, &g, window, now, true);
            let d = diagnosis::diagnose(&q2, &facts);
            let codes: Vec<&str> = d.findings.iter().map(|f| f.code.as_str()).collect();
            store.append_audit(&NewAuditEvent {
                actor,
                action: "diagnose".into(),
                target: Some(merchant_id.to_string()),
                detail: Some(codes.join(",")),
                ip: None,
                at: Utc::now(),
            })?;
            Ok(d)
        })
        .await?;
    Ok(Json(json!({
        "findings": findings_json(&diagnosis.findings),
        "checked": checked_json(&diagnosis),
    })))
}

/// Fills `warnings` (always) and `hints` (on an empty first page) of a list response. The
/// merchant is the one filtered on, else the caller's own; bank users without a merchant
/// filter get none. Costs the merchant and its terminals, plus one bounded candidates query
/// when the page is empty.
pub(crate) async fn annotate_list(
    state: &AppState,
    caller: &Caller,
    p: &Params,
    query: TxnQuery,
    clock: MerchantClock,
    empty: bool,
    body: &mut Value,
) -> ApiResult<()> {
    let Some(merchant_id) = query.merchant_id.clone().or_else(|| caller.own_merchant().cloned()) else {
        return Ok(());
    };
    if !query.scope.allows_merchant(&merchant_id) || caller.role().is_none() {
        return Ok(());
    }
    let list_query = if empty {
        let typed_terminals: Vec<String> = p.list("terminal_id", |s| Ok::<_, String>(s.to_owned()))?;
        engine_list_query(
            &query,
            p.one("merchant_id")?.map(str::to_owned),
            typed_terminals,
            p.one("from")?,
            p.one("to")?,
            &clock,
        )
    } else {
        None
    };
    let caller = caller.clone();
    let now = Utc::now();
    let (warnings, hints) = state
        .blocking(move |store| {
            let Some(merchant) = store.get_merchant(&merchant_id)? else {
                return Ok((Vec::new(), None));
            };
            let terminals = store.list_terminals(&query.scope, Some(&merchant_id))?;
            let (rows, window) = match &list_query {
                Some(lq) => {
                    let (lo, hi) = range_span(&lq.range, &merchant.clock);
                    let window = (lo - Duration::days(WINDOW_DAYS), hi + Duration::days(WINDOW_DAYS));
                    let q = TxnQuery {
                        scope: query.scope.clone(),
                        merchant_id: Some(merchant_id.clone()),
                        range: TxnRange::TxnTime { from: window.0, to: window.1 },
                        as_of_seq: None,
                        ..TxnQuery::default()
                    };
                    (load_rows(&store, &q, HINT_CANDIDATES_MAX)?, window)
                }
                None => (Vec::new(), (now, now)),
            };
            let span = if list_query.is_some() { widen(window, (now, now + Duration::seconds(1))) } else { (now, now + Duration::seconds(1)) };
            let maintenance = load_maintenance(&store, &merchant_id, span)?;
            let (clearing, reconciliation) = if list_query.is_some() {
                load_clearing_and_recon(&store, &merchant, &query.scope, window, &rows)?
            } else {
                (Vec::new(), Vec::new())
            };
            let uploads = crate::pos_sync::upload_items(&store, &query.scope, &merchant_id)?;
            let g = Gathered { maintenance, clearing, reconciliation, merchant, terminals, rows, bound_elsewhere: false, uploads };
            // Warnings come from the merchant and terminal rows alone (unsettled estimated).
            let warn_facts = facts(&caller, &Gathered { rows: Vec::new(), ..g.clone_light() }, window, now, false);
            let warnings = diagnosis::warnings(&warn_facts);
            let hints = list_query.map(|lq| diagnosis::hints(&lq, &facts(&caller, &g, window, now, false)));
            Ok((warnings, hints))
        })
        .await?;
    body["warnings"] = Value::Array(warnings.iter().map(dto::finding).collect());
    if let Some(h) = hints {
        body["hints"] = Value::Array(findings_json(&h));
    }
    Ok(())
}

impl Gathered {
    fn clone_light(&self) -> Gathered {
        Gathered {
            maintenance: self.maintenance.clone(),
            clearing: self.clearing.clone(),
            reconciliation: self.reconciliation.clone(),
            merchant: self.merchant.clone(),
            terminals: self.terminals.clone(),
            rows: Vec::new(),
            bound_elsewhere: false,
            uploads: self.uploads.clone(),
        }
    }
}

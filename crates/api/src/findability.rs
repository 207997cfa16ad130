//! Announcements, missing-transaction tickets and the audit log over HTTP.
//!
//! Bank operators write announcements and work tickets; merchants read the announcements meant
//! for them and open and follow their own tickets; auditors read everything, including the
//! audit log. A merchant asking for another merchant's ticket gets 404, like a missing one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::{MerchantId, Role};
use serde_json::{json, Value};
use store::{
    Affects, Announcement, AnnouncementRepo, AuditQuery, AuditRepo, NewAnnouncement, NewAuditEvent, NewTicket, Resolution,
    Ticket, TicketEvent, TicketRepo, TicketStatus,
};

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::json_body;
use crate::AppState;

/// Longest text accepted in a title, comment or explanation (characters).
pub const TEXT_CHARS_MAX: usize = 2_000;
/// Longest client idempotency key.
pub const CLIENT_KEY_CHARS_MAX: usize = 100;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn text<'a>(v: &'a Value, path: &str, required: bool) -> ApiResult<Option<&'a str>> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(x) => x,
            None if required => return Err(ApiError::bad_param(path, format!("{path} is required"))),
            None => return Ok(None),
        };
    }
    match cur {
        Value::Null if !required => Ok(None),
        Value::String(s) if s.chars().count() > TEXT_CHARS_MAX => Err(ApiError::bad_param(path, format!("{path} is longer than {TEXT_CHARS_MAX} characters"))),
        Value::String(s) if required && s.trim().is_empty() => Err(ApiError::bad_param(path, format!("{path} must not be empty"))),
        Value::String(s) => Ok(Some(s)),
        _ => Err(ApiError::bad_param(path, format!("{path} must be a string"))),
    }
}

fn instant(v: &Value, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    match text(v, name, false)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::bad_param(name, format!("{name} must be an RFC 3339 instant"))),
    }
}

fn require_bank_operator(caller: &Caller) -> ApiResult<()> {
    if caller.is_user_with(&[Role::BankOperator]) { Ok(()) } else { Err(ApiError::forbidden("only bank operators may do this")) }
}

fn audit(store: &store::SqliteStore, caller: &str, action: &str, target: String, detail: Option<String>) -> ApiResult<()> {
    store.append_audit(&NewAuditEvent { actor: caller.to_owned(), action: action.into(), target: Some(target), detail, ip: None, at: Utc::now() })?;
    Ok(())
}

fn store_error(e: store::StoreError) -> ApiError {
    match e {
        store::StoreError::Invalid { reason, .. } => ApiError::unprocessable(reason.clone(), json!([{"message": reason}])),
        store::StoreError::NotFound { what, .. } => ApiError::not_found(what),
        other => ApiError::internal(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Announcements
// ---------------------------------------------------------------------------------------------

pub fn announcement_json(a: &Announcement, now: DateTime<Utc>) -> Value {
    let c = &a.content;
    json!({
        "id": a.id,
        "title": {"zh": c.title_zh, "en": c.title_en},
        "body": {"zh": c.body_zh, "en": c.body_en},
        "merchant_id": c.merchant_id.as_ref().map(|m| m.as_str()),
        "starts_at": rfc3339(c.starts_at),
        "ends_at": c.ends_at.map(rfc3339),
        "maintenance": c.maintenance,
        "affects": c.affects.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        "active": a.active_at(now),
        "created_by": a.created_by,
    })
}

fn parse_announcement(v: &Value) -> ApiResult<NewAnnouncement> {
    let merchant_id = text(v, "merchant_id", false)?
        .map(|m| MerchantId::parse(m).map_err(|e| ApiError::bad_param("merchant_id", e.to_string())))
        .transpose()?;
    let affects = match v.get("affects") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| x.as_str().and_then(Affects::parse).ok_or_else(|| ApiError::bad_param("affects", "affects lists query, capture or settlement")))
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::bad_param("affects", "affects must be an array")),
    };
    let maintenance = match v.get("maintenance") {
        None | Some(Value::Null) => !affects.is_empty(),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_param("maintenance", "maintenance must be true or false")),
    };
    Ok(NewAnnouncement {
        title_zh: text(v, "title.zh", true)?.unwrap_or_default().to_owned(),
        title_en: text(v, "title.en", true)?.unwrap_or_default().to_owned(),
        body_zh: text(v, "body.zh", false)?.unwrap_or_default().to_owned(),
        body_en: text(v, "body.en", false)?.unwrap_or_default().to_owned(),
        merchant_id,
        starts_at: instant(v, "starts_at")?.unwrap_or_else(Utc::now),
        ends_at: instant(v, "ends_at")?,
        maintenance,
        affects,
    })
}

pub async fn list_announcements(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    caller.require_reader()?;
    let p = Params::parse(uri.query(), &["active"])?;
    let active_only = match p.one("active")? {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_param("active", "active must be true or false")),
    };
    // Merchant users see their own and the global ones; bank roles see all.
    let merchant = if caller.role().is_some_and(Role::is_merchant) { caller.own_merchant().cloned() } else { None };
    let now = Utc::now();
    let list = state.blocking(move |s| Ok(s.list_announcements(merchant.as_ref(), None, store::PAGE_LIMIT_MAX)?)).await?;
    let data: Vec<Value> = list.iter().filter(|a| !active_only || a.active_at(now)).map(|a| announcement_json(a, now)).collect();
    Ok(Json(json!({"data": data})))
}

pub async fn create_announcement(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    require_bank_operator(&caller)?;
    let a = parse_announcement(&json_body(&headers, &body)?)?;
    let actor = caller.actor();
    let created = state
        .blocking(move |s| {
            let created = s.create_announcement(&a, &actor).map_err(store_error)?;
            audit(&s, &actor, "announcement_create", created.id.to_string(), Some(created.content.title_zh.clone()))?;
            Ok(created)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(announcement_json(&created, Utc::now()))).into_response())
}

pub async fn update_announcement(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    require_bank_operator(&caller)?;
    let a = parse_announcement(&json_body(&headers, &body)?)?;
    let actor = caller.actor();
    let updated = state
        .blocking(move |s| {
            let updated = s.update_announcement(id, &a).map_err(store_error)?;
            audit(&s, &actor, "announcement_update", id.to_string(), None)?;
            Ok(updated)
        })
        .await?;
    Ok(Json(announcement_json(&updated, Utc::now())))
}

pub async fn end_announcement(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    require_bank_operator(&caller)?;
    let actor = caller.actor();
    let ended = state
        .blocking(move |s| {
            let ended = s.end_announcement(id, Utc::now()).map_err(store_error)?;
            audit(&s, &actor, "announcement_end", id.to_string(), None)?;
            Ok(ended)
        })
        .await?;
    Ok(Json(announcement_json(&ended, Utc::now())))
}

// ---------------------------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------------------------

fn ticket_json(t: &Ticket, events: Option<&[TicketEvent]>, for_merchant: bool) -> Value {
    let mut v = json!({
        "id": t.id,
        "merchant_id": t.merchant_id.as_str(),
        "subject": t.subject,
        "status": t.status.as_str(),
        "opened_by": t.opened_by,
        "resolution": t.resolution,
        "resolved_transaction_id": t.resolved_txn_id,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "details": serde_json::from_str::<Value>(&t.details).unwrap_or(Value::Null),
        "diagnosis": serde_json::from_str::<Value>(&t.diagnosis).unwrap_or(Value::Null),
    });
    if !for_merchant {
        v["assignee"] = json!(t.assignee);
    }
    if let Some(ev) = events {
        v["events"] = ev
            .iter()
            // Merchants see what happened, not which bank employee did it.
            .map(|e| json!({"at": rfc3339(e.at), "action": e.action, "text": e.text,
                             "actor": if for_merchant && e.actor != t.opened_by { "bank" } else { e.actor.as_str() }}))
            .collect();
    }
    v
}

/// The ticket if the caller may see it; a foreign ticket is "not found".
async fn visible_ticket(state: &AppState, caller: &Caller, id: i64) -> ApiResult<(Ticket, Vec<TicketEvent>)> {
    caller.require_reader()?;
    let scope = caller.scope();
    let found = state.blocking(move |s| Ok(s.get_ticket(id)?)).await?;
    match found {
        Some((t, ev)) if scope.allows_merchant(&t.merchant_id) => Ok((t, ev)),
        _ => Err(ApiError::not_found("ticket")),
    }
}

pub async fn open_ticket(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    if !caller.is_user_with(&[Role::MerchantAdmin, Role::MerchantStaff]) {
        return Err(ApiError::forbidden("tickets are opened by merchant users"));
    }
    let merchant_id = caller.own_merchant().cloned().ok_or_else(|| ApiError::forbidden("this user has no merchant"))?;
    let v = json_body(&headers, &body)?;
    let subject = text(&v, "subject", true)?.unwrap_or_default().to_owned();
    let client_key = match headers.get("idempotency-key").and_then(|h| h.to_str().ok()) {
        Some(k) if !k.is_empty() && k.chars().count() <= CLIENT_KEY_CHARS_MAX => k.to_owned(),
        Some(_) => return Err(ApiError::bad_param("Idempotency-Key", format!("1 to {CLIENT_KEY_CHARS_MAX} characters"))),
        // Without a key, the same subject and details from the same user open one ticket.
        None => crate::auth::token_hash(&format!("{}\u{0}{subject}\u{0}{}", caller.actor(), v.get("expected").unwrap_or(&Value::Null))),
    };
    let details = json!({"expected": v.get("expected").cloned().unwrap_or(Value::Null)}).to_string();
    let diagnosis = v.get("diagnosis").cloned().unwrap_or(Value::Null).to_string();
    if details.len() + diagnosis.len() > 64 * 1024 {
        return Err(ApiError::bad_param("diagnosis", "details and diagnosis together must stay under 64 KiB"));
    }
    let actor = caller.actor();
    let t = NewTicket { merchant_id, opened_by: actor.clone(), client_key, subject, details, diagnosis };
    let (ticket, created) = state
        .blocking(move |s| {
            let (ticket, created) = s.open_ticket(&t, Utc::now()).map_err(store_error)?;
            if created {
                audit(&s, &actor, "ticket_open", ticket.id.to_string(), None)?;
            }
            Ok((ticket, created))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ticket_json(&ticket, None, true))).into_response())
}

pub async fn list_tickets(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    caller.require_reader()?;
    let p = Params::parse(uri.query(), &["status", "limit"])?;
    let status = p.parse_one("status", |s| TicketStatus::parse(s).ok_or_else(|| "status must be open, assigned or resolved".to_owned()))?;
    let limit = p.parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1 to 500".to_owned()))?.unwrap_or(50);
    let for_merchant = caller.role().is_some_and(Role::is_merchant);
    let merchant = if for_merchant { Some(caller.own_merchant().cloned().ok_or_else(|| ApiError::forbidden("this user has no merchant"))?) } else { None };
    let list = state.blocking(move |s| Ok(s.list_tickets(merchant.as_ref(), status, limit)?)).await?;
    Ok(Json(json!({"data": list.iter().map(|t| ticket_json(t, None, for_merchant)).collect::<Vec<_>>()})))
}

pub async fn get_ticket(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (t, ev) = visible_ticket(&state, &caller, id).await?;
    Ok(Json(ticket_json(&t, Some(&ev), caller.role().is_some_and(Role::is_merchant))))
}

/// `POST tickets/{id}/{assign|comments|resolve}`: the bank's steps on a ticket.
pub async fn ticket_step(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, step)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    // A merchant poking at another merchant's ticket learns nothing.
    visible_ticket(&state, &caller, id).await?;
    require_bank_operator(&caller)?;
    let v = json_body(&headers, &body)?;
    let actor = caller.actor();
    let now = Utc::now();
    let t = match step.as_str() {
        "assign" => {
            let who = text(&v, "assignee", false)?.map(str::to_owned).unwrap_or_else(|| actor.clone());
            state.blocking(move |s| { let t = s.assign_ticket(id, &who, &actor, now).map_err(store_error)?; audit(&s, &actor, "ticket_assign", id.to_string(), Some(who))?; Ok(t) }).await?
        }
        "comments" => {
            let body = text(&v, "text", true)?.unwrap_or_default().to_owned();
            state.blocking(move |s| { let t = s.comment_ticket(id, &body, &actor, now).map_err(store_error)?; audit(&s, &actor, "ticket_comment", id.to_string(), None)?; Ok(t) }).await?
        }
        "resolve" => {
            let explanation = text(&v, "explanation", false)?.unwrap_or_default().to_owned();
            let txn_id = text(&v, "transaction_id", false)?.map(str::to_owned);
            if let Some(tid) = &txn_id {
                if store::TxnId::parse(tid).is_none() {
                    return Err(ApiError::bad_param("transaction_id", "not a transaction id"));
                }
            }
            let r = Resolution { text: explanation, txn_id };
            state.blocking(move |s| { let t = s.resolve_ticket(id, &r, &actor, now).map_err(store_error)?; audit(&s, &actor, "ticket_resolve", id.to_string(), None)?; Ok(t) }).await?
        }
        _ => return Err(ApiError::not_found("endpoint")),
    };
    Ok(Json(ticket_json(&t, None, false)))
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

pub async fn audit_log(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    if !caller.is_user_with(&[Role::Auditor]) {
        return Err(ApiError::forbidden("the audit log is for auditors"));
    }
    let p = Params::parse(uri.query(), &["actor", "action", "from", "to", "before_id", "limit"])?;
    let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| "an RFC 3339 instant".to_owned());
    let q = AuditQuery {
        actor: p.one("actor")?.map(str::to_owned),
        action: p.one("action")?.map(str::to_owned),
        from: p.parse_one("from", t)?,
        to: p.parse_one("to", t)?,
        before_id: p.parse_one("before_id", |s| s.parse::<i64>().map_err(|_| "an integer".to_owned()))?,
        limit: p.parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1 to 500".to_owned()))?.unwrap_or(50),
    };
    let actor = caller.actor();
    let events = state
        .blocking(move |s| {
            let ev = s.list_audit(&q)?;
            audit(&s, &actor, "audit_read", "audit".into(), None)?;
            Ok(ev)
        })
        .await?;
    let next = events.last().map(|e| e.id);
    Ok(Json(json!({
        "data": events.iter().map(|e| json!({"id": e.id, "at": rfc3339(e.at), "actor": e.actor, "action": e.action,
                                               "target": e.target, "detail": e.detail, "ip": e.ip})).collect::<Vec<_>>(),
        "next_before_id": next,
    })))
}

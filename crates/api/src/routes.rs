//! Sign-in, health, and the administrative lists (merchants, terminals).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use domain::{MerchantId, MerchantStatus, Role};
use serde_json::{json, Value};
use store::{AuditRepo, MerchantRepo, NewAuditEvent, NewSession, TerminalRepo, UserRepo};

use crate::auth::{new_token, token_hash, verify_password, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::caller::{session_cookie, Caller};
use crate::error::{ApiError, ApiResult};
use crate::{dto, AppState};

/// Parses a JSON request body, naming what is wrong with it.
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError {
        param: Some("body".into()),
        ..ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("body is not valid JSON: {e}"))
    })
}

fn str_field<'a>(v: &'a Value, name: &str) -> ApiResult<&'a str> {
    match v.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::unprocessable(format!("{name} must be a string"), json!([{"field": name, "message": "must be a string"}]))
            .with_param(name)),
        None => Err(ApiError::unprocessable(format!("{name} is required"), json!([{"field": name, "message": "required"}])).with_param(name)),
    }
}

impl ApiError {
    pub fn with_param(mut self, p: &str) -> Self {
        self.param = Some(p.to_owned());
        self
    }
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let v = json_body(&headers, &body)?;
    let username = str_field(&v, "username")?.to_owned();
    let password = str_field(&v, "password")?.to_owned();
    let secure = state.secure_cookies;
    let (token, user, expires_at) = state
        .blocking(move |store| {
            let now = Utc::now();
            let user = store.get_user_by_username(&username)?;
            let ok = user.as_ref().is_some_and(|u| !u.disabled && verify_password(&password, &u.password_hash));
            let audit = |action: &str, detail: Option<String>| {
                store.append_audit(&NewAuditEvent {
                    actor: format!("user:{username}"),
                    action: action.into(),
                    target: None,
                    detail,
                    ip: None,
                    at: now,
                })
            };
            let Some(user) = user.filter(|_| ok) else {
                audit("login_failed", None)?;
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "username or password is wrong"));
            };
            if let Some(mid) = user.merchant_id.as_ref().filter(|_| user.role.is_merchant()) {
                if let Some(m) = store.get_merchant(mid)? {
                    if m.status == MerchantStatus::Closed {
                        audit("login_refused_closed", Some(mid.to_string()))?;
                        return Err(ApiError::forbidden(format!(
                            "商户 {mid} 已关闭，无法登录；请联系收单银行客户经理。Merchant account {mid} is closed ({}); contact your acquiring bank's account manager.",
                            m.status_reason.as_deref().unwrap_or("no reason recorded")
                        ))
                        .with_code("account_closed"));
                    }
                }
            }
            let token = new_token("pls_");
            let expires_at = now + Duration::seconds(SESSION_TTL_SECS);
            store.create_session(&NewSession { token_hash: token_hash(&token), user_id: user.id, expires_at })?;
            audit("login", None)?;
            Ok((token, user, expires_at))
        })
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_SECS}{}",
        if secure { "; Secure" } else { "" }
    );
    let body = json!({"token": token, "expires_at": expires_at.to_rfc3339(), "user": dto::user(&user)});
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

impl ApiError {
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, _caller: Caller) -> ApiResult<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| session_cookie(&headers))
        .map(str::to_owned);
    if let Some(t) = token {
        state.blocking(move |store| Ok(store.delete_session(&token_hash(&t))?)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

pub async fn me(caller: Caller) -> ApiResult<Json<Value>> {
    match caller {
        Caller::User(u) => Ok(Json(dto::user(&u))),
        Caller::ApiKey(k) => Ok(Json(json!({"api_key": k.name}))),
    }
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.blocking(|store| Ok(store.list_merchants(&store::Scope { merchants: Some(vec![]), terminals: None })?)).await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response(),
    }
}

fn parse_merchant_path(id: &str) -> ApiResult<MerchantId> {
    // A malformed id cannot name anything the caller may see: same answer as a missing one.
    MerchantId::parse(id).map_err(|_| ApiError::not_found("merchant"))
}

pub async fn merchants(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    if matches!(caller, Caller::ApiKey(_)) {
        return Err(ApiError::forbidden("API keys may only ingest transactions"));
    }
    let scope = caller.scope();
    let list = state.blocking(move |store| Ok(store.list_merchants(&scope)?)).await?;
    Ok(Json(json!({"data": list.iter().map(dto::merchant).collect::<Vec<_>>()})))
}

pub async fn merchant(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if matches!(caller, Caller::ApiKey(_)) {
        return Err(ApiError::forbidden("API keys may only ingest transactions"));
    }
    let id = parse_merchant_path(&id)?;
    let scope = caller.scope();
    if !scope.allows_merchant(&id) {
        return Err(ApiError::not_found("merchant"));
    }
    let (m, history) = state
        .blocking(move |store| {
            let m = store.get_merchant(&id)?.ok_or_else(|| ApiError::not_found("merchant"))?;
            let h = store.merchant_status_history(&id)?;
            Ok((m, h))
        })
        .await?;
    let mut body = dto::merchant(&m);
    body["status_history"] = history
        .iter()
        .map(|h| {
            json!({"status": h.status.as_str(), "reason": h.reason, "actor": h.actor,
                   "effective_at": dto::rfc3339_in(h.effective_at, m.clock.tz)})
        })
        .collect();
    Ok(Json(body))
}

pub async fn set_merchant_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if !caller.is_user_with(&[Role::BankOperator]) {
        // Merchant users must not learn whether the id exists.
        return Err(if caller.role().is_some_and(Role::is_merchant) {
            ApiError::not_found("merchant")
        } else {
            ApiError::forbidden("only bank operators change merchant status")
        });
    }
    let id = parse_merchant_path(&id)?;
    let v = json_body(&headers, &body)?;
    let status = MerchantStatus::parse(str_field(&v, "status")?).map_err(|e| ApiError::bad_param("status", e.to_string()))?;
    let reason = str_field(&v, "reason")?.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_param("reason", "reason must be 1 to 500 characters"));
    }
    let effective_at = match v.get("effective_at") {
        None | Some(Value::Null) => Utc::now(),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| ApiError::bad_param("effective_at", "effective_at must be an RFC 3339 instant"))?
            .with_timezone(&Utc),
        Some(_) => return Err(ApiError::bad_param("effective_at", "effective_at must be a string")),
    };
    let actor = caller.actor();
    let m = state
        .blocking(move |store| {
            if store.get_merchant(&id)?.is_none() {
                return Err(ApiError::not_found("merchant"));
            }
            let m = store.set_merchant_status(&id, status, &reason, &actor, effective_at)?;
            store.append_audit(&NewAuditEvent {
                actor,
                action: "merchant_status".into(),
                target: Some(id.to_string()),
                detail: Some(format!("{} ({reason})", status.as_str())),
                ip: None,
                at: Utc::now(),
            })?;
            Ok(m)
        })
        .await?;
    Ok(Json(dto::merchant(&m)))
}

pub async fn terminals(State(state): State<AppState>, caller: Caller, uri: axum::http::Uri) -> ApiResult<Json<Value>> {
    if matches!(caller, Caller::ApiKey(_)) || caller.is_user_with(&[Role::Admin]) {
        return Err(ApiError::forbidden("this role cannot read terminal data"));
    }
    let p = crate::params::Params::parse(uri.query(), &["merchant_id"])?;
    let merchant_id = p.parse_one("merchant_id", |s| MerchantId::parse(s).map_err(|e| e.to_string()))?;
    let scope = caller.scope();
    crate::txns::require_visible(&scope, merchant_id.as_ref())?;
    let (list, zones, counts) = state
        .blocking(move |store| {
            let list = store.list_terminals(&scope, merchant_id.as_ref())?;
            let zones = store.list_merchants(&scope)?;
            let counts = crate::pos_sync::sync_counts(&store, &scope, merchant_id.as_ref(), &list)?;
            Ok((list, zones, counts))
        })
        .await?;
    let tz_of = |m: &MerchantId| zones.iter().find(|z| &z.id == m).map(|z| z.clock.tz).unwrap_or(chrono_tz::Asia::Shanghai);
    let scope = caller.scope();
    let data: Vec<Value> = list
        .iter()
        .filter(|t| scope.allows_terminal(Some(&t.id)))
        .map(|t| crate::pos_sync::with_counts(dto::terminal(t, tz_of(&t.merchant_id)), &counts, t))
        .collect();
    Ok(Json(json!({"data": data})))
}

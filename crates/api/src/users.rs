//! Users over HTTP: merchant admins manage the staff of their own merchant (which terminals each
//! may see), admins manage everyone.
//!
//! A merchant admin sees only its merchant's users; another merchant's user, like a missing
//! one, is "not found". Password hashes never leave the store. Every change is audited.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use domain::{MerchantId, Role, TerminalId};
use serde_json::{json, Value};
use store::{AuditRepo, NewAuditEvent, NewUser, TerminalRepo, User, UserRepo};

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::json_body;
use crate::AppState;

/// Usernames are short, printable and without spaces (they appear in audit lines).
pub const USERNAME_CHARS_MAX: usize = 64;
/// Terminals listed on one staff user.
pub const USER_TERMINALS_MAX: usize = 1_000;

fn user_json(u: &User) -> Value {
    json!({
        "username": u.username,
        "role": u.role.as_str(),
        "merchant_id": u.merchant_id.as_ref().map(|m| m.as_str()),
        "terminals": u.terminals.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "disabled": u.disabled,
        "created_at": u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Who the caller may manage: `Some(merchant)` for a merchant admin, `None` for an admin.
fn manager(caller: &Caller) -> ApiResult<Option<MerchantId>> {
    match caller {
        Caller::User(u) if u.role == Role::Admin => Ok(None),
        Caller::User(u) if u.role == Role::MerchantAdmin => {
            u.merchant_id.clone().map(Some).ok_or_else(|| ApiError::forbidden("this user has no merchant"))
        }
        _ => Err(ApiError::forbidden("users are managed by merchant admins and admins")),
    }
}

fn audit(s: &store::SqliteStore, actor: &str, action: &str, target: &str, detail: Option<String>) -> ApiResult<()> {
    s.append_audit(&NewAuditEvent { actor: actor.to_owned(), action: action.into(), target: Some(target.to_owned()), detail, ip: None, at: Utc::now() })?;
    Ok(())
}

/// `GET /users`: the caller's merchant's users (merchant admin) or everyone (admin).
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let merchant = manager(&caller)?;
    let users = state.blocking(move |s| Ok(s.list_users(merchant.as_ref())?)).await?;
    Ok(Json(json!({"data": users.iter().map(user_json).collect::<Vec<_>>()})))
}

fn str_field<'a>(v: &'a Value, name: &str) -> ApiResult<Option<&'a str>> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::bad_param(name, format!("{name} must be a string"))),
    }
}

/// `POST /users` `{username, password, role?, merchant_id?, terminals?}`. A merchant admin
/// creates `merchant_staff` of its own merchant (terminals of that merchant); an admin any role.
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let own = manager(&caller)?;
    let v = json_body(&headers, &body)?;
    let username = str_field(&v, "username")?.map(str::trim).unwrap_or("").to_owned();
    if username.is_empty()
        || username.chars().count() > USERNAME_CHARS_MAX
        || !username.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(ApiError::bad_param("username", format!("username is 1 to {USERNAME_CHARS_MAX} letters, digits, - _ . @")));
    }
    let password = str_field(&v, "password")?.unwrap_or("");
    let role = match str_field(&v, "role")? {
        None => Role::MerchantStaff,
        Some(r) => Role::parse(r).map_err(|e| ApiError::bad_param("role", e.to_string()))?,
    };
    let merchant_id = match (&own, str_field(&v, "merchant_id")?) {
        (Some(m), None) => Some(m.clone()),
        // A merchant admin naming another merchant learns nothing about it.
        (Some(m), Some(given)) if given == m.as_str() => Some(m.clone()),
        (Some(_), Some(_)) => return Err(ApiError::not_found("merchant")),
        (None, Some(given)) => Some(MerchantId::parse(given).map_err(|e| ApiError::bad_param("merchant_id", e.to_string()))?),
        (None, None) => None,
    };
    if own.is_some() && role != Role::MerchantStaff {
        return Err(ApiError::forbidden("merchant admins create merchant_staff users only"));
    }
    if role.is_merchant() != merchant_id.is_some() {
        return Err(ApiError::bad_param("merchant_id", "merchant users need a merchant_id; other roles have none"));
    }
    let terminals: Vec<TerminalId> = match v.get("terminals") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= USER_TERMINALS_MAX => items
            .iter()
            .map(|t| t.as_str().and_then(|t| TerminalId::parse(t).ok()).ok_or_else(|| ApiError::bad_param("terminals", "terminals lists 8-character terminal ids")))
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::bad_param("terminals", format!("terminals is an array of at most {USER_TERMINALS_MAX} terminal ids"))),
    };
    if role == Role::MerchantStaff && terminals.is_empty() {
        return Err(ApiError::bad_param("terminals", "a staff user needs at least one terminal"));
    }
    let password_hash = crate::auth::hash_password(password).map_err(|e| ApiError::bad_param("password", e))?;
    let actor = caller.actor();
    let created = state
        .blocking(move |s| {
            if let Some(m) = &merchant_id {
                for t in &terminals {
                    if s.get_terminal(m, t)?.is_none() {
                        return Err(ApiError::bad_param("terminals", format!("terminal {t} is not one of merchant {m}")));
                    }
                }
            }
            let new = NewUser { username: username.clone(), role, merchant_id, terminals, password_hash };
            let u = s.create_user(&new).map_err(|e| match e {
                store::StoreError::AlreadyExists { .. } => ApiError::conflict(format!("username {username} is taken")),
                other => ApiError::internal(other),
            })?;
            audit(&s, &actor, "user_create", &u.username, Some(u.role.as_str().to_owned()))?;
            Ok(u)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&created))).into_response())
}

/// `POST /users/{username}/disable`: signs the user out everywhere and refuses new sign-ins.
pub async fn disable(State(state): State<AppState>, caller: Caller, Path(username): Path<String>) -> ApiResult<Json<Value>> {
    let own = manager(&caller)?;
    let actor = caller.actor();
    let self_name = match &caller {
        Caller::User(u) => u.username.clone(),
        Caller::ApiKey(_) => String::new(),
    };
    let u = state
        .blocking(move |s| {
            let found = s.get_user_by_username(&username)?;
            // Outside the admin's merchant, or a fellow admin: as if it did not exist.
            let u = match (found, &own) {
                (Some(u), None) => u,
                (Some(u), Some(m)) if u.merchant_id.as_ref() == Some(m) && u.role == Role::MerchantStaff => u,
                _ => return Err(ApiError::not_found("user")),
            };
            if u.username == self_name {
                return Err(ApiError::conflict("you cannot disable yourself"));
            }
            s.set_user_disabled(u.id, true)?;
            audit(&s, &actor, "user_disable", &u.username, None)?;
            Ok(User { disabled: true, ..u })
        })
        .await?;
    Ok(Json(user_json(&u)))
}

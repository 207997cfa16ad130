//! Who is calling: a signed-in user (bearer token or session cookie) or an API client (key).
//! Every handler takes a [`Caller`] and derives its [`Scope`] from it; nothing else decides
//! what a request may see.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use chrono::Utc;
use domain::{MerchantId, Role};
use store::{ApiKey, ApiKeyRepo, Scope, User, UserRepo};

use crate::auth::{token_hash, SESSION_COOKIE};
use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Clone)]
pub enum Caller {
    User(User),
    ApiKey(ApiKey),
}

impl Caller {
    pub fn actor(&self) -> String {
        match self {
            Caller::User(u) => format!("user:{}", u.username),
            Caller::ApiKey(k) => format!("apikey:{}", k.name),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::User(u) => Some(u.role),
            Caller::ApiKey(_) => None,
        }
    }

    /// What this caller may read. Merchant users see their merchant (staff: their terminals);
    /// bank roles see everything.
    pub fn scope(&self) -> Scope {
        match self {
            Caller::User(u) if u.role.is_merchant() => Scope {
                merchants: Some(u.merchant_id.iter().cloned().collect()),
                terminals: (u.role == Role::MerchantStaff).then(|| u.terminals.clone()),
            },
            Caller::User(_) => Scope::all(),
            Caller::ApiKey(k) => Scope { merchants: k.merchants.clone(), terminals: None },
        }
    }

    /// The merchant whose zone applies to dates, when the caller belongs to one.
    pub fn own_merchant(&self) -> Option<&MerchantId> {
        match self {
            Caller::User(u) => u.merchant_id.as_ref(),
            Caller::ApiKey(k) => k.merchants.as_ref().and_then(|m| if m.len() == 1 { m.first() } else { None }),
        }
    }

    pub fn is_user_with(&self, roles: &[Role]) -> bool {
        matches!(self, Caller::User(u) if roles.contains(&u.role))
    }

    /// Roles that read transaction data.
    pub fn require_reader(&self) -> Result<(), ApiError> {
        if self.is_user_with(&[Role::MerchantAdmin, Role::MerchantStaff, Role::BankOperator, Role::Auditor]) {
            Ok(())
        } else {
            Err(ApiError::forbidden("this role cannot read transaction data"))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .or_else(|| session_cookie(&parts.headers))
            .ok_or_else(ApiError::unauthorized)?
            .to_owned();
        if token.len() > 128 {
            return Err(ApiError::unauthorized());
        }
        let hash = token_hash(&token);
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<Option<Caller>, store::StoreError> {
            if token.starts_with("plk_") {
                Ok(store.get_api_key_by_hash(&hash)?.map(Caller::ApiKey))
            } else {
                Ok(store.get_session(&hash, Utc::now())?.map(|(_, u)| Caller::User(u)))
            }
        })
        .await
        .map_err(ApiError::internal)??;
        found.ok_or_else(ApiError::unauthorized)
    }
}

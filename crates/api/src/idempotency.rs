//! `Idempotency-Key` on POST endpoints: a retried request gets the first answer again instead
//! of acting twice; the same key with a different request is refused.
//!
//! Answers are stored in the database (they survive a restart and are shared by instances),
//! keyed by the caller's credential and the key, for [`KEY_TTL_HOURS`]. Endpoints that are
//! idempotent by their own rules are left to them: ingest (by transaction key), ticket opening
//! (by its key), clearing upload (by the file's SHA-256), sign-in and sign-out. Two identical
//! requests racing each other may both run; the first stored answer is the one replayed.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};
use store::{IdempotencyRepo, StoredResponse};

use crate::error::ApiError;
use crate::{AppState, BODY_BYTES_MAX};

pub const KEY_TTL_HOURS: i64 = 24;
pub const KEY_CHARS_MAX: usize = 100;
/// Largest answer buffered to be stored (the endpoints concerned answer small JSON).
const RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;

const EXEMPT: &[&str] = &["/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/transactions", "/api/v1/tickets", "/api/v1/clearing/files"];

fn credential(req: &Request) -> Option<String> {
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    bearer
        .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .or_else(|| crate::caller::session_cookie(h).map(str::to_owned))
}

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || EXEMPT.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get("idempotency-key") else {
        return next.run(req).await;
    };
    let key = match raw_key.to_str() {
        Ok(k) if !k.is_empty() && k.chars().count() <= KEY_CHARS_MAX && !k.chars().any(char::is_control) => k.to_owned(),
        _ => {
            return ApiError::bad_param("Idempotency-Key", format!("Idempotency-Key must be 1 to {KEY_CHARS_MAX} printable characters"))
                .into_response()
        }
    };
    // Without a credential the handler answers 401 anyway; nothing to remember.
    let Some(cred) = credential(&req) else {
        return next.run(req).await;
    };
    let caller = crate::auth::token_hash(&cred);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request bodies are limited to {BODY_BYTES_MAX} bytes"))
                .into_response()
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path());
    h.update([0]);
    h.update(parts.uri.query().unwrap_or(""));
    h.update([0]);
    h.update(&bytes);
    let request_sha256: [u8; 32] = h.finalize().into();
    let not_before = Utc::now() - Duration::hours(KEY_TTL_HOURS);
    let (c2, k2) = (caller.clone(), key.clone());
    let found = state.blocking(move |s| Ok(s.find_idempotent(&c2, &k2, not_before)?)).await;
    match found {
        Err(e) => return e.into_response(),
        Ok(Some(stored)) if stored.request_sha256 == request_sha256 => return replay(stored),
        Ok(Some(_)) => {
            return ApiError {
                param: Some("Idempotency-Key".into()),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", "this Idempotency-Key was already used for a different request; use a new key")
            }
            .into_response()
        }
        Ok(None) => {}
    }
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = match axum::body::to_bytes(rbody, RESPONSE_BYTES_MAX).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal(format!("buffering a response: {e}")).into_response(),
    };
    if rparts.status.as_u16() < 500 {
        let stored = StoredResponse {
            request_sha256,
            status: rparts.status.as_u16(),
            content_type: rparts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_owned(),
            body: rbytes.to_vec(),
            created_at: Utc::now(),
        };
        if let Err(e) = state.blocking(move |s| Ok(s.save_idempotent(&caller, &key, &stored, not_before)?)).await {
            tracing::warn!(error = %e, "could not store an idempotent response");
        }
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, Bytes::from(stored.body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&stored.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

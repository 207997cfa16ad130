//! One error type for the HTTP edge, rendered as RFC 9457 `application/problem+json`.
//! Internal detail is logged with the request id and never returned.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

tokio::task_local! {
    /// Set by the request-id middleware for the duration of one request.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_else(|_| "-".to_owned())
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_parameter`.
    pub code: &'static str,
    pub detail: String,
    /// The query parameter or body field at fault, when there is one.
    pub param: Option<String>,
    /// Item-level errors (ingest batches).
    pub errors: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), param: None, errors: None }
    }

    pub fn bad_param(param: &str, detail: impl Into<String>) -> Self {
        ApiError { param: Some(param.to_owned()), ..Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", detail) }
    }

    pub fn unprocessable(detail: impl Into<String>, errors: Value) -> Self {
        ApiError { errors: Some(errors), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail) }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first: send a bearer token or the session cookie")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// The same answer for "does not exist" and "not yours", so existence never leaks.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// Logs the cause under the request id; the client sees only that id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; quote the request_id when reporting it")
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://poslens.invalid/problems/{}", self.code),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
            "request_id": current_request_id(),
        });
        if let Some(p) = &self.param {
            body["param"] = Value::String(p.clone());
        }
        if let Some(e) = self.errors {
            body["errors"] = e;
        }
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

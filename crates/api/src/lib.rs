//! The HTTP edge of poslens: the JSON API under `/api/v1`, `/healthz` and `/metrics`.
//!
//! It authenticates callers, derives their scope, parses and bounds every input, calls the
//! store, and shapes JSON. It is the only crate that knows JSON (with the CLI's `--json`). It
//! does not decide anything about transactions itself: validation of ingest objects is the
//! store's, settlement dates are the domain's. `app(state)` is a plain `Router`, driven in tests
//! with `tower::ServiceExt::oneshot`.

pub mod auth;
mod caller;
pub mod cursor;
mod diagnose;
mod dto;
pub mod error;
mod export;
mod findability;
mod idempotency;
pub mod ingest;
mod metrics;
mod openapi;
mod params;
mod pos_sync;
pub mod recon;
mod routes;
mod txns;
mod users;
mod xlsx;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use domain::CardKey;
use store::SqliteStore;

pub use caller::Caller;
pub use cursor::CursorKey;
pub use error::{ApiError, ApiResult};
pub use metrics::Metrics;

/// Request bodies larger than this are refused before parsing (an ingest batch of 1,000
/// objects is well under it).
pub const BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: SqliteStore,
    pub card_key: CardKey,
    pub cursor_key: CursorKey,
    pub metrics: Arc<Metrics>,
    /// Mark the session cookie `Secure` (behind TLS).
    pub secure_cookies: bool,
}

impl AppState {
    pub fn new(store: SqliteStore, card_key: CardKey, cursor_key: CursorKey) -> AppState {
        AppState { store, card_key, cursor_key, metrics: Arc::new(Metrics::default()), secure_cookies: false }
    }

    /// Runs blocking store work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(SqliteStore) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store)).await.map_err(ApiError::internal)?
    }
}

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/login", post(routes::login))
        .route("/auth/logout", post(routes::logout))
        .route("/auth/me", get(routes::me))
        .route("/transactions", get(txns::list).post(txns::ingest))
        .route("/transactions/export", get(export::export))
        .route("/transactions/{id}", get(txns::detail))
        .route("/settlements", get(txns::settlements))
        .route("/merchants", get(routes::merchants))
        .route("/merchants/{id}", get(routes::merchant))
        .route("/merchants/{id}/status", post(routes::set_merchant_status))
        .route("/terminals", get(routes::terminals))
        .route("/terminals/discrepancies", get(pos_sync::discrepancies))
        .route("/diagnose", post(diagnose::diagnose))
        .route("/announcements", get(findability::list_announcements).post(findability::create_announcement))
        .route("/announcements/{id}", axum::routing::put(findability::update_announcement))
        .route("/announcements/{id}/end", post(findability::end_announcement))
        .route("/tickets", get(findability::list_tickets).post(findability::open_ticket))
        .route("/tickets/{id}", get(findability::get_ticket))
        .route("/tickets/{id}/{step}", post(findability::ticket_step))
        .route("/audit", get(findability::audit_log))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{username}/disable", post(users::disable))
        .route("/clearing/files", get(recon::list_files).post(recon::upload).layer(axum::extract::DefaultBodyLimit::max(recon::CLEARING_UPLOAD_BYTES_MAX)))
        .route("/reconciliation/runs", get(recon::list_runs).post(recon::start_run))
        .route("/reconciliation/runs/{id}", get(recon::get_run))
        .route("/reconciliation/runs/{id}/items", get(recon::list_items))
        .route("/reconciliation/runs/{id}/items/export", get(recon::export_items))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::not_found("endpoint") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics_text))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Gives every request an id (echoed as `x-request-id` and in problem bodies), logs one line
/// per request without query strings (they may carry card digits), and records metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = format!("{:016x}", rand::random::<u64>());
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let mut resp = error::REQUEST_ID.scope(request_id.clone(), next.run(req)).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    tracing::info!(request_id = %request_id, %method, %route, status, elapsed_ms, "request");
    state.metrics.observe(&method, &route, status, elapsed_ms);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

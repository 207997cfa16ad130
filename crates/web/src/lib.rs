//! The web portal: server-rendered pages for merchants (dashboard, transaction details,
//! settlements) and bank staff (merchants and their status), in Chinese by default and English
//! by a remembered switch.
//!
//! It is a presentation layer. Reads go through the JSON API's own handlers, called in-process
//! with the person's session cookie (`tower::ServiceExt::oneshot` on `api::app`), so scope,
//! range parsing, cursors and diagnosis hints are exactly the API's and cannot drift. Writes
//! that the portal owns (sign-in, sign-out, merchant status by bank operators) use the store
//! directly with the same rules and audit events as the API. It does not decide anything about
//! transactions and holds no state but the sign-in throttle.
//!
//! Templates are compiled in (minijinja, HTML auto-escaping), the one stylesheet is served from
//! the binary, and no page needs JavaScript; the Content-Security-Policy allows only 'self'.

// Guards return the page to answer with; it is built once per refused request, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

mod bank;
mod clearing;
mod desk;
mod format;
mod i18n;
mod pages;
mod session;
mod view;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde_json::Value;
use tower::ServiceExt;

pub use i18n::Lang;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The largest API answer the portal reads into memory (a page of 500 rows is far below it).
const API_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("login.html", include_str!("../templates/login.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    (
        "transactions.html",
        include_str!("../templates/transactions.html"),
    ),
    ("detail.html", include_str!("../templates/detail.html")),
    (
        "settlements.html",
        include_str!("../templates/settlements.html"),
    ),
    ("diagnose.html", include_str!("../templates/diagnose.html")),
    (
        "merchants.html",
        include_str!("../templates/merchants.html"),
    ),
    ("merchant.html", include_str!("../templates/merchant.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("tickets.html", include_str!("../templates/tickets.html")),
    ("ticket.html", include_str!("../templates/ticket.html")),
    (
        "announcements.html",
        include_str!("../templates/announcements.html"),
    ),
    ("clearing.html", include_str!("../templates/clearing.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("users.html", include_str!("../templates/users.html")),
];

const CSS: &str = include_str!("../static/app.css");

#[derive(Clone)]
pub struct Web {
    pub(crate) app: api::AppState,
    api: Router,
    env: Arc<Environment<'static>>,
    pub(crate) throttle: Arc<Mutex<session::Throttle>>,
}

/// The portal's routes, to be merged with `api::app` on the same listener.
pub fn routes(state: api::AppState) -> Router {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
    }
    let web = Web {
        api: api::app(state.clone()),
        app: state,
        env: Arc::new(env),
        throttle: Arc::new(Mutex::new(session::Throttle::default())),
    };
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/lang", get(switch_lang))
        .route("/static/app.css", get(css))
        .route("/transactions", get(pages::transactions))
        .route("/transactions/{id}", get(pages::detail))
        .route("/settlements", get(pages::settlements))
        .route("/diagnose", get(pages::diagnose_form).post(pages::diagnose))
        .route("/bank/merchants", get(bank::merchants))
        .route("/bank/merchants/{id}", get(bank::merchant))
        .route("/bank/merchants/{id}/status", post(bank::set_status))
        .route("/tickets", get(desk::tickets).post(pages::open_ticket))
        .route("/tickets/{id}", get(desk::ticket))
        .route("/tickets/{id}/{step}", post(desk::ticket_step))
        .route(
            "/bank/announcements",
            get(desk::announcements).post(desk::save_announcement),
        )
        .route("/bank/announcements/{id}", post(desk::save_announcement_id))
        .route("/bank/announcements/{id}/end", post(desk::end_announcement))
        .route("/bank/audit", get(desk::audit))
        .route("/users", get(desk::users).post(desk::create_user))
        .route("/users/{username}/disable", post(desk::disable_user))
        .route(
            "/bank/clearing",
            get(clearing::files).post(clearing::upload).layer(
                axum::extract::DefaultBodyLimit::max(clearing::UPLOAD_BYTES_MAX),
            ),
        )
        .route(
            "/bank/reconciliation",
            get(clearing::runs).post(clearing::start_run),
        )
        .route("/bank/reconciliation/{id}", get(clearing::run))
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

/// One cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A path on this site to go back to: anything else (another host, `//evil`) becomes `/`.
pub(crate) fn local_path(p: &str) -> String {
    if p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && !p.contains(['\r', '\n'])
    {
        p.to_owned()
    } else {
        "/".to_owned()
    }
}

/// An answer of the JSON API: its status and body (a problem body on errors).
pub(crate) struct ApiAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiAnswer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's human detail (English, as the API writes it).
    pub fn detail(&self) -> String {
        self.body["detail"].as_str().unwrap_or("").to_owned()
    }
}

impl Web {
    /// Calls the JSON API in-process as the signed-in person (their session cookie).
    pub(crate) async fn api(
        &self,
        method: &str,
        token: &str,
        path_and_query: &str,
        json: Option<&Value>,
    ) -> ApiAnswer {
        let (ct, body) = match json {
            Some(v) => (Some("application/json"), Body::from(v.to_string())),
            None => (None, Body::empty()),
        };
        self.api_raw(method, token, path_and_query, ct, body, None)
            .await
    }

    /// [`Web::api`] with any body and an optional `Idempotency-Key`.
    pub(crate) async fn api_raw(
        &self,
        method: &str,
        token: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Body,
        idempotency_key: Option<&str>,
    ) -> ApiAnswer {
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(
                header::COOKIE,
                format!("{}={token}", api::auth::SESSION_COOKIE),
            );
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let req = req
            .body(body)
            .expect("a request from parts that were checked");
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let body = match axum::body::to_bytes(resp.into_body(), API_BODY_BYTES_MAX).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => {
                tracing::error!(error = %e, "reading an API answer failed");
                return ApiAnswer {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: Value::Null,
                };
            }
        };
        ApiAnswer { status, body }
    }

    /// Renders a template with the message table and `ctx`.
    pub(crate) fn render(
        &self,
        status: StatusCode,
        name: &str,
        lang: Lang,
        mut ctx: Value,
    ) -> Response {
        ctx["t"] = i18n::messages(lang);
        ctx["lang"] = Value::from(lang.as_str());
        ctx["html_lang"] = Value::from(lang.html_lang());
        let html = self
            .env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
        match html {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %format!("{e:#}"), "rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct LangQuery {
    to: String,
    back: Option<String>,
}

/// `GET /lang?to=en&back=/transactions?...`: remembers the choice for a year and goes back.
async fn switch_lang(Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or(Lang::Zh);
    let back = local_path(q.back.as_deref().unwrap_or("/"));
    let cookie = format!(
        "{}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        i18n::LANG_COOKIE,
        lang.as_str()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

async fn not_found(State(web): State<Web>, headers: HeaderMap) -> Response {
    view::message(
        &web,
        Lang::from_headers(&headers),
        None,
        StatusCode::NOT_FOUND,
    )
}

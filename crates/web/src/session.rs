//! Signing in and out with the API's sessions (same table, same cookie, same audit events),
//! CSRF tokens for every form, and the sign-in throttle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Utc;
use domain::MerchantStatus;
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{AuditRepo, Merchant, MerchantRepo, NewAuditEvent, NewSession, User, UserRepo};

use crate::i18n::{t, t_n, Lang};
use crate::{cookie, local_path, view, Web};

use api::auth::{new_token, token_hash, verify_password, SESSION_COOKIE, SESSION_TTL_SECS};

/// Failed sign-ins for one username from one address before a lockout.
pub const LOGIN_FAILURES_MAX: u32 = 5;
pub const LOGIN_LOCKOUT: Duration = Duration::from_secs(60);
/// Throttle entries kept; older quiet ones are dropped first.
const THROTTLE_ENTRIES_MAX: usize = 10_000;
const LOGIN_CSRF_COOKIE: &str = "poslens_login_csrf";
const USERNAME_CHARS_MAX: usize = 64;

/// The signed-in person on a page request.
pub struct Viewer {
    pub user: User,
    pub token: String,
    pub lang: Lang,
    /// The merchant of a merchant user (zone, status banner).
    pub merchant: Option<Merchant>,
    /// This request's path and query (for the language switch).
    pub path: String,
    /// Active announcements for a merchant user (the API's JSON), shown on every page.
    pub notices: Vec<serde_json::Value>,
}

impl Viewer {
    pub fn csrf(&self) -> String {
        csrf_token(&self.token)
    }

    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, web: &Web, given: &str) -> Result<(), Response> {
        if constant_time_eq(given.as_bytes(), self.csrf().as_bytes()) {
            Ok(())
        } else {
            Err(view::message_text(
                web,
                self.lang,
                Some(self),
                StatusCode::FORBIDDEN,
                "forbidden_title",
                "form_expired",
            ))
        }
    }

    pub fn is_merchant(&self) -> bool {
        self.user.role.is_merchant()
    }
}

/// The form token of a session: derived from the session token, which a cross-site page
/// cannot read (HttpOnly), so it cannot forge the token either.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::digest(format!("poslens-web-csrf\0{session_token}").as_bytes());
    hex::encode(&digest[..16])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let lang = Lang::from_headers(&parts.headers);
        let to_login = || {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|t| t.len() <= 128)
            .map(str::to_owned)
        else {
            return Err(to_login());
        };
        let hash = token_hash(&token);
        let store = web.app.store.clone();
        let found = tokio::task::spawn_blocking(
            move || -> Result<Option<(User, Option<Merchant>)>, store::StoreError> {
                let Some((_, user)) = store.get_session(&hash, Utc::now())? else {
                    return Ok(None);
                };
                let merchant = match user
                    .merchant_id
                    .as_ref()
                    .filter(|_| user.role.is_merchant())
                {
                    Some(m) => store.get_merchant(m)?,
                    None => None,
                };
                Ok(Some((user, merchant)))
            },
        )
        .await;
        match found {
            Ok(Ok(Some((user, merchant)))) => {
                // The bank's notices reach merchants through the API's own rules (global ones
                // and those for this merchant, active now).
                let notices = if user.role.is_merchant() {
                    let a = web
                        .api("GET", &token, "/api/v1/announcements?active=true", None)
                        .await;
                    a.body["data"].as_array().cloned().unwrap_or_default()
                } else {
                    Vec::new()
                };
                Ok(Viewer {
                    user,
                    token,
                    lang,
                    merchant,
                    path,
                    notices,
                })
            }
            Ok(Ok(None)) => Err(to_login()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading the session failed");
                Err(view::message(
                    web,
                    lang,
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "session task failed");
                Err(view::message(
                    web,
                    lang,
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                ))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throttle

#[derive(Default)]
pub struct Throttle {
    entries: HashMap<(String, String), Entry>,
}

struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

impl Throttle {
    /// `Err(seconds)` while locked out.
    pub fn check(&mut self, key: &(String, String), now: Instant) -> Result<(), u64> {
        match self.entries.get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            Some(_) => {
                self.entries.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failure; returns the attempts left (0: locked out now).
    pub fn fail(&mut self, key: (String, String), now: Instant) -> u32 {
        if self.entries.len() >= THROTTLE_ENTRIES_MAX {
            self.entries.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now - e.last < LOGIN_LOCKOUT * 15
            });
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            locked_until: None,
            last: now,
        });
        e.failures += 1;
        e.last = now;
        if e.failures >= LOGIN_FAILURES_MAX {
            e.locked_until = Some(now + LOGIN_LOCKOUT);
            e.failures = 0;
            0
        } else {
            LOGIN_FAILURES_MAX - e.failures
        }
    }

    pub fn succeed(&mut self, key: &(String, String)) {
        self.entries.remove(key);
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(serde::Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

fn login_page(
    web: &Web,
    lang: Lang,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<String>,
) -> Response {
    let csrf = new_token("");
    let mut resp = web.render(
        status,
        "login.html",
        lang,
        json!({"csrf": csrf, "username": username, "next": next, "error": error, "user": null, "nav": [], "banner": null,
               "brand": t(lang, "brand"), "merchant_name": null,
               "lang_switch": format!("/lang?to={}&back=/login", lang.other().as_str())}),
    );
    let cookie =
        format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn login_form(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    login_page(
        &web,
        lang,
        StatusCode::OK,
        "",
        &local_path(q.next.as_deref().unwrap_or("/")),
        None,
    )
}

pub async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let next = local_path(if f.next.is_empty() { "/" } else { &f.next });
    let username: String = f.username.trim().chars().take(USERNAME_CHARS_MAX).collect();
    let cookie_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_csrf.is_empty() || !constant_time_eq(cookie_csrf.as_bytes(), f.csrf.as_bytes()) {
        return login_page(
            &web,
            lang,
            StatusCode::FORBIDDEN,
            &username,
            &next,
            Some(t(lang, "form_expired")),
        );
    }
    let ip = peer
        .map(|Extension(ConnectInfo(a))| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let key = (username.to_lowercase(), ip.clone());
    let locked = web
        .throttle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(&key, Instant::now());
    if let Err(secs) = locked {
        return login_page(
            &web,
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            &username,
            &next,
            Some(t_n(lang, "login_locked", secs)),
        );
    }
    let store = web.app.store.clone();
    let (name, password) = (username.clone(), f.password);
    let outcome = tokio::task::spawn_blocking(move || -> Result<Outcome, store::StoreError> {
        let now = Utc::now();
        let audit = |action: &str, detail: Option<String>| {
            store.append_audit(&NewAuditEvent {
                actor: format!("user:{name}"),
                action: action.into(),
                target: None,
                detail,
                ip: Some(ip.clone()),
                at: now,
            })
        };
        let user = store.get_user_by_username(&name)?;
        let ok = user
            .as_ref()
            .is_some_and(|u| !u.disabled && verify_password(&password, &u.password_hash));
        let Some(user) = user.filter(|_| ok) else {
            audit("login_failed", Some("web".into()))?;
            return Ok(Outcome::Wrong);
        };
        if let Some(mid) = user
            .merchant_id
            .as_ref()
            .filter(|_| user.role.is_merchant())
        {
            if store
                .get_merchant(mid)?
                .is_some_and(|m| m.status == MerchantStatus::Closed)
            {
                audit("login_refused_closed", Some(mid.to_string()))?;
                return Ok(Outcome::Closed);
            }
        }
        let token = new_token("pls_");
        let expires_at = now + chrono::Duration::seconds(SESSION_TTL_SECS);
        store.create_session(&NewSession {
            token_hash: token_hash(&token),
            user_id: user.id,
            expires_at,
        })?;
        audit("login", Some("web".into()))?;
        Ok(Outcome::Ok(token))
    })
    .await;
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "sign-in failed in the store");
            return view::message(&web, lang, None, StatusCode::INTERNAL_SERVER_ERROR);
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in task failed");
            return view::message(&web, lang, None, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    match outcome {
        Outcome::Ok(token) => {
            web.throttle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .succeed(&key);
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_SECS}{}",
                if web.app.secure_cookies { "; Secure" } else { "" }
            );
            let clear =
                format!("{LOGIN_CSRF_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0");
            let mut resp = Redirect::to(&next).into_response();
            for c in [cookie, clear] {
                if let Ok(v) = c.parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Outcome::Closed => login_page(
            &web,
            lang,
            StatusCode::FORBIDDEN,
            &username,
            &next,
            Some(t(lang, "login_closed")),
        ),
        Outcome::Wrong => {
            let left = web
                .throttle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .fail(key, Instant::now());
            let msg = if left == 0 {
                t_n(lang, "login_locked", LOGIN_LOCKOUT.as_secs())
            } else {
                format!(
                    "{} {}",
                    t(lang, "login_failed"),
                    t_n(lang, "login_attempts_left", left)
                )
            };
            let status = if left == 0 {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            login_page(&web, lang, status, &username, &next, Some(msg))
        }
    }
}

enum Outcome {
    Ok(String),
    Wrong,
    Closed,
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(State(web): State<Web>, viewer: Viewer, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    let store = web.app.store.clone();
    let hash = token_hash(&viewer.token);
    let actor = format!("user:{}", viewer.user.username);
    let done = tokio::task::spawn_blocking(move || -> Result<(), store::StoreError> {
        store.delete_session(&hash)?;
        store.append_audit(&NewAuditEvent {
            actor,
            action: "logout".into(),
            target: None,
            detail: Some("web".into()),
            ip: None,
            at: Utc::now(),
        })?;
        Ok(())
    })
    .await;
    if !matches!(done, Ok(Ok(()))) {
        tracing::error!("sign-out failed");
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_a_minute_and_success_clears() {
        let mut th = Throttle::default();
        let k = ("demo".to_owned(), "1.2.3.4".to_owned());
        let t0 = Instant::now();
        for left in (0..LOGIN_FAILURES_MAX).rev() {
            assert_eq!(th.check(&k, t0), Ok(()));
            assert_eq!(th.fail(k.clone(), t0), left);
        }
        assert_eq!(th.check(&k, t0 + Duration::from_secs(1)), Err(59));
        // Another address is not locked out by someone else's guessing.
        assert_eq!(th.check(&("demo".into(), "5.6.7.8".into()), t0), Ok(()));
        assert_eq!(
            th.check(&k, t0 + LOGIN_LOCKOUT + Duration::from_secs(1)),
            Ok(())
        );
        th.fail(k.clone(), t0);
        th.succeed(&k);
        assert_eq!(th.fail(k, t0), LOGIN_FAILURES_MAX - 1);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_from_the_stored_hash() {
        let a = csrf_token("pls_a");
        assert_eq!(a, csrf_token("pls_a"));
        assert_ne!(a, csrf_token("pls_b"));
        assert!(!token_hash("pls_a").starts_with(&a));
    }
}

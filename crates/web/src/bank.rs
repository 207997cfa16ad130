//! Bank pages: the merchant list with search, one merchant (status history, terminals) and
//! the status change form (bank operators only; auditors read).

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use domain::{MerchantId, MerchantStatus, Role};
use serde_json::{json, Value};
use store::{AuditRepo, MerchantRepo, NewAuditEvent, Scope, TerminalRepo};

use crate::format::local_time;
use crate::i18n::t;
use crate::session::Viewer;
use crate::{view, Web};

/// Longest reason accepted, as in the API.
const REASON_CHARS_MAX: usize = 500;
const SEARCH_CHARS_MAX: usize = 64;

fn bank_only(web: &Web, viewer: &Viewer) -> Result<(), Response> {
    if matches!(viewer.user.role, Role::BankOperator | Role::Auditor) {
        Ok(())
    } else {
        // Merchant users must not learn that bank pages exist for an id.
        let status = if viewer.is_merchant() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        Err(view::message(web, viewer.lang, Some(viewer), status))
    }
}

fn internal(web: &Web, viewer: &Viewer, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "bank page failed");
    view::message(
        web,
        viewer.lang,
        Some(viewer),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

pub async fn merchants(State(web): State<Web>, viewer: Viewer, uri: Uri) -> Response {
    if let Err(r) = bank_only(&web, &viewer) {
        return r;
    }
    let lang = viewer.lang;
    let q: String = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().chars().take(SEARCH_CHARS_MAX).collect())
        .unwrap_or_default();
    let store = web.app.store.clone();
    let list = match tokio::task::spawn_blocking(move || store.list_merchants(&Scope::all())).await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return internal(&web, &viewer, e),
        Err(e) => return internal(&web, &viewer, e),
    };
    let needle = q.to_lowercase();
    let rows: Vec<Value> = list
        .iter()
        .filter(|m| {
            needle.is_empty()
                || m.id.as_str().contains(&needle)
                || m.name_zh.to_lowercase().contains(&needle)
                || m.name_en.as_ref().is_some_and(|n| n.to_lowercase().contains(&needle))
        })
        .map(|m| {
            json!({
                "id": m.id.as_str(), "name": view::merchant_name(m, lang), "status_word": m.status.as_str(),
                "status": t(lang, &format!("mstatus_{}", m.status.as_str())), "reason": m.status_reason.clone().unwrap_or_default(),
                "timezone": m.clock.tz.name(),
            })
        })
        .collect();
    let mut ctx = view::frame(&viewer, "nav_merchants");
    ctx["q"] = json!(q);
    ctx["merchants"] = json!(rows);
    web.render(StatusCode::OK, "merchants.html", lang, ctx)
}

fn parse_id(id: &str) -> Option<MerchantId> {
    MerchantId::parse(id).ok()
}

async fn merchant_page(
    web: &Web,
    viewer: &Viewer,
    id: MerchantId,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = viewer.lang;
    let store = web.app.store.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<_, store::StoreError> {
        let Some(m) = store.get_merchant(&id)? else {
            return Ok(None);
        };
        let history = store.merchant_status_history(&id)?;
        let terminals = store.list_terminals(&Scope::all(), Some(&id))?;
        Ok(Some((m, history, terminals)))
    })
    .await;
    let (m, history, terminals) = match found {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return view::message(web, lang, Some(viewer), StatusCode::NOT_FOUND),
        Ok(Err(e)) => return internal(web, viewer, e),
        Err(e) => return internal(web, viewer, e),
    };
    let tz = m.clock.tz;
    let at =
        |t: chrono::DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string();
    let mut ctx = view::frame(viewer, "nav_merchants");
    ctx["merchant"] = json!({
        "id": m.id.as_str(), "name_zh": m.name_zh, "name_en": m.name_en.clone().unwrap_or_default(), "mcc": m.mcc.clone().unwrap_or_default(),
        "status_word": m.status.as_str(), "status": t(lang, &format!("mstatus_{}", m.status.as_str())),
        "reason": m.status_reason.clone().unwrap_or_default(), "since": at(m.status_since),
        "timezone": tz.name(), "cutoff": m.clock.cutoff.to_string(),
    });
    ctx["history"] = json!(history
        .iter()
        .rev()
        .map(|h| json!({"status": t(lang, &format!("mstatus_{}", h.status.as_str())), "status_word": h.status.as_str(),
                        "reason": h.reason, "actor": h.actor, "at": at(h.effective_at)}))
        .collect::<Vec<_>>());
    ctx["terminals"] = json!(terminals
        .iter()
        .map(|tm| json!({
            "id": tm.id.as_str(), "status": t(lang, &format!("tstatus_{}", tm.status.as_str())),
            "open_batch": tm.open_batch.as_ref().map(|b| b.to_string()).unwrap_or_default(),
            "last_seen": tm.last_seen_at.map(at).map(|s| local_time(&s)).unwrap_or_else(|| t(lang, "never")),
        }))
        .collect::<Vec<_>>());
    ctx["statuses"] = json!(MerchantStatus::ALL
        .iter()
        .map(|s| json!({"value": s.as_str(), "label": t(lang, &format!("mstatus_{}", s.as_str())), "selected": *s == m.status}))
        .collect::<Vec<_>>());
    ctx["can_change"] = json!(viewer.user.role == Role::BankOperator);
    ctx["error"] = json!(error);
    ctx["notice"] = json!(notice);
    web.render(status, "merchant.html", lang, ctx)
}

pub async fn merchant(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = bank_only(&web, &viewer) {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let changed = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "changed=1"));
    let notice = changed.then(|| t(viewer.lang, "status_changed"));
    merchant_page(&web, &viewer, id, None, notice, StatusCode::OK).await
}

#[derive(serde::Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
}

pub async fn set_status(
    State(web): State<Web>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Response {
    if let Err(r) = bank_only(&web, &viewer) {
        return r;
    }
    if let Err(r) = viewer.check_csrf(&web, &f.csrf) {
        return r;
    }
    if viewer.user.role != Role::BankOperator {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::FORBIDDEN);
    }
    let Some(id) = parse_id(&id) else {
        return view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND);
    };
    let reason = f.reason.trim().to_owned();
    let status = MerchantStatus::parse(&f.status);
    let (Ok(status), true) = (
        status,
        !reason.is_empty() && reason.chars().count() <= REASON_CHARS_MAX,
    ) else {
        let msg = t(viewer.lang, "reason_required");
        return merchant_page(&web, &viewer, id, Some(msg), None, StatusCode::BAD_REQUEST).await;
    };
    let store = web.app.store.clone();
    let actor = format!("user:{}", viewer.user.username);
    let target = id.clone();
    // The same change and audit line as `POST /api/v1/merchants/{id}/status`.
    let done = tokio::task::spawn_blocking(move || -> Result<bool, store::StoreError> {
        if store.get_merchant(&target)?.is_none() {
            return Ok(false);
        }
        store.set_merchant_status(&target, status, &reason, &actor, Utc::now())?;
        store.append_audit(&NewAuditEvent {
            actor,
            action: "merchant_status".into(),
            target: Some(target.to_string()),
            detail: Some(format!("{} ({reason}) via web", status.as_str())),
            ip: None,
            at: Utc::now(),
        })?;
        Ok(true)
    })
    .await;
    match done {
        Ok(Ok(true)) => Redirect::to(&format!("/bank/merchants/{id}?changed=1")).into_response(),
        Ok(Ok(false)) => view::message(&web, viewer.lang, Some(&viewer), StatusCode::NOT_FOUND),
        Ok(Err(e)) => internal(&web, &viewer, e),
        Err(e) => internal(&web, &viewer, e),
    }
}

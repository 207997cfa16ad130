//! Terminal sync state from the POS front end: what terminals' batch uploads and reversals
//! found wrong (`GET /api/v1/terminals/discrepancies`), and the per-terminal counts the
//! terminals list shows under `sync` (items uploaded that the host lacked; approved items
//! still unsettled after 24 h).
//!
//! Scope as everywhere: merchant users see their merchant (staff: their terminals only), bank
//! operators and auditors see all; a merchant or terminal outside the caller's scope is 404.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::{Duration, Utc};
use domain::{MerchantId, Role, TerminalId};
use serde_json::{json, Value};
use store::{MerchantRepo, PosDiscrepancy, PosDiscrepancyKind, PosRepo, Scope, SqliteStore, Terminal};

use crate::caller::Caller;
use crate::dto::rfc3339_in;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Discrepancies per page when the caller names no limit.
const DISCREPANCIES_LIMIT_DEFAULT: u32 = 100;
/// How long an approved item may stay in an open batch before the terminal shows it.
const UNSETTLED_AGE_HOURS: i64 = 24;

/// Per terminal (merchant, terminal): (upload items missing at the host, unsettled > 24 h).
pub type SyncCounts = HashMap<(MerchantId, TerminalId), (u64, u64)>;

/// Terminal data is for merchant users and the bank's readers, not API keys or administrators.
fn require_terminal_reader(caller: &Caller) -> ApiResult<()> {
    if matches!(caller, Caller::ApiKey(_)) || caller.is_user_with(&[Role::Admin]) {
        return Err(ApiError::forbidden("this role cannot read terminal data"));
    }
    Ok(())
}

/// The sync counts of `terminals` (blocking; call inside `AppState::blocking`).
pub fn sync_counts(store: &SqliteStore, scope: &Scope, merchant_id: Option<&MerchantId>, terminals: &[Terminal]) -> ApiResult<SyncCounts> {
    let mut out = SyncCounts::new();
    for c in store.discrepancy_counts(scope, merchant_id)? {
        if c.kind == PosDiscrepancyKind::TerminalOnly {
            out.entry((c.merchant_id, c.terminal_id)).or_default().0 += c.count;
        }
    }
    let before = Utc::now() - Duration::hours(UNSETTLED_AGE_HOURS);
    for t in terminals.iter().filter(|t| scope.allows_terminal(Some(&t.id))) {
        if let Some(batch) = t.open_batch {
            let n = store.unsettled_older_than(&t.merchant_id, &t.id, batch, before)?;
            out.entry((t.merchant_id.clone(), t.id.clone())).or_default().1 = n;
        }
    }
    Ok(out)
}

/// Adds the counts to a terminal's JSON (`dto::terminal`) under `sync`.
pub fn with_counts(mut v: Value, counts: &SyncCounts, t: &Terminal) -> Value {
    let (missing, old) = counts.get(&(t.merchant_id.clone(), t.id.clone())).copied().unwrap_or_default();
    if let Some(sync) = v.get_mut("sync").and_then(Value::as_object_mut) {
        sync.insert("upload_items_missing_at_host".into(), json!(missing));
        sync.insert("unsettled_older_than_24h".into(), json!(old));
    }
    v
}

fn discrepancy(d: &PosDiscrepancy, tz: chrono_tz::Tz) -> Value {
    let c = &d.content;
    // For an item count mismatch the two numbers are counts, not amounts.
    let counts = c.kind == PosDiscrepancyKind::UploadCountDiffers;
    let (amounts, items) = if counts { ((None, None), (c.terminal_amount_fen, c.host_amount_fen)) } else { ((c.terminal_amount_fen, c.host_amount_fen), (None, None)) };
    json!({
        "id": d.id,
        "merchant_id": c.merchant_id.as_str(),
        "terminal_id": c.terminal_id.as_str(),
        "batch_no": format!("{:06}", c.batch_no),
        "stan": c.stan.map(|s| format!("{s:06}")),
        "kind": c.kind.as_str(),
        "terminal_amount": amounts.0,
        "host_amount": amounts.1,
        "terminal_items": items.0,
        "host_items": items.1,
        "card_bin": c.card_bin,
        "card_last4": c.card_last4,
        "txn_id": d.txn_id.as_ref().map(|i| i.as_str().to_owned()),
        "detail": c.detail,
        "recorded_at": rfc3339_in(c.recorded_at, tz),
    })
}

/// `GET /api/v1/terminals/discrepancies?merchant_id=&terminal_id=&limit=`, newest first.
pub async fn discrepancies(State(state): State<AppState>, caller: Caller, uri: axum::http::Uri) -> ApiResult<Json<Value>> {
    require_terminal_reader(&caller)?;
    let p = crate::params::Params::parse(uri.query(), &["merchant_id", "terminal_id", "limit"])?;
    let merchant_id = p.parse_one("merchant_id", |s| MerchantId::parse(s).map_err(|e| e.to_string()))?;
    let terminal_id = p.parse_one("terminal_id", |s| TerminalId::parse(s).map_err(|e| e.to_string()))?;
    let limit = p
        .parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1 to 500".to_owned()))?
        .unwrap_or(DISCREPANCIES_LIMIT_DEFAULT);
    let scope = caller.scope();
    crate::txns::require_visible(&scope, merchant_id.as_ref())?;
    if terminal_id.as_ref().is_some_and(|t| !scope.allows_terminal(Some(t))) {
        return Err(ApiError::not_found("terminal"));
    }
    let (list, zones) = state
        .blocking(move |store| {
            let list = store.list_discrepancies(&scope, merchant_id.as_ref(), terminal_id.as_ref(), limit)?;
            let zones = store.list_merchants(&scope)?;
            Ok((list, zones))
        })
        .await?;
    let tz_of = |m: &MerchantId| zones.iter().find(|z| &z.id == m).map(|z| z.clock.tz).unwrap_or(chrono_tz::Asia::Shanghai);
    let data: Vec<Value> = list.iter().map(|d| discrepancy(d, tz_of(&d.content.merchant_id))).collect();
    Ok(Json(json!({"data": data})))
}

/// Items of the merchant's terminals' batch uploads the host lacked (`terminal_only`), per
/// terminal, for diagnosis. The newest page of the merchant's discrepancies is read (blocking).
pub fn upload_items(store: &SqliteStore, scope: &Scope, merchant_id: &MerchantId) -> ApiResult<HashMap<TerminalId, Vec<diagnosis::UploadItem>>> {
    let mut out: HashMap<TerminalId, Vec<diagnosis::UploadItem>> = HashMap::new();
    for d in store.list_discrepancies(scope, Some(merchant_id), None, store::PAGE_LIMIT_MAX)? {
        let c = d.content;
        if c.kind != PosDiscrepancyKind::TerminalOnly {
            continue;
        }
        let (Ok(batch_no), Some(Ok(stan)), Some(Ok(amount))) = (
            domain::BatchNo::new(c.batch_no),
            c.stan.map(domain::Stan::new),
            c.terminal_amount_fen.map(domain::Amount::from_fen),
        ) else {
            continue;
        };
        out.entry(c.terminal_id).or_default().push(diagnosis::UploadItem { batch_no, stan, amount, uploaded_at: c.recorded_at });
    }
    Ok(out)
}

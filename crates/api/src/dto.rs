//! Hand-written JSON shapes of the API. Domain and store types do not know JSON; this module is
//! the one place that decides how they look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use store::{Merchant, SettlementDay, StatusSummary, Terminal, TxnRow, User};

pub fn rfc3339_in(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, false)
}

pub fn opt_str<T: ToString>(v: &Option<T>) -> Value {
    v.as_ref().map(|x| Value::String(x.to_string())).unwrap_or(Value::Null)
}

pub fn txn(row: &TxnRow) -> Value {
    let (zh, en) = row.response_code.meaning();
    json!({
        "id": row.id.as_str(),
        "merchant_id": row.merchant_id.as_str(),
        "terminal_id": opt_str(&row.terminal_id),
        "batch_no": opt_str(&row.batch_no),
        "stan": opt_str(&row.stan),
        "rrn": opt_str(&row.rrn),
        "auth_code": opt_str(&row.auth_code),
        "kind": row.kind.as_str(),
        "channel": row.channel.as_str(),
        "card": row.card.as_ref().map(|c| json!({"bin": c.bin, "last4": c.last4, "masked": c.masked})),
        "amount": row.amount.fen(),
        "currency": row.currency.as_str(),
        "response_code": row.response_code.as_str(),
        "response_message": {"zh": zh, "en": en},
        "status": row.status.as_str(),
        "txn_time": row.local_time.to_rfc3339_opts(SecondsFormat::Secs, false),
        "timezone": row.timezone,
        "settlement_date": row.settlement_date.to_string(),
        "original_id": row.original_id.as_ref().map(|i| i.as_str()),
        "reversal": row.reversal,
        "source": row.source.as_str(),
        "external_ref": row.external_ref,
    })
}

pub fn summary(items: &[StatusSummary]) -> Value {
    let mut by_status = serde_json::Map::new();
    let (mut count, mut amount) = (0u64, 0i64);
    for s in items {
        count += s.count;
        amount += s.amount_fen;
        by_status.insert(s.status.as_str().to_owned(), json!({"count": s.count, "amount": s.amount_fen}));
    }
    json!({"count": count, "amount": amount, "currency": "CNY", "by_status": by_status})
}

pub fn settlement_day(d: &SettlementDay) -> Value {
    json!({
        "settlement_date": d.settlement_date.to_string(),
        "record_count": d.record_count,
        "gross_count": d.gross_count,
        "gross": d.gross_fen,
        "refund_count": d.refund_count,
        "refunds": d.refund_fen,
        "net": d.net_fen,
        "declined_count": d.declined_count,
        "reversed_count": d.reversed_count,
        "voided_count": d.voided_count,
        "currency": "CNY",
    })
}

pub fn merchant(m: &Merchant) -> Value {
    json!({
        "merchant_id": m.id.as_str(),
        "name": {"zh": m.name_zh, "en": m.name_en},
        "mcc": m.mcc,
        "status": m.status.as_str(),
        "status_reason": m.status_reason,
        "status_since": rfc3339_in(m.status_since, m.clock.tz),
        "timezone": m.clock.tz.name(),
        "day_cutoff": m.clock.cutoff.to_string(),
        "single_txn_limit": m.single_txn_limit.map(|a| a.fen()),
    })
}

pub fn terminal(t: &Terminal, tz: Tz) -> Value {
    let at = |v: &Option<DateTime<Utc>>| v.map(|t| rfc3339_in(t, tz));
    json!({
        "terminal_id": t.id.as_str(),
        "merchant_id": t.merchant_id.as_str(),
        "status": t.status.as_str(),
        "has_master_key": t.master_key_hex.is_some(),
        "sync": {
            "open_batch": opt_str(&t.open_batch),
            "last_seen_at": at(&t.last_seen_at),
            "last_sign_on_at": at(&t.last_sign_on_at),
            "last_settlement_at": at(&t.last_settlement_at),
            "last_settlement_result": t.last_settlement_result,
        },
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "username": u.username,
        "role": u.role.as_str(),
        "merchant_id": u.merchant_id.as_ref().map(|m| m.as_str()),
        "terminals": u.terminals.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
    })
}

pub fn text(t: &diagnosis::Text) -> Value {
    json!({"zh": t.zh, "en": t.en})
}

/// A diagnosis finding: code, severity, message and next step in both languages, evidence in
/// the engine's order (when the map keeps order), and the user's own transaction ids.
pub fn finding(f: &diagnosis::Finding) -> Value {
    let mut evidence = serde_json::Map::new();
    for (k, v) in f.evidence.iter() {
        let v = match v {
            diagnosis::EvidenceValue::Text(s) => json!(s),
            diagnosis::EvidenceValue::Integer(n) => json!(n),
            diagnosis::EvidenceValue::Bool(b) => json!(b),
            diagnosis::EvidenceValue::List(l) => json!(l),
        };
        evidence.insert(k.to_owned(), v);
    }
    json!({
        "code": f.code.as_str(),
        "severity": f.severity.as_str(),
        "message": text(&f.message),
        "evidence": evidence,
        "next_step": text(&f.next_step),
        "transaction_ids": f.transaction_ids,
    })
}

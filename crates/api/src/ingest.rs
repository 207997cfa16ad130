//! JSON ingest objects → the store's plain [`IngestObject`]. Wrong JSON types are reported per
//! field here; value rules (lengths, enums, required-by-kind) are the store's `validate`.

use domain::Secret;
use serde_json::Value;
use store::IngestObject;

const FIELDS: &[&str] = &[
    "merchant_id", "terminal_id", "batch_no", "stan", "rrn", "auth_code", "kind", "channel", "pan", "card_masked",
    "amount", "currency", "response_code", "txn_time", "original", "reversal", "external_ref",
];

/// (field, message) pairs, every problem of the object at once.
pub type ShapeErrors = Vec<(String, String)>;

pub fn ingest_object(v: &Value) -> Result<IngestObject, ShapeErrors> {
    let mut errs: ShapeErrors = Vec::new();
    let Some(obj) = v.as_object() else {
        return Err(vec![("$".into(), "each item must be a JSON object".into())]);
    };
    for k in obj.keys() {
        if !FIELDS.contains(&k.as_str()) {
            errs.push((k.clone(), format!("unknown field; allowed: {}", FIELDS.join(", "))));
        }
    }
    let mut s = |name: &str| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(x)) => Some(x.clone()),
            Some(_) => {
                errs.push((name.to_owned(), "must be a string".into()));
                None
            }
        }
    };
    let mut o = IngestObject {
        merchant_id: s("merchant_id"),
        terminal_id: s("terminal_id"),
        batch_no: s("batch_no"),
        stan: s("stan"),
        rrn: s("rrn"),
        auth_code: s("auth_code"),
        kind: s("kind"),
        channel: s("channel"),
        pan: s("pan").map(Secret::new),
        card_masked: s("card_masked"),
        currency: s("currency"),
        response_code: s("response_code"),
        txn_time: s("txn_time"),
        external_ref: s("external_ref"),
        ..IngestObject::default()
    };
    match obj.get("amount") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) => o.amount_fen = Some(a),
            None => errs.push(("amount".into(), "must be an integer number of fen".into())),
        },
        Some(_) => errs.push(("amount".into(), "must be an integer number of fen".into())),
    }
    match obj.get("reversal") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => o.reversal = Some(*b),
        Some(_) => errs.push(("reversal".into(), "must be true or false".into())),
    }
    match obj.get("original") {
        None | Some(Value::Null) => {}
        Some(Value::Object(orig)) => {
            for (k, v) in orig {
                let slot = match k.as_str() {
                    "batch_no" => &mut o.original_batch_no,
                    "stan" => &mut o.original_stan,
                    "rrn" => &mut o.original_rrn,
                    _ => {
                        errs.push((format!("original.{k}"), "unknown field; allowed: batch_no, stan, rrn".into()));
                        continue;
                    }
                };
                match v {
                    Value::String(x) => *slot = Some(x.clone()),
                    Value::Null => {}
                    _ => errs.push((format!("original.{k}"), "must be a string".into())),
                }
            }
        }
        Some(_) => errs.push(("original".into(), "must be an object {batch_no, stan} or {rrn}".into())),
    }
    if errs.is_empty() { Ok(o) } else { Err(errs) }
}

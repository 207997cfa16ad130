//! Human-readable descriptions for debugging terminals (`poslens iso decode`) and for `Debug`:
//! every field with its name and value, card data masked (PAN first 6 + last 4, track data,
//! PIN block, IC data and keys never in clear).

use serde_json::{json, Map, Value};

use crate::error::DecodeError;
use crate::message::{Message, ENVELOPE_LEN};
use crate::spec::field_def;
use crate::subfields::{mask_pan, mask_track, Field60, Field61, SettlementTotals, UploadItems};
use crate::views::{Request, ViewError};

/// A field's value as shown to people: PAN masked, tracks masked, sensitive binary hidden,
/// other binary fields as hex.
pub fn display_value(m: &Message, field: u8) -> String {
    let Some(v) = m.get(field) else {
        return String::new();
    };
    let s = String::from_utf8_lossy(v);
    match field {
        2 => mask_pan(&s),
        35 | 36 => mask_track(&s),
        52 | 55 | 62 => format!("<{} bytes masked>", v.len()),
        _ => match field_def(field) {
            Some(d) if !d.format.is_text() => hex::encode_upper(v),
            _ => s.into_owned(),
        },
    }
}

/// Strips the 2-byte length prefix when it matches the rest of the input exactly; otherwise
/// the input is taken as a body.
pub fn strip_length_prefix(frame: &[u8]) -> &[u8] {
    match frame {
        [hi, lo, rest @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() => rest,
        _ => frame,
    }
}

/// Decodes a frame (with or without its 2-byte length prefix) into JSON for people:
///
/// ```json
/// { "length": 83, "tpdu": "6000030000", "header": "603100311301", "mti": "0200",
///   "bitmap": "7024048000C08010",
///   "fields": [ {"field": 2, "name": "...", "format": "n..19 LLVAR", "value": "622202*********4321"},
///               {"field": 60, ..., "subfields": {"60.1": "22", ...}} ],
///   "transaction": "purchase" }
/// ```
///
/// `transaction` is the section 3 transaction when the message is a valid request; otherwise
/// `request_error` says why not (with the response code it would get). Card data is masked.
pub fn decode_to_json_value(frame: &[u8]) -> Result<Value, DecodeError> {
    let body = strip_length_prefix(frame);
    let m = Message::decode(body)?;
    let mut v = message_json(&m);
    if let Value::Object(o) = &mut v {
        o.insert("length".into(), json!(body.len()));
        match Request::from_message(&m) {
            Ok(r) => {
                o.insert("transaction".into(), json!(r.kind().name()));
            }
            Err(ViewError::NotARequest(_)) => {}
            Err(e) => {
                o.insert(
                    "request_error".into(),
                    json!({"error": e.to_string(), "response_code": e.response_code()}),
                );
            }
        }
    }
    Ok(v)
}

/// Like [`decode_to_json_value`] but never fails: a malformed frame gives the fields that could
/// be read, the error, and what the host does (`"reply_30"` or `"close"`).
pub fn describe_frame(frame: &[u8]) -> Value {
    match decode_to_json_value(frame) {
        Ok(v) => v,
        Err(e) => {
            let body = strip_length_prefix(frame);
            let (partial, _) = Message::decode_lenient(body);
            let mut v = partial.as_ref().map(message_json).unwrap_or_else(
                || json!({"envelope": hex::encode_upper(&body[..body.len().min(ENVELOPE_LEN)])}),
            );
            if let Value::Object(o) = &mut v {
                o.insert("length".into(), json!(body.len()));
                o.insert("error".into(), json!(e.to_string()));
                let action = match partial.and_then(|p| p.format_error_reply()) {
                    Some(_) => "reply_30",
                    None => "close",
                };
                o.insert("host_action".into(), json!(action));
            }
            v
        }
    }
}

fn message_json(m: &Message) -> Value {
    let fields: Vec<Value> = m
        .field_numbers()
        .map(|n| {
            let mut f = Map::new();
            f.insert("field".into(), json!(n));
            if let Some(d) = field_def(n) {
                f.insert("name".into(), json!(d.name));
                f.insert("format".into(), json!(d.describe_format()));
            }
            f.insert("value".into(), json!(display_value(m, n)));
            if let Some(sub) = subfields_json(m, n) {
                f.insert("subfields".into(), sub);
            }
            Value::Object(f)
        })
        .collect();
    json!({
        "tpdu": hex::encode_upper(m.tpdu().to_bytes()),
        "header": hex::encode_upper(m.header().0),
        "mti": m.mti().to_string(),
        "bitmap": format!("{:016X}", m.bitmap()),
        "fields": fields,
    })
}

fn subfields_json(m: &Message, n: u8) -> Option<Value> {
    let s = m.get_str(n)?;
    match n {
        60 => {
            let f = Field60::parse(s).ok()?;
            let mut o = Map::new();
            o.insert("60.1".into(), json!(f.message_type));
            o.insert("60.2".into(), json!(format!("{:06}", f.batch)));
            o.insert("60.3".into(), json!(f.network_code));
            if let Some(d) = f.read_capability {
                o.insert("60.4".into(), json!(d.to_string()));
            }
            if let Some(d) = f.ic_condition {
                o.insert("60.5".into(), json!(d.to_string()));
            }
            if !f.reserved.is_empty() {
                o.insert("60.reserved".into(), json!(f.reserved));
            }
            Some(Value::Object(o))
        }
        61 => {
            let f = Field61::parse(s).ok()?;
            Some(json!({
                "61.1": format!("{:06}", f.original_batch),
                "61.2": format!("{:06}", f.original_stan),
                "61.3": f.original_date,
            }))
        }
        48 => {
            if let Ok(t) = SettlementTotals::parse(s) {
                let part = |t: &crate::subfields::Totals| {
                    json!({"debit_amount_fen": t.debit_amount_fen, "debit_count": t.debit_count,
                           "credit_amount_fen": t.credit_amount_fen, "credit_count": t.credit_count,
                           "result": t.result})
                };
                return Some(json!({"domestic": part(&t.domestic), "foreign": part(&t.foreign)}));
            }
            let items = UploadItems::parse(s).ok()?;
            let list: Vec<Value> = items
                .items
                .iter()
                .map(|i| {
                    json!({"card_scheme": i.card_scheme, "stan": format!("{:06}", i.stan),
                           "pan": i.pan.masked(), "amount_fen": i.amount_fen})
                })
                .collect();
            Some(json!({"items": list}))
        }
        _ => None,
    }
}

//! Shape validation of an ingest object (PRODUCT.md "Ingest object"). Pure: no database, no
//! clock. Whether merchants, terminals and originals exist is checked at ingest time.

use std::fmt;

use chrono::{DateTime, Utc};
use domain::{
    Amount, AuthCode, BatchNo, CardKey, CardSummary, Channel, Currency, MerchantId, Pan, ResponseCode, Rrn, Secret,
    Source, Stan, TerminalId, TxnKind,
};

use crate::model::{NewTxn, OriginalRef};

/// Longest accepted `external_ref` (channel order numbers are 32–64 characters).
pub const EXTERNAL_REF_LEN_MAX: usize = 64;

/// An ingest object as the edge parsed it, before any validation. Every field is optional so
/// that validation, not parsing, names what is missing. The clear PAN sits in a [`Secret`] so
/// that a `Debug` print of this struct cannot leak it.
#[derive(Debug, Clone, Default)]
pub struct IngestObject {
    pub merchant_id: Option<String>,
    pub terminal_id: Option<String>,
    pub batch_no: Option<String>,
    pub stan: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub pan: Option<Secret<String>>,
    pub card_masked: Option<String>,
    pub amount_fen: Option<i64>,
    pub currency: Option<String>,
    pub response_code: Option<String>,
    /// RFC 3339 with offset.
    pub txn_time: Option<String>,
    pub original_batch_no: Option<String>,
    pub original_stan: Option<String>,
    pub original_rrn: Option<String>,
    pub reversal: Option<bool>,
    pub external_ref: Option<String>,
}

/// One problem with one field. `message` never contains a card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Turns a raw object into a record ready to store, or lists every problem with it.
/// A clear PAN is reduced to BIN, last four, mask and keyed token here and dropped.
pub fn validate(raw: IngestObject, key: &CardKey, source: Source) -> Result<NewTxn, Vec<FieldError>> {
    let mut errs: Vec<FieldError> = Vec::new();
    let mut err = |field: &'static str, message: String| errs.push(FieldError { field, message });

    macro_rules! req {
        ($field:ident, $parse:expr) => {
            match present(&raw.$field) {
                None => {
                    err(stringify!($field), "is required".into());
                    None
                }
                Some(s) => match $parse(s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        err(stringify!($field), e.to_string());
                        None
                    }
                },
            }
        };
    }
    macro_rules! opt {
        ($field:ident, $name:literal, $parse:expr) => {
            match present(&raw.$field) {
                None => None,
                Some(s) => match $parse(s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        err($name, e.to_string());
                        None
                    }
                },
            }
        };
    }

    let merchant_id = req!(merchant_id, MerchantId::parse);
    let kind = req!(kind, TxnKind::parse);
    let channel = req!(channel, Channel::parse);
    let response_code = req!(response_code, ResponseCode::parse);
    let txn_time = req!(txn_time, |s: &str| DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("must be an RFC 3339 instant with offset, e.g. 2026-11-25T10:30:00+08:00, got {s:?}")));
    let terminal_id = opt!(terminal_id, "terminal_id", TerminalId::parse);
    let batch_no = opt!(batch_no, "batch_no", BatchNo::parse);
    let stan = opt!(stan, "stan", Stan::parse);
    let rrn = opt!(rrn, "rrn", Rrn::parse);
    let auth_code = opt!(auth_code, "auth_code", AuthCode::parse);
    let currency = match present(&raw.currency) {
        None => Some(Currency::CNY),
        Some(s) => match Currency::parse(s) {
            Ok(c) => Some(c),
            Err(e) => {
                err("currency", e.to_string());
                None
            }
        },
    };
    let amount = match raw.amount_fen {
        None => {
            err("amount", "is required (integer fen)".into());
            None
        }
        Some(n) => match Amount::from_fen(n) {
            Ok(a) => Some(a),
            Err(e) => {
                err("amount", e.to_string());
                None
            }
        },
    };
    let card = match (&raw.pan, present(&raw.card_masked)) {
        (Some(p), _) => match Pan::parse(p.expose()) {
            Ok(pan) => Some(pan.summary(key)),
            Err(e) => {
                err("pan", e.to_string());
                None
            }
        },
        (None, Some(m)) => match CardSummary::from_masked(m) {
            Ok(s) => Some(s),
            Err(e) => {
                err("card_masked", e.to_string());
                None
            }
        },
        (None, None) => None,
    };
    let external_ref = match present(&raw.external_ref) {
        None => None,
        Some(s) if s.len() > EXTERNAL_REF_LEN_MAX => {
            err("external_ref", format!("must be at most {EXTERNAL_REF_LEN_MAX} characters"));
            None
        }
        Some(s) if !s.bytes().all(|b| b.is_ascii_graphic()) => {
            err("external_ref", "may contain only printable ASCII without spaces".into());
            None
        }
        Some(s) => Some(s.to_owned()),
    };
    let original_batch = opt!(original_batch_no, "original.batch_no", BatchNo::parse);
    let original_stan = opt!(original_stan, "original.stan", Stan::parse);
    let original_rrn = opt!(original_rrn, "original.rrn", Rrn::parse);
    let original = match (original_batch, original_stan, original_rrn) {
        (Some(b), Some(s), _) => Some(OriginalRef::BatchStan { batch_no: b, stan: s }),
        (None, None, Some(r)) => Some(OriginalRef::Rrn(r)),
        (Some(_), None, _) => {
            err("original.stan", "is required with original.batch_no".into());
            None
        }
        (None, Some(_), _) => {
            err("original.batch_no", "is required with original.stan".into());
            None
        }
        (None, None, None) => None,
    };
    let reversal = raw.reversal.unwrap_or(false);
    let original_given =
        present(&raw.original_batch_no).is_some() || present(&raw.original_stan).is_some() || present(&raw.original_rrn).is_some();

    if let (Some(kind), Some(channel)) = (kind, channel) {
        if channel == Channel::Card {
            for (field, missing) in [
                ("terminal_id", present(&raw.terminal_id).is_none()),
                ("batch_no", present(&raw.batch_no).is_none()),
                ("stan", present(&raw.stan).is_none()),
            ] {
                if missing {
                    err(field, "is required for the card channel".into());
                }
            }
            let approved = response_code.is_some_and(|c| c.is_approved());
            if approved && !reversal {
                if present(&raw.rrn).is_none() {
                    err("rrn", "is required for an approved card transaction".into());
                }
                let needs_auth = matches!(kind, TxnKind::Purchase | TxnKind::Preauth | TxnKind::PreauthCompletion);
                if needs_auth && present(&raw.auth_code).is_none() {
                    err("auth_code", format!("is required for an approved {kind}"));
                }
            }
        } else if present(&raw.external_ref).is_none() {
            err("external_ref", format!("is required for the {channel} channel"));
        }
        if kind.needs_original() && !reversal && !original_given {
            err("original", format!("is required for a {kind} ({{batch_no, stan}} or {{rrn}})"));
        }
        if kind == TxnKind::BalanceInquiry && reversal {
            err("reversal", "a balance inquiry cannot be reversed".into());
        }
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    match (merchant_id, kind, channel, response_code, txn_time, currency, amount) {
        (Some(merchant_id), Some(kind), Some(channel), Some(response_code), Some(txn_time), Some(currency), Some(amount)) => {
            Ok(NewTxn {
                merchant_id,
                terminal_id,
                batch_no,
                stan,
                rrn,
                auth_code,
                kind,
                channel,
                card,
                amount,
                currency,
                response_code,
                txn_time,
                original,
                reversal,
                source,
                external_ref,
            })
        }
        // Every None above pushed an error, so this arm is unreachable in practice; answer
        // with an error rather than panic all the same.
        _ => Err(vec![FieldError { field: "object", message: "incomplete".into() }]),
    }
}

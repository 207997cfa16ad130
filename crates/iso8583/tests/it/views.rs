//! Typed views: every request vector parses into its transaction and builds back into the
//! same message; every reply vector is what `build_reply` makes from its request.

use iso8583::{
    build_reply, FinancialKind, Message, ReplyData, Request, TransactionKind, UploadContent,
    ViewError,
};
use serde_json::Value;

use crate::support::{all_vectors, message_of};

fn expected_kind(file: &str, name: &str) -> Option<TransactionKind> {
    use FinancialKind::*;
    use TransactionKind as T;
    Some(match file {
        "signon.json" => T::SignOn,
        "signoff.json" => T::SignOff,
        "echo.json" => T::EchoTest,
        "balance_inquiry.json" => T::Financial(BalanceInquiry),
        "purchase.json" | "unsupported.json" => T::Financial(Purchase),
        "void.json" => T::Financial(PurchaseVoid),
        "refund.json" => T::Financial(Refund),
        "preauth.json" => T::Financial(PreAuth),
        "preauth_void.json" => T::Financial(PreAuthVoid),
        "preauth_completion.json" => T::Financial(PreAuthCompletion),
        "completion_void.json" => T::Financial(CompletionVoid),
        "reversal.json" if name.contains("void") => T::Reversal(PurchaseVoid),
        "reversal.json" => T::Reversal(Purchase),
        "mac.json" if name.starts_with("0400") => T::Reversal(Purchase),
        "mac.json" => T::Financial(Purchase),
        "settlement.json" => T::BatchSettlement,
        "batch_upload.json" if name.contains("end") => T::BatchUploadEnd,
        "batch_upload.json" => T::BatchUpload,
        _ => return None,
    })
}

#[test]
fn every_request_vector_is_its_transaction_and_round_trips() {
    let mut seen = std::collections::HashSet::new();
    for (file, v) in all_vectors() {
        if v["role"] != "request" {
            continue;
        }
        let name = v["name"].as_str().unwrap();
        let m = message_of(&v);
        match (
            Request::from_message(&m),
            v.get("expected_reply_code").and_then(Value::as_str),
        ) {
            (Err(e @ ViewError::Unsupported(_)), Some("40")) => {
                assert_eq!(e.response_code(), Some("40"));
                continue;
            }
            (Ok(r), None) => {
                assert_eq!(Some(r.kind()), expected_kind(&file, name), "{file}/{name}");
                seen.insert(r.kind());
                let back = r.to_message(m.envelope()).unwrap();
                assert_eq!(back, m, "{file}/{name}: view -> message");
                assert_eq!(Request::from_message(&back).unwrap(), r);
            }
            (got, want) => panic!("{file}/{name}: got {got:?}, expected code {want:?}"),
        }
    }
    // Every transaction of section 3 is covered by some vector.
    assert!(seen.len() >= 14, "covered: {seen:?}");
}

#[test]
fn view_values() {
    let v = crate::support::load("batch_upload.json");
    let m = message_of(&v["vectors"][0]);
    let Request::BatchUpload(u) = Request::from_message(&m).unwrap() else {
        panic!()
    };
    let UploadContent::Items(items) = &u.content else {
        panic!()
    };
    assert_eq!(items.items.len(), 8);
    assert_eq!(items.items[0].stan, 8);
    assert_eq!(items.items[0].pan.expose(), "6222020123456784321");
    assert_eq!(items.items[0].amount_fen, 100);
    assert_eq!(u.context.batch, 1);
    assert_eq!(u.context.network_code, "201");

    let v = crate::support::load("void.json");
    let m = message_of(&v["vectors"][0]);
    let Request::Financial(f) = Request::from_message(&m).unwrap() else {
        panic!()
    };
    let o = f.original.unwrap();
    assert_eq!(
        (o.original_batch, o.original_stan, o.original_date.as_str()),
        (1, 8, "1125")
    );
    assert_eq!(f.amount_fen, Some(12345));
    assert_eq!(f.terminal_id, "10000001");
    assert!(format!("{:?}", f.pan).contains("622202*********4321"));
}

fn with_field(m: &Message, f: u8, v: &str) -> Message {
    let mut m = m.clone();
    m.set(f, v).unwrap();
    m
}

#[test]
fn format_errors_name_the_field_before_unsupported_combinations() {
    let v = crate::support::load("purchase.json");
    let purchase = message_of(&v["vectors"][0]);
    let check = |m: &Message, want: ViewError| {
        assert_eq!(Request::from_message(m).unwrap_err(), want);
    };
    let mut no60 = purchase.clone();
    no60.remove(60);
    check(&no60, ViewError::Missing { field: 60 });
    let mut no4 = purchase.clone();
    no4.remove(4);
    check(&no4, ViewError::Missing { field: 4 });
    let mut manual_no14 = purchase.clone();
    manual_no14.remove(14);
    check(&manual_no14, ViewError::Missing { field: 14 });
    let mut no_card = purchase.clone();
    no_card.remove(2);
    check(&no_card, ViewError::Missing { field: 2 });
    // 60.3 != 000 is a format error even with an unsupported processing code.
    let m = with_field(&with_field(&purchase, 3, "400000"), 60, "22000001003");
    assert!(Request::from_message(&m).unwrap_err().is_format_error());
    assert!(matches!(
        Request::from_message(&with_field(&purchase, 25, "06")),
        Err(ViewError::Unsupported(_))
    ));
    let mut as_0100 = purchase.clone();
    as_0100.set_mti(iso8583::Mti::AUTH_REQUEST);
    assert!(matches!(
        Request::from_message(&as_0100),
        Err(ViewError::Unsupported(_))
    ));
    let mut reply = purchase.clone();
    reply.set_mti(iso8583::Mti::FINANCIAL_RESPONSE);
    assert_eq!(
        Request::from_message(&reply).unwrap_err().response_code(),
        None
    );
}

/// The request a reply vector answers: same file, request MTI, same 11 and echoed fields.
fn request_for<'a>(file: &str, reply: &Value, all: &'a [(String, Value)]) -> Option<&'a Value> {
    let rf = reply["fields"].as_object().unwrap();
    all.iter()
        .filter(|(f, v)| f == file && v["role"] == "request")
        .map(|(_, v)| v)
        .find(|req| {
            let q = req["fields"].as_object().unwrap();
            let reply_mti: u16 = reply["mti"].as_str().unwrap().parse().unwrap();
            let req_mti: u16 = req["mti"].as_str().unwrap().parse().unwrap();
            req_mti + 10 == reply_mti
                && q.get("11") == rf.get("11")
                && [2, 3, 4, 41]
                    .iter()
                    .all(|f| q.get(&f.to_string()) == rf.get(&f.to_string()))
        })
}

#[test]
fn every_reply_vector_is_built_from_its_request() {
    let all = all_vectors();
    let mut built = 0;
    for (file, v) in &all {
        if v["role"] != "response" {
            continue;
        }
        let Some(req) = request_for(file, v, &all) else {
            continue;
        };
        let name = v["name"].as_str().unwrap();
        let request = message_of(req);
        let want = message_of(v);
        let s = |f: u8| want.get_str(f).map(str::to_owned);
        let data = ReplyData {
            response_code: s(39).unwrap(),
            local_time: s(12).unwrap(),
            local_date: s(13).unwrap(),
            settlement_date: s(15).or(Some("1125".into())),
            acquirer_id: s(32).unwrap(),
            rrn: s(37),
            auth_code: s(38),
            context: s(60).filter(|c| Some(c.as_str()) != request.get_str(60)),
            additional_data: s(48).filter(|c| Some(c.as_str()) != request.get_str(48)),
            working_keys: want.get(62).map(<[u8]>::to_vec),
        };
        let mut got = build_reply(&request, &data).unwrap();
        if let Some(mac) = want.get(64) {
            got.set(64, mac).unwrap();
        }
        assert_eq!(got, want, "{file}/{name}");
        built += 1;
    }
    assert!(
        built >= 20,
        "only {built} replies paired with their requests"
    );
}

//! Every case of malformed.json gets the behaviour it names, driven through the same path the
//! front end uses: frame decoder, then decode, then the typed view, then the `30` reply.

use iso8583::{
    format_error_reply_for_body, FrameDecoder, FrameError, FrameStatus, Message, Request,
};
use serde_json::Value;

use crate::support::{load, text_fields};

/// What the host does with one connection's bytes, as far as the codec decides it.
#[derive(Debug)]
enum Action {
    Reply30(Box<Message>),
    Close,
    /// The frame never completed.
    WaitForMore,
    Accepted,
}

fn host_action(wire: &[u8]) -> Action {
    let mut dec = FrameDecoder::new();
    // Feed byte by byte: the decision must not depend on how reads split the stream.
    let mut body = None;
    for b in wire {
        dec.push(std::slice::from_ref(b));
        match dec.next_frame() {
            Err(FrameError::LengthOutOfRange { .. }) => return Action::Close,
            Ok(FrameStatus::Frame(f)) => {
                body = Some(f);
                break;
            }
            Ok(FrameStatus::NeedMore { .. }) => {}
        }
    }
    let Some(body) = body else {
        return Action::WaitForMore;
    };
    match Message::decode(&body) {
        Err(_) => match format_error_reply_for_body(&body) {
            Some(r) => Action::Reply30(Box::new(r)),
            None => Action::Close,
        },
        Ok(m) => match Request::from_message(&m) {
            Ok(_) => Action::Accepted,
            Err(e) if e.is_format_error() => match m.format_error_reply() {
                Some(r) => Action::Reply30(Box::new(r)),
                None => Action::Close,
            },
            Err(_) => Action::Accepted,
        },
    }
}

fn check(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let wire = hex::decode(v["wire_hex"].as_str().unwrap()).unwrap();
    let expected = &v["expected"];
    let action = host_action(&wire);
    match (expected["action"].as_str().unwrap(), &action) {
        ("close", Action::Close) => {}
        ("close_after_frame_timeout", Action::WaitForMore) => {}
        ("reply_30", Action::Reply30(reply)) => {
            assert_eq!(
                reply.mti().to_string(),
                expected["reply_mti"].as_str().unwrap(),
                "{name}"
            );
            let fields = text_fields(reply);
            for (k, want) in expected["reply_fields"].as_object().unwrap() {
                let f: u8 = k.parse().unwrap();
                assert_eq!(
                    fields.get(&f).map(String::as_str),
                    want.as_str(),
                    "{name} field {f}"
                );
            }
            let optional: Vec<u8> = expected["reply_optional_fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().parse().unwrap())
                .collect();
            for f in fields.keys() {
                assert!(
                    expected["reply_fields"].get(f.to_string()).is_some() || optional.contains(f),
                    "{name}: unexpected field {f} in the reply"
                );
            }
            assert!(!reply.has(64), "{name}: 64 in a 30 reply");
            // The example reply's envelope: TPDU swapped (id 0x60), header byte 2 = 0x00.
            let example = hex::decode(v["example_reply_wire_hex"].as_str().unwrap()).unwrap();
            let example = Message::decode(&example[2..]).unwrap();
            assert_eq!(reply.envelope(), example.envelope(), "{name}: envelope");
            let frame = reply.to_frame().unwrap();
            assert!(
                Message::decode(&frame[2..]).is_ok(),
                "{name}: reply re-decodes"
            );
        }
        (want, got) => panic!("{name}: expected {want}, got {got:?}"),
    }
    assert_eq!(expected["recorded"], false);
}

#[test]
fn every_malformed_case_gets_its_behaviour() {
    let file = load("malformed.json");
    let cases = file["vectors"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for v in cases {
        check(v);
    }
}

#[test]
fn length_prefix_out_of_range_closes_before_the_body() {
    for prefix in [[0x05, 0xDC], [0x04, 0x01], [0x00, 0x14], [0x00, 0x00]] {
        let mut dec = FrameDecoder::new();
        dec.push(&prefix);
        assert!(dec.next_frame().is_err(), "{prefix:02X?}");
        // Stays failed: nothing after a bad prefix is framed.
        dec.push(&[0u8; 64]);
        assert!(dec.next_frame().is_err());
    }
}

#[test]
fn format_error_reply_carries_41_and_42_when_read() {
    let file = load("malformed.json");
    let case = file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "bcd_nibble_gt_9_field4")
        .unwrap();
    let wire = hex::decode(case["wire_hex"].as_str().unwrap()).unwrap();
    let reply = format_error_reply_for_body(&wire[2..]).unwrap();
    let example = hex::decode(case["example_reply_wire_hex"].as_str().unwrap()).unwrap();
    assert_eq!(reply.to_frame().unwrap(), example);
}

#[test]
fn secondary_bitmap_is_a_format_error_that_still_reaches_field_11() {
    let v = load("purchase.json");
    let purchase = crate::support::message_of(&v["vectors"][0]);
    let mut body = purchase.encode();
    body[13] |= 0x80;
    body.splice(21..21, [0u8; 8]);
    assert!(matches!(
        Message::decode(&body),
        Err(iso8583::DecodeError::SecondaryBitmap)
    ));
    let reply = format_error_reply_for_body(&body).expect("30 reply");
    assert_eq!(reply.get_str(39), Some("30"));
    assert_eq!(reply.get_str(11), purchase.get_str(11));
}

#[test]
fn trailing_bytes_are_a_format_error() {
    let v = load("purchase.json");
    let mut body = crate::support::message_of(&v["vectors"][0]).encode();
    body.push(0);
    assert!(matches!(
        Message::decode(&body),
        Err(iso8583::DecodeError::TrailingBytes(1))
    ));
    assert!(format_error_reply_for_body(&body).is_some());
}

//! Outside bytes through everything the front end runs on them: the frame decoder (with the
//! input split in two reads), strict and lenient decode, the `30` reply, typed views, replies,
//! MAC and the description. Decoded messages must re-encode to the same bytes.
#![no_main]

use iso8583::{
    build_reply, describe_frame, format_error_reply_for_body, FrameDecoder, FrameStatus, Key16,
    Message, ReplyData, Request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1);
    let mut dec = FrameDecoder::new();
    dec.push(&data[..split]);
    let _ = dec.next_frame();
    dec.push(&data[split..]);
    while let Ok(FrameStatus::Frame(body)) = dec.next_frame() {
        run_body(&body);
    }
    run_body(data);
});

fn run_body(body: &[u8]) {
    let _ = describe_frame(body);
    match Message::decode(body) {
        Ok(m) => {
            assert_eq!(m.encode(), body, "decoded message re-encodes to other bytes");
            let again = Message::decode(&m.encode()).expect("re-decode");
            assert_eq!(again, m);
            let _ = format!("{m:?}");
            if let Ok(r) = Request::from_message(&m) {
                let back = r.to_message(m.envelope()).expect("view builds back");
                let r2 = Request::from_message(&back).expect("built view re-parses");
                assert_eq!(r2, r);
            }
            let _ = m.format_error_reply();
            let data = ReplyData {
                response_code: "00".into(),
                local_time: "101531".into(),
                local_date: "1125".into(),
                settlement_date: Some("1125".into()),
                acquirer_id: "48021000".into(),
                rrn: Some("251125000001".into()),
                auth_code: Some("123456".into()),
                ..ReplyData::default()
            };
            if let Ok(reply) = build_reply(&m, &data) {
                let _ = reply.to_frame();
            }
            let key = Key16::new([0x5a; 16]);
            let _ = iso8583::mac::verify(&m, &key);
        }
        Err(_) => {
            let _ = format_error_reply_for_body(body);
        }
    }
}

//! Properties: decode(encode(m)) = m for generated messages; decoding, framing, describing and
//! viewing never panic on arbitrary bytes.

use iso8583::spec::FIELDS;
use iso8583::{Envelope, FrameDecoder, FrameStatus, Message, Mti, Request};
use proptest::prelude::*;
use rand::SeedableRng;

use crate::support::random_value;

fn arb_message() -> impl Strategy<Value = Message> {
    (any::<[u8; 11]>(), 0u16..=9999, any::<u32>(), any::<u64>()).prop_map(
        |(env, mti, mask, seed)| {
            let mut env = Envelope::from_bytes(env);
            env.tpdu.id = 0x60;
            let mut m = Message::new(env, Mti::new(mti).unwrap());
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for (i, def) in FIELDS.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    m.set(def.number, random_value(&mut rng, def.number))
                        .unwrap();
                }
            }
            m
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip(m in arb_message()) {
        let body = m.encode();
        let back = Message::decode(&body).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode(), body);
    }

    #[test]
    fn frames_survive_any_split(m in arb_message(), cut in 0usize..2000) {
        let body = m.encode();
        prop_assume!(body.len() <= iso8583::FRAME_LEN_MAX);
        let frame = m.to_frame().unwrap();
        let cut = cut % frame.len();
        let mut dec = FrameDecoder::new();
        dec.push(&frame[..cut]);
        let first = matches!(dec.next_frame().unwrap(), FrameStatus::NeedMore { .. });
        prop_assert!(first);
        dec.push(&frame[cut..]);
        prop_assert_eq!(dec.next_frame().unwrap(), FrameStatus::Frame(body));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_no_panic(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(m in arb_message(), flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8)) {
        let mut body = m.encode();
        for (pos, b) in flips {
            let i = pos as usize % body.len();
            body[i] ^= b;
        }
        check_no_panic(&body);
    }
}

fn check_no_panic(body: &[u8]) {
    if let Ok(m) = Message::decode(body) {
        assert_eq!(m.encode(), body, "canonical re-encoding");
        let _ = Request::from_message(&m);
        let _ = m.format_error_reply();
        let _ = format!("{m:?}");
    }
    let _ = Message::decode_lenient(body);
    let _ = iso8583::format_error_reply_for_body(body);
    let _ = iso8583::describe_frame(body);
    let mut dec = FrameDecoder::new();
    dec.push(body);
    while let Ok(FrameStatus::Frame(_)) = dec.next_frame() {}
}

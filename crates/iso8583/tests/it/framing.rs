//! The frame decoder under arbitrary read splits and pipelining.

use iso8583::{FrameDecoder, FrameStatus, Message};

use crate::support::{all_vectors, wire};

#[test]
fn pipelined_frames_split_at_every_offset() {
    let vectors = all_vectors();
    let frames: Vec<Vec<u8>> = vectors.iter().take(6).map(|(_, v)| wire(v)).collect();
    let stream: Vec<u8> = frames.concat();
    for chunk in [1, 2, 3, 7, 13, 64, 1000] {
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            dec.push(piece);
            while let FrameStatus::Frame(body) = dec.next_frame().unwrap() {
                got.push(body);
            }
        }
        assert!(!dec.is_mid_frame());
        let want: Vec<Vec<u8>> = frames.iter().map(|f| f[2..].to_vec()).collect();
        assert_eq!(got, want, "chunk {chunk}");
    }
}

#[test]
fn need_more_counts_the_missing_bytes() {
    let (_, v) = &all_vectors()[0];
    let w = wire(v);
    let mut dec = FrameDecoder::new();
    assert_eq!(
        dec.next_frame().unwrap(),
        FrameStatus::NeedMore { needed: 2 }
    );
    dec.push(&w[..1]);
    assert_eq!(
        dec.next_frame().unwrap(),
        FrameStatus::NeedMore { needed: 1 }
    );
    assert!(dec.is_mid_frame());
    dec.push(&w[1..10]);
    assert_eq!(
        dec.next_frame().unwrap(),
        FrameStatus::NeedMore {
            needed: w.len() - 10
        }
    );
    dec.push(&w[10..]);
    let FrameStatus::Frame(body) = dec.next_frame().unwrap() else {
        panic!("no frame")
    };
    assert!(Message::decode(&body).is_ok());
}

#[test]
fn limits_are_inclusive() {
    for (len, ok) in [(20usize, false), (21, true), (1024, true), (1025, false)] {
        let mut dec = FrameDecoder::new();
        dec.push(&(len as u16).to_be_bytes());
        assert_eq!(dec.next_frame().is_ok(), ok, "{len}");
    }
}

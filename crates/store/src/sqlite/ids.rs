//! Transaction ids: 128 bits = receive time in ms (48) | chain sequence (80), written as 26
//! Crockford base32 characters. Time-ordered like a ULID, and decodable to the row's
//! sequence number so lookups need no extra index.

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub(crate) const ID_LEN: usize = 26;

pub(crate) fn encode(received_ms: i64, seq: i64) -> String {
    let mut out = [0u8; ID_LEN];
    encode_into(received_ms, seq, &mut out);
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// [`encode`] into a buffer (ASCII).
pub(crate) fn encode_into(received_ms: i64, seq: i64, out: &mut [u8; ID_LEN]) {
    let v: u128 = ((received_ms as u128 & 0xFFFF_FFFF_FFFF) << 80) | (seq as u128 & ((1u128 << 80) - 1));
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (ID_LEN - 1 - i);
        *slot = ALPHABET[((v >> shift) & 31) as usize];
    }
}

/// `(received_ms, seq)`, or `None` for anything that is not a well-formed id.
pub(crate) fn decode(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() != ID_LEN {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        let d = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u128;
        if i == 0 && d > 7 {
            return None;
        }
        v = (v << 5) | d;
    }
    let ms = (v >> 80) as i64;
    let seq = (v & ((1u128 << 80) - 1)) as u64;
    if seq == 0 || seq > i64::MAX as u64 {
        return None;
    }
    Some((ms, seq as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let a = encode(1_764_000_000_000, 1);
        let b = encode(1_764_000_000_000, 2);
        let c = encode(1_764_000_000_001, 1);
        assert!(a < b && b < c);
        assert_eq!(decode(&a), Some((1_764_000_000_000, 1)));
        assert_eq!(decode(&b.to_ascii_lowercase()), Some((1_764_000_000_000, 2)));
        assert_eq!(decode("not-an-id"), None);
        assert_eq!(decode(&"Z".repeat(26)), None);
    }
}

//! Keyset cursors. A cursor carries the snapshot (`as_of`), the store's position, and a
//! fingerprint of the query that minted it, sealed with an HMAC under the server's secret: a
//! client can neither forge a position nor reuse a cursor with different filters, and a cursor
//! reveals nothing it was not already shown.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const TAG_BYTES: usize = 16;
/// A cursor longer than this is garbage, not a cursor.
pub const CURSOR_CHARS_MAX: usize = 512;

#[derive(Clone)]
pub struct CursorKey([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub as_of: i64,
    /// The store's opaque position (after this row).
    pub position: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CursorError {
    Garbage,
    OtherQuery,
}

impl CursorError {
    pub fn message(&self) -> &'static str {
        match self {
            CursorError::Garbage => "cursor is not one this server issued; start again without a cursor",
            CursorError::OtherQuery => "cursor belongs to a different query; keep every filter the same while paging, or start again without a cursor",
        }
    }
}

/// A stable digest of the parts of a query that define its result set.
pub fn fingerprint(parts: &[(&str, String)]) -> [u8; 8] {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    let d = h.finalize();
    d[..8].try_into().expect("sha256 has 32 bytes")
}

impl CursorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        CursorKey(bytes)
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(body);
        mac.finalize().into_bytes()[..TAG_BYTES].try_into().expect("32 >= 16")
    }

    pub fn seal(&self, cursor: &Cursor, query_fp: [u8; 8]) -> String {
        let mut body = Vec::with_capacity(16 + cursor.position.len());
        body.extend_from_slice(&query_fp);
        body.extend_from_slice(&cursor.as_of.to_be_bytes());
        body.extend_from_slice(cursor.position.as_bytes());
        let tag = self.tag(&body);
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    pub fn open(&self, text: &str, query_fp: [u8; 8]) -> Result<Cursor, CursorError> {
        if text.len() > CURSOR_CHARS_MAX {
            return Err(CursorError::Garbage);
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Garbage)?;
        if raw.len() < 16 + TAG_BYTES {
            return Err(CursorError::Garbage);
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_BYTES);
        let expect = self.tag(body);
        // Constant-time comparison of the tag.
        let diff = expect.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(CursorError::Garbage);
        }
        if body[..8] != query_fp {
            return Err(CursorError::OtherQuery);
        }
        let as_of = i64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
        let position = String::from_utf8(body[16..].to_vec()).map_err(|_| CursorError::Garbage)?;
        Ok(Cursor { as_of, position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cursors_open_only_for_their_query() {
        let key = CursorKey::new([9; 32]);
        let fp = fingerprint(&[("merchant_id", "898310048990001".into())]);
        let other = fingerprint(&[("merchant_id", "898310048990002".into())]);
        let c = Cursor { as_of: 42, position: "1700000000000000:tx_abc".into() };
        let s = key.seal(&c, fp);
        assert_eq!(key.open(&s, fp), Ok(c));
        assert_eq!(key.open(&s, other), Err(CursorError::OtherQuery));
        assert_eq!(key.open("garbage!!", fp), Err(CursorError::Garbage));
        let mut tampered = s.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(std::str::from_utf8(&tampered).unwrap(), fp), Err(CursorError::Garbage));
        assert_eq!(CursorKey::new([1; 32]).open(&key.seal(&Cursor { as_of: 1, position: String::new() }, fp), fp), Err(CursorError::Garbage));
    }
}

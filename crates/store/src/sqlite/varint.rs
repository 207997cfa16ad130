//! The byte encoding the compact chunks share (run items, clearing rows): LEB128 varints,
//! zigzag for signed numbers, text as a varint length and its bytes. Reading never panics: a
//! short or malformed buffer gives `None`, which each chunk kind reports as its own corruption.

pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_text(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over an encoded buffer.
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, at: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.at >= self.data.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len())?;
        let s = &self.data[self.at..end];
        self.at = end;
        Some(s)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        let v = self.u64()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length-prefixed field's bytes, unchecked (for ASCII ids and words parsed from bytes).
    pub(crate) fn field(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }

    pub(crate) fn text(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.u64()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// A chunk being decoded: every read that fails is the chunk kind's corruption error, naming
/// the chunk's data column, or the column being read.
pub(crate) struct ChunkReader<'a> {
    pub(crate) bytes: Bytes<'a>,
    data: &'static str,
    bad: fn(&'static str) -> crate::error::StoreError,
}

type ReadResult<T> = Result<T, crate::error::StoreError>;

impl<'a> ChunkReader<'a> {
    /// `data_column` names the blob; `bad` makes the chunk kind's corruption error.
    pub(crate) fn new(data: &'a [u8], data_column: &'static str, bad: fn(&'static str) -> crate::error::StoreError) -> ChunkReader<'a> {
        ChunkReader { bytes: Bytes::new(data), data: data_column, bad }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.bytes.at_end()
    }

    pub(crate) fn take(&mut self, n: usize) -> ReadResult<&'a [u8]> {
        self.bytes.take(n).ok_or_else(|| (self.bad)(self.data))
    }

    pub(crate) fn presence(&mut self) -> ReadResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u64(&mut self) -> ReadResult<u64> {
        self.bytes.u64().ok_or_else(|| (self.bad)(self.data))
    }

    pub(crate) fn i64(&mut self) -> ReadResult<i64> {
        self.bytes.i64().ok_or_else(|| (self.bad)(self.data))
    }

    pub(crate) fn u32(&mut self, column: &'static str) -> ReadResult<u32> {
        u32::try_from(self.u64()?).map_err(|_| (self.bad)(column))
    }

    pub(crate) fn text(&mut self, column: &'static str) -> ReadResult<&'a str> {
        self.bytes.text().ok_or_else(|| (self.bad)(column))
    }

    /// A length-prefixed field's bytes, unchecked.
    pub(crate) fn field(&mut self, column: &'static str) -> ReadResult<&'a [u8]> {
        self.bytes.field().ok_or_else(|| (self.bad)(column))
    }

    /// A field parsed from its bytes (ids, words, codes) without a UTF-8 check.
    pub(crate) fn word<T>(&mut self, column: &'static str, parse: impl Fn(&[u8]) -> Option<T>) -> ReadResult<T> {
        let b = self.field(column)?;
        parse(b).ok_or_else(|| crate::error::StoreError::Corrupt { column, value: String::from_utf8_lossy(b).into_owned() })
    }

    /// A card as its BIN and last four digits (10 ASCII digits).
    pub(crate) fn card(&mut self, column: &'static str) -> ReadResult<recon::MaskedCard> {
        let b = self.take(10)?;
        let s = std::str::from_utf8(b).map_err(|_| (self.bad)(column))?;
        s.get(..6).zip(s.get(6..)).and_then(|(b, l)| recon::MaskedCard::new(b, l)).ok_or_else(|| (self.bad)(column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_round_trip_and_short_buffers_are_none() {
        let values = [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN];
        let mut out = Vec::new();
        for v in values {
            put_i64(&mut out, v);
        }
        let numbers_end = out.len();
        put_u64(&mut out, u64::MAX);
        put_text(&mut out, "商户 42");
        let mut b = Bytes::new(&out);
        for v in values {
            assert_eq!(b.i64(), Some(v));
        }
        assert_eq!(b.u64(), Some(u64::MAX));
        assert_eq!(b.text(), Some("商户 42"));
        assert!(b.at_end());
        // A cut buffer gives a prefix of the numbers, then `None`.
        for cut in 0..numbers_end {
            let mut b = Bytes::new(&out[..cut]);
            let got: Vec<i64> = std::iter::from_fn(|| b.i64()).collect();
            assert!(got.len() < values.len() && got == values[..got.len()], "cut at {cut}");
        }
        assert_eq!(Bytes::new(&out[numbers_end..out.len() - 1]).u64().and(None::<u8>), None);
        assert_eq!(Bytes::new(&[0xff; 11]).u64(), None);
    }
}

//! The byte encoding the compact chunks share (run items, clearing rows): LEB128 varints,
//! zigzag for signed numbers, text as a varint length and its bytes. Reading never panics: a
//! short or malformed buffer gives `None`, which each chunk kind reports as its own corruption.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::txn::IdHasher;

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

/// The first two bytes of a chunk in the second format (ids numbered within the chunk, words
/// as codes, numeric ids as numbers). A first-format chunk begins with its first row's presence
/// bits, whose top bit is never set, so the two are told apart by these bytes alone.
pub(crate) const FORMAT_2: [u8; 2] = [0x02, 0x80];

/// An id as a number within its chunk: `0` and the id's text the first time, then its position
/// among the chunk's distinct ids plus one. A repeated merchant or terminal costs one byte
/// instead of its text, and a reader validates each distinct id once.
#[derive(Default)]
pub(crate) struct IdNumbers {
    numbers: HashMap<Vec<u8>, u32, BuildHasherDefault<IdHasher>>,
}

impl IdNumbers {
    pub(crate) fn put(&mut self, out: &mut Vec<u8>, id: &[u8]) {
        if let Some(&n) = self.numbers.get(id) {
            put_u64(out, u64::from(n) + 1);
            return;
        }
        let n = self.numbers.len() as u32;
        self.numbers.insert(id.to_vec(), n);
        put_u64(out, 0);
        put_u64(out, id.len() as u64);
        out.extend_from_slice(id);
    }
}

/// A row's presence bits: the bit of each field present.
pub(crate) fn presence_of(fields: &[(u16, bool)]) -> u16 {
    fields.iter().filter(|(_, present)| *present).fold(0, |p, (bit, _)| p | bit)
}

/// A word's one-byte code: its index in the type's list of values (`ALL`, fewer than 256).
/// The order of `ALL` is therefore stored: values are only ever added at its end.
pub(crate) fn code_of<T: PartialEq>(all: &[T], v: T) -> u8 {
    // Every value is in its type's `ALL` (the enum macro builds both).
    all.iter().position(|x| *x == v).unwrap_or(0) as u8
}

/// Ids of digits only (RRNs, authorization codes) as numbers: `(value * 32 + length) * 2`, so
/// leading zeros survive; anything else as `length * 2 + 1` and its bytes.
pub(crate) fn put_digits(out: &mut Vec<u8>, id: &[u8]) {
    if (1..=DIGITS_MAX).contains(&id.len()) && id.iter().all(u8::is_ascii_digit) {
        let value = id.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        put_u64(out, ((value << 5) | id.len() as u64) << 1);
    } else {
        put_u64(out, ((id.len() as u64) << 1) | 1);
        out.extend_from_slice(id);
    }
}

/// The longest id [`put_digits`] writes as a number (10^17 * 64 fits a u64).
const DIGITS_MAX: usize = 17;

/// "00" to "99", for writing a number's digits two at a time.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

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

    /// An id [`put_digits`] wrote: its bytes, in `buf` when it was a number.
    pub(crate) fn digits<'b>(&mut self, buf: &'b mut [u8; DIGITS_MAX]) -> Option<&'b [u8]>
    where
        'a: 'b,
    {
        let v = self.u64()?;
        if v & 1 == 1 {
            return self.take(usize::try_from(v >> 1).ok()?);
        }
        let (len, mut value) = (((v >> 1) & 31) as usize, v >> 6);
        let out = buf.get_mut(..len).filter(|_| len > 0)?;
        // Two digits at a time from the right.
        let mut end = len;
        while end >= 2 {
            let pair = (value % 100) as usize * 2;
            value /= 100;
            out[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            end -= 2;
        }
        if end == 1 {
            out[0] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        (value == 0).then_some(&*out)
    }
}

/// The ids a chunk numbered with [`IdNumbers`], parsed once each, as a reader meets them.
pub(crate) struct IdTable<T> {
    ids: Vec<T>,
}

impl<T: Clone> IdTable<T> {
    pub(crate) fn new() -> IdTable<T> {
        IdTable { ids: Vec::new() }
    }

    /// The next id: a number for one met before, or a new one parsed by `parse`.
    pub(crate) fn read(&mut self, r: &mut ChunkReader<'_>, column: &'static str, parse: impl Fn(&[u8]) -> Option<T>) -> ReadResult<T> {
        let n = r.u64()?;
        if n == 0 {
            let id = r.word(column, parse)?;
            self.ids.push(id.clone());
            return Ok(id);
        }
        usize::try_from(n - 1).ok().and_then(|i| self.ids.get(i)).cloned().ok_or_else(|| (r.bad)(column))
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

    /// Whether the chunk is in the second format (its header is then consumed).
    pub(crate) fn format_2(&mut self) -> bool {
        let is = self.bytes.data.starts_with(&FORMAT_2) && self.bytes.at == 0;
        if is {
            self.bytes.at = FORMAT_2.len();
        }
        is
    }

    /// A one-byte code: the index of a value in `all`.
    pub(crate) fn code<T: Copy>(&mut self, column: &'static str, all: &[T]) -> ReadResult<T> {
        let i = self.take(1)?[0];
        all.get(usize::from(i)).copied().ok_or_else(|| (self.bad)(column))
    }

    /// An id [`put_digits`] wrote, parsed by `parse`.
    pub(crate) fn digits<T>(&mut self, column: &'static str, parse: impl Fn(&[u8]) -> Option<T>) -> ReadResult<T> {
        let mut buf = [0u8; DIGITS_MAX];
        let b = self.bytes.digits(&mut buf).ok_or_else(|| (self.bad)(column))?;
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

    fn corrupt(column: &'static str) -> crate::error::StoreError {
        crate::error::StoreError::Corrupt { column, value: String::new() }
    }

    /// Numbered ids come back as written, through the table's growth; digits keep their
    /// leading zeros and anything else comes back as its bytes.
    #[test]
    fn numbered_ids_and_digits_round_trip() {
        let ids: Vec<String> = (0..3000).map(|i| format!("{:08}", (i * 7919) % 1000)).chain(["".into(), "X".repeat(20)]).collect();
        let digits = ["0", "000000000001", "99999999999999999", "123456789012345678", "12a4", "", "007"];
        let mut out = Vec::new();
        let mut numbers = IdNumbers::default();
        for id in &ids {
            numbers.put(&mut out, id.as_bytes());
        }
        for d in digits {
            put_digits(&mut out, d.as_bytes());
        }
        let mut r = ChunkReader::new(&out, "test", corrupt);
        let mut table = IdTable::new();
        for id in &ids {
            assert_eq!(table.read(&mut r, "id", |b| Some(b.to_vec())).unwrap(), id.as_bytes());
        }
        for d in digits {
            assert_eq!(r.digits("digits", |b| Some(b.to_vec())).unwrap(), d.as_bytes());
        }
        assert!(r.at_end());
        // A number past the ids met so far, or a digit count past the limit, is corruption.
        let mut r = ChunkReader::new(&[5], "test", corrupt);
        assert!(IdTable::new().read(&mut r, "id", |b| Some(b.to_vec())).is_err());
        let mut over = Vec::new();
        put_u64(&mut over, 20 << 1);
        assert!(ChunkReader::new(&over, "test", corrupt).digits("d", |b| Some(b.to_vec())).is_err());
        let mut big = Vec::new();
        put_u64(&mut big, ((1000 << 5) | 3) << 1);
        assert!(ChunkReader::new(&big, "test", corrupt).digits("d", |b| Some(b.to_vec())).is_err(), "1000 in three digits");
    }
}

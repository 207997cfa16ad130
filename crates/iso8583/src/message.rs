//! The raw message: envelope (TPDU + header), MTI, and fields keyed by number, with the wire
//! encoding and decoding driven by the field table in [`crate::spec`].

use std::fmt;

use crate::error::{DecodeError, EncodeError, FieldError, FieldErrorKind};
use crate::spec::{
    bit, field_def, field_index, Align, FieldDef, Format, LengthKind, FIELDS, KNOWN_FIELDS_MASK,
};

/// Bytes before the MTI: TPDU (5) + application header (6).
pub const ENVELOPE_LEN: usize = 11;
/// The shortest possible message body: envelope, MTI and primary bitmap.
pub const BODY_LEN_MIN: usize = ENVELOPE_LEN + 2 + 8;

/// Message type identifier, e.g. `Mti::PURCHASE_REQUEST` = 0200. Always 4 decimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti(u16);

impl Mti {
    pub const AUTH_REQUEST: Mti = Mti(100);
    pub const AUTH_RESPONSE: Mti = Mti(110);
    pub const FINANCIAL_REQUEST: Mti = Mti(200);
    pub const FINANCIAL_RESPONSE: Mti = Mti(210);
    pub const ADVICE_REQUEST: Mti = Mti(220);
    pub const ADVICE_RESPONSE: Mti = Mti(230);
    pub const BATCH_UPLOAD_REQUEST: Mti = Mti(320);
    pub const BATCH_UPLOAD_RESPONSE: Mti = Mti(330);
    pub const REVERSAL_REQUEST: Mti = Mti(400);
    pub const REVERSAL_RESPONSE: Mti = Mti(410);
    pub const SETTLEMENT_REQUEST: Mti = Mti(500);
    pub const SETTLEMENT_RESPONSE: Mti = Mti(510);
    pub const NETWORK_REQUEST: Mti = Mti(800);
    pub const NETWORK_RESPONSE: Mti = Mti(810);
    pub const NETWORK_ADVICE_REQUEST: Mti = Mti(820);
    pub const NETWORK_ADVICE_RESPONSE: Mti = Mti(830);

    /// The request MTIs of spec section 1 (the only ones that may get a `30` reply).
    pub const REQUESTS: [Mti; 8] = [
        Mti(100),
        Mti(200),
        Mti(220),
        Mti(320),
        Mti(400),
        Mti(500),
        Mti(800),
        Mti(820),
    ];

    /// `value` is the MTI read as a decimal number (0200 -> 200); `None` above 9999.
    pub const fn new(value: u16) -> Option<Mti> {
        if value <= 9999 {
            Some(Mti(value))
        } else {
            None
        }
    }

    /// Parses exactly four ASCII digits.
    pub fn parse(digits: &str) -> Option<Mti> {
        let b = digits.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(Mti(b
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))))
    }

    /// The MTI as a decimal number (0200 -> 200).
    pub const fn value(self) -> u16 {
        self.0
    }

    /// One of the request MTIs of spec section 1.
    pub fn is_request(self) -> bool {
        Mti::REQUESTS.contains(&self)
    }

    /// The reply MTI (request + 10) for a request MTI, `None` for anything else.
    pub fn reply(self) -> Option<Mti> {
        self.is_request().then_some(Mti(self.0 + 10))
    }

    /// MTIs whose messages carry field 64 when the terminal is keyed (spec section 6).
    pub fn is_maced(self) -> bool {
        matches!(self.0, 100 | 110 | 200 | 210 | 220 | 230 | 400 | 410)
    }

    pub(crate) fn to_bcd(self) -> [u8; 2] {
        let v = self.0;
        let d = [v / 1000, v / 100 % 10, v / 10 % 10, v % 10];
        [(d[0] << 4 | d[1]) as u8, (d[2] << 4 | d[3]) as u8]
    }

    pub(crate) fn from_bcd(b: [u8; 2]) -> Option<Mti> {
        let n = [b[0] >> 4, b[0] & 15, b[1] >> 4, b[1] & 15];
        if n.iter().any(|&x| x > 9) {
            return None;
        }
        Some(Mti(n.iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d))))
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({:04})", self.0)
    }
}

/// Transport protocol data unit: `0x60 | destination (2) | source (2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tpdu {
    pub id: u8,
    pub destination: [u8; 2],
    pub source: [u8; 2],
}

impl Tpdu {
    /// The only TPDU id byte this dialect accepts.
    pub const ID: u8 = 0x60;

    pub const fn new(destination: [u8; 2], source: [u8; 2]) -> Tpdu {
        Tpdu {
            id: Tpdu::ID,
            destination,
            source,
        }
    }

    pub const fn from_bytes(b: [u8; 5]) -> Tpdu {
        Tpdu {
            id: b[0],
            destination: [b[1], b[2]],
            source: [b[3], b[4]],
        }
    }

    pub const fn to_bytes(self) -> [u8; 5] {
        [
            self.id,
            self.destination[0],
            self.destination[1],
            self.source[0],
            self.source[1],
        ]
    }

    /// The reply's TPDU: id 0x60, destination and source swapped (spec section 1).
    pub const fn reply(self) -> Tpdu {
        Tpdu {
            id: Tpdu::ID,
            destination: self.source,
            source: self.destination,
        }
    }
}

/// The 6-byte application header: app type | 0x31 | terminal status | software version (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header(pub [u8; 6]);

impl Header {
    /// Application type byte: 0x60 magstripe, 0x61 IC.
    pub const fn app_type(self) -> u8 {
        self.0[0]
    }

    /// Terminal status / processing request byte (offset 2).
    pub const fn status(self) -> u8 {
        self.0[2]
    }

    /// The reply's header: the request's, with the status byte (offset 2) set to 0x00.
    pub const fn reply(self) -> Header {
        let mut h = self.0;
        h[2] = 0;
        Header(h)
    }
}

/// TPDU + header, the 11 bytes before the MTI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Envelope {
    pub tpdu: Tpdu,
    pub header: Header,
}

impl Envelope {
    pub fn from_bytes(b: [u8; ENVELOPE_LEN]) -> Envelope {
        let mut t = [0u8; 5];
        t.copy_from_slice(&b[..5]);
        let mut h = [0u8; 6];
        h.copy_from_slice(&b[5..]);
        Envelope {
            tpdu: Tpdu::from_bytes(t),
            header: Header(h),
        }
    }

    /// Parses 22 hex digits (the vectors' `tpdu_header_hex`).
    pub fn from_hex(hex_str: &str) -> Option<Envelope> {
        let v = hex::decode(hex_str).ok()?;
        let arr: [u8; ENVELOPE_LEN] = v.try_into().ok()?;
        Some(Envelope::from_bytes(arr))
    }

    pub fn to_bytes(self) -> [u8; ENVELOPE_LEN] {
        let mut b = [0u8; ENVELOPE_LEN];
        b[..5].copy_from_slice(&self.tpdu.to_bytes());
        b[5..].copy_from_slice(&self.header.0);
        b
    }

    /// The reply's envelope: TPDU swapped, header echoed with byte 2 = 0x00.
    pub fn reply(self) -> Envelope {
        Envelope {
            tpdu: self.tpdu.reply(),
            header: self.header.reply(),
        }
    }
}

/// One ISO 8583 message of the dialect: envelope, MTI and the fields of spec section 2.
///
/// Field values are kept in their logical form: ASCII digits for n (no pad nibble), digits and
/// `D` for z, the text for an/ans, raw bytes for b. Every value is validated when it is set or
/// decoded, so encoding cannot fail.
#[derive(Clone)]
pub struct Message {
    envelope: Envelope,
    mti: Mti,
    /// Primary bitmap of present fields (bit 1 is never set).
    present: u64,
    /// (offset, len) into `data` for each field, in [`FIELDS`] order.
    spans: [(u16, u16); FIELDS.len()],
    data: Vec<u8>,
}

/// Once this much of `data` is dead (overwritten values), `set` compacts it.
const DATA_SLACK_MAX: usize = 4096;

impl Message {
    pub fn new(envelope: Envelope, mti: Mti) -> Message {
        Message {
            envelope,
            mti,
            present: 0,
            spans: [(0, 0); FIELDS.len()],
            data: Vec::new(),
        }
    }

    pub fn envelope(&self) -> Envelope {
        self.envelope
    }

    pub fn set_envelope(&mut self, envelope: Envelope) {
        self.envelope = envelope;
    }

    pub fn tpdu(&self) -> Tpdu {
        self.envelope.tpdu
    }

    pub fn header(&self) -> Header {
        self.envelope.header
    }

    pub fn mti(&self) -> Mti {
        self.mti
    }

    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// The primary bitmap this message is encoded with.
    pub fn bitmap(&self) -> u64 {
        self.present
    }

    pub fn has(&self, field: u8) -> bool {
        (2..=64).contains(&field) && self.present & bit(field) != 0
    }

    /// The field's logical value (see [`Message`]).
    pub fn get(&self, field: u8) -> Option<&[u8]> {
        if !self.has(field) {
            return None;
        }
        let (off, len) = *self.spans.get(field_index(field)?)?;
        self.data.get(off as usize..off as usize + len as usize)
    }

    /// The value of a text field (n, z, an, ans); `None` for binary fields and absent fields.
    pub fn get_str(&self, field: u8) -> Option<&str> {
        let def = field_def(field)?;
        if !def.format.is_text() {
            return None;
        }
        std::str::from_utf8(self.get(field)?).ok()
    }

    /// The value in the textual convention of the vectors and pyiso8583: text fields as they
    /// are, binary fields as upper-case hex.
    pub fn get_text(&self, field: u8) -> Option<String> {
        let def = field_def(field)?;
        let v = self.get(field)?;
        Some(if def.format.is_text() {
            String::from_utf8_lossy(v).into_owned()
        } else {
            hex::encode_upper(v)
        })
    }

    /// Sets `field` to a logical value (see [`Message`]) after validating it against the field
    /// table: charset, fixed length or 1..=max for variable fields.
    pub fn set(&mut self, field: u8, value: impl AsRef<[u8]>) -> Result<(), FieldError> {
        let value = value.as_ref();
        let def = field_def(field).ok_or(FieldError {
            field,
            kind: FieldErrorKind::UnknownField,
        })?;
        validate(def, value).map_err(|kind| FieldError { field, kind })?;
        self.store(field, value);
        Ok(())
    }

    /// Like [`Message::set`], with binary fields given as hex (the vectors' convention).
    pub fn set_text(&mut self, field: u8, value: &str) -> Result<(), FieldError> {
        let def = field_def(field).ok_or(FieldError {
            field,
            kind: FieldErrorKind::UnknownField,
        })?;
        if def.format.is_text() {
            self.set(field, value)
        } else {
            let raw = hex::decode(value).map_err(|_| FieldError {
                field,
                kind: FieldErrorKind::BadCharacter {
                    ch: value
                        .chars()
                        .find(|c| !c.is_ascii_hexdigit())
                        .unwrap_or('?'),
                    position: 0,
                    format: "hex",
                },
            })?;
            self.set(field, raw)
        }
    }

    /// Removes `field`; returns whether it was present.
    pub fn remove(&mut self, field: u8) -> bool {
        let had = self.has(field);
        if had {
            self.present &= !bit(field);
        }
        had
    }

    /// Copies each of `fields` that `other` carries into this message (for echoing).
    pub fn copy_fields_from(&mut self, other: &Message, fields: &[u8]) {
        for &f in fields {
            if let Some(v) = other.get(f) {
                self.store(f, v);
            }
        }
    }

    /// Present field numbers, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        BitIter(self.present)
    }

    /// Present fields with their logical values, ascending.
    pub fn fields(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.field_numbers()
            .filter_map(move |f| self.get(f).map(|v| (f, v)))
    }

    fn store(&mut self, field: u8, value: &[u8]) {
        if self.data.len() > DATA_SLACK_MAX {
            self.compact();
        }
        let Some(slot) = field_index(field) else {
            return;
        };
        let off = self.data.len() as u16;
        self.data.extend_from_slice(value);
        self.spans[slot] = (off, value.len() as u16);
        self.present |= bit(field);
    }

    fn compact(&mut self) {
        let mut data = Vec::with_capacity(self.data.len());
        for f in BitIter(self.present) {
            let Some(slot) = field_index(f) else { continue };
            let (off, len) = self.spans[slot];
            let new_off = data.len() as u16;
            data.extend_from_slice(&self.data[off as usize..off as usize + len as usize]);
            self.spans[slot] = (new_off, len);
        }
        self.data = data;
    }

    /// The encoded body (envelope through the last field), without the length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BODY_LEN_MIN + self.data.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.envelope.to_bytes());
        self.encode_from_mti(out);
    }

    /// MTI, bitmap and fields: the part of the body the MAC covers (plus field 64).
    pub(crate) fn encode_from_mti(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.mti.to_bcd());
        out.extend_from_slice(&self.present.to_be_bytes());
        for f in BitIter(self.present) {
            if let (Some(def), Some(v)) = (field_def(f), self.get(f)) {
                encode_field(def, v, out);
            }
        }
    }

    /// The whole frame: 2-byte big-endian length prefix, then the body. Fails when the body
    /// is over [`crate::FRAME_LEN_MAX`] bytes, which the peer would refuse.
    pub fn to_frame(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(2 + BODY_LEN_MIN + self.data.len());
        out.extend_from_slice(&[0, 0]);
        self.encode_into(&mut out);
        let len = out.len() - 2;
        if len > crate::FRAME_LEN_MAX {
            return Err(EncodeError::TooLong {
                len,
                max: crate::FRAME_LEN_MAX,
            });
        }
        out[..2].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(out)
    }

    /// Decodes a message body (the frame without its length prefix). Strict: the first format
    /// error of spec section 1 is returned.
    pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
        decode_impl(body, false).map_err(|b| b.0)
    }

    /// Decodes as much as possible: on a format error, also returns every field that could be
    /// located and was valid (fields after one that cannot be delimited are lost). `None` when
    /// even the MTI could not be read.
    pub fn decode_lenient(body: &[u8]) -> (Option<Message>, Option<DecodeError>) {
        match decode_impl(body, true) {
            Ok(m) => (Some(m), None),
            Err(b) => {
                let (e, m) = *b;
                (m, Some(e))
            }
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.envelope == other.envelope
            && self.mti == other.mti
            && self.present == other.present
            && BitIter(self.present).all(|f| self.get(f) == other.get(f))
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    /// Masks the PAN (first 6 + last 4), track data, PIN block, IC data and keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Message");
        s.field("tpdu", &hex::encode_upper(self.envelope.tpdu.to_bytes()));
        s.field("header", &hex::encode_upper(self.envelope.header.0));
        s.field("mti", &format_args!("{}", self.mti));
        let fields: Vec<(u8, String)> = self
            .field_numbers()
            .map(|n| (n, crate::describe::display_value(self, n)))
            .collect();
        s.field("fields", &DebugFields(&fields));
        s.finish()
    }
}

struct DebugFields<'a>(&'a [(u8, String)]);

impl fmt::Debug for DebugFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}

/// Iterates the set bits of a primary bitmap as field numbers, ascending.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        if self.0 == 0 {
            return None;
        }
        let lz = self.0.leading_zeros();
        self.0 &= !(1u64 << (63 - lz));
        Some(lz as u8 + 1)
    }
}

fn validate(def: &FieldDef, value: &[u8]) -> Result<(), FieldErrorKind> {
    let len = value.len();
    match def.length {
        LengthKind::Fixed(n) if len != n as usize => {
            return Err(FieldErrorKind::WrongLength {
                len,
                expected: n as usize,
            })
        }
        LengthKind::LlVar(max) | LengthKind::LllVar(max) => {
            if len == 0 {
                return Err(FieldErrorKind::ZeroLength);
            }
            if len > max as usize {
                return Err(FieldErrorKind::TooLong {
                    len,
                    max: max as usize,
                });
            }
        }
        LengthKind::Fixed(_) => {}
    }
    let ok = |c: &u8| match def.format {
        Format::N => c.is_ascii_digit(),
        Format::Z => c.is_ascii_digit() || *c == b'D',
        Format::An | Format::Ans => (0x20..=0x7e).contains(c),
        Format::B => true,
    };
    if let Some(position) = value.iter().position(|c| !ok(c)) {
        return Err(FieldErrorKind::BadCharacter {
            ch: char::from(value[position]),
            position,
            format: def.format.name(),
        });
    }
    Ok(())
}

fn nibble_of(c: u8) -> u8 {
    if c == b'D' {
        0xD
    } else {
        c.wrapping_sub(b'0') & 0xF
    }
}

fn push_bcd_len(len: usize, prefix_len: usize, out: &mut Vec<u8>) {
    let to_bcd = |v: usize| ((v / 10 % 10) << 4 | (v % 10)) as u8;
    if prefix_len == 2 {
        out.push(to_bcd(len / 100));
    }
    out.push(to_bcd(len));
}

fn encode_field(def: &FieldDef, v: &[u8], out: &mut Vec<u8>) {
    let prefix_len = def.length.prefix_len();
    if prefix_len > 0 {
        push_bcd_len(v.len(), prefix_len, out);
    }
    if !def.format.is_nibble() {
        out.extend_from_slice(v);
        return;
    }
    let odd = v.len() % 2 == 1;
    let mut rest = v;
    if odd && def.align == Align::Right {
        out.push(nibble_of(v[0]));
        rest = &v[1..];
    }
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        out.push(nibble_of(p[0]) << 4 | nibble_of(p[1]));
    }
    if let [last] = pairs.remainder() {
        out.push(nibble_of(*last) << 4);
    }
}

type DecodeFailure = Box<(DecodeError, Option<Message>)>;

fn decode_impl(body: &[u8], lenient: bool) -> Result<Message, DecodeFailure> {
    if body.len() < BODY_LEN_MIN {
        return Err(Box::new((DecodeError::TooShort { len: body.len() }, None)));
    }
    let mut first_error: Option<DecodeError> = None;
    let mut env = [0u8; ENVELOPE_LEN];
    env.copy_from_slice(&body[..ENVELOPE_LEN]);
    let envelope = Envelope::from_bytes(env);
    if envelope.tpdu.id != Tpdu::ID {
        if !lenient {
            return Err(Box::new((DecodeError::BadTpdu(envelope.tpdu.id), None)));
        }
        first_error = Some(DecodeError::BadTpdu(envelope.tpdu.id));
    }
    let mti_bytes = [body[11], body[12]];
    let Some(mti) = Mti::from_bcd(mti_bytes) else {
        return Err(Box::new((
            first_error.unwrap_or(DecodeError::BadMti(mti_bytes)),
            None,
        )));
    };
    let mut bm = [0u8; 8];
    bm.copy_from_slice(&body[13..21]);
    let bitmap = u64::from_be_bytes(bm);
    let mut msg = Message {
        envelope,
        mti,
        present: 0,
        spans: [(0, 0); FIELDS.len()],
        data: Vec::with_capacity(body.len() * 2),
    };
    let mut pos = BODY_LEN_MIN;
    let fail = |e: DecodeError, first: Option<DecodeError>, msg: Message| -> DecodeFailure {
        let m = lenient.then_some(msg);
        Box::new((first.unwrap_or(e), m))
    };
    if bitmap & bit(1) != 0 {
        // Format error, but a secondary bitmap has a known size: skip it so that field 11 can
        // still be located for a `30` reply.
        if !lenient {
            return Err(Box::new((DecodeError::SecondaryBitmap, None)));
        }
        first_error.get_or_insert(DecodeError::SecondaryBitmap);
        pos += 8;
        if pos > body.len() {
            return Err(fail(DecodeError::SecondaryBitmap, first_error, msg));
        }
    }
    for field in BitIter(bitmap & !bit(1)) {
        if KNOWN_FIELDS_MASK & bit(field) == 0 {
            // Its size is unknown: nothing after it can be located.
            return Err(fail(DecodeError::UnknownField(field), first_error, msg));
        }
        let Some(slot) = field_index(field) else {
            return Err(fail(DecodeError::UnknownField(field), first_error, msg));
        };
        let def = &FIELDS[slot];
        match read_field(def, body, pos, &mut msg.data) {
            Ok((next, off, len)) => {
                msg.spans[slot] = (off as u16, len as u16);
                msg.present |= bit(field);
                pos = next;
            }
            Err((kind, next)) => {
                let e = DecodeError::Field(FieldError { field, kind });
                match next {
                    Some(next) if lenient => {
                        first_error.get_or_insert(e);
                        pos = next;
                    }
                    _ => return Err(fail(e, first_error, msg)),
                }
            }
        }
    }
    if pos < body.len() {
        let e = DecodeError::TrailingBytes(body.len() - pos);
        if !lenient {
            return Err(Box::new((e, None)));
        }
        first_error.get_or_insert(e);
    }
    match first_error {
        None => Ok(msg),
        Some(e) => Err(Box::new((e, Some(msg)))),
    }
}

fn bcd_value(bytes: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    for &b in bytes {
        let (hi, lo) = (b >> 4, b & 15);
        if hi > 9 || lo > 9 {
            return None;
        }
        v = v * 100 + usize::from(hi) * 10 + usize::from(lo);
    }
    Some(v)
}

/// Reads one field at `pos`, appending its logical value to `data`. Ok: (next position,
/// offset in data, length). Err: what is wrong, and the next position when the field's
/// extent is known.
fn read_field(
    def: &FieldDef,
    body: &[u8],
    pos: usize,
    data: &mut Vec<u8>,
) -> Result<(usize, usize, usize), (FieldErrorKind, Option<usize>)> {
    let prefix_len = def.length.prefix_len();
    let available = body.len().saturating_sub(pos);
    let len = match def.length {
        LengthKind::Fixed(n) => n as usize,
        LengthKind::LlVar(_) | LengthKind::LllVar(_) => {
            let Some(prefix) = body.get(pos..pos + prefix_len) else {
                return Err((
                    FieldErrorKind::Truncated {
                        needed: prefix_len,
                        available,
                    },
                    None,
                ));
            };
            match bcd_value(prefix) {
                Some(l) => l,
                None => return Err((FieldErrorKind::BadLengthPrefix(prefix.to_vec()), None)),
            }
        }
    };
    let start = pos + prefix_len;
    let nbytes = def.data_bytes(len);
    let Some(raw) = body.get(start..start + nbytes) else {
        return Err((
            FieldErrorKind::Truncated {
                needed: prefix_len + nbytes,
                available,
            },
            None,
        ));
    };
    let next = start + nbytes;
    if len == 0 {
        return Err((FieldErrorKind::ZeroLength, Some(next)));
    }
    let max = def.length.max() as usize;
    if len > max {
        return Err((FieldErrorKind::TooLong { len, max }, Some(next)));
    }
    let off = data.len();
    let res = match def.format {
        Format::N | Format::Z => read_nibbles(def, raw, len, data),
        Format::An | Format::Ans => match raw.iter().position(|b| !(0x20..=0x7e).contains(b)) {
            Some(position) => Err(FieldErrorKind::NotPrintable {
                byte: raw[position],
                position,
            }),
            None => {
                data.extend_from_slice(raw);
                Ok(())
            }
        },
        Format::B => {
            data.extend_from_slice(raw);
            Ok(())
        }
    };
    match res {
        Ok(()) => Ok((next, off, len)),
        Err(kind) => {
            data.truncate(off);
            Err((kind, Some(next)))
        }
    }
}

fn read_nibbles(
    def: &FieldDef,
    raw: &[u8],
    len: usize,
    data: &mut Vec<u8>,
) -> Result<(), FieldErrorKind> {
    // Fast path: every nibble (pad included) is a digit, or for track data a digit or the `D`
    // separator. Anything else (bad digits, bad pads) takes the careful path, which names the
    // error. A table lookup per nibble: 0 marks a nibble this format does not allow.
    const N_TABLE: [u8; 16] = *b"0123456789\0\0\0\0\0\0";
    const Z_TABLE: [u8; 16] = *b"0123456789\0\0\0D\0\0";
    let table = if def.format == Format::Z { &Z_TABLE } else { &N_TABLE };
    let start = data.len();
    data.resize(start + raw.len() * 2, 0);
    let mut bad = false;
    if let Some(out) = data.get_mut(start..) {
        for (pair, &b) in out.chunks_exact_mut(2).zip(raw) {
            let (hi, lo) = (table[usize::from(b >> 4)], table[usize::from(b & 15)]);
            bad |= (hi == 0) | (lo == 0);
            pair[0] = hi;
            pair[1] = lo;
        }
    }
    if !bad {
        if len % 2 == 0 {
            return Ok(());
        }
        let pad_at = if def.align == Align::Right {
            start
        } else {
            start + len
        };
        if data.get(pad_at) == Some(&b'0') {
            data.remove(pad_at);
            return Ok(());
        }
    }
    data.truncate(start);
    read_nibbles_checked(def, raw, len, data)
}

fn read_nibbles_checked(
    def: &FieldDef,
    raw: &[u8],
    len: usize,
    data: &mut Vec<u8>,
) -> Result<(), FieldErrorKind> {
    let track = def.format == Format::Z;
    let odd = len % 2 == 1;
    let skip_first = odd && def.align == Align::Right;
    let digit = |nibble: u8, position: usize| -> Result<u8, FieldErrorKind> {
        if nibble <= 9 {
            Ok(b'0' + nibble)
        } else if track && nibble == 0xD {
            Ok(b'D')
        } else if track {
            Err(FieldErrorKind::BadTrackNibble { nibble, position })
        } else {
            Err(FieldErrorKind::NonDigit { nibble, position })
        }
    };
    let mut position = 0;
    for (i, &b) in raw.iter().enumerate() {
        let hi = b >> 4;
        let lo = b & 15;
        let first = i == 0;
        let last = i + 1 == raw.len();
        if !(first && skip_first) {
            data.push(digit(hi, position)?);
            position += 1;
        }
        if !(last && odd && !skip_first) {
            data.push(digit(lo, position)?);
            position += 1;
        }
    }
    if odd {
        let pad = if skip_first {
            raw[0] >> 4
        } else {
            raw[raw.len() - 1] & 15
        };
        if pad != 0 {
            return Err(FieldErrorKind::BadPad(pad));
        }
    }
    Ok(())
}

//! The field table of spec section 2, as data: one [`FieldDef`] per field of the dialect.
//!
//! Everything that encodes, decodes, validates or describes a field reads this table; nothing
//! else in the crate knows a field's format or length.

/// How a field's value is represented on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// BCD digits, two per byte. Logical value: ASCII digits `0`-`9`.
    N,
    /// Track data: BCD nibbles 0-9 and `D` (the separator). Logical value: ASCII `0`-`9`, `D`.
    Z,
    /// Alphanumeric: ASCII bytes 0x20-0x7E.
    An,
    /// Alphanumeric and special: ASCII bytes 0x20-0x7E (no GBK in this dialect).
    Ans,
    /// Raw bytes. Logical value: the bytes themselves.
    B,
}

impl Format {
    /// True for the nibble formats (n, z), whose lengths count digits.
    pub const fn is_nibble(self) -> bool {
        matches!(self, Format::N | Format::Z)
    }

    /// True for the text formats (n, z, an, ans), whose logical value is ASCII.
    pub const fn is_text(self) -> bool {
        !matches!(self, Format::B)
    }

    /// The format's name as the spec writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Format::N => "n",
            Format::Z => "z",
            Format::An => "an",
            Format::Ans => "ans",
            Format::B => "b",
        }
    }
}

/// How a field's length is known. Lengths count digits (nibbles) for n/z and bytes otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthKind {
    /// Always exactly this many digits / bytes.
    Fixed(u16),
    /// 1-byte BCD length prefix, value 1..=max.
    LlVar(u16),
    /// 2-byte BCD length prefix, value 1..=max.
    LllVar(u16),
}

impl LengthKind {
    /// The largest length the field may have (the fixed length for fixed fields).
    pub const fn max(self) -> u16 {
        match self {
            LengthKind::Fixed(n) | LengthKind::LlVar(n) | LengthKind::LllVar(n) => n,
        }
    }

    /// Bytes taken by the length prefix.
    pub const fn prefix_len(self) -> usize {
        match self {
            LengthKind::Fixed(_) => 0,
            LengthKind::LlVar(_) => 1,
            LengthKind::LllVar(_) => 2,
        }
    }
}

/// Where the digits of an odd-length BCD value sit; the pad nibble (always 0) is on the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Digits first, pad nibble last ("021" -> 0x02 0x10).
    Left,
    /// Pad nibble first, then the digits ("001" -> 0x00 0x01).
    Right,
}

/// One row of the spec's field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub number: u8,
    pub name: &'static str,
    pub format: Format,
    pub length: LengthKind,
    pub align: Align,
    /// Card data (PAN, tracks, PIN block, IC data) and keys: masked in `Debug` and descriptions.
    pub sensitive: bool,
}

impl FieldDef {
    /// The number of wire bytes a value of `len` digits/bytes occupies (prefix excluded).
    pub const fn data_bytes(&self, len: usize) -> usize {
        if self.format.is_nibble() {
            len.div_ceil(2)
        } else {
            len
        }
    }

    /// The format as the spec writes it, e.g. `n..19 LLVAR`.
    pub fn describe_format(&self) -> String {
        match self.length {
            LengthKind::Fixed(n) => format!("{}{}", self.format.name(), n),
            LengthKind::LlVar(n) => format!("{}..{} LLVAR", self.format.name(), n),
            LengthKind::LllVar(n) => format!("{}..{} LLLVAR", self.format.name(), n),
        }
    }
}

const fn def(
    number: u8,
    name: &'static str,
    format: Format,
    length: LengthKind,
    align: Align,
    sensitive: bool,
) -> FieldDef {
    FieldDef {
        number,
        name,
        format,
        length,
        align,
        sensitive,
    }
}

use Align::{Left as L, Right as R};
use Format::{An, Ans, B, N, Z};
use LengthKind::{Fixed, LlVar, LllVar};

/// Spec section 2, in field-number order. Fixed `b` lengths are in bytes (b64 = 8 bytes).
pub const FIELDS: [FieldDef; 31] = [
    def(2, "primary account number (PAN)", N, LlVar(19), L, true),
    def(3, "processing code", N, Fixed(6), L, false),
    def(4, "amount, in fen", N, Fixed(12), L, false),
    def(
        11,
        "system trace audit number (STAN)",
        N,
        Fixed(6),
        L,
        false,
    ),
    def(12, "local time hhmmss", N, Fixed(6), L, false),
    def(13, "local date MMDD", N, Fixed(4), L, false),
    def(14, "card expiry YYMM", N, Fixed(4), L, false),
    def(15, "settlement date MMDD", N, Fixed(4), L, false),
    def(22, "POS entry mode", N, Fixed(3), L, false),
    def(23, "card sequence number", N, Fixed(3), R, false),
    def(25, "POS condition code", N, Fixed(2), L, false),
    def(26, "PIN capture code", N, Fixed(2), L, false),
    def(32, "acquiring institution id", N, LlVar(11), L, false),
    def(35, "track 2", Z, LlVar(37), L, true),
    def(36, "track 3", Z, LllVar(104), L, true),
    def(
        37,
        "retrieval reference number (RRN)",
        An,
        Fixed(12),
        L,
        false,
    ),
    def(38, "authorization code", An, Fixed(6), L, false),
    def(39, "response code", An, Fixed(2), L, false),
    def(41, "terminal id", Ans, Fixed(8), L, false),
    def(42, "merchant id", Ans, Fixed(15), L, false),
    def(44, "additional response data", Ans, LlVar(25), L, false),
    def(48, "additional data", N, LllVar(322), L, false),
    def(49, "currency code", An, Fixed(3), L, false),
    def(52, "PIN block", B, Fixed(8), L, true),
    def(53, "security control information", N, Fixed(16), L, false),
    def(55, "IC card (EMV) data", B, LllVar(255), L, true),
    def(60, "private: transaction context", N, LllVar(17), L, false),
    def(61, "private: original transaction", N, LllVar(29), L, false),
    def(62, "private: working keys", B, LllVar(512), L, true),
    def(63, "private: operator", Ans, LllVar(163), L, false),
    def(64, "MAC", B, Fixed(8), L, false),
];

/// Index into [`FIELDS`] by field number (0 = not in the dialect).
const INDEX: [u8; 65] = {
    let mut index = [0u8; 65];
    let mut i = 0;
    while i < FIELDS.len() {
        index[FIELDS[i].number as usize] = (i + 1) as u8;
        i += 1;
    }
    index
};

/// Position of `field` in [`FIELDS`], or `None` when the dialect has no such field.
pub(crate) fn field_index(field: u8) -> Option<usize> {
    match INDEX.get(field as usize) {
        Some(&i) if i > 0 => Some(i as usize - 1),
        _ => None,
    }
}

/// The definition of `field`, or `None` when the dialect has no such field.
pub fn field_def(field: u8) -> Option<&'static FieldDef> {
    match INDEX.get(field as usize) {
        Some(&i) if i > 0 => FIELDS.get(i as usize - 1),
        _ => None,
    }
}

/// Bitmap mask (primary bitmap, bit 1 = most significant) of every field in the dialect.
pub const KNOWN_FIELDS_MASK: u64 = {
    let mut mask = 0u64;
    let mut i = 0;
    while i < FIELDS.len() {
        mask |= bit(FIELDS[i].number);
        i += 1;
    }
    mask
};

/// The primary-bitmap bit for `field` (1..=64): field 1 is the most significant bit.
pub const fn bit(field: u8) -> u64 {
    1u64 << (64 - field as u32)
}

//! Error types. Every variant names the field (when there is one) and what is wrong with it, so
//! a caller can log it and decide between a `30` reply and closing the connection.

use thiserror::Error;

/// What is wrong with one field's value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldErrorKind {
    #[error("needs {needed} more bytes, only {available} left in the message")]
    Truncated { needed: usize, available: usize },
    #[error("length prefix {0:02X?} is not BCD")]
    BadLengthPrefix(Vec<u8>),
    #[error("variable field of length 0")]
    ZeroLength,
    #[error("length {len} exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("length {len} is not the fixed length {expected}")]
    WrongLength { len: usize, expected: usize },
    #[error("non-digit nibble {nibble:X} at digit {position}")]
    NonDigit { nibble: u8, position: usize },
    #[error("track nibble {nibble:X} at digit {position} (only 0-9 and D allowed)")]
    BadTrackNibble { nibble: u8, position: usize },
    #[error("pad nibble is {0:X}, not 0")]
    BadPad(u8),
    #[error("byte {byte:#04x} at offset {position} is not printable ASCII (0x20-0x7E)")]
    NotPrintable { byte: u8, position: usize },
    #[error("character {ch:?} at offset {position} is not allowed in a {format} field")]
    BadCharacter {
        ch: char,
        position: usize,
        format: &'static str,
    },
    #[error("not a field of this dialect")]
    UnknownField,
}

impl FieldErrorKind {
    /// Whether the field's extent is still known, so fields after it can be read.
    pub fn is_delimitable(&self) -> bool {
        !matches!(
            self,
            FieldErrorKind::Truncated { .. } | FieldErrorKind::BadLengthPrefix(_)
        )
    }
}

/// A field value that cannot be set or was malformed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field {field}: {kind}")]
pub struct FieldError {
    pub field: u8,
    pub kind: FieldErrorKind,
}

/// Why a message body could not be decoded. All of these are format errors (spec section 1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message is {len} bytes, shorter than TPDU + header + MTI + bitmap (21)")]
    TooShort { len: usize },
    #[error("TPDU id byte is {0:#04x}, not 0x60")]
    BadTpdu(u8),
    #[error("MTI bytes {0:02X?} are not 4 BCD digits")]
    BadMti([u8; 2]),
    #[error("bitmap bit 1 (secondary bitmap) is set; this dialect has only a primary bitmap")]
    SecondaryBitmap,
    #[error("bitmap announces field {0}, which this dialect does not have")]
    UnknownField(u8),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{0} bytes left after the last field")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<u8> {
        match self {
            DecodeError::UnknownField(f) => Some(*f),
            DecodeError::Field(e) => Some(e.field),
            _ => None,
        }
    }
}

/// Why a message could not be turned into a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("encoded message is {len} bytes, over the {max}-byte frame maximum")]
    TooLong { len: usize, max: usize },
}

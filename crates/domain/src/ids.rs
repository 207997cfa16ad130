use std::fmt;
use std::str::FromStr;

/// Why an identifier was refused. Carries the name of the identifier so the edge can point at
/// the offending parameter without re-deriving it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected}, got {len} characters")]
    Length { what: &'static str, expected: &'static str, len: usize },
    #[error("{what} may contain only {allowed}")]
    Charset { what: &'static str, allowed: &'static str },
}

fn check_chars(
    what: &'static str,
    s: &str,
    allowed: &'static str,
    ok: impl Fn(u8) -> bool,
) -> Result<(), IdError> {
    if s.bytes().all(ok) {
        Ok(())
    } else {
        Err(IdError::Charset { what, allowed })
    }
}

/// Text identifiers of a fixed length (merchant, terminal, RRN, auth code). Trailing spaces are
/// trimmed first, as the wire pads fixed `ans` fields with them.
///
/// Kept inline as their ASCII bytes, not as a `String`: a reconciliation run holds millions of
/// them, and an id is cloned, hashed and compared without touching the heap. The bytes are a
/// `TinyAsciiStr`, which is ASCII by construction, so `as_str` costs no UTF-8 check (a run
/// writes millions of ids into items and CSV lines).
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $len:literal, $expected:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(tinystr::TinyAsciiStr<$len>);

        impl $name {
            pub const LEN: usize = $len;

            pub fn parse(s: &str) -> Result<Self, IdError> {
                let s = s.trim_end_matches(' ');
                check_chars($what, s, "ASCII letters and digits", |b| b.is_ascii_alphanumeric())?;
                if s.len() != $len {
                    return Err(IdError::Length { what: $what, expected: $expected, len: s.chars().count() });
                }
                Self::from_checked(s.as_bytes())
            }

            /// From exactly `$len` ASCII letters and digits (checked by the caller).
            fn from_checked(b: &[u8]) -> Result<Self, IdError> {
                tinystr::TinyAsciiStr::try_from_utf8(b)
                    .map($name)
                    .map_err(|_| IdError::Charset { what: $what, allowed: "ASCII letters and digits" })
            }

            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The id's ASCII bytes (no UTF-8 check: for keys and hashes in hot loops).
            pub fn as_bytes(&self) -> &[u8] {
                self.0.all_bytes()
            }

            /// From stored bytes: exactly the id's length of ASCII letters and digits, with no
            /// trimming (for compact encodings that hold ids as `parse` left them).
            pub fn from_ascii(b: &[u8]) -> Result<Self, IdError> {
                if b.len() != $len {
                    return Err(IdError::Length { what: $what, expected: $expected, len: b.len() });
                }
                if !b.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(IdError::Charset { what: $what, allowed: "ASCII letters and digits" });
                }
                Self::from_checked(b)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }
    };
}

text_id!(
    /// 商户号: 15 characters, e.g. `898310048990001`.
    MerchantId, "merchant_id", 15, "15 characters"
);
text_id!(
    /// 终端号: 8 characters.
    TerminalId, "terminal_id", 8, "8 characters"
);
text_id!(
    /// 参考号 (retrieval reference number): 12 characters.
    Rrn, "rrn", 12, "12 characters"
);
text_id!(
    /// 授权码: 6 characters.
    AuthCode, "auth_code", 6, "6 characters"
);

/// Six-digit numbers (batch, STAN): kept as integers, shown zero-padded.
macro_rules! six_digits {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            pub const MAX: u32 = 999_999;

            pub fn new(n: u32) -> Result<Self, IdError> {
                if n > Self::MAX {
                    return Err(IdError::Length { what: $what, expected: "at most 6 digits", len: n.to_string().len() });
                }
                Ok($name(n))
            }

            /// Parses exactly six ASCII digits (the wire and the API both zero-pad).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_chars($what, s, "digits", |b| b.is_ascii_digit())?;
                if s.len() != 6 {
                    return Err(IdError::Length { what: $what, expected: "6 digits", len: s.len() });
                }
                Ok($name(s.parse().expect("six ASCII digits fit in u32")))
            }

            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:06}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:06})", stringify!($name), self.0)
            }
        }
    };
}

six_digits!(
    /// 批次号 (field 60.2).
    BatchNo, "batch_no"
);
six_digits!(
    /// 凭证号 / system trace audit number (field 11).
    Stan, "stan"
);

impl BatchNo {
    /// The batch opened after this one settles: 999999 wraps to 000001 (000000 is never used).
    pub fn next(self) -> BatchNo {
        if self.0 >= Self::MAX { BatchNo(1) } else { BatchNo(self.0 + 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_id_is_fifteen_alphanumerics() {
        assert!(MerchantId::parse("898310048990001").is_ok());
        assert_eq!(MerchantId::parse("898310048990001  ").unwrap().as_str(), "898310048990001");
        let err = MerchantId::parse("8983100489900012").unwrap_err();
        assert_eq!(err.to_string(), "merchant_id must be 15 characters, got 16 characters");
        assert!(matches!(MerchantId::parse("89831004899000;"), Err(IdError::Charset { .. })));
    }

    #[test]
    fn six_digit_numbers() {
        assert_eq!(Stan::parse("000123").unwrap().get(), 123);
        assert_eq!(Stan::parse("000123").unwrap().to_string(), "000123");
        assert!(Stan::parse("123").is_err());
        assert!(Stan::parse("12345a").is_err());
        assert!(Stan::parse("+12345").is_err());
        assert!(BatchNo::new(1_000_000).is_err());
        assert_eq!(BatchNo::parse("999999").unwrap().next().get(), 1);
        assert_eq!(BatchNo::parse("000007").unwrap().next().get(), 8);
    }
}

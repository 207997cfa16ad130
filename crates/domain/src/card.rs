use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Deliberately does not echo the input: it may be a card number.
    #[error("card number must be 12 to 19 digits")]
    Format,
    #[error("masked card must look like 622202******1234 (6 digits, stars, 4 digits)")]
    MaskFormat,
    #[error("card key must be 32 bytes")]
    KeyLength,
}

/// A clear primary account number. It exists only between the edge that received it and
/// [`Pan::summary`]; it has no `Debug` that shows digits and no `Display` at all.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan(Secret<String>);

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", mask(self.0.expose()))
    }
}

/// What poslens keeps of a card: BIN, last four, the mask and the keyed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    pub bin: String,
    pub last4: String,
    pub masked: String,
    /// HMAC-SHA256 of the PAN under the installation's card key, hex. Empty when only a masked
    /// number was ever known.
    pub token: String,
}

impl CardSummary {
    /// From an already-masked number (`622202******1234`), as API clients and clearing files
    /// may send. No token can be made from it.
    pub fn from_masked(masked: &str) -> Result<CardSummary, CardError> {
        let m = masked.trim();
        let (bin, last4) = masked_parts(m)?;
        let mid = &m[6..m.len() - 4];
        // Written with `*` already (the usual case), the number is kept as given.
        let masked = if mid.bytes().all(|c| c == b'*') { m.to_owned() } else { format!("{bin}{}{last4}", "*".repeat(mid.len())) };
        Ok(CardSummary { masked, bin: bin.to_owned(), last4: last4.to_owned(), token: String::new() })
    }
}

/// The BIN and last four of an already-masked number (`622202******1234`; `X` or `x` may
/// stand for `*`), borrowed from it: nothing is allocated (a clearing file has a million).
pub fn masked_parts(masked: &str) -> Result<(&str, &str), CardError> {
    let m = masked.trim();
    let b = m.as_bytes();
    if !(12..=19).contains(&b.len()) {
        return Err(CardError::MaskFormat);
    }
    let (head, rest) = b.split_at(6);
    let (mid, tail) = rest.split_at(rest.len() - 4);
    let ok = head.iter().all(u8::is_ascii_digit)
        && tail.iter().all(u8::is_ascii_digit)
        && mid.iter().all(|&c| c == b'*' || c == b'X' || c == b'x');
    if !ok {
        return Err(CardError::MaskFormat);
    }
    // All ASCII: the cuts fall on character boundaries.
    Ok((&m[..6], &m[m.len() - 4..]))
}

impl Pan {
    pub fn parse(s: &str) -> Result<Pan, CardError> {
        let s = s.trim();
        if !(12..=19).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::Format);
        }
        Ok(Pan(Secret::new(s.to_owned())))
    }

    pub fn luhn_valid(&self) -> bool {
        luhn_valid(self.0.expose())
    }

    pub fn last4(&self) -> &str {
        let p = self.0.expose();
        &p[p.len() - 4..]
    }

    /// Reduces the PAN to what may be stored. After this call the clear number can be dropped.
    pub fn summary(&self, key: &CardKey) -> CardSummary {
        let p = self.0.expose();
        CardSummary {
            bin: p[..6].to_owned(),
            last4: p[p.len() - 4..].to_owned(),
            masked: mask(p),
            token: key.token(p),
        }
    }

    /// The clear digits, for the few places that must use them (MAC input, Luhn, token).
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// `6222020123456784321` → `622202*********4321`: first six and last four, stars between.
fn mask(p: &str) -> String {
    if p.len() < 10 {
        return "*".repeat(p.len());
    }
    format!("{}{}{}", &p[..6], "*".repeat(p.len() - 10), &p[p.len() - 4..])
}

/// The Luhn (mod 10) check digit test.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The installation's secret for card tokens. Created once per data directory by the caller.
#[derive(Clone)]
pub struct CardKey(Secret<[u8; 32]>);

impl fmt::Debug for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardKey(***)")
    }
}

impl CardKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<CardKey, CardError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CardError::KeyLength)?;
        Ok(CardKey(Secret::new(arr)))
    }

    pub fn token(&self, pan: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose()).expect("HMAC takes any key length");
        mac.update(pan.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> CardKey {
        CardKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn known_luhn_numbers() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4111a11111111111"));
    }

    #[test]
    fn summary_keeps_bin_last4_mask_and_token_only() {
        let pan = Pan::parse("6222021234567890123").unwrap();
        let s = pan.summary(&key());
        assert_eq!(s.bin, "622202");
        assert_eq!(s.last4, "0123");
        assert_eq!(s.masked, "622202*********0123");
        assert_eq!(s.token.len(), 64);
        assert!(!s.token.contains("6222021234567890123"));
        assert_eq!(format!("{pan:?}"), "Pan(622202*********0123)");
    }

    #[test]
    fn errors_never_echo_the_number() {
        let e = Pan::parse("62220212345x7890123").unwrap_err();
        assert!(!e.to_string().contains("6222"));
    }

    #[test]
    fn masked_input_is_accepted_and_normalised() {
        let s = CardSummary::from_masked("622202XXXXXX1234").unwrap();
        assert_eq!((s.bin.as_str(), s.last4.as_str(), s.masked.as_str()), ("622202", "1234", "622202******1234"));
        assert!(CardSummary::from_masked("6222021234561234").is_err(), "a clear PAN is not a mask");
    }

    fn with_check_digit(body: &str) -> String {
        (0..10).map(|d| format!("{body}{d}")).find(|c| luhn_valid(c)).unwrap()
    }

    proptest! {
        #[test]
        fn exactly_one_check_digit_is_valid(body in "[0-9]{11,18}") {
            let valid: Vec<_> = (0..10).map(|d| format!("{body}{d}")).filter(|c| luhn_valid(c)).collect();
            prop_assert_eq!(valid.len(), 1);
        }

        #[test]
        fn a_single_digit_change_breaks_luhn(body in "[0-9]{11,18}", pos in 0usize..19, delta in 1u8..10) {
            let pan = with_check_digit(&body);
            let pos = pos % pan.len();
            let mut bytes = pan.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn_valid(std::str::from_utf8(&bytes).unwrap()));
        }

        #[test]
        fn mask_shows_only_bin_and_last4(pan in "[0-9]{12,19}") {
            let s = Pan::parse(&pan).unwrap().summary(&key());
            prop_assert_eq!(s.masked.len(), pan.len());
            prop_assert_eq!(&s.masked[..6], &pan[..6]);
            prop_assert_eq!(&s.masked[pan.len() - 4..], &pan[pan.len() - 4..]);
            prop_assert!(s.masked[6..pan.len() - 4].bytes().all(|b| b == b'*'));
            prop_assert_eq!(CardSummary::from_masked(&s.masked).unwrap().last4, s.last4);
        }
    }
}

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative (got {0} fen)")]
    Negative(i64),
    #[error("amount must be a whole number of fen with at most two decimals in yuan: {0:?}")]
    Format(String),
    #[error("currency must be a 3-digit ISO 4217 numeric code or a 3-letter code, got {0:?}")]
    Currency(String),
}

/// Money in minor units (fen for CNY). Never negative: direction is carried by the
/// transaction kind, not the sign.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn from_fen(fen: i64) -> Result<Amount, MoneyError> {
        if fen < 0 {
            return Err(MoneyError::Negative(fen));
        }
        Ok(Amount(fen))
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    /// Parses a yuan amount with at most two decimals (`"12.30"`, `"12"`, `"0.5"`). Clearing
    /// files carry yuan; `12.345` is refused rather than rounded.
    pub fn parse_yuan(s: &str) -> Result<Amount, MoneyError> {
        let bad = || MoneyError::Format(s.to_owned());
        let t = s.trim();
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        if int.is_empty() || int.len() > 15 || frac.len() > 2 {
            return Err(bad());
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if t.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        let yuan: i64 = int.parse().map_err(|_| bad())?;
        let mut fen_part: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
        if frac.len() == 1 {
            fen_part *= 10;
        }
        Ok(Amount(yuan * 100 + fen_part))
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
}

/// Shown as yuan with two decimals: `1234` fen → `12.34`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({} fen)", self.0)
    }
}

/// ISO 4217 currency, kept as the alphabetic code. The wire carries the numeric one (`156`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");

    const TABLE: &'static [(&'static str, &'static str)] =
        &[("CNY", "156"), ("HKD", "344"), ("USD", "840"), ("EUR", "978"), ("JPY", "392")];

    /// Accepts `CNY` or `156` (either form of the same currency).
    pub fn parse(s: &str) -> Result<Currency, MoneyError> {
        let t = s.trim();
        for (alpha, num) in Self::TABLE {
            if t.eq_ignore_ascii_case(alpha) || t == *num {
                let b = alpha.as_bytes();
                return Ok(Currency([b[0], b[1], b[2]]));
            }
        }
        Err(MoneyError::Currency(s.to_owned()))
    }

    /// From a code exactly as [`Currency::as_str`] gives it (`CNY`), for compact encodings.
    pub fn from_code_bytes(b: &[u8]) -> Option<Currency> {
        Self::TABLE.iter().find(|(alpha, _)| alpha.as_bytes() == b).map(|(alpha, _)| {
            let a = alpha.as_bytes();
            Currency([a[0], a[1], a[2]])
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    pub fn numeric(&self) -> &'static str {
        Self::TABLE.iter().find(|(a, _)| *a == self.as_str()).map(|(_, n)| *n).unwrap_or("156")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parsing_refuses_a_third_decimal() {
        assert_eq!(Amount::parse_yuan("12.30").unwrap().fen(), 1230);
        assert_eq!(Amount::parse_yuan("12.3").unwrap().fen(), 1230);
        assert_eq!(Amount::parse_yuan("12").unwrap().fen(), 1200);
        assert_eq!(Amount::parse_yuan("0.05").unwrap().fen(), 5);
        for bad in ["12.345", "-1", "", ".5", "1.", "1e3", "abc", "1,000.00"] {
            assert!(Amount::parse_yuan(bad).is_err(), "{bad}");
        }
        assert_eq!(Amount::from_fen(1234).unwrap().to_string(), "12.34");
        assert_eq!(Amount::from_fen(5).unwrap().to_string(), "0.05");
        assert!(Amount::from_fen(-1).is_err());
    }

    #[test]
    fn currency_accepts_both_codes() {
        assert_eq!(Currency::parse("156").unwrap(), Currency::CNY);
        assert_eq!(Currency::parse("cny").unwrap().numeric(), "156");
        assert!(Currency::parse("XXX").is_err());
    }
}

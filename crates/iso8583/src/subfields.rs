//! Views of the structured fields: 48 (settlement totals, batch upload items and end), 60
//! (transaction context), 61 (original transaction) and 62 (working keys).
//! Each parses the field's logical value and turns back into exactly the same value.

use std::fmt;

use thiserror::Error;

/// A structured field whose content does not follow its layout.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("field {field}: {reason}")]
pub struct SubfieldError {
    pub field: u8,
    pub reason: String,
}

fn err(field: u8, reason: impl Into<String>) -> SubfieldError {
    SubfieldError {
        field,
        reason: reason.into(),
    }
}

fn digits_u64(s: &str) -> u64 {
    s.bytes().fold(0u64, |acc, d| {
        acc.wrapping_mul(10)
            .wrapping_add(u64::from(d.wrapping_sub(b'0')))
    })
}

fn check_digits(field: u8, s: &str) -> Result<(), SubfieldError> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(err(field, "not all digits"))
    }
}

/// A primary account number. `Debug` and `Display` show only the BIN (first 6) and last 4.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    /// `digits` must be 1..=19 ASCII digits.
    pub fn new(digits: &str) -> Option<Pan> {
        (!digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Pan(digits.to_owned()))
    }

    /// The clear PAN: call only where the clear value is needed (tokenising, Luhn, matching).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First six digits (or fewer for a shorter PAN).
    pub fn bin(&self) -> &str {
        &self.0[..self.0.len().min(6)]
    }

    /// Last four digits.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }

    /// First 6 and last 4 digits, the rest `*` (all `*` but the last 4 for PANs under 13).
    pub fn masked(&self) -> String {
        mask_pan(&self.0)
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks a PAN as first 6 + last 4 (PANs shorter than 13 digits keep only the last 4).
pub fn mask_pan(pan: &str) -> String {
    let n = pan.len();
    if n >= 13 {
        format!("{}{}{}", &pan[..6], "*".repeat(n - 10), &pan[n - 4..])
    } else {
        let keep = n.min(4).min(n / 2);
        format!("{}{}", "*".repeat(n - keep), &pan[n - keep..])
    }
}

/// Card data kept secret: track 2 or 3 (z digits with `D`). `Debug` shows only a masked PAN.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TrackData(String);

impl TrackData {
    pub(crate) fn new(s: &str) -> TrackData {
        TrackData(s.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digits before the first `D` (for track 2: the PAN).
    pub fn pan_part(&self) -> &str {
        self.0.split('D').next().unwrap_or("")
    }

    /// For track 2: YYMM right after the separator, when present.
    pub fn expiry(&self) -> Option<&str> {
        let after = self.0.split_once('D')?.1;
        after.get(..4)
    }

    /// PAN part masked, everything else `*`.
    pub fn masked(&self) -> String {
        mask_track(&self.0)
    }
}

/// Masks track data: the PAN before the first `D` as [`mask_pan`], the rest `*`.
pub fn mask_track(track: &str) -> String {
    match track.split_once('D') {
        Some((pan, rest)) => format!("{}D{}", mask_pan(pan), "*".repeat(rest.len())),
        None => "*".repeat(track.len()),
    }
}

impl fmt::Debug for TrackData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackData({})", self.masked())
    }
}

/// Field 60, transaction context: 60.1 n2 | 60.2 n6 | 60.3 n3 | [60.4 n1 | [60.5 n1 | reserved]].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field60 {
    /// 60.1 message type code, 2 digits ("22" purchase, "00" management ...).
    pub message_type: String,
    /// 60.2 batch number.
    pub batch: u32,
    /// 60.3 network management code, 3 digits ("000" in financial messages).
    pub network_code: String,
    /// 60.4 terminal read capability.
    pub read_capability: Option<u8>,
    /// 60.5 IC condition code.
    pub ic_condition: Option<u8>,
    /// Digits 14-17: accepted and echoed.
    pub reserved: String,
}

impl Field60 {
    /// A 60 with only the mandatory subfields.
    pub fn new(message_type: &str, batch: u32, network_code: &str) -> Field60 {
        Field60 {
            message_type: message_type.to_owned(),
            batch,
            network_code: network_code.to_owned(),
            read_capability: None,
            ic_condition: None,
            reserved: String::new(),
        }
    }

    pub fn parse(digits: &str) -> Result<Field60, SubfieldError> {
        check_digits(60, digits)?;
        if digits.len() < 11 {
            return Err(err(
                60,
                format!("{} digits; 60.1-60.3 need 11", digits.len()),
            ));
        }
        if digits.len() > 17 {
            return Err(err(60, format!("{} digits; at most 17", digits.len())));
        }
        let b = digits.as_bytes();
        Ok(Field60 {
            message_type: digits[..2].to_owned(),
            batch: digits_u64(&digits[2..8]) as u32,
            network_code: digits[8..11].to_owned(),
            read_capability: b.get(11).map(|d| d - b'0'),
            ic_condition: b.get(12).map(|d| d - b'0'),
            reserved: digits.get(13..).unwrap_or("").to_owned(),
        })
    }

    pub fn to_digits(&self) -> String {
        let mut s = format!(
            "{:0>2}{:06}{:0>3}",
            self.message_type,
            self.batch % 1_000_000,
            self.network_code
        );
        if let Some(d) = self.read_capability {
            s.push(char::from(b'0' + d % 10));
            if let Some(d) = self.ic_condition {
                s.push(char::from(b'0' + d % 10));
                s.push_str(&self.reserved);
            }
        }
        s
    }
}

/// Field 61, original transaction: 61.1 batch n6 | 61.2 STAN n6 | 61.3 date MMDD n4 | reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field61 {
    pub original_batch: u32,
    pub original_stan: u32,
    /// MMDD: the original reply's field 13.
    pub original_date: String,
    /// Digits after 16: accepted and kept.
    pub reserved: String,
}

impl Field61 {
    pub fn new(original_batch: u32, original_stan: u32, original_date: &str) -> Field61 {
        Field61 {
            original_batch,
            original_stan,
            original_date: original_date.to_owned(),
            reserved: String::new(),
        }
    }

    pub fn parse(digits: &str) -> Result<Field61, SubfieldError> {
        check_digits(61, digits)?;
        if digits.len() < 16 {
            return Err(err(
                61,
                format!("{} digits; 61.1-61.3 need 16", digits.len()),
            ));
        }
        Ok(Field61 {
            original_batch: digits_u64(&digits[..6]) as u32,
            original_stan: digits_u64(&digits[6..12]) as u32,
            original_date: digits[12..16].to_owned(),
            reserved: digits[16..].to_owned(),
        })
    }

    pub fn to_digits(&self) -> String {
        format!(
            "{:06}{:06}{:0>4}{}",
            self.original_batch % 1_000_000,
            self.original_stan % 1_000_000,
            self.original_date,
            self.reserved
        )
    }
}

/// Field 62 of a 0810: `PIN key under TMK (16) | check (4) | MAC key under TMK (16) | check (4)`.
/// The keys here are encrypted; see [`crate::mac`] to issue and open them.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkingKeys {
    pub pin_key_encrypted: [u8; 16],
    pub pin_key_check: [u8; 4],
    pub mac_key_encrypted: [u8; 16],
    pub mac_key_check: [u8; 4],
}

impl WorkingKeys {
    pub const LEN: usize = 40;

    pub fn parse(bytes: &[u8]) -> Result<WorkingKeys, SubfieldError> {
        if bytes.len() != Self::LEN {
            return Err(err(
                62,
                format!("{} bytes; working keys are 40", bytes.len()),
            ));
        }
        let mut k = WorkingKeys {
            pin_key_encrypted: [0; 16],
            pin_key_check: [0; 4],
            mac_key_encrypted: [0; 16],
            mac_key_check: [0; 4],
        };
        k.pin_key_encrypted.copy_from_slice(&bytes[..16]);
        k.pin_key_check.copy_from_slice(&bytes[16..20]);
        k.mac_key_encrypted.copy_from_slice(&bytes[20..36]);
        k.mac_key_check.copy_from_slice(&bytes[36..40]);
        Ok(k)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.pin_key_encrypted);
        v.extend_from_slice(&self.pin_key_check);
        v.extend_from_slice(&self.mac_key_encrypted);
        v.extend_from_slice(&self.mac_key_check);
        v
    }
}

impl fmt::Debug for WorkingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkingKeys")
            .field("pin_key_check", &hex::encode_upper(self.pin_key_check))
            .field("mac_key_check", &hex::encode_upper(self.mac_key_check))
            .finish_non_exhaustive()
    }
}

/// One half (domestic or foreign) of the settlement totals in field 48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// n12, fen.
    pub debit_amount_fen: u64,
    /// n3.
    pub debit_count: u16,
    /// n12, fen.
    pub credit_amount_fen: u64,
    /// n3.
    pub credit_count: u16,
    /// n1: 0 in requests (ignored by the host), 1 balanced, 2 not balanced in replies.
    pub result: u8,
}

impl Totals {
    const DIGITS: usize = 31;

    fn parse(d: &str) -> Totals {
        Totals {
            debit_amount_fen: digits_u64(&d[..12]),
            debit_count: digits_u64(&d[12..15]) as u16,
            credit_amount_fen: digits_u64(&d[15..27]),
            credit_count: digits_u64(&d[27..30]) as u16,
            result: d.as_bytes()[30] - b'0',
        }
    }

    fn write(&self, s: &mut String) {
        use fmt::Write;
        let _ = write!(
            s,
            "{:012}{:03}{:012}{:03}{}",
            self.debit_amount_fen % 1_000_000_000_000,
            self.debit_count % 1000,
            self.credit_amount_fen % 1_000_000_000_000,
            self.credit_count % 1000,
            self.result % 10
        );
    }
}

/// Field 48 of a 0500/0510: domestic then foreign totals, 62 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettlementTotals {
    pub domestic: Totals,
    pub foreign: Totals,
}

impl SettlementTotals {
    pub const DIGITS: usize = 2 * Totals::DIGITS;

    pub fn parse(digits: &str) -> Result<SettlementTotals, SubfieldError> {
        check_digits(48, digits)?;
        if digits.len() != Self::DIGITS {
            return Err(err(
                48,
                format!("{} digits; settlement totals are 62", digits.len()),
            ));
        }
        Ok(SettlementTotals {
            domestic: Totals::parse(&digits[..31]),
            foreign: Totals::parse(&digits[31..]),
        })
    }

    pub fn to_digits(&self) -> String {
        let mut s = String::with_capacity(Self::DIGITS);
        self.domestic.write(&mut s);
        self.foreign.write(&mut s);
        s
    }
}

/// One batch upload item: card scheme n2 | STAN n6 | PAN n20 (right-aligned) | amount n12.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadItem {
    pub card_scheme: String,
    pub stan: u32,
    pub pan: Pan,
    pub amount_fen: u64,
}

/// Field 48 of a 0320 with 60.3 = 201: item count n2 (1..=8), then the items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadItems {
    pub items: Vec<UploadItem>,
}

impl UploadItems {
    pub const ITEMS_MAX: usize = 8;
    const ITEM_DIGITS: usize = 40;

    pub fn parse(digits: &str) -> Result<UploadItems, SubfieldError> {
        check_digits(48, digits)?;
        if digits.len() < 2 {
            return Err(err(48, "no item count"));
        }
        let count = digits_u64(&digits[..2]) as usize;
        if !(1..=Self::ITEMS_MAX).contains(&count) {
            return Err(err(48, format!("item count {count} is outside 1..=8")));
        }
        if digits.len() != 2 + count * Self::ITEM_DIGITS {
            return Err(err(
                48,
                format!(
                    "{} digits for {count} items; expected {}",
                    digits.len(),
                    2 + count * 40
                ),
            ));
        }
        let mut items = Vec::with_capacity(count);
        for i in 0..count {
            let d = &digits[2 + i * 40..2 + (i + 1) * 40];
            let pan_digits = d[8..28].trim_start_matches('0');
            let pan =
                Pan::new(pan_digits).ok_or_else(|| err(48, format!("item {}: bad PAN", i + 1)))?;
            items.push(UploadItem {
                card_scheme: d[..2].to_owned(),
                stan: digits_u64(&d[2..8]) as u32,
                pan,
                amount_fen: digits_u64(&d[28..40]),
            });
        }
        Ok(UploadItems { items })
    }

    pub fn to_digits(&self) -> String {
        let mut s = format!("{:02}", self.items.len() % 100);
        for it in &self.items {
            s.push_str(&format!(
                "{:0>2}{:06}{:0>20}{:012}",
                it.card_scheme,
                it.stan % 1_000_000,
                it.pan.expose(),
                it.amount_fen % 1_000_000_000_000
            ));
        }
        s
    }
}

/// Field 48 of a 0320 with 60.3 = 202: total items uploaded, n4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadEnd {
    pub total_items: u16,
}

impl UploadEnd {
    pub fn parse(digits: &str) -> Result<UploadEnd, SubfieldError> {
        check_digits(48, digits)?;
        if digits.len() != 4 {
            return Err(err(
                48,
                format!("{} digits; end of upload count is 4", digits.len()),
            ));
        }
        Ok(UploadEnd {
            total_items: digits_u64(digits) as u16,
        })
    }

    pub fn to_digits(&self) -> String {
        format!("{:04}", self.total_items % 10_000)
    }
}

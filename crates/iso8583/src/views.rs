//! Typed views of the requests of spec section 3, built from a decoded [`Message`] with the
//! format checks that need the transaction (mandatory fields, 60.3, 61, card data), and built
//! back into messages. Host decisions (terminal known, MAC, batch, originals ...) are not here.

use std::fmt;

use thiserror::Error;

use crate::message::{Envelope, Message, Mti};
use crate::subfields::{
    Field60, Field61, Pan, SettlementTotals, SubfieldError, TrackData, UploadEnd, UploadItems,
};
use crate::FieldError;

/// Why a decoded message is not a valid request of section 3.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ViewError {
    /// Format error (`30`): a mandatory field is absent.
    #[error("field {field} is missing")]
    Missing { field: u8 },
    /// Format error (`30`): a field does not follow its layout or a cross-field rule.
    #[error("field {field}: {reason}")]
    Malformed { field: u8, reason: String },
    /// The MTI / 3 / 25 / 60.1 / 60.3 combination is not in section 3 (`40`).
    #[error("unsupported transaction: {0}")]
    Unsupported(String),
    /// The MTI is not one a terminal sends (no reply is possible).
    #[error("MTI {0} is not a request MTI")]
    NotARequest(Mti),
}

impl ViewError {
    /// The response code the spec gives for this error; `None` for a non-request MTI.
    pub fn response_code(&self) -> Option<&'static str> {
        match self {
            ViewError::Missing { .. } | ViewError::Malformed { .. } => Some("30"),
            ViewError::Unsupported(_) => Some("40"),
            ViewError::NotARequest(_) => None,
        }
    }

    /// True for the `30` (format error) cases.
    pub fn is_format_error(&self) -> bool {
        matches!(
            self,
            ViewError::Missing { .. } | ViewError::Malformed { .. }
        )
    }
}

impl From<SubfieldError> for ViewError {
    fn from(e: SubfieldError) -> ViewError {
        ViewError::Malformed {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// Every transaction of section 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    SignOn,
    SignOff,
    EchoTest,
    Financial(FinancialKind),
    Reversal(FinancialKind),
    BatchSettlement,
    BatchUpload,
    BatchUploadEnd,
}

impl TransactionKind {
    pub fn name(self) -> &'static str {
        match self {
            TransactionKind::SignOn => "sign-on",
            TransactionKind::SignOff => "sign-off",
            TransactionKind::EchoTest => "echo test",
            TransactionKind::Financial(k) => k.name(),
            TransactionKind::Reversal(_) => "reversal",
            TransactionKind::BatchSettlement => "batch settlement",
            TransactionKind::BatchUpload => "batch upload",
            TransactionKind::BatchUploadEnd => "batch upload end",
        }
    }
}

/// The financial transactions (0100, 0200, 0220 and what a 0400 reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinancialKind {
    BalanceInquiry,
    Purchase,
    PurchaseVoid,
    Refund,
    PreAuth,
    PreAuthVoid,
    PreAuthCompletion,
    CompletionVoid,
}

impl FinancialKind {
    pub const ALL: [FinancialKind; 8] = [
        FinancialKind::BalanceInquiry,
        FinancialKind::Purchase,
        FinancialKind::PurchaseVoid,
        FinancialKind::Refund,
        FinancialKind::PreAuth,
        FinancialKind::PreAuthVoid,
        FinancialKind::PreAuthCompletion,
        FinancialKind::CompletionVoid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FinancialKind::BalanceInquiry => "balance inquiry",
            FinancialKind::Purchase => "purchase",
            FinancialKind::PurchaseVoid => "purchase void",
            FinancialKind::Refund => "refund",
            FinancialKind::PreAuth => "pre-authorization",
            FinancialKind::PreAuthVoid => "pre-auth void",
            FinancialKind::PreAuthCompletion => "pre-auth completion",
            FinancialKind::CompletionVoid => "completion void",
        }
    }

    /// (request MTI, field 3, field 25, 60.1) of the spec's table.
    pub fn combination(self) -> (Mti, &'static str, &'static str, &'static str) {
        use FinancialKind::*;
        match self {
            BalanceInquiry => (Mti::FINANCIAL_REQUEST, "310000", "00", "01"),
            Purchase => (Mti::FINANCIAL_REQUEST, "000000", "00", "22"),
            PurchaseVoid => (Mti::FINANCIAL_REQUEST, "200000", "00", "23"),
            Refund => (Mti::ADVICE_REQUEST, "200000", "00", "25"),
            PreAuth => (Mti::AUTH_REQUEST, "030000", "06", "10"),
            PreAuthVoid => (Mti::AUTH_REQUEST, "200000", "06", "11"),
            PreAuthCompletion => (Mti::FINANCIAL_REQUEST, "000000", "06", "20"),
            CompletionVoid => (Mti::FINANCIAL_REQUEST, "200000", "06", "21"),
        }
    }

    pub fn request_mti(self) -> Mti {
        self.combination().0
    }

    /// Fields this kind requires beyond the purchase set (37 RRN, 38 auth code, 61 original).
    pub fn extra_fields(self) -> &'static [u8] {
        use FinancialKind::*;
        match self {
            BalanceInquiry | Purchase | PreAuth => &[],
            PurchaseVoid | CompletionVoid => &[37, 38, 61],
            Refund => &[37, 61],
            PreAuthVoid | PreAuthCompletion => &[38, 61],
        }
    }

    /// Field 4 is mandatory for everything but the balance inquiry.
    pub fn requires_amount(self) -> bool {
        self != FinancialKind::BalanceInquiry
    }

    fn by_message_type(code: &str) -> Option<FinancialKind> {
        FinancialKind::ALL
            .into_iter()
            .find(|k| k.combination().3 == code)
    }
}

/// Card data that never appears in clear in `Debug` (PIN block, IC data).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes masked>)", self.0.len())
    }
}

/// A financial request (0100, 0200, 0220) or the body of a reversal (0400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinancialRequest {
    pub kind: FinancialKind,
    /// Field 2.
    pub pan: Option<Pan>,
    /// Field 3.
    pub processing_code: String,
    /// Field 4, fen.
    pub amount_fen: Option<u64>,
    /// Field 11.
    pub stan: u32,
    /// Field 14, YYMM.
    pub expiry: Option<String>,
    /// Field 22.
    pub entry_mode: String,
    /// Field 23.
    pub card_sequence: Option<String>,
    /// Field 25.
    pub condition_code: String,
    /// Field 26.
    pub pin_capture: Option<String>,
    /// Field 35.
    pub track2: Option<TrackData>,
    /// Field 36.
    pub track3: Option<TrackData>,
    /// Field 37: the original's RRN (void, refund, completion void).
    pub rrn: Option<String>,
    /// Field 38: the original's auth code (voids, pre-auth void, completion).
    pub auth_code: Option<String>,
    /// Field 41, trailing spaces trimmed.
    pub terminal_id: String,
    /// Field 42, trailing spaces trimmed.
    pub merchant_id: String,
    /// Field 49.
    pub currency: String,
    /// Field 52.
    pub pin_block: Option<SecretBytes>,
    /// Field 53.
    pub security_info: Option<String>,
    /// Field 55, kept, not interpreted.
    pub ic_data: Option<SecretBytes>,
    /// Field 60.
    pub context: Field60,
    /// Field 61.
    pub original: Option<Field61>,
    /// Field 64 as received (verify with [`crate::mac`] against the raw message).
    pub mac: Option<[u8; 8]>,
}

impl FinancialRequest {
    /// The PAN: field 2, else the digits of track 2 before `D`.
    pub fn card_pan(&self) -> Option<Pan> {
        self.pan
            .clone()
            .or_else(|| self.track2.as_ref().and_then(|t| Pan::new(t.pan_part())))
    }

    /// Field 14, else YYMM from track 2.
    pub fn card_expiry(&self) -> Option<&str> {
        self.expiry
            .as_deref()
            .or_else(|| self.track2.as_ref().and_then(|t| t.expiry()))
    }

    /// Manual entry (22 = 01x).
    pub fn is_manual_entry(&self) -> bool {
        self.entry_mode.starts_with("01")
    }

    fn write(&self, m: &mut Message) -> Result<(), FieldError> {
        if let Some(p) = &self.pan {
            m.set(2, p.expose())?;
        }
        m.set(3, &self.processing_code)?;
        if let Some(a) = self.amount_fen {
            m.set(4, format!("{a:012}"))?;
        }
        m.set(11, format!("{:06}", self.stan))?;
        set_opt(m, 14, self.expiry.as_deref())?;
        m.set(22, &self.entry_mode)?;
        set_opt(m, 23, self.card_sequence.as_deref())?;
        m.set(25, &self.condition_code)?;
        set_opt(m, 26, self.pin_capture.as_deref())?;
        set_opt(m, 35, self.track2.as_ref().map(TrackData::expose))?;
        set_opt(m, 36, self.track3.as_ref().map(TrackData::expose))?;
        set_opt(m, 37, self.rrn.as_deref())?;
        set_opt(m, 38, self.auth_code.as_deref())?;
        set_ids(m, &self.terminal_id, &self.merchant_id)?;
        m.set(49, &self.currency)?;
        if let Some(p) = &self.pin_block {
            m.set(52, p.expose())?;
        }
        set_opt(m, 53, self.security_info.as_deref())?;
        if let Some(ic) = &self.ic_data {
            m.set(55, ic.expose())?;
        }
        m.set(60, self.context.to_digits())?;
        if let Some(o) = &self.original {
            m.set(61, o.to_digits())?;
        }
        if let Some(mac) = &self.mac {
            m.set(64, mac)?;
        }
        Ok(())
    }

    pub fn to_message(&self, envelope: Envelope) -> Result<Message, FieldError> {
        let mut m = Message::new(envelope, self.kind.request_mti());
        self.write(&mut m)?;
        Ok(m)
    }

    fn parse(m: &Message) -> Result<FinancialRequest, ViewError> {
        for f in [3, 11, 22, 25, 41, 42, 49, 60] {
            require(m, f)?;
        }
        let context = Field60::parse(text(m, 60)?)?;
        if context.network_code != "000" {
            return Err(ViewError::Malformed {
                field: 60,
                reason: format!(
                    "60.3 is {}; financial messages carry 000",
                    context.network_code
                ),
            });
        }
        let original = m.get_str(61).map(Field61::parse).transpose()?;
        let processing_code = text(m, 3)?.to_owned();
        let condition_code = text(m, 25)?.to_owned();
        let unsupported = || {
            ViewError::Unsupported(format!(
                "MTI {} with 3={processing_code} 25={condition_code} 60.1={}",
                m.mti(),
                context.message_type
            ))
        };
        let kind = FinancialKind::by_message_type(&context.message_type).ok_or_else(unsupported)?;
        let (mti, code3, code25, _) = kind.combination();
        let mti_ok = m.mti() == mti || m.mti() == Mti::REVERSAL_REQUEST;
        if !mti_ok || processing_code != code3 || condition_code != code25 {
            return Err(unsupported());
        }
        if kind.requires_amount() {
            require(m, 4)?;
        }
        for &f in kind.extra_fields() {
            require(m, f)?;
        }
        let pan = m
            .get_str(2)
            .map(|p| Pan::new(p).ok_or_else(|| malformed(2, "bad PAN")));
        let pan = pan.transpose()?;
        let track2 = m.get_str(35).map(TrackData::new);
        match (&pan, &track2) {
            (None, None) => return Err(ViewError::Missing { field: 2 }),
            (Some(p), Some(t)) if p.expose() != t.pan_part() => {
                return Err(malformed(35, "the PAN before D differs from field 2"))
            }
            _ => {}
        }
        let entry_mode = text(m, 22)?.to_owned();
        if entry_mode.starts_with("01") && !m.has(14) {
            return Err(ViewError::Missing { field: 14 });
        }
        Ok(FinancialRequest {
            kind,
            pan,
            processing_code,
            amount_fen: m.get_str(4).map(digits_u64),
            stan: stan(m)?,
            expiry: opt_text(m, 14),
            entry_mode,
            card_sequence: opt_text(m, 23),
            condition_code,
            pin_capture: opt_text(m, 26),
            track2,
            track3: m.get_str(36).map(TrackData::new),
            rrn: opt_text(m, 37),
            auth_code: opt_text(m, 38),
            terminal_id: trimmed(m, 41)?,
            merchant_id: trimmed(m, 42)?,
            currency: text(m, 49)?.to_owned(),
            pin_block: m.get(52).map(|b| SecretBytes(b.to_vec())),
            security_info: opt_text(m, 53),
            ic_data: m.get(55).map(|b| SecretBytes(b.to_vec())),
            context,
            original,
            mac: mac(m),
        })
    }
}

/// 0400: the original request's fields, with 39 = the reversal reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    /// `98` no reply received, `06` other (kept as sent).
    pub reason: String,
    /// The original request as repeated in the reversal; `kind` is the original's.
    pub original: FinancialRequest,
}

impl Reversal {
    pub fn to_message(&self, envelope: Envelope) -> Result<Message, FieldError> {
        let mut m = Message::new(envelope, Mti::REVERSAL_REQUEST);
        self.original.write(&mut m)?;
        m.set(39, &self.reason)?;
        Ok(m)
    }
}

/// 0800 sign-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOn {
    pub stan: u32,
    pub terminal_id: String,
    pub merchant_id: String,
    /// 60.1 = 00, 60.3 = 003 or 004; the request's 60.2 is ignored by the host.
    pub context: Field60,
    /// Field 63 (63.1 operator id an3 first).
    pub operator: String,
}

/// 0820 sign-off (60.3 = 002).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOff {
    pub stan: u32,
    pub terminal_id: String,
    pub merchant_id: String,
    pub context: Field60,
}

/// 0820 echo test (60.3 = 301); 11 is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoTest {
    pub stan: Option<u32>,
    pub terminal_id: String,
    pub merchant_id: String,
    pub context: Field60,
}

/// 0500 batch settlement (60.3 = 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettlement {
    pub stan: u32,
    pub terminal_id: String,
    pub merchant_id: String,
    pub totals: SettlementTotals,
    pub currency: String,
    pub context: Field60,
    pub operator: String,
}

/// What a 0320 carries in 48.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadContent {
    /// 60.3 = 201.
    Items(UploadItems),
    /// 60.3 = 202.
    End(UploadEnd),
}

/// 0320 batch upload (60.2 = the batch just settled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpload {
    pub stan: u32,
    pub terminal_id: String,
    pub merchant_id: String,
    pub context: Field60,
    pub content: UploadContent,
}

/// A request of section 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    SignOn(SignOn),
    SignOff(SignOff),
    EchoTest(EchoTest),
    Financial(FinancialRequest),
    Reversal(Reversal),
    BatchSettlement(BatchSettlement),
    BatchUpload(BatchUpload),
}

impl Request {
    /// Validates `m` as a request of section 3: first the format (`30`: missing or malformed
    /// fields, 60.3 of a financial message, 61, card data), then the combination (`40`).
    pub fn from_message(m: &Message) -> Result<Request, ViewError> {
        let mti = m.mti();
        match mti.value() {
            100 | 200 | 220 => FinancialRequest::parse(m).map(Request::Financial),
            400 => {
                require(m, 39)?;
                let original = FinancialRequest::parse(m)?;
                Ok(Request::Reversal(Reversal {
                    reason: text(m, 39)?.to_owned(),
                    original,
                }))
            }
            800 => {
                for f in [11, 41, 42, 60, 63] {
                    require(m, f)?;
                }
                let context = management_context(m, &["003", "004"])?;
                Ok(Request::SignOn(SignOn {
                    stan: stan(m)?,
                    terminal_id: trimmed(m, 41)?,
                    merchant_id: trimmed(m, 42)?,
                    context,
                    operator: text(m, 63)?.to_owned(),
                }))
            }
            820 => {
                for f in [41, 42, 60] {
                    require(m, f)?;
                }
                let context = management_context(m, &["002", "301"])?;
                if context.network_code == "002" {
                    require(m, 11)?;
                    Ok(Request::SignOff(SignOff {
                        stan: stan(m)?,
                        terminal_id: trimmed(m, 41)?,
                        merchant_id: trimmed(m, 42)?,
                        context,
                    }))
                } else {
                    Ok(Request::EchoTest(EchoTest {
                        stan: m.get_str(11).map(|s| digits_u64(s) as u32),
                        terminal_id: trimmed(m, 41)?,
                        merchant_id: trimmed(m, 42)?,
                        context,
                    }))
                }
            }
            500 => {
                for f in [11, 41, 42, 48, 49, 60, 63] {
                    require(m, f)?;
                }
                let context = management_context(m, &["201"])?;
                Ok(Request::BatchSettlement(BatchSettlement {
                    stan: stan(m)?,
                    terminal_id: trimmed(m, 41)?,
                    merchant_id: trimmed(m, 42)?,
                    totals: SettlementTotals::parse(text(m, 48)?)?,
                    currency: text(m, 49)?.to_owned(),
                    context,
                    operator: text(m, 63)?.to_owned(),
                }))
            }
            320 => {
                for f in [11, 41, 42, 48, 60] {
                    require(m, f)?;
                }
                let context = management_context(m, &["201", "202"])?;
                let content = if context.network_code == "201" {
                    UploadContent::Items(UploadItems::parse(text(m, 48)?)?)
                } else {
                    UploadContent::End(UploadEnd::parse(text(m, 48)?)?)
                };
                Ok(Request::BatchUpload(BatchUpload {
                    stan: stan(m)?,
                    terminal_id: trimmed(m, 41)?,
                    merchant_id: trimmed(m, 42)?,
                    context,
                    content,
                }))
            }
            _ => Err(ViewError::NotARequest(mti)),
        }
    }

    /// Builds the request message back (field 64 included when the view carries one).
    pub fn to_message(&self, envelope: Envelope) -> Result<Message, FieldError> {
        match self {
            Request::Financial(f) => f.to_message(envelope),
            Request::Reversal(r) => r.to_message(envelope),
            Request::SignOn(s) => {
                let mut m = Message::new(envelope, Mti::NETWORK_REQUEST);
                m.set(11, format!("{:06}", s.stan))?;
                set_ids(&mut m, &s.terminal_id, &s.merchant_id)?;
                m.set(60, s.context.to_digits())?;
                m.set(63, &s.operator)?;
                Ok(m)
            }
            Request::SignOff(s) => {
                let mut m = Message::new(envelope, Mti::NETWORK_ADVICE_REQUEST);
                m.set(11, format!("{:06}", s.stan))?;
                set_ids(&mut m, &s.terminal_id, &s.merchant_id)?;
                m.set(60, s.context.to_digits())?;
                Ok(m)
            }
            Request::EchoTest(e) => {
                let mut m = Message::new(envelope, Mti::NETWORK_ADVICE_REQUEST);
                if let Some(stan) = e.stan {
                    m.set(11, format!("{stan:06}"))?;
                }
                set_ids(&mut m, &e.terminal_id, &e.merchant_id)?;
                m.set(60, e.context.to_digits())?;
                Ok(m)
            }
            Request::BatchSettlement(s) => {
                let mut m = Message::new(envelope, Mti::SETTLEMENT_REQUEST);
                m.set(11, format!("{:06}", s.stan))?;
                set_ids(&mut m, &s.terminal_id, &s.merchant_id)?;
                m.set(48, s.totals.to_digits())?;
                m.set(49, &s.currency)?;
                m.set(60, s.context.to_digits())?;
                m.set(63, &s.operator)?;
                Ok(m)
            }
            Request::BatchUpload(u) => {
                let mut m = Message::new(envelope, Mti::BATCH_UPLOAD_REQUEST);
                m.set(11, format!("{:06}", u.stan))?;
                set_ids(&mut m, &u.terminal_id, &u.merchant_id)?;
                let d48 = match &u.content {
                    UploadContent::Items(i) => i.to_digits(),
                    UploadContent::End(e) => e.to_digits(),
                };
                m.set(48, d48)?;
                m.set(60, u.context.to_digits())?;
                Ok(m)
            }
        }
    }

    pub fn kind(&self) -> TransactionKind {
        match self {
            Request::SignOn(_) => TransactionKind::SignOn,
            Request::SignOff(_) => TransactionKind::SignOff,
            Request::EchoTest(_) => TransactionKind::EchoTest,
            Request::Financial(f) => TransactionKind::Financial(f.kind),
            Request::Reversal(r) => TransactionKind::Reversal(r.original.kind),
            Request::BatchSettlement(_) => TransactionKind::BatchSettlement,
            Request::BatchUpload(u) => match u.content {
                UploadContent::Items(_) => TransactionKind::BatchUpload,
                UploadContent::End(_) => TransactionKind::BatchUploadEnd,
            },
        }
    }

    /// Field 11 (absent only in an echo test without it).
    pub fn stan(&self) -> Option<u32> {
        match self {
            Request::SignOn(s) => Some(s.stan),
            Request::SignOff(s) => Some(s.stan),
            Request::EchoTest(e) => e.stan,
            Request::Financial(f) => Some(f.stan),
            Request::Reversal(r) => Some(r.original.stan),
            Request::BatchSettlement(s) => Some(s.stan),
            Request::BatchUpload(u) => Some(u.stan),
        }
    }

    /// Field 41, trimmed.
    pub fn terminal_id(&self) -> &str {
        match self {
            Request::SignOn(s) => &s.terminal_id,
            Request::SignOff(s) => &s.terminal_id,
            Request::EchoTest(e) => &e.terminal_id,
            Request::Financial(f) => &f.terminal_id,
            Request::Reversal(r) => &r.original.terminal_id,
            Request::BatchSettlement(s) => &s.terminal_id,
            Request::BatchUpload(u) => &u.terminal_id,
        }
    }

    /// Field 42, trimmed.
    pub fn merchant_id(&self) -> &str {
        match self {
            Request::SignOn(s) => &s.merchant_id,
            Request::SignOff(s) => &s.merchant_id,
            Request::EchoTest(e) => &e.merchant_id,
            Request::Financial(f) => &f.merchant_id,
            Request::Reversal(r) => &r.original.merchant_id,
            Request::BatchSettlement(s) => &s.merchant_id,
            Request::BatchUpload(u) => &u.merchant_id,
        }
    }

    /// Field 60.
    pub fn context(&self) -> &Field60 {
        match self {
            Request::SignOn(s) => &s.context,
            Request::SignOff(s) => &s.context,
            Request::EchoTest(e) => &e.context,
            Request::Financial(f) => &f.context,
            Request::Reversal(r) => &r.original.context,
            Request::BatchSettlement(s) => &s.context,
            Request::BatchUpload(u) => &u.context,
        }
    }
}

fn management_context(m: &Message, network_codes: &[&str]) -> Result<Field60, ViewError> {
    let context = Field60::parse(text(m, 60)?)?;
    if context.message_type != "00" || !network_codes.contains(&context.network_code.as_str()) {
        return Err(ViewError::Unsupported(format!(
            "MTI {} with 60.1={} 60.3={}",
            m.mti(),
            context.message_type,
            context.network_code
        )));
    }
    Ok(context)
}

fn malformed(field: u8, reason: &str) -> ViewError {
    ViewError::Malformed {
        field,
        reason: reason.to_owned(),
    }
}

fn require(m: &Message, field: u8) -> Result<(), ViewError> {
    if m.has(field) {
        Ok(())
    } else {
        Err(ViewError::Missing { field })
    }
}

fn text(m: &Message, field: u8) -> Result<&str, ViewError> {
    m.get_str(field).ok_or(ViewError::Missing { field })
}

fn opt_text(m: &Message, field: u8) -> Option<String> {
    m.get_str(field).map(str::to_owned)
}

fn trimmed(m: &Message, field: u8) -> Result<String, ViewError> {
    Ok(text(m, field)?.trim_end_matches(' ').to_owned())
}

fn stan(m: &Message) -> Result<u32, ViewError> {
    Ok(digits_u64(text(m, 11)?) as u32)
}

fn mac(m: &Message) -> Option<[u8; 8]> {
    m.get(64).and_then(|b| b.try_into().ok())
}

pub(crate) fn digits_u64(s: &str) -> u64 {
    s.bytes().fold(0u64, |acc, d| {
        acc.wrapping_mul(10)
            .wrapping_add(u64::from(d.wrapping_sub(b'0')))
    })
}

fn set_opt(m: &mut Message, field: u8, v: Option<&str>) -> Result<(), FieldError> {
    match v {
        Some(v) => m.set(field, v),
        None => Ok(()),
    }
}

/// Sets 41 and 42, right-padded with spaces to 8 and 15.
pub(crate) fn set_ids(
    m: &mut Message,
    terminal_id: &str,
    merchant_id: &str,
) -> Result<(), FieldError> {
    m.set(41, format!("{terminal_id:<8}"))?;
    m.set(42, format!("{merchant_id:<15}"))
}

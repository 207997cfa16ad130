//! Building replies: the envelope and MTI of a reply (section 1), the `30` format-error reply,
//! and the field set of each reply MTI (section 3), filled from the request and the host's
//! decision. The decision itself (response code, RRN, times ...) is the caller's.

use thiserror::Error;

use crate::message::{Message, Mti};
use crate::FieldError;

/// Why a reply could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("MTI {0} is not a request MTI; it gets no reply")]
    NotARequest(Mti),
    #[error(transparent)]
    Field(#[from] FieldError),
}

impl Message {
    /// An empty reply: MTI + 10, TPDU addresses swapped, header echoed with byte 2 = 0x00.
    /// `None` when this message's MTI is not a request MTI.
    pub fn reply_skeleton(&self) -> Option<Message> {
        let mti = self.mti().reply()?;
        Some(Message::new(self.envelope().reply(), mti))
    }

    /// The `30` reply to this (decoded, but invalid) request: 11, 39 = `30`, 41 and 42 when
    /// present, never 64. `None` when the MTI is not a request MTI or 11 is absent: then the
    /// connection is closed.
    pub fn format_error_reply(&self) -> Option<Message> {
        let mut reply = self.reply_skeleton()?;
        if !self.has(11) {
            return None;
        }
        reply.copy_fields_from(self, &[11]);
        reply.set(39, "30").ok()?;
        reply.copy_fields_from(self, &[41, 42]);
        Some(reply)
    }
}

/// The `30` reply for a body that failed to decode, or `None` when the connection must be
/// closed instead: the MTI is not a request MTI, or some field up to 11 could not be read.
/// Fields 41 and 42 are added when they could be read.
pub fn format_error_reply_for_body(body: &[u8]) -> Option<Message> {
    let (partial, _) = Message::decode_lenient(body);
    partial?.format_error_reply()
}

/// What the host decided, to be filled into a reply by [`build_reply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyData {
    /// Field 39.
    pub response_code: String,
    /// Field 12, hhmmss.
    pub local_time: String,
    /// Field 13, MMDD.
    pub local_date: String,
    /// Field 15, MMDD: sent in financial replies with 39 = `00` and in every 0510.
    pub settlement_date: Option<String>,
    /// Field 32: the host's acquiring institution id.
    pub acquirer_id: String,
    /// Field 37: financial replies, 0810, 0510 (ignored for 0830 and 0330). A 0410 carries
    /// the original's RRN (a new one for an orphan reversal).
    pub rrn: Option<String>,
    /// Field 38: financial replies with 39 = `00` (a 0410: the original's, none for an orphan).
    pub auth_code: Option<String>,
    /// Field 60 when it differs from the request's (0810: 60.2 = the open batch).
    pub context: Option<String>,
    /// Field 48 of a 0510 (totals with result digits); the request's when `None`.
    pub additional_data: Option<String>,
    /// Field 62 of a 0810 (40 bytes of working keys).
    pub working_keys: Option<Vec<u8>>,
}

const FINANCIAL_ECHO: [u8; 5] = [3, 4, 25, 49, 60];

/// Builds the reply to `request` with exactly the field set section 3 gives for its MTI and
/// response code. Field 64 is not set: sign the reply with [`crate::mac`] when the terminal is
/// keyed and the code is not `30`, `A0` or `97`.
pub fn build_reply(request: &Message, data: &ReplyData) -> Result<Message, ReplyError> {
    let mut r = request
        .reply_skeleton()
        .ok_or(ReplyError::NotARequest(request.mti()))?;
    let approved = data.response_code == "00";
    let mti = request.mti().value();
    let financial = matches!(mti, 100 | 200 | 220 | 400);
    if financial {
        r.copy_fields_from(request, &[2, 3, 4]);
    }
    r.copy_fields_from(request, &[11]);
    r.set(12, &data.local_time)?;
    r.set(13, &data.local_date)?;
    let with_settlement_date = (financial && approved) || mti == 500;
    if let (true, Some(d)) = (with_settlement_date, &data.settlement_date) {
        r.set(15, d)?;
    }
    if financial {
        r.copy_fields_from(request, &[25]);
    }
    r.set(32, &data.acquirer_id)?;
    if matches!(mti, 100 | 200 | 220 | 400 | 800 | 500) {
        if let Some(rrn) = &data.rrn {
            r.set(37, rrn)?;
        }
    }
    if let (true, true, Some(code)) = (financial, approved, &data.auth_code) {
        r.set(38, code)?;
    }
    r.set(39, &data.response_code)?;
    r.copy_fields_from(request, &[41, 42]);
    if mti == 500 {
        match &data.additional_data {
            Some(d) => r.set(48, d)?,
            None => r.copy_fields_from(request, &[48]),
        }
    }
    if financial || mti == 500 {
        r.copy_fields_from(request, &[49]);
    }
    match &data.context {
        Some(c) => r.set(60, c)?,
        None => r.copy_fields_from(request, &[60]),
    }
    if let (800, Some(keys)) = (mti, &data.working_keys) {
        r.set(62, keys)?;
    }
    debug_assert!(FINANCIAL_ECHO
        .iter()
        .all(|f| !financial || r.has(*f) || !request.has(*f)));
    Ok(r)
}

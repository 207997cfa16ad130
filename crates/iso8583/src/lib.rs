//! ISO 8583 codec for the CUPS POS dialect of `shared/spec/ISO8583-CUPS.md`.
//!
//! What it does: turns bytes into messages and back. It splits a byte stream into frames
//! ([`FrameDecoder`]), decodes and encodes message bodies with the spec's field table held as
//! data ([`spec::FIELDS`]), gives typed views of every section 3 request ([`Request`]) and of
//! the structured fields 48/60/61/62 ([`subfields`]), builds replies (envelope swap, `30`
//! format-error replies, the section 3 field sets: [`build_reply`]), computes and verifies the
//! retail MAC and handles working keys ([`mac`]), and describes messages for people with card
//! data masked ([`decode_to_json_value`]).
//!
//! What it does not do: no sockets, no clock, no randomness, no store, no logging. It does not
//! decide responses (terminal known, batch open, originals, limits, test cards): that is the
//! POS front end's job, which calls this crate with bytes and gets bytes back. It never panics
//! on any input and contains no `unsafe`.

pub mod describe;
mod error;
pub mod frame;
pub mod mac;
mod message;
pub mod reply;
pub mod spec;
pub mod subfields;
pub mod views;

pub use describe::{decode_to_json_value, describe_frame, display_value};
pub use error::{DecodeError, EncodeError, FieldError, FieldErrorKind};
pub use frame::{
    frame_body, FrameDecoder, FrameError, FrameLimits, FrameStatus, FRAME_LEN_MAX, FRAME_LEN_MIN,
};
pub use mac::{Key16, MacError, MacKey, PinKey, TerminalMasterKey};
pub use message::{Envelope, Header, Message, Mti, Tpdu, BODY_LEN_MIN, ENVELOPE_LEN};
pub use reply::{build_reply, format_error_reply_for_body, ReplyData, ReplyError};
pub use subfields::{
    Field60, Field61, Pan, SettlementTotals, SubfieldError, Totals, TrackData, UploadEnd,
    UploadItem, UploadItems, WorkingKeys,
};
pub use views::{
    BatchSettlement, BatchUpload, EchoTest, FinancialKind, FinancialRequest, Request, Reversal,
    SecretBytes, SignOff, SignOn, TransactionKind, UploadContent, ViewError,
};

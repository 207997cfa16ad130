//! The poslens domain model: identifiers, money, transaction vocabulary, the settlement-date
//! rule, card handling and status projection.
//!
//! This crate does no I/O: no files, no sockets, no clock (callers pass instants in), no
//! randomness. Types here do not derive `Serialize`; the edges (HTTP, store, codec) convert by
//! hand. Every constructor parses once and rejects bad values, so a value of these types is
//! valid wherever it travels.

mod card;
mod ids;
mod money;
mod secret;
mod settlement;
mod txn;

pub use card::{luhn_valid, masked_parts, CardError, CardKey, CardSummary, Pan};
pub use ids::{AuthCode, BatchNo, IdError, MerchantId, Rrn, Stan, TerminalId};
pub use money::{Amount, Currency, MoneyError};
pub use secret::Secret;
pub use settlement::{CutOff, MerchantClock, SettlementDate, SettlementError};
pub use txn::{
    project_status, Channel, MerchantStatus, ParseEnumError, Related, ResponseCode, Role, Source,
    TxnKind, TxnStatus,
};

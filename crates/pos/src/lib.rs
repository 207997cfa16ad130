//! The POS front end: terminals speak the ISO 8583 dialect of `shared/spec/ISO8583-CUPS.md` to a
//! tokio TCP listener ([`server`]), and the [`Host`] answers every message of section 3 with the
//! behaviour of section 4: the order of checks, the built-in authorization policy and test
//! cards, retransmission idempotency, the open batch, reversals, batch settlement and upload,
//! and the MAC.
//!
//! What it guarantees: a reply is written only after the request's record is durably in the
//! store (`TxnRepo::ingest` returned `Ok`); a store failure answers `96` and approves nothing.
//! The clear PAN is reduced to a [`domain::CardSummary`] in the first function that sees it and
//! is never stored or logged. No input panics the host; every limit has a name ([`Limits`]).
//!
//! What it does not do: no wire encoding (that is `iso8583`), no SQL (that is `store`), no
//! cardholder accounts (test cards stand in for an issuer), no PIN verification. Per-terminal
//! sign-on state and working keys (encrypted under the terminal master key) and the RRN block
//! counter live in small files in the data directory until the store has tables for them
//! ([`session`]); batch-upload and reversal discrepancies go to the store (`store::PosRepo`).
//!
//! [`sim`] is a terminal simulator over the same codec, used by `poslens terminal-sim`, the
//! tests and the benchmarks.

mod error;
mod host;
pub mod server;
pub mod session;
pub mod sim;

use std::path::PathBuf;
use std::time::Duration;

pub use error::PosError;
pub use host::{Discrepancy, DiscrepancyKind, Host, Outcome};
pub use server::{spawn, Listener};

/// Every limit of the listener, named.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; further connections are closed at once.
    pub connections_max: usize,
    /// Requests of one connection being decided at the same time (pipelining).
    pub in_flight_per_connection_max: usize,
    /// Length prefix bounds (spec: 21..=1024).
    pub frame_len_min: usize,
    pub frame_len_max: usize,
    /// A connection with no complete request for this long is closed (spec: 120 s).
    pub idle_timeout: Duration,
    /// A frame not complete this long after its first byte closes the connection (spec: 30 s).
    pub frame_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 1_024,
            in_flight_per_connection_max: 16,
            frame_len_min: iso8583::FRAME_LEN_MIN,
            frame_len_max: iso8583::FRAME_LEN_MAX,
            idle_timeout: Duration::from_secs(120),
            frame_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The host's policy settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Field 32: the acquiring institution id (digits, at most 11).
    pub acquirer_id: String,
    /// Two digits that make RRNs unique across host instances sharing one database.
    pub instance_id: u8,
    /// Refunds of originals older than this get `12`.
    pub refund_window_days: i64,
    /// Pre-authorizations older than this can no longer be completed or voided (`12`).
    pub preauth_expiry_days: i64,
    /// Where the front end's own files live (the data directory).
    pub data_dir: PathBuf,
    /// Most remembered replies for retransmissions (oldest forgotten first; the store's
    /// records still answer a retransmission after that).
    pub retransmission_entries_max: usize,
    /// `last_seen_at` is written to the store at most this often per terminal.
    pub last_seen_write_interval: Duration,
}

impl HostConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            acquirer_id: "48020000".into(),
            instance_id: 1,
            refund_window_days: 30,
            preauth_expiry_days: 30,
            data_dir: data_dir.into(),
            retransmission_entries_max: 200_000,
            last_seen_write_interval: Duration::from_secs(10),
        }
    }
}

//! The poslens store: durable, tamper-evident keeping of transactions and the administrative
//! records around them (merchants, terminals, users, sessions, API keys, audit events).
//!
//! What it does:
//! - One SQLite database file in the data directory (`poslens.db`): WAL, `synchronous=FULL`,
//!   numbered migrations compiled in and recorded in `schema_version`.
//! - One writer thread with group commit: writes arrive over a bounded channel, the writer
//!   drains what is queued, commits once (one fsync) and then answers every caller. Reads use a
//!   bounded pool of reader connections and never wait for the writer.
//! - Transactions are append-only events. Each record is sealed into a SHA-256 hash chain in the
//!   same commit that stores it; the current status of every record is a projection (table
//!   `txn_status`) updated in that same commit with [`domain::project_status`]. No record row
//!   is ever updated or deleted; [`SqliteStore::verify`] recomputes chain and projection.
//! - Ingest validation of the edge's plain [`IngestObject`] ([`validate`]), PAN tokenisation via
//!   the installation's [`CardKey`] (the clear PAN is dropped there and never stored or logged).
//!
//! What it deliberately does not do: no JSON, no HTTP, no password hashing (callers hand in
//! argon2 strings and token hashes), no authorisation decisions beyond applying the [`Scope`]
//! it is given, no logging of request data. Repository traits ([`MerchantRepo`], [`TxnRepo`],
//! …) are small and per aggregate so a PostgreSQL implementation can follow without touching
//! callers.

mod cardkey;
mod error;
mod findability;
mod idempotency;
mod model;
mod repo;
mod repo_recon;
mod repo_pos;
mod sqlite;
mod validate;

pub use cardkey::{card_key, CARD_KEY_FILE};
pub use findability::{
    Affects, Announcement, AnnouncementRepo, NewAnnouncement, NewTicket, Resolution, Ticket, TicketEvent, TicketRepo,
    TicketStatus,
};
pub use idempotency::{IdempotencyRepo, StoredResponse, IDEMPOTENT_BODY_BYTES_MAX};
pub use error::{BulkError, IngestError, ItemError, ItemReason, LineError, StoreError};
pub use model::*;
pub use repo_recon::*;
pub use repo_pos::{NewPosDiscrepancy, PosDiscrepancy, PosDiscrepancyCount, PosDiscrepancyKind, PosRepo};
pub use repo::{ApiKeyRepo, AuditRepo, MerchantRepo, TerminalRepo, TxnRepo, UserRepo};
pub use sqlite::{SqliteStore, StoreConfig, DB_FILE};
pub use validate::{validate, FieldError, IngestObject};

pub use domain::CardKey;

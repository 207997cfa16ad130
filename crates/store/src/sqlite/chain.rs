//! The hash chain over transaction records: the canonical encoding of a row and the chain head.

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::StoreError;

pub(crate) const GENESIS: [u8; 32] = [0u8; 32];
const DOMAIN_TAG: &[u8] = b"poslens-txn-v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub(crate) seq: i64,
    pub(crate) hash: [u8; 32],
    /// Receive time of the head record: ids stay ordered even if the wall clock steps back.
    pub(crate) last_received_us: i64,
    /// Whether any reversal is stored without its original (then new originals look for one).
    pub(crate) orphan_reversals: bool,
}

pub(crate) fn load_head(conn: &Connection) -> Result<ChainHead, StoreError> {
    let row: Option<(i64, Vec<u8>)> =
        conn.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    let (seq, hash) = match row {
        None => (0, GENESIS),
        Some((seq, h)) => {
            let hash: [u8; 32] =
                h.as_slice().try_into().map_err(|_| StoreError::Corrupt { column: "chain_head.hash", value: hex::encode(&h) })?;
            (seq, hash)
        }
    };
    let last_received_us: i64 = conn
        .query_row("SELECT received_at_us FROM txn_records WHERE seq = ?1", [seq], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let orphan_reversals: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM txn_records WHERE reversal = 1 AND original_seq IS NULL)",
        [],
        |r| r.get(0),
    )?;
    Ok(ChainHead { seq, hash, last_received_us, orphan_reversals })
}

pub(crate) fn store_head(conn: &Connection, head: &ChainHead) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE chain_head SET seq = ?1, hash = ?2 WHERE id = 1")?.execute((head.seq, &head.hash[..]))?;
    Ok(())
}

/// Every stored column of a record except `hash`, as stored. The order here is the canonical
/// order; changing it is a new chain version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RecordRow {
    pub(crate) seq: i64,
    pub(crate) received_at_us: i64,
    pub(crate) merchant_id: String,
    pub(crate) terminal_id: Option<String>,
    pub(crate) batch_no: Option<i64>,
    pub(crate) stan: Option<i64>,
    pub(crate) rrn: Option<String>,
    pub(crate) auth_code: Option<String>,
    pub(crate) kind: String,
    pub(crate) channel: String,
    pub(crate) card_bin: Option<String>,
    pub(crate) card_last4: Option<String>,
    pub(crate) card_masked: Option<String>,
    pub(crate) card_token: Option<Vec<u8>>,
    pub(crate) amount_fen: i64,
    pub(crate) currency: String,
    pub(crate) response_code: String,
    pub(crate) txn_time_us: i64,
    pub(crate) settlement_date: i64,
    pub(crate) original_seq: Option<i64>,
    pub(crate) reversal: bool,
    pub(crate) source: String,
    pub(crate) external_ref: Option<String>,
}

fn put_int(buf: &mut Vec<u8>, v: i64) {
    buf.push(1);
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_opt_int(buf: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => buf.push(0),
        Some(v) => put_int(buf, v),
    }
}

fn put_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(2);
    buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
    buf.extend_from_slice(v);
}

fn put_opt_bytes(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => buf.push(0),
        Some(v) => put_bytes(buf, v),
    }
}

/// A record's columns borrowed from wherever they are (the ingest object being stored, or a
/// `RecordRow` read back): sealing and comparing need no copies. Same fields, same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub(crate) seq: i64,
    pub(crate) received_at_us: i64,
    pub(crate) merchant_id: &'a str,
    pub(crate) terminal_id: Option<&'a str>,
    pub(crate) batch_no: Option<i64>,
    pub(crate) stan: Option<i64>,
    pub(crate) rrn: Option<&'a str>,
    pub(crate) auth_code: Option<&'a str>,
    pub(crate) kind: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) card_bin: Option<&'a str>,
    pub(crate) card_last4: Option<&'a str>,
    pub(crate) card_masked: Option<&'a str>,
    pub(crate) card_token: Option<&'a [u8]>,
    pub(crate) amount_fen: i64,
    pub(crate) currency: &'a str,
    pub(crate) response_code: &'a str,
    pub(crate) txn_time_us: i64,
    pub(crate) settlement_date: i64,
    pub(crate) original_seq: Option<i64>,
    pub(crate) reversal: bool,
    pub(crate) source: &'a str,
    pub(crate) external_ref: Option<&'a str>,
}

impl RecordRow {
    pub(crate) fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            seq: self.seq,
            received_at_us: self.received_at_us,
            merchant_id: &self.merchant_id,
            terminal_id: self.terminal_id.as_deref(),
            batch_no: self.batch_no,
            stan: self.stan,
            rrn: self.rrn.as_deref(),
            auth_code: self.auth_code.as_deref(),
            kind: &self.kind,
            channel: &self.channel,
            card_bin: self.card_bin.as_deref(),
            card_last4: self.card_last4.as_deref(),
            card_masked: self.card_masked.as_deref(),
            card_token: self.card_token.as_deref(),
            amount_fen: self.amount_fen,
            currency: &self.currency,
            response_code: &self.response_code,
            txn_time_us: self.txn_time_us,
            settlement_date: self.settlement_date,
            original_seq: self.original_seq,
            reversal: self.reversal,
            source: &self.source,
            external_ref: self.external_ref.as_deref(),
        }
    }

    pub(crate) fn seal(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        self.as_ref().seal(prev, scratch)
    }
}

impl RecordRef<'_> {
    /// Tagged, length-prefixed fields: no two different rows encode the same.
    pub(crate) fn canonical(&self, buf: &mut Vec<u8>) {
        buf.clear();
        put_int(buf, self.seq);
        put_int(buf, self.received_at_us);
        put_bytes(buf, self.merchant_id.as_bytes());
        put_opt_bytes(buf, self.terminal_id.map(str::as_bytes));
        put_opt_int(buf, self.batch_no);
        put_opt_int(buf, self.stan);
        put_opt_bytes(buf, self.rrn.map(str::as_bytes));
        put_opt_bytes(buf, self.auth_code.map(str::as_bytes));
        put_bytes(buf, self.kind.as_bytes());
        put_bytes(buf, self.channel.as_bytes());
        put_opt_bytes(buf, self.card_bin.map(str::as_bytes));
        put_opt_bytes(buf, self.card_last4.map(str::as_bytes));
        put_opt_bytes(buf, self.card_masked.map(str::as_bytes));
        put_opt_bytes(buf, self.card_token);
        put_int(buf, self.amount_fen);
        put_bytes(buf, self.currency.as_bytes());
        put_bytes(buf, self.response_code.as_bytes());
        put_int(buf, self.txn_time_us);
        put_int(buf, self.settlement_date);
        put_opt_int(buf, self.original_seq);
        put_int(buf, i64::from(self.reversal));
        put_bytes(buf, self.source.as_bytes());
        put_opt_bytes(buf, self.external_ref.map(str::as_bytes));
    }

    pub(crate) fn seal(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        self.canonical(scratch);
        let mut h = Sha256::new();
        h.update(DOMAIN_TAG);
        h.update(prev);
        h.update(&scratch[..]);
        h.finalize().into()
    }
}

//! Transaction records: ingest, bulk import, queries, verify.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use domain::{
    project_status, Amount, AuthCode, BatchNo, CardKey, CardSummary, Channel, Currency,
    MerchantClock, MerchantId, Related, ResponseCode, Rrn, SettlementDate, Source, Stan,
    TerminalId, TxnKind, TxnStatus,
};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row};

use super::admin::{insert_merchant, insert_terminal, load_merchant};
use super::chain::{ChainHead, RecordRef, RecordRow, GENESIS};
use super::record_chunks::RecordChunkWriter;
use super::{from_us, ids, now_us, SqliteStore, WriterCtx};
use crate::error::{BulkError, IngestError, ItemError, ItemReason, LineError, StoreError};
use crate::model::*;
use crate::repo::TxnRepo;
use crate::validate::validate;

/// Lines validated and handed to the writer together during a bulk import. Each chunk is
/// stored in merchant order (see `bulk_ingest`), so the larger it is, the more consecutive
/// inserts share index leaves; its memory is about 0.5 KiB a line.
const BULK_CHUNK_LINES: usize = 32_768;
/// Chunks in flight between the validating thread and the writer.
const BULK_CHUNKS_IN_FLIGHT: usize = 2;
/// Rows an export's reading thread hands to its parsing thread at a time, and batches queued.
const EXPORT_BATCH_ROWS: usize = 512;
const EXPORT_BATCHES_IN_FLIGHT: usize = 4;
/// Bad lines listed when the caller does not say.
const BULK_ERRORS_MAX_DEFAULT: usize = 1_000;
/// A bulk import builds the deferred indexes at its end instead of inserting into them row by
/// row when it is at least a full chunk long and the store holds at most this many records
/// (rebuilding means sorting every record, old and new, once).
const BULK_DEFER_INDEXES_EXISTING_MAX: i64 = BULK_CHUNK_LINES as i64;
/// The indexes of `txn_records` a bulk import builds at its end. No write reads the time index;
/// the RRN index names a refund's original, which the import looks up in a map of its own
/// meanwhile ([`RrnMap`]). A chunk stored in merchant order inserts into both all over the
/// chunk's span. (Merchant + time follows merchant order, so its inserts share leaves; building
/// it at the end measured slower than keeping it.)
const BULK_DEFERRED_INDEXES: [&str; 2] = ["txn_records_by_time", "txn_records_by_rrn"];
/// How deep status derivation follows events of events (purchase → void → reversal of void).
const DERIVE_DEPTH_MAX: u32 = 6;

fn corrupt(column: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.into(),
    }
}

fn date_to_int(d: SettlementDate) -> i64 {
    let n = d.date();
    i64::from(n.year()) * 10_000 + i64::from(n.month()) * 100 + i64::from(n.day())
}

fn int_to_date(v: i64) -> Option<SettlementDate> {
    let y = i32::try_from(v / 10_000).ok()?;
    NaiveDate::from_ymd_opt(y, ((v / 100) % 100) as u32, (v % 100) as u32).map(SettlementDate::new)
}

/// Slack around a merchant's local days when a settlement-date range is turned into a
/// `txn_time_us` range: stored settlement dates were computed with the time-zone rules of
/// their day, and a later rule correction moves a local midnight by an hour or so.
const ZONE_RULES_MARGIN_US: i64 = 3 * 3_600_000_000;
const DAY_US: i64 = 86_400_000_000;

/// The `txn_time_us` range `[start, end)` that holds every record whose settlement date is in
/// `[from, to]`: the callers add the settlement-date filter itself, so this range only has to
/// be wide enough. A settlement date is the local date of `txn_time` or the next day (a
/// cut-off is at most 24:00), so those records have local dates `from - 1` to `to`. Given the
/// merchant's zone that is its local days (plus a margin for rule corrections); without one
/// (several merchants) any zone must fit, and every zone's local date is within a day of the
/// UTC date. This is how settlement-date queries use the merchant + time index: there is no
/// index on settlement dates.
pub(crate) fn settlement_time_range_us(tz: Option<Tz>, from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let utc_midnight_us = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or(0);
    match tz {
        Some(tz) => {
            let clock = MerchantClock { tz, ..MerchantClock::default() };
            let start = clock.start_of_day(from - chrono::Duration::days(1)).timestamp_micros();
            let end = clock.start_of_day(to + chrono::Duration::days(1)).timestamp_micros();
            (start - ZONE_RULES_MARGIN_US, end + ZONE_RULES_MARGIN_US)
        }
        None => (utc_midnight_us(from) - 2 * DAY_US, utc_midnight_us(to) + 2 * DAY_US),
    }
}

/// The time zone of the one merchant a query is limited to, if it is limited to one.
fn single_merchant_zone(c: &Connection, q: &TxnQuery) -> Result<Option<Tz>, StoreError> {
    let m = match (&q.merchant_id, &q.scope.merchants) {
        (Some(m), _) => m,
        (None, Some(allowed)) if allowed.len() == 1 => &allowed[0],
        _ => return Ok(None),
    };
    let zone: Option<String> = c
        .prepare_cached("SELECT timezone FROM merchants WHERE merchant_id = ?1")?
        .query_row([m.as_str()], |r| r.get(0))
        .optional()?;
    Ok(zone.and_then(|z| z.parse().ok()))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The kinds a record of `kind` may name as its original.
fn original_kinds(kind: TxnKind, reversal: bool) -> &'static [TxnKind] {
    use TxnKind::*;
    if reversal {
        return match kind {
            Purchase => &[Purchase],
            Void => &[Void],
            Refund => &[Refund],
            Preauth => &[Preauth],
            PreauthVoid => &[PreauthVoid],
            PreauthCompletion => &[PreauthCompletion],
            PreauthCompletionVoid => &[PreauthCompletionVoid],
            BalanceInquiry => &[BalanceInquiry],
        };
    }
    match kind {
        Void => &[Purchase],
        Refund => &[Purchase, PreauthCompletion],
        PreauthVoid | PreauthCompletion => &[Preauth],
        PreauthCompletionVoid => &[PreauthCompletion],
        Purchase | Preauth | BalanceInquiry => TxnKind::ALL,
    }
}

fn kinds_sql(kinds: &[TxnKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Writing one record
// ---------------------------------------------------------------------------------------------

/// A word-at-a-time multiplicative hash: these caches are looked up once or twice for every
/// stored row, by short ids (15 characters), where SipHash, and then byte-at-a-time FNV-1a (3%
/// of the writer), cost more than the lookup. They hold the ids of one job's records, which the
/// store's own callers supplied (ingest is authenticated); a run's item encoding numbers its
/// merchants with it too.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

const ID_HASH_K: u64 = 0x517c_c1b7_2722_0a95;

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(ID_HASH_K);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word) ^ (rest.len() as u64) << 59).wrapping_mul(ID_HASH_K);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(ID_HASH_K);
    }

    fn finish(&self) -> u64 {
        // The product's high bits are the mixed ones; a hash table takes its bucket from the
        // low bits, so bring them down (ids differing only in their last digits otherwise
        // shared a few dozen buckets).
        self.0.rotate_left(26)
    }
}

type IdMap<V> = HashMap<String, V, BuildHasherDefault<IdHasher>>;

/// Per-job caches of what ingest looked up (merchant clocks, known terminals).
#[derive(Default)]
struct IngestCache {
    clocks: IdMap<MerchantClock>,
    /// Known terminals per merchant (looked up by `&str`, so a hit allocates nothing).
    terminals: IdMap<HashSet<String, BuildHasherDefault<IdHasher>>>,
    merchants_created: u64,
    terminals_created: u64,
    rrns: RrnLookup,
    /// A bulk import's record chunks (`record_chunks`): each stored record joins one.
    chunks: Option<RecordChunkWriter>,
}

/// How the writer finds an original named by RRN.
#[derive(Default)]
enum RrnLookup {
    /// Through the RRN index.
    #[default]
    Index,
    /// A bulk import dropped the index; no lookup by RRN has been needed yet.
    Unbuilt,
    /// From the first lookup by RRN on: every record with an RRN, by it.
    Map(RrnMap),
}

/// Records by (merchant, RRN) while the RRN index is dropped: a hash of the pair to the first
/// record's sequence number, later ones with the same hash in `more`. A lookup checks each
/// candidate against the record itself, so a hash collision costs a read, never a wrong answer.
#[derive(Default)]
struct RrnMap {
    first: HashMap<u64, i64, BuildHasherDefault<IdHasher>>,
    more: HashMap<u64, Vec<i64>, BuildHasherDefault<IdHasher>>,
}

impl RrnMap {
    fn key(merchant_id: &str, rrn: &str) -> u64 {
        use std::hash::Hasher as _;
        let mut h = IdHasher::default();
        h.write(merchant_id.as_bytes());
        h.write_u8(0xff);
        h.write(rrn.as_bytes());
        h.finish()
    }

    /// Every record that has an RRN (those of the import so far and of the small store before it).
    fn load(conn: &Connection) -> Result<RrnMap, StoreError> {
        let mut map = RrnMap::default();
        let mut stmt = conn.prepare("SELECT seq, merchant_id, rrn FROM txn_records WHERE rrn IS NOT NULL ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (merchant_id, rrn): (String, String) = (r.get(1)?, r.get(2)?);
            map.add(&merchant_id, &rrn, r.get(0)?);
        }
        Ok(map)
    }

    fn add(&mut self, merchant_id: &str, rrn: &str, seq: i64) {
        let key = RrnMap::key(merchant_id, rrn);
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.entry(key).or_default().push(seq),
        }
    }

    /// The first record (lowest sequence number) with `rrn` within the merchant, not a reversal,
    /// of one of `kinds`: what the RRN index query answers.
    fn find(&self, conn: &Connection, merchant_id: &str, rrn: &str, kinds: &[TxnKind]) -> Result<Option<i64>, StoreError> {
        let key = RrnMap::key(merchant_id, rrn);
        let Some(&first) = self.first.get(&key) else { return Ok(None) };
        for seq in std::iter::once(first).chain(self.more.get(&key).into_iter().flatten().copied()) {
            let Some(rec) = load_record(conn, seq)? else { continue };
            if rec.merchant_id == merchant_id
                && rec.rrn.as_deref() == Some(rrn)
                && !rec.reversal
                && kinds.iter().any(|k| k.as_str() == rec.kind)
            {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }
}

enum Stored {
    Inserted { seq: i64, received_us: i64 },
    Duplicate { seq: i64, received_us: i64 },
}

impl Stored {
    fn id(&self) -> TxnId {
        match *self {
            Stored::Inserted { seq, received_us } | Stored::Duplicate { seq, received_us } => {
                TxnId(ids::encode(received_us.div_euclid(1000), seq))
            }
        }
    }
}

fn idem_key(t: &NewTxn) -> String {
    let rev = if t.reversal { " reversal" } else { "" };
    if t.channel == Channel::Card {
        format!(
            "(merchant {}, terminal {}, batch {}, stan {}, {}{rev})",
            t.merchant_id,
            t.terminal_id.as_ref().map(|x| x.as_str()).unwrap_or("-"),
            t.batch_no.map(|b| b.to_string()).unwrap_or_default(),
            t.stan.map(|s| s.to_string()).unwrap_or_default(),
            t.kind
        )
    } else {
        format!(
            "(external_ref {}, {}{rev})",
            t.external_ref.as_deref().unwrap_or("-"),
            t.kind
        )
    }
}

/// The row to store for `t`, borrowing its text (no copies per stored row).
fn record_ref<'a>(
    t: &'a NewTxn,
    card_token: Option<&'a [u8]>,
    seq: i64,
    received_at_us: i64,
    settlement_date: i64,
    original_seq: Option<i64>,
) -> RecordRef<'a> {
    RecordRef {
        seq,
        received_at_us,
        merchant_id: t.merchant_id.as_str(),
        terminal_id: t.terminal_id.as_ref().map(|x| x.as_str()),
        batch_no: t.batch_no.map(|b| i64::from(b.get())),
        stan: t.stan.map(|s| i64::from(s.get())),
        rrn: t.rrn.as_ref().map(|r| r.as_str()),
        auth_code: t.auth_code.as_ref().map(|a| a.as_str()),
        kind: t.kind.as_str(),
        channel: t.channel.as_str(),
        card_bin: t.card.as_ref().map(|c| c.bin.as_str()),
        card_last4: t.card.as_ref().map(|c| c.last4.as_str()),
        card_masked: t.card.as_ref().map(|c| c.masked.as_str()),
        card_token,
        amount_fen: t.amount.fen(),
        currency: t.currency.as_str(),
        response_code: t.response_code.as_str(),
        txn_time_us: t.txn_time.timestamp_micros(),
        settlement_date,
        original_seq,
        reversal: t.reversal,
        source: t.source.as_str(),
        external_ref: t.external_ref.as_deref(),
    }
}

/// Each byte's value as a hex digit, or 0x80 when it is not one.
static HEX_NIBBLE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Longest card token decoded without allocating (keyed tokens are 32 bytes).
const TOKEN_BYTES_INLINE: usize = 64;

/// The card token's bytes as stored (a BLOB; the summary carries hex): decoded into `buf`,
/// or into `long` for a token too long for it. Empty or not hex: none.
fn token_bytes<'b>(t: &NewTxn, buf: &'b mut [u8; TOKEN_BYTES_INLINE], long: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    let h = t.card.as_ref()?.token.as_str();
    if h.is_empty() {
        return None;
    }
    if h.len() <= 2 * TOKEN_BYTES_INLINE {
        // By hand, through a table: `hex::decode_to_slice` cost half a microsecond a row on the
        // writer, a branch per character still 4% of it.
        if h.len() % 2 != 0 {
            return None;
        }
        let out = &mut buf[..h.len() / 2];
        let mut bad = 0u8;
        for (o, pair) in out.iter_mut().zip(h.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (HEX_NIBBLE[usize::from(pair[0])], HEX_NIBBLE[usize::from(pair[1])]);
            bad |= (hi | lo) & 0x80;
            *o = (hi << 4) | (lo & 0x0f);
        }
        return (bad == 0).then_some(&*out);
    }
    *long = hex::decode(h).ok()?;
    Some(long.as_slice())
}

pub(crate) const RECORD_COLS: &str = "seq, received_at_us, merchant_id, terminal_id, batch_no, stan, rrn, auth_code, kind, channel, \
     card_bin, card_last4, card_masked, card_token, amount_fen, currency, response_code, txn_time_us, settlement_date, \
     original_seq, reversal, source, external_ref";

/// Hot-path SQL built once (`prepare_cached` keys on the text; formatting it per row allocated).
static SQL_LOAD_RECORD: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {RECORD_COLS} FROM txn_records WHERE seq = ?1"));
static SQL_CARD_KEY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {RECORD_COLS} FROM txn_records WHERE channel = 'card' AND merchant_id = ?1 AND terminal_id = ?2
         AND batch_no = ?3 AND stan = ?4 AND kind = ?5 AND reversal = ?6"
    )
});
static SQL_QR_KEY: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {RECORD_COLS} FROM txn_records WHERE channel <> 'card' AND external_ref = ?1 AND kind = ?2 AND reversal = ?3")
});
static SQL_FOLLOWERS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {RECORD_COLS} FROM txn_records WHERE original_seq = ?1 ORDER BY seq")
});
static SQL_CARD_TWIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {RECORD_COLS} FROM txn_records WHERE channel = 'card' AND merchant_id = ?1 AND terminal_id = ?2
         AND batch_no = ?3 AND stan = ?4 AND kind = ?5 AND reversal = 1 AND original_seq IS NULL"
    )
});
static SQL_QR_TWIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {RECORD_COLS} FROM txn_records WHERE channel <> 'card' AND external_ref = ?1 AND kind = ?2
         AND reversal = 1 AND original_seq IS NULL"
    )
});

/// Typed access to the columns of a stored record: a SQLite row, or a row of an export batch.
trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn opt_blob(&self, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
        self.get(i)
    }
}

/// The record in columns `base..base + 23` (in `RECORD_COLS` order).
fn record_from<C: Columns>(c: &C, base: usize) -> Result<RecordRow, C::Error> {
    Ok(RecordRow {
        seq: c.int(base)?,
        received_at_us: c.int(base + 1)?,
        merchant_id: c.text(base + 2)?,
        terminal_id: c.opt_text(base + 3)?,
        batch_no: c.opt_int(base + 4)?,
        stan: c.opt_int(base + 5)?,
        rrn: c.opt_text(base + 6)?,
        auth_code: c.opt_text(base + 7)?,
        kind: c.text(base + 8)?,
        channel: c.text(base + 9)?,
        card_bin: c.opt_text(base + 10)?,
        card_last4: c.opt_text(base + 11)?,
        card_masked: c.opt_text(base + 12)?,
        card_token: c.opt_blob(base + 13)?,
        amount_fen: c.int(base + 14)?,
        currency: c.text(base + 15)?,
        response_code: c.text(base + 16)?,
        txn_time_us: c.int(base + 17)?,
        settlement_date: c.int(base + 18)?,
        original_seq: c.opt_int(base + 19)?,
        reversal: c.int(base + 20)? != 0,
        source: c.text(base + 21)?,
        external_ref: c.opt_text(base + 22)?,
    })
}

pub(crate) fn record_from_row(r: &Row<'_>, base: usize) -> rusqlite::Result<RecordRow> {
    record_from(r, base)
}

fn load_record(conn: &Connection, seq: i64) -> Result<Option<RecordRow>, StoreError> {
    Ok(conn
        .prepare_cached(&SQL_LOAD_RECORD)?
        .query_row([seq], |r| record_from_row(r, 0))
        .optional()?)
}

/// The stored record under `t`'s idempotency key, if any.
fn find_by_key(
    conn: &Connection,
    t: &NewTxn,
    reversal: bool,
) -> Result<Option<RecordRow>, StoreError> {
    let row = if t.channel == Channel::Card {
        conn.prepare_cached(&SQL_CARD_KEY)?
            .query_row(
                rusqlite::params![
                    t.merchant_id.as_str(),
                    t.terminal_id.as_ref().map(|x| x.as_str()),
                    t.batch_no.map(|b| b.get()),
                    t.stan.map(|s| s.get()),
                    t.kind.as_str(),
                    reversal
                ],
                |r| record_from_row(r, 0),
            )
            .optional()?
    } else {
        conn.prepare_cached(&SQL_QR_KEY)?
            .query_row(
                (t.external_ref.as_deref(), t.kind.as_str(), reversal),
                |r| record_from_row(r, 0),
            )
            .optional()?
    };
    Ok(row)
}

/// Same object again? Everything the sender said must match; source, receive time and how the
/// original was resolved do not count.
fn same_object(stored: &RecordRow, new: &RecordRef<'_>) -> bool {
    fn said(r: RecordRef<'_>) -> RecordRef<'_> {
        RecordRef { seq: 0, received_at_us: 0, original_seq: None, source: "", ..r }
    }
    said(stored.as_ref()) == said(*new)
}

fn resolve_original(
    conn: &Connection,
    t: &NewTxn,
    rrns: Option<&RrnMap>,
) -> Result<Result<Option<i64>, ItemReason>, StoreError> {
    let kinds = || kinds_sql(original_kinds(t.kind, t.reversal));
    let found: Option<i64> = match &t.original {
        Some(OriginalRef::BatchStan { batch_no, stan }) => match &t.terminal_id {
            Some(term) => conn
                .prepare_cached(&format!(
                    "SELECT seq FROM txn_records WHERE channel = 'card' AND merchant_id = ?1 AND terminal_id = ?2
                     AND batch_no = ?3 AND stan = ?4 AND reversal = 0 AND kind IN ({}) ORDER BY seq LIMIT 1",
                    kinds()
                ))?
                .query_row((t.merchant_id.as_str(), term.as_str(), batch_no.get(), stan.get()), |r| r.get(0))
                .optional()?,
            None => None,
        },
        Some(OriginalRef::Rrn(rrn)) => match rrns {
            Some(m) => m.find(conn, t.merchant_id.as_str(), rrn.as_str(), original_kinds(t.kind, t.reversal))?,
            None => conn
                .prepare_cached(&format!(
                    "SELECT seq FROM txn_records WHERE rrn = ?1 AND merchant_id = ?2 AND reversal = 0 AND kind IN ({})
                     ORDER BY seq LIMIT 1",
                    kinds()
                ))?
                .query_row((rrn.as_str(), t.merchant_id.as_str()), |r| r.get(0))
                .optional()?,
        },
        None if t.reversal => find_by_key(conn, t, false)?.map(|r| r.seq),
        None => None,
    };
    match (found, &t.original) {
        (Some(seq), _) => Ok(Ok(Some(seq))),
        // A reversal may arrive for an original that never reached us: kept as an orphan.
        (None, _) if t.reversal => Ok(Ok(None)),
        (None, Some(OriginalRef::BatchStan { batch_no, stan })) => {
            Ok(Err(ItemReason::OriginalNotFound(format!(
                "batch_no {batch_no}, stan {stan} on the same terminal"
            ))))
        }
        (None, Some(OriginalRef::Rrn(rrn))) => Ok(Err(ItemReason::OriginalNotFound(format!(
            "rrn {rrn} within the merchant"
        )))),
        (None, None) if t.kind.needs_original() => Ok(Err(ItemReason::OriginalNotFound(format!(
            "a {} needs an original",
            t.kind
        )))),
        (None, None) => Ok(Ok(None)),
    }
}

/// Stores one record (or recognises it as a duplicate) inside the writer's transaction.
fn store_one(
    conn: &Connection,
    head: &mut ChainHead,
    hot: &mut HotStatements<'_>,
    t: &NewTxn,
    opts: IngestOptions,
    cache: &mut IngestCache,
    scratch: &mut Vec<u8>,
) -> Result<Result<Stored, ItemReason>, StoreError> {
    // Merchant and terminal.
    let mid = t.merchant_id.as_str();
    let clock = match cache.clocks.get(mid) {
        Some(c) => *c,
        None => {
            let clock = match load_merchant(conn, mid)? {
                Some(m) => m.clock,
                None if opts.create_missing => {
                    let m = NewMerchant::with_defaults(t.merchant_id.clone());
                    insert_merchant(conn, &m, "ingest", now_us())?;
                    cache.merchants_created += 1;
                    m.clock
                }
                None => return Ok(Err(ItemReason::UnknownMerchant(mid.to_owned()))),
            };
            cache.clocks.insert(mid.to_owned(), clock);
            clock
        }
    };
    if let Some(term) = &t.terminal_id {
        if !cache
            .terminals
            .get(mid)
            .is_some_and(|ts| ts.contains(term.as_str()))
        {
            let exists: Option<i64> = conn
                .prepare_cached(
                    "SELECT 1 FROM terminals WHERE merchant_id = ?1 AND terminal_id = ?2",
                )?
                .query_row((mid, term.as_str()), |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                if !opts.create_missing {
                    return Ok(Err(ItemReason::UnknownTerminal {
                        merchant_id: mid.to_owned(),
                        terminal_id: term.as_str().to_owned(),
                    }));
                }
                insert_terminal(
                    conn,
                    &NewTerminal {
                        id: term.clone(),
                        merchant_id: t.merchant_id.clone(),
                        master_key_hex: None,
                    },
                    now_us(),
                )?;
                cache.terminals_created += 1;
            }
            cache
                .terminals
                .entry(mid.to_owned())
                .or_default()
                .insert(term.as_str().to_owned());
        }
    }

    let settlement_date = date_to_int(clock.settlement_date(t.txn_time, t.channel));
    let (mut token_buf, mut token_long) = ([0u8; TOKEN_BYTES_INLINE], Vec::new());
    let card_token = token_bytes(t, &mut token_buf, &mut token_long);
    if matches!(cache.rrns, RrnLookup::Unbuilt) && matches!(t.original, Some(OriginalRef::Rrn(_))) {
        // Built when first needed (a refund naming its original by RRN), from the records
        // stored so far, this import's included; kept up to date from then on.
        cache.rrns = RrnLookup::Map(RrnMap::load(conn)?);
    }
    let rrns = match &cache.rrns {
        RrnLookup::Map(m) => Some(m),
        RrnLookup::Index | RrnLookup::Unbuilt => None,
    };
    let original_seq = match resolve_original(conn, t, rrns)? {
        Ok(o) => o,
        Err(reason) => {
            // A duplicate of a stored object is still a duplicate even if its original
            // cannot be named now; check that before refusing.
            if let Some(existing) = find_by_key(conn, t, t.reversal)? {
                let new = record_ref(t, card_token, 0, 0, settlement_date, None);
                if same_object(&existing, &new) {
                    return Ok(Ok(Stored::Duplicate {
                        seq: existing.seq,
                        received_us: existing.received_at_us,
                    }));
                }
            }
            return Ok(Err(reason));
        }
    };

    let seq = head.seq + 1;
    let received_us = now_us().max(head.last_received_us);
    let row = record_ref(t, card_token, seq, received_us, settlement_date, original_seq);
    let hash = row.seal(&head.hash, scratch);
    let inserted = hot.insert_record.execute(rusqlite::params![
            row.seq,
            row.received_at_us,
            row.merchant_id,
            row.terminal_id,
            row.batch_no,
            row.stan,
            row.rrn,
            row.auth_code,
            row.kind,
            row.channel,
            row.card_bin,
            row.card_last4,
            row.card_masked,
            row.card_token,
            row.amount_fen,
            row.currency,
            row.response_code,
            row.txn_time_us,
            row.settlement_date,
            row.original_seq,
            row.reversal,
            row.source,
            row.external_ref,
            &hash[..],
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            let Some(existing) = find_by_key(conn, t, t.reversal)? else {
                return Err(e.into());
            };
            return Ok(if same_object(&existing, &row) {
                Ok(Stored::Duplicate {
                    seq: existing.seq,
                    received_us: existing.received_at_us,
                })
            } else {
                Err(ItemReason::Conflict {
                    key: idem_key(t),
                    existing_id: Some(TxnId(ids::encode(
                        existing.received_at_us.div_euclid(1000),
                        existing.seq,
                    ))),
                })
            });
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(w) = &mut cache.chunks {
        if !w.takes(seq) {
            w.flush(conn)?;
        }
        w.push(&row)?;
    }
    if let (RrnLookup::Map(m), Some(rrn)) = (&mut cache.rrns, &t.rrn) {
        m.add(t.merchant_id.as_str(), rrn.as_str(), seq);
    }
    head.seq = seq;
    head.hash = hash;
    head.last_received_us = received_us;
    if t.reversal && original_seq.is_none() {
        head.orphan_reversals = true;
    }

    // Projection: the new record, then every record up its chain of originals.
    let own = if t.reversal || !head.orphan_reversals {
        project_status(t.kind, t.response_code.is_approved(), t.amount, &[])
    } else {
        derive_status(conn, seq, 0)?
    };
    hot.put_status.execute((seq, own.as_str()))?;
    let mut next = original_seq;
    let mut hops = 0;
    while let Some(o) = next {
        let (st, original) = derive(conn, o, 0, head.orphan_reversals)?;
        hot.put_status.execute((o, st.as_str()))?;
        next = original;
        hops += 1;
        if hops > DERIVE_DEPTH_MAX {
            break;
        }
    }
    Ok(Ok(Stored::Inserted { seq, received_us }))
}

const SQL_INSERT_RECORD: &str = "INSERT INTO txn_records (seq, received_at_us, merchant_id, terminal_id, batch_no, stan, rrn, auth_code, kind,
                channel, card_bin, card_last4, card_masked, card_token, amount_fen, currency, response_code, txn_time_us,
                settlement_date, original_seq, reversal, source, external_ref, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)";
const SQL_PUT_STATUS: &str =
    "INSERT INTO txn_status (seq, status) VALUES (?1, ?2) ON CONFLICT (seq) DO UPDATE SET status = excluded.status";

/// The statements every stored record runs, looked up in the connection's statement cache once
/// per job (a bulk import stores a million rows through them) instead of once per row.
pub(crate) struct HotStatements<'c> {
    insert_record: CachedStatement<'c>,
    put_status: CachedStatement<'c>,
}

impl<'c> HotStatements<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Result<HotStatements<'c>, StoreError> {
        Ok(HotStatements {
            insert_record: conn.prepare_cached(SQL_INSERT_RECORD)?,
            put_status: conn.prepare_cached(SQL_PUT_STATUS)?,
        })
    }
}


struct Core {
    kind: TxnKind,
    approved: bool,
    amount: Amount,
    reversal: bool,
}

fn core_of(r: &RecordRow) -> Result<Core, StoreError> {
    Ok(Core {
        kind: TxnKind::parse(&r.kind).map_err(|_| corrupt("txn_records.kind", &r.kind))?,
        approved: r.response_code == "00",
        amount: Amount::from_fen(r.amount_fen)
            .map_err(|_| corrupt("txn_records.amount_fen", r.amount_fen.to_string()))?,
        reversal: r.reversal,
    })
}

/// The status of record `seq` derived from the events alone (never from `txn_status`), so
/// that writes and `verify` agree by construction.
pub(crate) fn derive_status(
    conn: &Connection,
    seq: i64,
    depth: u32,
) -> Result<TxnStatus, StoreError> {
    Ok(derive(conn, seq, depth, true)?.0)
}

/// [`derive_status`], with the record's original; `orphans`: whether the store may hold a
/// reversal stored before its original (the writer knows when it holds none, and then skips
/// looking for one).
fn derive(
    conn: &Connection,
    seq: i64,
    depth: u32,
    orphans: bool,
) -> Result<(TxnStatus, Option<i64>), StoreError> {
    let rec = load_record(conn, seq)?.ok_or_else(|| corrupt("txn_records.seq", seq.to_string()))?;
    let core = core_of(&rec)?;
    if core.reversal || depth > DERIVE_DEPTH_MAX {
        return Ok((project_status(core.kind, core.approved, core.amount, &[]), rec.original_seq));
    }
    let mut followers: Vec<RecordRow> = conn
        .prepare_cached(&SQL_FOLLOWERS)?
        .query_map([seq], |r| record_from_row(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if orphans {
        followers.extend(orphan_twin(conn, &rec)?);
    }
    let mut related = Vec::new();
    for f in followers.iter().filter(|f| f.seq != seq) {
        let fc = core_of(f)?;
        if !fc.approved {
            continue;
        }
        if fc.reversal {
            related.push(Related::Reversed);
            continue;
        }
        let (fs, _) = derive(conn, f.seq, depth + 1, orphans)?;
        match fc.kind {
            TxnKind::Void | TxnKind::PreauthVoid | TxnKind::PreauthCompletionVoid
                if fs != TxnStatus::Reversed =>
            {
                related.push(Related::Voided)
            }
            TxnKind::Refund if fs != TxnStatus::Reversed => {
                related.push(Related::Refunded(fc.amount))
            }
            TxnKind::PreauthCompletion
                if !matches!(fs, TxnStatus::Reversed | TxnStatus::Voided) =>
            {
                related.push(Related::Completed)
            }
            _ => {}
        }
    }
    Ok((project_status(core.kind, core.approved, core.amount, &related), rec.original_seq))
}

/// A reversal stored before its original (so without `original_seq`) still reverses it: found
/// by the original's own idempotency key with the reversal flag set.
fn orphan_twin(conn: &Connection, rec: &RecordRow) -> Result<Option<RecordRow>, StoreError> {
    if rec.reversal {
        return Ok(None);
    }
    let row = if rec.channel == "card" {
        conn.prepare_cached(&SQL_CARD_TWIN)?
            .query_row(
                (
                    &rec.merchant_id,
                    &rec.terminal_id,
                    rec.batch_no,
                    rec.stan,
                    &rec.kind,
                ),
                |r| record_from_row(r, 0),
            )
            .optional()?
    } else {
        conn.prepare_cached(&SQL_QR_TWIN)?
            .query_row((&rec.external_ref, &rec.kind), |r| record_from_row(r, 0))
            .optional()?
    };
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Reading rows
// ---------------------------------------------------------------------------------------------

/// Columns of a listed row: the record, its status, the merchant's zone.
fn select_cols() -> String {
    let rec: Vec<String> = RECORD_COLS
        .split(", ")
        .map(|c| format!("r.{}", c.trim()))
        .collect();
    format!("{}, s.status, m.timezone", rec.join(", "))
}

const FROM_JOIN: &str = "FROM txn_records r CROSS JOIN txn_status s LEFT JOIN merchants m ON m.merchant_id = r.merchant_id";
const FROM_JOIN_BY_CARD_KEY: &str = "FROM txn_records r INDEXED BY txn_records_card_key CROSS JOIN txn_status s \
     LEFT JOIN merchants m ON m.merchant_id = r.merchant_id";

/// The FROM clause of a list or export. A batch of given terminals within known merchants is
/// read through the card key index (merchant, terminal, batch, STAN, ...): left to itself
/// SQLite walks the merchant + time index to avoid sorting, i.e. every record the merchant ever
/// had, which made a settlement's batch totals and a void's original lookup grow with the
/// merchant's history. (Without a terminal the time range bounds the merchant + time walk
/// better.)
fn from_join(q: &TxnQuery) -> &'static str {
    let merchants_known = q.scope.merchants.is_some() || q.merchant_id.is_some();
    if q.batch_no.is_some() && !q.terminal_ids.is_empty() && merchants_known {
        FROM_JOIN_BY_CARD_KEY
    } else {
        FROM_JOIN
    }
}

/// The columns of a listed row as SQLite gave them, before parsing into a [`TxnRow`].
struct RawRow {
    rec: RecordRow,
    status: String,
    tz_name: Option<String>,
}

impl RawRow {
    fn read(r: &Row<'_>) -> Result<RawRow, StoreError> {
        Ok(RawRow {
            rec: record_from_row(r, 0)?,
            status: r.get(23)?,
            tz_name: r.get(24)?,
        })
    }
}

/// Columns of a listed row: the record's, its status and the merchant's zone.
const LIST_COLS: usize = 25;

/// One column of a row in a [`RawBatch`].
#[derive(Clone, Copy)]
enum RawVal {
    Null,
    Int(i64),
    /// Text or blob: a range of the batch's bytes.
    Bytes(u32, u32),
}

/// Rows as SQLite gave them, every text and blob column of the batch in one buffer, so the
/// thread stepping SQLite allocates nothing per row; the row thread parses them.
struct RawBatch {
    bytes: Vec<u8>,
    rows: Vec<RawCols>,
}

/// A row's columns and, when it names an original, (original seq, its receive time).
type RawCols = ([RawVal; LIST_COLS], Option<(i64, i64)>);

impl RawBatch {
    fn with_capacity(rows: usize) -> RawBatch {
        RawBatch {
            bytes: Vec::with_capacity(rows * 160),
            rows: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, r: &Row<'_>, orig: Option<(i64, i64)>) -> Result<(), StoreError> {
        let mut vals = [RawVal::Null; LIST_COLS];
        for (i, v) in vals.iter_mut().enumerate() {
            *v = match r.get_ref(i)? {
                ValueRef::Null => RawVal::Null,
                ValueRef::Integer(n) => RawVal::Int(n),
                ValueRef::Text(b) | ValueRef::Blob(b) => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(b);
                    RawVal::Bytes(start as u32, b.len() as u32)
                }
                ValueRef::Real(_) => return Err(corrupt(list_col_name(i), "a real number")),
            };
        }
        self.rows.push((vals, orig));
        Ok(())
    }

    /// Row `vals` as the owned columns [`RowReader::convert`] parses.
    fn raw_row(&self, vals: &[RawVal; LIST_COLS]) -> Result<RawRow, StoreError> {
        let row = BatchRow { batch: self, vals };
        Ok(RawRow {
            rec: record_from(&row, 0)?,
            status: row.text(23)?,
            tz_name: row.opt_text(24)?,
        })
    }
}

/// One row of a [`RawBatch`], read as [`Columns`].
struct BatchRow<'b> {
    batch: &'b RawBatch,
    vals: &'b [RawVal; LIST_COLS],
}

impl BatchRow<'_> {
    fn bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        match self.vals[i] {
            RawVal::Null => Ok(None),
            RawVal::Bytes(at, len) => Ok(Some(&self.batch.bytes[at as usize..(at + len) as usize])),
            RawVal::Int(n) => Err(corrupt(list_col_name(i), n.to_string())),
        }
    }
}

impl Columns for BatchRow<'_> {
    type Error = StoreError;
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| corrupt(list_col_name(i), "NULL"))
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.vals[i] {
            RawVal::Null => Ok(None),
            RawVal::Int(n) => Ok(Some(n)),
            RawVal::Bytes(..) => Err(corrupt(list_col_name(i), "text where a number belongs")),
        }
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| corrupt(list_col_name(i), "NULL"))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.bytes(i)?
            .map(|b| String::from_utf8(b.to_vec()).map_err(|_| corrupt(list_col_name(i), "text that is not UTF-8")))
            .transpose()
    }
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.bytes(i)?.map(<[u8]>::to_vec))
    }
}

/// The name of listed column `i`, for errors.
fn list_col_name(i: usize) -> &'static str {
    RECORD_COLS
        .split(", ")
        .map(str::trim)
        .chain(["status", "timezone"])
        .nth(i)
        .unwrap_or("column")
}

struct RowReader {
    zones: HashMap<String, Tz>,
}

impl RowReader {
    fn new() -> RowReader {
        RowReader {
            zones: HashMap::new(),
        }
    }

    fn read(&mut self, r: &Row<'_>) -> Result<TxnRow, StoreError> {
        self.convert(RawRow::read(r)?)
    }

    /// A listed row from its raw columns.
    fn convert(&mut self, raw: RawRow) -> Result<TxnRow, StoreError> {
        let RawRow { rec, status, tz_name } = raw;
        let tz = match tz_name {
            None => chrono_tz::Asia::Shanghai,
            Some(name) => match self.zones.get(&name) {
                Some(tz) => *tz,
                None => {
                    let tz: Tz = name
                        .parse()
                        .map_err(|_| corrupt("merchants.timezone", &name))?;
                    self.zones.insert(name, tz);
                    tz
                }
            },
        };
        to_txn_row(rec, &status, tz)
    }
}

/// Lower-case hex of `bytes` (`hex::encode` builds its string a char at a time: 7% of an
/// export's CPU).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

fn to_txn_row(mut rec: RecordRow, status: &str, tz: Tz) -> Result<TxnRow, StoreError> {
    let six = |v: Option<i64>, column: &'static str| -> Result<Option<u32>, StoreError> {
        match v {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| corrupt(column, n.to_string())),
        }
    };
    let txn_time = from_us(rec.txn_time_us);
    // Moved, not cloned: this runs once per listed or exported row.
    let card = match (
        rec.card_bin.take(),
        rec.card_last4.take(),
        rec.card_masked.take(),
    ) {
        (Some(bin), Some(last4), Some(masked)) => Some(CardSummary {
            bin,
            last4,
            masked,
            token: rec.card_token.as_deref().map(lower_hex).unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(TxnRow {
        id: TxnId(ids::encode(rec.received_at_us.div_euclid(1000), rec.seq)),
        seq: rec.seq,
        merchant_id: MerchantId::parse(&rec.merchant_id)
            .map_err(|_| corrupt("txn_records.merchant_id", &rec.merchant_id))?,
        terminal_id: rec
            .terminal_id
            .as_deref()
            .map(|t| TerminalId::parse(t).map_err(|_| corrupt("txn_records.terminal_id", t)))
            .transpose()?,
        batch_no: six(rec.batch_no, "txn_records.batch_no")?
            .map(|n| BatchNo::new(n).map_err(|_| corrupt("txn_records.batch_no", n.to_string())))
            .transpose()?,
        stan: six(rec.stan, "txn_records.stan")?
            .map(|n| Stan::new(n).map_err(|_| corrupt("txn_records.stan", n.to_string())))
            .transpose()?,
        rrn: rec
            .rrn
            .as_deref()
            .map(|v| Rrn::parse(v).map_err(|_| corrupt("txn_records.rrn", v)))
            .transpose()?,
        auth_code: rec
            .auth_code
            .as_deref()
            .map(|v| AuthCode::parse(v).map_err(|_| corrupt("txn_records.auth_code", v)))
            .transpose()?,
        kind: TxnKind::parse(&rec.kind).map_err(|_| corrupt("txn_records.kind", &rec.kind))?,
        channel: Channel::parse(&rec.channel)
            .map_err(|_| corrupt("txn_records.channel", &rec.channel))?,
        card,
        amount: Amount::from_fen(rec.amount_fen)
            .map_err(|_| corrupt("txn_records.amount_fen", rec.amount_fen.to_string()))?,
        currency: Currency::parse(&rec.currency)
            .map_err(|_| corrupt("txn_records.currency", &rec.currency))?,
        response_code: ResponseCode::parse(&rec.response_code)
            .map_err(|_| corrupt("txn_records.response_code", &rec.response_code))?,
        status: TxnStatus::parse(status).map_err(|_| corrupt("txn_status.status", status))?,
        txn_time,
        txn_time_us: rec.txn_time_us,
        local_time: txn_time.with_timezone(&tz).fixed_offset(),
        timezone: tz.name().to_owned(),
        settlement_date: int_to_date(rec.settlement_date).ok_or_else(|| {
            corrupt(
                "txn_records.settlement_date",
                rec.settlement_date.to_string(),
            )
        })?,
        // Filled by `fill_original_ids`: an id needs the original's receive time.
        original_id: None,
        reversal: rec.reversal,
        source: Source::parse(&rec.source)
            .map_err(|_| corrupt("txn_records.source", &rec.source))?,
        external_ref: rec.external_ref,
        received_at: from_us(rec.received_at_us),
    })
}

/// Fills `original_id` of rows that name an original (ids need the original's receive time).
fn fill_original_ids(
    conn: &Connection,
    rows: &mut [TxnRow],
    originals: &[Option<i64>],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT received_at_us FROM txn_records WHERE seq = ?1")?;
    for (row, orig) in rows.iter_mut().zip(originals) {
        row.original_id = match orig {
            None => None,
            Some(o) => {
                let received: Option<i64> = stmt.query_row([o], |r| r.get(0)).optional()?;
                received.map(|us| TxnId(ids::encode(us.div_euclid(1000), *o)))
            }
        };
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Query building
// ---------------------------------------------------------------------------------------------

struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    fn push(&mut self, clause: &str, v: Value) {
        self.params.push(v);
        self.sql
            .push_str(&clause.replace('?', &format!("?{}", self.params.len())));
    }

    fn push_in(&mut self, column: &str, vals: Vec<Value>) {
        let mut marks = Vec::with_capacity(vals.len());
        for v in vals {
            self.params.push(v);
            marks.push(format!("?{}", self.params.len()));
        }
        self.sql
            .push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
    }
}

fn text<T: ToString>(v: T) -> Value {
    Value::Text(v.to_string())
}

/// `None` when the scope and filters cannot match anything (an empty answer, not an error).
fn build_where(q: &TxnQuery, as_of_seq: i64, with_cursor: bool, zone: Option<Tz>) -> Option<Where> {
    let mut w = Where {
        sql: String::from("WHERE s.seq = r.seq"),
        params: Vec::new(),
    };
    w.push(" AND r.seq <= ?", Value::Integer(as_of_seq));
    // Merchant scope and filter.
    match (&q.scope.merchants, &q.merchant_id) {
        (Some(allowed), Some(m)) => {
            if !allowed.contains(m) {
                return None;
            }
            w.push(" AND r.merchant_id = ?", text(m));
        }
        (Some(allowed), None) => {
            if allowed.is_empty() {
                return None;
            }
            if allowed.len() == 1 {
                w.push(" AND r.merchant_id = ?", text(&allowed[0]));
            } else {
                w.push_in("r.merchant_id", allowed.iter().map(text).collect());
            }
        }
        (None, Some(m)) => w.push(" AND r.merchant_id = ?", text(m)),
        (None, None) => {}
    }
    if let Some(ts) = &q.scope.terminals {
        if ts.is_empty() {
            return None;
        }
        w.push_in("r.terminal_id", ts.iter().map(text).collect());
    }
    match &q.range {
        TxnRange::All => {}
        TxnRange::TxnTime { from, to } => {
            w.push(
                " AND r.txn_time_us >= ?",
                Value::Integer(from.timestamp_micros()),
            );
            w.push(
                " AND r.txn_time_us < ?",
                Value::Integer(to.timestamp_micros()),
            );
        }
        TxnRange::SettlementDate { from, to } => {
            // Through the merchant + time (or time) index; the dates themselves filter rows.
            let (start_us, end_us) = settlement_time_range_us(zone, from.date(), to.date());
            w.push(" AND r.txn_time_us >= ?", Value::Integer(start_us));
            w.push(" AND r.txn_time_us < ?", Value::Integer(end_us));
            w.push(
                " AND r.settlement_date >= ?",
                Value::Integer(date_to_int(*from)),
            );
            w.push(
                " AND r.settlement_date <= ?",
                Value::Integer(date_to_int(*to)),
            );
        }
    }
    if !q.terminal_ids.is_empty() {
        w.push_in("r.terminal_id", q.terminal_ids.iter().map(text).collect());
    }
    if !q.kinds.is_empty() {
        w.push_in("r.kind", q.kinds.iter().map(|k| text(k.as_str())).collect());
    }
    if !q.statuses.is_empty() {
        w.push_in(
            "s.status",
            q.statuses.iter().map(|k| text(k.as_str())).collect(),
        );
    }
    if !q.channels.is_empty() {
        w.push_in(
            "r.channel",
            q.channels.iter().map(|k| text(k.as_str())).collect(),
        );
    }
    if let Some(v) = &q.card_last4 {
        w.push(" AND r.card_last4 = ?", text(v));
    }
    if let Some(v) = &q.rrn {
        w.push(" AND r.rrn = ?", text(v));
    }
    if let Some(v) = q.stan {
        w.push(" AND r.stan = ?", Value::Integer(i64::from(v.get())));
    }
    if let Some(v) = q.batch_no {
        w.push(" AND r.batch_no = ?", Value::Integer(i64::from(v.get())));
    }
    if q.batch_no.is_some() || q.stan.is_some() {
        // Only card records carry a batch and a STAN (ingest refuses them on QR records), so
        // this changes no answer; spelled out, it lets the card key index (partial, `WHERE
        // channel = 'card'`) serve the query (see `from_join`).
        w.sql.push_str(" AND r.channel = 'card'");
    }
    if let Some(v) = &q.auth_code {
        w.push(" AND r.auth_code = ?", text(v));
    }
    if let Some(v) = &q.external_ref {
        w.push(" AND r.external_ref = ?", text(v));
    }
    if let Some(v) = q.amount_min {
        w.push(" AND r.amount_fen >= ?", Value::Integer(v.fen()));
    }
    if let Some(v) = q.amount_max {
        w.push(" AND r.amount_fen <= ?", Value::Integer(v.fen()));
    }
    if with_cursor {
        if let Some(c) = &q.cursor {
            w.params.push(Value::Integer(c.txn_time_us));
            let a = w.params.len();
            w.params.push(Value::Integer(c.seq));
            let b = w.params.len();
            w.sql.push_str(&format!(
                " AND (r.txn_time_us < ?{a} OR (r.txn_time_us = ?{a} AND r.seq < ?{b}))"
            ));
        }
    }
    Some(w)
}

/// The zone `build_where` needs: only a settlement-date range asks for it.
fn zone_of(c: &Connection, q: &TxnQuery) -> Result<Option<Tz>, StoreError> {
    match q.range {
        TxnRange::SettlementDate { .. } => single_merchant_zone(c, q),
        _ => Ok(None),
    }
}

fn pinned_as_of(conn: &Connection, q: &TxnQuery) -> Result<i64, StoreError> {
    match (q.cursor, q.as_of_seq) {
        (Some(c), _) => Ok(c.as_of_seq),
        (None, Some(a)) => Ok(a),
        (None, None) => {
            Ok(conn.query_row("SELECT seq FROM chain_head WHERE id = 1", [], |r| r.get(0))?)
        }
    }
}

fn scope_allows(scope: &Scope, row: &TxnRow) -> bool {
    scope.allows_merchant(&row.merchant_id) && scope.allows_terminal(row.terminal_id.as_ref())
}

fn load_row(conn: &Connection, seq: i64) -> Result<Option<(TxnRow, Option<i64>)>, StoreError> {
    let sql = format!(
        "SELECT {} {FROM_JOIN} WHERE s.seq = r.seq AND r.seq = ?1",
        select_cols()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([seq])?;
    let mut reader = RowReader::new();
    match rows.next()? {
        None => Ok(None),
        Some(r) => {
            let orig: Option<i64> = r.get(19)?;
            Ok(Some((reader.read(r)?, orig)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The repository
// ---------------------------------------------------------------------------------------------

/// Orders a bulk chunk by merchant, keeping file order within each merchant (a stable sort).
///
/// Exports list transactions by time, interleaved across merchants, so in file order every
/// insert into a merchant-keyed index (the card idempotency key, merchant + time) lands on a
/// different leaf; grouped by merchant, consecutive inserts share leaves. Records that refer to
/// each other (a void, refund or reversal and its original) are always of one merchant (card
/// keys, batch + STAN and RRN originals are looked up within the merchant), so within a chunk
/// an original still comes before what names it; across chunks file order is kept. The
/// sequence numbers of an import therefore follow merchant order within each chunk, not the
/// file's line order.
///
/// The one lookup not scoped to a merchant is a QR record's key (external_ref, kind): rows of
/// a chunk sharing an external_ref are grouped under the merchant of the first of them, so even
/// a reversal filed under another merchant than its payment stays after it.
fn in_merchant_order(chunk: Vec<(u64, NewTxn)>) -> Vec<(u64, NewTxn)> {
    let order: Vec<usize> = {
        let mut first_of_ref: HashMap<&str, &str> = HashMap::new();
        let keys: Vec<&str> = chunk
            .iter()
            .map(|(_, t)| match t.external_ref.as_deref() {
                Some(r) if t.channel != Channel::Card => {
                    *first_of_ref.entry(r).or_insert(t.merchant_id.as_str())
                }
                _ => t.merchant_id.as_str(),
            })
            .collect();
        let mut order: Vec<usize> = (0..chunk.len()).collect();
        // Stable: file order within a merchant.
        order.sort_by_key(|&i| keys[i]);
        order
    };
    let mut slots: Vec<Option<(u64, NewTxn)>> = chunk.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Indexes a bulk import dropped in its transaction, with the statements that build them again.
struct DeferredIndexes {
    create: Vec<String>,
}

impl DeferredIndexes {
    /// Drops the deferred indexes when the store is small enough that building them again, sorted,
    /// costs less than inserting this import into them row by row.
    fn drop_if_small(conn: &Connection) -> Result<Option<DeferredIndexes>, StoreError> {
        // Records are append-only, so the newest sequence number counts them.
        let existing: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM txn_records", [], |r| r.get(0))?;
        if existing > BULK_DEFER_INDEXES_EXISTING_MAX {
            return Ok(None);
        }
        let mut create = Vec::with_capacity(BULK_DEFERRED_INDEXES.len());
        for name in BULK_DEFERRED_INDEXES {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(sql) = sql else { continue };
            conn.execute_batch(&format!("DROP INDEX {name}"))?;
            create.push(sql);
        }
        Ok(Some(DeferredIndexes { create }))
    }

    /// Builds the dropped indexes again (same transaction: the import stays all or nothing).
    fn rebuild(self, conn: &Connection) -> Result<(), StoreError> {
        for sql in &self.create {
            conn.execute_batch(sql)?;
        }
        Ok(())
    }
}

enum BulkMsg {
    Chunk(Vec<(u64, NewTxn)>),
    /// The input is exhausted; `rejected` when some line failed validation, so the writer must
    /// roll everything back.
    End {
        rejected: bool,
    },
}

/// What `ingest` answers without the writer: too many items, or none.
pub(crate) fn ingest_precheck(batch: &[NewTxn]) -> Option<Result<Vec<IngestResult>, IngestError>> {
    if batch.len() > INGEST_BATCH_MAX {
        return Some(Err(IngestError::Items(vec![ItemError {
            index: INGEST_BATCH_MAX,
            reason: ItemReason::TooMany {
                max: INGEST_BATCH_MAX,
            },
        }])));
    }
    batch.is_empty().then(|| Ok(Vec::new()))
}

/// One ingest batch inside the writer's transaction (all or nothing: an error rolls it back).
pub(crate) fn ingest_in(
    ctx: &mut WriterCtx,
    batch: &[NewTxn],
    opts: IngestOptions,
) -> Result<Vec<IngestResult>, IngestError> {
    let mut cache = IngestCache::default();
    let mut scratch = Vec::with_capacity(512);
    let mut results = Vec::with_capacity(batch.len());
    let mut errors = Vec::new();
    let WriterCtx { conn, head } = ctx;
    let mut hot = HotStatements::new(conn)?;
    for (index, t) in batch.iter().enumerate() {
        match store_one(conn, head, &mut hot, t, opts, &mut cache, &mut scratch)? {
            Ok(s) => {
                let duplicate = matches!(s, Stored::Duplicate { .. });
                results.push(IngestResult {
                    id: s.id(),
                    duplicate,
                });
            }
            Err(reason) => errors.push(ItemError { index, reason }),
        }
    }
    if errors.is_empty() {
        Ok(results)
    } else {
        Err(IngestError::Items(errors))
    }
}

impl TxnRepo for SqliteStore {
    fn ingest(
        &self,
        batch: Vec<NewTxn>,
        opts: IngestOptions,
    ) -> Result<Vec<IngestResult>, IngestError> {
        if let Some(early) = ingest_precheck(&batch) {
            return early;
        }
        self.write(move |ctx| ingest_in(ctx, &batch, opts))
    }

    fn bulk_ingest(
        &self,
        lines: &mut dyn Iterator<Item = BulkLine>,
        key: &CardKey,
        source: Source,
        opts: BulkOptions,
        progress: &mut dyn FnMut(BulkProgress),
    ) -> Result<BulkReport, BulkError> {
        let started = Instant::now();
        let errors_max = if opts.errors_max == 0 {
            BULK_ERRORS_MAX_DEFAULT
        } else {
            opts.errors_max
        };
        let stored = Arc::new(AtomicU64::new(0));
        let (tx, rx) = sync_channel::<BulkMsg>(BULK_CHUNKS_IN_FLIGHT);
        let (spent_tx, spent_rx) = sync_channel::<Vec<(u64, NewTxn)>>(BULK_CHUNKS_IN_FLIGHT);
        let ingest_opts = IngestOptions {
            create_missing: opts.create_missing,
        };
        let stored_w = Arc::clone(&stored);
        let done = self.submit(
            move |ctx: &mut WriterCtx| -> Result<(BulkReport, Vec<LineError>), BulkError> {
                let mut cache = IngestCache::default();
                let mut scratch = Vec::with_capacity(512);
                let mut report = BulkReport::default();
                let mut errors = Vec::new();
                let mut errors_total = 0usize;
                let mut deferred: Option<DeferredIndexes> = None;
                // What reconciliation reads of the stored records, written beside them.
                cache.chunks = Some(RecordChunkWriter::new());
                let WriterCtx { conn, head } = ctx;
                let conn: &Connection = conn;
                // Prepared after the first chunk decided whether to drop the deferred indexes.
                let mut hot: Option<HotStatements<'_>> = None;
                let rejected = loop {
                    match rx.recv() {
                        Ok(BulkMsg::Chunk(items)) => {
                            let hot = match &mut hot {
                                Some(h) => h,
                                None => {
                                    if items.len() >= BULK_CHUNK_LINES {
                                        deferred = DeferredIndexes::drop_if_small(conn)?;
                                        if deferred.is_some() {
                                            cache.rrns = RrnLookup::Unbuilt;
                                        }
                                    }
                                    hot.insert(HotStatements::new(conn)?)
                                }
                            };
                            for (line_no, t) in &items {
                                let line_no = *line_no;
                                match store_one(conn, head, hot, t, ingest_opts, &mut cache, &mut scratch)? {
                                    Ok(Stored::Inserted { .. }) => report.inserted += 1,
                                    Ok(Stored::Duplicate { .. }) => report.duplicates += 1,
                                    Err(reason) => {
                                        errors_total += 1;
                                        errors.push(LineError {
                                            line_no,
                                            reason: reason.to_string(),
                                        });
                                    }
                                }
                            }
                            // A chunk is stored in merchant order, not line order: keep the
                            // lowest line numbers, as a line-ordered import would have.
                            if errors.len() > errors_max {
                                errors.sort_by_key(|e| e.line_no);
                                errors.truncate(errors_max);
                            }
                            stored_w.store(report.inserted, Ordering::Relaxed);
                            // Freeing a chunk's strings is the feeding thread's work (it has
                            // time to spare; the writer does not). If it cannot take it, free
                            // it here.
                            let _ = spent_tx.try_send(items);
                        }
                        Ok(BulkMsg::End { rejected }) => break rejected,
                        // The feeding side went away without finishing: store nothing.
                        Err(_) => {
                            return Err(BulkError::Store(StoreError::Invalid {
                                what: "bulk import",
                                reason: "input ended unexpectedly".into(),
                            }))
                        }
                    }
                };
                report.merchants_created = cache.merchants_created;
                report.terminals_created = cache.terminals_created;
                if errors.is_empty() && !rejected {
                    if let Some(w) = &mut cache.chunks {
                        w.flush(conn)?;
                    }
                    if let Some(d) = deferred {
                        d.rebuild(conn)?;
                    }
                    Ok((report, errors))
                } else {
                    // Returning an error rolls the whole import back.
                    Err(BulkError::Lines {
                        truncated: errors_total > errors.len(),
                        errors,
                    })
                }
            },
        )?;

        let mut line_errors: Vec<LineError> = Vec::new();
        let mut error_count: u64 = 0;
        let mut lines_read: u64 = 0;
        let mut chunk = Vec::with_capacity(BULK_CHUNK_LINES);
        let mut writer_alive = true;
        for line in lines {
            lines_read += 1;
            let parsed = match line.object {
                Err(reason) => Err(reason),
                Ok(obj) => validate(obj, key, source).map_err(|errs| {
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            };
            match parsed {
                Ok(t) => chunk.push((line.line_no, t)),
                Err(reason) => {
                    error_count += 1;
                    if line_errors.len() < errors_max {
                        line_errors.push(LineError {
                            line_no: line.line_no,
                            reason,
                        });
                    }
                }
            }
            if chunk.len() >= BULK_CHUNK_LINES {
                let full = in_merchant_order(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(BULK_CHUNK_LINES),
                ));
                if writer_alive && tx.send(BulkMsg::Chunk(full)).is_err() {
                    writer_alive = false;
                }
                spent_rx.try_iter().for_each(drop);
                progress(BulkProgress {
                    lines_read,
                    rows_stored: stored.load(Ordering::Relaxed),
                    errors: error_count,
                });
            }
        }
        if !chunk.is_empty() && writer_alive {
            writer_alive = tx.send(BulkMsg::Chunk(in_merchant_order(chunk))).is_ok();
        }
        if writer_alive {
            let _ = tx.send(BulkMsg::End {
                rejected: error_count > 0,
            });
        }
        drop(tx);
        let outcome = done
            .recv()
            .map_err(|_| BulkError::Store(StoreError::WriterGone))?;
        progress(BulkProgress {
            lines_read,
            rows_stored: stored.load(Ordering::Relaxed),
            errors: error_count,
        });
        match outcome {
            Ok((mut report, _)) if line_errors.is_empty() => {
                report.lines = lines_read;
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(report)
            }
            // Unreachable while the writer honours `rejected`; refuse all the same.
            Ok(_) => Err(BulkError::Lines {
                truncated: error_count as usize > line_errors.len(),
                errors: line_errors,
            }),
            Err(BulkError::Lines {
                errors,
                truncated: writer_truncated,
            }) => {
                let total = error_count as usize + errors.len();
                line_errors.extend(errors);
                line_errors.sort_by_key(|e| e.line_no);
                let truncated = writer_truncated || total > errors_max;
                line_errors.truncate(errors_max);
                Err(BulkError::Lines {
                    errors: line_errors,
                    truncated,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn list_txns(&self, q: &TxnQuery) -> Result<TxnPage, StoreError> {
        let limit = q.limit.clamp(1, PAGE_LIMIT_MAX) as usize;
        self.read(|c| {
            let as_of_seq = pinned_as_of(c, q)?;
            let Some(w) = build_where(q, as_of_seq, true, zone_of(c, q)?) else {
                return Ok(TxnPage {
                    rows: Vec::new(),
                    has_more: false,
                    next_cursor: None,
                    as_of_seq,
                });
            };
            let sql = format!(
                "SELECT {} {} {} ORDER BY r.txn_time_us DESC, r.seq DESC LIMIT {}",
                select_cols(),
                from_join(q),
                w.sql,
                limit + 1
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(w.params.iter()))?;
            let mut reader = RowReader::new();
            let mut out = Vec::with_capacity(limit + 1);
            let mut originals = Vec::with_capacity(limit + 1);
            while let Some(r) = rows.next()? {
                originals.push(r.get::<_, Option<i64>>(19)?);
                out.push(reader.read(r)?);
            }
            let has_more = out.len() > limit;
            out.truncate(limit);
            originals.truncate(limit);
            fill_original_ids(c, &mut out, &originals)?;
            let next_cursor = if has_more {
                out.last().map(|r| TxnCursor {
                    as_of_seq,
                    txn_time_us: r.txn_time_us,
                    seq: r.seq,
                })
            } else {
                None
            };
            Ok(TxnPage {
                rows: out,
                has_more,
                next_cursor,
                as_of_seq,
            })
        })
    }

    fn summary(&self, q: &TxnQuery) -> Result<Vec<StatusSummary>, StoreError> {
        self.read(|c| {
            let as_of_seq = pinned_as_of(c, q)?;
            let Some(w) = build_where(q, as_of_seq, false, zone_of(c, q)?) else { return Ok(Vec::new()) };
            let sql = format!(
                "SELECT s.status, COUNT(*), COALESCE(SUM(r.amount_fen), 0) FROM txn_records r CROSS JOIN txn_status s {}
                 GROUP BY s.status ORDER BY s.status",
                w.sql
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(s, n, amount)| {
                    Ok(StatusSummary {
                        status: TxnStatus::parse(&s).map_err(|_| corrupt("txn_status.status", &s))?,
                        count: n as u64,
                        amount_fen: amount,
                    })
                })
                .collect()
        })
    }

    fn get_txn(&self, id: &TxnId, scope: &Scope) -> Result<Option<TxnDetail>, StoreError> {
        let Some((ms, seq)) = ids::decode(id.as_str()) else {
            return Ok(None);
        };
        self.read(|c| {
            let Some((mut txn, orig)) = load_row(c, seq)? else {
                return Ok(None);
            };
            // An id is only valid with the receive time it was issued with.
            if txn.received_at.timestamp_micros().div_euclid(1000) != ms
                || !scope_allows(scope, &txn)
            {
                return Ok(None);
            }
            fill_original_ids(c, std::slice::from_mut(&mut txn), &[orig])?;
            let original = match orig {
                None => None,
                Some(o) => match load_row(c, o)? {
                    Some((mut row, oo)) if scope_allows(scope, &row) => {
                        fill_original_ids(c, std::slice::from_mut(&mut row), &[oo])?;
                        Some(row)
                    }
                    _ => None,
                },
            };
            // Every record naming this one (and theirs), plus an orphan reversal by key.
            let mut seen: HashSet<i64> = HashSet::from([seq]);
            let mut frontier = vec![seq];
            let mut event_seqs = Vec::new();
            if let Some(rec) = load_record(c, seq)? {
                if let Some(tw) = orphan_twin(c, &rec)? {
                    if seen.insert(tw.seq) {
                        event_seqs.push(tw.seq);
                    }
                }
            }
            let mut stmt = c.prepare_cached(
                "SELECT seq FROM txn_records WHERE original_seq = ?1 ORDER BY seq",
            )?;
            while let Some(s) = frontier.pop() {
                let next: Vec<i64> = stmt
                    .query_map([s], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for n in next {
                    if seen.insert(n) {
                        event_seqs.push(n);
                        frontier.push(n);
                    }
                }
                if seen.len() > 10_000 {
                    break;
                }
            }
            event_seqs.sort_unstable();
            let mut events = Vec::with_capacity(event_seqs.len());
            for s in event_seqs {
                if let Some((mut row, oo)) = load_row(c, s)? {
                    if scope_allows(scope, &row) {
                        fill_original_ids(c, std::slice::from_mut(&mut row), &[oo])?;
                        events.push(row);
                    }
                }
            }
            Ok(Some(TxnDetail {
                txn,
                original,
                events,
            }))
        })
    }

    fn settlements(
        &self,
        scope: &Scope,
        merchant_id: Option<&MerchantId>,
        from: SettlementDate,
        to: SettlementDate,
    ) -> Result<Vec<SettlementDay>, StoreError> {
        let q = TxnQuery {
            scope: scope.clone(),
            merchant_id: merchant_id.cloned(),
            range: TxnRange::SettlementDate { from, to },
            ..TxnQuery::default()
        };
        self.read(|c| {
            let as_of_seq = pinned_as_of(c, &q)?;
            let Some(w) = build_where(&q, as_of_seq, false, zone_of(c, &q)?) else { return Ok(Vec::new()) };
            let gross = "r.reversal = 0 AND r.kind IN ('purchase', 'preauth_completion')
                         AND s.status IN ('approved', 'partially_refunded', 'refunded', 'completed')";
            let refund = "r.reversal = 0 AND r.kind = 'refund' AND s.status = 'approved'";
            let sql = format!(
                "SELECT r.settlement_date, COUNT(*),
                    SUM(CASE WHEN {gross} THEN 1 ELSE 0 END), COALESCE(SUM(CASE WHEN {gross} THEN r.amount_fen ELSE 0 END), 0),
                    SUM(CASE WHEN {refund} THEN 1 ELSE 0 END), COALESCE(SUM(CASE WHEN {refund} THEN r.amount_fen ELSE 0 END), 0),
                    SUM(CASE WHEN s.status = 'declined' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN s.status = 'reversed' AND r.reversal = 0 THEN 1 ELSE 0 END),
                    SUM(CASE WHEN s.status = 'voided' THEN 1 ELSE 0 END)
                 FROM txn_records r CROSS JOIN txn_status s {} GROUP BY r.settlement_date ORDER BY r.settlement_date",
                w.sql
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    Ok([
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ])
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|v| {
                    Ok(SettlementDay {
                        settlement_date: int_to_date(v[0]).ok_or_else(|| corrupt("txn_records.settlement_date", v[0].to_string()))?,
                        record_count: v[1] as u64,
                        gross_count: v[2] as u64,
                        gross_fen: v[3],
                        refund_count: v[4] as u64,
                        refund_fen: v[5],
                        net_fen: v[3] - v[5],
                        declined_count: v[6] as u64,
                        reversed_count: v[7] as u64,
                        voided_count: v[8] as u64,
                    })
                })
                .collect()
        })
    }

    fn export_txns(
        &self,
        q: &TxnQuery,
        rows_max: u64,
        on_row: &mut (dyn FnMut(&TxnRow) -> std::io::Result<()> + Send),
    ) -> Result<ExportOutcome, StoreError> {
        let rows_max = rows_max.min(EXPORT_ROWS_MAX);
        self.read(|c| {
            let as_of_seq = pinned_as_of(c, q)?;
            let Some(w) = build_where(q, as_of_seq, true, zone_of(c, q)?) else {
                return Ok(ExportOutcome {
                    rows: 0,
                    truncated: false,
                    as_of_seq,
                });
            };
            let sql = format!(
                "SELECT {} {} {} ORDER BY r.txn_time_us DESC, r.seq DESC",
                select_cols(),
                from_join(q),
                w.sql
            );
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(w.params.iter()))?;
            let mut orig_stmt =
                c.prepare_cached("SELECT received_at_us FROM txn_records WHERE seq = ?1")?;
            // Two threads: this one steps SQLite and copies the columns out, the other parses
            // them into rows and runs `on_row` (each about half of an export's CPU), with a
            // bounded queue of batches between them.
            let (tx, rx) = sync_channel::<RawBatch>(EXPORT_BATCHES_IN_FLIGHT);
            std::thread::scope(|scope| {
                let consumer = std::thread::Builder::new()
                    .name("export-rows".into())
                    .spawn_scoped(scope, move || -> Result<(), StoreError> {
                        let mut reader = RowReader::new();
                        for batch in rx {
                            for (vals, orig_received_us) in &batch.rows {
                                let mut row = reader.convert(batch.raw_row(vals)?)?;
                                row.original_id = orig_received_us
                                    .map(|(o, us)| TxnId(ids::encode(us.div_euclid(1000), o)));
                                on_row(&row).map_err(|e| StoreError::Io {
                                    path: "export".into(),
                                    source: e,
                                })?;
                            }
                        }
                        Ok(())
                    })
                    .map_err(|e| StoreError::Io { path: "export thread".into(), source: e })?;
                let mut n = 0u64;
                let mut truncated = false;
                let mut batch = RawBatch::with_capacity(EXPORT_BATCH_ROWS);
                let mut consumer_gone = false;
                let read = (|| -> Result<(), StoreError> {
                    while let Some(r) = rows.next()? {
                        if n >= rows_max {
                            truncated = true;
                            break;
                        }
                        let orig = match r.get::<_, Option<i64>>(19)? {
                            None => None,
                            Some(o) => orig_stmt
                                .query_row([o], |x| x.get::<_, i64>(0))
                                .optional()?
                                .map(|us| (o, us)),
                        };
                        batch.push(r, orig)?;
                        n += 1;
                        if batch.rows.len() >= EXPORT_BATCH_ROWS {
                            let full = std::mem::replace(&mut batch, RawBatch::with_capacity(EXPORT_BATCH_ROWS));
                            if tx.send(full).is_err() {
                                consumer_gone = true;
                                return Ok(());
                            }
                        }
                    }
                    if !batch.rows.is_empty() {
                        let last = std::mem::replace(&mut batch, RawBatch::with_capacity(0));
                        consumer_gone = tx.send(last).is_err();
                    }
                    Ok(())
                })();
                drop(tx);
                // The consumer's error (the client went away) explains a stop best.
                consumer.join().map_err(|_| StoreError::Invalid {
                    what: "export",
                    reason: "the row thread panicked".into(),
                })??;
                read?;
                if consumer_gone {
                    return Err(StoreError::Invalid {
                        what: "export",
                        reason: "the row thread stopped".into(),
                    });
                }
                Ok(ExportOutcome {
                    rows: n,
                    truncated,
                    as_of_seq,
                })
            })
        })
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.read(verify_chain)
    }
}

// ---------------------------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------------------------

fn verify_chain(c: &Connection) -> Result<VerifyReport, StoreError> {
    // One read transaction: the chain, the projection and the head are one snapshot.
    c.execute_batch("BEGIN")?;
    let r = verify_in_snapshot(c);
    let _ = c.execute_batch("COMMIT");
    r
}

fn verify_in_snapshot(c: &Connection) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        records_checked: 0,
        head_seq: 0,
        first_break: None,
    };
    let (head_seq, head_hash): (i64, Vec<u8>) =
        c.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    report.head_seq = head_seq;

    // Records whose status depends on later events; every other record's status follows from
    // its own row.
    let mut has_events: HashSet<i64> = c
        .prepare("SELECT DISTINCT original_seq FROM txn_records WHERE original_seq IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    {
        let mut stmt = c.prepare(&format!(
            "SELECT {RECORD_COLS} FROM txn_records WHERE reversal = 1 AND original_seq IS NULL ORDER BY seq"
        ))?;
        let orphans = stmt
            .query_map([], |r| record_from_row(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for o in orphans {
            let twin_kind = o.kind.clone();
            let twin: Option<i64> = if o.channel == "card" {
                c.query_row(
                    "SELECT seq FROM txn_records WHERE channel = 'card' AND merchant_id = ?1 AND terminal_id = ?2
                     AND batch_no = ?3 AND stan = ?4 AND kind = ?5 AND reversal = 0",
                    (&o.merchant_id, &o.terminal_id, o.batch_no, o.stan, &twin_kind),
                    |r| r.get(0),
                )
                .optional()?
            } else {
                c.query_row(
                    "SELECT seq FROM txn_records WHERE channel <> 'card' AND external_ref = ?1 AND kind = ?2 AND reversal = 0",
                    (&o.external_ref, &twin_kind),
                    |r| r.get(0),
                )
                .optional()?
            };
            has_events.extend(twin);
        }
    }

    let mut rec_stmt = c.prepare(&format!(
        "SELECT {RECORD_COLS}, hash FROM txn_records ORDER BY seq"
    ))?;
    let mut st_stmt = c.prepare("SELECT seq, status FROM txn_status ORDER BY seq")?;
    let mut recs = rec_stmt.query([])?;
    let mut sts = st_stmt.query([])?;
    let mut pending_status: Option<(i64, String)> = None;
    let next_status = |sts: &mut rusqlite::Rows<'_>| -> Result<Option<(i64, String)>, StoreError> {
        match sts.next()? {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))),
        }
    };
    let mut status_started = false;
    let mut prev_hash = GENESIS;
    let mut prev_seq = 0i64;
    let mut last_id: Option<TxnId> = None;
    let mut scratch = Vec::with_capacity(512);

    while let Some(r) = recs.next()? {
        let seq: i64 = match r.get(0) {
            Ok(s) => s,
            Err(_) => {
                report.first_break = Some(ChainBreak {
                    seq: prev_seq + 1,
                    id: None,
                    what: BreakKind::BadValue { column: "seq" },
                });
                return Ok(report);
            }
        };
        let received: i64 = r.get::<_, i64>(1).unwrap_or(0);
        let id = Some(TxnId(ids::encode(received.div_euclid(1000), seq)));
        let brk = |what: BreakKind| {
            Some(ChainBreak {
                seq,
                id: id.clone(),
                what,
            })
        };
        if seq != prev_seq + 1 {
            report.first_break = brk(BreakKind::SeqGap {
                expected_seq: prev_seq + 1,
            });
            return Ok(report);
        }
        let row = match record_from_row(r, 0) {
            Ok(row) => row,
            Err(_) => {
                report.first_break = brk(BreakKind::BadValue {
                    column: "a typed column",
                });
                return Ok(report);
            }
        };
        let stored_hash: Vec<u8> = r
            .get::<_, Option<Vec<u8>>>(23)
            .ok()
            .flatten()
            .unwrap_or_default();
        let hash = row.seal(&prev_hash, &mut scratch);
        if stored_hash.as_slice() != hash.as_slice() {
            report.first_break = brk(BreakKind::HashMismatch);
            return Ok(report);
        }
        // Projection.
        let expected = if has_events.contains(&seq) {
            derive_status(c, seq, 0)
        } else {
            core_of(&row).map(|k| project_status(k.kind, k.approved, k.amount, &[]))
        };
        let expected = match expected {
            Ok(s) => s,
            Err(_) => {
                report.first_break = brk(BreakKind::BadValue {
                    column: "kind/amount_fen",
                });
                return Ok(report);
            }
        };
        if !status_started {
            pending_status = next_status(&mut sts)?;
            status_started = true;
        }
        if let Some((s, _)) = &pending_status {
            if *s < seq {
                report.first_break = Some(ChainBreak {
                    seq: *s,
                    id: None,
                    what: BreakKind::OrphanStatus,
                });
                return Ok(report);
            }
        }
        let stored = match &pending_status {
            Some((s, st)) if *s == seq => {
                let st = st.clone();
                pending_status = next_status(&mut sts)?;
                Some(st)
            }
            _ => None,
        };
        if stored.as_deref() != Some(expected.as_str()) {
            report.first_break = brk(BreakKind::StatusMismatch { stored, expected });
            return Ok(report);
        }
        prev_hash = hash;
        prev_seq = seq;
        last_id = id;
        report.records_checked += 1;
    }
    if !status_started {
        pending_status = next_status(&mut sts)?;
    }
    if let Some((s, _)) = pending_status {
        report.first_break = Some(ChainBreak {
            seq: s,
            id: None,
            what: BreakKind::OrphanStatus,
        });
        return Ok(report);
    }
    if head_seq != prev_seq || head_hash.as_slice() != prev_hash.as_slice() {
        report.first_break = Some(ChainBreak {
            seq: prev_seq,
            id: last_id,
            what: BreakKind::HeadMismatch { head_seq },
        });
        return Ok(report);
    }
    report.first_break = super::recon::verify_record_chunks(c)?;
    Ok(report)
}

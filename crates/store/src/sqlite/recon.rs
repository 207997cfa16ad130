//! Reconciliation: loading what a run looks at, recording runs and items, reading them back.

mod chunks;

use std::collections::HashMap;

use domain::{
    Amount, AuthCode, BatchNo, Channel, Currency, MerchantId, ResponseCode, Rrn, Source, Stan, TerminalId, TxnKind,
    TxnStatus,
};
use recon::{ClearingFileId, ClearingRecord, MaskedCard, MatchPass, Outcome, PlatformId, PlatformRecord};
use rusqlite::{params, Connection, OptionalExtension};

use super::clearing::chunks as chunks_of_clearing;
use super::record_chunks;
use super::clearing::{date_to_int, int_to_date};
use super::txn::settlement_time_range_us;
use super::{from_us, ids, now_us, SqliteStore, WriterCtx};
use crate::error::StoreError;
use crate::model::Scope;
use crate::repo_recon::{
    ItemPart, NewReconRun, ReconInputData, ReconItemQuery, ReconItemRow, ReconRepo, ReconRun, RECON_ITEMS_PAGE_MAX,
};

fn corrupt(column: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { column, value: value.to_string() }
}

fn opt_parse<T, E>(v: Option<String>, column: &'static str, f: impl Fn(&str) -> Result<T, E>) -> Result<Option<T>, StoreError> {
    v.map(|s| f(&s).map_err(|_| corrupt(column, &s))).transpose()
}

fn opt_num<T, E>(v: Option<i64>, column: &'static str, f: impl Fn(u32) -> Result<T, E>) -> Result<Option<T>, StoreError> {
    v.map(|n| u32::try_from(n).ok().and_then(|n| f(n).ok()).ok_or_else(|| corrupt(column, n))).transpose()
}

/// A text column read without copying it out of SQLite.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize, column: &'static str) -> Result<&'r str, StoreError> {
    r.get_ref(i)?.as_str().map_err(|_| corrupt(column, "not text"))
}

fn opt_text<'r>(r: &'r rusqlite::Row<'_>, i: usize, column: &'static str) -> Result<Option<&'r str>, StoreError> {
    r.get_ref(i)?.as_str_or_null().map_err(|_| corrupt(column, "not text"))
}

fn opt_id<T, E>(v: Option<&str>, column: &'static str, f: impl Fn(&str) -> Result<T, E>) -> Result<Option<T>, StoreError> {
    v.map(|s| f(s).map_err(|_| corrupt(column, s))).transpose()
}

/// Settlement dates repeat row after row: convert each distinct value once.
#[derive(Default)]
pub(crate) struct DateCache(Vec<(i64, domain::SettlementDate)>);

impl DateCache {
    pub(crate) fn get(&mut self, v: i64) -> Result<domain::SettlementDate, StoreError> {
        if let Some((_, d)) = self.0.iter().find(|(k, _)| *k == v) {
            return Ok(*d);
        }
        let d = int_to_date(v)?;
        self.0.push((v, d));
        Ok(d)
    }
}

/// Merchant and terminal ids repeat too: validate each distinct value once, then clone.
struct IdCache<T>(HashMap<Box<str>, T>);

impl<T> Default for IdCache<T> {
    fn default() -> Self {
        IdCache(HashMap::new())
    }
}

impl<T: Clone> IdCache<T> {
    fn get<E>(&mut self, s: &str, column: &'static str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, StoreError> {
        if let Some(v) = self.0.get(s) {
            return Ok(v.clone());
        }
        let v = parse(s).map_err(|_| corrupt(column, s))?;
        self.0.insert(s.into(), v.clone());
        Ok(v)
    }
}

/// The result of a reader thread; a panic there is an internal error, not a crash.
fn join_read<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, StoreError>>) -> Result<T, StoreError> {
    h.join().unwrap_or_else(|_| Err(StoreError::Invalid { what: "read", reason: "internal error while reading".into() }))
}

/// The platform records and, index for index, their receive times (ms).
type PlatformSide = (Vec<PlatformRecord>, Vec<i64>);

/// At least this many chunked platform records are decoded in two halves at once.
const PLATFORM_SPLIT_MIN: i64 = 50_000;

/// At most this many records outside chunks are read without first computing their window.
const UNCHUNKED_READ_ALL_MAX: i64 = 100_000;

/// Records reserved for ahead of reading one side at most (the vectors still grow past it).
const WINDOW_RESERVE_MAX: usize = 1 << 23;

/// The sequence window that holds the platform records of D-1..D+1, if any.
///
/// The rows are read by sequence range: per merchant, the (merchant_id, txn_time_us) index
/// gives the lowest and highest sequence of the instants that can carry those settlement dates
/// (its local days D-2..D+1, covering, no table lookups), then one range scan of the table
/// reads the window and keeps the dates asked for, so a run reads the days around D and not
/// the whole history. No index is added to txn_records (there is none on settlement dates).
fn platform_window(c: &Connection, from: i64, to: i64, merchant: Option<&MerchantId>) -> Result<Option<(i64, i64)>, StoreError> {
    let merchants: Vec<String> = match merchant {
        Some(m) => vec![m.to_string()],
        None => {
            // The merchants that have records, by seeking the index once per merchant.
            let mut stmt = c.prepare(
                "WITH RECURSIVE m(id) AS (SELECT min(merchant_id) FROM txn_records \
                 UNION ALL SELECT (SELECT min(merchant_id) FROM txn_records WHERE merchant_id > m.id) FROM m \
                 WHERE m.id IS NOT NULL) SELECT id FROM m WHERE id IS NOT NULL",
            )?;
            let v = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            v
        }
    };
    let zones: HashMap<String, String> = c
        .prepare("SELECT merchant_id, timezone FROM merchants")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let (from_date, to_date) = (int_to_date(from)?.date(), int_to_date(to)?.date());
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    {
        let mut stmt = c.prepare(
            "SELECT min(seq), max(seq) FROM txn_records INDEXED BY txn_records_by_merchant_time \
             WHERE merchant_id = ?1 AND txn_time_us >= ?2 AND txn_time_us < ?3",
        )?;
        for m in &merchants {
            let tz = zones.get(m).and_then(|z| z.parse::<chrono_tz::Tz>().ok());
            let (start_us, end_us) = settlement_time_range_us(tz, from_date, to_date);
            let (a, b): (Option<i64>, Option<i64>) =
                stmt.query_row(params![m, start_us, end_us], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if let (Some(a), Some(b)) = (a, b) {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
    }
    Ok((lo <= hi).then_some((lo, hi)))
}

/// The record chunks holding records dated `from..=to`, in sequence order: `(first_seq,
/// last_seq, rows)`. Found by the chunks' date index, with no window to compute first.
fn dated_chunks(c: &Connection, from: i64, to: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT first_seq, last_seq, rows FROM txn_record_chunks INDEXED BY txn_record_chunks_by_date \
         WHERE max_date >= ?1 AND min_date <= ?2",
    )?;
    let mut v: Vec<(i64, i64, i64)> = stmt.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    // A chunk holds one record per sequence of its span, at most RECORD_CHUNK_MAX: a run sizes
    // its list from these counts before decoding.
    if let Some(&(first, last, rows)) =
        v.iter().find(|&&(first, last, rows)| !(1..=record_chunks::RECORD_CHUNK_MAX).contains(&rows) || last.checked_sub(first) != Some(rows - 1))
    {
        return Err(corrupt("txn_record_chunks.rows", format!("{rows} rows from {first} to {last}")));
    }
    v.sort_unstable();
    Ok(v)
}

/// What fills a slot of the platform list until its record is decoded into it.
fn placeholder_record(date: domain::SettlementDate) -> Result<PlatformRecord, StoreError> {
    Ok(PlatformRecord {
        id: PlatformId(0),
        merchant: MerchantId::from_ascii(b"000000000000000").map_err(|_| corrupt("placeholder", "merchant"))?,
        terminal: None,
        batch: None,
        stan: None,
        rrn: None,
        auth_code: None,
        kind: TxnKind::Purchase,
        channel: Channel::Card,
        approved: false,
        is_reversal: false,
        status: TxnStatus::Approved,
        amount: Amount::ZERO,
        currency: Currency::CNY,
        card: None,
        txn_time: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        settlement_date: date,
        external_ref: None,
        original_id: None,
        source: Source::Api,
    })
}

/// The records dated `from..=to` of `chunks` (consecutive entries of [`dated_chunks`]), decoded
/// in sequence order with their receive times (ms) and their statuses into `out`.
fn load_platform_chunks(
    c: &Connection,
    chunks: &[(i64, i64, i64)],
    from: i64,
    to: i64,
    merchant: Option<&MerchantId>,
    out: &mut impl record_chunks::RecordSink,
) -> Result<(), StoreError> {
    let (Some(&(lo, _, _)), Some(&(last_first, hi, _))) = (chunks.first(), chunks.last()) else {
        return Ok(());
    };
    let mut dates = DateCache::default();
    let statuses = differing_statuses(c, (lo, hi))?;
    let keep = record_chunks::Keep { seqs: (lo, hi), from, to, merchant, statuses: &statuses };
    let mut stmt = c.prepare_cached(
        "SELECT first_seq, last_seq, rows, data FROM txn_record_chunks WHERE first_seq BETWEEN ?1 AND ?2 \
         AND max_date >= ?3 AND min_date <= ?4 ORDER BY first_seq",
    )?;
    let mut found = stmt.query(params![lo, last_first, from, to])?;
    let mut decoded = 0;
    while let Some(r) = found.next()? {
        let span = record_chunks::Span { first_seq: r.get(0)?, last_seq: r.get(1)?, rows: r.get(2)? };
        let data = r.get_ref(3)?.as_blob().map_err(|_| corrupt("txn_record_chunks.data", "not a blob"))?;
        record_chunks::decode(data, span, &keep, &mut dates, out)?;
        decoded += 1;
    }
    if decoded != chunks.len() {
        return Err(corrupt("txn_record_chunks.first_seq", format!("{decoded} chunks between {lo} and {hi}, {} expected", chunks.len())));
    }
    Ok(())
}

/// The platform records dated D-1..D+1 that no record chunk holds (stored one at a time, or
/// before schema 10), read from `txn_records` in sequence order within the window
/// [`platform_window`] finds, with their receive times (ms) and statuses.
fn load_platform_unchunked(c: &Connection, from: i64, to: i64, merchant: Option<&MerchantId>) -> Result<PlatformSide, StoreError> {
    let mut side: PlatformSide = (Vec::new(), Vec::new());
    // Few records outside chunks (the usual case after bulk imports): read them all, dates
    // filtered, instead of computing the window (a scan of the time index).
    let (newest, chunked): (Option<i64>, i64) = c.query_row(
        "SELECT (SELECT max(seq) FROM txn_records), (SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM txn_record_chunks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(newest) = newest else { return Ok(side) };
    let window = if newest - chunked <= UNCHUNKED_READ_ALL_MAX { Some((1, newest)) } else { platform_window(c, from, to, merchant)? };
    let Some((lo, hi)) = window else { return Ok(side) };
    let mut chunk_stmt = c.prepare_cached(
        "SELECT first_seq, last_seq FROM txn_record_chunks WHERE first_seq BETWEEN ?1 AND ?2 AND last_seq >= ?3 ORDER BY first_seq",
    )?;
    let mut chunks = chunk_stmt.query(params![lo.saturating_sub(record_chunks::RECORD_CHUNK_MAX - 1), hi, lo])?;
    // The first sequence of the window not yet accounted for.
    let mut next = lo;
    while let Some(r) = chunks.next()? {
        let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
        if first < next && next > lo {
            return Err(corrupt("txn_record_chunks.first_seq", format!("chunk at {first} overlaps the one before")));
        }
        if first > next {
            load_platform_rows(c, from, to, merchant, (next, first - 1), &mut side)?;
        }
        next = next.max(last.saturating_add(1));
    }
    if next <= hi {
        load_platform_rows(c, from, to, merchant, (next, hi), &mut side)?;
    }
    apply_statuses(c, (lo, hi), &mut side.0)?;
    Ok(side)
}

/// Checks every record chunk against the records it mirrors: its range holds exactly the
/// records the table holds there, each as a run would read it from the table. The first
/// disagreement, if any (part of `verify`).
pub(crate) fn verify_record_chunks(c: &Connection) -> Result<Option<crate::model::ChainBreak>, StoreError> {
    use crate::model::{BreakKind, ChainBreak};
    let mut stmt = c.prepare("SELECT first_seq, last_seq, rows, min_date, max_date, data FROM txn_record_chunks ORDER BY first_seq")?;
    let mut chunks = stmt.query([])?;
    let mut dates = DateCache::default();
    let mut prev_last = 0;
    while let Some(r) = chunks.next()? {
        let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
        let brk = |seq: i64| Ok(Some(ChainBreak { seq, id: None, what: BreakKind::ChunkMismatch { first_seq: first } }));
        if first <= prev_last || last < first {
            return brk(first);
        }
        prev_last = last;
        let mut from_chunk: PlatformSide = (Vec::new(), Vec::new());
        let keep = record_chunks::Keep { seqs: (first, last), from: i64::MIN, to: i64::MAX, merchant: None, statuses: &[] };
        let span = record_chunks::Span { first_seq: first, last_seq: last, rows: r.get(2)? };
        let decoded = match r.get_ref(5)?.as_blob() {
            Ok(data) => record_chunks::decode(data, span, &keep, &mut dates, &mut from_chunk),
            Err(_) => return brk(first),
        };
        if decoded.is_err() {
            return brk(first);
        }
        // The date range a run finds the chunk by must hold every record's date.
        let (min_date, max_date): (i64, i64) = (r.get(3)?, r.get(4)?);
        let dated = |d: domain::SettlementDate| (min_date..=max_date).contains(&super::clearing::date_to_int(d));
        if let Some(outside) = from_chunk.0.iter().find(|rec| !dated(rec.settlement_date)) {
            return brk(outside.id.0);
        }
        let mut from_table: PlatformSide = (Vec::new(), Vec::new());
        load_platform_rows(c, i64::MIN, i64::MAX, None, (first, last), &mut from_table)?;
        if from_chunk != from_table {
            let at = from_chunk.0.iter().zip(&from_table.0).position(|(a, b)| a != b);
            let seq = at
                .or_else(|| from_chunk.1.iter().zip(&from_table.1).position(|(a, b)| a != b))
                .or(Some(from_chunk.0.len().min(from_table.0.len())))
                .and_then(|i| from_table.0.get(i).or(from_chunk.0.get(i)))
                .map_or(first, |r| r.id.0);
            return brk(seq);
        }
    }
    Ok(None)
}

/// Two lists of records, each in sequence order, as one in sequence order.
fn merge_by_seq(a: PlatformSide, b: PlatformSide) -> PlatformSide {
    if b.0.is_empty() {
        return a;
    }
    if a.0.is_empty() {
        return b;
    }
    let n = a.0.len() + b.0.len();
    let (mut records, mut received) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut a, mut b) = (a.0.into_iter().zip(a.1).peekable(), b.0.into_iter().zip(b.1).peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if x.0.id <= y.0.id {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some((r, ms)) = next {
            records.push(r);
            received.push(ms);
        }
    }
    (records, received)
}

/// Appends the records of sequences `lo..=hi` dated D-1..D+1 read from `txn_records`, in
/// sequence order, with a placeholder status ([`apply_statuses`] sets it).
fn load_platform_rows(
    c: &Connection,
    from: i64,
    to: i64,
    merchant: Option<&MerchantId>,
    (lo, hi): (i64, i64),
    (platform, received_ms): &mut PlatformSide,
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "SELECT r.seq, r.received_at_us, r.merchant_id, r.terminal_id, r.batch_no, r.stan, r.rrn, r.auth_code, r.kind, \
         r.channel, r.card_bin, r.card_last4, r.amount_fen, r.currency, r.response_code, r.txn_time_us, \
         r.settlement_date, r.original_seq, r.reversal, r.source, r.external_ref \
         FROM txn_records r WHERE r.seq BETWEEN ?3 AND ?4 AND r.settlement_date BETWEEN ?1 AND ?2",
    );
    if merchant.is_some() {
        sql.push_str(" AND r.merchant_id = ?5");
    }
    sql.push_str(" ORDER BY r.seq");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = match merchant {
        Some(m) => stmt.query(params![from, to, lo, hi, m.as_str()])?,
        None => stmt.query(params![from, to, lo, hi])?,
    };
    let (mut dates, mut merchants, mut terminals) = (DateCache::default(), IdCache::default(), IdCache::default());
    while let Some(r) = rows.next()? {
        let received_us: i64 = r.get(1)?;
        let kind = text(r, 8, "txn_records.kind")?;
        let channel = text(r, 9, "txn_records.channel")?;
        let currency = text(r, 13, "txn_records.currency")?;
        let rc = text(r, 14, "txn_records.response_code")?;
        let source = text(r, 19, "txn_records.source")?;
        let rec = PlatformRecord {
            id: PlatformId(r.get(0)?),
            merchant: merchants.get(text(r, 2, "txn_records.merchant_id")?, "txn_records.merchant_id", MerchantId::parse)?,
            terminal: match opt_text(r, 3, "txn_records.terminal_id")? {
                Some(t) => Some(terminals.get(t, "txn_records.terminal_id", TerminalId::parse)?),
                None => None,
            },
            batch: opt_num(r.get(4)?, "txn_records.batch_no", BatchNo::new)?,
            stan: opt_num(r.get(5)?, "txn_records.stan", Stan::new)?,
            rrn: opt_id(opt_text(r, 6, "txn_records.rrn")?, "txn_records.rrn", Rrn::parse)?,
            auth_code: opt_id(opt_text(r, 7, "txn_records.auth_code")?, "txn_records.auth_code", AuthCode::parse)?,
            kind: TxnKind::parse(kind).map_err(|_| corrupt("txn_records.kind", kind))?,
            channel: Channel::parse(channel).map_err(|_| corrupt("txn_records.channel", channel))?,
            approved: ResponseCode::parse(rc).map(|c| c.is_approved()).map_err(|_| corrupt("txn_records.response_code", rc))?,
            is_reversal: r.get::<_, i64>(18)? != 0,
            status: TxnStatus::Approved,
            amount: Amount::from_fen(r.get(12)?).map_err(|_| corrupt("txn_records.amount_fen", "?"))?,
            currency: Currency::parse(currency).map_err(|_| corrupt("txn_records.currency", currency))?,
            card: match (opt_text(r, 10, "txn_records.card_bin")?, opt_text(r, 11, "txn_records.card_last4")?) {
                (Some(b), Some(l)) => MaskedCard::new(b, l),
                _ => None,
            },
            txn_time: from_us(r.get(15)?),
            settlement_date: dates.get(r.get(16)?)?,
            external_ref: opt_text(r, 20, "txn_records.external_ref")?.map(str::to_owned),
            original_id: r.get::<_, Option<i64>>(17)?.map(PlatformId),
            source: Source::parse(source).map_err(|_| corrupt("txn_records.source", source))?,
        };
        received_ms.push(received_us.div_euclid(1000));
        platform.push(rec);
    }
    Ok(())
}

/// The statuses other than `approved` of sequences `lo..=hi`, by sequence. Most records are
/// `approved`: SQLite skips those rows itself, a fraction of the cost of handing every row over.
/// A record without a status row is therefore taken as `approved` on every path. Every record
/// has one, written in the same transaction as the record; `verify` walks the two tables in step
/// and names a gap.
fn differing_statuses(c: &Connection, (lo, hi): (i64, i64)) -> Result<Vec<(i64, TxnStatus)>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT seq, status FROM txn_status WHERE seq BETWEEN ?1 AND ?2 AND status <> ?3 ORDER BY seq")?;
    let mut rows = stmt.query(params![lo, hi, TxnStatus::Approved.as_str()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let st = r.get_ref(1)?.as_bytes().map_err(|_| corrupt("txn_status.status", "not text"))?;
        out.push((r.get(0)?, TxnStatus::from_word_bytes(st).ok_or_else(|| corrupt("txn_status.status", String::from_utf8_lossy(st)))?));
    }
    Ok(out)
}

/// Records fewer than one in this many of their sequence range look their statuses up one by one.
const SPARSE_STATUS_RATIO: i64 = 32;

/// Gives each record (in sequence order, all within `lo..=hi`) its status from `txn_status`.
fn apply_statuses(c: &Connection, (lo, hi): (i64, i64), platform: &mut [PlatformRecord]) -> Result<(), StoreError> {
    if platform.is_empty() {
        return Ok(());
    }
    // Records scattered thinly over the range (those stored one at a time between bulk
    // imports): one lookup each.
    if (platform.len() as i64).saturating_mul(SPARSE_STATUS_RATIO) < hi - lo + 1 {
        let mut stmt = c.prepare_cached("SELECT status FROM txn_status WHERE seq = ?1")?;
        for r in platform.iter_mut() {
            // As on the other paths, a record without a status row stays `approved`.
            let st: Option<String> = stmt.query_row([r.id.0], |row| row.get(0)).optional()?;
            if let Some(st) = st {
                r.status = TxnStatus::parse(&st).map_err(|_| corrupt("txn_status.status", &st))?;
            }
        }
        return Ok(());
    }
    let statuses = differing_statuses(c, (lo, hi))?;
    let mut cursor = record_chunks::StatusCursor::new(&statuses, lo);
    for r in platform.iter_mut() {
        r.status = cursor.status_of(r.id.0);
    }
    Ok(())
}

/// The live files with rows of D-1..D+1, by id.
fn live_files(c: &Connection, from: i64, to: i64) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT DISTINCT f.id, f.name FROM clearing_files f JOIN clearing_status s ON s.file_id = f.id \
         WHERE f.superseded_by IS NULL AND s.settlement_date BETWEEN ?1 AND ?2 ORDER BY f.id",
    )?;
    let v = stmt.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// The rows of `files` dated D-1..D+1, in (file, line) order: each file's chunks in line
/// order, or, for a file imported before schema 9, its `clearing_rows` (one primary-key range:
/// no sort, no secondary-index lookups).
fn load_clearing(c: &Connection, files: &[(i64, String)], from: i64, to: i64, merchant: Option<&MerchantId>) -> Result<Vec<ClearingRecord>, StoreError> {
    let mut rows_stmt = c.prepare_cached("SELECT rows FROM clearing_files WHERE id = ?1")?;
    let mut expected = 0usize;
    for (file, _) in files {
        expected += rows_stmt.query_row([file], |r| r.get::<_, i64>(0)).map(|n| usize::try_from(n).unwrap_or(0))?;
    }
    let mut out = Vec::with_capacity(expected.min(WINDOW_RESERVE_MAX));
    let mut dates = DateCache::default();
    let keep = chunks_of_clearing::Keep { from, to, merchant };
    let mut chunk_stmt = c.prepare_cached(
        "SELECT first_line, data FROM clearing_row_chunks WHERE file_id = ?1 AND max_date >= ?2 AND min_date <= ?3 ORDER BY first_line",
    )?;
    let mut has_chunks = c.prepare_cached("SELECT EXISTS (SELECT 1 FROM clearing_row_chunks WHERE file_id = ?1)")?;
    for (file, _) in files {
        if has_chunks.query_row([file], |r| r.get::<_, bool>(0))? {
            let mut rows = chunk_stmt.query(params![file, from, to])?;
            while let Some(r) = rows.next()? {
                let data = r.get_ref(1)?.as_blob().map_err(|_| corrupt("clearing_row_chunks.data", "not a blob"))?;
                chunks_of_clearing::decode(data, *file, r.get(0)?, &keep, &mut dates, &mut out)?;
            }
        } else {
            load_clearing_rows(c, *file, from, to, merchant, &mut out)?;
        }
    }
    Ok(out)
}

/// Rows of a file imported before schema 9, from `clearing_rows` (one primary-key range).
fn load_clearing_rows(
    c: &Connection,
    file: i64,
    from: i64,
    to: i64,
    merchant: Option<&MerchantId>,
    out: &mut Vec<ClearingRecord>,
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "SELECT cr.file_id, cr.line, cr.settlement_date, cr.merchant_id, cr.terminal_id, cr.batch_no, cr.stan, cr.rrn, \
         cr.auth_code, cr.kind, cr.channel, cr.card_bin, cr.card_last4, cr.amount_fen, cr.fee_fen, cr.txn_time_us, \
         cr.external_ref, cr.currency \
         FROM clearing_rows cr WHERE cr.file_id = ?1 AND +cr.settlement_date BETWEEN ?2 AND ?3",
    );
    if merchant.is_some() {
        sql.push_str(" AND cr.merchant_id = ?4");
    }
    sql.push_str(" ORDER BY cr.line");
    let mut stmt = c.prepare(&sql)?;
    let (mut dates, mut merchants, mut terminals) = (DateCache::default(), IdCache::default(), IdCache::default());
    let mut rows = match merchant {
        Some(m) => stmt.query(params![file, from, to, m.as_str()])?,
        None => stmt.query(params![file, from, to])?,
    };
    while let Some(r) = rows.next()? {
        let kind = text(r, 9, "clearing_rows.kind")?;
        let channel = text(r, 10, "clearing_rows.channel")?;
        let currency = text(r, 17, "clearing_rows.currency")?;
        out.push(ClearingRecord {
            file: ClearingFileId(r.get(0)?),
            line: r.get::<_, i64>(1)? as u64,
            settlement_date: dates.get(r.get(2)?)?,
            merchant: match opt_text(r, 3, "clearing_rows.merchant_id")? {
                Some(m) => Some(merchants.get(m, "clearing_rows.merchant_id", MerchantId::parse)?),
                None => None,
            },
            terminal: match opt_text(r, 4, "clearing_rows.terminal_id")? {
                Some(t) => Some(terminals.get(t, "clearing_rows.terminal_id", TerminalId::parse)?),
                None => None,
            },
            batch: opt_num(r.get(5)?, "clearing_rows.batch_no", BatchNo::new)?,
            stan: opt_num(r.get(6)?, "clearing_rows.stan", Stan::new)?,
            rrn: opt_id(opt_text(r, 7, "clearing_rows.rrn")?, "clearing_rows.rrn", Rrn::parse)?,
            auth_code: opt_id(opt_text(r, 8, "clearing_rows.auth_code")?, "clearing_rows.auth_code", AuthCode::parse)?,
            kind: TxnKind::parse(kind).map_err(|_| corrupt("clearing_rows.kind", kind))?,
            channel: Channel::parse(channel).map_err(|_| corrupt("clearing_rows.channel", channel))?,
            card: match (opt_text(r, 11, "clearing_rows.card_bin")?, opt_text(r, 12, "clearing_rows.card_last4")?) {
                (Some(b), Some(l)) => MaskedCard::new(b, l),
                _ => None,
            },
            amount: Amount::from_fen(r.get(13)?).map_err(|_| corrupt("clearing_rows.amount_fen", "?"))?,
            fee: Amount::from_fen(r.get(14)?).map_err(|_| corrupt("clearing_rows.fee_fen", "?"))?,
            currency: Currency::parse(currency).map_err(|_| corrupt("clearing_rows.currency", currency))?,
            txn_time: r.get::<_, Option<i64>>(15)?.map(from_us),
            external_ref: opt_text(r, 16, "clearing_rows.external_ref")?.map(str::to_owned),
        });
    }
    Ok(())
}

/// With `POSLENS_RECON_TIMING` set, how long one side took to load (stderr).
fn side_timing(side: &str, since: std::time::Instant, rows: usize) {
    if std::env::var_os("POSLENS_RECON_TIMING").is_some() {
        eprintln!("reconcile:   load {side} {:.3} s ({rows} rows)", since.elapsed().as_secs_f64());
    }
}

/// What both sides' snapshots must agree on: the newest record, the newest file, how many
/// files are superseded (records are append-only; files are only added or superseded) and how
/// many record chunks there are (sealing gathers stored records into new chunks: a reader of
/// the chunks and a reader of what no chunk holds must agree on which is which).
type SnapshotMark = (Option<i64>, Option<i64>, i64, i64);

fn snapshot_mark(c: &Connection) -> Result<SnapshotMark, StoreError> {
    Ok(c.query_row(
        "SELECT (SELECT max(seq) FROM txn_records), (SELECT max(id) FROM clearing_files), \
         (SELECT count(*) FROM clearing_files WHERE superseded_by IS NOT NULL), (SELECT count(*) FROM txn_record_chunks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?)
}

fn encode_totals(summary: &recon::Summary) -> String {
    Outcome::ALL
        .iter()
        .map(|o| format!("{}={}={}", o.as_str(), summary.count(*o), summary.amount_fen(*o)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_totals(text: &str) -> Vec<(Outcome, u64, i64)> {
    let mut found: HashMap<Outcome, (u64, i64)> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split('=');
        if let (Some(o), Some(n), Some(a)) = (parts.next(), parts.next(), parts.next()) {
            if let (Some(o), Ok(n), Ok(a)) = (Outcome::parse(o), n.parse(), a.parse()) {
                found.insert(o, (n, a));
            }
        }
    }
    Outcome::ALL.iter().map(|o| {
        let (n, a) = found.get(o).copied().unwrap_or((0, 0));
        (*o, n, a)
    }).collect()
}

const RUN_COLS: &str = "id, settlement_date, merchant_id, actor, started_at_us, finished_at_us, summary, pending_channels, \
     pending_count, platform_records, clearing_rows, superseded_by";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ReconRunRaw, i64)> {
    Ok((
        ReconRunRaw {
            id: r.get(0)?,
            merchant_id: r.get(2)?,
            actor: r.get(3)?,
            started_at_us: r.get(4)?,
            finished_at_us: r.get(5)?,
            summary: r.get(6)?,
            pending_channels: r.get(7)?,
            pending_count: r.get(8)?,
            platform_records: r.get(9)?,
            clearing_rows: r.get(10)?,
            superseded_by: r.get(11)?,
        },
        r.get(1)?,
    ))
}

struct ReconRunRaw {
    id: i64,
    merchant_id: Option<String>,
    actor: String,
    started_at_us: i64,
    finished_at_us: i64,
    summary: String,
    pending_channels: String,
    pending_count: i64,
    platform_records: i64,
    clearing_rows: i64,
    superseded_by: Option<i64>,
}

fn to_run((raw, date): (ReconRunRaw, i64)) -> Result<ReconRun, StoreError> {
    Ok(ReconRun {
        id: raw.id,
        settlement_date: int_to_date(date)?,
        merchant_id: opt_parse(raw.merchant_id, "recon_runs.merchant_id", MerchantId::parse)?,
        actor: raw.actor,
        started_at: from_us(raw.started_at_us),
        finished_at: from_us(raw.finished_at_us),
        totals: decode_totals(&raw.summary),
        pending_channels: raw
            .pending_channels
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::parse(s).map_err(|_| corrupt("recon_runs.pending_channels", s)))
            .collect::<Result<_, _>>()?,
        pending_count: raw.pending_count as u64,
        platform_records: raw.platform_records as u64,
        clearing_rows: raw.clearing_rows as u64,
        superseded_by: raw.superseded_by,
    })
}

use chunks::outcome_code;

fn outcome_of(code: i64) -> Result<Outcome, StoreError> {
    usize::try_from(code).ok().and_then(|i| Outcome::ALL.get(i).copied()).ok_or_else(|| corrupt("recon_items.outcome", code))
}

fn pass_of(code: i64) -> Result<MatchPass, StoreError> {
    usize::try_from(code).ok().and_then(|i| MatchPass::ALL.get(i).copied()).ok_or_else(|| corrupt("recon_items.match_pass", code))
}

/// Items with the platform record's receive time (the opaque id is derived, not stored) and
/// the clearing file's name.
const ITEM_FROM: &str = "recon_items i LEFT JOIN txn_records r ON r.seq = i.platform_seq \
     LEFT JOIN clearing_files f ON f.id = i.clearing_file_id";

/// A field the platform record holds is read from the record (the item stores it only when the
/// record has none, see `ReconItemRef::recorded`).
const ITEM_COLS: &str = "i.id, i.outcome, i.match_pass, i.merchant_id, COALESCE(r.terminal_id, i.terminal_id), \
     COALESCE(r.batch_no, i.batch_no), COALESCE(r.stan, i.stan), COALESCE(r.rrn, i.rrn), COALESCE(r.external_ref, i.external_ref), \
     i.channel, COALESCE(r.txn_time_us, i.txn_time_us), i.platform_seq, r.received_at_us, i.platform_amount_fen, i.clearing_amount_fen, \
     i.clearing_fee_fen, i.clearing_file_id, f.name, i.clearing_line";

fn item_row(r: &rusqlite::Row<'_>) -> Result<ReconItemRow, StoreError> {
    let pass: Option<i64> = r.get(2)?;
    let channel: String = r.get(9)?;
    let seq: Option<i64> = r.get(11)?;
    let received_us: Option<i64> = r.get(12)?;
    Ok(ReconItemRow {
        id: r.get(0)?,
        outcome: outcome_of(r.get(1)?)?,
        match_pass: pass.map(pass_of).transpose()?,
        merchant_id: r.get(3)?,
        terminal_id: r.get(4)?,
        batch_no: r.get::<_, Option<i64>>(5)?.map(|n| n as u32),
        stan: r.get::<_, Option<i64>>(6)?.map(|n| n as u32),
        rrn: r.get(7)?,
        external_ref: r.get(8)?,
        channel: Channel::parse(&channel).map_err(|_| corrupt("recon_items.channel", &channel))?,
        txn_time: r.get::<_, Option<i64>>(10)?.map(from_us),
        platform_seq: seq,
        platform_id: seq.zip(received_us).map(|(seq, us)| ids::encode(us.div_euclid(1000), seq)),
        platform_amount_fen: r.get(13)?,
        clearing_amount_fen: r.get(14)?,
        clearing_fee_fen: r.get(15)?,
        clearing_file_id: r.get(16)?,
        clearing_file_name: r.get(17)?,
        clearing_line: r.get::<_, Option<i64>>(18)?.map(|n| n as u64),
    })
}

/// `WHERE` clause and parameters for the items `q` selects (`after_id` only when paging).
/// The run, outcome and merchant-scope part of an item filter, on columns `{prefix}run_id`,
/// `{prefix}outcome`, `{prefix}merchant_id` (legacy item rows and item chunks share them); `None`
/// when the scope allows no merchant.
fn run_outcome_merchant_where(q: &ReconItemQuery, prefix: &str) -> Option<(String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let mut sql = format!("WHERE {prefix}run_id = ?");
    let mut p: Vec<Value> = vec![Value::Integer(q.run_id)];
    if let Some(o) = q.outcome {
        sql.push_str(&format!(" AND {prefix}outcome = ?"));
        p.push(Value::Integer(outcome_code(o)));
    }
    if let Some(ms) = &q.scope.merchants {
        if ms.is_empty() {
            return None;
        }
        sql.push_str(&format!(" AND {prefix}merchant_id IN ({})", vec!["?"; ms.len()].join(",")));
        p.extend(ms.iter().map(|m| Value::Text(m.to_string())));
    }
    Some((sql, p))
}

fn item_where(q: &ReconItemQuery, paging: bool) -> Option<(String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let (mut sql, mut p) = run_outcome_merchant_where(q, "i.")?;
    if let Some(ts) = &q.scope.terminals {
        if ts.is_empty() {
            return None;
        }
        sql.push_str(&format!(" AND COALESCE(r.terminal_id, i.terminal_id) IN ({})", vec!["?"; ts.len()].join(",")));
        p.extend(ts.iter().map(|t| Value::Text(t.to_string())));
    }
    if paging {
        if let Some(after) = q.after_id {
            sql.push_str(" AND i.id > ?");
            p.push(Value::Integer(after));
        }
    }
    Some((sql, p))
}

impl ReconRepo for SqliteStore {
    fn load_recon_input(&self, date: domain::SettlementDate, merchant: Option<&MerchantId>) -> Result<ReconInputData, StoreError> {
        let (from, to) = (date_to_int(date.pred()), date_to_int(date.succ()));
        let d = date_to_int(date);
        // The two sides are read in parallel on reader connections, each in its own read
        // transaction. They must come from the same state of the database: each reader notes the
        // newest record and file it sees, and a commit in between (marks differ) reads again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            // The clearing side on one reader; the platform window, then its two halves, on two
            // more (the platform side is the larger: splitting it keeps both cores busy to the
            // end).
            let (platform, clearing) = std::thread::scope(|s| {
                let cl = s.spawn(|| {
                    self.read(|c| {
                        c.execute_batch("BEGIN")?;
                        let mark = snapshot_mark(c)?;
                        let t = std::time::Instant::now();
                        let files = live_files(c, from, to)?;
                        let rows = load_clearing(c, &files, from, to, merchant)?;
                        side_timing("clearing", t, rows.len());
                        let mut stmt = c.prepare(
                            "SELECT DISTINCT s.channel FROM clearing_status s JOIN clearing_files f ON f.id = s.file_id \
                             AND f.superseded_by IS NULL WHERE s.settlement_date = ?1 ORDER BY s.channel",
                        )?;
                        let channels: Vec<String> = stmt.query_map([d], |r| r.get(0))?.collect::<Result<_, _>>()?;
                        let channels = channels
                            .iter()
                            .map(|ch| Channel::parse(ch).map_err(|_| corrupt("clearing_status.channel", ch)))
                            .collect::<Result<Vec<_>, _>>()?;
                        drop(stmt);
                        c.execute_batch("COMMIT")?;
                        Ok((mark, files, rows, channels))
                    })
                });
                // Meanwhile what no chunk holds, on a reader of its own (it needs the window
                // first), and the chunked records of the dates, in two halves on two more.
                let unchunked = s.spawn(|| {
                    self.read(|c| {
                        c.execute_batch("BEGIN")?;
                        let mark = snapshot_mark(c)?;
                        let t = std::time::Instant::now();
                        let loaded = load_platform_unchunked(c, from, to, merchant)?;
                        side_timing("platform (not in chunks)", t, loaded.0.len());
                        c.execute_batch("COMMIT")?;
                        Ok((mark, loaded))
                    })
                });
                let (cmark, mut chunks) = match self.read(|c| {
                    c.execute_batch("BEGIN")?;
                    let mark = snapshot_mark(c)?;
                    let chunks = dated_chunks(c, from, to)?;
                    c.execute_batch("COMMIT")?;
                    Ok((mark, chunks))
                }) {
                    Ok(w) => w,
                    Err(e) => return (Err(e), join_read(cl)),
                };
                let rows: i64 = chunks.iter().map(|ch| ch.2).sum();
                let halves: Vec<Vec<(i64, i64, i64)>> = if rows < PLATFORM_SPLIT_MIN {
                    vec![chunks]
                } else {
                    let mut half = 0;
                    let mut acc = 0;
                    while half < chunks.len() && acc * 2 < rows {
                        acc += chunks[half].2;
                        half += 1;
                    }
                    let upper = chunks.split_off(half);
                    vec![chunks, upper]
                };
                // Each half decodes into its own part of one list sized from the chunk heads, so
                // no half's vector grows and none is appended to another afterwards. A run for
                // one merchant keeps a few of the chunks' records: its halves push into vectors
                // of their own instead, joined after (they are small).
                let sizes: Vec<usize> =
                    halves.iter().map(|h| h.iter().map(|ch| usize::try_from(ch.2).unwrap_or(0)).sum()).collect();
                let total: usize = sizes.iter().sum();
                let in_slots = merchant.is_none() && total <= WINDOW_RESERVE_MAX;
                let sizes: Vec<usize> = if in_slots { sizes } else { vec![0; sizes.len()] };
                let placeholder = match placeholder_record(date) {
                    Ok(p) => p,
                    Err(e) => return (Err(e), join_read(cl)),
                };
                let total = if in_slots { total } else { 0 };
                let (mut records, mut received) = (vec![placeholder; total], vec![0i64; total]);
                let (mut rest, mut rest_ms) = (&mut records[..], &mut received[..]);
                type Half = (SnapshotMark, usize, PlatformSide);
                let done: Vec<Result<Half, StoreError>> = std::thread::scope(|inner| {
                    let parts: Vec<_> = halves
                        .into_iter()
                        .zip(&sizes)
                        .map(|(part, &size)| {
                            let (slots, tail) = std::mem::take(&mut rest).split_at_mut(size);
                            let (slots_ms, tail_ms) = std::mem::take(&mut rest_ms).split_at_mut(size);
                            (rest, rest_ms) = (tail, tail_ms);
                            inner.spawn(move || {
                                self.read(|c| {
                                    c.execute_batch("BEGIN")?;
                                    let mark = snapshot_mark(c)?;
                                    let t = std::time::Instant::now();
                                    let mut out = record_chunks::Slots::new(slots, slots_ms);
                                    let mut own: PlatformSide = (Vec::new(), Vec::new());
                                    if in_slots {
                                        load_platform_chunks(c, &part, from, to, merchant, &mut out)?;
                                    } else {
                                        load_platform_chunks(c, &part, from, to, merchant, &mut own)?;
                                    }
                                    side_timing("platform (chunks)", t, out.filled() + own.0.len());
                                    c.execute_batch("COMMIT")?;
                                    Ok((mark, out.filled(), own))
                                })
                            })
                        })
                        .collect();
                    parts.into_iter().map(join_read).collect()
                });
                let mut marks = Vec::new();
                let mut filled = Vec::new();
                let mut failed = None;
                let mut own_records = Vec::new();
                for part in done {
                    match part {
                        Ok((mark, n, own)) => {
                            marks.push(mark);
                            filled.push(n);
                            own_records.push(own);
                        }
                        Err(e) => failed = failed.or(Some(e)),
                    }
                }
                if failed.is_none() {
                    // Slots a half left empty (records of other dates) are closed up, the last
                    // half first; then the halves that pushed into vectors of their own.
                    let mut start: usize = sizes.iter().sum();
                    for (&size, &n) in sizes.iter().zip(&filled).rev() {
                        start -= size;
                        if n < size {
                            records.drain(start + n..start + size);
                            received.drain(start + n..start + size);
                        }
                    }
                    for (r, ms) in own_records {
                        records.extend(r);
                        received.extend(ms);
                    }
                }
                // Then what no chunk holds, merged in by sequence: the same list one reader of
                // the table gives.
                let platform = match (failed, join_read(unchunked)) {
                    (Some(e), _) | (None, Err(e)) => Err(e),
                    (None, Ok((mark, more))) => {
                        marks.push(mark);
                        let side = if more.0.first().zip(records.last()).is_none_or(|(m, s)| m.id > s.id) {
                            records.extend(more.0);
                            received.extend(more.1);
                            (records, received)
                        } else {
                            merge_by_seq((records, received), more)
                        };
                        Ok((marks, side))
                    }
                };
                // Every reader must have read the state the chunk list was taken from.
                let platform = platform.map(|(marks, side)| {
                    (if marks.iter().all(|m| *m == cmark) { cmark } else { (None, None, -1, -1) }, side)
                });
                (platform, join_read(cl))
            });
            let (pmark, (mut platform, mut received_ms)) = platform?;
            // What terminals reported in batch uploads and the host never had joins the same
            // run as its own source (`batch_upload`), ahead of the records (negative ids keep
            // the list in id order).
            let t = std::time::Instant::now();
            let uploaded = self.read(|c| load_batch_upload_items(c, from, to, merchant, &platform))?;
            side_timing("batch uploads", t, uploaded.len());
            if !uploaded.is_empty() {
                received_ms.splice(0..0, std::iter::repeat_n(0, uploaded.len()));
                platform.splice(0..0, uploaded);
            }
            let (cmark, files, clearing, channels) = clearing?;
            if pmark != cmark && attempts < 5 {
                continue;
            }
            if pmark != cmark {
                return Err(StoreError::Invalid { what: "reconciliation input", reason: "the store kept changing while it was read".into() });
            }
            return Ok(ReconInputData {
                platform,
                clearing,
                channels_with_clearing: channels,
                file_names: files.into_iter().collect(),
                received_ms,
            });
        }
    }

    fn save_recon_run<'a>(&self, run: &NewReconRun, parts: &mut [&mut ItemPart<'_, 'a>]) -> Result<i64, StoreError> {
        // The items are encoded here, as they come (a few dozen bytes each, no owned row
        // kept), each part on a thread of its own past the first; the writer then stores about
        // a thousand chunks per million items.
        let encode = |part: &mut ItemPart<'_, 'a>| {
            let mut builder = chunks::ChunkBuilder::new();
            for item in part {
                builder.push(&item);
            }
            builder
        };
        let builders: Vec<chunks::ChunkBuilder> = match parts {
            [] => Vec::new(),
            [first, rest @ ..] => std::thread::scope(|s| {
                let handles: Vec<_> = rest.iter_mut().map(|part| s.spawn(|| encode(&mut **part))).collect();
                let mut built = vec![encode(&mut **first)];
                built.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))));
                built
            }),
        };
        let sealed = builders.into_iter().reduce(chunks::ChunkBuilder::append).unwrap_or_default().finish();
        let run = run.clone();
        let done = self.submit(move |ctx: &mut WriterCtx| -> Result<i64, StoreError> {
            let c = &ctx.conn;
            let date = date_to_int(run.settlement_date);
            let merchant = run.merchant_id.as_ref().map(|m| m.to_string());
            let pending: Vec<&str> = run.pending_channels.iter().map(|c| c.as_str()).collect();
            c.execute(
                "INSERT INTO recon_runs (settlement_date, merchant_id, actor, started_at_us, finished_at_us, summary, \
                 pending_channels, pending_count, platform_records, clearing_rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    date,
                    merchant,
                    run.actor,
                    run.started_at.timestamp_micros(),
                    now_us(),
                    encode_totals(&run.summary),
                    pending.join(","),
                    run.summary.pending_count as i64,
                    run.platform_records as i64,
                    run.clearing_rows as i64,
                ],
            )?;
            let run_id = c.last_insert_rowid();
            c.execute(
                "UPDATE recon_runs SET superseded_by = ?1 WHERE settlement_date = ?2 AND merchant_id IS ?3 \
                 AND superseded_by IS NULL AND id <> ?1",
                params![run_id, date, merchant],
            )?;
            let mut stmt = c.prepare_cached(
                "INSERT INTO recon_item_chunks (run_id, first_id, merchant_id, outcome, items, amount_fen, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for ch in &sealed {
                stmt.execute(params![run_id, ch.first_id, ch.merchant_id, ch.outcome, ch.items, ch.amount_fen, ch.data])?;
            }
            drop(stmt);
            // The finish time is when the items are in.
            c.execute("UPDATE recon_runs SET finished_at_us = ?1 WHERE id = ?2", params![now_us(), run_id])?;
            Ok(run_id)
        })?;
        let t = std::time::Instant::now();
        let r = done.recv().map_err(|_| StoreError::WriterGone)?;
        side_timing("save: waited for the writer", t, 0);
        r
    }

    fn get_recon_run(&self, id: i64) -> Result<Option<ReconRun>, StoreError> {
        self.read(|c| {
            let raw = c.query_row(&format!("SELECT {RUN_COLS} FROM recon_runs WHERE id = ?1"), [id], run_row).optional()?;
            raw.map(to_run).transpose()
        })
    }

    fn list_recon_runs(&self, date: Option<domain::SettlementDate>, limit: u32) -> Result<Vec<ReconRun>, StoreError> {
        self.read(|c| {
            let limit = i64::from(limit.clamp(1, RECON_ITEMS_PAGE_MAX));
            let raws: Vec<(ReconRunRaw, i64)> = match date {
                Some(d) => {
                    let mut stmt = c.prepare(&format!(
                        "SELECT {RUN_COLS} FROM recon_runs WHERE settlement_date = ?1 ORDER BY id DESC LIMIT ?2"
                    ))?;
                    let v = stmt.query_map(params![date_to_int(d), limit], run_row)?.collect::<Result<_, _>>()?;
                    v
                }
                None => {
                    let mut stmt = c.prepare(&format!("SELECT {RUN_COLS} FROM recon_runs ORDER BY id DESC LIMIT ?1"))?;
                    let v = stmt.query_map([limit], run_row)?.collect::<Result<_, _>>()?;
                    v
                }
            };
            raws.into_iter().map(to_run).collect()
        })
    }

    fn recon_totals(&self, run_id: i64, scope: &Scope) -> Result<Vec<(Outcome, u64, i64)>, StoreError> {
        let q = ReconItemQuery { run_id, outcome: None, scope: scope.clone(), after_id: None, limit: 0 };
        self.read(|c| {
            let mut found: HashMap<Outcome, (u64, i64)> = HashMap::new();
            if legacy_items(c, run_id)? {
                if let Some((w, p)) = item_where(&q, false) {
                    let sql = format!(
                        "SELECT i.outcome, COUNT(*), SUM(COALESCE(i.platform_amount_fen, i.clearing_amount_fen, 0)) \
                         FROM recon_items i LEFT JOIN txn_records r ON r.seq = i.platform_seq {w} GROUP BY i.outcome"
                    );
                    let mut stmt = c.prepare(&sql)?;
                    let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                    while let Some(r) = rows.next()? {
                        let o = outcome_of(r.get(0)?)?;
                        found.insert(o, (r.get::<_, i64>(1)? as u64, r.get::<_, Option<i64>>(2)?.unwrap_or(0)));
                    }
                }
            } else if q.scope.terminals.is_some() {
                // A staff user's terminals are the items' (or their records') terminals: read.
                for_each_chunk_item(c, &q, None, &mut |item| {
                    let t = found.entry(item.outcome).or_default();
                    t.0 += 1;
                    t.1 = t.1.saturating_add(item.platform_amount_fen.or(item.clearing_amount_fen).unwrap_or(0));
                    Ok(true)
                })?;
            } else if let Some((w, p)) = chunk_where(&q, None) {
                let sql = format!("SELECT outcome, SUM(items), SUM(amount_fen) FROM recon_item_chunks {w} GROUP BY outcome");
                let mut stmt = c.prepare(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                while let Some(r) = rows.next()? {
                    let o = outcome_of(r.get(0)?)?;
                    found.insert(o, (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)?));
                }
            }
            Ok(Outcome::ALL.iter().map(|o| {
                let (n, a) = found.get(o).copied().unwrap_or((0, 0));
                (*o, n, a)
            }).collect())
        })
    }

    fn list_recon_items(&self, q: &ReconItemQuery) -> Result<(Vec<ReconItemRow>, bool), StoreError> {
        let limit = q.limit.clamp(1, RECON_ITEMS_PAGE_MAX) as usize;
        self.read(|c| {
            let mut out = Vec::with_capacity(limit + 1);
            if legacy_items(c, q.run_id)? {
                let Some((w, p)) = item_where(q, true) else { return Ok((Vec::new(), false)) };
                let sql = format!(
                    "SELECT {ITEM_COLS} FROM {ITEM_FROM} {w} ORDER BY i.id LIMIT {}",
                    limit + 1
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                while let Some(r) = rows.next()? {
                    out.push(item_row(r)?);
                }
            } else {
                for_each_chunk_item(c, q, q.after_id, &mut |item| {
                    out.push(item);
                    Ok(out.len() <= limit)
                })?;
            }
            let more = out.len() > limit;
            out.truncate(limit);
            Ok((out, more))
        })
    }

    fn export_recon_items(
        &self,
        q: &ReconItemQuery,
        on_row: &mut dyn FnMut(&ReconItemRow) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            let mut n = 0u64;
            if legacy_items(c, q.run_id)? {
                let Some((w, p)) = item_where(q, false) else { return Ok(0) };
                let sql = format!(
                    "SELECT {ITEM_COLS} FROM {ITEM_FROM} {w} ORDER BY i.id"
                );
                let mut stmt = c.prepare(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(p.iter()))?;
                while let Some(r) = rows.next()? {
                    let item = item_row(r)?;
                    if on_row(&item).is_err() {
                        break;
                    }
                    n += 1;
                }
            } else {
                for_each_chunk_item(c, q, None, &mut |item| {
                    if on_row(&item).is_err() {
                        return Ok(false);
                    }
                    n += 1;
                    Ok(true)
                })?;
            }
            Ok(n)
        })
    }
}

/// Whether a run's items are rows of `recon_items` (runs recorded before schema 8); newer runs
/// keep them in `recon_item_chunks`.
fn legacy_items(c: &Connection, run_id: i64) -> Result<bool, StoreError> {
    Ok(c.query_row("SELECT EXISTS (SELECT 1 FROM recon_items WHERE run_id = ?1)", [run_id], |r| r.get(0))?)
}

/// `WHERE` clause and parameters over `recon_item_chunks` for the chunks `q` may touch (its
/// terminal scope is applied item by item); with `after_id`, only chunks holding a later id.
fn chunk_where(q: &ReconItemQuery, after_id: Option<i64>) -> Option<(String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let (mut sql, mut p) = run_outcome_merchant_where(q, "")?;
    if q.scope.terminals.as_ref().is_some_and(|t| t.is_empty()) {
        return None;
    }
    if let Some(after) = after_id {
        // A chunk holds at most ITEMS_PER_CHUNK_MAX ids: the bound on first_id lets the
        // primary key skip the chunks before the cursor.
        sql.push_str(" AND first_id > ? AND first_id + items - 1 > ?");
        p.push(Value::Integer(after.saturating_sub(chunks::ITEMS_PER_CHUNK_MAX as i64)));
        p.push(Value::Integer(after));
    }
    Some((sql, p))
}

/// Hands the items `q` selects (ids after `after_id`) to `f` in id order until it returns
/// `false`: the chunks' heads first (no blobs), then one chunk at a time, with the fields the
/// platform record holds read back from it, as the legacy join did.
fn for_each_chunk_item(
    c: &Connection,
    q: &ReconItemQuery,
    after_id: Option<i64>,
    f: &mut dyn FnMut(ReconItemRow) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let Some((w, p)) = chunk_where(q, after_id) else { return Ok(()) };
    let heads: Vec<(i64, Option<String>, i64)> = {
        let mut stmt = c.prepare(&format!("SELECT first_id, merchant_id, outcome FROM recon_item_chunks {w} ORDER BY first_id"))?;
        let v = stmt.query_map(rusqlite::params_from_iter(p.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        v
    };
    let mut data_stmt = c.prepare_cached("SELECT data FROM recon_item_chunks WHERE run_id = ?1 AND first_id = ?2")?;
    let mut record_stmt = c.prepare_cached(
        "SELECT terminal_id, batch_no, stan, rrn, external_ref, txn_time_us, received_at_us FROM txn_records WHERE seq = ?1",
    )?;
    let mut file_stmt = c.prepare_cached("SELECT name FROM clearing_files WHERE id = ?1")?;
    let mut file_names: HashMap<i64, Option<String>> = HashMap::new();
    let terminals = q.scope.terminals.as_ref();
    for (first_id, merchant_id, outcome) in heads {
        let data: Vec<u8> = data_stmt.query_row(params![q.run_id, first_id], |r| r.get(0))?;
        let mut reader = chunks::ChunkReader::new(&data, first_id, merchant_id.as_deref(), outcome)?;
        while let Some(mut item) = reader.next_item()? {
            if after_id.is_some_and(|a| item.id <= a) {
                continue;
            }
            // Batch-upload items (negative) have no record.
            if let Some(seq) = item.platform_seq.filter(|s| *s > 0) {
                type Fields = (Option<String>, Option<i64>, Option<i64>, Option<String>, Option<String>, Option<i64>, i64);
                let found: Option<Fields> = record_stmt
                    .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
                    .optional()?;
                if let Some((terminal, batch, stan, rrn, external_ref, time_us, received_us)) = found {
                    item.terminal_id = terminal.or(item.terminal_id);
                    item.batch_no = batch.map(|n| n as u32).or(item.batch_no);
                    item.stan = stan.map(|n| n as u32).or(item.stan);
                    item.rrn = rrn.or(item.rrn);
                    item.external_ref = external_ref.or(item.external_ref);
                    item.txn_time = time_us.map(from_us).or(item.txn_time);
                    item.platform_id = Some(ids::encode(received_us.div_euclid(1000), seq));
                }
            }
            if let Some(ts) = terminals {
                if !item.terminal_id.as_deref().is_some_and(|t| ts.iter().any(|x| x.as_str() == t)) {
                    continue;
                }
            }
            if let Some(file) = item.clearing_file_id {
                let name = match file_names.get(&file) {
                    Some(n) => n.clone(),
                    None => {
                        let n: Option<String> = file_stmt.query_row([file], |r| r.get(0)).optional()?;
                        file_names.insert(file, n.clone());
                        n
                    }
                };
                item.clearing_file_name = name;
            }
            if !f(item)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Terminal-only batch-upload items of settlement dates `from..=to` as platform records of
/// source `batch_upload`, id = minus the discrepancy's id. An item whose (terminal, batch, STAN)
/// the host has since recorded is left out: the record itself reconciles.
fn load_batch_upload_items(
    c: &Connection,
    from: i64,
    to: i64,
    merchant: Option<&MerchantId>,
    platform: &[PlatformRecord],
) -> Result<Vec<PlatformRecord>, StoreError> {
    use std::collections::HashSet;
    let mut stmt = c.prepare(
        "SELECT d.id, d.merchant_id, d.terminal_id, d.batch_no, d.stan, d.terminal_amount_fen, d.card_bin, d.card_last4, \
         d.recorded_at_us, m.timezone, m.cutoff FROM pos_discrepancies d JOIN merchants m ON m.merchant_id = d.merchant_id \
         WHERE d.kind = 'terminal_only' AND (?1 IS NULL OR d.merchant_id = ?1) ORDER BY d.id DESC",
    )?;
    let mut out = Vec::new();
    let mut rows = stmt.query([merchant.map(|m| m.as_str())])?;
    while let Some(r) = rows.next()? {
        let (id, mid, tid, batch, stan, amount): (i64, String, String, i64, Option<i64>, Option<i64>) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        let (Some(stan), Some(amount)) = (stan, amount) else { continue };
        let (bin, last4): (Option<String>, Option<String>) = (r.get(6)?, r.get(7)?);
        let (recorded_us, tz, cutoff): (i64, String, String) = (r.get(8)?, r.get(9)?, r.get(10)?);
        let clock = domain::MerchantClock::new(&tz, &cutoff).map_err(|_| corrupt("merchants.timezone", &tz))?;
        let at = from_us(recorded_us);
        let settlement_date = clock.settlement_date(at, Channel::Card);
        let d = date_to_int(settlement_date);
        if d < from || d > to {
            continue;
        }
        let (Ok(batch32), Ok(stan32)) = (u32::try_from(batch), u32::try_from(stan)) else { continue };
        let bad = |col: &'static str, v: String| corrupt(col, v);
        out.push(PlatformRecord {
            id: PlatformId(-id),
            merchant: MerchantId::parse(&mid).map_err(|_| bad("pos_discrepancies.merchant_id", mid.clone()))?,
            terminal: Some(TerminalId::parse(&tid).map_err(|_| bad("pos_discrepancies.terminal_id", tid.clone()))?),
            batch: Some(BatchNo::new(batch32).map_err(|_| bad("pos_discrepancies.batch_no", batch.to_string()))?),
            stan: Some(Stan::new(stan32).map_err(|_| bad("pos_discrepancies.stan", stan.to_string()))?),
            rrn: None,
            auth_code: None,
            kind: TxnKind::Purchase,
            channel: Channel::Card,
            approved: true,
            is_reversal: false,
            status: TxnStatus::Approved,
            amount: Amount::from_fen(amount).map_err(|_| bad("pos_discrepancies.terminal_amount_fen", amount.to_string()))?,
            currency: Currency::CNY,
            card: bin.as_deref().zip(last4.as_deref()).and_then(|(b, l)| MaskedCard::new(b, l)),
            txn_time: at,
            settlement_date,
            external_ref: None,
            original_id: None,
            source: domain::Source::BatchUpload,
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    // The records the host has of these (few) items: one pass over the records, no set of all
    // of them.
    fn key(p: &PlatformRecord) -> Option<(&str, &str, u32, u32)> {
        Some((p.merchant.as_str(), p.terminal.as_ref()?.as_str(), p.batch?.get(), p.stan?.get()))
    }
    let have: HashSet<(&str, &str, u32, u32)> = {
        let wanted: HashSet<_> = out.iter().filter_map(key).collect();
        platform.iter().filter_map(key).filter(|k| wanted.contains(k)).collect()
    };
    out.retain(|p| key(p).is_none_or(|k| !have.contains(&k)));
    // Ascending ids (most negative first), like the records they precede.
    out.sort_by_key(|p| p.id);
    Ok(out)
}

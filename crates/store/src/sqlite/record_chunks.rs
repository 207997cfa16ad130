//! What reconciliation reads of platform records, kept beside `txn_records` as compact chunks
//! (`txn_record_chunks`, schema 10).
//!
//! Why: a run over a million records spent about a second (2.5 CPU-seconds) having SQLite decode
//! a million table rows. A bulk import writes, in the same transaction as the rows, one chunk per
//! run of up to [`RECORD_CHUNK_MAX`] consecutive sequence numbers; a run decodes those chunks
//! and reads from the table only the sequences no chunk covers (records stored one at a time,
//! by terminals, and records stored before schema 10) until [`seal`] gathers them into chunks.
//!
//! A chunk covers `first_seq..=last_seq` completely: every record with a sequence in that range
//! is in it. That holds because the single writer numbers a job's records consecutively and the
//! table is append-only. Statuses change after the fact and are not in chunks: a run reads them
//! from `txn_status`, as before.
//!
//! A chunk begins with [`FORMAT_2`]. A record: `[presence: u16 LE]` (whether the response was
//! approved is one of its bits), the sequence as a delta from the previous one (0 for the first,
//! then 1: decoding refuses anything else), the receive time as a zigzag delta from the previous
//! record's, the settlement date (YYYYMMDD) as a zigzag delta from the previous record's, the
//! transaction time as a zigzag delta from the receive time, the amount, the merchant numbered
//! within the chunk ([`IdNumbers`]), kind, channel and source as one-byte codes, the currency
//! numbered within the chunk, then each optional field present in bit order (terminal numbered
//! within the chunk, RRN and authorization code as numbers when they are digits). Chunks of
//! the first format (no header; the date whole; merchant, kind, channel, currency, response
//! code, source, terminal, RRN and authorization code as text) are still read. Only what reconciliation reads is kept (not the masked number,
//! the card token or the chain hash). Ids, words and the chunk's sequences and row count are
//! checked on reading, so damage to the structure is an error that names the column, never a
//! panic; damage to a value (an amount, a date) is found by `verify`, which compares every
//! chunk with the records it mirrors.

use domain::{
    Amount, AuthCode, BatchNo, Channel, Currency, MerchantId, ResponseCode, Rrn, Source, Stan, TerminalId, TxnKind,
    TxnStatus,
};
use recon::{PlatformId, PlatformRecord};
use rusqlite::Connection;

use super::chain::RecordRef;
use super::from_us;
use super::recon::DateCache;
use super::varint::{code_of, put_digits, put_i64, put_text, put_u64, presence_of, ChunkReader, IdNumbers, IdTable, FORMAT_2};
use crate::error::StoreError;

/// Most sequence numbers one chunk covers; a run finds the chunks of a window by seeking
/// `first_seq` from `lo - RECORD_CHUNK_MAX`.
pub(crate) const RECORD_CHUNK_MAX: i64 = 8192;

const TERMINAL: u16 = 1;
const BATCH: u16 = 1 << 1;
const STAN: u16 = 1 << 2;
const RRN: u16 = 1 << 3;
const AUTH_CODE: u16 = 1 << 4;
const CARD: u16 = 1 << 5;
const ORIGINAL: u16 = 1 << 6;
const EXTERNAL_REF: u16 = 1 << 7;
const REVERSAL: u16 = 1 << 8;
/// Second format only: the record's own response was approved.
const APPROVED: u16 = 1 << 9;
const KNOWN_1: u16 = (1 << 9) - 1;
const KNOWN: u16 = (1 << 10) - 1;

/// One chunk being filled by a writer job: records of consecutive sequence numbers.
pub(crate) struct RecordChunkWriter {
    pub first_seq: i64,
    pub last_seq: i64,
    pub rows: i64,
    pub min_date: i64,
    pub max_date: i64,
    pub data: Vec<u8>,
    last_received_us: i64,
    last_date: i64,
    merchants: IdNumbers,
    terminals: IdNumbers,
    currencies: IdNumbers,
}

/// A word's one-byte code, or the error of a word the store does not know.
fn code_of_word<T: Copy + PartialEq>(all: &[T], word: &str, parse: impl Fn(&str) -> Option<T>) -> Result<u8, StoreError> {
    let v = parse(word).ok_or_else(|| StoreError::Invalid { what: "record chunk", reason: format!("unknown word {word:?}") })?;
    Ok(code_of(all, v))
}

impl RecordChunkWriter {
    pub(crate) fn new() -> RecordChunkWriter {
        RecordChunkWriter {
            first_seq: 0,
            last_seq: 0,
            rows: 0,
            min_date: i64::MAX,
            max_date: i64::MIN,
            data: FORMAT_2.to_vec(),
            last_received_us: 0,
            last_date: 0,
            merchants: IdNumbers::default(),
            terminals: IdNumbers::default(),
            currencies: IdNumbers::default(),
        }
    }

    /// Whether a record of sequence `seq` can join this chunk: it must follow the last one
    /// directly (a gap would break the chunk's promise to cover its range), and the chunk must
    /// have room.
    pub(crate) fn takes(&self, seq: i64) -> bool {
        self.rows == 0 || (seq == self.last_seq + 1 && seq - self.first_seq < RECORD_CHUNK_MAX)
    }

    /// Appends one stored record. The caller checks [`RecordChunkWriter::takes`] first.
    pub(crate) fn push(&mut self, r: &RecordRef<'_>) -> Result<(), StoreError> {
        if !self.takes(r.seq) {
            return Err(StoreError::Invalid {
                what: "record chunk",
                reason: format!("record {} does not follow record {}", r.seq, self.last_seq),
            });
        }
        if self.rows == 0 {
            self.first_seq = r.seq;
            self.last_seq = r.seq;
        }
        self.min_date = self.min_date.min(r.settlement_date);
        self.max_date = self.max_date.max(r.settlement_date);
        let card = r.card_bin.zip(r.card_last4).filter(|(b, l)| b.len() == 6 && l.len() == 4);
        let presence = presence_of(&[
            (TERMINAL, r.terminal_id.is_some()),
            (BATCH, r.batch_no.is_some()),
            (STAN, r.stan.is_some()),
            (RRN, r.rrn.is_some()),
            (AUTH_CODE, r.auth_code.is_some()),
            (CARD, card.is_some()),
            (ORIGINAL, r.original_seq.is_some()),
            (EXTERNAL_REF, r.external_ref.is_some()),
            (REVERSAL, r.reversal),
            (APPROVED, r.response_code == ResponseCode::APPROVED.as_str()),
        ]);
        let out = &mut self.data;
        out.extend_from_slice(&presence.to_le_bytes());
        put_u64(out, (r.seq - self.last_seq) as u64);
        self.last_seq = r.seq;
        put_i64(out, r.received_at_us.wrapping_sub(self.last_received_us));
        self.last_received_us = r.received_at_us;
        put_i64(out, r.settlement_date.wrapping_sub(self.last_date));
        self.last_date = r.settlement_date;
        put_i64(out, r.txn_time_us.wrapping_sub(r.received_at_us));
        put_i64(out, r.amount_fen);
        self.merchants.put(out, r.merchant_id.as_bytes());
        out.push(code_of_word(TxnKind::ALL, r.kind, |w| TxnKind::parse(w).ok())?);
        out.push(code_of_word(Channel::ALL, r.channel, |w| Channel::parse(w).ok())?);
        out.push(code_of_word(Source::ALL, r.source, |w| Source::parse(w).ok())?);
        self.currencies.put(out, r.currency.as_bytes());
        if let Some(t) = r.terminal_id {
            self.terminals.put(out, t.as_bytes());
        }
        for n in [r.batch_no, r.stan].into_iter().flatten() {
            put_u64(out, n as u64);
        }
        for t in [r.rrn, r.auth_code].into_iter().flatten() {
            put_digits(out, t.as_bytes());
        }
        if let Some((b, l)) = card {
            out.extend_from_slice(b.as_bytes());
            out.extend_from_slice(l.as_bytes());
        }
        if let Some(o) = r.original_seq {
            put_i64(out, o);
        }
        if let Some(e) = r.external_ref {
            put_text(out, e);
        }
        self.rows += 1;
        Ok(())
    }

    /// Writes the chunk (if it holds anything) and starts an empty one.
    pub(crate) fn flush(&mut self, c: &Connection) -> Result<(), StoreError> {
        if self.rows > 0 {
            c.prepare_cached(
                "INSERT INTO txn_record_chunks (first_seq, last_seq, rows, min_date, max_date, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![self.first_seq, self.last_seq, self.rows, self.min_date, self.max_date, &self.data])?;
        }
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        data.extend_from_slice(&FORMAT_2);
        *self = RecordChunkWriter { data, ..RecordChunkWriter::new() };
        Ok(())
    }
}

/// Gathers records that no chunk holds (stored one at a time, or before schema 10) into
/// chunks, oldest first: only whole runs of [`RECORD_CHUNK_MAX`] consecutive records, at most
/// `chunks_max` of them. Runs inside the writer's transaction, so the records it reads are all
/// there are in their range (sequences are assigned in order, the table is append-only).
/// Returns how many chunks it wrote.
pub(crate) fn seal(c: &Connection, newest_seq: i64, chunks_max: usize) -> Result<usize, StoreError> {
    // The gaps between chunks, up to the newest record.
    let mut gaps = Vec::new();
    {
        let mut stmt = c.prepare_cached("SELECT first_seq, last_seq FROM txn_record_chunks ORDER BY first_seq")?;
        let mut rows = stmt.query([])?;
        let mut next = 1i64;
        while let Some(r) = rows.next()? {
            let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
            if first > next {
                gaps.push((next, first - 1));
            }
            next = next.max(last + 1);
        }
        if newest_seq >= next {
            gaps.push((next, newest_seq));
        }
    }
    let mut written = 0;
    let mut w = RecordChunkWriter::new();
    let mut stmt = c.prepare_cached(&format!("SELECT {} FROM txn_records WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq", super::txn::RECORD_COLS))?;
    for (mut from, to) in gaps {
        while to - from + 1 >= RECORD_CHUNK_MAX && written < chunks_max {
            let last = from + RECORD_CHUNK_MAX - 1;
            let mut rows = stmt.query([from, last])?;
            while let Some(r) = rows.next()? {
                let row = super::txn::record_from_row(r, 0)?;
                if !w.takes(row.seq) {
                    // A sequence missing from the table: `verify` names it; leave the range.
                    break;
                }
                w.push(&row.as_ref())?;
            }
            if w.rows == RECORD_CHUNK_MAX && w.first_seq == from {
                w.flush(c)?;
                written += 1;
            } else {
                w = RecordChunkWriter::new();
            }
            from = last + 1;
        }
    }
    Ok(written)
}

const DATA: &str = "txn_record_chunks.data";

fn bad(column: &'static str) -> StoreError {
    StoreError::Corrupt { column, value: "malformed record chunk".into() }
}

/// What to keep of a chunk's records: sequences `seqs`, settlement dates `from..=to`
/// (YYYYMMDD) and, when given, one merchant's records.
pub(crate) struct Keep<'a> {
    pub seqs: (i64, i64),
    pub from: i64,
    pub to: i64,
    pub merchant: Option<&'a MerchantId>,
    /// The statuses other than `approved`, by sequence (what `txn_status` holds); every other
    /// record is `approved`.
    pub statuses: &'a [(i64, TxnStatus)],
}

/// Statuses by sequence from a list of the statuses other than `approved` (in sequence order),
/// for records asked about in rising sequence order: a walk, not a search per record.
pub(crate) struct StatusCursor<'a> {
    statuses: &'a [(i64, TxnStatus)],
    at: usize,
}

impl<'a> StatusCursor<'a> {
    /// Positioned for sequences from `first_seq` on.
    pub(crate) fn new(statuses: &'a [(i64, TxnStatus)], first_seq: i64) -> StatusCursor<'a> {
        StatusCursor { statuses, at: statuses.partition_point(|s| s.0 < first_seq) }
    }

    /// The status of `seq`: the listed one, else `approved`. `seq` must not fall below the one
    /// asked before.
    pub(crate) fn status_of(&mut self, seq: i64) -> TxnStatus {
        while self.statuses.get(self.at).is_some_and(|s| s.0 < seq) {
            self.at += 1;
        }
        self.statuses.get(self.at).filter(|s| s.0 == seq).map_or(TxnStatus::Approved, |s| s.1)
    }
}

/// A chunk's row in `txn_record_chunks`, less its data: what decoding checks the data against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub first_seq: i64,
    pub last_seq: i64,
    pub rows: i64,
}

/// Where decoded records go, each with its receive time (ms).
pub(crate) trait RecordSink {
    fn put(&mut self, record: PlatformRecord, received_ms: i64) -> Result<(), StoreError>;
}

/// Appends to two vectors, index for index.
impl RecordSink for (Vec<PlatformRecord>, Vec<i64>) {
    fn put(&mut self, record: PlatformRecord, received_ms: i64) -> Result<(), StoreError> {
        self.0.push(record);
        self.1.push(received_ms);
        Ok(())
    }
}

/// Fills slots already in place, in order: one part of a list several readers fill at once,
/// sized from the chunk heads, so no reader's vector is grown and none copied into another.
pub(crate) struct Slots<'s> {
    records: &'s mut [PlatformRecord],
    received_ms: &'s mut [i64],
    filled: usize,
}

impl<'s> Slots<'s> {
    pub(crate) fn new(records: &'s mut [PlatformRecord], received_ms: &'s mut [i64]) -> Slots<'s> {
        Slots { records, received_ms, filled: 0 }
    }

    /// How many slots hold a decoded record (the first ones).
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }
}

impl RecordSink for Slots<'_> {
    fn put(&mut self, record: PlatformRecord, received_ms: i64) -> Result<(), StoreError> {
        let (Some(slot), Some(ms)) = (self.records.get_mut(self.filled), self.received_ms.get_mut(self.filled)) else {
            return Err(bad("txn_record_chunks.rows"));
        };
        *slot = record;
        *ms = received_ms;
        self.filled += 1;
        Ok(())
    }
}

/// Decodes one chunk into `out` (records, with the statuses `keep.statuses` gives, `approved`
/// for the rest, and their receive times), keeping what `keep` asks for. The records must be
/// exactly the sequences `span` covers, one each, in order: anything else is an error, not a
/// record with a wrong id.
pub(crate) fn decode(data: &[u8], span: Span, keep: &Keep<'_>, dates: &mut DateCache, out: &mut impl RecordSink) -> Result<(), StoreError> {
    let mut r = ChunkReader::new(data, DATA, bad);
    let v2 = r.format_2();
    let known = if v2 { KNOWN } else { KNOWN_1 };
    let (mut merchants, mut terminals, mut currencies) = (IdTable::new(), IdTable::new(), IdTable::new());
    let (mut seq, mut received_us, mut n, mut last_date) = (span.first_seq, 0i64, 0i64, 0i64);
    let mut statuses = StatusCursor::new(keep.statuses, span.first_seq);
    while !r.at_end() {
        let presence = r.presence()?;
        if presence & !known != 0 {
            return Err(bad(DATA));
        }
        let has = |bit: u16| presence & bit != 0;
        // Consecutive sequences: the first record is the span's first, each next one more.
        if r.u64()? != u64::from(n > 0) || n >= span.rows {
            return Err(bad(DATA));
        }
        seq = span.first_seq + n;
        n += 1;
        received_us = received_us.wrapping_add(r.i64()?);
        let date = if v2 {
            last_date = last_date.wrapping_add(r.i64()?);
            last_date
        } else {
            i64::try_from(r.u64()?).map_err(|_| bad("txn_record_chunks.settlement_date"))?
        };
        let txn_time_us = received_us.wrapping_add(r.i64()?);
        let amount = Amount::from_fen(r.i64()?).map_err(|_| bad("txn_record_chunks.amount_fen"))?;
        let merchant_of = |b: &[u8]| MerchantId::from_ascii(b).ok();
        let terminal_of = |b: &[u8]| TerminalId::from_ascii(b).ok();
        let rrn_of = |b: &[u8]| Rrn::from_ascii(b).ok();
        let auth_of = |b: &[u8]| AuthCode::from_ascii(b).ok();
        let (merchant, kind, channel, currency, approved, source, terminal);
        if v2 {
            merchant = merchants.read(&mut r, "txn_record_chunks.merchant_id", merchant_of)?;
            kind = r.code("txn_record_chunks.kind", TxnKind::ALL)?;
            channel = r.code("txn_record_chunks.channel", Channel::ALL)?;
            source = r.code("txn_record_chunks.source", Source::ALL)?;
            currency = currencies.read(&mut r, "txn_record_chunks.currency", Currency::from_code_bytes)?;
            approved = has(APPROVED);
            terminal = if has(TERMINAL) { Some(terminals.read(&mut r, "txn_record_chunks.terminal_id", terminal_of)?) } else { None };
        } else {
            merchant = r.word("txn_record_chunks.merchant_id", merchant_of)?;
            kind = r.word("txn_record_chunks.kind", TxnKind::from_word_bytes)?;
            channel = r.word("txn_record_chunks.channel", Channel::from_word_bytes)?;
            currency = r.word("txn_record_chunks.currency", Currency::from_code_bytes)?;
            approved = r.word("txn_record_chunks.response_code", |b| {
                (b.len() == 2 && b.iter().all(u8::is_ascii_alphanumeric)).then_some(b == ResponseCode::APPROVED.as_str().as_bytes())
            })?;
            source = r.word("txn_record_chunks.source", Source::from_word_bytes)?;
            terminal = if has(TERMINAL) { Some(r.word("txn_record_chunks.terminal_id", terminal_of)?) } else { None };
        }
        let batch = if has(BATCH) {
            Some(BatchNo::new(r.u32("txn_record_chunks.batch_no")?).map_err(|_| bad("txn_record_chunks.batch_no"))?)
        } else {
            None
        };
        let stan =
            if has(STAN) { Some(Stan::new(r.u32("txn_record_chunks.stan")?).map_err(|_| bad("txn_record_chunks.stan"))?) } else { None };
        let rrn = match (has(RRN), v2) {
            (false, _) => None,
            (true, true) => Some(r.digits("txn_record_chunks.rrn", rrn_of)?),
            (true, false) => Some(r.word("txn_record_chunks.rrn", rrn_of)?),
        };
        let auth_code = match (has(AUTH_CODE), v2) {
            (false, _) => None,
            (true, true) => Some(r.digits("txn_record_chunks.auth_code", auth_of)?),
            (true, false) => Some(r.word("txn_record_chunks.auth_code", auth_of)?),
        };
        let card = if has(CARD) {
            Some(r.card("txn_record_chunks.card")?)
        } else {
            None
        };
        let original_id = if has(ORIGINAL) { Some(PlatformId(r.i64()?)) } else { None };
        let external_ref = if has(EXTERNAL_REF) { Some(r.text("txn_record_chunks.external_ref")?) } else { None };
        if seq < keep.seqs.0 || seq > keep.seqs.1 || date < keep.from || date > keep.to {
            continue;
        }
        if keep.merchant.is_some_and(|m| *m != merchant) {
            continue;
        }
        let record = PlatformRecord {
            id: PlatformId(seq),
            merchant,
            terminal,
            batch,
            stan,
            rrn,
            auth_code,
            kind,
            channel,
            approved,
            is_reversal: has(REVERSAL),
            status: statuses.status_of(seq),
            amount,
            currency,
            card,
            txn_time: from_us(txn_time_us),
            settlement_date: dates.get(date)?,
            external_ref: external_ref.map(str::to_owned),
            original_id,
            source,
        };
        out.put(record, received_us.div_euclid(1000))?;
    }
    if n != span.rows || seq != span.last_seq {
        return Err(bad(DATA));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon::MaskedCard;

    struct Owned {
        merchant: String,
        terminal: Option<String>,
        rrn: Option<String>,
        auth: Option<String>,
        last4: String,
        external_ref: Option<String>,
    }

    fn owned(n: i64) -> Owned {
        Owned {
            merchant: format!("8983100489{:05}", n % 7),
            terminal: (n % 5 != 0).then(|| format!("T{:07}", n % 11)),
            rrn: (n % 6 != 1).then(|| format!("{n:012}")),
            auth: (n % 2 == 1).then(|| format!("{:06}", n % 999_999)),
            last4: format!("{:04}", n % 10_000),
            external_ref: (n % 4 == 2).then(|| format!("wx,\"{n}\"订单")),
        }
    }

    fn record(n: i64, o: &Owned) -> RecordRef<'_> {
        RecordRef {
            seq: 100 + n,
            received_at_us: 1_764_000_000_000_000 + n * 1_000_003,
            merchant_id: &o.merchant,
            terminal_id: o.terminal.as_deref(),
            batch_no: (n % 2 == 0).then_some(n % 1000),
            stan: (n % 3 != 0).then_some(n % 999_999),
            rrn: o.rrn.as_deref(),
            auth_code: o.auth.as_deref(),
            kind: TxnKind::ALL[n as usize % TxnKind::ALL.len()].as_str(),
            channel: Channel::ALL[n as usize % Channel::ALL.len()].as_str(),
            card_bin: (n % 3 == 0).then_some("622202"),
            card_last4: (n % 3 == 0).then_some(o.last4.as_str()),
            card_masked: None,
            card_token: None,
            amount_fen: n * 37 + 1,
            currency: "CNY",
            response_code: if n % 9 == 4 { "05" } else { "00" },
            txn_time_us: 1_764_000_000_000_000 + n * 999_983 - (n % 13) * 60_000_000,
            settlement_date: [20261124, 20261125, 20261126][n as usize % 3],
            original_seq: (n % 8 == 5).then_some(100 + n - 3),
            reversal: n % 10 == 7,
            source: ["iso8583", "import", "batch_upload"][n as usize % 3],
            external_ref: o.external_ref.as_deref(),
        }
    }

    fn expected(r: &RecordRef<'_>) -> PlatformRecord {
        PlatformRecord {
            id: PlatformId(r.seq),
            merchant: MerchantId::parse(r.merchant_id).unwrap(),
            terminal: r.terminal_id.map(|t| TerminalId::parse(t).unwrap()),
            batch: r.batch_no.map(|b| BatchNo::new(b as u32).unwrap()),
            stan: r.stan.map(|s| Stan::new(s as u32).unwrap()),
            rrn: r.rrn.map(|x| Rrn::parse(x).unwrap()),
            auth_code: r.auth_code.map(|a| AuthCode::parse(a).unwrap()),
            kind: TxnKind::parse(r.kind).unwrap(),
            channel: Channel::parse(r.channel).unwrap(),
            approved: r.response_code == "00",
            is_reversal: r.reversal,
            status: TxnStatus::Approved,
            amount: Amount::from_fen(r.amount_fen).unwrap(),
            currency: Currency::parse(r.currency).unwrap(),
            card: r.card_bin.zip(r.card_last4).and_then(|(b, l)| MaskedCard::new(b, l)),
            txn_time: from_us(r.txn_time_us),
            settlement_date: super::super::clearing::int_to_date(r.settlement_date).unwrap(),
            external_ref: r.external_ref.map(str::to_owned),
            original_id: r.original_seq.map(PlatformId),
            source: Source::parse(r.source).unwrap(),
        }
    }

    fn span_of(w: &RecordChunkWriter) -> Span {
        Span { first_seq: w.first_seq, last_seq: w.last_seq, rows: w.rows }
    }

    fn encode(records: &[RecordRef<'_>]) -> RecordChunkWriter {
        let mut w = RecordChunkWriter::new();
        for r in records {
            w.push(r).unwrap();
        }
        w
    }

    /// Every field reconciliation reads comes back as it went in; the sequence, date and
    /// merchant filters keep exactly the records they name.
    #[test]
    fn records_round_trip_and_filter() {
        let owned: Vec<Owned> = (0..500).map(owned).collect();
        let records: Vec<RecordRef<'_>> = owned.iter().enumerate().map(|(n, o)| record(n as i64, o)).collect();
        let w = encode(&records);
        assert_eq!((w.first_seq, w.last_seq, w.rows, w.min_date, w.max_date), (100, 599, 500, 20261124, 20261126));
        let mut side = (Vec::new(), Vec::new());
        let all = Keep { seqs: (0, i64::MAX), from: 20261124, to: 20261126, merchant: None, statuses: &[] };
        decode(&w.data, span_of(&w), &all, &mut DateCache::default(), &mut side).unwrap();
        let (got, received) = side;
        assert_eq!(got, records.iter().map(expected).collect::<Vec<_>>());
        assert_eq!(received, records.iter().map(|r| r.received_at_us / 1000).collect::<Vec<_>>());

        // Into slots in place: the same records, and the slots past them untouched.
        let mut slots = vec![expected(&records[0]); 510];
        let mut ms = vec![-1i64; 510];
        let mut sink = Slots::new(&mut slots, &mut ms);
        decode(&w.data, span_of(&w), &all, &mut DateCache::default(), &mut sink).unwrap();
        assert_eq!(sink.filled(), 500);
        assert_eq!((&slots[..500], &ms[..500]), (&got[..], &received[..]));
        assert!(ms[500..].iter().all(|&m| m == -1));
        // Too few slots: an error, not a record lost.
        let (mut slots, mut ms) = (vec![expected(&records[0]); 499], vec![0i64; 499]);
        assert!(decode(&w.data, span_of(&w), &all, &mut DateCache::default(), &mut Slots::new(&mut slots, &mut ms)).is_err());

        let m = MerchantId::parse(&owned[1].merchant).unwrap();
        let some = Keep { seqs: (150, 420), from: 20261125, to: 20261125, merchant: Some(&m), statuses: &[] };
        let mut side = (Vec::new(), Vec::new());
        decode(&w.data, span_of(&w), &some, &mut DateCache::default(), &mut side).unwrap();
        let (got, received) = side;
        let want: Vec<_> = records
            .iter()
            .filter(|r| r.merchant_id == m.as_str() && r.settlement_date == 20261125 && (150..=420).contains(&r.seq))
            .map(expected)
            .collect();
        assert!(want.len() > 5);
        assert_eq!(got, want);
        assert_eq!(received.len(), got.len());
    }

    /// A chunk in the first format, as stores written before the second hold them.
    fn encode_first_format(records: &[RecordRef<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last_received_us = 0;
        for (i, r) in records.iter().enumerate() {
            let card = r.card_bin.zip(r.card_last4);
            let presence = presence_of(&[
                (TERMINAL, r.terminal_id.is_some()),
                (BATCH, r.batch_no.is_some()),
                (STAN, r.stan.is_some()),
                (RRN, r.rrn.is_some()),
                (AUTH_CODE, r.auth_code.is_some()),
                (CARD, card.is_some()),
                (ORIGINAL, r.original_seq.is_some()),
                (EXTERNAL_REF, r.external_ref.is_some()),
                (REVERSAL, r.reversal),
            ]);
            out.extend_from_slice(&presence.to_le_bytes());
            put_u64(&mut out, u64::from(i > 0));
            put_i64(&mut out, r.received_at_us - last_received_us);
            last_received_us = r.received_at_us;
            put_u64(&mut out, r.settlement_date as u64);
            put_i64(&mut out, r.txn_time_us - r.received_at_us);
            put_i64(&mut out, r.amount_fen);
            for t in [r.merchant_id, r.kind, r.channel, r.currency, r.response_code, r.source].into_iter().chain(r.terminal_id) {
                put_text(&mut out, t);
            }
            for n in [r.batch_no, r.stan].into_iter().flatten() {
                put_u64(&mut out, n as u64);
            }
            for t in [r.rrn, r.auth_code].into_iter().flatten() {
                put_text(&mut out, t);
            }
            if let Some((b, l)) = card {
                out.extend_from_slice(b.as_bytes());
                out.extend_from_slice(l.as_bytes());
            }
            if let Some(o) = r.original_seq {
                put_i64(&mut out, o);
            }
            if let Some(e) = r.external_ref {
                put_text(&mut out, e);
            }
        }
        out
    }

    /// Chunks of the first format still decode to the same records; the second format is much
    /// smaller on the same records.
    #[test]
    fn first_format_chunks_still_read() {
        let owned: Vec<Owned> = (0..500).map(owned).collect();
        let records: Vec<RecordRef<'_>> = owned.iter().enumerate().map(|(n, o)| record(n as i64, o)).collect();
        let old = encode_first_format(&records);
        let new = encode(&records);
        let all = Keep { seqs: (0, i64::MAX), from: 0, to: i64::MAX, merchant: None, statuses: &[] };
        let mut side = (Vec::new(), Vec::new());
        decode(&old, span_of(&new), &all, &mut DateCache::default(), &mut side).unwrap();
        assert_eq!(side.0, records.iter().map(expected).collect::<Vec<_>>());
        assert_eq!(side.1, records.iter().map(|r| r.received_at_us / 1000).collect::<Vec<_>>());
        assert!(new.data.len() * 4 < old.len() * 3, "second format {} bytes, first {}", new.data.len(), old.len());
    }

    #[test]
    fn a_chunk_takes_only_the_next_sequence_and_has_a_size_limit() {
        let o = owned(1);
        let mut w = RecordChunkWriter::new();
        w.push(&record(1, &o)).unwrap();
        assert!(!w.takes(101 + 2), "a gap is refused");
        assert!(w.push(&record(3, &o)).is_err());
        assert!(!w.takes(101), "a repeated sequence is refused");
        assert!(w.takes(102));
        w.first_seq = 102 - RECORD_CHUNK_MAX;
        assert!(!w.takes(102), "a full chunk takes no more");
        assert_eq!(w.rows, 1);
    }

    /// A cut or damaged chunk is an error (or fewer whole records), never a panic or a changed
    /// record.
    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let owned: Vec<Owned> = (0..20).map(owned).collect();
        let records: Vec<RecordRef<'_>> = owned.iter().enumerate().map(|(n, o)| record(n as i64, o)).collect();
        let want: Vec<PlatformRecord> = records.iter().map(expected).collect();
        let w = encode(&records);
        let all = Keep { seqs: (0, i64::MAX), from: 0, to: i64::MAX, merchant: None, statuses: &[] };
        for cut in 0..w.data.len() {
            let mut side = (Vec::new(), Vec::new());
            let r = decode(&w.data[..cut], span_of(&w), &all, &mut DateCache::default(), &mut side);
            let got = side.0;
            assert!(got.len() <= want.len() && got.iter().zip(&want).all(|(g, e)| g == e), "cut at {cut}");
            if r.is_ok() {
                assert!(got.len() < want.len() || cut == w.data.len());
            }
        }
        for at in 0..w.data.len() {
            let mut data = w.data.clone();
            data[at] ^= 0xa5;
            let _ = decode(&data, span_of(&w), &all, &mut DateCache::default(), &mut (Vec::new(), Vec::new()));
        }
    }
}

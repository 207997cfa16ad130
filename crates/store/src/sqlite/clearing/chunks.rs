//! A clearing file's rows as compact chunks (`clearing_row_chunks`): every row is kept, encoded
//! in a few dozen bytes, in chunks of consecutive lines.
//!
//! Why: a million-row card file stored as a million SQLite rows cost the import's writer most of
//! its time, and a reconciliation run paid again to decode each row through SQLite. As a few
//! hundred blobs, the import writes little and a run decodes plain bytes.
//!
//! A chunk begins with [`FORMAT_2`]. A row: `[presence: u16 LE]`, the line as a varint delta
//! from the previous row's (the first from the chunk's `first_line`), the settlement date
//! (YYYYMMDD) as a zigzag delta from the previous row's, kind and channel as one-byte codes, the
//! currency numbered within the chunk ([`IdNumbers`]), amount and fee (zigzag varints), then
//! each field present in bit order: merchant and terminal numbered within the chunk, batch and
//! STAN as varints, RRN and authorization code as numbers when they are digits
//! ([`put_digits`]), the card's ten digits, the token as text, the time as a zigzag delta (µs)
//! from the previous timed row's, the external reference as text. Numbered ids are parsed once
//! per chunk on reading. A chunk whose structure is damaged is an error that names the column,
//! never a panic; a changed byte inside a number (an amount, a delta) decodes to a wrong value,
//! as in the first format, since nothing checks clearing chunks against another copy.
//!
//! Chunks written before the second format (no header; kind, channel, currency, merchant,
//! terminal, RRN and authorization code as text, the date and time whole) are still read.

use chrono::{DateTime, Utc};
use domain::{Amount, AuthCode, BatchNo, Channel, Currency, MerchantId, Rrn, Stan, TerminalId, TxnKind};
use recon::{ClearingFileId, ClearingRecord};

use super::date_to_int;
use crate::sqlite::varint::{code_of, put_digits, put_i64, put_text, put_u64, presence_of, ChunkReader, IdNumbers, IdTable, FORMAT_2};
use crate::error::StoreError;
use crate::sqlite::from_us;

const MERCHANT: u16 = 1;
const TERMINAL: u16 = 1 << 1;
const BATCH: u16 = 1 << 2;
const STAN: u16 = 1 << 3;
const RRN: u16 = 1 << 4;
const AUTH_CODE: u16 = 1 << 5;
const CARD: u16 = 1 << 6;
const TOKEN: u16 = 1 << 7;
const TIME: u16 = 1 << 8;
const EXTERNAL_REF: u16 = 1 << 9;
const KNOWN: u16 = (1 << 10) - 1;

/// One chunk being filled: rows of consecutive lines of one file.
pub(crate) struct ChunkWriter {
    pub first_line: i64,
    pub rows: i64,
    pub min_date: i64,
    pub max_date: i64,
    pub data: Vec<u8>,
    last_line: u64,
    last_date: i64,
    last_time_us: i64,
    currencies: IdNumbers,
    merchants: IdNumbers,
    terminals: IdNumbers,
}

impl ChunkWriter {
    pub(crate) fn new() -> ChunkWriter {
        ChunkWriter {
            first_line: 0,
            rows: 0,
            min_date: i64::MAX,
            max_date: i64::MIN,
            data: FORMAT_2.to_vec(),
            last_line: 0,
            last_date: 0,
            last_time_us: 0,
            currencies: IdNumbers::default(),
            merchants: IdNumbers::default(),
            terminals: IdNumbers::default(),
        }
    }

    /// Appends one row; `merchant` is the row's own or the resolved one, `token` the keyed card
    /// token (never a PAN). Lines must come in increasing order (lines are stored as deltas).
    pub(crate) fn push(&mut self, r: &ClearingRecord, merchant: Option<&str>, token: Option<&str>) -> Result<(), StoreError> {
        if self.rows > 0 && r.line <= self.last_line {
            return Err(StoreError::Invalid {
                what: "clearing rows",
                reason: format!("line {} came after line {}: rows must come in file order", r.line, self.last_line),
            });
        }
        if self.rows == 0 {
            self.first_line = r.line as i64;
            self.last_line = r.line;
        }
        let date = date_to_int(r.settlement_date);
        self.min_date = self.min_date.min(date);
        self.max_date = self.max_date.max(date);
        let presence = presence_of(&[
            (MERCHANT, merchant.is_some()),
            (TERMINAL, r.terminal.is_some()),
            (BATCH, r.batch.is_some()),
            (STAN, r.stan.is_some()),
            (RRN, r.rrn.is_some()),
            (AUTH_CODE, r.auth_code.is_some()),
            (CARD, r.card.is_some()),
            (TOKEN, token.is_some()),
            (TIME, r.txn_time.is_some()),
            (EXTERNAL_REF, r.external_ref.is_some()),
        ]);
        let out = &mut self.data;
        out.extend_from_slice(&presence.to_le_bytes());
        put_u64(out, r.line.saturating_sub(self.last_line));
        self.last_line = r.line;
        put_i64(out, date.wrapping_sub(self.last_date));
        self.last_date = date;
        out.push(code_of(TxnKind::ALL, r.kind));
        out.push(code_of(Channel::ALL, r.channel));
        self.currencies.put(out, r.currency.as_str().as_bytes());
        put_i64(out, r.amount.fen());
        put_i64(out, r.fee.fen());
        if let Some(m) = merchant {
            self.merchants.put(out, m.as_bytes());
        }
        if let Some(t) = &r.terminal {
            self.terminals.put(out, t.as_bytes());
        }
        if let Some(b) = r.batch {
            put_u64(out, u64::from(b.get()));
        }
        if let Some(s) = r.stan {
            put_u64(out, u64::from(s.get()));
        }
        if let Some(x) = &r.rrn {
            put_digits(out, x.as_bytes());
        }
        if let Some(a) = &r.auth_code {
            put_digits(out, a.as_str().as_bytes());
        }
        if let Some(c) = &r.card {
            out.extend_from_slice(c.bin().as_bytes());
            out.extend_from_slice(c.last4().as_bytes());
        }
        if let Some(t) = token {
            put_text(out, t);
        }
        if let Some(t) = r.txn_time {
            let us = t.timestamp_micros();
            put_i64(out, us.wrapping_sub(self.last_time_us));
            self.last_time_us = us;
        }
        if let Some(e) = &r.external_ref {
            put_text(out, e);
        }
        self.rows += 1;
        Ok(())
    }
}

fn bad(column: &'static str) -> StoreError {
    StoreError::Corrupt { column, value: "malformed clearing row chunk".into() }
}

const DATA: &str = "clearing_row_chunks.data";

/// What to keep of a chunk's rows: settlement dates `from..=to` (YYYYMMDD) and, when given, one
/// merchant's rows.
pub(crate) struct Keep<'a> {
    pub from: i64,
    pub to: i64,
    pub merchant: Option<&'a MerchantId>,
}

/// Decodes one chunk of file `file` into `out`, keeping the rows `keep` asks for.
pub(crate) fn decode(
    data: &[u8],
    file: i64,
    first_line: i64,
    keep: &Keep<'_>,
    dates: &mut super::super::recon::DateCache,
    out: &mut Vec<ClearingRecord>,
) -> Result<(), StoreError> {
    let mut r = ChunkReader::new(data, DATA, bad);
    let v2 = r.format_2();
    let (mut currencies, mut merchants, mut terminals) = (IdTable::new(), IdTable::new(), IdTable::new());
    let (mut last_date, mut last_time_us) = (0i64, 0i64);
    let mut line = u64::try_from(first_line).map_err(|_| bad("clearing_row_chunks.first_line"))?;
    while !r.at_end() {
        let presence = r.presence()?;
        if presence & !KNOWN != 0 {
            return Err(bad(DATA));
        }
        let has = |bit: u16| presence & bit != 0;
        line = line.checked_add(r.u64()?).ok_or_else(|| bad(DATA))?;
        let date = if v2 {
            last_date = last_date.wrapping_add(r.i64()?);
            last_date
        } else {
            i64::try_from(r.u64()?).map_err(|_| bad(DATA))?
        };
        let (kind, channel, currency) = if v2 {
            (
                r.code("clearing_row_chunks.kind", TxnKind::ALL)?,
                r.code("clearing_row_chunks.channel", Channel::ALL)?,
                currencies.read(&mut r, "clearing_row_chunks.currency", Currency::from_code_bytes)?,
            )
        } else {
            (
                r.word("clearing_row_chunks.kind", TxnKind::from_word_bytes)?,
                r.word("clearing_row_chunks.channel", Channel::from_word_bytes)?,
                r.word("clearing_row_chunks.currency", Currency::from_code_bytes)?,
            )
        };
        let amount = Amount::from_fen(r.i64()?).map_err(|_| bad("clearing_row_chunks.amount"))?;
        let fee = Amount::from_fen(r.i64()?).map_err(|_| bad("clearing_row_chunks.fee"))?;
        let merchant_of = |b: &[u8]| MerchantId::from_ascii(b).ok();
        let merchant = match (has(MERCHANT), v2) {
            (false, _) => None,
            (true, true) => Some(merchants.read(&mut r, "clearing_row_chunks.merchant_id", merchant_of)?),
            (true, false) => Some(r.word("clearing_row_chunks.merchant_id", merchant_of)?),
        };
        let terminal_of = |b: &[u8]| TerminalId::from_ascii(b).ok();
        let terminal = match (has(TERMINAL), v2) {
            (false, _) => None,
            (true, true) => Some(terminals.read(&mut r, "clearing_row_chunks.terminal_id", terminal_of)?),
            (true, false) => Some(r.word("clearing_row_chunks.terminal_id", terminal_of)?),
        };
        let batch = if has(BATCH) {
            Some(BatchNo::new(r.u32("clearing_row_chunks.batch_no")?).map_err(|_| bad("clearing_row_chunks.batch_no"))?)
        } else {
            None
        };
        let stan =
            if has(STAN) { Some(Stan::new(r.u32("clearing_row_chunks.stan")?).map_err(|_| bad("clearing_row_chunks.stan"))?) } else { None };
        let rrn_of = |b: &[u8]| Rrn::from_ascii(b).ok();
        let rrn = match (has(RRN), v2) {
            (false, _) => None,
            (true, true) => Some(r.digits("clearing_row_chunks.rrn", rrn_of)?),
            (true, false) => Some(r.word("clearing_row_chunks.rrn", rrn_of)?),
        };
        let auth_of = |b: &[u8]| AuthCode::from_ascii(b).ok();
        let auth_code = match (has(AUTH_CODE), v2) {
            (false, _) => None,
            (true, true) => Some(r.digits("clearing_row_chunks.auth_code", auth_of)?),
            (true, false) => Some(r.word("clearing_row_chunks.auth_code", auth_of)?),
        };
        let card = if has(CARD) {
            Some(r.card("clearing_row_chunks.card")?)
        } else {
            None
        };
        if has(TOKEN) {
            r.field("clearing_row_chunks.card_token")?;
        }
        let txn_time: Option<DateTime<Utc>> = match (has(TIME), v2) {
            (false, _) => None,
            (true, true) => {
                last_time_us = last_time_us.wrapping_add(r.i64()?);
                Some(from_us(last_time_us))
            }
            (true, false) => Some(from_us(r.i64()?)),
        };
        let external_ref = if has(EXTERNAL_REF) { Some(r.text("clearing_row_chunks.external_ref")?) } else { None };
        if date < keep.from || date > keep.to || (keep.merchant.is_some() && merchant.as_ref() != keep.merchant) {
            continue;
        }
        out.push(ClearingRecord {
            file: ClearingFileId(file),
            line,
            settlement_date: dates.get(date)?,
            merchant,
            terminal,
            batch,
            stan,
            rrn,
            auth_code,
            kind,
            channel,
            card,
            amount,
            fee,
            currency,
            txn_time,
            external_ref: external_ref.map(str::to_owned),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon::MaskedCard;
    use crate::sqlite::recon::DateCache;
    use domain::SettlementDate;

    fn row(n: u64) -> ClearingRecord {
        let day = SettlementDate::parse(["2026-11-24", "2026-11-25", "2026-11-26"][n as usize % 3]).unwrap();
        ClearingRecord {
            file: ClearingFileId(7),
            line: 2 + 3 * n + n % 3,
            settlement_date: day,
            merchant: (!n.is_multiple_of(4)).then(|| MerchantId::parse(&format!("8983100489{:05}", n % 7)).unwrap()),
            terminal: (!n.is_multiple_of(5)).then(|| TerminalId::parse(&format!("T{:07}", n % 11)).unwrap()),
            batch: n.is_multiple_of(2).then(|| BatchNo::new(n as u32 % 1000).unwrap()),
            stan: (!n.is_multiple_of(3)).then(|| Stan::new(n as u32 % 999_999).unwrap()),
            rrn: (n % 6 != 1).then(|| Rrn::parse(&format!("{n:012}")).unwrap()),
            auth_code: (n % 2 == 1).then(|| AuthCode::parse(&format!("{:06}", n % 999_999)).unwrap()),
            kind: TxnKind::ALL[n as usize % TxnKind::ALL.len()],
            channel: Channel::ALL[n as usize % Channel::ALL.len()],
            card: n.is_multiple_of(3).then(|| MaskedCard::new("622202", &format!("{:04}", n % 10_000)).unwrap()),
            amount: Amount::from_fen(n as i64 * 37 + 1).unwrap(),
            fee: Amount::from_fen(n as i64 % 50).unwrap(),
            currency: Currency::parse("CNY").unwrap(),
            txn_time: (n % 7 != 3).then(|| from_us(1_764_000_000_000_000 + n as i64 * 1_000_003)),
            external_ref: (n % 4 == 2).then(|| format!("wx,\"{n}\"订单")),
        }
    }

    fn encode(rows: &[ClearingRecord]) -> ChunkWriter {
        let mut w = ChunkWriter::new();
        for (i, r) in rows.iter().enumerate() {
            let token = i.is_multiple_of(3).then(|| format!("{i:064x}"));
            w.push(r, r.merchant.as_ref().map(MerchantId::as_str), token.as_deref()).unwrap();
        }
        w
    }

    /// Every field of every row comes back as it went in; the date and merchant filters keep
    /// exactly the rows they name.
    #[test]
    fn rows_round_trip_and_filter() {
        let rows: Vec<ClearingRecord> = (0..500).map(row).collect();
        let w = encode(&rows);
        assert_eq!((w.first_line, w.rows, w.min_date, w.max_date), (2, 500, 20261124, 20261126));
        let mut got = Vec::new();
        let all = Keep { from: 20261124, to: 20261126, merchant: None };
        decode(&w.data, 7, w.first_line, &all, &mut DateCache::default(), &mut got).unwrap();
        assert_eq!(got, rows);

        let m = rows[1].merchant.clone().unwrap();
        let some = Keep { from: 20261125, to: 20261125, merchant: Some(&m) };
        let mut got = Vec::new();
        decode(&w.data, 7, w.first_line, &some, &mut DateCache::default(), &mut got).unwrap();
        let want: Vec<_> = rows
            .iter()
            .filter(|r| r.merchant.as_ref() == Some(&m) && date_to_int(r.settlement_date) == 20261125)
            .cloned()
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want);
    }

    /// A chunk in the first format, as stores written before the second hold them.
    fn encode_first_format(rows: &[ClearingRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last_line = rows[0].line;
        for r in rows {
            let presence = presence_of(&[
                (MERCHANT, r.merchant.is_some()),
                (TERMINAL, r.terminal.is_some()),
                (BATCH, r.batch.is_some()),
                (STAN, r.stan.is_some()),
                (RRN, r.rrn.is_some()),
                (AUTH_CODE, r.auth_code.is_some()),
                (CARD, r.card.is_some()),
                (TIME, r.txn_time.is_some()),
                (EXTERNAL_REF, r.external_ref.is_some()),
            ]);
            out.extend_from_slice(&presence.to_le_bytes());
            put_u64(&mut out, r.line - last_line);
            last_line = r.line;
            put_u64(&mut out, date_to_int(r.settlement_date) as u64);
            put_text(&mut out, r.kind.as_str());
            put_text(&mut out, r.channel.as_str());
            put_text(&mut out, r.currency.as_str());
            put_i64(&mut out, r.amount.fen());
            put_i64(&mut out, r.fee.fen());
            for text in [r.merchant.as_ref().map(MerchantId::as_str), r.terminal.as_ref().map(TerminalId::as_str)].into_iter().flatten() {
                put_text(&mut out, text);
            }
            for n in [r.batch.map(BatchNo::get), r.stan.map(Stan::get)].into_iter().flatten() {
                put_u64(&mut out, u64::from(n));
            }
            for text in [r.rrn.as_ref().map(Rrn::as_str), r.auth_code.as_ref().map(AuthCode::as_str)].into_iter().flatten() {
                put_text(&mut out, text);
            }
            if let Some(c) = &r.card {
                out.extend_from_slice(c.bin().as_bytes());
                out.extend_from_slice(c.last4().as_bytes());
            }
            if let Some(t) = r.txn_time {
                put_i64(&mut out, t.timestamp_micros());
            }
            if let Some(e) = &r.external_ref {
                put_text(&mut out, e);
            }
        }
        out
    }

    /// Chunks of the first format still decode to the same rows; the second format is much
    /// smaller on the same rows.
    #[test]
    fn first_format_chunks_still_read() {
        let rows: Vec<ClearingRecord> = (0..500).map(row).collect();
        let old = encode_first_format(&rows);
        let mut got = Vec::new();
        let all = Keep { from: 0, to: i64::MAX, merchant: None };
        decode(&old, 7, rows[0].line as i64, &all, &mut DateCache::default(), &mut got).unwrap();
        assert_eq!(got, rows);
        let mut new = ChunkWriter::new();
        for r in &rows {
            new.push(r, r.merchant.as_ref().map(MerchantId::as_str), None).unwrap();
        }
        assert!(new.data.len() * 3 < old.len() * 2, "second format {} bytes, first {}", new.data.len(), old.len());
    }

    /// The one-byte codes are stored: each must keep its word (reordering a type's values
    /// would change what every stored chunk says).
    #[test]
    fn stored_codes_keep_their_words() {
        let words = |all: Vec<&'static str>| all.join(",");
        assert_eq!(
            words(TxnKind::ALL.iter().map(|k| k.as_str()).collect()),
            "purchase,void,refund,preauth,preauth_void,preauth_completion,preauth_completion_void,balance_inquiry"
        );
        assert_eq!(words(Channel::ALL.iter().map(|c| c.as_str()).collect()), "card,wechat,alipay,unionpay_qr");
        assert_eq!(words(domain::Source::ALL.iter().map(|s| s.as_str()).collect()), "iso8583,api,import,batch_upload");
    }

    /// Ids that are not digits, longer ones and odd currencies round-trip too.
    #[test]
    fn unusual_ids_round_trip() {
        let mut rows: Vec<ClearingRecord> = (0..40).map(row).collect();
        for (i, r) in rows.iter_mut().enumerate() {
            r.rrn = Some(Rrn::parse(&format!("AB{i:010}")).unwrap());
            r.auth_code = Some(AuthCode::parse(if i % 2 == 0 { "000000" } else { "A1B2C3" }).unwrap());
            r.currency = Currency::parse(["USD", "CNY", "HKD"][i % 3]).unwrap();
            r.terminal = Some(TerminalId::parse(&format!("{:08}", i % 3)).unwrap());
        }
        let w = encode(&rows);
        let mut got = Vec::new();
        decode(&w.data, 7, w.first_line, &Keep { from: 0, to: i64::MAX, merchant: None }, &mut DateCache::default(), &mut got).unwrap();
        assert_eq!(got, rows);
    }

    #[test]
    fn rows_out_of_file_order_are_refused() {
        let mut w = ChunkWriter::new();
        w.push(&row(5), None, None).unwrap();
        let mut earlier = row(5);
        earlier.line = 4;
        assert!(matches!(w.push(&earlier, None, None), Err(StoreError::Invalid { .. })));
        earlier.line = row(5).line;
        assert!(w.push(&earlier, None, None).is_err(), "a repeated line is refused too");
        assert_eq!(w.rows, 1);
    }

    /// A cut or damaged chunk is an error (or fewer whole rows), never a panic or a changed row.
    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let rows: Vec<ClearingRecord> = (0..20).map(row).collect();
        let w = encode(&rows);
        let all = Keep { from: 0, to: i64::MAX, merchant: None };
        for cut in 0..w.data.len() {
            let mut got = Vec::new();
            let r = decode(&w.data[..cut], 7, w.first_line, &all, &mut DateCache::default(), &mut got);
            assert!(got.len() <= rows.len() && got.iter().zip(&rows).all(|(g, e)| g == e), "cut at {cut}");
            if r.is_ok() {
                assert!(got.len() < rows.len() || cut == w.data.len());
            }
        }
        for at in 0..w.data.len() {
            let mut data = w.data.clone();
            data[at] ^= 0xa5;
            let _ = decode(&data, 7, w.first_line, &all, &mut DateCache::default(), &mut Vec::new());
        }
    }
}

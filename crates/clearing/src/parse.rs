use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use domain::{
    Amount, AuthCode, BatchNo, CardKey, Channel, Currency, MerchantId, Pan, Rrn, SettlementDate, Stan,
    TerminalId, TxnKind,
};
use sha2::{Digest, Sha256};

use crate::profile::{AmountUnit, ColumnSource, ColumnSpec, Dialect, Field, Layout, Profile, TextEncoding};
use crate::{BadRow, FieldError, FileError};

/// A physical line longer than this refuses the file: memory stays bounded whatever the input.
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// The sink hears about progress at least this often (and once at the end).
pub const PROGRESS_EVERY_BYTES: u64 = 1 << 20;

/// What the caller decides about a file, besides the profile.
pub struct ParseOptions<'k> {
    /// `--date`: the settlement date of rows whose file has no such column; a file column that
    /// disagrees with it makes the row bad.
    pub settlement_date: Option<SettlementDate>,
    /// Clear card numbers are reduced to BIN + last 4 + this key's token on arrival.
    pub card_key: &'k CardKey,
}

/// Receives the rows as they are parsed. Atomic or partial import is the caller's choice: it
/// gets every good row and every bad row; with the default (atomic) it keeps nothing if
/// [`parse`] returns an error or any `bad_row` arrived.
pub trait RowSink {
    fn row(&mut self, row: ClearingRow);
    fn bad_row(&mut self, bad: BadRow);
    /// Bytes read so far.
    fn progress(&mut self, _bytes_read: u64) {}
    /// `false` once the sink wants no more rows (it has refused the file): the parse stops
    /// reading, with [`FileError::Stopped`]. Asked every [`PROGRESS_EVERY_BYTES`].
    fn keep_going(&self) -> bool {
        true
    }
}

/// One imported clearing row. It never holds a clear card number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearingRow {
    /// Physical line in the file, the header being line 1.
    pub line: u64,
    pub settlement_date: SettlementDate,
    /// `None` when the file names none (WeChat Pay bills): the caller resolves it from the
    /// terminal or from [`ClearingRow::sub_merchant_id`].
    pub merchant_id: Option<MerchantId>,
    /// WeChat Pay's 特约商户号, for the caller to resolve to a merchant.
    pub sub_merchant_id: Option<String>,
    pub terminal_id: Option<TerminalId>,
    pub batch_no: Option<BatchNo>,
    pub stan: Option<Stan>,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub kind: TxnKind,
    pub channel: Channel,
    /// BIN and last four, from a masked number or reduced from a clear one on arrival.
    pub card: Option<recon::MaskedCard>,
    /// The keyed token (HMAC-SHA256, hex) when the file carried a clear card number; never the
    /// number itself.
    pub card_token: Option<String>,
    /// Positive; `kind` gives the direction. For WeChat Pay: 订单金额 (申请退款金额 on refunds).
    pub amount: Amount,
    /// Positive; for voids and refunds the fee returned.
    pub fee: Amount,
    /// `net_amount` as the file states it, signed (canonical files).
    pub net_amount_fen: Option<i64>,
    /// WeChat Pay 应结订单金额 (after coupons), or 退款金额 on refunds.
    pub settle_amount: Option<Amount>,
    pub currency: Currency,
    /// As written in the file, in the profile's time zone.
    pub local_time: Option<NaiveDateTime>,
    pub txn_time: Option<DateTime<Utc>>,
    /// Channel order number; on WeChat Pay refunds the refund's own 商户退款单号.
    pub external_ref: Option<String>,
    /// On WeChat Pay refunds, the 商户订单号 of the payment refunded.
    pub original_external_ref: Option<String>,
}

impl ClearingRow {
    /// The reconciliation engine's view of this row, from file `file` (the store's id).
    pub fn into_recon(self, file: recon::ClearingFileId) -> recon::ClearingRecord {
        recon::ClearingRecord {
            file,
            line: self.line,
            settlement_date: self.settlement_date,
            merchant: self.merchant_id,
            terminal: self.terminal_id,
            batch: self.batch_no,
            stan: self.stan,
            rrn: self.rrn,
            auth_code: self.auth_code,
            kind: self.kind,
            channel: self.channel,
            card: self.card,
            amount: self.amount,
            fee: self.fee,
            currency: self.currency,
            txn_time: self.txn_time,
            external_ref: self.external_ref,
        }
    }
}

/// What the caller needs after the last row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// SHA-256 of every byte read. The store refuses a second import of the same digest (or
    /// supersedes the earlier one on `--replace`); see also [`sha256_of`] to check first.
    pub sha256: [u8; 32],
    pub bytes_read: u64,
    pub lines: u64,
    pub rows: u64,
    pub bad_rows: u64,
    /// Good rows per settlement date: a file spanning several dates is split by date.
    pub rows_by_settlement_date: BTreeMap<SettlementDate, u64>,
    /// The file's totals row was found and agreed with the rows.
    pub totals_checked: bool,
}

impl FileSummary {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// SHA-256 of a whole stream, read in bounded chunks: lets the caller refuse a file imported
/// before without parsing it.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<[u8; 32]> {
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(sha.finalize().into())
}

struct Hashing<R> {
    inner: R,
    sha: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

struct Lines<R> {
    reader: BufReader<Hashing<R>>,
    line_no: u64,
}

impl<R: Read> Lines<R> {
    /// The next physical line without its `\n` / `\r\n`; `false` at the end.
    fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FileError> {
        buf.clear();
        let n = (&mut self.reader).take(LINE_BYTES_MAX as u64 + 2).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > LINE_BYTES_MAX {
            return Err(FileError::LineTooLong { line: self.line_no, limit_bytes: LINE_BYTES_MAX });
        }
        Ok(true)
    }

    fn bytes_read(&self) -> u64 {
        self.reader.get_ref().bytes
    }
}

fn decode(encoding: TextEncoding, bytes: &[u8]) -> Option<Cow<'_, str>> {
    match encoding {
        TextEncoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        TextEncoding::Gbk => encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes),
        TextEncoding::Gb18030 => encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes),
    }
}

/// Splits one CSV line: `"` quotes a field, `""` inside quotes is a quote. Fields do not span
/// lines (no clearing format poslens knows puts newlines in values).
fn split_csv(line: &str, delimiter: u8) -> Vec<Cow<'_, str>> {
    let bytes = line.as_bytes();
    let mut fields = Vec::with_capacity(32);
    // Most lines quote nothing: every field is the text between two delimiters.
    if memchr::memchr(b'"', bytes).is_none() {
        let mut start = 0;
        for end in memchr::memchr_iter(delimiter, bytes) {
            fields.push(Cow::Borrowed(&line[start..end]));
            start = end + 1;
        }
        fields.push(Cow::Borrowed(&line[start..]));
        return fields;
    }
    let mut i = 0;
    loop {
        if i < bytes.len() && bytes[i] == b'"' {
            let mut value = String::new();
            let mut j = i + 1;
            let mut seg = j;
            while j < bytes.len() {
                if bytes[j] == b'"' {
                    if j + 1 < bytes.len() && bytes[j + 1] == b'"' {
                        value.push_str(&line[seg..=j]);
                        j += 2;
                        seg = j;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            value.push_str(&line[seg..j.min(bytes.len())]);
            // Skip the closing quote and anything up to the next delimiter.
            let mut k = (j + 1).min(bytes.len());
            while k < bytes.len() && bytes[k] != delimiter {
                k += 1;
            }
            fields.push(Cow::Owned(value));
            if k >= bytes.len() {
                break;
            }
            i = k + 1;
        } else {
            let end = bytes[i..].iter().position(|&b| b == delimiter).map_or(bytes.len(), |p| i + p);
            fields.push(Cow::Borrowed(&line[i..end]));
            if end >= bytes.len() {
                break;
            }
            i = end + 1;
        }
    }
    fields
}

/// Where each profile field is on a line of this file.
#[derive(Clone)]
struct Resolved {
    field: Field,
    label: String,
    at: At,
    spec: ColumnSpec,
}

#[derive(Clone, Copy)]
enum At {
    Index(usize),
    Span { start: usize, width: usize },
}

fn clean_header(s: &str) -> &str {
    s.trim().trim_start_matches('\u{feff}').trim_start_matches('`').trim()
}

fn resolve_columns(profile: &Profile, header: Option<(&[Cow<'_, str>], u64)>) -> Result<Vec<Resolved>, FileError> {
    let mut out = Vec::with_capacity(profile.columns.len());
    for (field, spec) in &profile.columns {
        let (at, label) = match &spec.source {
            ColumnSource::Name(name) => {
                let Some((names, line)) = header else {
                    return Err(FileError::MissingColumn { line: 0, column: name.clone() });
                };
                match names.iter().position(|h| clean_header(h) == name) {
                    Some(i) => (At::Index(i), name.clone()),
                    None if !spec.required => continue,
                    None => return Err(FileError::MissingColumn { line, column: name.clone() }),
                }
            }
            ColumnSource::Index(i) => (At::Index(i.saturating_sub(1)), format!("#{i}")),
            ColumnSource::Span { start, width } => (At::Span { start: *start, width: *width }, format!("[{start}, {width}]")),
        };
        out.push(Resolved { field: *field, label, at, spec: spec.clone() });
    }
    Ok(out)
}

/// Sums the WeChat Pay summary row is checked against.
#[derive(Default)]
struct WechatTotals {
    rows: u64,
    settle_fen: i64,
    refund_fen: i64,
    order_fen: i64,
    requested_refund_fen: i64,
    fee_hundred_thousandths: i64,
}

/// Parses a clearing file from `reader` with `profile`, handing rows to `sink`.
///
/// Streams: memory is bounded by [`LINE_BYTES_MAX`] and the profile's trailing lines, whatever
/// the file's size. Returns an error for what refuses the whole file (a header that lacks a
/// column, a totals row that does not add up, an I/O error); rows already handed to the sink
/// must then be discarded.
///
/// Rows are parsed on as many threads as the machine has (a file's rows are independent: no
/// field spans lines), in blocks of lines, and handed to `sink` in file order, as a single
/// thread would; WeChat Pay bills (whose totals row sums every row) and profiles with trailing
/// rows to skip are parsed on the calling thread.
pub fn parse<R: Read>(
    reader: R,
    profile: &Profile,
    options: &ParseOptions<'_>,
    sink: &mut impl RowSink,
) -> Result<FileSummary, FileError> {
    let threads = if profile.dialect == Dialect::WechatTradebill || profile.skip_trailing_rows > 0 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(PARSE_THREADS_MAX)
    };
    if threads <= 1 {
        return parse_lines(reader, profile, options, sink, &mut Rows::Inline);
    }
    std::thread::scope(|scope| {
        let mut rows = Rows::Parallel { scope, threads, pool: None };
        parse_lines(reader, profile, options, sink, &mut rows)
    })
}

fn parse_lines<'scope, 'env, R: Read>(
    reader: R,
    profile: &'env Profile,
    options: &'env ParseOptions<'env>,
    sink: &mut impl RowSink,
    rows: &mut Rows<'scope, 'env>,
) -> Result<FileSummary, FileError> {
    let mut lines = Lines {
        reader: BufReader::with_capacity(256 * 1024, Hashing { inner: reader, sha: Sha256::new(), bytes: 0 }),
        line_no: 0,
    };
    let mut summary = FileSummary {
        sha256: [0; 32],
        bytes_read: 0,
        lines: 0,
        rows: 0,
        bad_rows: 0,
        rows_by_settlement_date: BTreeMap::new(),
        totals_checked: false,
    };
    let mut buf = Vec::with_capacity(1024);
    let mut columns: Option<Vec<Resolved>> = None;
    if profile.header_row == 0 {
        columns = Some(resolve_columns(profile, None)?);
    }
    let mut trailing: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut totals = WechatTotals::default();
    let mut summary_header: Option<Vec<String>> = None;
    let mut summary_checked_at: Option<u64> = None;
    let mut last_progress = 0u64;
    while lines.next_into(&mut buf)? {
        let line_no = lines.line_no;
        if lines.bytes_read() - last_progress >= PROGRESS_EVERY_BYTES {
            last_progress = lines.bytes_read();
            sink.progress(last_progress);
            if !sink.keep_going() {
                rows.finish(sink, &mut summary)?;
                return Err(FileError::Stopped { line: line_no });
            }
        }
        if line_no < profile.header_row {
            continue;
        }
        if line_no == profile.header_row {
            let text = decode(profile.encoding, &buf)
                .ok_or(FileError::HeaderEncoding { line: line_no, encoding: profile.encoding.name() })?;
            let names: Vec<Cow<'_, str>> = match profile.layout {
                Layout::Csv { delimiter } => split_csv(&text, delimiter),
                Layout::Fixed => Vec::new(),
            };
            columns = Some(resolve_columns(profile, Some((&names, line_no)))?);
            continue;
        }
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let Some(cols) = columns.as_deref() else { continue };
        if profile.dialect == Dialect::WechatTradebill {
            if summary_checked_at.is_some() {
                continue;
            }
            let text = decode(profile.encoding, &buf).unwrap_or_default();
            if text.trim_start_matches('\u{feff}').starts_with("总交易单数") {
                summary_header = Some(split_csv(&text, b',').iter().map(|h| clean_header(h).to_owned()).collect());
                continue;
            }
            if let Some(names) = &summary_header {
                check_wechat_totals(names, &text, line_no, &totals)?;
                summary_checked_at = Some(line_no);
                continue;
            }
        }
        if profile.skip_trailing_rows > 0 {
            trailing.push_back((line_no, buf.clone()));
            if trailing.len() <= profile.skip_trailing_rows {
                continue;
            }
            if let Some((held_no, held)) = trailing.pop_front() {
                handle_row(profile, options, cols, held_no, &held, sink, &mut summary, &mut totals);
            }
            continue;
        }
        match rows {
            Rows::Inline => handle_row(profile, options, cols, line_no, &buf, sink, &mut summary, &mut totals),
            Rows::Parallel { .. } => rows.push(profile, options, cols, line_no, &buf, sink, &mut summary)?,
        }
    }
    rows.finish(sink, &mut summary)?;
    if columns.is_none() {
        return Err(FileError::NoHeader { line: lines.line_no });
    }
    if profile.dialect == Dialect::WechatTradebill {
        if summary_checked_at.is_none() {
            return Err(FileError::TotalsMissing);
        }
        summary.totals_checked = true;
    }
    summary.lines = lines.line_no;
    summary.bytes_read = lines.bytes_read();
    sink.progress(summary.bytes_read);
    summary.sha256 = lines.reader.into_inner().sha.finalize().into();
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn handle_row(
    profile: &Profile,
    options: &ParseOptions<'_>,
    cols: &[Resolved],
    line_no: u64,
    bytes: &[u8],
    sink: &mut impl RowSink,
    summary: &mut FileSummary,
    totals: &mut WechatTotals,
) {
    totals.rows += 1;
    take_row(parse_row(profile, options, cols, line_no, bytes, totals), sink, summary);
}

/// Counts a parsed row and hands it to the sink.
fn take_row(parsed: Result<ClearingRow, BadRow>, sink: &mut impl RowSink, summary: &mut FileSummary) {
    match parsed {
        Ok(row) => {
            summary.rows += 1;
            *summary.rows_by_settlement_date.entry(row.settlement_date).or_default() += 1;
            sink.row(row);
        }
        Err(bad) => {
            summary.bad_rows += 1;
            sink.bad_row(bad);
        }
    }
}

/// Threads that parse rows at most.
const PARSE_THREADS_MAX: usize = 4;
/// A block handed to a parsing thread ends after this many lines or bytes.
const BLOCK_LINES: usize = 2048;
const BLOCK_BYTES: usize = 512 * 1024;
/// Blocks waiting for each thread at most: with [`BLOCK_BYTES`] and [`LINE_BYTES_MAX`] this
/// bounds the memory of a parse whatever the file.
const BLOCKS_QUEUED_PER_THREAD: usize = 2;

/// Consecutive data lines of a file.
#[derive(Default)]
struct Block {
    line_nos: Vec<u64>,
    ends: Vec<usize>,
    data: Vec<u8>,
}

impl Block {
    fn clear(&mut self) {
        self.line_nos.clear();
        self.ends.clear();
        self.data.clear();
    }

    fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.line_nos.iter().zip(starts.zip(&self.ends)).map(|(&n, (a, &b))| (n, &self.data[a..b]))
    }
}

type Parsed = Vec<Result<ClearingRow, BadRow>>;

/// Where data lines go: parsed here, or in blocks on a pool of threads started at the first.
enum Rows<'scope, 'env> {
    Inline,
    Parallel { scope: &'scope std::thread::Scope<'scope, 'env>, threads: usize, pool: Option<Pool> },
}

struct Pool {
    jobs: Vec<std::sync::mpsc::SyncSender<Block>>,
    results: Vec<std::sync::mpsc::Receiver<(Block, Parsed)>>,
    filling: Block,
    spare: Vec<Block>,
    submitted: usize,
    collected: usize,
}

fn worker_gone() -> FileError {
    FileError::Io(std::io::Error::other("a row-parsing thread stopped"))
}

impl<'scope, 'env> Rows<'scope, 'env> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        profile: &'env Profile,
        options: &'env ParseOptions<'env>,
        cols: &[Resolved],
        line_no: u64,
        bytes: &[u8],
        sink: &mut impl RowSink,
        summary: &mut FileSummary,
    ) -> Result<(), FileError> {
        let Rows::Parallel { scope, threads, pool } = self else { return Ok(()) };
        let pool = match pool {
            Some(p) => p,
            None => pool.insert(Pool::start(scope, *threads, profile, options, cols)),
        };
        pool.filling.line_nos.push(line_no);
        pool.filling.data.extend_from_slice(bytes);
        pool.filling.ends.push(pool.filling.data.len());
        if pool.filling.line_nos.len() >= BLOCK_LINES || pool.filling.data.len() >= BLOCK_BYTES {
            pool.submit(sink, summary)?;
        }
        Ok(())
    }

    /// Parses what is left and hands every row over.
    fn finish(&mut self, sink: &mut impl RowSink, summary: &mut FileSummary) -> Result<(), FileError> {
        let Rows::Parallel { pool: Some(pool), .. } = self else { return Ok(()) };
        if !pool.filling.line_nos.is_empty() {
            pool.submit(sink, summary)?;
        }
        while pool.collected < pool.submitted {
            pool.collect(sink, summary)?;
        }
        Ok(())
    }
}

impl Pool {
    fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        threads: usize,
        profile: &'env Profile,
        options: &'env ParseOptions<'env>,
        cols: &[Resolved],
    ) -> Pool {
        let cols: std::sync::Arc<[Resolved]> = cols.into();
        let (mut jobs, mut results) = (Vec::new(), Vec::new());
        for _ in 0..threads {
            let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Block>(BLOCKS_QUEUED_PER_THREAD);
            let (out_tx, out_rx) = std::sync::mpsc::channel();
            let cols = std::sync::Arc::clone(&cols);
            scope.spawn(move || {
                // Only WeChat Pay bills use the sums, and they are parsed inline.
                let mut totals = WechatTotals::default();
                for block in job_rx {
                    let parsed: Parsed =
                        block.lines().map(|(n, b)| parse_row(profile, options, &cols, n, b, &mut totals)).collect();
                    if out_tx.send((block, parsed)).is_err() {
                        break;
                    }
                }
            });
            jobs.push(job_tx);
            results.push(out_rx);
        }
        Pool { jobs, results, filling: Block::default(), spare: Vec::new(), submitted: 0, collected: 0 }
    }

    /// Sends the filled block to the next thread in turn, first taking back the oldest results
    /// when as many blocks as allowed are out.
    fn submit(&mut self, sink: &mut impl RowSink, summary: &mut FileSummary) -> Result<(), FileError> {
        if self.submitted - self.collected >= self.jobs.len() * BLOCKS_QUEUED_PER_THREAD {
            self.collect(sink, summary)?;
        }
        let next = self.spare.pop().unwrap_or_default();
        let block = std::mem::replace(&mut self.filling, next);
        self.jobs[self.submitted % self.jobs.len()].send(block).map_err(|_| worker_gone())?;
        self.submitted += 1;
        Ok(())
    }

    /// The oldest block's rows, in line order (each thread answers its blocks in turn).
    fn collect(&mut self, sink: &mut impl RowSink, summary: &mut FileSummary) -> Result<(), FileError> {
        let (mut block, parsed) = self.results[self.collected % self.results.len()].recv().map_err(|_| worker_gone())?;
        self.collected += 1;
        for row in parsed {
            take_row(row, sink, summary);
        }
        block.clear();
        self.spare.push(block);
        Ok(())
    }
}

fn check_wechat_totals(names: &[String], text: &str, line: u64, t: &WechatTotals) -> Result<(), FileError> {
    let values: Vec<String> = split_csv(text, b',').iter().map(|v| clean_header(v).to_owned()).collect();
    if values.len() < names.len() {
        return Err(FileError::TotalsMalformed {
            line,
            reason: format!("{} values under {} headings", values.len(), names.len()),
        });
    }
    for (name, value) in names.iter().zip(&values) {
        let computed = match name.as_str() {
            "总交易单数" => {
                let file: u64 = value
                    .parse()
                    .map_err(|_| FileError::TotalsMalformed { line, reason: format!("{name} is not a count: {value:?}") })?;
                if file != t.rows {
                    return Err(FileError::Totals {
                        line,
                        what: name.clone(),
                        file_figure: value.clone(),
                        computed: t.rows.to_string(),
                    });
                }
                continue;
            }
            "应结订单总金额" => t.settle_fen,
            "退款总金额" => t.refund_fen,
            "订单总金额" => t.order_fen,
            "申请退款总金额" => t.requested_refund_fen,
            "手续费总金额" => {
                let file = parse_decimal(value, 5)
                    .ok_or_else(|| FileError::TotalsMalformed { line, reason: format!("{name} is not a number: {value:?}") })?;
                if file != t.fee_hundred_thousandths {
                    return Err(FileError::Totals {
                        line,
                        what: name.clone(),
                        file_figure: value.clone(),
                        computed: format_decimal(t.fee_hundred_thousandths, 5),
                    });
                }
                continue;
            }
            _ => continue,
        };
        let file = parse_decimal(value, 2)
            .ok_or_else(|| FileError::TotalsMalformed { line, reason: format!("{name} is not an amount: {value:?}") })?;
        if file != computed {
            return Err(FileError::Totals { line, what: name.clone(), file_figure: value.clone(), computed: format_decimal(computed, 2) });
        }
    }
    Ok(())
}

/// A signed decimal with at most `scale` decimals, in units of 10^-scale. No rounding.
pub(crate) fn parse_decimal(s: &str, scale: u32) -> Option<i64> {
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() || int.len() > 15 || frac.len() > scale as usize || (t.contains('.') && frac.is_empty()) {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = int.parse().ok()?;
    for _ in 0..scale {
        v = v.checked_mul(10)?;
    }
    let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    for _ in frac.len()..scale as usize {
        f *= 10;
    }
    let v = v.checked_add(f)?;
    Some(if negative { -v } else { v })
}

pub(crate) fn format_decimal(v: i64, scale: u32) -> String {
    let p = 10i64.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", v.unsigned_abs() / p as u64, v.unsigned_abs() % p as u64, width = scale as usize)
}

/// Yuan to fen, accepting correctly grouped thousands separators (`1,234.50`) and refusing a
/// third decimal, a misplaced separator or anything not a number.
fn parse_yuan_grouped(s: &str) -> Option<Amount> {
    let t = s.trim();
    if !t.contains(',') {
        return Amount::parse_yuan(t).ok();
    }
    let int = t.split_once('.').map_or(t, |(i, _)| i);
    let groups: Vec<&str> = int.split(',').collect();
    let ok = groups.first().is_some_and(|g| (1..=3).contains(&g.len())) && groups[1..].iter().all(|g| g.len() == 3);
    if !ok {
        return None;
    }
    Amount::parse_yuan(&t.replace(',', "")).ok()
}

struct RowReader<'a> {
    profile: &'a Profile,
    cols: &'a [Resolved],
    /// Position in `cols` of each field (`field as usize`); `NOT_IN_FILE` where absent.
    at: [u8; Field::COUNT],
    fields: Vec<Cow<'a, str>>,
    bytes: &'a [u8],
    errors: Vec<FieldError>,
}

const NOT_IN_FILE: u8 = u8::MAX;

/// Where each field is in `cols` (a profile has one column per field at most).
fn field_positions(cols: &[Resolved]) -> [u8; Field::COUNT] {
    let mut at = [NOT_IN_FILE; Field::COUNT];
    for (i, c) in cols.iter().enumerate().take(usize::from(NOT_IN_FILE)) {
        let slot = &mut at[c.field as usize];
        if *slot == NOT_IN_FILE {
            *slot = i as u8;
        }
    }
    at
}

/// `v.trim()`, without the Unicode whitespace search when both ends are plainly not space.
fn trim(v: &str) -> &str {
    match v.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => v,
        [only] if only.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

impl<'a> RowReader<'a> {
    fn col(&self, field: Field) -> Option<&'a Resolved> {
        let cols: &'a [Resolved] = self.cols;
        cols.get(usize::from(self.at[field as usize]))
    }

    fn error(&mut self, label: &str, value: &str, reason: impl Into<String>) {
        self.errors.push(FieldError { column: label.to_owned(), value: value.to_owned(), reason: reason.into() });
    }

    /// The field's value, trimmed, backtick stripped, mapped; `None` if the profile lacks it.
    /// Borrowed from the line (or the profile's map) wherever it can be: a million-row file
    /// reads some fifteen million fields.
    fn raw(&mut self, field: Field) -> Option<(&'a str, Cow<'a, str>)> {
        // The label is borrowed, not copied: it is needed only when the value is bad.
        let col = self.col(field)?;
        let value: Cow<'a, str> = match col.at {
            At::Index(i) => match self.fields.get(i) {
                Some(Cow::Borrowed(v)) => Cow::Borrowed(*v),
                Some(Cow::Owned(v)) => Cow::Owned(v.clone()),
                None => {
                    let n = self.fields.len();
                    self.error(&col.label, "", format!("missing: the row has only {n} fields"));
                    return None;
                }
            },
            At::Span { start, width } => {
                let bytes: &'a [u8] = self.bytes;
                let Some(slice) = bytes.get(start..start + width) else {
                    let n = self.bytes.len();
                    self.error(&col.label, "", format!("missing: the line has only {n} bytes"));
                    return None;
                };
                match decode(self.profile.encoding, slice) {
                    Some(s) => s,
                    None => {
                        let why = format!("not valid {} (a character is cut or the file is in another encoding)", self.profile.encoding.name());
                        self.error(&col.label, "", why);
                        return None;
                    }
                }
            }
        };
        let wechat = self.profile.dialect == Dialect::WechatTradebill;
        let v = narrow(value, |v| {
            let v = trim(v);
            if wechat {
                trim(v.strip_prefix('`').unwrap_or(v))
            } else {
                v
            }
        });
        if !col.spec.map.is_empty() {
            if let Some(mapped) = col.spec.map.get(v.as_ref()) {
                return Some((col.label.as_str(), Cow::Borrowed(mapped.as_str())));
            }
        }
        Some((col.label.as_str(), v))
    }

    /// A non-empty value, or `None` (absent or empty).
    fn text(&mut self, field: Field) -> Option<(&'a str, Cow<'a, str>)> {
        self.raw(field).filter(|(_, v)| !v.is_empty())
    }

    fn id<T, E: std::fmt::Display>(&mut self, field: Field, parse: impl Fn(&str) -> Result<T, E>) -> Option<T> {
        let (label, v) = self.text(field)?;
        match parse(&v) {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(label, &v, e.to_string());
                None
            }
        }
    }

    fn amount(&mut self, field: Field) -> Option<Amount> {
        let (label, v) = self.text(field)?;
        let parsed = match self.profile.amount_unit {
            AmountUnit::Yuan => parse_yuan_grouped(&v),
            AmountUnit::Fen => {
                if !v.is_empty() && v.len() <= 17 && v.bytes().all(|b| b.is_ascii_digit()) {
                    v.parse::<i64>().ok().and_then(|f| Amount::from_fen(f).ok())
                } else {
                    None
                }
            }
        };
        if parsed.is_none() {
            let why = match self.profile.amount_unit {
                AmountUnit::Yuan => "must be yuan with at most 2 decimals (e.g. 128.50); never rounded",
                AmountUnit::Fen => "must be a whole number of fen",
            };
            self.error(label, &v, why);
        }
        parsed
    }

    fn time(&mut self, field: Field) -> Option<NaiveDateTime> {
        let format = self.col(field)?.spec.format.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S");
        let (label, v) = self.text(field)?;
        if format == "%Y-%m-%d %H:%M:%S" {
            if let Some(t) = iso_time(&v) {
                return Some(t);
            }
        }
        match NaiveDateTime::parse_from_str(&v, format) {
            Ok(t) => Some(t),
            Err(_) => {
                self.error(label, &v, format!("must be a time like {format}"));
                None
            }
        }
    }

    fn date(&mut self, field: Field) -> Option<(&'a str, NaiveDate)> {
        let format = self.col(field)?.spec.format.as_deref().unwrap_or("%Y-%m-%d");
        let (label, v) = self.text(field)?;
        if format == "%Y-%m-%d" {
            if let Some(d) = iso_date(&v) {
                return Some((label, d));
            }
        }
        match NaiveDate::parse_from_str(&v, format) {
            Ok(d) => Some((label, d)),
            Err(_) => {
                self.error(label, &v, format!("must be a date like {format}"));
                None
            }
        }
    }
}

/// `v` cut down by `f` (a subslice of it), still borrowed where it was.
fn narrow<'x>(v: Cow<'x, str>, f: impl Fn(&str) -> &str) -> Cow<'x, str> {
    match v {
        Cow::Borrowed(s) => Cow::Borrowed(f(s)),
        Cow::Owned(s) => {
            let t = f(&s);
            if t.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(t.to_owned())
            }
        }
    }
}

/// `YYYY-MM-DD` exactly, the common case, without chrono's format interpreter (a million rows
/// spent more there than in SHA-256). `None` sends the value through chrono, which decides.
fn iso_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(number(&b[0..4])? as i32, number(&b[5..7])?, number(&b[8..10])?)
}

/// `YYYY-MM-DD HH:MM:SS` exactly; as [`iso_date`].
fn iso_time(v: &str) -> Option<NaiveDateTime> {
    let b = v.as_bytes();
    if b.len() != 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    iso_date(&v[..10])?.and_hms_opt(number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?)
}

fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
}

/// Shows no more of a card value than BIN and last four, whatever it was.
fn redact_card(v: &str) -> String {
    if v.len() >= 10 && v.is_ascii() {
        format!("{}…{}", &v[..6], &v[v.len() - 4..])
    } else {
        "(redacted)".to_owned()
    }
}

fn parse_row(
    profile: &Profile,
    options: &ParseOptions<'_>,
    cols: &[Resolved],
    line: u64,
    bytes: &[u8],
    totals: &mut WechatTotals,
) -> Result<ClearingRow, BadRow> {
    let Some(text) = decode(profile.encoding, bytes) else {
        return Err(BadRow {
            line,
            errors: vec![FieldError {
                column: "(whole line)".to_owned(),
                value: String::new(),
                reason: format!("not valid {}: the file is in another encoding or damaged", profile.encoding.name()),
            }],
        });
    };
    let fields = match profile.layout {
        Layout::Csv { delimiter } => split_csv(&text, delimiter),
        Layout::Fixed => Vec::new(),
    };
    let mut r = RowReader { profile, cols, at: field_positions(cols), fields, bytes, errors: Vec::new() };

    let merchant_id = r.id(Field::MerchantId, MerchantId::parse);
    let terminal_id = r.id(Field::TerminalId, TerminalId::parse);
    let batch_no = r.id(Field::BatchNo, BatchNo::parse);
    let stan = r.id(Field::Stan, Stan::parse);
    let rrn = r.id(Field::Rrn, Rrn::parse);
    let auth_code = r.id(Field::AuthCode, AuthCode::parse);
    let sub_merchant_id = r.text(Field::SubMerchantId).map(|(_, v)| v.into_owned());
    let channel = r.id(Field::Channel, Channel::parse).unwrap_or(profile.channel);
    let currency = r.id(Field::Currency, Currency::parse).unwrap_or(profile.currency);
    let mut external_ref = r.text(Field::ExternalRef).map(|(_, v)| v.into_owned());
    let mut original_external_ref = None;

    let (card, card_token) = match r.text(Field::Card) {
        None => (None, None),
        Some((label, v)) => {
            if let Ok((bin, last4)) = domain::masked_parts(&v) {
                (recon::MaskedCard::new(bin, last4), None)
            } else if let Ok(pan) = Pan::parse(&v) {
                let summary = pan.summary(options.card_key);
                (recon::MaskedCard::from_summary(&summary), Some(summary.token))
            } else {
                let shown = redact_card(&v);
                r.error(label, &shown, "must be a masked card number (622202******1234) or a card number");
                (None, None)
            }
        }
    };

    let local_time = r.time(Field::TxnTime);
    let txn_time = local_time.and_then(|t| profile.timezone.from_local_datetime(&t).earliest()).map(|t| t.with_timezone(&Utc));

    let mut kind = None;
    let mut amount = None;
    let mut fee = Some(Amount::ZERO);
    let mut settle_amount = None;
    let mut net_amount_fen = None;
    if profile.dialect == Dialect::WechatTradebill {
        let order = r.amount(Field::Amount);
        let settle = r.amount(Field::SettleAmount);
        let refund = r.amount(Field::RefundAmount);
        let requested = r.amount(Field::RequestedRefundAmount);
        totals.order_fen += order.map_or(0, Amount::fen);
        totals.settle_fen += settle.map_or(0, Amount::fen);
        totals.refund_fen += refund.map_or(0, Amount::fen);
        totals.requested_refund_fen += requested.map_or(0, Amount::fen);
        fee = match r.text(Field::Fee) {
            None => Some(Amount::ZERO),
            Some((label, v)) => match parse_decimal(&v, 5) {
                Some(units) => {
                    totals.fee_hundred_thousandths += units;
                    // WeChat settles fees in fen, rounding half up (CLEARING-FILES.md).
                    Amount::from_fen((units.abs() + 500) / 1000).ok()
                }
                None => {
                    r.error(label, &v, "must be yuan with at most 5 decimals");
                    None
                }
            },
        };
        match r.text(Field::TradeState) {
            Some((_, s)) if s == "SUCCESS" => {
                kind = Some(TxnKind::Purchase);
                amount = order;
                settle_amount = settle;
            }
            Some((_, s)) if s == "REVOKED" => {
                kind = Some(TxnKind::Void);
                amount = order;
                settle_amount = settle;
            }
            Some((label, s)) if s == "REFUND" => {
                kind = Some(TxnKind::Refund);
                amount = requested.or(refund);
                settle_amount = refund;
                original_external_ref = external_ref.take();
                external_ref = r.text(Field::RefundRef).map(|(_, v)| v.into_owned());
                if amount.is_none() {
                    r.error(label, &s, "a REFUND row needs 申请退款金额 or 退款金额");
                }
            }
            Some((label, s)) => r.error(label, &s, "交易状态 must be SUCCESS, REFUND or REVOKED"),
            None => r.error("交易状态", "", "missing"),
        }
    } else {
        let label_of = |field: Field| cols.iter().find(|c| c.field == field).map_or(field.name().to_owned(), |c| c.label.clone());
        let before = r.errors.len();
        kind = r.id(Field::Kind, TxnKind::parse);
        match kind {
            Some(k) if !k.settles() => r.error(
                &label_of(Field::Kind),
                k.as_str(),
                "a clearing row must be purchase, void, refund, preauth_completion or preauth_completion_void",
            ),
            None if r.errors.len() == before => r.error(&label_of(Field::Kind), "", "missing"),
            _ => {}
        }
        let before = r.errors.len();
        amount = r.amount(Field::Amount);
        if amount.is_none() && r.errors.len() == before {
            r.error(&label_of(Field::Amount), "", "missing");
        }
        if r.col(Field::Fee).is_some() {
            fee = r.amount(Field::Fee).or(Some(Amount::ZERO));
        }
        if let Some((label, v)) = r.text(Field::NetAmount) {
            match parse_decimal(&v.replace(',', ""), 2) {
                None => r.error(label, &v, "must be signed yuan with at most 2 decimals"),
                Some(net) => {
                    net_amount_fen = Some(net);
                    if let (Some(k), Some(a), Some(f)) = (kind, amount, fee) {
                        let gross = a.fen() - f.fen();
                        let expected = if matches!(k, TxnKind::Void | TxnKind::Refund | TxnKind::PreauthCompletionVoid) { -gross } else { gross };
                        if net != expected {
                            r.error(label, &v, format!("must be {} (amount - fee, signed by kind)", format_decimal(expected, 2)));
                        }
                    }
                }
            }
        }
    }

    let settlement_date = match r.date(Field::SettlementDate) {
        Some((label, d)) => {
            let d = SettlementDate::new(d);
            if let Some(given) = options.settlement_date {
                if given != d {
                    r.error(label, &d.to_string(), format!("disagrees with --date {given}"));
                }
            }
            Some(d)
        }
        None if r.col(Field::SettlementDate).is_some() && !r.errors.is_empty() => None,
        None => match (options.settlement_date, profile.dialect, local_time) {
            (Some(d), _, _) => Some(d),
            // The WeChat Pay bill covers the natural day: its date is the order's local date.
            (None, Dialect::WechatTradebill, Some(t)) => Some(SettlementDate::new(t.date())),
            _ => {
                r.error("settlement_date", "", "the file has no settlement date: give --date");
                None
            }
        },
    };

    match (r.errors.is_empty(), settlement_date, kind, amount, fee) {
        (true, Some(settlement_date), Some(kind), Some(amount), Some(fee)) => Ok(ClearingRow {
            line,
            settlement_date,
            merchant_id,
            sub_merchant_id,
            terminal_id,
            batch_no,
            stan,
            rrn,
            auth_code,
            kind,
            channel,
            card,
            card_token,
            amount,
            fee,
            net_amount_fen,
            settle_amount,
            currency,
            local_time,
            txn_time,
            external_ref,
            original_external_ref,
        }),
        _ => {
            if r.errors.is_empty() {
                r.error("(row)", "", "incomplete row");
            }
            Err(BadRow { line, errors: r.errors })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The unquoted fast path splits as a plain split on the delimiter; the quoting path
        /// gives back each field as written, delimiters inside quotes included.
        #[test]
        fn split_csv_agrees_with_a_plain_split(fields in proptest::collection::vec("[a-z0-9 \u{3000}\u{4e2d}.;-]{0,6}", 1..20), delim in prop::sample::select(vec![b',', b';', b'|'])) {
            let line = fields.join(&(delim as char).to_string());
            let plain: Vec<&str> = line.split(delim as char).collect();
            let got = split_csv(&line, delim);
            prop_assert_eq!(got.iter().map(|c| c.as_ref()).collect::<Vec<_>>(), plain);
            let quoted = fields.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(&(delim as char).to_string());
            let got = split_csv(&quoted, delim);
            prop_assert_eq!(got.iter().map(|c| c.as_ref()).collect::<Vec<_>>(), fields.iter().map(String::as_str).collect::<Vec<_>>());
        }

        /// `trim` is `str::trim`, Unicode spaces (U+3000, a full-width space) included.
        #[test]
        fn trim_is_str_trim(v in "[ \t\u{3000}\u{a0}]{0,2}[a-z\u{4e2d} ]{0,4}[ \t\u{3000}\u{2003}]{0,2}") {
            prop_assert_eq!(trim(&v), v.trim());
        }
    }

    /// A canonical file of `n` rows: bad amounts every 613th row, quoted order numbers with
    /// commas and quotes every 7th, a blank line in the middle.
    fn canonical_file(n: usize) -> Vec<u8> {
        let mut f = String::from(
            "settlement_date,merchant_id,terminal_id,batch_no,stan,rrn,auth_code,kind,card,amount,fee,net_amount,txn_time,currency,channel,external_ref\n",
        );
        for i in 1..=n {
            let amount = if i % 613 == 0 { "12.345".to_owned() } else { format!("{}.{:02}", 10 + i % 90, i % 100) };
            let external_ref = if i % 7 == 0 { format!("\"WX,{i}\"\"q\"\"\"") } else { String::new() };
            f.push_str(&format!(
                "2026-11-25,898310048990{:03},{:08},000001,{:06},{:012},123456,purchase,622202******{:04},{amount},0.06,,2026-11-25 10:{:02}:00,CNY,card,{external_ref}\n",
                i % 40,
                10_000_000 + i % 300,
                i % 999_999,
                330_000_000_000u64 + i as u64,
                i % 10_000,
                i % 60,
            ));
            if i == n / 2 {
                f.push_str("  \n");
            }
        }
        f.into_bytes()
    }

    /// Rows parsed on a pool of threads come out exactly as on one thread, bad rows included,
    /// in file order, across many blocks.
    #[test]
    fn parallel_parsing_hands_over_the_same_rows_in_file_order() {
        let file = canonical_file(3 * BLOCK_LINES + 777);
        let profile = Profile::builtin("canonical").unwrap();
        let key = CardKey::from_bytes(&[9u8; 32]).unwrap();
        let options = ParseOptions { settlement_date: None, card_key: &key };
        let mut one = crate::CollectedRows::default();
        let summary_one = parse_lines(&file[..], &profile, &options, &mut one, &mut Rows::Inline).unwrap();
        for threads in [2, 3] {
            let mut many = crate::CollectedRows::default();
            let summary = std::thread::scope(|scope| {
                let mut rows = Rows::Parallel { scope, threads, pool: None };
                parse_lines(&file[..], &profile, &options, &mut many, &mut rows)
            })
            .unwrap();
            assert_eq!(many.rows, one.rows, "{threads} threads");
            assert_eq!(many.bad_rows, one.bad_rows);
            assert_eq!(
                (summary.rows, summary.bad_rows, summary.lines, summary.sha256, &summary.rows_by_settlement_date),
                (summary_one.rows, summary_one.bad_rows, summary_one.lines, summary_one.sha256, &summary_one.rows_by_settlement_date)
            );
        }
        assert_eq!(one.rows.len() + one.bad_rows.len(), 3 * BLOCK_LINES + 777);
        assert_eq!(one.bad_rows.iter().map(|b| b.line).collect::<Vec<_>>(), (1..=3 * BLOCK_LINES + 777).filter(|i| i % 613 == 0).map(|i| i as u64 + 1 + u64::from(i > (3 * BLOCK_LINES + 777) / 2)).collect::<Vec<_>>());
        assert_eq!(one.rows.iter().filter(|r| r.external_ref.as_deref().is_some_and(|e| e.contains(",") && e.contains('"'))).count(), (3 * BLOCK_LINES + 777) / 7 - (3 * BLOCK_LINES + 777) / (7 * 613));
    }

    /// The fast path accepts only what chrono accepts, with the same value; the rest goes to
    /// chrono (`None`).
    #[test]
    fn iso_dates_and_times_agree_with_chrono() {
        for v in ["2026-11-25 23:59:59", "2026-11-25 00:00:00", "2024-02-29 12:30:05", "2026-02-29 12:30:05",
            "2026-11-25 24:00:00", "2026-11-25 23:59:60", "2026-13-01 00:00:00", "2026-1-25 10:00:00", "2026-11-25T10:00:00",
            "+026-11-25 10:00:00", "2026-11-25 10:00:0x", "2026-11-25 10:00:00 "] {
            let chrono = NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").ok();
            if let Some(t) = iso_time(v) {
                assert_eq!(Some(t), chrono, "{v}");
            }
        }
        assert!(iso_time("2026-11-25 23:59:59").is_some());
        for v in ["2026-11-25", "2024-02-29", "2026-02-29", "2026-00-10", "2026-11-5", "20261125", "2026/11/25", "2026-11-2x"] {
            let chrono = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
            if let Some(d) = iso_date(v) {
                assert_eq!(Some(d), chrono, "{v}");
            }
            assert_eq!(iso_date(v).is_some(), chrono.is_some() && v.len() == 10, "{v}");
        }
    }
}

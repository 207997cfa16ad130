//! Clearing-file import and reconciliation: the shared procedures the CLI and the HTTP edge both
//! run (so `poslens import clearing` and `POST /clearing/files` obey the same rules), and the
//! HTTP handlers for `clearing/files` and `reconciliation/runs`.
//!
//! Who may do what: bank operators import files and start runs; auditors read everything;
//! merchant users read the items of their own merchant (staff: their terminals), without the
//! bank-internal fields (clearing file, line, fee); everyone else is refused. A run or item
//! id outside the caller's reach answers 404, like a missing one.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use clearing::{BadRow, FileError, FileSummary, ParseOptions, Profile, RowSink};
use domain::{CardKey, Channel, MerchantId, Role, SettlementDate};
use serde_json::{json, Map, Value};
use store::{
    AuditRepo, ClearingFileInfo, ItemPart, ClearingImport, ClearingImportError, ClearingRepo, NewAuditEvent, NewClearingFile,
    NewClearingRow, NewReconRun, ReconItemQuery, ReconItemRef, ReconItemRow, ReconRepo, ReconRun, Scope, SqliteStore, StoreError,
};

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::json_body;
use crate::AppState;

/// Upload bodies larger than this are refused (a 1M-row canonical file is about 150 MiB; larger
/// files go through `poslens import clearing`, which streams).
pub const CLEARING_UPLOAD_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Bad rows kept for the error listing and the rejects file; more are counted, not listed.
pub const BAD_ROWS_LISTED_MAX: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Shared procedures
// ---------------------------------------------------------------------------------------------

/// What an import is asked to do besides the bytes.
pub struct ClearingImportRequest<'a> {
    pub name: String,
    pub profile: &'a Profile,
    pub settlement_date: Option<SettlementDate>,
    pub allow_partial: bool,
    pub replace: bool,
    pub actor: String,
}

#[derive(Debug)]
pub struct ClearingImportOutcome {
    pub file: ClearingFileInfo,
    pub summary: FileSummary,
    /// Rows left out (`allow_partial`), at most [`BAD_ROWS_LISTED_MAX`].
    pub rejects: Vec<BadRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClearingImportRefusal {
    #[error(transparent)]
    Duplicate(ClearingImportError),
    #[error("{total} bad rows; nothing was imported")]
    BadRows { rows: Vec<BadRow>, total: u64 },
    #[error("the file was refused: {0}")]
    File(FileError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<ClearingImportError> for ClearingImportRefusal {
    fn from(e: ClearingImportError) -> Self {
        match e {
            ClearingImportError::Store(s) => ClearingImportRefusal::Store(s),
            other => ClearingImportRefusal::Duplicate(other),
        }
    }
}

/// Rows held while the file's digest is still being computed, at most: then the parse waits
/// for the digest (which reads the file at several times the parse's pace).
const ROWS_HELD_MAX: usize = 65_536;

/// The SHA-256 (hex) of the bytes being imported, or where it will come from.
pub enum FileDigest<'d> {
    Known(&'d str),
    /// Being computed beside the parse (a second read of the file); an I/O error refuses it.
    Pending(std::sync::mpsc::Receiver<std::io::Result<String>>),
}

/// Where the rows go: to the store's import once it has begun, held until then.
struct StoreSink<'a> {
    store: &'a SqliteStore,
    req: &'a ClearingImportRequest<'a>,
    digest: Option<std::sync::mpsc::Receiver<std::io::Result<String>>>,
    sha256_hex: Option<String>,
    held: Vec<clearing::ClearingRow>,
    import: Option<ClearingImport>,
    failed: Option<ClearingImportRefusal>,
    bad: Vec<BadRow>,
    progress: &'a mut dyn FnMut(u64),
}

impl StoreSink<'_> {
    /// Begins the store's import once the digest is known (waiting for it if `wait`), then hands
    /// it the rows held so far. A file imported before is refused here, before the parse ends.
    fn begin(&mut self, wait: bool) {
        if self.import.is_some() || self.failed.is_some() {
            return;
        }
        if let Some(rx) = &self.digest {
            // `None`: the digest thread ended without an answer.
            let got = if wait {
                rx.recv().ok()
            } else {
                match rx.try_recv() {
                    Err(std::sync::mpsc::TryRecvError::Empty) => return,
                    got => got.ok(),
                }
            };
            self.digest = None;
            match got.unwrap_or_else(|| Err(std::io::Error::other("the digest of the file was not computed"))) {
                Ok(sha) => self.sha256_hex = Some(sha),
                Err(e) => {
                    self.failed = Some(ClearingImportRefusal::File(FileError::Io(e)));
                    self.held = Vec::new();
                    return;
                }
            }
        }
        let Some(sha) = self.sha256_hex.clone() else { return };
        let req = self.req;
        match self.store.begin_clearing_import(NewClearingFile {
            sha256_hex: sha,
            name: req.name.clone(),
            profile: req.profile.name.clone(),
            actor: req.actor.clone(),
            replace: req.replace,
        }) {
            Ok(import) => self.import = Some(import),
            Err(e) => {
                self.failed = Some(e.into());
                self.held = Vec::new();
                return;
            }
        }
        for row in std::mem::take(&mut self.held) {
            self.store_row(row);
        }
    }

    fn store_row(&mut self, mut row: clearing::ClearingRow) {
        let Some(import) = self.import.as_mut() else { return };
        let card_token = row.card_token.take().filter(|t| !t.is_empty());
        let sub_merchant_id = row.sub_merchant_id.take();
        let record = row.into_recon(recon::ClearingFileId(0));
        if let Err(e) = import.push(NewClearingRow { record, card_token, sub_merchant_id }) {
            self.failed = Some(e.into());
            self.import = None;
        }
    }
}

impl RowSink for StoreSink<'_> {
    fn row(&mut self, row: clearing::ClearingRow) {
        if self.failed.is_some() {
            return;
        }
        if self.import.is_none() {
            self.held.push(row);
            self.begin(self.held.len() >= ROWS_HELD_MAX);
            return;
        }
        self.store_row(row);
    }

    fn bad_row(&mut self, bad: BadRow) {
        if self.bad.len() < BAD_ROWS_LISTED_MAX {
            self.bad.push(bad);
        }
    }

    fn progress(&mut self, bytes_read: u64) {
        (self.progress)(bytes_read);
        self.begin(false);
    }

    fn keep_going(&self) -> bool {
        self.failed.is_none()
    }
}

/// Imports one clearing file: refuses bytes imported before (unless `replace`), parses as it
/// stores, and keeps nothing when any row is bad (unless `allow_partial`) or the file is refused.
/// `digest` is the SHA-256 of the bytes `reader` yields; while a pending one is computed the
/// parse goes on with the first rows held, and a file imported before is refused as soon as the
/// digest is known. The parse's own digest must equal it: a file that changed in between is
/// refused.
pub fn import_clearing(
    store: &SqliteStore,
    card_key: &CardKey,
    digest: FileDigest<'_>,
    reader: impl Read,
    req: &ClearingImportRequest<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<ClearingImportOutcome, ClearingImportRefusal> {
    let (sha256_hex, digest) = match digest {
        FileDigest::Known(sha) => (Some(sha.to_owned()), None),
        FileDigest::Pending(rx) => (None, Some(rx)),
    };
    let mut sink =
        StoreSink { store, req, digest, sha256_hex, held: Vec::new(), import: None, failed: None, bad: Vec::new(), progress };
    // A known digest refuses a file imported before ahead of any parsing.
    if sink.digest.is_none() {
        sink.begin(true);
        if let Some(e) = sink.failed.take() {
            return Err(e);
        }
    }
    let options = ParseOptions { settlement_date: req.settlement_date, card_key };
    let parsed = clearing::parse(reader, req.profile, &options, &mut sink);
    // A file with fewer rows than are held, or none, begins its import now; so does one the
    // parse refused before the digest came, so that bytes imported before are named as such
    // whatever else is wrong with them (the import is then aborted).
    sink.begin(true);
    let StoreSink { import, failed, bad, sha256_hex, .. } = sink;
    if let Some(e) = failed {
        if let Some(import) = import {
            import.abort();
        }
        return Err(e);
    }
    let summary = match parsed {
        Ok(s) => s,
        Err(e) => {
            if let Some(import) = import {
                import.abort();
            }
            return Err(ClearingImportRefusal::File(e));
        }
    };
    let Some(import) = import else { return Err(ClearingImportRefusal::Store(StoreError::WriterGone)) };
    if sha256_hex.as_deref() != Some(summary.sha256_hex().as_str()) {
        import.abort();
        return Err(ClearingImportRefusal::Store(StoreError::Invalid {
            what: "clearing file",
            reason: "the file changed while it was being imported".into(),
        }));
    }
    if summary.bad_rows > 0 && !req.allow_partial {
        import.abort();
        return Err(ClearingImportRefusal::BadRows { rows: bad, total: summary.bad_rows });
    }
    let file = import.commit(summary.bad_rows)?;
    let _ = store.append_audit(&NewAuditEvent {
        actor: req.actor.clone(),
        action: "clearing.import".into(),
        target: Some(format!("clearing_file:{}", file.id)),
        detail: Some(format!(
            "name={} sha256={} rows={} bad_rows={} replace={}",
            file.name, file.sha256_hex, file.rows, file.bad_rows, req.replace
        )),
        ip: None,
        at: Utc::now(),
    });
    Ok(ClearingImportOutcome { file, summary, rejects: bad })
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct ReconcileOutcome {
    /// `None` for a dry run.
    pub run_id: Option<i64>,
    pub settlement_date: SettlementDate,
    pub summary: recon::Summary,
    pub pending_channels: Vec<Channel>,
    pub platform_records: u64,
    pub clearing_rows: u64,
}

impl ReconcileOutcome {
    /// `{run_id, settlement_date, counts, amounts, pending_channels}` (PRODUCT.md, `--json`).
    pub fn to_json(&self) -> Value {
        let mut counts = Map::new();
        let mut amounts = Map::new();
        for o in recon::Outcome::ALL {
            counts.insert(o.as_str().into(), json!(self.summary.count(o)));
            amounts.insert(o.as_str().into(), json!(self.summary.amount_fen(o)));
        }
        json!({
            "run_id": self.run_id,
            "settlement_date": self.settlement_date.to_string(),
            "counts": counts,
            "amounts": amounts,
            "pending_channels": self.pending_channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        })
    }
}

/// Where `--items` go: the items as CSV lines ([`push_item_csv_line`], bank fields included),
/// in the engine's order, a block of whole lines at a time.
pub type ItemSink<'s> = &'s mut dyn FnMut(&[u8]) -> std::io::Result<()>;

/// Items per block of CSV lines formatted by one thread.
const CSV_BLOCK_ITEMS: usize = 8192;

/// Threads that format items as CSV at most.
const CSV_THREADS_MAX: usize = 4;

/// Formats `items` as CSV lines in blocks on a few threads and hands the blocks to `out` in
/// order (each thread formats every n-th block; its results come back in turn).
fn write_items_csv(
    items: &[recon::Item<'_>],
    input: &store::ReconInputData,
    out: ItemSink<'_>,
) -> std::io::Result<()> {
    let format = |block: &[recon::Item<'_>], text: &mut String| {
        text.clear();
        let mut id_buf = store::TxnIdBuf::default();
        for i in block {
            let id = i.platform.and_then(|p| input.txn_id_of(p, &mut id_buf));
            push_item_csv_line(text, &ReconItemRef::shown(i, input, id), true);
        }
    };
    let blocks: Vec<&[recon::Item<'_>]> = items.chunks(CSV_BLOCK_ITEMS).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, CSV_THREADS_MAX).min(blocks.len());
    if threads <= 1 {
        let mut text = String::new();
        for block in blocks {
            format(block, &mut text);
            out(text.as_bytes())?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (blocks, format) = (&blocks, &format);
        let mut results = Vec::new();
        for t in 0..threads {
            // Two blocks ahead per thread at most: memory stays bounded.
            let (tx, rx) = std::sync::mpsc::sync_channel::<String>(2);
            scope.spawn(move || {
                for block in blocks.iter().skip(t).step_by(threads) {
                    let mut text = String::with_capacity(block.len() * 160);
                    format(block, &mut text);
                    if tx.send(text).is_err() {
                        break;
                    }
                }
            });
            results.push(rx);
        }
        for b in 0..blocks.len() {
            let text = results[b % threads]
                .recv()
                .map_err(|_| std::io::Error::other("a thread formatting items stopped"))?;
            // On an error the receivers drop here and the formatting threads stop.
            out(text.as_bytes())?;
        }
        Ok(())
    })
}

/// Items of a recorded run from which encoding them is shared between two threads.
const SAVE_SPLIT_MIN: usize = 65_536;

/// Runs reconciliation for `date` (optionally one merchant) on what the store holds, records the
/// run unless `dry_run`, and hands every item to `on_item` as CSV (for `--items`), in the
/// engine's order.
pub fn run_reconciliation(
    store: &SqliteStore,
    date: SettlementDate,
    merchant: Option<&MerchantId>,
    actor: &str,
    dry_run: bool,
    on_item: Option<ItemSink<'_>>,
) -> Result<ReconcileOutcome, anyhow_free::Error> {
    let started_at = Utc::now();
    let timing = Timing::from_env();
    let input = store.load_recon_input(date, merchant)?;
    timing.lap("load");
    let report = recon::reconcile(&recon::Input {
        settlement_date: date,
        platform: &input.platform,
        clearing: &input.clearing,
        channels_with_clearing: &input.channels_with_clearing,
        config: recon::ReconConfig::default(),
    })
    .map_err(|e| anyhow_free::Error::Recon(e.to_string()))?;
    timing.lap("engine");
    let outcome = ReconcileOutcome {
        run_id: None,
        settlement_date: date,
        summary: report.summary,
        pending_channels: report.pending_channels.clone(),
        platform_records: input.platform.len() as u64,
        clearing_rows: input.clearing.len() as u64,
    };
    let run = NewReconRun {
        settlement_date: date,
        merchant_id: merchant.cloned(),
        actor: actor.to_owned(),
        started_at,
        summary: report.summary,
        pending_channels: report.pending_channels.clone(),
        platform_records: outcome.platform_records,
        clearing_rows: outcome.clearing_rows,
    };
    // Recording the run (encoding every item) and writing the items for the caller read the
    // same report: one on a second thread, one on this one.
    let (run_id, io_error) = std::thread::scope(|s| {
        // Two parts, encoded on two threads, unless the CSV formatting has the cores.
        let shares = if on_item.is_none() && report.items.len() >= SAVE_SPLIT_MIN { 2 } else { 1 };
        let (items, input, run) = (&report.items, &input, &run);
        let saving = (!dry_run).then(|| {
            s.spawn(move || {
                let size = items.len().div_ceil(shares).max(1);
                let mut parts: Vec<_> = items.chunks(size).map(|c| c.iter().map(|i| ReconItemRef::recorded(i, input))).collect();
                let mut parts: Vec<&mut ItemPart<'_, '_>> = parts.iter_mut().map(|p| p as &mut ItemPart<'_, '_>).collect();
                store.save_recon_run(run, &mut parts)
            })
        });
        let io_error = on_item.and_then(|out| write_items_csv(items, input, out).err());
        let run_id = match saving {
            Some(h) => Some(h.join().map_err(|_| StoreError::Invalid { what: "reconciliation run", reason: "recording the run failed".into() })??),
            None => None,
        };
        Ok::<_, anyhow_free::Error>((run_id, io_error))
    })?;
    timing.lap(if dry_run { "items" } else { "items+save" });
    drop(report);
    // A million records take a tenth of a second to free: off the caller's path (a process
    // about to exit does not wait for it).
    std::thread::spawn(move || drop(input));
    timing.lap("free");
    if let Some(e) = io_error {
        return Err(anyhow_free::Error::Io(e));
    }
    let _ = store.append_audit(&NewAuditEvent {
        actor: actor.to_owned(),
        action: if dry_run { "reconcile.dry_run".into() } else { "reconcile.run".into() },
        target: run_id.map(|id| format!("recon_run:{id}")),
        detail: Some(format!("settlement_date={date} merchant={}", merchant.map(|m| m.to_string()).unwrap_or_default())),
        ip: None,
        at: Utc::now(),
    });
    Ok(ReconcileOutcome { run_id, ..outcome })
}

/// Phase times on stderr when `POSLENS_RECON_TIMING` is set (for `scripts/recon/bench_e2e.sh`).
struct Timing(Option<std::cell::Cell<std::time::Instant>>);

impl Timing {
    fn from_env() -> Timing {
        Timing(std::env::var_os("POSLENS_RECON_TIMING").map(|_| std::cell::Cell::new(std::time::Instant::now())))
    }

    fn lap(&self, what: &str) {
        if let Some(t) = &self.0 {
            let now = std::time::Instant::now();
            eprintln!("reconcile: {what} {:.3} s", (now - t.get()).as_secs_f64());
            t.set(now);
        }
    }
}

/// Errors of [`run_reconciliation`] (the library has no `anyhow`).
pub mod anyhow_free {
    #[derive(Debug, thiserror::Error)]
    pub enum Error {
        #[error(transparent)]
        Store(#[from] store::StoreError),
        #[error("reconciliation refused: {0}")]
        Recon(String),
        #[error("writing items: {0}")]
        Io(std::io::Error),
    }
}

/// The `--items` / export CSV header (PRODUCT.md).
pub const ITEMS_CSV_HEADER: &str = "outcome,match_pass,merchant_id,terminal_id,batch_no,stan,rrn,external_ref,platform_amount,clearing_amount,platform_id,clearing_file,clearing_line";

/// One CSV line (with `\n`) of an item; `bank_fields` false blanks the clearing file and line.
pub fn item_csv_line(i: &ReconItemRef<'_>, bank_fields: bool) -> String {
    let mut line = String::with_capacity(160);
    push_item_csv_line(&mut line, i, bank_fields);
    line
}

/// Appends [`item_csv_line`] to `out` without allocating per field (a run writes a million).
pub fn push_item_csv_line(out: &mut String, i: &ReconItemRef<'_>, bank_fields: bool) {
    // Quoted when it holds a separator, a quote or a line break, or could start a formula.
    fn field(out: &mut String, f: &str) {
        if f.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) || f.starts_with(['=', '+', '-', '@']) {
            out.push('"');
            for ch in f.chars() {
                if ch == '"' {
                    out.push('"');
                }
                out.push(ch);
            }
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    fn opt(out: &mut String, f: Option<&str>) {
        out.push(',');
        if let Some(f) = f {
            field(out, f);
        }
    }
    // Digits by hand: `write!` costs more than the rest of the line.
    fn digits(out: &mut String, mut n: u64, width_min: usize) {
        let mut buf = [b'0'; 20];
        let mut at = buf.len();
        while n > 0 || buf.len() - at < width_min.max(1) {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
    }
    fn six(out: &mut String, n: Option<u32>) {
        out.push(',');
        if let Some(n) = n {
            digits(out, u64::from(n), 6);
        }
    }
    fn yuan(out: &mut String, fen: Option<i64>) {
        out.push(',');
        if let Some(fen) = fen {
            // A negative amount starts with `-`: quoted, like any field that could be a formula.
            if fen < 0 {
                out.push_str("\"-");
            }
            digits(out, fen.unsigned_abs() / 100, 1);
            out.push('.');
            digits(out, fen.unsigned_abs() % 100, 2);
            if fen < 0 {
                out.push('"');
            }
        }
    }
    out.push_str(i.outcome.as_str());
    opt(out, i.match_pass.map(|p| p.as_str()));
    opt(out, i.merchant_id);
    opt(out, i.terminal_id);
    six(out, i.batch_no);
    six(out, i.stan);
    opt(out, i.rrn);
    opt(out, i.external_ref);
    yuan(out, i.platform_amount_fen);
    yuan(out, i.clearing_amount_fen);
    opt(out, i.platform_id);
    opt(out, if bank_fields { i.clearing_file_name } else { None });
    out.push(',');
    if bank_fields {
        if let Some(l) = i.clearing_line {
            digits(out, l, 1);
        }
    }
    out.push('\n');
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn require_operator(caller: &Caller) -> ApiResult<()> {
    if caller.is_user_with(&[Role::BankOperator]) {
        Ok(())
    } else {
        Err(ApiError::forbidden("only bank operators import clearing files and run reconciliation"))
    }
}

/// Who reads runs: bank operators and auditors (everything), merchant users (their items).
fn require_run_reader(caller: &Caller) -> ApiResult<bool> {
    if caller.is_user_with(&[Role::BankOperator, Role::Auditor]) {
        Ok(true)
    } else if caller.is_user_with(&[Role::MerchantAdmin, Role::MerchantStaff]) {
        Ok(false)
    } else {
        Err(ApiError::forbidden("this role cannot read reconciliation results"))
    }
}

fn parse_date(param: &str, s: &str) -> ApiResult<SettlementDate> {
    SettlementDate::parse(s).map_err(|_| ApiError::bad_param(param, format!("{param} must be YYYY-MM-DD, got {s:?}")))
}

fn file_json(f: &ClearingFileInfo) -> Value {
    json!({
        "id": f.id, "name": f.name, "sha256": f.sha256_hex, "profile": f.profile, "imported_by": f.actor,
        "imported_at": f.imported_at.to_rfc3339(), "rows": f.rows, "bad_rows": f.bad_rows,
        "superseded_by": f.superseded_by, "supersedes": f.supersedes,
    })
}

fn bad_rows_json(rows: &[BadRow]) -> Value {
    Value::Array(
        rows.iter()
            .flat_map(|b| {
                b.errors.iter().map(move |e| json!({"line": b.line, "column": e.column, "value": e.value, "reason": e.reason}))
            })
            .collect(),
    )
}

/// `POST /clearing/files?profile=&date=&allow_partial=&replace=&name=`: the file as the raw
/// body (any content type) or as the `file` part of `multipart/form-data`.
pub async fn upload(State(state): State<AppState>, caller: Caller, headers: HeaderMap, uri: Uri, body: Bytes) -> ApiResult<Response> {
    require_operator(&caller)?;
    let p = Params::parse(uri.query(), &["profile", "date", "allow_partial", "replace", "name"])?;
    let profile_name = p.one("profile")?.unwrap_or("canonical").to_owned();
    let profile = Profile::builtin(&profile_name).map_err(|e| ApiError::bad_param("profile", e.to_string()))?;
    let date = p.one("date")?.map(|d| parse_date("date", d)).transpose()?;
    let flag = |name: &str| -> ApiResult<bool> {
        match p.one(name)? {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(o) => Err(ApiError::bad_param(name, format!("{name} must be true or false, got {o:?}"))),
        }
    };
    let (allow_partial, replace) = (flag("allow_partial")?, flag("replace")?);
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (bytes, part_name) = if ct.starts_with("multipart/form-data") {
        multipart_file(&ct, &body)?
    } else {
        (body.clone(), None)
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_param("body", "the body is empty: send the clearing file"));
    }
    let name = p.one("name")?.map(str::to_owned).or(part_name).unwrap_or_else(|| "upload.csv".into());
    let actor = caller.actor();
    let card_key = state.card_key.clone();
    let result = state
        .blocking(move |store| {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            let req = ClearingImportRequest { name, profile: &profile, settlement_date: date, allow_partial, replace, actor };
            Ok(import_clearing(&store, &card_key, FileDigest::Known(&sha), &bytes[..], &req, &mut |_| {}))
        })
        .await?;
    match result {
        Ok(o) => {
            let body = json!({
                "file": file_json(&o.file),
                "rows_by_settlement_date": o.summary.rows_by_settlement_date.iter().map(|(d, n)| (d.to_string(), json!(n))).collect::<Map<_, _>>(),
                "totals_checked": o.summary.totals_checked,
                "rejected": bad_rows_json(&o.rejects),
            });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(ClearingImportRefusal::Duplicate(e)) => Err(ApiError::conflict(e.to_string())),
        Err(ClearingImportRefusal::BadRows { rows, total }) => Err(ApiError::unprocessable(
            format!("{total} bad rows; nothing was imported (allow_partial=true imports the good rows)"),
            bad_rows_json(&rows),
        )),
        Err(ClearingImportRefusal::File(e)) => Err(ApiError::unprocessable(e.to_string(), json!([]))),
        Err(ClearingImportRefusal::Store(e)) => Err(ApiError::internal(e)),
    }
}

/// The `file` part (or the first part) of a multipart body, and its file name.
fn multipart_file(content_type: &str, body: &Bytes) -> ApiResult<(Bytes, Option<String>)> {
    let bad = |why: &str| ApiError::bad_param("body", format!("multipart body: {why}"));
    let boundary = content_type
        .split(';')
        .filter_map(|kv| kv.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_owned())
        .ok_or_else(|| bad("no boundary"))?;
    let delim = format!("--{boundary}");
    let data = &body[..];
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let mut pos = find(data, delim.as_bytes(), 0).ok_or_else(|| bad("boundary not found"))?;
    let mut first: Option<(Bytes, Option<String>)> = None;
    loop {
        let start = pos + delim.len();
        if data.get(start..start + 2) == Some(b"--") {
            break;
        }
        let headers_end = find(data, b"\r\n\r\n", start).ok_or_else(|| bad("part without headers"))?;
        let head = String::from_utf8_lossy(&data[start..headers_end]).to_string();
        let next = find(data, format!("\r\n{delim}").as_bytes(), headers_end + 4).ok_or_else(|| bad("unterminated part"))?;
        let content = body.slice(headers_end + 4..next);
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition")).unwrap_or("");
        let field = |key: &str| {
            disposition.split(';').filter_map(|kv| kv.trim().strip_prefix(&format!("{key}="))).next().map(|v| v.trim_matches('"').to_owned())
        };
        let part = (content, field("filename"));
        if field("name").as_deref() == Some("file") {
            return Ok(part);
        }
        first.get_or_insert(part);
        pos = next + 2;
    }
    first.ok_or_else(|| bad("no file part"))
}

/// `GET /clearing/files?from=&to=`: imports (newest first) and, per date and channel, the live
/// files covering it.
pub async fn list_files(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    if !caller.is_user_with(&[Role::BankOperator, Role::Auditor]) {
        return Err(ApiError::forbidden("only bank operators and auditors see clearing files"));
    }
    let p = Params::parse(uri.query(), &["from", "to", "limit"])?;
    let today = SettlementDate::new(Utc::now().date_naive());
    let to = p.one("to")?.map(|d| parse_date("to", d)).transpose()?.unwrap_or(today);
    let from = p.one("from")?.map(|d| parse_date("from", d)).transpose()?.unwrap_or_else(|| {
        SettlementDate::new(to.date() - chrono::Duration::days(30))
    });
    let limit = p.parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1..500".to_owned()))?.unwrap_or(50);
    let (files, status) = state
        .blocking(move |store| Ok((store.list_clearing_files(limit)?, store.clearing_status(from, to)?)))
        .await?;
    Ok(Json(json!({
        "data": files.iter().map(file_json).collect::<Vec<_>>(),
        "status": status.iter().map(|s| json!({
            "settlement_date": s.settlement_date.to_string(), "channel": s.channel.as_str(), "file_id": s.file_id,
            "file_name": s.file_name, "rows": s.rows, "imported_at": s.imported_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "range": {"from": from.to_string(), "to": to.to_string()},
    })))
}

fn run_json(run: &ReconRun, totals: &[(recon::Outcome, u64, i64)], full: bool) -> Value {
    let mut counts = Map::new();
    let mut amounts = Map::new();
    for (o, n, a) in totals {
        counts.insert(o.as_str().into(), json!(n));
        amounts.insert(o.as_str().into(), json!(a));
    }
    let mut v = json!({
        "run_id": run.id, "settlement_date": run.settlement_date.to_string(),
        "merchant_id": run.merchant_id.as_ref().map(|m| m.to_string()),
        "started_at": run.started_at.to_rfc3339(), "finished_at": run.finished_at.to_rfc3339(),
        "counts": counts, "amounts": amounts,
        "pending_channels": run.pending_channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "superseded_by": run.superseded_by,
    });
    if full {
        v["started_by"] = json!(run.actor);
        v["platform_records"] = json!(run.platform_records);
        v["clearing_rows"] = json!(run.clearing_rows);
        v["pending_count"] = json!(run.pending_count);
    }
    v
}

/// `POST /reconciliation/runs` `{settlement_date, merchant_id?}`.
pub async fn start_run(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    require_operator(&caller)?;
    let v = json_body(&headers, &body)?;
    let date = match v.get("settlement_date").and_then(Value::as_str) {
        Some(s) => parse_date("settlement_date", s)?,
        None => return Err(ApiError::bad_param("settlement_date", "settlement_date (YYYY-MM-DD) is required")),
    };
    let merchant = match v.get("merchant_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(MerchantId::parse(s).map_err(|e| ApiError::bad_param("merchant_id", format!("merchant_id: {e}")))?)
        }
        Some(_) => return Err(ApiError::bad_param("merchant_id", "merchant_id must be a string")),
    };
    let actor = caller.actor();
    let run = state
        .blocking(move |store| {
            let o = run_reconciliation(&store, date, merchant.as_ref(), &actor, false, None).map_err(ApiError::internal)?;
            let id = o.run_id.ok_or_else(|| ApiError::internal("run not recorded"))?;
            store.get_recon_run(id)?.ok_or_else(|| ApiError::internal("run vanished"))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(run_json(&run, &run.totals, true))).into_response())
}

/// `GET /reconciliation/runs?settlement_date=&limit=`.
pub async fn list_runs(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Json<Value>> {
    let full = require_run_reader(&caller)?;
    let p = Params::parse(uri.query(), &["settlement_date", "limit"])?;
    let date = p.one("settlement_date")?.map(|d| parse_date("settlement_date", d)).transpose()?;
    let limit = p.parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1..500".to_owned()))?.unwrap_or(50);
    let scope = caller.scope();
    let data = state
        .blocking(move |store| {
            let runs = store.list_recon_runs(date, limit)?;
            let mut out = Vec::with_capacity(runs.len());
            for r in runs {
                let totals = if full { r.totals.clone() } else { store.recon_totals(r.id, &scope)? };
                out.push(run_json(&r, &totals, full));
            }
            Ok(out)
        })
        .await?;
    Ok(Json(json!({"data": data, "has_more": false, "next_cursor": null})))
}

fn parse_run_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| ApiError::not_found("reconciliation run"))
}

/// `GET /reconciliation/runs/{id}`: merchants see the totals of their own items only.
pub async fn get_run(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let full = require_run_reader(&caller)?;
    let id = parse_run_id(&id)?;
    let scope = caller.scope();
    let v = state
        .blocking(move |store| {
            let run = store.get_recon_run(id)?.ok_or_else(|| ApiError::not_found("reconciliation run"))?;
            if full {
                return Ok(run_json(&run, &run.totals, true));
            }
            // A run touching none of the merchant's records is not theirs to see.
            if run.merchant_id.as_ref().is_some_and(|m| !scope.allows_merchant(m)) {
                return Err(ApiError::not_found("reconciliation run"));
            }
            let totals = store.recon_totals(id, &scope)?;
            Ok(run_json(&run, &totals, false))
        })
        .await?;
    Ok(Json(v))
}

fn item_json(i: &ReconItemRow, full: bool) -> Value {
    let mut v = json!({
        "id": i.id, "outcome": i.outcome.as_str(), "match_pass": i.match_pass.map(|p| p.as_str()),
        "merchant_id": i.merchant_id, "terminal_id": i.terminal_id,
        "batch_no": i.batch_no.map(|b| format!("{b:06}")), "stan": i.stan.map(|s| format!("{s:06}")),
        "rrn": i.rrn, "external_ref": i.external_ref, "channel": i.channel.as_str(),
        "txn_time": i.txn_time.map(|t| t.to_rfc3339()),
        "transaction_id": i.platform_id, "platform_amount": i.platform_amount_fen, "clearing_amount": i.clearing_amount_fen,
        "currency": "CNY",
    });
    if full {
        v["clearing_fee"] = json!(i.clearing_fee_fen);
        v["clearing_file_id"] = json!(i.clearing_file_id);
        v["clearing_file"] = json!(i.clearing_file_name);
        v["clearing_line"] = json!(i.clearing_line);
    }
    v
}

/// Cursors of one (run, outcome, scope) only.
fn items_fingerprint(run_id: i64, outcome: Option<recon::Outcome>, scope: &Scope) -> [u8; 8] {
    crate::cursor::fingerprint(&[
        ("recon_run", run_id.to_string()),
        ("outcome", outcome.map(|o| o.as_str().to_owned()).unwrap_or_default()),
        ("scope", format!("{:?}", scope)),
    ])
}

/// Parses the items query and checks the run is the caller's to read.
async fn items_query(state: &AppState, caller: &Caller, id: &str, uri: &Uri, extra: &[&str]) -> ApiResult<(ReconItemQuery, bool)> {
    let full = require_run_reader(caller)?;
    let run_id = parse_run_id(id)?;
    let mut allowed = vec!["outcome", "limit", "cursor"];
    allowed.extend_from_slice(extra);
    let p = Params::parse(uri.query(), &allowed)?;
    let outcome = p.parse_one("outcome", |s| {
        recon::Outcome::parse(s).ok_or_else(|| format!("outcome must be one of {}", recon::Outcome::ALL.map(|o| o.as_str()).join(", ")))
    })?;
    let limit = p
        .parse_one("limit", |s| s.parse::<u32>().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| "limit must be 1..500".to_owned()))?
        .unwrap_or(50);
    let scope = if full { Scope::all() } else { caller.scope() };
    let fp = items_fingerprint(run_id, outcome, &scope);
    let after_id = p.parse_one("cursor", |s| {
        let c = state.cursor_key.open(s, fp).map_err(|e| e.message().to_owned())?;
        c.position.parse::<i64>().map_err(|_| "cursor is not one this server issued".to_owned())
    })?;
    let q = ReconItemQuery { run_id, outcome, scope, after_id, limit };
    let exists = state.blocking(move |store| Ok(store.get_recon_run(run_id)?.is_some())).await?;
    if !exists {
        return Err(ApiError::not_found("reconciliation run"));
    }
    Ok((q, full))
}

/// `GET /reconciliation/runs/{id}/items?outcome=&limit=&cursor=`.
pub async fn list_items(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, uri: Uri) -> ApiResult<Json<Value>> {
    let (q, full) = items_query(&state, &caller, &id, &uri, &[]).await?;
    let (run_id, outcome, scope) = (q.run_id, q.outcome, q.scope.clone());
    let (rows, more) = state.blocking(move |store| Ok(store.list_recon_items(&q)?)).await?;
    let fp = items_fingerprint(run_id, outcome, &scope);
    let next_cursor = if more {
        rows.last().map(|r| state.cursor_key.seal(&crate::cursor::Cursor { as_of: 0, position: r.id.to_string() }, fp))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(|r| item_json(r, full)).collect::<Vec<_>>(),
        "has_more": more,
        "next_cursor": next_cursor,
    })))
}

/// `GET /reconciliation/runs/{id}/items/export?outcome=`: CSV with the `--items` columns,
/// streamed; merchants get the clearing file and line blank.
pub async fn export_items(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, uri: Uri) -> ApiResult<Response> {
    let (q, full) = items_query(&state, &caller, &id, &uri, &[]).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let store = state.store.clone();
    let actor = caller.actor();
    tokio::task::spawn_blocking(move || {
        let mut buf = format!("{ITEMS_CSV_HEADER}\n");
        let send = |b: String| {
            tx.blocking_send(Ok(Bytes::from(b))).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
        };
        let r = store.export_recon_items(&q, &mut |item| {
            push_item_csv_line(&mut buf, &item.as_ref(), full);
            if buf.len() >= 64 * 1024 {
                send(std::mem::take(&mut buf))?;
            }
            Ok(())
        });
        if !buf.is_empty() {
            let _ = send(buf);
        }
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        let _ = store.append_audit(&NewAuditEvent {
            actor,
            action: "reconcile.export".into(),
            target: Some(format!("recon_run:{}", q.run_id)),
            detail: r.ok().map(|n| format!("rows={n}")),
            ip: None,
            at: Utc::now(),
        });
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"recon-run-{id}-items.csv\"")),
        ],
        body,
    )
        .into_response())
}

/// OpenAPI paths of this module, merged into the document.
pub fn openapi_paths() -> Map<String, Value> {
    let problem = json!({"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let v = json!({
        "/clearing/files": {
            "get": {"summary": "Imported clearing files and, per settlement date and channel, the live files (bank operator, auditor)",
                "parameters": [q("from", "YYYY-MM-DD"), q("to", "YYYY-MM-DD"), q("limit", "1..500")],
                "responses": {"200": {"description": "{data, status, range}"}, "403": problem}},
            "post": {"summary": "Import a clearing file (bank operator): raw body or multipart part `file`, at most 256 MiB",
                "parameters": [q("profile", "canonical|wechatpay-tradebill"), q("date", "YYYY-MM-DD when the file has no date column"),
                    q("allow_partial", "true imports good rows and lists the rejected ones"), q("replace", "true supersedes an earlier import of the same bytes"),
                    q("name", "file name to record")],
                "responses": {"201": {"description": "{file, rows_by_settlement_date, rejected}"}, "409": problem, "413": problem, "422": problem}}
        },
        "/reconciliation/runs": {
            "get": {"summary": "Runs, newest first", "parameters": [q("settlement_date", "YYYY-MM-DD"), q("limit", "1..500")],
                "responses": {"200": {"description": "{data}"}, "403": problem}},
            "post": {"summary": "Run reconciliation (bank operator): {settlement_date, merchant_id?}",
                "responses": {"201": {"description": "{run_id, settlement_date, counts, amounts, pending_channels}"}, "400": problem, "403": problem}}
        },
        "/reconciliation/runs/{id}": {"get": {"summary": "One run (merchants: totals of their own items)", "parameters": [id.clone()],
            "responses": {"200": {"description": "run"}, "404": problem}}},
        "/reconciliation/runs/{id}/items": {"get": {"summary": "Items of a run, by id; merchants see their own items without bank-internal fields",
            "parameters": [id.clone(), q("outcome", "matched|amount_mismatch|missing_in_clearing|missing_in_platform|status_mismatch|duplicate_in_clearing|date_shift"), q("limit", "1..500, default 50"), q("cursor", "next_cursor")],
            "responses": {"200": {"description": "{data, has_more, next_cursor}"}, "404": problem}}},
        "/reconciliation/runs/{id}/items/export": {"get": {"summary": "Items as CSV (the `poslens reconcile --items` columns)",
            "parameters": [id, q("outcome", "one outcome")], "responses": {"200": {"description": "text/csv"}, "404": problem}}}
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(platform_fen: Option<i64>, batch: Option<u32>, line: Option<u64>, expected: &str) {
        let item = ReconItemRow {
            id: 1,
            outcome: recon::Outcome::AmountMismatch,
            match_pass: Some(recon::MatchPass::Key),
            merchant_id: Some("898310048990001".into()),
            terminal_id: Some("=T1".into()),
            batch_no: batch,
            stan: Some(42),
            rrn: None,
            external_ref: Some("a,\"b\"".into()),
            channel: Channel::Card,
            txn_time: None,
            platform_seq: Some(7),
            platform_id: None,
            platform_amount_fen: platform_fen,
            clearing_amount_fen: Some(100),
            clearing_fee_fen: None,
            clearing_file_id: Some(1),
            clearing_file_name: Some("f.csv".into()),
            clearing_line: line,
        };
        assert_eq!(item_csv_line(&item.as_ref(), true), expected);
    }

    #[test]
    fn item_csv_lines_pad_codes_format_yuan_and_quote_what_needs_it() {
        let head = "amount_mismatch,key,898310048990001,\"=T1\"";
        check(Some(123_456), Some(1), Some(2), &format!("{head},000001,000042,,\"a,\"\"b\"\"\",1234.56,1.00,,f.csv,2\n"));
        check(Some(-5), Some(0), Some(1_000_000), &format!("{head},000000,000042,,\"a,\"\"b\"\"\",\"-0.05\",1.00,,f.csv,1000000\n"));
        check(Some(0), Some(1_234_567), None, &format!("{head},1234567,000042,,\"a,\"\"b\"\"\",0.00,1.00,,f.csv,\n"));
        check(None, None, Some(10), &format!("{head},,000042,,\"a,\"\"b\"\"\",,1.00,,f.csv,10\n"));
    }
}

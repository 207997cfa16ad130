//! Clearing files and reconciliation runs: the bank side of synchronisation and what a run
//! found. Kept apart from `repo.rs` (transactions, administration) because it is its own
//! aggregate: files are imported whole, runs are written whole, neither edits a transaction.
//!
//! Large writes go to the writer as one job: a clearing file of a million rows is fed in chunks
//! over a bounded channel, like `bulk_ingest` (memory bounded by the chunk size); a run's items
//! are encoded compactly on the caller's side (a few dozen bytes each) and written as chunks of
//! items. Either way: one database transaction, nothing visible until the end and nothing kept
//! on failure.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender};

use chrono::{DateTime, Utc};
use domain::{Channel, MerchantId, SettlementDate};
use recon::{ClearingRecord, MatchPass, Outcome, PlatformRecord, Summary};

use crate::error::StoreError;
use crate::model::Scope;

/// Rows per chunk handed to the writer during an import.
pub const RECON_CHUNK_ROWS: usize = 8_192;
/// Chunks queued for the writer before the feeding side waits.
pub const RECON_CHUNKS_IN_FLIGHT: usize = 8;
/// Items per page at most.
pub const RECON_ITEMS_PAGE_MAX: u32 = 500;

/// An import about to start.
#[derive(Debug, Clone)]
pub struct NewClearingFile {
    pub sha256_hex: String,
    /// The file's name as given (no directories).
    pub name: String,
    pub profile: String,
    pub actor: String,
    /// Supersede a live import of the same bytes instead of refusing.
    pub replace: bool,
}

/// One good row of the file. `record.file` is ignored (the store assigns the file's id).
#[derive(Debug, Clone)]
pub struct NewClearingRow {
    pub record: ClearingRecord,
    /// The keyed card token when the file carried a clear PAN (never the PAN itself).
    pub card_token: Option<String>,
    /// WeChat Pay's 特约商户号 when the file names no merchant: resolved on import.
    pub sub_merchant_id: Option<String>,
}

/// An imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingFileInfo {
    pub id: i64,
    pub sha256_hex: String,
    pub name: String,
    pub profile: String,
    pub actor: String,
    pub imported_at: DateTime<Utc>,
    pub rows: u64,
    pub bad_rows: u64,
    pub superseded_by: Option<i64>,
    /// The earlier import this one superseded (`--replace`).
    pub supersedes: Option<i64>,
}

/// One (settlement date, channel) covered by a live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingStatusEntry {
    pub settlement_date: SettlementDate,
    pub channel: Channel,
    pub file_id: i64,
    pub file_name: String,
    pub rows: u64,
    pub imported_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClearingImportError {
    #[error("this file (SHA-256 {}) was imported before as {:?} (import #{}, {}); use --replace to supersede that import", .existing.sha256_hex, .existing.name, .existing.id, .existing.imported_at.to_rfc3339())]
    Duplicate { existing: Box<ClearingFileInfo> },
    #[error("import abandoned; nothing was stored: {0}")]
    Aborted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ClearingImportError {
    fn from(e: rusqlite::Error) -> Self {
        ClearingImportError::Store(StoreError::from(e))
    }
}

pub(crate) enum ClearingMsg {
    Rows(Vec<NewClearingRow>),
    Commit { bad_rows: u64 },
}

/// An import in progress: feed rows, then [`ClearingImport::commit`]. Dropping it (or
/// [`ClearingImport::abort`]) stores nothing.
pub struct ClearingImport {
    pub(crate) tx: Option<SyncSender<ClearingMsg>>,
    pub(crate) done: Receiver<Result<ClearingFileInfo, ClearingImportError>>,
    pub(crate) pending: Vec<NewClearingRow>,
}

impl ClearingImport {
    pub fn push(&mut self, row: NewClearingRow) -> Result<(), ClearingImportError> {
        self.pending.push(row);
        if self.pending.len() >= RECON_CHUNK_ROWS {
            let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(RECON_CHUNK_ROWS));
            self.send(ClearingMsg::Rows(chunk))?;
        }
        Ok(())
    }

    fn send(&mut self, msg: ClearingMsg) -> Result<(), ClearingImportError> {
        let sent = self.tx.as_ref().map(|tx| tx.send(msg).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The writer stopped early: its answer says why.
        self.tx = None;
        match self.done.recv() {
            Ok(Err(e)) => Err(e),
            _ => Err(ClearingImportError::Store(StoreError::WriterGone)),
        }
    }

    /// Keeps everything pushed, durably, in one commit.
    pub fn commit(mut self, bad_rows: u64) -> Result<ClearingFileInfo, ClearingImportError> {
        if !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            self.send(ClearingMsg::Rows(chunk))?;
        }
        self.send(ClearingMsg::Commit { bad_rows })?;
        self.tx = None;
        self.done.recv().map_err(|_| ClearingImportError::Store(StoreError::WriterGone))?
    }

    /// Stores nothing.
    pub fn abort(mut self) {
        self.tx = None;
        let _ = self.done.recv();
    }
}

/// What a run for D looks at, loaded from the store.
#[derive(Debug, Default)]
pub struct ReconInputData {
    /// Platform records of D-1..D+1 (merchant filter applied), `id` = the record's sequence.
    pub platform: Vec<PlatformRecord>,
    /// Rows of live files of D-1..D+1, in (file, line) order.
    pub clearing: Vec<ClearingRecord>,
    /// Channels with a live file for D.
    pub channels_with_clearing: Vec<Channel>,
    /// File id → file name (a handful: looked up for every item).
    pub file_names: BTreeMap<i64, String>,
    /// Receive time (ms) of each platform record, index for index: with the sequence it makes
    /// the opaque transaction id, built only when asked for.
    pub(crate) received_ms: Vec<i64>,
}

impl ReconInputData {
    /// The opaque transaction id (as the API shows it) of a platform record.
    pub fn txn_id(&self, id: recon::PlatformId) -> Option<String> {
        // Batch-upload items (negative ids) are not transaction records: no id.
        if id.0 < 0 {
            return None;
        }
        // `platform` is in id order.
        let i = self.platform.binary_search_by_key(&id, |p| p.id).ok()?;
        Some(crate::sqlite::ids::encode(*self.received_ms.get(i)?, id.0))
    }

    /// [`ReconInputData::txn_id`] of a record of `self.platform` (as the engine's items hold
    /// them), written into `buf`: no search, no allocation (a run shows a million).
    pub fn txn_id_of<'b>(&self, record: &PlatformRecord, buf: &'b mut TxnIdBuf) -> Option<&'b str> {
        if record.id.0 < 0 {
            return None;
        }
        // The record's position from its address: it is an element of `platform` or not ours.
        let base = self.platform.as_ptr() as usize;
        let at = (record as *const PlatformRecord as usize).checked_sub(base)? / std::mem::size_of::<PlatformRecord>().max(1);
        let i = match self.platform.get(at) {
            Some(p) if std::ptr::eq(p, record) => at,
            _ => self.platform.binary_search_by_key(&record.id, |p| p.id).ok()?,
        };
        crate::sqlite::ids::encode_into(*self.received_ms.get(i)?, record.id.0, &mut buf.0);
        std::str::from_utf8(&buf.0).ok()
    }
}

/// Room for one opaque transaction id.
pub struct TxnIdBuf([u8; crate::sqlite::ids::ID_LEN]);

impl Default for TxnIdBuf {
    fn default() -> Self {
        TxnIdBuf([0; crate::sqlite::ids::ID_LEN])
    }
}

/// A run about to be recorded.
#[derive(Debug, Clone)]
pub struct NewReconRun {
    pub settlement_date: SettlementDate,
    pub merchant_id: Option<MerchantId>,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub summary: Summary,
    pub pending_channels: Vec<Channel>,
    pub platform_records: u64,
    pub clearing_rows: u64,
}

/// One item, owned, as stored and as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconItemRow {
    /// Store id (0 before it is stored), unique within its run; also the paging key.
    pub id: i64,
    pub outcome: Outcome,
    pub match_pass: Option<MatchPass>,
    pub merchant_id: Option<String>,
    pub terminal_id: Option<String>,
    pub batch_no: Option<u32>,
    pub stan: Option<u32>,
    pub rrn: Option<String>,
    pub external_ref: Option<String>,
    pub channel: Channel,
    pub txn_time: Option<DateTime<Utc>>,
    pub platform_seq: Option<i64>,
    pub platform_id: Option<String>,
    pub platform_amount_fen: Option<i64>,
    pub clearing_amount_fen: Option<i64>,
    pub clearing_fee_fen: Option<i64>,
    pub clearing_file_id: Option<i64>,
    /// Filled on reads.
    pub clearing_file_name: Option<String>,
    pub clearing_line: Option<u64>,
}

/// Some of a run's items, in order, for [`ReconRepo::save_recon_run`].
pub type ItemPart<'p, 'a> = dyn Iterator<Item = ReconItemRef<'a>> + Send + 'p;

/// One item borrowed from an engine report (or from a [`ReconItemRow`]): what a run records and
/// what `--items` writes, without copying a string per field (a run has a million items).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconItemRef<'a> {
    pub outcome: Outcome,
    pub match_pass: Option<MatchPass>,
    pub merchant_id: Option<&'a str>,
    pub terminal_id: Option<&'a str>,
    pub batch_no: Option<u32>,
    pub stan: Option<u32>,
    pub rrn: Option<&'a str>,
    pub external_ref: Option<&'a str>,
    pub channel: Channel,
    pub txn_time: Option<DateTime<Utc>>,
    pub platform_seq: Option<i64>,
    pub platform_id: Option<&'a str>,
    pub platform_amount_fen: Option<i64>,
    pub clearing_amount_fen: Option<i64>,
    pub clearing_fee_fen: Option<i64>,
    pub clearing_file_id: Option<i64>,
    pub clearing_file_name: Option<&'a str>,
    pub clearing_line: Option<u64>,
}

impl<'a> ReconItemRef<'a> {
    /// An engine item as shown: the platform side's identifiers where it has them, else the
    /// clearing row's. `platform_id` is the record's opaque id ([`ReconInputData::txn_id`]).
    pub fn shown(item: &recon::Item<'a>, input: &'a ReconInputData, platform_id: Option<&'a str>) -> ReconItemRef<'a> {
        let p = item.platform;
        let c = item.clearing;
        ReconItemRef {
            outcome: item.outcome,
            match_pass: item.match_pass,
            merchant_id: p.map(|p| p.merchant.as_str()).or_else(|| c.and_then(|c| c.merchant.as_ref().map(|m| m.as_str()))),
            terminal_id: p.and_then(|p| p.terminal.as_ref()).or_else(|| c.and_then(|c| c.terminal.as_ref())).map(|t| t.as_str()),
            batch_no: p.and_then(|p| p.batch).or_else(|| c.and_then(|c| c.batch)).map(|b| b.get()),
            stan: p.and_then(|p| p.stan).or_else(|| c.and_then(|c| c.stan)).map(|s| s.get()),
            rrn: p.and_then(|p| p.rrn.as_ref()).or_else(|| c.and_then(|c| c.rrn.as_ref())).map(|r| r.as_str()),
            external_ref: p.and_then(|p| p.external_ref.as_deref()).or_else(|| c.and_then(|c| c.external_ref.as_deref())),
            channel: p.map(|p| p.channel).or(c.map(|c| c.channel)).unwrap_or(Channel::Card),
            txn_time: p.map(|p| p.txn_time).or_else(|| c.and_then(|c| c.txn_time)),
            platform_seq: p.map(|p| p.id.0),
            platform_id,
            platform_amount_fen: p.map(|p| p.amount.fen()),
            clearing_amount_fen: c.map(|c| c.amount.fen()),
            clearing_fee_fen: c.map(|c| c.fee.fen()),
            clearing_file_id: c.map(|c| c.file.0),
            clearing_file_name: c.and_then(|c| input.file_names.get(&c.file.0).map(String::as_str)),
            clearing_line: c.map(|c| c.line),
        }
    }

    /// An engine item as recorded: the fields the platform record holds itself (terminal,
    /// batch, STAN, RRN, channel order number, time, opaque id) are left out, since the store
    /// reads them back from the (append-only) record; what came from the clearing row because
    /// the record had none stays. A run of a million items writes a third fewer bytes.
    pub fn recorded(item: &recon::Item<'a>, input: &'a ReconInputData) -> ReconItemRef<'a> {
        let mut r = ReconItemRef::shown(item, input, None);
        // A batch-upload item (negative id) has no record to read the fields back from.
        if let Some(p) = item.platform.filter(|p| p.id.0 > 0) {
            if p.terminal.is_some() {
                r.terminal_id = None;
            }
            if p.batch.is_some() {
                r.batch_no = None;
            }
            if p.stan.is_some() {
                r.stan = None;
            }
            if p.rrn.is_some() {
                r.rrn = None;
            }
            if p.external_ref.is_some() {
                r.external_ref = None;
            }
            r.txn_time = None;
        }
        r
    }
}

impl ReconItemRow {
    /// The owned form of an engine item; `input` names the platform record.
    pub fn from_item(item: &recon::Item<'_>, input: &ReconInputData) -> ReconItemRow {
        let id = item.platform.and_then(|p| input.txn_id(p.id));
        ReconItemRow::from_ref(0, &ReconItemRef::shown(item, input, id.as_deref()))
    }

    pub fn from_ref(id: i64, r: &ReconItemRef<'_>) -> ReconItemRow {
        ReconItemRow {
            id,
            outcome: r.outcome,
            match_pass: r.match_pass,
            merchant_id: r.merchant_id.map(str::to_owned),
            terminal_id: r.terminal_id.map(str::to_owned),
            batch_no: r.batch_no,
            stan: r.stan,
            rrn: r.rrn.map(str::to_owned),
            external_ref: r.external_ref.map(str::to_owned),
            channel: r.channel,
            txn_time: r.txn_time,
            platform_seq: r.platform_seq,
            platform_id: r.platform_id.map(str::to_owned),
            platform_amount_fen: r.platform_amount_fen,
            clearing_amount_fen: r.clearing_amount_fen,
            clearing_fee_fen: r.clearing_fee_fen,
            clearing_file_id: r.clearing_file_id,
            clearing_file_name: r.clearing_file_name.map(str::to_owned),
            clearing_line: r.clearing_line,
        }
    }

    /// The borrowed view (id aside).
    pub fn as_ref(&self) -> ReconItemRef<'_> {
        ReconItemRef {
            outcome: self.outcome,
            match_pass: self.match_pass,
            merchant_id: self.merchant_id.as_deref(),
            terminal_id: self.terminal_id.as_deref(),
            batch_no: self.batch_no,
            stan: self.stan,
            rrn: self.rrn.as_deref(),
            external_ref: self.external_ref.as_deref(),
            channel: self.channel,
            txn_time: self.txn_time,
            platform_seq: self.platform_seq,
            platform_id: self.platform_id.as_deref(),
            platform_amount_fen: self.platform_amount_fen,
            clearing_amount_fen: self.clearing_amount_fen,
            clearing_fee_fen: self.clearing_fee_fen,
            clearing_file_id: self.clearing_file_id,
            clearing_file_name: self.clearing_file_name.as_deref(),
            clearing_line: self.clearing_line,
        }
    }
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconRun {
    pub id: i64,
    pub settlement_date: SettlementDate,
    pub merchant_id: Option<MerchantId>,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `(outcome, count, amount_fen)` in [`Outcome::ALL`] order.
    pub totals: Vec<(Outcome, u64, i64)>,
    pub pending_channels: Vec<Channel>,
    pub pending_count: u64,
    pub platform_records: u64,
    pub clearing_rows: u64,
    pub superseded_by: Option<i64>,
}

/// Which items of a run to list.
#[derive(Debug, Clone, Default)]
pub struct ReconItemQuery {
    pub run_id: i64,
    pub outcome: Option<Outcome>,
    /// Merchant users: their merchant (staff: their terminals).
    pub scope: Scope,
    /// Keyset cursor: items with a larger id.
    pub after_id: Option<i64>,
    pub limit: u32,
}

pub trait ClearingRepo {
    /// The live import of these bytes, if any.
    fn find_clearing_file(&self, sha256_hex: &str) -> Result<Option<ClearingFileInfo>, StoreError>;
    /// Starts an import: refuses bytes imported before unless `file.replace`.
    fn begin_clearing_import(&self, file: NewClearingFile) -> Result<ClearingImport, ClearingImportError>;
    /// Newest first, superseded imports included.
    fn list_clearing_files(&self, limit: u32) -> Result<Vec<ClearingFileInfo>, StoreError>;
    /// What live files cover each (date, channel) in `[from, to]`, oldest date first.
    fn clearing_status(&self, from: SettlementDate, to: SettlementDate) -> Result<Vec<ClearingStatusEntry>, StoreError>;
}

pub trait ReconRepo {
    /// Platform records and clearing rows of D-1..D+1, and the channels with a file for D.
    fn load_recon_input(&self, date: SettlementDate, merchant: Option<&MerchantId>) -> Result<ReconInputData, StoreError>;
    /// Records a run and its items in one commit, superseding the live run for the same date
    /// and merchant filter. Returns the run's id. Item ids are numbered within the run in
    /// (merchant, outcome, given order) order, so lists and exports come in that order.
    /// `items` are kept as given ([`ReconItemRef::recorded`] leaves out what the record holds).
    ///
    /// `parts` are the items in order, part after part: the store may encode each part on a
    /// thread of its own (the numbering is the same as for one part holding them all).
    fn save_recon_run<'a>(&self, run: &NewReconRun, parts: &mut [&mut ItemPart<'_, 'a>]) -> Result<i64, StoreError>;
    fn get_recon_run(&self, id: i64) -> Result<Option<ReconRun>, StoreError>;
    /// Newest first, optionally of one date.
    fn list_recon_runs(&self, date: Option<SettlementDate>, limit: u32) -> Result<Vec<ReconRun>, StoreError>;
    /// Counts and amounts per outcome over the items `scope` may see.
    fn recon_totals(&self, run_id: i64, scope: &Scope) -> Result<Vec<(Outcome, u64, i64)>, StoreError>;
    /// One page by id; `has_more` when more follow.
    fn list_recon_items(&self, q: &ReconItemQuery) -> Result<(Vec<ReconItemRow>, bool), StoreError>;
    /// Every matching item (cursor and limit ignored), in id order, with bounded memory.
    fn export_recon_items(
        &self,
        q: &ReconItemQuery,
        on_row: &mut dyn FnMut(&ReconItemRow) -> std::io::Result<()>,
    ) -> Result<u64, StoreError>;
}

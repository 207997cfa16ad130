//! The host: one request body in, one [`Outcome`] out, with the checks of spec section 4 in
//! their order: format (`30`) → terminal unknown (`97`) → MAC (`A0`) → unsupported (`40`) →
//! terminal disabled or not bound (`58`) → merchant frozen or closed (`03`) → retransmission /
//! `94` → not signed on or batch mismatch (`77`) → original checks (`25`, `12`, `64`) → card
//! (`14`, `54`) → amount (`13`, `61`) → test cards. Records are committed before the reply.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::{
    Amount, AuthCode, BatchNo, CardKey, CardSummary, Channel, Currency, MerchantClock, MerchantId,
    MerchantStatus, ResponseCode, Rrn, Source, Stan, TerminalId, TxnKind, TxnStatus,
};
use iso8583::mac::{self, MacKey};
use iso8583::{
    build_reply, format_error_reply_for_body, BatchSettlement, BatchUpload, Field60, FinancialKind,
    FinancialRequest, Key16, Message, ReplyData, Request, Reversal, SignOn, UploadContent,
    ViewError, WorkingKeys,
};
use store::{
    IngestOptions, Merchant, MerchantRepo, NewPosDiscrepancy, NewTxn, OriginalRef, PosDiscrepancy,
    PosDiscrepancyKind, PosRepo, Scope, SqliteStore, Terminal, TerminalRepo, TerminalStatus,
    TerminalSync, TxnQuery, TxnRepo, TxnRow,
};
use tracing::{info, warn};

use crate::session::{DiscrepancyFile, RrnAllocator, Sessions, TerminalSession};
use crate::{HostConfig, PosError};

/// What the connection does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Write this frame (length prefix included).
    Reply(Vec<u8>),
    /// Deliberately no reply (test card 0098).
    Silent,
    /// Close the connection (the request cannot be answered); the reason is logged.
    Close(&'static str),
}

/// What a batch upload or reversal found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscrepancyKind {
    /// The terminal uploaded an item the host has no approved record of.
    TerminalOnly,
    /// Both have it, with different amounts.
    AmountDiffers,
    /// The host has an approved record the terminal did not upload.
    HostOnly,
    /// The 202's total differs from the items received.
    UploadCountDiffers,
    /// A purchase with refunds was reversed.
    ReversedWithRefunds,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::TerminalOnly => "terminal_only",
            DiscrepancyKind::AmountDiffers => "amount_differs",
            DiscrepancyKind::HostOnly => "host_only",
            DiscrepancyKind::UploadCountDiffers => "upload_count_differs",
            DiscrepancyKind::ReversedWithRefunds => "reversed_with_refunds",
        }
    }

    fn stored(self) -> PosDiscrepancyKind {
        match self {
            DiscrepancyKind::TerminalOnly => PosDiscrepancyKind::TerminalOnly,
            DiscrepancyKind::AmountDiffers => PosDiscrepancyKind::AmountDiffers,
            DiscrepancyKind::HostOnly => PosDiscrepancyKind::HostOnly,
            DiscrepancyKind::UploadCountDiffers => PosDiscrepancyKind::UploadCountDiffers,
            DiscrepancyKind::ReversedWithRefunds => PosDiscrepancyKind::ReversedWithRefunds,
        }
    }
}

/// One discrepancy, as recorded in the store ([`PosRepo`]). Card data only masked here, and
/// only BIN and last four digits once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub merchant_id: String,
    pub terminal_id: String,
    pub batch_no: u32,
    pub stan: Option<u32>,
    pub host_amount_fen: Option<i64>,
    pub terminal_amount_fen: Option<i64>,
    pub card_masked: Option<String>,
    /// The host's record (`TxnRow::seq`), when the host has one.
    pub txn_seq: Option<i64>,
    pub at: DateTime<Utc>,
}

impl Discrepancy {
    /// The store's row: identifiers checked, card reduced to BIN and last four digits.
    fn to_new(&self) -> Result<NewPosDiscrepancy, String> {
        let card = self
            .card_masked
            .as_deref()
            .and_then(|m| CardSummary::from_masked(m).ok());
        Ok(NewPosDiscrepancy {
            merchant_id: MerchantId::parse(&self.merchant_id).map_err(|e| e.to_string())?,
            terminal_id: TerminalId::parse(&self.terminal_id).map_err(|e| e.to_string())?,
            batch_no: self.batch_no,
            stan: self.stan,
            kind: self.kind.stored(),
            terminal_amount_fen: self.terminal_amount_fen,
            host_amount_fen: self.host_amount_fen,
            card_bin: card.as_ref().map(|c| c.bin.clone()),
            card_last4: card.map(|c| c.last4),
            txn_seq: self.txn_seq,
            detail: None,
            recorded_at: self.at,
        })
    }
}

/// Retransmission key: (41, 60.2, 11, MTI, 3), per merchant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RetransKey {
    merchant_id: String,
    terminal_id: String,
    batch: u32,
    stan: u32,
    mti: u16,
    processing_code: String,
}

/// What must be equal for a retransmission: PAN token, 4, 37, 38, 61, 60.1 (and 48 for
/// settlement and upload, so two different uploads under one STAN are not confused).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    card_token: Option<String>,
    amount_fen: Option<u64>,
    rrn: Option<String>,
    auth_code: Option<String>,
    original: Option<String>,
    message_type: String,
    additional: Option<String>,
}

#[derive(Debug, Clone)]
struct Cached {
    content: Content,
    /// `None`: the original got no reply (0098).
    reply: Option<Message>,
}

#[derive(Debug, Default)]
struct RetransCache {
    /// Boxed values and room for every entry from the start: growing a map of ~600-byte
    /// entries moved tens of megabytes under this lock, and 200 terminals stalled behind it
    /// for tens of milliseconds each time the map doubled.
    map: HashMap<RetransKey, Box<Cached>>,
    order: VecDeque<RetransKey>,
}

impl RetransCache {
    fn with_capacity(entries: usize) -> RetransCache {
        RetransCache { map: HashMap::with_capacity(entries + 1), order: VecDeque::with_capacity(entries + 1) }
    }
}

/// Everything known about the terminal and merchant of a request.
struct Ctx {
    now: DateTime<Utc>,
    clock: MerchantClock,
    merchant_id: MerchantId,
    terminal_id: TerminalId,
    terminal: Terminal,
    merchant_status: MerchantStatus,
    single_txn_limit: Option<Amount>,
    tmk: Option<Key16>,
    mac_key: Option<MacKey>,
    session: TerminalSession,
}

impl Ctx {
    fn keyed(&self) -> bool {
        self.terminal.master_key_hex.is_some()
    }

    fn open_batch(&self) -> u32 {
        self.terminal.open_batch.map(BatchNo::get).unwrap_or(1)
    }

    fn lock_key(&self) -> String {
        format!("{}/{}", self.merchant_id, self.terminal_id)
    }
}

enum Ident {
    Unknown,
    /// The terminal id exists, but not under the merchant id of 42.
    NotBound,
    Bound(Box<Ctx>),
}

/// Progress of one batch upload.
#[derive(Debug, Default)]
struct Upload {
    stans: HashSet<u32>,
    items: u32,
}

/// What this process knows of one batch: approved debit / credit counts (the 999 limit) and
/// every STAN with a record. Loaded from the store once per batch, then kept up to date under
/// the terminal lock, so the hot path asks the store about a STAN only when it was used before.
#[derive(Debug, Default, Clone)]
struct BatchCounts {
    debit: u32,
    credit: u32,
    stans: HashSet<u32>,
}

/// A terminal with its merchant, as the store gave them, for [`Host::identify`] without a store
/// read per request. Kept while the store's `config_generation` is unchanged (every change to
/// a merchant or terminal made in this process moves it) and for at most [`IDENT_TTL`], which
/// bounds how long a change made by another process (`poslens merchant freeze` while the server
/// runs) goes unseen.
#[derive(Clone)]
struct CachedIdent {
    terminal: Terminal,
    merchant: Merchant,
    generation: u64,
    loaded: Instant,
}

const IDENT_TTL: Duration = Duration::from_secs(2);
/// Terminals whose identity is cached at most (entries beyond are dropped wholesale).
const IDENT_CACHE_MAX: usize = 100_000;

/// Most debit (and, separately, credit) transactions in one batch: field 48 counts are n3.
pub const BATCH_TXNS_MAX: u32 = 999;

/// Original checks: not found.
const NOT_FOUND: (&str, Option<TxnRow>) = ("25", None);

/// The acquirer host behind the listener. Cheap to share (`Arc`).
pub struct Host {
    store: SqliteStore,
    card_key: CardKey,
    cfg: HostConfig,
    sessions: Sessions,
    rrn: RrnAllocator,
    retrans: Mutex<RetransCache>,
    terminal_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    merchant_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    uploads: Mutex<HashMap<(String, u32), Upload>>,
    batch_counts: Mutex<HashMap<(String, u32), BatchCounts>>,
    last_seen_written: Mutex<HashMap<String, Instant>>,
    idents: Mutex<HashMap<(String, String), CachedIdent>>,
}

fn encode(m: &Message) -> Outcome {
    match m.to_frame() {
        Ok(f) => Outcome::Reply(f),
        Err(e) => {
            warn!(error = %e, "reply could not be encoded");
            Outcome::Close("reply could not be encoded")
        }
    }
}

fn txn_kind(k: FinancialKind) -> TxnKind {
    match k {
        FinancialKind::BalanceInquiry => TxnKind::BalanceInquiry,
        FinancialKind::Purchase => TxnKind::Purchase,
        FinancialKind::PurchaseVoid => TxnKind::Void,
        FinancialKind::Refund => TxnKind::Refund,
        FinancialKind::PreAuth => TxnKind::Preauth,
        FinancialKind::PreAuthVoid => TxnKind::PreauthVoid,
        FinancialKind::PreAuthCompletion => TxnKind::PreauthCompletion,
        FinancialKind::CompletionVoid => TxnKind::PreauthCompletionVoid,
    }
}

fn is_debit(k: TxnKind) -> bool {
    matches!(k, TxnKind::Purchase | TxnKind::PreauthCompletion)
}

/// Counted in settlement totals: approved debits not voided or reversed, approved credits not
/// reversed.
fn counts_in_totals(r: &TxnRow) -> Option<bool> {
    if r.reversal || !r.response_code.is_approved() {
        return None;
    }
    match r.kind {
        k if is_debit(k)
            && !matches!(
                r.status,
                TxnStatus::Voided | TxnStatus::Reversed | TxnStatus::Declined
            ) =>
        {
            Some(false)
        }
        TxnKind::Refund if r.status == TxnStatus::Approved => Some(true),
        _ => None,
    }
}

/// Test cards apply to these kinds only.
fn test_card_kind(k: FinancialKind) -> bool {
    matches!(
        k,
        FinancialKind::Purchase | FinancialKind::PreAuth | FinancialKind::BalanceInquiry
    )
}

/// The reduced card of a request: the clear PAN goes no further than this function.
struct Card {
    summary: Option<CardSummary>,
    luhn_ok: bool,
}

impl Host {
    /// Opens the front end's files in `cfg.data_dir` (sessions, RRN block). Discrepancies a
    /// former version left in `pos-discrepancies.jsonl` are moved into the store first.
    pub fn open(store: SqliteStore, card_key: CardKey, cfg: HostConfig) -> Result<Host, PosError> {
        let sessions = Sessions::open(&cfg.data_dir)?;
        let rrn = RrnAllocator::open(&cfg.data_dir, cfg.instance_id)?;
        import_discrepancy_file(&store, &cfg.data_dir)?;
        let retrans = RetransCache::with_capacity(cfg.retransmission_entries_max);
        Ok(Host {
            store,
            card_key,
            cfg,
            sessions,
            rrn,
            retrans: Mutex::new(retrans),
            terminal_locks: Mutex::default(),
            merchant_locks: Mutex::default(),
            uploads: Mutex::default(),
            batch_counts: Mutex::default(),
            last_seen_written: Mutex::default(),
            idents: Mutex::default(),
        })
    }

    /// Discrepancies recorded in the store, oldest first (at most the store's page limit).
    pub fn discrepancies(&self) -> Result<Vec<PosDiscrepancy>, PosError> {
        let mut list =
            self.store
                .list_discrepancies(&Scope::all(), None, None, store::PAGE_LIMIT_MAX)?;
        list.reverse();
        Ok(list)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, PosError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> Result<T, PosError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| PosError::Join(e.to_string()))?
    }

    fn lock_for(
        map: &Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
        key: String,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key).or_default().clone()
    }

    /// Decides one request body (length prefix removed).
    pub async fn handle_frame(&self, body: &[u8]) -> Outcome {
        let now = Utc::now();
        let msg = match Message::decode(body) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "format error");
                return match format_error_reply_for_body(body) {
                    Some(r) => encode(&r),
                    None => Outcome::Close("format error before field 11, or not a request"),
                };
            }
        };
        if !msg.mti().is_request() {
            warn!(mti = %msg.mti(), "not a request MTI");
            return Outcome::Close("not a request MTI");
        }
        let request = match Request::from_message(&msg) {
            Ok(r) => Some(r),
            Err(e) if e.is_format_error() => {
                warn!(mti = %msg.mti(), error = %e, "format error");
                return match msg.format_error_reply() {
                    Some(r) => encode(&r),
                    None => Outcome::Close("format error without field 11"),
                };
            }
            Err(ViewError::Unsupported(why)) => {
                info!(%why, "unsupported transaction");
                None
            }
            Err(e) => {
                warn!(error = %e, "not a request");
                return Outcome::Close("not a request");
            }
        };
        let trimmed = |f: u8| msg.get_str(f).map(|s| s.trim_end_matches(' ').to_owned());
        let (Some(tid), Some(mid)) = (trimmed(41), trimmed(42)) else {
            return match msg.format_error_reply() {
                Some(r) => encode(&r),
                None => Outcome::Close("no terminal or merchant id"),
            };
        };
        let ctx = match self.identify(&tid, &mid, now).await {
            Ok(Ident::Bound(c)) => c,
            Ok(Ident::Unknown) => {
                info!(terminal_id = %tid, "terminal not registered");
                return self.bare_reply(&msg, "97", now);
            }
            Ok(Ident::NotBound) => {
                info!(terminal_id = %tid, merchant_id = %mid, "terminal not bound to this merchant");
                return match (&request, msg.mti().value()) {
                    // Acknowledged like any reversal, but it cannot be recorded under a
                    // merchant the terminal does not belong to.
                    (Some(Request::Reversal(_)), _) => self.bare_reply(&msg, "00", now),
                    (None, _) => self.bare_reply(&msg, "40", now),
                    _ => self.bare_reply(&msg, "58", now),
                };
            }
            Err(e) => {
                warn!(error = %e, "terminal lookup failed");
                return self.bare_reply(&msg, "96", now);
            }
        };
        if msg.mti().is_maced() && ctx.keyed() {
            let ok = ctx
                .mac_key
                .as_ref()
                .is_some_and(|k| mac::verify(&msg, k).is_ok());
            if !ok {
                info!(terminal_id = %tid, "MAC verification failed");
                return self.reply_code(&ctx, &msg, "A0");
            }
        }
        let Some(request) = request else {
            return self.reply_code(&ctx, &msg, "40");
        };
        self.touch(&ctx);
        if let Request::Reversal(r) = &request {
            return self.reversal(&ctx, &msg, r).await;
        }
        if ctx.terminal.status == TerminalStatus::Disabled {
            return self.reply_code(&ctx, &msg, "58");
        }
        if ctx.merchant_status != MerchantStatus::Active {
            return self.reply_code(&ctx, &msg, "03");
        }
        match &request {
            Request::SignOn(s) => self.sign_on(&ctx, &msg, s).await,
            Request::SignOff(_) => self.sign_off(&ctx, &msg).await,
            Request::EchoTest(_) => self.reply_code(&ctx, &msg, "00"),
            Request::Financial(f) => self.financial(&ctx, &msg, f).await,
            Request::BatchSettlement(s) => self.settlement(&ctx, &msg, s).await,
            Request::BatchUpload(u) => self.upload(&ctx, &msg, u).await,
            Request::Reversal(_) => Outcome::Close("unreachable: reversal handled above"),
        }
    }

    /// The cached terminal and merchant rows, if still current.
    fn cached_ident(&self, tid: &str, mid: &str) -> Option<CachedIdent> {
        let m = self.idents.lock().unwrap_or_else(|p| p.into_inner());
        let c = m.get(&(tid.to_owned(), mid.to_owned()))?;
        (c.generation == self.store.config_generation() && c.loaded.elapsed() < IDENT_TTL)
            .then(|| c.clone())
    }

    fn cache_ident(&self, c: CachedIdent) {
        let mut m = self.idents.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= IDENT_CACHE_MAX {
            m.clear();
        }
        m.insert((c.terminal.id.to_string(), c.merchant.id.to_string()), c);
    }

    /// The terminal and merchant rows: from the cache, else from the store (and cached).
    async fn load_ident(
        &self,
        terminal_id: &TerminalId,
        merchant_id: &MerchantId,
    ) -> Result<Option<CachedIdent>, PosError> {
        if let Some(c) = self.cached_ident(terminal_id.as_str(), merchant_id.as_str()) {
            return Ok(Some(c));
        }
        // Read before loading: a change committed meanwhile makes this entry stale at once.
        let generation = self.store.config_generation();
        let (t, m) = (terminal_id.clone(), merchant_id.clone());
        let found = self
            .blocking(move |s| {
                let Some(terminal) = s.get_terminal(&m, &t)? else {
                    return Ok(None);
                };
                Ok(s.get_merchant(&m)?.map(|merchant| (terminal, merchant)))
            })
            .await?;
        Ok(found.map(|(terminal, merchant)| {
            let c = CachedIdent {
                terminal,
                merchant,
                generation,
                loaded: Instant::now(),
            };
            self.cache_ident(c.clone());
            c
        }))
    }

    async fn identify(&self, tid: &str, mid: &str, now: DateTime<Utc>) -> Result<Ident, PosError> {
        let Ok(terminal_id) = TerminalId::parse(tid) else {
            return Ok(Ident::Unknown);
        };
        let merchant_id = MerchantId::parse(mid).ok();
        let cached = match &merchant_id {
            Some(m) => self.load_ident(&terminal_id, m).await?,
            None => None,
        };
        let (t, m, tid2) = (
            terminal_id.clone(),
            merchant_id.clone(),
            terminal_id.clone(),
        );
        let found = match cached {
            Some(c) => (Some(c.terminal), Some(c.merchant), true),
            None => {
                self.blocking(move |s| {
                    let bound = match &m {
                        Some(m) => s.get_terminal(m, &t)?,
                        None => None,
                    };
                    let merchant = match (&bound, &m) {
                        (Some(_), Some(m)) => s.get_merchant(m)?,
                        _ => None,
                    };
                    let any = if bound.is_none() {
                        !s.find_terminals(&tid2)?.is_empty()
                    } else {
                        true
                    };
                    Ok((bound, merchant, any))
                })
                .await?
            }
        };
        let (terminal, merchant) = match found {
            (Some(t), Some(m), _) => (t, m),
            (_, _, true) => return Ok(Ident::NotBound),
            (_, _, false) => return Ok(Ident::Unknown),
        };
        let Some(merchant_id) = merchant_id else {
            return Ok(Ident::NotBound);
        };
        let session = self
            .sessions
            .get(merchant_id.as_str(), terminal_id.as_str());
        let tmk = terminal.master_key_hex.as_deref().and_then(Key16::from_hex);
        let mac_key = mac_key_for(tmk.as_ref(), &session);
        Ok(Ident::Bound(Box::new(Ctx {
            now,
            clock: merchant.clock,
            merchant_id,
            terminal_id,
            terminal,
            merchant_status: merchant.status,
            single_txn_limit: merchant.single_txn_limit,
            tmk,
            mac_key,
            session,
        })))
    }

    /// Writes `last_seen_at` in the background, at most once per interval per terminal.
    fn touch(&self, ctx: &Ctx) {
        let key = ctx.lock_key();
        {
            let mut m = self
                .last_seen_written
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if m.get(&key)
                .is_some_and(|t| t.elapsed() < self.cfg.last_seen_write_interval)
            {
                return;
            }
            m.insert(key, Instant::now());
        }
        let (store, mid, tid, now) = (
            self.store.clone(),
            ctx.merchant_id.clone(),
            ctx.terminal_id.clone(),
            ctx.now,
        );
        tokio::task::spawn_blocking(move || {
            let sync = TerminalSync {
                last_seen_at: Some(now),
                ..TerminalSync::default()
            };
            if let Err(e) = store.update_terminal_sync(&mid, &tid, &sync) {
                warn!(error = %e, "could not record last_seen_at");
            }
        });
    }

    fn times(clock: &MerchantClock, now: DateTime<Utc>) -> ReplyData {
        let local = clock.local(now);
        ReplyData {
            local_time: local.format("%H%M%S").to_string(),
            local_date: local.format("%m%d").to_string(),
            settlement_date: Some(clock.settlement_date(now, Channel::Card).mmdd()),
            ..ReplyData::default()
        }
    }

    /// A reply without a known merchant (97, or a terminal bound elsewhere): never MACed.
    fn bare_reply(&self, msg: &Message, code: &str, now: DateTime<Utc>) -> Outcome {
        let mut data = Self::times(&MerchantClock::default(), now);
        data.response_code = code.to_owned();
        data.acquirer_id = self.cfg.acquirer_id.clone();
        match build_reply(msg, &data) {
            Ok(r) => encode(&r),
            Err(e) => {
                warn!(error = %e, "reply could not be built");
                Outcome::Close("reply could not be built")
            }
        }
    }

    fn build(&self, ctx: &Ctx, msg: &Message, code: &str, mut data: ReplyData) -> Option<Message> {
        let t = Self::times(&ctx.clock, ctx.now);
        data.response_code = code.to_owned();
        data.acquirer_id = self.cfg.acquirer_id.clone();
        if data.local_time.is_empty() {
            data.local_time = t.local_time;
            data.local_date = t.local_date;
        }
        if data.settlement_date.is_none() {
            data.settlement_date = t.settlement_date;
        }
        match build_reply(msg, &data) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(error = %e, "reply could not be built");
                None
            }
        }
    }

    /// Signs (keyed terminal, MACed MTI, not 30/A0/97) and encodes.
    fn send(&self, ctx: &Ctx, mut reply: Message) -> Outcome {
        let code = reply.get_str(39).unwrap_or("").to_owned();
        if ctx.keyed() && reply.mti().is_maced() && !matches!(code.as_str(), "30" | "A0" | "97") {
            if let Some(k) = &ctx.mac_key {
                mac::sign(&mut reply, k);
            }
        }
        encode(&reply)
    }

    fn reply_code(&self, ctx: &Ctx, msg: &Message, code: &str) -> Outcome {
        let mut data = ReplyData::default();
        if matches!(msg.mti().value(), 100 | 200 | 220 | 400 | 800 | 500) {
            data.rrn = self.rrn.next().ok();
        }
        match self.build(ctx, msg, code, data) {
            Some(r) => self.send(ctx, r),
            None => Outcome::Close("reply could not be built"),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Retransmission
    // -----------------------------------------------------------------------------------------

    fn retrans_key(ctx: &Ctx, msg: &Message, batch: u32, stan: u32) -> RetransKey {
        RetransKey {
            merchant_id: ctx.merchant_id.to_string(),
            terminal_id: ctx.terminal_id.to_string(),
            batch,
            stan,
            mti: msg.mti().value(),
            processing_code: msg.get_str(3).unwrap_or("").to_owned(),
        }
    }

    /// `Some(outcome)` when the key was seen: the same reply again, or 94.
    fn retransmission(
        &self,
        ctx: &Ctx,
        msg: &Message,
        key: &RetransKey,
        content: &Content,
    ) -> Option<Outcome> {
        let cached = {
            let c = self.retrans.lock().unwrap_or_else(|p| p.into_inner());
            c.map.get(key).map(|b| Cached::clone(b))
        }?;
        if &cached.content != content {
            info!(terminal_id = %ctx.terminal_id, stan = key.stan, "same key, different content: 94");
            return Some(self.reply_code(ctx, msg, "94"));
        }
        info!(terminal_id = %ctx.terminal_id, stan = key.stan, "retransmission answered again");
        Some(match cached.reply {
            Some(mut r) => {
                r.remove(64);
                self.send(ctx, r)
            }
            None => Outcome::Silent,
        })
    }

    fn remember(&self, key: RetransKey, content: Content, reply: Option<Message>) {
        let mut c = self.retrans.lock().unwrap_or_else(|p| p.into_inner());
        if c.map
            .insert(key.clone(), Box::new(Cached { content, reply }))
            .is_none()
        {
            c.order.push_back(key);
        }
        while c.order.len() > self.cfg.retransmission_entries_max {
            if let Some(old) = c.order.pop_front() {
                c.map.remove(&old);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Store helpers
    // -----------------------------------------------------------------------------------------

    async fn rows(&self, q: TxnQuery) -> Result<Vec<TxnRow>, PosError> {
        self.blocking(move |s| {
            let mut q = q;
            q.limit = store::PAGE_LIMIT_MAX;
            let mut out = Vec::new();
            loop {
                let page = s.list_txns(&q)?;
                out.extend(page.rows);
                match (page.has_more, page.next_cursor) {
                    (true, Some(c)) => {
                        q.cursor = Some(c);
                        q.as_of_seq = Some(page.as_of_seq);
                    }
                    _ => return Ok(out),
                }
            }
        })
        .await
    }

    fn query(ctx: &Ctx) -> TxnQuery {
        TxnQuery {
            merchant_id: Some(ctx.merchant_id.clone()),
            ..TxnQuery::default()
        }
    }

    /// Records with this terminal, batch and STAN (any kind, reversals included).
    async fn rows_by_key(&self, ctx: &Ctx, batch: u32, stan: u32) -> Result<Vec<TxnRow>, PosError> {
        let (Ok(b), Ok(s)) = (BatchNo::new(batch), Stan::new(stan)) else {
            return Ok(Vec::new());
        };
        let q = TxnQuery {
            terminal_ids: vec![ctx.terminal_id.clone()],
            batch_no: Some(b),
            stan: Some(s),
            ..Self::query(ctx)
        };
        self.rows(q).await
    }

    /// Stores one record; returns once it is durably committed. No thread waits meanwhile:
    /// the writer hands the outcome over when its group has committed.
    async fn ingest(&self, txn: NewTxn) -> Result<(), PosError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store
            .ingest_then(vec![txn], IngestOptions::default(), move |r| {
                let _ = tx.send(r);
            })?;
        match rx.await {
            Ok(r) => r.map(|_| ()).map_err(PosError::from),
            Err(_) => Err(PosError::from(store::StoreError::WriterGone)),
        }
    }

    fn reduce_card(&self, f: &FinancialRequest) -> Card {
        match f
            .card_pan()
            .and_then(|p| domain::Pan::parse(p.expose()).ok())
        {
            Some(pan) => Card {
                luhn_ok: pan.luhn_valid(),
                summary: Some(pan.summary(&self.card_key)),
            },
            None => Card {
                summary: None,
                luhn_ok: false,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_txn(
        ctx: &Ctx,
        f: &FinancialRequest,
        code: &str,
        rrn: &str,
        auth_code: Option<&str>,
        card: Option<CardSummary>,
        original: Option<OriginalRef>,
        reversal: bool,
        amount_fen: i64,
    ) -> Result<NewTxn, String> {
        Ok(NewTxn {
            merchant_id: ctx.merchant_id.clone(),
            terminal_id: Some(ctx.terminal_id.clone()),
            batch_no: Some(BatchNo::new(f.context.batch).map_err(|e| e.to_string())?),
            stan: Some(Stan::new(f.stan).map_err(|e| e.to_string())?),
            rrn: Some(Rrn::parse(rrn).map_err(|e| e.to_string())?),
            auth_code: auth_code
                .map(AuthCode::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            kind: txn_kind(f.kind),
            channel: Channel::Card,
            card,
            amount: Amount::from_fen(amount_fen).map_err(|e| e.to_string())?,
            currency: Currency::CNY,
            response_code: ResponseCode::parse(code).map_err(|e| e.to_string())?,
            txn_time: ctx.now,
            original,
            reversal,
            source: Source::Iso8583,
            external_ref: None,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Network management
    // -----------------------------------------------------------------------------------------

    async fn sign_on(&self, ctx: &Ctx, msg: &Message, s: &SignOn) -> Outcome {
        let lock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _g = lock.lock().await;
        let open_batch = ctx.terminal.open_batch.unwrap_or_else(first_batch);
        let mut session = TerminalSession {
            signed_on: true,
            working_keys_hex: None,
        };
        let mut keys_field = None;
        if let Some(tmk) = &ctx.tmk {
            let pik = Key16::new(rand::random());
            let mak = Key16::new(rand::random());
            let wk = WorkingKeys::issue(tmk, &pik, &mak).to_bytes();
            session.working_keys_hex = Some(hex::encode(&wk));
            keys_field = Some(wk);
        }
        let (mid, tid, now) = (ctx.merchant_id.clone(), ctx.terminal_id.clone(), ctx.now);
        let sync = TerminalSync {
            open_batch: Some(open_batch),
            last_seen_at: Some(now),
            last_sign_on_at: Some(now),
            last_settlement: None,
        };
        let stored = self
            .blocking(move |st| Ok(st.update_terminal_sync(&mid, &tid, &sync)?))
            .await;
        let stored = match stored {
            Ok(()) => {
                self.sessions
                    .put(ctx.merchant_id.as_str(), ctx.terminal_id.as_str(), session)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            warn!(error = %e, "sign-on could not be stored; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        info!(terminal_id = %ctx.terminal_id, batch = open_batch.get(), keyed = ctx.keyed(), "signed on");
        let data = ReplyData {
            rrn: self.rrn.next().ok(),
            context: Some(
                Field60::new("00", open_batch.get(), &s.context.network_code).to_digits(),
            ),
            working_keys: keys_field,
            ..ReplyData::default()
        };
        match self.build(ctx, msg, "00", data) {
            Some(r) => self.send(ctx, r),
            None => Outcome::Close("reply could not be built"),
        }
    }

    async fn sign_off(&self, ctx: &Ctx, msg: &Message) -> Outcome {
        let lock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _g = lock.lock().await;
        let session = TerminalSession {
            signed_on: false,
            working_keys_hex: ctx.session.working_keys_hex.clone(),
        };
        let r = self
            .sessions
            .put(ctx.merchant_id.as_str(), ctx.terminal_id.as_str(), session);
        if let Err(e) = r {
            warn!(error = %e, "sign-off could not be stored; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        self.reply_code(ctx, msg, "00")
    }

    fn signed_on_with_batch(&self, ctx: &Ctx, batch: u32) -> bool {
        // The session may have changed since `identify` (a sign-off pipelined before this).
        let session = self
            .sessions
            .get(ctx.merchant_id.as_str(), ctx.terminal_id.as_str());
        session.signed_on && batch == ctx.open_batch()
    }

    // -----------------------------------------------------------------------------------------
    // Financial requests
    // -----------------------------------------------------------------------------------------

    async fn financial(&self, ctx: &Ctx, msg: &Message, f: &FinancialRequest) -> Outcome {
        let tlock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _t = tlock.lock().await;
        // The terminal may have settled or signed on while this request waited for the lock.
        let ctx = &match self.refresh(ctx).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "terminal reload failed; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
        };
        let card = self.reduce_card(f);
        let content = Content {
            card_token: card.summary.as_ref().map(|c| c.token.clone()),
            amount_fen: f.amount_fen,
            rrn: f.rrn.clone(),
            auth_code: f.auth_code.clone(),
            original: f.original.as_ref().map(|o| o.to_digits()),
            message_type: f.context.message_type.clone(),
            additional: None,
        };
        let key = Self::retrans_key(ctx, msg, f.context.batch, f.stan);
        if let Some(o) = self.retransmission(ctx, msg, &key, &content) {
            return o;
        }
        let kind = txn_kind(f.kind);
        if let Err(e) = self.load_batch_counts(ctx, f.context.batch).await {
            warn!(error = %e, "batch lookup failed; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        let same_key = if self.stan_used(ctx, f.context.batch, f.stan) {
            match self.rows_by_key(ctx, f.context.batch, f.stan).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "lookup failed; answering 96");
                    return self.reply_code(ctx, msg, "96");
                }
            }
        } else {
            Vec::new()
        };
        if let Some(row) = same_key.iter().find(|r| !r.reversal && r.kind == kind) {
            // A retransmission whose first reply this process no longer remembers.
            let same = row.card.as_ref().map(|c| c.token.clone()) == content.card_token
                && f.amount_fen.unwrap_or(0) == row.amount.fen() as u64;
            if !same {
                return self.reply_code(ctx, msg, "94");
            }
            return self.reply_from_row(ctx, msg, f, row);
        }
        let decision = if same_key.iter().any(|r| r.reversal && r.kind == kind) {
            // The original arrives after its own orphan reversal.
            Err("12")
        } else if !self.signed_on_with_batch(ctx, f.context.batch) {
            Err("77")
        } else {
            Ok(())
        };
        let mlock = kind.needs_original().then(|| Self::lock_for(&self.merchant_locks, ctx.merchant_id.to_string()));
        let _m = match &mlock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        // The original, when one was found, goes with the record even if declined: the store
        // needs it for every void, refund and completion record.
        let (original, decision) = match decision {
            Ok(()) => match self.check_original(ctx, f, &card).await {
                Ok(o) => (o, Ok(())),
                Err((code, o)) => (o, Err(code)),
            },
            Err(code) => (None, Err(code)),
        };
        let decision = decision.and_then(|()| {
            if !card.luhn_ok {
                return Err("14");
            }
            if let Some(exp) = f.card_expiry() {
                let now_yymm = ctx.clock.local(ctx.now).format("%y%m").to_string();
                let month_ok = exp
                    .get(2..4)
                    .and_then(|m| m.parse::<u8>().ok())
                    .is_some_and(|m| (1..=12).contains(&m));
                if exp < now_yymm.as_str() || !month_ok {
                    return Err("54");
                }
            }
            if f.kind.requires_amount() {
                let amount = f.amount_fen.unwrap_or(0);
                if amount == 0 {
                    return Err("13");
                }
                if ctx
                    .single_txn_limit
                    .is_some_and(|l| amount > l.fen().max(0) as u64)
                {
                    return Err("61");
                }
            }
            if !self.batch_has_room(ctx, f.context.batch, kind) {
                return Err("12");
            }
            Ok(())
        });
        let (code, silent) = match decision {
            Err(code) => (code, false),
            Ok(()) => {
                let last4 = card
                    .summary
                    .as_ref()
                    .map(|c| c.last4.as_str())
                    .unwrap_or("");
                match (test_card_kind(f.kind), last4) {
                    (true, "0051") => ("51", false),
                    (true, "0055") => ("55", false),
                    (true, "0005") => ("05", false),
                    (true, "0098") => ("00", true),
                    _ => ("00", false),
                }
            }
        };
        self.finish(
            ctx,
            msg,
            f,
            key,
            content,
            card.summary,
            code,
            original,
            silent,
        )
        .await
    }

    /// Reloads the terminal row and session after waiting for the terminal lock.
    async fn refresh(&self, ctx: &Ctx) -> Result<Ctx, PosError> {
        let found = self.load_ident(&ctx.terminal_id, &ctx.merchant_id).await?;
        let terminal = found
            .map(|c| c.terminal)
            .unwrap_or_else(|| ctx.terminal.clone());
        let session = self
            .sessions
            .get(ctx.merchant_id.as_str(), ctx.terminal_id.as_str());
        let mac_key = if session == ctx.session {
            ctx.mac_key.clone()
        } else {
            mac_key_for(ctx.tmk.as_ref(), &session)
        };
        Ok(Ctx {
            now: Utc::now(),
            clock: ctx.clock,
            merchant_id: ctx.merchant_id.clone(),
            terminal_id: ctx.terminal_id.clone(),
            terminal,
            merchant_status: ctx.merchant_status,
            single_txn_limit: ctx.single_txn_limit,
            tmk: ctx.tmk.clone(),
            mac_key,
            session,
        })
    }

    fn batch_has_room(&self, ctx: &Ctx, batch: u32, kind: TxnKind) -> bool {
        let m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
        let (debit, credit) = m
            .get(&(ctx.lock_key(), batch))
            .map(|c| (c.debit, c.credit))
            .unwrap_or_default();
        let c = BatchCounts {
            debit,
            credit,
            stans: HashSet::new(),
        };
        match kind {
            k if is_debit(k) => c.debit < BATCH_TXNS_MAX,
            TxnKind::Refund => c.credit < BATCH_TXNS_MAX,
            _ => true,
        }
    }

    /// Loads the batch's index from the store unless this process already has it.
    async fn load_batch_counts(&self, ctx: &Ctx, batch: u32) -> Result<(), PosError> {
        let known = {
            let m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
            m.contains_key(&(ctx.lock_key(), batch))
        };
        if known {
            return Ok(());
        }
        let counts = match self.batch_rows(ctx, batch).await {
            Ok(rows) => rows.iter().fold(BatchCounts::default(), |mut c, r| {
                if let Some(s) = r.stan {
                    c.stans.insert(s.get());
                }
                if r.response_code.is_approved() && !r.reversal {
                    if is_debit(r.kind) {
                        c.debit += 1;
                    } else if r.kind == TxnKind::Refund {
                        c.credit += 1;
                    }
                }
                c
            }),
            Err(e) => return Err(e),
        };
        let mut m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
        m.insert((ctx.lock_key(), batch), counts);
        Ok(())
    }

    /// True when the batch may hold a record with this STAN (so the store must be asked).
    fn stan_used(&self, ctx: &Ctx, batch: u32, stan: u32) -> bool {
        let m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(ctx.lock_key(), batch))
            .is_none_or(|c| c.stans.contains(&stan))
    }

    fn note_record(&self, ctx: &Ctx, batch: u32, stan: u32, kind: TxnKind, approved: bool) {
        let mut m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = m.get_mut(&(ctx.lock_key(), batch)) {
            c.stans.insert(stan);
            if !approved {
                return;
            }
            if is_debit(kind) {
                c.debit += 1;
            } else if kind == TxnKind::Refund {
                c.credit += 1;
            }
        }
    }

    async fn batch_rows(&self, ctx: &Ctx, batch: u32) -> Result<Vec<TxnRow>, PosError> {
        let Ok(b) = BatchNo::new(batch) else {
            return Ok(Vec::new());
        };
        let q = TxnQuery {
            terminal_ids: vec![ctx.terminal_id.clone()],
            batch_no: Some(b),
            ..Self::query(ctx)
        };
        self.rows(q).await
    }

    /// The original checks (`25`, `12`, `64`, and `61` of refunds and completions).
    async fn check_original(
        &self,
        ctx: &Ctx,
        f: &FinancialRequest,
        card: &Card,
    ) -> Result<Option<OriginalRef>, (&'static str, Option<OriginalRef>)> {
        self.find_original(ctx, f, card)
            .await
            .map_err(|(code, row)| {
                let r = row.and_then(|r| match f.kind {
                    FinancialKind::PurchaseVoid | FinancialKind::CompletionVoid => {
                        Some(OriginalRef::BatchStan {
                            batch_no: r.batch_no?,
                            stan: r.stan?,
                        })
                    }
                    _ => r.rrn.map(OriginalRef::Rrn),
                });
                (code, r)
            })
    }

    /// The original checks; a refusal carries the original row when one was found.
    async fn find_original(
        &self,
        ctx: &Ctx,
        f: &FinancialRequest,
        card: &Card,
    ) -> Result<Option<OriginalRef>, (&'static str, Option<TxnRow>)> {
        let amount = f.amount_fen.unwrap_or(0) as i64;
        let lookup = |e: PosError| {
            warn!(error = %e, "original lookup failed");
            ("96", None)
        };
        match f.kind {
            FinancialKind::PurchaseVoid | FinancialKind::CompletionVoid => {
                let orig_kind = if f.kind == FinancialKind::PurchaseVoid {
                    TxnKind::Purchase
                } else {
                    TxnKind::PreauthCompletion
                };
                let o = f.original.as_ref().ok_or(NOT_FOUND)?;
                let mut rows = self
                    .rows_by_key(ctx, o.original_batch, o.original_stan)
                    .await
                    .map_err(lookup)?;
                rows.retain(|r| !r.reversal && r.kind == orig_kind);
                if rows.is_empty() {
                    if let Some(rrn) = f.rrn.as_deref().and_then(|r| Rrn::parse(r).ok()) {
                        let q = TxnQuery {
                            terminal_ids: vec![ctx.terminal_id.clone()],
                            rrn: Some(rrn),
                            kinds: vec![orig_kind],
                            ..Self::query(ctx)
                        };
                        rows = self.rows(q).await.map_err(lookup)?;
                        rows.retain(|r| !r.reversal);
                    }
                }
                let row = rows
                    .into_iter()
                    .find(|r| r.response_code.is_approved())
                    .ok_or(NOT_FOUND)?;
                if row.batch_no.map(BatchNo::get) != Some(ctx.open_batch()) {
                    return Err(("12", Some(row.clone())));
                }
                if matches!(
                    row.status,
                    TxnStatus::Voided
                        | TxnStatus::Reversed
                        | TxnStatus::PartiallyRefunded
                        | TxnStatus::Refunded
                ) {
                    return Err(("12", Some(row.clone())));
                }
                if row.amount.fen() != amount {
                    return Err(("64", Some(row.clone())));
                }
                let (Some(batch_no), Some(stan)) = (row.batch_no, row.stan) else {
                    return Err(NOT_FOUND);
                };
                Ok(Some(OriginalRef::BatchStan { batch_no, stan }))
            }
            FinancialKind::Refund => {
                let rrn = f
                    .rrn
                    .as_deref()
                    .and_then(|r| Rrn::parse(r).ok())
                    .ok_or(NOT_FOUND)?;
                let q = TxnQuery {
                    rrn: Some(rrn.clone()),
                    kinds: vec![TxnKind::Purchase, TxnKind::PreauthCompletion],
                    ..Self::query(ctx)
                };
                let rows = self.rows(q).await.map_err(lookup)?;
                let row = rows
                    .into_iter()
                    .find(|r| !r.reversal && r.response_code.is_approved())
                    .ok_or(NOT_FOUND)?;
                if matches!(row.status, TxnStatus::Voided | TxnStatus::Reversed) {
                    return Err(("12", Some(row.clone())));
                }
                if ctx.now - row.txn_time > chrono::Duration::days(self.cfg.refund_window_days) {
                    return Err(("12", Some(row.clone())));
                }
                let id = row.id.clone();
                let detail = self
                    .blocking(move |s| Ok(s.get_txn(&id, &Scope::all())?))
                    .await
                    .map_err(lookup)?;
                let refunded: i64 = detail
                    .map(|d| {
                        d.events
                            .iter()
                            .filter(|e| {
                                e.kind == TxnKind::Refund
                                    && !e.reversal
                                    && e.status == TxnStatus::Approved
                            })
                            .map(|e| e.amount.fen())
                            .sum()
                    })
                    .unwrap_or(0);
                if refunded + amount > row.amount.fen() {
                    return Err(("61", Some(row.clone())));
                }
                Ok(Some(OriginalRef::Rrn(rrn)))
            }
            FinancialKind::PreAuthVoid | FinancialKind::PreAuthCompletion => {
                let auth = f
                    .auth_code
                    .as_deref()
                    .and_then(|a| AuthCode::parse(a).ok())
                    .ok_or(NOT_FOUND)?;
                let q = TxnQuery {
                    auth_code: Some(auth),
                    kinds: vec![TxnKind::Preauth],
                    ..Self::query(ctx)
                };
                let rows = self.rows(q).await.map_err(lookup)?;
                let token = card.summary.as_ref().map(|c| c.token.as_str());
                let date = f
                    .original
                    .as_ref()
                    .map(|o| o.original_date.as_str())
                    .filter(|d| *d != "0000");
                let row = rows
                    .into_iter()
                    .filter(|r| !r.reversal && r.response_code.is_approved())
                    .filter(|r| r.card.as_ref().map(|c| c.token.as_str()) == token)
                    .find(|r| date.is_none_or(|d| r.local_time.format("%m%d").to_string() == d))
                    .ok_or(NOT_FOUND)?;
                if matches!(
                    row.status,
                    TxnStatus::Voided | TxnStatus::Reversed | TxnStatus::Completed
                ) {
                    return Err(("12", Some(row.clone())));
                }
                if ctx.now - row.txn_time > chrono::Duration::days(self.cfg.preauth_expiry_days) {
                    return Err(("12", Some(row.clone())));
                }
                let pre = row.amount.fen();
                if f.kind == FinancialKind::PreAuthCompletion {
                    if amount.saturating_mul(100) > pre.saturating_mul(115) {
                        return Err(("61", Some(row.clone())));
                    }
                } else if amount != pre {
                    return Err(("64", Some(row.clone())));
                }
                let rrn = row.rrn.clone().ok_or(NOT_FOUND)?;
                Ok(Some(OriginalRef::Rrn(rrn)))
            }
            FinancialKind::BalanceInquiry | FinancialKind::Purchase | FinancialKind::PreAuth => {
                Ok(None)
            }
        }
    }

    /// Records the decision, then builds, remembers and sends the reply.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        ctx: &Ctx,
        msg: &Message,
        f: &FinancialRequest,
        key: RetransKey,
        content: Content,
        card: Option<CardSummary>,
        code: &str,
        original: Option<OriginalRef>,
        silent: bool,
    ) -> Outcome {
        let approved = code == "00";
        let kind = txn_kind(f.kind);
        let Ok(rrn) = self.rrn.next() else {
            warn!("no RRN could be reserved; answering 96");
            return self.reply_code(ctx, msg, "96");
        };
        let auth = approved.then(|| format!("{:06}", rand::random::<u32>() % 1_000_000));
        let amount = f.amount_fen.unwrap_or(0) as i64;
        let txn = match Self::new_txn(
            ctx,
            f,
            code,
            &rrn,
            auth.as_deref(),
            card,
            original,
            false,
            amount,
        ) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "record could not be built; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
        };
        // A declined void, refund or completion whose original was never found cannot be
        // stored (the store needs the original); it is logged and answered.
        let recordable = approved || !kind.needs_original() || txn.original.is_some();
        if !recordable {
            info!(terminal_id = %ctx.terminal_id, stan = f.stan, code, "declined without an original: not recorded");
        } else if let Err(e) = self.ingest(txn).await {
            warn!(error = %e, terminal_id = %ctx.terminal_id, stan = f.stan, "store failed; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        if recordable {
            self.note_record(ctx, f.context.batch, f.stan, kind, approved);
        }
        let data = ReplyData {
            rrn: Some(rrn),
            auth_code: auth,
            ..ReplyData::default()
        };
        let Some(reply) = self.build(ctx, msg, code, data) else {
            return Outcome::Close("reply could not be built");
        };
        self.remember(key, content, (!silent).then(|| reply.clone()));
        if silent {
            info!(terminal_id = %ctx.terminal_id, stan = f.stan, "test card 0098: approved, recorded, no reply");
            return Outcome::Silent;
        }
        self.send(ctx, reply)
    }

    /// The reply to a retransmission rebuilt from the stored record.
    fn reply_from_row(
        &self,
        ctx: &Ctx,
        msg: &Message,
        f: &FinancialRequest,
        row: &TxnRow,
    ) -> Outcome {
        let approved = row.response_code.is_approved();
        let last4 = row.card.as_ref().map(|c| c.last4.as_str()).unwrap_or("");
        if approved && test_card_kind(f.kind) && last4 == "0098" {
            return Outcome::Silent;
        }
        let data = ReplyData {
            local_time: row.local_time.format("%H%M%S").to_string(),
            local_date: row.local_time.format("%m%d").to_string(),
            settlement_date: Some(row.settlement_date.mmdd()),
            rrn: row.rrn.as_ref().map(|r| r.to_string()),
            auth_code: row.auth_code.as_ref().map(|a| a.to_string()),
            ..ReplyData::default()
        };
        match self.build(ctx, msg, row.response_code.as_str(), data) {
            Some(r) => self.send(ctx, r),
            None => Outcome::Close("reply could not be built"),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reversal
    // -----------------------------------------------------------------------------------------

    async fn reversal(&self, ctx: &Ctx, msg: &Message, r: &Reversal) -> Outcome {
        let f = &r.original;
        let tlock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _t = tlock.lock().await;
        let mlock = Self::lock_for(&self.merchant_locks, ctx.merchant_id.to_string());
        let _m = mlock.lock().await;
        let card = self.reduce_card(f);
        let content = Content {
            card_token: card.summary.as_ref().map(|c| c.token.clone()),
            amount_fen: f.amount_fen,
            rrn: f.rrn.clone(),
            auth_code: f.auth_code.clone(),
            original: f.original.as_ref().map(|o| o.to_digits()),
            message_type: f.context.message_type.clone(),
            additional: None,
        };
        let key = Self::retrans_key(ctx, msg, f.context.batch, f.stan);
        if let Some(o) = self.retransmission(ctx, msg, &key, &content) {
            return o;
        }
        let kind = txn_kind(f.kind);
        let rows = match self.rows_by_key(ctx, f.context.batch, f.stan).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "lookup failed; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
        };
        let original = rows.iter().find(|x| !x.reversal && x.kind == kind);
        let earlier = rows.iter().find(|x| x.reversal && x.kind == kind);
        let orig_approved = original.filter(|o| o.response_code.is_approved());
        let orig_auth = orig_approved.and_then(|o| o.auth_code.as_ref().map(|a| a.to_string()));
        let rrn = match (
            original.and_then(|o| o.rrn.clone()),
            earlier.and_then(|e| e.rrn.clone()),
        ) {
            (Some(r), _) | (None, Some(r)) => r.to_string(),
            (None, None) => match self.rrn.next() {
                Ok(r) => r,
                Err(_) => return self.reply_code(ctx, msg, "96"),
            },
        };
        if earlier.is_none() {
            let amount = f
                .amount_fen
                .map(|a| a as i64)
                .or(original.map(|o| o.amount.fen()))
                .unwrap_or(0);
            let txn = Self::new_txn(
                ctx,
                f,
                "00",
                &rrn,
                orig_auth.as_deref(),
                card.summary.clone(),
                None,
                true,
                amount,
            );
            let stored = match txn {
                Ok(t) => self.ingest(t).await,
                Err(e) => Err(PosError::StateFile {
                    path: "reversal".into(),
                    reason: e,
                }),
            };
            if let Err(e) = stored {
                warn!(error = %e, "reversal could not be stored; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
            if let Some(o) = orig_approved {
                if matches!(o.status, TxnStatus::PartiallyRefunded | TxnStatus::Refunded) {
                    let d = Discrepancy {
                        kind: DiscrepancyKind::ReversedWithRefunds,
                        merchant_id: ctx.merchant_id.to_string(),
                        terminal_id: ctx.terminal_id.to_string(),
                        batch_no: f.context.batch,
                        stan: Some(f.stan),
                        host_amount_fen: Some(o.amount.fen()),
                        terminal_amount_fen: f.amount_fen.map(|a| a as i64),
                        card_masked: o.card.as_ref().map(|c| c.masked.clone()),
                        txn_seq: Some(o.seq),
                        at: ctx.now,
                    };
                    if let Err(e) = self.write_discrepancies(vec![d]).await {
                        warn!(error = %e, "discrepancy could not be written");
                    }
                }
            }
            self.note_record(ctx, f.context.batch, f.stan, kind, false);
            info!(terminal_id = %ctx.terminal_id, stan = f.stan, orphan = original.is_none(), "reversal recorded");
        }
        let data = ReplyData {
            rrn: Some(rrn),
            auth_code: orig_auth,
            ..ReplyData::default()
        };
        let Some(reply) = self.build(ctx, msg, "00", data) else {
            return Outcome::Close("reply could not be built");
        };
        self.remember(key, content, Some(reply.clone()));
        self.send(ctx, reply)
    }

    /// Records discrepancies durably in the store (one group commit) before the reply.
    async fn write_discrepancies(&self, ds: Vec<Discrepancy>) -> Result<(), PosError> {
        if ds.is_empty() {
            return Ok(());
        }
        for d in &ds {
            warn!(kind = d.kind.as_str(), terminal_id = %d.terminal_id, batch = d.batch_no, stan = ?d.stan, "discrepancy");
        }
        let rows = ds
            .iter()
            .map(Discrepancy::to_new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| PosError::StateFile {
                path: "discrepancy".into(),
                reason,
            })?;
        self.blocking(move |st| Ok(st.record_discrepancies(rows)?))
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Batch settlement and upload
    // -----------------------------------------------------------------------------------------

    async fn settlement(&self, ctx: &Ctx, msg: &Message, s: &BatchSettlement) -> Outcome {
        let tlock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _t = tlock.lock().await;
        let ctx = &match self.refresh(ctx).await {
            Ok(c) => c,
            Err(_) => return self.reply_code(ctx, msg, "96"),
        };
        let content = Content {
            card_token: None,
            amount_fen: None,
            rrn: None,
            auth_code: None,
            original: None,
            message_type: s.context.message_type.clone(),
            additional: Some(s.totals.to_digits()),
        };
        let key = Self::retrans_key(ctx, msg, s.context.batch, s.stan);
        if let Some(o) = self.retransmission(ctx, msg, &key, &content) {
            return o;
        }
        if !self.signed_on_with_batch(ctx, s.context.batch) {
            return self.reply_code(ctx, msg, "77");
        }
        let rows = match self.batch_rows(ctx, s.context.batch).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "batch totals failed; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
        };
        let mut host = iso8583::Totals::default();
        for r in &rows {
            match counts_in_totals(r) {
                Some(false) => {
                    host.debit_amount_fen += r.amount.fen().max(0) as u64;
                    host.debit_count += 1;
                }
                Some(true) => {
                    host.credit_amount_fen += r.amount.fen().max(0) as u64;
                    host.credit_count += 1;
                }
                None => {}
            }
        }
        let same = |a: &iso8583::Totals, b: &iso8583::Totals| {
            a.debit_amount_fen == b.debit_amount_fen
                && a.debit_count == b.debit_count
                && a.credit_amount_fen == b.credit_amount_fen
                && a.credit_count == b.credit_count
        };
        let mut totals = s.totals;
        let domestic_ok = same(&totals.domestic, &host);
        let foreign_ok = same(&totals.foreign, &iso8583::Totals::default());
        totals.domestic.result = if domestic_ok { 1 } else { 2 };
        totals.foreign.result = if foreign_ok { 1 } else { 2 };
        let result = if domestic_ok && foreign_ok {
            "balanced"
        } else {
            "unbalanced"
        };
        let next = BatchNo::new(s.context.batch)
            .map(BatchNo::next)
            .unwrap_or_else(|_| first_batch());
        let (mid, tid, now) = (ctx.merchant_id.clone(), ctx.terminal_id.clone(), ctx.now);
        let sync = TerminalSync {
            open_batch: Some(next),
            last_seen_at: Some(now),
            last_sign_on_at: None,
            last_settlement: Some((now, result.to_owned())),
        };
        if let Err(e) = self
            .blocking(move |st| Ok(st.update_terminal_sync(&mid, &tid, &sync)?))
            .await
        {
            warn!(error = %e, "settlement could not be stored; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        info!(terminal_id = %ctx.terminal_id, batch = s.context.batch, result, "batch settled");
        {
            let mut m = self.batch_counts.lock().unwrap_or_else(|p| p.into_inner());
            m.remove(&(ctx.lock_key(), s.context.batch));
        }
        let data = ReplyData {
            rrn: self.rrn.next().ok(),
            additional_data: Some(totals.to_digits()),
            ..ReplyData::default()
        };
        let Some(reply) = self.build(ctx, msg, "00", data) else {
            return Outcome::Close("reply could not be built");
        };
        self.remember(key, content, Some(reply.clone()));
        self.send(ctx, reply)
    }

    async fn upload(&self, ctx: &Ctx, msg: &Message, u: &BatchUpload) -> Outcome {
        let tlock = Self::lock_for(&self.terminal_locks, ctx.lock_key());
        let _t = tlock.lock().await;
        let ctx = &match self.refresh(ctx).await {
            Ok(c) => c,
            Err(_) => return self.reply_code(ctx, msg, "96"),
        };
        let digits = match &u.content {
            UploadContent::Items(i) => i.to_digits(),
            UploadContent::End(e) => e.to_digits(),
        };
        let content = Content {
            card_token: None,
            amount_fen: None,
            rrn: None,
            auth_code: None,
            original: None,
            message_type: u.context.network_code.clone(),
            additional: Some(digits),
        };
        let batch = u.context.batch;
        let key = Self::retrans_key(ctx, msg, batch, u.stan);
        if let Some(o) = self.retransmission(ctx, msg, &key, &content) {
            return o;
        }
        let session = self
            .sessions
            .get(ctx.merchant_id.as_str(), ctx.terminal_id.as_str());
        if !session.signed_on || batch == ctx.open_batch() {
            return self.reply_code(ctx, msg, "77");
        }
        let rows = match self.batch_rows(ctx, batch).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "batch lookup failed; answering 96");
                return self.reply_code(ctx, msg, "96");
            }
        };
        let discrepancy =
            |kind, stan, host: Option<i64>, term: Option<i64>, masked: Option<String>| {
                Discrepancy {
                    kind,
                    merchant_id: ctx.merchant_id.to_string(),
                    terminal_id: ctx.terminal_id.to_string(),
                    batch_no: batch,
                    stan,
                    host_amount_fen: host,
                    terminal_amount_fen: term,
                    card_masked: masked,
                    txn_seq: None,
                    at: ctx.now,
                }
            };
        let upload_key = (ctx.lock_key(), batch);
        let mut found = Vec::new();
        match &u.content {
            UploadContent::Items(items) => {
                let mut up = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
                let progress = up.entry(upload_key).or_default();
                for item in &items.items {
                    progress.items += 1;
                    progress.stans.insert(item.stan);
                    let host = rows.iter().find(|r| {
                        r.stan.map(Stan::get) == Some(item.stan) && counts_in_totals(r).is_some()
                    });
                    let term_amount = item.amount_fen as i64;
                    match host {
                        None => found.push(discrepancy(
                            DiscrepancyKind::TerminalOnly,
                            Some(item.stan),
                            None,
                            Some(term_amount),
                            Some(item.pan.masked()),
                        )),
                        Some(h) if h.amount.fen() != term_amount => found.push(Discrepancy {
                            txn_seq: Some(h.seq),
                            ..discrepancy(
                                DiscrepancyKind::AmountDiffers,
                                Some(item.stan),
                                Some(h.amount.fen()),
                                Some(term_amount),
                                h.card.as_ref().map(|c| c.masked.clone()),
                            )
                        }),
                        Some(_) => {}
                    }
                }
            }
            UploadContent::End(end) => {
                let progress = {
                    let mut up = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
                    up.remove(&upload_key).unwrap_or_default()
                };
                for r in rows.iter().filter(|r| counts_in_totals(r).is_some()) {
                    let stan = r.stan.map(Stan::get);
                    if !stan.is_some_and(|s| progress.stans.contains(&s)) {
                        found.push(Discrepancy {
                            txn_seq: Some(r.seq),
                            ..discrepancy(
                                DiscrepancyKind::HostOnly,
                                stan,
                                Some(r.amount.fen()),
                                None,
                                r.card.as_ref().map(|c| c.masked.clone()),
                            )
                        });
                    }
                }
                if u32::from(end.total_items) != progress.items {
                    found.push(discrepancy(
                        DiscrepancyKind::UploadCountDiffers,
                        None,
                        Some(i64::from(progress.items)),
                        Some(i64::from(end.total_items)),
                        None,
                    ));
                }
            }
        }
        if let Err(e) = self.write_discrepancies(found).await {
            warn!(error = %e, "discrepancies could not be written; answering 96");
            return self.reply_code(ctx, msg, "96");
        }
        let Some(reply) = self.build(ctx, msg, "00", ReplyData::default()) else {
            return Outcome::Close("reply could not be built");
        };
        self.remember(key, content, Some(reply.clone()));
        self.send(ctx, reply)
    }
}

/// Moves the discrepancies of `pos-discrepancies.jsonl` (written by versions before the store
/// kept them) into the store, then renames the file to `….imported` so they are not read twice.
fn import_discrepancy_file(
    store: &SqliteStore,
    data_dir: &std::path::Path,
) -> Result<(), PosError> {
    let file = DiscrepancyFile::new(data_dir);
    let lines = file.read_all()?;
    if !file.path().exists() {
        return Ok(());
    }
    let kind_of = |s: &str| {
        PosDiscrepancyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
    };
    let mut rows = Vec::new();
    for l in &lines {
        let text = |k: &str| l[k].as_str().map(str::to_owned);
        let (Some(m), Some(t), Some(kind)) = (
            text("merchant_id").and_then(|m| MerchantId::parse(&m).ok()),
            text("terminal_id").and_then(|t| TerminalId::parse(&t).ok()),
            l["kind"].as_str().and_then(kind_of),
        ) else {
            warn!("a discrepancy line could not be imported; it stays in the renamed file");
            continue;
        };
        let card = text("card_masked").and_then(|c| CardSummary::from_masked(&c).ok());
        rows.push(NewPosDiscrepancy {
            merchant_id: m,
            terminal_id: t,
            batch_no: l["batch_no"]
                .as_u64()
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(0),
            stan: l["stan"].as_u64().and_then(|s| u32::try_from(s).ok()),
            kind,
            terminal_amount_fen: l["terminal_amount_fen"].as_i64(),
            host_amount_fen: l["host_amount_fen"].as_i64(),
            card_bin: card.as_ref().map(|c| c.bin.clone()),
            card_last4: card.map(|c| c.last4),
            txn_seq: None,
            detail: Some("imported from pos-discrepancies.jsonl".into()),
            recorded_at: text("at")
                .and_then(|a| DateTime::parse_from_rfc3339(&a).ok())
                .map(|a| a.with_timezone(&Utc))
                .unwrap_or_else(Utc::now),
        });
    }
    let n = rows.len();
    store.record_discrepancies(rows)?;
    let done = file.path().with_extension("jsonl.imported");
    std::fs::rename(file.path(), &done).map_err(|e| PosError::io(file.path(), e))?;
    info!(
        discrepancies = n,
        "discrepancy file imported into the store"
    );
    Ok(())
}

/// A new terminal's first batch.
fn first_batch() -> BatchNo {
    BatchNo::new(1).expect("1 is a valid batch number")
}

/// The clear MAC key of a keyed terminal's current session (decrypted under its TMK).
fn mac_key_for(tmk: Option<&Key16>, session: &TerminalSession) -> Option<MacKey> {
    let (tmk, h) = (tmk?, session.working_keys_hex.as_ref()?);
    let wk = WorkingKeys::parse(&hex::decode(h).ok()?).ok()?;
    wk.open(tmk).ok().map(|(_pin, mak)| mak)
}

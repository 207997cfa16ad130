//! A POS terminal simulator over the same codec: [`Terminal`] speaks to a host one request at
//! a time (tests drive it message by message), and [`run`] drives many terminals concurrently
//! with a transaction mix for `poslens terminal-sim` and the benchmarks.
//!
//! Test card numbers are made up here ([`card_number`]); they are never real cards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use iso8583::mac::{self, MacKey};
use iso8583::{
    BatchSettlement, BatchUpload, Envelope, Field60, Field61, FinancialKind, FinancialRequest, FrameDecoder,
    FrameStatus, Key16, Message, Pan, Request, Reversal, SettlementTotals, SignOn, Totals, UploadContent, UploadEnd,
    UploadItem, UploadItems, WorkingKeys,
};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// TPDU 60 0003 0000 and header 60 31 00 31 13 01, as in the spec's vectors.
pub const ENVELOPE_HEX: &str = "6000030000603100311301";

#[derive(Debug, Error)]
pub enum SimError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the host closed the connection")]
    Closed,
    #[error("bad frame from the host: {0}")]
    Frame(String),
    #[error("building the request: {0}")]
    Build(String),
    #[error("sign-on refused with {0}")]
    SignOn(String),
    #[error("bad --mix {0:?}: use kind:weight pairs, kinds purchase, void, refund, preauth, balance")]
    Mix(String),
    #[error("{0}")]
    Config(String),
}

/// A Luhn-valid 16-digit test card number ending in `last4` (BIN 622202).
pub fn card_number(seed: u64, last4: &str) -> String {
    let body = format!("622202{:05}", seed % 100_000);
    for d in 0..10 {
        let pan = format!("{body}{d}{last4}");
        if domain::luhn_valid(&pan) {
            return pan;
        }
    }
    // Changing one digit always reaches every check value mod 10; not reached.
    format!("{body}0{last4}")
}

/// One simulated terminal on one connection.
pub struct Terminal {
    stream: TcpStream,
    decoder: FrameDecoder,
    envelope: Envelope,
    pub terminal_id: String,
    pub merchant_id: String,
    pub stan: u32,
    pub batch: u32,
    pub tmk: Option<Key16>,
    pub mac_key: Option<MacKey>,
    pub reply_timeout: Duration,
    /// Replies whose MAC did not verify.
    pub reply_mac_failures: u32,
}

impl Terminal {
    pub async fn connect(addr: &str, terminal_id: &str, merchant_id: &str) -> Result<Terminal, SimError> {
        let stream =
            TcpStream::connect(addr).await.map_err(|e| SimError::Connect { addr: addr.to_owned(), source: e })?;
        let _ = stream.set_nodelay(true);
        let envelope = Envelope::from_hex(ENVELOPE_HEX).ok_or_else(|| SimError::Build("envelope".into()))?;
        Ok(Terminal {
            stream,
            decoder: FrameDecoder::new(),
            envelope,
            terminal_id: terminal_id.to_owned(),
            merchant_id: merchant_id.to_owned(),
            stan: 0,
            batch: 1,
            tmk: None,
            mac_key: None,
            reply_timeout: Duration::from_secs(10),
            reply_mac_failures: 0,
        })
    }

    pub fn next_stan(&mut self) -> u32 {
        self.stan = self.stan % 999_999 + 1;
        self.stan
    }

    /// Writes raw bytes (tests of malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SimError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Sends a message, MACed when the terminal holds a MAC key and the MTI carries one.
    pub async fn send(&mut self, m: &Message) -> Result<(), SimError> {
        let mut m = m.clone();
        if let (Some(k), true) = (&self.mac_key, m.mti().is_maced()) {
            mac::sign(&mut m, k);
        }
        let frame = m.to_frame().map_err(|e| SimError::Build(e.to_string()))?;
        self.send_raw(&frame).await
    }

    /// The next reply, or `None` when nothing arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Message>, SimError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 2048];
        loop {
            match self.decoder.next_frame() {
                Ok(FrameStatus::Frame(body)) => {
                    let m = Message::decode(&body).map_err(|e| SimError::Frame(e.to_string()))?;
                    self.check_mac(&m);
                    return Ok(Some(m));
                }
                Ok(FrameStatus::NeedMore { .. }) => {}
                Err(e) => return Err(SimError::Frame(e.to_string())),
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(SimError::Closed),
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    fn check_mac(&mut self, m: &Message) {
        let code = m.get_str(39).unwrap_or("");
        if let (Some(k), true) = (&self.mac_key, m.mti().is_maced()) {
            if !matches!(code, "30" | "A0" | "97") && mac::verify(m, k).is_err() {
                self.reply_mac_failures += 1;
            }
        }
    }

    pub async fn recv(&mut self) -> Result<Message, SimError> {
        let t = self.reply_timeout;
        self.recv_within(t).await?.ok_or(SimError::Timeout(t))
    }

    pub async fn round_trip(&mut self, m: &Message) -> Result<Message, SimError> {
        self.send(m).await?;
        self.recv().await
    }

    fn fit(&self, r: Request) -> Result<Message, SimError> {
        r.to_message(self.envelope).map_err(|e| SimError::Build(e.to_string()))
    }

    pub fn sign_on_message(&mut self) -> Result<Message, SimError> {
        let stan = self.next_stan();
        self.fit(Request::SignOn(SignOn {
            stan,
            terminal_id: self.terminal_id.clone(),
            merchant_id: self.merchant_id.clone(),
            context: Field60::new("00", self.batch, "003"),
            operator: "001".into(),
        }))
    }

    /// Signs on: learns the open batch (60.2) and, with a TMK, the new working keys (62).
    pub async fn sign_on(&mut self) -> Result<Message, SimError> {
        let m = self.sign_on_message()?;
        let r = self.round_trip(&m).await?;
        let code = r.get_str(39).unwrap_or("").to_owned();
        if code != "00" {
            return Err(SimError::SignOn(code));
        }
        if let Some(f60) = r.get_str(60).and_then(|d| Field60::parse(d).ok()) {
            self.batch = f60.batch;
        }
        if let (Some(tmk), Some(b)) = (&self.tmk, r.get(62)) {
            let wk = WorkingKeys::parse(b).map_err(|e| SimError::Frame(e.to_string()))?;
            let (_pik, mak) = wk.open(tmk).map_err(|e| SimError::Frame(e.to_string()))?;
            self.mac_key = Some(mak);
        }
        Ok(r)
    }

    /// A financial request of `kind` for `pan` (manual entry, expiry 3012) in the open batch.
    pub fn financial(&mut self, kind: FinancialKind, pan: &str, amount_fen: Option<u64>) -> FinancialRequest {
        let (_, code3, code25, code601) = kind.combination();
        FinancialRequest {
            kind,
            pan: Pan::new(pan),
            processing_code: code3.into(),
            amount_fen,
            stan: self.next_stan(),
            expiry: Some("3012".into()),
            entry_mode: "012".into(),
            card_sequence: None,
            condition_code: code25.into(),
            pin_capture: None,
            track2: None,
            track3: None,
            rrn: None,
            auth_code: None,
            terminal_id: self.terminal_id.clone(),
            merchant_id: self.merchant_id.clone(),
            currency: "156".into(),
            pin_block: None,
            security_info: None,
            ic_data: None,
            context: Field60::new(code601, self.batch, "000"),
            original: None,
            mac: None,
        }
    }

    /// A request naming its original (void, refund, pre-auth void/completion): 37, 38 and 61
    /// from the original's reply and request.
    pub fn follow_up(
        &mut self,
        kind: FinancialKind,
        pan: &str,
        amount_fen: u64,
        original_request: &FinancialRequest,
        original_reply: &Message,
    ) -> FinancialRequest {
        let mut f = self.financial(kind, pan, Some(amount_fen));
        let extra = kind.extra_fields();
        if extra.contains(&37) {
            f.rrn = original_reply.get_str(37).map(str::to_owned);
        }
        if extra.contains(&38) {
            f.auth_code = original_reply.get_str(38).map(str::to_owned);
        }
        let date = original_reply.get_str(13).unwrap_or("0000");
        f.original = Some(Field61::new(original_request.context.batch, original_request.stan, date));
        f
    }

    pub fn message(&self, f: &FinancialRequest) -> Result<Message, SimError> {
        self.fit(Request::Financial(f.clone()))
    }

    pub fn reversal_message(&self, f: &FinancialRequest, reason: &str) -> Result<Message, SimError> {
        self.fit(Request::Reversal(Reversal { reason: reason.into(), original: f.clone() }))
    }

    pub fn settlement_message(&mut self, domestic: Totals) -> Result<Message, SimError> {
        let stan = self.next_stan();
        self.fit(Request::BatchSettlement(BatchSettlement {
            stan,
            terminal_id: self.terminal_id.clone(),
            merchant_id: self.merchant_id.clone(),
            totals: SettlementTotals { domestic, foreign: Totals::default() },
            currency: "156".into(),
            context: Field60::new("00", self.batch, "201"),
            operator: "001".into(),
        }))
    }

    /// 0320 with items (60.3 = 201) of `batch`: (STAN, PAN, amount).
    pub fn upload_message(&mut self, batch: u32, items: &[(u32, &str, u64)]) -> Result<Message, SimError> {
        let stan = self.next_stan();
        let items = items
            .iter()
            .map(|(s, p, a)| {
                Ok(UploadItem {
                    card_scheme: "00".into(),
                    stan: *s,
                    pan: Pan::new(p).ok_or_else(|| SimError::Build("bad PAN".into()))?,
                    amount_fen: *a,
                })
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        self.fit(Request::BatchUpload(BatchUpload {
            stan,
            terminal_id: self.terminal_id.clone(),
            merchant_id: self.merchant_id.clone(),
            context: Field60::new("00", batch, "201"),
            content: UploadContent::Items(UploadItems { items }),
        }))
    }

    /// 0320 ending the upload of `batch` (60.3 = 202).
    pub fn upload_end_message(&mut self, batch: u32, total_items: u16) -> Result<Message, SimError> {
        let stan = self.next_stan();
        self.fit(Request::BatchUpload(BatchUpload {
            stan,
            terminal_id: self.terminal_id.clone(),
            merchant_id: self.merchant_id.clone(),
            context: Field60::new("00", batch, "202"),
            content: UploadContent::End(UploadEnd { total_items }),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Load: many terminals, a mix, counts and latencies
// ---------------------------------------------------------------------------------------------

/// What one simulated transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MixKind {
    Purchase,
    Void,
    Refund,
    Preauth,
    Balance,
}

/// Parses `purchase:80,void:5,refund:5,preauth:5,balance:5`.
pub fn parse_mix(s: &str) -> Result<Vec<(MixKind, u32)>, SimError> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, w) = part.split_once(':').ok_or_else(|| SimError::Mix(s.into()))?;
        let kind = match k.trim() {
            "purchase" => MixKind::Purchase,
            "void" => MixKind::Void,
            "refund" => MixKind::Refund,
            "preauth" => MixKind::Preauth,
            "balance" => MixKind::Balance,
            _ => return Err(SimError::Mix(s.into())),
        };
        let w: u32 = w.trim().parse().map_err(|_| SimError::Mix(s.into()))?;
        out.push((kind, w));
    }
    if out.iter().map(|(_, w)| *w).sum::<u32>() == 0 {
        return Err(SimError::Mix(s.into()));
    }
    Ok(out)
}

/// Expands `10000001,10000002` and ranges `50000001-50000200` into terminal ids.
pub fn parse_terminals(s: &str) -> Result<Vec<String>, SimError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (x, y): (u64, u64) = match (a.parse(), b.parse()) {
                    (Ok(x), Ok(y)) if x <= y && y - x < 100_000 => (x, y),
                    _ => return Err(SimError::Config(format!("bad terminal range {part:?}"))),
                };
                out.extend((x..=y).map(|n| format!("{n:0width$}", width = a.len())));
            }
            None => out.push(part.to_owned()),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub addr: String,
    pub merchant_id: String,
    pub terminal_ids: Vec<String>,
    /// The terminals' master key (hex), when they are keyed.
    pub master_key_hex: Option<String>,
    /// Transactions in total (sign-on and settlement not counted).
    pub count: u64,
    /// Connections, one terminal each.
    pub concurrency: usize,
    pub mix: Vec<(MixKind, u32)>,
    /// Settle every terminal's batch at the end.
    pub settle: bool,
    pub reply_timeout: Duration,
    /// Where to append one line per approved reply (`terminal,batch,stan,rrn,kind`), written as
    /// soon as the reply arrives: the record a crash test checks the host against.
    pub approved_log: Option<Arc<std::sync::Mutex<std::fs::File>>>,
}

#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub approved: u64,
    /// Declines by response code.
    pub declined: BTreeMap<String, u64>,
    /// Requests without a reply in time, or failed connections.
    pub errors: u64,
    /// The whole run: connections, sign-ons, transactions, settlements.
    pub elapsed: Duration,
    /// From the moment every terminal had signed on until the last transaction's reply:
    /// the window the transaction throughput is measured over.
    pub transactions_elapsed: Duration,
    pub latency_p50_us: u64,
    pub latency_p90_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// Settlement results: balanced / unbalanced counts.
    pub settled_balanced: u64,
    pub settled_unbalanced: u64,
    pub reply_mac_failures: u64,
    /// Why the first terminal that stopped early stopped (connection, sign-on, ...).
    pub first_error: Option<String>,
}

impl SimReport {
    /// Transactions answered per second over the whole run.
    pub fn per_second(&self) -> f64 {
        self.transactions() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Transactions answered per second once every terminal had signed on (see
    /// `transactions_elapsed`).
    pub fn per_second_signed_on(&self) -> f64 {
        self.transactions() as f64 / self.transactions_elapsed.as_secs_f64().max(1e-9)
    }

    fn transactions(&self) -> u64 {
        self.approved + self.declined.values().sum::<u64>()
    }
}

struct Approved {
    request: FinancialRequest,
    reply: Message,
    pan: String,
    amount_fen: u64,
    voided: bool,
    refunded_fen: u64,
}

/// Runs the mix over `concurrency` terminals until `count` transactions are done.
pub async fn run(cfg: SimConfig) -> Result<SimReport, SimError> {
    if cfg.concurrency == 0 || cfg.terminal_ids.len() < cfg.concurrency {
        return Err(SimError::Config(format!(
            "--concurrency {} needs at least that many terminals (got {})",
            cfg.concurrency,
            cfg.terminal_ids.len()
        )));
    }
    let tmk = match &cfg.master_key_hex {
        Some(h) => Some(Key16::from_hex(h).ok_or_else(|| SimError::Config("--master-key must be 32 hex digits".into()))?),
        None => None,
    };
    let cfg = Arc::new(cfg);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Every terminal signs on, then all start their transactions together, so the
    // transaction window does not include the sign-on of the slowest.
    let gate = Arc::new(Gate { barrier: tokio::sync::Barrier::new(cfg.concurrency), opened: OnceLock::new() });
    let mut tasks = Vec::new();
    for i in 0..cfg.concurrency {
        let (cfg, next, tmk, gate) = (cfg.clone(), next.clone(), tmk.clone(), gate.clone());
        tasks.push(tokio::spawn(async move { worker(i, &cfg, &next, tmk, &gate).await }));
    }
    let mut last_reply: Option<Instant> = None;
    let mut report = SimReport::default();
    let mut latencies = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((r, l, last))) => {
                last_reply = last_reply.max(last);
                report.approved += r.approved;
                for (k, v) in r.declined {
                    *report.declined.entry(k).or_default() += v;
                }
                report.errors += r.errors;
                report.settled_balanced += r.settled_balanced;
                report.settled_unbalanced += r.settled_unbalanced;
                report.reply_mac_failures += r.reply_mac_failures;
                latencies.extend(l);
            }
            Ok(Err(e)) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| format!("terminal task failed: {e}"));
            }
        }
    }
    report.elapsed = started.elapsed();
    if let (Some(opened), Some(last)) = (gate.opened.get(), last_reply) {
        report.transactions_elapsed = last.saturating_duration_since(*opened);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied();
    report.latency_p50_us = pct(0.50).unwrap_or(0);
    report.latency_p90_us = pct(0.90).unwrap_or(0);
    report.latency_p99_us = pct(0.99).unwrap_or(0);
    report.latency_max_us = latencies.last().copied().unwrap_or(0);
    Ok(report)
}

/// Where the terminals wait for each other after signing on.
struct Gate {
    barrier: tokio::sync::Barrier,
    opened: OnceLock<Instant>,
}

/// One terminal's run: its report, latencies, and when its last transaction was answered.
type WorkerResult = (SimReport, Vec<u64>, Option<Instant>);

async fn worker(index: usize, cfg: &SimConfig, next: &AtomicU64, tmk: Option<Key16>, gate: &Gate) -> Result<WorkerResult, SimError> {
    let signed_on = async {
        let mut t = Terminal::connect(&cfg.addr, &cfg.terminal_ids[index], &cfg.merchant_id).await?;
        t.reply_timeout = cfg.reply_timeout;
        t.tmk = tmk;
        t.sign_on().await?;
        Ok::<_, SimError>(t)
    }
    .await;
    // A terminal that failed still passes the gate, or the others would wait forever.
    gate.barrier.wait().await;
    gate.opened.get_or_init(Instant::now);
    let mut t = signed_on?;
    let mut last_reply = None;
    let mut report = SimReport::default();
    let mut latencies = Vec::new();
    let mut approved: Vec<Approved> = Vec::new();
    let mut preauths: Vec<Approved> = Vec::new();
    let (mut debit, mut credit) = (Totals::default(), Totals::default());
    let weight_total: u32 = cfg.mix.iter().map(|(_, w)| *w).sum();
    let mut seq = 0u64;
    while next.fetch_add(1, Ordering::Relaxed) < cfg.count {
        seq += 1;
        let mut roll = rand::random::<u32>() % weight_total.max(1);
        let mut kind = MixKind::Purchase;
        for (k, w) in &cfg.mix {
            if roll < *w {
                kind = *k;
                break;
            }
            roll -= w;
        }
        let pan = card_number(index as u64 * 1_000_003 + seq, &format!("{:04}", 1000 + seq % 9000));
        let amount = 100 + rand::random::<u64>() % 50_000;
        let open = approved.iter().position(|a| !a.voided && a.refunded_fen == 0);
        let f = match (kind, open) {
            (MixKind::Void, Some(i)) => {
                let a = &approved[i];
                let (req, rep, p, amt) = (a.request.clone(), a.reply.clone(), a.pan.clone(), a.amount_fen);
                t.follow_up(FinancialKind::PurchaseVoid, &p, amt, &req, &rep)
            }
            (MixKind::Refund, Some(i)) => {
                let a = &approved[i];
                let (req, rep, p, amt) = (a.request.clone(), a.reply.clone(), a.pan.clone(), a.amount_fen / 2 + 1);
                t.follow_up(FinancialKind::Refund, &p, amt, &req, &rep)
            }
            (MixKind::Preauth, _) => t.financial(FinancialKind::PreAuth, &pan, Some(amount)),
            (MixKind::Balance, _) => t.financial(FinancialKind::BalanceInquiry, &pan, None),
            _ => t.financial(FinancialKind::Purchase, &pan, Some(amount)),
        };
        let m = t.message(&f)?;
        let sent = Instant::now();
        let reply = match t.round_trip(&m).await {
            Ok(r) => r,
            Err(SimError::Timeout(_)) => {
                report.errors += 1;
                // A terminal reverses what got no reply, then carries on.
                let rev = t.reversal_message(&f, "98")?;
                let _ = t.round_trip(&rev).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        latencies.push(sent.elapsed().as_micros() as u64);
        last_reply = Some(Instant::now());
        let code = reply.get_str(39).unwrap_or("").to_owned();
        if code != "00" {
            *report.declined.entry(code).or_default() += 1;
            continue;
        }
        report.approved += 1;
        if let Some(log) = &cfg.approved_log {
            use std::io::Write;
            let line = format!(
                "{},{},{},{},{:?}\n",
                cfg.terminal_ids[index],
                reply.get_str(60).map(|d| d.get(2..8).unwrap_or("")).unwrap_or(""),
                reply.get_str(11).unwrap_or(""),
                reply.get_str(37).unwrap_or(""),
                f.kind
            );
            let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
            file.write_all(line.as_bytes())?;
        }
        let amount_fen = f.amount_fen.unwrap_or(0);
        match f.kind {
            FinancialKind::Purchase => {
                debit.debit_amount_fen += amount_fen;
                debit.debit_count += 1;
                approved.push(Approved { request: f, reply, pan, amount_fen, voided: false, refunded_fen: 0 });
            }
            FinancialKind::PurchaseVoid => {
                if let Some(i) = open {
                    approved[i].voided = true;
                    debit.debit_amount_fen -= approved[i].amount_fen;
                    debit.debit_count -= 1;
                }
            }
            FinancialKind::Refund => {
                if let Some(i) = open {
                    approved[i].refunded_fen += amount_fen;
                }
                credit.credit_amount_fen += amount_fen;
                credit.credit_count += 1;
            }
            FinancialKind::PreAuth => {
                preauths.push(Approved { request: f, reply, pan, amount_fen, voided: false, refunded_fen: 0 })
            }
            _ => {}
        }
    }
    if cfg.settle {
        let totals = Totals {
            debit_amount_fen: debit.debit_amount_fen,
            debit_count: debit.debit_count,
            credit_amount_fen: credit.credit_amount_fen,
            credit_count: credit.credit_count,
            result: 0,
        };
        let m = t.settlement_message(totals)?;
        let r = t.round_trip(&m).await?;
        let balanced = r
            .get_str(48)
            .and_then(|d| SettlementTotals::parse(d).ok())
            .is_some_and(|s| s.domestic.result == 1 && s.foreign.result == 1);
        if balanced {
            report.settled_balanced += 1;
        } else {
            report.settled_unbalanced += 1;
        }
    }
    report.reply_mac_failures = u64::from(t.reply_mac_failures);
    Ok((report, latencies, last_reply))
}

//! A seeded generator of reconciliation scenarios with known outcomes, for tests and benchmarks.
//!
//! Each of `cases` cases produces the records of one situation (a matched pair, a void the bank
//! did not settle, a duplicated row, a date shift, ...) and the items a correct engine must
//! report for it. Every case has its own amount, so no two cases can pair by accident, and
//! identifiers (STAN per terminal, RRN, order numbers) are never reused. The same seed gives the
//! same scenario on every machine (SplitMix64, no external RNG).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{
    Amount, AuthCode, BatchNo, Channel, Currency, MerchantClock, MerchantId, Rrn, SettlementDate, Source, Stan,
    TerminalId, TxnKind, TxnStatus,
};

use crate::{ClearingFileId, ClearingRecord, ClearingRef, MatchPass, MaskedCard, Outcome, PlatformId, PlatformRecord};

/// How often each situation is injected, as a fraction of cases; the rest are pairs that match
/// on the `key` pass. The fractions must add up to at most 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScenarioRates {
    pub matched_by_rrn: f64,
    pub matched_by_external_ref: f64,
    pub matched_by_fuzzy: f64,
    pub amount_mismatch: f64,
    pub missing_in_clearing: f64,
    pub missing_in_platform: f64,
    pub status_mismatch_declined: f64,
    pub status_mismatch_reversed: f64,
    pub status_mismatch_preauth: f64,
    /// Purchase voided here; the bank settled the purchase but not the void.
    pub void_not_in_clearing: f64,
    /// Purchase and void both settled.
    pub void_settled: f64,
    /// Purchase refunded; purchase and refund both settled.
    pub refund_settled: f64,
    pub duplicate_in_clearing: f64,
    /// Our record is of D; the bank's row is in the D-1 or D+1 file.
    pub date_shift_platform_side: f64,
    /// The bank's row is in D's file; our record is of D-1 or D+1.
    pub date_shift_clearing_side: f64,
    /// Alipay purchases of D: no Alipay file for D, so they are pending.
    pub pending_channel: f64,
    /// Declined purchases the bank never saw: no item.
    pub declined_not_in_clearing: f64,
    /// Matched pairs of D-1 or D+1: no item in D's run.
    pub adjacent_day_matched: f64,
}

impl Default for ScenarioRates {
    fn default() -> Self {
        ScenarioRates {
            matched_by_rrn: 0.03,
            matched_by_external_ref: 0.08,
            matched_by_fuzzy: 0.02,
            amount_mismatch: 0.01,
            missing_in_clearing: 0.01,
            missing_in_platform: 0.01,
            status_mismatch_declined: 0.005,
            status_mismatch_reversed: 0.005,
            status_mismatch_preauth: 0.002,
            void_not_in_clearing: 0.005,
            void_settled: 0.01,
            refund_settled: 0.01,
            duplicate_in_clearing: 0.005,
            date_shift_platform_side: 0.005,
            date_shift_clearing_side: 0.005,
            pending_channel: 0.02,
            declined_not_in_clearing: 0.02,
            adjacent_day_matched: 0.01,
        }
    }
}

/// An item the engine must report, by identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpectedItem {
    pub outcome: Outcome,
    pub match_pass: Option<MatchPass>,
    pub platform: Option<PlatformId>,
    pub clearing: Option<ClearingRef>,
}

/// One generated clearing file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioFile {
    pub id: ClearingFileId,
    pub name: String,
    pub settlement_date: SettlementDate,
    pub channel: Channel,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub settlement_date: SettlementDate,
    pub platform: Vec<PlatformRecord>,
    /// In file order: each file's rows by line.
    pub clearing: Vec<ClearingRecord>,
    pub files: Vec<ScenarioFile>,
    pub channels_with_clearing: Vec<Channel>,
    pub expected: Vec<ExpectedItem>,
    pub expected_pending: Vec<PlatformId>,
}

/// The settlement date every scenario is generated for.
pub fn scenario_date() -> SettlementDate {
    SettlementDate::new(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default())
}

const FILE_CARD_D: usize = 0;
const FILE_WECHAT_D: usize = 1;
const FILE_CARD_PREV: usize = 2;
const FILE_CARD_NEXT: usize = 3;
const MERCHANTS: u64 = 40;
const TERMINALS_PER_MERCHANT: u64 = 8;

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Case {
    MatchedKey,
    MatchedRrn,
    MatchedExternalRef,
    MatchedFuzzy,
    AmountMismatch,
    MissingInClearing,
    MissingInPlatform,
    StatusDeclined,
    StatusReversed,
    StatusPreauth,
    VoidNotInClearing,
    VoidSettled,
    RefundSettled,
    Duplicate,
    DateShiftPlatformSide,
    DateShiftClearingSide,
    Pending,
    DeclinedNotInClearing,
    AdjacentDayMatched,
}

fn pick_case(rates: &ScenarioRates, u: f64) -> Case {
    let table = [
        (rates.matched_by_rrn, Case::MatchedRrn),
        (rates.matched_by_external_ref, Case::MatchedExternalRef),
        (rates.matched_by_fuzzy, Case::MatchedFuzzy),
        (rates.amount_mismatch, Case::AmountMismatch),
        (rates.missing_in_clearing, Case::MissingInClearing),
        (rates.missing_in_platform, Case::MissingInPlatform),
        (rates.status_mismatch_declined, Case::StatusDeclined),
        (rates.status_mismatch_reversed, Case::StatusReversed),
        (rates.status_mismatch_preauth, Case::StatusPreauth),
        (rates.void_not_in_clearing, Case::VoidNotInClearing),
        (rates.void_settled, Case::VoidSettled),
        (rates.refund_settled, Case::RefundSettled),
        (rates.duplicate_in_clearing, Case::Duplicate),
        (rates.date_shift_platform_side, Case::DateShiftPlatformSide),
        (rates.date_shift_clearing_side, Case::DateShiftClearingSide),
        (rates.pending_channel, Case::Pending),
        (rates.declined_not_in_clearing, Case::DeclinedNotInClearing),
        (rates.adjacent_day_matched, Case::AdjacentDayMatched),
    ];
    let mut acc = 0.0;
    for (rate, case) in table {
        acc += rate;
        if u < acc {
            return case;
        }
    }
    Case::MatchedKey
}

struct Gen {
    rng: SplitMix64,
    d: SettlementDate,
    day_start: DateTime<Utc>,
    merchants: Vec<MerchantId>,
    terminals: Vec<(usize, TerminalId)>,
    next_stan: Vec<u32>,
    next_rrn: u64,
    next_order: u64,
    next_id: i64,
    platform: Vec<PlatformRecord>,
    files: Vec<ScenarioFile>,
    rows: Vec<ClearingRecord>,
    /// The next line of each file (the header is line 1).
    next_line: Vec<u64>,
    expected: Vec<ExpectedItem>,
    expected_pending: Vec<PlatformId>,
}

fn parse_or_panic<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    // The generator builds identifiers from fixed formats; a failure is a bug in this module.
    r.expect("generator builds valid identifiers")
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let d = scenario_date();
        let day_start = MerchantClock::default().start_of_day(d.date());
        let merchants: Vec<MerchantId> =
            (0..MERCHANTS).map(|m| parse_or_panic(MerchantId::parse(&format!("8983100{:08}", 48_990_000 + m)))).collect();
        let terminals: Vec<(usize, TerminalId)> = (0..MERCHANTS * TERMINALS_PER_MERCHANT)
            .map(|t| ((t / TERMINALS_PER_MERCHANT) as usize, parse_or_panic(TerminalId::parse(&format!("{:08}", 10_000_000 + t)))))
            .collect();
        let file = |id: i64, name: &str, date: SettlementDate, channel| ScenarioFile {
            id: ClearingFileId(id),
            name: format!("{name}-{date}.csv"),
            settlement_date: date,
            channel,
        };
        let files = vec![
            file(1, "card", d, Channel::Card),
            file(2, "wechat", d, Channel::Wechat),
            file(3, "card", d.pred(), Channel::Card),
            file(4, "card", d.succ(), Channel::Card),
        ];
        Gen {
            rng: SplitMix64(seed),
            d,
            day_start,
            next_stan: vec![1; terminals.len()],
            merchants,
            terminals,
            next_rrn: 1,
            next_order: 1,
            next_id: 1,
            platform: Vec::new(),
            rows: Vec::new(),
            next_line: vec![2; files.len()],
            files,
            expected: Vec::new(),
            expected_pending: Vec::new(),
        }
    }

    fn record(&mut self, case_no: u64, channel: Channel, date: SettlementDate) -> PlatformRecord {
        let t = self.rng.below(self.terminals.len() as u64) as usize;
        let (m, terminal) = self.terminals[t].clone();
        let id = PlatformId(self.next_id);
        self.next_id += 1;
        let amount = parse_or_panic(Amount::from_fen(1_000 + case_no as i64 * 10 + self.rng.below(10) as i64));
        let offset_days = (date.date() - self.d.date()).num_days();
        let txn_time = self.day_start + Duration::days(offset_days) + Duration::seconds(self.rng.below(22 * 3600) as i64);
        let mut r = PlatformRecord {
            id,
            merchant: self.merchants[m].clone(),
            terminal: Some(terminal),
            batch: None,
            stan: None,
            rrn: None,
            auth_code: None,
            kind: TxnKind::Purchase,
            channel,
            approved: true,
            is_reversal: false,
            status: TxnStatus::Approved,
            amount,
            currency: Currency::CNY,
            card: None,
            txn_time,
            settlement_date: date,
            external_ref: None,
            original_id: None,
            source: Source::Iso8583,
        };
        if channel == Channel::Card {
            self.give_card_identifiers(&mut r, t);
        } else {
            let prefix = if channel == Channel::Alipay { "AP" } else { "WX" };
            r.external_ref = Some(format!("{prefix}{}{:012}", self.d.date().format("%Y%m%d"), self.next_order));
            self.next_order += 1;
            r.source = Source::Api;
        }
        r
    }

    /// A new STAN on the record's terminal, a new RRN and an auth code.
    fn give_card_identifiers(&mut self, r: &mut PlatformRecord, t: usize) {
        r.batch = Some(parse_or_panic(BatchNo::new(1)));
        r.stan = Some(parse_or_panic(Stan::new(self.next_stan[t])));
        self.next_stan[t] += 1;
        r.rrn = Some(parse_or_panic(Rrn::parse(&format!("{:012}", 330_000_000_000 + self.next_rrn))));
        self.next_rrn += 1;
        r.auth_code = Some(parse_or_panic(AuthCode::parse(&format!("{:06}", self.rng.below(1_000_000)))));
        if r.card.is_none() {
            r.card = MaskedCard::new("622202", &format!("{:04}", self.rng.below(10_000)));
        }
    }

    fn terminal_index(&self, r: &PlatformRecord) -> usize {
        self.terminals.iter().position(|(_, t)| Some(t) == r.terminal.as_ref()).unwrap_or(0)
    }

    /// A follow-up (void, refund, reversal) of `original` on the same terminal and card.
    fn follow_up(&mut self, original: &PlatformRecord, kind: TxnKind) -> PlatformRecord {
        let mut r = original.clone();
        r.id = PlatformId(self.next_id);
        self.next_id += 1;
        r.kind = kind;
        r.status = TxnStatus::Approved;
        r.original_id = Some(original.id);
        r.txn_time = original.txn_time + Duration::seconds(60 + self.rng.below(600) as i64);
        let t = self.terminal_index(original);
        self.give_card_identifiers(&mut r, t);
        r
    }

    fn row_for(&self, r: &PlatformRecord, file: usize) -> ClearingRecord {
        let f = &self.files[file];
        ClearingRecord {
            file: f.id,
            line: 0,
            settlement_date: f.settlement_date,
            merchant: Some(r.merchant.clone()),
            terminal: r.terminal.clone(),
            batch: r.batch,
            stan: r.stan,
            rrn: r.rrn.clone(),
            auth_code: r.auth_code.clone(),
            kind: r.kind,
            channel: r.channel,
            card: r.card,
            amount: r.amount,
            fee: Amount::from_fen(r.amount.fen() * 6 / 1000).unwrap_or(Amount::ZERO),
            currency: r.currency,
            txn_time: Some(r.txn_time),
            external_ref: r.external_ref.clone(),
        }
    }

    fn push_row(&mut self, mut row: ClearingRecord, file: usize) -> ClearingRef {
        row.line = self.next_line[file];
        self.next_line[file] += 1;
        let reference = row.reference();
        self.rows.push(row);
        reference
    }

    fn expect(&mut self, outcome: Outcome, pass: Option<MatchPass>, p: Option<&PlatformRecord>, c: Option<ClearingRef>) {
        self.expected.push(ExpectedItem { outcome, match_pass: pass, platform: p.map(|r| r.id), clearing: c });
    }

    fn matched_pair(&mut self, r: PlatformRecord, pass: MatchPass, file: usize) {
        let row = self.row_for(&r, file);
        self.pair(r, row, file, Outcome::Matched, pass);
    }

    fn pair(&mut self, r: PlatformRecord, row: ClearingRecord, file: usize, outcome: Outcome, pass: MatchPass) {
        let c = self.push_row(row, file);
        self.expect(outcome, Some(pass), Some(&r), Some(c));
        self.platform.push(r);
    }

    fn case(&mut self, case_no: u64, case: Case) {
        let d = self.d;
        match case {
            Case::MatchedKey => {
                let r = self.record(case_no, Channel::Card, d);
                self.matched_pair(r, MatchPass::Key, FILE_CARD_D);
            }
            Case::MatchedRrn => {
                let r = self.record(case_no, Channel::Card, d);
                let mut row = self.row_for(&r, FILE_CARD_D);
                row.batch = None;
                row.stan = None;
                self.pair(r, row, FILE_CARD_D, Outcome::Matched, MatchPass::Rrn);
            }
            Case::MatchedExternalRef => {
                let r = self.record(case_no, Channel::Wechat, d);
                self.matched_pair(r, MatchPass::ExternalRef, FILE_WECHAT_D);
            }
            Case::MatchedFuzzy => {
                let r = self.record(case_no, Channel::Card, d);
                let mut row = self.row_for(&r, FILE_CARD_D);
                row.batch = None;
                row.stan = None;
                row.rrn = None;
                row.txn_time = Some(r.txn_time + Duration::seconds(self.rng.below(241) as i64 - 120));
                self.pair(r, row, FILE_CARD_D, Outcome::Matched, MatchPass::Fuzzy);
            }
            Case::AmountMismatch => {
                let r = self.record(case_no, Channel::Card, d);
                let mut row = self.row_for(&r, FILE_CARD_D);
                row.amount = parse_or_panic(Amount::from_fen(r.amount.fen() + 1 + self.rng.below(500) as i64));
                self.pair(r, row, FILE_CARD_D, Outcome::AmountMismatch, MatchPass::Key);
            }
            Case::MissingInClearing => {
                let r = self.record(case_no, Channel::Card, d);
                self.expect(Outcome::MissingInClearing, None, Some(&r), None);
                self.platform.push(r);
            }
            Case::MissingInPlatform => {
                let r = self.record(case_no, Channel::Card, d);
                let row = self.row_for(&r, FILE_CARD_D);
                let c = self.push_row(row, FILE_CARD_D);
                self.expect(Outcome::MissingInPlatform, None, None, Some(c));
                self.next_id -= 1; // the record was never captured; keep ids dense
            }
            Case::StatusDeclined | Case::StatusPreauth => {
                let mut r = self.record(case_no, Channel::Card, d);
                let row = self.row_for(&r, FILE_CARD_D);
                if let Case::StatusDeclined = case {
                    r.approved = false;
                    r.status = TxnStatus::Declined;
                    r.rrn = None;
                    r.auth_code = None;
                } else {
                    r.kind = TxnKind::Preauth;
                }
                self.pair(r, row, FILE_CARD_D, Outcome::StatusMismatch, MatchPass::Key);
            }
            Case::StatusReversed => {
                let mut r = self.record(case_no, Channel::Card, d);
                let row = self.row_for(&r, FILE_CARD_D);
                r.status = TxnStatus::Reversed;
                // The reversal carries the original's terminal, batch, STAN and kind.
                let mut reversal = r.clone();
                reversal.id = PlatformId(self.next_id);
                self.next_id += 1;
                reversal.is_reversal = true;
                reversal.original_id = Some(r.id);
                reversal.txn_time = r.txn_time + Duration::seconds(65);
                self.pair(r, row, FILE_CARD_D, Outcome::StatusMismatch, MatchPass::Key);
                self.platform.push(reversal);
            }
            Case::VoidNotInClearing | Case::VoidSettled => {
                let mut purchase = self.record(case_no, Channel::Card, d);
                purchase.status = TxnStatus::Voided;
                let void = self.follow_up(&purchase, TxnKind::Void);
                let purchase_row = self.row_for(&purchase, FILE_CARD_D);
                if let Case::VoidSettled = case {
                    self.pair(purchase, purchase_row, FILE_CARD_D, Outcome::Matched, MatchPass::Key);
                    self.matched_pair(void, MatchPass::Key, FILE_CARD_D);
                } else {
                    self.pair(purchase, purchase_row, FILE_CARD_D, Outcome::StatusMismatch, MatchPass::Key);
                    self.expect(Outcome::MissingInClearing, None, Some(&void), None);
                    self.platform.push(void);
                }
            }
            Case::RefundSettled => {
                let mut purchase = self.record(case_no, Channel::Card, d);
                purchase.status = TxnStatus::Refunded;
                let refund = self.follow_up(&purchase, TxnKind::Refund);
                self.matched_pair(purchase, MatchPass::Key, FILE_CARD_D);
                self.matched_pair(refund, MatchPass::Key, FILE_CARD_D);
            }
            Case::Duplicate => {
                let r = self.record(case_no, Channel::Card, d);
                let row = self.row_for(&r, FILE_CARD_D);
                let first = self.push_row(row.clone(), FILE_CARD_D);
                let copy = self.push_row(row, FILE_CARD_D);
                self.expect(Outcome::Matched, Some(MatchPass::Key), Some(&r), Some(first));
                self.expect(Outcome::DuplicateInClearing, None, Some(&r), Some(copy));
                self.platform.push(r);
            }
            Case::DateShiftPlatformSide => {
                let r = self.record(case_no, Channel::Card, d);
                let file = if case_no % 2 == 0 { FILE_CARD_NEXT } else { FILE_CARD_PREV };
                let row = self.row_for(&r, file);
                self.pair(r, row, file, Outcome::DateShift, MatchPass::Key);
            }
            Case::DateShiftClearingSide => {
                let date = if case_no % 2 == 0 { d.succ() } else { d.pred() };
                let r = self.record(case_no, Channel::Card, date);
                let row = self.row_for(&r, FILE_CARD_D);
                self.pair(r, row, FILE_CARD_D, Outcome::DateShift, MatchPass::Key);
            }
            Case::Pending => {
                let r = self.record(case_no, Channel::Alipay, d);
                self.expected_pending.push(r.id);
                self.platform.push(r);
            }
            Case::DeclinedNotInClearing => {
                let mut r = self.record(case_no, Channel::Card, d);
                r.approved = false;
                r.status = TxnStatus::Declined;
                self.platform.push(r);
            }
            Case::AdjacentDayMatched => {
                let (date, file) = if case_no % 2 == 0 { (d.succ(), FILE_CARD_NEXT) } else { (d.pred(), FILE_CARD_PREV) };
                let r = self.record(case_no, Channel::Card, date);
                let row = self.row_for(&r, file);
                self.push_row(row, file);
                self.platform.push(r);
            }
        }
    }
}

/// Generates `cases` cases on [`scenario_date`] from `seed`. Roughly `cases` records per side.
pub fn generate(seed: u64, cases: usize, rates: &ScenarioRates) -> Scenario {
    let mut g = Gen::new(seed);
    g.platform.reserve(cases + cases / 20);
    g.rows.reserve(cases + cases / 50);
    for case_no in 0..cases as u64 {
        let u = g.rng.unit();
        g.case(case_no, pick_case(rates, u));
    }
    let Gen { d, platform, files, rows, expected, expected_pending, .. } = g;
    let channels_with_clearing = vec![Channel::Card, Channel::Wechat];
    let mut clearing = rows;
    // File order, as an importer would hand the rows over.
    clearing.sort_unstable_by_key(|r| (r.file, r.line));
    Scenario { settlement_date: d, platform, clearing, files, channels_with_clearing, expected, expected_pending }
}

/// The items of a report, by identifiers, in the report's order: what [`Scenario::expected`]
/// is compared with.
pub fn items_by_identifiers(report: &crate::Report<'_>) -> Vec<ExpectedItem> {
    report
        .items
        .iter()
        .map(|i| ExpectedItem {
            outcome: i.outcome,
            match_pass: i.match_pass,
            platform: i.platform.map(|p| p.id),
            clearing: i.clearing.map(|c| c.reference()),
        })
        .collect()
}

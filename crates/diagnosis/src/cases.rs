//! A seeded generator of "I can't find my transaction" cases with known true causes, and the
//! building blocks it uses (also used by the tests and the benchmark).
//!
//! Each case is a small world: one merchant (Asia/Shanghai, cut-off 23:00) with three
//! terminals, a few dozen unrelated transactions as noise, clearing files in for every past
//! settlement date, and one story that hides the transaction looked for. Some stories hold two
//! plausible causes; the case names which one must win and why (the ranking table in the crate
//! docs is the rule). Deterministic: the same seed gives the same cases.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use domain::{
    Amount, AuthCode, BatchNo, Channel, MerchantClock, MerchantId, MerchantStatus, ResponseCode,
    Role, Rrn, SettlementDate, Stan, TerminalId, TxnKind, TxnStatus,
};

use crate::facts::{
    BatchSettlement, Candidate, ClearingDay, Facts, MaintenanceEffect, MaintenanceWindow,
    MerchantFacts, ReconItem, ReconOutcome, Scope, TerminalFacts, TerminalStatus, TxnEvent,
    TxnEventKind, UploadItem,
};
use crate::finding::{Code, Text};
use crate::question::{Expected, ExpectedTime, Filters, ListQuery, Question, SearchRange};

pub const MERCHANT_ID: &str = "898310048990001";
/// A merchant that is not the user's. Its data must never show.
pub const FOREIGN_MERCHANT_ID: &str = "898310048990777";
pub const TERMINAL_IDS: [&str; 3] = ["10000001", "10000002", "10000003"];
/// The open batch of every terminal; case transactions sit in the previous, settled batch.
pub const OPEN_BATCH: u32 = 12;
pub const RETENTION_DAYS: u32 = 1825;

/// One generated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub question: Question,
    pub facts: Facts,
    pub true_cause: Code,
    /// Why this cause is the true one (for two-cause cases: why it beats the other).
    pub why: &'static str,
}

/// SplitMix64: tiny, seedable, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`; `low` when the range is empty.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = (high - low) as u64;
        low + (self.next_u64() % span) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64) as usize]
    }

    pub fn chance(&mut self, percent: i64) -> bool {
        self.range(0, 100) < percent
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.range(0, 10) as u8))
            .collect()
    }
}

pub fn merchant_id() -> MerchantId {
    MerchantId::parse(MERCHANT_ID).expect("constant merchant id is valid")
}

pub fn terminal(i: usize) -> TerminalId {
    TerminalId::parse(TERMINAL_IDS[i % TERMINAL_IDS.len()]).expect("constant terminal id is valid")
}

pub fn clock() -> MerchantClock {
    MerchantClock::default()
}

/// An instant given as Shanghai wall-clock time.
pub fn shanghai(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(date.year(), date.month(), date.day(), hour, minute, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .expect("Shanghai has no DST gaps; callers pass hour < 24 and minute < 60")
}

/// "Now" in every generated case: 2026-11-25 10:00 in Shanghai.
pub fn now() -> DateTime<Utc> {
    shanghai(date(2026, 11, 25), 10, 0)
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

pub fn fen(n: i64) -> Amount {
    Amount::from_fen(n.max(0)).unwrap_or(Amount::ZERO)
}

/// A whole local day in Shanghai as a transaction-time range.
pub fn local_day(d: NaiveDate) -> SearchRange {
    let clock = clock();
    SearchRange::TxnTime {
        from: clock.start_of_day(d),
        to: clock.start_of_day(d.succ_opt().unwrap_or(d)),
        timezone: chrono_tz::Asia::Shanghai,
    }
}

pub fn query(range: SearchRange, filters: Filters) -> ListQuery {
    ListQuery {
        merchant_id: None,
        range,
        filters,
    }
}

/// An approved card purchase on `terminal`, in the settled batch, with the settlement date the
/// merchant's clock gives.
pub fn purchase(
    id: &str,
    terminal_index: usize,
    amount_fen: i64,
    last4: &str,
    at: DateTime<Utc>,
    rng: &mut Rng,
) -> Candidate {
    Candidate {
        id: id.to_owned(),
        merchant_id: merchant_id(),
        terminal_id: Some(terminal(terminal_index)),
        batch_no: BatchNo::new(OPEN_BATCH - 1).ok(),
        stan: Stan::new(rng.range(1, 999_999) as u32).ok(),
        rrn: Rrn::parse(&rng.digits(12)).ok(),
        auth_code: AuthCode::parse(&rng.digits(6)).ok(),
        kind: TxnKind::Purchase,
        channel: Channel::Card,
        status: TxnStatus::Approved,
        response_code: ResponseCode::APPROVED,
        amount: fen(amount_fen),
        card_last4: Some(last4.to_owned()),
        txn_time: at,
        settlement_date: clock().settlement_date(at, Channel::Card),
        original_id: None,
        events: Vec::new(),
    }
}

pub fn terminal_facts(i: usize) -> TerminalFacts {
    let now = now();
    TerminalFacts {
        terminal_id: terminal(i),
        merchant_id: merchant_id(),
        status: TerminalStatus::Active,
        last_seen: Some(now - Duration::minutes(5)),
        last_sign_on: Some(shanghai(date(2026, 11, 25), 8, 0)),
        open_batch: BatchNo::new(OPEN_BATCH).ok(),
        last_settlement: Some(BatchSettlement {
            batch_no: settled_batch(),
            at: shanghai(date(2026, 11, 24), 23, 10),
            balanced: true,
        }),
        unsettled_count: 4,
        upload_items_missing_at_host: Vec::new(),
    }
}

fn settled_batch() -> BatchNo {
    BatchNo::new(OPEN_BATCH - 1).expect("a constant below 999999")
}

/// A healthy world with `noise` unrelated transactions. None of them has `avoid_amount_fen` or
/// `avoid_last4`, so they never match a description built from those.
pub fn base_facts(rng: &mut Rng, noise: usize, avoid_amount_fen: i64, avoid_last4: &str) -> Facts {
    let now = now();
    let clock = clock();
    let mut candidates = Vec::with_capacity(noise + 1);
    for i in 0..noise {
        let at = now - Duration::minutes(rng.range(1, 9 * 24 * 60));
        let mut amount = rng.range(100, 200_000);
        if (amount - avoid_amount_fen).abs() < 100 {
            amount += 1_000;
        }
        let mut last4 = rng.digits(4);
        if last4 == avoid_last4 {
            last4 = if last4 == "0000" {
                "0001".into()
            } else {
                "0000".into()
            };
        }
        let mut c = purchase(
            &format!("noise-{i:05}"),
            rng.range(0, 3) as usize,
            amount,
            &last4,
            at,
            rng,
        );
        if rng.chance(10) {
            c.status = TxnStatus::Declined;
            let code: &&str = rng.pick(&["05", "51", "55"]);
            c.response_code = ResponseCode::parse(code).unwrap_or(ResponseCode::APPROVED);
        }
        if rng.chance(20) {
            c.channel = *rng.pick(&[Channel::Wechat, Channel::Alipay]);
            c.card_last4 = None;
            c.settlement_date = clock.settlement_date(at, c.channel);
        }
        if clock.settlement_date(at, Channel::Card).date() >= date(2026, 11, 25) {
            c.batch_no = BatchNo::new(OPEN_BATCH).ok();
        }
        candidates.push(c);
    }
    let clearing = (1..=10)
        .map(|back| ClearingDay {
            settlement_date: SettlementDate::new(date(2026, 11, 25) - Duration::days(back)),
            channels_in: Channel::ALL.to_vec(),
        })
        .collect();
    Facts {
        now,
        scope: Scope {
            role: Role::MerchantAdmin,
            merchant_ids: vec![merchant_id()],
            terminal_ids: None,
        },
        merchant: MerchantFacts {
            merchant_id: merchant_id(),
            clock,
            status: MerchantStatus::Active,
            status_reason: String::new(),
            status_since: None,
        },
        candidate_window: (now - Duration::days(10), now),
        candidates,
        terminals: (0..TERMINAL_IDS.len()).map(terminal_facts).collect(),
        typed_terminal_bound_elsewhere: false,
        clearing,
        reconciliation: Vec::new(),
        maintenance: Vec::new(),
        retention_days: RETENTION_DAYS,
    }
}

/// The stories. Each returns the case; `rng` varies times, amounts, cards and variants.
const KINDS: &[fn(&mut Rng) -> Case] = &[
    outside_range,
    settlement_date_shift,
    timezone,
    filtered_out,
    declined,
    reversed,
    voided,
    refunded,
    other_terminal,
    terminal_not_bound,
    merchant_id_mismatch,
    account_frozen,
    account_closed,
    sync_pending,
    clearing_pending,
    missing_at_bank,
    maintenance,
    retention,
    not_found,
    declined_and_outside_range,
    voided_on_other_terminal,
    missing_at_bank_and_outside_range,
    shift_while_clearing_pending,
    frozen_and_declined_03,
    refunded_and_filtered_out,
    reversed_in_wrong_timezone,
    capture_maintenance_and_silent_terminal,
    other_terminal_and_outside_range,
];

/// `n` cases from `seed`, cycling through every story so that each code appears.
pub fn generate(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| KINDS[i % KINDS.len()](&mut rng)).collect()
}

/// The number of distinct stories [`generate`] cycles through.
pub fn story_count() -> usize {
    KINDS.len()
}

/// The transaction the person looks for, and the world around it.
struct Story {
    rng: Rng,
    facts: Facts,
    target: Candidate,
    day: NaiveDate,
}

impl Story {
    /// A target purchase on a past day (1–5 days ago), 09:00–21:59, on terminal 1.
    fn new(rng: &mut Rng) -> Story {
        let mut rng = Rng::new(rng.next_u64());
        let day = date(2026, 11, 25) - Duration::days(rng.range(1, 6));
        let at = shanghai(day, rng.range(9, 22) as u32, rng.range(0, 60) as u32);
        let amount = rng.range(1_000, 500_000);
        let last4 = rng.digits(4);
        let noise = rng.range(20, 60) as usize;
        let facts = base_facts(&mut rng, noise, amount, &last4);
        let target = purchase("target-1", 0, amount, &last4, at, &mut rng);
        Story {
            rng,
            facts,
            target,
            day,
        }
    }

    fn at(&mut self, at: DateTime<Utc>) {
        self.target.txn_time = at;
        self.target.settlement_date = clock().settlement_date(at, self.target.channel);
        self.day = clock().local(at).date_naive();
    }

    /// Amount, card and the local date: what a merchant reads off a customer's complaint.
    /// What a merchant reads off a customer's complaint or a receipt, in one of three forms:
    /// amount + card + date; amount + approximate time; or the receipt's RRN alone (only when
    /// the host assigned one). Call it after the story has shaped the target.
    fn expected(&mut self) -> Expected {
        let by_receipt = self.target.rrn.is_some() && self.rng.chance(25);
        let by_card = self.target.card_last4.is_some() && self.rng.chance(60);
        if by_receipt {
            Expected {
                rrn: self.target.rrn.clone(),
                ..Expected::default()
            }
        } else if by_card {
            Expected {
                amount: Some(self.target.amount),
                card_last4: self.target.card_last4.clone(),
                time: Some(ExpectedTime::LocalDate(self.day)),
                ..Expected::default()
            }
        } else {
            let jitter = self.rng.range(-15, 16);
            Expected {
                amount: Some(self.target.amount),
                time: Some(ExpectedTime::Instant(
                    self.target.txn_time + Duration::minutes(jitter),
                )),
                ..Expected::default()
            }
        }
    }

    fn expected_at(&mut self) -> Expected {
        let jitter = self.rng.range(-10, 11);
        Expected {
            amount: Some(self.target.amount),
            card_last4: self.target.card_last4.clone(),
            time: Some(ExpectedTime::Instant(
                self.target.txn_time + Duration::minutes(jitter),
            )),
            ..Expected::default()
        }
    }

    fn event(
        &self,
        kind: TxnEventKind,
        id: &str,
        minutes_later: i64,
        amount: Amount,
        reason: Option<&str>,
    ) -> TxnEvent {
        TxnEvent {
            kind,
            transaction_id: id.to_owned(),
            at: self.target.txn_time + Duration::minutes(minutes_later),
            amount,
            reason_code: reason.and_then(|r| ResponseCode::parse(r).ok()),
        }
    }

    fn decline(&mut self, code: &str) {
        self.target.status = TxnStatus::Declined;
        self.target.response_code = ResponseCode::parse(code).unwrap_or(ResponseCode::APPROVED);
        self.target.rrn = None;
        self.target.auth_code = None;
    }

    /// A range that misses the target by 20–90 minutes, before or after.
    fn range_missing_target(&mut self) -> SearchRange {
        let t = self.target.txn_time;
        let gap = Duration::minutes(self.rng.range(20, 91));
        let length = Duration::hours(self.rng.range(2, 7));
        let (from, to) = if self.rng.chance(50) {
            (t + gap, t + gap + length)
        } else {
            (t - gap - length, t - gap)
        };
        SearchRange::TxnTime {
            from,
            to,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }

    fn finish(
        mut self,
        name: &'static str,
        question: Question,
        true_cause: Code,
        why: &'static str,
    ) -> Case {
        self.facts.candidates.push(self.target);
        Case {
            name,
            question,
            facts: self.facts,
            true_cause,
            why,
        }
    }

    /// The target does not exist in the platform at all.
    fn finish_without_target(
        self,
        name: &'static str,
        question: Question,
        true_cause: Code,
        why: &'static str,
    ) -> Case {
        Case {
            name,
            question,
            facts: self.facts,
            true_cause,
            why,
        }
    }
}

fn ask(query: Option<ListQuery>, expected: Option<Expected>) -> Question {
    Question { query, expected }
}

fn outside_range(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let q = query(s.range_missing_target(), Filters::default());
    let e = s.expected();
    s.finish(
        "outside_range",
        ask(Some(q), Some(e)),
        Code::OutsideRange,
        "approved, but 20-90 minutes outside the searched range",
    )
}

fn settlement_date_shift(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let day = date(2026, 11, 25) - Duration::days(s.rng.range(2, 6));
    let minute = s.rng.range(0, 60) as u32;
    s.at(shanghai(day, 23, minute));
    let sd = SettlementDate::new(day);
    let q = query(
        SearchRange::SettlementDate { from: sd, to: sd },
        Filters::default(),
    );
    let e = s.expected();
    s.finish(
        "settlement_date_shift",
        ask(Some(q), Some(e)),
        Code::SettlementDateShift,
        "made after the 23:00 cut-off, so it settles the next day; the person searched the calendar day's settlement date",
    )
}

fn timezone(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let (hour, minute) = (s.rng.range(0, 8) as u32, s.rng.range(0, 60) as u32);
    let day = s.day;
    s.at(shanghai(day, hour, minute));
    let from = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let q = query(
        SearchRange::TxnTime {
            from,
            to: from + Duration::days(1),
            timezone: chrono_tz::UTC,
        },
        Filters::default(),
    );
    let e = s.expected();
    s.finish(
        "timezone",
        ask(Some(q), Some(e)),
        Code::Timezone,
        "the day was entered in UTC; the sale was before 08:00 Shanghai time, i.e. the previous UTC day",
    )
}

fn filtered_out(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let mut filters = Filters::default();
    let e = match s.rng.range(0, 3) {
        0 => {
            s.target.channel = Channel::Wechat;
            s.target.card_last4 = None;
            filters.channels = vec![Channel::Card];
            s.expected_at()
        }
        1 => {
            s.target.kind = TxnKind::PreauthCompletion;
            filters.kinds = vec![TxnKind::Purchase];
            s.expected()
        }
        _ => {
            let a = s.target.amount.fen();
            filters.amount_min = Some(fen(a + 100));
            filters.amount_max = Some(fen(a + 50_000));
            s.expected()
        }
    };
    let q = query(local_day(s.day), filters);
    s.finish(
        "filtered_out",
        ask(Some(q), Some(e)),
        Code::FilteredOut,
        "in range, but a channel, kind or amount filter excludes it",
    )
}

fn declined_story(rng: &mut Rng, code: &str) -> Story {
    let mut s = Story::new(rng);
    s.decline(code);
    s
}

fn status_query(s: &mut Story) -> Option<ListQuery> {
    if s.rng.chance(50) {
        Some(query(
            local_day(s.day),
            Filters {
                statuses: vec![TxnStatus::Approved],
                ..Filters::default()
            },
        ))
    } else {
        None
    }
}

fn declined(rng: &mut Rng) -> Case {
    let code = *rng.pick(&["05", "51", "54", "55", "61"]);
    let mut s = declined_story(rng, code);
    let q = status_query(&mut s);
    let e = s.expected_at();
    s.finish(
        "declined",
        ask(q, Some(e)),
        Code::Declined,
        "the issuer or host declined it; the list showed approved only",
    )
}

fn reversed(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.status = TxnStatus::Reversed;
    let ev = s.event(
        TxnEventKind::ReversedBy,
        "reversal-1",
        1,
        s.target.amount,
        Some("98"),
    );
    s.target.events.push(ev);
    let q = status_query(&mut s);
    let e = s.expected_at();
    s.finish(
        "reversed",
        ask(q, Some(e)),
        Code::Reversed,
        "the terminal timed out and reversed the sale",
    )
}

fn voided(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.status = TxnStatus::Voided;
    let ev = s.event(TxnEventKind::VoidedBy, "void-1", 12, s.target.amount, None);
    s.target.events.push(ev);
    let q = status_query(&mut s);
    let e = s.expected_at();
    s.finish(
        "voided",
        ask(q, Some(e)),
        Code::Voided,
        "the cashier voided it the same day",
    )
}

fn refunded(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let full = s.rng.chance(50);
    let amount = if full {
        s.target.amount
    } else {
        fen(s.target.amount.fen() / 2)
    };
    s.target.status = if full {
        TxnStatus::Refunded
    } else {
        TxnStatus::PartiallyRefunded
    };
    let ev = s.event(TxnEventKind::RefundedBy, "refund-1", 60 * 24, amount, None);
    s.target.events.push(ev);
    let q = status_query(&mut s);
    let e = s.expected_at();
    s.finish(
        "refunded",
        ask(q, Some(e)),
        Code::Refunded,
        "the sale was refunded later",
    )
}

fn other_terminal(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.terminal_id = Some(terminal(1));
    let q = query(
        local_day(s.day),
        Filters {
            terminal_ids: vec![TERMINAL_IDS[0].into()],
            ..Filters::default()
        },
    );
    let mut e = s.expected();
    e.terminal_id = Some(TERMINAL_IDS[0].into());
    s.finish(
        "other_terminal",
        ask(Some(q), Some(e)),
        Code::OtherTerminal,
        "rung up on the merchant's second terminal",
    )
}

fn terminal_not_bound(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let typed = format!("2000{}", s.rng.digits(4));
    s.facts.typed_terminal_bound_elsewhere = s.rng.chance(50);
    let mut e = s.expected_at();
    e.terminal_id = Some(typed);
    s.finish_without_target(
        "terminal_not_bound",
        ask(None, Some(e)),
        Code::TerminalNotBound,
        "the terminal id typed is not one of the merchant's",
    )
}

fn merchant_id_mismatch(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let mut typed: Vec<u8> = MERCHANT_ID.as_bytes().to_vec();
    let at = s.rng.range(5, 15) as usize;
    typed[at] = if typed[at] == b'9' {
        b'8'
    } else {
        typed[at] + 1
    };
    let typed = String::from_utf8(typed).unwrap_or_default();
    let q = ListQuery {
        merchant_id: Some(typed.clone()),
        range: local_day(s.day),
        filters: Filters::default(),
    };
    let mut e = s.expected();
    e.merchant_id = Some(typed);
    s.finish_without_target(
        "merchant_id_mismatch",
        ask(Some(q), Some(e)),
        Code::MerchantIdMismatch,
        "one digit of the merchant id mistyped",
    )
}

fn account_status(rng: &mut Rng, status: MerchantStatus, name: &'static str, code: Code) -> Case {
    let mut s = Story::new(rng);
    s.facts.merchant.status = status;
    s.facts.merchant.status_reason = "风险核查 / risk review".into();
    s.facts.merchant.status_since = Some(s.target.txn_time - Duration::hours(s.rng.range(2, 48)));
    let e = s.expected_at();
    if s.rng.chance(50) {
        s.decline("03");
        s.finish(
            name,
            ask(None, Some(e)),
            code,
            "the account status made the host decline the sale with 03",
        )
    } else {
        s.finish_without_target(
            name,
            ask(None, Some(e)),
            code,
            "the sale was attempted after the account status changed",
        )
    }
}

fn account_frozen(rng: &mut Rng) -> Case {
    account_status(
        rng,
        MerchantStatus::Frozen,
        "account_frozen",
        Code::AccountFrozen,
    )
}

fn account_closed(rng: &mut Rng) -> Case {
    account_status(
        rng,
        MerchantStatus::Closed,
        "account_closed",
        Code::AccountClosed,
    )
}

fn sync_pending(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let t = 2usize;
    if s.rng.chance(50) {
        let stan = Stan::new(s.rng.range(1, 999_999) as u32).expect("drawn below 999999");
        let item = UploadItem {
            batch_no: settled_batch(),
            stan,
            amount: s.target.amount,
            uploaded_at: shanghai(date(2026, 11, 24), 23, 12),
        };
        s.facts.terminals[t].upload_items_missing_at_host.push(item);
        let e = Expected {
            stan: Some(stan),
            amount: Some(s.target.amount),
            terminal_id: Some(TERMINAL_IDS[t].into()),
            ..Expected::default()
        };
        s.finish_without_target(
            "sync_pending",
            ask(None, Some(e)),
            Code::SyncPending,
            "the terminal's batch upload has it; the host never did",
        )
    } else {
        s.facts.terminals[t].last_seen = Some(s.target.txn_time - Duration::hours(2));
        let mut e = s.expected_at();
        e.terminal_id = Some(TERMINAL_IDS[t].into());
        s.finish_without_target(
            "sync_pending",
            ask(None, Some(e)),
            Code::SyncPending,
            "the terminal has not contacted the host since before the sale",
        )
    }
}

fn clearing_pending(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let sd = s.target.settlement_date;
    for day in &mut s.facts.clearing {
        if day.settlement_date == sd {
            day.channels_in.retain(|c| *c != Channel::Card);
        }
    }
    let e = s.expected_at();
    s.finish(
        "clearing_pending",
        ask(None, Some(e)),
        Code::ClearingPending,
        "approved, but the bank's card file for its date is not in",
    )
}

fn missing_at_bank(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let item = ReconItem {
        run_id: "run-0001".into(),
        transaction_id: s.target.id.clone(),
        settlement_date: s.target.settlement_date,
        outcome: ReconOutcome::MissingInClearing,
    };
    s.facts.reconciliation.push(item);
    let e = s.expected_at();
    s.finish(
        "missing_at_bank",
        ask(None, Some(e)),
        Code::MissingAtBank,
        "reconciliation found it absent from the bank's file",
    )
}

fn maintenance_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    affects: Vec<MaintenanceEffect>,
) -> MaintenanceWindow {
    MaintenanceWindow {
        announcement_id: "ann-0001".into(),
        title: Text::new("系统升级", "System upgrade"),
        start,
        end,
        affects,
    }
}

fn maintenance(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    if s.rng.chance(50) {
        let t = s.target.txn_time;
        let w = maintenance_window(
            t - Duration::minutes(30),
            t + Duration::minutes(90),
            vec![MaintenanceEffect::Capture],
        );
        s.facts.maintenance.push(w);
        let e = s.expected_at();
        s.finish_without_target(
            "maintenance",
            ask(None, Some(e)),
            Code::Maintenance,
            "capture was down when the sale was made",
        )
    } else {
        let now = s.facts.now;
        let w = maintenance_window(
            now - Duration::minutes(30),
            now + Duration::minutes(60),
            vec![MaintenanceEffect::Query],
        );
        s.facts.maintenance.push(w);
        let q = query(local_day(s.day), Filters::default());
        let e = s.expected();
        s.finish(
            "maintenance",
            ask(Some(q), Some(e)),
            Code::Maintenance,
            "the record matches the query, but queries are under maintenance now",
        )
    }
}

fn retention(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let years = s.rng.range(6, 9);
    let at = s.target.txn_time - Duration::days(365 * years);
    s.facts.candidates.clear();
    s.facts.candidate_window = (at - Duration::days(3), at + Duration::days(3));
    let mut e = s.expected_at();
    e.time = Some(ExpectedTime::Instant(at));
    s.finish_without_target(
        "retention",
        ask(None, Some(e)),
        Code::Retention,
        "older than the 5-year retention period",
    )
}

fn not_found(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let mut e = s.expected_at();
    if s.rng.chance(50) {
        // Another merchant's sale with the RRN asked about: it must stay invisible.
        let mut foreign = s.target.clone();
        foreign.id = "foreign-1".into();
        foreign.merchant_id =
            MerchantId::parse(FOREIGN_MERCHANT_ID).unwrap_or_else(|_| merchant_id());
        e.rrn = foreign.rrn.clone();
        s.facts.candidates.push(foreign);
    }
    s.finish_without_target(
        "not_found",
        ask(None, Some(e)),
        Code::NotFound,
        "nothing matches anywhere the user may look",
    )
}

fn declined_and_outside_range(rng: &mut Rng) -> Case {
    let mut s = declined_story(rng, "51");
    let q = query(s.range_missing_target(), Filters::default());
    let e = s.expected();
    s.finish(
        "declined_and_outside_range",
        ask(Some(q), Some(e)),
        Code::Declined,
        "widening the range would only show a failed payment: the customer must pay again",
    )
}

fn voided_on_other_terminal(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.terminal_id = Some(terminal(2));
    s.target.status = TxnStatus::Voided;
    let ev = s.event(TxnEventKind::VoidedBy, "void-1", 5, s.target.amount, None);
    s.target.events.push(ev);
    let q = query(
        local_day(s.day),
        Filters {
            terminal_ids: vec![TERMINAL_IDS[0].into()],
            ..Filters::default()
        },
    );
    let e = s.expected();
    s.finish(
        "voided_on_other_terminal",
        ask(Some(q), Some(e)),
        Code::Voided,
        "searching the right terminal would only show a voided sale",
    )
}

fn missing_at_bank_and_outside_range(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let item = ReconItem {
        run_id: "run-0002".into(),
        transaction_id: s.target.id.clone(),
        settlement_date: s.target.settlement_date,
        outcome: ReconOutcome::MissingInClearing,
    };
    s.facts.reconciliation.push(item);
    let q = query(s.range_missing_target(), Filters::default());
    let e = s.expected();
    s.finish(
        "missing_at_bank_and_outside_range",
        ask(Some(q), Some(e)),
        Code::MissingAtBank,
        "the range is self-service; the bank discrepancy needs a ticket whatever the search",
    )
}

fn shift_while_clearing_pending(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let day = date(2026, 11, 24);
    let minute = s.rng.range(0, 60) as u32;
    s.at(shanghai(day, 23, minute));
    let sd = SettlementDate::new(day);
    let q = query(
        SearchRange::SettlementDate { from: sd, to: sd },
        Filters::default(),
    );
    let e = s.expected();
    s.finish(
        "shift_while_clearing_pending",
        ask(Some(q), Some(e)),
        Code::SettlementDateShift,
        "the person searched the wrong settlement date; the pending file for the right one resolves by itself",
    )
}

fn frozen_and_declined_03(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.facts.merchant.status = MerchantStatus::Frozen;
    s.facts.merchant.status_reason = "涉嫌套现 / suspected cash-out".into();
    s.facts.merchant.status_since = Some(s.target.txn_time - Duration::days(1));
    s.decline("03");
    let q = status_query(&mut s);
    let e = s.expected_at();
    s.finish(
        "frozen_and_declined_03",
        ask(q, Some(e)),
        Code::AccountFrozen,
        "the decline is a symptom; the frozen account is the cause and the thing to fix",
    )
}

fn refunded_and_filtered_out(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.status = TxnStatus::Refunded;
    let ev = s.event(
        TxnEventKind::RefundedBy,
        "refund-1",
        30,
        s.target.amount,
        None,
    );
    s.target.events.push(ev);
    let q = query(
        local_day(s.day),
        Filters {
            channels: vec![Channel::Alipay],
            ..Filters::default()
        },
    );
    let e = s.expected();
    s.finish(
        "refunded_and_filtered_out",
        ask(Some(q), Some(e)),
        Code::Refunded,
        "clearing the filter would show a refunded sale: the money went back",
    )
}

fn reversed_in_wrong_timezone(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let (hour, minute) = (s.rng.range(1, 8) as u32, s.rng.range(0, 60) as u32);
    let day = s.day;
    s.at(shanghai(day, hour, minute));
    s.target.status = TxnStatus::Reversed;
    let ev = s.event(
        TxnEventKind::ReversedBy,
        "reversal-1",
        1,
        s.target.amount,
        Some("98"),
    );
    s.target.events.push(ev);
    let from = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let q = query(
        SearchRange::TxnTime {
            from,
            to: from + Duration::days(1),
            timezone: chrono_tz::UTC,
        },
        Filters::default(),
    );
    let e = s.expected();
    s.finish(
        "reversed_in_wrong_timezone",
        ask(Some(q), Some(e)),
        Code::Reversed,
        "fixing the time zone would only show a reversed sale",
    )
}

fn capture_maintenance_and_silent_terminal(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    let t = s.target.txn_time;
    s.facts.terminals[0].last_seen = Some(t - Duration::hours(1));
    let w = maintenance_window(
        t - Duration::minutes(45),
        t + Duration::minutes(45),
        vec![MaintenanceEffect::Capture],
    );
    s.facts.maintenance.push(w);
    let mut e = s.expected_at();
    e.terminal_id = Some(TERMINAL_IDS[0].into());
    s.finish_without_target(
        "capture_maintenance_and_silent_terminal",
        ask(None, Some(e)),
        Code::Maintenance,
        "the terminal went quiet because capture was down: maintenance is the upstream cause",
    )
}

fn other_terminal_and_outside_range(rng: &mut Rng) -> Case {
    let mut s = Story::new(rng);
    s.target.terminal_id = Some(terminal(1));
    let range = s.range_missing_target();
    let q = query(
        range,
        Filters {
            terminal_ids: vec![TERMINAL_IDS[0].into()],
            ..Filters::default()
        },
    );
    let e = s.expected();
    s.finish(
        "other_terminal_and_outside_range",
        ask(Some(q), Some(e)),
        Code::OtherTerminal,
        "the person's memory of the terminal is wrong, and their time only roughly: the terminal is the firmer fact",
    )
}

/// A realistic facts set for benchmarks: `candidates` transactions over ten days, three
/// terminals, ten clearing days, reconciliation items and maintenance windows, and a question
/// with a range, filters and a description.
pub fn realistic(seed: u64, candidates: usize) -> (Question, Facts) {
    let mut rng = Rng::new(seed);
    let mut s = Story::new(&mut rng);
    let mut facts = base_facts(
        &mut s.rng,
        candidates.saturating_sub(1),
        s.target.amount.fen(),
        "",
    );
    facts.reconciliation = facts
        .candidates
        .iter()
        .step_by(25)
        .map(|c| ReconItem {
            run_id: "run-0003".into(),
            transaction_id: c.id.clone(),
            settlement_date: c.settlement_date,
            outcome: ReconOutcome::Matched,
        })
        .collect();
    let now = facts.now;
    facts.maintenance = vec![
        maintenance_window(
            now - Duration::days(2),
            now - Duration::days(2) + Duration::hours(2),
            vec![MaintenanceEffect::Capture],
        ),
        maintenance_window(
            now + Duration::days(1),
            now + Duration::days(1) + Duration::hours(1),
            vec![MaintenanceEffect::Query],
        ),
        maintenance_window(
            now - Duration::days(5),
            now - Duration::days(5) + Duration::hours(3),
            vec![MaintenanceEffect::Settlement],
        ),
    ];
    s.facts = facts;
    s.decline("51");
    let q = query(
        s.range_missing_target(),
        Filters {
            statuses: vec![TxnStatus::Approved],
            channels: vec![Channel::Card],
            ..Filters::default()
        },
    );
    let e = s.expected();
    let case = s.finish(
        "realistic",
        ask(Some(q), Some(e)),
        Code::Declined,
        "benchmark",
    );
    (case.question, case.facts)
}

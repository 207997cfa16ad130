//! Integration tests for the diagnosis engine (one binary, STYLE.md). Most tests are tables fed
//! to `check`: a scenario, the code that must come first, and evidence that must be there.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use diagnosis::cases::{self, date, fen, local_day, purchase, query, shanghai, Rng, TERMINAL_IDS};
use diagnosis::{
    diagnose, hints, warnings, Candidate, ClearingDay, Code, Diagnosis, Expected, ExpectedTime,
    Facts, Filters, ListQuery, MaintenanceEffect, MaintenanceWindow, Question, QuestionError,
    ReconItem, ReconOutcome, Scope, SearchRange, Severity, TerminalFacts, Text, TxnEvent,
    TxnEventKind, UploadItem,
};
use domain::{
    BatchNo, Channel, MerchantId, MerchantStatus, ResponseCode, Role, Rrn, SettlementDate, Stan,
    TerminalId, TxnKind, TxnStatus,
};

const AMOUNT_FEN: i64 = 12_345;
const LAST4: &str = "4321";
const NOISE: usize = 30;

/// A healthy merchant with 30 unrelated transactions, none for 123.45 or card 4321.
fn world() -> (Facts, Rng) {
    let mut rng = Rng::new(42);
    let facts = cases::base_facts(&mut rng, NOISE, AMOUNT_FEN, LAST4);
    (facts, rng)
}

/// The sale looked for: 123.45 on card 4321, terminal 10000001, 2026-11-23 14:30 Shanghai.
fn target(rng: &mut Rng) -> Candidate {
    purchase(
        "T-1",
        0,
        AMOUNT_FEN,
        LAST4,
        shanghai(date(2026, 11, 23), 14, 30),
        rng,
    )
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    shanghai(date(2026, 11, day), hour, minute)
}

fn described() -> Expected {
    Expected {
        amount: Some(fen(AMOUNT_FEN)),
        card_last4: Some(LAST4.into()),
        time: Some(ExpectedTime::LocalDate(date(2026, 11, 23))),
        ..Expected::default()
    }
}

fn described_at(t: DateTime<Utc>) -> Expected {
    Expected {
        time: Some(ExpectedTime::Instant(t)),
        ..described()
    }
}

fn txn_range(from: DateTime<Utc>, to: DateTime<Utc>) -> SearchRange {
    SearchRange::TxnTime {
        from,
        to,
        timezone: chrono_tz::Asia::Shanghai,
    }
}

struct Scenario {
    name: &'static str,
    question: Question,
    facts: Facts,
}

fn scenario(
    name: &'static str,
    query: Option<ListQuery>,
    expected: Option<Expected>,
    facts: Facts,
) -> Scenario {
    Scenario {
        name,
        question: Question { query, expected },
        facts,
    }
}

/// Runs the engine and asserts the top finding's code and evidence (key → rendered text).
fn check(s: Scenario, code: Code, evidence: &[(&str, &str)]) -> Diagnosis {
    let d = diagnose(&s.question, &s.facts);
    let codes: Vec<(&str, f64, &[String])> = d
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.score, f.transaction_ids.as_slice()))
        .collect();
    let top = d
        .top()
        .unwrap_or_else(|| panic!("{}: no findings; checked {:?}", s.name, d.checked));
    assert_eq!(top.code, code, "{}: findings {codes:?}", s.name);
    for (key, value) in evidence {
        assert_eq!(
            top.evidence.get_text(key).as_deref(),
            Some(*value),
            "{}: evidence {key} in {:?}",
            s.name,
            top.evidence
        );
    }
    assert!(
        !top.message.zh.is_empty() && !top.message.en.is_empty(),
        "{}",
        s.name
    );
    assert!(
        !top.next_step.zh.is_empty() && !top.next_step.en.is_empty(),
        "{}",
        s.name
    );
    assert!(
        d.checked.iter().any(|c| c.subject == "candidates"),
        "{}: checked lists the candidates",
        s.name
    );
    d
}

fn with_target(mut facts: Facts, t: Candidate) -> Facts {
    facts.candidates.push(t);
    facts
}

// ---------------------------------------------------------------------------------------------
// One table per code.

#[test]
fn outside_range() {
    let (facts, mut rng) = world();
    let t = target(&mut rng);
    let rows = [
        (
            scenario(
                "searched from 14:45",
                Some(query(
                    txn_range(at(23, 14, 45), at(23, 18, 0)),
                    Filters::default(),
                )),
                Some(described()),
                with_target(facts.clone(), t.clone()),
            ),
            [
                ("transaction_id", "T-1"),
                ("txn_time", "2026-11-23T14:30:00+08:00"),
                ("distance_minutes", "15"),
                ("side", "before"),
            ],
        ),
        (
            scenario(
                "searched the morning",
                Some(query(
                    txn_range(at(23, 8, 0), at(23, 12, 0)),
                    Filters::default(),
                )),
                Some(described()),
                with_target(facts, t),
            ),
            [
                ("transaction_id", "T-1"),
                ("searched_to", "2026-11-23 12:00:00"),
                ("distance_minutes", "150"),
                ("side", "after"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::OutsideRange, &evidence);
    }
}

#[test]
fn settlement_date_shift() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.txn_time = at(22, 23, 20);
    t.settlement_date = cases::clock().settlement_date(t.txn_time, Channel::Card);
    let sd = SettlementDate::new(date(2026, 11, 22));
    let rows = [(
        scenario(
            "23:20 counts in the next day",
            Some(query(
                SearchRange::SettlementDate { from: sd, to: sd },
                Filters::default(),
            )),
            Some(Expected {
                time: Some(ExpectedTime::LocalDate(date(2026, 11, 22))),
                ..described()
            }),
            with_target(facts, t),
        ),
        [
            ("cutoff_applied", "23:00"),
            ("settlement_date", "2026-11-23"),
            ("local_date", "2026-11-22"),
            ("cutoff_channel", "card"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::SettlementDateShift, &evidence);
    }
}

#[test]
fn timezone() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.txn_time = at(23, 5, 0);
    let utc_day = Utc
        .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .expect("valid");
    let rows = [(
        scenario(
            "the day typed in UTC",
            Some(query(
                SearchRange::TxnTime {
                    from: utc_day,
                    to: utc_day + Duration::days(1),
                    timezone: chrono_tz::UTC,
                },
                Filters::default(),
            )),
            Some(described()),
            with_target(facts, t),
        ),
        [
            ("query_timezone", "UTC"),
            ("merchant_timezone", "Asia/Shanghai"),
            ("typed_from", "2026-11-23 00:00:00"),
            ("searched_from", "2026-11-23T08:00:00+08:00"),
            ("txn_time", "2026-11-23T05:00:00+08:00"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::Timezone, &evidence);
    }
}

#[test]
fn filtered_out() {
    let (facts, mut rng) = world();
    let mut wechat = target(&mut rng);
    wechat.channel = Channel::Wechat;
    wechat.card_last4 = None;
    let t = target(&mut rng);
    let rows = [
        (
            scenario(
                "card-only filter hides a WeChat payment",
                Some(query(
                    local_day(date(2026, 11, 23)),
                    Filters {
                        channels: vec![Channel::Card],
                        ..Filters::default()
                    },
                )),
                Some(Expected {
                    card_last4: None,
                    ..described_at(at(23, 14, 32))
                }),
                with_target(facts.clone(), wechat),
            ),
            [
                ("failed_filters", "channel"),
                ("filter_channel", "card"),
                ("actual_channel", "wechat"),
            ],
        ),
        (
            scenario(
                "amount range typed in yuan as fen",
                Some(query(
                    local_day(date(2026, 11, 23)),
                    Filters {
                        amount_min: Some(fen(100)),
                        amount_max: Some(fen(200)),
                        ..Filters::default()
                    },
                )),
                Some(described()),
                with_target(facts, t),
            ),
            [
                ("failed_filters", "amount"),
                ("filter_amount", "1.00..2.00"),
                ("actual_amount", "123.45"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::FilteredOut, &evidence);
    }
}

fn declined_target(rng: &mut Rng, code: &str) -> Candidate {
    let mut t = target(rng);
    t.status = TxnStatus::Declined;
    t.response_code = ResponseCode::parse(code).expect("valid code");
    t
}

#[test]
fn declined() {
    let (facts, mut rng) = world();
    let approved_only = query(
        local_day(date(2026, 11, 23)),
        Filters {
            statuses: vec![TxnStatus::Approved],
            ..Filters::default()
        },
    );
    let rows = [
        (
            scenario(
                "insufficient funds",
                Some(approved_only),
                Some(described()),
                with_target(facts.clone(), declined_target(&mut rng, "51")),
            ),
            [
                ("response_code", "51"),
                ("response_meaning_zh", "余额不足"),
                ("response_meaning_en", "insufficient funds"),
            ],
        ),
        (
            scenario(
                "wrong PIN, no query",
                None,
                Some(described()),
                with_target(facts, declined_target(&mut rng, "55")),
            ),
            [
                ("response_code", "55"),
                ("response_meaning_zh", "密码错"),
                ("response_meaning_en", "incorrect PIN"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::Declined, &evidence);
    }
}

fn event(
    kind: TxnEventKind,
    id: &str,
    t: DateTime<Utc>,
    amount_fen: i64,
    reason: Option<&str>,
) -> TxnEvent {
    TxnEvent {
        kind,
        transaction_id: id.into(),
        at: t,
        amount: fen(amount_fen),
        reason_code: reason.map(|r| ResponseCode::parse(r).expect("valid")),
    }
}

#[test]
fn reversed() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.status = TxnStatus::Reversed;
    t.events.push(event(
        TxnEventKind::ReversedBy,
        "R-1",
        at(23, 14, 31),
        AMOUNT_FEN,
        Some("98"),
    ));
    let rows = [(
        scenario(
            "terminal timeout",
            None,
            Some(described()),
            with_target(facts, t),
        ),
        [
            ("reversal_id", "R-1"),
            ("reversal_reason_code", "98"),
            ("reversal_reason_en", "no reply received"),
            ("reversed_at", "2026-11-23T14:31:00+08:00"),
        ],
    )];
    for (s, evidence) in rows {
        let d = check(s, Code::Reversed, &evidence);
        assert!(d.findings[0].message.zh.contains("冲正"));
    }
}

#[test]
fn voided() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.status = TxnStatus::Voided;
    t.events.push(event(
        TxnEventKind::VoidedBy,
        "V-1",
        at(23, 14, 40),
        AMOUNT_FEN,
        None,
    ));
    let rows = [(
        scenario(
            "voided by the cashier",
            None,
            Some(described()),
            with_target(facts, t),
        ),
        [
            ("void_id", "V-1"),
            ("voided_at", "2026-11-23T14:40:00+08:00"),
            ("status", "voided"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::Voided, &evidence);
    }
}

#[test]
fn refunded() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.status = TxnStatus::PartiallyRefunded;
    t.events.push(event(
        TxnEventKind::RefundedBy,
        "F-1",
        at(24, 10, 0),
        5_000,
        None,
    ));
    let rows = [(
        scenario(
            "half refunded next day",
            None,
            Some(described()),
            with_target(facts, t),
        ),
        [
            ("refund_ids", "F-1"),
            ("refunded_fen", "5000"),
            ("status", "partially_refunded"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::Refunded, &evidence);
    }
}

#[test]
fn other_terminal() {
    let (facts, mut rng) = world();
    let mut t = target(&mut rng);
    t.terminal_id = Some(cases::terminal(1));
    let rows = [
        (
            scenario(
                "terminal filter",
                Some(query(
                    local_day(date(2026, 11, 23)),
                    Filters {
                        terminal_ids: vec![TERMINAL_IDS[0].into()],
                        ..Filters::default()
                    },
                )),
                Some(described()),
                with_target(facts.clone(), t.clone()),
            ),
            [
                ("terminal_id", "10000002"),
                ("searched_terminal_ids", "10000001"),
            ],
        ),
        (
            scenario(
                "terminal in the description",
                None,
                Some(Expected {
                    terminal_id: Some(TERMINAL_IDS[2].into()),
                    ..described()
                }),
                with_target(facts, t),
            ),
            [
                ("terminal_id", "10000002"),
                ("searched_terminal_ids", "10000003"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::OtherTerminal, &evidence);
    }
}

#[test]
fn terminal_not_bound() {
    let (facts, _) = world();
    let rows = [
        (
            scenario(
                "someone else's terminal id",
                None,
                Some(Expected {
                    terminal_id: Some("20001234".into()),
                    ..described_at(at(23, 14, 30))
                }),
                Facts {
                    typed_terminal_bound_elsewhere: true,
                    ..facts.clone()
                },
            ),
            [
                ("typed_terminal_id", "20001234"),
                ("typed_format_valid", "true"),
                ("own_terminal_ids", "10000001,10000002,10000003"),
            ],
        ),
        (
            scenario(
                "a malformed terminal id in the filter",
                Some(query(
                    local_day(date(2026, 11, 23)),
                    Filters {
                        terminal_ids: vec!["1000001".into()],
                        ..Filters::default()
                    },
                )),
                None,
                facts,
            ),
            [
                ("typed_terminal_id", "1000001"),
                ("typed_format_valid", "false"),
                ("own_terminal_ids", "10000001,10000002,10000003"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        let d = check(s, Code::TerminalNotBound, &evidence);
        // A merchant user never learns whether the terminal exists elsewhere.
        assert!(d.findings[0]
            .evidence
            .get("bound_to_other_merchant")
            .is_none());
        assert!(!d.findings[0].message.en.contains("another merchant"));
    }
}

#[test]
fn merchant_id_mismatch() {
    let (facts, _) = world();
    let typed = "898310048990010";
    let rows = [
        (
            scenario(
                "two digits swapped",
                Some(ListQuery {
                    merchant_id: Some(typed.into()),
                    range: local_day(date(2026, 11, 23)),
                    filters: Filters::default(),
                }),
                Some(Expected {
                    merchant_id: Some(typed.into()),
                    ..described()
                }),
                facts.clone(),
            ),
            [
                ("typed_merchant_id", typed),
                ("suggested_merchant_id", "898310048990001"),
                ("edit_distance", "2"),
            ],
        ),
        (
            scenario(
                "a digit missing",
                None,
                Some(Expected {
                    merchant_id: Some("89831004899001".into()),
                    ..described()
                }),
                facts,
            ),
            [
                ("typed_merchant_id", "89831004899001"),
                ("suggested_merchant_id", "898310048990001"),
                ("edit_distance", "1"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::MerchantIdMismatch, &evidence);
    }
}

fn with_status(mut facts: Facts, status: MerchantStatus, since: DateTime<Utc>) -> Facts {
    facts.merchant.status = status;
    facts.merchant.status_reason = "风险核查".into();
    facts.merchant.status_since = Some(since);
    facts
}

#[test]
fn account_frozen() {
    let (facts, mut rng) = world();
    let frozen = with_status(facts, MerchantStatus::Frozen, at(22, 9, 0));
    let rows = [
        (
            scenario(
                "declined 03 while frozen",
                None,
                Some(described()),
                with_target(frozen.clone(), declined_target(&mut rng, "03")),
            ),
            vec![
                ("merchant_status", "frozen"),
                ("status_since", "2026-11-22T09:00:00+08:00"),
                ("response_code", "03"),
                ("transaction_id", "T-1"),
            ],
        ),
        (
            scenario(
                "no record at all after freezing",
                None,
                Some(described_at(at(23, 14, 30))),
                frozen,
            ),
            vec![("merchant_status", "frozen"), ("status_reason", "风险核查")],
        ),
    ];
    for (s, evidence) in rows {
        let d = check(s, Code::AccountFrozen, &evidence);
        assert_eq!(d.findings[0].severity, Severity::Critical);
    }
}

#[test]
fn account_closed() {
    let (facts, _) = world();
    let rows = [(
        scenario(
            "closed before the sale",
            None,
            Some(described_at(at(23, 14, 30))),
            with_status(facts, MerchantStatus::Closed, at(20, 18, 0)),
        ),
        [
            ("merchant_status", "closed"),
            ("status_since", "2026-11-20T18:00:00+08:00"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::AccountClosed, &evidence);
    }
}

#[test]
fn sync_pending() {
    let (facts, mut rng) = world();
    let mut upload = facts.clone();
    upload.terminals[2]
        .upload_items_missing_at_host
        .push(UploadItem {
            batch_no: BatchNo::new(11).expect("valid"),
            stan: Stan::new(777).expect("valid"),
            amount: fen(AMOUNT_FEN),
            uploaded_at: at(24, 23, 12),
        });
    let mut silent = facts.clone();
    silent.terminals[1].last_seen = Some(at(23, 12, 0));
    let mut open_batch = target(&mut rng);
    open_batch.batch_no = BatchNo::new(cases::OPEN_BATCH).ok();
    let rows = [
        (
            scenario(
                "terminal uploaded what the host lacks",
                None,
                Some(Expected {
                    stan: Some(Stan::new(777).expect("valid")),
                    amount: Some(fen(AMOUNT_FEN)),
                    terminal_id: Some(TERMINAL_IDS[2].into()),
                    ..Expected::default()
                }),
                upload,
            ),
            vec![
                ("discrepancy", "terminal_only"),
                ("stan", "000777"),
                ("terminal_id", "10000003"),
                ("batch_no", "000011"),
            ],
        ),
        (
            scenario(
                "terminal silent since noon",
                None,
                Some(Expected {
                    terminal_id: Some(TERMINAL_IDS[1].into()),
                    ..described_at(at(23, 14, 30))
                }),
                silent,
            ),
            vec![
                ("terminal_id", "10000002"),
                ("terminal_last_seen", "2026-11-23T12:00:00+08:00"),
            ],
        ),
        (
            scenario(
                "batch not settled",
                None,
                Some(described()),
                with_target(facts, open_batch),
            ),
            vec![
                ("batch_no", "000012"),
                ("open_batch_no", "000012"),
                ("unsettled_count", "4"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::SyncPending, &evidence);
    }
}

#[test]
fn clearing_pending() {
    let (mut facts, mut rng) = world();
    for day in &mut facts.clearing {
        if day.settlement_date == SettlementDate::new(date(2026, 11, 23)) {
            day.channels_in = vec![Channel::Wechat, Channel::Alipay];
        }
    }
    let rows = [(
        scenario(
            "card file not in",
            None,
            Some(described()),
            with_target(facts, target(&mut rng)),
        ),
        [
            ("clearing_channel_pending", "card"),
            ("clearing_channels_in", "wechat,alipay"),
            ("settlement_date", "2026-11-23"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::ClearingPending, &evidence);
    }
}

#[test]
fn missing_at_bank() {
    let (mut facts, mut rng) = world();
    facts.reconciliation.push(ReconItem {
        run_id: "run-42".into(),
        transaction_id: "T-1".into(),
        settlement_date: SettlementDate::new(date(2026, 11, 23)),
        outcome: ReconOutcome::MissingInClearing,
    });
    let rows = [(
        scenario(
            "bank's file lacks it",
            None,
            Some(described()),
            with_target(facts, target(&mut rng)),
        ),
        [
            ("reconciliation_run_id", "run-42"),
            ("reconciliation_outcome", "missing_in_clearing"),
            ("transaction_id", "T-1"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::MissingAtBank, &evidence);
    }
}

fn window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    affects: MaintenanceEffect,
) -> MaintenanceWindow {
    MaintenanceWindow {
        announcement_id: "ANN-7".into(),
        title: Text::new("核心系统升级", "Core system upgrade"),
        start,
        end,
        affects: vec![affects],
    }
}

#[test]
fn maintenance() {
    let (facts, mut rng) = world();
    let mut capture = facts.clone();
    capture.maintenance.push(window(
        at(23, 14, 0),
        at(23, 16, 0),
        MaintenanceEffect::Capture,
    ));
    let mut query_now = with_target(facts, target(&mut rng));
    query_now.maintenance.push(window(
        query_now.now - Duration::minutes(10),
        query_now.now + Duration::hours(1),
        MaintenanceEffect::Query,
    ));
    let rows = [
        (
            scenario(
                "capture down at the time",
                None,
                Some(described_at(at(23, 14, 30))),
                capture,
            ),
            vec![
                ("announcement_id", "ANN-7"),
                ("maintenance_affects", "capture"),
                ("maintenance_start", "2026-11-23T14:00:00+08:00"),
            ],
        ),
        (
            scenario(
                "the record matches but queries are under maintenance",
                Some(query(local_day(date(2026, 11, 23)), Filters::default())),
                Some(described()),
                query_now,
            ),
            vec![
                ("maintenance_affects", "query"),
                ("transaction_matches_query", "true"),
                ("transaction_id", "T-1"),
            ],
        ),
    ];
    for (s, evidence) in rows {
        check(s, Code::Maintenance, &evidence);
    }
}

#[test]
fn retention() {
    let (mut facts, _) = world();
    facts.candidates.clear();
    let rows = [(
        scenario(
            "a sale from 2019",
            None,
            Some(described_at(shanghai(date(2019, 6, 1), 12, 0))),
            facts,
        ),
        [
            ("retention_days", "1825"),
            ("oldest_kept", "2021-11-26T10:00:00+08:00"),
        ],
    )];
    for (s, evidence) in rows {
        check(s, Code::Retention, &evidence);
    }
}

#[test]
fn not_found() {
    let (facts, _) = world();
    let examined = NOISE.to_string();
    let rows = [(
        scenario(
            "nothing anywhere",
            None,
            Some(described_at(at(23, 14, 30))),
            facts,
        ),
        [
            ("transactions_examined", examined.as_str()),
            ("ticket_amount_fen", "12345"),
            ("ticket_card_last4", "4321"),
        ],
    )];
    for (s, evidence) in rows {
        let d = check(s, Code::NotFound, &evidence);
        for subject in [
            "scope",
            "candidates",
            "account",
            "terminals",
            "clearing",
            "reconciliation",
            "maintenance",
            "retention",
        ] {
            assert!(
                d.checked.iter().any(|c| c.subject == subject),
                "NOT_FOUND shows the work: {subject}"
            );
        }
        assert!(d.findings[0].next_step.zh.contains("工单"));
    }
}

#[test]
fn every_code_has_a_table() {
    // The tables above cover each code once; this guards against a new code without one.
    assert_eq!(Code::ALL.len(), 19);
    for code in Code::ALL {
        assert_eq!(Code::parse(code.as_str()), Some(*code));
    }
}

// ---------------------------------------------------------------------------------------------
// Ranking when two causes hold.

#[test]
fn declined_just_outside_the_range_is_declined_first() {
    let (facts, mut rng) = world();
    let s = scenario(
        "declined and outside",
        Some(query(
            txn_range(at(23, 15, 0), at(23, 18, 0)),
            Filters::default(),
        )),
        Some(described()),
        with_target(facts, declined_target(&mut rng, "51")),
    );
    let d = check(s, Code::Declined, &[("response_code", "51")]);
    assert_eq!(
        d.findings[1].code,
        Code::OutsideRange,
        "the range is the second finding"
    );
    assert!(d.findings[0].score > d.findings[1].score);
    assert_eq!(d.findings[1].transaction_ids, vec!["T-1".to_owned()]);
}

#[test]
fn a_better_match_outranks_a_weaker_one() {
    let (facts, mut rng) = world();
    // Same amount, other card, voided: a weaker match than the exact one outside the range.
    let mut weak = target(&mut rng);
    weak.id = "T-2".into();
    weak.card_last4 = Some("9999".into());
    weak.status = TxnStatus::Voided;
    let exact = target(&mut rng);
    let s = scenario(
        "two candidates",
        Some(query(
            txn_range(at(23, 15, 0), at(23, 18, 0)),
            Filters::default(),
        )),
        Some(described_at(at(23, 14, 30))),
        with_target(with_target(facts, weak), exact),
    );
    check(s, Code::OutsideRange, &[("transaction_id", "T-1")]);
}

// ---------------------------------------------------------------------------------------------
// The generator: 100% of cases must put the true cause first.

const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 20261125];

#[test]
fn generated_cases_put_the_true_cause_first() {
    let n = cases::story_count() * 2;
    assert!(n >= 40, "at least 40 cases per seed");
    let mut total = 0usize;
    let mut correct = 0usize;
    let mut wrong = Vec::new();
    for seed in SEEDS {
        for case in cases::generate(seed, n) {
            total += 1;
            let d = diagnose(&case.question, &case.facts);
            let top = d.top().map(|f| f.code);
            if top == Some(case.true_cause) {
                correct += 1;
            } else {
                let all: Vec<(&str, f64)> = d
                    .findings
                    .iter()
                    .map(|f| (f.code.as_str(), f.score))
                    .collect();
                wrong.push(format!(
                    "seed {seed} {}: want {}, got {all:?}",
                    case.name, case.true_cause
                ));
            }
        }
    }
    let accuracy = 100.0 * correct as f64 / total as f64;
    println!(
        "diagnosis accuracy: {correct}/{total} = {accuracy:.1}% (top finding is the true cause)"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn generator_covers_every_code_and_two_cause_stories() {
    let cases = cases::generate(9, cases::story_count());
    for code in Code::ALL {
        assert!(
            cases.iter().any(|c| c.true_cause == *code),
            "no generated case for {code}"
        );
    }
    let two_cause = cases
        .iter()
        .filter(|c| {
            c.name.contains("_and_")
                || c.name.contains("_on_")
                || c.name.contains("_while_")
                || c.name.contains("_in_")
        })
        .count();
    assert!(two_cause >= 8, "two-cause stories: {two_cause}");
    // Deterministic: the same seed gives the same cases.
    let again = cases::generate(9, cases::story_count());
    assert!(cases
        .iter()
        .zip(&again)
        .all(|(a, b)| a.question == b.question && a.facts == b.facts));
}

// ---------------------------------------------------------------------------------------------
// Scoping: another merchant's data never shows, not even its existence.

fn foreign_merchant() -> MerchantId {
    MerchantId::parse(cases::FOREIGN_MERCHANT_ID).expect("valid")
}

/// The same world, polluted with another merchant's sale, terminal and reconciliation item, as
/// a buggy caller might pass them.
fn polluted(facts: &Facts, rrn: &Rrn) -> Facts {
    let mut rng = Rng::new(7);
    let mut foreign = target(&mut rng);
    foreign.id = "FOREIGN-TXN".into();
    foreign.merchant_id = foreign_merchant();
    foreign.terminal_id = Some(TerminalId::parse("20009999").expect("valid"));
    foreign.rrn = Some(rrn.clone());
    let mut out = facts.clone();
    out.candidates.push(foreign);
    out.terminals.push(TerminalFacts {
        terminal_id: TerminalId::parse("20009999").expect("valid"),
        merchant_id: foreign_merchant(),
        ..cases::terminal_facts(0)
    });
    out.reconciliation.push(ReconItem {
        run_id: "run-foreign".into(),
        transaction_id: "FOREIGN-TXN".into(),
        settlement_date: SettlementDate::new(date(2026, 11, 23)),
        outcome: ReconOutcome::MissingInClearing,
    });
    out.typed_terminal_bound_elsewhere = true;
    out
}

#[test]
fn another_merchants_rrn_answers_exactly_like_an_unknown_rrn() {
    let (facts, _) = world();
    let rrn = Rrn::parse("633012345678").expect("valid");
    let questions = [
        Question {
            query: None,
            expected: Some(Expected {
                rrn: Some(rrn.clone()),
                ..Expected::default()
            }),
        },
        Question {
            query: Some(query(
                local_day(date(2026, 11, 23)),
                Filters {
                    rrn: Some(rrn.clone()),
                    ..Filters::default()
                },
            )),
            expected: None,
        },
        Question {
            query: None,
            expected: Some(Expected {
                rrn: Some(rrn.clone()),
                terminal_id: Some("20009999".into()),
                ..described()
            }),
        },
    ];
    let dirty = polluted(&facts, &rrn);
    for question in &questions {
        let unknown = diagnose(question, &facts);
        let foreign = diagnose(question, &dirty);
        assert_eq!(foreign, unknown, "the outputs must be identical");
        let text = format!("{foreign:?}");
        for secret in [cases::FOREIGN_MERCHANT_ID, "FOREIGN-TXN", "run-foreign"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    let top = diagnose(&questions[0], &dirty);
    assert_eq!(top.top().map(|f| f.code), Some(Code::NotFound));
    assert_eq!(
        hints(questions[1].query.as_ref().expect("query"), &dirty),
        hints(questions[1].query.as_ref().expect("query"), &facts)
    );
    assert_eq!(warnings(&dirty), warnings(&facts));
}

#[test]
fn staff_do_not_see_terminals_outside_their_list() {
    let (facts, mut rng) = world();
    let mut hidden = target(&mut rng);
    hidden.terminal_id = Some(cases::terminal(2));
    let mut staff = facts.clone();
    staff.scope = Scope {
        role: Role::MerchantStaff,
        merchant_ids: vec![cases::merchant_id()],
        terminal_ids: Some(vec![cases::terminal(0), cases::terminal(1)]),
    };
    let question = Question {
        query: None,
        expected: Some(described()),
    };
    let with_hidden = diagnose(&question, &with_target(staff.clone(), hidden));
    let without = diagnose(&question, &staff);
    assert_eq!(with_hidden, without);
    assert_eq!(with_hidden.top().map(|f| f.code), Some(Code::NotFound));
}

#[test]
fn only_bank_roles_learn_a_terminal_is_bound_elsewhere() {
    let (mut facts, _) = world();
    facts.typed_terminal_bound_elsewhere = true;
    facts.scope.role = Role::BankOperator;
    let s = scenario(
        "bank operator",
        None,
        Some(Expected {
            terminal_id: Some("20009999".into()),
            ..described()
        }),
        facts,
    );
    check(
        s,
        Code::TerminalNotBound,
        &[("bound_to_other_merchant", "true")],
    );
}

// ---------------------------------------------------------------------------------------------
// Hints, warnings, questions.

#[test]
fn hints_for_an_empty_list() {
    let (facts, mut rng) = world();
    let facts = with_target(facts, target(&mut rng));
    let q = query(
        txn_range(at(23, 14, 45), at(23, 18, 0)),
        Filters {
            card_last4: Some(LAST4.into()),
            ..Filters::default()
        },
    );
    let h = hints(&q, &facts);
    assert!(!h.is_empty() && h.len() <= diagnosis::HINTS_MAX);
    assert_eq!(h[0].code, Code::OutsideRange);
    assert_eq!(h[0].transaction_ids, vec!["T-1".to_owned()]);
}

#[test]
fn warnings_name_maintenance_account_and_lagging_terminals() {
    let (facts, _) = world();
    let mut facts = with_status(facts, MerchantStatus::Frozen, at(22, 9, 0));
    facts.maintenance.push(window(
        facts.now - Duration::minutes(5),
        facts.now + Duration::hours(1),
        MaintenanceEffect::Settlement,
    ));
    facts.terminals[1].last_seen = Some(facts.now - Duration::days(3));
    let codes: Vec<Code> = warnings(&facts).iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        vec![Code::Maintenance, Code::AccountFrozen, Code::SyncPending]
    );
    let (healthy, _) = world();
    assert!(warnings(&healthy).is_empty());
}

#[test]
fn questions_are_parsed_once_at_the_edge() {
    assert_eq!(Question::new(None, None), Err(QuestionError::Empty));
    let reversed = query(txn_range(at(23, 18, 0), at(23, 8, 0)), Filters::default());
    assert!(matches!(
        Question::new(Some(reversed), None),
        Err(QuestionError::RangeReversed { .. })
    ));
    let bad_card = Expected {
        card_last4: Some("12a4".into()),
        ..Expected::default()
    };
    assert_eq!(
        Question::new(None, Some(bad_card)),
        Err(QuestionError::CardLast4)
    );
    assert!(Question::new(None, Some(described())).is_ok());
}

// ---------------------------------------------------------------------------------------------
// No panics on any input.

fn wild_instant(rng: &mut Rng) -> DateTime<Utc> {
    match rng.range(0, 5) {
        0 => DateTime::<Utc>::MIN_UTC,
        1 => DateTime::<Utc>::MAX_UTC,
        2 => Utc
            .timestamp_opt(rng.range(-10_000_000_000, 10_000_000_000), 0)
            .single()
            .unwrap_or_default(),
        _ => cases::now() - Duration::minutes(rng.range(-100_000, 100_000)),
    }
}

fn wild_date(rng: &mut Rng) -> NaiveDate {
    match rng.range(0, 4) {
        0 => NaiveDate::MIN,
        1 => NaiveDate::MAX,
        _ => date(2026, 11, 1) + Duration::days(rng.range(-400, 400)),
    }
}

fn wild_text(rng: &mut Rng) -> String {
    [
        "",
        " ",
        "898310048990001",
        "8983100489900011111111111111111111111111111111111111111111111111111111111",
        "商户号一二三",
        "10000001",
        "\u{0}\u{ffff}",
    ][rng.range(0, 7) as usize]
        .to_owned()
}

#[test]
fn wild_inputs_never_panic() {
    let mut rng = Rng::new(99);
    for i in 0..300 {
        let (mut facts, _) = world();
        facts.now = wild_instant(&mut rng);
        facts.retention_days = [0, 1, u32::MAX][rng.range(0, 3) as usize];
        facts.candidate_window = (wild_instant(&mut rng), wild_instant(&mut rng));
        if rng.chance(30) {
            facts.scope.merchant_ids.clear();
        }
        for c in facts.candidates.iter_mut().take(5) {
            c.txn_time = wild_instant(&mut rng);
            c.settlement_date = SettlementDate::new(wild_date(&mut rng));
            c.status = *rng.pick(TxnStatus::ALL);
            c.kind = *rng.pick(TxnKind::ALL);
            c.events.push(event(
                TxnEventKind::RefundedBy,
                "x",
                wild_instant(&mut rng),
                i64::MAX,
                None,
            ));
        }
        facts.maintenance.push(window(
            wild_instant(&mut rng),
            wild_instant(&mut rng),
            MaintenanceEffect::Settlement,
        ));
        facts.maintenance.push(window(
            wild_instant(&mut rng),
            wild_instant(&mut rng),
            MaintenanceEffect::Capture,
        ));
        facts.clearing.push(ClearingDay {
            settlement_date: SettlementDate::new(wild_date(&mut rng)),
            channels_in: vec![],
        });
        facts.merchant.status = *rng.pick(MerchantStatus::ALL);
        facts.merchant.status_since = Some(wild_instant(&mut rng));
        facts.terminals[0].last_seen = Some(wild_instant(&mut rng));
        let range = if rng.chance(50) {
            SearchRange::TxnTime {
                from: wild_instant(&mut rng),
                to: wild_instant(&mut rng),
                timezone: chrono_tz::Pacific::Kiritimati,
            }
        } else {
            SearchRange::SettlementDate {
                from: SettlementDate::new(wild_date(&mut rng)),
                to: SettlementDate::new(wild_date(&mut rng)),
            }
        };
        let time = match rng.range(0, 3) {
            0 => Some(ExpectedTime::Instant(wild_instant(&mut rng))),
            1 => Some(ExpectedTime::LocalDate(wild_date(&mut rng))),
            _ => None,
        };
        let q = ListQuery {
            merchant_id: Some(wild_text(&mut rng)),
            range,
            filters: Filters {
                terminal_ids: vec![wild_text(&mut rng)],
                card_last4: Some(wild_text(&mut rng)),
                amount_min: Some(fen(i64::MAX)),
                ..Filters::default()
            },
        };
        let e = Expected {
            time,
            merchant_id: Some(wild_text(&mut rng)),
            terminal_id: Some(wild_text(&mut rng)),
            card_last4: Some(wild_text(&mut rng)),
            amount: Some(fen(rng.range(0, i64::MAX))),
            ..Expected::default()
        };
        let question = match rng.range(0, 4) {
            0 => Question {
                query: Some(q.clone()),
                expected: None,
            },
            1 => Question {
                query: None,
                expected: Some(e),
            },
            2 => Question::default(),
            _ => Question {
                query: Some(q.clone()),
                expected: Some(e),
            },
        };
        let d = diagnose(&question, &facts);
        assert!(!d.checked.is_empty(), "case {i}: checked is never empty");
        assert!(
            d.findings.iter().all(|f| (0.0..=1.0).contains(&f.score)),
            "case {i}: scores stay in [0, 1]"
        );
        let _ = hints(&q, &facts);
        let _ = warnings(&facts);
    }
}

//! One test per rule of PRODUCT.md "Reconciliation outcomes", as data through `check`.

use chrono::{DateTime, Duration, Utc};
use domain::{
    Amount, BatchNo, Channel, Currency, MerchantId, Rrn, SettlementDate, Source, Stan, TerminalId, TxnKind, TxnStatus,
};
use recon::{reconcile, ClearingFileId, ClearingRecord, Input, MaskedCard, PlatformId, PlatformRecord, ReconConfig};

const D: &str = "2026-11-25";

fn date(s: &str) -> SettlementDate {
    SettlementDate::parse(s).unwrap()
}

fn noon() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00+08:00").unwrap().with_timezone(&Utc)
}

fn purchase(id: i64, stan: u32) -> PlatformRecord {
    PlatformRecord {
        id: PlatformId(id),
        merchant: MerchantId::parse("898310048990001").unwrap(),
        terminal: Some(TerminalId::parse("10000001").unwrap()),
        batch: Some(BatchNo::new(1).unwrap()),
        stan: Some(Stan::new(stan).unwrap()),
        rrn: Some(Rrn::parse(&format!("{:012}", 500_000 + stan)).unwrap()),
        auth_code: None,
        kind: TxnKind::Purchase,
        channel: Channel::Card,
        approved: true,
        is_reversal: false,
        status: TxnStatus::Approved,
        amount: Amount::from_fen(12_850).unwrap(),
        currency: Currency::CNY,
        card: MaskedCard::new("622202", "1234"),
        txn_time: noon(),
        settlement_date: date(D),
        external_ref: None,
        original_id: None,
        source: Source::Iso8583,
    }
}

fn follow_up(original: &PlatformRecord, id: i64, stan: u32, kind: TxnKind) -> PlatformRecord {
    let mut r = purchase(id, stan);
    r.kind = kind;
    r.amount = original.amount;
    r.original_id = Some(original.id);
    r
}

fn row(p: &PlatformRecord, line: u64) -> ClearingRecord {
    ClearingRecord {
        file: ClearingFileId(1),
        line,
        settlement_date: date(D),
        merchant: Some(p.merchant.clone()),
        terminal: p.terminal.clone(),
        batch: p.batch,
        stan: p.stan,
        rrn: p.rrn.clone(),
        auth_code: None,
        kind: p.kind,
        channel: p.channel,
        card: p.card,
        amount: p.amount,
        fee: Amount::ZERO,
        currency: Currency::CNY,
        txn_time: Some(p.txn_time),
        external_ref: p.external_ref.clone(),
    }
}

/// `expected`: one line per item, `outcome pass platform_id clearing_line`, `-` for none.
fn check_with(platform: &[PlatformRecord], clearing: &[ClearingRecord], channels: &[Channel], expected: &str) {
    let input = Input {
        settlement_date: date(D),
        platform,
        clearing,
        channels_with_clearing: channels,
        config: ReconConfig::default(),
    };
    let report = reconcile(&input).unwrap();
    let got: Vec<String> = report
        .items
        .iter()
        .map(|i| {
            format!(
                "{} {} {} {}",
                i.outcome,
                i.match_pass.map_or("-".to_owned(), |p| p.to_string()),
                i.platform.map_or("-".to_owned(), |p| p.id.to_string()),
                i.clearing.map_or("-".to_owned(), |c| c.line.to_string())
            )
        })
        .chain(report.pending.iter().map(|p| format!("pending - {} -", p.id)))
        .collect();
    let want: Vec<String> = expected.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    assert_eq!(got, want);
}

fn check(platform: &[PlatformRecord], clearing: &[ClearingRecord], expected: &str) {
    check_with(platform, clearing, &[Channel::Card, Channel::Wechat], expected);
}

#[test]
fn identical_sides_match_on_the_key() {
    let p = purchase(1, 1);
    check(std::slice::from_ref(&p), &[row(&p, 2)], "matched key 1 2");
}

#[test]
fn a_different_amount_is_an_amount_mismatch() {
    let p = purchase(1, 1);
    let mut r = row(&p, 2);
    r.amount = Amount::from_fen(12_800).unwrap();
    check(&[p], &[r], "amount_mismatch key 1 2");
}

#[test]
fn one_sided_records_are_missing_on_the_other_side() {
    let (a, b) = (purchase(1, 1), purchase(2, 2));
    let mut r = row(&b, 2);
    r.amount = Amount::from_fen(99).unwrap();
    check(std::slice::from_ref(&a), &[r], "missing_in_platform - - 2\nmissing_in_clearing - 1 -");
}

#[test]
fn void_and_purchase_each_match_their_own_row() {
    let mut p = purchase(1, 1);
    p.status = TxnStatus::Voided;
    let v = follow_up(&p, 2, 2, TxnKind::Void);
    check(&[p.clone(), v.clone()], &[row(&p, 2), row(&v, 3)], "matched key 1 2\nmatched key 2 3");
}

#[test]
fn bank_has_the_purchase_but_not_the_void() {
    let mut p = purchase(1, 1);
    p.status = TxnStatus::Voided;
    let v = follow_up(&p, 2, 2, TxnKind::Void);
    check(&[p.clone(), v], &[row(&p, 2)], "status_mismatch key 1 2\nmissing_in_clearing - 2 -");
}

#[test]
fn a_refunded_purchase_the_bank_settled_is_matched() {
    let mut p = purchase(1, 1);
    p.status = TxnStatus::Refunded;
    let f = follow_up(&p, 2, 2, TxnKind::Refund);
    check(&[p.clone(), f.clone()], &[row(&p, 2), row(&f, 3)], "matched key 1 2\nmatched key 2 3");
}

#[test]
fn extra_copies_of_a_row_are_duplicates() {
    let p = purchase(1, 1);
    check(
        std::slice::from_ref(&p),
        &[row(&p, 4), row(&p, 2), row(&p, 3)],
        "matched key 1 2\nduplicate_in_clearing - 1 3\nduplicate_in_clearing - 1 4",
    );
}

#[test]
fn duplicates_of_a_row_we_never_captured() {
    let p = purchase(1, 1);
    check(&[], &[row(&p, 2), row(&p, 3)], "missing_in_platform - - 2\nduplicate_in_clearing - - 3");
}

#[test]
fn date_shift_looks_both_ways() {
    // Ours is D, the bank's row is in D+1's file.
    let ours_d = purchase(1, 1);
    let mut next_row = row(&ours_d, 2);
    next_row.settlement_date = date(D).succ();
    next_row.file = ClearingFileId(9);
    // The bank's row is in D's file, ours is D-1.
    let mut ours_prev = purchase(2, 2);
    ours_prev.settlement_date = date(D).pred();
    let prev_row = row(&ours_prev, 3);
    check(&[ours_d, ours_prev], &[next_row, prev_row], "date_shift key 2 3\ndate_shift key 1 2");
}

#[test]
fn an_adjacent_days_own_pair_is_not_a_date_shift() {
    let ours_d = purchase(1, 1);
    let mut ours_next = purchase(2, 2);
    ours_next.settlement_date = date(D).succ();
    ours_next.stan = ours_d.stan;
    ours_next.batch = Some(BatchNo::new(2).unwrap());
    let mut next_row = row(&ours_next, 2);
    next_row.settlement_date = date(D).succ();
    next_row.batch = ours_d.batch; // looks like ours_d on the key; rrn says ours_next
    next_row.rrn = ours_next.rrn.clone();
    next_row.stan = None;
    check(&[ours_d, ours_next], &[next_row], "missing_in_clearing - 1 -");
}

#[test]
fn declined_and_reversed_records_appear_only_when_the_bank_has_them() {
    let mut declined = purchase(1, 1);
    declined.approved = false;
    declined.status = TxnStatus::Declined;
    let mut reversed = purchase(2, 2);
    reversed.status = TxnStatus::Reversed;
    let mut reversal = reversed.clone();
    reversal.id = PlatformId(3);
    reversal.is_reversal = true;
    reversal.original_id = Some(reversed.id);
    let mut balance = purchase(4, 4);
    balance.kind = TxnKind::BalanceInquiry;
    let mut preauth = purchase(5, 5);
    preauth.kind = TxnKind::Preauth;
    let mut settled_preauth_row = row(&preauth, 3);
    settled_preauth_row.kind = TxnKind::Purchase;
    check(&[declined.clone(), reversed.clone(), reversal.clone(), balance.clone(), preauth.clone()], &[], "");
    check(
        &[declined.clone(), reversal, reversed.clone(), balance, preauth],
        &[row(&reversed, 2), settled_preauth_row],
        "status_mismatch key 2 2\nstatus_mismatch key 5 3",
    );
}

#[test]
fn rows_without_key_or_rrn_match_fuzzily_within_the_window() {
    let p = purchase(1, 1);
    let mut near = row(&p, 2);
    (near.batch, near.stan, near.rrn) = (None, None, None);
    near.txn_time = Some(p.txn_time + Duration::seconds(299));
    check(std::slice::from_ref(&p), &[near.clone()], "matched fuzzy 1 2");
    near.txn_time = Some(p.txn_time + Duration::seconds(301));
    check(&[p], &[near], "missing_in_platform - - 2\nmissing_in_clearing - 1 -");
}

#[test]
fn qr_records_match_on_the_order_number() {
    let mut p = purchase(1, 1);
    (p.channel, p.batch, p.stan, p.rrn, p.card) = (Channel::Wechat, None, None, None, None);
    p.external_ref = Some("WX20261125000001".to_owned());
    let mut r = row(&p, 2);
    r.terminal = None;
    r.merchant = None;
    check(&[p.clone()], &[r.clone()], "matched external_ref 1 2");
    r.external_ref = Some("WX20261125000002".to_owned());
    check(&[p], &[r], "missing_in_platform - - 2\nmissing_in_clearing - 1 -");
}

#[test]
fn another_merchants_row_does_not_match_on_the_key() {
    let p = purchase(1, 1);
    let mut r = row(&p, 2);
    r.merchant = Some(MerchantId::parse("898310048990002").unwrap());
    check(&[p], &[r], "missing_in_platform - - 2\nmissing_in_clearing - 1 -");
}

#[test]
fn a_channel_without_a_file_is_pending_not_missing() {
    let mut p = purchase(1, 1);
    p.channel = Channel::Alipay;
    p.external_ref = Some("AP1".to_owned());
    check_with(&[p.clone()], &[], &[Channel::Card], "pending - 1 -");
    check_with(&[p], &[], &[Channel::Card, Channel::Alipay], "missing_in_clearing - 1 -");
}

#[test]
fn records_of_other_dates_are_ignored() {
    let mut p = purchase(1, 1);
    p.settlement_date = date("2026-11-20");
    let mut r = row(&purchase(2, 2), 2);
    r.settlement_date = date("2026-11-28");
    check(&[p], &[r], "");
}

#[test]
fn batch_upload_items_reconcile_like_any_record() {
    let mut p = purchase(1, 1);
    p.source = Source::BatchUpload;
    check(&[p.clone()], &[row(&p, 2)], "matched key 1 2");
}

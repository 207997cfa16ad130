//! Every flow of spec section 3 and every response code the policy gives.

use std::time::Duration;

use domain::{TxnKind, TxnStatus};
use iso8583::mac;
use iso8583::{Field60, FinancialKind, Message, SettlementTotals, Totals};
use pos::sim::card_number;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_on_then_purchase_is_approved_stored_and_the_pan_is_nowhere_in_clear() {
    let env = Env::start().await;
    let mut t = env.terminal(TID, MID).await;
    let r = t.sign_on().await.unwrap();
    assert_eq!(r.mti().value(), 810);
    assert_eq!(Field60::parse(r.get_str(60).unwrap()).unwrap().batch, 1, "a new terminal starts at 000001");
    assert!(r.get(62).is_none(), "no working keys without a master key");
    let (f, r, pan) = purchase(&mut t, "1234", 12_345).await;
    assert_eq!(code(&r), "00");
    assert_eq!(r.mti().value(), 210);
    for field in [2, 3, 4, 11, 12, 13, 15, 25, 32, 37, 38, 41, 42, 49, 60] {
        assert!(r.has(field), "reply lacks field {field}");
    }
    assert!(!r.has(64));
    let rows = env.rows(TID);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.kind, row.status, row.amount.fen()), (TxnKind::Purchase, TxnStatus::Approved, 12_345));
    assert_eq!(row.stan.unwrap().get(), f.stan);
    assert_eq!(row.rrn.as_ref().unwrap().as_str(), r.get_str(37).unwrap());
    assert_eq!(row.auth_code.as_ref().unwrap().as_str(), r.get_str(38).unwrap());
    assert_eq!(row.settlement_date.mmdd(), r.get_str(15).unwrap());
    assert_eq!(row.card.as_ref().unwrap().last4, "1234");
    let sync = env.terminal_row(TID, MID);
    assert!(sync.last_sign_on_at.is_some() && sync.last_seen_at.is_some());
    assert_eq!(sync.open_batch.map(|b| b.get()), Some(1));
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!bytes.windows(pan.len()).any(|w| w == pan.as_bytes()), "clear PAN found in a file");
    }
    env.verify_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_gets_the_same_reply_and_one_record_and_other_content_gets_94() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let (f, first, _) = purchase(&mut t, "1234", 500).await;
    let again = ask(&mut t, &f).await;
    assert_eq!(first.encode(), again.encode(), "the original reply again");
    let mut other = f.clone();
    other.amount_fen = Some(501);
    let r = ask(&mut t, &other).await;
    assert_eq!(code(&r), "94");
    assert_eq!(env.rows(TID).len(), 1, "no second record for a retransmission or a 94");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn void_approves_once_then_12_and_checks_amount_and_existence() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let (p, pr, pan) = purchase(&mut t, "1234", 10_000).await;
    assert_eq!(code(&pr), "00");
    let wrong = t.follow_up(FinancialKind::PurchaseVoid, &pan, 9_999, &p, &pr);
    assert_eq!(code(&ask(&mut t, &wrong).await), "64");
    let mut missing = t.follow_up(FinancialKind::PurchaseVoid, &pan, 10_000, &p, &pr);
    missing.original.as_mut().unwrap().original_stan = 999_000;
    missing.rrn = Some("000000000000".into());
    assert_eq!(code(&ask(&mut t, &missing).await), "25");
    let void = t.follow_up(FinancialKind::PurchaseVoid, &pan, 10_000, &p, &pr);
    let vr = ask(&mut t, &void).await;
    assert_eq!(code(&vr), "00");
    let twice = t.follow_up(FinancialKind::PurchaseVoid, &pan, 10_000, &p, &pr);
    assert_eq!(code(&ask(&mut t, &twice).await), "12", "void twice");
    let purchase_row = env.rows(TID).into_iter().find(|r| r.kind == TxnKind::Purchase).unwrap();
    assert_eq!(purchase_row.status, TxnStatus::Voided);
    env.verify_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_on_another_terminal_up_to_the_original_then_61_and_unknown_rrn_25() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let mut t2 = env.signed_on(TID_2).await;
    let (p, pr, pan) = purchase(&mut t, "1234", 10_000).await;
    let refund = t2.follow_up(FinancialKind::Refund, &pan, 6_000, &p, &pr);
    let r = ask(&mut t2, &refund).await;
    assert_eq!((code(&r), r.mti().value()), ("00", 230));
    let beyond = t2.follow_up(FinancialKind::Refund, &pan, 4_001, &p, &pr);
    assert_eq!(code(&ask(&mut t2, &beyond).await), "61", "refunds summing over the original");
    let rest = t2.follow_up(FinancialKind::Refund, &pan, 4_000, &p, &pr);
    assert_eq!(code(&ask(&mut t2, &rest).await), "00");
    let mut unknown = t2.follow_up(FinancialKind::Refund, &pan, 1, &p, &pr);
    unknown.rrn = Some("999999999999".into());
    assert_eq!(code(&ask(&mut t2, &unknown).await), "25");
    let row = env.rows(TID).into_iter().find(|r| r.kind == TxnKind::Purchase).unwrap();
    assert_eq!(row.status, TxnStatus::Refunded);
    // A refunded purchase can no longer be voided.
    let void = t.follow_up(FinancialKind::PurchaseVoid, &pan, 10_000, &p, &pr);
    assert_eq!(code(&ask(&mut t, &void).await), "12");
    env.verify_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preauth_completion_within_115_percent_once_and_voids() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let pan = card_number(1, "4321");
    let pre = t.financial(FinancialKind::PreAuth, &pan, Some(10_000));
    let pr = ask(&mut t, &pre).await;
    assert_eq!((code(&pr), pr.mti().value()), ("00", 110));
    let over = t.follow_up(FinancialKind::PreAuthCompletion, &pan, 11_501, &pre, &pr);
    assert_eq!(code(&ask(&mut t, &over).await), "61");
    let done = t.follow_up(FinancialKind::PreAuthCompletion, &pan, 11_500, &pre, &pr);
    let dr = ask(&mut t, &done).await;
    assert_eq!(code(&dr), "00");
    let again = t.follow_up(FinancialKind::PreAuthCompletion, &pan, 100, &pre, &pr);
    assert_eq!(code(&ask(&mut t, &again).await), "12", "one completion per pre-auth");
    let cvoid = t.follow_up(FinancialKind::CompletionVoid, &pan, 11_500, &done, &dr);
    assert_eq!(code(&ask(&mut t, &cvoid).await), "00");
    // A second pre-auth, voided; then completion is refused.
    let pre2 = t.financial(FinancialKind::PreAuth, &pan, Some(2_000));
    let pr2 = ask(&mut t, &pre2).await;
    let pvoid = t.follow_up(FinancialKind::PreAuthVoid, &pan, 2_000, &pre2, &pr2);
    let vr = ask(&mut t, &pvoid).await;
    assert_eq!((code(&vr), vr.mti().value()), ("00", 110));
    let late = t.follow_up(FinancialKind::PreAuthCompletion, &pan, 2_000, &pre2, &pr2);
    assert_eq!(code(&ask(&mut t, &late).await), "12");
    env.verify_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_amount_and_test_card_policy_codes() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    // 14: Luhn fails.
    let good = card_number(5, "1234");
    let mut bad = good.clone().into_bytes();
    let last = bad.len() - 5;
    bad[last] = if bad[last] == b'9' { b'0' } else { bad[last] + 1 };
    let bad = String::from_utf8(bad).unwrap();
    let f = t.financial(FinancialKind::Purchase, &bad, Some(100));
    assert_eq!(code(&ask(&mut t, &f).await), "14");
    // 54: expired.
    let mut f = t.financial(FinancialKind::Purchase, &good, Some(100));
    f.expiry = Some("2001".into());
    assert_eq!(code(&ask(&mut t, &f).await), "54");
    // 13: zero amount.
    let f = t.financial(FinancialKind::Purchase, &good, Some(0));
    assert_eq!(code(&ask(&mut t, &f).await), "13");
    // 61: over the merchant's single-transaction limit.
    let f = t.financial(FinancialKind::Purchase, &good, Some(LIMIT_FEN as u64 + 1));
    assert_eq!(code(&ask(&mut t, &f).await), "61");
    for (last4, want) in [("0051", "51"), ("0055", "55"), ("0005", "05")] {
        let (_, r, _) = purchase(&mut t, last4, 100).await;
        assert_eq!(code(&r), want, "test card {last4}");
        assert!(r.has(37) && !r.has(38) && !r.has(15), "declines carry 37, not 38 or 15");
    }
    // Balance inquiry: approved, recorded as an inquiry.
    let f = t.financial(FinancialKind::BalanceInquiry, &good, None);
    assert_eq!(code(&ask(&mut t, &f).await), "00");
    let rows = env.rows(TID);
    assert_eq!(rows.len(), 8, "declines are recorded too");
    assert_eq!(rows.iter().filter(|r| r.status == TxnStatus::Declined).count(), 7);
    assert!(rows.iter().any(|r| r.kind == TxnKind::BalanceInquiry && r.status == TxnStatus::Approved));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_card_0098_is_recorded_without_reply_and_the_reversal_reverses_it() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let pan = card_number(9, "0098");
    let f = t.financial(FinancialKind::Purchase, &pan, Some(777));
    let m = t.message(&f).unwrap();
    t.send(&m).await.unwrap();
    assert!(t.recv_within(Duration::from_millis(500)).await.unwrap().is_none(), "0098 gets no reply");
    t.send(&m).await.unwrap();
    assert!(t.recv_within(Duration::from_millis(300)).await.unwrap().is_none(), "nor does its retransmission");
    let rows = env.rows(TID);
    assert_eq!((rows.len(), rows[0].status), (1, TxnStatus::Approved));
    let rev = t.reversal_message(&f, "98").unwrap();
    let r = t.round_trip(&rev).await.unwrap();
    assert_eq!((r.mti().value(), code(&r)), (410, "00"));
    assert_eq!(r.get_str(37), rows[0].rrn.as_ref().map(|x| x.as_str()), "0410 carries the original's RRN");
    assert_eq!(r.get_str(38), rows[0].auth_code.as_ref().map(|x| x.as_str()));
    let again = t.round_trip(&rev).await.unwrap();
    assert_eq!(code(&again), "00", "repeated reversals are idempotent");
    let rows = env.rows(TID);
    assert_eq!(rows.len(), 2, "one reversal record");
    assert_eq!(rows.iter().find(|r| !r.reversal).unwrap().status, TxnStatus::Reversed);
    env.verify_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_reversal_is_acknowledged_and_recorded_and_its_late_original_gets_12() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let pan = card_number(3, "1234");
    let f = t.financial(FinancialKind::Purchase, &pan, Some(300));
    let rev = t.reversal_message(&f, "98").unwrap();
    let r = t.round_trip(&rev).await.unwrap();
    assert_eq!(code(&r), "00");
    assert!(r.has(37) && !r.has(38), "an orphan gets a new RRN and no 38");
    let rows = env.rows(TID);
    assert!(rows.len() == 1 && rows[0].reversal, "orphan reversal recorded");
    let late = ask(&mut t, &f).await;
    assert_eq!(code(&late), "12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_signed_on_wrong_batch_and_signed_off_get_77() {
    let env = Env::start().await;
    let mut t = env.terminal(TID, MID).await;
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "77", "never signed on");
    t.sign_on().await.unwrap();
    t.batch += 1;
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "77", "batch mismatch");
    t.batch -= 1;
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "00");
    let mut off = iso8583::Message::new(iso8583::Envelope::from_hex(pos::sim::ENVELOPE_HEX).unwrap(), iso8583::Mti::NETWORK_ADVICE_REQUEST);
    off.set(11, "000900").unwrap();
    off.set(41, format!("{TID:<8}")).unwrap();
    off.set(42, format!("{MID:<15}")).unwrap();
    off.set(60, Field60::new("00", 1, "002").to_digits()).unwrap();
    let r = t.round_trip(&off).await.unwrap();
    assert_eq!((r.mti().value(), code(&r)), (830, "00"));
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "77", "after sign-off");
    // Echo test: 0830 00, 11 optional.
    let mut echo = off.clone();
    echo.remove(11);
    echo.set(60, Field60::new("00", 1, "301").to_digits()).unwrap();
    let r = t.round_trip(&echo).await.unwrap();
    assert_eq!((r.mti().value(), code(&r)), (830, "00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_and_merchant_checks_97_58_03_40() {
    let env = Env::start().await;
    let mut unknown = env.terminal("99999999", MID).await;
    let m = unknown.sign_on_message().unwrap();
    assert_eq!(code(&unknown.round_trip(&m).await.unwrap()), "97");
    let mut disabled = env.terminal(TID_DISABLED, MID).await;
    let m = disabled.sign_on_message().unwrap();
    assert_eq!(code(&disabled.round_trip(&m).await.unwrap()), "58");
    let mut foreign = env.terminal(TID_OTHER, MID).await;
    let (_, r, _) = purchase(&mut foreign, "1234", 100).await;
    assert_eq!(code(&r), "58", "terminal not bound to the merchant in 42");
    let mut frozen = env.terminal(TID_FROZEN, MID_FROZEN).await;
    let m = frozen.sign_on_message().unwrap();
    assert_eq!(code(&frozen.round_trip(&m).await.unwrap()), "03");
    let (_, r, _) = purchase(&mut frozen, "1234", 100).await;
    assert_eq!(code(&r), "03", "frozen merchant");
    let mut t = env.signed_on(TID).await;
    let mut f = t.financial(FinancialKind::Purchase, &card_number(1, "1234"), Some(100));
    f.context.message_type = "99".into();
    assert_eq!(code(&ask(&mut t, &f).await), "40");
    assert!(env.rows(TID_OTHER).is_empty() && env.rows(TID).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_terminal_gets_working_keys_macs_verify_and_a_bad_mac_gets_a0() {
    let env = Env::start().await;
    let mut t = env.terminal(TID_KEYED, MID).await;
    t.tmk = iso8583::Key16::from_hex(TMK_HEX);
    let r = t.sign_on().await.unwrap();
    assert_eq!(r.get(62).map(<[u8]>::len), Some(40));
    assert!(t.mac_key.is_some());
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "00");
    assert!(r.has(64));
    assert_eq!(t.reply_mac_failures, 0, "reply MAC verifies under the MAC key");
    let good_key = t.mac_key.take();
    // Missing MAC.
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "A0");
    assert!(!r.has(64), "A0 carries no MAC");
    // Wrong MAC.
    t.mac_key = iso8583::Key16::from_hex("11111111111111112222222222222222");
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "A0");
    t.mac_key = good_key;
    let rows = env.rows(TID_KEYED);
    assert_eq!(rows.len(), 1, "A0 creates no record");
    // Working keys survive a host restart: a new host on the same directory verifies them.
    let card_key = store::card_key(env.dir.path()).unwrap();
    let host2 = std::sync::Arc::new(pos::Host::open(env.store.clone(), card_key, pos::HostConfig::new(env.dir.path())).unwrap());
    let l2 = pos::spawn("127.0.0.1:0", host2, pos::Limits::default()).await.unwrap();
    let mut t2 = pos::sim::Terminal::connect(&l2.local_addr.to_string(), TID_KEYED, MID).await.unwrap();
    t2.mac_key = t.mac_key.clone();
    t2.stan = 500;
    let (_, r, _) = purchase(&mut t2, "1234", 100).await;
    assert_eq!(code(&r), "00");
    assert!(mac::verify(&r, t.mac_key.as_ref().unwrap()).is_ok());
    l2.task.abort();
}

fn totals(debit_fen: u64, debit_n: u16, credit_fen: u64, credit_n: u16) -> Totals {
    Totals { debit_amount_fen: debit_fen, debit_count: debit_n, credit_amount_fen: credit_fen, credit_count: credit_n, result: 0 }
}

fn settlement_results(r: &Message) -> (u8, u8) {
    let s = SettlementTotals::parse(r.get_str(48).unwrap()).unwrap();
    (s.domestic.result, s.foreign.result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_settlement_closes_the_batch() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let (_, _, _) = purchase(&mut t, "1234", 1_000).await;
    let (p, pr, pan) = purchase(&mut t, "1234", 2_000).await;
    let void = t.follow_up(FinancialKind::PurchaseVoid, &pan, 2_000, &p, &pr);
    assert_eq!(code(&ask(&mut t, &void).await), "00");
    let refund_src = purchase(&mut t, "1234", 5_000).await;
    let refund = t.follow_up(FinancialKind::Refund, &refund_src.2, 500, &refund_src.0, &refund_src.1);
    assert_eq!(code(&ask(&mut t, &refund).await), "00");
    let m = t.settlement_message(totals(6_000, 2, 500, 1)).unwrap();
    let r = t.round_trip(&m).await.unwrap();
    assert_eq!((r.mti().value(), code(&r)), (510, "00"));
    assert!(r.has(15) && r.has(37));
    assert_eq!(settlement_results(&r), (1, 1));
    let row = env.terminal_row(TID, MID);
    assert_eq!(row.open_batch.map(|b| b.get()), Some(2));
    assert_eq!(row.last_settlement_result.as_deref(), Some("balanced"));
    // The retransmitted 0500 gets the same answer, not 77.
    assert_eq!(t.round_trip(&m).await.unwrap().encode(), r.encode());
    // The old batch is closed: 77 until the terminal signs on and learns batch 2.
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "77");
    t.sign_on().await.unwrap();
    assert_eq!(t.batch, 2);
    let (_, r, _) = purchase(&mut t, "1234", 100).await;
    assert_eq!(code(&r), "00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbalanced_settlement_then_upload_records_discrepancies() {
    let env = Env::start().await;
    let mut t = env.signed_on(TID).await;
    let (a, _, pan_a) = purchase(&mut t, "1111", 1_000).await;
    let (_b, _, _) = purchase(&mut t, "2222", 2_000).await;
    // The terminal believes in 3 debits: a (same), a made-up one, and b is missing.
    let m = t.settlement_message(totals(4_000, 2, 0, 0)).unwrap();
    let r = t.round_trip(&m).await.unwrap();
    assert_eq!(code(&r), "00");
    assert_eq!(settlement_results(&r), (2, 1));
    assert_eq!(env.terminal_row(TID, MID).last_settlement_result.as_deref(), Some("unbalanced"));
    let ghost = card_number(77, "3333");
    let up = t.upload_message(1, &[(a.stan, &pan_a, 1_500), (4_242, &ghost, 2_500)]).unwrap();
    let r = t.round_trip(&up).await.unwrap();
    assert_eq!((r.mti().value(), code(&r)), (330, "00"));
    let end = t.upload_end_message(1, 3).unwrap();
    assert_eq!(code(&t.round_trip(&end).await.unwrap()), "00");
    let found = env.host.discrepancies().unwrap();
    let kinds: Vec<&str> = found.iter().map(|d| d.content.kind.as_str()).collect();
    assert_eq!(kinds, ["amount_differs", "terminal_only", "host_only", "upload_count_differs"], "{found:?}");
    assert_eq!(found[1].content.stan, Some(4242));
    assert_eq!(found[1].content.card_bin.as_deref(), Some("622202"));
    assert_eq!(found[1].content.card_last4.as_deref(), Some(&ghost[ghost.len() - 4..]));
    assert_eq!(found[1].txn_id, None, "the host has no record of a terminal-only item");
    assert!(found[0].txn_id.is_some() && found[2].txn_id.is_some(), "amount_differs and host_only name the host's record");
    assert!(!env.dir.path().join(pos::session::DISCREPANCIES_FILE).exists(), "no discrepancy file any more");
    let mut db = Vec::new();
    for f in [store::DB_FILE.to_owned(), format!("{}-wal", store::DB_FILE)] {
        db.extend(std::fs::read(env.dir.path().join(f)).unwrap_or_default());
    }
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(ghost.as_str()) && !db.contains(pan_a.as_str()), "no clear PAN in the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discrepancy_file_left_by_a_former_version_is_imported_once() {
    let env = Env::start().await;
    let file = env.dir.path().join(pos::session::DISCREPANCIES_FILE);
    let line = serde_json::json!({
        "kind": "terminal_only", "merchant_id": MID, "terminal_id": TID, "batch_no": 3, "stan": 17,
        "host_amount_fen": null, "terminal_amount_fen": 900, "card_masked": "622202******0128",
        "at": "2025-03-01T10:00:00+00:00",
    });
    std::fs::write(&file, format!("{line}\nnot json\n")).unwrap();
    let reopen = || {
        let key = store::card_key(env.dir.path()).unwrap();
        pos::Host::open(env.store.clone(), key, pos::HostConfig::new(env.dir.path())).unwrap()
    };
    let host = reopen();
    assert!(!file.exists(), "the file is renamed once imported");
    let found = host.discrepancies().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0].content;
    assert_eq!((d.kind.as_str(), d.batch_no, d.stan, d.terminal_amount_fen), ("terminal_only", 3, Some(17), Some(900)));
    assert_eq!((d.card_bin.as_deref(), d.card_last4.as_deref()), (Some("622202"), Some("0128")));
    drop(host);
    assert_eq!(reopen().discrepancies().unwrap().len(), 1, "a second start imports nothing again");
}

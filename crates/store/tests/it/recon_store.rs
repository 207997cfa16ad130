//! Clearing imports and reconciliation runs against a real SQLite file.

use domain::{Amount, BatchNo, Channel, Currency, Rrn, SettlementDate, Stan, TxnKind};
use recon::{ClearingFileId, ClearingRecord, MaskedCard, Outcome};
use store::*;

use super::{fixture, ingest_ok, mid, purchase, tid, M1, M2, T1};

fn day() -> SettlementDate {
    SettlementDate::parse("2026-11-25").unwrap()
}

/// A clearing row on T1 batch 1 for `merchant`, line `line`.
fn row(line: u64, merchant: &str, stan: u32, amount_fen: i64) -> NewClearingRow {
    NewClearingRow {
        record: ClearingRecord {
            file: ClearingFileId(0),
            line,
            settlement_date: day(),
            merchant: Some(mid(merchant)),
            terminal: Some(tid(T1)),
            batch: Some(BatchNo::new(1).unwrap()),
            stan: Some(Stan::new(stan).unwrap()),
            rrn: Some(Rrn::parse(&format!("{:012}", 500_000 + stan)).unwrap()),
            auth_code: None,
            kind: TxnKind::Purchase,
            channel: Channel::Card,
            card: MaskedCard::new("622202", "0123"),
            amount: Amount::from_fen(amount_fen).unwrap(),
            fee: Amount::from_fen(6).unwrap(),
            currency: Currency::CNY,
            txn_time: None,
            external_ref: None,
        },
        card_token: None,
        sub_merchant_id: None,
    }
}

fn new_file(sha: &str, replace: bool) -> NewClearingFile {
    NewClearingFile { sha256_hex: sha.into(), name: format!("{sha}.csv"), profile: "canonical".into(), actor: "test".into(), replace }
}

fn import(store: &SqliteStore, sha: &str, replace: bool, rows: Vec<NewClearingRow>) -> Result<ClearingFileInfo, ClearingImportError> {
    let mut imp = store.begin_clearing_import(new_file(sha, replace))?;
    for r in rows {
        imp.push(r)?;
    }
    imp.commit(0)
}

fn run(store: &SqliteStore) -> i64 {
    let input = store.load_recon_input(day(), None).unwrap();
    let report = recon::reconcile(&recon::Input {
        settlement_date: day(),
        platform: &input.platform,
        clearing: &input.clearing,
        channels_with_clearing: &input.channels_with_clearing,
        config: recon::ReconConfig::default(),
    })
    .unwrap();
    let new = NewReconRun {
        settlement_date: day(),
        merchant_id: None,
        actor: "test".into(),
        started_at: chrono::Utc::now(),
        summary: report.summary,
        pending_channels: report.pending_channels.clone(),
        platform_records: input.platform.len() as u64,
        clearing_rows: input.clearing.len() as u64,
    };
    let mut items = report.items.iter().map(|i| ReconItemRef::recorded(i, &input));
    store.save_recon_run(&new, &mut [&mut items]).unwrap()
}

#[test]
fn a_file_is_imported_once_replaced_with_history_and_an_abandoned_import_keeps_nothing() {
    let f = fixture();
    let first = import(&f.store, "aa", false, vec![row(2, M1, 1, 1000), row(3, M1, 2, 2000)]).unwrap();
    assert_eq!((first.rows, first.superseded_by), (2, None));
    let again = import(&f.store, "aa", false, vec![row(2, M1, 1, 1000)]);
    assert!(matches!(again, Err(ClearingImportError::Duplicate { ref existing }) if existing.id == first.id), "{again:?}");
    let second = import(&f.store, "aa", true, vec![row(2, M1, 1, 1000)]).unwrap();
    assert_eq!(second.supersedes, Some(first.id));
    let files = f.store.list_clearing_files(10).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].superseded_by, Some(second.id));
    // Only the live file counts: one row, one channel.
    let status = f.store.clearing_status(day(), day()).unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!((status[0].file_id, status[0].rows, status[0].channel), (second.id, 1, Channel::Card));
    assert_eq!(f.store.load_recon_input(day(), None).unwrap().clearing.len(), 1);

    let mut imp = f.store.begin_clearing_import(new_file("bb", false)).unwrap();
    imp.push(row(2, M1, 9, 900)).unwrap();
    imp.abort();
    assert!(f.store.find_clearing_file("bb").unwrap().is_none());
    assert_eq!(f.store.load_recon_input(day(), None).unwrap().clearing.len(), 1);
}

#[test]
fn a_run_is_recorded_with_items_paged_by_outcome_and_scoped_to_a_merchant() {
    let f = fixture();
    let time = "2026-11-25T10:00:00+08:00";
    ingest_ok(&f.store, vec![purchase(1, 1000, time), purchase(2, 2000, time), purchase(3, 3000, time)]);
    // stan 1 matches, stan 2 differs in amount, stan 3 is missing at the bank; M2's row is
    // unknown to the platform.
    import(&f.store, "cc", false, vec![row(2, M1, 1, 1000), row(3, M1, 2, 2100), row(4, M2, 50, 5000)]).unwrap();
    let id = run(&f.store);
    let r = f.store.get_recon_run(id).unwrap().unwrap();
    let count = |o: Outcome| r.totals.iter().find(|t| t.0 == o).unwrap().1;
    assert_eq!(
        [Outcome::Matched, Outcome::AmountMismatch, Outcome::MissingInClearing, Outcome::MissingInPlatform].map(count),
        [1, 1, 1, 1]
    );
    assert!(r.pending_channels.is_empty());

    let page = |outcome, scope: Scope, after_id, limit| {
        f.store.list_recon_items(&ReconItemQuery { run_id: id, outcome, scope, after_id, limit }).unwrap()
    };
    let (first, more) = page(None, Scope::all(), None, 2);
    assert_eq!(first.len(), 2);
    assert!(more);
    let (rest, more) = page(None, Scope::all(), Some(first[1].id), 10);
    assert_eq!(rest.len(), 2);
    assert!(!more);
    let (mip, _) = page(Some(Outcome::MissingInPlatform), Scope::all(), None, 10);
    assert_eq!(mip.len(), 1);
    assert_eq!((mip[0].clearing_line, mip[0].clearing_file_name.as_deref()), (Some(4), Some("cc.csv")));
    let (matched, _) = page(Some(Outcome::Matched), Scope::all(), None, 10);
    assert!(matched[0].platform_id.as_deref().is_some_and(|p| TxnId::parse(p).is_some()));

    // M2 sees only its own item; M1 its three.
    let (m2, _) = page(None, Scope::merchant(mid(M2)), None, 10);
    assert_eq!(m2.iter().map(|i| i.outcome).collect::<Vec<_>>(), vec![Outcome::MissingInPlatform]);
    let m1_totals = f.store.recon_totals(id, &Scope::merchant(mid(M1))).unwrap();
    assert_eq!(m1_totals.iter().map(|t| t.1).sum::<u64>(), 3);

    // A re-run supersedes the earlier run for the date; both are kept.
    let id2 = run(&f.store);
    assert_eq!(f.store.get_recon_run(id).unwrap().unwrap().superseded_by, Some(id2));
    assert_eq!(f.store.list_recon_runs(Some(day()), 10).unwrap().len(), 2);
    let mut exported = 0;
    f.store
        .export_recon_items(&ReconItemQuery { run_id: id2, outcome: None, scope: Scope::all(), after_id: None, limit: 0 }, &mut |_| {
            exported += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(exported, 4);
}

#[test]
fn batch_upload_items_the_host_lacked_reconcile_as_their_own_source() {
    let f = fixture();
    let time = "2026-11-25T10:00:00+08:00";
    ingest_ok(&f.store, vec![purchase(1, 1000, time)]);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00+08:00").unwrap().with_timezone(&chrono::Utc);
    let item = |stan: u32, amount: i64| NewPosDiscrepancy {
        merchant_id: mid(M1),
        terminal_id: tid(T1),
        batch_no: 1,
        stan: Some(stan),
        kind: PosDiscrepancyKind::TerminalOnly,
        terminal_amount_fen: Some(amount),
        host_amount_fen: None,
        card_bin: Some("622202".into()),
        card_last4: Some("0123".into()),
        txn_seq: None,
        detail: None,
        recorded_at: at,
    };
    // Stan 7: the terminal has it, the host did not, the bank settled it. Stan 8: only the
    // terminal has it. Stan 1: reported too, but the host has its own record of it.
    f.store.record_discrepancies(vec![item(7, 7000), item(8, 8000), item(1, 1000)]).unwrap();
    import(&f.store, "bu", false, vec![row(2, M1, 1, 1000), row(3, M1, 7, 7000)]).unwrap();
    let input = f.store.load_recon_input(day(), None).unwrap();
    let uploaded: Vec<_> = input.platform.iter().filter(|p| p.source == domain::Source::BatchUpload).collect();
    assert_eq!(uploaded.iter().map(|p| p.stan.unwrap().get()).collect::<Vec<_>>(), vec![8, 7], "stan 1 is the host's own record");
    let id = run(&f.store);
    let r = f.store.get_recon_run(id).unwrap().unwrap();
    let count = |o: Outcome| r.totals.iter().find(|t| t.0 == o).unwrap().1;
    assert_eq!([Outcome::Matched, Outcome::MissingInClearing, Outcome::MissingInPlatform].map(count), [2, 1, 0]);
    let (missing, _) = f
        .store
        .list_recon_items(&ReconItemQuery { run_id: id, outcome: Some(Outcome::MissingInClearing), scope: Scope::all(), after_id: None, limit: 10 })
        .unwrap();
    // The uploaded item keeps its own identifiers (there is no record to read them from).
    assert_eq!((missing[0].terminal_id.as_deref(), missing[0].stan, missing[0].platform_id.as_deref()), (Some(T1), Some(8), None));
}

/// A run of seven thousand items spans several chunks per (merchant, outcome): paging with a
/// cursor, by outcome, by merchant and by terminal returns each item of the scope exactly once,
/// ids ascending; totals and the export agree with the items; fields the platform record holds
/// are read back from it.
#[test]
fn items_of_a_large_run_page_by_outcome_merchant_and_terminal_across_chunks() {
    let f = fixture();
    ingest_ok(&f.store, vec![purchase(1, 1000, "2026-11-25T10:00:00+08:00")]);
    let record = f.store.load_recon_input(day(), None).unwrap().platform[0].id.0;
    let outcomes = [Outcome::Matched, Outcome::MissingInClearing, Outcome::MissingInPlatform, Outcome::DateShift];
    let items: Vec<ReconItemRow> = (0..7_000u64)
        .map(|n| {
            let linked = n % 10 == 0;
            ReconItemRow {
                id: 0,
                // Matched items dominate, as in a real run: several chunks for that outcome.
                outcome: if n % 5 < 3 { Outcome::Matched } else { outcomes[(n % 4) as usize] },
                match_pass: None,
                merchant_id: [Some(M2), Some(M1), None][(n % 3) as usize].map(str::to_owned),
                // A linked item leaves the terminal to its record (T1).
                terminal_id: if linked { None } else { Some([T1, "10000002"][(n % 2) as usize].to_owned()) },
                batch_no: None,
                stan: Some(n as u32),
                rrn: None,
                external_ref: None,
                channel: Channel::Card,
                txn_time: None,
                platform_seq: linked.then_some(record),
                platform_id: None,
                platform_amount_fen: linked.then_some(1000),
                clearing_amount_fen: Some(n as i64),
                clearing_fee_fen: Some(1),
                clearing_file_id: None,
                clearing_file_name: None,
                clearing_line: Some(n + 2),
            }
        })
        .collect();
    let new = NewReconRun {
        settlement_date: day(),
        merchant_id: None,
        actor: "test".into(),
        started_at: chrono::Utc::now(),
        summary: recon::Summary::default(),
        pending_channels: Vec::new(),
        platform_records: 1,
        clearing_rows: items.len() as u64,
    };
    let id = f.store.save_recon_run(&new, &mut [&mut items.iter().map(ReconItemRow::as_ref)]).unwrap();
    let terminal_of = |i: &ReconItemRow| i.terminal_id.clone().unwrap_or_else(|| T1.to_owned());

    let check = |outcome: Option<Outcome>, scope: Scope| {
        let in_scope = |i: &ReconItemRow| {
            outcome.is_none_or(|o| i.outcome == o)
                && scope.merchants.as_ref().is_none_or(|ms| i.merchant_id.as_deref().is_some_and(|m| ms.iter().any(|x| x.as_str() == m)))
                && scope.terminals.as_ref().is_none_or(|ts| ts.iter().any(|t| t.as_str() == terminal_of(i)))
        };
        let mut want: Vec<u64> = items.iter().filter(|i| in_scope(i)).map(|i| i.clearing_line.unwrap()).collect();
        want.sort_unstable();
        let mut got = Vec::new();
        let mut ids = Vec::new();
        let mut after_id = None;
        loop {
            let q = ReconItemQuery { run_id: id, outcome, scope: scope.clone(), after_id, limit: 300 };
            let (page, more) = f.store.list_recon_items(&q).unwrap();
            for i in &page {
                assert!(in_scope(i), "{i:?} is outside {outcome:?} {scope:?}");
                if i.platform_seq.is_some() {
                    assert_eq!((i.terminal_id.as_deref(), i.batch_no, i.rrn.as_deref()), (Some(T1), Some(1), Some("000000500001")));
                    assert!(i.platform_id.is_some() && i.txn_time.is_some());
                }
                got.push(i.clearing_line.unwrap());
                ids.push(i.id);
            }
            if !more {
                break;
            }
            after_id = page.last().map(|i| i.id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend across pages");
        got.sort_unstable();
        assert_eq!(got, want, "{outcome:?} {scope:?}");

        let mut exported = Vec::new();
        let q = ReconItemQuery { run_id: id, outcome, scope: scope.clone(), after_id: None, limit: 0 };
        f.store.export_recon_items(&q, &mut |i| {
            exported.push(i.clearing_line.unwrap());
            Ok(())
        })
        .unwrap();
        exported.sort_unstable();
        assert_eq!(exported, want);

        if outcome.is_none() {
            let totals = f.store.recon_totals(id, &scope).unwrap();
            for (o, n, amount) in totals {
                let of: Vec<&ReconItemRow> = items.iter().filter(|i| i.outcome == o && in_scope(i)).collect();
                let sum: i64 = of.iter().map(|i| i.platform_amount_fen.or(i.clearing_amount_fen).unwrap()).sum();
                assert_eq!((n, amount), (of.len() as u64, sum), "{o:?} {scope:?}");
            }
        }
    };
    for outcome in [None, Some(Outcome::Matched), Some(Outcome::MissingInPlatform), Some(Outcome::AmountMismatch)] {
        check(outcome, Scope::all());
        check(outcome, Scope::merchant(mid(M1)));
        check(outcome, Scope { merchants: Some(vec![mid(M1), mid(M2)]), terminals: None });
        check(outcome, Scope { merchants: Some(vec![mid(M2)]), terminals: Some(vec![tid(T1)]) });
        check(outcome, Scope { merchants: Some(Vec::new()), terminals: None });
    }
}

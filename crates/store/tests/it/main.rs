//! Store tests against real SQLite files in temporary directories.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use domain::{
    Amount, BatchNo, CardKey, Channel, Currency, MerchantClock, MerchantId, MerchantStatus, ResponseCode, Role, Rrn, Secret,
    SettlementDate, Source, Stan, TerminalId, TxnKind, TxnStatus,
};
use store::*;

const M1: &str = "898310048990001";
const M2: &str = "898310048990002";
const T1: &str = "10000001";
const T2: &str = "10000002";

fn mid(s: &str) -> MerchantId {
    MerchantId::parse(s).unwrap()
}
fn tid(s: &str) -> TerminalId {
    TerminalId::parse(s).unwrap()
}
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
fn key() -> CardKey {
    CardKey::from_bytes(&[9u8; 32]).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
}

fn open_in(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, StoreConfig { writer_cache_kib: 8 * 1024, cache_kib: 4 * 1024, ..StoreConfig::default() }).unwrap()
}

/// Two merchants; M1 has terminals T1 and T2, M2 has T1.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for m in [M1, M2] {
        store.create_merchant(&NewMerchant::with_defaults(mid(m)), "test").unwrap();
    }
    for (m, t) in [(M1, T1), (M1, T2), (M2, T1)] {
        store.create_terminal(&NewTerminal { id: tid(t), merchant_id: mid(m), master_key_hex: None }).unwrap();
    }
    Fixture { _dir: dir, store }
}

/// An approved card purchase on M1/T1 at `time`, batch 1.
fn purchase(stan: u32, amount_fen: i64, time: &str) -> NewTxn {
    NewTxn {
        merchant_id: mid(M1),
        terminal_id: Some(tid(T1)),
        batch_no: Some(BatchNo::new(1).unwrap()),
        stan: Some(Stan::new(stan).unwrap()),
        rrn: Some(Rrn::parse(&format!("{:012}", 500_000 + stan)).unwrap()),
        auth_code: Some(domain::AuthCode::parse("A00001").unwrap()),
        kind: TxnKind::Purchase,
        channel: Channel::Card,
        card: Some(domain::Pan::parse("6222021234567890123").unwrap().summary(&key())),
        amount: Amount::from_fen(amount_fen).unwrap(),
        currency: Currency::CNY,
        response_code: ResponseCode::APPROVED,
        txn_time: at(time),
        original: None,
        reversal: false,
        source: Source::Api,
        external_ref: None,
    }
}

/// `t` as a WeChat payment: no terminal, batch, STAN, RRN, auth code or card; `external_ref`.
fn wechat(t: NewTxn, external_ref: String) -> NewTxn {
    NewTxn {
        channel: Channel::Wechat,
        terminal_id: None,
        batch_no: None,
        stan: None,
        rrn: None,
        auth_code: None,
        card: None,
        external_ref: Some(external_ref),
        ..t
    }
}

fn follow_up(kind: TxnKind, stan: u32, original_stan: u32, amount_fen: i64, time: &str) -> NewTxn {
    NewTxn {
        kind,
        original: Some(OriginalRef::BatchStan { batch_no: BatchNo::new(1).unwrap(), stan: Stan::new(original_stan).unwrap() }),
        ..purchase(stan, amount_fen, time)
    }
}

fn reversal_of(t: &NewTxn) -> NewTxn {
    NewTxn { reversal: true, original: None, rrn: None, auth_code: None, ..t.clone() }
}

fn ingest_ok(store: &SqliteStore, batch: Vec<NewTxn>) -> Vec<IngestResult> {
    store.ingest(batch, IngestOptions::default()).unwrap()
}

fn status_of(store: &SqliteStore, id: &TxnId) -> TxnStatus {
    store.get_txn(id, &Scope::all()).unwrap().unwrap().txn.status
}

fn all_of(store: &SqliteStore, q: TxnQuery) -> Vec<TxnRow> {
    store.list_txns(&TxnQuery { limit: PAGE_LIMIT_MAX, ..q }).unwrap().rows
}

#[test]
fn migrations_run_once_and_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let first_version;
    {
        let s = open_in(dir.path());
        first_version = s.schema_version().unwrap();
        assert!(first_version >= 1);
        s.create_merchant(&NewMerchant::with_defaults(mid(M1)), "test").unwrap();
    }
    let s = open_in(dir.path());
    assert_eq!(s.schema_version().unwrap(), first_version, "reopening runs no migration again");
    assert!(s.get_merchant(&mid(M1)).unwrap().is_some());
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let (n, distinct): (i64, i64) =
        raw.query_row("SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_version", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(n, distinct, "each migration recorded once");
    let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_in(dir.path()));
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    raw.execute("INSERT INTO schema_version (version, applied_at_us) VALUES (99, 0)", []).unwrap();
    drop(raw);
    let err = SqliteStore::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
}

#[test]
fn ingest_is_idempotent_and_names_the_conflicting_key() {
    let f = fixture();
    let p = purchase(1, 1000, "2026-11-25T10:00:00+08:00");
    let first = ingest_ok(&f.store, vec![p.clone()]);
    assert!(!first[0].duplicate);
    let again = ingest_ok(&f.store, vec![p.clone()]);
    assert!(again[0].duplicate);
    assert_eq!(again[0].id, first[0].id);
    // Same key, different amount.
    let err = f.store.ingest(vec![NewTxn { amount: Amount::from_fen(999).unwrap(), ..p.clone() }], IngestOptions::default());
    match err {
        Err(IngestError::Items(items)) => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].index, 0);
            let msg = items[0].reason.to_string();
            assert!(msg.contains("terminal 10000001") && msg.contains("stan 000001") && msg.contains("purchase"), "{msg}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(all_of(&f.store, TxnQuery::default()).len(), 1);
}

#[test]
fn a_batch_with_one_bad_item_stores_nothing_and_lists_every_bad_item() {
    let f = fixture();
    let good = purchase(1, 100, "2026-11-25T10:00:00+08:00");
    let unknown_merchant = NewTxn { merchant_id: mid("898310048999999"), ..purchase(2, 100, "2026-11-25T10:00:00+08:00") };
    let unknown_terminal = NewTxn { terminal_id: Some(tid("99999999")), ..purchase(3, 100, "2026-11-25T10:00:00+08:00") };
    let orphan_void = follow_up(TxnKind::Void, 4, 77, 100, "2026-11-25T10:00:00+08:00");
    let err = f.store.ingest(vec![good, unknown_merchant, unknown_terminal, orphan_void], IngestOptions::default()).unwrap_err();
    let IngestError::Items(items) = err else { panic!("expected item errors") };
    let got: Vec<(usize, String)> = items.iter().map(|e| (e.index, e.reason.to_string())).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, 1);
    assert!(got[0].1.contains("merchant 898310048999999 is not registered"));
    assert_eq!(got[1].0, 2);
    assert!(got[1].1.contains("terminal 99999999"));
    assert_eq!(got[2].0, 3);
    assert!(got[2].1.contains("original transaction not found"));
    assert!(all_of(&f.store, TxnQuery::default()).is_empty());
    assert_eq!(f.store.head_seq().unwrap(), 0, "the chain did not advance");
    assert!(f.store.verify().unwrap().ok());
}

#[test]
fn create_missing_registers_merchants_and_terminals() {
    let f = fixture();
    let t = NewTxn { merchant_id: mid("898310048990077"), terminal_id: Some(tid("20000001")), ..purchase(1, 5, "2026-11-25T10:00:00Z") };
    f.store.ingest(vec![t], IngestOptions { create_missing: true }).unwrap();
    assert!(f.store.get_merchant(&mid("898310048990077")).unwrap().is_some());
    assert!(f.store.get_terminal(&mid("898310048990077"), &tid("20000001")).unwrap().is_some());
}

#[test]
fn status_projection_follows_void_refund_and_reversal() {
    let f = fixture();
    let s = &f.store;
    let ids = ingest_ok(
        s,
        vec![
            purchase(1, 1000, "2026-11-25T10:00:00+08:00"),
            purchase(2, 1000, "2026-11-25T10:01:00+08:00"),
            purchase(3, 1000, "2026-11-25T10:02:00+08:00"),
            purchase(4, 1000, "2026-11-25T10:03:00+08:00"),
        ],
    );
    let (p1, p2, p3, p4) = (&ids[0].id, &ids[1].id, &ids[2].id, &ids[3].id);
    let void = follow_up(TxnKind::Void, 11, 1, 1000, "2026-11-25T10:10:00+08:00");
    let refund = follow_up(TxnKind::Refund, 12, 2, 300, "2026-11-25T10:11:00+08:00");
    let refund_by_rrn = NewTxn {
        original: Some(OriginalRef::Rrn(Rrn::parse("000000500003").unwrap())),
        ..follow_up(TxnKind::Refund, 13, 0, 1000, "2026-11-25T10:12:00+08:00")
    };
    let ids2 = ingest_ok(s, vec![void.clone(), refund, refund_by_rrn, reversal_of(&purchase(4, 1000, "2026-11-25T10:03:00+08:00"))]);
    assert_eq!(status_of(s, p1), TxnStatus::Voided);
    assert_eq!(status_of(s, p2), TxnStatus::PartiallyRefunded);
    assert_eq!(status_of(s, p3), TxnStatus::Refunded);
    assert_eq!(status_of(s, p4), TxnStatus::Reversed);
    // The void is itself reversed: the purchase is approved again.
    ingest_ok(s, vec![reversal_of(&void)]);
    assert_eq!(status_of(s, p1), TxnStatus::Approved);
    let detail = s.get_txn(p1, &Scope::all()).unwrap().unwrap();
    let kinds: Vec<(TxnKind, bool)> = detail.events.iter().map(|e| (e.kind, e.reversal)).collect();
    assert_eq!(kinds, vec![(TxnKind::Void, false), (TxnKind::Void, true)]);
    assert_eq!(detail.events[0].id, ids2[0].id);
    assert_eq!(detail.events[0].original_id.as_ref(), Some(p1));
    assert!(s.verify().unwrap().ok());
}

#[test]
fn an_orphan_reversal_is_kept_and_reverses_its_original_when_it_arrives() {
    let f = fixture();
    let p = purchase(5, 700, "2026-11-25T10:00:00+08:00");
    let rev = ingest_ok(&f.store, vec![reversal_of(&p)]);
    let row = f.store.get_txn(&rev[0].id, &Scope::all()).unwrap().unwrap().txn;
    assert!(row.reversal && row.original_id.is_none());
    let orig = ingest_ok(&f.store, vec![p]);
    assert_eq!(status_of(&f.store, &orig[0].id), TxnStatus::Reversed);
    assert!(f.store.verify().unwrap().ok());
}

#[test]
fn preauth_completion_and_declines() {
    let f = fixture();
    let pre = NewTxn { kind: TxnKind::Preauth, ..purchase(1, 5000, "2026-11-25T09:00:00+08:00") };
    let declined = NewTxn { response_code: ResponseCode::parse("51").unwrap(), ..purchase(2, 5000, "2026-11-25T09:00:00+08:00") };
    let ids = ingest_ok(&f.store, vec![pre, declined]);
    ingest_ok(&f.store, vec![follow_up(TxnKind::PreauthCompletion, 3, 1, 4800, "2026-11-25T12:00:00+08:00")]);
    assert_eq!(status_of(&f.store, &ids[0].id), TxnStatus::Completed);
    assert_eq!(status_of(&f.store, &ids[1].id), TxnStatus::Declined);
}

#[test]
fn keyset_pages_neither_skip_nor_repeat_while_rows_arrive() {
    let f = fixture();
    let base = at("2026-11-25T08:00:00+08:00");
    let batch: Vec<NewTxn> = (1..=25)
        .map(|i| NewTxn { txn_time: base + Duration::minutes(i64::from(i % 7)), ..purchase(i, 100, "2026-11-25T08:00:00+08:00") })
        .collect();
    ingest_ok(&f.store, batch);
    let mut seen = Vec::new();
    let mut q = TxnQuery { limit: 4, ..TxnQuery::default() };
    let mut page_no = 0;
    loop {
        let page = f.store.list_txns(&q).unwrap();
        seen.extend(page.rows.iter().map(|r| (r.txn_time_us, r.seq)));
        page_no += 1;
        // Newer and older rows arrive between pages.
        let late = NewTxn {
            txn_time: base + Duration::minutes(3),
            ..purchase(100 + page_no, 1, "2026-11-25T08:00:00+08:00")
        };
        ingest_ok(&f.store, vec![late]);
        if !page.has_more {
            break;
        }
        q.cursor = page.next_cursor;
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sorted, seen, "strictly descending, no repeats");
    // A fresh first page sees the late rows.
    assert_eq!(all_of(&f.store, TxnQuery::default()).len(), 25 + page_no as usize);
}

#[test]
fn every_filter_narrows_the_list() {
    let f = fixture();
    let s = &f.store;
    let mut qr = wechat(purchase(0, 4321, "2026-11-25T23:30:00+08:00"), "WX4200001234".into());
    qr.merchant_id = mid(M1);
    let on_t2 = NewTxn { terminal_id: Some(tid(T2)), ..purchase(2, 2000, "2026-11-25T23:10:00+08:00") };
    let other_merchant = NewTxn { merchant_id: mid(M2), ..purchase(3, 3000, "2026-11-25T11:00:00+08:00") };
    let declined = NewTxn {
        response_code: ResponseCode::parse("05").unwrap(),
        card: Some(domain::Pan::parse("6222020000000009999").unwrap().summary(&key())),
        ..purchase(4, 500, "2026-11-24T12:00:00+08:00")
    };
    ingest_ok(s, vec![purchase(1, 1000, "2026-11-25T10:00:00+08:00"), qr, on_t2, other_merchant, declined]);
    ingest_ok(s, vec![follow_up(TxnKind::Refund, 5, 1, 100, "2026-11-25T12:00:00+08:00")]);

    let check = |q: TxnQuery, expected_stans: &[u32]| {
        let mut got: Vec<u32> = all_of(s, q.clone()).iter().map(|r| r.stan.map(|x| x.get()).unwrap_or(0)).collect();
        got.sort();
        assert_eq!(got, expected_stans, "{q:?}");
    };
    let m1 = || TxnQuery { merchant_id: Some(mid(M1)), ..TxnQuery::default() };
    check(TxnQuery::default(), &[0, 1, 2, 3, 4, 5]);
    check(m1(), &[0, 1, 2, 4, 5]);
    check(TxnQuery { scope: Scope::merchant(mid(M2)), ..TxnQuery::default() }, &[3]);
    check(TxnQuery { scope: Scope::merchant(mid(M2)), merchant_id: Some(mid(M1)), ..TxnQuery::default() }, &[]);
    check(TxnQuery { scope: Scope { merchants: Some(vec![mid(M1)]), terminals: Some(vec![tid(T2)]) }, ..TxnQuery::default() }, &[2]);
    check(TxnQuery { terminal_ids: vec![tid(T2)], ..m1() }, &[2]);
    check(TxnQuery { kinds: vec![TxnKind::Refund], ..m1() }, &[5]);
    check(TxnQuery { statuses: vec![TxnStatus::PartiallyRefunded], ..m1() }, &[1]);
    check(TxnQuery { statuses: vec![TxnStatus::Declined], ..m1() }, &[4]);
    check(TxnQuery { channels: vec![Channel::Wechat], ..m1() }, &[0]);
    check(TxnQuery { card_last4: Some("9999".into()), ..m1() }, &[4]);
    check(TxnQuery { rrn: Some(Rrn::parse("000000500002").unwrap()), ..m1() }, &[2]);
    check(TxnQuery { stan: Some(Stan::new(4).unwrap()), ..m1() }, &[4]);
    check(TxnQuery { batch_no: Some(BatchNo::new(2).unwrap()), ..m1() }, &[]);
    check(TxnQuery { auth_code: Some(domain::AuthCode::parse("A00001").unwrap()), ..m1() }, &[1, 2, 4, 5]);
    check(TxnQuery { external_ref: Some("WX4200001234".into()), ..m1() }, &[0]);
    check(TxnQuery { amount_min: Some(Amount::from_fen(1000).unwrap()), amount_max: Some(Amount::from_fen(4321).unwrap()), ..m1() }, &[0, 1, 2]);
    // Half-open instants: 10:00 included, 23:10 excluded.
    check(
        TxnQuery { range: TxnRange::TxnTime { from: at("2026-11-25T10:00:00+08:00"), to: at("2026-11-25T23:10:00+08:00") }, ..m1() },
        &[1, 5],
    );
    // Settlement date 2026-11-26: the card purchase at 23:10 is after the 23:00 cut-off; the
    // WeChat one at 23:30 is not (natural day).
    let d = |s: &str| SettlementDate::parse(s).unwrap();
    check(TxnQuery { range: TxnRange::SettlementDate { from: d("2026-11-26"), to: d("2026-11-26") }, ..m1() }, &[2]);
    check(TxnQuery { range: TxnRange::SettlementDate { from: d("2026-11-24"), to: d("2026-11-25") }, ..m1() }, &[0, 1, 4, 5]);

    let row = &all_of(s, TxnQuery { stan: Some(Stan::new(2).unwrap()), ..m1() })[0];
    assert_eq!(row.local_time.to_rfc3339(), "2026-11-25T23:10:00+08:00");
    assert_eq!(row.timezone, "Asia/Shanghai");
    assert_eq!(row.card.as_ref().unwrap().masked, "622202*********0123");

    let sum = s.summary(&m1()).unwrap();
    let approved = sum.iter().find(|x| x.status == TxnStatus::Approved).unwrap();
    assert_eq!((approved.count, approved.amount_fen), (3, 4321 + 2000 + 100));

    let days = s.settlements(&Scope::all(), Some(&mid(M1)), d("2026-11-24"), d("2026-11-26")).unwrap();
    let by_day: Vec<(String, i64, i64, i64)> =
        days.iter().map(|x| (x.settlement_date.to_string(), x.gross_fen, x.refund_fen, x.net_fen)).collect();
    assert_eq!(
        by_day,
        vec![
            ("2026-11-24".to_string(), 0, 0, 0),
            ("2026-11-25".to_string(), 4321 + 1000, 100, 4321 + 1000 - 100),
            ("2026-11-26".to_string(), 2000, 0, 2000),
        ]
    );
}

#[test]
fn a_foreign_id_is_not_found() {
    let f = fixture();
    let ids = ingest_ok(&f.store, vec![purchase(1, 100, "2026-11-25T10:00:00Z")]);
    assert!(f.store.get_txn(&ids[0].id, &Scope::merchant(mid(M1))).unwrap().is_some());
    assert!(f.store.get_txn(&ids[0].id, &Scope::merchant(mid(M2))).unwrap().is_none());
    let staff = Scope { merchants: Some(vec![mid(M1)]), terminals: Some(vec![tid(T2)]) };
    assert!(f.store.get_txn(&ids[0].id, &staff).unwrap().is_none());
    // A forged id with the right sequence but another time is not found either.
    let forged = TxnId::parse("00000000000000000000000001").unwrap();
    assert!(f.store.get_txn(&forged, &Scope::all()).unwrap().is_none());
    assert!(TxnId::parse("../etc/passwd").is_none());
}

#[test]
fn export_streams_every_row_up_to_the_max() {
    let f = fixture();
    let batch: Vec<NewTxn> = (1..=30).map(|i| purchase(i, 100, "2026-11-25T10:00:00Z")).collect();
    ingest_ok(&f.store, batch);
    let mut n = 0;
    let out = f.store.export_txns(&TxnQuery::default(), 1_000, &mut |_| {
        n += 1;
        Ok(())
    }).unwrap();
    assert_eq!((out.rows, out.truncated, n), (30, false, 30));
    let out = f.store.export_txns(&TxnQuery::default(), 10, &mut |_| Ok(())).unwrap();
    assert_eq!((out.rows, out.truncated), (10, true));
}

#[test]
fn export_keeps_list_order_across_its_reading_batches_and_stops_when_the_consumer_fails() {
    // Rows are read on one thread and handed over in batches of 512: 1,300 rows cross two
    // batch boundaries, with voids naming originals (their ids need a second lookup).
    let f = fixture();
    let at = |i: u32| format!("2026-11-25T{:02}:{:02}:{:02}Z", i / 3600, i / 60 % 60, i % 60);
    for chunk in (1..=1_300u32).collect::<Vec<_>>().chunks(500) {
        let batch = chunk
            .iter()
            .map(|&i| if i % 100 == 0 { follow_up(TxnKind::Void, i, i - 1, 100, &at(i)) } else { purchase(i, 100, &at(i)) })
            .collect();
        ingest_ok(&f.store, batch);
    }
    let mut listed = Vec::new();
    let mut q = TxnQuery { limit: PAGE_LIMIT_MAX, ..TxnQuery::default() };
    loop {
        let page = f.store.list_txns(&q).unwrap();
        listed.extend(page.rows);
        if !page.has_more {
            break;
        }
        q.cursor = page.next_cursor;
    }
    let mut exported = Vec::new();
    let out = f.store.export_txns(&TxnQuery::default(), EXPORT_ROWS_MAX, &mut |r| {
        exported.push(r.clone());
        Ok(())
    }).unwrap();
    assert_eq!((out.rows, out.truncated), (1_300, false));
    assert_eq!(exported.iter().map(|r| (&r.id, &r.original_id, r.status)).collect::<Vec<_>>(),
               listed.iter().map(|r| (&r.id, &r.original_id, r.status)).collect::<Vec<_>>());
    assert_eq!(exported.iter().filter(|r| r.original_id.is_some()).count(), 13);

    // A consumer that fails (the client went away) stops the export with its error.
    let mut seen = 0;
    let err = f.store.export_txns(&TxnQuery::default(), EXPORT_ROWS_MAX, &mut |_| {
        seen += 1;
        if seen == 700 { Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone")) } else { Ok(()) }
    }).unwrap_err();
    assert!(err.to_string().contains("client gone"), "{err}");
    assert_eq!(seen, 700);
}

fn raw_conn(store: &SqliteStore) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(store.path()).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

#[test]
fn records_cannot_be_updated_through_sql() {
    let f = fixture();
    ingest_ok(&f.store, vec![purchase(1, 100, "2026-11-25T10:00:00Z")]);
    let err = raw_conn(&f.store).execute("UPDATE txn_records SET amount_fen = 1", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = raw_conn(&f.store).execute("DELETE FROM txn_records", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn verify_names_an_edited_row() {
    let f = fixture();
    let batch: Vec<NewTxn> = (1..=5).map(|i| purchase(i, 100 * i64::from(i), "2026-11-25T10:00:00Z")).collect();
    let ids = ingest_ok(&f.store, batch);
    let report = f.store.verify().unwrap();
    assert!(report.ok(), "{:?}", report.first_break);
    assert_eq!(report.records_checked, 5);
    let c = raw_conn(&f.store);
    c.execute_batch("DROP TRIGGER txn_records_append_only_update").unwrap();
    c.execute("UPDATE txn_records SET amount_fen = 1 WHERE seq = 3", []).unwrap();
    let brk = f.store.verify().unwrap().first_break.expect("tamper detected");
    assert_eq!(brk.seq, 3);
    assert_eq!(brk.id.as_ref(), Some(&ids[2].id));
    assert_eq!(brk.what, BreakKind::HashMismatch);
    assert!(brk.to_string().contains(ids[2].id.as_str()));
}

#[test]
fn an_export_meeting_a_damaged_column_fails_naming_it() {
    let f = fixture();
    ingest_ok(&f.store, (1..=5).map(|i| purchase(i, 100, "2026-11-25T10:00:00Z")).collect());
    let c = raw_conn(&f.store);
    c.execute_batch("DROP TRIGGER txn_records_append_only_update").unwrap();
    c.execute("UPDATE txn_records SET amount_fen = 'lots' WHERE seq = 3", []).unwrap();
    let mut seen = 0;
    let err = f.store.export_txns(&TxnQuery::default(), EXPORT_ROWS_MAX, &mut |_| {
        seen += 1;
        Ok(())
    }).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { column, .. } if column.contains("amount_fen")), "{err}");
    // Newest first: rows 5 and 4 went out before the damaged one.
    assert_eq!(seen, 2);
}

#[test]
fn verify_names_a_tampered_projection_and_a_truncated_tail() {
    let f = fixture();
    let ids = ingest_ok(&f.store, vec![purchase(1, 100, "2026-11-25T10:00:00Z"), purchase(2, 100, "2026-11-25T10:00:00Z")]);
    ingest_ok(&f.store, vec![follow_up(TxnKind::Void, 3, 1, 100, "2026-11-25T10:05:00Z")]);
    let c = raw_conn(&f.store);
    c.execute("UPDATE txn_status SET status = 'approved' WHERE seq = 1", []).unwrap();
    let brk = f.store.verify().unwrap().first_break.expect("tamper detected");
    assert_eq!((brk.seq, brk.id.as_ref()), (1, Some(&ids[0].id)));
    assert!(matches!(brk.what, BreakKind::StatusMismatch { expected: TxnStatus::Voided, .. }), "{brk}");
    c.execute("UPDATE txn_status SET status = 'voided' WHERE seq = 1", []).unwrap();
    assert!(f.store.verify().unwrap().ok());
    c.execute_batch("DROP TRIGGER txn_records_append_only_delete; DELETE FROM txn_records WHERE seq = 3; DELETE FROM txn_status WHERE seq = 3;")
        .unwrap();
    let brk = f.store.verify().unwrap().first_break.expect("truncation detected");
    assert!(matches!(brk.what, BreakKind::HeadMismatch { head_seq: 3 } | BreakKind::StatusMismatch { .. }), "{brk}");
}

#[test]
fn group_commit_serves_concurrent_writers() {
    let f = fixture();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let s = f.store.clone();
            std::thread::spawn(move || {
                for i in 0..25u32 {
                    let stan = t * 1000 + i + 1;
                    s.ingest(vec![purchase(stan, 100, "2026-11-25T10:00:00Z")], IngestOptions::default()).unwrap();
                    s.append_audit(&NewAuditEvent {
                        actor: format!("t{t}"),
                        action: "query".into(),
                        target: None,
                        detail: None,
                        ip: None,
                        at: Utc::now(),
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(f.store.head_seq().unwrap(), 100);
    assert_eq!(all_of(&f.store, TxnQuery::default()).len(), 100);
    assert_eq!(f.store.list_audit(&AuditQuery { limit: 500, ..AuditQuery::default() }).unwrap().len(), 100);
    assert!(f.store.verify().unwrap().ok());
}

#[test]
fn card_key_is_created_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = card_key(dir.path()).unwrap();
    let k2 = card_key(dir.path()).unwrap();
    assert_eq!(k1.token("6222021234567890123"), k2.token("6222021234567890123"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CARD_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(dir.path().join(CARD_KEY_FILE), b"short").unwrap();
    assert!(card_key(dir.path()).is_err());
}

fn object(line: u64) -> IngestObject {
    IngestObject {
        merchant_id: Some(M1.into()),
        terminal_id: Some(T1.into()),
        batch_no: Some("000001".into()),
        stan: Some(format!("{line:06}")),
        rrn: Some(format!("{line:012}")),
        auth_code: Some("123456".into()),
        kind: Some("purchase".into()),
        channel: Some("card".into()),
        pan: Some(Secret::new("6222021234567890123".into())),
        amount_fen: Some(100),
        response_code: Some("00".into()),
        txn_time: Some("2026-11-25T10:00:00+08:00".into()),
        ..IngestObject::default()
    }
}

#[test]
fn validate_lists_every_missing_field_and_never_echoes_the_pan() {
    let errs = validate(IngestObject { pan: Some(Secret::new("62220212345x7890123".into())), ..IngestObject::default() }, &key(), Source::Api)
        .unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
    for f in ["merchant_id", "kind", "channel", "response_code", "txn_time", "amount", "pan"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    assert!(!format!("{errs:?}").contains("62220212345"));
    let card_errs = validate(
        IngestObject { terminal_id: None, rrn: None, auth_code: None, ..object(1) },
        &key(),
        Source::Api,
    )
    .unwrap_err();
    let fields: Vec<&str> = card_errs.iter().map(|e| e.field).collect();
    assert_eq!(fields, vec!["terminal_id", "rrn", "auth_code"]);
    let qr = validate(IngestObject { channel: Some("alipay".into()), ..object(1) }, &key(), Source::Api).unwrap_err();
    assert_eq!(qr[0].field, "external_ref");
    let void = validate(IngestObject { kind: Some("void".into()), ..object(1) }, &key(), Source::Api).unwrap_err();
    assert_eq!(void[0].field, "original");
    let ok = validate(object(1), &key(), Source::Import).unwrap();
    assert_eq!(ok.card.unwrap().masked, "622202*********0123");
    assert!(!format!("{:?}", object(1)).contains("6222021234567890123"));
}

#[test]
fn bulk_import_is_atomic_and_lists_every_bad_line() {
    let f = fixture();
    let mut lines = (1..=50u64).map(|n| {
        let object = match n {
            7 => Err("expected value at column 3".to_string()),
            20 => Ok(IngestObject { amount_fen: Some(-5), ..object(n) }),
            33 => Ok(IngestObject { terminal_id: Some("99999999".into()), ..object(n) }),
            _ => Ok(object(n)),
        };
        BulkLine { line_no: n, object }
    });
    let err = f.store.bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions::default(), &mut |_| {}).unwrap_err();
    let BulkError::Lines { errors, truncated } = err else { panic!("expected line errors") };
    assert!(!truncated);
    let nos: Vec<u64> = errors.iter().map(|e| e.line_no).collect();
    assert_eq!(nos, vec![7, 20, 33]);
    assert!(errors[2].reason.contains("terminal 99999999"));
    assert_eq!(f.store.head_seq().unwrap(), 0);

    let mut good = (1..=50u64).map(|n| BulkLine { line_no: n, object: Ok(object(n)) });
    let mut calls = 0;
    let report = f.store.bulk_ingest(&mut good, &key(), Source::Import, BulkOptions::default(), &mut |_| calls += 1).unwrap();
    assert_eq!((report.lines, report.inserted, report.duplicates), (50, 50, 0));
    assert!(calls >= 1);
    let mut again = (1..=50u64).map(|n| BulkLine { line_no: n, object: Ok(object(n)) });
    let report = f.store.bulk_ingest(&mut again, &key(), Source::Import, BulkOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((report.inserted, report.duplicates), (0, 50));
    assert!(f.store.verify().unwrap().ok());
}

#[test]
fn merchants_terminals_users_sessions_keys_and_audit() {
    let f = fixture();
    let s = &f.store;
    assert!(matches!(
        s.create_merchant(&NewMerchant::with_defaults(mid(M1)), "test"),
        Err(StoreError::AlreadyExists { what: "merchant", .. })
    ));
    let clock = MerchantClock::new("Asia/Hong_Kong", "22:30").unwrap();
    s.create_merchant(&NewMerchant { clock, ..NewMerchant::with_defaults(mid("898310048990003")) }, "admin").unwrap();
    let m = s.get_merchant(&mid("898310048990003")).unwrap().unwrap();
    assert_eq!(m.clock, clock);
    let when = at("2026-11-25T09:00:00Z");
    let frozen = s.set_merchant_status(&mid(M1), MerchantStatus::Frozen, "risk review", "bank-op", when).unwrap();
    assert_eq!((frozen.status, frozen.status_reason.as_deref(), frozen.status_since), (MerchantStatus::Frozen, Some("risk review"), when));
    let hist = s.merchant_status_history(&mid(M1)).unwrap();
    assert_eq!(hist.iter().map(|h| h.status).collect::<Vec<_>>(), vec![MerchantStatus::Active, MerchantStatus::Frozen]);
    assert_eq!(hist[1].actor, "bank-op");
    assert_eq!(s.list_merchants(&Scope::merchant(mid(M2))).unwrap().len(), 1);

    assert_eq!(s.find_terminals(&tid(T1)).unwrap().len(), 2);
    let t = s.set_terminal_status(&mid(M1), &tid(T1), TerminalStatus::Disabled).unwrap();
    assert_eq!(t.status, TerminalStatus::Disabled);
    s.update_terminal_sync(&mid(M1), &tid(T1), &TerminalSync { open_batch: Some(BatchNo::new(7).unwrap()), last_seen_at: Some(when), ..TerminalSync::default() })
        .unwrap();
    let t = s.get_terminal(&mid(M1), &tid(T1)).unwrap().unwrap();
    assert_eq!((t.open_batch.map(|b| b.get()), t.last_seen_at), (Some(7), Some(when)));
    assert!(s.create_terminal(&NewTerminal { id: tid(T1), merchant_id: mid("898310048999999"), master_key_hex: None }).is_err());

    let u = s
        .create_user(&NewUser {
            username: "staff1".into(),
            role: Role::MerchantStaff,
            merchant_id: Some(mid(M1)),
            terminals: vec![tid(T1), tid(T2)],
            password_hash: "$argon2id$v=19$x".into(),
        })
        .unwrap();
    assert_eq!(u.terminals, vec![tid(T1), tid(T2)]);
    assert!(matches!(
        s.create_user(&NewUser { username: "staff1".into(), role: Role::Admin, merchant_id: None, terminals: vec![], password_hash: "h".into() }),
        Err(StoreError::AlreadyExists { .. })
    ));
    let now = at("2026-11-25T10:00:00Z");
    s.create_session(&NewSession { token_hash: "th1".into(), user_id: u.id, expires_at: now + Duration::hours(1) }).unwrap();
    assert_eq!(s.get_session("th1", now).unwrap().unwrap().1.username, "staff1");
    assert!(s.get_session("th1", now + Duration::hours(2)).unwrap().is_none());
    s.set_user_disabled(u.id, true).unwrap();
    assert!(s.get_session("th1", now).unwrap().is_none());

    let k = s.create_api_key(&NewApiKey { name: "pos-gw".into(), key_hash: "kh".into(), merchants: Some(vec![mid(M1)]) }).unwrap();
    assert_eq!(s.get_api_key_by_hash("kh").unwrap().unwrap().merchants, Some(vec![mid(M1)]));
    s.revoke_api_key(k.id).unwrap();
    assert!(s.get_api_key_by_hash("kh").unwrap().is_none());

    for action in ["login", "query", "export"] {
        s.append_audit(&NewAuditEvent { actor: "u".into(), action: action.into(), target: None, detail: None, ip: Some("127.0.0.1".into()), at: now })
            .unwrap();
    }
    let page = s.list_audit(&AuditQuery { limit: 2, ..AuditQuery::default() }).unwrap();
    assert_eq!(page.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["export", "query"]);
    let rest = s.list_audit(&AuditQuery { before_id: Some(page[1].id), ..AuditQuery::default() }).unwrap();
    assert_eq!(rest.len(), 1);
    assert!(raw_conn(s).execute("DELETE FROM audit_events", []).is_err());
}

mod bulk_order;
mod findability;
mod settlement_dates;
mod recon_store;

//! A bulk import stores each chunk grouped by merchant (for index locality), not in line order.
//! What must not change: every follow-up still finds its original, statuses, duplicates and
//! line-numbered errors come out as a line-ordered ingest would give them.

use std::collections::BTreeMap;

use super::*;

const M3: &str = "898310048990003";

/// Line `n` of an export interleaved across three merchants (M1, M2, M3 by `n % 3`), in time
/// order, with follow-ups naming earlier lines of the same merchant: voids by batch + STAN,
/// refunds by RRN, card reversals by key, and WeChat reversals filed under another merchant
/// than their payment (the one lookup that is not scoped to a merchant).
fn line(n: u64) -> IngestObject {
    let merchant = [M1, M2, M3][(n % 3) as usize];
    let time = format!("2026-11-25T{:02}:{:02}:00+08:00", 8 + n / 60, n % 60);
    let card = |stan: u64| IngestObject {
        merchant_id: Some(merchant.into()),
        terminal_id: Some(T1.into()),
        batch_no: Some("000001".into()),
        stan: Some(format!("{stan:06}")),
        rrn: Some(format!("{:012}", 700_000 + n)),
        auth_code: Some("123456".into()),
        kind: Some("purchase".into()),
        channel: Some("card".into()),
        pan: Some(Secret::new("6222021234567890123".into())),
        amount_fen: Some(1_000 + n as i64),
        response_code: Some("00".into()),
        txn_time: Some(time.clone()),
        ..IngestObject::default()
    };
    let wechat = |r: u64| IngestObject {
        merchant_id: Some(merchant.into()),
        kind: Some("purchase".into()),
        channel: Some("wechat".into()),
        external_ref: Some(format!("WX{r:020}")),
        amount_fen: Some(2_000 + r as i64),
        response_code: Some("00".into()),
        txn_time: Some(time.clone()),
        ..IngestObject::default()
    };
    match kind_of(n) {
        Line::Purchase => card(n),
        Line::Void => IngestObject {
            kind: Some("void".into()),
            original_batch_no: Some("000001".into()),
            original_stan: Some(format!("{:06}", n - 3)),
            ..card(n)
        },
        Line::RefundByRrn => IngestObject {
            kind: Some("refund".into()),
            amount_fen: Some(100),
            original_rrn: Some(format!("{:012}", 700_000 + n - 6)),
            ..card(n)
        },
        Line::CardReversal => IngestObject { reversal: Some(true), rrn: None, auth_code: None, amount_fen: Some(1_000 + n as i64 - 3), ..card(n - 3) },
        Line::Wechat => wechat(n),
        Line::WechatReversal => IngestObject { reversal: Some(true), amount_fen: Some(2_000 + n as i64 - 5), ..wechat(n - 5) },
    }
}

#[derive(PartialEq)]
enum Line {
    Purchase,
    Void,
    RefundByRrn,
    CardReversal,
    Wechat,
    WechatReversal,
}

fn kind_of(n: u64) -> Line {
    if n.is_multiple_of(11) {
        return Line::Wechat;
    }
    if n % 11 == 5 && n > 5 {
        return Line::WechatReversal;
    }
    let plain = |k: u64| k >= 1 && !k.is_multiple_of(11) && k % 11 != 5 && !k.is_multiple_of(7) && !k.is_multiple_of(13) && !k.is_multiple_of(17);
    if n.is_multiple_of(7) && n > 3 && plain(n - 3) {
        return Line::Void;
    }
    if n.is_multiple_of(13) && n > 6 && plain(n - 6) {
        return Line::RefundByRrn;
    }
    if n.is_multiple_of(17) && n > 3 && plain(n - 3) {
        return Line::CardReversal;
    }
    Line::Purchase
}

/// Every stored record by its idempotency key: (status, amount, the original's key).
fn by_key(store: &SqliteStore) -> BTreeMap<String, (TxnStatus, i64, Option<String>)> {
    let mut rows = Vec::new();
    store
        .export_txns(&TxnQuery::default(), EXPORT_ROWS_MAX, &mut |r| {
            rows.push(r.clone());
            Ok(())
        })
        .unwrap();
    let key = |r: &TxnRow| {
        format!(
            "{} {:?} {:?} {:?} {} {} {:?}",
            r.merchant_id, r.terminal_id, r.batch_no, r.stan, r.kind, r.reversal, r.external_ref
        )
    };
    let keys: BTreeMap<TxnId, String> = rows.iter().map(|r| (r.id.clone(), key(r))).collect();
    rows.iter()
        .map(|r| (key(r), (r.status, r.amount.fen(), r.original_id.as_ref().map(|o| keys[o].clone()))))
        .collect()
}

#[test]
fn a_bulk_import_interleaved_across_merchants_links_and_projects_as_in_line_order() {
    let lines_total = 600u64;
    let objects: Vec<IngestObject> = (1..=lines_total).map(line).collect();
    for k in [Line::Void, Line::RefundByRrn, Line::CardReversal, Line::WechatReversal] {
        assert!((1..=lines_total).filter(|&n| kind_of(n) == k).count() >= 10);
    }

    let bulk = fixture();
    let mut lines = objects.iter().cloned().enumerate().map(|(i, o)| BulkLine { line_no: i as u64 + 1, object: Ok(o) });
    let report = bulk
        .store
        .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: true, errors_max: 0 }, &mut |_| {})
        .unwrap();
    assert_eq!((report.inserted, report.duplicates), (lines_total, 0));
    assert!(bulk.store.verify().unwrap().ok());

    // The same objects, one at a time in line order.
    let one_by_one = fixture();
    for o in &objects {
        let t = validate(o.clone(), &key(), Source::Import).unwrap();
        one_by_one.store.ingest(vec![t], IngestOptions { create_missing: true }).unwrap();
    }
    let (got, want) = (by_key(&bulk.store), by_key(&one_by_one.store));
    assert_eq!(got.len(), lines_total as usize);
    assert_eq!(got, want);
    // The follow-ups were linked, not left as orphans.
    let linked = got.values().filter(|v| v.2.is_some()).count();
    let follow_ups = (1..=lines_total).filter(|&n| kind_of(n) != Line::Purchase && kind_of(n) != Line::Wechat).count();
    assert_eq!(linked, follow_ups);
    assert!(got.values().any(|v| v.0 == TxnStatus::Voided) && got.values().any(|v| v.0 == TxnStatus::Reversed));
    // The keyed card token is stored as bytes and read back as the hex the summary carries.
    let token = domain::Pan::parse("6222021234567890123").unwrap().summary(&key()).token;
    let page = bulk.store.list_txns(&TxnQuery { channels: vec![Channel::Card], limit: 5, ..TxnQuery::default() }).unwrap();
    assert_eq!(page.rows.len(), 5);
    assert!(page.rows.iter().all(|r| r.card.as_ref().is_some_and(|c| c.token == token && !token.is_empty())));

    // Imported again: every line is a duplicate.
    let mut again = objects.iter().cloned().enumerate().map(|(i, o)| BulkLine { line_no: i as u64 + 1, object: Ok(o) });
    let report = bulk
        .store
        .bulk_ingest(&mut again, &key(), Source::Import, BulkOptions { create_missing: true, errors_max: 0 }, &mut |_| {})
        .unwrap();
    assert_eq!((report.inserted, report.duplicates), (0, lines_total));
}

#[test]
fn bulk_import_errors_found_while_storing_are_the_lowest_line_numbers() {
    // Unknown terminals are found by the writer, which stores a chunk in merchant order: M2's
    // lines come after all of M1's, yet the first lines in the file are the ones reported.
    let f = fixture();
    let bad = |n: u64| IngestObject {
        merchant_id: Some(if n.is_multiple_of(2) { M1 } else { M2 }.into()),
        terminal_id: Some("99999999".into()),
        ..object(n)
    };
    let mut lines = (1..=40u64).map(|n| BulkLine { line_no: n, object: Ok(bad(n)) });
    let err = f
        .store
        .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: false, errors_max: 5 }, &mut |_| {})
        .unwrap_err();
    let BulkError::Lines { errors, truncated } = err else { panic!("expected line errors") };
    assert!(truncated);
    assert_eq!(errors.iter().map(|e| e.line_no).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert_eq!(f.store.head_seq().unwrap(), 0);
}

/// The list indexes of `txn_records` with the SQL that defines them.
fn list_indexes(store: &SqliteStore) -> Vec<(String, String)> {
    let c = raw_conn(store);
    let mut stmt = c
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'txn_records' AND name IN ('txn_records_by_merchant_time', 'txn_records_by_time') ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_large_import_into_an_empty_store_builds_the_time_index_at_its_end_and_a_refused_one_keeps_it() {
    // More than one chunk, into an empty store: the time index is dropped for the import and
    // built again, sorted, before its commit.
    let f = fixture();
    let before = list_indexes(&f.store);
    assert_eq!(before.len(), 2);
    let n = 33_000u64;
    let minute = |i: u64| format!("2026-11-25T{:02}:{:02}:{:02}+08:00", 8 + i / 3600, i / 60 % 60, i % 60);
    let obj = |i: u64| IngestObject { txn_time: Some(minute(i)), ..object(i) };
    let mut lines = (1..=n).map(|i| BulkLine { line_no: i, object: Ok(obj(i)) });
    let report = f
        .store
        .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: true, errors_max: 0 }, &mut |_| {})
        .unwrap();
    assert_eq!(report.inserted, n);
    assert_eq!(list_indexes(&f.store), before);
    // The rebuilt indexes hold every row (integrity_check compares each index with its table).
    let check: String = raw_conn(&f.store).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert!(f.store.verify().unwrap().ok());
    let newest = f.store.list_txns(&TxnQuery { merchant_id: Some(mid(M1)), limit: 3, ..TxnQuery::default() }).unwrap();
    assert_eq!(newest.rows.iter().map(|r| r.stan.unwrap().get()).collect::<Vec<_>>(), vec![n as u32, n as u32 - 1, n as u32 - 2]);

    // A refused large import into an empty store rolls back the drop with everything else.
    let g = fixture();
    let mut lines = (1..=n).map(|i| BulkLine {
        line_no: i,
        object: Ok(if i == n { IngestObject { terminal_id: Some("99999999".into()), ..obj(i) } } else { obj(i) }),
    });
    let err = g
        .store
        .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: false, errors_max: 0 }, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, BulkError::Lines { ref errors, .. } if errors.iter().map(|e| e.line_no).collect::<Vec<_>>() == vec![n]));
    assert_eq!(g.store.head_seq().unwrap(), 0);
    assert_eq!(list_indexes(&g.store), before);
}

#[test]
fn refunds_by_rrn_find_the_same_originals_while_a_large_import_builds_the_rrn_index_at_its_end() {
    // 33,000 interleaved lines (voids, refunds by RRN, reversals), each at its own second.
    let lines_total = 33_000u64;
    let second = |n: u64| format!("2026-11-25T{:02}:{:02}:{:02}+08:00", n / 3600, n / 60 % 60, n % 60);
    let objects: Vec<IngestObject> = (1..=lines_total).map(|n| IngestObject { txn_time: Some(second(n)), ..line(n) }).collect();
    assert!((1..=lines_total).filter(|&n| kind_of(n) == Line::RefundByRrn).count() > 1_000);
    let import = |store: &SqliteStore, objects: &[IngestObject]| {
        let mut lines = objects.iter().cloned().enumerate().map(|(i, o)| BulkLine { line_no: i as u64 + 1, object: Ok(o) });
        store
            .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: true, errors_max: 0 }, &mut |_| {})
            .unwrap()
    };

    // Into an empty store: the RRN index is dropped for the import, originals found in memory.
    let deferred = fixture();
    assert_eq!(import(&deferred.store, &objects).inserted, lines_total);
    // Into a store already holding more records than that allows: the index is kept.
    let kept = fixture();
    let earlier: Vec<IngestObject> = (1..=33_000u64)
        .map(|i| IngestObject { batch_no: Some("000009".into()), rrn: Some(format!("{:012}", 900_000_000 + i)), ..object(i) })
        .collect();
    import(&kept.store, &earlier);
    assert_eq!(import(&kept.store, &objects).inserted, lines_total);

    let got = by_key(&deferred.store);
    let mut want = by_key(&kept.store);
    want.retain(|k, _| got.contains_key(k));
    assert_eq!(got.len(), lines_total as usize);
    assert_eq!(got, want);
    let refunded = got.values().filter(|v| v.0 == TxnStatus::PartiallyRefunded || v.0 == TxnStatus::Refunded).count();
    assert!(refunded > 1_000, "{refunded} refunded originals");
    assert!(deferred.store.verify().unwrap().ok());
    let check: String = raw_conn(&deferred.store).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

/// A bulk import also writes what reconciliation reads of its records as chunks; a run decodes
/// them, reads the records stored one at a time from the table, and takes every status from
/// the status projection, which later follow-ups change. Whatever the mix, a run sees exactly
/// what it sees with no chunks at all.
#[test]
fn reconciliation_reads_chunks_and_table_alike() {
    let f = fixture();
    let day = SettlementDate::parse("2026-11-25").unwrap();
    let bulk = |from: u64, to: u64| {
        let mut lines = (from..=to).map(|n| BulkLine { line_no: n, object: Ok(line(n)) });
        f.store
            .bulk_ingest(&mut lines, &key(), Source::Import, BulkOptions { create_missing: true, errors_max: 0 }, &mut |_| {})
            .unwrap()
    };
    assert_eq!(bulk(1, 300).inserted, 300);
    // Stored one at a time, between two imports: no chunk covers these.
    let single = purchase(900, 4_200, "2026-11-25T12:00:00+08:00");
    ingest_ok(&f.store, vec![single.clone(), purchase(901, 4_300, "2026-11-25T12:01:00+08:00")]);
    // Its follow-ups void, refund and reverse records of the first import.
    assert_eq!(bulk(301, 600).inserted, 300);
    ingest_ok(&f.store, vec![reversal_of(&single)]);

    let c = raw_conn(&f.store);
    let chunks: i64 = c.query_row("SELECT count(*) FROM txn_record_chunks", [], |r| r.get(0)).unwrap();
    let covered: i64 = c.query_row("SELECT coalesce(sum(rows), 0) FROM txn_record_chunks", [], |r| r.get(0)).unwrap();
    assert_eq!((chunks, covered), (2, 600), "one chunk per import, every imported record in one");

    let m2 = mid(M2);
    let with_chunks = (f.store.load_recon_input(day, None).unwrap(), f.store.load_recon_input(day, Some(&m2)).unwrap());
    assert_eq!(with_chunks.0.platform.len(), 603);
    assert!(with_chunks.1.platform.len() > 100 && with_chunks.1.platform.iter().all(|r| r.merchant == m2));
    let status_of = |seq: i64| with_chunks.0.platform.iter().find(|r| r.id.0 == seq).map(|r| r.status);
    assert_eq!(status_of(301), Some(TxnStatus::Reversed), "the record stored alone, reversed later");
    assert!(with_chunks.0.platform.iter().any(|r| r.id.0 <= 300 && r.status == TxnStatus::Voided));

    // The run really reads the chunks: a damaged one is an error naming it.
    c.execute_batch(
        "CREATE TEMP TABLE kept AS SELECT * FROM txn_record_chunks; DELETE FROM txn_record_chunks; \
         INSERT INTO txn_record_chunks SELECT first_seq, last_seq, rows, min_date, max_date, substr(data, 1, length(data) - 3) FROM kept",
    )
    .unwrap();
    let err = f.store.load_recon_input(day, None).unwrap_err();
    assert!(err.to_string().contains("txn_record_chunks"), "{err}");
    // `verify` checks the chunks against the records: a damaged chunk, and chunks swapped
    // (each decodes, but not into the records of its range), are named.
    assert!(matches!(f.store.verify().unwrap().first_break.map(|b| b.what), Some(BreakKind::ChunkMismatch { first_seq: 1 })));
    c.execute_batch(
        "DELETE FROM txn_record_chunks; \
         INSERT INTO txn_record_chunks SELECT k.first_seq, k.last_seq, k.rows, k.min_date, k.max_date, o.data \
         FROM kept k JOIN kept o ON o.first_seq <> k.first_seq",
    )
    .unwrap();
    let brk = f.store.verify().unwrap().first_break.expect("swapped chunks are found");
    assert!(matches!(brk.what, BreakKind::ChunkMismatch { first_seq: 1 }) && brk.seq == 1, "{brk}");
    // A date range that leaves out the chunk's records (a run would skip them), and a row count
    // that disagrees with the data, are named too.
    for tampered in ["first_seq, last_seq, rows, min_date, 20261124, data", "first_seq, last_seq, rows + 1, min_date, max_date, data"] {
        c.execute_batch(&format!("DELETE FROM txn_record_chunks; INSERT INTO txn_record_chunks SELECT {tampered} FROM kept")).unwrap();
        let brk = f.store.verify().unwrap().first_break.expect("a tampered chunk is found");
        assert!(matches!(brk.what, BreakKind::ChunkMismatch { first_seq: 1 }) && brk.seq == 1, "{tampered}: {brk}");
    }
    c.execute_batch("DELETE FROM txn_record_chunks; INSERT INTO txn_record_chunks SELECT * FROM kept").unwrap();
    assert!(f.store.verify().unwrap().ok(), "the chunks as written agree with the records");

    c.execute("DELETE FROM txn_record_chunks", []).unwrap();
    let from_table = (f.store.load_recon_input(day, None).unwrap(), f.store.load_recon_input(day, Some(&m2)).unwrap());
    for (a, b) in [(&with_chunks.0, &from_table.0), (&with_chunks.1, &from_table.1)] {
        assert_eq!(a.platform, b.platform);
        let ids = |x: &ReconInputData| x.platform.iter().map(|r| x.txn_id(r.id)).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b));
    }
}

/// Records stored one at a time (as terminals store them) are gathered into record chunks,
/// whole runs of 8,192 only, oldest first; a run then reads exactly what it read from the table.
#[test]
fn records_stored_one_at_a_time_are_sealed_into_chunks() {
    let f = fixture();
    let day = SettlementDate::parse("2026-11-25").unwrap();
    let total = 2 * 8192 + 1000;
    let txns: Vec<NewTxn> = (1..=total)
        .map(|n| {
            let time = format!("2026-11-25T{:02}:{:02}:{:02}+08:00", 8 + n / 3600, (n / 60) % 60, n % 60);
            purchase(n as u32, 1_000 + n as i64, &time)
        })
        .collect();
    for batch in txns.chunks(INGEST_BATCH_MAX) {
        ingest_ok(&f.store, batch.to_vec());
    }
    let c = raw_conn(&f.store);
    let chunks = |c: &rusqlite::Connection| -> Vec<(i64, i64)> {
        c.prepare("SELECT first_seq, last_seq FROM txn_record_chunks ORDER BY first_seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(chunks(&c).is_empty(), "records stored one at a time have no chunks");
    let from_table = f.store.load_recon_input(day, None).unwrap();
    assert_eq!(from_table.platform.len(), total);

    assert_eq!(f.store.seal_record_chunks(1).unwrap(), 1, "at most the number asked for");
    assert_eq!(f.store.seal_record_chunks(8).unwrap(), 1, "only whole runs");
    assert_eq!(f.store.seal_record_chunks(8).unwrap(), 0);
    assert_eq!(chunks(&c), vec![(1, 8192), (8193, 16384)]);

    let sealed = f.store.load_recon_input(day, None).unwrap();
    assert_eq!(sealed.platform, from_table.platform);
    let ids = |x: &ReconInputData| x.platform.iter().map(|r| x.txn_id(r.id)).collect::<Vec<_>>();
    assert_eq!(ids(&sealed), ids(&from_table));
    assert!(f.store.verify().unwrap().ok());
}

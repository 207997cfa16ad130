//! Settlement-date queries are served through the merchant + time index (there is no index on
//! settlement dates): they must answer exactly the rows a filter on the stored settlement date
//! gives, for merchants in far-apart zones, with cut-offs, across a DST change.

use std::collections::BTreeMap;

use super::*;

/// (merchant, zone, cut-off): Shanghai 23:00, Los Angeles 21:30 (DST ends 2026-11-01),
/// Kiritimati (UTC+14) on the natural day, Pago Pago (UTC-11) at 00:30.
const MERCHANTS: [(&str, &str, &str); 4] = [
    ("898310048990011", "Asia/Shanghai", "23:00"),
    ("898310048990012", "America/Los_Angeles", "21:30"),
    ("898310048990013", "Pacific/Kiritimati", "24:00"),
    ("898310048990014", "Pacific/Pago_Pago", "00:30"),
];

fn store_with_records() -> (Fixture, Vec<TxnRow>) {
    let f = fixture();
    for (m, zone, cutoff) in MERCHANTS {
        let clock = MerchantClock::new(zone, cutoff).unwrap();
        f.store.create_merchant(&NewMerchant { clock, ..NewMerchant::with_defaults(mid(m)) }, "test").unwrap();
        f.store.create_terminal(&NewTerminal { id: tid(T1), merchant_id: mid(m), master_key_hex: None }).unwrap();
    }
    // Every 61 minutes from 2026-10-29 to 2026-11-04 (UTC) for each merchant; every fifth a
    // WeChat payment (natural day), the rest card purchases (the merchant's cut-off).
    let start = at("2026-10-29T00:00:00Z");
    let mut batch = Vec::new();
    for (i, (m, _, _)) in MERCHANTS.iter().enumerate() {
        for k in 0..(6 * 24 * 60 / 61) as u32 {
            let n = k + 1 + i as u32 * 1000;
            let time = start + Duration::minutes(61 * i64::from(k) + i as i64 * 5);
            let card = NewTxn {
                merchant_id: mid(m),
                stan: Some(Stan::new(n).unwrap()),
                rrn: Some(Rrn::parse(&format!("{:012}", 900_000 + n)).unwrap()),
                amount: Amount::from_fen(100 + i64::from(n)).unwrap(),
                txn_time: time,
                ..purchase(n, 1, "2026-11-25T10:00:00+08:00")
            };
            batch.push(if k % 5 == 0 { wechat(card, format!("WX{n:020}")) } else { card });
        }
    }
    for chunk in batch.chunks(INGEST_BATCH_MAX) {
        f.store.ingest(chunk.to_vec(), IngestOptions::default()).unwrap();
    }
    let mut all = Vec::new();
    f.store
        .export_txns(&TxnQuery::default(), EXPORT_ROWS_MAX, &mut |r| {
            all.push(r.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(all.len(), batch.len());
    (f, all)
}

fn date(s: &str) -> SettlementDate {
    SettlementDate::parse(s).unwrap()
}

#[test]
fn settlement_date_lists_summaries_and_days_equal_a_filter_on_the_stored_date() {
    let (f, all) = store_with_records();
    let s = &f.store;
    let both = Scope { merchants: Some(vec![mid(MERCHANTS[1].0), mid(MERCHANTS[2].0)]), terminals: None };
    let mut scopes: Vec<(Scope, Option<MerchantId>)> = vec![(Scope::all(), None), (both, None)];
    for (m, _, _) in MERCHANTS {
        scopes.push((Scope::merchant(mid(m)), None));
        scopes.push((Scope::all(), Some(mid(m))));
    }
    let mut non_empty = 0;
    for first in 0..9 {
        for span in [0, 1, 3] {
            let from = date("2026-10-27").succ();
            let from = (0..first).fold(from, |d, _| d.succ());
            let to = (0..span).fold(from, |d, _| d.succ());
            for (scope, merchant) in &scopes {
                let q = TxnQuery {
                    scope: scope.clone(),
                    merchant_id: merchant.clone(),
                    range: TxnRange::SettlementDate { from, to },
                    limit: PAGE_LIMIT_MAX,
                    ..TxnQuery::default()
                };
                let mut want: Vec<&TxnRow> = all
                    .iter()
                    .filter(|r| scope.allows_merchant(&r.merchant_id) && merchant.as_ref().is_none_or(|m| *m == r.merchant_id))
                    .filter(|r| r.settlement_date >= from && r.settlement_date <= to)
                    .collect();
                want.sort_by_key(|r| std::cmp::Reverse((r.txn_time_us, r.seq)));
                let want_seqs: Vec<i64> = want.iter().map(|r| r.seq).collect();
                let what = format!("{from}..{to} scope {:?} merchant {merchant:?}", scope.merchants);

                let page = s.list_txns(&q).unwrap();
                assert!(want.len() < PAGE_LIMIT_MAX as usize, "one page holds them: {what}");
                assert_eq!(page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), want_seqs, "list {what}");

                let mut exported = Vec::new();
                s.export_txns(&q, EXPORT_ROWS_MAX, &mut |r| {
                    exported.push(r.seq);
                    Ok(())
                })
                .unwrap();
                assert_eq!(exported, want_seqs, "export {what}");

                let summary: u64 = s.summary(&q).unwrap().iter().map(|x| x.count).sum();
                assert_eq!(summary, want.len() as u64, "summary {what}");

                let days = s.settlements(scope, merchant.as_ref(), from, to).unwrap();
                let mut want_days: BTreeMap<SettlementDate, u64> = BTreeMap::new();
                for r in &want {
                    *want_days.entry(r.settlement_date).or_default() += 1;
                }
                let got_days: BTreeMap<SettlementDate, u64> = days.iter().map(|d| (d.settlement_date, d.record_count)).collect();
                assert_eq!(got_days, want_days, "settlements {what}");
                non_empty += usize::from(!want.is_empty());
            }
        }
    }
    assert!(non_empty > 100, "the ranges cover the records ({non_empty} non-empty answers)");
    // The cut-offs and zones matter: some records settle on the next local day.
    assert!(all.iter().any(|r| r.settlement_date.date() != r.local_time.date_naive()));
}

use proptest::prelude::*;
use recon::scenario::{generate, items_by_identifiers, ExpectedItem, Scenario, ScenarioRates};
use recon::{reconcile, Input, Outcome, ReconConfig};
use std::collections::BTreeMap;

fn run(s: &Scenario) -> (Vec<ExpectedItem>, Vec<recon::PlatformId>) {
    let input = Input {
        settlement_date: s.settlement_date,
        platform: &s.platform,
        clearing: &s.clearing,
        channels_with_clearing: &s.channels_with_clearing,
        config: ReconConfig::default(),
    };
    let report = reconcile(&input).unwrap();
    (items_by_identifiers(&report), report.pending.iter().map(|r| r.id).collect())
}

fn assert_matches_ground_truth(s: &Scenario) {
    let (mut got, mut pending) = run(s);
    let mut want = s.expected.clone();
    got.sort();
    want.sort();
    let wrong: Vec<_> = want.iter().zip(&got).filter(|(w, g)| w != g).take(5).collect();
    assert!(wrong.is_empty() && got.len() == want.len(), "first differences (want, got): {wrong:#?}; {} vs {} items", want.len(), got.len());
    let mut want_pending = s.expected_pending.clone();
    pending.sort();
    want_pending.sort();
    assert_eq!(pending, want_pending);
}

#[test]
fn every_outcome_is_found_exactly_at_default_rates() {
    let s = generate(7, 20_000, &ScenarioRates::default());
    let mut per_outcome: BTreeMap<Outcome, usize> = BTreeMap::new();
    for item in &s.expected {
        *per_outcome.entry(item.outcome).or_default() += 1;
    }
    for outcome in Outcome::ALL {
        assert!(per_outcome.get(&outcome).copied().unwrap_or(0) > 20, "{outcome} under-represented: {per_outcome:?}");
    }
    assert!(s.expected_pending.len() > 100);
    assert_matches_ground_truth(&s);
}

#[test]
fn heavy_injection_rates_are_still_exact() {
    let rates = ScenarioRates {
        matched_by_rrn: 0.06,
        matched_by_external_ref: 0.06,
        matched_by_fuzzy: 0.1,
        amount_mismatch: 0.06,
        missing_in_clearing: 0.06,
        missing_in_platform: 0.06,
        status_mismatch_declined: 0.04,
        status_mismatch_reversed: 0.04,
        status_mismatch_preauth: 0.04,
        void_not_in_clearing: 0.05,
        void_settled: 0.05,
        refund_settled: 0.05,
        duplicate_in_clearing: 0.06,
        date_shift_platform_side: 0.06,
        date_shift_clearing_side: 0.06,
        pending_channel: 0.04,
        declined_not_in_clearing: 0.05,
        adjacent_day_matched: 0.04,
    };
    for seed in [1, 2, 3] {
        assert_matches_ground_truth(&generate(seed, 3_000, &rates));
    }
}

#[test]
fn summary_counts_and_amounts_follow_the_items() {
    let s = generate(11, 2_000, &ScenarioRates::default());
    let input = Input {
        settlement_date: s.settlement_date,
        platform: &s.platform,
        clearing: &s.clearing,
        channels_with_clearing: &s.channels_with_clearing,
        config: ReconConfig::default(),
    };
    let report = reconcile(&input).unwrap();
    for outcome in Outcome::ALL {
        let items: Vec<_> = report.items.iter().filter(|i| i.outcome == outcome).collect();
        assert_eq!(report.summary.count(outcome), items.len() as u64, "{outcome}");
        let amount: i64 = items.iter().map(|i| i.platform.map(|p| p.amount).or(i.clearing.map(|c| c.amount)).unwrap().fen()).sum();
        assert_eq!(report.summary.amount_fen(outcome), amount, "{outcome}");
    }
    assert_eq!(report.pending_channels, vec![domain::Channel::Alipay]);
    assert_eq!(report.summary.pending_count, s.expected_pending.len() as u64);
}

fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_either_side_changes_nothing(scenario_seed in 0u64..1_000, platform_seed: u64, clearing_seed: u64) {
        let rates = ScenarioRates { duplicate_in_clearing: 0.05, matched_by_fuzzy: 0.1, ..ScenarioRates::default() };
        let s = generate(scenario_seed, 300, &rates);
        let (before, pending_before) = run(&s);
        let mut shuffled = s.clone();
        shuffle(&mut shuffled.platform, platform_seed);
        shuffle(&mut shuffled.clearing, clearing_seed);
        let (after, pending_after) = run(&shuffled);
        prop_assert_eq!(before, after);
        prop_assert_eq!(pending_before, pending_after);
    }
}

/// The matching passes split their work by key into partitions shared among threads: any
/// number of threads gives the same items in the same order, even where many records compete
/// for the same rows.
#[test]
fn the_thread_count_changes_nothing() {
    let rates = ScenarioRates { duplicate_in_clearing: 0.08, matched_by_fuzzy: 0.12, date_shift_platform_side: 0.08, ..ScenarioRates::default() };
    let s = generate(5, 20_000, &rates);
    let run_with = |threads: usize| {
        let input = Input {
            settlement_date: s.settlement_date,
            platform: &s.platform,
            clearing: &s.clearing,
            channels_with_clearing: &s.channels_with_clearing,
            config: ReconConfig { threads, ..ReconConfig::default() },
        };
        let report = reconcile(&input).unwrap();
        let passes: Vec<_> = report.items.iter().map(|i| i.match_pass).collect();
        (items_by_identifiers(&report), passes, report.summary)
    };
    let one = run_with(1);
    assert!(one.0.len() > 19_000);
    for threads in [2, 5] {
        assert!(run_with(threads) == one, "{threads} threads");
    }
    assert_matches_ground_truth(&s);
}

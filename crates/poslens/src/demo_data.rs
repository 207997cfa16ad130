//! Realistic generated data for `poslens demo`: merchants (one frozen), terminals, and 60 days
//! of transactions with intraday peaks, declines with real response codes, voids, refunds,
//! reversals, pre-authorisations with completions, card and QR channels, and traffic around the
//! 23:00 cut-off. Seeded, so every fresh demo shows the same shop.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct DemoMerchant {
    pub id: &'static str,
    pub name: &'static str,
    pub name_en: &'static str,
    pub mcc: &'static str,
    pub frozen: bool,
    pub terminals: &'static [&'static str],
    /// Relative daily volume.
    pub weight: u32,
}

pub const MERCHANTS: &[DemoMerchant] = &[
    DemoMerchant { id: "898310048990001", name: "静安咖啡馆", name_en: "Jing'an Cafe", mcc: "5814", frozen: false, terminals: &["10000001", "10000002", "10000003"], weight: 4 },
    DemoMerchant { id: "898110058120002", name: "朝阳便利店", name_en: "Chaoyang Convenience Store", mcc: "5411", frozen: false, terminals: &["20000001", "20000002", "20000003"], weight: 5 },
    DemoMerchant { id: "898440358120003", name: "南山海鲜酒家", name_en: "Nanshan Seafood Restaurant", mcc: "5812", frozen: false, terminals: &["30000001", "30000002"], weight: 3 },
    DemoMerchant { id: "898330158120004", name: "西湖精品酒店", name_en: "West Lake Boutique Hotel", mcc: "7011", frozen: true, terminals: &["40000001", "40000002"], weight: 1 },
];

/// One ingest object, as the JSON Lines import and `POST /transactions` carry it.
#[derive(Debug, Clone, Default)]
pub struct DemoTxn {
    pub merchant_id: String,
    pub terminal_id: Option<String>,
    pub batch_no: Option<String>,
    pub stan: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub kind: &'static str,
    pub channel: &'static str,
    pub pan: Option<String>,
    pub amount_fen: i64,
    pub response_code: &'static str,
    pub txn_time: DateTime<Utc>,
    pub original_batch_stan: Option<(String, String)>,
    pub original_rrn: Option<String>,
    pub reversal: bool,
    pub external_ref: Option<String>,
}

/// Transactions per hour of day (local), a shop's day: breakfast, lunch, dinner, a late tail
/// that crosses the 23:00 cut-off.
const HOURLY_WEIGHT: [u32; 24] = [2, 1, 0, 0, 0, 1, 3, 8, 14, 10, 9, 16, 22, 18, 9, 8, 10, 14, 20, 22, 15, 10, 8, 6];
const BINS: &[&str] = &["622202", "621700", "622848", "436742", "625807", "622588"];
const DECLINES: &[(&str, u32)] = &[("51", 45), ("55", 25), ("05", 12), ("14", 6), ("54", 6), ("61", 6)];

struct TerminalState {
    merchant: usize,
    id: &'static str,
    stan: u32,
    batch: u32,
    batch_day: Option<NaiveDate>,
}

pub struct Generator {
    rng: StdRng,
    rrn_seq: u64,
    qr_seq: u64,
    pub out: Vec<DemoTxn>,
}

fn luhn_complete(body: &str) -> String {
    (0..10).map(|d| format!("{body}{d}")).find(|c| domain::luhn_valid(c)).expect("one check digit fits")
}

impl Generator {
    /// `days` days ending on `today` (local, Asia/Shanghai), about `per_day` transactions a day.
    pub fn generate(seed: u64, today: NaiveDate, days: u32, per_day: u32) -> Vec<DemoTxn> {
        let mut g = Generator { rng: StdRng::seed_from_u64(seed), rrn_seq: 0, qr_seq: 0, out: Vec::new() };
        let mut terminals: Vec<TerminalState> = MERCHANTS
            .iter()
            .enumerate()
            .flat_map(|(m, dm)| dm.terminals.iter().map(move |t| TerminalState { merchant: m, id: t, stan: 0, batch: 0, batch_day: None }))
            .collect();
        let total_weight: u32 = MERCHANTS.iter().map(|m| m.weight * m.terminals.len() as u32).sum();
        let tz = chrono_tz::Asia::Shanghai;
        for day_offset in (0..days).rev() {
            let day = today - Duration::days(i64::from(day_offset));
            let weekend = matches!(chrono::Datelike::weekday(&day), chrono::Weekday::Sat | chrono::Weekday::Sun);
            for t in terminals.iter_mut() {
                let m = &MERCHANTS[t.merchant];
                // The frozen hotel stopped trading ten days ago.
                if m.frozen && day_offset < 10 {
                    continue;
                }
                let mut n = per_day * m.weight / total_weight;
                if weekend {
                    n = n * 13 / 10;
                }
                // Each terminal settles once a day, so each day is a new batch.
                if t.batch_day != Some(day) {
                    t.batch += 1;
                    t.batch_day = Some(day);
                }
                let mut times: Vec<DateTime<Utc>> = (0..n)
                    .map(|_| {
                        let hour = g.pick_weighted(&HOURLY_WEIGHT);
                        let secs = hour as u32 * 3600 + g.rng.gen_range(0..3600);
                        let local = day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).expect("< 86400"));
                        tz.from_local_datetime(&local).earliest().expect("Shanghai has no gaps").with_timezone(&Utc)
                    })
                    .collect();
                // A cluster right around the cut-off, the classic "where did my 23:05 sale go".
                for _ in 0..2 {
                    let secs = 22 * 3600 + 50 * 60 + g.rng.gen_range(0..1200);
                    let local = day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).expect("< 86400"));
                    times.push(tz.from_local_datetime(&local).earliest().expect("no gaps").with_timezone(&Utc));
                }
                times.sort();
                for at in times {
                    g.one(t, at, m);
                }
            }
        }
        g.out.sort_by_key(|t| t.txn_time);
        g.out
    }

    fn pick_weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.rng.gen_range(0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    fn next_rrn(&mut self) -> String {
        self.rrn_seq += 1;
        format!("{:012}", 100_000_000_000 + self.rrn_seq)
    }

    fn amount(&mut self, m: &DemoMerchant) -> i64 {
        let (lo, hi) = match m.mcc {
            "5814" => (1_200, 9_800),
            "5411" => (350, 15_000),
            "5812" => (8_000, 120_000),
            _ => (30_000, 260_000),
        };
        // Prices end in round yuan more often than not.
        let a = self.rng.gen_range(lo..hi);
        if self.rng.gen_bool(0.6) { a / 100 * 100 } else { a }
    }

    fn one(&mut self, t: &mut TerminalState, at: DateTime<Utc>, m: &DemoMerchant) {
        let channel = match self.rng.gen_range(0..100) {
            0..=49 => "card",
            50..=74 => "wechat",
            75..=94 => "alipay",
            _ => "unionpay_qr",
        };
        let amount = self.amount(m);
        let declined = self.rng.gen_range(0..100) < 4;
        let response_code = if declined { DECLINES[self.pick_weighted(&DECLINES.iter().map(|d| d.1).collect::<Vec<_>>())].0 } else { "00" };
        let hotel = m.mcc == "7011";
        let kind = if hotel && channel == "card" && self.rng.gen_bool(0.4) { "preauth" } else { "purchase" };
        let mut txn = DemoTxn {
            merchant_id: m.id.to_owned(),
            kind,
            channel,
            amount_fen: amount,
            response_code,
            txn_time: at,
            ..DemoTxn::default()
        };
        if channel == "card" {
            t.stan = t.stan % 999_999 + 1;
            txn.terminal_id = Some(t.id.to_owned());
            txn.batch_no = Some(format!("{:06}", t.batch));
            txn.stan = Some(format!("{:06}", t.stan));
            let bin = BINS[self.rng.gen_range(0..BINS.len())];
            let len = if self.rng.gen_bool(0.8) { 16 } else { 19 };
            let body: String = (0..len - 7).map(|_| char::from(b'0' + self.rng.gen_range(0..10u8))).collect();
            let mut pan = luhn_complete(&format!("{bin}{body}"));
            if response_code == "14" {
                // An invalid card number: break the check digit.
                let last = pan.pop().expect("non-empty");
                pan.push(if last == '9' { '0' } else { char::from(last as u8 + 1) });
            }
            txn.pan = Some(pan);
            txn.rrn = Some(self.next_rrn());
            if !declined {
                txn.auth_code = Some(format!("{:06}", self.rng.gen_range(0..1_000_000)));
            }
        } else {
            self.qr_seq += 1;
            let prefix = match channel {
                "wechat" => "4200",
                "alipay" => "2088",
                _ => "6200",
            };
            txn.terminal_id = Some(t.id.to_owned());
            txn.external_ref = Some(format!("{prefix}{}{:010}", at.format("%Y%m%d"), self.qr_seq));
            txn.rrn = Some(self.next_rrn());
            if !declined {
                txn.auth_code = Some(format!("{:06}", self.rng.gen_range(0..1_000_000)));
            }
        }
        let base = txn.clone();
        self.out.push(txn);
        if declined {
            return;
        }
        let roll = self.rng.gen_range(0..1000);
        if channel == "card" && kind == "purchase" && roll < 15 {
            // Voided minutes later on the same terminal and batch.
            let later = at + Duration::minutes(self.rng.gen_range(1..20));
            let mut v = self.follow_up(t, &base, "void", later);
            v.amount_fen = base.amount_fen;
            self.out.push(v);
        } else if channel == "card" && kind == "purchase" && roll < 20 {
            // Terminal timed out: reversal of the purchase itself.
            let mut r = base.clone();
            r.reversal = true;
            r.original_batch_stan = Some((base.batch_no.clone().expect("card"), base.stan.clone().expect("card")));
            r.txn_time = at + Duration::seconds(self.rng.gen_range(40..90));
            r.auth_code = None;
            self.out.push(r);
        } else if kind == "purchase" && roll < 32 {
            // Refunded days later, in part or in full.
            let later = at + Duration::days(self.rng.gen_range(1..5)) + Duration::minutes(self.rng.gen_range(0..300));
            let mut r = self.follow_up(t, &base, "refund", later);
            r.amount_fen = if self.rng.gen_bool(0.5) { base.amount_fen } else { (base.amount_fen / 2).max(1) };
            r.auth_code = None;
            self.out.push(r);
        } else if kind == "preauth" {
            let later = at + Duration::hours(self.rng.gen_range(12..72));
            let mut c = self.follow_up(t, &base, "preauth_completion", later);
            c.amount_fen = base.amount_fen * self.rng.gen_range(90..=115) / 100;
            c.auth_code = base.auth_code.clone();
            self.out.push(c);
        }
    }

    fn follow_up(&mut self, t: &mut TerminalState, orig: &DemoTxn, kind: &'static str, at: DateTime<Utc>) -> DemoTxn {
        let mut f = DemoTxn { kind, txn_time: at, ..orig.clone() };
        f.reversal = false;
        if orig.channel == "card" {
            t.stan = t.stan % 999_999 + 1;
            f.stan = Some(format!("{:06}", t.stan));
            f.rrn = Some(self.next_rrn());
            if kind == "refund" {
                f.original_rrn = orig.rrn.clone();
            } else {
                f.original_batch_stan = Some((orig.batch_no.clone().expect("card"), orig.stan.clone().expect("card")));
            }
        } else {
            self.qr_seq += 1;
            f.external_ref = Some(format!("{}R{:09}", &orig.external_ref.as_deref().unwrap_or("QR")[..4], self.qr_seq));
            f.rrn = Some(self.next_rrn());
            f.original_rrn = orig.rrn.clone();
        }
        f
    }
}

/// The demo's reference date: data ends on the machine's today in Shanghai.
pub fn shanghai_today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&chrono_tz::Asia::Shanghai).date_naive()
}

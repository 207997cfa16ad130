//! `poslens demo`: one command to a running system on generated data.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use domain::{Amount, BatchNo, MerchantClock, MerchantId, MerchantStatus, Role, Secret, TerminalId};
use store::{
    BulkLine, BulkOptions, IngestObject, MerchantRepo, NewMerchant, NewTerminal, NewUser, Scope, TerminalRepo, TerminalSync, TxnRepo,
    UserRepo,
};

use crate::demo_data::{shanghai_today, DemoTxn, Generator, MERCHANTS};

pub const DEMO_PASSWORD: &str = "poslens-demo";
pub const DEMO_SEED: u64 = 20_261_125;
pub const DEMO_DAYS: u32 = 60;
/// About 950 a day over 60 days: comfortably above 50,000 records.
pub const DEMO_PER_DAY: u32 = 950;

pub fn run(data: &Path, http: &str, pos: &str) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (store, card_key) = crate::open_store(data)?;
    if store.list_merchants(&Scope::all())?.is_empty() {
        eprintln!("poslens demo: generating {DEMO_DAYS} days of data in {} …", data.display());
        seed(&store, &card_key)?;
    } else {
        eprintln!("poslens demo: reusing the data in {}", data.display());
    }
    let cfg = crate::server::Config { http: http.to_owned(), pos: pos.to_owned(), secure_cookies: false };
    crate::server::serve(store, card_key, &cfg, |addr, pos| {
        println!();
        println!("poslens is running ({:.1} s to start)", started.elapsed().as_secs_f64());
        println!("  web portal and API   http://{addr}/   (API under /api/v1, OpenAPI at /api/v1/openapi.json)");
        println!("  POS front end        {pos} (ISO 8583; try: poslens terminal-sim --addr {pos})");
        println!("  logins (password {DEMO_PASSWORD}):");
        println!("    demo-merchant  商户管理员 merchant admin of {}", MERCHANTS[0].id);
        println!("    demo-staff     商户员工 merchant staff, terminals {}", MERCHANTS[0].terminals[..2].join(", "));
        println!("    demo-bank      银行运营 bank operator");
        println!("    demo-auditor   审计 auditor");
        println!("    demo-admin     系统管理员 administrator");
        println!("  stop with Ctrl-C; the next start reuses the data");
    })
}

fn ingest_object(t: &DemoTxn) -> IngestObject {
    IngestObject {
        merchant_id: Some(t.merchant_id.clone()),
        terminal_id: t.terminal_id.clone(),
        batch_no: t.batch_no.clone(),
        stan: t.stan.clone(),
        rrn: t.rrn.clone(),
        auth_code: t.auth_code.clone(),
        kind: Some(t.kind.to_owned()),
        channel: Some(t.channel.to_owned()),
        pan: t.pan.clone().map(Secret::new),
        card_masked: None,
        amount_fen: Some(t.amount_fen),
        currency: Some("CNY".into()),
        response_code: Some(t.response_code.to_owned()),
        txn_time: Some(t.txn_time.to_rfc3339()),
        original_batch_no: t.original_batch_stan.as_ref().map(|(b, _)| b.clone()),
        original_stan: t.original_batch_stan.as_ref().map(|(_, s)| s.clone()),
        original_rrn: t.original_rrn.clone(),
        reversal: Some(t.reversal),
        external_ref: t.external_ref.clone(),
    }
}

/// Creates the demo merchants, terminals, users and transactions.
pub fn seed(store: &store::SqliteStore, card_key: &domain::CardKey) -> anyhow::Result<()> {
    for m in MERCHANTS {
        store.create_merchant(
            &NewMerchant {
                id: MerchantId::parse(m.id)?,
                name_zh: m.name.into(),
                name_en: Some(m.name_en.into()),
                mcc: Some(m.mcc.into()),
                clock: MerchantClock::default(),
                single_txn_limit: Some(Amount::from_fen(5_000_000)?),
                wechat_sub_mch_id: Some(format!("1900{}", &m.id[9..])),
                alipay_id: Some(format!("2088{}", &m.id[3..])),
            },
            "demo",
        )?;
        for t in m.terminals {
            store.create_terminal(&NewTerminal { id: TerminalId::parse(t)?, merchant_id: MerchantId::parse(m.id)?, master_key_hex: None })?;
        }
    }
    let hash = api::auth::hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    let first = MerchantId::parse(MERCHANTS[0].id)?;
    let users: [(&str, Role, Option<MerchantId>, Vec<TerminalId>); 5] = [
        ("demo-merchant", Role::MerchantAdmin, Some(first.clone()), vec![]),
        ("demo-staff", Role::MerchantStaff, Some(first), MERCHANTS[0].terminals[..2].iter().map(|t| TerminalId::parse(t)).collect::<Result<_, _>>()?),
        ("demo-bank", Role::BankOperator, None, vec![]),
        ("demo-auditor", Role::Auditor, None, vec![]),
        ("demo-admin", Role::Admin, None, vec![]),
    ];
    for (name, role, merchant_id, terminals) in users {
        store.create_user(&NewUser { username: name.into(), role, merchant_id, terminals, password_hash: hash.clone() })?;
    }
    let txns = Generator::generate(DEMO_SEED, shanghai_today(Utc::now()), DEMO_DAYS, DEMO_PER_DAY);
    let n = txns.len();
    let mut lines = txns.iter().enumerate().map(|(i, t)| BulkLine { line_no: i as u64 + 1, object: Ok(ingest_object(t)) });
    let report = store
        .bulk_ingest(&mut lines, card_key, domain::Source::Iso8583, BulkOptions::default(), &mut |_| {})
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("storing the generated transactions")?;
    // Each terminal settled its last generated batch and opens the next one, so a terminal
    // (or `terminal-sim`) signing on continues from there instead of reusing old batch/STANs.
    let mut last: std::collections::BTreeMap<(String, String), (u32, chrono::DateTime<Utc>)> = std::collections::BTreeMap::new();
    for t in &txns {
        if let (Some(tid), Some(batch)) = (&t.terminal_id, &t.batch_no) {
            let b: u32 = batch.parse().unwrap_or(0);
            let e = last.entry((t.merchant_id.clone(), tid.clone())).or_insert((b, t.txn_time));
            *e = (e.0.max(b), e.1.max(t.txn_time));
        }
    }
    for ((mid, tid), (batch, at)) in last {
        store.update_terminal_sync(
            &MerchantId::parse(&mid)?,
            &TerminalId::parse(&tid)?,
            &TerminalSync {
                open_batch: Some(BatchNo::new(batch)?.next()),
                last_seen_at: Some(at),
                last_sign_on_at: Some(at),
                last_settlement: Some((at, "balanced".into())),
            },
        )?;
    }
    for m in MERCHANTS.iter().filter(|m| m.frozen) {
        store.set_merchant_status(&MerchantId::parse(m.id)?, MerchantStatus::Frozen, "风险核查中 / under risk review", "demo", Utc::now())?;
    }
    eprintln!("poslens demo: {n} transactions generated, {} stored", report.inserted);
    Ok(())
}

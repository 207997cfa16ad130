//! End-to-end tests of the POS front end: a real listener on 127.0.0.1 (port 0) over a store in
//! a temporary directory, driven by the simulator's [`Terminal`] one message at a time.

mod flows;
mod robustness;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::{Amount, MerchantClock, MerchantId, MerchantStatus, TerminalId};
use iso8583::{FinancialKind, FinancialRequest, Message};
use pos::sim::{card_number, Terminal};
use pos::{Host, HostConfig, Limits};
use store::{
    MerchantRepo, NewMerchant, NewTerminal, Scope, SqliteStore, StoreConfig, TerminalRepo, TerminalStatus, TxnQuery,
    TxnRepo, TxnRow,
};
use tempfile::TempDir;

pub const MID: &str = "898310048990001";
pub const MID_FROZEN: &str = "898310048990002";
pub const MID_OTHER: &str = "898310048990003";
/// Plain terminal of MID.
pub const TID: &str = "10000001";
/// Keyed terminal of MID.
pub const TID_KEYED: &str = "10000002";
pub const TID_DISABLED: &str = "10000003";
/// A second plain terminal of MID (refunds on another terminal, settlement).
pub const TID_2: &str = "10000004";
pub const TID_FROZEN: &str = "20000001";
pub const TID_OTHER: &str = "30000001";
pub const TMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
/// MID's single-transaction limit.
pub const LIMIT_FEN: i64 = 1_000_000;

pub struct Env {
    pub dir: TempDir,
    pub store: SqliteStore,
    pub host: Arc<Host>,
    pub addr: String,
    _listener: pos::Listener,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(Limits {
            idle_timeout: Duration::from_secs(5),
            frame_read_timeout: Duration::from_millis(700),
            ..Limits::default()
        })
        .await
    }

    pub async fn start_with(limits: Limits) -> Env {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("POSLENS_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path(), StoreConfig::default()).expect("store");
        let card_key = store::card_key(dir.path()).expect("card key");
        let mk = |id: &str, limit: Option<i64>| NewMerchant {
            single_txn_limit: limit.map(|l| Amount::from_fen(l).unwrap()),
            clock: MerchantClock::default(),
            ..NewMerchant::with_defaults(MerchantId::parse(id).unwrap())
        };
        store.create_merchant(&mk(MID, Some(LIMIT_FEN)), "test").unwrap();
        store.create_merchant(&mk(MID_FROZEN, None), "test").unwrap();
        store.create_merchant(&mk(MID_OTHER, None), "test").unwrap();
        let term = |id: &str, mid: &str, key: Option<&str>| NewTerminal {
            id: TerminalId::parse(id).unwrap(),
            merchant_id: MerchantId::parse(mid).unwrap(),
            master_key_hex: key.map(str::to_owned),
        };
        for t in [
            term(TID, MID, None),
            term(TID_KEYED, MID, Some(TMK_HEX)),
            term(TID_DISABLED, MID, None),
            term(TID_2, MID, None),
            term(TID_FROZEN, MID_FROZEN, None),
            term(TID_OTHER, MID_OTHER, None),
        ] {
            store.create_terminal(&t).unwrap();
        }
        store
            .set_terminal_status(&MerchantId::parse(MID).unwrap(), &TerminalId::parse(TID_DISABLED).unwrap(), TerminalStatus::Disabled)
            .unwrap();
        store
            .set_merchant_status(&MerchantId::parse(MID_FROZEN).unwrap(), MerchantStatus::Frozen, "test", "test", Utc::now())
            .unwrap();
        let host = Arc::new(Host::open(store.clone(), card_key, HostConfig::new(dir.path())).expect("host"));
        let listener = pos::spawn("127.0.0.1:0", host.clone(), limits).await.expect("listen");
        let addr = listener.local_addr.to_string();
        Env { dir, store, host, addr, _listener: listener }
    }

    pub async fn terminal(&self, tid: &str, mid: &str) -> Terminal {
        let mut t = Terminal::connect(&self.addr, tid, mid).await.expect("connect");
        t.reply_timeout = Duration::from_secs(5);
        t
    }

    /// A plain terminal of MID, signed on.
    pub async fn signed_on(&self, tid: &str) -> Terminal {
        let mut t = self.terminal(tid, MID).await;
        t.sign_on().await.expect("sign-on");
        t
    }

    /// Every record of a terminal (blocking store call; fine in tests).
    pub fn rows(&self, tid: &str) -> Vec<TxnRow> {
        let q = TxnQuery { terminal_ids: vec![TerminalId::parse(tid).unwrap()], limit: 500, ..TxnQuery::default() };
        self.store.list_txns(&q).expect("list").rows
    }

    pub fn terminal_row(&self, tid: &str, mid: &str) -> store::Terminal {
        self.store
            .get_terminal(&MerchantId::parse(mid).unwrap(), &TerminalId::parse(tid).unwrap())
            .unwrap()
            .unwrap()
    }

    pub fn verify_ok(&self) {
        let r = self.store.verify().expect("verify");
        assert!(r.ok(), "chain break: {:?}", r.first_break);
    }

    #[allow(dead_code)]
    pub fn scope() -> Scope {
        Scope::all()
    }
}

pub fn code(m: &Message) -> &str {
    m.get_str(39).unwrap_or("")
}

/// Sends a financial request and returns the reply.
pub async fn ask(t: &mut Terminal, f: &FinancialRequest) -> Message {
    let m = t.message(f).expect("build");
    t.round_trip(&m).await.expect("reply")
}

/// A purchase of `amount_fen` with a card ending in `last4`; returns request and reply.
pub async fn purchase(t: &mut Terminal, last4: &str, amount_fen: u64) -> (FinancialRequest, Message, String) {
    let pan = card_number(u64::from(t.stan) + 7, last4);
    let f = t.financial(FinancialKind::Purchase, &pan, Some(amount_fen));
    let r = ask(t, &f).await;
    (f, r, pan)
}

//! SQLite implementation of the POS front end's discrepancies (`pos_discrepancies`, migration
//! 0005) and the per-terminal sync counts the API serves.

use chrono::{DateTime, Utc};
use domain::{BatchNo, MerchantId, TerminalId};
use rusqlite::types::Value;
use rusqlite::Row;

use super::{from_us, ids, SqliteStore};
use crate::model::{Scope, TxnId, PAGE_LIMIT_MAX};
use crate::repo_pos::*;
use crate::StoreError;

const COLUMNS: &str = "d.id, d.merchant_id, d.terminal_id, d.batch_no, d.stan, d.kind, d.terminal_amount_fen, \
     d.host_amount_fen, d.card_bin, d.card_last4, d.txn_seq, d.detail, d.recorded_at_us, r.received_at_us";

fn corrupt(column: &'static str, value: impl ToString) -> StoreError {
    StoreError::Corrupt { column, value: value.to_string() }
}

struct Raw {
    id: i64,
    merchant_id: String,
    terminal_id: String,
    batch_no: i64,
    stan: Option<i64>,
    kind: String,
    terminal_amount_fen: Option<i64>,
    host_amount_fen: Option<i64>,
    card_bin: Option<String>,
    card_last4: Option<String>,
    txn_seq: Option<i64>,
    detail: Option<String>,
    recorded_at_us: i64,
    received_at_us: Option<i64>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        terminal_id: r.get(2)?,
        batch_no: r.get(3)?,
        stan: r.get(4)?,
        kind: r.get(5)?,
        terminal_amount_fen: r.get(6)?,
        host_amount_fen: r.get(7)?,
        card_bin: r.get(8)?,
        card_last4: r.get(9)?,
        txn_seq: r.get(10)?,
        detail: r.get(11)?,
        recorded_at_us: r.get(12)?,
        received_at_us: r.get(13)?,
    })
}

fn finish(r: Raw) -> Result<PosDiscrepancy, StoreError> {
    let txn_id = match (r.txn_seq, r.received_at_us) {
        (Some(seq), Some(us)) => Some(TxnId(ids::encode(us.div_euclid(1000), seq))),
        _ => None,
    };
    Ok(PosDiscrepancy {
        id: r.id,
        txn_id,
        content: NewPosDiscrepancy {
            merchant_id: MerchantId::parse(&r.merchant_id).map_err(|_| corrupt("pos_discrepancies.merchant_id", &r.merchant_id))?,
            terminal_id: TerminalId::parse(&r.terminal_id).map_err(|_| corrupt("pos_discrepancies.terminal_id", &r.terminal_id))?,
            batch_no: u32::try_from(r.batch_no).map_err(|_| corrupt("pos_discrepancies.batch_no", r.batch_no))?,
            stan: r.stan.map(|s| u32::try_from(s).map_err(|_| corrupt("pos_discrepancies.stan", s))).transpose()?,
            kind: PosDiscrepancyKind::parse(&r.kind).ok_or_else(|| corrupt("pos_discrepancies.kind", &r.kind))?,
            terminal_amount_fen: r.terminal_amount_fen,
            host_amount_fen: r.host_amount_fen,
            card_bin: r.card_bin,
            card_last4: r.card_last4,
            txn_seq: r.txn_seq,
            detail: r.detail,
            recorded_at: from_us(r.recorded_at_us),
        },
    })
}

/// `WHERE` terms and parameters for a scope plus an optional merchant and terminal.
fn filter(scope: &Scope, merchant_id: Option<&MerchantId>, terminal_id: Option<&TerminalId>) -> (String, Vec<Value>) {
    let mut terms = vec!["1 = 1".to_owned()];
    let mut params: Vec<Value> = Vec::new();
    let mut in_list = |column: &str, values: Vec<String>, terms: &mut Vec<String>| {
        if values.is_empty() {
            terms.push("0 = 1".to_owned());
            return;
        }
        let marks: Vec<String> = values
            .into_iter()
            .map(|v| {
                params.push(Value::Text(v));
                format!("?{}", params.len())
            })
            .collect();
        terms.push(format!("{column} IN ({})", marks.join(",")));
    };
    if let Some(ms) = &scope.merchants {
        in_list("d.merchant_id", ms.iter().map(|m| m.as_str().to_owned()).collect(), &mut terms);
    }
    if let Some(ts) = &scope.terminals {
        in_list("d.terminal_id", ts.iter().map(|t| t.as_str().to_owned()).collect(), &mut terms);
    }
    if let Some(m) = merchant_id {
        in_list("d.merchant_id", vec![m.as_str().to_owned()], &mut terms);
    }
    if let Some(t) = terminal_id {
        in_list("d.terminal_id", vec![t.as_str().to_owned()], &mut terms);
    }
    (terms.join(" AND "), params)
}

impl PosRepo for SqliteStore {
    fn record_discrepancies(&self, ds: Vec<NewPosDiscrepancy>) -> Result<(), StoreError> {
        if ds.is_empty() {
            return Ok(());
        }
        self.write(move |ctx| {
            let mut st = ctx.conn.prepare_cached(
                "INSERT INTO pos_discrepancies (merchant_id, terminal_id, batch_no, stan, kind, terminal_amount_fen, \
                 host_amount_fen, card_bin, card_last4, txn_seq, detail, recorded_at_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for d in &ds {
                st.execute(rusqlite::params![
                    d.merchant_id.as_str(),
                    d.terminal_id.as_str(),
                    i64::from(d.batch_no),
                    d.stan.map(i64::from),
                    d.kind.as_str(),
                    d.terminal_amount_fen,
                    d.host_amount_fen,
                    d.card_bin,
                    d.card_last4,
                    d.txn_seq,
                    d.detail,
                    d.recorded_at.timestamp_micros(),
                ])?;
            }
            Ok(())
        })
    }

    fn list_discrepancies(
        &self,
        scope: &Scope,
        merchant_id: Option<&MerchantId>,
        terminal_id: Option<&TerminalId>,
        limit: u32,
    ) -> Result<Vec<PosDiscrepancy>, StoreError> {
        let (cond, mut params) = filter(scope, merchant_id, terminal_id);
        params.push(Value::Integer(i64::from(limit.clamp(1, PAGE_LIMIT_MAX))));
        let sql = format!(
            "SELECT {COLUMNS} FROM pos_discrepancies d LEFT JOIN txn_records r ON r.seq = d.txn_seq \
             WHERE {cond} ORDER BY d.id DESC LIMIT ?{}",
            params.len()
        );
        self.read(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(params), raw)?;
            rows.map(|r| finish(r?)).collect()
        })
    }

    fn discrepancy_counts(&self, scope: &Scope, merchant_id: Option<&MerchantId>) -> Result<Vec<PosDiscrepancyCount>, StoreError> {
        let (cond, params) = filter(scope, merchant_id, None);
        let sql = format!(
            "SELECT d.merchant_id, d.terminal_id, d.kind, COUNT(*) FROM pos_discrepancies d WHERE {cond} \
             GROUP BY d.merchant_id, d.terminal_id, d.kind ORDER BY d.merchant_id, d.terminal_id, d.kind"
        );
        self.read(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(params), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })?;
            rows.map(|r| {
                let (m, t, k, n) = r?;
                Ok(PosDiscrepancyCount {
                    merchant_id: MerchantId::parse(&m).map_err(|_| corrupt("pos_discrepancies.merchant_id", &m))?,
                    terminal_id: TerminalId::parse(&t).map_err(|_| corrupt("pos_discrepancies.terminal_id", &t))?,
                    kind: PosDiscrepancyKind::parse(&k).ok_or_else(|| corrupt("pos_discrepancies.kind", &k))?,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
        })
    }

    fn unsettled_older_than(
        &self,
        merchant_id: &MerchantId,
        terminal_id: &TerminalId,
        open_batch: BatchNo,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (m, t) = (merchant_id.as_str().to_owned(), terminal_id.as_str().to_owned());
        let (batch, before_us) = (i64::from(open_batch.get()), before.timestamp_micros());
        self.read(move |c| {
            // `channel = 'card'` lets the card idempotency index (merchant, terminal, batch, …)
            // find the batch; only card records have a terminal batch.
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM txn_records r JOIN txn_status s ON s.seq = r.seq \
                 WHERE r.channel = 'card' AND r.merchant_id = ?1 AND r.terminal_id = ?2 AND r.batch_no = ?3 \
                 AND r.reversal = 0 AND s.status = 'approved' \
                 AND r.kind IN ('purchase', 'preauth_completion', 'refund') AND r.txn_time_us < ?4",
                rusqlite::params![m, t, batch, before_us],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

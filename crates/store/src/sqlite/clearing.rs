//! Clearing-file imports: one writer job per file, fed in chunks, one commit at the end. The
//! rows are stored as compact chunks (see `chunks`).

pub(crate) mod chunks;

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::sync_channel;

use chrono::{Datelike, NaiveDate};
use domain::{Channel, SettlementDate};
use rusqlite::{params, Connection, OptionalExtension};

use super::{from_us, now_us, SqliteStore, WriterCtx};
use crate::error::StoreError;
use crate::repo_recon::{
    ClearingFileInfo, ClearingImport, ClearingImportError, ClearingMsg, ClearingRepo, ClearingStatusEntry,
    NewClearingFile, NewClearingRow, RECON_CHUNKS_IN_FLIGHT,
};

pub(crate) fn date_to_int(d: SettlementDate) -> i64 {
    let n = d.date();
    i64::from(n.year()) * 10_000 + i64::from(n.month()) * 100 + i64::from(n.day())
}

pub(crate) fn int_to_date(v: i64) -> Result<SettlementDate, StoreError> {
    let y = i32::try_from(v / 10_000).ok();
    y.and_then(|y| NaiveDate::from_ymd_opt(y, ((v / 100) % 100) as u32, (v % 100) as u32))
        .map(SettlementDate::new)
        .ok_or(StoreError::Corrupt { column: "settlement_date", value: v.to_string() })
}

const FILE_COLS: &str = "f.id, f.sha256, f.name, f.profile, f.actor, f.imported_at_us, f.rows, f.bad_rows, f.superseded_by, \
     (SELECT o.id FROM clearing_files o WHERE o.superseded_by = f.id)";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClearingFileInfo> {
    Ok(ClearingFileInfo {
        id: r.get(0)?,
        sha256_hex: r.get(1)?,
        name: r.get(2)?,
        profile: r.get(3)?,
        actor: r.get(4)?,
        imported_at: from_us(r.get(5)?),
        rows: r.get::<_, i64>(6)? as u64,
        bad_rows: r.get::<_, i64>(7)? as u64,
        superseded_by: r.get(8)?,
        supersedes: r.get(9)?,
    })
}

fn live_file(c: &Connection, sha256_hex: &str) -> Result<Option<ClearingFileInfo>, StoreError> {
    let sql = format!("SELECT {FILE_COLS} FROM clearing_files f WHERE f.sha256 = ?1 AND f.superseded_by IS NULL");
    Ok(c.query_row(&sql, [sha256_hex], file_row).optional()?)
}

fn file_by_id(c: &Connection, id: i64) -> Result<ClearingFileInfo, StoreError> {
    let sql = format!("SELECT {FILE_COLS} FROM clearing_files f WHERE f.id = ?1");
    Ok(c.query_row(&sql, [id], file_row)?)
}

/// Resolves the merchant of rows whose file names none: the terminal's (when only one merchant
/// has that terminal id), else the merchant with that WeChat sub-merchant id.
#[derive(Default)]
struct MerchantResolver {
    by_terminal: HashMap<String, Option<String>>,
    by_sub_merchant: HashMap<String, Option<String>>,
}

impl MerchantResolver {
    fn resolve(&mut self, c: &Connection, row: &NewClearingRow) -> Result<Option<String>, StoreError> {
        if let Some(t) = &row.record.terminal {
            let t = t.to_string();
            if !self.by_terminal.contains_key(&t) {
                let mut stmt = c.prepare_cached("SELECT merchant_id FROM terminals WHERE terminal_id = ?1 LIMIT 2")?;
                let found: Vec<String> = stmt.query_map([&t], |r| r.get(0))?.collect::<Result<_, _>>()?;
                self.by_terminal.insert(t.clone(), if found.len() == 1 { found.into_iter().next() } else { None });
            }
            if let Some(Some(m)) = self.by_terminal.get(&t) {
                return Ok(Some(m.clone()));
            }
        }
        if let Some(s) = &row.sub_merchant_id {
            if !self.by_sub_merchant.contains_key(s) {
                let m: Option<String> = c
                    .query_row("SELECT merchant_id FROM merchants WHERE wechat_sub_mch_id = ?1 LIMIT 1", [s], |r| r.get(0))
                    .optional()?;
                self.by_sub_merchant.insert(s.clone(), m);
            }
            return Ok(self.by_sub_merchant.get(s).cloned().flatten());
        }
        Ok(None)
    }
}

fn insert_file(ctx: &mut WriterCtx, file: &NewClearingFile) -> Result<(i64, Option<i64>), ClearingImportError> {
    let c = &ctx.conn;
    let earlier = live_file(c, &file.sha256_hex)?;
    if let Some(existing) = &earlier {
        if !file.replace {
            return Err(ClearingImportError::Duplicate { existing: Box::new(existing.clone()) });
        }
        // Out of the unique index first; pointed at the new import below.
        c.execute("UPDATE clearing_files SET superseded_by = id WHERE id = ?1", [existing.id])?;
    }
    c.execute(
        "INSERT INTO clearing_files (sha256, name, profile, actor, imported_at_us, rows, bad_rows) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
        params![file.sha256_hex, file.name, file.profile, file.actor, now_us()],
    )?;
    let id = c.last_insert_rowid();
    if let Some(existing) = &earlier {
        c.execute("UPDATE clearing_files SET superseded_by = ?1 WHERE id = ?2", [id, existing.id])?;
        c.execute("DELETE FROM clearing_status WHERE file_id = ?1", [existing.id])?;
    }
    Ok((id, earlier.map(|e| e.id)))
}

/// Stores one message's rows as one chunk of `clearing_row_chunks`.
fn insert_rows(
    c: &Connection,
    file_id: i64,
    rows: Vec<NewClearingRow>,
    resolver: &mut MerchantResolver,
    per_day: &mut BTreeMap<(i64, &'static str), u64>,
) -> Result<(u64, usize), StoreError> {
    let mut chunk = chunks::ChunkWriter::new();
    for row in &rows {
        let resolved = match &row.record.merchant {
            Some(_) => None,
            None => resolver.resolve(c, row)?,
        };
        let r = &row.record;
        let merchant = r.merchant.as_ref().map(|m| m.as_str()).or(resolved.as_deref());
        chunk.push(r, merchant, row.card_token.as_deref().filter(|t| !t.is_empty()))?;
        *per_day.entry((date_to_int(r.settlement_date), r.channel.as_str())).or_default() += 1;
    }
    if chunk.rows > 0 {
        c.prepare_cached(
            "INSERT INTO clearing_row_chunks (file_id, first_line, rows, min_date, max_date, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![file_id, chunk.first_line, chunk.rows, chunk.min_date, chunk.max_date, chunk.data])?;
    }
    Ok((chunk.rows as u64, chunk.data.len()))
}

/// The writer's page cache while a clearing file is imported (KiB).
const IMPORT_CACHE_KIB: u32 = 16 * 1024;

/// The WAL is flushed to disk each time the import has written about this many more bytes.
const IMPORT_SYNC_BYTES: usize = 8 << 20;

/// A file's rows are one transaction. With the writer's usual page cache (hundreds of MiB),
/// every page of it would wait in memory for the commit, after the parse has ended, then be
/// written to the WAL and flushed to disk while nothing else runs. During an import the cache
/// is at most [`IMPORT_CACHE_KIB`], so SQLite writes pages to the WAL as the import goes, and
/// the WAL is flushed each time the import has stored about [`IMPORT_SYNC_BYTES`] more of
/// chunks: the commit has little left to write and to flush. The writer's own cache size
/// comes back when this is dropped, whatever the import's outcome (if that fails, the writer
/// goes on with the smaller cache: slower, never wrong).
struct ImportWrites<'c> {
    conn: &'c Connection,
    wal: Option<std::fs::File>,
    unsynced: usize,
    /// The writer's own `cache_size`, when the import lowered it.
    own_cache: Option<i64>,
}

impl<'c> ImportWrites<'c> {
    fn begin(conn: &'c Connection) -> Result<ImportWrites<'c>, StoreError> {
        let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        // Negative: KiB; positive: pages.
        let kib = if cache < 0 { cache.saturating_neg() } else { cache.saturating_mul(page) / 1024 };
        let own_cache = (kib > i64::from(IMPORT_CACHE_KIB)).then_some(cache);
        if own_cache.is_some() {
            conn.execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
        }
        let wal = conn.path().map(|db| super::wal_path(std::path::Path::new(db)));
        let wal = wal.and_then(|w| std::fs::OpenOptions::new().write(true).open(w).ok());
        Ok(ImportWrites { conn, wal, unsynced: 0, own_cache })
    }

    /// Notes `bytes` more stored; flushes the WAL when enough have gathered. A failed flush
    /// fails the import (the error would not be reported again by the next one).
    fn wrote(&mut self, bytes: usize) -> Result<(), StoreError> {
        self.unsynced += bytes;
        if self.unsynced >= IMPORT_SYNC_BYTES {
            self.unsynced = 0;
            if let Some(f) = &self.wal {
                f.sync_data().map_err(|e| StoreError::Invalid { what: "clearing import", reason: format!("fsync of the WAL: {e}") })?;
            }
        }
        Ok(())
    }
}

impl Drop for ImportWrites<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.own_cache {
            let _ = self.conn.execute_batch(&format!("PRAGMA cache_size = {cache}"));
        }
    }
}

impl ClearingRepo for SqliteStore {
    fn find_clearing_file(&self, sha256_hex: &str) -> Result<Option<ClearingFileInfo>, StoreError> {
        self.read(|c| live_file(c, sha256_hex))
    }

    fn begin_clearing_import(&self, file: NewClearingFile) -> Result<ClearingImport, ClearingImportError> {
        // Refuse early (the writer checks again under its lock).
        if !file.replace {
            if let Some(existing) = self.find_clearing_file(&file.sha256_hex)? {
                return Err(ClearingImportError::Duplicate { existing: Box::new(existing) });
            }
        }
        let (tx, rx) = sync_channel::<ClearingMsg>(RECON_CHUNKS_IN_FLIGHT);
        let done = self.submit(move |ctx: &mut WriterCtx| -> Result<ClearingFileInfo, ClearingImportError> {
            let (file_id, _) = insert_file(ctx, &file)?;
            let mut resolver = MerchantResolver::default();
            let mut per_day: BTreeMap<(i64, &'static str), u64> = BTreeMap::new();
            let mut rows = 0u64;
            let mut writes = ImportWrites::begin(&ctx.conn)?;
            let received = loop {
                match rx.recv() {
                    Ok(ClearingMsg::Rows(chunk)) => {
                        match insert_rows(&ctx.conn, file_id, chunk, &mut resolver, &mut per_day).and_then(|(n, bytes)| {
                            rows += n;
                            writes.wrote(bytes)
                        }) {
                            Ok(()) => {}
                            Err(e) => break Err(ClearingImportError::from(e)),
                        }
                    }
                    Ok(ClearingMsg::Commit { bad_rows }) => break Ok(bad_rows),
                    // The feeding side went away without committing: keep nothing.
                    Err(_) => break Err(ClearingImportError::Aborted("the import was abandoned before its end".into())),
                }
            };
            drop(writes);
            let bad_rows = received?;
            let c = &ctx.conn;
            let at = now_us();
            c.execute(
                "UPDATE clearing_files SET rows = ?1, bad_rows = ?2, imported_at_us = ?3 WHERE id = ?4",
                params![rows as i64, bad_rows as i64, at, file_id],
            )?;
            for ((date, channel), n) in per_day {
                c.execute(
                    "INSERT INTO clearing_status (settlement_date, channel, file_id, rows, imported_at_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![date, channel, file_id, n as i64, at],
                )?;
            }
            Ok(file_by_id(c, file_id)?)
        })?;
        Ok(ClearingImport { tx: Some(tx), done, pending: Vec::with_capacity(crate::repo_recon::RECON_CHUNK_ROWS) })
    }

    fn list_clearing_files(&self, limit: u32) -> Result<Vec<ClearingFileInfo>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {FILE_COLS} FROM clearing_files f ORDER BY f.id DESC LIMIT ?1");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([i64::from(limit.max(1))], file_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn clearing_status(&self, from: SettlementDate, to: SettlementDate) -> Result<Vec<ClearingStatusEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT s.settlement_date, s.channel, s.file_id, f.name, s.rows, s.imported_at_us \
                 FROM clearing_status s JOIN clearing_files f ON f.id = s.file_id AND f.superseded_by IS NULL \
                 WHERE s.settlement_date BETWEEN ?1 AND ?2 ORDER BY s.settlement_date, s.channel, s.file_id",
            )?;
            let mut rows = stmt.query([date_to_int(from), date_to_int(to)])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let channel: String = r.get(1)?;
                out.push(ClearingStatusEntry {
                    settlement_date: int_to_date(r.get(0)?)?,
                    channel: Channel::parse(&channel)
                        .map_err(|_| StoreError::Corrupt { column: "clearing_status.channel", value: channel.clone() })?,
                    file_id: r.get(2)?,
                    file_name: r.get(3)?,
                    rows: r.get::<_, i64>(4)? as u64,
                    imported_at: from_us(r.get(5)?),
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_recon::ReconRepo;
    use crate::StoreConfig;
    use domain::{Amount, BatchNo, Currency, MerchantId, Rrn, Stan, TerminalId, TxnKind};
    use recon::{ClearingFileId, ClearingRecord, MaskedCard};

    fn row(line: u64, date: &str, merchant: &str) -> ClearingRecord {
        ClearingRecord {
            file: ClearingFileId(0),
            line,
            settlement_date: SettlementDate::parse(date).unwrap(),
            merchant: Some(MerchantId::parse(merchant).unwrap()),
            terminal: Some(TerminalId::parse("10000001").unwrap()),
            batch: Some(BatchNo::new(1).unwrap()),
            stan: Some(Stan::new(line as u32).unwrap()),
            rrn: Some(Rrn::parse(&format!("{line:012}")).unwrap()),
            auth_code: None,
            kind: TxnKind::Purchase,
            channel: Channel::Card,
            card: MaskedCard::new("622202", "1234"),
            amount: Amount::from_fen(100 * line as i64).unwrap(),
            fee: Amount::from_fen(line as i64).unwrap(),
            currency: Currency::CNY,
            txn_time: Some(from_us(1_764_000_000_000_000 + line as i64)),
            external_ref: None,
        }
    }

    /// An import writes through a small page cache; afterwards the writer has its own again,
    /// whether the import was kept or abandoned.
    #[test]
    fn the_writer_cache_comes_back_after_an_import() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { writer_cache_kib: 64 * 1024, cache_kib: 1024, ..StoreConfig::default() };
        let store = SqliteStore::open(dir.path(), cfg).unwrap();
        let cache = || {
            store
                .write(|ctx: &mut WriterCtx| -> Result<i64, StoreError> { Ok(ctx.conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?) })
                .unwrap()
        };
        assert_eq!(cache(), -65536);
        for (n, keep) in [(1, true), (2, false)] {
            let mut import = store
                .begin_clearing_import(NewClearingFile {
                    sha256_hex: format!("{n:064x}"),
                    name: format!("{n}.csv"),
                    profile: "canonical".into(),
                    actor: "test".into(),
                    replace: false,
                })
                .unwrap();
            for l in 2..20_000u64 {
                import.push(NewClearingRow { record: row(l, "2026-11-25", "898310048990001"), card_token: None, sub_merchant_id: None }).unwrap();
            }
            if keep {
                assert_eq!(import.commit(0).unwrap().rows, 19_998);
            } else {
                drop(import);
            }
            assert_eq!(cache(), -65536, "after import {n}");
        }
        assert_eq!(store.list_clearing_files(10).unwrap().len(), 1, "the abandoned import kept nothing");
    }

    /// Rows imported now (chunks) and rows of a file imported before schema 9 (`clearing_rows`)
    /// both reach a run, each file in line order, filtered by date and merchant.
    #[test]
    fn chunked_and_legacy_files_are_both_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { writer_cache_kib: 4 * 1024, cache_kib: 1024, ..StoreConfig::default() };
        let store = SqliteStore::open(dir.path(), cfg).unwrap();
        let (m1, m2) = ("898310048990001", "898310048990002");
        let chunked: Vec<ClearingRecord> =
            (2..20_000u64).map(|l| row(l, ["2026-11-25", "2026-11-23"][(l % 7 == 0) as usize], [m1, m2][(l % 2) as usize])).collect();
        let mut import = store
            .begin_clearing_import(NewClearingFile {
                sha256_hex: "ab".repeat(32),
                name: "new.csv".into(),
                profile: "canonical".into(),
                actor: "test".into(),
                replace: false,
            })
            .unwrap();
        for r in &chunked {
            import.push(NewClearingRow { record: r.clone(), card_token: Some("cd".repeat(16)), sub_merchant_id: None }).unwrap();
        }
        let new_file = import.commit(0).unwrap();

        // A file as schema 8 stored it.
        let legacy: Vec<ClearingRecord> = (2..6u64).map(|l| row(l, "2026-11-26", m1)).collect();
        let rows = legacy.clone();
        let legacy_id = store
            .write(move |ctx: &mut WriterCtx| -> Result<i64, StoreError> {
                let c = &ctx.conn;
                c.execute(
                    "INSERT INTO clearing_files (sha256, name, profile, actor, imported_at_us, rows, bad_rows) \
                     VALUES (?1, 'old.csv', 'canonical', 'test', 0, ?2, 0)",
                    params!["ef".repeat(32), rows.len() as i64],
                )?;
                let id = c.last_insert_rowid();
                c.execute(
                    "INSERT INTO clearing_status (settlement_date, channel, file_id, rows, imported_at_us) VALUES (20261126, 'card', ?1, ?2, 0)",
                    params![id, rows.len() as i64],
                )?;
                for r in &rows {
                    c.execute(
                        "INSERT INTO clearing_rows (file_id, line, settlement_date, merchant_id, terminal_id, batch_no, stan, rrn, \
                         auth_code, kind, channel, card_bin, card_last4, card_token, amount_fen, fee_fen, txn_time_us, external_ref, currency) \
                         VALUES (?1, ?2, 20261126, ?3, ?4, 1, ?5, ?6, NULL, 'purchase', 'card', '622202', '1234', NULL, ?7, ?8, ?9, NULL, 'CNY')",
                        params![
                            id,
                            r.line as i64,
                            r.merchant.as_ref().unwrap().as_str(),
                            r.terminal.as_ref().unwrap().as_str(),
                            r.stan.unwrap().get(),
                            r.rrn.as_ref().unwrap().as_str(),
                            r.amount.fen(),
                            r.fee.fen(),
                            r.txn_time.unwrap().timestamp_micros()
                        ],
                    )?;
                }
                Ok(id)
            })
            .unwrap();

        let with_file = |rows: &[ClearingRecord], id: i64| -> Vec<ClearingRecord> {
            rows.iter().cloned().map(|mut r| {
                r.file = ClearingFileId(id);
                r
            }).collect()
        };
        let input = store.load_recon_input(SettlementDate::parse("2026-11-25").unwrap(), None).unwrap();
        let mut want: Vec<_> = with_file(&chunked, new_file.id).into_iter().filter(|r| r.line % 7 != 0).collect();
        want.extend(with_file(&legacy, legacy_id));
        assert_eq!(input.clearing.len(), want.len());
        assert_eq!(input.clearing, want);

        let m = MerchantId::parse(m1).unwrap();
        let input = store.load_recon_input(SettlementDate::parse("2026-11-26").unwrap(), Some(&m)).unwrap();
        let want: Vec<_> = with_file(&chunked, new_file.id)
            .into_iter()
            .filter(|r| r.line % 7 != 0 && r.merchant.as_ref() == Some(&m))
            .chain(with_file(&legacy, legacy_id))
            .collect();
        assert_eq!(input.clearing, want);
    }
}

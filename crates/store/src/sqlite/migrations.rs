//! Numbered schema migrations, compiled in. Each runs once, in order, inside one transaction
//! with its row in `schema_version`.

use rusqlite::Connection;

use crate::StoreError;

/// `(version, sql)`. Append only: never edit a migration that has shipped.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_clearing.sql")),
    (3, include_str!("../../migrations/0003_findability.sql")),
    (4, include_str!("../../migrations/0004_orphan_reversal_index.sql")),
    (5, include_str!("../../migrations/0005_pos_discrepancies.sql")),
    (6, include_str!("../../migrations/0006_idempotency.sql")),
    (7, include_str!("../../migrations/0007_drop_settlement_date_index.sql")),
    (8, include_str!("../../migrations/0008_recon_item_chunks.sql")),
    (9, include_str!("../../migrations/0009_clearing_row_chunks.sql")),
    (10, include_str!("../../migrations/0010_txn_record_chunks.sql")),
];

pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub(crate) fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL)",
    )?;
    Ok(conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?)
}

/// Brings the schema to the latest version; refuses a database newer than this program.
pub(crate) fn migrate(conn: &mut Connection, now_us: i64) -> Result<i64, StoreError> {
    let found = current_version(conn)?;
    if found > latest() {
        return Err(StoreError::SchemaTooNew { found, known: latest() });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version (version, applied_at_us) VALUES (?1, ?2)", (version, now_us))?;
        tx.commit()?;
    }
    current_version(conn)
}

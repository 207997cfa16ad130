#!/usr/bin/env python3
"""DuckDB yardstick for poslens reconciliation: loads the platform CSV and the canonical
clearing CSV written by `cargo run --release -p clearing --example clearing-bench`, full-outer
joins them on terminal + batch + STAN (then RRN for the rest), classifies, writes items, and
times load / join / write. A coarse yardstick: key and rrn passes only, no fuzzy pass, no
duplicate or date-shift rules.

Usage: .venv/bin/python scripts/recon/duckdb_yardstick.py DIR   (DIR holds platform.csv and
clearing-2026-11-25.csv). Install: .venv/bin/pip install duckdb
"""
import sys
import time

import duckdb

d = sys.argv[1] if len(sys.argv) > 1 else "target/recon-bench"
con = duckdb.connect()
t0 = time.perf_counter()
con.execute(f"CREATE TABLE p AS SELECT * FROM read_csv('{d}/platform.csv', header=true, all_varchar=true)")
con.execute(f"CREATE TABLE c AS SELECT row_number() OVER () + 1 AS line, * FROM read_csv('{d}/clearing-2026-11-25.csv', header=true, all_varchar=true)")
t1 = time.perf_counter()
con.execute("""
CREATE TABLE items AS
WITH ps AS (SELECT * FROM p WHERE settlement_date BETWEEN '2026-11-24' AND '2026-11-26'),
k AS (
  SELECT ps.id, c.line FROM c JOIN ps
    ON c.terminal_id = ps.terminal_id AND c.batch_no = ps.batch_no AND c.stan = ps.stan
  WHERE c.batch_no <> '' AND ps.batch_no <> ''
  QUALIFY row_number() OVER (PARTITION BY c.line ORDER BY ps.id) = 1
),
r AS (
  SELECT ps.id, c.line FROM c JOIN ps ON c.rrn = ps.rrn AND c.kind = ps.kind
  WHERE c.rrn <> '' AND c.line NOT IN (SELECT line FROM k) AND ps.id NOT IN (SELECT id FROM k)
  QUALIFY row_number() OVER (PARTITION BY c.line ORDER BY ps.id) = 1
),
pairs AS (SELECT id, line, 'key' AS match_pass FROM k UNION ALL SELECT id, line, 'rrn' FROM r)
SELECT
  CASE
    WHEN ps.id IS NULL THEN 'missing_in_platform'
    WHEN c.line IS NULL THEN 'missing_in_clearing'
    WHEN ps.should_settle <> 'true' OR ps.kind <> c.kind THEN 'status_mismatch'
    WHEN ps.settlement_date <> c.settlement_date THEN 'date_shift'
    WHEN CAST(ps.amount_fen AS BIGINT) <> CAST(round(CAST(c.amount AS DECIMAL(18,2)) * 100) AS BIGINT) THEN 'amount_mismatch'
    ELSE 'matched'
  END AS outcome,
  pairs.match_pass, ps.id AS platform_id, c.line AS clearing_line,
  ps.amount_fen AS platform_amount, c.amount AS clearing_amount
FROM pairs
FULL OUTER JOIN ps ON ps.id = pairs.id
FULL OUTER JOIN c ON c.line = pairs.line
WHERE c.line IS NOT NULL OR (ps.settlement_date = '2026-11-25' AND ps.should_settle = 'true')
""")
t2 = time.perf_counter()
con.execute(f"COPY items TO '{d}/duckdb-items.csv' (HEADER)")
t3 = time.perf_counter()
for outcome, n in con.execute("SELECT outcome, count(*) FROM items GROUP BY 1 ORDER BY 1").fetchall():
    print(f"  {outcome:<22} {n:>9}")
print(f"duckdb {duckdb.__version__}: load {t1 - t0:.3f} s, join+classify {t2 - t1:.3f} s, write {t3 - t2:.3f} s, total {t3 - t0:.3f} s")

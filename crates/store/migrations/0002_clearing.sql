-- poslens store, schema 2: imported clearing files and reconciliation runs. Same conventions as
-- schema 1 (instants in microseconds, settlement dates integer YYYYMMDD, money integer fen).

-- One row per import of a file. A file is identified by its SHA-256; a second import of the same
-- bytes is refused unless it supersedes the first (`--replace`), which keeps both rows.
CREATE TABLE clearing_files (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT NOT NULL,
    name           TEXT NOT NULL,
    profile        TEXT NOT NULL,
    actor          TEXT NOT NULL,
    imported_at_us INTEGER NOT NULL,
    rows           INTEGER NOT NULL,
    bad_rows       INTEGER NOT NULL,
    superseded_by  INTEGER REFERENCES clearing_files (id)
);
CREATE UNIQUE INDEX clearing_files_live_sha256 ON clearing_files (sha256) WHERE superseded_by IS NULL;

-- The rows as imported, never a clear PAN: BIN, last 4 and the keyed token only.
CREATE TABLE clearing_rows (
    file_id         INTEGER NOT NULL REFERENCES clearing_files (id),
    line            INTEGER NOT NULL,
    settlement_date INTEGER NOT NULL,
    merchant_id     TEXT,
    terminal_id     TEXT,
    batch_no        INTEGER,
    stan            INTEGER,
    rrn             TEXT,
    auth_code       TEXT,
    kind            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    card_bin        TEXT,
    card_last4      TEXT,
    card_token      TEXT,
    amount_fen      INTEGER NOT NULL,
    fee_fen         INTEGER NOT NULL,
    txn_time_us     INTEGER,
    external_ref    TEXT,
    currency        TEXT NOT NULL,
    PRIMARY KEY (file_id, line)
) WITHOUT ROWID;
-- No index by settlement date: a run finds the live files of D-1..D+1 in clearing_status and
-- reads each by primary-key range (file order, no sort), so an import maintains one B-tree.

-- Which files cover a (settlement date, channel), when they came and how many rows each gave:
-- a channel with no live file for D is pending in D's run.
CREATE TABLE clearing_status (
    settlement_date INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    file_id         INTEGER NOT NULL REFERENCES clearing_files (id),
    rows            INTEGER NOT NULL,
    imported_at_us  INTEGER NOT NULL,
    PRIMARY KEY (settlement_date, channel, file_id)
);

-- One reconciliation run for a settlement date (optionally one merchant). A later run for the
-- same date and filter supersedes it; runs are kept.
CREATE TABLE recon_runs (
    id               INTEGER PRIMARY KEY,
    settlement_date  INTEGER NOT NULL,
    merchant_id      TEXT,
    actor            TEXT NOT NULL,
    started_at_us    INTEGER NOT NULL,
    finished_at_us   INTEGER NOT NULL,
    -- JSON-free: counts and amounts per outcome as "outcome=count=amount" lines, in
    -- recon::Outcome::ALL order.
    summary          TEXT NOT NULL,
    pending_channels TEXT NOT NULL,   -- comma-separated
    pending_count    INTEGER NOT NULL,
    platform_records INTEGER NOT NULL,
    clearing_rows    INTEGER NOT NULL,
    superseded_by    INTEGER REFERENCES recon_runs (id)
);
CREATE INDEX recon_runs_by_date ON recon_runs (settlement_date, id);

-- One item of a run. `merchant_id` is the platform side's merchant, or the clearing row's when
-- the platform has none: merchants see the items of their own merchant only. Kept compact (a
-- run of a million items writes a million rows): `outcome` and `match_pass` are the position in
-- `recon::Outcome::ALL` (0 matched, 1 amount_mismatch, 2 missing_in_clearing,
-- 3 missing_in_platform, 4 status_mismatch, 5 duplicate_in_clearing, 6 date_shift) and
-- `recon::MatchPass::ALL` (0 key, 1 rrn, 2 external_ref, 3 fuzzy); the platform record's opaque
-- id is not stored but derived from `platform_seq` and the (append-only) record on reading.
CREATE TABLE recon_items (
    id                  INTEGER PRIMARY KEY,
    run_id              INTEGER NOT NULL REFERENCES recon_runs (id),
    outcome             INTEGER NOT NULL,
    match_pass          INTEGER,
    merchant_id         TEXT,
    terminal_id         TEXT,
    batch_no            INTEGER,
    stan                INTEGER,
    rrn                 TEXT,
    external_ref        TEXT,
    channel             TEXT NOT NULL,
    txn_time_us         INTEGER,
    platform_seq        INTEGER,
    platform_amount_fen INTEGER,
    clearing_amount_fen INTEGER,
    clearing_fee_fen    INTEGER,
    clearing_file_id    INTEGER,
    clearing_line       INTEGER
);
CREATE INDEX recon_items_by_outcome ON recon_items (run_id, outcome);
CREATE INDEX recon_items_by_merchant ON recon_items (run_id, merchant_id, outcome);

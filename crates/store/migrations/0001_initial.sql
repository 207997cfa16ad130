-- poslens store, schema 1. Portable SQL where reasonable (PostgreSQL follows): instants are
-- integer microseconds since the Unix epoch (UTC), settlement dates integer YYYYMMDD, money
-- integer fen.

CREATE TABLE merchants (
    merchant_id          TEXT PRIMARY KEY,
    name_zh              TEXT NOT NULL,
    name_en              TEXT,
    mcc                  TEXT,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    status_since_us      INTEGER NOT NULL,
    timezone             TEXT NOT NULL,
    cutoff               TEXT NOT NULL,
    single_txn_limit_fen INTEGER,
    wechat_sub_mch_id    TEXT,
    alipay_id            TEXT,
    created_at_us        INTEGER NOT NULL
);

CREATE TABLE merchant_status_history (
    id              INTEGER PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (merchant_id),
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    effective_at_us INTEGER NOT NULL,
    recorded_at_us  INTEGER NOT NULL
);
CREATE INDEX merchant_status_history_by_merchant ON merchant_status_history (merchant_id, id);

CREATE TABLE terminals (
    merchant_id            TEXT NOT NULL REFERENCES merchants (merchant_id),
    terminal_id            TEXT NOT NULL,
    status                 TEXT NOT NULL,
    master_key_hex         TEXT,
    open_batch             INTEGER,
    last_seen_at_us        INTEGER,
    last_sign_on_at_us     INTEGER,
    last_settlement_at_us  INTEGER,
    last_settlement_result TEXT,
    created_at_us          INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE INDEX terminals_by_terminal_id ON terminals (terminal_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    merchant_id   TEXT REFERENCES merchants (merchant_id),
    terminals     TEXT NOT NULL DEFAULT '',   -- comma-separated terminal ids (staff users)
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at_us INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at_us);

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    merchants     TEXT,                       -- comma-separated merchant ids; NULL = all
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at_us INTEGER NOT NULL
);

CREATE TABLE audit_events (
    id     INTEGER PRIMARY KEY,
    at_us  INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    ip     TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (at_us);
CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

-- One row per financial message outcome. Append-only; `hash` seals the row into the chain:
-- hash(seq) = SHA-256("poslens-txn-v1" || hash(seq - 1) || canonical(row)), hash(0) = 32 zero
-- bytes. The previous hash is not stored twice: it is the hash of seq - 1.
CREATE TABLE txn_records (
    seq             INTEGER PRIMARY KEY,
    received_at_us  INTEGER NOT NULL,
    merchant_id     TEXT NOT NULL,
    terminal_id     TEXT,
    batch_no        INTEGER,
    stan            INTEGER,
    rrn             TEXT,
    auth_code       TEXT,
    kind            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    card_bin        TEXT,
    card_last4      TEXT,
    card_masked     TEXT,
    card_token      BLOB,
    amount_fen      INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    response_code   TEXT NOT NULL,
    txn_time_us     INTEGER NOT NULL,
    settlement_date INTEGER NOT NULL,
    original_seq    INTEGER,
    reversal        INTEGER NOT NULL,
    source          TEXT NOT NULL,
    external_ref    TEXT,
    hash            BLOB NOT NULL
);
CREATE TRIGGER txn_records_append_only_update BEFORE UPDATE ON txn_records
BEGIN SELECT RAISE(ABORT, 'transaction records are append-only'); END;
CREATE TRIGGER txn_records_append_only_delete BEFORE DELETE ON txn_records
BEGIN SELECT RAISE(ABORT, 'transaction records are append-only'); END;

-- Idempotency keys (and original lookup by batch + STAN on a terminal).
CREATE UNIQUE INDEX txn_records_card_key
    ON txn_records (merchant_id, terminal_id, batch_no, stan, kind, reversal) WHERE channel = 'card';
CREATE UNIQUE INDEX txn_records_qr_key
    ON txn_records (external_ref, kind, reversal) WHERE channel <> 'card';
-- Lists: one merchant by time or by settlement date. The rowid (`seq`) is the implicit last
-- column of every index, so `ORDER BY txn_time_us DESC, seq DESC` needs no sort and `seq` is
-- not listed (listing it stores it twice). The all-merchant by-time index stays: records
-- arrive roughly in time order, so its inserts land on the rightmost leaf and cost little,
-- while without it an all-merchant page would scan the table.
CREATE INDEX txn_records_by_merchant_time ON txn_records (merchant_id, txn_time_us);
CREATE INDEX txn_records_by_merchant_sdate ON txn_records (merchant_id, settlement_date, txn_time_us);
CREATE INDEX txn_records_by_time ON txn_records (txn_time_us);
CREATE INDEX txn_records_by_rrn ON txn_records (rrn, merchant_id) WHERE rrn IS NOT NULL;
CREATE INDEX txn_records_by_original ON txn_records (original_seq) WHERE original_seq IS NOT NULL;

-- The derived status of every record (a projection of the events, rewritten in the commit
-- that adds an event bearing on it). `verify` recomputes it.
CREATE TABLE txn_status (
    seq    INTEGER PRIMARY KEY,
    status TEXT NOT NULL
);

-- The last sealed record, so that removing rows from the end of the chain is detected.
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000');

-- What the POS front end's batch upload (0320) and reversals found wrong, per terminal: items
-- the terminal uploaded that the host lacks (terminal_only), amounts that differ, approved host
-- records the terminal did not upload (host_only), an upload whose announced item count differs,
-- and a reversed purchase that already had refunds. Card data only as BIN and last four digits,
-- never a PAN. Append-only: a discrepancy is a fact about what was seen at the time.

CREATE TABLE pos_discrepancies (
    id                  INTEGER PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    terminal_id         TEXT NOT NULL,
    batch_no            INTEGER NOT NULL,
    stan                INTEGER,
    kind                TEXT NOT NULL CHECK (kind IN
                            ('terminal_only', 'amount_differs', 'host_only', 'upload_count_differs', 'reversed_with_refunds')),
    terminal_amount_fen INTEGER,
    host_amount_fen     INTEGER,
    card_bin            TEXT,
    card_last4          TEXT,
    -- The host's record (txn_records.seq) when the host has one.
    txn_seq             INTEGER,
    detail              TEXT,
    recorded_at_us      INTEGER NOT NULL
);
CREATE INDEX pos_discrepancies_by_terminal ON pos_discrepancies (merchant_id, terminal_id, id);
CREATE INDEX pos_discrepancies_by_kind ON pos_discrepancies (kind, merchant_id, terminal_id);
CREATE TRIGGER pos_discrepancies_append_only_update BEFORE UPDATE ON pos_discrepancies
BEGIN SELECT RAISE(ABORT, 'POS discrepancies are append-only'); END;
CREATE TRIGGER pos_discrepancies_append_only_delete BEFORE DELETE ON pos_discrepancies
BEGIN SELECT RAISE(ABORT, 'POS discrepancies are append-only'); END;

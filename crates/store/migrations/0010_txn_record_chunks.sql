-- poslens store, schema 10: what reconciliation reads of platform records, as compact chunks.
--
-- A run over a million records spent about a second having SQLite decode a million
-- `txn_records` rows. A bulk import now also writes, in the same transaction, chunks of up to
-- 8,192 consecutive records encoded in a few dozen bytes each (store crate,
-- `sqlite/record_chunks.rs`): the fields reconciliation reads, never a card number, token or
-- hash. A chunk covers first_seq..=last_seq completely. A run decodes the chunks of its window
-- and reads from `txn_records` only the sequences no chunk covers (records stored one at a
-- time, and records stored before this schema). Statuses stay in `txn_status`.
CREATE TABLE txn_record_chunks (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    rows      INTEGER NOT NULL,
    -- Lowest and highest settlement date (YYYYMMDD) of the chunk's records.
    min_date  INTEGER NOT NULL,
    max_date  INTEGER NOT NULL,
    data      BLOB NOT NULL,
    CHECK (last_seq >= first_seq AND last_seq - first_seq < 8192)
);

-- Like the records it mirrors, a chunk is never changed.
CREATE TRIGGER txn_record_chunks_append_only_update BEFORE UPDATE ON txn_record_chunks
BEGIN
    SELECT RAISE(ABORT, 'txn_record_chunks is append-only');
END;

-- A run finds the chunks of its dates (D-1..D+1) by this index, without scanning the others.
CREATE INDEX txn_record_chunks_by_date ON txn_record_chunks (max_date, min_date, first_seq, last_seq, rows);

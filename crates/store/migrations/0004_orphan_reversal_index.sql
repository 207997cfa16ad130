-- Opening the store asks whether any orphan reversal exists (a reversal whose original has not
-- arrived). Without an index that question read the whole table: seconds and hundreds of MiB of
-- page cache on a large store before serving anything. Orphans are rare, so this partial index
-- is tiny and costs nothing for ordinary rows.
CREATE INDEX txn_records_orphan_reversals ON txn_records (seq) WHERE reversal = 1 AND original_seq IS NULL;

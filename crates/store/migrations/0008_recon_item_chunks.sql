-- poslens store, schema 8: a run's items as compact chunks.
--
-- A run of a million items written as a million `recon_items` rows with two secondary indexes
-- cost the single writer seconds. New runs store their items here instead: every item is
-- kept, encoded in a few dozen bytes (store crate, `sqlite/recon/chunks.rs`), in chunks of at
-- most 1,024 items of one (merchant, outcome) group. Item ids are numbered 1, 2, ... within the
-- run in (merchant, outcome, engine order) order, so a group is one contiguous id range and a
-- chunk holds ids `first_id .. first_id + items - 1`: paging by outcome or merchant reads chunk
-- heads and decodes one or two chunks; totals sum `items` and `amount_fen`.
--
-- Runs recorded before this schema keep their items in `recon_items` (read as before; nothing
-- is written there any more).
CREATE TABLE recon_item_chunks (
    run_id      INTEGER NOT NULL REFERENCES recon_runs (id),
    first_id    INTEGER NOT NULL,
    -- The platform side's merchant, or the clearing row's when the platform has none.
    merchant_id TEXT,
    -- Position in recon::Outcome::ALL, as in recon_items.
    outcome     INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    -- Sum of the platform amount, or the clearing amount where the platform has none.
    amount_fen  INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (run_id, first_id)
);
CREATE INDEX recon_item_chunks_by_merchant ON recon_item_chunks (run_id, merchant_id, outcome, first_id);

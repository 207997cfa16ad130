-- poslens store, schema 9: clearing rows as compact chunks.
--
-- A card file of a million rows written as a million `clearing_rows` rows cost the import's
-- single writer most of its time, and reading them back cost a reconciliation run a second of
-- SQLite row decoding. New imports store their rows here instead: every row is kept (the same
-- fields, never a clear PAN), encoded in a few dozen bytes (store crate,
-- `sqlite/clearing/chunks.rs`), in chunks of consecutive lines of one file. A run reads the
-- chunks of the live files whose date range meets D-1..D+1 and decodes them.
--
-- Files imported before this schema keep their rows in `clearing_rows` (read as before; nothing
-- is written there any more).
CREATE TABLE clearing_row_chunks (
    file_id    INTEGER NOT NULL REFERENCES clearing_files (id),
    -- Physical line of the chunk's first row (the header being line 1).
    first_line INTEGER NOT NULL,
    rows       INTEGER NOT NULL,
    -- Lowest and highest settlement date (YYYYMMDD) of the chunk's rows.
    min_date   INTEGER NOT NULL,
    max_date   INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (file_id, first_line)
);

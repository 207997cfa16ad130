-- Announcements (公告) and missing-transaction tickets (工单): the bank's side of "why can't I
-- find my transaction". Announcements may carry a maintenance window; tickets keep every step.

CREATE TABLE announcements (
    id              INTEGER PRIMARY KEY,
    title_zh        TEXT NOT NULL,
    title_en        TEXT NOT NULL,
    body_zh         TEXT NOT NULL,
    body_en         TEXT NOT NULL,
    -- NULL: every merchant.
    merchant_id     TEXT,
    starts_at_us    INTEGER NOT NULL,
    -- NULL: until ended.
    ends_at_us      INTEGER,
    maintenance     INTEGER NOT NULL DEFAULT 0,
    -- Comma-separated subset of query,capture,settlement.
    affects         TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    updated_at_us   INTEGER NOT NULL
);
CREATE INDEX announcements_window ON announcements (starts_at_us, ends_at_us);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    opened_by       TEXT NOT NULL,
    -- The client's idempotency key: the same key opens one ticket.
    client_key      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    -- What the merchant was looking for and the diagnosis shown, as the edge serialised them.
    details         TEXT NOT NULL,
    diagnosis       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'assigned', 'resolved')),
    assignee        TEXT,
    resolution      TEXT,
    resolved_txn_id TEXT,
    created_at_us   INTEGER NOT NULL,
    updated_at_us   INTEGER NOT NULL,
    UNIQUE (merchant_id, client_key)
);
CREATE INDEX tickets_merchant ON tickets (merchant_id, id);
CREATE INDEX tickets_status ON tickets (status, id);

CREATE TABLE ticket_events (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    at_us       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('open', 'assign', 'comment', 'resolve')),
    text        TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);
CREATE TRIGGER ticket_events_append_only_update BEFORE UPDATE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket events are append-only'); END;
CREATE TRIGGER ticket_events_append_only_delete BEFORE DELETE ON ticket_events
BEGIN SELECT RAISE(ABORT, 'ticket events are append-only'); END;

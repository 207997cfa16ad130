-- Responses to POST requests that carried an Idempotency-Key, so a retried request gets the
-- first answer instead of acting twice. Keyed by who asked (a hash of their credential) and
-- the key; the request's hash tells a retry from a different request under the same key.
CREATE TABLE idempotency_keys (
    caller          TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_sha256  BLOB NOT NULL,
    status          INTEGER NOT NULL,
    content_type    TEXT NOT NULL,
    body            BLOB NOT NULL,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_us);

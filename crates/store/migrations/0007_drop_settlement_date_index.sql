-- Settlement-date queries no longer need their own index on txn_records. A settlement date is
-- the merchant-local date of txn_time or the next day (cut-off at most 24:00), so a range of
-- settlement dates is served through txn_records_by_merchant_time (or txn_records_by_time
-- across merchants) as the instants of the local days before it, filtered on the stored
-- settlement_date. Every bulk import paid for this fifth index on each row: merchant-keyed,
-- so each insert landed on another leaf.
DROP INDEX txn_records_by_merchant_sdate;

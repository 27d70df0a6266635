-- 0004: settlement intake and the calendar (SPEC section 6, issues 15 and 13).
--
-- A run (and its batch, when the date is not settled) can be rejected: the
-- file was mostly unreadable, so nothing of it was applied, and a corrected
-- file is taken later without force. A record dated outside its batch's
-- business day is a date_mismatch item. A missing_from_file item that a later
-- batch's record confirmed is resolved by the system, which names that run.
ALTER TABLE settlement_runs DROP CONSTRAINT settlement_runs_status_check;
ALTER TABLE settlement_runs ADD CONSTRAINT settlement_runs_status_check
    CHECK (status IN ('staging', 'applying', 'settled', 'failed', 'rejected'));
ALTER TABLE settlement_runs
    ADD COLUMN bad_lines     bigint NOT NULL DEFAULT 0,  -- lines of the file that could not be read
    ADD COLUMN auto_resolved bigint NOT NULL DEFAULT 0,  -- earlier items this run's records resolved
    ADD COLUMN detail        text NOT NULL DEFAULT '';   -- why a run was rejected

ALTER TABLE settlement_batches DROP CONSTRAINT settlement_batches_status_check;
ALTER TABLE settlement_batches ADD CONSTRAINT settlement_batches_status_check
    CHECK (status IN ('running', 'settled', 'file_missing', 'rejected'));

ALTER TABLE settlement_exceptions DROP CONSTRAINT settlement_exceptions_type_check;
ALTER TABLE settlement_exceptions ADD CONSTRAINT settlement_exceptions_type_check
    CHECK (type IN ('amount_mismatch', 'not_openable', 'duplicate', 'missing_from_file', 'overpaid',
                    'incomplete_after_window', 'bad_line', 'date_mismatch'));
-- The run whose record resolved the item automatically (operator 'system').
ALTER TABLE settlement_exceptions ADD COLUMN resolved_run_id bigint REFERENCES settlement_runs;

-- A record may confirm a payment of an earlier business date left
-- missing_from_file: the open items of that type are found by payment.
CREATE INDEX settlement_exceptions_missing_by_payment ON settlement_exceptions (payment_id)
    WHERE type = 'missing_from_file' AND state = 'open';

-- 0003: one model of terminal-key outcomes (mapfront.KeyState, where the
-- states and transitions are written down). terminal_requests keeps every
-- outcome but an approved pay's, whose outcome is its pay_orders row (the
-- documented pair). What changes:
--   - states say what they are: 'done' becomes 'approved' (errcode 0) or
--     'declined' (the errcode and errmsg of a business decline); rows are
--     written complete, so the in-progress marker errcode -1 is gone (a row
--     holding it was never committed: the old code claimed and finished a
--     key in one transaction);
--   - stored answers carry a format version: {"v":1, ...} with the field
--     names they were written with, decoded by wire structs of their own
--     (mapfront.DecodeAnswer), not by the domain's structs;
--   - undo_answer, the answer of a pay key's reversal, is named reversal.
-- Every row keeps its answer: nothing already answered changes its answer.

DELETE FROM terminal_requests WHERE errcode = -1;

ALTER TABLE terminal_requests DROP CONSTRAINT terminal_requests_state_check;
UPDATE terminal_requests SET state = CASE WHEN errcode = 0 THEN 'approved' ELSE 'declined' END
 WHERE state = 'done';
ALTER TABLE terminal_requests
    ADD CONSTRAINT terminal_requests_state_check
        CHECK (state IN ('approved', 'declined', 'tombstone', 'reversed')),
    ADD CONSTRAINT terminal_requests_declined_has_errcode
        CHECK ((state = 'declined') = (errcode <> 0)),
    ADD CONSTRAINT terminal_requests_errcode_check CHECK (errcode >= 0),
    ALTER COLUMN errcode SET DEFAULT 0;

ALTER TABLE terminal_requests RENAME COLUMN undo_answer TO reversal;
UPDATE terminal_requests SET answer = answer || '{"v": 1}' WHERE answer IS NOT NULL;
UPDATE terminal_requests SET reversal = reversal || '{"v": 1}' WHERE reversal IS NOT NULL;
ALTER TABLE terminal_requests
    ADD CONSTRAINT terminal_requests_answer_versioned
        CHECK ((answer IS NULL OR answer ? 'v') AND (reversal IS NULL OR reversal ? 'v')),
    ADD CONSTRAINT terminal_requests_reversal_of_pay
        CHECK (reversal IS NULL OR kind = 'pay');

COMMENT ON TABLE terminal_requests IS
    'Terminal-key outcomes (SPEC section 5); states and transitions: mapfront.KeyState. An approved pay keeps its outcome in pay_orders.';

-- 0010: the ledger's rules checked once per statement instead of once per
-- row (issue 11). What the database refuses is unchanged: a posting to an
-- unknown customer account, a customer balance below zero, a ledger
-- transaction whose postings do not sum to zero, a posting of no ledger
-- transaction, and any UPDATE or DELETE of the ledger.
--
-- The rule for writers (ledger.go): all the legs of a ledger transaction are
-- inserted by one statement. The check below runs when that statement ends,
-- not at COMMIT, so a transaction written in two statements is refused at the
-- first. Existing rows are not touched.

DROP TRIGGER postings_apply ON postings;
DROP TRIGGER postings_balanced ON postings;
DROP FUNCTION postings_apply();
DROP FUNCTION postings_balanced();

-- The foreign key cost a lookup and a row lock per posting; the trigger
-- below checks the same, once per statement, and ledger_txns is append-only,
-- so a transaction row that a posting names can never go away.
ALTER TABLE postings DROP CONSTRAINT postings_txn_id_fkey;

-- After each statement that inserts postings:
-- 1. each customer account named moves once, by the sum of its legs in the
--    statement (UPDATE .. FROM applies one row per target, so the sums come
--    first); the balance CHECK refuses an overdraft right there, and a leg
--    whose customer account does not exist is refused (foreign_key_violation);
-- 2. each ledger transaction touched must exist (foreign_key_violation), and
--    all its postings, those of earlier statements included, must sum to zero
--    (integrity_constraint_violation).
CREATE FUNCTION postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    moved bigint;
    bad record;
BEGIN
    WITH d AS (SELECT account_id, sum(amount) AS delta FROM new_postings
               WHERE account_id NOT LIKE 'SYS-%' GROUP BY account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta FROM d
               WHERE a.account_id = d.account_id AND a.kind <> 'system' RETURNING 1)
    SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM u) INTO named, moved;
    IF moved <> named THEN
        SELECT n.account_id INTO bad FROM new_postings n
         WHERE n.account_id NOT LIKE 'SYS-%' AND NOT EXISTS
               (SELECT 1 FROM accounts a WHERE a.account_id = n.account_id AND a.kind <> 'system')
         LIMIT 1;
        RAISE EXCEPTION 'posting to unknown account %', bad.account_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;

    SELECT n.txn_id, t.txn_id IS NULL AS missing, s.total INTO bad
      FROM (SELECT DISTINCT txn_id FROM new_postings) n
      LEFT JOIN ledger_txns t ON t.txn_id = n.txn_id
      CROSS JOIN LATERAL (SELECT sum(p.amount) AS total FROM postings p WHERE p.txn_id = n.txn_id) s
     WHERE t.txn_id IS NULL OR s.total <> 0
     LIMIT 1;
    IF FOUND THEN
        IF bad.missing THEN
            RAISE EXCEPTION 'posting to unknown ledger transaction %', bad.txn_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RAISE EXCEPTION 'ledger transaction % does not balance (%)', bad.txn_id, bad.total
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER postings_apply AFTER INSERT ON postings REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_apply();

-- The ledger is append-only (0001 refuses UPDATE and DELETE row by row);
-- TRUNCATE fires no row trigger, so it is refused here.
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_txns_no_truncate BEFORE TRUNCATE ON ledger_txns
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

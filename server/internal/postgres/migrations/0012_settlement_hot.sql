-- 0012: less PostgreSQL work per settled record (issue 11).
--
-- 1. A payment is updated once in settlement (settled, trade_id: no index
--    names them). With room on its page the new version stays there and no
--    index is touched (a HOT update); the rows a slice confirms share pages
--    and are all updated before any commits, so each needs its own room:
--    pages are filled to half. Rows written before this migration keep the
--    fill they had.
ALTER TABLE card_payments SET (fillfactor = 50);

--    A card's account is updated twice when settlement activates it (its
--    balance by the ledger trigger, its status) and its order once; a pay
--    updates a cash account's balance. The account's status update writes
--    index entries (activated_at is indexed) but, with room, stays on its
--    page, and the balance update then needs none (HOT). Was 80 for
--    accounts, 100 for orders.
ALTER TABLE accounts SET (fillfactor = 50);
ALTER TABLE card_orders SET (fillfactor = 50);

-- 2. The foreign keys of the two tables settlement writes a row to per
--    record cost a row trigger, a keyed lookup and a row lock per record and
--    key (five per activated card). The same is checked below once per
--    statement, with the new rows as a transition table: each row's run,
--    payment and order must exist (foreign_key_violation otherwise, as the
--    keys raised), by keyed lookups (LATERAL .. LIMIT 1: a join the planner
--    might hash would read the whole table per statement). A referenced row can never go away: payments, orders and
--    runs are never deleted (no code does), and the database now refuses it,
--    as it refuses changing an order's id.
ALTER TABLE settlement_trades DROP CONSTRAINT settlement_trades_run_id_fkey,
    DROP CONSTRAINT settlement_trades_payment_id_fkey,
    DROP CONSTRAINT settlement_trades_order_id_fkey;
ALTER TABLE settlement_activations DROP CONSTRAINT settlement_activations_order_id_fkey,
    DROP CONSTRAINT settlement_activations_run_id_fkey;

CREATE FUNCTION settlement_trades_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.trade_id INTO bad FROM new_trades n
      LEFT JOIN LATERAL (SELECT true AS ok FROM settlement_runs r WHERE r.run_id = n.run_id LIMIT 1) r ON true
      LEFT JOIN LATERAL (SELECT true AS ok FROM card_payments p WHERE p.payment_id = n.payment_id LIMIT 1) p ON true
      LEFT JOIN LATERAL (SELECT true AS ok FROM card_orders o WHERE o.order_id = n.order_id LIMIT 1) o ON true
     WHERE r.ok IS NULL OR p.ok IS NULL OR o.ok IS NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement trade % names an unknown run, payment or order', bad.trade_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER settlement_trades_refs AFTER INSERT ON settlement_trades REFERENCING NEW TABLE AS new_trades
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_trades_refs();

CREATE FUNCTION settlement_activations_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.order_id INTO bad FROM new_activations n
      LEFT JOIN LATERAL (SELECT true AS ok FROM card_orders o WHERE o.order_id = n.order_id LIMIT 1) o ON true
      LEFT JOIN LATERAL (SELECT true AS ok FROM settlement_runs r WHERE r.run_id = n.run_id LIMIT 1) r ON true
     WHERE o.ok IS NULL OR (n.run_id IS NOT NULL AND r.ok IS NULL)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement activation of % names an unknown order or run', bad.order_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER settlement_activations_refs AFTER INSERT ON settlement_activations
    REFERENCING NEW TABLE AS new_activations
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_activations_refs();

CREATE FUNCTION settlement_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % refused: settlement records name its rows', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER card_payments_keep BEFORE DELETE OR TRUNCATE ON card_payments
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_keep();
CREATE TRIGGER card_orders_keep BEFORE DELETE OR TRUNCATE ON card_orders
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_keep();
CREATE TRIGGER card_orders_keep_id BEFORE UPDATE OF order_id ON card_orders
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_keep();
CREATE TRIGGER settlement_runs_keep BEFORE DELETE OR TRUNCATE ON settlement_runs
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_keep();

-- 3. The ledger trigger of 0010, unchanged in what it checks, finds each
--    ledger transaction by its key (LATERAL .. LIMIT 1) instead of a join
--    that the planner may hash: PL/pgSQL keeps a session's first plan, and a
--    plan made when the ledger was small read all of ledger_txns per
--    statement ever after.
CREATE OR REPLACE FUNCTION postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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

    SELECT n.txn_id, t.ok IS NULL AS missing, s.total INTO bad
      FROM (SELECT DISTINCT txn_id FROM new_postings) n
      LEFT JOIN LATERAL (SELECT true AS ok FROM ledger_txns t WHERE t.txn_id = n.txn_id LIMIT 1) t ON true
      CROSS JOIN LATERAL (SELECT sum(p.amount) AS total FROM postings p WHERE p.txn_id = n.txn_id) s
     WHERE t.ok IS NULL OR s.total <> 0
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

-- 0012: less PostgreSQL work per settled record (issue 11).
--
-- 1. A payment is updated once in settlement (settled, trade_id: no index
--    names them). With room on its page the new version stays there and no
--    index is touched (a HOT update); the rows a slice confirms share pages
--    and are all updated before any commits, so each needs its own room:
--    pages are filled to half. Rows written before this migration keep the
--    fill they had.
ALTER TABLE card_payments SET (fillfactor = 50);

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

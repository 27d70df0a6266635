-- 0015: a payment order's references checked once per statement (issue 11).
--
-- Every pay inserts a pay_orders row; its two foreign keys (the account paid
-- from, and for a cancel the pay it cancels) cost a row trigger, a keyed
-- lookup and a row lock per order (measured: the second most frequent
-- statement of a pay batch). The same is checked here once per statement,
-- with the new rows as a transition table, by keyed lookups (LATERAL ..
-- LIMIT 1, inside a function that never plans scans or hash or merge joins:
-- see 0013): an order naming an unknown account or original order is
-- refused with foreign_key_violation (SQLSTATE 23503), as the keys refused
-- it. A referenced row can never go away: the database refuses deleting or
-- truncating accounts and payment orders, and changing the keys involved
-- (no code does any of this; the foreign keys of other tables to accounts
-- stay as they were).
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_account_id_fkey,
    DROP CONSTRAINT pay_orders_original_order_id_fkey;

CREATE FUNCTION pay_orders_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.order_id INTO bad FROM new_orders n
      LEFT JOIN LATERAL (SELECT true AS ok FROM accounts a WHERE a.account_id = n.account_id LIMIT 1) a ON true
      LEFT JOIN LATERAL (SELECT true AS ok FROM pay_orders o WHERE o.order_id = n.original_order_id LIMIT 1) o ON true
     WHERE a.ok IS NULL OR (n.original_order_id IS NOT NULL AND o.ok IS NULL)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payment order % names an unknown account or original order', bad.order_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
ALTER FUNCTION pay_orders_refs() SET enable_seqscan = off;
ALTER FUNCTION pay_orders_refs() SET enable_hashjoin = off;
ALTER FUNCTION pay_orders_refs() SET enable_mergejoin = off;
CREATE TRIGGER pay_orders_refs AFTER INSERT ON pay_orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION pay_orders_refs();

CREATE FUNCTION pay_orders_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % refused: payment orders name its rows', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER accounts_keep BEFORE DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION pay_orders_keep();
CREATE TRIGGER accounts_keep_id BEFORE UPDATE OF account_id ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION pay_orders_keep();
CREATE TRIGGER pay_orders_keep BEFORE DELETE OR TRUNCATE ON pay_orders
    FOR EACH STATEMENT EXECUTE FUNCTION pay_orders_keep();
CREATE TRIGGER pay_orders_keep_refs BEFORE UPDATE OF order_id, account_id, original_order_id ON pay_orders
    FOR EACH STATEMENT EXECUTE FUNCTION pay_orders_keep();

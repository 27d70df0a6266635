-- 0021: settlement's activation of a card order is a HOT update (issue 11).
--
-- Activation sets an order's status, credited, released and activated_at
-- (markActivated, one statement per slice). PostgreSQL writes an update
-- without new index entries (HOT) only when no column that any index of the
-- table names, in its key or in its predicate, changes value. Two partial
-- indexes named the columns activation changes in their predicates, so no
-- order update was ever HOT (0 of 973,900 at a million records): each wrote
-- a new entry in every index of card_orders (the primary key, account_id's
-- unique key) and dirtied their pages.
--
--   card_orders_releasing (order_id) WHERE status = 'active' AND credited
--       AND released < installments: RunDaily's scan for installment cards
--       that still have parts to release;
--   card_orders_pending_by_date (business_date) WHERE status = 'pending':
--       RunDaily's scan for orders pending past the completion window.
--
-- No index that serves those two scans by key can avoid naming a column
-- that changes (an index on installments > 1 alone would read every
-- installment card ever sold, daily; one on business_date alone every order
-- ever sold). So the two sets become two small tables of their own, kept
-- exact by statement triggers on card_orders, and card_orders keeps only
-- indexes on columns activation does not change: order_id, account_id, and
-- (customer_id, product_id) WHERE filling, where filling is already false
-- when an order is fully paid, so its value does not change either.
--
-- 1. card_orders_pending holds exactly the orders whose status is 'pending',
--    keyed by (business_date, order_id): RunDaily reads the range up to the
--    window's cutoff, as it read the partial index. An order's business_date
--    never changes (no code writes it; now the database refuses it), so the
--    key a trigger deletes by is the one it inserted.
--
-- 2. card_orders_releasing holds exactly the installment orders (installments
--    > 1) that are active, credited and not released to the end: the rows of
--    the old index, less orders of one installment, which have no part after
--    the first to release (an order is credited with released = 1), so
--    RunDaily's releases are the same.
--
-- 3. After every INSERT and every UPDATE of card_orders, one statement
--    trigger reads the statement's new rows (a transition table) and puts
--    each order in or takes it out of the two tables as its new values say:
--    whatever path writes an order (the POS, settlement, offline replay,
--    repeal, refunds, manual activation, a migration), the tables follow.
--    Concurrent writers of one order are serialized by its row lock, held
--    until commit, so the trigger's reads of the side tables see the
--    previous writer's result. A settlement slice's activation is then one
--    keyed delete per order from card_orders_pending (and one insert into
--    card_orders_releasing per installment card) instead of a non-HOT update.
--    Inside the functions the planner reaches the side tables by key only,
--    whatever the session's first statements saw (as postings_apply, 0013).
--
-- 4. Both tables are filled from the orders as they stand; card_orders is
--    locked first, so that no write is missed between the backfill and the
--    triggers. The lock is the strongest one (DROP INDEX needs it): taken
--    first, it waits behind a request that has read its order FOR UPDATE
--    and will write it; a weaker first lock upgraded later deadlocked with
--    such a request (TestMigration0021QueuesBehindATerminal, found by a
--    review).
--
-- 5. Rows come and go in both tables all day; autovacuum does not truncate
--    their empty tail pages (that takes an ACCESS EXCLUSIVE lock, which
--    would stall the writers of card_orders behind it).

LOCK TABLE card_orders IN ACCESS EXCLUSIVE MODE;

CREATE TABLE card_orders_pending (
    business_date date NOT NULL,
    order_id      text NOT NULL,
    PRIMARY KEY (business_date, order_id)
) WITH (vacuum_truncate = false);
INSERT INTO card_orders_pending (business_date, order_id)
SELECT business_date, order_id FROM card_orders WHERE status = 'pending';
DROP INDEX card_orders_pending_by_date;

-- The old index has the new table's name: renamed first, it serves the
-- backfill, then goes.
ALTER INDEX card_orders_releasing RENAME TO card_orders_releasing_0002;
CREATE TABLE card_orders_releasing (
    order_id text PRIMARY KEY
) WITH (vacuum_truncate = false);
INSERT INTO card_orders_releasing (order_id)
SELECT order_id FROM card_orders
 WHERE status = 'active' AND credited AND released < installments AND installments > 1;
DROP INDEX card_orders_releasing_0002;

CREATE FUNCTION card_orders_track_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO card_orders_pending (business_date, order_id)
    SELECT n.business_date, n.order_id FROM new_orders n WHERE n.status = 'pending';
    INSERT INTO card_orders_releasing (order_id)
    SELECT n.order_id FROM new_orders n
     WHERE n.installments > 1 AND n.status = 'active' AND n.credited AND n.released < n.installments;
    RETURN NULL;
END $$;
CREATE TRIGGER card_orders_track_insert AFTER INSERT ON card_orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION card_orders_track_insert();

-- An order that was a member stays one (ON CONFLICT DO NOTHING: an order
-- whose payment changed is still pending); one that was not is probed and
-- left out. Orders of one installment never touch card_orders_releasing.
CREATE FUNCTION card_orders_track_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM card_orders_pending p USING new_orders n
     WHERE n.status <> 'pending' AND p.business_date = n.business_date AND p.order_id = n.order_id;
    INSERT INTO card_orders_pending (business_date, order_id)
    SELECT n.business_date, n.order_id FROM new_orders n WHERE n.status = 'pending'
    ON CONFLICT DO NOTHING;
    DELETE FROM card_orders_releasing r USING new_orders n
     WHERE n.installments > 1 AND NOT (n.status = 'active' AND n.credited AND n.released < n.installments)
       AND r.order_id = n.order_id;
    INSERT INTO card_orders_releasing (order_id)
    SELECT n.order_id FROM new_orders n
     WHERE n.installments > 1 AND n.status = 'active' AND n.credited AND n.released < n.installments
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
ALTER FUNCTION card_orders_track_update() SET enable_seqscan = off;
ALTER FUNCTION card_orders_track_update() SET enable_hashjoin = off;
ALTER FUNCTION card_orders_track_update() SET enable_mergejoin = off;
CREATE TRIGGER card_orders_track_update AFTER UPDATE ON card_orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION card_orders_track_update();

CREATE FUNCTION card_orders_keep_date() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'changing an order''s business_date refused: card_orders_pending is keyed by it'
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER card_orders_keep_date BEFORE UPDATE OF business_date ON card_orders
    FOR EACH STATEMENT EXECUTE FUNCTION card_orders_keep_date();

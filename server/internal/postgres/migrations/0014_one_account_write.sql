-- 0014: one write per account when settlement activates a card (issue 11).
--
-- Until now settlement wrote an activated card's account twice in one
-- transaction: the ledger trigger moved its balance, then the activation set
-- its status. The second write of a row that the transaction already wrote
-- also runs the row's foreign-key checks again (customers, products: two
-- lookups and a KEY SHARE lock, a WAL record, per card), and was never HOT
-- (activated_at is indexed); with both versions on the page, half-filled
-- pages ran out of room.
--
-- 1. The ledger trigger makes a pending card account active in the write
--    that moves its balance, when the account's order says it is active and
--    credited (the order is written first, in the same transaction). That is
--    settlement's order of writes; the other activation paths (card sales,
--    offline, manual) post first and set the account afterwards, as before,
--    and then the trigger finds the order still pending and leaves the
--    status alone. A pay's legs never name a pending account (the pay is
--    refused first), so the hot path costs nothing more: the order is looked
--    up only for pending card accounts.
--
-- 2. accounts_by_customer no longer holds activated_at, so that activating an
--    account (status, activated_at, balance: no indexed column) is a HOT
--    update. Its users look a customer's accounts up by customer_id (and
--    kind); the spend order (activated_at, account_id) now sorts the few
--    accounts of one customer instead of reading them in index order.
--
-- 3. The balance check reads the statement's new postings only. Every
--    statement that ever inserted postings was refused unless each ledger
--    transaction it touched summed to zero over all its postings (0010; the
--    deferred per-row check before it, at every commit), and the ledger is
--    append-only; so a transaction's earlier postings sum to zero, and its
--    total after this statement is zero exactly when this statement's legs of
--    it sum to zero. What is refused is unchanged; the per-transaction read
--    of postings (an index probe and heap fetches per transaction) is gone.
--    VerifyLedger still proves every transaction over the whole ledger.

DROP INDEX accounts_by_customer;
CREATE INDEX accounts_by_customer ON accounts (customer_id, kind);

CREATE OR REPLACE FUNCTION postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    moved bigint;
    bad record;
BEGIN
    WITH d AS (SELECT account_id, sum(amount) AS delta FROM new_postings
               WHERE account_id NOT LIKE 'SYS-%' GROUP BY account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta,
                      status = CASE WHEN a.status = 'pending' AND a.kind = 'card' AND EXISTS
                                         (SELECT 1 FROM card_orders o WHERE o.account_id = a.account_id
                                             AND o.status = 'active' AND o.credited)
                                    THEN 'active' ELSE a.status END,
                      activated_at = CASE WHEN a.status = 'pending' AND a.kind = 'card'
                                          THEN coalesce((SELECT o.activated_at FROM card_orders o
                                                          WHERE o.account_id = a.account_id
                                                            AND o.status = 'active' AND o.credited),
                                                        a.activated_at)
                                          ELSE a.activated_at END
               FROM d
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

    SELECT n.txn_id, t.ok IS NULL AS missing, n.total INTO bad
      FROM (SELECT txn_id, sum(amount) AS total FROM new_postings GROUP BY txn_id) n
      LEFT JOIN LATERAL (SELECT true AS ok FROM ledger_txns t WHERE t.txn_id = n.txn_id LIMIT 1) t ON true
     WHERE t.ok IS NULL OR n.total <> 0
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
-- As 0013: keyed plans only, whatever the session's first statements saw.
ALTER FUNCTION postings_apply() SET enable_seqscan = off;
ALTER FUNCTION postings_apply() SET enable_hashjoin = off;
ALTER FUNCTION postings_apply() SET enable_mergejoin = off;

-- 4. The reference checks of settlement_trades and settlement_activations
--    (0012) look the run up once per statement instead of once per row: a
--    statement writes a slice's rows, all of one run. What they refuse is
--    unchanged (foreign_key_violation).
CREATE OR REPLACE FUNCTION settlement_trades_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.trade_id INTO bad FROM (SELECT DISTINCT run_id FROM new_trades) r
      CROSS JOIN LATERAL (SELECT trade_id FROM new_trades n WHERE n.run_id = r.run_id LIMIT 1) n
     WHERE NOT EXISTS (SELECT 1 FROM settlement_runs x WHERE x.run_id = r.run_id)
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT n.trade_id INTO bad FROM new_trades n
          LEFT JOIN LATERAL (SELECT true AS ok FROM card_payments p WHERE p.payment_id = n.payment_id LIMIT 1) p ON true
          LEFT JOIN LATERAL (SELECT true AS ok FROM card_orders o WHERE o.order_id = n.order_id LIMIT 1) o ON true
         WHERE p.ok IS NULL OR o.ok IS NULL
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement trade % names an unknown run, payment or order', bad.trade_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION settlement_activations_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.order_id INTO bad FROM (SELECT DISTINCT run_id FROM new_activations WHERE run_id IS NOT NULL) r
      CROSS JOIN LATERAL (SELECT order_id FROM new_activations n WHERE n.run_id = r.run_id LIMIT 1) n
     WHERE NOT EXISTS (SELECT 1 FROM settlement_runs x WHERE x.run_id = r.run_id)
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT n.order_id INTO bad FROM new_activations n
          LEFT JOIN LATERAL (SELECT true AS ok FROM card_orders o WHERE o.order_id = n.order_id LIMIT 1) o ON true
         WHERE o.ok IS NULL
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement activation of % names an unknown order or run', bad.order_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

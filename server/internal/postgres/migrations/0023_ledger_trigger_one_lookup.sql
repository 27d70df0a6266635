-- 0023: the ledger trigger looks a pending card account's order up once
-- instead of twice (issue 11).
--
-- postings_apply (0014) makes a pending card account active, with its
-- order's activated_at, when the order is active and credited: settlement
-- activates about a million cards a night this way. It asked card_orders
-- twice for each such account, once for the status (EXISTS) and once for
-- activated_at, two probes of card_orders_account_id_key and two heap reads
-- of the same order. Both columns now come from one lookup, a row
-- sub-select assigned to (status, activated_at). The lookup is still gated
-- on the account being a pending card account (a constant filter on the
-- account's row, checked before any probe), so a pay's accounts, which are
-- active, cost nothing more. What is written is unchanged: the order found
-- makes the account active with coalesce(order's activated_at, account's);
-- no order found leaves both columns as they were. The rest of the trigger
-- (the balances, the refused legs and transactions) is 0014's, word for
-- word.
CREATE OR REPLACE FUNCTION postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    moved bigint;
    bad record;
BEGIN
    WITH d AS (SELECT account_id, sum(amount) AS delta FROM new_postings
               WHERE account_id NOT LIKE 'SYS-%' GROUP BY account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta,
                      (status, activated_at) = (
                          SELECT CASE WHEN o.ok THEN 'active' ELSE a.status END,
                                 coalesce(o.activated_at, a.activated_at)
                            FROM (SELECT) one
                            LEFT JOIN LATERAL (SELECT true AS ok, c.activated_at FROM card_orders c
                                                WHERE a.status = 'pending' AND a.kind = 'card'
                                                  AND c.account_id = a.account_id
                                                  AND c.status = 'active' AND c.credited) o ON true)
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
-- As 0013, 0014: keyed plans only, whatever the session's first statements saw.
ALTER FUNCTION postings_apply() SET enable_seqscan = off;
ALTER FUNCTION postings_apply() SET enable_hashjoin = off;
ALTER FUNCTION postings_apply() SET enable_mergejoin = off;

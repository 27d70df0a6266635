-- 0021: the ledger writer moves the balances itself (issue 11).
--
-- Until now every statement that inserted postings ended in the statement
-- trigger postings_apply (0010, 0013, 0014): a PL/pgSQL call that read the
-- statement's postings back from a transition table, moved each customer
-- account's balance by the sum of its legs, and checked each ledger
-- transaction against ledger_txns and for a zero sum. On the pay path that
-- call was about a third of the group commit's write (measured with pgbench
-- replaying the write of a batch of 7 pays: 760 µs a statement with it, 431
-- without it and its work); in settlement it was 22.8 s of PostgreSQL's 124 s
-- for a million records.
--
-- Now the one ledger writer (ledger.go: ledgerCTE, ledgerManyCTE) does that
-- work in its own statement, set-based: it sums each account's legs, moves
-- the customer accounts by those sums in the same statement (the balance
-- CHECK still refuses an overdraft there, 23514), and inserts each leg only
-- if its transaction sums to zero and its account is a system account or a
-- customer account the statement moved; otherwise the statement fails with
-- ledger_refused below, with the codes the trigger raised (23000 a
-- transaction that does not balance, 23503 an unknown account). Its legs
-- join the ledger transactions it inserts, so a leg of no transaction
-- cannot be written. A pending card account whose order is active and
-- credited becomes active in the same write, as 0014 made the trigger do.
--
-- The writer marks its transaction (the setting mapfront.ledger_writer), and
-- the trigger runs only for a statement in a transaction the writer has not
-- marked: any other statement that inserts postings (a hand edit, a restore
-- script, a statement in a test) is checked by the trigger exactly as
-- before. What the database refuses is unchanged. The mark lasts until the
-- transaction ends; no code inserts postings but the writer (a test greps
-- for it), so a marked transaction has no statement the trigger would have
-- had to check.
CREATE FUNCTION ledger_refused(code text, msg text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', msg USING ERRCODE = code;
END $$;

DROP TRIGGER postings_apply ON postings;
CREATE TRIGGER postings_apply AFTER INSERT ON postings REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT WHEN (current_setting('mapfront.ledger_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION postings_apply();

-- 0013: the ledger trigger plans index lookups by key only (issue 11).
--
-- postings_apply (0010, 0012) touches exactly the accounts and ledger
-- transactions that its statement's new postings name: one or two for a
-- pay, a few dozen for a batch of pays, a few thousand for a settlement
-- slice. PL/pgSQL plans each of its statements once per session and keeps
-- the plan; one made while accounts was small (a fresh database, the first
-- top-ups) hashes the whole table and keeps doing so (measured with
-- pg_stat_statements: its UPDATE of accounts took 3 ms per call at 10,000
-- accounts). Inside the function sequential scans and hash and merge joins
-- are off, whatever the caller's settings.
ALTER FUNCTION postings_apply() SET enable_seqscan = off;
ALTER FUNCTION postings_apply() SET enable_hashjoin = off;
ALTER FUNCTION postings_apply() SET enable_mergejoin = off;

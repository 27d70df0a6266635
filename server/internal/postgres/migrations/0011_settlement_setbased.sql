-- 0011: set-based settlement (issue 11). The staged records of a run are
-- matched by several workers at once, each taking the records whose terminal
-- key hashes to its part (computed by the server as it stages them), so that
-- no two workers ever name the same payment and each sees the records of a
-- terminal key in line order. A record that would open a card from the file
-- is not opened by them: it is marked open_later and applied by one last
-- pass in line order, so that what the openings see (customers, their
-- filling orders, a terminal key opened by an earlier line) and the order in
-- which they file their exceptions are those of one pass over the file.
ALTER TABLE settlement_staging
    ADD COLUMN part       smallint NOT NULL DEFAULT 0,
    ADD COLUMN open_later boolean NOT NULL DEFAULT false;

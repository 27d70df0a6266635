-- 0005: ID numbers sealed at rest (SPEC section 7). A customer's ID number is
-- kept as id_sealed (AES-256-GCM under a key derived from the master key,
-- bound to the mobile number), id_index (a keyed blind index, HMAC-SHA256,
-- for the 10016 comparison) and id_masked (first 6 and last 4, what
-- AdminService shows). Every sealed value and index starts with the id of
-- the master key that wrote it (see server/internal/secret).
--
-- SQL cannot encrypt: this migration only adds the columns. The server's
-- Go step (mapfront.SealPendingIDs, run by `server migrate` and `serve`
-- before serving) seals the rows still in clear in batches and sets their
-- id_number to NULL. The CHECK keeps each row in exactly one of the two
-- forms, so a row is never both sealed and clear; new rows are written
-- sealed only.

ALTER TABLE customers
    ALTER COLUMN id_number DROP NOT NULL,
    ADD COLUMN id_sealed bytea,
    ADD COLUMN id_index  bytea,
    ADD COLUMN id_masked text,
    ADD CONSTRAINT customers_id_sealed_xor_clear CHECK (
        (id_number IS NULL) = (id_sealed IS NOT NULL)
        AND (id_sealed IS NULL) = (id_index IS NULL)
        AND (id_sealed IS NULL) = (id_masked IS NULL));

-- Finds the rows left to seal without a scan once none is left.
CREATE INDEX customers_clear_id ON customers (customer_id) WHERE id_number IS NOT NULL;

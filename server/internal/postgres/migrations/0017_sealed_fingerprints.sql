-- 0017: open_card keys' fingerprints sealed (SPEC section 7: no whole ID
-- number readable). An open_card key's fingerprint, what a repeat of the key
-- is compared with (SPEC section 5), is an unkeyed SHA-256 of the request's
-- fields, the ID number among them; the others are stored in clear, and the
-- ID number has few likely values (region, birth date, sequence, check
-- character), so trying them against the digest recovers it. From now on the
-- digest is stored sealed: AES-256-GCM under a subkey of the master key,
-- bound to the terminal key, with the key id in front (server/internal/secret).
-- A repeat opens it and compares; rotate-keys re-seals it under the new key
-- as it does the ID numbers, so a repeat compares exactly after the old key is
-- gone. Pays' and cancels' fingerprints digest no ID number and stay as they
-- are.
--
-- SQL cannot encrypt: as with 0005, the Go step (mapfront.SealPendingFingerprints,
-- run by `server migrate` and `serve` before serving, and by rotate-keys)
-- seals the digests of the rows written before this migration as they are,
-- so those keys keep answering their repeats. The CHECK refuses an open_card
-- fingerprint that is not sealed (67 bytes: the format tag "MK" 1 and the key
-- id, 7; the nonce, 12; the digest, 32; the GCM tag, 16) in every row written
-- or changed from now on; it is NOT VALID only so that the rows waiting for
-- the Go step can be added to it without a check here.
ALTER TABLE terminal_requests ADD CONSTRAINT terminal_requests_open_card_fingerprint_sealed CHECK (
    kind <> 'open_card' OR fingerprint IS NULL
    OR (octet_length(fingerprint) = 67 AND substring(fingerprint FROM 1 FOR 3) = '\x4d4b01'::bytea)) NOT VALID;

-- Finds the rows left to seal without a scan once none is left.
CREATE INDEX terminal_requests_clear_fingerprint ON terminal_requests (terminal_id, batch_no, terminal_order_id)
    WHERE kind = 'open_card' AND octet_length(fingerprint) = 32;

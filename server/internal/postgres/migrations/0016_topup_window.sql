-- Four-eyes over a window (SPEC section 7, "large top-ups"): a cash top-up
-- needs a supervisor when it, together with the account's top-ups made
-- without one in the last 24 hours, comes to more than the approval amount,
-- so that ten top-ups just under the amount are not ten top-ups without a
-- second person. proposal_id says which top-ups a supervisor approved (NULL:
-- made directly); the direct ones of an account are summed by the index.
ALTER TABLE topups ADD COLUMN proposal_id bigint REFERENCES proposals;

-- Top-ups approved before this migration: their proposal holds the reference.
UPDATE topups t SET proposal_id = p.proposal_id
  FROM proposals p
 WHERE p.kind = 'topup_cash' AND p.state = 'approved' AND p.args->>'reference' = t.reference;

CREATE INDEX topups_direct_window ON topups (account_id, created_at) WHERE proposal_id IS NULL;

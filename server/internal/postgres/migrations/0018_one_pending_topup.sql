-- 0018: at most one pending top-up proposal per reference (SPEC section 7,
-- four eyes). A top-up's reference sent again while its proposal waits for
-- a supervisor is answered with that proposal instead of filing another
-- (postgres.CreateProposal inserts with ON CONFLICT on this index), and two
-- resends racing each other cannot file two either.
--
-- Pending duplicates filed before this migration: per reference the newest
-- stays pending (it expires last), the older ones are rejected by the
-- identity 'system' with a note naming the one kept, each with its record in
-- the audit trail. Approving any of them credited the reference at most once
-- (topups.reference is the primary key), so no money moved twice. A
-- proposal whose proposer is itself named 'system' (a certificate may say
-- so) is rejected by 'migration.0018' instead: 0008's CHECK refuses a
-- decision by the proposer.
WITH pending AS (
    SELECT proposal_id, max(proposal_id) OVER (PARTITION BY args->>'reference') AS kept
    FROM proposals WHERE kind = 'topup_cash' AND state = 'pending'),
rejected AS (
    UPDATE proposals p SET state = 'rejected',
        decider = CASE WHEN p.proposer = 'system' THEN 'migration.0018' ELSE 'system' END, decider_role = 'system',
        decision_note = '重复提案，保留提案' || d.kept || '（迁移0018）', decided_at = now()
    FROM pending d
    WHERE p.proposal_id = d.proposal_id AND d.proposal_id <> d.kept
    RETURNING p.proposal_id, p.target, p.proposer, p.decider, p.decision_note)
INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
SELECT now(), decider, 'system', 'migration.0018', target,
       jsonb_build_object('proposal_id', proposal_id, 'proposer', proposer, 'kind', 'topup_cash', 'note', decision_note),
       'ok', 0
FROM rejected;

CREATE UNIQUE INDEX proposals_one_pending_topup ON proposals ((args->>'reference'))
    WHERE kind = 'topup_cash' AND state = 'pending';

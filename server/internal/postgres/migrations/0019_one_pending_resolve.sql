-- 0019: at most one pending resolution proposal per queue item (SPEC
-- section 6, 人工处理; section 7, four eyes). A resolution asked again while
-- one waits for a supervisor is answered with that proposal, and another
-- resolution of the same item is refused (10003) until the first is decided
-- (postgres.CreateProposal inserts with ON CONFLICT on this index), so the
-- supervisors' queue never holds two decisions for one item. Approving two
-- did no harm before (resolving is a conditional transition: the second
-- answered "此前已处理，未变动"), but one of them was always a dead letter.
--
-- Pending duplicates filed before this migration: per item the newest stays
-- pending, the older ones are rejected as 0018 rejects duplicate top-up
-- proposals, each with its record in the audit trail.
WITH pending AS (
    SELECT proposal_id, max(proposal_id) OVER (PARTITION BY target) AS kept
    FROM proposals WHERE kind = 'resolve_exception' AND state = 'pending'),
rejected AS (
    UPDATE proposals p SET state = 'rejected',
        decider = CASE WHEN p.proposer = 'system' THEN 'migration.0019' ELSE 'system' END, decider_role = 'system',
        decision_note = '重复提案，保留提案' || d.kept || '（迁移0019）', decided_at = now()
    FROM pending d
    WHERE p.proposal_id = d.proposal_id AND d.proposal_id <> d.kept
    RETURNING p.proposal_id, p.target, p.proposer, p.decider, p.decision_note)
INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
SELECT now(), decider, 'system', 'migration.0019', target,
       jsonb_build_object('proposal_id', proposal_id, 'proposer', proposer, 'kind', 'resolve_exception', 'note', decision_note),
       'ok', 0
FROM rejected;

CREATE UNIQUE INDEX proposals_one_pending_resolve ON proposals (target)
    WHERE kind = 'resolve_exception' AND state = 'pending';

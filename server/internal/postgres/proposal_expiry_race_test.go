package postgres

import (
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// An expired proposal a supervisor is deciding right now (its row locked,
// as DecideProposal holds it) is not waited for by a resend of what it
// proposes: the resend answers it as the pending proposal, files nothing
// and records no replacement. Waiting would deadlock a top-up's approval,
// which holds the row and then waits for the reference's lock that the
// resend holds (found by review). Once the decision is made, the next
// resend files a new proposal.
func TestResendDoesNotWaitForADecisionInProgress(t *testing.T) {
	e := newEnv(t)
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	alice := as(e.ctx, "alice", "admin")
	const mobile = "13800009991"
	newPayer(t, e, mobile, 0)
	_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "x-1")
	if err != nil || p == nil {
		t.Fatalf("propose: %v %+v", err, p)
	}
	e.clock.now = p.ExpiresAt.Add(time.Minute)

	// A decision in progress: DecideProposal's row lock.
	bob, err := e.store.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Rollback(e.ctx)
	if _, err := bob.Exec(e.ctx, `SELECT 1 FROM proposals WHERE proposal_id = $1 FOR UPDATE`, p.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var q *mapfront.Proposal
	go func() {
		defer close(done)
		_, _, q, err = e.admin.SubmitTopUp(alice, mobile, 200_00, "x-1")
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the resend waited for the decision in progress")
	}
	if err != nil || q == nil || q.ID != p.ID {
		t.Fatalf("resend during the decision: %v %+v, want proposal %d", err, q, p.ID)
	}
	if n := e.scalar(t, `SELECT count(*) FROM proposals WHERE args->>'reference' = 'x-1'`); n != 1 {
		t.Fatalf("%d proposals of x-1, want 1", n)
	}
	if n := e.scalar(t, `SELECT count(*) FROM audit_log WHERE args ? 'replaced_expired'`); n != 0 {
		t.Fatalf("%d audit records name a replacement that did not happen", n)
	}

	// The supervisor rejects it; the next resend files a new proposal and
	// replaces nothing (the rejection was bob's).
	if _, err := bob.Exec(e.ctx, `UPDATE proposals SET state = 'rejected', decider = 'bob', decider_role = 'supervisor',
    decision_note = '不同意', decided_at = $2 WHERE proposal_id = $1`, p.ID, e.clock.now); err != nil {
		t.Fatal(err)
	}
	if err := bob.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	_, _, r, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "x-1")
	if err != nil || r == nil || r.ID == p.ID || r.State != mapfront.ProposalPending {
		t.Fatalf("resend after the rejection: %v %+v", err, r)
	}
	if n := e.scalar(t, `SELECT count(*) FROM audit_log WHERE args ? 'replaced_expired'`); n != 0 {
		t.Fatalf("%d audit records name a replacement that did not happen", n)
	}
	if old, _ := e.store.GetProposal(e.ctx, p.ID); old.Decider != "bob" {
		t.Fatalf("the rejected proposal: %+v", old)
	}
	e.verify(t)
}

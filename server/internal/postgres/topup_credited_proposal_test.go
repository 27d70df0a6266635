package postgres

import (
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// A pending top-up proposal whose reference was credited before by
// something else (a direct top-up while it waited: only code before
// migration 0018 and its reference lock could leave that) is approved
// with a result that says nothing moved, and nothing moves: the result
// and its audit record never claim a credit that did not happen (found by
// review).
func TestApproveProposalOfCreditedReference(t *testing.T) {
	e := newEnv(t)
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	alice, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "bob", "supervisor")
	const mobile = "13800009981"
	cash := newPayer(t, e, mobile, 0)
	if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, 50_00, "legacy-1"); err != nil || p != nil {
		t.Fatalf("direct: %v %+v", err, p)
	}
	// The proposal the old code could file beside it.
	var id int64
	if err := e.store.pool.QueryRow(e.ctx, `INSERT INTO proposals (kind, target, args, proposer, proposer_role, created_at, expires_at)
VALUES ('topup_cash', 'customer:' || $1::text, jsonb_build_object('mobile', $1::text, 'amount', 5000, 'reference', 'legacy-1'),
        'alice', 'admin', $2, $3) RETURNING proposal_id`, mobile, e.clock.now, e.clock.now.Add(time.Hour)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	before := e.balance(t, cash)
	q, _, err := e.admin.ApproveProposal(bob, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if after := e.balance(t, cash); after != before {
		t.Errorf("balance %d -> %d: the approval credited the reference again", before, after)
	}
	if q.State != mapfront.ProposalApproved || !strings.Contains(q.Result, "此前已入账，未变动") {
		t.Errorf("proposal %d: %s %q, want approved with a result saying nothing moved", id, q.State, q.Result)
	}
	// A proposal that credits says so, as before.
	_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "fresh-1")
	if err != nil || p == nil {
		t.Fatalf("above the amount: %v %+v, want a proposal", err, p)
	}
	q, _, err = e.admin.ApproveProposal(bob, p.ID, "")
	if err != nil || !strings.Contains(q.Result, "充值200.00元") || strings.Contains(q.Result, "未变动") {
		t.Fatalf("approve %d: %v %q", p.ID, err, q.Result)
	}
	e.verify(t)
}

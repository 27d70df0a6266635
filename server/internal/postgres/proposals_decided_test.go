package postgres

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// A decision on a proposal no longer pending is recorded as what it was:
// a third supervisor approving a rejected proposal is answered already and
// recorded ok with the proposal's state and "nothing decided", never as an
// approval; the proposer deciding its own proposal is refused (10002),
// pending or decided, and recorded refused with 10002, never ok and never
// 10000.
func TestProposalDecisionAfterDecisionAudited(t *testing.T) {
	e := newEnv(t)
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	alice, bob, carol := as(e.ctx, "alice", "admin"), as(e.ctx, "bob", "supervisor"), as(e.ctx, "carol", "supervisor")
	const mobile = "13800007001"
	cash := newPayer(t, e, mobile, 0)

	// (c) The proposer approving its own pending proposal.
	_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "big-1")
	if err != nil || p == nil {
		t.Fatalf("propose: %v %+v", err, p)
	}
	if _, _, err := e.admin.ApproveProposal(alice, p.ID, "self"); !errors.Is(err, mapfront.ErrSelfApproval) ||
		mapfront.ErrorCode(err) != mapfront.CodeTerminal {
		t.Fatalf("proposer approves its pending proposal: %v (errcode %d), want ErrSelfApproval 10002", err, mapfront.ErrorCode(err))
	}
	if q, _, err := e.admin.RejectProposal(bob, p.ID, "不认可"); err != nil || q.State != mapfront.ProposalRejected {
		t.Fatalf("reject: %v %+v", err, q)
	}
	// (a) A third supervisor approving the rejected proposal: a repeat.
	q, already, err := e.admin.ApproveProposal(carol, p.ID, "批准")
	if err != nil || !already || q.State != mapfront.ProposalRejected || q.Decider != "bob" {
		t.Fatalf("carol approves the rejected proposal: %v already %v %+v", err, already, q)
	}
	// (b) The proposer approving its own decided proposal: refused too.
	if _, _, err := e.admin.ApproveProposal(alice, p.ID, "self"); !errors.Is(err, mapfront.ErrSelfApproval) ||
		mapfront.ErrorCode(err) != mapfront.CodeTerminal {
		t.Fatalf("proposer approves its decided proposal: %v (errcode %d), want ErrSelfApproval 10002", err, mapfront.ErrorCode(err))
	}
	if b := e.balance(t, cash); b != 0 {
		t.Fatalf("money moved: %d", b)
	}

	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: "customer:" + mobile})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		identity, outcome string
		errcode           int
		args              map[string]any
	}
	var decisions []rec // oldest first
	for i := len(trail) - 1; i >= 0; i-- {
		r := trail[i]
		var args map[string]any
		if err := json.Unmarshal([]byte(r.Args), &args); err != nil {
			t.Fatal(err)
		}
		if _, ok := args["action"]; ok || args["proposal_id"] == nil { // the proposal's and the customer's records
			continue
		}
		decisions = append(decisions, rec{r.Identity, r.Outcome, r.Errcode, args})
	}
	if len(decisions) != 4 {
		t.Fatalf("decision records %+v, want 4", decisions)
	}
	want := []struct {
		identity, outcome string
		errcode           int
		result            string
	}{
		{"alice", audit.Refused, int(mapfront.CodeTerminal), ""},
		{"bob", audit.OK, 0, ""},
		{"carol", audit.OK, 0, "already rejected by bob; nothing decided"},
		{"alice", audit.Refused, int(mapfront.CodeTerminal), ""},
	}
	for i, w := range want {
		d := decisions[i]
		if d.identity != w.identity || d.outcome != w.outcome || d.errcode != w.errcode {
			t.Errorf("record %d: %s %s %d, want %s %s %d (args %v)", i, d.identity, d.outcome, d.errcode,
				w.identity, w.outcome, w.errcode, d.args)
		}
		if d.args["proposal_id"] != float64(p.ID) || d.args["proposer"] != "alice" {
			t.Errorf("record %d args %v: want proposal_id %d and proposer alice", i, d.args, p.ID)
		}
		if w.result != "" && (d.args["result"] != w.result || d.args["state"] != mapfront.ProposalRejected) {
			t.Errorf("record %d args %v: want result %q and state rejected", i, d.args, w.result)
		}
		if d.identity == "alice" && d.args["result"] != nil {
			t.Errorf("record %d: the proposer's refused decision has a result: %v", i, d.args)
		}
	}
}

package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
)

// Four eyes through gRPC (SPEC section 7): a top-up above the limit is a
// proposal; neither an admin nor an operator may approve it, nor a
// supervisor who proposed it; a second identity with the supervisor role
// approves it and the money moves once.
func TestFourEyesOverGRPC(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(id string) mapfrontv1.AdminServiceClient {
		return mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client(id), ""))
	}
	admin, operator, supervisor, boss, auditor := client("admin"), client("operator"), client("supervisor"), client("boss"), client("auditor")
	const mobile = "13912345678"
	cash := func() int64 {
		t.Helper()
		c, err := auditor.GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: mobile})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range c.GetCustomer().GetAccounts() {
			if a.GetKind() == "cash" {
				return a.GetBalance()
			}
		}
		t.Fatal("no cash account")
		return 0
	}
	start := cash()

	// At the limit, counting the demo's own direct top-up of today (10,000.00
	// yuan): done at once. One fen more within 24 hours: a proposal.
	const demoTopUp = 1_000_000
	left := mapfront.DefaultTopUpApprovalAbove - demoTopUp
	r, err := admin.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: left, Reference: "at-limit"})
	if err != nil || r.Proposal != nil || r.Balance != start+left {
		t.Fatalf("top-up at the limit: %v %v", err, r)
	}
	start = r.Balance
	r, err = admin.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: 1, Reference: "window"})
	if err != nil || r.Proposal == nil || r.Proposal.State != "pending" || r.AccountId != "" {
		t.Fatalf("top-up past the window's limit: %v %v", err, r)
	}
	// Above: a proposal, nothing moves.
	const big = mapfront.DefaultTopUpApprovalAbove + 1
	r, err = admin.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: big, Reference: "above"})
	if err != nil || r.Proposal == nil || r.Proposal.State != "pending" || r.Proposal.Proposer != "admin" || r.AccountId != "" {
		t.Fatalf("top-up above the limit: %v %v", err, r)
	}
	id := r.Proposal.Id
	if got := cash(); got != start {
		t.Fatalf("balance %d after a proposal, want %d", got, start)
	}
	for name, c := range map[string]mapfrontv1.AdminServiceClient{"admin": admin, "operator": operator, "auditor": auditor} {
		if _, err := c.ApproveProposal(ctx, &mapfrontv1.ApproveProposalRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s ApproveProposal: %v, want PermissionDenied", name, err)
		}
	}
	// A supervisor's own proposal: refused to it, approved by another.
	own, err := boss.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: big, Reference: "boss"})
	if err != nil || own.Proposal == nil {
		t.Fatalf("boss top-up: %v %v", err, own)
	}
	if _, err := boss.ApproveProposal(ctx, &mapfrontv1.ApproveProposalRequest{Id: own.Proposal.Id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("boss approves its own proposal: %v, want PermissionDenied", err)
	}
	if _, err := boss.RejectProposal(ctx, &mapfrontv1.RejectProposalRequest{Id: own.Proposal.Id}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("boss rejects its own proposal: %v, want PermissionDenied", err)
	}
	if got := cash(); got != start {
		t.Fatalf("balance %d after refused approvals, want %d", got, start)
	}
	list, err := auditor.ListProposals(ctx, &mapfrontv1.ListProposalsRequest{State: "pending"})
	if err != nil || len(list.Proposals) != 3 { // window, above, boss
		t.Fatalf("pending proposals: %v %v", err, list)
	}

	a, err := supervisor.ApproveProposal(ctx, &mapfrontv1.ApproveProposalRequest{Id: id, Note: "ok"})
	if err != nil || a.Already || a.Proposal.State != "approved" || a.Proposal.Decider != "supervisor" || a.Proposal.Proposer != "admin" {
		t.Fatalf("approve: %v %v", err, a)
	}
	a, err = boss.ApproveProposal(ctx, &mapfrontv1.ApproveProposalRequest{Id: id})
	if err != nil || !a.Already {
		t.Fatalf("second approval: %v %v", err, a)
	}
	if rj, err := supervisor.RejectProposal(ctx, &mapfrontv1.RejectProposalRequest{Id: own.Proposal.Id}); err != nil || rj.Proposal.State != "rejected" {
		t.Fatalf("reject: %v %v", err, rj)
	}
	if got := cash(); got != start+big {
		t.Fatalf("balance %d after one approval, want %d", got, start+big)
	}

	// The customer's trail: proposed by admin, approved by supervisor.
	trail, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Target: "customer:" + mobile})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range trail.Records {
		if e.Outcome == "ok" {
			seen[e.Identity+" "+e.Method] = true
		}
	}
	// The filing of a proposal is recorded as such, not as the top-up it
	// asks for (TopUpCash is the direct top-up at the limit).
	for _, want := range []string{"admin " + mapfrontv1.AdminService_TopUpCash_FullMethodName, "admin /mapfront.v1.AdminService/ProposeTopUp",
		"supervisor " + mapfrontv1.AdminService_ApproveProposal_FullMethodName} {
		if !seen[want] {
			t.Errorf("trail lacks %q: %v", want, seen)
		}
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// as is ctx acting as identity with role, as the authorization interceptor
// (or the console) puts it.
func as(ctx context.Context, identity, role string) context.Context {
	return audit.WithActor(ctx, audit.Actor{Identity: identity, Role: role, Method: "test"})
}

// missingPayment settles 20261126 with a file that lacks a paid card sale,
// and returns the queue item (missing) and the sale's customer.
func missingPayment(t *testing.T, e *env) (mapfront.Exception, string) {
	t.Helper()
	id1, id5 := stlID("11010519900101001"), stlID("11010519900101005")
	const m1, m5 = "13800000011", "13800000015"
	stlOpen(t, e, m1, id1, "1012", "000001", 150000)
	stlOpen(t, e, m5, id5, "1012", "000006", 150000)
	e.dayOver(t, "20261126")
	if _, err := e.submit("20261126", "f1", false, []mapfront.SettlementRecord{stlRec(1, "T1", 150000, "000001", id1, m1, "1012")}, nil); err != nil {
		t.Fatal(err)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{State: "open"})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range items {
		if x.Type == mapfront.ExMissing {
			return x, m5
		}
	}
	t.Fatalf("no missing-payment item in %+v", items)
	return mapfront.Exception{}, ""
}

// Four eyes on an activation: the proposal moves nothing; its proposer
// cannot approve it; a second identity's approval activates the card once,
// however often (or concurrently) approved; both identities are in the
// audit trail of the item.
func TestProposalActivateFourEyes(t *testing.T) {
	e := newEnv(t)
	item, mobile := missingPayment(t, e)
	alice, bob := as(e.ctx, "alice", "operator"), as(e.ctx, "bob", "supervisor")
	txns := e.scalar(t, `SELECT count(*) FROM ledger_txns`)

	// Filed through ResolveException, as the gRPC edge and the console do.
	filing := audit.WithActor(e.ctx, audit.Actor{Identity: "alice", Role: "operator", Method: "/mapfront.v1.AdminService/ResolveException"})
	got, already, p, err := e.admin.SubmitResolution(filing, mapfront.Resolution{ID: item.ID, Action: mapfront.ActionActivate,
		Operator: "alice", Note: "POSP确认已收款"})
	if err != nil || already || p == nil || p.State != mapfront.ProposalPending || p.Proposer != "alice" || got.State != mapfront.ExceptionOpen {
		t.Fatalf("propose: %v %v %+v %+v", err, already, p, got)
	}
	if a := e.cardOf(t, mobile, "1012"); a.Balance != 0 || a.Status != mapfront.Pending {
		t.Fatalf("card moved before approval: %+v", a)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns`); n != txns {
		t.Fatalf("ledger moved before approval: %d, want %d", n, txns)
	}

	// The proposer cannot approve (or reject) its own proposal.
	if _, _, err := e.admin.ApproveProposal(alice, p.ID, ""); !errors.Is(err, mapfront.ErrSelfApproval) {
		t.Fatalf("self approval: %v, want ErrSelfApproval", err)
	}
	if _, _, err := e.admin.RejectProposal(alice, p.ID, ""); !errors.Is(err, mapfront.ErrSelfApproval) {
		t.Fatalf("self rejection: %v, want ErrSelfApproval", err)
	}
	if a := e.cardOf(t, mobile, "1012"); a.Balance != 0 {
		t.Fatalf("self approval moved money: %+v", a)
	}

	// Two approvals at once, then a third: one activation.
	var wg sync.WaitGroup
	results := make([]bool, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			var q *mapfront.Proposal
			q, results[i], errs[i] = e.admin.ApproveProposal(bob, p.ID, "核对无误")
			if errs[i] == nil && (q.State != mapfront.ProposalApproved || q.Decider != "bob") {
				errs[i] = errors.New("approved proposal " + q.State + " by " + q.Decider)
			}
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || results[0] == results[1] {
		t.Fatalf("concurrent approvals: %v %v, already %v", errs[0], errs[1], results)
	}
	if _, already, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || !already {
		t.Fatalf("third approval: %v %v", err, already)
	}
	if a := e.cardOf(t, mobile, "1012"); a.Balance != 200000 || a.Status != mapfront.Active {
		t.Fatalf("card after approval: %+v, want active with its face value 200000", a)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns`); n != txns+1 {
		t.Fatalf("ledger transactions %d, want %d: one activation", n, txns+1)
	}
	x, err := e.store.GetException(e.ctx, item.ID)
	if err != nil || x.State != mapfront.ExceptionResolved || x.Action != mapfront.ActionActivate {
		t.Fatalf("item after approval: %v %+v", err, x)
	}
	e.verify(t)

	// The item's trail names both: the proposal by alice, the approval that
	// executed it by bob naming alice (the repeats are recorded as ok
	// without a result); the refused self-decisions are recorded too.
	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: "exception:" + strconv.FormatInt(item.ID, 10)})
	if err != nil {
		t.Fatal(err)
	}
	var proposed, approved, refused int
	for _, r := range trail {
		switch {
		case r.Identity == "alice" && r.Outcome == audit.OK && strings.Contains(r.Args, `"proposal_id"`):
			// A filing is not recorded as the resolution it asks for.
			if r.Method != "/mapfront.v1.AdminService/ProposeResolution" {
				t.Errorf("the filing's record has method %q, want /mapfront.v1.AdminService/ProposeResolution", r.Method)
			}
			proposed++
		case r.Identity == "bob" && r.Outcome == audit.OK && strings.Contains(r.Args, `"proposer": "alice"`) && strings.Contains(r.Args, `"result": "异常`):
			approved++
		case r.Identity == "alice" && r.Outcome == audit.Refused:
			refused++
		}
	}
	if proposed != 1 || approved != 1 || refused != 2 {
		t.Errorf("trail: %d proposals, %d approvals, %d refusals; want 1, 1, 2:\n%+v", proposed, approved, refused, trail)
	}

	// An item already resolved proposes nothing.
	_, already, p2, err := e.admin.SubmitResolution(alice, mapfront.Resolution{ID: item.ID, Action: mapfront.ActionRefundOwed, Operator: "alice"})
	if err != nil || !already || p2 != nil {
		t.Fatalf("propose on a resolved item: %v %v %+v", err, already, p2)
	}
}

// A proposal past its expiry cannot be approved and moves nothing; a
// rejected one cannot be approved afterwards.
func TestProposalExpiresAndRejects(t *testing.T) {
	e := newEnv(t)
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	alice, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "bob", "supervisor")
	const mobile = "13912345678"
	cash := func() int64 {
		c, err := e.store.GetCustomer(e.ctx, mobile)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range c.Accounts {
			if a.Kind == "cash" {
				return a.Balance
			}
		}
		t.Fatal("no cash account")
		return 0
	}
	start := cash()
	// The demo's own top-up of this account is a day old: it no longer
	// counts against the window (TestTopUpApprovalWindow).
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE topups SET created_at = created_at - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}

	// At the limit: done at once; above: proposed.
	if _, bal, p, err := e.admin.SubmitTopUp(alice, mobile, 100_00, "t-at-limit"); err != nil || p != nil || bal != start+100_00 {
		t.Fatalf("top-up at the limit: %v %+v %d", err, p, bal)
	}
	_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 100_01, "t-above")
	if err != nil || p == nil || p.Kind != mapfront.ProposeTopUp || p.TopUp.Amount != 100_01 {
		t.Fatalf("top-up above the limit: %v %+v", err, p)
	}
	if got := cash(); got != start+100_00 {
		t.Fatalf("proposed top-up moved money: %d", got)
	}

	// Expired: refused with 10006, nothing moves, still listed as pending.
	e.clock.now = e.clock.now.Add(time.Hour)
	if _, _, err := e.admin.ApproveProposal(bob, p.ID, ""); mapfront.ErrorCode(err) != mapfront.CodeAccountState {
		t.Fatalf("approve expired: %v, want 10006", err)
	}
	if got := cash(); got != start+100_00 {
		t.Fatalf("expired approval moved money: %d", got)
	}
	q, err := e.store.GetProposal(e.ctx, p.ID)
	if err != nil || q.State != mapfront.ProposalPending || !q.Expired(e.clock.now) {
		t.Fatalf("expired proposal %v %+v", err, q)
	}

	// A fresh one, rejected, then approved: nothing moves.
	_, _, p, err = e.admin.SubmitTopUp(alice, mobile, 200_00, "t-reject")
	if err != nil || p == nil {
		t.Fatal(err)
	}
	r, already, err := e.admin.RejectProposal(bob, p.ID, "金额不符")
	if err != nil || already || r.State != mapfront.ProposalRejected || r.Decider != "bob" {
		t.Fatalf("reject: %v %v %+v", err, already, r)
	}
	if r, already, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || !already || r.State != mapfront.ProposalRejected {
		t.Fatalf("approve after reject: %v %v %+v", err, already, r)
	}
	if got := cash(); got != start+100_00 {
		t.Fatalf("rejected top-up moved money: %d", got)
	}

	// Approved by a second identity: credited once.
	_, _, p, err = e.admin.SubmitTopUp(alice, mobile, 300_00, "t-approve")
	if err != nil || p == nil {
		t.Fatal(err)
	}
	if q, _, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || q.State != mapfront.ProposalApproved || !strings.Contains(q.Result, "300.00") {
		t.Fatalf("approve: %v %+v", err, q)
	}
	if got := cash(); got != start+100_00+300_00 {
		t.Fatalf("approved top-up: balance %d, want %d", got, start+100_00+300_00)
	}
	list, err := e.store.ListProposals(e.ctx, mapfront.ProposalFilter{State: mapfront.ProposalPending})
	if err != nil || len(list) != 1 || list[0].TopUp.Reference != "t-above" {
		t.Fatalf("pending proposals: %v %+v", err, list)
	}
	e.verify(t)

	// The database itself refuses a decision by the proposer.
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE proposals SET state = 'approved', decider = proposer, decided_at = now() WHERE proposal_id = $1`, list[0].ID); err == nil {
		t.Error("the database accepted a self-approval")
	}
}

// Four-eyes over a window: a cash top-up needs a supervisor when it and the
// account's direct top-ups of the last 24 hours come to more than the
// approval amount, so a sum split into top-ups under the amount is still
// proposed. Approved top-ups do not count against the window; a repeated
// reference answers as the first did; top-ups older than the window no
// longer count; concurrent top-ups are counted one after the other.
func TestTopUpApprovalWindow(t *testing.T) {
	e := newEnv(t)
	const limit = 100_00
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: limit, TTL: time.Hour})
	alice, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "bob", "supervisor")
	const mobile = "13800009911"
	cash := newPayer(t, e, mobile, 0)
	direct := func(amount int64, ref string) {
		t.Helper()
		if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, amount, ref); err != nil || p != nil {
			t.Fatalf("top-up %s of %d: %v, proposal %+v; want it made directly", ref, amount, err, p)
		}
	}
	proposed := func(amount int64, ref string) *mapfront.Proposal {
		t.Helper()
		_, _, p, err := e.admin.SubmitTopUp(alice, mobile, amount, ref)
		if err != nil || p == nil || p.TopUp.Amount != amount || p.TopUp.Reference != ref {
			t.Fatalf("top-up %s of %d: %v, proposal %+v; want a proposal", ref, amount, err, p)
		}
		return p
	}

	direct(60_00, "w-1")
	direct(60_00, "w-1")        // the same reference: answered as before, not proposed
	p := proposed(60_00, "w-2") // 60 + 60 > 100
	direct(40_00, "w-3")        // 60 + 40 = 100: at the amount
	proposed(1, "w-4")
	if got := e.balance(t, cash); got != 100_00 {
		t.Fatalf("balance %d after the direct top-ups, want 10000", got)
	}
	// Approved by a supervisor: credited, and not counted against the window.
	if q, _, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || q.State != mapfront.ProposalApproved {
		t.Fatalf("approve: %v %+v", err, q)
	}
	if got := e.balance(t, cash); got != 160_00 {
		t.Fatalf("balance %d after the approval, want 16000", got)
	}
	proposed(1, "w-5")
	// A day later (the store's clock) the window is empty again.
	e.clock.now = e.clock.now.Add(mapfront.TopUpWindow + time.Second)
	direct(100_00, "w-6")

	// Concurrent top-ups of a fresh window: exactly as many made directly
	// as fit under the amount, the rest proposed.
	e.clock.now = e.clock.now.Add(mapfront.TopUpWindow + time.Second)
	before := e.balance(t, cash)
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, props := 0, 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 25_00, fmt.Sprintf("c-%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("concurrent top-up %d: %v", i, err)
			case p != nil:
				props++
			default:
				made++
			}
		}()
	}
	wg.Wait()
	if made != 4 || props != 6 {
		t.Fatalf("concurrent top-ups of 2500 under 10000: %d made, %d proposed; want 4 and 6", made, props)
	}
	if got := e.balance(t, cash); got != before+100_00 {
		t.Fatalf("balance %d after the concurrent top-ups, want %d", got, before+100_00)
	}
	// A top-up the window sent to a supervisor was not refused: the trail
	// has its proposal, and no refusal.
	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: "customer:" + mobile, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	proposals, filings := 0, 0
	for _, a := range trail {
		if strings.Contains(a.Args, `"topup_cash"`) { // a proposal's or its decision's record
			proposals++
		}
		if a.Method == "ProposeTopUp" { // as's method has no service: the op alone
			filings++
		}
		if a.Outcome != audit.OK {
			t.Errorf("audit record %s %s %s errcode %d %s: want none refused", a.Identity, a.Method, a.Outcome, a.Errcode, a.Args)
		}
	}
	// Nine proposals (w-2, w-4, w-5 and the six concurrent ones) and w-2's
	// approval.
	if filings != 9 {
		t.Errorf("%d records with method ProposeTopUp, want 9 (the filings)", filings)
	}
	if proposals != 10 {
		t.Errorf("%d records of top-up proposals in the trail (of %d records), want 10", proposals, len(trail))
	}
	e.verify(t)
}

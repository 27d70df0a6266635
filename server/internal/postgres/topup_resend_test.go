package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
)

// A four-eyes top-up sent again with its reference while its proposal waits
// is answered with that proposal, whoever resends it and however many
// resends race, and nothing is filed twice; for another mobile or amount it
// is 10003; once approved, the reference answers the top-up made; the
// database itself holds one pending proposal per reference.
func TestTopUpResendFindsPendingProposal(t *testing.T) {
	e := newEnv(t)
	const limit = 100_00
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: limit, TTL: time.Hour})
	alice, carol, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "carol", "operator"), as(e.ctx, "bob", "supervisor")
	const mobile, other = "13800009921", "13800009922"
	cash := newPayer(t, e, mobile, 0)
	newPayer(t, e, other, 0)
	filed := func(ref string) int64 {
		t.Helper()
		return e.scalar(t, `SELECT count(*) FROM proposals WHERE kind = 'topup_cash' AND args->>'reference' = $1`, ref)
	}
	proposed := func(ctx context.Context, amount int64, ref string) *mapfront.Proposal {
		t.Helper()
		_, _, p, err := e.admin.SubmitTopUp(ctx, mobile, amount, ref)
		if err != nil || p == nil || p.State != mapfront.ProposalPending || p.TopUp.Reference != ref || p.Proposer != "alice" {
			t.Fatalf("top-up %s of %d: %v, proposal %+v; want alice's pending proposal", ref, amount, err, p)
		}
		return p
	}

	// Above the amount: resent by its proposer and by another operator.
	p := proposed(alice, 200_00, "r-1")
	for _, ctx := range []context.Context{alice, carol, alice} {
		if again := proposed(ctx, 200_00, "r-1"); again.ID != p.ID || !again.ExpiresAt.Equal(p.ExpiresAt) {
			t.Fatalf("resend answered proposal %d expiring %v, want %d expiring %v", again.ID, again.ExpiresAt, p.ID, p.ExpiresAt)
		}
	}
	if _, _, _, err := e.admin.SubmitTopUp(alice, mobile, 200_01, "r-1"); mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
		t.Fatalf("the reference with another amount: %v, want 10003", err)
	}
	if _, _, _, err := e.admin.SubmitTopUp(alice, other, 200_00, "r-1"); mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
		t.Fatalf("the reference for another customer: %v, want 10003", err)
	}
	if n := filed("r-1"); n != 1 {
		t.Fatalf("%d proposals of r-1, want 1", n)
	}

	// Under the amount but over the window: proposed, and resent alike.
	if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, 60_00, "w-1"); err != nil || p != nil {
		t.Fatalf("direct top-up: %v %+v", err, p)
	}
	w := proposed(alice, 60_00, "w-2")
	if again := proposed(carol, 60_00, "w-2"); again.ID != w.ID || filed("w-2") != 1 {
		t.Fatalf("window proposal resent: %d (want %d), %d filed", again.ID, w.ID, filed("w-2"))
	}

	// Resends racing each other: one proposal, which all of them get.
	const racers = 8
	ids := make([]int64, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, q, err := e.admin.SubmitTopUp(alice, mobile, 300_00, "r-2")
			if err != nil || q == nil {
				t.Errorf("concurrent send %d: %v %+v", i, err, q)
				return
			}
			ids[i] = q.ID
		}()
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("concurrent sends got proposals %v, want one", ids)
		}
	}
	if n := filed("r-2"); n != 1 {
		t.Fatalf("%d proposals of r-2 after %d concurrent sends, want 1", n, racers)
	}
	if _, err := e.store.pool.Exec(e.ctx, `INSERT INTO proposals (kind, target, args, proposer, proposer_role, created_at, expires_at)
SELECT kind, target, args, proposer, proposer_role, created_at, expires_at FROM proposals WHERE proposal_id = $1`, ids[0]); err == nil {
		t.Fatal("the database accepted a second pending proposal of one reference")
	}

	// Approved: credited once; the reference then answers the top-up made.
	before := e.balance(t, cash)
	if q, _, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || q.State != mapfront.ProposalApproved {
		t.Fatalf("approve: %v %+v", err, q)
	}
	account, bal, q, err := e.admin.SubmitTopUp(carol, mobile, 200_00, "r-1")
	if err != nil || q != nil || account != cash || bal != before+200_00 || e.balance(t, cash) != before+200_00 {
		t.Fatalf("r-1 after approval: %v, proposal %+v, %s %d; want the top-up's answer, balance %d", err, q, account, bal, before+200_00)
	}
	if n := filed("r-1"); n != 1 {
		t.Fatalf("%d proposals of r-1 after approval and a resend, want 1", n)
	}

	// Expired: no one can approve it any more ("须重新提出"), so the resend
	// replaces it: the system rejects it and a new proposal is filed, once.
	e.clock.now = e.clock.now.Add(2 * time.Hour)
	r2 := ids[0]
	again := proposed(alice, 300_00, "r-2")
	if again.ID == r2 || again.Expired(e.clock.now) || filed("r-2") != 2 {
		t.Fatalf("resend of an expired proposal: %+v (the expired one %d), %d filed; want a new pending one", again, r2, filed("r-2"))
	}
	old, err := e.store.GetProposal(e.ctx, r2)
	if err != nil || old.State != mapfront.ProposalRejected || old.Decider != "system" {
		t.Fatalf("the expired proposal: %v %+v, want rejected by the system", err, old)
	}
	if resent := proposed(alice, 300_00, "r-2"); resent.ID != again.ID || filed("r-2") != 2 {
		t.Fatalf("resend of the new proposal: %d, want %d; %d filed", resent.ID, again.ID, filed("r-2"))
	}
	e.verify(t)
}

// Migration 0018 on pending duplicates filed before it: per reference the
// newest stays pending and the older ones are rejected by the system, with
// their records in the audit trail; approving the one kept credits once.
func TestMigration0018KeepsOnePendingTopUp(t *testing.T) {
	url, clk, keys, e := demoKeyedEnv(t)
	const mobile = "13800009931"
	cash := newPayer(t, e, mobile, 0)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := e.store.pool.Exec(e.ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Back to 0017: the index gone, the migration unrecorded, and the
	// proposals the code before filed for each send of a reference.
	exec(`DROP INDEX proposals_one_pending_topup`)
	exec(`DELETE FROM schema_migrations WHERE name = '0018_one_pending_topup.sql'`)
	fileAs := func(proposer, ref string, amount int64, state string) int64 {
		t.Helper()
		decided := map[bool]any{true: nil, false: clk.now}[state == "pending"]
		var id int64
		if err := e.store.pool.QueryRow(e.ctx, `INSERT INTO proposals (kind, target, args, proposer, proposer_role, state,
    decider, created_at, expires_at, decided_at)
VALUES ('topup_cash', 'customer:' || $1, jsonb_build_object('mobile', $1::text, 'amount', $2::bigint, 'reference', $3::text),
        $8, 'admin', $4, CASE WHEN $4 = 'pending' THEN '' ELSE 'bob' END, $5, $6, $7)
RETURNING proposal_id`, mobile, amount, ref, state, clk.now, clk.now.Add(time.Hour), decided, proposer).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	file := func(ref string, amount int64, state string) int64 { return fileAs("alice", ref, amount, state) }
	file("d-1", 200_00, "pending")
	file("d-1", 200_00, "pending")
	kept := file("d-1", 200_00, "pending")
	file("d-1", 200_00, "rejected")
	file("d-2", 300_00, "pending")
	// A proposer whose certificate names it "system": 0008's CHECK refuses
	// a decision by the proposer, so 0018 must not decide as "system" here.
	bySystem := fileAs("system", "d-3", 400_00, "pending")
	fileAs("system", "d-3", 400_00, "pending")

	m := keyedEnv(t, url, keys, clk) // applies 0018
	if n := m.scalar(t, `SELECT count(*) FROM proposals WHERE args->>'reference' = 'd-1' AND state = 'pending'
AND proposal_id = $1::bigint`, kept); n != 1 || m.scalar(t, `SELECT count(*) FROM proposals WHERE state = 'pending' AND args->>'reference' = 'd-1'`) != 1 {
		t.Fatalf("after 0018 the pending d-1 proposal is not the newest alone (%d)", kept)
	}
	if n := m.scalar(t, `SELECT count(*) FROM proposals WHERE args->>'reference' = 'd-1' AND state = 'rejected' AND decider = 'system'
AND decision_note LIKE '%' || $1::bigint || '%'`, kept); n != 2 {
		t.Fatalf("%d older d-1 proposals rejected by the system naming %d, want 2", n, kept)
	}
	if n := m.scalar(t, `SELECT count(*) FROM audit_log WHERE identity = 'system' AND method = 'migration.0018'`); n != 2 {
		t.Fatalf("%d audit records of 0018's rejections, want 2", n)
	}
	if n := m.scalar(t, `SELECT count(*) FROM proposals WHERE args->>'reference' = 'd-2' AND state = 'pending'`); n != 1 {
		t.Fatalf("d-2 alone: %d pending, want 1", n)
	}
	if n := m.scalar(t, `SELECT count(*) FROM proposals WHERE proposal_id = $1::bigint AND state = 'rejected'
AND decider = 'migration.0018'`, bySystem); n != 1 {
		t.Fatalf("the older d-3 proposal of the proposer \"system\" is not rejected by migration.0018")
	}
	if n := m.scalar(t, `SELECT count(*) FROM audit_log WHERE identity = 'migration.0018' AND method = 'migration.0018'`); n != 1 {
		t.Fatalf("%d audit records of 0018's rejection of system's proposal, want 1", n)
	}
	m.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	bob, alice := as(m.ctx, "bob", "supervisor"), as(m.ctx, "alice", "admin")
	if _, _, p, err := m.admin.SubmitTopUp(alice, mobile, 200_00, "d-1"); err != nil || p == nil || p.ID != kept {
		t.Fatalf("d-1 sent again: %v %+v, want proposal %d", err, p, kept)
	}
	if q, _, err := m.admin.ApproveProposal(bob, kept, ""); err != nil || q.State != mapfront.ProposalApproved {
		t.Fatalf("approve the kept proposal: %v %+v", err, q)
	}
	if got := m.balance(t, cash); got != 200_00 {
		t.Fatalf("balance %d, want 20000", got)
	}
	m.verify(t)
}

// A window proposal's reference sent again once the 24-hour window has room
// (SubmitTopUp asks the direct path first) is still that proposal's: with
// another amount it is 10003, with the same it answers the proposal, and
// neither credits anything; the approval then credits it once. Found by the
// review of this branch: the direct path looked only at top-ups made, and
// credited the resend (the other amount making the proposal unapprovable).
func TestTopUpResendWhilePendingIsNotCreditedDirectly(t *testing.T) {
	e := newEnv(t)
	const limit = 100_00
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: limit, TTL: 72 * time.Hour})
	alice, carol, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "carol", "operator"), as(e.ctx, "bob", "supervisor")
	const mobile, other = "13800009941", "13800009942"
	cash := newPayer(t, e, mobile, 0)
	newPayer(t, e, other, 0)
	if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, 60_00, "w-1"); err != nil || p != nil {
		t.Fatalf("direct top-up: %v %+v", err, p)
	}
	_, _, p, err := e.admin.SubmitTopUp(alice, mobile, 60_00, "w-2")
	if err != nil || p == nil {
		t.Fatalf("want a window proposal: %v %+v", err, p)
	}
	e.clock.now = e.clock.now.Add(25 * time.Hour) // the window has room; the proposal still pending
	before := e.balance(t, cash)

	account, bal, q, err := e.admin.SubmitTopUp(carol, mobile, 50_00, "w-2")
	if mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
		t.Fatalf("w-2 resent with another amount: %v, proposal %+v, %s %d; want 10003", err, q, account, bal)
	}
	if _, _, q, err := e.admin.SubmitTopUp(carol, other, 60_00, "w-2"); mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
		t.Fatalf("w-2 resent for another customer: %v, proposal %+v; want 10003", err, q)
	}
	account, bal, q, err = e.admin.SubmitTopUp(carol, mobile, 60_00, "w-2")
	if err != nil || q == nil || q.ID != p.ID || q.State != mapfront.ProposalPending || account != "" {
		t.Fatalf("w-2 resent as proposed: %v, proposal %+v, %s %d; want proposal %d, pending", err, q, account, bal, p.ID)
	}
	if got := e.balance(t, cash); got != before {
		t.Fatalf("resends while pending moved money: balance %d, was %d", got, before)
	}
	if n := e.scalar(t, `SELECT count(*) FROM topups WHERE reference = 'w-2'`); n != 0 {
		t.Fatalf("w-2 credited %d times before its approval", n)
	}

	if q, _, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || q.State != mapfront.ProposalApproved {
		t.Fatalf("approve: %v %+v", err, q)
	}
	if got := e.balance(t, cash); got != before+60_00 {
		t.Fatalf("after the approval: balance %d, want %d", got, before+60_00)
	}
	if n := e.scalar(t, `SELECT count(*) FROM topups WHERE reference = 'w-2' AND proposal_id = $1::bigint`, p.ID); n != 1 {
		t.Fatalf("w-2 not credited by its approval (%d)", n)
	}
	e.verify(t)
}

// A proposal is never filed for a reference already credited, directly or
// by an approval: the store says so (ErrTopUpCredited, nothing filed,
// nothing refused in the audit trail), and SubmitTopUp answers the top-up
// made instead. The second case is a resend's two transactions with an
// approval committing between them (the direct path saw the proposal
// pending), step by step: without the check it filed a second proposal.
func TestTopUpProposalOfCreditedReference(t *testing.T) {
	e := newEnv(t)
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	alice, carol, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "carol", "operator"), as(e.ctx, "bob", "supervisor")
	const mobile = "13800009943"
	cash := newPayer(t, e, mobile, 0)
	propose := func(ref string, amount int64) (*mapfront.Proposal, error) {
		return e.store.CreateProposal(carol, mapfront.Proposal{Kind: mapfront.ProposeTopUp, Target: "customer:" + mobile,
			TopUp: &mapfront.TopUp{Mobile: mobile, Amount: amount, Reference: ref}}, time.Hour)
	}

	// Credited directly.
	if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, 50_00, "c-1"); err != nil || p != nil {
		t.Fatalf("direct top-up: %v %+v", err, p)
	}
	if _, err := propose("c-1", 50_00); !errors.Is(err, mapfront.ErrTopUpCredited) {
		t.Fatalf("proposal of a reference credited directly: %v, want ErrTopUpCredited", err)
	}

	// Credited by an approval between a resend's two transactions.
	p, err := propose("c-2", 200_00)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.TopUpCashWithin(carol, mobile, 200_00, "c-2", 100_00); !errors.Is(err, mapfront.ErrTopUpNeedsApproval) {
		t.Fatalf("the resend's direct path with c-2 pending: %v, want ErrTopUpNeedsApproval", err)
	}
	if _, _, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil {
		t.Fatal(err)
	}
	if q, err := propose("c-2", 200_00); !errors.Is(err, mapfront.ErrTopUpCredited) {
		t.Fatalf("the resend's proposal after the approval: %v %+v, want ErrTopUpCredited", err, q)
	}

	if n := e.scalar(t, `SELECT count(*) FROM proposals`); n != 1 {
		t.Fatalf("%d proposals filed, want c-2's alone", n)
	}
	if n := e.scalar(t, `SELECT count(*) FROM audit_log WHERE outcome <> 'ok'`); n != 0 {
		t.Fatalf("%d refusals recorded", n)
	}
	if account, bal, p, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "c-2"); err != nil || p != nil || account != cash || bal != 250_00 {
		t.Fatalf("c-2 again: %v %+v %s %d; want the top-up made, balance 25000", err, p, account, bal)
	}
	e.verify(t)
}

// A reference's resends racing its approval (the window with room, so the
// direct path would credit it): every resend gets the pending proposal or
// the top-up made, no second proposal is filed (a resend that saw the
// proposal pending and files after the approval committed would), and the
// money is credited once, by the approval.
func TestTopUpResendRacesApproval(t *testing.T) {
	e := newEnv(t)
	const limit = 100_00
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: limit, TTL: time.Hour})
	alice, carol, bob := as(e.ctx, "alice", "admin"), as(e.ctx, "carol", "operator"), as(e.ctx, "bob", "supervisor")
	const mobile = "13800009944"
	cash := newPayer(t, e, mobile, 0)
	const rounds, resenders, amount = 12, 3, 60_00
	for round := range rounds {
		ref := "race-" + string(rune('a'+round))
		// Filed as a window proposal is (the window itself stays empty:
		// under the amount, a resend would be credited directly).
		p, err := e.store.CreateProposal(alice, mapfront.Proposal{Kind: mapfront.ProposeTopUp, Target: "customer:" + mobile,
			TopUp: &mapfront.TopUp{Mobile: mobile, Amount: amount, Reference: ref}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		before := e.balance(t, cash)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if q, already, err := e.admin.ApproveProposal(bob, p.ID, ""); err != nil || already || q.State != mapfront.ProposalApproved {
				t.Errorf("%s: approve: %v, already %v, %+v", ref, err, already, q)
			}
		}()
		// Each resender sends until it gets the top-up made, so that resends
		// span the approval's commit.
		for range resenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range 500 {
					account, bal, q, err := e.admin.SubmitTopUp(carol, mobile, amount, ref)
					switch {
					case err != nil:
						t.Errorf("%s: resend: %v", ref, err)
					case q != nil && q.ID != p.ID:
						t.Errorf("%s: resend filed proposal %d beside %d", ref, q.ID, p.ID)
					case q == nil && (account != cash || bal < before+amount):
						t.Errorf("%s: resend answered %s %d, want the top-up made", ref, account, bal)
					case q == nil:
						return
					default:
						continue
					}
					return
				}
				t.Errorf("%s: resends never answered the top-up made", ref)
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if n := e.scalar(t, `SELECT count(*) FROM proposals WHERE args->>'reference' = $1`, ref); n != 1 {
			t.Fatalf("%s: %d proposals, want 1", ref, n)
		}
		if n := e.scalar(t, `SELECT count(*) FROM topups WHERE reference = $1 AND proposal_id = $2::bigint`, ref, p.ID); n != 1 {
			t.Fatalf("%s: not credited by its approval", ref)
		}
		if got := e.balance(t, cash); got != before+amount {
			t.Fatalf("%s: balance %d, want %d", ref, got, before+amount)
		}
	}
	e.verify(t)
}

// SPEC section 7: logs mask mobile numbers. A top-up proposal's log lines
// ("proposal filed", "proposal sent again") name its target with the
// mobile number masked. Found by the review of this branch.
func TestProposalLogMasksMobile(t *testing.T) {
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	keys := testKeys(t, keyA)
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	clock := mapfront.Clock{Zone: zone, Now: clk.Now}
	policy := mapfront.DefaultPolicy()
	s, err := Open(context.Background(), url, Options{Clock: clock, Policy: policy,
		NewCustomerPassword: mapfront.InitialPasswordHasher(policy, keys), SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	e := &env{store: s, svc: mapfront.NewService(s, keys, clock, policy, log), admin: mapfront.NewAdminService(s, keys, policy),
		clock: clk, ctx: context.Background()}
	if err := e.admin.LoadDemo(e.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	e.admin.SetApprovalPolicy(mapfront.ApprovalPolicy{TopUpAbove: 100_00, TTL: time.Hour})
	const mobile = "13800009951"
	newPayer(t, e, mobile, 0)
	alice := as(e.ctx, "alice", "admin")
	for range 2 {
		if _, _, p, err := e.admin.SubmitTopUp(alice, mobile, 200_00, "m-1"); err != nil || p == nil {
			t.Fatalf("%v %+v", err, p)
		}
	}
	logged := buf.String()
	for _, msg := range []string{`msg="proposal filed"`, `msg="proposal sent again"`} {
		if !strings.Contains(logged, msg) {
			t.Fatalf("no %s line: the check below would prove nothing", msg)
		}
	}
	if !strings.Contains(logged, "target=customer:"+mapfront.MaskMobile(mobile)) {
		t.Errorf("no line names the masked target customer:%s", mapfront.MaskMobile(mobile))
	}
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, mobile) {
			t.Errorf("log line holds the whole mobile number: %s", line)
		}
	}
}

// lockedBuffer is a log destination safe for the store's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// budgetGroupEnv is newEnv with group commit of pays on and the terminal
// wrong-PIN budget at its default (20 per 10 minutes, then 10 minutes).
func budgetGroupEnv(t *testing.T, c mapfront.GroupConfig) (*env, *batchSizes) {
	e := newEnv(t)
	sizes := &batchSizes{}
	c.Observe = sizes.observe
	if !e.svc.WithPINBudget(mapfront.DefaultPINBudget(), nil).GroupPays(c) {
		t.Fatal("group commit did not turn on")
	}
	return e, sizes
}

// TestWrongPINBudgetHoldsUnderConcurrency with group commit on: 40 wrong
// PINs at once from one terminal, landing in shared batches, get exactly 20
// PIN checks (10007) and 20 refusals (10002); the terminal's count is 20
// and it is suspended; no refused customer's count moved.
func TestGroupWrongPINBudgetHoldsUnderConcurrency(t *testing.T) {
	e, sizes := budgetGroupEnv(t, mapfront.GroupConfig{MaxBatch: 8, MaxWait: 200 * time.Millisecond, Lanes: 2})
	mobiles := pinCustomers(t, e, 40)
	var wg sync.WaitGroup
	errs := make([]error, len(mobiles))
	for i := range mobiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.svc.Pay(e.ctx, payReq(t, mobiles[i], "000000", fmt.Sprintf("c%03d", i), 100))
		}()
	}
	wg.Wait()
	checked, suspended := 0, 0
	for i, err := range errs {
		switch mapfront.ErrorCode(err) {
		case mapfront.CodeWrongPassword:
			checked++
			if n := e.customerFailures(t, mobiles[i]); n != 1 {
				t.Errorf("customer %s checked once has count %d", mobiles[i], n)
			}
		case mapfront.CodeTerminal:
			suspended++
			if n := e.customerFailures(t, mobiles[i]); n != 0 {
				t.Errorf("customer %s refused as suspended has count %d", mobiles[i], n)
			}
		default:
			t.Errorf("answer %v, want 10007 or 10002", err)
		}
	}
	if checked != 20 || suspended != 20 {
		t.Fatalf("%d PIN checks and %d refusals as suspended, want 20 and 20", checked, suspended)
	}
	if sizes.max() < 2 {
		t.Fatalf("batches %v: the pays did not share a batch", sizes.sizes)
	}
	failures, until := e.terminalGuard(t, "ZJ000001")
	if want := e.clock.now.Add(10 * time.Minute); failures != 20 || until == nil || !until.Equal(want) {
		t.Fatalf("terminal: %d failures, suspended until %v; want 20 and %v", failures, until, want)
	}
	e.verify(t)
}

// In one batch, in arrival order, a wrong PIN that reaches the budget
// suspends the terminal for the pays after it in the same batch: a correct
// PIN then gets 10002 (nothing moves, the key stays free) and a wrong one
// 10002 without its PIN checked, while the pays before it were decided as
// usual.
func TestGroupSuspensionReachedMidBatch(t *testing.T) {
	e, sizes := budgetGroupEnv(t, mapfront.GroupConfig{MaxBatch: 5, MaxWait: 5 * time.Second})
	mobiles := pinCustomers(t, e, 3)
	const term = "ZJ000001"
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE terminals SET pin_failures = 18, pin_window_start = $2 WHERE terminal_id = $1`,
		term, e.clock.now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	reqs := []*mapfront.PayRequest{
		payReq(t, mobiles[0], "000000", "m1", 100), // wrong: 19
		payReq(t, demoMobile, "123456", "m2", 100), // approved
		payReq(t, mobiles[1], "000000", "m3", 100), // wrong: 20, suspended
		payReq(t, demoMobile, "123456", "m4", 100), // correct, but suspended: 10002
		payReq(t, mobiles[2], "000000", "m5", 100), // wrong, not checked: 10002
	}
	want := []mapfront.Code{mapfront.CodeWrongPassword, 0, mapfront.CodeWrongPassword, mapfront.CodeTerminal, mapfront.CodeTerminal}
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = e.svc.Pay(e.ctx, r) }()
		time.Sleep(30 * time.Millisecond) // queued in this order; the lane waits for all five
	}
	wg.Wait()
	if len(sizes.sizes) != 1 || sizes.sizes[0] != len(reqs) {
		t.Fatalf("batches %v, want one of %d", sizes.sizes, len(reqs))
	}
	for i, err := range errs {
		if got := mapfront.ErrorCode(err); err != nil && got != want[i] || err == nil && want[i] != 0 {
			t.Errorf("pay %s: %v, want code %d", reqs[i].TerminalOrderID, err, want[i])
		}
	}
	failures, until := e.terminalGuard(t, term)
	if want := e.clock.now.Add(10 * time.Minute); failures != 20 || until == nil || !until.Equal(want) {
		t.Fatalf("terminal: %d failures, suspended until %v; want 20 and %v", failures, until, want)
	}
	for i, n := range []int{1, 1, 0} {
		if got := e.customerFailures(t, mobiles[i]); got != n {
			t.Errorf("customer %d count %d, want %d", i, got, n)
		}
	}
	if b := e.balance(t, demoCard); b != 300000-100 {
		t.Fatalf("balance %d, want %d", b, 300000-100)
	}
	// The refused correct pay's key stayed free: after the suspension it
	// is a first pay.
	e.clock.now = e.clock.now.Add(10 * time.Minute)
	if a, err := e.svc.Pay(e.ctx, reqs[3]); err != nil || *a.Balance != 300000-200 {
		t.Fatalf("the refused key after the suspension: %+v %v", a, err)
	}
	e.verify(t)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/secret"
)

// Review of e264c17 (group commit: a pipelined load refused by the lock
// timeout runs the batch singly at once; the pipelined round trip ends at
// the later of the two batches' deadlines). These tests run three batches
// through one lane and check that a refused or failed pipelined load is
// applied to the batch it belongs to and to no other, and that every pay's
// answer agrees with what the database holds.

// newRevStore is the store the review's tests run on (pipeBatches): its
// first batch load waits until the test lets it go; it counts loads,
// pipelined persists and their next loads' failures and refusals.
func newRevStore(e *env) *pipeBatches {
	return &pipeBatches{Store: e.store, gate: make(chan struct{}), entered: make(chan struct{})}
}

// revPays pays n pays of 1,000 fen from mobile (keys prefix1, prefix2, ..)
// concurrently under ctx; wait returns their errors and when each was
// answered.
type revPays struct {
	errs []error
	at   []time.Time
	reqs []*mapfront.PayRequest
	wg   sync.WaitGroup
}

func startPays(t *testing.T, svc *mapfront.Service, ctx context.Context, mobile, prefix string, n int) *revPays {
	t.Helper()
	return startPaysAt(t, svc, ctx, "", mobile, prefix, n)
}

// startPaysAt is startPays from the terminal terminalID ("": payReq's).
func startPaysAt(t *testing.T, svc *mapfront.Service, ctx context.Context, terminalID, mobile, prefix string, n int) *revPays {
	t.Helper()
	p := &revPays{errs: make([]error, n), at: make([]time.Time, n), reqs: make([]*mapfront.PayRequest, n)}
	for i := range n {
		r := payReq(t, mobile, "123456", fmt.Sprintf("%s%d", prefix, i+1), 1000)
		if terminalID != "" {
			r.TerminalID = terminalID
		}
		p.reqs[i] = r
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_, p.errs[i] = svc.Pay(ctx, r)
			p.at[i] = time.Now()
		}()
	}
	return p
}

func (p *revPays) wait() []error { p.wg.Wait(); return p.errs }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdCustomer locks mobile's customer row in a transaction of its own
// until the returned func is called.
func holdCustomer(t *testing.T, e *env, mobile string) func() {
	t.Helper()
	side, err := e.store.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := side.Exec(e.ctx, `SELECT 1 FROM customers WHERE mobile = $1 FOR UPDATE`, mobile); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			if err := side.Rollback(e.ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// ordersFor counts the pay orders of the keys.
func ordersFor(t *testing.T, e *env, reqs []*mapfront.PayRequest) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range reqs {
		var c int
		if err := e.store.pool.QueryRow(e.ctx, `SELECT count(*) FROM pay_orders WHERE kind = 'pay' AND terminal_id = $1
AND batch_no = $2 AND terminal_order_id = $3`, r.TerminalID, r.BatchNo, r.TerminalOrderID).Scan(&c); err != nil {
			t.Fatal(err)
		}
		n[r.TerminalOrderID] = c
	}
	return n
}

// agree fails unless each pay's answer agrees with the database: approved
// (0) has exactly one order, 10018 (certainly no effect) none, and no key
// has more than one.
func agree(t *testing.T, e *env, p *revPays) {
	t.Helper()
	orders := ordersFor(t, e, p.reqs)
	for i, r := range p.reqs {
		k := r.TerminalOrderID
		switch code := mapfront.ErrorCode(p.errs[i]); {
		case orders[k] > 1:
			t.Errorf("pay %s: %d orders", k, orders[k])
		case p.errs[i] == nil && orders[k] != 1:
			t.Errorf("pay %s approved, %d orders", k, orders[k])
		case code == mapfront.CodeBusy && orders[k] != 0:
			t.Errorf("pay %s answered 10018 (no effect) but it has %d order", k, orders[k])
		}
	}
}

// Three batches on one lane: N (mobile a) commits with N+1's load (mobile
// b, whose row is held) riding on its persist; that load is refused by the
// lock timeout, so N+1 runs one pay at a time; N+2 (mobile c), sent while
// N+1's pay of b waits, is loaded as a batch of its own and answered before
// the row is released: the refusal belongs to N+1 only. Every pay approved
// once; nothing left open.
func TestReviewE264RefusalNotCarriedToTheNextBatch(t *testing.T) {
	e := newEnv(t)
	const a, b, c = "15800021111", "15800022222", "15800023333"
	cashA, cashB, cashC := newPayer(t, e, a, 10000), newPayer(t, e, b, 10000), newPayer(t, e, c, 10000)
	f := newRevStore(e)
	sizes := &batchSizes{}
	svc := pipeServiceLanes(t, e, f, sizes, 1)
	release := holdCustomer(t, e, b)

	n0 := startPays(t, svc, e.ctx, a, "ra", 3)
	<-f.entered
	n1 := startPays(t, svc, e.ctx, b, "rb", 3)
	waitUntil(t, "batch N+1 queued", func() bool { return svc.QueuedPays() == 3 })
	close(f.gate)
	for i, err := range n0.wait() {
		if err != nil {
			t.Errorf("batch N pay %d: %v", i, err)
		}
	}
	waitUntil(t, "batch N+1 run singly", func() bool { sizes.mu.Lock(); defer sizes.mu.Unlock(); return sizes.singly == 1 })
	// N+2, from another terminal (N+1's pay of b holds its terminal's row
	// while it waits, as a single pay does), is answered while b's row is
	// still held: the lane does not wait for N+1's single pays.
	if _, err := e.admin.UpsertTerminal(e.ctx, mapfront.TerminalSpec{TerminalID: "ZC000001",
		SellerID: "SH12345", StoreID: "ST12345", Enabled: true, TPKHex: testTPK}); err != nil {
		t.Fatal(err)
	}
	queued := time.Now()
	n2 := startPaysAt(t, svc, e.ctx, "ZC000001", c, "rc", 3)
	n2errs := n2.wait()
	released := time.Now()
	release()
	for i, err := range append(n1.wait(), n2errs...) {
		if err != nil {
			t.Errorf("batch N+1/N+2 pay %d: %v", i, err)
		}
	}
	t.Logf("batch N+2 (mobile c, no row held) answered %v after it was queued, before b's row was released",
		released.Sub(queued).Round(time.Millisecond))
	if f.refused.Load() != 1 || f.loadErrs.Load() != 1 {
		t.Fatalf("pipelined loads that failed: %d, refused: %d; want 1 and 1", f.loadErrs.Load(), f.refused.Load())
	}
	sizes.mu.Lock()
	singly, batches := sizes.singly, append([]int(nil), sizes.sizes...)
	sizes.mu.Unlock()
	if n := f.loads.Load(); n != 2 || singly != 1 {
		t.Fatalf("%d batch loads and %d fallbacks (batches %v), want 2 (N, N+2) and 1 (N+1)", n, singly, batches)
	}
	for m, cash := range map[string]string{a: cashA, b: cashB, c: cashC} {
		if got := e.balance(t, cash); got != 7000 {
			t.Errorf("%s: balance %d, want 7000", m, got)
		}
	}
	agree(t, e, n0)
	agree(t, e, n1)
	agree(t, e, n2)
	if n := openTransactions(t, e); n != 0 {
		t.Fatalf("%d sessions left in a transaction", n)
	}
	e.verify(t)
}

// Batch N+1 (preloaded on N's persist) takes N+2 at its own persist, and
// that pipelined round trip fails before anything was sent (transient, as a
// deadlock of its write would): N+1 is tried again (loaded on its own,
// persisted without N+2's load) and N+2 is loaded on its own. Neither the
// first try's state nor a load error leaks into the second try or into N+2.
func TestReviewE264RetryAfterAFailedPipelinedPersist(t *testing.T) {
	e := newEnv(t)
	const a, b, c = "15800031111", "15800032222", "15800033333"
	cashA, cashB, cashC := newPayer(t, e, a, 10000), newPayer(t, e, b, 10000), newPayer(t, e, c, 10000)
	f := newRevStore(e)
	f.before = func(n int32) error {
		if n == 2 {
			return &mapfront.Transient{Err: errors.New("review: injected deadlock of batch N+1's write")}
		}
		return nil
	}
	sizes := &batchSizes{}
	svc := pipeServiceLanes(t, e, f, sizes, 1)
	// b's row is held for less than the lock timeout: batch N+1's pipelined
	// load waits for it while N+2 is queued, then N+1 persists with N+2.
	release := holdCustomer(t, e, b)

	n0 := startPays(t, svc, e.ctx, a, "sa", 3)
	<-f.entered
	n1 := startPays(t, svc, e.ctx, b, "sb", 3)
	waitUntil(t, "batch N+1 queued", func() bool { return svc.QueuedPays() == 3 })
	close(f.gate)
	n0.wait()
	waitUntil(t, "batch N+1 taken", func() bool { return svc.QueuedPays() == 0 })
	n2 := startPays(t, svc, e.ctx, c, "sc", 3)
	waitUntil(t, "batch N+2 queued", func() bool { return svc.QueuedPays() == 3 })
	release()
	for i, err := range append(append(n0.errs, n1.wait()...), n2.wait()...) {
		if err != nil {
			t.Errorf("pay %d: %v", i, err)
		}
	}
	sizes.mu.Lock()
	singly, batches := sizes.singly, append([]int(nil), sizes.sizes...)
	sizes.mu.Unlock()
	if p, n := f.piped.Load(), f.loads.Load(); p != 2 || n != 3 || singly != 0 || f.loadErrs.Load() != 0 {
		t.Fatalf("pipelined persists %d, batch loads %d, fallbacks %d, failed pipelined loads %d (batches %v); "+
			"want 2 (N's, N+1's failed), 3 (N, N+1 again, N+2), 0, 0", p, n, singly, f.loadErrs.Load(), batches)
	}
	for m, cash := range map[string]string{a: cashA, b: cashB, c: cashC} {
		if got := e.balance(t, cash); got != 7000 {
			t.Errorf("%s: balance %d, want 7000", m, got)
		}
	}
	agree(t, e, n0)
	agree(t, e, n1)
	agree(t, e, n2)
	if n := openTransactions(t, e); n != 0 {
		t.Fatalf("%d sessions left in a transaction", n)
	}
	e.verify(t)
}

// Batch N's own deadline passes after its load and before its persist is
// sent (as slow decisions would make it); batch N+1, queued meanwhile, has
// a later deadline or none. laterContext sends N's writes and COMMIT under
// N+1's deadline: N commits after every one of its callers' deadlines and
// is answered approved (before e264c17 the round trip's context had already
// ended and N was answered 10018, nothing sent). Either is allowed (SPEC
// section 3: 10018 only when certainly no effect); what must hold is that
// each answer agrees with the database and nothing is doubled.
func TestReviewE264CommitAfterItsOwnDeadline(t *testing.T) {
	for _, next := range []string{"no deadline", "later deadline"} {
		t.Run(next, func(t *testing.T) {
			e := newEnv(t)
			const a, b = "15800041111", "15800042222"
			cashA, cashB := newPayer(t, e, a, 10000), newPayer(t, e, b, 10000)
			f := newRevStore(e)
			const budget = 2 * time.Second
			ctxN, cancelN := context.WithTimeout(e.ctx, budget)
			defer cancelN()
			deadlineN, _ := ctxN.Deadline()
			f.before = func(n int32) error {
				if n == 1 {
					time.Sleep(time.Until(deadlineN) + 200*time.Millisecond)
				}
				return nil
			}
			ctxN1 := e.ctx
			if next == "later deadline" {
				var cancel context.CancelFunc
				ctxN1, cancel = context.WithTimeout(e.ctx, budget+10*time.Second)
				defer cancel()
			}
			sizes := &batchSizes{}
			svc := pipeServiceLanes(t, e, f, sizes, 1)
			n0 := startPays(t, svc, ctxN, a, "ta", 3)
			<-f.entered
			n1 := startPays(t, svc, ctxN1, b, "tb", 3)
			waitUntil(t, "batch N+1 queued", func() bool { return svc.QueuedPays() == 3 })
			close(f.gate)
			n0.wait()
			n1.wait()
			for i, err := range n0.errs {
				t.Logf("batch N pay %d: answered %v after its deadline: %v (errcode %d)", i,
					n0.at[i].Sub(deadlineN).Round(time.Millisecond), err, mapfront.ErrorCode(err))
			}
			for i, err := range n1.errs {
				if err != nil {
					t.Errorf("batch N+1 pay %d: %v", i, err)
				}
			}
			agree(t, e, n0)
			agree(t, e, n1)
			orders := ordersFor(t, e, n0.reqs)
			paid := 0
			for _, c := range orders {
				paid += c
			}
			if got := e.balance(t, cashA); got != 10000-int64(paid)*1000 {
				t.Errorf("a: balance %d with %d orders", got, paid)
			}
			if got := e.balance(t, cashB); got != 7000 {
				t.Errorf("b: balance %d, want 7000", got)
			}
			if n := openTransactions(t, e); n != 0 {
				t.Fatalf("%d sessions left in a transaction", n)
			}
			e.verify(t)
		})
	}
}

// Bursts of pays through one, two and three lanes while one customer's row
// is held past the lock timeout for a while (loads that meet it wait, are
// refused, run one pay at a time, whichever path they are on). Every pay
// is answered once, approved (the row is released well within the
// statement timeout); each answer agrees with the database; balances are
// what the approved pays took; nothing is left open. (All pays share one
// terminal, whose row a pay waiting on the held customer also holds, so
// whether a pipelined load is the one refused varies from run to run.)
func TestReviewE264RefusalsUnderLoad(t *testing.T) {
	for _, lanes := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(lanes), func(t *testing.T) {
			e := newEnv(t)
			f := newRevStore(e)
			close(f.gate)
			sizes := &batchSizes{}
			keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
			if err != nil {
				t.Fatal(err)
			}
			svc := mapfront.NewService(f, keys, mapfront.Clock{Zone: e.clock.now.Location(), Now: e.clock.Now},
				mapfront.DefaultPolicy(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if !svc.WithPINBudget(mapfront.PINBudget{}, nil).GroupPays(mapfront.GroupConfig{MaxBatch: 4, Lanes: lanes,
				Observe: sizes.observe, Singly: func(int, error) { sizes.mu.Lock(); sizes.singly++; sizes.mu.Unlock() }}) {
				t.Fatal("group commit did not turn on")
			}
			mobiles := []string{"15800050000", "15800050001", "15800050002", "15800050003"}
			cash := map[string]string{}
			for _, m := range mobiles {
				cash[m] = newPayer(t, e, m, 1000000)
			}
			release := holdCustomer(t, e, mobiles[0])
			go func() { time.Sleep(batchLockTimeout*2 + 500*time.Millisecond); release() }()
			// Bursts of pays, not waiting for the answers: pays keep
			// arriving while the held customer's wait, so batches are taken
			// at persists and their loads ride on them.
			const rounds, burst = 30, 16
			var all []*revPays
			for r := range rounds {
				for i := range burst {
					all = append(all, startPays(t, svc, e.ctx, mobiles[(r+i)%len(mobiles)], fmt.Sprintf("U%02d-%02d-", r, i), 1))
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, p := range all {
				p.wait()
			}
			approved := map[string]int64{}
			for _, p := range all {
				if p.errs[0] != nil {
					t.Errorf("pay %s: %v", p.reqs[0].TerminalOrderID, p.errs[0])
					continue
				}
				approved[p.reqs[0].ConsumerID]++
				agree(t, e, p)
			}
			for _, m := range mobiles {
				if b := e.balance(t, cash[m]); b != 1000000-approved[m]*1000 {
					t.Errorf("%s: balance %d, %d approved", m, b, approved[m])
				}
			}
			if n := openTransactions(t, e); n != 0 {
				t.Fatalf("%d sessions left in a transaction", n)
			}
			sizes.mu.Lock()
			t.Logf("%d batches, fell back %d times; %d batch loads, %d pipelined (%d loads failed, %d refused)",
				len(sizes.sizes), sizes.singly, f.loads.Load(), f.piped.Load(), f.loadErrs.Load(), f.refused.Load())
			sizes.mu.Unlock()
			e.verify(t)
		})
	}
}

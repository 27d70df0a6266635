package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/secret"
)

// pipeBatches is the store whose first batch load waits until the test lets
// it go (by then the next batch is queued, so that it is taken when the
// first persists and its load rides on that persist), whose units spoil the
// write of one pay (as failingBatches), and which counts the loads that
// rode on a persist. Test-only: production wires the Store itself.
type pipeBatches struct {
	*Store
	bad      string // the terminal order id of the spoiled pay ("" none)
	gate     chan struct{}
	entered  chan struct{}
	first    sync.Once
	spoiled  atomic.Int32
	piped    atomic.Int32 // PersistLoad calls
	seen     atomic.Int32 // pay orders another connection saw when the first PersistLoad returned
	pipedOK  atomic.Int32 // of them, loads that returned states
	pipedFor atomic.Int32 // pays in those loads
	loads    atomic.Int32 // LoadPays calls
	loadErrs atomic.Int32 // PersistLoads whose batch committed and whose next load failed
	refused  atomic.Int32 // of them, refusals (*mapfront.RolledBack)
	// before, if set, runs before each PersistLoad (n counts them from 1);
	// an error it returns fails that PersistLoad as the store does when
	// nothing of the round trip was sent (the unit rolled back, the next
	// batch not loaded).
	before func(n int32) error
}

func (f *pipeBatches) LoadPays(ctx context.Context, rs []*mapfront.PayRequest) ([]*mapfront.PayState, mapfront.Unit[[]*mapfront.PayOutcome], error) {
	f.loads.Add(1)
	f.first.Do(func() {
		close(f.entered)
		<-f.gate
	})
	sts, u, err := f.Store.LoadPays(ctx, rs)
	if err != nil {
		return nil, nil, err
	}
	return sts, pipeUnit{u.(mapfront.PayBatchUnit), f}, nil
}

type pipeUnit struct {
	mapfront.PayBatchUnit
	f *pipeBatches
}

func (u pipeUnit) spoil(outs []*mapfront.PayOutcome) []*mapfront.PayOutcome {
	cp := make([]*mapfront.PayOutcome, len(outs))
	for i, o := range outs {
		cp[i] = o
		if o.Approved != nil && u.f.bad != "" && o.Key.TerminalOrderID == u.f.bad {
			bad, order := *o, *o.Approved
			order.Amount = 0 // pay_orders' CHECK refuses it
			bad.Approved = &order
			cp[i] = &bad
			u.f.spoiled.Add(1)
		}
	}
	return cp
}

func (u pipeUnit) Persist(ctx context.Context, outs []*mapfront.PayOutcome) error {
	return u.PayBatchUnit.Persist(ctx, u.spoil(outs))
}

func (u pipeUnit) PersistLoad(ctx context.Context, outs []*mapfront.PayOutcome, rs []*mapfront.PayRequest, committed func()) (
	[]*mapfront.PayState, mapfront.PayBatchUnit, error, error) {
	n := u.f.piped.Add(1)
	if u.f.before != nil {
		if err := u.f.before(n); err != nil {
			u.PayBatchUnit.Rollback()
			return nil, nil, errNotLoaded, err
		}
	}
	sts, next, loadErr, err := u.PayBatchUnit.PersistLoad(ctx, u.spoil(outs), rs, committed)
	if err == nil && loadErr != nil {
		u.f.loadErrs.Add(1)
		var rb *mapfront.RolledBack
		if errors.As(loadErr, &rb) {
			u.f.refused.Add(1)
		}
	}
	if next != nil {
		if u.f.pipedOK.Load() == 0 {
			// The batch committed at its COMMIT, not at the end of the round
			// trip: another connection sees its orders while the next
			// batch's transaction is still open.
			var n int32
			if err := u.f.pool.QueryRow(ctx, `SELECT count(*) FROM pay_orders`).Scan(&n); err == nil {
				u.f.seen.Store(n)
			}
		}
		u.f.pipedOK.Add(1)
		u.f.pipedFor.Add(int32(len(rs)))
		next = pipeUnit{next, u.f}
	}
	return sts, next, loadErr, err
}

// pipeService is a service on f with group commit in batches of three.
func pipeService(t *testing.T, e *env, f *pipeBatches, sizes *batchSizes) *mapfront.Service {
	t.Helper()
	return pipeServiceLanes(t, e, f, sizes, 1)
}

// pipeServiceLanes is pipeService on lanes lanes.
func pipeServiceLanes(t *testing.T, e *env, f *pipeBatches, sizes *batchSizes, lanes int) *mapfront.Service {
	t.Helper()
	keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	svc := mapfront.NewService(f, keys, mapfront.Clock{Zone: e.clock.now.Location(), Now: e.clock.Now},
		mapfront.DefaultPolicy(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !svc.WithPINBudget(mapfront.PINBudget{}, nil).GroupPays(mapfront.GroupConfig{MaxBatch: 3, MaxWait: 5 * time.Second, Lanes: lanes,
		Observe: sizes.observe, Singly: func(int, error) { sizes.mu.Lock(); sizes.singly++; sizes.mu.Unlock() }}) {
		t.Fatal("group commit did not turn on")
	}
	return svc
}

// payTwoBatches pays first (the first batch, held at its load until second
// is queued) and then second, concurrently, and returns each pay's error
// in the order first then second.
func payTwoBatches(t *testing.T, e *env, svc *mapfront.Service, f *pipeBatches, mobile string, sum int64, first, second []string) []error {
	t.Helper()
	errs := make([]error, len(first)+len(second))
	var wg sync.WaitGroup
	pay := func(i int, key string) {
		p := payReq(t, mobile, "123456", key, sum)
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = svc.Pay(e.ctx, p) }()
	}
	for i, k := range first {
		pay(i, k)
	}
	<-f.entered // the first batch is taken: the rest queue behind it
	for i, k := range second {
		pay(len(first)+i, k)
	}
	deadline := time.Now().Add(10 * time.Second)
	for svc.QueuedPays() < len(second) {
		if time.Now().After(deadline) {
			t.Fatalf("%d pays queued, want %d", svc.QueuedPays(), len(second))
		}
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()
	return errs
}

// Group commit pipelines batches: the batch queued while one persists is
// loaded in the same round trip, after its COMMIT, and sees what it
// committed. Six pays of 1,000 fen against a balance of 4,500: the first
// batch of three approves all three, the next (loaded with the first's
// persist) sees 1,500 left and approves exactly one.
func TestGroupPayPipelinedSeesTheBatchBefore(t *testing.T) {
	e := newEnv(t)
	const mobile = "15800007777"
	cash := newPayer(t, e, mobile, 4500)
	f := &pipeBatches{Store: e.store, gate: make(chan struct{}), entered: make(chan struct{})}
	sizes := &batchSizes{}
	svc := pipeService(t, e, f, sizes)
	errs := payTwoBatches(t, e, svc, f, mobile, 1000, []string{"a1", "a2", "a3"}, []string{"b1", "b2", "b3"})
	if f.pipedOK.Load() != 1 || f.pipedFor.Load() != 3 || sizes.singly != 0 {
		t.Fatalf("loads that rode on a persist: %d of %d calls (%d pays), batches run one pay at a time %d: "+
			"want 1 of 1 (3 pays) and none; batches %v", f.pipedOK.Load(), f.piped.Load(), f.pipedFor.Load(), sizes.singly, sizes.sizes)
	}
	if f.seen.Load() != 3 {
		t.Fatalf("another connection saw %d pay orders when the first batch had persisted, want its 3", f.seen.Load())
	}
	approved, short := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			approved++
		case mapfront.ErrorCode(err) == mapfront.CodeInsufficient && i >= 3:
			short++
		default:
			t.Errorf("pay %d: %v", i, err)
		}
	}
	for i := range 3 {
		if errs[i] != nil {
			t.Errorf("first batch pay %d: %v, want approved", i, errs[i])
		}
	}
	if approved != 4 || short != 2 {
		t.Fatalf("%d approved and %d short of balance, want 4 and 2", approved, short)
	}
	if b := e.balance(t, cash); b != 500 {
		t.Fatalf("balance %d, want 500", b)
	}
	e.verify(t)
}

// A batch whose write the database refuses while the next batch's load
// rides on its persist: the database runs nothing after the failed
// statement, so the batch commits nothing and its pays are paid one at a
// time, and the next batch, not loaded, is loaded again on its own and
// approved. Nothing is lost or doubled.
func TestGroupPayPipelinedAfterAFailedWrite(t *testing.T) {
	e := newEnv(t)
	const mobile = "15800008889"
	cash := newPayer(t, e, mobile, 10000)
	f := &pipeBatches{Store: e.store, bad: "bad", gate: make(chan struct{}), entered: make(chan struct{})}
	sizes := &batchSizes{}
	svc := pipeService(t, e, f, sizes)
	errs := payTwoBatches(t, e, svc, f, mobile, 1000, []string{"ok1", "bad", "ok2"}, []string{"ok3", "ok4", "ok5"})
	if f.spoiled.Load() == 0 || f.piped.Load() < 1 || sizes.singly != 1 {
		t.Fatalf("spoiled %d, persists with a load %d, fell back %d times (batches %v): want the first batch, "+
			"persisting with the next one's load, to fail and fall back once", f.spoiled.Load(), f.piped.Load(), sizes.singly, sizes.sizes)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("pay %d: %v", i, err)
		}
	}
	if b := e.balance(t, cash); b != 4000 {
		t.Fatalf("balance %d, want 4000", b)
	}
	var orders int
	if err := e.store.pool.QueryRow(e.ctx, `SELECT count(*) FROM pay_orders WHERE consumer_id = $1`, mobile).Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if orders != 6 {
		t.Fatalf("%d orders, want 6", orders)
	}
	e.verify(t)
}

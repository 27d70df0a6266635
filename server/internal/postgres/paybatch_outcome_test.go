package postgres

import (
	"context"
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

// stallingBatches is the store with a batch's context cut short at one
// point of its transaction, by real means (a lock another transaction
// holds, a context that ends): load (the load waits on a customer row lock
// past its deadline), before-write (the context ends before the write and
// COMMIT are sent) or commit (the write and COMMIT are sent and wait on a
// table lock past the deadline). Test-only.
type stallingBatches struct {
	*Store
	t      *testing.T
	point  string
	mobile string
	side   pgx.Tx // the other transaction holding the lock, rolled back by release
}

func (f *stallingBatches) release() {
	if f.side != nil {
		_ = f.side.Rollback(context.Background())
		f.side = nil
	}
}

func (f *stallingBatches) lock(q string, args ...any) {
	tx, err := f.pool.Begin(context.Background())
	if err != nil {
		f.t.Error(err)
		return
	}
	if _, err := tx.Exec(context.Background(), q, args...); err != nil {
		f.t.Error(err)
	}
	f.side = tx
}

const stall = 300 * time.Millisecond

func (f *stallingBatches) LoadPays(ctx context.Context, rs []*mapfront.PayRequest) ([]*mapfront.PayState, mapfront.Unit[[]*mapfront.PayOutcome], error) {
	if f.point == "load" {
		f.lock(`SELECT 1 FROM customers WHERE mobile = $1 FOR UPDATE`, f.mobile)
		ctx, cancel := context.WithTimeout(ctx, stall)
		defer cancel()
		return f.Store.LoadPays(ctx, rs)
	}
	sts, u, err := f.Store.LoadPays(ctx, rs)
	if err != nil {
		return nil, nil, err
	}
	return sts, stallingUnit{u, f}, nil
}

type stallingUnit struct {
	mapfront.Unit[[]*mapfront.PayOutcome]
	f *stallingBatches
}

func (u stallingUnit) Persist(ctx context.Context, outs []*mapfront.PayOutcome) error {
	ctx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
	switch u.f.point {
	case "before-write":
		cancel()
	case "commit":
		u.f.lock(`LOCK TABLE pay_orders IN SHARE MODE`)
	}
	return u.Unit.Persist(ctx, outs)
}

// SPEC section 3 for group commit: a batch whose context ends before its
// COMMIT was sent had certainly no effect, and each of its pays answers
// 10018 (the keys stay free: paying again is a first pay); one whose
// context ends after COMMIT was sent has an unknown outcome (pgx closes the
// connection and sends a cancel request, which may land before or after the
// backend runs the COMMIT it already holds), and each pay answers 10000
// (the gateway adds a reference): the POS must reverse, not pay again.
func TestGroupPayOutcomeWhenTheBatchIsCut(t *testing.T) {
	for _, c := range []struct {
		point string
		want  mapfront.Code
	}{
		{"load", mapfront.CodeBusy},
		{"before-write", mapfront.CodeBusy},
		{"commit", mapfront.CodeInternal},
	} {
		t.Run(c.point, func(t *testing.T) {
			e := newEnv(t)
			keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
			if err != nil {
				t.Fatal(err)
			}
			const mobile = "15800006666"
			cash := newPayer(t, e, mobile, 10000)
			f := &stallingBatches{Store: e.store, t: t, point: c.point, mobile: mobile}
			defer f.release()
			svc := mapfront.NewService(f, keys, mapfront.Clock{Zone: e.clock.now.Location(), Now: e.clock.Now},
				mapfront.DefaultPolicy(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			sizes := &batchSizes{}
			if !svc.GroupPays(mapfront.GroupConfig{MaxBatch: 3, MaxWait: 5 * time.Second, Observe: sizes.observe}) {
				t.Fatal("group commit did not turn on")
			}
			reqs := make([]*mapfront.PayRequest, 3)
			errs := make([]error, len(reqs))
			var wg sync.WaitGroup
			for i := range reqs {
				reqs[i] = payReq(t, mobile, "123456", fmt.Sprintf("cut%d", i), 1000)
				wg.Add(1)
				go func() { defer wg.Done(); _, errs[i] = svc.Pay(e.ctx, reqs[i]) }()
			}
			wg.Wait()
			f.release()
			if len(sizes.sizes) != 1 || sizes.sizes[0] != len(reqs) {
				t.Fatalf("batches %v, want one of %d", sizes.sizes, len(reqs))
			}
			for i, err := range errs {
				if mapfront.ErrorCode(err) != c.want {
					t.Fatalf("pay %d: %v, want %d", i, err, c.want)
				}
			}
			// After 10018 nothing moved; after 10000 all of the batch or
			// none of it did.
			b := e.balance(t, cash)
			if c.want == mapfront.CodeBusy && b != 10000 || b != 10000 && b != 10000-int64(len(reqs))*1000 {
				t.Fatalf("balance %d after the cut batch", b)
			}
			// Each key again: a first pay where nothing moved, else the
			// stored approval; either way each key is paid once.
			for _, r := range reqs {
				if _, err := e.svc.Pay(e.ctx, r); err != nil {
					t.Fatalf("pay %s again: %v", r.TerminalOrderID, err)
				}
			}
			if b := e.balance(t, cash); b != 10000-int64(len(reqs))*1000 {
				t.Fatalf("balance %d after the keys were paid again", b)
			}
			e.verify(t)
		})
	}
}

// A pay whose customer row another transaction holds for longer than the
// batch's lock timeout does not hold up the rest of its batch: the load
// gives up, the batch runs one pay at a time, the others are approved while
// the row is still held, and the held pay is approved once it is released.
// Nor does it hold up the batches after it: a batch queued while the held
// pay waits is answered while the row is still held.
func TestGroupPayBlockedRowDoesNotHoldUpTheBatch(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 4, MaxWait: 5 * time.Second})
	mobiles := []string{"15800005550", "15800005551", "15800005552", "15800005553"}
	for _, m := range append(mobiles, "15800005554") {
		newPayer(t, e, m, 10000)
	}
	release := holdCustomer(t, e, mobiles[0])
	// Each pay from a terminal of its own, as POS terminals send one request
	// at a time (a pay holds its terminal's row while it waits).
	for i := range len(mobiles) + 1 {
		if _, err := e.admin.UpsertTerminal(e.ctx, mapfront.TerminalSpec{TerminalID: fmt.Sprintf("ZB%06d", i),
			SellerID: "SH12345", StoreID: "ST12345", Enabled: true, TPKHex: testTPK}); err != nil {
			t.Fatal(err)
		}
	}
	done := make([]chan error, len(mobiles))
	for i, m := range mobiles {
		done[i] = make(chan error, 1)
		r := payReq(t, m, "123456", fmt.Sprintf("held%d", i), 1000)
		r.TerminalID = fmt.Sprintf("ZB%06d", i)
		go func() { _, err := e.svc.Pay(e.ctx, r); done[i] <- err }()
	}
	for i := 1; i < len(mobiles); i++ {
		select {
		case err := <-done[i]:
			if err != nil {
				t.Fatalf("pay of %s: %v", mobiles[i], err)
			}
		case <-time.After(batchLockTimeout + 10*time.Second):
			t.Fatalf("pay of %s waited behind the held row", mobiles[i])
		}
	}
	select {
	case err := <-done[0]:
		t.Fatalf("the held pay answered while its row was held: %v", err)
	default:
	}
	// The next batch (four pays of the other customers, from their own
	// terminals) while the held pay still waits.
	after := make(chan error, 4)
	for i, m := range append(mobiles[1:], "15800005554") {
		r := payReq(t, m, "123456", fmt.Sprintf("after%d", i), 1000)
		r.TerminalID = fmt.Sprintf("ZB%06d", i+1)
		go func() { _, err := e.svc.Pay(e.ctx, r); after <- err }()
	}
	for range 4 {
		select {
		case err := <-after:
			if err != nil {
				t.Fatalf("a pay of the next batch: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the next batch waited behind the held pay")
		}
	}
	select {
	case err := <-done[0]:
		t.Fatalf("the held pay answered while its row was held: %v", err)
	default:
	}
	release()
	if err := <-done[0]; err != nil {
		t.Fatalf("the held pay after the release: %v", err)
	}
	sizes.mu.Lock()
	singly := sizes.singly
	sizes.mu.Unlock()
	if fmt.Sprint(sizes.sizes) != "[4 4]" || singly != 1 {
		t.Fatalf("batches %v, fell back %d times: want two batches of 4, the first fell back", sizes.sizes, singly)
	}
	e.verify(t)
}

// A pay that runs alone on the lane (a batch of one: the single-pay path)
// and whose customer row another transaction holds holds up the lane for at
// most the lane's hold (a batch's lock timeout): the pays queued behind it
// are answered while the row is still held, and the held pay is approved
// once it is released.
func TestGroupPayBlockedSinglePayDoesNotHoldUpTheLane(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 4})
	mobiles := []string{"15800007770", "15800007771", "15800007772", "15800007773", "15800007774"}
	for i, m := range mobiles {
		newPayer(t, e, m, 10000)
		if _, err := e.admin.UpsertTerminal(e.ctx, mapfront.TerminalSpec{TerminalID: fmt.Sprintf("ZD%06d", i),
			SellerID: "SH12345", StoreID: "ST12345", Enabled: true, TPKHex: testTPK}); err != nil {
			t.Fatal(err)
		}
	}
	release := holdCustomer(t, e, mobiles[0])
	pay := func(i int, key string, done chan<- error) {
		r := payReq(t, mobiles[i], "123456", key, 1000)
		r.TerminalID = fmt.Sprintf("ZD%06d", i)
		go func() { _, err := e.svc.Pay(e.ctx, r); done <- err }()
	}
	held := make(chan error, 1)
	pay(0, "alone", held)
	// The lone pay is on the lane, waiting for the row.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := e.store.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lone pay did not wait on the held row")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	others := make(chan error, len(mobiles)-1)
	for i := 1; i < len(mobiles); i++ {
		pay(i, "behind", others)
	}
	for range len(mobiles) - 1 {
		select {
		case err := <-others:
			if err != nil {
				t.Fatalf("a pay behind the lone one: %v", err)
			}
		case <-time.After(batchLockTimeout + 2*time.Second):
			t.Fatal("the pays behind the lone one waited for the held row")
		}
	}
	t.Logf("the pays behind the lone one answered %v after they were sent", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-held:
		t.Fatalf("the held pay answered while its row was held: %v", err)
	default:
	}
	release()
	if err := <-held; err != nil {
		t.Fatalf("the held pay after the release: %v", err)
	}
	sizes.mu.Lock()
	batches := fmt.Sprint(sizes.sizes)
	sizes.mu.Unlock()
	if batches != "[1 4]" {
		t.Fatalf("batches %s, want [1 4]: the lone pay, then the four behind it", batches)
	}
	e.verify(t)
}

package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/secret"
)

// batchSizes records the sizes of the batches a service ran.
type batchSizes struct {
	mu     sync.Mutex
	sizes  []int
	singly int
}

func (b *batchSizes) observe(size int, _ time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, size)
}

func (b *batchSizes) max() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, s := range b.sizes {
		m = max(m, s)
	}
	return m
}

// groupEnv is newEnv with group commit of pays on.
func groupEnv(t *testing.T, c mapfront.GroupConfig) (*env, *batchSizes) {
	e := newEnv(t)
	sizes := &batchSizes{}
	c.Observe = sizes.observe
	c.Singly = func(int, error) { sizes.mu.Lock(); sizes.singly++; sizes.mu.Unlock() }
	if !e.svc.WithPINBudget(mapfront.PINBudget{}, nil).GroupPays(c) {
		t.Fatal("group commit did not turn on")
	}
	return e, sizes
}

// newPayer creates a customer with a payment password and a cash account
// of balance fen, and returns the cash account id.
func newPayer(t *testing.T, e *env, mobile string, balance int64) string {
	t.Helper()
	if _, err := e.admin.CreateCustomer(e.ctx, mobile, newID); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.SetPaymentPassword(e.ctx, mobile, "123456"); err != nil {
		t.Fatal(err)
	}
	if balance > 0 {
		if _, _, err := e.store.TopUpCash(e.ctx, mobile, balance, "t-"+mobile); err != nil {
			t.Fatal(err)
		}
	}
	c, err := e.store.GetCustomer(e.ctx, mobile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Accounts {
		if a.Kind == "cash" {
			return a.ID
		}
	}
	t.Fatal("no cash account")
	return ""
}

// Issue 11, show 3: 64 concurrent pays over 8 accounts whose balances allow
// only some of them, in shared batches: exactly floor(balance/sum) approved
// per account, each approval's balance one step of the account's debits,
// balances exact, the ledger proves.
func TestGroupPaysSharedAccounts(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 64})
	const accounts, perAccount, sum = 8, 8, 700
	mobiles := make([]string, accounts)
	cash := make([]string, accounts)
	balances := make([]int64, accounts)
	for i := range accounts {
		mobiles[i] = fmt.Sprintf("1580000%04d", i)
		balances[i] = int64(i)*sum + int64(i)*37 // allows i pays, never i+1
		cash[i] = newPayer(t, e, mobiles[i], balances[i])
	}
	type result struct {
		a   *mapfront.PaymentAnswer
		err error
	}
	results := make([][]result, accounts)
	for i := range results {
		results[i] = make([]result, perAccount)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range accounts {
		for j := range perAccount {
			// Half by mobile, half by account id: both resolve to the cash
			// account, and both kinds share a batch.
			consumer := mobiles[i]
			if j%2 == 1 {
				consumer = cash[i]
			}
			p := payReq(t, consumer, "123456", fmt.Sprintf("g%d-%d", i, j), sum)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				a, err := e.svc.Pay(e.ctx, p)
				results[i][j] = result{a, err}
			}()
		}
	}
	close(start)
	wg.Wait()
	if m := sizes.max(); m < 2 {
		t.Fatalf("largest batch %d: the pays never shared a batch", m)
	}
	for i := range accounts {
		approved := 0
		seen := map[int64]bool{}
		for _, r := range results[i] {
			switch mapfront.ErrorCode(r.err) {
			case mapfront.OK:
				approved++
				if r.a.AccountID != cash[i] || seen[*r.a.Balance] {
					t.Errorf("account %d: approval %+v", i, r.a)
				}
				seen[*r.a.Balance] = true
			case mapfront.CodeInsufficient:
			default:
				t.Errorf("account %d: %v", i, r.err)
			}
		}
		want := int(balances[i] / sum)
		if approved != want {
			t.Errorf("account %d: %d approved, want %d", i, approved, want)
		}
		for k := 1; k <= want; k++ {
			if !seen[balances[i]-int64(k)*sum] {
				t.Errorf("account %d: no approval left the balance at %d", i, balances[i]-int64(k)*sum)
			}
		}
		if b := e.balance(t, cash[i]); b != balances[i]-int64(want)*sum {
			t.Errorf("account %d: balance %d, want %d", i, b, balances[i]-int64(want)*sum)
		}
	}
	t.Logf("batch sizes %v", sizes.sizes)
	e.verify(t)
}

// One batch (the lane waits until all five are queued, in whatever order):
// the same key twice is one pay and one repeat with the same answer; two
// pays of one account see each other's debit, so only one of them fits;
// wrong passwords of one customer accumulate.
func TestGroupPayOneBatchSeesItself(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 5, MaxWait: 5 * time.Second})
	const mobile, other = "15800009999", "15800009998"
	cash := newPayer(t, e, mobile, 1000)
	newPayer(t, e, other, 1000)
	reqs := []*mapfront.PayRequest{
		payReq(t, mobile, "123456", "k1", 600),
		payReq(t, mobile, "123456", "k1", 600),
		payReq(t, mobile, "123456", "k2", 600),
		payReq(t, other, "654321", "k3", 100),
		payReq(t, other, "654321", "k4", 100),
	}
	answers := make([]*mapfront.PaymentAnswer, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i], errs[i] = e.svc.Pay(e.ctx, r) }()
	}
	wg.Wait()
	if len(sizes.sizes) != 1 || sizes.sizes[0] != len(reqs) {
		t.Fatalf("batches %v, want one of %d", sizes.sizes, len(reqs))
	}
	// k1 and its repeat answer alike: both the same approval, or both the
	// same decline (when k2 came first and took the balance).
	if mapfront.ErrorCode(errs[0]) != mapfront.ErrorCode(errs[1]) ||
		(errs[0] == nil && (answers[0].OrderID != answers[1].OrderID || *answers[1].Balance != 400)) {
		t.Fatalf("k1 twice: %+v %v / %+v %v", answers[0], errs[0], answers[1], errs[1])
	}
	approved := 0
	for _, err := range errs[1:3] {
		switch mapfront.ErrorCode(err) {
		case mapfront.OK:
			approved++
		case mapfront.CodeInsufficient:
		default:
			t.Fatalf("k1/k2: %v", err)
		}
	}
	if approved != 1 {
		t.Fatalf("%d of k1, k2 approved, want 1: %v", approved, errs)
	}
	wantCode(t, errs[3], mapfront.CodeWrongPassword)
	wantCode(t, errs[4], mapfront.CodeWrongPassword)
	c, err := e.store.GetCustomer(e.ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if c.Failures != 2 {
		t.Fatalf("password failures %d, want 2", c.Failures)
	}
	if b := e.balance(t, cash); b != 400 {
		t.Fatalf("balance %d, want 400", b)
	}
	// A repeat after the batch answers the same, from the database.
	again, err := e.svc.Pay(e.ctx, reqs[0])
	if mapfront.ErrorCode(err) != mapfront.ErrorCode(errs[0]) || (err == nil && again.OrderID != answers[0].OrderID) {
		t.Fatalf("repeat: %+v %v, first %+v %v", again, err, answers[0], errs[0])
	}
	e.verify(t)
}

// Pays in batches and reversals of the same keys racing end as SPEC
// section 5 says: approved-then-reversed or tombstoned-then-declined, never
// money moved and the reversal lost.
func TestGroupPayUndoRace(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 16})
	const n = 48
	var wg sync.WaitGroup
	payErr := make([]error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		p := payReq(t, demoMobile, "123456", fmt.Sprintf("grace%d", i), 100)
		wg.Add(2)
		go func(i int) { defer wg.Done(); <-start; _, payErr[i] = e.svc.Pay(e.ctx, p) }(i)
		go func() {
			defer wg.Done()
			<-start
			if _, err := e.svc.UndoPay(e.ctx, undoReq(p)); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	approvedReversed, tombstoned := 0, 0
	for i := 0; i < n; i++ {
		var state, status string
		err := e.store.pool.QueryRow(e.ctx, `SELECT r.state, coalesce(p.status, '')
FROM terminal_requests r LEFT JOIN pay_orders p ON p.kind = 'pay' AND p.terminal_id = r.terminal_id
 AND p.batch_no = r.batch_no AND p.terminal_order_id = r.terminal_order_id
WHERE r.kind = 'pay' AND r.terminal_order_id = $1`, fmt.Sprintf("grace%d", i)).Scan(&state, &status)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case payErr[i] == nil && state == "reversed" && status == "reversed":
			approvedReversed++
		case mapfront.ErrorCode(payErr[i]) == mapfront.CodeAlreadyUndone && state == "tombstone" && status == "":
			tombstoned++
		default:
			t.Errorf("key %d: pay err %v, state %s, order %q", i, payErr[i], state, status)
		}
	}
	if b := e.balance(t, demoCard); b != 300000 {
		t.Fatalf("card balance %d, want 300000 (every approved pay reversed)", b)
	}
	t.Logf("%d approved-then-reversed, %d tombstoned-then-declined; batch sizes %v", approvedReversed, tombstoned, sizes.sizes)
	e.verify(t)
}

// failingBatches is the store with one pay whose batch write the database
// refuses: its order is written with amount 0, which pay_orders' CHECK
// refuses. Only the batch write is spoiled; the same pay on its own is
// written as decided. Test-only: production wires the Store itself.
type failingBatches struct {
	*Store
	bad     string // the terminal order id of the spoiled pay
	spoiled atomic.Int32
}

func (f *failingBatches) LoadPays(ctx context.Context, rs []*mapfront.PayRequest) ([]*mapfront.PayState, mapfront.Unit[[]*mapfront.PayOutcome], error) {
	sts, u, err := f.Store.LoadPays(ctx, rs)
	if err != nil {
		return nil, nil, err
	}
	return sts, spoilUnit{u, f}, nil
}

type spoilUnit struct {
	mapfront.Unit[[]*mapfront.PayOutcome]
	f *failingBatches
}

func (u spoilUnit) Persist(ctx context.Context, outs []*mapfront.PayOutcome) error {
	cp := make([]*mapfront.PayOutcome, len(outs))
	for i, o := range outs {
		cp[i] = o
		if o.Approved != nil && o.Key.TerminalOrderID == u.f.bad {
			bad, order := *o, *o.Approved
			order.Amount = 0
			bad.Approved = &order
			cp[i] = &bad
			u.f.spoiled.Add(1)
		}
	}
	return u.Unit.Persist(ctx, cp)
}

// Issue 11, show 3: a batch with one pay that makes the write fail still
// approves the others (run one at a time after the batch rolled back), and
// nothing of the failed batch stands.
func TestGroupPayWriteFailureFallsBackToSingles(t *testing.T) {
	e := newEnv(t)
	keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	f := &failingBatches{Store: e.store, bad: "bad"}
	svc := mapfront.NewService(f, keys, mapfront.Clock{Zone: e.clock.now.Location(), Now: e.clock.Now},
		mapfront.DefaultPolicy(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	sizes := &batchSizes{}
	if !svc.WithPINBudget(mapfront.PINBudget{}, nil).GroupPays(mapfront.GroupConfig{MaxBatch: 6, MaxWait: 5 * time.Second, Observe: sizes.observe,
		Singly: func(int, error) { sizes.mu.Lock(); sizes.singly++; sizes.mu.Unlock() }}) {
		t.Fatal("group commit did not turn on")
	}
	const mobile = "15800008888"
	cash := newPayer(t, e, mobile, 10000)
	keysOf := []string{"ok1", "ok2", "bad", "ok3", "ok4", "ok5"}
	errs := make([]error, len(keysOf))
	var wg sync.WaitGroup
	for i, k := range keysOf {
		p := payReq(t, mobile, "123456", k, 1000)
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = svc.Pay(e.ctx, p) }()
	}
	wg.Wait()
	if f.spoiled.Load() == 0 || sizes.singly != 1 || len(sizes.sizes) != 1 || sizes.sizes[0] != len(keysOf) {
		t.Fatalf("spoiled %d, fell back %d times, batches %v: want one batch of %d that fell back",
			f.spoiled.Load(), sizes.singly, sizes.sizes, len(keysOf))
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("pay %s: %v", keysOf[i], err)
		}
	}
	if b := e.balance(t, cash); b != 10000-int64(len(keysOf))*1000 {
		t.Fatalf("balance %d, want %d", b, 10000-int64(len(keysOf))*1000)
	}
	var orders int
	if err := e.store.pool.QueryRow(e.ctx, `SELECT count(*) FROM pay_orders WHERE consumer_id = $1`, mobile).Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if orders != len(keysOf) {
		t.Fatalf("%d orders, want %d", orders, len(keysOf))
	}
	e.verify(t)
}

// BenchmarkPayClients measures Service.Pay (no HTTP, no gRPC) against the
// real PostgreSQL, each pay from one of 64 customers' cash accounts, with 1
// and 16 concurrent clients, each client a terminal of its own (as loadgen's
// workers are) under the default wrong-PIN budget: each pay its own
// transaction (single; single-1terminal with every client on one terminal,
// whose row each pay locks) and with group commit over 1, 2 and 4 lanes.
// Reported: pays/s, the clients' p50/p99 latency, the PostgreSQL backends'
// CPU per pay and, with group commit, the mean batch size (the histogram
// is logged).
//
//	go test -run XXX -bench PayClients -benchtime 5s ./server/internal/postgres
func BenchmarkPayClients(b *testing.B) {
	for _, mode := range []struct {
		name      string
		lanes     int // 0: single
		terminals int // 0: one per client
	}{{"single", 0, 0}, {"single-1terminal", 0, 1}, {"group", 1, 0}, {"group-lanes2", 2, 0}, {"group-lanes4", 4, 0}} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				terminals := mode.terminals
				if terminals == 0 {
					terminals = clients
				}
				benchPayClients(b, mode.lanes, clients, terminals)
			})
		}
	}
}

func benchPayClients(b *testing.B, lanes, clients, terminals int) {
	e := newEnvTB(b)
	sizes := &batchSizes{}
	if lanes > 0 && !e.svc.GroupPays(mapfront.GroupConfig{MaxBatch: 64, Lanes: lanes, Observe: sizes.observe}) {
		b.Fatal("group commit did not turn on")
	}
	// The bench terminals, in the demo terminal's store, with its PIN key.
	for i := range terminals {
		if _, err := e.admin.UpsertTerminal(e.ctx, mapfront.TerminalSpec{TerminalID: fmt.Sprintf("ZB%06d", i),
			SellerID: "SH12345", StoreID: "ST12345", Enabled: true, TPKHex: testTPK}); err != nil {
			b.Fatal(err)
		}
	}
	const customers = 64
	blocks := make([]string, customers)
	for i := 0; i < customers; i++ {
		mobile := fmt.Sprintf("1500000%04d", i)
		if _, err := e.admin.CreateCustomer(e.ctx, mobile, newID); err != nil {
			b.Fatal(err)
		}
		if err := e.admin.SetPaymentPassword(e.ctx, mobile, "123456"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.store.TopUpCash(e.ctx, mobile, 1_000_000_000, "bench-"+mobile); err != nil {
			b.Fatal(err)
		}
		blocks[i] = pinForTB(b, "123456", mobile)
	}
	var n atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	cpu0 := backendCPU(b, e)
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			terminal := fmt.Sprintf("ZB%06d", c%terminals)
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				k := int(i % customers)
				r := &mapfront.PayRequest{
					Origin:  mapfront.Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: terminal, OperatorID: "bench"},
					BatchNo: "1", TerminalOrderID: fmt.Sprint(i), ConsumerID: fmt.Sprintf("1500000%04d", k), PINBlock: blocks[k], Sum: 1,
				}
				t0 := time.Now()
				if _, err := e.svc.Pay(e.ctx, r); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := backendCPU(b, e)
	var ticks int64
	for pid, t := range cpu {
		ticks += t - cpu0[pid] // a backend started during the run counts whole
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "pays/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	// Clock ticks are 10 ms (USER_HZ 100): over a few thousand pays the
	// figure is good to a few µs.
	b.ReportMetric(float64(ticks)*10_000/float64(len(all)), "pg-cpu-µs/pay")
	if lanes > 0 {
		sizes.mu.Lock()
		defer sizes.mu.Unlock()
		if len(sizes.sizes) > 0 {
			b.ReportMetric(float64(len(all))/float64(len(sizes.sizes)), "pays/batch")
			// Powers of two: [1], [2,3], [4,7], [8,15], ...
			hist := map[int]int{}
			top := 0
			for _, s := range sizes.sizes {
				bucket := bits.Len(uint(s)) - 1
				hist[bucket]++
				top = max(top, bucket)
			}
			var line strings.Builder
			for i := 0; i <= top; i++ {
				fmt.Fprintf(&line, " %d-%d:%d", 1<<i, 1<<(i+1)-1, hist[i])
			}
			b.Logf("batch sizes (%d batches):%s", len(sizes.sizes), line.String())
		}
	}
}

// backendCPU reads the CPU time (user + system, in clock ticks) of the
// PostgreSQL backends serving the test's database, by pid, from /proc: the
// database's own cost per pay, which a shared machine's scheduler does not
// blur as it blurs throughput.
func backendCPU(b *testing.B, e *env) map[int]int64 {
	rows, err := e.store.pool.Query(e.ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	cpu := map[int]int64{}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // not on this machine, or gone
		}
		// Fields after the command name (which may hold spaces): utime and
		// stime are the 14th and 15th of the line.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		cpu[int(pid)] = u + s
	}
	return cpu
}

// A pay given up by its caller while it still waits for a batch had no
// effect: 10018, nothing written, and a later pay of the key is a first pay.
func TestGroupPayAbandonedInQueue(t *testing.T) {
	e, sizes := groupEnv(t, mapfront.GroupConfig{MaxBatch: 4, MaxWait: time.Second})
	const mobile = "15800007777"
	cash := newPayer(t, e, mobile, 1000)
	p := payReq(t, mobile, "123456", "gone", 100)
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	_, err := e.svc.Pay(ctx, p) // the lane waits a second for more pays; the caller leaves first
	wantCode(t, err, mapfront.CodeBusy)
	time.Sleep(1200 * time.Millisecond) // the lane wakes, finds only the abandoned pay
	if b := e.balance(t, cash); b != 1000 {
		t.Fatalf("balance %d after an abandoned pay, want 1000", b)
	}
	if n := len(sizes.sizes); n != 0 {
		t.Fatalf("%d batches ran, want none", n)
	}
	a, err := e.svc.Pay(e.ctx, p)
	if err != nil || *a.Balance != 900 {
		t.Fatalf("the key's first real pay: %+v %v", a, err)
	}
	e.verify(t)
}

// A password that verifies under an old master key is hashed again under
// the current one inside a batch too, as on the single path (found by a
// review: the batch's password write kept the old hash).
func TestGroupPayRehashesUnderTheCurrentKey(t *testing.T) {
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	a := keyedEnv(t, url, testKeys(t, keyA), clk)
	if err := a.admin.LoadDemo(a.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	ring := testKeys(t, keyB, keyA)
	b := keyedEnv(t, url, ring, clk)
	sizes := &batchSizes{}
	if !b.svc.WithPINBudget(mapfront.PINBudget{}, nil).GroupPays(mapfront.GroupConfig{MaxBatch: 2, MaxWait: 300 * time.Millisecond, Observe: sizes.observe}) {
		t.Fatal("group commit refused")
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.svc.Pay(b.ctx, payReq(t, demoMobile, "123456", fmt.Sprintf("rh%d", i), 100)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if sizes.max() < 2 {
		t.Skip("the two pays did not share a batch")
	}
	var hash []byte
	if err := b.store.pool.QueryRow(b.ctx, `SELECT pw_hash FROM customers WHERE mobile = $1`, demoMobile).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), string(ring.CurrentPrefix())) {
		t.Fatal("the batch kept the password hash under the old key")
	}
}

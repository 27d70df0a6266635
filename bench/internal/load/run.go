package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"mapfront/bench/internal/identity"
	"mapfront/bench/internal/pinblock"
)

// RunConfig is one load run.
type RunConfig struct {
	Customers   int           // customers 0..Customers-1 (identity) are drawn at random
	Concurrency int           // workers, each one terminal sending one request at a time
	Duration    time.Duration // no new request after this long
	MaxRequests int64         // no new request after this many (0: Duration alone bounds)
	Mix         Mix
	Password    string            // the customers' payment password (provision sets it)
	PINs        *pinblock.Builder // under the bench terminals' TPK
	Terminals   int               // bench terminals registered by provision
	BatchNo     string            // this run's batch: makes its terminal keys new
	Seed        uint64            // random customers and sums; same seed, same choices
	MaxSum      int64             // pays are 1..MaxSum fen
	Timeout     time.Duration     // per request
}

// Limits that keep a mistyped flag from doing something silly.
const (
	maxConcurrency = 1000
	maxDuration    = time.Hour
	maxPool        = 1024 // pays remembered per worker for cancel
)

// Validate checks that the run is bounded and its inputs usable.
func (c *RunConfig) Validate() error {
	var errs []error
	if c.Customers < 1 || c.Customers > identity.MaxCustomers {
		errs = append(errs, fmt.Errorf("customers %d: want 1..%d", c.Customers, identity.MaxCustomers))
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1..%d", c.Concurrency, maxConcurrency))
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("duration %v: want more than 0 and at most %v", c.Duration, maxDuration))
	}
	if c.MaxRequests < 0 {
		errs = append(errs, errors.New("max requests must not be negative"))
	}
	if c.Mix.total() == 0 {
		errs = append(errs, errors.New("empty mix"))
	}
	if c.PINs == nil {
		errs = append(errs, errors.New("no PIN key"))
	}
	if c.Terminals < 1 {
		errs = append(errs, fmt.Errorf("terminals %d: want at least 1", c.Terminals))
	}
	if c.BatchNo == "" || len(c.BatchNo) > 20 {
		errs = append(errs, fmt.Errorf("batch %q: want 1..20 characters", c.BatchNo))
	}
	if c.MaxSum < 1 {
		errs = append(errs, fmt.Errorf("max sum %d: want at least 1 fen", c.MaxSum))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if len(c.Password) != 6 {
		errs = append(errs, errors.New("password must be 6 digits"))
	}
	return errors.Join(errs...)
}

// payRef is a pay a worker sent: its terminal key and, once approved, orderId.
type payRef struct {
	terminalOrderID string
	orderID         string
}

// codeKey counts outcomes by operation and errcode.
type codeKey struct {
	op   Op
	code int
}

// worker is one simulated terminal. Its state is its own, so nothing is
// shared between workers but the request counter.
type worker struct {
	id   int
	cfg  *RunConfig
	term Terminal
	rng  *rand.Rand
	seq  int

	pool []payRef // approved pays not yet cancelled or reversed: cancel picks here
	last *payRef  // the last pay sent (approved or not): undo reverses it

	lat         [numOps][]time.Duration
	codes       map[codeKey]int
	samples     map[codeKey]string
	perSecond   []int
	substituted int
}

// nextOrderID is a new terminalOrderId: the worker number and a counter, so
// that workers sharing a terminal never share a key within the batch.
func (w *worker) nextOrderID() string {
	w.seq++
	return fmt.Sprintf("%04d%08d", w.id, w.seq)
}

// Run drives the target until Duration passes, MaxRequests have been sent or
// ctx is cancelled (then it stops sending; requests in flight finish, with
// their own Timeout, so an interrupt does not show up as errors).
func Run(ctx context.Context, cfg RunConfig, client Client) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var sent atomic.Int64
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{id: i, cfg: &cfg, term: BenchTerminal(i % cfg.Terminals),
			rng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			codes: map[codeKey]int{}, samples: map[codeKey]string{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if cfg.MaxRequests > 0 && sent.Add(1) > cfg.MaxRequests {
					return
				}
				w.step(client, start)
			}
		}()
	}
	wg.Wait()
	return newReport(&cfg, workers, time.Since(start)), nil
}

// step sends one request of the mix. A cancel with no approved pay to target,
// or an undo with no pay sent yet, becomes a pay (counted as substituted).
func (w *worker) step(client Client, start time.Time) {
	op := w.cfg.Mix.Pick(w.rng)
	if (op == OpCancel && len(w.pool) == 0) || (op == OpUndo && w.last == nil) {
		op = OpPay
		w.substituted++
	}
	t := &Txn{Op: op, Terminal: w.term, BatchNo: w.cfg.BatchNo}
	var target payRef
	switch op {
	case OpPay, OpQuery:
		mobile := identity.Mobile(w.rng.IntN(w.cfg.Customers))
		block, err := w.cfg.PINs.Build(w.cfg.Password, mobile)
		if err != nil { // only a bad password flag can get here; Validate checks its length
			panic(err)
		}
		t.ConsumerID, t.PINBlock, t.TerminalOrderID = mobile, block, w.nextOrderID()
		if op == OpPay {
			t.Sum = 1 + w.rng.Int64N(w.cfg.MaxSum)
			w.last = &payRef{terminalOrderID: t.TerminalOrderID}
		}
	case OpCancel:
		// The most recent approved pay of this worker, on its own terminal
		// and batch: the only pays a cancel may target (SPEC section 5).
		target = w.pool[len(w.pool)-1]
		w.pool = w.pool[:len(w.pool)-1]
		if w.last != nil && w.last.terminalOrderID == target.terminalOrderID {
			w.last = nil // reversing a cancelled pay would only answer "cancelled"
		}
		t.OrderID, t.TerminalOrderID = target.orderID, w.nextOrderID()
	case OpUndo:
		// The POS reverses the last pay it sent, under that pay's own key.
		target = *w.last
		w.last = nil
		if n := len(w.pool); n > 0 && w.pool[n-1].terminalOrderID == target.terminalOrderID {
			w.pool = w.pool[:n-1] // a reversed pay cannot be cancelled
		}
		t.TerminalOrderID = target.terminalOrderID
	}

	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	t0 := time.Now()
	out := client.Do(ctx, t)
	elapsed := time.Since(t0)
	cancel()

	w.lat[op] = append(w.lat[op], elapsed)
	k := codeKey{op, out.Errcode}
	w.codes[k]++
	if _, ok := w.samples[k]; !ok && out.Errcode != 0 {
		w.samples[k] = out.Errmsg
	}
	sec := int(time.Since(start) / time.Second)
	for len(w.perSecond) <= sec {
		w.perSecond = append(w.perSecond, 0)
	}
	w.perSecond[sec]++
	if op == OpPay && out.Errcode == 0 {
		w.last.orderID = out.OrderID
		w.pool = append(w.pool, *w.last)
		if len(w.pool) > maxPool {
			w.pool = append(w.pool[:0], w.pool[len(w.pool)-maxPool:]...)
		}
	}
}

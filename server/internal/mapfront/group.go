package mapfront

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit of pays (issue 11). Concurrent Pay calls queue; a lane takes
// everything queued (up to MaxBatch) and runs it as one transaction: one
// load of the whole batch (PayBatchStore.LoadPays), the same pure decisions
// as a single pay (ReplayPay, pinBudget, DecidePay, countPINFailure) in
// arrival order with the batch's own effects applied as it goes, one write
// and one COMMIT. One batch is collected at a time: the next is taken when
// the one before it has loaded (holds its locks), so that pays arriving
// while a batch loads form the next batch, which loads while the one before
// it writes and commits (up to Lanes batches in the database at once).
// There is no timer by default, so at low load a batch is one pay and a pay
// waits for nothing.

// PayBatchStore is the group-commit half of the pay store, implemented by
// the postgres store next to OfflineStore.
type PayBatchStore interface {
	// LoadPays begins one transaction for the batch rs and reads, in one
	// round trip, for every request what LoadPay reads for it (the states
	// are in the order of rs, each with its own order number). It takes the
	// pay keys' transaction locks (the lock LoadPay and LoadUndo take) in
	// ascending lock order, then locks the terminals in terminal_id order,
	// the customers in customer_id order and the accounts in account_id
	// order (the classes in the order LoadPay takes its one of each), so
	// that batches and single pays never deadlock. Persist writes the
	// outcomes in arrival order, one statement per table (the terminals'
	// wrong-PIN guards as loaded with the batch's PINFailures counted in
	// order by PINGuard.Next), and commits. Errors: as OfflineStore (a
	// context that ends before COMMIT was sent is 10018), plus *RolledBack
	// when the transaction certainly did not commit but trying the same
	// batch again would fail the same way (a constraint, a bug).
	LoadPays(ctx context.Context, rs []*PayRequest) ([]*PayState, Unit[[]*PayOutcome], error)
}

// PayBatchUnit is a loaded batch's unit that can also begin the next batch.
// PersistLoad is Persist followed, in the same round trip and on the same
// connection, by the next batch's BEGIN and load (what LoadPays does for rs):
// the database runs the next load as soon as this batch has committed.
// committed is called once this batch's COMMIT has succeeded, before the
// next batch's results are read. err is Persist's (the batch's outcome;
// nothing of the next was loaded when it is not nil; never set once
// committed was called); loadErr is the next batch's load failing (its
// transaction certainly had no effect: the service loads it again, or runs
// its pays one at a time when loadErr is *RolledBack), and then sts and
// next are nil.
type PayBatchUnit interface {
	Unit[[]*PayOutcome]
	PersistLoad(ctx context.Context, outs []*PayOutcome, rs []*PayRequest, committed func()) (
		sts []*PayState, next PayBatchUnit, loadErr, err error)
}

// RolledBack marks a store error after which the transaction certainly did
// not commit and that a retry of the same work would meet again (a
// statement refused by a constraint, a bug). A batch that fails so is run
// again one request at a time, so that one bad request fails only itself.
type RolledBack struct{ Err error }

func (e *RolledBack) Error() string { return "rolled back: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RolledBack) Unwrap() error { return e.Err }

// GroupConfig sets the group commit of pays.
type GroupConfig struct {
	// MaxBatch is the most pays in one transaction; 1 or less turns group
	// commit off (every pay is its own transaction).
	MaxBatch int
	// MaxWait is how long a lane that found fewer than MaxBatch pays queued
	// waits for more before it starts; 0 (the default) never waits.
	MaxWait time.Duration
	// Lanes is how many batches may be in the database at once (default 1);
	// a new batch is taken only when the one before it has loaded.
	Lanes int
	// Observe, if set, is told each batch's size and how long its oldest
	// pay waited in the queue (for metrics).
	Observe func(size int, wait time.Duration)
	// Singly, if set, is told when a batch is run again one request at a
	// time, with the error that made it.
	Singly func(size int, err error)
}

// GroupPays turns on group commit of pays if the store can load batches
// (PayBatchStore) and c.MaxBatch > 1. It must be called before the service
// serves; it reports whether group commit is on.
func (s *Service) GroupPays(c GroupConfig) bool {
	bs, ok := s.store.(PayBatchStore)
	if !ok || c.MaxBatch <= 1 {
		s.group = nil
		return false
	}
	if c.Lanes < 1 {
		c.Lanes = 1
	}
	s.group = &payGroup{cfg: c, store: bs, more: make(chan struct{}, 1)}
	return true
}

// QueuedPays is how many pays wait for a batch (0 when group commit is off).
func (s *Service) QueuedPays() int {
	g := s.group
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// payGroup is the queue of pays and the lanes that run it.
type payGroup struct {
	cfg   GroupConfig
	store PayBatchStore
	mu    sync.Mutex
	queue []*payCall
	busy  int           // lanes running
	taker bool          // a lane is taking or loading a batch: the next waits for its load
	more  chan struct{} // a pay was queued (for a lane waiting MaxWait)
}

// startLocked reports whether a new lane is to take the queue now (and
// counts it): no lane is taking or loading, a lane is free, and something
// is queued: one pay when no batch is in the database (at low load a pay
// waits for nothing), else at least two (a lone pay waits for the batch in
// the database, whose lane takes it when done, rather than costing a
// transaction of its own beside it). g.mu is held.
func (g *payGroup) startLocked() bool {
	if g.taker || g.busy >= g.cfg.Lanes || len(g.queue) == 0 || g.busy > 0 && len(g.queue) < 2 {
		return false
	}
	g.taker = true
	g.busy++
	return true
}

// Call states: a queued call is taken by a lane or given up by its caller,
// whichever comes first.
const (
	callQueued int32 = iota
	callTaken
	callAbandoned
)

// payCall is one Pay waiting for its batch.
type payCall struct {
	ctx    context.Context
	r      *PayRequest
	fp     []byte
	queued time.Time
	state  atomic.Int32
	done   chan payResult
}

type payResult struct {
	a       *PaymentAnswer
	decline error
	err     error
}

// payGrouped queues r and waits for its batch's answer. A pay given up by
// its caller before a lane took it had no effect (10018); once taken, its
// answer is awaited (the batch runs under its own deadline, batchContext;
// a pipelined persist under the next batch's when that is later or none,
// laterContext).
func (s *Service) payGrouped(ctx context.Context, r *PayRequest, fp []byte) (*PaymentAnswer, error) {
	g := s.group
	c := &payCall{ctx: ctx, r: r, fp: fp, queued: time.Now(), done: make(chan payResult, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	start := g.startLocked()
	g.mu.Unlock()
	if start {
		go s.runLane()
	} else {
		select {
		case g.more <- struct{}{}:
		default:
		}
	}
	select {
	case res := <-c.done:
		return answerOr(res.a, res.decline, res.err)
	case <-ctx.Done():
		if c.state.CompareAndSwap(callQueued, callAbandoned) {
			return nil, &Error{Code: CodeBusy, Msg: ErrBusy.Msg}
		}
		res := <-c.done
		return answerOr(res.a, res.decline, res.err)
	}
}

// runLane is a lane: it takes a batch (it is the taker), runs it, and takes
// the next if no other lane is taking meanwhile; else it ends. The next Pay
// or loaded batch starts a lane again.
func (s *Service) runLane() {
	g := s.group
	var next laneNext
	for {
		batch, pre := next.calls, next
		next = laneNext{}
		loaded := func() {} // a batch taken at its predecessor's persist: told then
		if batch == nil {
			if batch = g.take(); batch == nil {
				return
			}
			var once sync.Once
			loaded = func() { once.Do(func() { s.loaded() }) }
		}
		s.runBatch(batch, &pre, &next, loaded)
		if next.calls != nil {
			continue
		}
		g.mu.Lock()
		again := !g.taker && len(g.queue) > 0
		if again {
			g.taker = true
		} else {
			g.busy--
		}
		g.mu.Unlock()
		if !again {
			return
		}
	}
}

// loaded is told when the taker's batch has loaded (or failed to): the
// next batch may be taken, by a new lane if one is free.
func (s *Service) loaded() {
	g := s.group
	g.mu.Lock()
	g.taker = false
	start := g.startLocked()
	g.mu.Unlock()
	if start {
		go s.runLane()
	}
}

// laneNext is the batch a lane took while the one before it persisted, with
// its states and unit when its load rode on that persist (PersistLoad), or
// the error that load failed with.
type laneNext struct {
	calls   []*payCall
	sts     []*PayState
	u       PayBatchUnit
	loadErr error
}

// takeNext takes the next batch for a lane whose batch is about to persist,
// if no lane is taking and something is queued (never waiting); the lane is
// then the taker until it calls loaded.
func (g *payGroup) takeNext() []*payCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.taker || len(g.queue) == 0 {
		return nil
	}
	g.taker = true
	batch := g.drainLocked()
	if len(batch) == 0 {
		g.taker = false
		return nil
	}
	return batch
}

// drainLocked removes up to MaxBatch queued calls from the queue and
// returns those it marked taken (a call its caller gave up is dropped).
// g.mu is held.
func (g *payGroup) drainLocked() []*payCall {
	var batch []*payCall
	for len(g.queue) > 0 && len(batch) < g.cfg.MaxBatch {
		c := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if c.state.CompareAndSwap(callQueued, callTaken) {
			batch = append(batch, c)
		}
	}
	if len(g.queue) == 0 {
		g.queue = nil // let the backing array go
	}
	return batch
}

// take removes up to MaxBatch queued calls (waiting up to MaxWait for more
// when configured) and marks them taken; nil, with the lane released, when
// nothing is queued. The caller is the taker.
func (g *payGroup) take() []*payCall {
	if g.cfg.MaxWait > 0 {
		g.linger()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	batch := g.drainLocked()
	if len(batch) == 0 {
		g.busy--
		g.taker = false
		return nil
	}
	return batch
}

// linger waits, up to MaxWait, while fewer than MaxBatch pays are queued.
func (g *payGroup) linger() {
	deadline := time.NewTimer(g.cfg.MaxWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n >= g.cfg.MaxBatch {
			return
		}
		select {
		case <-g.more:
		case <-deadline.C:
			return
		}
	}
}

// runBatch runs one batch and answers every call in it; loaded is called
// when its (first) load has returned. Inside the one retry loop: a
// transient failure (certainly not committed) runs the batch again; a
// *RolledBack failure runs each request on its own (the single path, with
// its own retries), so that one bad request never fails the others; any
// other failure answers that error to every member: 10018 when it came
// before COMMIT was sent (the store classifies), else 10000, the outcome
// unknown.
//
// pre holds the batch's states and unit when its load rode on the persist
// of the batch before it (tried first; a unit not used is rolled back).
// When the batch persists, the next batch is taken if something is queued
// and its load sent with the persist (next, for the lane to run).
func (s *Service) runBatch(batch []*payCall, pre, next *laneNext, loaded func()) {
	defer loaded()
	defer func() {
		if pre.u != nil {
			pre.u.Rollback()
			pre.u = nil
		}
	}()
	if o := s.group.cfg.Observe; o != nil {
		o(len(batch), time.Since(batch[0].queued))
	}
	if len(batch) == 1 && pre.u == nil {
		// A batch of one is a single pay: the single path's plain
		// statements cost the database less than the set-based ones, so at
		// low load a pay costs what it did without group commit.
		// The lane waits for it at most laneHold: a pay whose row another
		// transaction holds then goes on waiting on its own (up to the
		// statement timeout), and the lane takes the next batch.
		c := batch[0]
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			a, err := s.payOne(c.ctx, c.r, c.fp, loaded)
			c.done <- payResult{a: a, err: err}
		}()
		hold := time.NewTimer(laneHold)
		defer hold.Stop()
		select {
		case <-answered:
		case <-hold.C:
			s.log.Warn("a single pay waits past the lane's hold; the lane goes on", "hold", laneHold)
		}
		return
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	// The answers go out once, when the batch has committed (PersistLoad
	// tells that before it reads the next batch's load) or after the tries.
	delivered := false
	deliver := func(results []payResult) {
		if !delivered {
			delivered = true
			for i, c := range batch {
				c.done <- results[i]
			}
		}
	}
	var results []payResult
	err := Retry(ctx, attempts, func() error {
		var err error
		results, err = s.tryBatch(ctx, batch, pre, next, loaded, deliver)
		return err
	})
	var rb *RolledBack
	switch {
	case err == nil:
		deliver(results)
	case delivered:
		// Not reached: nothing fails after COMMIT succeeded.
		s.log.Error("pay batch failed after it committed", "size", len(batch), "err", err)
	case errors.As(err, &rb):
		if f := s.group.cfg.Singly; f != nil {
			f(len(batch), err)
		}
		s.log.Warn("pay batch rolled back; paying one at a time", "size", len(batch), "err", err)
		// Each on its own, and the lane goes on: a pay whose row another
		// transaction holds waits (up to the statement timeout) without
		// holding up the batches after it. Single pays and batches lock in
		// one order, so they never deadlock.
		for _, c := range batch {
			go func() {
				a, err := s.paySingle(c.ctx, c.r, c.fp)
				c.done <- payResult{a: a, err: err}
			}()
		}
	default:
		if rb != nil {
			err = rb.Err
		}
		for _, c := range batch {
			c.done <- payResult{err: err}
		}
	}
}

// laneHold bounds how long a lane waits for a batch of one (a single pay)
// before it takes the next batch: as long as a batch's load waits for a
// row lock (the store's lock timeout), so that a row held elsewhere holds
// up the lane no longer through a single pay than through a batch.
const laneHold = time.Second

// batchContext is the batch's context: no member's cancellation may cut the
// others' transaction short, so it ends at the latest member deadline.
func batchContext(batch []*payCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(c.ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}

// laterContext is ctx, a batch's context, with its deadline moved to the
// latest deadline of the calls of the next batch when that is later (none
// when one of them has none).
func laterContext(ctx context.Context, calls []*payCall) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	for _, c := range calls {
		cd, ok := c.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(ctx))
		}
		if cd.After(d) {
			d = cd
		}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), d)
}

// tryBatch is one attempt at a batch: load, decide in arrival order, persist.
// Per-member internal errors (a password hash that does not verify) fail
// that member only; its outcome is not written.
func (s *Service) tryBatch(ctx context.Context, batch []*payCall, pre, next *laneNext, loaded func(), deliver func([]payResult)) ([]payResult, error) {
	var (
		sts []*PayState
		u   Unit[[]*PayOutcome]
		err error
	)
	var rb *RolledBack
	switch {
	case pre.u != nil:
		sts, u = pre.sts, pre.u
		pre.sts, pre.u = nil, nil
	case errors.As(pre.loadErr, &rb):
		// The load that rode on the persist before was refused (a row
		// held past the lock timeout): loading the same batch again would
		// wait as long again, so it runs one pay at a time at once.
		err, pre.loadErr = pre.loadErr, nil
		loaded()
		return nil, err
	default:
		pre.loadErr = nil
		sts, u, err = s.group.store.LoadPays(ctx, requests(batch))
		loaded()
		if err != nil {
			return nil, err
		}
	}
	defer u.Rollback()
	if len(sts) != len(batch) {
		return nil, errors.New("pay batch: load returned a state per request count that does not match")
	}
	results := make([]payResult, len(batch))
	outs := make([]*PayOutcome, 0, len(batch))
	fx := newBatchEffects()
	for i, c := range batch {
		// As paySingle, on the state with the batch's effects so far.
		st, res := fx.apply(sts[i], c.r), &results[i]
		var done bool
		if res.a, res.decline, done = ReplayPay(st, c.fp, s.clock); done {
			continue
		}
		now := s.clock.Now()
		if res.decline = s.pinBudget(st.Terminal, c.r.Origin, now); res.decline != nil {
			continue // nothing to keep: the key stays free
		}
		cred, err := s.credentials(st.Terminal, c.r.TerminalID, c.r.PINBlock, c.r.ConsumerID, st.Customer)
		if err != nil {
			res.err = err
			continue
		}
		var out *PayOutcome
		out, res.a, res.decline = DecidePay(c.r, st, cred, s.policy, s.clock, now, c.fp)
		s.countPINFailure(out.Password, res.decline, c.r.Origin, now)
		if res.decline != nil && out.Declined == nil && out.Password == nil {
			continue // nothing to keep: the key stays free
		}
		fx.record(st, out)
		outs = append(outs, out)
	}
	if len(outs) > 0 {
		if err := s.persist(ctx, u, outs, next, func() { deliver(results) }); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// persist persists the batch's outcomes; when the unit can begin the next
// batch and nothing is next yet, it takes the queued pays as the next batch
// and sends its load with the persist (committed is told when the batch has
// committed, before that load is read).
func (s *Service) persist(ctx context.Context, u Unit[[]*PayOutcome], outs []*PayOutcome, next *laneNext, committed func()) error {
	pu, ok := u.(PayBatchUnit)
	if !ok || next.calls != nil {
		return u.Persist(ctx, outs)
	}
	calls := s.group.takeNext()
	if calls == nil {
		return u.Persist(ctx, outs)
	}
	next.calls = calls
	// One round trip carries both batches: it ends at the later of their
	// deadlines, so that the next batch's load is not cut short by this
	// batch's (nor this batch's COMMIT by the next one's).
	both, cancel := laterContext(ctx, calls)
	defer cancel()
	sts, nu, loadErr, err := pu.PersistLoad(both, outs, requests(calls), committed)
	s.loaded()
	if err == nil {
		next.sts, next.u, next.loadErr = sts, nu, loadErr
	}
	return err
}

// requests are the batch's requests, in its order.
func requests(batch []*payCall) []*PayRequest {
	rs := make([]*PayRequest, len(batch))
	for i, c := range batch {
		rs[i] = c.r
	}
	return rs
}

// batchEffects are the outcomes decided so far in a batch, laid over the
// states loaded at its start, so that each request sees the ones before it
// as if they had committed: debited balances, password counts, keys taken,
// terminals' wrong PINs counted (and a suspension they reached).
type batchEffects struct {
	balances  map[string]int64
	passwords map[int64]PasswordChange
	keys      map[TerminalKey]keyEffect
	guards    map[string]PINGuard // by terminal id
}

type keyEffect struct {
	record *KeyRecord
	paid   *PayOrder
}

func newBatchEffects() *batchEffects {
	return &batchEffects{
		balances: map[string]int64{}, passwords: map[int64]PasswordChange{}, keys: map[TerminalKey]keyEffect{},
		guards: map[string]PINGuard{},
	}
}

// apply returns st, the state of request r, with the batch's effects so
// far; st itself is not changed.
func (fx *batchEffects) apply(st *PayState, r *PayRequest) *PayState {
	cp := *st
	if g, ok := fx.guards[r.TerminalID]; ok && st.Terminal.Found {
		cp.Terminal.PINGuard = g
	}
	cp.Accounts = make([]AccountChoice, len(st.Accounts))
	for i, a := range st.Accounts {
		if b, ok := fx.balances[a.ID]; ok {
			a.Balance = b
		}
		cp.Accounts[i] = a
	}
	if st.Customer != nil {
		c := *st.Customer
		if p, ok := fx.passwords[c.ID]; ok {
			c.Failures, c.Locked = p.Failures, p.Locked
		}
		cp.Customer = &c
	}
	if e, ok := fx.keys[r.Key()]; ok {
		cp.Key, cp.Paid = e.record, e.paid
	}
	return &cp
}

// record keeps out's effects, decided on st, for the requests after it. A
// wrong PIN counts against the terminal by the same rule the store applies
// (PINGuard.Next).
func (fx *batchEffects) record(st *PayState, out *PayOutcome) {
	if p := out.Password; p != nil {
		fx.passwords[p.CustomerID] = *p
		if f := p.Terminal; f != nil {
			fx.guards[f.TerminalID] = st.Terminal.PINGuard.Next(*f)
		}
	}
	if o := out.Approved; o != nil {
		fx.balances[o.AccountID] = o.BalanceAfter
		fx.keys[out.Key] = keyEffect{paid: o}
	} else if out.Declined != nil {
		fx.keys[out.Key] = keyEffect{record: out.Declined}
	}
}

package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// Review of the pipelined lane (PersistLoad). The backend flushes what it
// has to send only at a Sync (or a Flush, or a full output buffer); the
// pipelined round trip has one Sync, at its end. So the COMMIT's result of
// batch N reaches the service only once the load of batch N+1 is done: a
// load that waits on a row lock (up to batchLockTimeout) holds back the
// answers of a batch that has already committed, and a batch whose context
// ends meanwhile answers 10000 (outcome unknown) although it committed.

// pipeBlocked runs batch N (three pays of mobile a, held at its load until
// batch N+1 is queued) and batch N+1 (three pays of mobile b, whose customer
// row another transaction holds). firstCtx is the context of batch N's
// pays. It returns batch N's errors and how long after the batch was let go
// they were answered, and releases the row once batch N has answered.
func pipeBlocked(t *testing.T, e *env, svc *mapfront.Service, f *pipeBatches, firstCtx context.Context, a, b string,
	letGo func()) ([]error, time.Duration) {
	t.Helper()
	side, err := e.store.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Rollback(e.ctx)
	if _, err := side.Exec(e.ctx, `SELECT 1 FROM customers WHERE mobile = $1 FOR UPDATE`, b); err != nil {
		t.Fatal(err)
	}
	first := make([]error, 3)
	var wgFirst, wgSecond sync.WaitGroup
	for i := range first {
		p := payReq(t, a, "123456", "na"+string(rune('1'+i)), 1000)
		wgFirst.Add(1)
		go func() { defer wgFirst.Done(); _, first[i] = svc.Pay(firstCtx, p) }()
	}
	<-f.entered
	for i := range 3 {
		p := payReq(t, b, "123456", "nb"+string(rune('1'+i)), 1000)
		wgSecond.Add(1)
		go func() { defer wgSecond.Done(); _, _ = svc.Pay(e.ctx, p) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for svc.QueuedPays() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pays queued, want 3", svc.QueuedPays())
		}
		time.Sleep(time.Millisecond)
	}
	letGo()
	start := time.Now()
	close(f.gate)
	wgFirst.Wait()
	took := time.Since(start)
	if err := side.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	wgSecond.Wait()
	return first, took
}

// Batch N commits at once; its answers must not wait for batch N+1's load,
// which waits on a row lock (the documented claim: "The batch is answered
// as soon as its COMMIT is read, before the next load is").
func TestReviewPipelinedAnswerWaitsForTheNextLoad(t *testing.T) {
	e := newEnv(t)
	const a, b = "15800001111", "15800002222"
	newPayer(t, e, a, 10000)
	newPayer(t, e, b, 10000)
	f := &pipeBatches{Store: e.store, gate: make(chan struct{}), entered: make(chan struct{})}
	svc := pipeService(t, e, f, &batchSizes{})
	errs, took := pipeBlocked(t, e, svc, f, e.ctx, a, b, func() {})
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch N pay %d: %v", i, err)
		}
	}
	if f.piped.Load() == 0 {
		t.Fatal("batch N+1's load did not ride on batch N's persist")
	}
	if took > batchLockTimeout/2 {
		t.Fatalf("batch N, committed, was answered %v after it was let go: it waited for batch N+1's load "+
			"(blocked on a row lock, lock_timeout %v)", took, batchLockTimeout)
	}
}

// Batch N commits; its context ends while batch N+1's load (sent behind its
// COMMIT) waits on a row lock. Batch N certainly committed, yet its pays
// are answered 10000 (unknown): pgx closes the connection before the
// COMMIT's result, held in the backend's output buffer until the Sync, is
// read. Without the pipelined load the COMMIT's result comes at once.
func TestReviewPipelinedCommittedBatchAnsweredUnknown(t *testing.T) {
	e := newEnv(t)
	const a, b = "15800003333", "15800004444"
	cash := newPayer(t, e, a, 10000)
	newPayer(t, e, b, 10000)
	f := &pipeBatches{Store: e.store, gate: make(chan struct{}), entered: make(chan struct{})}
	svc := pipeService(t, e, f, &batchSizes{})
	const budget = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(e.ctx, budget)
	defer cancel()
	began := time.Now()
	// Batch N is let go with about 500 ms of its deadline left: plenty for
	// its load, write and COMMIT, less than batch N+1's lock wait.
	errs, _ := pipeBlocked(t, e, svc, f, ctx, a, b, func() { time.Sleep(time.Until(began.Add(budget - 500*time.Millisecond))) })
	bal := e.balance(t, cash)
	t.Logf("batch N answers %v; balance of a %d", errs, bal)
	if bal != 7000 {
		t.Skipf("batch N did not commit (balance %d): the race this test needs did not happen", bal)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch N pay %d answered %v (errcode %d) although the batch committed", i, err, mapfront.ErrorCode(err))
		}
	}
	e.verify(t)
}

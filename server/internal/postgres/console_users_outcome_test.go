package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// SPEC section 3 (10018 only when the request certainly had no effect) for
// the store's autocommit statements: ConsoleSignInReserve counts with one UPDATE that
// commits as it runs. A context that ends while the statement is in the
// server (here: waiting for a row lock another transaction holds) does not
// stop it; once the lock is released the count is written. Answering 10018
// ("busy, nothing happened") would then be untrue.
func TestAutocommitStatementCutByContextIsNotBusy(t *testing.T) {
	e := newEnv(t)
	if err := e.store.UpsertConsoleUser(e.ctx, "alice", "operator", "x"); err != nil {
		t.Fatal(err)
	}
	side, err := e.store.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Rollback(e.ctx)
	if _, err := side.Exec(e.ctx, `SELECT 1 FROM console_users WHERE name = 'alice' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	_, _, signErr := e.store.ConsoleSignInReserve(ctx, "alice", 5, time.Minute)
	if signErr == nil {
		t.Fatal("the sign-in count answered while its row was held")
	}
	if err := side.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The statement the context gave up on runs once the row is free.
	var failures int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := e.store.pool.QueryRow(e.ctx, `SELECT failures FROM console_users WHERE name = 'alice'`).Scan(&failures); err != nil {
			t.Fatal(err)
		}
		if failures != 0 {
			break
		}
	}
	if failures != 0 && mapfront.ErrorCode(signErr) == mapfront.CodeBusy {
		t.Fatalf("answered 10018 (%v) although the statement committed (failures %d)", signErr, failures)
	}
}

// ConsoleSignInReserve counts an attempt and checks the lock in one
// statement: of many attempts at once exactly lockAfter are reserved
// (numbered 1..lockAfter, the last one locking the account) and the rest
// are refused with the lock's end; the first attempt after the lock has
// expired (store clock) starts a new run; an unknown name is 10005.
func TestConsoleSignInReserveConcurrent(t *testing.T) {
	e := newEnv(t)
	if err := e.store.UpsertConsoleUser(e.ctx, "alice", "operator", "x"); err != nil {
		t.Fatal(err)
	}
	const lockAfter, n = 5, 40
	type result struct {
		u        *ConsoleUser
		reserved bool
		err      error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			u, ok, err := e.store.ConsoleSignInReserve(e.ctx, "alice", lockAfter, 15*time.Minute)
			results <- result{u, ok, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	until := e.clock.Now().Add(15 * time.Minute)
	seen := map[int]bool{}
	refused := 0
	for r := range results {
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.reserved:
			if seen[r.u.Failures] || r.u.Failures < 1 || r.u.Failures > lockAfter || r.u.PasswordHash != "x" {
				t.Errorf("reserved attempt number %d (hash %q)", r.u.Failures, r.u.PasswordHash)
			}
			seen[r.u.Failures] = true
			if locks := r.u.LockedUntil != nil; locks != (r.u.Failures == lockAfter) || locks && !r.u.LockedUntil.Equal(until) {
				t.Errorf("attempt %d: locked until %v", r.u.Failures, r.u.LockedUntil)
			}
		default:
			refused++
			if r.u.LockedUntil == nil || !r.u.LockedUntil.Equal(until) || r.u.PasswordHash != "" {
				t.Errorf("refused attempt: locked until %v, hash %q", r.u.LockedUntil, r.u.PasswordHash)
			}
		}
	}
	if len(seen) != lockAfter || refused != n-lockAfter {
		t.Fatalf("reserved %d, refused %d; want %d and %d", len(seen), refused, lockAfter, n-lockAfter)
	}
	// Still locked a moment before the end; a new run after it.
	e.clock.now = until.Add(-time.Second)
	if _, ok, err := e.store.ConsoleSignInReserve(e.ctx, "alice", lockAfter, 15*time.Minute); err != nil || ok {
		t.Fatalf("before the lock's end: reserved %v %v", ok, err)
	}
	e.clock.now = until
	u, ok, err := e.store.ConsoleSignInReserve(e.ctx, "alice", lockAfter, 15*time.Minute)
	if err != nil || !ok || u.Failures != 1 || u.LockedUntil != nil {
		t.Fatalf("after the lock's end: %v %v %+v", ok, err, u)
	}
	if err := e.store.ConsoleSignInOK(e.ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if u, err := e.store.ConsoleUser(e.ctx, "alice"); err != nil || u.Failures != 0 || u.LockedUntil != nil {
		t.Fatalf("after a success: %v %+v", err, u)
	}
	if _, _, err := e.store.ConsoleSignInReserve(e.ctx, "nobody", lockAfter, 15*time.Minute); mapfront.ErrorCode(err) != mapfront.CodeNotFound {
		t.Fatalf("unknown name: %v, want 10005", err)
	}
}

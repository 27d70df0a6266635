package postgres

import (
	"context"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// SPEC section 3 (10018 only when the request certainly had no effect) for
// the store's autocommit statements: ConsoleSignInFailed is one UPDATE that
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
	_, signErr := e.store.ConsoleSignInFailed(ctx, "alice", 5, time.Minute)
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
